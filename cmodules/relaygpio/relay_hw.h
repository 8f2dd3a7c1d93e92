// Hardware backend of the relay core. Exactly one implementation is linked:
// hw_rp2.c (pico-sdk, firmware), hw_rp2_sio.c (direct SIO registers, natmod)
// or hw_sim.c (host: pin levels held in memory for tests to read and drive).
#ifndef RELAY_HW_H
#define RELAY_HW_H

#include <stdint.h>
#include <stddef.h>

#define RELAY_PULL_NONE (0)
#define RELAY_PULL_UP (1)
#define RELAY_PULL_DOWN (2)

// Each backend's header defines relay_pinmask_t (bit p = GPIO p, as wide as
// its pins need), its relay_hw_t (kept inside each bank, so a natmod needs no
// static data), RELAY_HW_NUM_PINS, RELAY_HW_HAS_AUTOTICK and RELAY_HW_KEEP_WORDS.
#include "hw_keep.h"
#if defined(RELAY_HW_SIM)
#include "hw_sim.h"
#else
#include "hw_rp2.h"
#endif

// Set outputs to level_mask first, then make them outputs: no glitch.
void relay_hw_init_outputs(relay_hw_t *hw, relay_pinmask_t pins, relay_pinmask_t levels);
#if !defined(RELAY_HW_INLINE_IO)    // else the backend's header defines them inline
// One register write: pins in mask take their bit of levels, others untouched.
void relay_hw_write(relay_hw_t *hw, relay_pinmask_t mask, relay_pinmask_t levels);
#endif
void relay_hw_init_input(relay_hw_t *hw, unsigned pin, int pull);
relay_pinmask_t relay_hw_read(relay_hw_t *hw);     // physical levels of all pins
void relay_hw_release(relay_hw_t *hw);             // pins back to high-impedance inputs, nothing kept

void relay_hw_wdt_start(relay_hw_t *hw, uint32_t timeout_ms);
void relay_hw_wdt_feed(relay_hw_t *hw);
// Called by every tick with the elapsed time (the simulated watchdog counts it).
// Returns 1 if the watchdog fired (simulated backend; on hardware it never returns).
int relay_hw_wdt_elapse(relay_hw_t *hw, uint32_t elapsed_us);
// Reset the device now through the watchdog, keeping cause for after the reboot.
void relay_hw_wdt_reset(relay_hw_t *hw, const char *cause);
// The cause kept by the last watchdog reset ("" if none or a power-on reset).
void relay_hw_reset_cause(relay_hw_t *hw, char *buf, size_t len);

// The relay state kept across a reset without a flash write (hw_keep.h), in the
// words each backend names RELAY_HW_KEEP_WORDS (watchdog scratch[5..7] on the RP2040).
// At bank creation: binds hw to the bank's layout; returns 1 and the state to
// apply when the last reset kept one for that layout (a watchdog or soft
// reset), 0 on a cold start. hw->restored / hw->restored_valid record it.
static inline int relay_hw_kept(relay_hw_t *hw, const uint8_t *pins, size_t n, uint32_t active_low,
    uint32_t *state) {
    hw->keep_words = RELAY_HW_KEEP_WORDS;
    hw->keep_seed = relay_keep_seed(pins, n, active_low);
    hw->restored_valid = (uint8_t)relay_keep_load(hw->keep_words, hw->keep_seed, state);
    hw->restored = hw->restored_valid ? *state : 0;
    return hw->restored_valid;
}

// On every change: the logical state and the relays in a pulse. Inline: it is on
// the switching path.
static inline void relay_hw_keep(relay_hw_t *hw, uint32_t state, uint32_t pulsing) {
    hw->pulsing = pulsing;
    relay_keep_store(hw->keep_words, hw->keep_seed, state, pulsing);
}

#if RELAY_HW_HAS_AUTOTICK
// A hardware timer calling fn(arg) every period_us, start to start, from an
// interrupt; one per board, a new start replaces it. Returns 0 when it could
// not start.
int relay_hw_autotick_start(uint32_t period_us, void (*fn)(void *arg), void *arg);
void relay_hw_autotick_stop(void);
uint32_t relay_hw_now_us(void);             // the time base of the timer's ticks
#else
// No hardware timer (the host; the natmod, which cannot reach the firmware's
// timer pool): the application ticks, and the core never starts one.
static inline int relay_hw_autotick_start(uint32_t period_us, void (*fn)(void *arg), void *arg) {
    (void)period_us;
    (void)fn;
    (void)arg;
    return 0;
}

static inline void relay_hw_autotick_stop(void) {
}

static inline uint32_t relay_hw_now_us(void) {
    return 0;
}
#endif

#if !defined(RELAY_HW_INLINE_IO)
// Critical section against the tick running from a timer interrupt.
uint32_t relay_hw_lock(void);
void relay_hw_unlock(uint32_t state);
#endif

#endif // RELAY_HW_H
