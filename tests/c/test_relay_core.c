// Unit tests of the relay core on the simulated backend.
#include <stdint.h>
#include <string.h>

#include "relay_core.h"
#include "unit.h"

#define T(us) ((relay_time_t)(us) & RELAY_TIME_MASK)
#define MS (1000u)

static relay_bank_t B;

// A bank after a power-on: no state kept by an earlier bank (hw_keep.h).
static int bank_init_cold(relay_bank_t *b, const uint8_t *pins, size_t n, uint32_t active_low,
    uint32_t on_at_boot, int32_t tick_period_us, relay_time_t now) {
    memset(relay_hw_sim_scratch, 0, sizeof(relay_hw_sim_scratch));
    return relay_bank_init(b, pins, n, active_low, on_at_boot, tick_period_us, now);
}
static const uint8_t PINS4[4] = {10, 11, 12, 13};

static int init4(uint32_t active_low, uint32_t on_at_boot) {
    return bank_init_cold(&B, PINS4, 4, active_low, on_at_boot, 1000, 0);
}

static int lvl(unsigned pin) {
    return relay_hw_sim_level(&B.hw, pin);
}

static uint64_t bit64(unsigned pin) {
    return (uint64_t)1 << pin;
}

// ---- set-up and errors

static void test_init_errors(void) {
    uint8_t pins[33];
    for (unsigned i = 0; i < 33; i++) {
        pins[i] = (uint8_t)i;
    }
    CHECK_EQ(bank_init_cold(&B, pins, 0, 0, 0, 1000, 0), RELAY_ERR_RELAY_COUNT);
    CHECK_EQ(bank_init_cold(&B, pins, 33, 0, 0, 1000, 0), RELAY_ERR_RELAY_COUNT);
    uint8_t bad[2] = {3, RELAY_HW_NUM_PINS};
    CHECK_EQ(bank_init_cold(&B, bad, 2, 0, 0, 1000, 0), RELAY_ERR_PIN);
    uint8_t dup[3] = {5, 6, 5};
    CHECK_EQ(bank_init_cold(&B, dup, 3, 0, 0, 1000, 0), RELAY_ERR_DUP_PIN);
    CHECK_EQ(bank_init_cold(&B, PINS4, 4, 1u << 4, 0, 1000, 0), RELAY_ERR_MASK);
    CHECK_EQ(bank_init_cold(&B, PINS4, 4, 0, 1u << 8, 1000, 0), RELAY_ERR_MASK);
    CHECK_EQ(bank_init_cold(&B, PINS4, 4, 0, 0, 99, 0), RELAY_ERR_TICK);
    CHECK_EQ(bank_init_cold(&B, PINS4, 4, 0, 0, 100, 0), RELAY_OK);
    CHECK_EQ(bank_init_cold(&B, pins, 32, 0xffffffffu, 0xffffffffu, 1000, 0), RELAY_OK);
}

static void test_status_names(void) {
    CHECK_STR(relay_status_name(RELAY_OK), "ok");
    CHECK_STR(relay_status_name(RELAY_DEFERRED), "deferred");
    CHECK_STR(relay_status_name(RELAY_REJECTED_INTERVAL), "interval");
    CHECK_STR(relay_status_name(RELAY_REJECTED_INTERLOCK), "interlock");
    CHECK_STR(relay_status_name(RELAY_ERR_RELAY), "error");
    CHECK_STR(relay_status_name(4), "error");
    CHECK_STR(relay_status_name(-11), "error");
}

static void test_power_on_active_high(void) {
    CHECK_EQ(init4(0, 0x2), RELAY_OK);
    CHECK_EQ(lvl(10), 0);
    CHECK_EQ(lvl(11), 1);
    CHECK_EQ(lvl(12), 0);
    CHECK_EQ(lvl(13), 0);
    CHECK_EQ(B.state, 0x2);
    CHECK_EQ(relay_get(&B, 1), 1);
    CHECK_EQ(B.hw.out_mask, bit64(10) | bit64(11) | bit64(12) | bit64(13));
    // no register write happened and only relay 1's pin was ever high
    CHECK_EQ(B.hw.writes, 0);
    CHECK_EQ(B.m.writes, 0);
    CHECK_EQ(B.hw.ever_high, bit64(11));
    CHECK_EQ(B.hw.ever_low, bit64(10) | bit64(12) | bit64(13));
}

static void test_power_on_active_low(void) {
    // relays 0, 1 active low; relay 0 on at boot
    CHECK_EQ(init4(0x3, 0x1), RELAY_OK);
    CHECK_EQ(lvl(10), 0);   // on, active low
    CHECK_EQ(lvl(11), 1);   // off, active low
    CHECK_EQ(lvl(12), 0);
    CHECK_EQ(B.hw.writes, 0);
    // relay 1 never saw its on level (low), relay 0 never its off level (high)
    CHECK_EQ(B.hw.ever_low & bit64(11), 0);
    CHECK_EQ(B.hw.ever_high & bit64(10), 0);
    CHECK_EQ(relay_get(&B, 0), 1);
    CHECK_EQ(relay_get(&B, 1), 0);
}

// ---- switching

static void test_set_get_toggle(void) {
    CHECK_EQ(init4(0x2, 0), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_get(&B, 0), 1);
    CHECK_EQ(lvl(10), 1);
    CHECK_EQ(relay_set(&B, 1, true, T(0)), RELAY_OK);
    CHECK_EQ(lvl(11), 0);   // active low
    CHECK_EQ(B.state, 0x3);
    CHECK_EQ(B.hw.writes, 2);
    CHECK_EQ(B.m.writes, 2);
    // no change: OK, nothing counted or written
    CHECK_EQ(relay_set(&B, 0, true, T(10)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 2, false, T(10)), RELAY_OK);
    CHECK_EQ(B.hw.writes, 2);
    CHECK_EQ(relay_switch_count(&B, 0), 1);
    CHECK_EQ(relay_toggle(&B, 0, T(20)), RELAY_OK);
    CHECK_EQ(relay_get(&B, 0), 0);
    CHECK_EQ(lvl(10), 0);
    CHECK_EQ(relay_toggle(&B, 1, T(20)), RELAY_OK);
    CHECK_EQ(lvl(11), 1);
    CHECK_EQ(relay_switch_count(&B, 0), 2);
    CHECK_EQ(relay_switch_count(&B, 1), 2);
    CHECK_EQ(relay_set(&B, 4, true, T(0)), RELAY_ERR_RELAY);
    CHECK_EQ(relay_set(&B, -1, true, T(0)), RELAY_ERR_RELAY);
    CHECK_EQ(relay_toggle(&B, 4, T(0)), RELAY_ERR_RELAY);
    CHECK_EQ(relay_get(&B, 4), RELAY_ERR_RELAY);
    CHECK_EQ(relay_get(&B, -1), RELAY_ERR_RELAY);
}

static void test_write_atomic(void) {
    CHECK_EQ(init4(0x4, 0x8), RELAY_OK);
    CHECK_EQ(relay_write(&B, 0xf, 0x7, T(0)), RELAY_OK);
    CHECK_EQ(B.hw.writes, 1);   // one register write for four relays
    CHECK_EQ(B.m.writes, 1);
    CHECK_EQ(B.state, 0x7);
    CHECK_EQ(lvl(10), 1);
    CHECK_EQ(lvl(11), 1);
    CHECK_EQ(lvl(12), 0);       // active low, on
    CHECK_EQ(lvl(13), 0);
    CHECK_EQ(relay_switch_count(&B, 0), 1);
    CHECK_EQ(relay_switch_count(&B, 3), 1);
    // relays outside the mask and bits of values outside it are untouched
    CHECK_EQ(relay_write(&B, 0x1, 0xe, T(10)), RELAY_OK);
    CHECK_EQ(B.state, 0x6);
    CHECK_EQ(relay_switch_count(&B, 1), 1);
    // nothing changes: no register write
    CHECK_EQ(relay_write(&B, 0x6, 0x6, T(20)), RELAY_OK);
    CHECK_EQ(B.hw.writes, 2);
    CHECK_EQ(relay_write(&B, 0x10, 0x10, T(0)), RELAY_ERR_MASK);
    CHECK_EQ(B.state, 0x6);
}

static void test_write_all_or_nothing_interval(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_set_min_interval(&B, 1, 100), RELAY_OK);
    CHECK_EQ(relay_set(&B, 1, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_write(&B, 0x3, 0x1, T(50 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(B.state, 0x2);
    CHECK_EQ(B.hw.writes, 1);
    CHECK_EQ(B.m.rejected[RELAY_REJECTED_INTERVAL], 1);
    // relay 1 keeps its value: not switched, so not checked
    CHECK_EQ(relay_write(&B, 0x3, 0x3, T(50 * MS)), RELAY_OK);
    CHECK_EQ(B.state, 0x3);
    CHECK_EQ(relay_write(&B, 0x3, 0x0, T(100 * MS)), RELAY_OK);
    CHECK_EQ(B.state, 0x0);
}

static void test_min_interval(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_set_min_interval(&B, 0, 10), RELAY_OK);
    CHECK_EQ(relay_set_min_interval(&B, 0, 3600001), RELAY_ERR_MIN_INTERVAL);
    CHECK_EQ(relay_set_min_interval(&B, 4, 10), RELAY_ERR_RELAY);
    // booting is not a switch: the first request passes at once
    CHECK_EQ(relay_set(&B, 0, true, T(1)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, false, T(5 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(relay_toggle(&B, 0, T(10 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(relay_get(&B, 0), 1);
    CHECK_EQ(B.m.rejected[RELAY_REJECTED_INTERVAL], 2);
    // a request that changes nothing is OK and not counted
    CHECK_EQ(relay_set(&B, 0, true, T(5 * MS)), RELAY_OK);
    CHECK_EQ(B.m.rejected[RELAY_REJECTED_INTERVAL], 2);
    CHECK_EQ(relay_set(&B, 0, false, T(10 * MS + 1)), RELAY_OK);
    // applies to on as well
    CHECK_EQ(relay_set(&B, 0, true, T(20 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(relay_set(&B, 0, true, T(20 * MS + 1)), RELAY_OK);
    CHECK_EQ(relay_switch_count(&B, 0), 3);
    CHECK_EQ(B.m.rejected[RELAY_REJECTED_INTERVAL], 3);
    CHECK_EQ(B.m.rejected[RELAY_REJECTED_INTERLOCK], 0);
}

static void test_min_interval_tick_clears(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_set_min_interval(&B, 0, 10), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(500)), RELAY_OK);
    CHECK_EQ((B.clear & 1u), 0);
    relay_tick(&B, T(10 * MS));
    CHECK_EQ((B.clear & 1u), 0);
    relay_tick(&B, T(10 * MS + 500));
    CHECK_EQ((B.clear & 1u), 1);
    CHECK_EQ(relay_set(&B, 0, false, T(10 * MS + 500)), RELAY_OK);
}

static void test_min_interval_longer_than_half_ring(void) {
    // 20 min is beyond what a ring difference can measure: the tick counts it
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_set_min_interval(&B, 0, 1200000), RELAY_OK);
    uint64_t step = 100000000u;   // ticks 100 s apart
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    for (uint64_t t = step; t <= 11 * step; t += step) {
        relay_tick(&B, T(t));
        CHECK_EQ(relay_set(&B, 0, false, T(t)), RELAY_REJECTED_INTERVAL);
    }
    // between ticks: 50 s after the tick at 1100 s is still inside
    CHECK_EQ(relay_set(&B, 0, false, T(11 * step + step / 2)), RELAY_REJECTED_INTERVAL);
    // exactly 1200 s after the switch, with no tick since 1100 s
    CHECK_EQ(relay_set(&B, 0, false, T(12 * step)), RELAY_OK);
    CHECK_EQ(relay_get(&B, 0), 0);
}

static void test_time_wrap_set_interval(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_set_min_interval(&B, 0, 10), RELAY_OK);
    relay_time_t start = RELAY_TIME_MASK - 2999;   // 3 ms before the wrap
    CHECK_EQ(relay_tick(&B, start), 0);
    CHECK_EQ(relay_set(&B, 0, true, start), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, false, T(5000)), RELAY_REJECTED_INTERVAL);   // 8 ms later
    CHECK_EQ(relay_tick(&B, T(6000)), 0);
    CHECK_EQ(relay_set(&B, 0, false, T(6999)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(relay_set(&B, 0, false, T(7000)), RELAY_OK);                  // 10 ms later
    CHECK_EQ(B.m.late_ticks, 1);    // 9 ms after the previous tick
}

// ---- interlock

static void test_interlock_changeover(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 50), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 1, true, T(1000)), RELAY_DEFERRED);
    // relay 0 is off at once, relay 1 waits for the dead time
    CHECK_EQ(relay_get(&B, 0), 0);
    CHECK_EQ(relay_get(&B, 1), 0);
    CHECK_EQ(lvl(10), 0);
    CHECK_EQ(lvl(11), 0);
    CHECK_EQ(B.m.deferred, 1);
    CHECK_EQ(relay_switch_count(&B, 0), 2);
    CHECK_EQ(relay_tick(&B, T(50 * MS)), 0);
    CHECK_EQ(relay_tick(&B, T(50999)), 0);
    CHECK_EQ(relay_get(&B, 1), 0);
    CHECK_EQ(relay_tick(&B, T(51 * MS)), 1);   // first tick at or after the dead time
    CHECK_EQ(relay_get(&B, 1), 1);
    CHECK_EQ(lvl(11), 1);
    CHECK_EQ(relay_switch_count(&B, 1), 1);
    CHECK_EQ(B.groups[0].pending, -1);
    // and back
    CHECK_EQ(relay_toggle(&B, 0, T(60 * MS)), RELAY_DEFERRED);
    CHECK_EQ(relay_get(&B, 1), 0);
    CHECK_EQ(relay_tick(&B, T(110 * MS)), 1);
    CHECK_EQ(B.state, 0x1);
    CHECK_EQ(B.m.deferred, 2);
}

static void test_interlock_changeover_interval(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 50), 0);
    CHECK_EQ(relay_set_min_interval(&B, 0, 100), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    // relay 0 may not turn off yet: the whole change-over is rejected
    CHECK_EQ(relay_set(&B, 1, true, T(50 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(B.state, 0x1);
    CHECK_EQ(B.groups[0].pending, -1);
    CHECK_EQ(B.m.deferred, 0);
    CHECK_EQ(B.m.rejected[RELAY_REJECTED_INTERVAL], 1);
    CHECK_EQ(relay_tick(&B, T(200 * MS)), 0);
    CHECK_EQ(B.state, 0x1);
    // the requested relay's own interval is checked when requested
    CHECK_EQ(relay_set_min_interval(&B, 1, 100), RELAY_OK);
    CHECK_EQ(relay_write(&B, 0x3, 0x2, T(300 * MS)), RELAY_REJECTED_INTERLOCK);
    CHECK_EQ(relay_set(&B, 0, false, T(300 * MS)), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(400 * MS)), 0);
    CHECK_EQ(relay_set(&B, 1, true, T(400 * MS)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 1, false, T(450 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(relay_set(&B, 1, false, T(500 * MS)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 1, true, T(520 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(B.groups[0].pending, -1);
}

static void test_interlock_dead_time(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 50), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, false, T(1000)), RELAY_OK);
    // inside the dead time of relay 0's turn-off: deferred
    CHECK_EQ(relay_set(&B, 1, true, T(20 * MS)), RELAY_DEFERRED);
    CHECK_EQ(relay_tick(&B, T(50 * MS)), 0);
    CHECK_EQ(relay_tick(&B, T(51 * MS)), 1);
    CHECK_EQ(relay_get(&B, 1), 1);
    CHECK_EQ(relay_set(&B, 1, false, T(60 * MS)), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(100 * MS)), 0);
    // dead time runs out at 110 ms, between ticks: exact without a tick
    CHECK_EQ(relay_set(&B, 0, true, T(109999)), RELAY_DEFERRED);
    CHECK_EQ(relay_set(&B, 0, true, T(110 * MS)), RELAY_OK);
    CHECK_EQ(B.groups[0].pending, -1);
    CHECK_EQ(relay_get(&B, 0), 1);
    CHECK_EQ(relay_tick(&B, T(120 * MS)), 0);
    CHECK_EQ(B.state, 0x1);
    CHECK_EQ(B.m.deferred, 2);
}

static void test_interlock_zero_dead_time(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 0), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    // still a change-over: the other relay turns on at the next tick
    CHECK_EQ(relay_set(&B, 1, true, T(100)), RELAY_DEFERRED);
    CHECK_EQ(B.state, 0x0);
    CHECK_EQ(relay_tick(&B, T(1000)), 1);
    CHECK_EQ(B.state, 0x2);
}

static void test_interlock_pending_replaced_cancelled(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x7, 50), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 1, true, T(1000)), RELAY_DEFERRED);
    CHECK_EQ(relay_set(&B, 2, true, T(2000)), RELAY_DEFERRED);   // replaces relay 1
    CHECK_EQ(B.groups[0].pending, 2);
    CHECK_EQ(relay_tick(&B, T(60 * MS)), 1);
    CHECK_EQ(B.state, 0x4);
    // set off cancels a pending turn-on
    CHECK_EQ(relay_set(&B, 2, false, T(70 * MS)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, true, T(71 * MS)), RELAY_DEFERRED);
    CHECK_EQ(relay_get(&B, 0), 0);
    CHECK_EQ(relay_set(&B, 0, false, T(72 * MS)), RELAY_OK);
    CHECK_EQ(B.groups[0].pending, -1);
    CHECK_EQ(relay_tick(&B, T(200 * MS)), 0);
    CHECK_EQ(B.state, 0x0);
    // toggle cancels it too
    CHECK_EQ(relay_set(&B, 2, true, T(200 * MS)), RELAY_OK);
    CHECK_EQ(relay_toggle(&B, 1, T(201 * MS)), RELAY_DEFERRED);
    CHECK_EQ(relay_toggle(&B, 1, T(202 * MS)), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(300 * MS)), 0);
    CHECK_EQ(B.state, 0x0);
    // a write naming the pending relay as off cancels it
    CHECK_EQ(relay_set(&B, 0, true, T(310 * MS)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 1, true, T(311 * MS)), RELAY_DEFERRED);
    CHECK_EQ(relay_write(&B, 0x2, 0x0, T(312 * MS)), RELAY_OK);
    CHECK_EQ(B.groups[0].pending, -1);
    CHECK_EQ(relay_tick(&B, T(400 * MS)), 0);
    CHECK_EQ(B.state, 0x0);
    CHECK_EQ(B.m.deferred, 5);
}

static void test_interlock_write_rejected(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 50), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_write(&B, 0x3, 0x3, T(0)), RELAY_REJECTED_INTERLOCK);   // two members on
    CHECK_EQ(relay_write(&B, 0x5, 0x5, T(0)), RELAY_OK);
    CHECK_EQ(relay_write(&B, 0x2, 0x2, T(1000)), RELAY_REJECTED_INTERLOCK); // another is on
    CHECK_EQ(relay_write(&B, 0x3, 0x2, T(1000)), RELAY_REJECTED_INTERLOCK); // change-over in one write
    CHECK_EQ(relay_write(&B, 0x1, 0x0, T(2000)), RELAY_OK);
    CHECK_EQ(relay_write(&B, 0x2, 0x2, T(3000)), RELAY_REJECTED_INTERLOCK); // dead time
    CHECK_EQ(B.state, 0x4);
    CHECK_EQ(B.m.rejected[RELAY_REJECTED_INTERLOCK], 4);
    CHECK_EQ(B.m.deferred, 0);
    CHECK_EQ(B.hw.writes, 2);
    CHECK_EQ(relay_write(&B, 0x2, 0x2, T(51999)), RELAY_REJECTED_INTERLOCK);
    CHECK_EQ(relay_write(&B, 0x2, 0x2, T(52 * MS)), RELAY_OK);
    CHECK_EQ(B.state, 0x6);
}

static void test_interlock_errors(void) {
    CHECK_EQ(init4(0, 0x3), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x1, 10), RELAY_ERR_GROUP_SIZE);
    CHECK_EQ(relay_add_interlock(&B, 0x10, 10), RELAY_ERR_MASK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 3600001), RELAY_ERR_DEAD_TIME);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 10), RELAY_ERR_GROUP_ON);   // both on already
    CHECK_EQ(relay_add_interlock(&B, 0x6, 10), 0);
    CHECK_EQ(relay_add_interlock(&B, 0xc, 10), RELAY_ERR_GROUP_MEMBER);   // relay 2 taken
    uint8_t pins[20];
    for (unsigned i = 0; i < 20; i++) {
        pins[i] = (uint8_t)i;
    }
    CHECK_EQ(bank_init_cold(&B, pins, 20, 0, 0, 1000, 0), RELAY_OK);
    for (int k = 0; k < RELAY_GROUP_MAX; k++) {
        CHECK_EQ(relay_add_interlock(&B, 0x3u << (2 * k), 0), k);
    }
    CHECK_EQ(relay_add_interlock(&B, 0x3u << 16, 0), RELAY_ERR_GROUP_COUNT);
}

// ---- pulses

static void test_pulse_expiry_exact(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_pulse(&B, 0, 10, T(500)), RELAY_OK);   // between ticks
    CHECK_EQ(relay_get(&B, 0), 1);
    CHECK_EQ(relay_tick(&B, T(1000)), 0);
    CHECK_EQ(relay_tick(&B, T(10 * MS)), 0);
    CHECK_EQ(relay_tick(&B, T(10499)), 0);
    CHECK_EQ(relay_get(&B, 0), 1);
    CHECK_EQ(relay_tick(&B, T(10500)), 1);   // the first tick >= 10 ms after
    CHECK_EQ(relay_get(&B, 0), 0);
    CHECK_EQ(lvl(10), 0);
    CHECK_EQ(B.m.pulses_expired, 1);
    CHECK_EQ(relay_switch_count(&B, 0), 2);
    CHECK_EQ(relay_tick(&B, T(20 * MS)), 0);
    CHECK_EQ(B.m.pulses_expired, 1);
}

static void test_pulse_restart_and_cancel(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_pulse(&B, 0, 10, T(0)), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 0, 10, T(5000)), RELAY_OK);   // restarts: off at 15 ms
    CHECK_EQ(relay_tick(&B, T(14999)), 0);
    CHECK_EQ(relay_tick(&B, T(15 * MS)), 1);
    CHECK_EQ(relay_get(&B, 0), 0);
    CHECK_EQ(relay_switch_count(&B, 0), 2);
    // set() ends a pulse: the relay stays on
    CHECK_EQ(relay_pulse(&B, 1, 10, T(20 * MS)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 1, true, T(21 * MS)), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(100 * MS)), 0);
    CHECK_EQ(relay_get(&B, 1), 1);
    // toggle() and write() end one as well
    CHECK_EQ(relay_pulse(&B, 2, 10, T(100 * MS)), RELAY_OK);
    CHECK_EQ(relay_toggle(&B, 2, T(101 * MS)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 2, true, T(102 * MS)), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 3, 10, T(102 * MS)), RELAY_OK);
    CHECK_EQ(relay_write(&B, 0x8, 0x8, T(103 * MS)), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(200 * MS)), 0);
    CHECK_EQ(B.state, 0xe);
    CHECK_EQ(B.m.pulses_expired, 1);
}

static void test_pulse_errors(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 4, 10, T(0)), RELAY_ERR_RELAY);
    CHECK_EQ(relay_pulse(&B, 0, 0, T(0)), RELAY_ERR_PULSE);
    CHECK_EQ(relay_set_min_interval(&B, 0, 20), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 0, 19, T(0)), RELAY_ERR_PULSE_SHORT);
    CHECK_EQ(relay_pulse(&B, 0, 20, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, false, T(0)), RELAY_REJECTED_INTERVAL);
    // a pulse is a switch request: inside the interval it is rejected
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_tick(&B, T(20 * MS)), 1);
    CHECK_EQ(relay_pulse(&B, 0, 20, T(30 * MS)), RELAY_REJECTED_INTERVAL);
    CHECK_EQ(relay_pulse(&B, 0, RELAY_PULSE_MAX_MS, T(40 * MS)), RELAY_OK);
    CHECK_EQ(B.relays[0].pulse_left_us, 86400000000ull + 20 * MS);   // + time since the tick
}

static void test_pulse_longer_than_ring(void) {
    // 40 minutes, more than twice the 17.9-minute ring, ticked once a minute
    CHECK_EQ(init4(0, 0), RELAY_OK);
    uint64_t minute = 60000000u;
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_pulse(&B, 0, 40u * 60u * 1000u, T(0)), RELAY_OK);
    for (uint64_t k = 1; k < 40; k++) {
        CHECK_EQ(relay_tick(&B, T(k * minute)), 0);
        CHECK_EQ(relay_get(&B, 0), 1);
    }
    CHECK_EQ(relay_tick(&B, T(40 * minute - 1)), 0);
    CHECK_EQ(relay_tick(&B, T(40 * minute)), 1);
    CHECK_EQ(relay_get(&B, 0), 0);
    CHECK_EQ(B.m.pulses_expired, 1);
}

static void test_pulse_deferred(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 50), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 1, 30, T(0)), RELAY_DEFERRED);
    CHECK_EQ(relay_tick(&B, T(50 * MS)), 1);
    CHECK_EQ(B.state, 0x2);
    // the pulse runs from the turn-on
    CHECK_EQ(relay_tick(&B, T(79999)), 0);
    CHECK_EQ(relay_tick(&B, T(80 * MS)), 1);
    CHECK_EQ(B.state, 0x0);
    CHECK_EQ(B.m.pulses_expired, 1);
    // its turn-off starts the dead time again
    CHECK_EQ(relay_set(&B, 0, true, T(81 * MS)), RELAY_DEFERRED);
    CHECK_EQ(relay_tick(&B, T(129999)), 0);
    CHECK_EQ(relay_tick(&B, T(130 * MS)), 1);
    CHECK_EQ(B.state, 0x1);
}

static void test_first_tick_sets_time_base(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    // before the first tick timers have no base: they count from it
    CHECK_EQ(relay_pulse(&B, 0, 10, T(0)), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(123456)), 0);
    CHECK_EQ(B.m.late_ticks, 0);
    CHECK_EQ(relay_tick(&B, T(133455)), 0);
    CHECK_EQ(relay_tick(&B, T(133456)), 1);
    CHECK_EQ(B.m.ticks, 3);
}

// ---- inputs

static void test_debounce(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_input(&B, 20, 20, true, RELAY_PULL_UP, 1), 0);
    CHECK_EQ(lvl(20), 1);                       // pulled up, not pressed
    CHECK_EQ(relay_input_value(&B, 0), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    // bounces shorter than the debounce time
    uint32_t t = 0;
    for (int i = 0; i < 10; i++) {
        relay_hw_sim_drive(&B.hw, 20, i & 1);   // 0 = pressed
        for (int k = 0; k < 15; k++) {
            t += MS;
            CHECK_EQ(relay_tick(&B, T(t)), 0);
        }
    }
    CHECK_EQ(B.inputs[0].edges, 0);
    CHECK_EQ(relay_input_value(&B, 0), 0);
    // a stable press: one edge 20 ms after it is first seen, toggling relay 1
    relay_hw_sim_drive(&B.hw, 20, 0);
    t = 200 * MS;
    CHECK_EQ(relay_tick(&B, T(t)), 0);
    for (int k = 1; k < 20; k++) {
        CHECK_EQ(relay_tick(&B, T(t + k * MS)), 0);
    }
    CHECK_EQ(relay_input_value(&B, 0), 0);
    CHECK_EQ(relay_tick(&B, T(t + 20 * MS)), 1);
    CHECK_EQ(relay_input_value(&B, 0), 1);
    CHECK_EQ(relay_get(&B, 1), 1);
    CHECK_EQ(B.inputs[0].edges, 1);
    CHECK_EQ(B.m.input_edges, 1);
    for (int k = 21; k < 60; k++) {
        CHECK_EQ(relay_tick(&B, T(t + k * MS)), 0);
    }
    CHECK_EQ(B.inputs[0].edges, 1);
    // release (back to the pull-up): an edge, no toggle
    relay_hw_sim_drive(&B.hw, 20, -1);
    t = 300 * MS;
    for (int k = 0; k < 20; k++) {
        CHECK_EQ(relay_tick(&B, T(t + k * MS)), 0);
    }
    CHECK_EQ(relay_input_value(&B, 0), 1);
    CHECK_EQ(relay_tick(&B, T(t + 20 * MS)), 0);
    CHECK_EQ(relay_input_value(&B, 0), 0);
    CHECK_EQ(B.inputs[0].edges, 2);
    CHECK_EQ(relay_get(&B, 1), 1);
    // a second press toggles it off
    relay_hw_sim_drive(&B.hw, 20, 0);
    t = 400 * MS;
    relay_tick(&B, T(t));
    CHECK_EQ(relay_tick(&B, T(t + 20 * MS)), 1);
    CHECK_EQ(relay_get(&B, 1), 0);
    CHECK_EQ(B.m.input_edges, 3);
}

static void test_input_active_high_no_debounce(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_input(&B, 40, 0, false, RELAY_PULL_DOWN, -1), 0);
    CHECK_EQ(relay_add_input(&B, 41, 0, false, RELAY_PULL_NONE, -1), 1);
    CHECK_EQ(relay_input_value(&B, 0), 0);
    relay_hw_sim_drive(&B.hw, 40, 1);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_input_value(&B, 0), 1);     // debounce 0: the first sample counts
    CHECK_EQ(relay_input_value(&B, 1), 0);
    CHECK_EQ(B.inputs[0].edges, 1);
    CHECK_EQ(B.state, 0);
    // an input read at creation starts at that level: no edge
    relay_hw_sim_drive(&B.hw, 42, 1);
    CHECK_EQ(relay_add_input(&B, 42, 5, false, RELAY_PULL_NONE, -1), 2);
    CHECK_EQ(relay_input_value(&B, 2), 1);
    relay_tick(&B, T(10 * MS));
    CHECK_EQ(B.inputs[2].edges, 0);
}

static void test_input_toggle_interlock(void) {
    CHECK_EQ(init4(0, 0x1), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 50), 0);
    CHECK_EQ(relay_add_input(&B, 20, 0, true, RELAY_PULL_UP, 1), 0);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    relay_hw_sim_drive(&B.hw, 20, 0);
    // the press toggles relay 1 like toggle(): a change-over, relay 0 off now
    CHECK_EQ(relay_tick(&B, T(1000)), 1);
    CHECK_EQ(B.state, 0x0);
    CHECK_EQ(B.m.deferred, 1);
    CHECK_EQ(relay_tick(&B, T(51 * MS)), 1);
    CHECK_EQ(B.state, 0x2);
}

static void test_input_errors(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_input(&B, RELAY_HW_NUM_PINS, 20, true, RELAY_PULL_UP, -1), RELAY_ERR_PIN);
    CHECK_EQ(relay_add_input(&B, -1, 20, true, RELAY_PULL_UP, -1), RELAY_ERR_PIN);
    CHECK_EQ(relay_add_input(&B, 10, 20, true, RELAY_PULL_UP, -1), RELAY_ERR_DUP_PIN);
    CHECK_EQ(relay_add_input(&B, 20, 20, true, 3, -1), RELAY_ERR_PULL);
    CHECK_EQ(relay_add_input(&B, 20, 20, true, RELAY_PULL_UP, 4), RELAY_ERR_TOGGLES);
    CHECK_EQ(relay_add_input(&B, 20, 20, true, RELAY_PULL_UP, -2), RELAY_ERR_TOGGLES);
    CHECK_EQ(relay_add_input(&B, 20, RELAY_DEBOUNCE_MAX_MS + 1, true, RELAY_PULL_UP, -1), RELAY_ERR_DEBOUNCE);
    CHECK_EQ(relay_add_input(&B, 20, 20, true, RELAY_PULL_UP, -1), 0);
    CHECK_EQ(relay_add_input(&B, 20, 20, true, RELAY_PULL_UP, -1), RELAY_ERR_DUP_PIN);
    for (int j = 1; j < RELAY_INPUT_MAX; j++) {
        CHECK_EQ(relay_add_input(&B, 20 + j, 20, true, RELAY_PULL_UP, -1), j);
    }
    CHECK_EQ(relay_add_input(&B, 50, 20, true, RELAY_PULL_UP, -1), RELAY_ERR_INPUT_COUNT);
    CHECK_EQ(relay_input_value(&B, RELAY_INPUT_MAX), RELAY_ERR_INPUT);
    CHECK_EQ(relay_input_value(&B, -1), RELAY_ERR_INPUT);
}

// ---- watchdog supervisor

static void test_watchdog_feeds(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_slot(&B, "pump", 100), 0);
    CHECK_EQ(relay_add_slot(&B, "net", 1000), 1);
    CHECK_EQ(relay_wdt_start(&B, 0), RELAY_ERR_WDT_TIMEOUT);
    CHECK_EQ(relay_wdt_start(&B, RELAY_WDT_MAX_MS + 1), RELAY_ERR_WDT_TIMEOUT);
    CHECK_EQ(relay_wdt_start(&B, 500), RELAY_OK);
    CHECK_EQ(relay_wdt_start(&B, 500), RELAY_ERR_WDT_STARTED);
    CHECK_EQ(B.hw.wdt_enabled, 1);
    CHECK_EQ(B.hw.wdt_timeout_us, 500 * MS);
    for (uint32_t t = 0; t <= 2000 * MS; t += MS) {
        relay_tick(&B, T(t));
        if (t % (50 * MS) == 0) {
            CHECK_EQ(relay_checkin(&B, 0, T(t)), RELAY_OK);
        }
        if (t % (500 * MS) == 0) {
            CHECK_EQ(relay_checkin(&B, 1, T(t)), RELAY_OK);
        }
    }
    CHECK_EQ(B.m.wdt_feeds, 2001);
    CHECK_EQ(B.m.ticks, 2001);
    CHECK_EQ(B.hw.resets, 0);
    CHECK(relay_stalled_name(&B) == NULL);
    CHECK_EQ(relay_checkin(&B, 2, T(0)), RELAY_ERR_SLOT);
    CHECK_EQ(relay_checkin(&B, -1, T(0)), RELAY_ERR_SLOT);
}

static void test_watchdog_stall(void) {
    CHECK_EQ(bank_init_cold(&B, PINS4, 4, 0, 0, 10000, 0), RELAY_OK);
    CHECK_EQ(relay_add_slot(&B, "pump", 100), 0);
    CHECK_EQ(relay_add_slot(&B, "net", 1000), 1);
    CHECK_EQ(relay_wdt_start(&B, 500), RELAY_OK);
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_tick(&B, T(10 * MS)), 0);
    CHECK_EQ(relay_checkin(&B, 0, T(15 * MS)), RELAY_OK);   // between ticks
    // "pump" is stalled at the first tick more than 100 ms after its check-in
    for (uint32_t t = 20 * MS; t <= 110 * MS; t += 10 * MS) {
        relay_tick(&B, T(t));
        relay_checkin(&B, 1, T(t));
    }
    CHECK(relay_stalled_name(&B) == NULL);
    CHECK_EQ(B.m.wdt_feeds, 12);
    relay_tick(&B, T(120 * MS));
    CHECK_STR(relay_stalled_name(&B), "pump");
    CHECK_EQ(B.stalled, 0);
    CHECK_EQ(B.wdt_running, 0);
    CHECK_EQ(B.hw.resets, 1);
    CHECK_EQ(B.m.wdt_feeds, 12);
    char cause[16];
    relay_hw_reset_cause(&B.hw, cause, sizeof(cause));
    CHECK_STR(cause, "pump");
    // supervision is over: no more feeding, no second reset
    relay_tick(&B, T(130 * MS));
    relay_tick(&B, T(2000 * MS));
    CHECK_EQ(B.m.wdt_feeds, 12);
    CHECK_EQ(B.hw.resets, 1);
    CHECK_EQ(relay_wdt_start(&B, 500), RELAY_ERR_WDT_STARTED);
}

static void test_watchdog_long_slot_name(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_slot(&B, "abcdefghijklmno", 1), 0);   // 15 characters
    CHECK_EQ(relay_wdt_start(&B, 100), RELAY_OK);
    relay_tick(&B, T(0));
    relay_tick(&B, T(1000));
    CHECK(relay_stalled_name(&B) == NULL);   // exactly the window is within it
    relay_tick(&B, T(1001));
    CHECK_STR(relay_stalled_name(&B), "abcdefghijklmno");
    char cause[16];
    relay_hw_reset_cause(&B.hw, cause, sizeof(cause));
    CHECK_STR(cause, "abcdefghijklmno");
    char small[5];
    relay_hw_reset_cause(&B.hw, small, sizeof(small));
    CHECK_STR(small, "abcd");
}

static void test_watchdog_hw_timeout(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_slot(&B, "pump", 1000), 0);
    char cause[16];
    relay_hw_reset_cause(&B.hw, cause, sizeof(cause));
    CHECK_STR(cause, "");
    CHECK_EQ(relay_wdt_start(&B, 100), RELAY_OK);
    relay_tick(&B, T(0));
    relay_tick(&B, T(100 * MS));    // exactly the timeout: still fed in time
    CHECK_EQ(B.hw.resets, 0);
    CHECK_EQ(B.m.wdt_feeds, 2);
    relay_checkin(&B, 0, T(100 * MS));
    relay_tick(&B, T(200 * MS + 1));    // ticks stopped for longer than the timeout
    CHECK_EQ(B.hw.resets, 1);
    relay_hw_reset_cause(&B.hw, cause, sizeof(cause));
    CHECK_STR(cause, "watchdog");
    CHECK(relay_stalled_name(&B) == NULL);
    CHECK_EQ(B.wdt_running, 0);
    CHECK_EQ(B.m.wdt_feeds, 2);
    CHECK_EQ(B.hw.wdt_enabled, 0);
}

static void test_watchdog_late_start(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_slot(&B, "pump", 10), 0);
    // before the watchdog starts a slot is not supervised
    relay_tick(&B, T(0));
    relay_tick(&B, T(50 * MS));
    CHECK(relay_stalled_name(&B) == NULL);
    CHECK_EQ(B.m.wdt_feeds, 0);
    // starting it gives every slot a fresh window
    CHECK_EQ(relay_wdt_start(&B, 100), RELAY_OK);
    relay_tick(&B, T(60 * MS));
    CHECK(relay_stalled_name(&B) == NULL);
    CHECK_EQ(B.m.wdt_feeds, 1);
    relay_tick(&B, T(70 * MS + 1));
    CHECK_STR(relay_stalled_name(&B), "pump");
}

static void test_slot_errors(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_slot(&B, "", 100), RELAY_ERR_SLOT_NAME);
    CHECK_EQ(relay_add_slot(&B, NULL, 100), RELAY_ERR_SLOT_NAME);
    CHECK_EQ(relay_add_slot(&B, "abcdefghijklmnop", 100), RELAY_ERR_SLOT_NAME);   // 16
    CHECK_EQ(relay_add_slot(&B, "a", 0), RELAY_ERR_SLOT_WINDOW);
    CHECK_EQ(relay_add_slot(&B, "a", 3600001), RELAY_ERR_SLOT_WINDOW);
    CHECK_EQ(relay_add_slot(&B, "a", 3600000), 0);
    CHECK_EQ(relay_add_slot(&B, "a", 100), RELAY_ERR_SLOT_DUP);
    CHECK_EQ(relay_add_slot(&B, "ab", 100), 1);
    char name[2] = {0, 0};
    for (int k = 2; k < RELAY_SLOT_MAX; k++) {
        name[0] = (char)('c' + k);
        CHECK_EQ(relay_add_slot(&B, name, 100), k);
    }
    CHECK_EQ(relay_add_slot(&B, "z", 100), RELAY_ERR_SLOT_COUNT);
}

// ---- error codes name the argument and the limit

#define CHECK_ERR(call, code, v, lo_, hi_) do { \
        CHECK_EQ((call), (code)); \
        CHECK_EQ(B.err.value, (v)); \
        CHECK_EQ(B.err.lo, (lo_)); \
        CHECK_EQ(B.err.hi, (hi_)); \
} while (0)

static void test_error_details_setup(void) {
    uint8_t pins[33] = {3, 70, 5};
    CHECK_ERR(bank_init_cold(&B, pins, 33, 0, 0, 1000, 0), RELAY_ERR_RELAY_COUNT, 33, 1, RELAY_MAX);
    CHECK_ERR(bank_init_cold(&B, pins, 3, 0, 0, 1000, 0), RELAY_ERR_PIN, 70, 0, RELAY_HW_NUM_PINS - 1);
    // checked in order: a bad tick period is named before a bad mask
    CHECK_ERR(bank_init_cold(&B, PINS4, 4, 1u << 9, 0, 99, 0), RELAY_ERR_TICK, 99, RELAY_TICK_MIN_US, 0x7fffffff);
    CHECK_ERR(bank_init_cold(&B, PINS4, 4, 0, 0x81u, 100, 0), RELAY_ERR_MASK, 7, 0, 4);
    CHECK_EQ(B.err.mask, 0x81u);
    CHECK_EQ(init4(0, 0x3), RELAY_OK);
    CHECK_ERR(relay_set_min_interval(&B, 0, -1), RELAY_ERR_MIN_INTERVAL, -1, 0, RELAY_MIN_INTERVAL_MAX_MS);
    CHECK_EQ(relay_set_min_interval(&B, 0, RELAY_MIN_INTERVAL_MAX_MS), RELAY_OK);
    CHECK_ERR(relay_set_min_interval(&B, 5, 1), RELAY_ERR_RELAY, 5, 0, 3);
    // interlock: mask, dead time, size, membership, count, relays on
    CHECK_ERR(relay_add_interlock(&B, 0x11, -5), RELAY_ERR_MASK, 4, 0, 4);
    CHECK_ERR(relay_add_interlock(&B, 0x1, RELAY_DEAD_TIME_MAX_MS + 1), RELAY_ERR_DEAD_TIME,
        RELAY_DEAD_TIME_MAX_MS + 1, 0, RELAY_DEAD_TIME_MAX_MS);
    CHECK_ERR(relay_add_interlock(&B, 0x4, RELAY_DEAD_TIME_MAX_MS), RELAY_ERR_GROUP_SIZE, 1, 2, RELAY_MAX);
    CHECK_EQ(B.err.mask, 0x4u);
    CHECK_EQ(relay_add_interlock(&B, 0x3, 10), RELAY_ERR_GROUP_ON);
    CHECK_EQ(B.err.value, 2);
    CHECK_EQ(B.err.mask, 0x3u);
    CHECK_EQ(relay_add_interlock(&B, 0x6, 10), 0);
    CHECK_EQ(relay_add_interlock(&B, 0xc, 10), RELAY_ERR_GROUP_MEMBER);
    CHECK_EQ(B.err.value, 2);
    CHECK_EQ(B.err.aux, 0);
}

static void test_error_details_inputs_slots(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_ERR(relay_input_value(&B, 0), RELAY_ERR_NO_INPUTS, 0, 0, -1);
    CHECK_ERR(relay_checkin(&B, 3, T(0)), RELAY_ERR_NO_SLOTS, 3, 0, -1);
    // input: pin, debounce, pull, toggles, count, duplicate pin
    CHECK_ERR(relay_add_input(&B, 10, -1, true, 7, 9), RELAY_ERR_DEBOUNCE, -1, 0, RELAY_DEBOUNCE_MAX_MS);
    CHECK_ERR(relay_add_input(&B, 10, RELAY_DEBOUNCE_MAX_MS, true, 7, 9), RELAY_ERR_PULL, 7, 0, 2);
    CHECK_ERR(relay_add_input(&B, 10, 0, true, 1, 9), RELAY_ERR_TOGGLES, 9, -1, 3);
    CHECK_ERR(relay_add_input(&B, 10, 0, true, 1, 3), RELAY_ERR_DUP_PIN, 10, 0, RELAY_HW_NUM_PINS - 1);
    CHECK_EQ(relay_add_input(&B, 20, RELAY_DEBOUNCE_MAX_MS, true, 1, 3), 0);
    CHECK_ERR(relay_input_value(&B, 1), RELAY_ERR_INPUT, 1, 0, 0);
    uint32_t n = 99;
    CHECK_ERR(relay_input_edges(&B, 2, &n), RELAY_ERR_INPUT, 2, 0, 0);
    CHECK_EQ(n, 99);
    CHECK_EQ(relay_input_edges(&B, 0, &n), RELAY_OK);
    CHECK_EQ(n, 0);
    CHECK_ERR(relay_switches(&B, -3, &n), RELAY_ERR_RELAY, -3, 0, 3);
    CHECK_EQ(relay_set(&B, 1, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_switches(&B, 1, &n), RELAY_OK);
    CHECK_EQ(n, 1);
    // slot: name length, window, count, duplicate name
    CHECK_ERR(relay_add_slot(&B, "abcdefghijklmnop", 0), RELAY_ERR_SLOT_NAME, 16, 1, RELAY_SLOT_NAME_LEN - 1);
    CHECK_ERR(relay_add_slot(&B, "a", -1), RELAY_ERR_SLOT_WINDOW, -1, 1, RELAY_SLOT_WINDOW_MAX_MS);
    CHECK_EQ(relay_add_slot(&B, "a", RELAY_SLOT_WINDOW_MAX_MS), 0);
    CHECK_ERR(relay_checkin(&B, 1, T(0)), RELAY_ERR_SLOT, 1, 0, 0);
    CHECK_ERR(relay_wdt_start(&B, -1), RELAY_ERR_WDT_TIMEOUT, -1, 1, RELAY_WDT_MAX_MS);
    CHECK_ERR(relay_check_pin(&B, RELAY_HW_NUM_PINS), RELAY_ERR_PIN, RELAY_HW_NUM_PINS, 0, RELAY_HW_NUM_PINS - 1);
    CHECK_EQ(relay_check_pin(&B, 0), RELAY_OK);
}

static void test_error_details_pulse_autotick(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_ERR(relay_pulse(&B, 0, RELAY_PULSE_MAX_MS + 1, T(0)), RELAY_ERR_PULSE,
        RELAY_PULSE_MAX_MS + 1, 1, RELAY_PULSE_MAX_MS);
    CHECK_ERR(relay_pulse(&B, 0, -7, T(0)), RELAY_ERR_PULSE, -7, 1, RELAY_PULSE_MAX_MS);
    CHECK_EQ(relay_set_min_interval(&B, 2, 30), RELAY_OK);
    CHECK_ERR(relay_pulse(&B, 2, 29, T(0)), RELAY_ERR_PULSE_SHORT, 29, 30, RELAY_PULSE_MAX_MS);
    CHECK_EQ(B.err.aux, 2);
    CHECK_EQ(B.state, 0);
    CHECK_EQ(relay_pulse(&B, 0, RELAY_PULSE_MAX_MS, T(0)), RELAY_OK);
    CHECK_EQ(B.relays[0].pulse_left_us, (uint64_t)RELAY_PULSE_MAX_MS * 1000u);
    // the simulated board has no hardware timer: checked, then "not running"
    CHECK_ERR(relay_autotick_start(&B, RELAY_AUTOTICK_MIN_US - 1), RELAY_ERR_AUTOTICK,
        RELAY_AUTOTICK_MIN_US - 1, RELAY_AUTOTICK_MIN_US, RELAY_AUTOTICK_MAX_US);
    CHECK_ERR(relay_autotick_start(&B, RELAY_AUTOTICK_MAX_US + 1), RELAY_ERR_AUTOTICK,
        RELAY_AUTOTICK_MAX_US + 1, RELAY_AUTOTICK_MIN_US, RELAY_AUTOTICK_MAX_US);
    CHECK_EQ(relay_autotick_start(&B, 1000), 0);
    CHECK_EQ(B.m.ticks, 0);
}

// ---- state kept in masks

static void test_switch_counts(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    for (uint32_t k = 0; k < 1000; k++) {
        CHECK_EQ(relay_toggle(&B, 0, T(0)), RELAY_OK);
        CHECK_EQ(relay_write(&B, 0x6, (k & 1u) ? 0 : 0x6, T(0)), RELAY_OK);
    }
    CHECK_EQ(relay_switch_count(&B, 0), 1000);
    CHECK_EQ(relay_switch_count(&B, 1), 1000);
    CHECK_EQ(relay_switch_count(&B, 2), 1000);
    CHECK_EQ(relay_switch_count(&B, 3), 0);
    CHECK_EQ(B.m.writes, 2000);
}

static void test_metrics_values(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_input(&B, 20, 0, true, RELAY_PULL_UP, -1), 0);
    CHECK_EQ(relay_set(&B, 2, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_set_min_interval(&B, 2, 10), RELAY_OK);
    CHECK_EQ(relay_set(&B, 2, false, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 2, true, T(1)), RELAY_REJECTED_INTERVAL);
    relay_tick(&B, T(0));
    relay_hw_sim_drive(&B.hw, 20, 0);
    relay_tick(&B, T(1000));
    uint32_t v[RELAY_METRIC_COUNT + 5];
    for (unsigned k = 0; k < RELAY_METRIC_COUNT + 5; k++) {
        v[k] = 0xdeadu;
    }
    CHECK_EQ(relay_metrics_values(&B, v, RELAY_METRIC_COUNT + 4), RELAY_METRIC_COUNT + 5);
    CHECK_EQ(v[0], 0xdeadu);                        // too small: nothing written
    CHECK_EQ(relay_metrics_values(&B, v, RELAY_METRIC_COUNT + 5), RELAY_METRIC_COUNT + 5);
    CHECK_EQ(v[RELAY_METRIC_TICKS], 2);
    CHECK_EQ(v[RELAY_METRIC_REJECTED_INTERVAL], 1);
    CHECK_EQ(v[RELAY_METRIC_INPUT_EDGES], 1);
    CHECK_EQ(v[RELAY_METRIC_WRITES], 2);
    CHECK_EQ(v[RELAY_METRIC_COUNT + 2], 2);        // relay 2 switched twice
    CHECK_EQ(v[RELAY_METRIC_COUNT + 0], 0);
    CHECK_EQ(v[RELAY_METRIC_COUNT + 4], 1);        // input 0: one edge
}

static void test_masks_follow_timers(void) {
    CHECK_EQ(init4(0b0100, 0), RELAY_OK);
    CHECK_EQ(B.al_mask, 0b0100u);
    CHECK_EQ(B.clear, 0xfu);                        // booting is not a switch
    CHECK(!relay_needs_time(&B, 0xf));
    CHECK_EQ(relay_set_min_interval(&B, 1, 10), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0b1001, 5), 0);
    CHECK_EQ(B.timed, 0b0010u);
    CHECK_EQ(B.grouped, 0b1001u);
    CHECK(relay_needs_time(&B, 0b0010));
    CHECK(relay_needs_time(&B, 0b1000));
    CHECK(!relay_needs_time(&B, 0b0100));
    CHECK_EQ(relay_tick(&B, T(0)), 0);
    CHECK_EQ(relay_set(&B, 1, true, T(0)), RELAY_OK);
    CHECK_EQ(B.clear & 0b0010u, 0);                 // its interval runs
    CHECK_EQ(relay_pulse(&B, 2, 3, T(0)), RELAY_OK);
    CHECK_EQ(B.pulsing, 0b0100u);
    CHECK_EQ(relay_hw_sim_level(&B.hw, 12), 0);     // active low: on is low
    CHECK_EQ(relay_tick(&B, T(3 * MS)), 1);         // the pulse ends
    CHECK_EQ(B.pulsing, 0);
    CHECK_EQ(relay_hw_sim_level(&B.hw, 12), 1);
    CHECK_EQ(relay_tick(&B, T(10 * MS)), 0);
    CHECK_EQ(B.clear & 0b0010u, 0b0010u);           // the interval has run
    CHECK_EQ(relay_set(&B, 0, true, T(10 * MS)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 3, true, T(10 * MS)), RELAY_DEFERRED);
    CHECK_EQ(B.groups_busy, 1);
    CHECK_EQ(relay_tick(&B, T(15 * MS)), 1);        // dead time over: relay 3 on
    CHECK_EQ(B.state, 0b1010u);
    CHECK_EQ(B.groups_busy, 0);
    relay_set_min_interval(&B, 1, 0);
    CHECK_EQ(B.timed, 0);
}

static void test_inputs_settle_only_when_moved(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    CHECK_EQ(relay_add_input(&B, 20, 10, true, RELAY_PULL_UP, -1), 0);
    CHECK_EQ(relay_add_input(&B, 40, 10, false, RELAY_PULL_DOWN, -1), 1);
    relay_tick(&B, T(0));
    CHECK_EQ(B.settling, 0);
    relay_hw_sim_drive(&B.hw, 40, 1);
    relay_tick(&B, T(1 * MS));
    CHECK_EQ(B.settling, 0b10u);                    // input 1 moved: settling
    relay_tick(&B, T(6 * MS));
    relay_hw_sim_drive(&B.hw, 40, -1);              // a bounce back before 10 ms
    relay_tick(&B, T(7 * MS));
    CHECK_EQ(B.settling, 0);
    CHECK_EQ(relay_input_value(&B, 1), 0);
    relay_hw_sim_drive(&B.hw, 40, 1);
    relay_tick(&B, T(8 * MS));
    relay_tick(&B, T(17 * MS));
    CHECK_EQ(relay_input_value(&B, 1), 0);          // 9 ms seen
    relay_tick(&B, T(18 * MS));
    CHECK_EQ(relay_input_value(&B, 1), 1);          // 10 ms seen: counts
    CHECK_EQ(B.settling, 0);
    CHECK_EQ(relay_input_value(&B, 0), 0);
}

static void test_plain_paths(void) {
    // the inline set()/write() take only relays with no interval and no group,
    // and do what relay_set()/relay_write() would
    CHECK_EQ(init4(0b0010, 0), RELAY_OK);
    CHECK(relay_set_plain(&B, 1, true));
    CHECK_EQ(B.state, 0b0010u);
    CHECK_EQ(relay_hw_sim_level(&B.hw, 11), 0);     // active low
    CHECK_EQ(relay_switch_count(&B, 1), 1);
    CHECK(relay_set_plain(&B, 1, true));            // no change: no write
    CHECK_EQ(B.m.writes, 1);
    CHECK(!relay_set_plain(&B, 4, true));           // bad index: relay_set() names it
    CHECK(!relay_set_plain(&B, -1, true));
    CHECK(relay_write_plain(&B, 0b1101, 0b0101));
    CHECK_EQ(B.state, 0b0111u);
    CHECK_EQ(B.hw.writes, 2);                       // one register write for the change
    CHECK(!relay_write_plain(&B, 0b10000, 0));      // beyond the bank
    CHECK_EQ(relay_pulse(&B, 3, 50, T(0)), RELAY_OK);
    CHECK(relay_set_plain(&B, 3, true));            // set() ends the pulse
    CHECK_EQ(B.pulsing, 0);
    CHECK_EQ(relay_set_min_interval(&B, 0, 10), RELAY_OK);
    CHECK(!relay_set_plain(&B, 0, false));          // timed: needs relay_set()
    CHECK(!relay_write_plain(&B, 0b0001, 0));
    CHECK_EQ(relay_add_interlock(&B, 0b0110, 0), RELAY_ERR_GROUP_ON);
    CHECK_EQ(relay_set(&B, 2, false, T(0)), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0b0110, 0), 0);
    CHECK(!relay_set_plain(&B, 2, true));           // grouped: needs relay_set()
    CHECK(!relay_write_plain(&B, 0b0100, 0b0100));
    CHECK_EQ(B.state, 0b1011u);
}

// ---- ticks, big banks, end

static void test_late_ticks(void) {
    CHECK_EQ(init4(0, 0), RELAY_OK);
    relay_tick(&B, T(0));
    relay_tick(&B, T(1000));
    relay_tick(&B, T(3000));    // exactly two periods: on time
    CHECK_EQ(B.m.late_ticks, 0);
    relay_tick(&B, T(5001));
    CHECK_EQ(B.m.late_ticks, 1);
    relay_tick(&B, T(4000));    // backwards: counts as no time
    CHECK_EQ(B.m.late_ticks, 1);
    CHECK_EQ(B.m.ticks, 5);
    CHECK_EQ(B.last_tick, 4000);
}

static void test_32_relays(void) {
    uint8_t pins[32];
    for (unsigned i = 0; i < 32; i++) {
        pins[i] = (uint8_t)(63 - i);    // high pins exercise the upper pin word
    }
    CHECK_EQ(bank_init_cold(&B, pins, 32, 0xaaaaaaaau, 0x0000ffffu, 1000, 0), RELAY_OK);
    for (unsigned i = 0; i < 32; i++) {
        unsigned on = i < 16;
        unsigned al = i & 1u;
        CHECK_EQ(relay_hw_sim_level(&B.hw, 63 - i), on ^ al);
    }
    CHECK_EQ(B.hw.writes, 0);
    CHECK_EQ(relay_write(&B, 0xffffffffu, 0xffffffffu, T(0)), RELAY_OK);
    CHECK_EQ(B.hw.writes, 1);
    CHECK_EQ(B.state, 0xffffffffu);
    for (unsigned i = 0; i < 32; i++) {
        CHECK_EQ(relay_hw_sim_level(&B.hw, 63 - i), 1u ^ (i & 1u));
        CHECK_EQ(relay_switch_count(&B, i), i < 16 ? 0 : 1);
    }
    CHECK_EQ(relay_add_interlock(&B, 0xc0000000u, 10), RELAY_ERR_GROUP_ON);
    CHECK_EQ(relay_toggle(&B, 31, T(10)), RELAY_OK);
    CHECK_EQ(relay_get(&B, 31), 0);
    CHECK_EQ(relay_hw_sim_level(&B.hw, 32), 1);    // relay 31: active low, off
    CHECK_EQ(relay_set(&B, 32, true, T(0)), RELAY_ERR_RELAY);
    CHECK_EQ(relay_write(&B, 0xffffffffu, 0, T(20)), RELAY_OK);
    CHECK_EQ(relay_add_interlock(&B, 0xc0000000u, 10), 0);
    CHECK_EQ(relay_set(&B, 30, true, T(30)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 31, true, T(40)), RELAY_DEFERRED);
    CHECK_EQ(B.state, 0);
}

static void test_deinit(void) {
    CHECK_EQ(init4(0x1, 0x3), RELAY_OK);
    CHECK_EQ(relay_add_input(&B, 20, 0, true, RELAY_PULL_UP, 0), 0);
    CHECK_EQ(relay_add_interlock(&B, 0xc, 50), 0);
    relay_tick(&B, T(0));
    CHECK_EQ(relay_set(&B, 2, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 3, true, T(0)), RELAY_DEFERRED);
    uint32_t writes = B.hw.writes;
    relay_bank_deinit(&B);
    CHECK_EQ(B.hw.writes, writes + 1);   // all relays off in one write
    CHECK_EQ(B.state, 0);
    CHECK_EQ(lvl(10), 1);   // active low: off is high
    CHECK_EQ(lvl(11), 0);
    CHECK_EQ(lvl(12), 0);
    CHECK_EQ(B.hw.out_mask, 0);
    CHECK_EQ(B.hw.in_mask, 0);
    CHECK_EQ(B.groups[0].pending, -1);
    // a late tick does nothing: no pending turn-on, no input toggles
    relay_hw_sim_drive(&B.hw, 20, 0);
    CHECK_EQ(relay_tick(&B, T(100 * MS)), 0);
    CHECK_EQ(B.state, 0);
}

static void test_sim_backend(void) {
    relay_hw_t hw;
    memset(&hw, 0, sizeof(hw));
    relay_hw_init_outputs(&hw, bit64(1) | bit64(40), bit64(40));
    CHECK_EQ(relay_hw_sim_level(&hw, 1), 0);
    CHECK_EQ(relay_hw_sim_level(&hw, 40), 1);
    relay_hw_init_input(&hw, 2, RELAY_PULL_UP);
    relay_hw_init_input(&hw, 3, RELAY_PULL_DOWN);
    CHECK_EQ(relay_hw_read(&hw), bit64(2) | bit64(40));
    relay_hw_sim_drive(&hw, 2, 0);
    relay_hw_sim_drive(&hw, 3, 1);
    CHECK_EQ(relay_hw_read(&hw), bit64(3) | bit64(40));
    relay_hw_sim_drive(&hw, 3, -1);
    CHECK_EQ(relay_hw_sim_level(&hw, 3), 0);
    // a write touches only its mask and only outputs
    relay_hw_write(&hw, bit64(1) | bit64(2), bit64(1) | bit64(2));
    CHECK_EQ(relay_hw_read(&hw), bit64(1) | bit64(40));
    CHECK_EQ(hw.writes, 1);
    relay_hw_sim_drive(&hw, 64, 1);     // out of range: ignored
    CHECK_EQ(relay_hw_sim_level(&hw, 64), 0);
    CHECK_EQ(relay_hw_lock(), 0);
    relay_hw_unlock(0);
    // watchdog: fires only when the time since the last feed exceeds the timeout
    CHECK_EQ(relay_hw_wdt_elapse(&hw, 1000000), 0);     // not started
    relay_hw_wdt_start(&hw, 10);
    CHECK_EQ(relay_hw_wdt_elapse(&hw, 6000), 0);
    relay_hw_wdt_feed(&hw);
    CHECK_EQ(relay_hw_wdt_elapse(&hw, 6000), 0);
    CHECK_EQ(relay_hw_wdt_elapse(&hw, 4000), 0);
    CHECK_EQ(relay_hw_wdt_elapse(&hw, 1), 1);
    CHECK_EQ(hw.resets, 1);
    CHECK_EQ(hw.wdt_enabled, 0);
    relay_hw_wdt_reset(&hw, "a-very-long-slot-name");
    CHECK_EQ(hw.resets, 2);
    char cause[32];
    relay_hw_reset_cause(&hw, cause, sizeof(cause));
    CHECK_STR(cause, "a-very-long-slo");
    relay_hw_reset_cause(&hw, cause, 0);    // no room: untouched
    CHECK_STR(cause, "a-very-long-slo");
    relay_hw_release(&hw);
    CHECK_EQ(hw.out_mask, 0);
    CHECK_EQ(relay_hw_sim_level(&hw, 40), 1);   // keeps its last level
}

// ---- state kept across a reset (hw_keep.h)

// A watchdog or soft reset: the bank is gone without deinit, the scratch words stay.
static int init4_warm(uint32_t active_low, uint32_t on_at_boot) {
    return relay_bank_init(&B, PINS4, 4, active_low, on_at_boot, 1000, 0);
}

static void test_keep_cold_start_uses_on_at_boot(void) {
    CHECK_EQ(init4(0, 0x2), RELAY_OK);
    CHECK_EQ(B.hw.restored_valid, 0);
    CHECK_EQ(B.state, 0x2);
}

static void test_keep_warm_reset_applies_kept_state(void) {
    CHECK_EQ(init4(0x8, 0x1), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, false, T(0)), RELAY_OK);
    CHECK_EQ(relay_write(&B, 0xc, 0xc, T(0)), RELAY_OK);
    CHECK_EQ(relay_toggle(&B, 1, T(0)), RELAY_OK);
    CHECK_EQ(init4_warm(0x8, 0x1), RELAY_OK);   // not on_at_boot: the kept state
    CHECK_EQ(B.hw.restored_valid, 1);
    CHECK_EQ(B.hw.restored, 0xe);
    CHECK_EQ(B.state, 0xe);
    CHECK_EQ(lvl(10), 0);
    CHECK_EQ(lvl(11), 1);
    CHECK_EQ(lvl(12), 1);
    CHECK_EQ(lvl(13), 0);   // active low: on is low
    CHECK_EQ(B.hw.ever_high & bit64(10), 0);   // relay 0 (on_at_boot) never driven on at creation
}

static void test_keep_pulse_comes_back_off(void) {
    CHECK_EQ(init4(0, 0x0), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 1, 500, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 2, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 2, 500, T(0)), RELAY_OK);  // on already: now a pulse
    CHECK_EQ(relay_hw_sim_scratch[1], 0x6);
    CHECK_EQ(init4_warm(0, 0x0), RELAY_OK);
    CHECK_EQ(B.state, 0x1);     // the time left is unknown: pulsing relays come back off
    CHECK_EQ(B.hw.restored, 0x1);
}

static void test_keep_pulse_ended_by_set_or_write(void) {
    CHECK_EQ(init4(0, 0x0), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 0, 500, T(0)), RELAY_OK);
    CHECK_EQ(relay_pulse(&B, 1, 500, T(0)), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);   // no switch: the pulse ends
    CHECK_EQ(relay_write(&B, 0x2, 0x2, T(0)), RELAY_OK);  // no switch: the pulse ends
    CHECK_EQ(init4_warm(0, 0x0), RELAY_OK);
    CHECK_EQ(B.state, 0x3);
}

static void test_keep_tick_changes_are_kept(void) {
    CHECK_EQ(init4(0, 0x0), RELAY_OK);
    relay_tick(&B, T(0));
    CHECK_EQ(relay_pulse(&B, 0, 5, T(0)), RELAY_OK);
    CHECK_EQ(relay_add_input(&B, 20, 0, false, RELAY_PULL_NONE, 3), 0);
    relay_hw_sim_drive(&B.hw, 20, 1);
    relay_tick(&B, T(10 * MS));     // pulse over, button toggled relay 3 on
    CHECK_EQ(B.state, 0x8);
    CHECK_EQ(init4_warm(0, 0x0), RELAY_OK);
    CHECK_EQ(B.state, 0x8);
}

static void test_keep_other_layout_or_garbage_boots_cold(void) {
    CHECK_EQ(init4(0, 0x0), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    CHECK_EQ(init4_warm(0x1, 0x0), RELAY_OK);   // another polarity: another layout
    CHECK_EQ(B.hw.restored_valid, 0);
    CHECK_EQ(B.state, 0);
    static const uint8_t pins3[3] = {10, 11, 12};
    CHECK_EQ(relay_set(&B, 1, true, T(0)), RELAY_OK);
    CHECK_EQ(relay_bank_init(&B, pins3, 3, 0x1, 0x0, 1000, 0), RELAY_OK);
    CHECK_EQ(B.hw.restored_valid, 0);
    CHECK_EQ(relay_set(&B, 2, true, T(0)), RELAY_OK);
    relay_hw_sim_scratch[0] ^= 0x1;     // one bit flipped: the check fails
    CHECK_EQ(relay_bank_init(&B, pins3, 3, 0x1, 0x2, 1000, 0), RELAY_OK);
    CHECK_EQ(B.hw.restored_valid, 0);
    CHECK_EQ(B.state, 0x2);
}

static void test_keep_deinit_forgets(void) {
    CHECK_EQ(init4(0, 0x0), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, true, T(0)), RELAY_OK);
    relay_bank_deinit(&B);
    CHECK_EQ(init4_warm(0, 0x4), RELAY_OK);
    CHECK_EQ(B.hw.restored_valid, 0);
    CHECK_EQ(B.state, 0x4);
}

static void test_keep_restored_zero_is_not_cold(void) {
    CHECK_EQ(init4(0, 0x1), RELAY_OK);
    CHECK_EQ(relay_set(&B, 0, false, T(0)), RELAY_OK);
    CHECK_EQ(init4_warm(0, 0x1), RELAY_OK);
    CHECK_EQ(B.hw.restored_valid, 1);
    CHECK_EQ(B.state, 0);   // off as it was, not on_at_boot
}

static const unit_test_t tests[] = {
    UNIT_TEST(test_init_errors),
    UNIT_TEST(test_keep_cold_start_uses_on_at_boot),
    UNIT_TEST(test_keep_warm_reset_applies_kept_state),
    UNIT_TEST(test_keep_pulse_comes_back_off),
    UNIT_TEST(test_keep_pulse_ended_by_set_or_write),
    UNIT_TEST(test_keep_tick_changes_are_kept),
    UNIT_TEST(test_keep_other_layout_or_garbage_boots_cold),
    UNIT_TEST(test_keep_deinit_forgets),
    UNIT_TEST(test_keep_restored_zero_is_not_cold),
    UNIT_TEST(test_status_names),
    UNIT_TEST(test_power_on_active_high),
    UNIT_TEST(test_power_on_active_low),
    UNIT_TEST(test_set_get_toggle),
    UNIT_TEST(test_write_atomic),
    UNIT_TEST(test_write_all_or_nothing_interval),
    UNIT_TEST(test_min_interval),
    UNIT_TEST(test_min_interval_tick_clears),
    UNIT_TEST(test_min_interval_longer_than_half_ring),
    UNIT_TEST(test_time_wrap_set_interval),
    UNIT_TEST(test_interlock_changeover),
    UNIT_TEST(test_interlock_changeover_interval),
    UNIT_TEST(test_interlock_dead_time),
    UNIT_TEST(test_interlock_zero_dead_time),
    UNIT_TEST(test_interlock_pending_replaced_cancelled),
    UNIT_TEST(test_interlock_write_rejected),
    UNIT_TEST(test_interlock_errors),
    UNIT_TEST(test_pulse_expiry_exact),
    UNIT_TEST(test_pulse_restart_and_cancel),
    UNIT_TEST(test_pulse_errors),
    UNIT_TEST(test_pulse_longer_than_ring),
    UNIT_TEST(test_pulse_deferred),
    UNIT_TEST(test_first_tick_sets_time_base),
    UNIT_TEST(test_debounce),
    UNIT_TEST(test_input_active_high_no_debounce),
    UNIT_TEST(test_input_toggle_interlock),
    UNIT_TEST(test_input_errors),
    UNIT_TEST(test_watchdog_feeds),
    UNIT_TEST(test_watchdog_stall),
    UNIT_TEST(test_watchdog_long_slot_name),
    UNIT_TEST(test_watchdog_hw_timeout),
    UNIT_TEST(test_watchdog_late_start),
    UNIT_TEST(test_slot_errors),
    UNIT_TEST(test_error_details_setup),
    UNIT_TEST(test_error_details_inputs_slots),
    UNIT_TEST(test_error_details_pulse_autotick),
    UNIT_TEST(test_switch_counts),
    UNIT_TEST(test_metrics_values),
    UNIT_TEST(test_masks_follow_timers),
    UNIT_TEST(test_inputs_settle_only_when_moved),
    UNIT_TEST(test_plain_paths),
    UNIT_TEST(test_late_ticks),
    UNIT_TEST(test_32_relays),
    UNIT_TEST(test_deinit),
    UNIT_TEST(test_sim_backend),
};

int main(void) {
    return unit_main(tests, sizeof(tests) / sizeof(tests[0]));
}
