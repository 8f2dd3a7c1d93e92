// relaygpio as a native module: the firmware binding compiled against the
// dynamic runtime, with the type and module globals built at import time
// (a natmod cannot hold ROM tables of objects).
#include "py/dynruntime.h"

#if !defined(__linux__)
// the core calls memset; a natmod links no libc, so route it to the firmware's
void *memset(void *s, int c, size_t n) {
    return mp_fun_table.memset_(s, c, n);
}
void *memcpy(void *dst, const void *src, size_t n) {
    return mp_fun_table.memmove_(dst, src, n);
}
#endif

mp_obj_full_type_t relaygpio_bank_type;

#include "relay_core.c"
#if defined(RELAY_HW_SIM)
#include "hw_sim.c"
#else
#include "hw_rp2_sio.c"
#endif
#include "modrelaygpio.c"

// one slot per method in relaygpio_methods.h: the count follows the list
#define RELAYGPIO_COUNT(name, obj) + 1
mp_map_elem_t bank_locals_dict_table[0 RELAYGPIO_BANK_METHODS(RELAYGPIO_COUNT)];
static MP_DEFINE_CONST_DICT(bank_locals_dict, bank_locals_dict_table);

static mp_obj_t bank_unary_op(mp_unary_op_t op, mp_obj_t self_in) {
    if (op == MP_UNARY_OP_LEN) {
        return bank_len(self_in);
    }
    return MP_OBJ_NULL;
}

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY

    relaygpio_bank_type.base.type = (void *)&mp_type_type;
    relaygpio_bank_type.flags = MP_TYPE_FLAG_NONE;
    relaygpio_bank_type.name = MP_QSTR_Bank;
    MP_OBJ_TYPE_SET_SLOT(&relaygpio_bank_type, make_new, bank_make_new, 0);
    MP_OBJ_TYPE_SET_SLOT(&relaygpio_bank_type, unary_op, bank_unary_op, 1);
    mp_map_elem_t *slot = bank_locals_dict_table;
    #define RELAYGPIO_FILL(name, obj) *slot++ = (mp_map_elem_t) { MP_OBJ_NEW_QSTR(name), MP_OBJ_FROM_PTR(&obj) };
    RELAYGPIO_BANK_METHODS(RELAYGPIO_FILL)
    MP_OBJ_TYPE_SET_SLOT(&relaygpio_bank_type, locals_dict, (void *)&bank_locals_dict, 2);

    mp_store_global(MP_QSTR_Bank, MP_OBJ_FROM_PTR(&relaygpio_bank_type));
    mp_obj_t reasons[4] = {
        MP_OBJ_NEW_QSTR(MP_QSTR_ok), MP_OBJ_NEW_QSTR(MP_QSTR_deferred),
        MP_OBJ_NEW_QSTR(MP_QSTR_interval), MP_OBJ_NEW_QSTR(MP_QSTR_interlock),
    };
    mp_store_global(MP_QSTR_REASONS, mp_obj_new_tuple(4, reasons));
    mp_obj_t metrics[RELAY_METRIC_COUNT] = {
        MP_OBJ_NEW_QSTR(MP_QSTR_ticks), MP_OBJ_NEW_QSTR(MP_QSTR_late_ticks),
        MP_OBJ_NEW_QSTR(MP_QSTR_deferred), MP_OBJ_NEW_QSTR(MP_QSTR_rejected_interval),
        MP_OBJ_NEW_QSTR(MP_QSTR_rejected_interlock), MP_OBJ_NEW_QSTR(MP_QSTR_pulses_expired),
        MP_OBJ_NEW_QSTR(MP_QSTR_input_edges), MP_OBJ_NEW_QSTR(MP_QSTR_wdt_feeds),
        MP_OBJ_NEW_QSTR(MP_QSTR_writes),
    };
    mp_store_global(MP_QSTR_METRICS, mp_obj_new_tuple(RELAY_METRIC_COUNT, metrics));
    mp_store_global(MP_QSTR_IMPL, MP_OBJ_NEW_QSTR(MP_QSTR_natmod));
    #define RELAYGPIO_STORE_FUNCTION(name, obj) mp_store_global(name, MP_OBJ_FROM_PTR(&obj));
    RELAYGPIO_MODULE_FUNCTIONS(RELAYGPIO_STORE_FUNCTION)
    #define RELAYGPIO_STORE_INT(name, value) mp_store_global(name, MP_OBJ_NEW_SMALL_INT(value));
    RELAYGPIO_INT_CONSTANTS(RELAYGPIO_STORE_INT)

    MP_DYNRUNTIME_INIT_EXIT
}
