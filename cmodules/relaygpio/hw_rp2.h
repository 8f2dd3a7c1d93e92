// The RP2040 backends' per-bank state: hw_rp2.c (pico-sdk, firmware) and
// hw_rp2_sio.c (registers, natmod). Included by relay_hw.h.
#ifndef HW_RP2_H
#define HW_RP2_H

#ifndef RELAY_HW_NUM_PINS
#define RELAY_HW_NUM_PINS (30)              // RP2040 user GPIOs
#endif
// The natmod cannot reach the pico-sdk's timer pool or keep a static bank pointer.
#if defined(RELAY_HW_RP2_SIO)
#define RELAY_HW_HAS_AUTOTICK (0)
#else
#define RELAY_HW_HAS_AUTOTICK (1)
#endif

#define RELAY_HW_KEEP_WORDS ((volatile uint32_t *)(uintptr_t)0x40058020u)  // WATCHDOG scratch[5]

typedef struct {
    relay_pinmask_t out_mask;               // pins this bank drives
    relay_pinmask_t in_mask;                // pins this bank reads
    volatile uint32_t *keep_words;          // RELAY_HW_KEEP_WORDS once bound (hw_keep.h)
    uint32_t keep_seed;                     // the check's seed: magic and the bank's layout
    uint32_t pulsing;                       // relays in a pulse, as last kept
    uint32_t restored;                      // the kept state applied at creation
    uint8_t restored_valid;                 // 0: a cold start, restored means nothing
    uint32_t wdt_timeout_us;                // hw_rp2_sio.c's reload value (it has no statics)
} relay_hw_t;

#endif // HW_RP2_H
