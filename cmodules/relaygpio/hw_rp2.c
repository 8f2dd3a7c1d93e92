// RP2040 backend with the pico-sdk, for the firmware. The natmod, which cannot
// call the pico-sdk, uses hw_rp2_sio.c; the host uses hw_sim.c.
#if !defined(RELAY_HW_SIM) && !defined(RELAY_HW_RP2_SIO)

#include "hardware/gpio.h"
#include "hardware/sync.h"
#include "hardware/watchdog.h"
#include "hardware/structs/psm.h"
#include "hardware/structs/sio.h"
#include "hardware/structs/watchdog.h"
#include "pico/time.h"

#include "relay_hw.h"
#include "hw_rp2_cause.h"

_Static_assert(WATCHDOG_BASE + WATCHDOG_SCRATCH0_OFFSET + 4u * RELAY_KEEP_FIRST == 0x40058020u,
    "RELAY_HW_KEEP_WORDS (hw_rp2.h) is watchdog scratch[5]");

void relay_hw_init_outputs(relay_hw_t *hw, relay_pinmask_t pins, relay_pinmask_t levels) {
    uint32_t m = (uint32_t)pins;
    uint32_t oe = sio_hw->gpio_oe;
    for (unsigned pin = 0; pin < RELAY_HW_NUM_PINS; pin++) {
        // a pin SIO drives already (a soft reset left it) is not released first: it goes
        // straight to its level, no glitch through the pull-down
        if ((m & (1u << pin)) && !((oe & (1u << pin)) && gpio_get_function(pin) == GPIO_FUNC_SIO)) {
            gpio_init(pin);     // input, SIO function, output latch 0
        }
    }
    // levels before direction: each pin starts driving its power-on level
    sio_hw->gpio_clr = m & ~(uint32_t)levels;
    sio_hw->gpio_set = m & (uint32_t)levels;
    gpio_set_dir_out_masked(m);
    hw->out_mask |= pins;
}

void relay_hw_init_input(relay_hw_t *hw, unsigned pin, int pull) {
    gpio_init(pin);
    gpio_set_pulls(pin, pull == RELAY_PULL_UP, pull == RELAY_PULL_DOWN);
    hw->in_mask |= (relay_pinmask_t)(1u << pin);
}

relay_pinmask_t relay_hw_read(relay_hw_t *hw) {
    (void)hw;
    return sio_hw->gpio_in;
}

void relay_hw_release(relay_hw_t *hw) {
    relay_keep_forget(hw->keep_words, hw->keep_seed);
    gpio_set_dir_in_masked((uint32_t)hw->out_mask);
    hw->out_mask = 0;
    hw->in_mask = 0;
}

void relay_hw_wdt_start(relay_hw_t *hw, uint32_t timeout_ms) {
    (void)hw;
    // watchdog_enable also overwrites scratch[4] (with 0x6ab73121), so a later
    // timeout of its own does not find our magic and reads as "watchdog"
    watchdog_hw->scratch[4] = 0;
    watchdog_enable(timeout_ms, true);
}

void relay_hw_wdt_feed(relay_hw_t *hw) {
    (void)hw;
    watchdog_update();
}

int relay_hw_wdt_elapse(relay_hw_t *hw, uint32_t elapsed_us) {
    (void)hw;
    (void)elapsed_us;
    return 0;   // the hardware counts on its own
}

void relay_hw_wdt_reset(relay_hw_t *hw, const char *cause) {
    (void)hw;
    (void)save_and_disable_interrupts();
    uint32_t words[4];
    relay_cause_pack(cause, words);
    for (unsigned w = 0; w < 4; w++) {
        watchdog_hw->scratch[w] = words[w];
    }
    watchdog_hw->scratch[4] = RELAY_CAUSE_MAGIC;
    // Trigger by hand: watchdog_reboot(0, 0, 0) would zero scratch[4]. Same
    // register writes as the pico-sdk's _watchdog_enable(0, false).
    hw_clear_bits(&watchdog_hw->ctrl, WATCHDOG_CTRL_ENABLE_BITS);
    hw_set_bits(&psm_hw->wdsel, PSM_WDSEL_BITS & ~(PSM_WDSEL_ROSC_BITS | PSM_WDSEL_XOSC_BITS));
    hw_clear_bits(&watchdog_hw->ctrl, WATCHDOG_CTRL_PAUSE_DBG0_BITS
        | WATCHDOG_CTRL_PAUSE_DBG1_BITS | WATCHDOG_CTRL_PAUSE_JTAG_BITS);
    hw_set_bits(&watchdog_hw->ctrl, WATCHDOG_CTRL_TRIGGER_BITS);
    for (;;) {
        tight_loop_contents();
    }
}

void relay_hw_reset_cause(relay_hw_t *hw, char *buf, size_t len) {
    (void)hw;
    uint32_t scratch[5];
    for (unsigned i = 0; i < 5; i++) {
        scratch[i] = watchdog_hw->scratch[i];
    }
    relay_cause_unpack(watchdog_hw->reason, WATCHDOG_REASON_TIMER_BITS, scratch, buf, len);
}

// One repeating timer for the board. The firmware has static data, so the
// callback and its argument are kept here.
static repeating_timer_t autotick_timer;
static bool autotick_on;
static void (*autotick_fn)(void *arg);
static void *autotick_arg;

static bool autotick_cb(repeating_timer_t *t) {
    (void)t;
    autotick_fn(autotick_arg);
    return true;
}

int relay_hw_autotick_start(uint32_t period_us, void (*fn)(void *arg), void *arg) {
    relay_hw_autotick_stop();
    autotick_fn = fn;
    autotick_arg = arg;
    // negative delay: period measured start to start, so ticks do not drift
    autotick_on = add_repeating_timer_us(-(int64_t)period_us, autotick_cb, NULL, &autotick_timer);
    return autotick_on;
}

void relay_hw_autotick_stop(void) {
    if (autotick_on) {
        cancel_repeating_timer(&autotick_timer);
        autotick_on = false;
    }
}

uint32_t relay_hw_now_us(void) {
    return time_us_32();
}

#endif // !RELAY_HW_SIM && !RELAY_HW_RP2_SIO
