// RP2040 backend for the natmod: a natmod cannot call the pico-sdk, so this
// writes the registers itself, mirroring what the pico-sdk 2.1.1 functions
// used by hw_rp2.c write. Addresses from its rp2040 hardware_regs headers.
#if defined(RELAY_HW_RP2_SIO)

#include "relay_hw.h"
#include "hw_rp2_cause.h"

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

// atomic set / clear / xor aliases of peripheral registers (not SIO)
#define ALIAS_XOR (0x1000u)
#define ALIAS_SET (0x2000u)
#define ALIAS_CLR (0x3000u)

#define SIO_BASE (0xd0000000u)
#define SIO_GPIO_IN (SIO_BASE + 0x004u)
#define SIO_GPIO_OUT (SIO_BASE + 0x010u)
#define SIO_GPIO_OUT_SET (SIO_BASE + 0x014u)
#define SIO_GPIO_OUT_CLR (SIO_BASE + 0x018u)
#define SIO_GPIO_OUT_XOR (SIO_BASE + 0x01cu)
#define SIO_GPIO_OE (SIO_BASE + 0x020u)
#define SIO_GPIO_OE_SET (SIO_BASE + 0x024u)
#define SIO_GPIO_OE_CLR (SIO_BASE + 0x028u)

#define IO_BANK0_BASE (0x40014000u)
#define IO_GPIO_CTRL(pin) (IO_BANK0_BASE + 0x004u + 8u * (pin))
#define FUNCSEL_SIO (5u)

#define PADS_BANK0_BASE (0x4001c000u)
#define PADS_GPIO(pin) (PADS_BANK0_BASE + 0x004u + 4u * (pin))
#define PADS_PDE (1u << 2)
#define PADS_PUE (1u << 3)
#define PADS_IE (1u << 6)
#define PADS_OD (1u << 7)

#define PSM_WDSEL (0x40010000u + 0x008u)
#define PSM_WDSEL_ALL_BUT_OSC (0x0001fffcu)     // PSM_WDSEL_BITS without ROSC, XOSC

#define WDT_BASE (0x40058000u)
#define WDT_CTRL (WDT_BASE + 0x00u)
#define WDT_LOAD (WDT_BASE + 0x04u)
#define WDT_REASON (WDT_BASE + 0x08u)
#define WDT_SCRATCH(i) (WDT_BASE + 0x0cu + 4u * (i))
#define WDT_CTRL_TRIGGER (1u << 31)
#define WDT_CTRL_ENABLE (1u << 30)
#define WDT_CTRL_PAUSE (7u << 24)                // PAUSE_DBG1, PAUSE_DBG0, PAUSE_JTAG
#define WDT_LOAD_MAX (0x00ffffffu)
#define WDT_REASON_TIMER (1u << 0)
#define WDT_NON_REBOOT_MAGIC (0x6ab73121u)      // what watchdog_enable() leaves in scratch[4]

// In scratch[4]: scratch[0..3] hold a stall cause (same as hw_rp2.c).
_Static_assert(WDT_SCRATCH(RELAY_KEEP_FIRST) == 0x40058020u, "RELAY_HW_KEEP_WORDS (hw_rp2.h)");

// gpio_init(): input, output latch 0, pad input on and output enabled, SIO function.
static void sio_gpio_init(unsigned pin) {
    uint32_t m = 1u << pin;
    REG(SIO_GPIO_OE_CLR) = m;
    REG(SIO_GPIO_OUT_CLR) = m;
    REG(PADS_GPIO(pin) + ALIAS_SET) = PADS_IE;
    REG(PADS_GPIO(pin) + ALIAS_CLR) = PADS_OD;
    REG(IO_GPIO_CTRL(pin)) = FUNCSEL_SIO;
}

void relay_hw_init_outputs(relay_hw_t *hw, relay_pinmask_t pins, relay_pinmask_t levels) {
    uint32_t m = (uint32_t)pins;
    uint32_t oe = REG(SIO_GPIO_OE);
    for (unsigned pin = 0; pin < RELAY_HW_NUM_PINS; pin++) {
        // a pin SIO drives already (a soft reset left it) is not released first: it goes
        // straight to its level, no glitch through the pull-down
        if ((m & (1u << pin)) && !((oe & (1u << pin))
                                   && (REG(IO_GPIO_CTRL(pin)) & 0x1fu) == FUNCSEL_SIO)) {
            sio_gpio_init(pin);
        }
    }
    // levels before direction: each pin starts driving its power-on level
    REG(SIO_GPIO_OUT_CLR) = m & ~(uint32_t)levels;
    REG(SIO_GPIO_OUT_SET) = m & (uint32_t)levels;
    REG(SIO_GPIO_OE_SET) = m;
    hw->out_mask |= pins;
}

void relay_hw_init_input(relay_hw_t *hw, unsigned pin, int pull) {
    sio_gpio_init(pin);
    uint32_t want = (pull == RELAY_PULL_UP ? PADS_PUE : 0u) | (pull == RELAY_PULL_DOWN ? PADS_PDE : 0u);
    // hw_write_masked(): one xor-alias store changes only the pull bits
    REG(PADS_GPIO(pin) + ALIAS_XOR) = (REG(PADS_GPIO(pin)) ^ want) & (PADS_PUE | PADS_PDE);
    hw->in_mask |= (relay_pinmask_t)(1u << pin);
}

relay_pinmask_t relay_hw_read(relay_hw_t *hw) {
    (void)hw;
    return REG(SIO_GPIO_IN);
}

void relay_hw_release(relay_hw_t *hw) {
    relay_keep_forget(hw->keep_words, hw->keep_seed);
    REG(SIO_GPIO_OE_CLR) = (uint32_t)hw->out_mask;
    hw->out_mask = 0;
    hw->in_mask = 0;
}

// The load value is kept in the bank (wdt_timeout_us): a natmod has no static data.
static void wdt_load(relay_hw_t *hw) {
    // the RP2040 watchdog counts down twice per us (erratum RP2040-E1)
    uint32_t load = hw->wdt_timeout_us * 2u;
    REG(WDT_LOAD) = load > WDT_LOAD_MAX ? WDT_LOAD_MAX : load;
}

void relay_hw_wdt_start(relay_hw_t *hw, uint32_t timeout_ms) {
    // watchdog_enable(timeout_ms, true); this also clears a stall cause's magic
    REG(WDT_SCRATCH(4)) = WDT_NON_REBOOT_MAGIC;
    REG(WDT_CTRL + ALIAS_CLR) = WDT_CTRL_ENABLE;
    REG(PSM_WDSEL + ALIAS_SET) = PSM_WDSEL_ALL_BUT_OSC;
    REG(WDT_CTRL + ALIAS_SET) = WDT_CTRL_PAUSE;
    hw->wdt_timeout_us = timeout_ms * 1000u;
    wdt_load(hw);
    REG(WDT_CTRL + ALIAS_SET) = WDT_CTRL_ENABLE;
}

void relay_hw_wdt_feed(relay_hw_t *hw) {
    wdt_load(hw);
}

int relay_hw_wdt_elapse(relay_hw_t *hw, uint32_t elapsed_us) {
    (void)hw;
    (void)elapsed_us;
    return 0;   // the hardware counts on its own
}

void relay_hw_wdt_reset(relay_hw_t *hw, const char *cause) {
    (void)hw;
    __asm volatile ("cpsid i" ::: "memory");
    uint32_t words[4];
    relay_cause_pack(cause, words);
    for (unsigned w = 0; w < 4; w++) {
        REG(WDT_SCRATCH(w)) = words[w];
    }
    REG(WDT_SCRATCH(4)) = RELAY_CAUSE_MAGIC;
    // _watchdog_enable(0, false) without its scratch[4] = 0 (watchdog_reboot)
    REG(WDT_CTRL + ALIAS_CLR) = WDT_CTRL_ENABLE;
    REG(PSM_WDSEL + ALIAS_SET) = PSM_WDSEL_ALL_BUT_OSC;
    REG(WDT_CTRL + ALIAS_CLR) = WDT_CTRL_PAUSE;
    REG(WDT_CTRL + ALIAS_SET) = WDT_CTRL_TRIGGER;
    for (;;) {
    }
}

void relay_hw_reset_cause(relay_hw_t *hw, char *buf, size_t len) {
    (void)hw;
    uint32_t scratch[5];
    for (unsigned i = 0; i < 5; i++) {
        scratch[i] = REG(WDT_SCRATCH(i));
    }
    relay_cause_unpack(REG(WDT_REASON), WDT_REASON_TIMER, scratch, buf, len);
}

#endif // RELAY_HW_RP2_SIO
