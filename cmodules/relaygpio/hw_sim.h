// The simulated board's state (hw_sim.c): pin levels and a watchdog held in
// memory, so tests read outputs and drive inputs. Included by relay_hw.h.
#ifndef HW_SIM_H
#define HW_SIM_H

#ifndef RELAY_HW_NUM_PINS
#define RELAY_HW_NUM_PINS (64)
#endif
#define RELAY_HW_HAS_AUTOTICK (0)           // the host ticks from Python

typedef uint64_t relay_pinmask_t;
// The simulated watchdog scratch[5..7] (hw_keep.h), one set per process.
extern uint32_t relay_hw_sim_scratch[3];
#define RELAY_HW_KEEP_WORDS (relay_hw_sim_scratch)

typedef struct {
    relay_pinmask_t out_mask;               // pins this bank drives
    relay_pinmask_t in_mask;                // pins this bank reads
    volatile uint32_t *keep_words;          // RELAY_HW_KEEP_WORDS once bound (hw_keep.h)
    uint32_t keep_seed;                     // the check's seed: magic and the bank's layout
    uint32_t pulsing;                       // relays in a pulse, as last kept
    uint32_t restored;                      // the kept state applied at creation
    uint8_t restored_valid;                 // 0: a cold start, restored means nothing
    relay_pinmask_t level;                  // physical output levels
    relay_pinmask_t driven;                 // input levels driven by tests
    relay_pinmask_t driven_valid;           // pins a test drives (others float to their pull)
    relay_pinmask_t ever_high;              // outputs ever driven high (proves "no glitch")
    relay_pinmask_t ever_low;               // outputs ever driven low
    relay_pinmask_t pulled_up;              // inputs idle high when not driven
    uint32_t writes;                        // output register writes
    uint32_t wdt_timeout_us;
    uint32_t wdt_since_feed_us;
    uint8_t wdt_enabled;
    uint32_t resets;                        // simulated watchdog resets
    char cause[16];                         // cause kept across a (simulated) reset
} relay_hw_t;


// Test access to the simulated board.
int relay_hw_sim_level(const relay_hw_t *hw, unsigned pin);            // 0/1
void relay_hw_sim_drive(relay_hw_t *hw, unsigned pin, int level);      // level -1 releases

#endif // HW_SIM_H
