/*
 * kernels_packed.c — Q8_0 products over weights repacked at load
 * (ci_pack_weights): an AMX kernel for batches and an AVX512-VNNI kernel for
 * decode and small batches, on one layout (kernels_impl.h).
 *
 * Definition (shared with kernels_scalar.c's mm_q8_0, bitwise): x rows are
 * quantized to Q8_0 per 32-block (ggml reference quantizer); for output
 * (b, r), with isum_i the exact int32 dot of block i's 32 int8 pairs,
 *     s = 0; for i = 0..nb-1 in order: s = fmaf((float)isum_i, d_w·d_x, s)
 * d_w·d_x (two fp16 values) is exact in fp32 and |isum_i| < 2^24, so each
 * block costs exactly one rounding, and the result cannot depend on how the
 * work is split into tiles, batches or threads: prefill and decode of a
 * token agree, and a request gives the same tokens alone or batched.
 *
 * Layout: weights in groups of 16 output rows, all blocks of a group
 * contiguous (a decode GEMV reads memory sequentially). A block of a group
 * is one AMX B tile (8 k-quads × 16 rows × 4 bytes) stored as u8 = w + 128,
 * because the only VNNI form with a memory broadcast, vpdpbusd, wants its
 * register operand unsigned; TDPBSUD (A signed, B unsigned) reads the same
 * bytes. Both then compute isum + 128·Σx_q, so the prepared activations
 * carry nc = -128·Σx_q per block and batch row: VNNI starts its int32
 * accumulator at nc, AMX starts its C tile at a tile of nc rows (exact
 * int32 either way).
 *
 * AMX: a step is one A tile (16 batch rows) × two B tiles (32 output rows)
 * → two C tiles of one 32-block, stored to L1 and rescaled by the vector
 * unit (cvt, d_w·d_x, fma into fp32 accumulators in L1). Per batch tile the
 * blocks go in order, per block the group pairs of a chunk (a task of 8
 * groups whose weights stay in L2); the A tile stays loaded across the
 * pairs. Measured on Sapphire/Emerald Rapids: TDPBSUD overlaps vector work
 * but TILESTORED does not, and a tile load waits for every older tile
 * store; so C tiles alternate between two sets, the next step's tile loads
 * are issued before this step's stores, and the previous step's rescale is
 * woven in between. The vector rescale (3 uops per C row) and the stores
 * bound it at roughly 20 ns per 16×16×32 tile product and core.
 * VNNI: per block 8 vpdpbusd per (group, batch row), several groups and
 * batch rows in flight so the int32 chains overlap, software prefetch
 * ahead of the sequential weight stream; decode runs at memory bandwidth.
 * The driver (kernels.c) uses AMX from a small batch on (crossover
 * measured at 4-5 rows).
 */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")

#define CI_AI static inline __attribute__((always_inline))

void ci_pk_prep_row(uint8_t *xp, int nb, int b, const uint8_t *xq8)
{
    const int t = b / CI_PK_GROUP, m = b % CI_PK_GROUP;
    uint8_t *rec = xp + (size_t)t * (size_t)nb * CI_PK_XREC;
    for (int i = 0; i < nb; i++, rec += CI_PK_XREC) {
        if (!xq8) {
            _mm256_store_si256((__m256i *)(rec + m * CI_QK), _mm256_setzero_si256());
            _mm512_store_si512((__m512i *)(rec + CI_PK_XNC + 64 * m), _mm512_setzero_si512());
            memset(rec + CI_PK_XDX + 4 * m, 0, 4);
            continue;
        }
        const uint8_t *blk = xq8 + (size_t)i * CI_Q8_BYTES;
        const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 2));
        _mm256_store_si256((__m256i *)(rec + m * CI_QK), q);
        /* Σ x_q: byte sums of x + 128 (sad against 0), less 32·128 */
        const __m256i s4 = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
        const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
        const int sum = (int)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - CI_QK * 128;
        _mm512_store_si512((__m512i *)(rec + CI_PK_XNC + 64 * m), _mm512_set1_epi32(-128 * sum));
        const float dx = _cvtsh_ss(ci_ld_u16(blk));
        memcpy(rec + CI_PK_XDX + 4 * m, &dx, 4);
    }
}

/* Where group g's outputs go: y of its segment at row offset, with the
 * lanes that are real rows (a segment's last group may be partial). */
typedef struct pk_out { float *y; size_t ldy; __mmask16 keep; } pk_out;

CI_AI pk_out pk_out_of(const ci_pk_args *a, int g)
{
    const ci_packed *P = a->p;
    int s = 0;
    while (s + 1 < P->n_seg && g >= P->seg_group[s + 1]) s++;
    const int r0 = (g - P->seg_group[s]) * CI_PK_GROUP;
    const int left = P->seg_start[s + 1] - P->seg_start[s] - r0;
    pk_out o = { a->y[s] + r0, a->ldy[s], left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1) };
    return o;
}

CI_AI void pk_store(const pk_out *o, int b, __m512 v) { _mm512_mask_storeu_ps(o->y + (size_t)b * o->ldy, o->keep, v); }

CI_AI int32_t ld_i32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* ------------------------------------------------------------------ VNNI */

#ifndef PK_PF
#define PK_PF 4 /* blocks ahead for software prefetch (0: none) */
#endif

/* GR groups × BX batch rows starting at group g, batch row b. */
CI_AI void vnni_tile(const int GR, const int BX, const ci_pk_args *a, int g, int b)
{
    const ci_packed *P = a->p;
    const int nb = P->nb;
    const uint8_t *wq[4], *xq[4];
    const uint16_t *wd[4];
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int gi = 0; gi < GR; gi++) {
        wq[gi] = P->q + (size_t)(g + gi) * P->qstride;
        wd[gi] = (const uint16_t *)(wq[gi] + (size_t)nb * CI_PK_QBLK);
    }
#pragma GCC unroll 4
    for (int bi = 0; bi < BX; bi++) {
        const int bb = b + bi;
        xq[bi] = a->xp + (size_t)(bb / CI_PK_GROUP) * (size_t)nb * CI_PK_XREC + (size_t)(bb % CI_PK_GROUP) * CI_QK;
    }
#pragma GCC unroll 4
    for (int gi = 0; gi < GR; gi++)
#pragma GCC unroll 4
        for (int bi = 0; bi < BX; bi++) acc[gi][bi] = _mm512_setzero_ps();

    for (int i = 0; i < nb; i++) {
        const size_t xo = (size_t)i * CI_PK_XREC;
        const size_t wo = (size_t)i * CI_PK_QBLK;
        __m512i s[4][4];
#pragma GCC unroll 4
        for (int bi = 0; bi < BX; bi++) {
            const int m = (b + bi) % CI_PK_GROUP;
            const __m512i nc = _mm512_set1_epi32(ld_i32(xq[bi] - m * CI_QK + xo + CI_PK_XNC + 64 * m));
#pragma GCC unroll 4
            for (int gi = 0; gi < GR; gi++) s[gi][bi] = nc;
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
#pragma GCC unroll 4
            for (int gi = 0; gi < GR; gi++) {
                if (PK_PF > 0) _mm_prefetch((const char *)(wq[gi] + wo + PK_PF * CI_PK_QBLK + 64 * j), _MM_HINT_T0);
                const __m512i w = _mm512_load_si512((const __m512i *)(wq[gi] + wo + 64 * j));
#pragma GCC unroll 4
                for (int bi = 0; bi < BX; bi++)
                    s[gi][bi] = _mm512_dpbusd_epi32(s[gi][bi], w, _mm512_set1_epi32(ld_i32(xq[bi] + xo + 4 * j)));
            }
        }
#pragma GCC unroll 4
        for (int gi = 0; gi < GR; gi++) {
            const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(wd[gi] + (size_t)i * 16)));
#pragma GCC unroll 4
            for (int bi = 0; bi < BX; bi++) {
                const int m = (b + bi) % CI_PK_GROUP;
                float dx;
                memcpy(&dx, xq[bi] - m * CI_QK + xo + CI_PK_XDX + 4 * m, 4);
                acc[gi][bi] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[gi][bi]), _mm512_mul_ps(dw, _mm512_set1_ps(dx)),
                                              acc[gi][bi]);
            }
        }
    }
#pragma GCC unroll 4
    for (int gi = 0; gi < GR; gi++) {
        const pk_out o = pk_out_of(a, g + gi);
#pragma GCC unroll 4
        for (int bi = 0; bi < BX; bi++) pk_store(&o, b + bi, acc[gi][bi]);
    }
}

#define PK_CASE(R, B) case R * 8 + B: vnni_tile(R, B, a, g, b); break;

void ci_pk_mm_vnni(const ci_pk_args *a, int g0, int g1)
{
    /* batch 1-2 (decode): more groups in flight; larger: reuse each loaded
     * weight vector for 4 batch rows */
    const int grmax = a->batch <= 2 ? 4 : 2;
    for (int g = g0; g < g1; g += grmax) {
        const int gr = g1 - g < grmax ? g1 - g : grmax;
        for (int b = 0; b < a->batch; b += 4) {
            const int bx = a->batch - b < 4 ? a->batch - b : 4;
            switch (gr * 8 + bx) {
            PK_CASE(4, 2) PK_CASE(4, 1) PK_CASE(3, 2) PK_CASE(3, 1)
            PK_CASE(2, 4) PK_CASE(2, 3) PK_CASE(2, 2) PK_CASE(2, 1)
            PK_CASE(1, 4) PK_CASE(1, 3) PK_CASE(1, 2)
            default: vnni_tile(1, 1, a, g, b); break;
            }
        }
    }
}

/* ------------------------------------------------------------------- AMX */

#ifndef PK_AMX_PF
#define PK_AMX_PF 2 /* blocks ahead for the B tile prefetch */
#endif
#ifndef PK_AMX_CHUNK
#define PK_AMX_CHUNK 8 /* groups whose weights stay in L2 while all batch tiles pass */
#endif

/* Tile instructions with a memory clobber: GCC's _tile_loadd tells the
 * compiler nothing about the memory it reads. */
#define PK_TLOAD(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(base), "r"((long)(stride)) : "memory")
#define PK_TSTORE(t, base, stride) \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(base), "r"((long)(stride)) : "memory")
#define PK_TDPBSUD(c, a, b) __asm__ volatile("tdpbsud %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

typedef struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* tmm0: A (16 batch rows × 32 s8), tmm2-3: B of two groups (8 k-quads ×
 * 64 u8), tmm4-5 / tmm6-7: C (16 × 16 int32) of even / odd steps. */
static void amx_load_config(void)
{
    _Alignas(64) amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    c.rows[0] = 16; c.colsb[0] = CI_QK;
    for (int t = 2; t < 4; t++) { c.rows[t] = 8; c.colsb[t] = 64; }
    for (int t = 4; t < 8; t++) { c.rows[t] = 16; c.colsb[t] = 64; }
    _tile_loadconfig(&c);
}

/* One step = one batch tile × up to two groups × one block. What the vector
 * unit needs to rescale a step's stored C tiles: */
typedef struct amx_step {
    const int32_t *c;      /* stored C tiles [bj][16][16] */
    const float *dx;       /* d_x of the 16 batch rows */
    const uint16_t *sc[2]; /* fp16 d_w of the two groups */
    __m512 *acc;           /* accumulator rows [bj][16] */
    int nb;                /* groups in the step (1 or 2) */
} amx_step;

/* Rows 8h..8h+7 of C tile bj in the definition's operation order: acc =
 * fma(float(isum), d_w·d_x, acc). C already holds isum (the tile started
 * at nc), rows ≥ va are padding. */
CI_AI void amx_rescale(const amx_step *s, int bj, int h, int va)
{
    if (!s || bj >= s->nb) return;
    /* locals: the __m512 stores may alias anything, s's fields included */
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)s->sc[bj]));
    const int32_t *c = s->c + bj * 256;
    const float *dx = s->dx;
    __m512 *acc = s->acc + bj * 16;
    const int m1 = va >= 8 * h + 8 ? 8 * h + 8 : va;
    if (m1 == 8 * h + 8) {
#pragma GCC unroll 8
        for (int m = 8 * h; m < 8 * h + 8; m++)
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const __m512i *)(c + 16 * m))),
                                     _mm512_mul_ps(dw, _mm512_set1_ps(dx[m])), acc[m]);
    } else {
        for (int m = 8 * h; m < m1; m++)
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const __m512i *)(c + 16 * m))),
                                     _mm512_mul_ps(dw, _mm512_set1_ps(dx[m])), acc[m]);
    }
}

/* Where a step's tiles come from. */
typedef struct amx_src {
    const uint8_t *a;      /* A tile (NULL: the loaded one stays) */
    const uint8_t *b[2];   /* B tiles (b[1] NULL: one group) */
    const uint8_t *nc;     /* C start tile */
} amx_src;

/* Step k with C tiles of parity P (tmm4-5 or tmm6-7), its tiles already
 * loaded: multiply, load step k+1's tiles (next, NULL at the end) into the
 * other set, store C to cst. The tile loads come before this step's stores
 * because a tile load waits for every older tile store; the previous
 * step's rescale is woven in between, as the tile instructions otherwise
 * hold up the vector work behind them. */
CI_AI void amx_step_run(const int P, int two, const amx_src *next, int32_t *cst, const amx_step *prev, int va)
{
    if (P == 0) PK_TDPBSUD(4, 0, 2); else PK_TDPBSUD(6, 0, 2);
    amx_rescale(prev, 0, 0, va);
    if (two) { if (P == 0) PK_TDPBSUD(5, 0, 3); else PK_TDPBSUD(7, 0, 3); }
    amx_rescale(prev, 0, 1, va);
    if (next) {
        if (next->a) PK_TLOAD(0, next->a, CI_QK);
        PK_TLOAD(2, next->b[0], 64);
        if (P == 0) PK_TLOAD(6, next->nc, 64); else PK_TLOAD(4, next->nc, 64);
        if (next->b[1]) {
            PK_TLOAD(3, next->b[1], 64);
            if (P == 0) PK_TLOAD(7, next->nc, 64); else PK_TLOAD(5, next->nc, 64);
        }
    }
    amx_rescale(prev, 1, 0, va);
    if (P == 0) PK_TSTORE(4, cst, 64); else PK_TSTORE(6, cst, 64);
    if (two) { if (P == 0) PK_TSTORE(5, cst + 256, 64); else PK_TSTORE(7, cst + 256, 64); }
    amx_rescale(prev, 1, 1, va);
}

/* Groups [g0, g1) (at most PK_AMX_CHUNK, their weights stay in L2) × all
 * batch rows. Per batch tile: blocks in order, and per block the group
 * pairs; the A tile and its nc tile stay in L1 while the pairs pass, the
 * chunk's accumulators (acc) too. */
static void amx_chunk(const ci_pk_args *a, int g0, int g1, __m512 *acc, int32_t (*cbuf)[512])
{
    const ci_packed *P = a->p;
    const int nb = P->nb;
    const int nbt = (a->batch + CI_PK_GROUP - 1) / CI_PK_GROUP;
    const int ng = g1 - g0;
    for (int t = 0; t < nbt; t++) {
        const uint8_t *xa = a->xp + (size_t)t * (size_t)nb * CI_PK_XREC;
        const int left = a->batch - t * CI_PK_GROUP;
        const int va = left < CI_PK_GROUP ? left : CI_PK_GROUP;
        for (int k = 0; k < ng * 16; k++) acc[k] = _mm512_setzero_ps();
        amx_step st[2];
        /* the first step's tiles; then each step loads its successor's */
        const uint8_t *wg0 = P->q + (size_t)g0 * P->qstride;
        PK_TLOAD(0, xa, CI_QK);
        PK_TLOAD(2, wg0, 64);
        PK_TLOAD(4, xa + CI_PK_XNC, 64);
        if (ng > 1) {
            PK_TLOAD(3, wg0 + P->qstride, 64);
            PK_TLOAD(5, xa + CI_PK_XNC, 64);
        }
        const amx_step *prev = NULL;
        int k = 0;
        for (int i = 0; i < nb; i++) {
            const uint8_t *rec = xa + (size_t)i * CI_PK_XREC;
            for (int gp = 0; gp < ng; gp += 2, k++) {
                amx_step *cur = &st[k & 1];
                const uint8_t *w0 = wg0 + (size_t)gp * P->qstride;
                /* tile loads execute in order, so a B tile that misses
                 * the caches stalls the tile unit: on the first batch
                 * tile, which streams the chunk's weights from memory,
                 * fetch the pair's B tiles PK_AMX_PF blocks ahead (later
                 * batch tiles find them in L2, where prefetching measured
                 * slower) */
                if (t == 0 && i + PK_AMX_PF < nb) {
                    const uint8_t *pf = w0 + (size_t)(i + PK_AMX_PF) * CI_PK_QBLK;
                    for (int l = 0; l < CI_PK_QBLK; l += 64) _mm_prefetch((const char *)(pf + l), _MM_HINT_T0);
                    if (gp + 1 < ng)
                        for (int l = 0; l < CI_PK_QBLK; l += 64) _mm_prefetch((const char *)(pf + P->qstride + l), _MM_HINT_T0);
                }
                cur->c = cbuf[k & 1];
                cur->dx = (const float *)(rec + CI_PK_XDX);
                cur->nb = gp + 1 < ng ? 2 : 1;
                cur->sc[0] = (const uint16_t *)(w0 + (size_t)nb * CI_PK_QBLK) + (size_t)i * 16;
                cur->sc[1] = (const uint16_t *)(w0 + P->qstride + (size_t)nb * CI_PK_QBLK) + (size_t)i * 16;
                cur->acc = acc + gp * 16;
                /* successor: next pair of this block, or the first pair of the next */
                amx_src nx;
                const amx_src *next = &nx;
                if (gp + 2 < ng) {
                    nx.a = NULL;
                    nx.nc = rec + CI_PK_XNC;
                    nx.b[0] = w0 + 2 * P->qstride + (size_t)i * CI_PK_QBLK;
                    nx.b[1] = gp + 3 < ng ? nx.b[0] + P->qstride : NULL;
                } else if (i + 1 < nb) {
                    nx.a = rec + CI_PK_XREC;
                    nx.nc = nx.a + CI_PK_XNC;
                    nx.b[0] = wg0 + (size_t)(i + 1) * CI_PK_QBLK;
                    nx.b[1] = ng > 1 ? nx.b[0] + P->qstride : NULL;
                } else {
                    next = NULL;
                }
                if (k & 1) amx_step_run(1, cur->nb == 2, next, cbuf[1], prev, va);
                else amx_step_run(0, cur->nb == 2, next, cbuf[0], prev, va);
                prev = cur;
            }
        }
        for (int bj = 0; bj < 2; bj++) {
            amx_rescale(prev, bj, 0, va);
            amx_rescale(prev, bj, 1, va);
        }
        for (int gi = 0; gi < ng; gi++) {
            const pk_out o = pk_out_of(a, g0 + gi);
            for (int m = 0; m < va; m++) pk_store(&o, t * CI_PK_GROUP + m, acc[gi * 16 + m]);
        }
    }
}

void ci_pk_mm_amx(const ci_pk_args *a, int g0, int g1)
{
    _Alignas(64) int32_t cbuf[2][512];
    __m512 acc[PK_AMX_CHUNK * 16];
    amx_load_config();
    for (int gc = g0; gc < g1; gc += PK_AMX_CHUNK)
        amx_chunk(a, gc, g1 - gc < PK_AMX_CHUNK ? g1 : gc + PK_AMX_CHUNK, acc, cbuf);
    _tile_release();
}

#pragma GCC pop_options
