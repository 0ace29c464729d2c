/*
 * kernels.h — numeric kernels of the Qwen3 forward pass.
 *
 * Design
 *  - Every kernel has a scalar reference (kernels_scalar.c) and SIMD
 *    versions beside it (kernels_avx2.c, kernels_avx512.c). The build uses
 *    no -march flag: SIMD files enable instruction sets per function with
 *    `#pragma GCC target`, and ci_kernels_init() picks, once, the best
 *    implementation table for the running CPU (cpuid + xgetbv through
 *    __builtin_cpu_supports), so one binary runs on any x86-64.
 *  - CINFER_CPU=scalar|avx2|avx512 caps the level (tests, comparisons).
 *    CINFER_BF16=fast opts in to the AVX512-BF16 matmul for BF16 weights
 *    (see "BF16 weights" below); the default is the exact fp32 path.
 *  - ci_matmul is THE hot operation. It parallelises over weight rows with
 *    the thread pool (threadpool.h); within a thread a tile of up to 4 weight
 *    rows is multiplied against all batch rows, 4 at a time, so each weight
 *    byte comes from memory once per call. Every output element is computed
 *    by the same sequence of operations whatever the tile shape, the batch
 *    size or the thread count, so results are bitwise independent of them
 *    (prefill and decode of the same token agree exactly).
 *  - Semantics follow llama.cpp/ggml for parity:
 *      F32/F16 weights: widen to fp32, FMA, fp32 accumulators.
 *      BF16 weights   : widen to fp32 (exact), FMA (reference). Fast opt-in
 *                       path: x rounded to bf16 (RNE), vdpbf16ps. Extra error
 *                       per output ≤ 2^-8 · Σ|x_k·w_k| (x rounded to 8 bits).
 *      Q8_0/Q4_0      : x is quantized per 32-block to Q8_0 exactly like
 *                       ggml's quantize_row_q8_0 reference, block dots are
 *                       exact int32 sums, each scaled by d_w·d_x in fp32
 *                       and accumulated in fp32.
 *    SIMD and scalar results differ only by fp32 summation order.
 *  - Weights may sit at any byte address (mmapped files): all loads are
 *    unaligned-safe (loadu / memcpy).
 *  - Packed weights (ci_pack_weights, kernels_packed.c): on AVX512-VNNI the
 *    loader copies Q8_0 matrices into an aligned layout (quants as w+128 in
 *    64-byte block pairs, scales apart) and fuses q/k/v and gate/up into one
 *    product each. Same int32 lanes and the same fp32 operation sequence as
 *    the ggml-layout kernel, so results are bitwise equal to ci_matmul's
 *    (tested); decode GEMV ~1.3x and batched products ~2x faster.
 *  - Quantized block layouts are ggml's:
 *      Q8_0 = { fp16 d; int8 qs[32]; }   34 bytes, x[j] = d·qs[j]
 *      Q4_0 = { fp16 d; uint8 qs[16]; }  18 bytes, x[j] = d·((qs[j]&15)-8),
 *                                         x[j+16] = d·((qs[j]>>4)-8), j<16
 *  - Weight values of Q8_0 equal to -128 never come out of ggml's
 *    quantizer; the AVX2/AVX512-BW int8 paths (abs/sign trick) would
 *    saturate on a pair of them, so results then may differ by one unit of
 *    d_w·d_x from the reference. VNNI paths are exact for all values.
 */
#ifndef CINFER_KERNELS_H
#define CINFER_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ weight types */

typedef enum ci_wtype {
    CI_WT_F32,
    CI_WT_F16,
    CI_WT_BF16,
    CI_WT_Q8_0,
    CI_WT_Q4_0,
    CI_WT_COUNT
} ci_wtype;

#define CI_QK 32 /* elements per Q8_0 / Q4_0 block */

typedef struct ci_block_q8_0 { uint16_t d; int8_t qs[CI_QK]; } ci_block_q8_0;
typedef struct ci_block_q4_0 { uint16_t d; uint8_t qs[CI_QK / 2]; } ci_block_q4_0;

/* "f32", "f16", "bf16", "q8_0", "q4_0"; "?" for an invalid value. */
const char *ci_wtype_name(ci_wtype wt);
/* Elements per block: 1 for float types, 32 for block types, 0 if invalid. */
int ci_wtype_block_size(ci_wtype wt);
/* Bytes per block (4, 2, 2, 34, 18), 0 if invalid. */
size_t ci_wtype_block_bytes(ci_wtype wt);
/* Bytes of a row of n elements; 0 when wt is invalid or n is not a multiple
 * of the block size (or the size overflows). */
size_t ci_row_bytes(ci_wtype wt, size_t n);

/* ------------------------------------------------------------- conversions */

/* fp16 <-> fp32: exact widening; narrowing rounds to nearest even, overflows
 * to ±inf, keeps NaN a NaN (quiet, sign and top payload bits kept). */
float ci_fp16_to_fp32(uint16_t h);
uint16_t ci_fp32_to_fp16(float f);
/* bf16 <-> fp32: exact widening; narrowing rounds to nearest even, NaN stays
 * NaN (quieted, never rounded into inf). */
float ci_bf16_to_fp32(uint16_t h);
uint16_t ci_fp32_to_bf16(float f);

void ci_fp16_to_fp32_row(float *dst, const uint16_t *src, size_t n);
void ci_fp32_to_fp16_row(uint16_t *dst, const float *src, size_t n);
void ci_bf16_to_fp32_row(float *dst, const uint16_t *src, size_t n);
void ci_fp32_to_bf16_row(uint16_t *dst, const float *src, size_t n);

/* ggml reference quantizers; n must be a multiple of 32. dst gets
 * ci_row_bytes(type, n) bytes and may be unaligned. */
void ci_quantize_row_q8_0(void *dst, const float *src, size_t n);
void ci_quantize_row_q4_0(void *dst, const float *src, size_t n);
/* Any wtype from f32 (for tests and converters). Returns 0, or -1 when n
 * does not fit the type. */
int ci_quantize_row(void *dst, ci_wtype wt, const float *src, size_t n);
/* Row of any wtype to f32 (embedding lookup). Returns 0, or -1 as above. */
int ci_dequantize_row(float *dst, const void *src, ci_wtype wt, size_t n);

/* ------------------------------------------------------------------ matmul */

/* y[b*ldy + r] = Σ_k x[b*ldx + k] · W[r][k] for b < batch, r < rows.
 * W is rows×cols, row-major, each row ci_row_bytes(wt, cols) bytes.
 * cols must fit wt (multiple of 32 for Q8_0/Q4_0). y must not overlap x or w.
 * Uses the thread pool; call from one thread at a time (see threadpool.h). */
void ci_matmul(float *y, size_t ldy, const float *x, size_t ldx, int batch,
               const void *w, ci_wtype wt, int rows, int cols);

/* ------------------------------------------------------- packed weights */

/* A weight matrix repacked at load for the selected kernels (today: Q8_0 for
 * AVX512-VNNI, see kernels_packed.c), results bitwise equal to ci_matmul on
 * the original. Several matrices with the same cols (q/k/v, gate/up) can be
 * packed into one so one call computes them all: segment s has rows[s] rows
 * from w[s] and is written to its own output by ci_matmul_packed. */
typedef struct ci_packed ci_packed;

/* NULL when the selected kernels have no packed form for wt (scalar/AVX2
 * CPUs, CINFER_PACK=0), when n_seg is outside 1..4, or when a segment other
 * than the last has a row count that is not a multiple of 4: then use
 * ci_matmul. Uses the thread pool. */
ci_packed *ci_pack_weights(int n_seg, const void *const *w, const int *rows, ci_wtype wt, int cols);
void ci_packed_free(ci_packed *p);
size_t ci_packed_bytes(const ci_packed *p);
/* For each segment s: y[s][b*ldy[s] + r] = Σ_k x[b*ldx + k] · W_s[r][k]. */
void ci_matmul_packed(const ci_packed *p, float *const *y, const size_t *ldy, const float *x, size_t ldx, int batch);

/* --------------------------------------------------------- row kernels */

/* out = x / sqrt(mean(x²) + eps) * weight; mean of squares in fp32 (as HF's
 * Qwen3RMSNorm computes it after .to(float32)). out may equal x. */
void ci_rmsnorm(float *out, const float *x, const float *weight, int n, float eps);
/* SwiGLU: out[i] = gate[i] / (1 + exp(-gate[i])) * up[i]. out may alias. */
void ci_silu_mul(float *out, const float *gate, const float *up, int n);
/* In-place softmax, max-subtracted, fp32. n ≥ 1. */
void ci_softmax(float *x, int n);
/* Residual: y[i] += x[i]. */
void ci_add(float *y, const float *x, int n);
/* NeoX / HF rotate_half rotation of one head: for i < h = head_dim/2,
 *   v[i]   = v[i]·cos[i]   - v[i+h]·sin[i]
 *   v[i+h] = v[i+h]·cos[i] + v[i]·sin[i]
 * cos/sin hold head_dim/2 values (HF's cat((freqs, freqs)) halves are equal).
 * Products and the sum are rounded separately, as torch does. */
void ci_rope_neox(float *vec, int head_dim, const float *cos, const float *sin);
/* cos/sin (head_dim/2 each) for position pos, as HF's default rotary:
 * inv_freq[i] = 1 / theta^((float)(2i) / head_dim) in fp32 (theta taken as
 * fp32), angle = (float)pos · inv_freq[i] in fp32, cos/sin of that fp32 angle
 * correctly rounded. */
void ci_rope_cache(float *cos, float *sin, int head_dim, int pos, double theta);

float ci_dot_f32(const float *a, const float *b, int n);
/* y[i] += a · x[i] */
void ci_axpy_f32(float *y, float a, const float *x, int n);
float ci_dot_f32_f16(const float *a, const uint16_t *b, int n);
void ci_axpy_f32_f16(float *y, float a, const uint16_t *x, int n);

/* ---------------------------------------------------------------- dispatch */

/* Idempotent, thread-safe (pthread_once); every kernel calls it lazily, so
 * calling it is optional. */
void ci_kernels_init(void);
/* The selected implementation, e.g. "avx512+vnni", "avx2", "scalar". */
const char *ci_kernels_describe(void);

/* ---- test / bench API: reach one implementation directly ---------------- */

typedef enum ci_kvariant {
    CI_KV_SCALAR,       /* reference */
    CI_KV_AVX2,         /* avx2+fma+f16c */
    CI_KV_AVX2_VNNI,    /* avx2 + AVX-VNNI int8 dots (Alder Lake and later) */
    CI_KV_AVX512,       /* avx512 f/bw/vl/dq */
    CI_KV_AVX512_VNNI,  /* avx512 + avx512vnni int8 dots */
    CI_KV_AVX512_BF16,  /* avx512_vnni + avx512bf16 dot for BF16 weights (fast) */
    CI_KV_COUNT
} ci_kvariant;

typedef struct ci_mm_args {
    float *y;
    size_t ldy;
    const float *x;       /* f32 activations, row stride ldx (floats) */
    size_t ldx;
    const uint8_t *xq;    /* prepared activations (Q8_0 blocks or bf16), */
    size_t xq_stride;     /*   bytes per batch row                        */
    int batch;
    const uint8_t *w;
    size_t w_stride;      /* bytes per weight row */
    int cols;
} ci_mm_args;

/* How ci_matmul prepares x for a table's matmul of a given weight type. */
typedef enum ci_xprep { CI_XPREP_NONE, CI_XPREP_Q8_0, CI_XPREP_BF16 } ci_xprep;

typedef struct ci_kernel_table {
    const char *name;
    /* y rows [r0, r1) for all batch rows */
    void (*matmul[CI_WT_COUNT])(const ci_mm_args *a, int r0, int r1);
    ci_xprep xprep[CI_WT_COUNT];
    /* bit-exact with ci_quantize_row_q8_0 (tested) */
    void (*quantize_q8_0)(void *dst, const float *src, size_t n);
    float (*dot_f32)(const float *a, const float *b, int n);
    void (*axpy_f32)(float *y, float a, const float *x, int n);
    float (*dot_f32_f16)(const float *a, const uint16_t *b, int n);
    void (*axpy_f32_f16)(float *y, float a, const uint16_t *x, int n);
    void (*rmsnorm)(float *out, const float *x, const float *weight, int n, float eps);
    void (*silu_mul)(float *out, const float *gate, const float *up, int n);
    void (*softmax)(float *x, int n);
    void (*add)(float *y, const float *x, int n);
    void (*rope_neox)(float *vec, int head_dim, const float *cos, const float *sin);
} ci_kernel_table;

/* The table of one variant, or NULL when this CPU (or build) lacks it. */
const ci_kernel_table *ci_kernels_get(ci_kvariant v);
/* The table ci_kernels_init selected. */
const ci_kernel_table *ci_kernels_current(void);
/* ci_matmul through a given table (prepares x as that table needs). */
void ci_matmul_with(const ci_kernel_table *t, float *y, size_t ldy, const float *x,
                    size_t ldx, int batch, const void *w, ci_wtype wt, int rows, int cols);

#endif
