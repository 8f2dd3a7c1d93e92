// Every limit of relaygpio, in one place. The core checks against these, the
// binding exposes them as module constants (LIMIT_*), and python/pyrelaygpio.py
// and python/iotlib/config_schema.py use the same numbers
// (tests/mpy/test_relaygpio_limits.py compares them).
#ifndef RELAY_LIMITS_H
#define RELAY_LIMITS_H

// Table sizes: a relay mask is one 32-bit word; the rest keeps a bank near 1 KB.
#define RELAY_MAX (32)
#define RELAY_INPUT_MAX (16)
#define RELAY_GROUP_MAX (8)
#define RELAY_SLOT_MAX (8)
#define RELAY_SLOT_NAME_LEN (16)            // including the terminating NUL

// Durations in ms. One hour for the timers that protect equipment (contact wear,
// motor change-over) or watch a task: longer is a schedule, not a protection.
// Every ms limit stays below 2**31 so the core takes them as int32 and a negative
// argument is seen as such.
#define RELAY_MIN_INTERVAL_MAX_MS (3600000)
#define RELAY_DEAD_TIME_MAX_MS (3600000)
#define RELAY_SLOT_WINDOW_MAX_MS (3600000)
// A bounce lasts milliseconds; a minute already only makes sense as "held for".
#define RELAY_DEBOUNCE_MAX_MS (60000)
// One day, as the REST API and the configuration: a longer on-time is a schedule.
#define RELAY_PULSE_MAX_MS (86400000)
// The RP2040 watchdog counts 24 bits at 2 per us (erratum RP2040-E1): 8388 ms.
#define RELAY_WDT_MAX_MS (8388)

// Tick periods in us: below 100 us the tick would eat the CPU; a hardware
// timer tick slower than a second would make every timer coarser than a second.
#define RELAY_TICK_MIN_US (100)
#define RELAY_AUTOTICK_MIN_US (100)
#define RELAY_AUTOTICK_MAX_US (1000000)

#endif // RELAY_LIMITS_H
