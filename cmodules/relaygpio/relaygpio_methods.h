// The Bank methods, once: M(qstr, function object) for each. The firmware's ROM
// locals table and the natmod's table, filled at import, both expand this
// list. Names are spelled out (no token pasting): the natmod's qstr scan reads
// the source text.
#ifndef RELAYGPIO_METHODS_H
#define RELAYGPIO_METHODS_H

#if defined(RELAY_HW_SIM)
#define RELAYGPIO_SIM_METHODS(M) \
    M(MP_QSTR_sim_level, bank_sim_level_obj) \
    M(MP_QSTR_sim_drive, bank_sim_drive_obj) \
    M(MP_QSTR_sim_writes, bank_sim_writes_obj) \
    M(MP_QSTR_sim_resets, bank_sim_resets_obj)
// Module functions: F(qstr, function object).
#define RELAYGPIO_MODULE_FUNCTIONS(F) \
    F(MP_QSTR_sim_scratch, relaygpio_sim_scratch_obj)
#else
#define RELAYGPIO_SIM_METHODS(M)
#define RELAYGPIO_MODULE_FUNCTIONS(F)
#endif

#define RELAYGPIO_BANK_METHODS(M) \
    M(MP_QSTR_set, bank_set_obj) \
    M(MP_QSTR_toggle, bank_toggle_obj) \
    M(MP_QSTR_write, bank_write_obj) \
    M(MP_QSTR_pulse, bank_pulse_obj) \
    M(MP_QSTR_get, bank_get_obj) \
    M(MP_QSTR_state, bank_state_obj) \
    M(MP_QSTR_min_interval, bank_min_interval_obj) \
    M(MP_QSTR_interlock, bank_interlock_obj) \
    M(MP_QSTR_input, bank_input_obj) \
    M(MP_QSTR_input_value, bank_input_value_obj) \
    M(MP_QSTR_edges, bank_edges_obj) \
    M(MP_QSTR_tick, bank_tick_obj) \
    M(MP_QSTR_autotick, bank_autotick_obj) \
    M(MP_QSTR_slot, bank_slot_obj) \
    M(MP_QSTR_checkin, bank_checkin_obj) \
    M(MP_QSTR_watchdog, bank_watchdog_obj) \
    M(MP_QSTR_stalled, bank_stalled_obj) \
    M(MP_QSTR_reset_cause, bank_reset_cause_obj) \
    M(MP_QSTR_restored, bank_restored_obj) \
    M(MP_QSTR_switches, bank_switches_obj) \
    M(MP_QSTR_metrics, bank_metrics_obj) \
    M(MP_QSTR_metrics_into, bank_metrics_into_obj) \
    M(MP_QSTR_deinit, bank_deinit_obj) \
    RELAYGPIO_SIM_METHODS(M)

// Module constants that are small ints: C(qstr, value).
#define RELAYGPIO_INT_CONSTANTS(C) \
    C(MP_QSTR_OK, RELAY_OK) \
    C(MP_QSTR_DEFERRED, RELAY_DEFERRED) \
    C(MP_QSTR_REJECTED_INTERVAL, RELAY_REJECTED_INTERVAL) \
    C(MP_QSTR_REJECTED_INTERLOCK, RELAY_REJECTED_INTERLOCK) \
    C(MP_QSTR_PULL_NONE, RELAY_PULL_NONE) \
    C(MP_QSTR_PULL_UP, RELAY_PULL_UP) \
    C(MP_QSTR_PULL_DOWN, RELAY_PULL_DOWN) \
    C(MP_QSTR_MAX_RELAYS, RELAY_MAX) \
    C(MP_QSTR_MAX_INPUTS, RELAY_INPUT_MAX) \
    C(MP_QSTR_MAX_GROUPS, RELAY_GROUP_MAX) \
    C(MP_QSTR_MAX_SLOTS, RELAY_SLOT_MAX) \
    C(MP_QSTR_MAX_SLOT_NAME, RELAY_SLOT_NAME_LEN - 1) \
    C(MP_QSTR_NUM_PINS, RELAY_HW_NUM_PINS) \
    C(MP_QSTR_WDT_MAX_MS, RELAY_WDT_MAX_MS) \
    C(MP_QSTR_MIN_INTERVAL_MAX_MS, RELAY_MIN_INTERVAL_MAX_MS) \
    C(MP_QSTR_DEAD_TIME_MAX_MS, RELAY_DEAD_TIME_MAX_MS) \
    C(MP_QSTR_SLOT_WINDOW_MAX_MS, RELAY_SLOT_WINDOW_MAX_MS) \
    C(MP_QSTR_DEBOUNCE_MAX_MS, RELAY_DEBOUNCE_MAX_MS) \
    C(MP_QSTR_PULSE_MAX_MS, RELAY_PULSE_MAX_MS) \
    C(MP_QSTR_TICK_MIN_US, RELAY_TICK_MIN_US) \
    C(MP_QSTR_AUTOTICK_MIN_US, RELAY_AUTOTICK_MIN_US) \
    C(MP_QSTR_AUTOTICK_MAX_US, RELAY_AUTOTICK_MAX_US)

#endif // RELAYGPIO_METHODS_H
