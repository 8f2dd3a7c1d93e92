// The relay state kept across a reset without a flash write, shared by every
// backend (hw_rp2.c, hw_rp2_sio.c in watchdog scratch[5..7]; hw_sim.c in memory).
// Three words: the state, the relays in a pulse, and a check word (a hash of a
// magic, the bank's pin layout, the state and the pulsing mask). A power-on
// clears the scratch registers, so the check fails and the bank boots cold; a
// bank with other pins or polarities never applies another bank's state.
//
// Why scratch[5..7]: scratch[0..4] hold the stall cause (hw_rp2_cause.h); the
// pico-sdk writes scratch[4..7] only for watchdog_reboot() to an address (with
// 0xb007c0d3 in scratch[4], which the bootrom acts on), and MicroPython 1.25's
// rp2 port uses none of them. Such a reboot overwrites 5..7 and fails the check.
//
// A relay that was in a pulse comes back off: the time left is unknown, and a
// relay is never on longer than commanded.
#ifndef RELAY_HW_KEEP_H
#define RELAY_HW_KEEP_H

#include <stdint.h>
#include <stddef.h>

#define RELAY_KEEP_MAGIC (0x4b455031u)    // "KEP1"
#define RELAY_KEEP_FIRST (5u)             // the first scratch word used
#define RELAY_KEEP_WORDS (3u)

// FNV-1a over the four bytes of word, little-endian (the layout, once per bank).
static inline uint32_t relay_keep_hash(uint32_t h, uint32_t word) {
    for (unsigned k = 0; k < 4; k++) {
        h ^= (word >> (k * 8u)) & 0xffu;
        h *= 16777619u;
    }
    return h;
}

// The check's seed for a bank: the magic, the relay count, each pin, the active-low mask.
static inline uint32_t relay_keep_seed(const uint8_t *pins, size_t n, uint32_t active_low) {
    uint32_t h = relay_keep_hash(relay_keep_hash(2166136261u, RELAY_KEEP_MAGIC), (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        h = relay_keep_hash(h, pins[i]);
    }
    return relay_keep_hash(h, active_low);
}

// On every change, so a few cycles: one multiply by the (odd) seed, then an
// xorshift; a change of any bit of state or pulsing changes the check. The
// multiplier is not a constant, so the compiler keeps the one-cycle MULS.
static inline uint32_t relay_keep_check(uint32_t seed, uint32_t state, uint32_t pulsing) {
    uint32_t h = (seed ^ state ^ ((pulsing << 16) | (pulsing >> 16))) * (seed | 1u);
    h ^= h >> 16;
    return h ? h : 1u;      // never 0: cleared registers never pass
}

// Stores the three words (a reset between the stores fails the check: a cold
// start, never a wrong state).
static inline void relay_keep_store(volatile uint32_t *words, uint32_t seed, uint32_t state,
    uint32_t pulsing) {
    words[0] = state;
    words[1] = pulsing;
    words[2] = relay_keep_check(seed, state, pulsing);
}

// 1 and *state (relays that were in a pulse cleared) when words hold a state
// kept for seed, else 0.
static inline int relay_keep_unpack(uint32_t seed, const uint32_t words[RELAY_KEEP_WORDS],
    uint32_t *state) {
    if (words[2] != relay_keep_check(seed, words[0], words[1])) {
        return 0;
    }
    *state = words[0] & ~words[1];
    return 1;
}

static inline int relay_keep_load(const volatile uint32_t *words, uint32_t seed, uint32_t *state) {
    uint32_t w[RELAY_KEEP_WORDS] = { words[0], words[1], words[2] };
    return relay_keep_unpack(seed, w, state);
}

// A released bank keeps nothing: the next one boots cold (unless another layout keeps).
static inline void relay_keep_forget(volatile uint32_t *words, uint32_t seed) {
    uint32_t state;
    if (words && relay_keep_load(words, seed, &state)) {
        words[RELAY_KEEP_WORDS - 1] = 0;    // the check word
    }
}

#endif // RELAY_HW_KEEP_H
