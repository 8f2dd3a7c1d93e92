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

typedef uint32_t relay_pinmask_t;           // one SIO register: no 64-bit work
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

// The calls on every switching path, inline and on the registers (the same for
// the pico-sdk and the natmod backend): on the RP2040 a call costs as much as
// the work.
#define RELAY_HW_INLINE_IO (1)
#define RELAY_HW_SIO_GPIO_OUT (*(volatile uint32_t *)0xd0000010u)
#define RELAY_HW_SIO_GPIO_OUT_XOR (*(volatile uint32_t *)0xd000001cu)

// One register write: pins in mask take their bit of levels, others untouched.
static inline void relay_hw_write(relay_hw_t *hw, relay_pinmask_t mask, relay_pinmask_t levels) {
    (void)hw;
    // one store: every pin in mask changes at the same instant
    RELAY_HW_SIO_GPIO_OUT_XOR = (RELAY_HW_SIO_GPIO_OUT ^ levels) & mask;
}

// Critical section against the tick running from a timer interrupt
// (save_and_disable_interrupts / restore_interrupts).
static inline uint32_t relay_hw_lock(void) {
    uint32_t primask;
    __asm volatile ("mrs %0, PRIMASK\n\tcpsid i" : "=r" (primask) :: "memory");
    return primask;
}

static inline void relay_hw_unlock(uint32_t state) {
    __asm volatile ("msr PRIMASK, %0" :: "r" (state) : "memory");
}

#endif // HW_RP2_H
