// Hardware backend of the relay core. Exactly one implementation is linked:
// hw_rp2.c (pico-sdk, firmware), hw_rp2_sio.c (direct SIO registers, natmod)
// or hw_sim.c (host: pin levels held in memory for tests to read and drive).
#ifndef RELAY_HW_H
#define RELAY_HW_H

#include <stdint.h>
#include <stddef.h>

#ifndef RELAY_HW_NUM_PINS
#if defined(RELAY_HW_SIM)
#define RELAY_HW_NUM_PINS (64)
#else
#define RELAY_HW_NUM_PINS (30)              // RP2040 user GPIOs
#endif
#endif

#define RELAY_PULL_NONE (0)
#define RELAY_PULL_UP (1)
#define RELAY_PULL_DOWN (2)

typedef uint64_t relay_pinmask_t;           // bit p = GPIO p

// Backend state lives inside each bank so a natmod needs no static data.
typedef struct {
    relay_pinmask_t out_mask;               // pins this bank drives
    relay_pinmask_t in_mask;                // pins this bank reads
    // simulated backend only (unused on the RP2040)
    relay_pinmask_t level;                  // physical output levels
    relay_pinmask_t driven;                 // input levels driven by tests
    relay_pinmask_t driven_valid;           // pins a test drives (others float to their pull)
    relay_pinmask_t ever_high;              // outputs ever driven high (proves "no glitch")
    relay_pinmask_t ever_low;               // outputs ever driven low
    relay_pinmask_t pulled_up;              // inputs idle high when not driven
    uint32_t writes;                        // output register writes
    uint32_t wdt_timeout_us;                // also hw_rp2_sio.c's reload value (no statics)
    uint32_t wdt_since_feed_us;
    uint8_t wdt_enabled;
    uint32_t resets;                        // simulated watchdog resets
    char cause[16];                         // cause kept across a (simulated) reset
} relay_hw_t;

// Set outputs to level_mask first, then make them outputs: no glitch.
void relay_hw_init_outputs(relay_hw_t *hw, relay_pinmask_t pins, relay_pinmask_t levels);
// One register write: pins in mask take their bit of levels, others untouched.
void relay_hw_write(relay_hw_t *hw, relay_pinmask_t mask, relay_pinmask_t levels);
void relay_hw_init_input(relay_hw_t *hw, unsigned pin, int pull);
relay_pinmask_t relay_hw_read(relay_hw_t *hw);     // physical levels of all pins
void relay_hw_release(relay_hw_t *hw);             // pins back to high-impedance inputs

void relay_hw_wdt_start(relay_hw_t *hw, uint32_t timeout_ms);
void relay_hw_wdt_feed(relay_hw_t *hw);
// Called by every tick with the elapsed time (the simulated watchdog counts it).
// Returns 1 if the watchdog fired (simulated backend; on hardware it never returns).
int relay_hw_wdt_elapse(relay_hw_t *hw, uint32_t elapsed_us);
// Reset the device now through the watchdog, keeping cause for after the reboot.
void relay_hw_wdt_reset(relay_hw_t *hw, const char *cause);
// The cause kept by the last watchdog reset ("" if none or a power-on reset).
void relay_hw_reset_cause(relay_hw_t *hw, char *buf, size_t len);

// Critical section against the tick running from a timer interrupt.
uint32_t relay_hw_lock(void);
void relay_hw_unlock(uint32_t state);

#ifdef RELAY_HW_SIM
// Test access to the simulated board.
int relay_hw_sim_level(const relay_hw_t *hw, unsigned pin);            // 0/1
void relay_hw_sim_drive(relay_hw_t *hw, unsigned pin, int level);      // level -1 releases
#endif

#endif // RELAY_HW_H
