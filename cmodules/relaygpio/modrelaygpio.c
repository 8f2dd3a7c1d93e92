// relaygpio: MicroPython binding of the relay core. It only converts
// arguments, turns the core's error codes into exceptions (one table) and
// builds result objects; checks and relay logic live in relay_core.c, limits
// in relay_limits.h, hardware in the hw_*.c backend. The same file is built
// into the firmware / unix port and, through natmod/, as a native .mpy.

#if MICROPY_ENABLE_DYNRUNTIME
#include "py/dynruntime.h"
#else
#include "py/runtime.h"
#include "py/mphal.h"
#include "py/mperrno.h"
#endif

#include "relay_core.h"
#include "relaygpio_methods.h"

// The bank a hardware timer ticks must stay reachable for the GC: a root
// pointer, which only the firmware has.
#define RELAYGPIO_ROOTED_AUTOTICK (RELAY_HW_HAS_AUTOTICK && !MICROPY_ENABLE_DYNRUNTIME)

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

// ---- errors: one message per core code ----

// Each message is Python %-formatted from the numbers in relay_bank_t.err, so a
// value too big for C is still shown as given. fields: what each % takes
// (v value, l lo, h hi, a aux, m mask, s the name argument). Char arrays, not
// pointers: a natmod's data must need no relocation.
typedef struct {
    char kind;                      // 'V' ValueError, 'I' IndexError, 'O' OSError
    char fields[4];
    char fmt[53];
} relaygpio_msg_t;

#define MSG(code, kind, fields, fmt) [-(code)] = {kind, fields, fmt}
static const relaygpio_msg_t relaygpio_msgs[1 - RELAY_ERR_FIRST] = {
    MSG(RELAY_ERR_RELAY_COUNT, 'V', "lhv", "%d to %d relays, got %d"),
    MSG(RELAY_ERR_PIN, 'V', "vlh", "pin %d out of range %d..%d"),
    MSG(RELAY_ERR_DUP_PIN, 'V', "v", "duplicate pin %d"),
    MSG(RELAY_ERR_TICK, 'V', "vl", "tick_us %d below %d"),
    MSG(RELAY_ERR_MASK, 'V', "vh", "mask names relay %d of %d"),
    MSG(RELAY_ERR_RELAY, 'I', "vlh", "relay %d out of range %d..%d"),
    MSG(RELAY_ERR_INPUT, 'I', "vlh", "input %d out of range %d..%d"),
    MSG(RELAY_ERR_SLOT, 'I', "vlh", "slot %d out of range %d..%d"),
    MSG(RELAY_ERR_NO_INPUTS, 'I', "v", "input %d out of range (no inputs)"),
    MSG(RELAY_ERR_NO_SLOTS, 'I', "v", "slot %d out of range (no slots)"),
    MSG(RELAY_ERR_MIN_INTERVAL, 'V', "vlh", "min interval %d ms out of range %d..%d"),
    MSG(RELAY_ERR_PULSE, 'V', "vlh", "pulse %d ms out of range %d..%d"),
    MSG(RELAY_ERR_PULSE_SHORT, 'V', "val", "pulse %d ms shorter than relay %d min interval %d ms"),
    MSG(RELAY_ERR_DEAD_TIME, 'V', "vlh", "dead time %d ms out of range %d..%d"),
    MSG(RELAY_ERR_GROUP_SIZE, 'V', "ml", "interlock mask %d has fewer than %d relays"),
    MSG(RELAY_ERR_GROUP_MEMBER, 'V', "va", "relay %d already in interlock group %d"),
    MSG(RELAY_ERR_GROUP_COUNT, 'V', "h", "too many interlock groups (max %d)"),
    MSG(RELAY_ERR_GROUP_ON, 'V', "mv", "interlock mask %d has %d relays on"),
    MSG(RELAY_ERR_DEBOUNCE, 'V', "vlh", "debounce %d ms out of range %d..%d"),
    MSG(RELAY_ERR_PULL, 'V', "v", "pull %d not PULL_NONE, PULL_UP or PULL_DOWN"),
    MSG(RELAY_ERR_TOGGLES, 'I', "vh", "relay %d out of range 0..%d"),
    MSG(RELAY_ERR_INPUT_COUNT, 'V', "h", "too many inputs (max %d)"),
    MSG(RELAY_ERR_SLOT_NAME, 'V', "slh", "slot name '%s' must be %d..%d characters"),
    MSG(RELAY_ERR_SLOT_WINDOW, 'V', "vlh", "slot window %d ms out of range %d..%d"),
    MSG(RELAY_ERR_SLOT_COUNT, 'V', "h", "too many slots (max %d)"),
    MSG(RELAY_ERR_SLOT_DUP, 'V', "s", "duplicate slot name '%s'"),
    MSG(RELAY_ERR_WDT_TIMEOUT, 'V', "vlh", "watchdog timeout %d ms out of range %d..%d"),
    MSG(RELAY_ERR_WDT_STARTED, 'V', "", "watchdog already started"),
    MSG(RELAY_ERR_AUTOTICK, 'V', "vlh", "autotick period %d us out of range %d..%d"),
    MSG(RELAY_ERR_NO_TIMER, 'O', "", ""),
};

// The first argument that did not fit the C type the core takes, and the value
// the core got instead (the nearest end of that type, which it rejects).
typedef struct {
    mp_obj_t obj;
    int32_t as;
} relaygpio_big_t;

static size_t cstr_len(const char *s) {
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

static NORETURN void raise_core(const relay_bank_t *core, int code, const relaygpio_big_t *big, mp_obj_t name) {
    const relaygpio_msg_t *msg = &relaygpio_msgs[-code];
    const relay_error_t *e = &core->err;
    if (msg->kind == 'O') {
        mp_raise_OSError(MP_ENOMEM);
    }
    mp_obj_t items[4];
    size_t n = 0;
    for (const char *f = msg->fields; *f && n < 4; f++) {
        switch (*f) {
            case 'v':
                items[n++] = (big != NULL && big->obj != MP_OBJ_NULL && big->as == e->value)
                    ? big->obj : mp_obj_new_int(e->value);
                break;
            case 'l':
                items[n++] = mp_obj_new_int(e->lo);
                break;
            case 'h':
                items[n++] = mp_obj_new_int(e->hi);
                break;
            case 'a':
                items[n++] = mp_obj_new_int(e->aux);
                break;
            case 'm':
                items[n++] = mp_obj_new_int_from_uint(e->mask);
                break;
            default:
                items[n++] = name;
                break;
        }
    }
    mp_obj_t text = mp_obj_new_str(msg->fmt, cstr_len(msg->fmt));
    if (n) {
        text = mp_binary_op(MP_BINARY_OP_MODULO, text, mp_obj_new_tuple(n, items));
    }
    mp_raise_type_arg(msg->kind == 'I' ? &mp_type_IndexError : &mp_type_ValueError, text);
}

// A core result: errors raise, the rest is returned.
static inline int check(relaygpio_bank_obj_t *self, int r, const relaygpio_big_t *big, mp_obj_t name) {
    if (r < 0) {
        raise_core(&self->core, r, big, name);
    }
    return r;
}

// ---- argument conversion ----

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

// `now` is the last positional argument or the keyword now=; None or absent
// reads the clock. A time is a point in the 2**30 us ring, so it wraps.
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

// The time for a request on the relays in mask: the clock is read only when
// one of them has a timer (relay_needs_time), or when the caller gave now.
static inline relay_time_t now_for(relaygpio_bank_obj_t *self, uint32_t mask, size_t n_args, const mp_obj_t *args, size_t pos, mp_map_t *kw) {
    if (n_args <= pos && (kw == NULL || !kw->used) && !relay_needs_time(&self->core, mask)) {
        return 0;       // never read by the core for these relays
    }
    return now_arg(self, n_args, args, pos, kw);
}

static inline uint32_t relay_bit(int32_t i) {
    return (uint32_t)i < 32 ? 1u << i : 0;
}

// An int too big for a machine word (or, on the RP2040, for a small int): is it
// exactly the C value v? Works the same in the firmware and a natmod.
static bool int_is(mp_obj_t arg, mp_obj_t v) {
    return mp_binary_op(MP_BINARY_OP_EQUAL, arg, v) == mp_const_true;
}

// An int argument as an int32. Beyond int32 it becomes INT32_MIN or INT32_MAX,
// which every core check rejects; big keeps the original for the message.
// Small ints (every real index or flag) skip the generic conversions: on the
// RP2040 those calls cost as much as the relay logic itself.
static int32_t i32_arg_slow(mp_obj_t arg, relaygpio_big_t *big) {
    // a small int here is beyond int32 (hosts with 64-bit words)
    if (!mp_obj_is_small_int(arg)) {
        mp_int_t v = (mp_int_t)mp_obj_get_int_truncated(arg);   // TypeError if not an int
        if (v >= INT32_MIN && v <= INT32_MAX && int_is(arg, mp_obj_new_int(v))) {
            return (int32_t)v;
        }
    }
    int32_t as = mp_binary_op(MP_BINARY_OP_LESS, arg, MP_OBJ_NEW_SMALL_INT(0)) == mp_const_true
        ? INT32_MIN : INT32_MAX;
    if (big->obj == MP_OBJ_NULL) {
        big->obj = arg;
        big->as = as;
    }
    return as;
}

static inline int32_t i32_arg(mp_obj_t arg, relaygpio_big_t *big) {
    if (mp_obj_is_small_int(arg)) {
        mp_int_t v = MP_OBJ_SMALL_INT_VALUE(arg);
        if (v >= INT32_MIN && v <= INT32_MAX) {
            return (int32_t)v;
        }
    }
    return i32_arg_slow(arg, big);
}

static inline bool bool_arg(mp_obj_t arg) {
    return mp_obj_is_small_int(arg) ? MP_OBJ_SMALL_INT_VALUE(arg) != 0 : mp_obj_is_true(arg);
}

// A relay mask: 32 bits, negative ones as two's complement (-1 names all 32
// relays). Wider values are refused here: the core takes a uint32.
static uint32_t mask_arg(mp_obj_t arg, const char *what) {
    if (mp_obj_is_small_int(arg)) {
        mp_int_t v = MP_OBJ_SMALL_INT_VALUE(arg);
        if (v >= INT32_MIN && (v < 0 || (mp_uint_t)v <= 0xffffffffu)) {
            return (uint32_t)v;
        }
    } else {
        mp_uint_t t = mp_obj_get_int_truncated(arg);            // TypeError if not an int
        if (t <= 0xffffffffu && int_is(arg, mp_obj_new_int_from_uint(t))) {
            return (uint32_t)t;
        }
        mp_int_t v = (mp_int_t)t;
        if (v < 0 && v >= INT32_MIN && int_is(arg, mp_obj_new_int(v))) {
            return (uint32_t)v;
        }
    }
    static const char fmt[] = "%s %d wider than 32 bits";
    mp_obj_t items[2] = { mp_obj_new_str(what, cstr_len(what)), arg };
    mp_raise_type_arg(&mp_type_ValueError, mp_binary_op(MP_BINARY_OP_MODULO,
        mp_obj_new_str(fmt, sizeof(fmt) - 1), mp_obj_new_tuple(2, items)));
}

// ---- Bank(pins, active_low=0, on_at_boot=0, tick_us=1000) ----

static mp_obj_t bank_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *all_args) {
    enum { ARG_pins, ARG_active_low, ARG_on_at_boot, ARG_tick_us };
    ARG_TABLE allowed_args[] = {
        { MP_QSTR_pins, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(0)} },
        { MP_QSTR_active_low, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(0)} },
        { MP_QSTR_on_at_boot, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(0)} },
        { MP_QSTR_tick_us, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(1000)} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);

    size_t n;
    mp_obj_t *items;
    mp_obj_get_array(args[ARG_pins].u_obj, &n, &items);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    uint8_t pins[RELAY_MAX];
    for (size_t i = 0; i < n && i < RELAY_MAX; i++) {
        int32_t p = i32_arg(items[i], &big);
        if (p < 0 || p > 255) {
            // 255 is beyond every backend's pins: the core names it, we show p
            if (big.obj == MP_OBJ_NULL) {
                big.obj = items[i];
                big.as = 255;
            } else if (big.obj == items[i]) {
                big.as = 255;
            }
            p = 255;
        }
        pins[i] = (uint8_t)p;
    }
    int32_t tick_us = i32_arg(args[ARG_tick_us].u_obj, &big);
    uint32_t active_low = mask_arg(args[ARG_active_low].u_obj, "active_low");
    uint32_t on_at_boot = mask_arg(args[ARG_on_at_boot].u_obj, "on_at_boot");

    #if MICROPY_ENABLE_DYNRUNTIME
    relaygpio_bank_obj_t *self = mp_obj_malloc(relaygpio_bank_obj_t, type);
    self->ticks_us = mp_load_attr(mp_import_name(MP_QSTR_time, mp_const_none, MP_OBJ_NEW_SMALL_INT(0)), MP_QSTR_ticks_us);
    #else
    relaygpio_bank_obj_t *self = mp_obj_malloc_with_finaliser(relaygpio_bank_obj_t, type);
    #endif
    self->alive = false;
    check(self, relay_bank_init(&self->core, pins, n, active_low, on_at_boot, tick_us, clock_now(self)), &big, mp_const_none);
    self->alive = true;
    return MP_OBJ_FROM_PTR(self);
}

// ---- switching ----

static mp_obj_t bank_set(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args > 4) {
        mp_raise_TypeError(MP_ERROR_TEXT("set(relay, on, now=None)"));
    }
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int i = i32_arg(args[1], &big);
    bool on = bool_arg(args[2]);
    if (n_args == 3 && (kw == NULL || !kw->used) && relay_set_plain(&self->core, i, on)) {
        return MP_OBJ_NEW_SMALL_INT(RELAY_OK);
    }
    relay_time_t now = now_arg(self, n_args, args, 3, kw);
    return MP_OBJ_NEW_SMALL_INT(check(self, relay_set(&self->core, i, on, now), &big, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_set_obj, 3, bank_set);

static mp_obj_t bank_toggle(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args > 3) {
        mp_raise_TypeError(MP_ERROR_TEXT("toggle(relay, now=None)"));
    }
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int i = i32_arg(args[1], &big);
    relay_time_t now = now_for(self, relay_bit(i), n_args, args, 2, kw);
    return MP_OBJ_NEW_SMALL_INT(check(self, relay_toggle(&self->core, i, now), &big, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_toggle_obj, 2, bank_toggle);

static mp_obj_t bank_write(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args > 4) {
        mp_raise_TypeError(MP_ERROR_TEXT("write(mask, values, now=None)"));
    }
    uint32_t mask = mask_arg(args[1], "mask");
    uint32_t values = mask_arg(args[2], "values");
    if (n_args == 3 && (kw == NULL || !kw->used) && relay_write_plain(&self->core, mask, values)) {
        return MP_OBJ_NEW_SMALL_INT(RELAY_OK);
    }
    relay_time_t now = now_for(self, mask, n_args, args, 3, kw);
    return MP_OBJ_NEW_SMALL_INT(check(self, relay_write(&self->core, mask, values, now), NULL, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_write_obj, 3, bank_write);

static mp_obj_t bank_pulse(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args < 3 || n_args > 4) {
        mp_raise_TypeError(MP_ERROR_TEXT("pulse(relay, ms, now=None)"));
    }
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int i = i32_arg(args[1], &big);
    int32_t ms = i32_arg(args[2], &big);
    relay_time_t now = now_arg(self, n_args, args, 3, kw);
    return MP_OBJ_NEW_SMALL_INT(check(self, relay_pulse(&self->core, i, ms, now), &big, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_pulse_obj, 3, bank_pulse);

static mp_obj_t bank_get(mp_obj_t self_in, mp_obj_t i_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    return mp_obj_new_bool(check(self, relay_get(&self->core, i32_arg(i_in, &big)), &big, mp_const_none));
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
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int i = i32_arg(i_in, &big);
    int32_t ms = i32_arg(ms_in, &big);
    check(self, relay_set_min_interval(&self->core, i, ms), &big, mp_const_none);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(bank_min_interval_obj, bank_min_interval);

static mp_obj_t bank_interlock(mp_obj_t self_in, mp_obj_t mask_in, mp_obj_t dead_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    uint32_t mask = mask_arg(mask_in, "mask");
    int32_t dead = i32_arg(dead_in, &big);
    return MP_OBJ_NEW_SMALL_INT(check(self, relay_add_interlock(&self->core, mask, dead), &big, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_3(bank_interlock_obj, bank_interlock);

static mp_obj_t bank_input(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_pin, ARG_debounce_ms, ARG_active_low, ARG_pull, ARG_toggles };
    ARG_TABLE allowed_args[] = {
        { MP_QSTR_pin, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(0)} },
        { MP_QSTR_debounce_ms, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(20)} },
        { MP_QSTR_active_low, MP_ARG_BOOL, {.u_bool = true} },
        { MP_QSTR_pull, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(RELAY_PULL_UP)} },
        { MP_QSTR_toggles, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_INT(-1)} },
    };
    relaygpio_bank_obj_t *self = get_bank(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int pin = i32_arg(args[ARG_pin].u_obj, &big);
    int32_t deb = i32_arg(args[ARG_debounce_ms].u_obj, &big);
    int pull = i32_arg(args[ARG_pull].u_obj, &big);
    int toggles = i32_arg(args[ARG_toggles].u_obj, &big);
    int r = relay_add_input(&self->core, pin, deb, args[ARG_active_low].u_bool, pull, toggles);
    return MP_OBJ_NEW_SMALL_INT(check(self, r, &big, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_input_obj, 2, bank_input);

static mp_obj_t bank_input_value(mp_obj_t self_in, mp_obj_t j_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    return mp_obj_new_bool(check(self, relay_input_value(&self->core, i32_arg(j_in, &big)), &big, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_input_value_obj, bank_input_value);

static mp_obj_t bank_edges(mp_obj_t self_in, mp_obj_t j_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    uint32_t edges = 0;
    check(self, relay_input_edges(&self->core, i32_arg(j_in, &big), &edges), &big, mp_const_none);
    return mp_obj_new_int_from_uint(edges);
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

static mp_obj_t bank_autotick(mp_obj_t self_in, mp_obj_t period_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int32_t period = i32_arg(period_in, &big);
    int r = relay_autotick_start(&self->core, period);
    #if RELAYGPIO_ROOTED_AUTOTICK
    // past the range check the board's timer was stopped, whichever bank it ticked
    if (r != RELAY_ERR_AUTOTICK) {
        MP_STATE_PORT(relaygpio_autotick_bank) = r == 1 ? self : NULL;
    }
    #endif
    return mp_obj_new_bool(check(self, r, &big, mp_const_none));
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_autotick_obj, bank_autotick);

// ---- watchdog supervisor ----

static mp_obj_t bank_slot(mp_obj_t self_in, mp_obj_t name_in, mp_obj_t window_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    const char *name = mp_obj_str_get_str(name_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int32_t window = i32_arg(window_in, &big);
    return MP_OBJ_NEW_SMALL_INT(check(self, relay_add_slot(&self->core, name, window), &big, name_in));
}
static MP_DEFINE_CONST_FUN_OBJ_3(bank_slot_obj, bank_slot);

static mp_obj_t bank_checkin(size_t n_args, const mp_obj_t *args, mp_map_t *kw) {
    relaygpio_bank_obj_t *self = get_bank(args[0]);
    if (n_args > 3) {
        mp_raise_TypeError(MP_ERROR_TEXT("checkin(slot, now=None)"));
    }
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int slot = i32_arg(args[1], &big);
    check(self, relay_checkin(&self->core, slot, now_arg(self, n_args, args, 2, kw)), &big, mp_const_none);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bank_checkin_obj, 2, bank_checkin);

static mp_obj_t bank_watchdog(mp_obj_t self_in, mp_obj_t timeout_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    check(self, relay_wdt_start(&self->core, i32_arg(timeout_in, &big)), &big, mp_const_none);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_watchdog_obj, bank_watchdog);

static mp_obj_t str_or_none(const char *s) {
    if (s == NULL || s[0] == 0) {
        return mp_const_none;
    }
    return mp_obj_new_str(s, cstr_len(s));
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

// The relay state the bank applied at creation, kept across a watchdog or soft
// reset (instead of on_at_boot); None after a cold start.
static mp_obj_t bank_restored(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    if (!self->core.hw.restored_valid) {
        return mp_const_none;
    }
    return mp_obj_new_int_from_uint(self->core.hw.restored);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_restored_obj, bank_restored);

// ---- metrics ----

static mp_obj_t bank_switches(mp_obj_t self_in, mp_obj_t i_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    uint32_t switches = 0;
    check(self, relay_switches(&self->core, i32_arg(i_in, &big), &switches), &big, mp_const_none);
    return mp_obj_new_int_from_uint(switches);
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_switches_obj, bank_switches);

static void dict_put(mp_obj_t d, qstr key, uint32_t v) {
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(key), mp_obj_new_int_from_uint(v));
}

static mp_obj_t new_uint_list(size_t n, const uint32_t *v) {
    // made at its final size: appending would grow (reallocate) it
    mp_obj_t items[RELAY_MAX];
    for (size_t i = 0; i < n; i++) {
        items[i] = mp_obj_new_int_from_uint(v[i]);
    }
    return mp_obj_new_list(n, items);
}

static mp_obj_t bank_metrics(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    const relay_bank_t *b = &self->core;
    uint32_t v[RELAY_METRIC_COUNT + RELAY_MAX + RELAY_INPUT_MAX];
    relay_metrics_values(b, v, MP_ARRAY_SIZE(v));
    // twice the slots the 11 keys need: a full table probes (and divides) far longer
    mp_obj_t d = mp_obj_new_dict(23);
    dict_put(d, MP_QSTR_ticks, v[RELAY_METRIC_TICKS]);
    dict_put(d, MP_QSTR_late_ticks, v[RELAY_METRIC_LATE_TICKS]);
    dict_put(d, MP_QSTR_deferred, v[RELAY_METRIC_DEFERRED]);
    dict_put(d, MP_QSTR_rejected_interval, v[RELAY_METRIC_REJECTED_INTERVAL]);
    dict_put(d, MP_QSTR_rejected_interlock, v[RELAY_METRIC_REJECTED_INTERLOCK]);
    dict_put(d, MP_QSTR_pulses_expired, v[RELAY_METRIC_PULSES_EXPIRED]);
    dict_put(d, MP_QSTR_input_edges, v[RELAY_METRIC_INPUT_EDGES]);
    dict_put(d, MP_QSTR_wdt_feeds, v[RELAY_METRIC_WDT_FEEDS]);
    dict_put(d, MP_QSTR_writes, v[RELAY_METRIC_WRITES]);
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_switches),
        new_uint_list(b->n_relays, v + RELAY_METRIC_COUNT));
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_edges),
        new_uint_list(b->n_inputs, v + RELAY_METRIC_COUNT + b->n_relays));
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_metrics_obj, bank_metrics);

// metrics_into(buf): the same figures with no allocation, for a scrape loop:
// METRICS order, then switches per relay, then edges per input, into an
// array('I'). Returns how many values it wrote.
static mp_obj_t bank_metrics_into(mp_obj_t self_in, mp_obj_t buf_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    mp_buffer_info_t info;
    mp_get_buffer_raise(buf_in, &info, MP_BUFFER_WRITE);
    if (info.typecode != 'I' || ((uintptr_t)info.buf & 3u)) {
        mp_raise_TypeError(MP_ERROR_TEXT("metrics_into() needs an array('I')"));
    }
    size_t cap = info.len / 4;
    size_t n = relay_metrics_values(&self->core, (uint32_t *)info.buf, cap);
    if (n > cap) {
        static const char fmt[] = "metrics buffer holds %d values, needs %d";
        mp_obj_t items[2] = { MP_OBJ_NEW_SMALL_INT(cap), MP_OBJ_NEW_SMALL_INT(n) };
        mp_raise_type_arg(&mp_type_ValueError, mp_binary_op(MP_BINARY_OP_MODULO,
            mp_obj_new_str(fmt, sizeof(fmt) - 1), mp_obj_new_tuple(2, items)));
    }
    return MP_OBJ_NEW_SMALL_INT(n);
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_metrics_into_obj, bank_metrics_into);


// ---- simulated backend access, for tests ----

#if defined(RELAY_HW_SIM)
static unsigned sim_pin(relaygpio_bank_obj_t *self, mp_obj_t arg) {
    relaygpio_big_t big = { MP_OBJ_NULL, 0 };
    int pin = i32_arg(arg, &big);
    check(self, relay_check_pin(&self->core, pin), &big, mp_const_none);
    return (unsigned)pin;
}

static mp_obj_t bank_sim_level(mp_obj_t self_in, mp_obj_t pin_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    return MP_OBJ_NEW_SMALL_INT(relay_hw_sim_level(&self->core.hw, sim_pin(self, pin_in)));
}
static MP_DEFINE_CONST_FUN_OBJ_2(bank_sim_level_obj, bank_sim_level);

static mp_obj_t bank_sim_drive(mp_obj_t self_in, mp_obj_t pin_in, mp_obj_t level_in) {
    relaygpio_bank_obj_t *self = get_bank(self_in);
    int level = level_in == mp_const_none ? -1 : (mp_obj_is_true(level_in) ? 1 : 0);
    relay_hw_sim_drive(&self->core.hw, sim_pin(self, pin_in), level);
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

// The simulated watchdog scratch[5..7] (hw_keep.h): sim_scratch() reads them,
// sim_scratch(words) loads them, as the simulation does across a process restart.
static mp_obj_t relaygpio_sim_scratch(size_t n_args, const mp_obj_t *args) {
    if (n_args == 0) {
        mp_obj_t words[RELAY_KEEP_WORDS];
        for (unsigned i = 0; i < RELAY_KEEP_WORDS; i++) {
            words[i] = mp_obj_new_int_from_uint(relay_hw_sim_scratch[i]);
        }
        return mp_obj_new_tuple(RELAY_KEEP_WORDS, words);
    }
    mp_obj_t *items;
    size_t len;
    mp_obj_get_array(args[0], &len, &items);
    if (len != RELAY_KEEP_WORDS) {
        mp_raise_ValueError(MP_ERROR_TEXT("sim_scratch needs 3 words"));
    }
    uint32_t words[RELAY_KEEP_WORDS];
    for (unsigned i = 0; i < RELAY_KEEP_WORDS; i++) {
        words[i] = mask_arg(items[i], "scratch word");
    }
    for (unsigned i = 0; i < RELAY_KEEP_WORDS; i++) {
        relay_hw_sim_scratch[i] = words[i];
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(relaygpio_sim_scratch_obj, 0, 1, relaygpio_sim_scratch);
#endif

// ---- end of life ----

// The hardware timer must never tick a freed or released bank.
static void autotick_release(relaygpio_bank_obj_t *self) {
    #if RELAYGPIO_ROOTED_AUTOTICK
    if (MP_STATE_PORT(relaygpio_autotick_bank) == self) {
        relay_autotick_stop(&self->core);
        MP_STATE_PORT(relaygpio_autotick_bank) = NULL;
    }
    #else
    (void)self;
    #endif
}

static mp_obj_t bank_deinit(mp_obj_t self_in) {
    relaygpio_bank_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->alive) {
        autotick_release(self);
        self->alive = false;
        relay_bank_deinit(&self->core);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_deinit_obj, bank_deinit);

#if !MICROPY_ENABLE_DYNRUNTIME
// The finaliser runs on soft reset too.
static mp_obj_t bank_del(mp_obj_t self_in) {
    autotick_release(MP_OBJ_TO_PTR(self_in));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(bank_del_obj, bank_del);

#define RELAYGPIO_ROM_METHOD(name, obj) { MP_ROM_QSTR(name), MP_ROM_PTR(&obj) },
static const mp_rom_map_elem_t bank_locals_dict_table[] = {
    RELAYGPIO_BANK_METHODS(RELAYGPIO_ROM_METHOD)
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

// the counters in relay_metrics_values() order, as metrics_into() fills them
static const mp_rom_obj_tuple_t relaygpio_metrics_obj = {
    {&mp_type_tuple}, RELAY_METRIC_COUNT,
    {
        MP_ROM_QSTR(MP_QSTR_ticks),
        MP_ROM_QSTR(MP_QSTR_late_ticks),
        MP_ROM_QSTR(MP_QSTR_deferred),
        MP_ROM_QSTR(MP_QSTR_rejected_interval),
        MP_ROM_QSTR(MP_QSTR_rejected_interlock),
        MP_ROM_QSTR(MP_QSTR_pulses_expired),
        MP_ROM_QSTR(MP_QSTR_input_edges),
        MP_ROM_QSTR(MP_QSTR_wdt_feeds),
        MP_ROM_QSTR(MP_QSTR_writes),
    },
};

#define RELAYGPIO_ROM_INT(name, value) { MP_ROM_QSTR(name), MP_ROM_INT(value) },
#define RELAYGPIO_ROM_FUNCTION(name, obj) { MP_ROM_QSTR(name), MP_ROM_PTR(&obj) },
static const mp_rom_map_elem_t relaygpio_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_relaygpio) },
    { MP_ROM_QSTR(MP_QSTR_Bank), MP_ROM_PTR(&relaygpio_bank_type) },
    { MP_ROM_QSTR(MP_QSTR_REASONS), MP_ROM_PTR(&relaygpio_reasons_obj) },
    { MP_ROM_QSTR(MP_QSTR_METRICS), MP_ROM_PTR(&relaygpio_metrics_obj) },
    { MP_ROM_QSTR(MP_QSTR_IMPL), MP_ROM_QSTR(MP_QSTR_c) },
    RELAYGPIO_MODULE_FUNCTIONS(RELAYGPIO_ROM_FUNCTION)
    RELAYGPIO_INT_CONSTANTS(RELAYGPIO_ROM_INT)
};
static MP_DEFINE_CONST_DICT(relaygpio_module_globals, relaygpio_module_globals_table);

const mp_obj_module_t relaygpio_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&relaygpio_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_relaygpio, relaygpio_user_cmodule);
#if RELAYGPIO_ROOTED_AUTOTICK
MP_REGISTER_ROOT_POINTER(struct _relaygpio_bank_obj_t *relaygpio_autotick_bank);
#endif
#endif // !MICROPY_ENABLE_DYNRUNTIME
