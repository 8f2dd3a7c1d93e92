// Simulated board for the host (unix port, x64 natmod, C tests): pin levels and
// a watchdog held in relay_hw_t, so tests can read outputs and drive inputs.
// No static data (a natmod has none); the kept-state words are global BSS.
#if defined(RELAY_HW_SIM)

#include "relay_hw.h"

// The simulated watchdog scratch[5..7]: one set per process, as one chip has
// one, kept across banks. Global, not static: a natmod has BSS but no static data.
uint32_t relay_hw_sim_scratch[RELAY_KEEP_WORDS];
_Static_assert(RELAY_KEEP_WORDS == 3, "hw_sim.h declares 3 words");

static relay_pinmask_t sim_bit(unsigned pin) {
    // split by word: a variable 64-bit shift is a libgcc call on some targets
    if (pin < 32) {
        return (relay_pinmask_t)(1u << pin);
    }
    return ((relay_pinmask_t)(1u << (pin - 32))) << 32;
}

static relay_pinmask_t sim_levels(const relay_hw_t *hw) {
    // outputs show what they drive; others what a test drives, else their pull;
    // a released output keeps its last level (as the board's pull would hold it)
    relay_pinmask_t other = (hw->driven & hw->driven_valid)
        | (hw->pulled_up & ~hw->driven_valid)
        | (hw->level & ~hw->driven_valid & ~hw->in_mask);
    return (hw->level & hw->out_mask) | (other & ~hw->out_mask);
}

void relay_hw_init_outputs(relay_hw_t *hw, relay_pinmask_t pins, relay_pinmask_t levels) {
    levels &= pins;
    hw->level = (hw->level & ~pins) | levels;
    hw->ever_high |= levels;
    hw->ever_low |= pins & ~levels;
    hw->out_mask |= pins;
    hw->in_mask &= ~pins;
}

void relay_hw_write(relay_hw_t *hw, relay_pinmask_t mask, relay_pinmask_t levels) {
    mask &= hw->out_mask;
    levels &= mask;
    hw->level = (hw->level & ~mask) | levels;
    hw->ever_high |= levels;
    hw->ever_low |= mask & ~levels;
    hw->writes++;
}

void relay_hw_init_input(relay_hw_t *hw, unsigned pin, int pull) {
    if (pin >= RELAY_HW_NUM_PINS) {
        return;
    }
    relay_pinmask_t m = sim_bit(pin);
    hw->in_mask |= m;
    hw->out_mask &= ~m;
    hw->level &= ~m;
    if (pull == RELAY_PULL_UP) {
        hw->pulled_up |= m;
    } else {
        hw->pulled_up &= ~m;
    }
}

relay_pinmask_t relay_hw_read(relay_hw_t *hw) {
    return sim_levels(hw);
}

void relay_hw_release(relay_hw_t *hw) {
    relay_keep_forget(hw->keep_words, hw->keep_seed);
    // pulls stay, as on the RP2040 backend
    hw->out_mask = 0;
    hw->in_mask = 0;
}

void relay_hw_wdt_start(relay_hw_t *hw, uint32_t timeout_ms) {
    hw->wdt_timeout_us = timeout_ms * 1000u;
    hw->wdt_since_feed_us = 0;
    hw->wdt_enabled = 1;
}

void relay_hw_wdt_feed(relay_hw_t *hw) {
    hw->wdt_since_feed_us = 0;
}

static void sim_reset(relay_hw_t *hw, const char *cause) {
    unsigned i = 0;
    while (i < sizeof(hw->cause) - 1 && cause[i]) {
        hw->cause[i] = cause[i];
        i++;
    }
    while (i < sizeof(hw->cause)) {
        hw->cause[i++] = 0;
    }
    hw->resets++;
    hw->wdt_enabled = 0;    // the rebooted device has no watchdog running
}

int relay_hw_wdt_elapse(relay_hw_t *hw, uint32_t elapsed_us) {
    if (!hw->wdt_enabled) {
        return 0;
    }
    uint32_t since = hw->wdt_since_feed_us + elapsed_us;
    hw->wdt_since_feed_us = since < elapsed_us ? 0xffffffffu : since;
    if (hw->wdt_since_feed_us > hw->wdt_timeout_us) {
        sim_reset(hw, "watchdog");
        return 1;
    }
    return 0;
}

void relay_hw_wdt_reset(relay_hw_t *hw, const char *cause) {
    sim_reset(hw, cause);
}

void relay_hw_reset_cause(relay_hw_t *hw, char *buf, size_t len) {
    if (!len) {
        return;
    }
    size_t i = 0;
    while (i + 1 < len && i < sizeof(hw->cause) && hw->cause[i]) {
        buf[i] = hw->cause[i];
        i++;
    }
    buf[i] = 0;
}

uint32_t relay_hw_lock(void) {
    return 0;
}

void relay_hw_unlock(uint32_t state) {
    (void)state;
}

int relay_hw_sim_level(const relay_hw_t *hw, unsigned pin) {
    if (pin >= RELAY_HW_NUM_PINS) {
        return 0;
    }
    return (sim_levels(hw) & sim_bit(pin)) ? 1 : 0;
}

void relay_hw_sim_drive(relay_hw_t *hw, unsigned pin, int level) {
    if (pin >= RELAY_HW_NUM_PINS) {
        return;
    }
    relay_pinmask_t m = sim_bit(pin);
    if (level < 0) {
        hw->driven_valid &= ~m;
        hw->driven &= ~m;
        return;
    }
    hw->driven_valid |= m;
    if (level) {
        hw->driven |= m;
    } else {
        hw->driven &= ~m;
    }
}

#endif // RELAY_HW_SIM
