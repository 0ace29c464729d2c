/*
 * numeric.h — little-endian loads and stores for file data, which sits in a
 * mapping only as aligned as the file says. Number conversions (F16, BF16,
 * Q8_0, Q4_0) are the kernels' (kernels/kernels.h): one implementation,
 * bit-exact with the references, serves the converters and the compute paths,
 * so test models hold exactly the values llama.cpp / transformers would hold
 * after their own conversions.
 */
#ifndef CINFER_FORMAT_NUMERIC_H
#define CINFER_FORMAT_NUMERIC_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

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

#endif
