/*
 * kernels_bf16_packed.c — BF16 weights repacked at load: AMX tiles
 * (TDPBF16PS) for batches and an AVX-512 kernel for decode / small batches
 * that computes bit for bit the same.
 *
 * The product is defined as what TDPBF16PS computes. Probed on the
 * development Xeon against scalar models (random data, cancellation, wide
 * exponent ranges, subnormal and overflowing products, 10^6+ outputs, zero
 * mismatches): one instruction (32 k values into an fp32 accumulator c)
 * keeps two fp32 sums, E over the even k and O over the odd k, each a chain
 * of fused multiply-adds in k order starting from +0, then returns
 * c + (E + O); all roundings are to nearest even, denormal inputs read as 0
 * and denormal results flush to 0, exactly as x86 MXCSR.DAZ/FTZ do
 * (tininess after rounding). It is neither the SDM pseudocode's single
 * chain nor a once-rounded pair sum; VDPBF16PS is one chain taking the odd
 * element of each pair before the even one, so it cannot reproduce AMX.
 * Hence, for every output y[b][r]:
 *   x rounded to bf16 (ci_fp32_to_bf16), k zero-padded to a multiple of 32;
 *   acc = +0; per chunk of 32 k: E = O = +0;
 *     for i < 16: E = fma(w[2i], x[2i], E); O = fma(w[2i+1], x[2i+1], O);
 *     acc = acc + (E + O);
 *   all under DAZ + FTZ + round-to-nearest-even.
 * ci_matmul_bf16_ref is that in scalar code; the AVX-512 kernel runs the
 * same chains, 16 output rows per zmm, with MXCSR set to DAZ|FTZ|RNE while
 * it runs. AMX and AVX-512 therefore agree bitwise, the kernel is picked by
 * batch size alone, and a token's result never depends on the batch it is
 * in, the tiling or the thread count (tested). NaN payloads may differ.
 *
 * Packed layout (64-byte aligned): each segment's rows are cut into groups
 * of 16 (the last one zero-padded); group g, chunk c (32 k) is one 1 KiB
 * block at (g·nc + c)·1024 holding the AMX B tile in VNNI order:
 * 16 k-pairs × 16 rows × 2 bf16, i.e. bytes kp·64 + n·4 + 2e hold
 * W[16g' + n][32c + 2kp + e]. Row kp of a block is also one zmm of
 * (even, odd) pairs for 16 output rows, which is what the AVX-512 kernel
 * loads. A group's blocks are contiguous: one memory stream per group.
 * x goes to the same block layout for AMX (A tiles of 16 batch rows).
 *
 * AMX blocking: 2×2 C tiles (32 batch rows × 2 groups). A batch
 * super-block's x (≤ 1 MiB) stays in L2 while the task's group pairs pass;
 * per group pair the k range is cut into blocks of 16 chunks whose weights
 * (32 KiB) stay in L1 while every batch-tile pair of the super-block
 * passes, so only x streams from L2 (about half the L2 traffic of running
 * each 2×2 block over all k, which did ~0.75-0.85 TFLOP/s per core; a tile
 * loop fed from L1 does ~1.8). C tiles spill to a stack buffer between k
 * blocks, an exact fp32 round trip: every C tile still takes its chunks in
 * order, so the result is unchanged.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "kernels/kernels_impl.h"
#include "kernels/threadpool.h"
#include "util/util.h"

#define BF_GROUP 16       /* output rows per group = C/B tile columns */
#define BF_CHUNK 32       /* k per TDPBF16PS */
#define BF_BLOCK 1024     /* bytes of one (group, chunk) block */
#define BF_MXCSR_FLAGS 0x8040u /* FTZ | DAZ */
#define BF_MXCSR_RC 0x6000u    /* rounding control (00 = nearest even) */

/* Smallest batch that goes to AMX when it is usable. Up to 2 batch rows
 * both kernels stream the weights at memory speed (measured equal); from 3
 * the AVX-512 kernel becomes compute-bound and AMX is several times faster. */
#ifndef BF_AMX_MIN_BATCH
#define BF_AMX_MIN_BATCH 3
#endif

static int g_force_kernel; /* ci_bf16_packed_force_kernel */

void ci_bf16_packed_force_kernel(int kernel) { g_force_kernel = kernel; }

static inline int n_chunks(int cols) { return (cols + BF_CHUNK - 1) / BF_CHUNK; }

/* Group where each segment starts ([n_seg] = total groups). */
static void seg_groups(const ci_packed *p, int gs[CI_PK_MAX_SEG + 1])
{
    gs[0] = 0;
    for (int s = 0; s < p->n_seg; s++)
        gs[s + 1] = gs[s] + (p->seg_start[s + 1] - p->seg_start[s] + BF_GROUP - 1) / BF_GROUP;
}

/* MXCSR with DAZ|FTZ and nearest-even rounding, the mode TDPBF16PS always
 * uses. The compiler barrier keeps the arithmetic between enter and leave
 * (its inputs are loaded and outputs stored there). */
static inline unsigned mxcsr_enter(void)
{
    unsigned old = _mm_getcsr();
    _mm_setcsr((old & ~BF_MXCSR_RC) | BF_MXCSR_FLAGS);
    __asm__ volatile("" ::: "memory");
    return old;
}
static inline void mxcsr_leave(unsigned old)
{
    __asm__ volatile("" ::: "memory");
    _mm_setcsr(old);
}

/* ------------------------------------------------------ scalar reference */

CI_TARGET_BEGIN("fma") /* fmaf as one vfmadd, which obeys MXCSR */

static inline float bf16_at(const uint8_t *row, int k) { return ci_bf16_to_fp32(ci_ld_u16(row + 2 * (size_t)k)); }

__attribute__((noinline)) static void ref_rows(float *y, size_t ldy, const float *x, size_t ldx, int batch,
                                               const uint8_t *w, int rows, int cols, float *xr)
{
    const int kp = n_chunks(cols) * BF_CHUNK;
    for (int b = 0; b < batch; b++) {
        for (int k = 0; k < kp; k++)
            xr[k] = k < cols ? ci_bf16_to_fp32(ci_fp32_to_bf16(x[(size_t)b * ldx + k])) : 0.0f;
        for (int r = 0; r < rows; r++) {
            const uint8_t *wr = w + (size_t)r * (size_t)cols * 2;
            float acc = 0.0f;
            for (int c = 0; c < kp; c += BF_CHUNK) {
                float e = 0.0f, o = 0.0f;
                for (int i = 0; i < BF_CHUNK; i += 2) {
                    const int k = c + i;
                    e = fmaf(k < cols ? bf16_at(wr, k) : 0.0f, xr[k], e);
                    o = fmaf(k + 1 < cols ? bf16_at(wr, k + 1) : 0.0f, xr[k + 1], o);
                }
                acc = acc + (e + o);
            }
            y[(size_t)b * ldy + r] = acc;
        }
    }
}
CI_TARGET_END

void ci_matmul_bf16_ref(float *y, size_t ldy, const float *x, size_t ldx, int batch, const void *w, int rows,
                        int cols)
{
    if (batch <= 0 || rows <= 0 || cols <= 0) return;
    float *xr = ci_malloc(sizeof(float) * (size_t)n_chunks(cols) * BF_CHUNK);
    unsigned old = mxcsr_enter();
    ref_rows(y, ldy, x, ldx, batch, w, rows, cols, xr);
    mxcsr_leave(old);
    free(xr);
}

/* ------------------------------------------------------------- packing */

static int avx512_selected(void)
{
    const ci_kernel_table *t = ci_kernels_current();
    return t == ci_kernels_get(CI_KERNEL_AVX512) || t == ci_kernels_get(CI_KERNEL_AVX512_VNNI);
}

typedef struct pack_job {
    ci_packed *p;
    const void *const *w;
    int gs[CI_PK_MAX_SEG + 1];
    int nc;
} pack_job;

static void pack_group(void *ctx, int g, int thread)
{
    (void)thread;
    const pack_job *j = ctx;
    const ci_packed *p = j->p;
    int s = 0;
    while (s + 1 < p->n_seg && g >= j->gs[s + 1]) s++;
    const int r0 = (g - j->gs[s]) * BF_GROUP;
    const int seg_rows = p->seg_start[s + 1] - p->seg_start[s];
    const size_t rb = (size_t)p->cols * 2;
    const int nv = seg_rows - r0 < BF_GROUP ? seg_rows - r0 : BF_GROUP; /* rows past it are zero */
    const uint8_t *src[BF_GROUP];
    for (int n = 0; n < nv; n++) src[n] = (const uint8_t *)j->w[s] + (size_t)(r0 + n) * rb;
    /* The pair q = (k 2q, 2q+1) of row n is the 32-bit word 16q + n of the
     * group (block q/16, tile row q%16): whole pairs move as one word, and
     * every word is written once, padding included. */
    uint8_t *dst = (uint8_t *)p->mem + (size_t)g * (size_t)j->nc * BF_BLOCK;
    const int pairs = p->cols / 2;
    for (int q = 0; q < j->nc * (BF_CHUNK / 2); q++) {
        uint8_t *line = dst + (size_t)q * 64;
        memset(line + (size_t)nv * 4, 0, (size_t)(BF_GROUP - nv) * 4);
        if (q < pairs) {
            for (int n = 0; n < nv; n++) memcpy(line + 4 * n, src[n] + 4 * (size_t)q, 4);
        } else {
            memset(line, 0, (size_t)nv * 4);
            if (q == pairs && (p->cols & 1)) /* odd cols: the last pair's even half */
                for (int n = 0; n < nv; n++) memcpy(line + 4 * n, src[n] + 4 * (size_t)q, 2);
        }
    }
}

ci_packed *ci_pack_weights_bf16(int n_seg, const void *const *w, const int *rows, int cols)
{
    if (n_seg < 1 || n_seg > CI_PK_MAX_SEG || cols <= 0 || !avx512_selected()) return NULL;
    int total = 0, groups = 0;
    for (int s = 0; s < n_seg; s++) {
        if (rows[s] <= 0 || rows[s] > INT32_MAX - BF_GROUP - total) return NULL;
        total += rows[s];
        groups += (rows[s] + BF_GROUP - 1) / BF_GROUP;
    }
    const int nc = n_chunks(cols);
    size_t bytes;
    if (ci_mul_overflow((size_t)groups * (size_t)nc, BF_BLOCK, &bytes)) return NULL;
    ci_packed *p = ci_calloc(1, sizeof *p);
    p->wt = CI_WT_BF16;
    p->rows = total;
    p->cols = cols;
    p->n_seg = n_seg;
    for (int s = 0, r = 0; s <= n_seg; s++) {
        p->seg_start[s] = r;
        if (s < n_seg) r += rows[s];
    }
    p->bytes = bytes;
    /* Big matrices on transparent huge pages where the system allows them
     * (madvise mode): far fewer page faults while packing and TLB misses
     * while streaming the weights. */
    const size_t huge = (size_t)2 << 20;
    if (posix_memalign(&p->mem, bytes >= huge ? huge : 64, bytes) != 0) {
        free(p);
        return NULL;
    }
    if (bytes >= huge) madvise(p->mem, bytes / huge * huge, MADV_HUGEPAGE); /* advisory: errors ignored */
    pack_job j = { .p = p, .w = w, .nc = nc };
    seg_groups(p, j.gs);
    ci_parallel_for(groups, pack_group, &j);
    return p;
}

/* ----------------------------------------------------------- the product */

CI_TARGET_BEGIN("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-bf16")

#define CI_AI static inline __attribute__((always_inline))

typedef struct bf_job {
    const ci_packed *p;
    int nc, groups, batch, amx;
    int gs[CI_PK_MAX_SEG + 1];
    float *y[CI_PK_MAX_SEG];
    size_t ldy[CI_PK_MAX_SEG];
    /* activations: x rounded to bf16, k padded to nc·32 with zeros.
     * AMX reads xb: bf16 in the weights' block layout, the A tile of batch
     * tile t (16 rows, zero rows past the batch) and chunk c being the 1 KiB
     * at (t·nc + c)·1024. The AVX-512 kernel reads xf: the same values
     * widened to fp32, one row per batch row. */
    const float *x;
    size_t ldx;
    uint16_t *xb;
    float *xf;
    size_t xf_stride;  /* floats per row */
    int prep_rows, rows_per_prep_task;
    int groups_per_task;
} bf_job;

/* ci_fp32_to_bf16 on 16 lanes (integer form, so the same bits, NaN kept a
 * quiet NaN and never rounded into inf). */
CI_AI __m512i round_bf16_x16(__m512i u)
{
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
    __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_mask_blend_epi32(nan, r, q);
}

static void prep_task(void *ctx, int task, int thread)
{
    (void)thread;
    const bf_job *j = ctx;
    const int kp = j->nc * BF_CHUNK, cols = j->p->cols;
    int b0 = task * j->rows_per_prep_task, b1 = b0 + j->rows_per_prep_task;
    if (b1 > j->prep_rows) b1 = j->prep_rows;
    for (int b = b0; b < b1; b++) {
        /* AMX: row b%16 of tile b/16's blocks, one 64-byte line per chunk */
        uint16_t *xb = j->amx ? j->xb + ((size_t)(b / 16) * (size_t)j->nc * 16 + (size_t)(b % 16)) * BF_CHUNK : NULL;
        float *xf = j->amx ? NULL : j->xf + (size_t)b * j->xf_stride;
        const float *xr = b < j->batch ? j->x + (size_t)b * j->ldx : j->x; /* padding rows read nothing */
        for (int k = 0; k < kp; k += 16) {
            const int n = b < j->batch ? (cols - k < 16 ? (cols - k > 0 ? cols - k : 0) : 16) : 0;
            const __mmask16 m = (__mmask16)((1u << n) - 1);
            __m512i h = round_bf16_x16(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, xr + k)));
            h = _mm512_maskz_mov_epi32(m, h);
            if (xb) _mm256_store_si256((__m256i *)(xb + (size_t)(k / BF_CHUNK) * 16 * BF_CHUNK + k % BF_CHUNK),
                                       _mm512_cvtepi32_epi16(h));
            else _mm512_storeu_si512(xf + k, _mm512_slli_epi32(h, 16));
        }
    }
}

/* Where group g's 16 outputs go: segment output, first row, valid rows. */
typedef struct gdst { float *y; size_t ldy; int n; } gdst;
CI_AI gdst group_dst(const bf_job *j, int g)
{
    int s = 0;
    while (s + 1 < j->p->n_seg && g >= j->gs[s + 1]) s++;
    const int r0 = (g - j->gs[s]) * BF_GROUP, seg_rows = j->p->seg_start[s + 1] - j->p->seg_start[s];
    gdst d = { j->y[s] + r0, j->ldy[s], seg_rows - r0 < BF_GROUP ? seg_rows - r0 : BF_GROUP };
    return d;
}

/* ---- AVX-512: RG groups × BX batch rows per pass over the weights ----
 * Each (group, batch row) has its E and O chains in zmm lanes (lane n =
 * output row n) plus the running acc; 2·RG·BX independent FMA chains hide
 * the FMA latency. The weights stream once per pass, a few KiB ahead
 * prefetched, one stream per group. */
#define AVX_RG 4
#define AVX_BX 2
#ifndef BF_PF_BLOCKS
#define BF_PF_BLOCKS 2 /* prefetch distance in 1 KiB blocks per stream */
#endif

CI_AI void avx_pass(int RG, int BX, const bf_job *j, int g, int b)
{
    const uint8_t *wg[AVX_RG];
    const float *xf[AVX_BX];
    __m512 acc[AVX_RG][AVX_BX];
    const size_t gbytes = (size_t)j->nc * BF_BLOCK;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
#pragma GCC unroll 4
    for (int i = 0; i < RG; i++) wg[i] = (const uint8_t *)j->p->mem + (size_t)(g + i) * gbytes;
#pragma GCC unroll 2
    for (int t = 0; t < BX; t++) xf[t] = j->xf + (size_t)(b + t) * j->xf_stride;
#pragma GCC unroll 4
    for (int i = 0; i < RG; i++)
#pragma GCC unroll 2
        for (int t = 0; t < BX; t++) acc[i][t] = _mm512_setzero_ps();

    for (int c = 0; c < j->nc; c++) {
        __m512 e[AVX_RG][AVX_BX], o[AVX_RG][AVX_BX];
#pragma GCC unroll 4
        for (int i = 0; i < RG; i++)
#pragma GCC unroll 2
            for (int t = 0; t < BX; t++) e[i][t] = o[i][t] = _mm512_setzero_ps();
        const size_t cb = (size_t)c * BF_BLOCK;
#pragma GCC unroll 16
        for (int kp = 0; kp < 16; kp++) {
#pragma GCC unroll 4
            for (int i = 0; i < RG; i++) {
                const uint8_t *wp = wg[i] + cb + (size_t)kp * 64;
                /* past the group's end this prefetches the next group's
                 * first lines (or harmlessly beyond the block: prefetches
                 * never fault) */
                _mm_prefetch((const char *)(wp + BF_PF_BLOCKS * BF_BLOCK), _MM_HINT_T0);
                const __m512i wv = _mm512_load_si512((const void *)wp);
                const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(wv, 16));
                const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(wv, hi));
#pragma GCC unroll 2
                for (int t = 0; t < BX; t++) {
                    e[i][t] = _mm512_fmadd_ps(we, _mm512_set1_ps(xf[t][c * BF_CHUNK + 2 * kp]), e[i][t]);
                    o[i][t] = _mm512_fmadd_ps(wo, _mm512_set1_ps(xf[t][c * BF_CHUNK + 2 * kp + 1]), o[i][t]);
                }
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < RG; i++)
#pragma GCC unroll 2
            for (int t = 0; t < BX; t++) acc[i][t] = _mm512_add_ps(acc[i][t], _mm512_add_ps(e[i][t], o[i][t]));
    }
#pragma GCC unroll 4
    for (int i = 0; i < RG; i++) {
        const gdst d = group_dst(j, g + i);
        const __mmask16 m = (__mmask16)((1u << d.n) - 1);
#pragma GCC unroll 2
        for (int t = 0; t < BX; t++) _mm512_mask_storeu_ps(d.y + (size_t)(b + t) * d.ldy, m, acc[i][t]);
    }
}

static void avx_groups(const bf_job *j, int g0, int g1)
{
    const unsigned old = mxcsr_enter();
    for (int g = g0; g < g1; g += AVX_RG) {
        const int rg = g1 - g < AVX_RG ? g1 - g : AVX_RG;
        for (int b = 0; b < j->batch; b += AVX_BX) {
            const int bx = j->batch - b < AVX_BX ? j->batch - b : AVX_BX;
            switch (rg * 4 + bx) {
            case 4 * 4 + 2: avx_pass(4, 2, j, g, b); break;
            case 4 * 4 + 1: avx_pass(4, 1, j, g, b); break;
            case 3 * 4 + 2: avx_pass(3, 2, j, g, b); break;
            case 3 * 4 + 1: avx_pass(3, 1, j, g, b); break;
            case 2 * 4 + 2: avx_pass(2, 2, j, g, b); break;
            case 2 * 4 + 1: avx_pass(2, 1, j, g, b); break;
            case 1 * 4 + 2: avx_pass(1, 2, j, g, b); break;
            default: avx_pass(1, 1, j, g, b); break;
            }
        }
    }
    mxcsr_leave(old);
}

/* ---- AMX: 2×2 tiles of C (32 batch rows × 32 output rows) ----
 * Tiles 0-3 C, 4-5 A (x, 16 batch rows × 32 k), 6-7 B (one weight block). */
#ifndef BF_AMX_X_L2
#define BF_AMX_X_L2 (1u << 20) /* bytes of x per super-block (half an L2) */
#endif

/* K-blocking: a group pair's weights for BF_AMX_KC chunks (2·KC KiB) stay
 * in L1 while every batch-tile pair of the super-block passes over them, so
 * only x comes from L2; the 2×2 C tiles spill between K blocks (8 tile
 * moves per 4·KC multiplies). x is loaded with the streaming hint so its
 * once-used lines do not push the weights out of L1. Measured on
 * 0.6B shapes, batch 512, one thread: KC 16 beats 8, 12, 20, 24, 32 and no
 * K-blocking (+3-7%); the same with B fully L1-resident and no spill
 * would be another ~25%, i.e. the spill is now the main overhead. */
#ifndef BF_AMX_KC
#define BF_AMX_KC 16
#endif
#define BF_AMX_MAX_SB 32 /* batch tiles per super-block: bounds the spill buffer */

typedef struct tile_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;

CI_AI void c_store(const bf_job *j, int g, int b, int tile_rows_valid, int which)
{
    const gdst d = group_dst(j, g);
    if (d.n == BF_GROUP && tile_rows_valid == 16) {
        float *dst = d.y + (size_t)b * d.ldy;
        const size_t stride = d.ldy * sizeof(float);
        switch (which) {
        case 0: _tile_stored(0, dst, stride); break;
        case 1: _tile_stored(1, dst, stride); break;
        case 2: _tile_stored(2, dst, stride); break;
        default: _tile_stored(3, dst, stride); break;
        }
        return;
    }
    float tmp[16 * 16] __attribute__((aligned(64)));
    switch (which) {
    case 0: _tile_stored(0, tmp, 64); break;
    case 1: _tile_stored(1, tmp, 64); break;
    case 2: _tile_stored(2, tmp, 64); break;
    default: _tile_stored(3, tmp, 64); break;
    }
    const __mmask16 m = (__mmask16)((1u << d.n) - 1);
    for (int t = 0; t < tile_rows_valid; t++)
        _mm512_mask_storeu_ps(d.y + (size_t)(b + t) * d.ldy, m, _mm512_load_ps(tmp + 16 * t));
}

/* MR batch tiles × NR groups over chunks [c0, c1). C starts at zero
 * (c0 == 0) or from the spill buffer cb (4 tiles, 4 KiB); it goes to y when
 * c1 is the last chunk, else back to cb. A spill is an exact fp32 round
 * trip, so each C tile still sees its chunks in order, as one run would. */
CI_AI void amx_block(int MR, int NR, const bf_job *j, int g, int bt, int c0, int c1, float *cb)
{
    const size_t gbytes = (size_t)j->nc * BF_BLOCK;
    const uint8_t *w0 = (const uint8_t *)j->p->mem + (size_t)g * gbytes, *w1 = w0 + gbytes;
    const uint8_t *a0 = (const uint8_t *)j->xb + (size_t)bt * gbytes, *a1 = a0 + gbytes;
    if (c0 == 0) {
        _tile_zero(0);
        if (NR == 2) _tile_zero(1);
        if (MR == 2) _tile_zero(2);
        if (MR == 2 && NR == 2) _tile_zero(3);
    } else {
        _tile_loadd(0, cb, 64);
        if (NR == 2) _tile_loadd(1, cb + 256, 64);
        if (MR == 2) _tile_loadd(2, cb + 512, 64);
        if (MR == 2 && NR == 2) _tile_loadd(3, cb + 768, 64);
    }
    /* all loads first, then the products in the order that frees B0 first:
     * measured 1-4% faster than interleaving loads and products */
    for (int c = c0; c < c1; c++) {
        _tile_stream_loadd(4, a0 + (size_t)c * BF_BLOCK, 64);
        _tile_loadd(6, w0 + (size_t)c * BF_BLOCK, 64);
        if (MR == 2) _tile_stream_loadd(5, a1 + (size_t)c * BF_BLOCK, 64);
        if (NR == 2) _tile_loadd(7, w1 + (size_t)c * BF_BLOCK, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (MR == 2) _tile_dpbf16ps(2, 5, 6);
        if (NR == 2) _tile_dpbf16ps(1, 4, 7);
        if (MR == 2 && NR == 2) _tile_dpbf16ps(3, 5, 7);
    }
    if (c1 < j->nc) {
        _tile_stored(0, cb, 64);
        if (NR == 2) _tile_stored(1, cb + 256, 64);
        if (MR == 2) _tile_stored(2, cb + 512, 64);
        if (MR == 2 && NR == 2) _tile_stored(3, cb + 768, 64);
        return;
    }
    const int b = bt * 16;
    const int v0 = j->batch - b < 16 ? j->batch - b : 16;
    c_store(j, g, b, v0, 0);
    if (NR == 2) c_store(j, g + 1, b, v0, 1);
    if (MR == 2) {
        const int v1 = j->batch - b - 16 < 16 ? j->batch - b - 16 : 16;
        c_store(j, g, b + 16, v1, 2);
        if (NR == 2) c_store(j, g + 1, b + 16, v1, 3);
    }
}

static void amx_groups(const bf_job *j, int g0, int g1)
{
    tile_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    /* C of every batch-tile pair of a super-block between K blocks */
    float cspill[BF_AMX_MAX_SB / 2 * 1024] __attribute__((aligned(64)));
    const int mt = (j->batch + 15) / 16;
    /* batch tiles per super-block: its x rows stay in L2 while every group
     * pair of the task passes over them */
    int sb = (int)(BF_AMX_X_L2 / ((size_t)j->nc * BF_BLOCK)) & ~1;
    if (sb < 2) sb = 2;
    if (sb > BF_AMX_MAX_SB) sb = BF_AMX_MAX_SB;
    for (int b0 = 0; b0 < mt; b0 += sb) {
        const int b1 = mt - b0 < sb ? mt : b0 + sb;
        for (int g = g0; g < g1; g += 2) {
            const int nr = g1 - g >= 2 ? 2 : 1;
            for (int c0 = 0; c0 < j->nc; c0 += BF_AMX_KC) {
                const int c1 = j->nc - c0 < BF_AMX_KC ? j->nc : c0 + BF_AMX_KC;
                for (int bt = b0; bt < b1; bt += 2) {
                    const int mr = b1 - bt >= 2 ? 2 : 1;
                    float *cb = cspill + (size_t)(bt - b0) / 2 * 1024;
                    if (mr == 2 && nr == 2) amx_block(2, 2, j, g, bt, c0, c1, cb);
                    else if (mr == 2) amx_block(2, 1, j, g, bt, c0, c1, cb);
                    else if (nr == 2) amx_block(1, 2, j, g, bt, c0, c1, cb);
                    else amx_block(1, 1, j, g, bt, c0, c1, cb);
                }
            }
        }
    }
    _tile_release();
}

CI_TARGET_END

static void mm_task(void *ctx, int task, int thread)
{
    (void)thread;
    const bf_job *j = ctx;
    int g0 = task * j->groups_per_task, g1 = g0 + j->groups_per_task;
    if (g1 > j->groups) g1 = j->groups;
    if (g0 >= g1) return;
    if (j->amx) amx_groups(j, g0, g1);
    else avx_groups(j, g0, g1);
}

void ci_matmul_packed_bf16(const ci_packed *p, float *const *y, const size_t *ldy, const float *x, size_t ldx,
                           int batch)
{
    if (batch <= 0) return;
    bf_job j = { .p = p, .nc = n_chunks(p->cols), .batch = batch, .x = x, .ldx = ldx };
    seg_groups(p, j.gs);
    j.groups = j.gs[p->n_seg];
    for (int s = 0; s < p->n_seg; s++) {
        j.y[s] = y[s];
        j.ldy[s] = ldy[s];
    }
    const int amx_ok = ci_amx_bf16_usable();
    j.amx = g_force_kernel == CI_BF16_KERNEL_AMX      ? amx_ok
            : g_force_kernel == CI_BF16_KERNEL_AVX512 ? 0
                                                      : amx_ok && batch >= BF_AMX_MIN_BATCH;

    /* AMX reads whole 16-row tiles */
    const size_t kp = (size_t)j.nc * BF_CHUNK;
    j.prep_rows = j.amx ? (batch + 15) / 16 * 16 : batch;
    j.xf_stride = kp;
    const size_t bytes = kp * (j.amx ? 2 : 4) * (size_t)j.prep_rows;
    void *buf = ci_kernels_scratch(bytes);
    j.xb = buf;
    j.xf = buf;
    const int nthreads = ci_threadpool_threads();
    int ptasks = batch >= 16 && nthreads > 1 ? nthreads : 1;
    j.rows_per_prep_task = (j.prep_rows + ptasks - 1) / ptasks;
    ptasks = (j.prep_rows + j.rows_per_prep_task - 1) / j.rows_per_prep_task;
    ci_parallel_for(ptasks, prep_task, &j);

    /* Tasks over groups, a few per thread for dynamic balancing; AMX wants
     * pairs of groups. Tiny products stay on the calling thread. */
    const double work = (double)batch * p->rows * p->cols;
    int ntasks = nthreads > 1 && work >= 65536.0 ? nthreads * 4 : 1;
    const int quantum = j.amx ? 2 : AVX_RG;
    const int quanta = (j.groups + quantum - 1) / quantum;
    if (ntasks > quanta) ntasks = quanta;
    int per = (quanta + ntasks - 1) / ntasks * quantum;
    j.groups_per_task = per;
    ntasks = (j.groups + per - 1) / per;
    ci_parallel_for(ntasks, mm_task, &j);
}
