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

#if defined(RELAY_HW_SIM)
#define BANK_METHODS (25)
#else
#define BANK_METHODS (21)
#endif
mp_map_elem_t bank_locals_dict_table[BANK_METHODS];
static MP_DEFINE_CONST_DICT(bank_locals_dict, bank_locals_dict_table);

static mp_obj_t bank_unary_op(mp_unary_op_t op, mp_obj_t self_in) {
    if (op == MP_UNARY_OP_LEN) {
        return bank_len(self_in);
    }
    return MP_OBJ_NULL;
}

#define METHOD(i, qst, obj) \
    bank_locals_dict_table[i] = (mp_map_elem_t) { MP_OBJ_NEW_QSTR(qst), MP_OBJ_FROM_PTR(&obj) }

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY

    relaygpio_bank_type.base.type = (void *)&mp_type_type;
    relaygpio_bank_type.flags = MP_TYPE_FLAG_NONE;
    relaygpio_bank_type.name = MP_QSTR_Bank;
    MP_OBJ_TYPE_SET_SLOT(&relaygpio_bank_type, make_new, bank_make_new, 0);
    MP_OBJ_TYPE_SET_SLOT(&relaygpio_bank_type, unary_op, bank_unary_op, 1);
    int i = 0;
    METHOD(i++, MP_QSTR_set, bank_set_obj);
    METHOD(i++, MP_QSTR_toggle, bank_toggle_obj);
    METHOD(i++, MP_QSTR_write, bank_write_obj);
    METHOD(i++, MP_QSTR_pulse, bank_pulse_obj);
    METHOD(i++, MP_QSTR_get, bank_get_obj);
    METHOD(i++, MP_QSTR_state, bank_state_obj);
    METHOD(i++, MP_QSTR_min_interval, bank_min_interval_obj);
    METHOD(i++, MP_QSTR_interlock, bank_interlock_obj);
    METHOD(i++, MP_QSTR_input, bank_input_obj);
    METHOD(i++, MP_QSTR_input_value, bank_input_value_obj);
    METHOD(i++, MP_QSTR_edges, bank_edges_obj);
    METHOD(i++, MP_QSTR_tick, bank_tick_obj);
    METHOD(i++, MP_QSTR_autotick, bank_autotick_obj);
    METHOD(i++, MP_QSTR_slot, bank_slot_obj);
    METHOD(i++, MP_QSTR_checkin, bank_checkin_obj);
    METHOD(i++, MP_QSTR_watchdog, bank_watchdog_obj);
    METHOD(i++, MP_QSTR_stalled, bank_stalled_obj);
    METHOD(i++, MP_QSTR_reset_cause, bank_reset_cause_obj);
    METHOD(i++, MP_QSTR_switches, bank_switches_obj);
    METHOD(i++, MP_QSTR_metrics, bank_metrics_obj);
    METHOD(i++, MP_QSTR_deinit, bank_deinit_obj);
    #if defined(RELAY_HW_SIM)
    METHOD(i++, MP_QSTR_sim_level, bank_sim_level_obj);
    METHOD(i++, MP_QSTR_sim_drive, bank_sim_drive_obj);
    METHOD(i++, MP_QSTR_sim_writes, bank_sim_writes_obj);
    METHOD(i++, MP_QSTR_sim_resets, bank_sim_resets_obj);
    #endif
    MP_OBJ_TYPE_SET_SLOT(&relaygpio_bank_type, locals_dict, (void *)&bank_locals_dict, 2);

    mp_store_global(MP_QSTR_Bank, MP_OBJ_FROM_PTR(&relaygpio_bank_type));
    mp_store_global(MP_QSTR_OK, MP_OBJ_NEW_SMALL_INT(RELAY_OK));
    mp_store_global(MP_QSTR_DEFERRED, MP_OBJ_NEW_SMALL_INT(RELAY_DEFERRED));
    mp_store_global(MP_QSTR_REJECTED_INTERVAL, MP_OBJ_NEW_SMALL_INT(RELAY_REJECTED_INTERVAL));
    mp_store_global(MP_QSTR_REJECTED_INTERLOCK, MP_OBJ_NEW_SMALL_INT(RELAY_REJECTED_INTERLOCK));
    mp_obj_t reasons[4] = {
        MP_OBJ_NEW_QSTR(MP_QSTR_ok), MP_OBJ_NEW_QSTR(MP_QSTR_deferred),
        MP_OBJ_NEW_QSTR(MP_QSTR_interval), MP_OBJ_NEW_QSTR(MP_QSTR_interlock),
    };
    mp_store_global(MP_QSTR_REASONS, mp_obj_new_tuple(4, reasons));
    mp_store_global(MP_QSTR_PULL_NONE, MP_OBJ_NEW_SMALL_INT(RELAY_PULL_NONE));
    mp_store_global(MP_QSTR_PULL_UP, MP_OBJ_NEW_SMALL_INT(RELAY_PULL_UP));
    mp_store_global(MP_QSTR_PULL_DOWN, MP_OBJ_NEW_SMALL_INT(RELAY_PULL_DOWN));
    mp_store_global(MP_QSTR_MAX_RELAYS, MP_OBJ_NEW_SMALL_INT(RELAY_MAX));
    mp_store_global(MP_QSTR_MAX_INPUTS, MP_OBJ_NEW_SMALL_INT(RELAY_INPUT_MAX));
    mp_store_global(MP_QSTR_MAX_GROUPS, MP_OBJ_NEW_SMALL_INT(RELAY_GROUP_MAX));
    mp_store_global(MP_QSTR_MAX_SLOTS, MP_OBJ_NEW_SMALL_INT(RELAY_SLOT_MAX));
    mp_store_global(MP_QSTR_NUM_PINS, MP_OBJ_NEW_SMALL_INT(RELAY_HW_NUM_PINS));
    mp_store_global(MP_QSTR_WDT_MAX_MS, MP_OBJ_NEW_SMALL_INT(RELAY_WDT_MAX_MS));
    mp_store_global(MP_QSTR_IMPL, MP_OBJ_NEW_QSTR(MP_QSTR_natmod));

    MP_DYNRUNTIME_INIT_EXIT
}
