// relaygpio: MicroPython binding of the relay core. It only converts
// arguments, raises clear errors and builds result objects; relay logic lives
// in relay_core.c and hardware in the hw_*.c backend. The same file is built
// into the firmware / unix port and, through natmod/, as a native .mpy.

#if MICROPY_ENABLE_DYNRUNTIME
#include "py/dynruntime.h"
#else
#include "py/runtime.h"
#include "py/mphal.h"
#include "py/mperrno.h"
#endif

#include "relay_core.h"

#if !MICROPY_ENABLE_DYNRUNTIME && !defined(RELAY_HW_SIM)
#include "pico/time.h"
#define RELAYGPIO_HAVE_AUTOTICK (1)
#else
#define RELAYGPIO_HAVE_AUTOTICK (0)
#endif

// A natmod's qstrs are only known at load time, so its argument tables are
// built on the stack; the firmware keeps them in ROM.
#if MICROPY_ENABLE_DYNRUNTIME
#define ARG_TABLE mp_arg_t
#else
#define ARG_TABLE static const mp_arg_t
#endif

typedef struct _relaygpio_bank_obj_t {
    mp_obj_base_t base;
    bool alive;
    #if MICROPY_ENABLE_DYNRUNTIME
    mp_obj_t ticks_us;              // time.ticks_us: a natmod cannot reach mp_hal
    #endif
    relay_bank_t core;
} relaygpio_bank_obj_t;

#if MICROPY_ENABLE_DYNRUNTIME
extern mp_obj_full_type_t relaygpio_bank_type;
#define RELAYGPIO_BANK_TYPE ((const mp_obj_type_t *)&relaygpio_bank_type)
#else
extern const mp_obj_type_t relaygpio_bank_type;
#define RELAYGPIO_BANK_TYPE (&relaygpio_bank_type)
#endif

// ---- error messages naming the value: a natmod has no printf, so a tiny formatter ----

static char *fmt_uint(char *p, char *end, mp_uint_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v && n < 20);
    while (n && p < end) {
        *p++ = tmp[--n];
    }
    return p;
}

// fmt understands up to three %d (mp_int_t) and one %s; anything else is copied.
static NORETURN void raise_fmt3(const mp_obj_type_t *type, const char *fmt, mp_int_t a, mp_int_t b, mp_int_t c, const char *s) {
    char buf[80];
    char *p = buf, *end = buf + sizeof(buf) - 1;
    mp_int_t ints[3] = {a, b, c};
    int next = 0;
    for (; *fmt && p < end; fmt++) {
        if (fmt[0] == '%' && fmt[1] == 'd') {
            mp_int_t v = next < 3 ? ints[next++] : 0;
            if (v < 0) {
                *p++ = '-';
                v = -v;
            }
            p = fmt_uint(p, end, (mp_uint_t)v);
            fmt++;
        } else if (fmt[0] == '%' && fmt[1] == 's') {
            for (const char *q = s; q && *q && p < end; q++) {
                *p++ = *q;
            }
            fmt++;
        } else {
            *p++ = *fmt;
        }
    }
    mp_raise_type_arg(type, mp_obj_new_str(buf, p - buf));
}

static NORETURN void raise_fmt(const mp_obj_type_t *type, const char *fmt, mp_int_t a, mp_int_t b, const char *s) {
    raise_fmt3(type, fmt, a, b, 0, s);
}

// ---- argument helpers ----

static relaygpio_bank_obj_t *get_bank(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (!self->alive) {
        mp_raise_ValueError(MP_ERROR_TEXT("bank is deinitialised"));
    }
    return self;
}

static relay_time_t clock_now(relaygpio_bank_obj_t *self) {
    #if MICROPY_ENABLE_DYNRUNTIME
    return (relay_time_t)mp_obj_get_int_truncated(mp_call_function_n_kw(self->ticks_us, 0, 0, NULL)) & RELAY_TIME_MASK;
    #else
    (void)self;
    return (relay_time_t)mp_hal_ticks_us() & RELAY_TIME_MASK;
    #endif
}

// `now` is the last positional argument or the keyword now=; None or absent reads the clock.
static relay_time_t now_arg(relaygpio_bank_obj_t *self, size_t n_args, const mp_obj_t *args, size_t pos, mp_map_t *kw) {
    mp_obj_t now = n_args > pos ? args[pos] : mp_const_none;
    if (kw != NULL && kw->used) {
        for (size_t i = 0; i < kw->alloc; i++) {
            mp_obj_t key = kw->table[i].key;
            if (key == MP_OBJ_NULL || key == MP_OBJ_SENTINEL) {
                continue;
            }
            if (key != MP_OBJ_NEW_QSTR(MP_QSTR_now) || n_args > pos) {
                mp_raise_TypeError(MP_ERROR_TEXT("unexpected keyword argument"));
            }
            now = kw->table[i].value;
        }
    }
    if (now == mp_const_none) {
        return clock_now(self);
    }
    return (relay_time_t)mp_obj_get_int_truncated(now) & RELAY_TIME_MASK;
}

// Small ints (every real index or flag) skip the generic conversions: on the
// RP2040 those calls cost as much as the relay logic itself.
static inline mp_int_t int_arg(mp_obj_t arg) {
    return mp_obj_is_small_int(arg) ? MP_OBJ_SMALL_INT_VALUE(arg) : mp_obj_get_int(arg);
}

static inline bool bool_arg(mp_obj_t arg) {
    return mp_obj_is_small_int(arg) ? MP_OBJ_SMALL_INT_VALUE(arg) != 0 : mp_obj_is_true(arg);
}

static int relay_index(relaygpio_bank_obj_t *self, mp_obj_t arg) {
    mp_int_t i = int_arg(arg);
    if (i < 0 || i >= self->core.n_relays) {
        raise_fmt(&mp_type_IndexError, "relay %d out of range 0..%d", i, self->core.n_relays - 1, NULL);
    }
    return (int)i;
}

static uint32_t mask_arg(relaygpio_bank_obj_t *self, mp_obj_t arg) {
    mp_int_t v = mp_obj_get_int_truncated(arg);
    uint32_t m = (uint32_t)v;
    uint32_t n = self->core.n_relays;
    if (n < 32 && (m >> n) != 0) {
        int bit = 31;
        while (!(m & (1u << bit))) {
            bit--;
        }
        raise_fmt(&mp_type_ValueError, "mask names relay %d of %d", bit, n, NULL);
    }
    return m;
}

static uint32_t ms_arg(mp_obj_t arg, const char *what, uint32_t max) {
    mp_int_t v = mp_obj_get_int(arg);
    if (v < 0 || (uint32_t)v > max) {
        raise_fmt(&mp_type_ValueError, "%s %d ms out of range 0..%d", v, (mp_int_t)max, what);
    }
    return (uint32_t)v;
}

// A core error code that the checks above did not already catch.
static void check(int r) {
    if (r >= 0) {
        return;
    }
    raise_fmt(&mp_type_ValueError, "relay core error: %s", 0, 0, relay_status_name(r));
}

// ---- Bank(pins, active_low=0, on_at_boot=0, tick_us=1000) ----

static mp_obj_t bank_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *all_args) {
    enum { ARG_pins, ARG_active_low, ARG_on_at_boot, ARG_tick_us };
    ARG_TABLE allowed_args[] = {
        { MP_QSTR_pins, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(0)} },
        { MP_QSTR_active_low, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(0)} },
        { MP_QSTR_on_at_boot, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(0)} },
        { MP_QSTR_tick_us, MP_ARG_INT, {.u_int = 1000} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);

    size_t n;
    mp_obj_t *items;
    mp_obj_get_array(args[ARG_pins].u_obj, &n, &items);
    if (n < 1 || n > RELAY_MAX) {
        raise_fmt(&mp_type_ValueError, "1 to %d relays, got %d", RELAY_MAX, n, NULL);
    }
    uint8_t pins[RELAY_MAX];
    for (size_t i = 0; i < n; i++) {
        mp_int_t p = mp_obj_get_int(items[i]);
        if (p < 0 || p >= RELAY_HW_NUM_PINS) {
            raise_fmt(&mp_type_ValueError, "pin %d out of range 0..%d", p, RELAY_HW_NUM_PINS - 1, NULL);
        }
        for (size_t j = 0; j < i; j++) {
            if (pins[j] == p) {
                raise_fmt(&mp_type_ValueError, "duplicate pin %d", p, 0, NULL);
            }
        }
        pins[i] = (uint8_t)p;
    }
    mp_int_t tick_us = args[ARG_tick_us].u_int;
    if (tick_us < 100) {
        raise_fmt(&mp_type_ValueError, "tick_us %d below 100", tick_us, 0, NULL);
    }

    #if MICROPY_ENABLE_DYNRUNTIME
    relaygpio_bank_obj_t *self = mp_obj_malloc(relaygpio_bank_obj_t, type);
    self->ticks_us = mp_load_attr(mp_import_name(MP_QSTR_time, mp_const_none, MP_OBJ_NEW_SMALL_INT(0)), MP_QSTR_ticks_us);
    #else
    relaygpio_bank_obj_t *self = mp_obj_malloc_with_finaliser(relaygpio_bank_obj_t, type);
    #endif
    self->alive = false;
    self->core.n_relays = (uint8_t)n;  // mask_arg checks against it before init
    uint32_t active_low = mask_arg(self, args[ARG_active_low].u_obj);
    uint32_t on_at_boot = mask_arg(self, args[ARG_on_at_boot].u_obj);
    check(relay_bank_init(&self->core, pins, n, active_low, on_at_boot, (uint32_t)tick_us, clock_now(self)));
    self->alive = true;
    return MP_OBJ_FROM_PTR(self);
}

// ---- switching ----

static mp_obj_t bank_set(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args < 3 || n_args > 4) {
        mp_raise_TypeError(MP_ERROR_TEXT("set(relay, on, now=None)"));
    }
    int i = relay_index(self, args[1]);
    relay_time_t now = now_arg(self, n_args, args, 3, kw);
    return MP_OBJ_NEW_SMALL_INT(relay_set(&self->core, i, bool_arg(args[2]), now));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_set_obj, 3, bank_set);

static mp_obj_t bank_toggle(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args > 3) {
        mp_raise_TypeError(MP_ERROR_TEXT("toggle(relay, now=None)"));
    }
    int i = relay_index(self, args[1]);
    relay_time_t now = now_arg(self, n_args, args, 2, kw);
    return MP_OBJ_NEW_SMALL_INT(relay_toggle(&self->core, i, now));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_toggle_obj, 2, bank_toggle);

static mp_obj_t bank_write(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args < 3 || n_args > 4) {
        mp_raise_TypeError(MP_ERROR_TEXT("write(mask, values, now=None)"));
    }
    uint32_t mask = mask_arg(self, args[1]);
    uint32_t values = (uint32_t)mp_obj_get_int_truncated(args[2]);
    relay_time_t now = now_arg(self, n_args, args, 3, kw);
    return MP_OBJ_NEW_SMALL_INT(relay_write(&self->core, mask, values, now));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_write_obj, 3, bank_write);

static mp_obj_t bank_pulse(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args < 3 || n_args > 4) {
        mp_raise_TypeError(MP_ERROR_TEXT("pulse(relay, ms, now=None)"));
    }
    int i = relay_index(self, args[1]);
    mp_int_t ms = mp_obj_get_int_truncated(args[2]);
    if (ms < 1 || (mp_uint_t)ms > 0xffffffffu) {
        raise_fmt(&mp_type_ValueError, "pulse %d ms out of range 1..4294967295", ms, 0, NULL);
    }
    uint32_t min_ms = self->core.relays[i].min_interval_us / 1000u;
    if ((uint32_t)ms < min_ms) {
        raise_fmt3(&mp_type_ValueError, "pulse %d ms shorter than relay %d min interval %d ms", ms, i, min_ms, NULL);
    }
    relay_time_t now = now_arg(self, n_args, args, 3, kw);
    int r = relay_pulse(&self->core, i, (uint32_t)ms, now);
    check(r);
    return MP_OBJ_NEW_SMALL_INT(r);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_pulse_obj, 3, bank_pulse);

static mp_obj_t bank_get(mp_obj_t self_in, mp_obj_t i_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return mp_obj_new_bool(relay_get(&self->core, relay_index(self, i_in)));
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_get_obj, bank_get);

static mp_obj_t bank_state(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return mp_obj_new_int_from_uint(self->core.state);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_state_obj, bank_state);

static mp_obj_t bank_len(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return MP_OBJ_NEW_SMALL_INT(self->core.n_relays);
}

// ---- configuration ----

static mp_obj_t bank_min_interval(mp_obj_t self_in, mp_obj_t i_in, mp_obj_t ms_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    int i = relay_index(self, i_in);
    check(relay_set_min_interval(&self->core, i, ms_arg(ms_in, "min interval", 3600000)));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(bank_min_interval_obj, bank_min_interval);

static mp_obj_t bank_interlock(mp_obj_t self_in, mp_obj_t mask_in, mp_obj_t dead_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    uint32_t mask = mask_arg(self, mask_in);
    uint32_t dead = ms_arg(dead_in, "dead time", 3600000);
    int members = 0, on = 0;
    for (int i = 0; i < self->core.n_relays; i++) {
        if (mask & (1u << i)) {
            members++;
            on += (self->core.state >> i) & 1;
        }
    }
    if (members < 2) {
        raise_fmt(&mp_type_ValueError, "interlock mask %d has fewer than 2 relays", mask, 0, NULL);
    }
    for (int i = 0; i < self->core.n_relays; i++) {
        if ((mask & (1u << i)) && self->core.relays[i].group >= 0) {
            raise_fmt(&mp_type_ValueError, "relay %d already in interlock group %d", i, self->core.relays[i].group, NULL);
        }
    }
    int r = relay_add_interlock(&self->core, mask, dead);
    if (r == RELAY_ERR_COUNT) {
        raise_fmt(&mp_type_ValueError, "too many interlock groups (max %d)", RELAY_GROUP_MAX, 0, NULL);
    } else if (r == RELAY_ERR_STATE) {
        raise_fmt(&mp_type_ValueError, "interlock mask %d has %d relays on", mask, on, NULL);
    }
    check(r);
    return MP_OBJ_NEW_SMALL_INT(r);
}
static MP_DEFINE_CONST_FUN_OBJ_3(bank_interlock_obj, bank_interlock);

static mp_obj_t bank_input(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_pin, ARG_debounce_ms, ARG_active_low, ARG_pull, ARG_toggles };
    ARG_TABLE allowed_args[] = {
        { MP_QSTR_pin, MP_ARG_REQUIRED | MP_ARG_INT, {.u_int = 0} },
        { MP_QSTR_debounce_ms, MP_ARG_INT, {.u_int = 20} },
        { MP_QSTR_active_low, MP_ARG_BOOL, {.u_bool = true} },
        { MP_QSTR_pull, MP_ARG_INT, {.u_int = RELAY_PULL_UP} },
        { MP_QSTR_toggles, MP_ARG_INT, {.u_int = -1} },
    };
    relaygpio_bank_obj_t *self = get_bank(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);

    mp_int_t pin = args[ARG_pin].u_int;
    if (pin < 0 || pin >= RELAY_HW_NUM_PINS) {
        raise_fmt(&mp_type_ValueError, "pin %d out of range 0..%d", pin, RELAY_HW_NUM_PINS - 1, NULL);
    }
    mp_int_t deb = args[ARG_debounce_ms].u_int;
    if (deb < 0 || deb > 60000) {
        raise_fmt(&mp_type_ValueError, "debounce %d ms out of range 0..60000", deb, 0, NULL);
    }
    mp_int_t pull = args[ARG_pull].u_int;
    if (pull < RELAY_PULL_NONE || pull > RELAY_PULL_DOWN) {
        raise_fmt(&mp_type_ValueError, "pull %d not PULL_NONE, PULL_UP or PULL_DOWN", pull, 0, NULL);
    }
    mp_int_t toggles = args[ARG_toggles].u_int;
    if (toggles < -1 || toggles >= self->core.n_relays) {
        raise_fmt(&mp_type_IndexError, "relay %d out of range 0..%d", toggles, self->core.n_relays - 1, NULL);
    }
    int r = relay_add_input(&self->core, (int)pin, (uint32_t)deb, args[ARG_active_low].u_bool, (int)pull, (int)toggles);
    if (r == RELAY_ERR_DUP_PIN) {
        raise_fmt(&mp_type_ValueError, "duplicate pin %d", pin, 0, NULL);
    } else if (r == RELAY_ERR_COUNT) {
        raise_fmt(&mp_type_ValueError, "too many inputs (max %d)", RELAY_INPUT_MAX, 0, NULL);
    }
    check(r);
    return MP_OBJ_NEW_SMALL_INT(r);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_input_obj, 2, bank_input);

static int input_index(relaygpio_bank_obj_t *self, mp_obj_t arg) {
    mp_int_t j = mp_obj_get_int(arg);
    if (j < 0 || j >= self->core.n_inputs) {
        if (self->core.n_inputs == 0) {
            raise_fmt(&mp_type_IndexError, "input %d out of range (no inputs)", j, 0, NULL);
        }
        raise_fmt(&mp_type_IndexError, "input %d out of range 0..%d", j, self->core.n_inputs - 1, NULL);
    }
    return (int)j;
}

static mp_obj_t bank_input_value(mp_obj_t self_in, mp_obj_t j_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return mp_obj_new_bool(relay_input_value(&self->core, input_index(self, j_in)));
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_input_value_obj, bank_input_value);

static mp_obj_t bank_edges(mp_obj_t self_in, mp_obj_t j_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return mp_obj_new_int_from_uint(self->core.inputs[input_index(self, j_in)].edges);
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_edges_obj, bank_edges);

// ---- tick ----

static mp_obj_t bank_tick(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args > 2) {
        mp_raise_TypeError(MP_ERROR_TEXT("tick(now=None)"));
    }
    return MP_OBJ_NEW_SMALL_INT(relay_tick(&self->core, now_arg(self, n_args, args, 1, kw)));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_tick_obj, 1, bank_tick);

#if RELAYGPIO_HAVE_AUTOTICK
// One hardware-timer tick for the whole board: it runs in an interrupt, so it
// only calls the core, which neither allocates nor raises.
static repeating_timer_t relaygpio_timer;
static bool relaygpio_timer_on;

static bool autotick_cb(repeating_timer_t *t) {
    relaygpio_bank_obj_t *bank = MP_STATE_PORT(relaygpio_autotick_bank);
    if (bank != NULL && bank->alive) {
        relay_tick(&bank->core, time_us_32() & RELAY_TIME_MASK);
    }
    return true;
}

static void autotick_stop(void) {
    if (relaygpio_timer_on) {
        cancel_repeating_timer(&relaygpio_timer);
        relaygpio_timer_on = false;
    }
    MP_STATE_PORT(relaygpio_autotick_bank) = NULL;
}
#endif

static mp_obj_t bank_autotick(mp_obj_t self_in, mp_obj_t period_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    mp_int_t period = mp_obj_get_int(period_in);
    if (period < 100 || period > 1000000) {
        raise_fmt(&mp_type_ValueError, "autotick period %d us out of range 100..1000000", period, 0, NULL);
    }
    #if RELAYGPIO_HAVE_AUTOTICK
    autotick_stop();
    self->core.tick_period_us = (uint32_t)period;
    // a tick now sets the time base, so a request made before the timer's
    // first tick is timed from when it was made
    relay_tick(&self->core, time_us_32() & RELAY_TIME_MASK);
    MP_STATE_PORT(relaygpio_autotick_bank) = self;
    // negative delay: period measured start to start, so ticks do not drift
    relaygpio_timer_on = add_repeating_timer_us(-period, autotick_cb, NULL, &relaygpio_timer);
    if (!relaygpio_timer_on) {
        MP_STATE_PORT(relaygpio_autotick_bank) = NULL;
        mp_raise_OSError(MP_ENOMEM);
    }
    return mp_const_true;
    #else
    (void)self;
    return mp_const_false;
    #endif
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_autotick_obj, bank_autotick);

// ---- watchdog supervisor ----

static mp_obj_t bank_slot(mp_obj_t self_in, mp_obj_t name_in, mp_obj_t window_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    const char *name = mp_obj_str_get_str(name_in);
    size_t len = 0;
    while (name[len]) {
        len++;
    }
    if (len < 1 || len >= RELAY_SLOT_NAME_LEN) {
        raise_fmt(&mp_type_ValueError, "slot name '%s' must be 1..%d characters", RELAY_SLOT_NAME_LEN - 1, 0, name);
    }
    mp_int_t window = mp_obj_get_int(window_in);
    if (window < 1 || window > 3600000) {
        raise_fmt(&mp_type_ValueError, "slot window %d ms out of range 1..3600000", window, 0, NULL);
    }
    int r = relay_add_slot(&self->core, name, (uint32_t)window);
    if (r == RELAY_ERR_NAME) {
        raise_fmt(&mp_type_ValueError, "duplicate slot name '%s'", 0, 0, name);
    } else if (r == RELAY_ERR_COUNT) {
        raise_fmt(&mp_type_ValueError, "too many slots (max %d)", RELAY_SLOT_MAX, 0, NULL);
    }
    check(r);
    return MP_OBJ_NEW_SMALL_INT(r);
}
static MP_DEFINE_CONST_FUN_OBJ_3(bank_slot_obj, bank_slot);

static mp_obj_t bank_checkin(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args > 3) {
        mp_raise_TypeError(MP_ERROR_TEXT("checkin(slot, now=None)"));
    }
    mp_int_t s = mp_obj_get_int(args[1]);
    if (s < 0 || s >= self->core.n_slots) {
        if (self->core.n_slots == 0) {
            raise_fmt(&mp_type_IndexError, "slot %d out of range (no slots)", s, 0, NULL);
        }
        raise_fmt(&mp_type_IndexError, "slot %d out of range 0..%d", s, self->core.n_slots - 1, NULL);
    }
    check(relay_checkin(&self->core, (int)s, now_arg(self, n_args, args, 2, kw)));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_checkin_obj, 2, bank_checkin);

static mp_obj_t bank_watchdog(mp_obj_t self_in, mp_obj_t timeout_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    mp_int_t t = mp_obj_get_int(timeout_in);
    if (t < 1 || t > RELAY_WDT_MAX_MS) {
        raise_fmt(&mp_type_ValueError, "watchdog timeout %d ms out of range 1..%d", t, RELAY_WDT_MAX_MS, NULL);
    }
    int r = relay_wdt_start(&self->core, (uint32_t)t);
    if (r == RELAY_ERR_STATE) {
        mp_raise_ValueError(MP_ERROR_TEXT("watchdog already started"));
    }
    check(r);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_watchdog_obj, bank_watchdog);

static mp_obj_t str_or_none(const char *s) {
    if (s == NULL || s[0] == 0) {
        return mp_const_none;
    }
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return mp_obj_new_str(s, n);
}

static mp_obj_t bank_stalled(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return str_or_none(relay_stalled_name(&self->core));
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_stalled_obj, bank_stalled);

static mp_obj_t bank_reset_cause(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    char buf[RELAY_SLOT_NAME_LEN];
    relay_hw_reset_cause(&self->core.hw, buf, sizeof(buf));
    return str_or_none(buf);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_reset_cause_obj, bank_reset_cause);

// ---- metrics ----

static mp_obj_t bank_switches(mp_obj_t self_in, mp_obj_t i_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return mp_obj_new_int_from_uint(self->core.relays[relay_index(self, i_in)].switches);
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_switches_obj, bank_switches);

static void dict_put(mp_obj_t d, qstr key, uint32_t v) {
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(key), mp_obj_new_int_from_uint(v));
}

static mp_obj_t bank_metrics(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    const relay_bank_t *b = &self->core;
    // twice the slots the 11 keys need: a full table probes (and divides) far longer
    mp_obj_t d = mp_obj_new_dict(23);
    dict_put(d, MP_QSTR_ticks, b->m.ticks);
    dict_put(d, MP_QSTR_late_ticks, b->m.late_ticks);
    dict_put(d, MP_QSTR_deferred, b->m.deferred);
    dict_put(d, MP_QSTR_rejected_interval, b->m.rejected[RELAY_REJECTED_INTERVAL]);
    dict_put(d, MP_QSTR_rejected_interlock, b->m.rejected[RELAY_REJECTED_INTERLOCK]);
    dict_put(d, MP_QSTR_pulses_expired, b->m.pulses_expired);
    dict_put(d, MP_QSTR_input_edges, b->m.input_edges);
    dict_put(d, MP_QSTR_wdt_feeds, b->m.wdt_feeds);
    dict_put(d, MP_QSTR_writes, b->m.writes);
    // lists made at their final size: appending would grow (reallocate) them
    mp_obj_t items[RELAY_MAX];
    for (int i = 0; i < b->n_relays; i++) {
        items[i] = mp_obj_new_int_from_uint(b->relays[i].switches);
    }
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_switches), mp_obj_new_list(b->n_relays, items));
    for (int j = 0; j < b->n_inputs; j++) {
        items[j] = mp_obj_new_int_from_uint(b->inputs[j].edges);
    }
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_edges), mp_obj_new_list(b->n_inputs, items));
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_metrics_obj, bank_metrics);

// ---- simulated backend access, for tests ----

#if defined(RELAY_HW_SIM)
static unsigned sim_pin(mp_obj_t arg) {
    mp_int_t p = mp_obj_get_int(arg);
    if (p < 0 || p >= RELAY_HW_NUM_PINS) {
        raise_fmt(&mp_type_ValueError, "pin %d out of range 0..%d", p, RELAY_HW_NUM_PINS - 1, NULL);
    }
    return (unsigned)p;
}

static mp_obj_t bank_sim_level(mp_obj_t self_in, mp_obj_t pin_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return MP_OBJ_NEW_SMALL_INT(relay_hw_sim_level(&self->core.hw, sim_pin(pin_in)));
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_sim_level_obj, bank_sim_level);

static mp_obj_t bank_sim_drive(mp_obj_t self_in, mp_obj_t pin_in, mp_obj_t level_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    int level = level_in == mp_const_none ? -1 : (mp_obj_is_true(level_in) ? 1 : 0);
    relay_hw_sim_drive(&self->core.hw, sim_pin(pin_in), level);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(bank_sim_drive_obj, bank_sim_drive);

static mp_obj_t bank_sim_writes(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return mp_obj_new_int_from_uint(self->core.hw.writes);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_sim_writes_obj, bank_sim_writes);

static mp_obj_t bank_sim_resets(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return mp_obj_new_int_from_uint(self->core.hw.resets);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_sim_resets_obj, bank_sim_resets);
#endif

// ---- end of life ----

static mp_obj_t bank_deinit(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->alive) {
        #if RELAYGPIO_HAVE_AUTOTICK
        if (MP_STATE_PORT(relaygpio_autotick_bank) == self) {
            autotick_stop();
        }
        #endif
        self->alive = false;
        relay_bank_deinit(&self->core);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_deinit_obj, bank_deinit);

#if !MICROPY_ENABLE_DYNRUNTIME
// The finaliser runs on soft reset too: the timer must never tick a freed bank.
static mp_obj_t bank_del(mp_obj_t self_in) {
    #if RELAYGPIO_HAVE_AUTOTICK
    relaygpio_bank_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (MP_STATE_PORT(relaygpio_autotick_bank) == self) {
        autotick_stop();
    }
    #else
    (void)self_in;
    #endif
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_del_obj, bank_del);

static const mp_rom_map_elem_t bank_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_set), MP_ROM_PTR(&bank_set_obj) },
    { MP_ROM_QSTR(MP_QSTR_toggle), MP_ROM_PTR(&bank_toggle_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&bank_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_pulse), MP_ROM_PTR(&bank_pulse_obj) },
    { MP_ROM_QSTR(MP_QSTR_get), MP_ROM_PTR(&bank_get_obj) },
    { MP_ROM_QSTR(MP_QSTR_state), MP_ROM_PTR(&bank_state_obj) },
    { MP_ROM_QSTR(MP_QSTR_min_interval), MP_ROM_PTR(&bank_min_interval_obj) },
    { MP_ROM_QSTR(MP_QSTR_interlock), MP_ROM_PTR(&bank_interlock_obj) },
    { MP_ROM_QSTR(MP_QSTR_input), MP_ROM_PTR(&bank_input_obj) },
    { MP_ROM_QSTR(MP_QSTR_input_value), MP_ROM_PTR(&bank_input_value_obj) },
    { MP_ROM_QSTR(MP_QSTR_edges), MP_ROM_PTR(&bank_edges_obj) },
    { MP_ROM_QSTR(MP_QSTR_tick), MP_ROM_PTR(&bank_tick_obj) },
    { MP_ROM_QSTR(MP_QSTR_autotick), MP_ROM_PTR(&bank_autotick_obj) },
    { MP_ROM_QSTR(MP_QSTR_slot), MP_ROM_PTR(&bank_slot_obj) },
    { MP_ROM_QSTR(MP_QSTR_checkin), MP_ROM_PTR(&bank_checkin_obj) },
    { MP_ROM_QSTR(MP_QSTR_watchdog), MP_ROM_PTR(&bank_watchdog_obj) },
    { MP_ROM_QSTR(MP_QSTR_stalled), MP_ROM_PTR(&bank_stalled_obj) },
    { MP_ROM_QSTR(MP_QSTR_reset_cause), MP_ROM_PTR(&bank_reset_cause_obj) },
    { MP_ROM_QSTR(MP_QSTR_switches), MP_ROM_PTR(&bank_switches_obj) },
    { MP_ROM_QSTR(MP_QSTR_metrics), MP_ROM_PTR(&bank_metrics_obj) },
    #if defined(RELAY_HW_SIM)
    { MP_ROM_QSTR(MP_QSTR_sim_level), MP_ROM_PTR(&bank_sim_level_obj) },
    { MP_ROM_QSTR(MP_QSTR_sim_drive), MP_ROM_PTR(&bank_sim_drive_obj) },
    { MP_ROM_QSTR(MP_QSTR_sim_writes), MP_ROM_PTR(&bank_sim_writes_obj) },
    { MP_ROM_QSTR(MP_QSTR_sim_resets), MP_ROM_PTR(&bank_sim_resets_obj) },
    #endif
    { MP_ROM_QSTR(MP_QSTR_deinit), MP_ROM_PTR(&bank_deinit_obj) },
    { MP_ROM_QSTR(MP_QSTR___del__), MP_ROM_PTR(&bank_del_obj) },
};
static MP_DEFINE_CONST_DICT(bank_locals_dict, bank_locals_dict_table);

static mp_obj_t bank_unary_op(mp_unary_op_t op, mp_obj_t self_in) {
    if (op == MP_UNARY_OP_LEN) {
        return bank_len(self_in);
    }
    return MP_OBJ_NULL;
}

MP_DEFINE_CONST_OBJ_TYPE(
    relaygpio_bank_type,
    MP_QSTR_Bank,
    MP_TYPE_FLAG_NONE,
    make_new, bank_make_new,
    unary_op, bank_unary_op,
    locals_dict, &bank_locals_dict
    );

static const mp_rom_obj_tuple_t relaygpio_reasons_obj = {
    {&mp_type_tuple}, 4,
    {
        MP_ROM_QSTR(MP_QSTR_ok),
        MP_ROM_QSTR(MP_QSTR_deferred),
        MP_ROM_QSTR(MP_QSTR_interval),
        MP_ROM_QSTR(MP_QSTR_interlock),
    },
};

static const mp_rom_map_elem_t relaygpio_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_relaygpio) },
    { MP_ROM_QSTR(MP_QSTR_Bank), MP_ROM_PTR(&relaygpio_bank_type) },
    { MP_ROM_QSTR(MP_QSTR_OK), MP_ROM_INT(RELAY_OK) },
    { MP_ROM_QSTR(MP_QSTR_DEFERRED), MP_ROM_INT(RELAY_DEFERRED) },
    { MP_ROM_QSTR(MP_QSTR_REJECTED_INTERVAL), MP_ROM_INT(RELAY_REJECTED_INTERVAL) },
    { MP_ROM_QSTR(MP_QSTR_REJECTED_INTERLOCK), MP_ROM_INT(RELAY_REJECTED_INTERLOCK) },
    { MP_ROM_QSTR(MP_QSTR_REASONS), MP_ROM_PTR(&relaygpio_reasons_obj) },
    { MP_ROM_QSTR(MP_QSTR_PULL_NONE), MP_ROM_INT(RELAY_PULL_NONE) },
    { MP_ROM_QSTR(MP_QSTR_PULL_UP), MP_ROM_INT(RELAY_PULL_UP) },
    { MP_ROM_QSTR(MP_QSTR_PULL_DOWN), MP_ROM_INT(RELAY_PULL_DOWN) },
    { MP_ROM_QSTR(MP_QSTR_MAX_RELAYS), MP_ROM_INT(RELAY_MAX) },
    { MP_ROM_QSTR(MP_QSTR_MAX_INPUTS), MP_ROM_INT(RELAY_INPUT_MAX) },
    { MP_ROM_QSTR(MP_QSTR_MAX_GROUPS), MP_ROM_INT(RELAY_GROUP_MAX) },
    { MP_ROM_QSTR(MP_QSTR_MAX_SLOTS), MP_ROM_INT(RELAY_SLOT_MAX) },
    { MP_ROM_QSTR(MP_QSTR_NUM_PINS), MP_ROM_INT(RELAY_HW_NUM_PINS) },
    { MP_ROM_QSTR(MP_QSTR_WDT_MAX_MS), MP_ROM_INT(RELAY_WDT_MAX_MS) },
    { MP_ROM_QSTR(MP_QSTR_IMPL), MP_ROM_QSTR(MP_QSTR_c) },
};
static MP_DEFINE_CONST_DICT(relaygpio_module_globals, relaygpio_module_globals_table);

const mp_obj_module_t relaygpio_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&relaygpio_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_relaygpio, relaygpio_user_cmodule);
#if RELAYGPIO_HAVE_AUTOTICK
MP_REGISTER_ROOT_POINTER(struct _relaygpio_bank_obj_t *relaygpio_autotick_bank);
#endif
#endif // !MICROPY_ENABLE_DYNRUNTIME
