/*
 * kernels_impl.h — private glue between the dispatcher (kernels.c) and the
 * per-ISA implementation files. Not for use outside src/kernels.
 */
#ifndef CINFER_KERNELS_IMPL_H
#define CINFER_KERNELS_IMPL_H

#include <string.h>

#include "kernels/kernels.h"

#define CI_Q8_BYTES 34 /* sizeof(ci_block_q8_0), asserted in kernels.c */
#define CI_Q4_BYTES 18

/* Tables each implementation file fills; the caller has checked the CPU. */
void ci_kernels_fill_scalar(ci_kernel_table *t);
void ci_kernels_fill_avx2(ci_kernel_table *t, int vnni);
void ci_kernels_fill_avx512(ci_kernel_table *t, int vnni, int bf16);

/* Scalar pieces the SIMD tables reuse where SIMD would not pay (or would
 * need a vector exp that changes results). */
void ci_silu_mul_scalar(float *out, const float *gate, const float *up, int n);
void ci_softmax_scalar(float *x, int n);
void ci_quantize_q8_0_scalar(void *dst, const float *src, size_t n);

/* Unaligned-safe little loads: weights come from mmapped files at any
 * byte offset, so never dereference a cast pointer. */
static inline uint16_t ci_ld_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float ci_ld_f32(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

#endif
