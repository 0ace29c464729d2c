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

/* AMX tiles usable by this process and allowed by CINFER_CPU (the default,
 * "amx"); the permission request to the kernel is made once, in
 * ci_kernels_init. Each thread must still load a tile configuration
 * (_tile_loadconfig) before its first tile instruction. */
int ci_amx_int8_usable(void);
int ci_amx_bf16_usable(void);

/* Scalar pieces the SIMD tables reuse where SIMD would not pay (or would
 * need a vector exp that changes results). */
void ci_silu_mul_scalar(float *out, const float *gate, const float *up, int n);
void ci_softmax_scalar(float *x, int n);
void ci_quantize_q8_0_scalar(void *dst, const float *src, size_t n);

/* ---- packed Q8_0 weights (kernels_packed.c, driver in kernels.c) ---- */

#define CI_PK_XPAIR 192 /* prepared activation bytes per block pair */
#define CI_PK_MAX_SEG 4

struct ci_packed {
    ci_wtype wt;             /* CI_WT_Q8_0 here; CI_WT_BF16: see ci_pack_weights_bf16 */
    int rows, cols, nb, np;  /* nb blocks of 32 per row, np = ceil(nb/2) pairs */
    int n_seg;
    int seg_start[CI_PK_MAX_SEG + 1]; /* row where each segment starts; [n_seg] = rows */
    size_t qstride;          /* bytes per row of q (np·64) */
    size_t dstride;          /* fp16 scales per row of d (nb rounded up to 16) */
    uint8_t *q;
    uint16_t *d;
    void *mem;
    size_t bytes;
};

typedef struct ci_pk_args {
    const ci_packed *p;
    const uint8_t *xp;       /* prepared activations, xstride bytes per batch row */
    size_t xstride;
    int batch;
    float *y[CI_PK_MAX_SEG];
    size_t ldy[CI_PK_MAX_SEG];
} ci_pk_args;

/* x row (nb Q8_0 blocks) → np·CI_PK_XPAIR bytes at 64-aligned dst */
void ci_pk_prep_vnni(uint8_t *dst, const uint8_t *xq8, int nb);
/* all batch rows of packed rows [r0, r1) (r0 a multiple of 4) */
void ci_pk_mm_vnni(const ci_pk_args *a, int r0, int r1);

/* ---- packed BF16 weights (their own file), reached from the generic
 * ci_pack_weights / ci_matmul_packed when wt is BF16. They own p->mem
 * (freed by ci_packed_free) and set p->wt, rows, cols, n_seg, seg_start,
 * bytes; other fields are theirs to use. */
ci_packed *ci_pack_weights_bf16(int n_seg, const void *const *w, const int *rows, int cols);
void ci_matmul_packed_bf16(const ci_packed *p, float *const *y, const size_t *ldy, const float *x, size_t ldx, int batch);

/* Unaligned-safe little loads: weights come from mmapped files at any
 * byte offset, so never dereference a cast pointer. */
static inline uint16_t ci_ld_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float ci_ld_f32(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

#endif
