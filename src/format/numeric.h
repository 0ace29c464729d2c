/*
 * numeric.h — scalar conversions shared by the format readers and writers:
 * IEEE half (F16) and bfloat16 (BF16) to and from float, with
 * round-to-nearest-even (what PyTorch's .to(bfloat16) and numpy's
 * astype(float16) do), and ggml's Q8_0 block quantization.
 *
 * Everything here is bit-exact with the references on purpose: test models
 * written by cinfer must hold exactly the values llama.cpp / transformers
 * would hold after their own conversions, so comparisons across runtimes
 * measure the runtimes, not the converters.
 */
#ifndef CINFER_FORMAT_NUMERIC_H
#define CINFER_FORMAT_NUMERIC_H

#include <stddef.h>
#include <stdint.h>

uint16_t ci_f32_to_f16(float f);
float ci_f16_to_f32(uint16_t h);
uint16_t ci_f32_to_bf16(float f);
float ci_bf16_to_f32(uint16_t b);

/* Little-endian loads/stores that do not assume alignment (file data inside
 * a mapping is only as aligned as the file says). */
static inline uint16_t ci_load_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ci_load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t ci_load_le64(const uint8_t *p) {
    return (uint64_t)ci_load_le32(p) | ((uint64_t)ci_load_le32(p + 4) << 32);
}
static inline void ci_store_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void ci_store_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ci_store_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ggml block_q8_0: 32 weights share one fp16 scale d; 34 bytes per block. */
#define CI_Q8_0_BLOCK 32
#define CI_Q8_0_BYTES 34
/* Quantizes n floats (n a multiple of 32) into n/32 blocks exactly as ggml's
 * quantize_row_q8_0_ref: d = amax/127 stored as fp16, q = roundf(x * (1/d)). */
void ci_quantize_q8_0(const float *x, size_t n, uint8_t *out);
void ci_dequantize_q8_0(const uint8_t *blocks, size_t n, float *out);

/* ggml block_q4_0: 32 weights, fp16 scale d then 16 bytes of nibbles
 * (low nibbles hold weights 0..15, high nibbles 16..31), value = (q-8)*d. */
#define CI_Q4_0_BLOCK 32
#define CI_Q4_0_BYTES 18
void ci_quantize_q4_0(const float *x, size_t n, uint8_t *out);
void ci_dequantize_q4_0(const uint8_t *blocks, size_t n, float *out);

#endif
