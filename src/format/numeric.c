/*
 * numeric.c — see numeric.h. The float <-> half conversion works on the bit
 * patterns so that rounding does not depend on the host FPU or compiler
 * flags (no _Float16, no F16C): results are the same on every machine.
 */
#include "numeric.h"

#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t ci_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return (uint16_t)(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u)); /* NaN stays quiet NaN */
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to infinity */
    if (x < 0x38800000u) {                                   /* below 2^-14: half subnormal or zero */
        if (x < 0x33000000u) return sign;                    /* <= 2^-25 rounds (to even) to zero */
        uint32_t exponent = x >> 23;
        uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - exponent; /* value = mantissa * 2^(exponent-150), unit 2^-24 */
        uint32_t result = mantissa >> shift;
        uint32_t rest = mantissa & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rest > halfway || (rest == halfway && (result & 1u))) result++;
        return (uint16_t)(sign | result); /* a carry into 0x400 is the smallest normal: correct */
    }
    uint32_t result = (x >> 13) - (112u << 10); /* rebias exponent 127 -> 15 */
    uint32_t rest = x & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) result++; /* carry may bump the exponent: correct */
    return (uint16_t)(sign | result);
}

float ci_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return bits_f32(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        if (mantissa == 0) return bits_f32(sign);
        float v = (float)mantissa * 5.9604644775390625e-8f; /* 2^-24, exact */
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

uint16_t ci_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* keep NaN a quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float ci_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

void ci_quantize_q8_0(const float *x, size_t n, uint8_t *out) {
    for (size_t block = 0; block < n / CI_Q8_0_BLOCK; block++) {
        const float *v = x + block * CI_Q8_0_BLOCK;
        uint8_t *dst = out + block * CI_Q8_0_BYTES;
        float amax = 0.0f;
        for (int j = 0; j < CI_Q8_0_BLOCK; j++)
            if (fabsf(v[j]) > amax) amax = fabsf(v[j]);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        ci_store_le16(dst, ci_f32_to_f16(d));
        for (int j = 0; j < CI_Q8_0_BLOCK; j++) dst[2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
    }
}

void ci_dequantize_q8_0(const uint8_t *blocks, size_t n, float *out) {
    for (size_t block = 0; block < n / CI_Q8_0_BLOCK; block++) {
        const uint8_t *src = blocks + block * CI_Q8_0_BYTES;
        float d = ci_f16_to_f32(ci_load_le16(src));
        for (int j = 0; j < CI_Q8_0_BLOCK; j++) out[block * CI_Q8_0_BLOCK + j] = (float)(int8_t)src[2 + j] * d;
    }
}

void ci_quantize_q4_0(const float *x, size_t n, uint8_t *out) {
    for (size_t block = 0; block < n / CI_Q4_0_BLOCK; block++) {
        const float *v = x + block * CI_Q4_0_BLOCK;
        uint8_t *dst = out + block * CI_Q4_0_BYTES;
        /* ggml's reference keeps the sign of the largest-magnitude value. */
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < CI_Q4_0_BLOCK; j++)
            if (fabsf(v[j]) > amax) amax = fabsf(v[j]), max = v[j];
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        ci_store_le16(dst, ci_f32_to_f16(d));
        for (int j = 0; j < CI_Q4_0_BLOCK / 2; j++) {
            float x0 = v[j] * id, x1 = v[j + CI_Q4_0_BLOCK / 2] * id;
            int q0 = (int)(x0 + 8.5f), q1 = (int)(x1 + 8.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            dst[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void ci_dequantize_q4_0(const uint8_t *blocks, size_t n, float *out) {
    for (size_t block = 0; block < n / CI_Q4_0_BLOCK; block++) {
        const uint8_t *src = blocks + block * CI_Q4_0_BYTES;
        float d = ci_f16_to_f32(ci_load_le16(src));
        for (int j = 0; j < CI_Q4_0_BLOCK / 2; j++) {
            out[block * CI_Q4_0_BLOCK + j] = (float)((src[2 + j] & 0x0f) - 8) * d;
            out[block * CI_Q4_0_BLOCK + j + CI_Q4_0_BLOCK / 2] = (float)((src[2 + j] >> 4) - 8) * d;
        }
    }
}
