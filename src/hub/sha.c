/*
 * sha.c — SHA-256 and SHA-1 written from FIPS 180-4 (sections 5.1, 6.1, 6.2).
 *
 * Plain portable C: hashing a downloaded shard is bounded by disk reads, not
 * by this loop, so there is no SIMD path. Both share the padding logic: the
 * message is followed by 0x80, zeros, and the bit length big-endian, to a
 * multiple of 64 bytes.
 */
#include "hub/sha.h"

#include <string.h>

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
static uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static uint32_t load_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++) w[t] = load_be32(p + 4 * t);
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++) w[t] = load_be32(p + 4 * t);
    for (int t = 16; t < 80; t++) w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) f = (b & c) ^ (~b & d), k = 0x5a827999;
        else if (t < 40) f = b ^ c ^ d, k = 0x6ed9eba1;
        else if (t < 60) f = (b & c) ^ (b & d) ^ (c & d), k = 0x8f1bbcdc;
        else f = b ^ c ^ d, k = 0xca62c1d6;
        uint32_t tmp = rotl(a, 5) + f + e + k + w[t];
        e = d, d = c, c = rotl(b, 30), b = a, a = tmp;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

/* Shared buffering: feeds whole 64-byte blocks to `block`. */
#define SHA_UPDATE(s, data, n, block)                                  \
    do {                                                               \
        const uint8_t *p_ = (const uint8_t *)(data);                   \
        size_t n_ = (n);                                               \
        (s)->len += n_;                                                \
        while (n_ > 0) {                                               \
            size_t take_ = 64 - (s)->fill;                             \
            if (take_ > n_) take_ = n_;                                \
            if ((s)->fill == 0 && n_ >= 64) {                          \
                block((s)->h, p_);                                     \
                take_ = 64;                                            \
            } else {                                                   \
                memcpy((s)->buf + (s)->fill, p_, take_);               \
                (s)->fill += take_;                                    \
                if ((s)->fill == 64) block((s)->h, (s)->buf), (s)->fill = 0; \
            }                                                          \
            p_ += take_, n_ -= take_;                                  \
        }                                                              \
    } while (0)

/* Appends the padding and the 64-bit big-endian bit length. */
#define SHA_PAD(s, block)                                              \
    do {                                                               \
        uint64_t bits_ = (s)->len * 8;                                 \
        (s)->buf[(s)->fill++] = 0x80;                                  \
        if ((s)->fill > 56) {                                          \
            memset((s)->buf + (s)->fill, 0, 64 - (s)->fill);           \
            block((s)->h, (s)->buf);                                   \
            (s)->fill = 0;                                             \
        }                                                              \
        memset((s)->buf + (s)->fill, 0, 56 - (s)->fill);               \
        store_be32((s)->buf + 56, (uint32_t)(bits_ >> 32));            \
        store_be32((s)->buf + 60, (uint32_t)bits_);                    \
        block((s)->h, (s)->buf);                                       \
    } while (0)

void ci_sha256_init(ci_sha256 *s) {
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->len = 0;
    s->fill = 0;
}

void ci_sha256_update(ci_sha256 *s, const void *data, size_t n) { SHA_UPDATE(s, data, n, sha256_block); }

void ci_sha256_final(ci_sha256 *s, uint8_t out[32]) {
    SHA_PAD(s, sha256_block);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, s->h[i]);
}

void ci_sha1_init(ci_sha1 *s) {
    static const uint32_t H0[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(s->h, H0, sizeof H0);
    s->len = 0;
    s->fill = 0;
}

void ci_sha1_update(ci_sha1 *s, const void *data, size_t n) { SHA_UPDATE(s, data, n, sha1_block); }

void ci_sha1_final(ci_sha1 *s, uint8_t out[20]) {
    SHA_PAD(s, sha1_block);
    for (int i = 0; i < 5; i++) store_be32(out + 4 * i, s->h[i]);
}

void ci_hex(const uint8_t *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}
