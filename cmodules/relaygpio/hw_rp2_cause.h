// The stall cause kept across a watchdog reset, shared by both RP2040 backends
// (hw_rp2.c, hw_rp2_sio.c), which differ only in how they reach the registers:
// the slot name, NUL padded, little-endian in scratch[0..3], a magic in scratch[4].
#ifndef RELAY_HW_RP2_CAUSE_H
#define RELAY_HW_RP2_CAUSE_H

#include <stdint.h>
#include <stddef.h>

// The bootrom only acts on 0xb007c0d3 in scratch[4]; the pico-sdk writes 0 or 0x6ab73121.
#define RELAY_CAUSE_MAGIC (0x52454c59u)   // "RELY"

static inline void relay_cause_pack(const char *cause, uint32_t words[4]) {
    unsigned n = 0;
    while (n < 15 && cause[n]) {
        n++;
    }
    for (unsigned w = 0; w < 4; w++) {
        uint32_t word = 0;
        for (unsigned k = 0; k < 4; k++) {
            unsigned i = w * 4u + k;
            if (i < n) {
                word |= (uint32_t)(uint8_t)cause[i] << (k * 8u);
            }
        }
        words[w] = word;
    }
}

// reason: the WATCHDOG REASON register; timer: its TIMER bit; scratch: scratch[0..4].
static inline void relay_cause_unpack(uint32_t reason, uint32_t timer, const uint32_t scratch[5],
    char *buf, size_t len) {
    if (!len) {
        return;
    }
    size_t n = 0;
    if (reason && scratch[4] == RELAY_CAUSE_MAGIC) {
        for (unsigned i = 0; i < 15 && n + 1 < len; i++) {
            char c = (char)(scratch[i >> 2] >> ((i & 3u) * 8u));
            if (!c) {
                break;
            }
            buf[n++] = c;
        }
    } else if (reason & timer) {
        // the watchdog ran out (ticks stopped); a forced reboot such as
        // machine.reset() sets only the FORCE bit and is not reported
        const char *w = "watchdog";
        while (w[n] && n + 1 < len) {
            buf[n] = w[n];
            n++;
        }
    }
    buf[n] = 0;
}

#endif // RELAY_HW_RP2_CAUSE_H
