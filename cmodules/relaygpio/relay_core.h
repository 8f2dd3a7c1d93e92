// Relay core: switching, atomic multi-relay writes, minimum switch interval,
// interlock groups with dead time, pulse timers, debounced inputs, a watchdog
// supervisor and metrics counters. Plain C99: no MicroPython types, no clock
// of its own (time is passed in), hardware only through relay_hw.h.
#ifndef RELAY_CORE_H
#define RELAY_CORE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "relay_hw.h"

#define RELAY_MAX (32)
#define RELAY_INPUT_MAX (16)
#define RELAY_GROUP_MAX (8)
#define RELAY_SLOT_MAX (8)
#define RELAY_SLOT_NAME_LEN (16)           // including the terminating NUL
#define RELAY_WDT_MAX_MS (8388)            // the RP2040 watchdog's limit

// Time is MicroPython's ticks_us: microseconds modulo 2**30. All arithmetic on
// it goes through relay_time_diff so it survives the wrap (about 17.9 min).
#define RELAY_TIME_MASK (0x3fffffffu)
typedef uint32_t relay_time_t;

static inline int32_t relay_time_diff(relay_time_t end, relay_time_t start) {
    // signed difference in the 30-bit ring, as time.ticks_diff()
    uint32_t d = (end - start) & RELAY_TIME_MASK;
    return (d & 0x20000000u) ? (int32_t)d - 0x40000000 : (int32_t)d;
}

// Result of a switching request (>= 0) or an argument error (< 0).
typedef enum {
    RELAY_OK = 0,
    RELAY_DEFERRED = 1,             // interlock change-over: turns on after the dead time
    RELAY_REJECTED_INTERVAL = 2,    // inside the relay's minimum switch interval
    RELAY_REJECTED_INTERLOCK = 3,   // an atomic write that would break an interlock
    RELAY_REASON_COUNT = 4,

    RELAY_ERR_INDEX = -1,           // no relay / input / slot / group with that index
    RELAY_ERR_PIN = -2,             // pin outside 0 .. RELAY_HW_NUM_PINS-1
    RELAY_ERR_DUP_PIN = -3,         // pin already used by this bank
    RELAY_ERR_COUNT = -4,           // too many relays / inputs / groups / slots, or none
    RELAY_ERR_DURATION = -5,        // duration out of range (see each function)
    RELAY_ERR_GROUP = -6,           // relay already in another group, or a group of < 2
    RELAY_ERR_NAME = -7,            // slot name empty, too long or used twice
    RELAY_ERR_MASK = -8,            // mask names a relay the bank does not have
    RELAY_ERR_STATE = -9,           // not allowed now (e.g. watchdog already started)
    RELAY_ERR_PULL = -10,           // pull not one of RELAY_PULL_*
} relay_status_t;

typedef struct {
    uint8_t pin;
    uint8_t active_low;
    int8_t group;                   // interlock group index or -1
    uint8_t interval_clear;         // min interval known to have elapsed (set by tick)
    uint32_t min_interval_us;
    relay_time_t last_switch;
    uint32_t interval_left_us;      // min interval still to run, as of the last tick
    uint64_t pulse_left_us;         // 0 = no pulse running
    uint32_t switches;
} relay_t;

typedef struct {
    uint32_t members;               // relay mask
    uint32_t dead_us;
    uint32_t dead_left_us;          // dead time still to run since a member turned off
    int8_t pending;                 // relay waiting to turn on, or -1
    uint8_t pending_pulse;          // pending turn-on is a pulse
    uint64_t pending_pulse_us;
} relay_group_t;

typedef struct {
    uint8_t pin;
    uint8_t active_low;
    uint8_t pull;                   // RELAY_PULL_*
    int8_t toggles;                 // relay toggled on each press, or -1
    uint8_t candidate;              // last sampled logical level
    uint8_t stable;                 // debounced logical level
    uint32_t debounce_us;
    uint32_t candidate_for_us;      // how long candidate has been seen unchanged
    uint32_t edges;
} relay_input_t;

typedef struct {
    char name[RELAY_SLOT_NAME_LEN];
    uint32_t window_us;
    uint32_t since_us;              // time since the last check-in, as of the last tick
    uint32_t lag_us;                // check-in came this long after the last tick
} relay_slot_t;

typedef struct {
    uint32_t ticks;
    uint32_t late_ticks;            // ticks that came more than 2 periods after the last
    uint32_t rejected[RELAY_REASON_COUNT]; // indexed by relay_status_t (OK/DEFERRED stay 0)
    uint32_t deferred;
    uint32_t pulses_expired;
    uint32_t input_edges;
    uint32_t wdt_feeds;
    uint32_t writes;                // output register writes
} relay_metrics_t;

typedef struct {
    relay_hw_t hw;
    uint8_t n_relays, n_inputs, n_groups, n_slots;
    uint32_t state;                 // logical relay states, bit i = relay i on
    uint32_t tick_period_us;
    relay_time_t last_tick;
    uint8_t ticked;                 // last_tick is valid
    uint8_t wdt_running;
    uint8_t wdt_started;            // relay_wdt_start succeeded once (it cannot stop)
    int8_t stalled;                 // first slot found stalled, or -1
    relay_t relays[RELAY_MAX];
    relay_group_t groups[RELAY_GROUP_MAX];
    relay_input_t inputs[RELAY_INPUT_MAX];
    relay_slot_t slots[RELAY_SLOT_MAX];
    relay_metrics_t m;
} relay_bank_t;

// Set-up. relay_bank_init drives every pin to its power-on level before it
// becomes an output, so no relay glitches on. active_low and on_at_boot are
// masks by relay index.
int relay_bank_init(relay_bank_t *b, const uint8_t *pins, size_t n,
    uint32_t active_low, uint32_t on_at_boot, uint32_t tick_period_us, relay_time_t now);
void relay_bank_deinit(relay_bank_t *b);  // all relays off, pins released
int relay_set_min_interval(relay_bank_t *b, int relay, uint32_t ms);
// Relays in mask may never be on together; turning one on waits dead_ms after
// the last member turned off. Returns the group index.
int relay_add_interlock(relay_bank_t *b, uint32_t mask, uint32_t dead_ms);
// Returns the input index.
int relay_add_input(relay_bank_t *b, int pin, uint32_t debounce_ms, bool active_low,
    int pull, int toggles);
// Returns the slot index. window_ms 1 .. 3600000.
int relay_add_slot(relay_bank_t *b, const char *name, uint32_t window_ms);
int relay_wdt_start(relay_bank_t *b, uint32_t timeout_ms);   // 1 .. RELAY_WDT_MAX_MS

// Switching.
int relay_set(relay_bank_t *b, int relay, bool on, relay_time_t now);
int relay_toggle(relay_bank_t *b, int relay, relay_time_t now);
int relay_write(relay_bank_t *b, uint32_t mask, uint32_t values, relay_time_t now);
int relay_pulse(relay_bank_t *b, int relay, uint32_t ms, relay_time_t now);
int relay_get(const relay_bank_t *b, int relay);             // 0/1 or RELAY_ERR_INDEX

// Periodic work: pulses, deferred change-overs, input debounce, watchdog.
// Returns the number of relay changes it made.
int relay_tick(relay_bank_t *b, relay_time_t now);
int relay_checkin(relay_bank_t *b, int slot, relay_time_t now);

// Reading.
int relay_input_value(const relay_bank_t *b, int input);     // debounced 0/1
const char *relay_stalled_name(const relay_bank_t *b);        // NULL when none
const char *relay_status_name(int status);                    // "ok", "interval", ...

#endif // RELAY_CORE_H
