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

#include "relay_limits.h"

// Time is MicroPython's ticks_us: microseconds modulo 2**30. All arithmetic on
// it goes through relay_time_diff so it survives the wrap (about 17.9 min).
#define RELAY_TIME_MASK (0x3fffffffu)
typedef uint32_t relay_time_t;

static inline int32_t relay_time_diff(relay_time_t end, relay_time_t start) {
    // signed difference in the 30-bit ring, as time.ticks_diff()
    uint32_t d = (end - start) & RELAY_TIME_MASK;
    return (d & 0x20000000u) ? (int32_t)d - 0x40000000 : (int32_t)d;
}

// Result of a switching request (>= 0) or an argument error (< 0). Each error
// names one argument and the rule it broke; relay_bank_t.err holds the numbers.
typedef enum {
    RELAY_OK = 0,
    RELAY_DEFERRED = 1,             // interlock change-over: turns on after the dead time
    RELAY_REJECTED_INTERVAL = 2,    // inside the relay's minimum switch interval
    RELAY_REJECTED_INTERLOCK = 3,   // an atomic write that would break an interlock
    RELAY_REASON_COUNT = 4,

    RELAY_ERR_RELAY_COUNT = -1,     // pins: not 1 .. RELAY_MAX of them
    RELAY_ERR_PIN = -2,             // pin outside 0 .. RELAY_HW_NUM_PINS-1
    RELAY_ERR_DUP_PIN = -3,         // pin already used by this bank
    RELAY_ERR_TICK = -4,            // tick period below RELAY_TICK_MIN_US
    RELAY_ERR_MASK = -5,            // mask names a relay the bank does not have
    RELAY_ERR_RELAY = -6,           // no relay with that index
    RELAY_ERR_INPUT = -7,           // no input with that index
    RELAY_ERR_SLOT = -8,            // no slot with that index
    RELAY_ERR_MIN_INTERVAL = -9,    // min interval outside 0 .. RELAY_MIN_INTERVAL_MAX_MS
    RELAY_ERR_PULSE = -10,          // pulse outside 1 .. RELAY_PULSE_MAX_MS
    RELAY_ERR_PULSE_SHORT = -11,    // pulse shorter than the relay's min interval
    RELAY_ERR_DEAD_TIME = -12,      // dead time outside 0 .. RELAY_DEAD_TIME_MAX_MS
    RELAY_ERR_GROUP_SIZE = -13,     // interlock of fewer than 2 relays
    RELAY_ERR_GROUP_MEMBER = -14,   // relay already in another interlock group
    RELAY_ERR_GROUP_COUNT = -15,    // RELAY_GROUP_MAX groups already
    RELAY_ERR_GROUP_ON = -16,       // more than one member on: already breaks the interlock
    RELAY_ERR_DEBOUNCE = -17,       // debounce outside 0 .. RELAY_DEBOUNCE_MAX_MS
    RELAY_ERR_PULL = -18,           // pull not one of RELAY_PULL_*
    RELAY_ERR_TOGGLES = -19,        // input toggles neither -1 nor a relay
    RELAY_ERR_INPUT_COUNT = -20,    // RELAY_INPUT_MAX inputs already
    RELAY_ERR_SLOT_NAME = -21,      // slot name not 1 .. RELAY_SLOT_NAME_LEN-1 bytes
    RELAY_ERR_SLOT_WINDOW = -22,    // slot window outside 1 .. RELAY_SLOT_WINDOW_MAX_MS
    RELAY_ERR_SLOT_COUNT = -23,     // RELAY_SLOT_MAX slots already
    RELAY_ERR_SLOT_DUP = -24,       // slot name used twice
    RELAY_ERR_WDT_TIMEOUT = -25,    // watchdog timeout outside 1 .. RELAY_WDT_MAX_MS
    RELAY_ERR_WDT_STARTED = -26,    // the watchdog runs already (it cannot stop)
    RELAY_ERR_AUTOTICK = -27,       // autotick period outside the RELAY_AUTOTICK_* range
    RELAY_ERR_NO_TIMER = -28,       // the backend could not start its timer
    RELAY_ERR_NO_INPUTS = -29,      // an input index, and the bank has no inputs
    RELAY_ERR_NO_SLOTS = -30,       // a slot index, and the bank has no slots
    RELAY_ERR_FIRST = -30,          // the lowest code: binding tables size by it
} relay_status_t;

// The numbers behind the last error, for the message.
typedef struct {
    int32_t value;                  // the rejected value
    int32_t lo, hi;                 // its allowed range, or the limit it hit
    int32_t aux;                    // a second number: the group, relay or count named
    uint32_t mask;                  // the rejected mask
} relay_error_t;

// Per-relay state that a check needs relay by relay lives in masks of
// relay_bank_t (polarity, interval clear, pulse running, group membership), so
// set() and write() decide with a few mask operations and tick() visits only
// relays whose timer runs. What stays here is read only for those relays.
typedef struct {
    uint8_t pin;
    int8_t group;                   // interlock group index or -1
    uint32_t min_interval_ms;       // as given (the core has no division)
    uint32_t min_interval_us;
    relay_time_t last_switch;       // valid for relays with a min interval
    uint32_t interval_left_us;      // min interval still to run, as of the last tick
    uint64_t pulse_left_us;         // valid while the relay is in relay_bank_t.pulsing
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
    uint32_t candidate_for_us;      // how long candidate has been seen unchanged (while settling)
    uint32_t edges;
} relay_input_t;

typedef struct {
    char name[RELAY_SLOT_NAME_LEN];
    uint32_t window_us;
    uint32_t since_us;              // time since the last check-in, as of the last tick
    uint32_t lag_us;                // check-in came this long after the last tick
} relay_slot_t;

// The order of the counters in relay_metrics_values().
typedef enum {
    RELAY_METRIC_TICKS, RELAY_METRIC_LATE_TICKS, RELAY_METRIC_DEFERRED,
    RELAY_METRIC_REJECTED_INTERVAL, RELAY_METRIC_REJECTED_INTERLOCK, RELAY_METRIC_PULSES_EXPIRED,
    RELAY_METRIC_INPUT_EDGES, RELAY_METRIC_WDT_FEEDS, RELAY_METRIC_WRITES, RELAY_METRIC_COUNT,
} relay_metric_t;

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
    uint32_t al_mask;               // active-low relays
    uint32_t timed;                 // relays with a min interval
    uint32_t clear;                 // relays free to switch: no min interval, or it has run
    uint32_t pulsing;               // relays with a pulse running
    uint32_t grouped;               // relays in an interlock group
    uint8_t groups_busy;            // groups with a dead time or a deferred turn-on to run
    uint16_t settling;              // inputs whose candidate level is not yet debounced
    relay_pinmask_t in_pins;        // the inputs' pins
    relay_pinmask_t in_cand;        // each input pin's candidate physical level
    uint32_t switches[RELAY_MAX];   // switch count of each relay
    relay_pinmask_t pin_mask[RELAY_MAX];    // the pin of each relay
    // The pins of each 4-relay slice of a relay mask: the pins of any mask in
    // RELAY_MAX / 4 lookups, whatever the wiring.
    relay_pinmask_t pin_nib[RELAY_MAX / 4][16];
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
    relay_error_t err;              // set by every call that returns an error
} relay_bank_t;

// Every call checks its arguments against relay_limits.h and returns a
// RELAY_ERR_* naming the first bad one (relay_bank_t.err holds its numbers)
// before it changes anything. Durations are int32: a negative one is an error
// the caller sees, not a huge unsigned value.

// Set-up. relay_bank_init drives every pin to its power-on level before it
// becomes an output, so no relay glitches on. active_low and on_at_boot are
// masks by relay index. Checked in this order: count, each pin (range, then
// duplicate), tick period, active_low, on_at_boot.
int relay_bank_init(relay_bank_t *b, const uint8_t *pins, size_t n,
    uint32_t active_low, uint32_t on_at_boot, int32_t tick_period_us, relay_time_t now);
void relay_bank_deinit(relay_bank_t *b);  // all relays off, pins released
int relay_set_min_interval(relay_bank_t *b, int relay, int32_t ms);
// Relays in mask may never be on together; turning one on waits dead_ms after
// the last member turned off. Returns the group index. Checked in this order:
// mask, dead time, size, membership, count, relays on.
int relay_add_interlock(relay_bank_t *b, uint32_t mask, int32_t dead_ms);
// Returns the input index. Checked in this order: pin, debounce, pull,
// toggles, count, duplicate pin.
int relay_add_input(relay_bank_t *b, int pin, int32_t debounce_ms, bool active_low,
    int pull, int toggles);
// Returns the slot index. Checked in this order: name length, window, count,
// duplicate name.
int relay_add_slot(relay_bank_t *b, const char *name, int32_t window_ms);
int relay_wdt_start(relay_bank_t *b, int32_t timeout_ms);
// A hardware timer ticks the bank every period_us (one bank per board).
// Returns 1 when it runs, 0 when the backend has no timer (the caller ticks).
int relay_autotick_start(relay_bank_t *b, int32_t period_us);
void relay_autotick_stop(relay_bank_t *b);

// Switching.
int relay_set(relay_bank_t *b, int relay, bool on, relay_time_t now);
int relay_toggle(relay_bank_t *b, int relay, relay_time_t now);
int relay_write(relay_bank_t *b, uint32_t mask, uint32_t values, relay_time_t now);
int relay_pulse(relay_bank_t *b, int relay, int32_t ms, relay_time_t now);
int relay_get(relay_bank_t *b, int relay);                   // 0/1 or RELAY_ERR_RELAY

// Periodic work: pulses, deferred change-overs, input debounce, watchdog.
// Returns the number of relay changes it made.
int relay_tick(relay_bank_t *b, relay_time_t now);
int relay_checkin(relay_bank_t *b, int slot, relay_time_t now);

// Reading. Counters go to *out; the result is RELAY_OK or an index error.
int relay_input_value(relay_bank_t *b, int input);           // debounced 0/1
int relay_input_edges(relay_bank_t *b, int input, uint32_t *out);
int relay_switches(relay_bank_t *b, int relay, uint32_t *out);
uint32_t relay_switch_count(const relay_bank_t *b, unsigned relay);   // relay < n_relays
// The metrics without allocating: RELAY_METRIC_COUNT counters (relay_metric_t
// order), then the switches of each relay, then the edges of each input.
// Returns how many there are; writes nothing when that is more than cap.
size_t relay_metrics_values(const relay_bank_t *b, uint32_t *out, size_t cap);
// Does a request for the relays in mask need the time? Only timers do: a relay
// with no min interval and in no group switches the same at any time.
static inline bool relay_needs_time(const relay_bank_t *b, uint32_t mask) {
    return (mask & (b->timed | b->grouped)) != 0;
}
int relay_check_pin(relay_bank_t *b, int pin);               // RELAY_OK or RELAY_ERR_PIN
const char *relay_stalled_name(const relay_bank_t *b);        // NULL when none
const char *relay_status_name(int status);                    // "ok", "deferred", ... or "error"

// ---- the common requests, inline in the caller ----
// A relay in no interlock group and with no min interval switches the same at
// any time and needs no tick: set() and write() of such relays are a few mask
// operations and one register write, done here so that the binding's call is
// the only call (on the RP2040 a call level costs as much as this work).

// The one place where relay outputs reach the hardware after set-up: the pins
// in pins take their bit of high, in one register write. Lock held.
// It also hands the new state and the relays in a pulse to the backend, which
// keeps them across a reset (relay_hw_keep): b->pulsing is final before it.
static inline void relay_outputs(relay_bank_t *b, relay_pinmask_t pins, relay_pinmask_t high) {
    relay_hw_write(&b->hw, pins, high);
    b->m.writes++;
    relay_hw_keep(&b->hw, b->state, b->pulsing);
}

// Flips the relays in change (not 0) with one register write and counts the
// switches. Lock held.
static inline void relay_flip(relay_bank_t *b, uint32_t change) {
    b->state ^= change;
    uint32_t *n = b->switches;
    for (uint32_t c = change; c; c >>= 1, n++) {
        *n += c & 1u;
    }
    // the pins of the change and those of it to drive high: one table lookup
    // per 4 relays, whatever the wiring
    relay_pinmask_t pins = 0, high = 0;
    uint32_t up = (b->state ^ b->al_mask) & change;
    for (const relay_pinmask_t (*t)[16] = b->pin_nib; change; change >>= 4, up >>= 4, t++) {
        pins |= (*t)[change & 15u];
        high |= (*t)[up & 15u];
    }
    relay_outputs(b, pins, high);
}

// relay_set() of a relay that needs neither time nor a group check. Returns
// false, having done nothing, when relay_set() must decide.
static inline bool relay_set_plain(relay_bank_t *b, int relay, bool on) {
    if ((unsigned)relay >= b->n_relays) {
        return false;
    }
    uint32_t me = 1u << relay;
    if ((b->timed | b->grouped) & me) {
        return false;
    }
    uint32_t s = relay_hw_lock();
    uint32_t ended = b->pulsing & me;
    b->pulsing &= ~me;              // set() ends a pulse, switching or not
    if (((b->state & me) != 0) != on) {
        b->state ^= me;
        b->switches[relay]++;
        relay_pinmask_t pin = b->pin_mask[relay];
        relay_outputs(b, pin, ((b->state ^ b->al_mask) & me) ? pin : 0);
    } else if (ended) {
        relay_hw_keep(&b->hw, b->state, b->pulsing);    // no switch, but the pulse is over
    }
    relay_hw_unlock(s);
    return true;
}

// relay_write() of relays that need neither time nor a group check. Returns
// false, having done nothing, when relay_write() must decide.
static inline bool relay_write_plain(relay_bank_t *b, uint32_t mask, uint32_t values) {
    uint32_t all = b->n_relays >= 32 ? 0xffffffffu : (1u << b->n_relays) - 1u;
    if (mask & (~all | b->timed | b->grouped)) {
        return false;
    }
    uint32_t s = relay_hw_lock();
    uint32_t ended = b->pulsing & mask;
    b->pulsing &= ~mask;            // written like set(): pulses end
    uint32_t change = (b->state ^ values) & mask;
    if (change) {
        relay_flip(b, change);
    } else if (ended) {
        relay_hw_keep(&b->hw, b->state, b->pulsing);    // no switch, but pulses are over
    }
    relay_hw_unlock(s);
    return true;
}

#endif // RELAY_CORE_H
