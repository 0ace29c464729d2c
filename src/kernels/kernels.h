/*
 * kernels.h — numeric kernels of the Qwen3 forward pass.
 *
 * Design
 *  - Every kernel has a scalar reference (kernels_scalar.c) and SIMD
 *    versions beside it (kernels_avx2.c, kernels_avx512.c). The build uses
 *    no -march flag: SIMD files enable instruction sets per region
 *    (CI_TARGET_BEGIN: `#pragma GCC target` with gcc, `#pragma clang
 *    attribute` with clang), and ci_kernels_init() picks, once, the best
 *    implementation table for the running CPU (ci_cpu_features: CPUID +
 *    XGETBV), so one binary runs on any x86-64.
 *  - CINFER_CPU=scalar|avx2|avx512|amx caps the level (tests, comparisons);
 *    the default, amx, adds AMX tiles where the CPU and the OS allow them
 *    (ci_kernels_init asks Linux for the tile state once per process).
 *  - ci_matmul is THE hot operation. It parallelises over weight rows with
 *    the thread pool (threadpool.h); within a thread a tile of up to 4 weight
 *    rows is multiplied against all batch rows, 4 at a time, so each weight
 *    byte comes from memory once per call. Every output element is computed
 *    by the same sequence of operations whatever the tile shape, the batch
 *    size or the thread count, so results are bitwise independent of them
 *    (prefill and decode of the same token agree exactly).
 *  - Semantics follow llama.cpp/ggml for parity:
 *      F32/F16 weights: widen to fp32, FMA, fp32 accumulators.
 *      BF16 weights   : ci_matmul widens to fp32 (exact) and FMAs. Packed
 *                       (AVX-512 CPUs, kernels_bf16_packed.c): x rounded to
 *                       bf16 (RNE) and the exact operation order of AMX's
 *                       TDPBF16PS (two fp32 FMA chains per 32 k, DAZ/FTZ),
 *                       which AMX runs for batches ≥ 3 and an AVX-512 kernel
 *                       reproduces bitwise for smaller ones. Extra error per
 *                       output ≤ 2^-8 · Σ|x_k·w_k| (x rounded to 8 bits).
 *                       CINFER_PACK=0 keeps the exact fp32 path.
 *      Q8_0/Q4_0      : x is quantized per 32-block to Q8_0 exactly like
 *                       ggml's quantize_row_q8_0 reference, block dots are
 *                       exact int32 sums isum_i. The reference (and the
 *                       packed Q8_0 kernels, bitwise) accumulate one fp32
 *                       s = fmaf((float)isum_i, d_w·d_x, s) over blocks in
 *                       order (d_w·d_x is exact); the ggml-layout SIMD
 *                       kernels keep per-lane partial sums instead, so they
 *                       differ from it only by fp32 summation order.
 *      Q4_K/Q6_K      : x quantized per 256 to Q8_K as ggml's reference;
 *                       per super-block the scale-weighted sub-block dots
 *                       (and Q4_K's min term) are exact int32s, then one
 *                       shared fp32 epilogue (ggml's vec_dot order). Scalar,
 *                       AVX-512 and the AMX kernel for batches ≥ 12/16
 *                       (kernels_kq_amx.c: quants unpacked per 16-row group
 *                       into B tiles, no packed copy) agree bitwise; AVX2
 *                       keeps its own fp32 order (tested with a tolerance).
 *  - Weights may sit at any byte address (mmapped files): all loads are
 *    unaligned-safe (loadu / memcpy).
 *  - Packed weights (ci_pack_weights, kernels_packed.c): on AVX512-VNNI the
 *    loader copies Q8_0 matrices into groups of 16 rows laid out as AMX B
 *    tiles (u8 w+128, scales apart) and fuses q/k/v and gate/up into one
 *    product each. Batches use AMX tiles where the CPU has them, decode an
 *    AVX512-VNNI GEMV on the same bytes; both follow the reference's
 *    operation order, so results are bitwise the reference's (tested).
 *    BF16 matrices (any AVX-512 CPU) are packed the same way as bf16 AMX B
 *    tiles (kernels_bf16_packed.c); their product is AMX's own (see "BF16
 *    weights" above), bitwise equal between AMX, the AVX-512 kernel and
 *    ci_matmul_bf16_ref, so also independent of batch and threads.
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
    CI_WT_Q4_K,
    CI_WT_Q6_K,
    CI_WT_COUNT
} ci_wtype;

#define CI_QK 32 /* elements per Q8_0 / Q4_0 block */

typedef struct ci_block_q8_0 { uint16_t d; int8_t qs[CI_QK]; } ci_block_q8_0;
typedef struct ci_block_q4_0 { uint16_t d; uint8_t qs[CI_QK / 2]; } ci_block_q4_0;

/* K-quants (kernels_kquant.c): super-blocks of 256 weights, ggml's layouts
 * (ggml-common.h); fp16 fields are raw bits. Element e of a block:
 *  Q4_K: sub-block j = e/32 has a 6-bit scale sc_j and min m_j packed in
 *        scales[12] (j<4: sc = s[j]&63, m = s[j+4]&63; j≥4: sc = (s[j+4]&15) |
 *        (s[j-4]>>6)<<4, m = (s[j+4]>>4) | (s[j]>>6)<<4); the 4-bit q of e sits
 *        in qs[32·(e/64) + e%32], low nibble when e%64 < 32, else high;
 *        x[e] = d·sc_j·q - dmin·m_j.
 *  Q6_K: with h = e/128, p = (e%128)/32, l = e%32 the 6-bit q has its low
 *        4 bits in ql[64h + 32·(p&1) + l] (low nibble for p < 2, else high)
 *        and bits 4-5 in bits 2p, 2p+1 of qh[32h + l];
 *        x[e] = d·scales[e/16]·(q - 32).
 *  Q8_K: activations only: float d, int8 qs (x ≈ d·qs), int16 bsums[i] =
 *        Σ qs[16i..16i+15]. */
#define CI_QK_K 256
typedef struct ci_block_q4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[CI_QK_K / 2]; } ci_block_q4_K;
typedef struct ci_block_q6_K { uint8_t ql[CI_QK_K / 2]; uint8_t qh[CI_QK_K / 4]; int8_t scales[CI_QK_K / 16]; uint16_t d; } ci_block_q6_K;
typedef struct ci_block_q8_K { float d; int8_t qs[CI_QK_K]; int16_t bsums[CI_QK_K / 16]; } ci_block_q8_K;

/* "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"; "?" when invalid. */
const char *ci_wtype_name(ci_wtype wt);
/* Elements per block: 1 for float types, 32 (Q8_0/Q4_0) or 256 (K-quants), 0 if invalid. */
int ci_wtype_block_size(ci_wtype wt);
/* Bytes per block (4, 2, 2, 34, 18, 144, 210), 0 if invalid. */
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
/* ggml's reference K-quantizers (quantize_row_q4_K_ref / q6_K_ref, without
 * an importance matrix) and the Q8_K activation quantizer; n must be a
 * multiple of 256. */
void ci_quantize_row_q4_K(void *dst, const float *src, size_t n);
void ci_quantize_row_q6_K(void *dst, const float *src, size_t n);
void ci_quantize_row_q8_K(void *dst, const float *src, size_t n);
/* Any wtype from f32 (for tests and converters). Returns 0, or -1 when n
 * does not fit the type. */
int ci_quantize_row(void *dst, ci_wtype wt, const float *src, size_t n);
/* Row of any wtype to f32 (embedding lookup). Returns 0, or -1 as above. */
int ci_dequantize_row(float *dst, const void *src, ci_wtype wt, size_t n);

/* ------------------------------------------------------------------ matmul */

/* y[b*ldy + r] = Σ_k x[b*ldx + k] · W[r][k] for b < batch, r < rows.
 * W is rows×cols, row-major, each row ci_row_bytes(wt, cols) bytes.
 * cols must fit wt (multiple of 32 for Q8_0/Q4_0, of 256 for Q4_K/Q6_K).
 * y must not overlap x or w.
 * Uses the thread pool; call from one thread at a time (see threadpool.h). */
void ci_matmul(float *y, size_t ldy, const float *x, size_t ldx, int batch,
               const void *w, ci_wtype wt, int rows, int cols);

/* ------------------------------------------------------- packed weights */

/* A weight matrix repacked at load for the selected kernels (today: Q8_0 for
 * AVX512-VNNI, with AMX tiles for batches where usable; see kernels_packed.c;
 * BF16 for AVX-512, see kernels_bf16_packed.c). Q8_0 results are bitwise
 * those of the scalar reference (ci_kernels_get(CI_KERNEL_SCALAR)), BF16 ones
 * those of ci_matmul_bf16_ref (x rounded to bf16, so not ci_matmul's exact
 * fp32 product), whatever the batch, kernel or thread count. Several
 * matrices with the same cols (q/k/v, gate/up) can be packed into one so one
 * call computes them all: segment s has rows[s] rows from w[s] and is
 * written to its own output by ci_matmul_packed. */
typedef struct ci_packed ci_packed;

/* NULL when the selected kernels have no packed form for wt (scalar/AVX2
 * CPUs, CINFER_PACK=0) or when n_seg is outside 1..4: then use ci_matmul.
 * Uses the thread pool. */
ci_packed *ci_pack_weights(int n_seg, const void *const *w, const int *rows, ci_wtype wt, int cols);
void ci_packed_free(ci_packed *p);
size_t ci_packed_bytes(const ci_packed *p);
/* For each segment s: y[s][b*ldy[s] + r] = Σ_k x[b*ldx + k] · W_s[r][k]. */
void ci_matmul_packed(const ci_packed *p, float *const *y, const size_t *ldy, const float *x, size_t ldx, int batch);
/* Test / bench: Q8_0 products with batch ≥ n use AMX when this process can
 * (n ≤ 0: the default threshold; INT_MAX: never). Results do not change. */
void ci_packed_set_amx_min_batch(int n);

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

/* --------------------------------------------------------------- attention */

/* Causal attention of a run of n_tok query tokens of one sequence, at
 * consecutive positions pos0 .. pos0+n_tok-1, with the `group` query heads
 * that share one KV head, over that head's keys/values in a paged cache
 * (kernels_attn.c, kernels_attn_simd.inc). Query row (token i, head g) at
 * position p = pos0+i attends to positions 0..p:
 *   s_t = (Σ_k q_k·K_t,k) · scale, m = max_t s_t, e_t = exp(s_t - m),
 *   out = (Σ_t e_t·V_t) · (1 / Σ_t e_t).
 * Every row is computed by one fixed operation sequence that depends only on
 * the row's query, its position and the cache — never on n_tok, pos0, group,
 * the scratch or the calling thread — so a query gives bitwise the same
 * output alone (decode) or in any run of any size (prefill), for a given
 * kernel table:
 *   dot    one fp32 accumulator, k = 0..d-1 in order (SIMD: one FMA per k;
 *          scalar reference: a rounded product then a rounded add);
 *   max    exact;
 *   exp    the table's exp (SIMD: a polynomial, ≤ 2 ulp; reference: expf);
 *   sum    reference: one accumulator, t in order. SIMD with L lanes:
 *          e_t goes to partial (t / L) mod 4, lane t mod L, each partial in
 *          increasing t; then (p0+p1)+(p2+p3) and a fixed lane tree;
 *   P·V    per element k one accumulator over t = 0..p in order, then one
 *          multiply by 1/sum.
 * Block layout in the cache: keys transposed ([head_dim][block_size] per
 * block, so SIMD lanes run over positions), values [block_size][head_dim];
 * fp16 or fp32 elements. */
typedef struct ci_attn_args {
    int head_dim;            /* d ≥ 1 */
    int group;               /* query rows per token (≥ 1) */
    int n_tok;               /* ≥ 1 */
    int pos0;                /* ≥ 0 */
    const float *q;          /* row (i, g) at q + i·q_stride + g·head_dim */
    size_t q_stride;         /* floats */
    float *out;              /* row (i, g) at out + i·out_stride + g·head_dim */
    size_t out_stride;
    float scale;             /* 1/sqrt(d) */
    int kv_f32;              /* cache elements: 1 fp32, 0 fp16 */
    const uint8_t *k;        /* keys of block id b at k + b·block_stride */
    const uint8_t *v;        /* values of block id b at v + b·block_stride */
    size_t block_stride;     /* bytes */
    const int32_t *blocks;   /* block ids of positions 0 .. pos0+n_tok-1 */
    int block_size;          /* positions per block ≥ 1 */
    float *scratch;          /* 64-byte aligned, ci_attn_scratch_floats(...) floats */
} ci_attn_args;

/* Floats of scratch ci_attention needs for d = head_dim, rows = group·n_tok
 * query rows and n_pos = pos0+n_tok positions; SIZE_MAX on overflow. */
size_t ci_attn_scratch_floats(int head_dim, int rows, int n_pos);
/* Runs on the calling thread (callers parallelise over runs and KV heads). */
void ci_attention(const ci_attn_args *a);

/* ---------------------------------------------------------------- dispatch */

/* Idempotent, thread-safe (pthread_once); every kernel calls it lazily, so
 * calling it is optional. */
void ci_kernels_init(void);
/* The selected implementation, e.g. "avx512+vnni", "avx2", "scalar". */
const char *ci_kernels_describe(void);

/* Instruction sets this process can use: the CPU reports them (CPUID) and
 * the OS saves their registers (XCR0 through XGETBV). The one detection
 * every kernel choice (and test) goes through; not capped by CINFER_CPU.
 * AMX bits say the CPU and OS support tiles; Linux must still grant them
 * (ci_kernels_init asks). */
enum {
    CI_CPU_AVX2 = 1u << 0,
    CI_CPU_FMA = 1u << 1,
    CI_CPU_F16C = 1u << 2,
    CI_CPU_AVX_VNNI = 1u << 3, /* VEX-encoded vpdpbusd on ymm */
    CI_CPU_AVX512F = 1u << 4,
    CI_CPU_AVX512BW = 1u << 5,
    CI_CPU_AVX512VL = 1u << 6,
    CI_CPU_AVX512DQ = 1u << 7,
    CI_CPU_AVX512_VNNI = 1u << 8,
    CI_CPU_AVX512_BF16 = 1u << 9,
    CI_CPU_AMX_TILE = 1u << 10,
    CI_CPU_AMX_INT8 = 1u << 11,
    CI_CPU_AMX_BF16 = 1u << 12,
};
unsigned ci_cpu_features(void);

/* ---- test / bench API: reach one implementation directly ---------------- */

typedef enum ci_kernel_variant {
    CI_KERNEL_SCALAR,      /* reference */
    CI_KERNEL_AVX2,        /* avx2+fma+f16c */
    CI_KERNEL_AVX2_VNNI,   /* avx2 + AVX-VNNI int8 dots (Alder Lake and later) */
    CI_KERNEL_AVX512,      /* avx512 f/bw/vl/dq */
    CI_KERNEL_AVX512_VNNI, /* avx512 + avx512vnni int8 dots */
    CI_KERNEL_COUNT
} ci_kernel_variant;

typedef struct ci_mm_args {
    float *y;
    size_t ldy;
    const float *x;       /* f32 activations, row stride ldx (floats) */
    size_t ldx;
    const uint8_t *xq;    /* prepared activations (Q8_0/Q8_K blocks or bf16), */
    size_t xq_stride;     /*   bytes per batch row                        */
    int batch;
    const uint8_t *w;
    size_t w_stride;      /* bytes per weight row */
    int cols;
} ci_mm_args;

/* How ci_matmul prepares x for a table's matmul of a given weight type. */
typedef enum ci_xprep { CI_XPREP_NONE, CI_XPREP_Q8_0, CI_XPREP_Q8_K } ci_xprep;

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
    void (*attention)(const ci_attn_args *a);
    /* bitwise ci_fp32_to_fp16_row (tested): KV cache stores */
    void (*fp32_to_fp16_row)(uint16_t *dst, const float *src, size_t n);
} ci_kernel_table;

/* The table of one variant, or NULL when this CPU (or build) lacks it. */
const ci_kernel_table *ci_kernels_get(ci_kernel_variant v);
/* The table ci_kernels_init selected. */
const ci_kernel_table *ci_kernels_current(void);
/* ci_matmul through a given table (prepares x as that table needs). */
void ci_matmul_with(const ci_kernel_table *t, float *y, size_t ldy, const float *x,
                    size_t ldx, int batch, const void *w, ci_wtype wt, int rows, int cols);

#endif
