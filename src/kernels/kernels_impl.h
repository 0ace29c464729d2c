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
#define CI_Q4K_BYTES 144 /* ci_block_q4_K, asserted in kernels_kquant.c */
#define CI_Q6K_BYTES 210
#define CI_Q8K_BYTES 292
#define CI_Q8K_BSUMS 260 /* offset of bsums in a Q8_K block (after d, qs) */

/* Instruction sets per region of a file (the build has no -march flag):
 *   CI_TARGET_BEGIN("avx2,fma,f16c") ... CI_TARGET_END
 * compiles every function in between for that ISA. GCC does it with
 * `#pragma GCC target`; clang ignores that pragma, so there the region gives
 * each function the same target attribute (`#pragma clang attribute`). The
 * regions' functions are reached only after ci_cpu_features() says the CPU
 * has the ISA. */
#define CI_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define CI_TARGET_BEGIN(isa) CI_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define CI_TARGET_END CI_PRAGMA(clang attribute pop)
#else
#define CI_TARGET_BEGIN(isa) CI_PRAGMA(GCC push_options) CI_PRAGMA(GCC target(isa))
#define CI_TARGET_END CI_PRAGMA(GCC pop_options)
#endif

/* Tables each implementation file fills; the caller has checked the CPU. */
void ci_kernels_fill_scalar(ci_kernel_table *t);
void ci_kernels_fill_avx2(ci_kernel_table *t, int vnni);
void ci_kernels_fill_avx512(ci_kernel_table *t, int vnni);

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

/* ---- attention (kernels_attn.c, kernels_attn_simd.inc) ----
 * Scratch of ci_attention, in floats, each part 64-byte aligned:
 *   S    [rows][pad16(n_pos)]     scores, then exp(s - max)
 *   O    [rows][pad16(d)]         unnormalised outputs
 *   tile [CI_ATTN_TILE][pad16(d)] K^T or V of CI_ATTN_TILE positions, fp32
 *   inv  [pad16(rows)]            1 / Σ e_t per row */
#define CI_ATTN_TILE 64
static inline size_t ci_attn_pad16(size_t n) { return (n + 15) & ~(size_t)15; }
void ci_attention_scalar(const ci_attn_args *a);

/* ---- packed Q8_0 weights (kernels_packed.c, driver in kernels.c) ----
 * Weights in groups of CI_PK_GROUP output rows (each segment padded to a
 * whole group). Group g starts at q + g·qstride and holds, for each 32-block
 * i, the AMX B tile of the block at i·CI_PK_QBLK (8 rows = k-quads of 64
 * bytes: 16 output rows × 4 bytes, u8 = w + 128), then at nb·CI_PK_QBLK the
 * scales, 16 fp16 per block. Prepared activations: per 16 batch rows (one
 * A tile) and block, a CI_PK_XREC record: s8 quants [16][32] at 0, the
 * int32 tile [16][16] at CI_PK_XNC whose row m is 16 × nc_m = -128·Σ (row
 * m's quants) (the VNNI accumulator's start; AMX recomputes it), fp32
 * d_x [16] at CI_PK_XDX; zeros for padding rows. Records are [batch tile][block]. */

#define CI_PK_MAX_SEG 4
#define CI_PK_GROUP 16
#define CI_PK_QBLK 512
#define CI_PK_XREC 1600
#define CI_PK_XNC 512
#define CI_PK_XDX 1536

struct ci_packed {
    ci_wtype wt;             /* CI_WT_Q8_0 here; CI_WT_BF16: see ci_pack_weights_bf16 */
    int rows, cols, nb, np;  /* nb blocks of 32 per row (np: unused by Q8_0) */
    int n_seg;
    int seg_start[CI_PK_MAX_SEG + 1]; /* row where each segment starts; [n_seg] = rows */
    int seg_group[CI_PK_MAX_SEG + 1]; /* Q8_0: group where each segment starts; [n_seg] = groups */
    size_t qstride;          /* Q8_0: bytes per group (quants + scales, multiple of 64) */
    size_t dstride;          /* unused by Q8_0 */
    uint8_t *q;
    uint16_t *d;             /* unused by Q8_0 */
    void *mem;
    size_t bytes;
};

typedef struct ci_pk_args {
    const ci_packed *p;
    const uint8_t *xp;       /* prepared activations, ceil(batch/16)·nb records */
    int batch;
    float *y[CI_PK_MAX_SEG];
    size_t ldy[CI_PK_MAX_SEG];
} ci_pk_args;

/* Batch row b's part of the prepared records from its nb Q8_0 blocks
 * (xq8 NULL: a zero padding row). */
void ci_pk_prep_row(uint8_t *xp, int nb, int b, const uint8_t *xq8);
/* All batch rows of groups [g0, g1). The AMX one loads its own tile
 * configuration (per thread state) and releases the tiles on return. */
void ci_pk_mm_vnni(const ci_pk_args *a, int g0, int g1);
void ci_pk_mm_amx(const ci_pk_args *a, int g0, int g1);

/* ---- packed BF16 weights (their own file), reached from the generic
 * ci_pack_weights / ci_matmul_packed when wt is BF16. They own p->mem
 * (freed by ci_packed_free) and set p->wt, rows, cols, n_seg, seg_start,
 * bytes; other fields are theirs to use. */
ci_packed *ci_pack_weights_bf16(int n_seg, const void *const *w, const int *rows, int cols);
void ci_matmul_packed_bf16(const ci_packed *p, float *const *y, const size_t *ldy, const float *x, size_t ldx, int batch);
/* The packed-BF16 product in scalar code (the definition the packed kernels
 * match bitwise; see kernels_bf16_packed.c): W rows×cols bf16, row-major,
 * any byte alignment. For tests. */
void ci_matmul_bf16_ref(float *y, size_t ldy, const float *x, size_t ldx, int batch, const void *w, int rows, int cols);
/* Test / bench: which packed-BF16 kernel runs (AMX only when usable). */
enum { CI_BF16_KERNEL_AUTO, CI_BF16_KERNEL_AVX512, CI_BF16_KERNEL_AMX };
void ci_bf16_packed_force_kernel(int kernel);

/* The calling thread's scratch buffer (64-byte aligned, ≥ n bytes), reused
 * by the next call from that thread; kernels.c's activation scratch. */
void *ci_kernels_scratch(size_t n);

/* ---- K-quants (kernels_kquant.c) ---- */

/* Q4_K/Q6_K rows → f32 (n a multiple of 256), ggml's dequantize_row_*. */
void ci_dequantize_q4_K(float *dst, const uint8_t *src, size_t n);
void ci_dequantize_q6_K(float *dst, const uint8_t *src, size_t n);

/* The 8 six-bit scales (bytes 0..7) and mins (bytes 8..15) of a Q4_K block
 * from its 12 packed bytes, as four little-endian words: the 32-bit-word
 * form of ggml's get_scale_min_k4 (see kernels.h for the bit layout). SIMD
 * code builds a vector from the words directly (no store/reload). */
static inline void ci_q4k_scale_words(const uint8_t *packed, uint32_t u[4])
{
    uint32_t a, b, c;
    memcpy(&a, packed, 4);
    memcpy(&b, packed + 4, 4);
    memcpy(&c, packed + 8, 4);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    u[0] = a & m6;                                 /* scales 0..3 */
    u[1] = (c & m4) | (((a >> 6) & m2) << 4);      /* scales 4..7 */
    u[2] = b & m6;                                 /* mins 0..3 */
    u[3] = ((c >> 4) & m4) | (((b >> 6) & m2) << 4); /* mins 4..7 */
}

static inline void ci_q4k_scales(const uint8_t *packed, uint8_t out[16])
{
    uint32_t u[4];
    ci_q4k_scale_words(packed, u);
    memcpy(out, u, 16);
}

/* The fp32 epilogue of one K-quant super-block, shared by every kernel
 * that must match the scalar reference bitwise (scalar, AVX-512, AMX): the
 * block's exact int32 dot (and Q4_K min term) scaled and added in fp32, two
 * roundings per term, never fused (strict C11: no fp contraction). */
static inline float ci_kq4_block_acc(float s, float d, float dmin, float dx, int32_t dot, int32_t mins)
{
    s += (d * dx) * (float)dot;
    s -= (dmin * dx) * (float)mins;
    return s;
}
static inline float ci_kq6_block_acc(float s, float d, float dx, int32_t dot) { return s + (d * dx) * (float)dot; }

/* ---- K-quant AMX products (kernels_kq_amx.c), reached from the AVX-512
 * tables' Q4_K/Q6_K matmul for batches ≥ ci_kq_amx_min_batch(q6) when
 * ci_amx_int8_usable(). Rows [r0, r1) of a's product, bitwise the scalar
 * reference's. Loads and releases its own tile configuration. */
void ci_kq_mm_amx(int q6, const ci_mm_args *a, int r0, int r1);
int ci_kq_amx_min_batch(int q6);
/* Test / bench: AMX for batches ≥ n (n ≤ 0: the default; INT_MAX: never). */
void ci_kq_set_amx_min_batch(int n);

/* The value of largest magnitude, with its sign (the first one on ties;
 * NaNs never win): the reference quantizers (Q4_0, Q6_K, Q8_K) map it to
 * the most negative level. */
static inline float ci_signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = x[i] < 0 ? -x[i] : x[i];
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    return max;
}

/* Unaligned-safe little loads: weights come from mmapped files at any
 * byte offset, so never dereference a cast pointer. */
static inline uint16_t ci_ld_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float ci_ld_f32(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

#endif
