/*
 * kernels_packed.c — Q8_0 matmul over weights repacked at load
 * (ci_pack_weights), AVX512-VNNI.
 *
 * Why: the ggml layout (34-byte blocks) costs the zmm kernel two unaligned
 * loads + an insert per block pair, two scalar fp16 scale conversions and
 * broadcasts, and a vpdpbusd per weight block pair for the u8/s8 sign
 * correction. That made the batch-1 GEMV compute-bound at ~6.7 GB/s per
 * core, far below the memory bandwidth. Packed layout, per weight row:
 *   q: pairs of blocks, 64 bytes each, 64-byte aligned, stored as
 *      u8 = w + 128 (an odd last block's upper half padded with 128 = 0)
 *   d: the row's fp16 scales, padded with 0 to a multiple of 16
 * Activations are prepared once per call and batch row (ci_pk_prep_vnni):
 * per block pair 64 bytes of int8 quants, 16 fp32 lanes of d_x (lanes 0-7
 * first block, 8-15 second, 0 if none) and 16 int32 lanes of -128·Σ(4 x
 * bytes), the correction that turns vpdpbusd(u8 w+128, s8 x) into Σ w·x.
 *
 * Bitwise contract: each int32 lane is the exact sum of the same 4 products
 * as in kernels_q_avx512.inc, and each lane is accumulated with the same
 * acc = fma(float(lane), d_w·d_x, acc) over block pairs in order, then the
 * same hsum16. So results equal ci_matmul's avx512 / avx512+vnni Q8_0 path
 * bit for bit, whatever the batch, tile or thread split (tested).
 */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")

#define CI_AI static inline __attribute__((always_inline))

/* Same fixed-order horizontal sum as kernels_avx512.c's hsum16. */
CI_AI float pk_hsum16(__m512 v)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void ci_pk_prep_vnni(uint8_t *dst, const uint8_t *xq8, int nb)
{
    const int np = (nb + 1) / 2;
    for (int p = 0; p < np; p++) {
        const uint8_t *b0 = xq8 + (size_t)(2 * p) * CI_Q8_BYTES;
        const int two = 2 * p + 1 < nb;
        __m256i lo = _mm256_loadu_si256((const __m256i *)(b0 + 2));
        __m256i hi = two ? _mm256_loadu_si256((const __m256i *)(b0 + CI_Q8_BYTES + 2)) : _mm256_setzero_si256();
        __m512i xq = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        float d0 = _cvtsh_ss(ci_ld_u16(b0)), d1 = two ? _cvtsh_ss(ci_ld_u16(b0 + CI_Q8_BYTES)) : 0.0f;
        __m512 dx = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)), _mm256_set1_ps(d1), 1);
        __m512i corr = _mm512_sub_epi32(_mm512_setzero_si512(),
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), xq));
        uint8_t *o = dst + (size_t)p * CI_PK_XPAIR;
        _mm512_store_si512((__m512i *)o, xq);
        _mm512_store_ps((float *)(o + 64), dx);
        _mm512_store_si512((__m512i *)(o + 128), corr);
    }
}

#define PK_RW 4
#define PK_BX 4
#ifndef PK_PF
#define PK_PF 16 /* rows ahead */
#endif

CI_AI void pk_tile(int RW, int BX, const ci_pk_args *a, int r, int b)
{
    const ci_packed *P = a->p;
    const int np = P->np;
    const uint8_t *wq[PK_RW];
    const uint16_t *wd[PK_RW];
    const uint8_t *xp[PK_BX];
    __m512 acc[PK_RW][PK_BX];
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++) {
        wq[i] = P->q + (size_t)(r + i) * P->qstride;
        wd[i] = P->d + (size_t)(r + i) * P->dstride;
    }
#pragma GCC unroll 4
    for (int j = 0; j < BX; j++) xp[j] = a->xp + (size_t)(b + j) * a->xstride;
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) acc[i][j] = _mm512_setzero_ps();

    for (int g = 0; g < np; g += 8) {
        __m512 S[PK_RW];
#pragma GCC unroll 4
        for (int i = 0; i < RW; i++) S[i] = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(wd[i] + 2 * g)));
        __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i two = _mm512_set1_epi32(2);
        const int pe = g + 8 < np ? g + 8 : np;
        for (int p = g; p < pe; p++) {
            __m512i wv[PK_RW];
            __m512 dw[PK_RW];
#pragma GCC unroll 4
            for (int i = 0; i < RW; i++) {
                /* software prefetch of the same pair PK_PF rows further on:
                 * one core keeps too few misses in flight otherwise (the
                 * hardware prefetcher alone gave ~55% of a core's bandwidth) */
                _mm_prefetch((const char *)(wq[i] + PK_PF * P->qstride + (size_t)p * 64), _MM_HINT_T0);
                wv[i] = _mm512_load_si512((const __m512i *)(wq[i] + (size_t)p * 64));
                dw[i] = _mm512_permutexvar_ps(idx, S[i]);
            }
#pragma GCC unroll 4
            for (int j = 0; j < BX; j++) {
                const uint8_t *xr = xp[j] + (size_t)p * CI_PK_XPAIR;
                const __m512i xq = _mm512_load_si512((const __m512i *)xr);
                const __m512 dx = _mm512_load_ps((const float *)(xr + 64));
                const __m512i xc = _mm512_load_si512((const __m512i *)(xr + 128));
#pragma GCC unroll 4
                for (int i = 0; i < RW; i++) {
                    __m512i pr = _mm512_dpbusd_epi32(xc, wv[i], xq);
                    acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pr), _mm512_mul_ps(dw[i], dx), acc[i][j]);
                }
            }
            idx = _mm512_add_epi32(idx, two);
        }
    }
    /* tiles never straddle segments (segments are multiples of 4 rows) */
    int s = 0;
    while (s + 1 < P->n_seg && r >= P->seg_start[s + 1]) s++;
    float *y = a->y[s];
    const size_t ldy = a->ldy[s];
    const int rr = r - P->seg_start[s];
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) y[(size_t)(b + j) * ldy + rr + i] = pk_hsum16(acc[i][j]);
}

#define PK_SWITCH(call, rw, bx)                                                  \
    switch ((rw) * 8 + (bx)) {                                                   \
    case 4 * 8 + 4: call(4, 4); break;                                           \
    case 4 * 8 + 3: call(4, 3); break;                                           \
    case 4 * 8 + 2: call(4, 2); break;                                           \
    case 4 * 8 + 1: call(4, 1); break;                                           \
    case 3 * 8 + 4: call(3, 4); break;                                           \
    case 3 * 8 + 3: call(3, 3); break;                                           \
    case 3 * 8 + 2: call(3, 2); break;                                           \
    case 3 * 8 + 1: call(3, 1); break;                                           \
    case 2 * 8 + 4: call(2, 4); break;                                           \
    case 2 * 8 + 3: call(2, 3); break;                                           \
    case 2 * 8 + 2: call(2, 2); break;                                           \
    case 2 * 8 + 1: call(2, 1); break;                                           \
    case 1 * 8 + 4: call(1, 4); break;                                           \
    case 1 * 8 + 3: call(1, 3); break;                                           \
    case 1 * 8 + 2: call(1, 2); break;                                           \
    default: call(1, 1); break;                                                  \
    }

void ci_pk_mm_vnni(const ci_pk_args *a, int r0, int r1)
{
    for (int r = r0; r < r1; r += PK_RW) {
        const int rw = r1 - r < PK_RW ? r1 - r : PK_RW;
        for (int b = 0; b < a->batch; b += PK_BX) {
            const int bx = a->batch - b < PK_BX ? a->batch - b : PK_BX;
#define CALL_PK(R, B) pk_tile(R, B, a, r, b)
            PK_SWITCH(CALL_PK, rw, bx)
#undef CALL_PK
        }
    }
}

#pragma GCC pop_options
