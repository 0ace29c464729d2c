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
 * accumulator at nc, AMX starts its C tile at A × (a B tile of -128 bytes)
 * by TDPBSSD (exact int32 either way; cheaper than loading an nc tile).
 *
 * AMX: one C tile (16 batch rows × 16 output rows) per step, its 16 fp32
 * accumulator rows in registers over a run of blocks, so the per-block
 * rescale (cvt, d_w·d_x, fma: 3 vector uops per C row) touches memory only
 * for the stored C tile. Measured on Sapphire/Emerald Rapids: TDPBSUD
 * overlaps vector work but TILESTORED does not, and a tile load waits for
 * every older tile store; so blocks alternate between two tile sets, the
 * next block's tiles are loaded before this block's store, and the previous
 * block's rescale is woven in between. Loops: chunks of groups whose
 * weights stay in L2 (~768 KiB) × batch tiles × slices of 32 blocks (A
 * records shared by the chunk's groups from L1/L2; the accumulators wait in
 * a small stack buffer between slices) × groups × blocks in order.
 * Measured (one thread, thread CPU time, busy machine, ±10%): ~27-31 ns per
 * 16×16×32 tile product, vs ~30-36 ns for the earlier kernel (two groups
 * per step, accumulators in L1: a load and a store per C row).
 * VNNI: per block 8 vpdpbusd per (group, batch row), several groups and
 * batch rows in flight so the int32 chains overlap, software prefetch
 * ahead of the sequential weight stream; decode runs at memory bandwidth.
 * The driver (kernels.c) uses AMX from a small batch on (crossover
 * measured at 4-5 rows).
 */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

CI_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")

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
#define PK_AMX_PF 4 /* blocks ahead for the B tile prefetch (first batch tile) */
#endif
#ifndef PK_AMX_CHUNK_BYTES
#define PK_AMX_CHUNK_BYTES (768 * 1024) /* weights kept in L2 while all batch tiles pass */
#endif
#ifndef PK_AMX_MAX_CHUNK
#define PK_AMX_MAX_CHUNK 16 /* groups per chunk at most (accumulators on the stack) */
#endif
#ifndef PK_AMX_SLICE
#define PK_AMX_SLICE 32 /* blocks per slice: A records shared by a chunk's groups */
#endif

/* Tile instructions with a memory clobber: GCC's _tile_loadd tells the
 * compiler nothing about the memory it reads. */
#define PK_TLOAD(t, base, stride) \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(base), "r"((long)(stride)) : "memory")
#define PK_TSTORE(t, base, stride) \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(base), "r"((long)(stride)) : "memory")
#define PK_TDPBSUD(c, a, b) __asm__ volatile("tdpbsud %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#define PK_TDPBSSD(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#define PK_TZERO(c) __asm__ volatile("tilezero %%tmm" #c ::)

typedef struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* Blocks alternate between two tile sets: tmm0/2/4 (A 16 batch rows × 32
 * s8, B 8 k-quads × 64 u8, C 16 × 16 int32) for even blocks, tmm1/3/5 for
 * odd ones; tmm6 holds the constant B tile of -128 bytes (C's start). */
static void amx_load_config(void)
{
    _Alignas(64) amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 2; t++) { c.rows[t] = 16; c.colsb[t] = CI_QK; }
    for (int t = 2; t < 4; t++) { c.rows[t] = 8; c.colsb[t] = 64; }
    for (int t = 4; t < 6; t++) { c.rows[t] = 16; c.colsb[t] = 64; }
    c.rows[6] = 8; c.colsb[6] = 64;
    _tile_loadconfig(&c);
}

/* Rows 8h..8h+7 of a stored C tile (block isum: the tile started at nc) in
 * the definition's operation order: acc = fma(float(isum), d_w·d_x, acc).
 * Padding batch rows have zero quants and d_x = 0, so they stay 0. */
CI_AI void amx_rescale(__m512 *acc, const int32_t *c, const uint8_t *rec, const uint16_t *sc, int h)
{
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)sc));
    const float *dx = (const float *)(rec + CI_PK_XDX);
#pragma GCC unroll 8
    for (int m = 8 * h; m < 8 * h + 8; m++)
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const __m512i *)(c + 16 * m))),
                                 _mm512_mul_ps(dw, _mm512_set1_ps(dx[m])), acc[m]);
}

/* Block i with tile set P (loaded): multiply, load block i+1's tiles into
 * the other set, store C to cbuf[P]; block i-1's rescale (from cbuf[!P]) is
 * woven in between, as TDPBSUD overlaps vector work but TILESTORED does
 * not, and a tile load waits for every older tile store (so the loads go
 * before this block's store). */
CI_AI void amx_block(const int P, __m512 *acc, int32_t (*cbuf)[256], const uint8_t *xa, const uint8_t *wg,
                     const uint16_t *sc, int i, int nb)
{
    if (P == 0) PK_TDPBSUD(4, 0, 2); else PK_TDPBSUD(5, 1, 3);
    if (i > 0) amx_rescale(acc, cbuf[!P], xa + (size_t)(i - 1) * CI_PK_XREC, sc + (size_t)(i - 1) * 16, 0);
    if (i + 1 < nb) {
        const uint8_t *rec = xa + (size_t)(i + 1) * CI_PK_XREC;
        const uint8_t *b = wg + (size_t)(i + 1) * CI_PK_QBLK;
        if (P == 0) { PK_TLOAD(1, rec, CI_QK); PK_TLOAD(3, b, 64); PK_TZERO(5); PK_TDPBSSD(5, 1, 6); }
        else { PK_TLOAD(0, rec, CI_QK); PK_TLOAD(2, b, 64); PK_TZERO(4); PK_TDPBSSD(4, 0, 6); }
    }
    if (i > 0) amx_rescale(acc, cbuf[!P], xa + (size_t)(i - 1) * CI_PK_XREC, sc + (size_t)(i - 1) * 16, 1);
    if (P == 0) PK_TSTORE(4, cbuf[0], 64); else PK_TSTORE(5, cbuf[1], 64);
}

/* One batch tile (xa) × one group (wg) over blocks [i0, i1) in order,
 * continuing acc_mem; the 16 accumulator rows live in registers meanwhile,
 * so the per-block rescale touches memory only for the stored C tile. pf:
 * prefetch the group's weights (first batch tile, which streams them from
 * memory; later ones find them in L2). */
static void amx_group(const ci_pk_args *a, const uint8_t *xa, int g, int i0, int i1, __m512 *acc_mem, int pf)
{
    const ci_packed *P = a->p;
    const int nb = P->nb;
    const uint8_t *wg = P->q + (size_t)g * P->qstride;
    const uint16_t *sc = (const uint16_t *)(wg + (size_t)nb * CI_PK_QBLK);
    _Alignas(64) int32_t cbuf[2][256];
    __m512 acc[16];
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) acc[m] = acc_mem[m];
    PK_TLOAD(0, xa + (size_t)i0 * CI_PK_XREC, CI_QK);
    PK_TLOAD(2, wg + (size_t)i0 * CI_PK_QBLK, 64);
    PK_TZERO(4);
    PK_TDPBSSD(4, 0, 6);
    /* block numbers relative to i0 decide the tile set */
    xa += (size_t)i0 * CI_PK_XREC;
    wg += (size_t)i0 * CI_PK_QBLK;
    sc += (size_t)i0 * 16;
    const int n = i1 - i0;
    int i = 0;
    for (; i + 1 < n; i += 2) {
        if (pf && i + PK_AMX_PF < n) {
            const uint8_t *p = wg + (size_t)(i + PK_AMX_PF) * CI_PK_QBLK;
            for (int l = 0; l < 2 * CI_PK_QBLK; l += 64) _mm_prefetch((const char *)(p + l), _MM_HINT_T0);
        }
        amx_block(0, acc, cbuf, xa, wg, sc, i, n);
        amx_block(1, acc, cbuf, xa, wg, sc, i + 1, n);
    }
    if (i < n) amx_block(0, acc, cbuf, xa, wg, sc, i, n);
    /* the last block's rescale */
    const int last = (n - 1) & 1;
    amx_rescale(acc, cbuf[last], xa + (size_t)(n - 1) * CI_PK_XREC, sc + (size_t)(n - 1) * 16, 0);
    amx_rescale(acc, cbuf[last], xa + (size_t)(n - 1) * CI_PK_XREC, sc + (size_t)(n - 1) * 16, 1);
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++) acc_mem[m] = acc[m];
}

/* Groups in chunks whose weights stay in L2 while every batch tile passes
 * over them; per batch tile, blocks in slices whose A records stay in L1/L2
 * while the chunk's groups pass (the accumulators wait in acc between
 * slices). */
void ci_pk_mm_amx(const ci_pk_args *a, int g0, int g1)
{
    const ci_packed *P = a->p;
    const int nb = P->nb;
    const int nbt = (a->batch + CI_PK_GROUP - 1) / CI_PK_GROUP;
    int chunk = (int)(PK_AMX_CHUNK_BYTES / P->qstride);
    if (chunk < 1) chunk = 1;
    if (chunk > PK_AMX_MAX_CHUNK) chunk = PK_AMX_MAX_CHUNK;
    __m512 acc[PK_AMX_MAX_CHUNK * 16];
    amx_load_config();
    _Alignas(64) uint8_t m128[512];
    memset(m128, 0x80, sizeof m128);
    PK_TLOAD(6, m128, 64);
    for (int gc = g0; gc < g1; gc += chunk) {
        const int ge = g1 - gc < chunk ? g1 : gc + chunk;
        for (int t = 0; t < nbt; t++) {
            const uint8_t *xa = a->xp + (size_t)t * (size_t)nb * CI_PK_XREC;
            const int left = a->batch - t * CI_PK_GROUP;
            const int va = left < CI_PK_GROUP ? left : CI_PK_GROUP;
            for (int k = 0; k < (ge - gc) * 16; k++) acc[k] = _mm512_setzero_ps();
            for (int i0 = 0; i0 < nb; i0 += PK_AMX_SLICE) {
                const int i1 = nb - i0 < PK_AMX_SLICE ? nb : i0 + PK_AMX_SLICE;
                for (int g = gc; g < ge; g++) amx_group(a, xa, g, i0, i1, acc + (g - gc) * 16, t == 0);
            }
            for (int g = gc; g < ge; g++) {
                const pk_out o = pk_out_of(a, g);
                for (int m = 0; m < va; m++) pk_store(&o, t * CI_PK_GROUP + m, acc[(g - gc) * 16 + m]);
            }
        }
    }
    _tile_release();
}

CI_TARGET_END
