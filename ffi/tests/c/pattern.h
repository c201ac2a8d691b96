/*
 * The messages of the cross-process tests, shared by the C programs and mirrored in
 * ffi/tests/common/mod.rs (`Pattern`): message `i` is a 12-byte header (the
 * sequence number `i` as a little-endian u64, then the FNV-1a 32-bit checksum of
 * the payload, little-endian) and a payload whose length and bytes follow from `i`.
 */
#ifndef SHMRING_TEST_PATTERN_H
#define SHMRING_TEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#define PATTERN_HEADER 12u

static inline uint64_t pattern_mix(uint64_t x) {
    /* splitmix64 */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Length of message `i`, from 12 to `max_len` bytes (`max_len` >= 12). */
static inline size_t pattern_len(uint64_t i, size_t max_len) {
    return PATTERN_HEADER + (size_t)(pattern_mix(i) % (uint64_t)(max_len - PATTERN_HEADER + 1));
}

static inline uint32_t pattern_fnv1a(const uint8_t *data, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t j = 0; j < len; j++) {
        h ^= data[j];
        h *= 16777619u;
    }
    return h;
}

static inline void pattern_put_le(uint8_t *out, uint64_t v, int bytes) {
    for (int k = 0; k < bytes; k++) out[k] = (uint8_t)(v >> (8 * k));
}

static inline uint64_t pattern_get_le(const uint8_t *in, int bytes) {
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++) v |= (uint64_t)in[k] << (8 * k);
    return v;
}

/* Writes message `i` (`len` = pattern_len(i, ...) bytes) into `out`; returns its
 * checksum. */
static inline uint32_t pattern_fill(uint8_t *out, uint64_t i, size_t len) {
    uint64_t seed = pattern_mix(i ^ 0x5555);
    for (size_t j = PATTERN_HEADER; j < len; j++)
        out[j] = (uint8_t)((seed >> (8 * (j % 8))) ^ (uint64_t)j);
    uint32_t sum = pattern_fnv1a(out + PATTERN_HEADER, len - PATTERN_HEADER);
    pattern_put_le(out, i, 8);
    pattern_put_le(out + 8, sum, 4);
    return sum;
}

/* Checks that `data` is message `i`: 0 if so, else a line number to report. Stores
 * its checksum in `*sum`. */
static inline int pattern_check(const uint8_t *data, size_t len, uint64_t i, size_t max_len,
                                uint32_t *sum) {
    if (len != pattern_len(i, max_len)) return __LINE__;
    if (pattern_get_le(data, 8) != i) return __LINE__;
    uint32_t got = (uint32_t)pattern_get_le(data + 8, 4);
    if (pattern_fnv1a(data + PATTERN_HEADER, len - PATTERN_HEADER) != got) return __LINE__;
    uint64_t seed = pattern_mix(i ^ 0x5555);
    for (size_t j = PATTERN_HEADER; j < len; j++)
        if (data[j] != (uint8_t)((seed >> (8 * (j % 8))) ^ (uint64_t)j)) return __LINE__;
    *sum = got;
    return 0;
}

#endif
