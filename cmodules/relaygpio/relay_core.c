// Relay core (see relay_core.h). Plain C99 built into the firmware, the unix
// port and a natmod: so no static data, no libc beyond memset, no division and
// no 64-bit shifts by a variable (those need libgcc helpers on armv6m).
//
// Timers (pulses, dead times, min intervals, slot windows) count by the time
// elapsed between ticks, never by an absolute deadline, so they outlast the
// 2**30 us ring. Every countdown holds its value "as of the last tick"; a timer
// started between ticks is credited with the time since the last tick, so it
// runs out at the first tick at or after its duration.
#include <string.h>

#include "relay_core.h"

// The slow paths stay out of line: inlined, they would make every fast path
// save and restore registers it does not use.
#if defined(__GNUC__)
#define RELAY_COLD __attribute__((noinline))
#else
#define RELAY_COLD
#endif

static uint32_t bit(unsigned i) {
    return 1u << i;
}

static uint32_t relays_mask(unsigned n) {
    return n >= 32 ? 0xffffffffu : bit(n) - 1u;
}

static relay_pinmask_t pin_bit(unsigned pin) {
    #if RELAY_HW_NUM_PINS > 32
    if (pin >= 32) {
        return ((relay_pinmask_t)bit(pin - 32)) << 32;
    }
    #endif
    return (relay_pinmask_t)bit(pin);
}

uint32_t relay_switch_count(const relay_bank_t *b, unsigned relay) {
    return b->switches[relay];
}

static unsigned popcount(uint32_t x) {
    unsigned c = 0;
    while (x) {
        x &= x - 1;
        c++;
    }
    return c;
}

static uint32_t sat_add(uint32_t a, uint32_t b) {
    uint32_t s = a + b;
    return s < a ? 0xffffffffu : s;
}

static uint32_t sat_sub(uint32_t a, uint32_t b) {
    return a > b ? a - b : 0;
}

// ms * 1000 in 64 bits from two 32-bit products: a 64-bit multiply is a
// libgcc call on armv6m.
static uint64_t ms_to_us64(uint32_t ms) {
    uint32_t lo = (ms & 0xffffu) * 1000u;
    uint32_t hi = (ms >> 16) * 1000u;
    return ((uint64_t)hi << 16) + lo;
}

// Time from the last tick to now (0 before the first tick: no time base yet).
static uint32_t since_tick(const relay_bank_t *b, relay_time_t now) {
    if (!b->ticked) {
        return 0;
    }
    int32_t d = relay_time_diff(now, b->last_tick);
    return d > 0 ? (uint32_t)d : 0;
}

static bool interval_ok(const relay_bank_t *b, unsigned i, relay_time_t now) {
    if (b->clear & bit(i)) {
        return true;
    }
    const relay_t *r = &b->relays[i];
    int32_t d = relay_time_diff(now, r->last_switch);
    if (d >= 0 && (uint32_t)d >= r->min_interval_us) {
        return true;
    }
    // intervals beyond the ring's half (~8.9 min) are only seen by the countdown
    return b->ticked && r->interval_left_us <= since_tick(b, now);
}

// A pulse of us left (0: none) for relay i.
static void set_pulse(relay_bank_t *b, unsigned i, uint64_t us) {
    b->relays[i].pulse_left_us = us;
    if (us) {
        b->pulsing |= bit(i);
    } else {
        b->pulsing &= ~bit(i);
    }
}

static int count(relay_bank_t *b, int st) {
    if (st == RELAY_DEFERRED) {
        b->m.deferred++;
    } else if (st > 0 && st < RELAY_REASON_COUNT) {
        b->m.rejected[st]++;
    }
    return st;
}

// Record the numbers of an argument error for the message; returns code.
static int fail(relay_bank_t *b, int code, int32_t value, int32_t lo, int32_t hi) {
    b->err.value = value;
    b->err.lo = lo;
    b->err.hi = hi;
    b->err.aux = 0;
    b->err.mask = 0;
    return code;
}

static int check_range(relay_bank_t *b, int code, int32_t v, int32_t lo, int32_t hi) {
    return (v >= lo && v <= hi) ? RELAY_OK : fail(b, code, v, lo, hi);
}

// An index into a table of count entries; none_code when the table is empty.
static int check_index(relay_bank_t *b, int code, int none_code, int i, unsigned count) {
    if (i >= 0 && (unsigned)i < count) {
        return RELAY_OK;
    }
    return fail(b, count ? code : none_code, i, 0, (int32_t)count - 1);
}

// A relay mask for a bank of n relays: the error names its highest stray relay.
static int check_mask(relay_bank_t *b, uint32_t mask, unsigned n) {
    uint32_t stray = mask & ~relays_mask(n);
    if (!stray) {
        return RELAY_OK;
    }
    int top = 31;
    while (!(stray & bit((unsigned)top))) {
        top--;
    }
    fail(b, RELAY_ERR_MASK, top, 0, (int32_t)n);
    b->err.mask = mask;
    return RELAY_ERR_MASK;
}

// The min intervals of the relays in started begin now.
static RELAY_COLD void start_intervals(relay_bank_t *b, uint32_t started, relay_time_t now) {
    uint32_t lag = since_tick(b, now);
    b->clear &= ~started;
    for (unsigned i = 0; started; i++, started >>= 1) {
        if (started & 1u) {
            relay_t *r = &b->relays[i];
            r->last_switch = now;
            r->interval_left_us = sat_add(r->min_interval_us, lag);
        }
    }
}

// The groups of the relays in off start their dead time now.
static RELAY_COLD void start_dead_times(relay_bank_t *b, uint32_t off, relay_time_t now) {
    uint32_t lag = since_tick(b, now);
    for (unsigned k = 0; k < b->n_groups; k++) {
        relay_group_t *g = &b->groups[k];
        if (g->members & off) {
            g->dead_left_us = sat_add(g->dead_us, lag);
            b->groups_busy |= (uint8_t)bit(k);
        }
    }
}

// Hand the state and the relays in a pulse to the backend, which keeps them
// across a reset (relay_hw_keep). relay_outputs() does it on every switch; this
// is for a change of the pulses alone.
static void keep(relay_bank_t *b) {
    relay_hw_keep(&b->hw, b->state, b->pulsing);
}

// Flip the relays in change with one register write and book the switches.
static void apply(relay_bank_t *b, uint32_t change, relay_time_t now) {
    if (!change) {
        return;
    }
    uint32_t off = change & b->state;
    b->pulsing &= ~off;             // off ends a pulse (before relay_flip keeps it)
    relay_flip(b, change);
    if (change & b->timed) {
        start_intervals(b, change & b->timed, now);
    }
    if (off & b->grouped) {
        start_dead_times(b, off, now);
    }
}

// set(), pulse() (pulse_us > 0) and the on/off half of toggle(), lock held.
static RELAY_COLD int do_set(relay_bank_t *b, unsigned i, bool on, uint64_t pulse_us, relay_time_t now,
    int *changes) {
    relay_t *r = &b->relays[i];
    relay_group_t *g = r->group >= 0 ? &b->groups[r->group] : NULL;
    uint32_t me = bit(i);
    uint32_t lag = since_tick(b, now);
    if (!on) {
        if (g && g->pending == (int8_t)i) {
            g->pending = -1;
            return RELAY_OK;
        }
        if (!(b->state & me)) {
            return RELAY_OK;
        }
        if (!interval_ok(b, i, now)) {
            return count(b, RELAY_REJECTED_INTERVAL);
        }
        apply(b, me, now);
        *changes += 1;
        return RELAY_OK;
    }
    if (b->state & me) {
        // no switch: set() ends a running pulse, pulse() restarts it
        set_pulse(b, i, pulse_us ? pulse_us + lag : 0);
        keep(b);
        return RELAY_OK;
    }
    if (!interval_ok(b, i, now)) {
        return count(b, RELAY_REJECTED_INTERVAL);
    }
    if (g) {
        uint32_t others = b->state & g->members & ~me;
        uint32_t waiting = others & ~b->clear;
        for (unsigned j = 0; waiting; j++, waiting >>= 1) {
            if ((waiting & 1u) && !interval_ok(b, j, now)) {
                return count(b, RELAY_REJECTED_INTERVAL);
            }
        }
        // change-over: the other member goes off now, this one after the dead time
        apply(b, others, now);
        *changes += (int)popcount(others);
        if (others || g->dead_left_us > lag) {
            g->pending = (int8_t)i;
            g->pending_pulse = pulse_us != 0;
            g->pending_pulse_us = pulse_us;
            b->groups_busy |= (uint8_t)bit((unsigned)r->group);
            return count(b, RELAY_DEFERRED);
        }
        g->pending = -1;    // a newer request replaces the pending one
    }
    set_pulse(b, i, pulse_us ? pulse_us + lag : 0);    // before apply() keeps it
    apply(b, me, now);
    *changes += 1;
    return RELAY_OK;
}

static RELAY_COLD int do_toggle(relay_bank_t *b, unsigned i, relay_time_t now, int *changes) {
    int grp = b->relays[i].group;
    if (grp >= 0 && b->groups[grp].pending == (int8_t)i) {
        b->groups[grp].pending = -1;
        return RELAY_OK;
    }
    return do_set(b, i, !(b->state & bit(i)), 0, now, changes);
}

int relay_bank_init(relay_bank_t *b, const uint8_t *pins, size_t n,
    uint32_t active_low, uint32_t on_at_boot, int32_t tick_period_us, relay_time_t now) {
    if (n < 1 || n > RELAY_MAX) {
        return fail(b, RELAY_ERR_RELAY_COUNT, (int32_t)(n > 0x7fffffff ? 0x7fffffff : n), 1, RELAY_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        int st = check_range(b, RELAY_ERR_PIN, pins[i], 0, RELAY_HW_NUM_PINS - 1);
        if (st != RELAY_OK) {
            return st;
        }
        for (size_t j = 0; j < i; j++) {
            if (pins[j] == pins[i]) {
                return fail(b, RELAY_ERR_DUP_PIN, pins[i], 0, RELAY_HW_NUM_PINS - 1);
            }
        }
    }
    if (tick_period_us < RELAY_TICK_MIN_US) {
        return fail(b, RELAY_ERR_TICK, tick_period_us, RELAY_TICK_MIN_US, 0x7fffffff);
    }
    int st = check_mask(b, active_low, (unsigned)n);
    if (st == RELAY_OK) {
        st = check_mask(b, on_at_boot, (unsigned)n);
    }
    if (st != RELAY_OK) {
        return st;
    }
    memset(b, 0, sizeof(*b));
    uint32_t kept;
    if (relay_hw_kept(&b->hw, pins, n, active_low, &kept)) {
        on_at_boot = kept & relays_mask((unsigned)n);   // a warm reset: the state kept across it
    }
    // power-on levels first: the pins become outputs already at these levels
    relay_pinmask_t pm = 0, levels = 0;
    for (unsigned i = 0; i < n; i++) {
        pm |= pin_bit(pins[i]);
        if (((on_at_boot ^ active_low) >> i) & 1u) {
            levels |= pin_bit(pins[i]);
        }
    }
    relay_hw_init_outputs(&b->hw, pm, levels);
    b->n_relays = (uint8_t)n;
    b->state = on_at_boot;
    b->al_mask = active_low;
    b->clear = relays_mask((unsigned)n);    // booting is not a switch
    relay_hw_keep(&b->hw, b->state, 0);
    b->tick_period_us = (uint32_t)tick_period_us;
    b->stalled = -1;
    for (unsigned i = 0; i < n; i++) {
        relay_t *r = &b->relays[i];
        r->pin = pins[i];
        r->group = -1;
        r->last_switch = now;
        b->pin_mask[i] = pin_bit(pins[i]);
        for (unsigned v = 0; v < 16; v++) {
            if (v & bit(i & 3u)) {
                b->pin_nib[i >> 2][v] |= pin_bit(pins[i]);
            }
        }
    }
    for (unsigned k = 0; k < RELAY_GROUP_MAX; k++) {
        b->groups[k].pending = -1;
    }
    return RELAY_OK;
}

void relay_bank_deinit(relay_bank_t *b) {
    uint32_t s = relay_hw_lock();
    for (unsigned k = 0; k < b->n_groups; k++) {
        b->groups[k].pending = -1;
    }
    b->groups_busy = 0;
    apply(b, b->state, b->last_tick);
    b->n_inputs = 0;    // a late tick must not toggle relays on released pins
    relay_hw_release(&b->hw);
    relay_hw_unlock(s);
}

int relay_set_min_interval(relay_bank_t *b, int relay, int32_t ms) {
    int st = check_index(b, RELAY_ERR_RELAY, RELAY_ERR_RELAY, relay, b->n_relays);
    if (st == RELAY_OK) {
        st = check_range(b, RELAY_ERR_MIN_INTERVAL, ms, 0, RELAY_MIN_INTERVAL_MAX_MS);
    }
    if (st != RELAY_OK) {
        return st;
    }
    uint32_t s = relay_hw_lock();
    relay_t *r = &b->relays[relay];
    r->min_interval_ms = (uint32_t)ms;
    r->min_interval_us = (uint32_t)ms * 1000u;
    r->interval_left_us = 0;
    b->clear |= bit((unsigned)relay);   // the new interval counts from the next switch
    if (ms) {
        b->timed |= bit((unsigned)relay);
    } else {
        b->timed &= ~bit((unsigned)relay);
    }
    relay_hw_unlock(s);
    return RELAY_OK;
}

int relay_add_interlock(relay_bank_t *b, uint32_t mask, int32_t dead_ms) {
    int st = check_mask(b, mask, b->n_relays);
    if (st == RELAY_OK) {
        st = check_range(b, RELAY_ERR_DEAD_TIME, dead_ms, 0, RELAY_DEAD_TIME_MAX_MS);
    }
    if (st != RELAY_OK) {
        return st;
    }
    if (popcount(mask) < 2) {
        fail(b, RELAY_ERR_GROUP_SIZE, (int32_t)popcount(mask), 2, RELAY_MAX);
        b->err.mask = mask;
        return RELAY_ERR_GROUP_SIZE;
    }
    for (unsigned i = 0; i < b->n_relays; i++) {
        if ((mask & bit(i)) && b->relays[i].group >= 0) {
            fail(b, RELAY_ERR_GROUP_MEMBER, (int32_t)i, 0, b->n_relays - 1);
            b->err.aux = b->relays[i].group;
            return RELAY_ERR_GROUP_MEMBER;
        }
    }
    if (b->n_groups >= RELAY_GROUP_MAX) {
        return fail(b, RELAY_ERR_GROUP_COUNT, b->n_groups, 0, RELAY_GROUP_MAX);
    }
    if (popcount(b->state & mask) > 1) {
        fail(b, RELAY_ERR_GROUP_ON, (int32_t)popcount(b->state & mask), 0, 1);
        b->err.mask = mask;
        return RELAY_ERR_GROUP_ON;
    }
    uint32_t s = relay_hw_lock();
    int k = b->n_groups;
    relay_group_t *g = &b->groups[k];
    g->members = mask;
    g->dead_us = (uint32_t)dead_ms * 1000u;
    g->dead_left_us = 0;
    g->pending = -1;
    for (unsigned i = 0; i < b->n_relays; i++) {
        if (mask & bit(i)) {
            b->relays[i].group = (int8_t)k;
        }
    }
    b->grouped |= mask;
    b->n_groups++;
    relay_hw_unlock(s);
    return k;
}

int relay_check_pin(relay_bank_t *b, int pin) {
    return check_range(b, RELAY_ERR_PIN, pin, 0, RELAY_HW_NUM_PINS - 1);
}

int relay_add_input(relay_bank_t *b, int pin, int32_t debounce_ms, bool active_low,
    int pull, int toggles) {
    int st = relay_check_pin(b, pin);
    if (st == RELAY_OK) {
        st = check_range(b, RELAY_ERR_DEBOUNCE, debounce_ms, 0, RELAY_DEBOUNCE_MAX_MS);
    }
    if (st == RELAY_OK) {
        st = check_range(b, RELAY_ERR_PULL, pull, RELAY_PULL_NONE, RELAY_PULL_DOWN);
    }
    if (st == RELAY_OK) {
        st = check_range(b, RELAY_ERR_TOGGLES, toggles, -1, b->n_relays - 1);
    }
    if (st != RELAY_OK) {
        return st;
    }
    if (b->n_inputs >= RELAY_INPUT_MAX) {
        return fail(b, RELAY_ERR_INPUT_COUNT, b->n_inputs, 0, RELAY_INPUT_MAX);
    }
    for (unsigned i = 0; i < b->n_relays; i++) {
        if (b->relays[i].pin == pin) {
            return fail(b, RELAY_ERR_DUP_PIN, pin, 0, RELAY_HW_NUM_PINS - 1);
        }
    }
    for (unsigned j = 0; j < b->n_inputs; j++) {
        if (b->inputs[j].pin == pin) {
            return fail(b, RELAY_ERR_DUP_PIN, pin, 0, RELAY_HW_NUM_PINS - 1);
        }
    }
    uint32_t s = relay_hw_lock();
    int j = b->n_inputs;
    relay_input_t *in = &b->inputs[j];
    in->pin = (uint8_t)pin;
    in->active_low = active_low ? 1 : 0;
    in->pull = (uint8_t)pull;
    in->toggles = (int8_t)toggles;
    in->debounce_us = (uint32_t)debounce_ms * 1000u;
    in->candidate_for_us = 0;
    in->edges = 0;
    relay_hw_init_input(&b->hw, (unsigned)pin, pull);
    relay_pinmask_t level = relay_hw_read(&b->hw) & pin_bit((unsigned)pin);
    in->candidate = (uint8_t)((level != 0) ^ in->active_low);
    in->stable = in->candidate;
    b->in_pins |= pin_bit((unsigned)pin);
    b->in_cand = (b->in_cand & ~pin_bit((unsigned)pin)) | level;
    b->n_inputs++;
    relay_hw_unlock(s);
    return j;
}

static size_t name_len(const char *s, size_t max) {
    size_t n = 0;
    while (n <= max && s[n]) {
        n++;
    }
    return n;
}

static bool name_eq(const char *a, const char *b) {
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

int relay_add_slot(relay_bank_t *b, const char *name, int32_t window_ms) {
    size_t len = name ? name_len(name, RELAY_SLOT_NAME_LEN) : 0;
    if (len < 1 || len >= RELAY_SLOT_NAME_LEN) {
        return fail(b, RELAY_ERR_SLOT_NAME, (int32_t)len, 1, RELAY_SLOT_NAME_LEN - 1);
    }
    int st = check_range(b, RELAY_ERR_SLOT_WINDOW, window_ms, 1, RELAY_SLOT_WINDOW_MAX_MS);
    if (st != RELAY_OK) {
        return st;
    }
    if (b->n_slots >= RELAY_SLOT_MAX) {
        return fail(b, RELAY_ERR_SLOT_COUNT, b->n_slots, 0, RELAY_SLOT_MAX);
    }
    for (unsigned k = 0; k < b->n_slots; k++) {
        if (name_eq(b->slots[k].name, name)) {
            return fail(b, RELAY_ERR_SLOT_DUP, (int32_t)k, 0, 0);
        }
    }
    uint32_t s = relay_hw_lock();
    int k = b->n_slots;
    relay_slot_t *sl = &b->slots[k];
    memset(sl, 0, sizeof(*sl));
    memcpy(sl->name, name, len);
    sl->window_us = (uint32_t)window_ms * 1000u;
    b->n_slots++;
    relay_hw_unlock(s);
    return k;
}

int relay_wdt_start(relay_bank_t *b, int32_t timeout_ms) {
    int st = check_range(b, RELAY_ERR_WDT_TIMEOUT, timeout_ms, 1, RELAY_WDT_MAX_MS);
    if (st != RELAY_OK) {
        return st;
    }
    if (b->wdt_started) {
        return fail(b, RELAY_ERR_WDT_STARTED, timeout_ms, 0, 0);
    }
    uint32_t s = relay_hw_lock();
    // supervision starts fresh: time before it does not count against a slot
    for (unsigned k = 0; k < b->n_slots; k++) {
        b->slots[k].since_us = 0;
        b->slots[k].lag_us = 0;
    }
    b->wdt_started = 1;
    b->wdt_running = 1;
    relay_hw_wdt_start(&b->hw, (uint32_t)timeout_ms);
    relay_hw_unlock(s);
    return RELAY_OK;
}

// Runs in the backend's timer interrupt: the core neither allocates nor raises.
static void autotick_cb(void *arg) {
    relay_tick((relay_bank_t *)arg, relay_hw_now_us() & RELAY_TIME_MASK);
}

int relay_autotick_start(relay_bank_t *b, int32_t period_us) {
    int st = check_range(b, RELAY_ERR_AUTOTICK, period_us, RELAY_AUTOTICK_MIN_US, RELAY_AUTOTICK_MAX_US);
    if (st != RELAY_OK || !RELAY_HW_HAS_AUTOTICK) {
        return st;
    }
    relay_hw_autotick_stop();
    b->tick_period_us = (uint32_t)period_us;
    // a tick now sets the time base, so a request made before the timer's
    // first tick is timed from when it was made
    relay_tick(b, relay_hw_now_us() & RELAY_TIME_MASK);
    if (!relay_hw_autotick_start((uint32_t)period_us, autotick_cb, b)) {
        return fail(b, RELAY_ERR_NO_TIMER, period_us, RELAY_AUTOTICK_MIN_US, RELAY_AUTOTICK_MAX_US);
    }
    return 1;
}

void relay_autotick_stop(relay_bank_t *b) {
    (void)b;
    relay_hw_autotick_stop();
}

// The common request, lock held: a relay in no interlock group and free of
// its interval changes state. Does what do_set() and apply() do for it with
// mask operations (on the RP2040 each call level costs as much as the work).
// Returns false when the request needs the full path.
static inline bool switch_free_relay(relay_bank_t *b, unsigned i, bool on, relay_time_t now) {
    uint32_t me = bit(i);
    if (((b->grouped | ~b->clear) & me) || ((b->state & me) != 0) == on) {
        return false;
    }
    b->state ^= me;
    b->pulsing &= ~me;              // set() and toggle() end a pulse either way
    b->switches[i]++;
    if (b->timed & me) {
        start_intervals(b, me, now);
    }
    relay_pinmask_t pin = b->pin_mask[i];
    relay_outputs(b, pin, ((b->state ^ b->al_mask) & me) ? pin : 0);
    return true;
}

// The cold halves of set() and toggle(), out of line (see RELAY_COLD).
static RELAY_COLD int relay_index_error(relay_bank_t *b, int relay) {
    return check_index(b, RELAY_ERR_RELAY, RELAY_ERR_RELAY, relay, b->n_relays);
}

static RELAY_COLD int set_slow(relay_bank_t *b, unsigned i, bool on, relay_time_t now) {
    int changes = 0;
    return do_set(b, i, on, 0, now, &changes);
}

static RELAY_COLD int toggle_slow(relay_bank_t *b, unsigned i, relay_time_t now) {
    int changes = 0;
    return do_toggle(b, i, now, &changes);
}

int relay_set(relay_bank_t *b, int relay, bool on, relay_time_t now) {
    if ((unsigned)relay >= b->n_relays) {
        return relay_index_error(b, relay);
    }
    uint32_t s = relay_hw_lock();
    int st = switch_free_relay(b, (unsigned)relay, on, now)
        ? RELAY_OK : set_slow(b, (unsigned)relay, on, now);
    relay_hw_unlock(s);
    return st;
}

int relay_toggle(relay_bank_t *b, int relay, relay_time_t now) {
    if ((unsigned)relay >= b->n_relays) {
        return relay_index_error(b, relay);
    }
    uint32_t s = relay_hw_lock();
    unsigned i = (unsigned)relay;
    int st = switch_free_relay(b, i, !(b->state & bit(i)), now) ? RELAY_OK : toggle_slow(b, i, now);
    relay_hw_unlock(s);
    return st;
}

// The checks of a write that meets a running interval or an interlock group,
// lock held: all or nothing. Out of line: most writes never need them.
static RELAY_COLD int write_checks(relay_bank_t *b, uint32_t mask, uint32_t values, uint32_t change,
    relay_time_t now) {
    uint32_t waiting = change & ~b->clear;
    for (unsigned i = 0; waiting; i++, waiting >>= 1) {
        if ((waiting & 1u) && !interval_ok(b, i, now)) {
            return RELAY_REJECTED_INTERVAL;
        }
    }
    if (!(mask & b->grouped)) {
        return RELAY_OK;
    }
    uint32_t turn_on = change & values;
    uint32_t after = (b->state & ~mask) | values;
    uint32_t lag = since_tick(b, now);
    for (unsigned k = 0; k < b->n_groups; k++) {
        const relay_group_t *g = &b->groups[k];
        if (popcount(after & g->members) > 1) {
            return RELAY_REJECTED_INTERLOCK;
        }
        if ((turn_on & g->members) && ((b->state & g->members) || g->dead_left_us > lag)) {
            // a write is never deferred: no change-over, no turn-on in the dead time
            return RELAY_REJECTED_INTERLOCK;
        }
    }
    for (unsigned k = 0; k < b->n_groups; k++) {
        relay_group_t *g = &b->groups[k];
        if (g->pending >= 0 && ((mask & bit((unsigned)g->pending)) || (turn_on & g->members))) {
            g->pending = -1;
        }
    }
    return RELAY_OK;
}

static RELAY_COLD int write_mask_error(relay_bank_t *b, uint32_t mask) {
    return check_mask(b, mask, b->n_relays);
}

int relay_write(relay_bank_t *b, uint32_t mask, uint32_t values, relay_time_t now) {
    if (mask & ~relays_mask(b->n_relays)) {
        return write_mask_error(b, mask);
    }
    uint32_t s = relay_hw_lock();
    values &= mask;
    uint32_t change = (b->state ^ values) & mask;
    if ((change & ~b->clear) || (mask & b->grouped)) {
        int st = write_checks(b, mask, values, change, now);
        if (st != RELAY_OK) {
            relay_hw_unlock(s);
            return count(b, st);
        }
    }
    b->pulsing &= ~mask;            // written like set(): pulses end
    apply(b, change, now);
    if (!change) {
        keep(b);    // a write that only ended pulses
    }
    relay_hw_unlock(s);
    return RELAY_OK;
}

int relay_pulse(relay_bank_t *b, int relay, int32_t ms, relay_time_t now) {
    int st = check_index(b, RELAY_ERR_RELAY, RELAY_ERR_RELAY, relay, b->n_relays);
    if (st == RELAY_OK) {
        st = check_range(b, RELAY_ERR_PULSE, ms, 1, RELAY_PULSE_MAX_MS);
    }
    if (st != RELAY_OK) {
        return st;
    }
    uint64_t us = ms_to_us64((uint32_t)ms);
    uint32_t min_ms = b->relays[relay].min_interval_ms;
    if ((uint32_t)ms < min_ms) {
        fail(b, RELAY_ERR_PULSE_SHORT, ms, (int32_t)min_ms, RELAY_PULSE_MAX_MS);
        b->err.aux = relay;
        return RELAY_ERR_PULSE_SHORT;
    }
    int changes = 0;
    uint32_t s = relay_hw_lock();
    st = do_set(b, (unsigned)relay, true, us, now, &changes);
    relay_hw_unlock(s);
    return st;
}

int relay_get(relay_bank_t *b, int relay) {
    int st = check_index(b, RELAY_ERR_RELAY, RELAY_ERR_RELAY, relay, b->n_relays);
    return st != RELAY_OK ? st : (int)((b->state >> relay) & 1u);
}

int relay_tick(relay_bank_t *b, relay_time_t now) {
    int changes = 0;
    uint32_t s = relay_hw_lock();
    uint32_t elapsed = 0;
    if (b->ticked) {
        // the first tick only sets the time base
        elapsed = since_tick(b, now);
        if ((uint64_t)elapsed > 2ull * b->tick_period_us) {
            b->m.late_ticks++;
        }
    }
    b->last_tick = now;
    b->ticked = 1;
    b->m.ticks++;

    if (relay_hw_wdt_elapse(&b->hw, elapsed)) {
        b->wdt_running = 0;     // the (simulated) device is rebooting
    }

    // countdowns of the relays whose interval or pulse runs, then pulse expiry
    uint32_t expired = 0;
    uint32_t running = (b->timed & ~b->clear) | b->pulsing;
    for (unsigned i = 0; running; i++, running >>= 1) {
        if (!(running & 1u)) {
            continue;
        }
        relay_t *r = &b->relays[i];
        if (!(b->clear & bit(i)) && (b->timed & bit(i))) {
            r->interval_left_us = sat_sub(r->interval_left_us, elapsed);
            if (!r->interval_left_us) {
                b->clear |= bit(i);
            }
        }
        if (b->pulsing & bit(i)) {
            r->pulse_left_us = r->pulse_left_us > elapsed ? r->pulse_left_us - elapsed : 0;
            if (!r->pulse_left_us) {
                expired |= bit(i);
            }
        }
    }
    b->pulsing &= ~expired;
    uint8_t busy = b->groups_busy;
    for (unsigned k = 0; busy; k++, busy >>= 1) {
        if (busy & 1u) {
            b->groups[k].dead_left_us = sat_sub(b->groups[k].dead_left_us, elapsed);
        }
    }
    expired &= b->state;
    if (expired) {
        apply(b, expired, now);
        changes += (int)popcount(expired);
        b->m.pulses_expired += popcount(expired);
    }

    // deferred change-overs whose dead time has run (not re-checked for interval)
    if (b->groups_busy) {
        uint32_t turn_on = 0;
        for (unsigned k = 0; k < b->n_groups; k++) {
            relay_group_t *g = &b->groups[k];
            if (g->pending >= 0 && !g->dead_left_us && !(b->state & g->members)) {
                set_pulse(b, (unsigned)g->pending, g->pending_pulse ? g->pending_pulse_us : 0);
                turn_on |= bit((unsigned)g->pending);
                g->pending = -1;
            }
            if (g->pending < 0 && !g->dead_left_us) {
                b->groups_busy &= (uint8_t)~bit(k);
            }
        }
        apply(b, turn_on, now);
        changes += (int)popcount(turn_on);
    }

    // inputs: a level counts once seen unchanged for the debounce time. Only
    // inputs whose level moved or that are settling need a look: for the others
    // the time seen unchanged does not matter.
    if (b->n_inputs) {
        relay_pinmask_t phys = relay_hw_read(&b->hw);
        relay_pinmask_t moved = (phys ^ b->in_cand) & b->in_pins;
        for (unsigned j = 0; (moved || b->settling) && j < b->n_inputs; j++) {
            relay_input_t *in = &b->inputs[j];
            relay_pinmask_t pin = pin_bit(in->pin);
            if (!(moved & pin) && !(b->settling & bit(j))) {
                continue;
            }
            moved &= ~pin;
            uint8_t level = (uint8_t)(((phys & pin) != 0) ^ in->active_low);
            if (level != in->candidate) {
                in->candidate = level;
                in->candidate_for_us = 0;
                b->in_cand ^= pin;
            } else {
                in->candidate_for_us = sat_add(in->candidate_for_us, elapsed);
            }
            if (in->candidate != in->stable && in->candidate_for_us >= in->debounce_us) {
                in->stable = in->candidate;
                in->edges++;
                b->m.input_edges++;
                if (in->stable && in->toggles >= 0) {
                    do_toggle(b, (unsigned)in->toggles, now, &changes);
                }
            }
            if (in->candidate != in->stable) {
                b->settling |= (uint16_t)bit(j);
            } else {
                b->settling &= (uint16_t)~bit(j);
            }
        }
    }

    // watchdog supervision: feed only while every slot is within its window
    for (unsigned k = 0; k < b->n_slots; k++) {
        relay_slot_t *sl = &b->slots[k];
        sl->since_us = sat_add(sl->since_us, sat_sub(elapsed, sl->lag_us));
        sl->lag_us = 0;
    }
    if (b->wdt_running) {
        for (unsigned k = 0; k < b->n_slots; k++) {
            if (b->slots[k].since_us > b->slots[k].window_us) {
                b->stalled = (int8_t)k;
                b->wdt_running = 0;
                relay_hw_wdt_reset(&b->hw, b->slots[k].name);   // no return on hardware
                break;
            }
        }
        if (b->wdt_running) {
            relay_hw_wdt_feed(&b->hw);
            b->m.wdt_feeds++;
        }
    }
    relay_hw_unlock(s);
    return changes;
}

int relay_checkin(relay_bank_t *b, int slot, relay_time_t now) {
    int st = check_index(b, RELAY_ERR_SLOT, RELAY_ERR_NO_SLOTS, slot, b->n_slots);
    if (st != RELAY_OK) {
        return st;
    }
    uint32_t s = relay_hw_lock();
    b->slots[slot].since_us = 0;
    b->slots[slot].lag_us = since_tick(b, now);
    relay_hw_unlock(s);
    return RELAY_OK;
}

int relay_input_value(relay_bank_t *b, int input) {
    int st = check_index(b, RELAY_ERR_INPUT, RELAY_ERR_NO_INPUTS, input, b->n_inputs);
    return st != RELAY_OK ? st : b->inputs[input].stable;
}

int relay_input_edges(relay_bank_t *b, int input, uint32_t *out) {
    int st = check_index(b, RELAY_ERR_INPUT, RELAY_ERR_NO_INPUTS, input, b->n_inputs);
    if (st == RELAY_OK) {
        *out = b->inputs[input].edges;
    }
    return st;
}

int relay_switches(relay_bank_t *b, int relay, uint32_t *out) {
    int st = check_index(b, RELAY_ERR_RELAY, RELAY_ERR_RELAY, relay, b->n_relays);
    if (st == RELAY_OK) {
        *out = relay_switch_count(b, (unsigned)relay);
    }
    return st;
}

size_t relay_metrics_values(const relay_bank_t *b, uint32_t *out, size_t cap) {
    const relay_metrics_t *m = &b->m;
    size_t n = RELAY_METRIC_COUNT + b->n_relays + b->n_inputs;
    if (n > cap) {
        return n;
    }
    out[RELAY_METRIC_TICKS] = m->ticks;
    out[RELAY_METRIC_LATE_TICKS] = m->late_ticks;
    out[RELAY_METRIC_DEFERRED] = m->deferred;
    out[RELAY_METRIC_REJECTED_INTERVAL] = m->rejected[RELAY_REJECTED_INTERVAL];
    out[RELAY_METRIC_REJECTED_INTERLOCK] = m->rejected[RELAY_REJECTED_INTERLOCK];
    out[RELAY_METRIC_PULSES_EXPIRED] = m->pulses_expired;
    out[RELAY_METRIC_INPUT_EDGES] = m->input_edges;
    out[RELAY_METRIC_WDT_FEEDS] = m->wdt_feeds;
    out[RELAY_METRIC_WRITES] = m->writes;
    out += RELAY_METRIC_COUNT;
    for (unsigned i = 0; i < b->n_relays; i++) {
        *out++ = b->switches[i];
    }
    for (unsigned j = 0; j < b->n_inputs; j++) {
        *out++ = b->inputs[j].edges;
    }
    return n;
}

const char *relay_stalled_name(const relay_bank_t *b) {
    return b->stalled >= 0 ? b->slots[b->stalled].name : NULL;
}

// A char array, not a table of pointers, so a natmod needs no relocations in
// its data. Argument errors get their messages from the binding's one table.
static const char status_names[RELAY_REASON_COUNT][10] = {
    "ok", "deferred", "interval", "interlock",
};

const char *relay_status_name(int status) {
    if (status < 0 || status >= RELAY_REASON_COUNT) {
        return "error";
    }
    return status_names[status];
}
