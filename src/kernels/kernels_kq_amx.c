/*
 * kernels_kq_amx.c — Q4_K / Q6_K weight × Q8_K activation products with
 * AMX-INT8 tiles, for batches (prefill). Reached from the AVX-512 tables'
 * K-quant matmul (kernels_kq_avx512.inc) when the batch is large enough.
 *
 * Definition shared with kernels_scalar.c (bitwise): per output (b, r) and
 * super-block, the exact int32 dot Σ_j sc_j·D_j of the sub-block dots D_j
 * (Q4_K: 8 sub-blocks of 32, Q6_K: 16 of 16 with q-32) and, for Q4_K, the
 * min term Σ_j m_j·(bsum_2j + bsum_2j+1); then ci_kq4/6_block_acc in block
 * order. Integer sums are exact in any order, so the tiling, batch and
 * thread split cannot change a bit (decode through the AVX-512 kernel,
 * prefill through this one: same result).
 *
 * No resident copy: the weights stay in ggml's layout. Per group of 16
 * weight rows and super-block the quants are unpacked once (u8: Q4_K 0..15,
 * Q6_K 0..63) into B tiles in L1 (4 KB) and reused by every batch tile of
 * 16 x rows. Per sub-block one TDPBSUD (A = x s8, B = w u8, K = 32 or 16)
 * into a zeroed C tile, stored and multiplied in int32 by the rows' scales
 * (vpmulld) into 16 zmm accumulators. Q6_K's unsigned quants carry +32:
 * 32·Σ_g sc_g·bsum_g is subtracted, as the SIMD kernels do. The fp32
 * epilogue is ci_kq4/6_block_acc evaluated for 16 rows per instruction.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>

#include "kernels/kernels_impl.h"

CI_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")

#define KA_ROWS 16 /* weight rows per group = C tile columns */
#define KA_BT 16   /* x rows per A tile */

/* Measured crossovers with the AVX-512 kernel (one thread, 3072×1024,
 * per-thread CPU time): Q4_K between 8 and 16 rows, Q6_K (dearer unpack)
 * about 16. */
#define KQ4_AMX_MIN_BATCH 12
#define KQ6_AMX_MIN_BATCH 16

/* 0: the defaults; set by tests / benches between products only */
static int g_kq_amx_min_batch;

int ci_kq_amx_min_batch(int q6)
{
    return g_kq_amx_min_batch ? g_kq_amx_min_batch : q6 ? KQ6_AMX_MIN_BATCH : KQ4_AMX_MIN_BATCH;
}
void ci_kq_set_amx_min_batch(int n) { g_kq_amx_min_batch = n > 0 ? n : 0; }

typedef struct ka_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ka_config;

/* tmm0/3: A (16 x rows × K s8), tmm1/4: B (K/4 k-quads × 64 u8), tmm2/5: C. */
static void ka_load_config(int k)
{
    _Alignas(64) ka_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    c.rows[0] = KA_BT; c.colsb[0] = (uint16_t)k;
    c.rows[1] = (uint8_t)(k / 4); c.colsb[1] = 64;
    c.rows[2] = KA_BT; c.colsb[2] = 64;
    c.rows[3] = c.rows[0]; c.colsb[3] = c.colsb[0];
    c.rows[4] = c.rows[1]; c.colsb[4] = c.colsb[1];
    c.rows[5] = c.rows[2]; c.colsb[5] = c.colsb[2];
    _tile_loadconfig(&c);
}

/* Per-thread work buffers: the calling thread's ci_kernels_scratch holds
 * the prepared x, so this file keeps its own: one per thread (a few KB plus
 * 64 bytes per batch row), freed by the key's destructor when the thread
 * (a pool worker, after ci_threadpool_set_threads/shutdown) exits. */
typedef struct ka_buffer { void *p; size_t cap; } ka_buffer;
static pthread_key_t ka_key;
static pthread_once_t ka_key_once = PTHREAD_ONCE_INIT;

static void ka_buffer_free(void *v)
{
    ka_buffer *b = v;
    if (b) { free(b->p); free(b); }
}
static void ka_key_init(void)
{
    if (pthread_key_create(&ka_key, ka_buffer_free) != 0) abort();
}

static void *ka_scratch(size_t n)
{
    pthread_once(&ka_key_once, ka_key_init);
    ka_buffer *b = pthread_getspecific(ka_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(ka_key, b) != 0) abort();
    }
    if (b->cap < n) {
        free(b->p);
        b->p = NULL;
        b->cap = (n + 4095) & ~(size_t)4095;
        if (posix_memalign(&b->p, 64, b->cap) != 0) abort();
    }
    return b->p;
}

typedef struct ka_work {
    _Alignas(64) uint8_t q[KA_ROWS][CI_QK_K]; /* unpacked quants of the group's rows */
    _Alignas(64) uint32_t bt[CI_QK_K / 4][KA_ROWS]; /* B tiles: k-quad t, row n */
    int32_t sc[16][KA_ROWS];                /* sub-block scales */
    int32_t mn[8][KA_ROWS];                 /* Q4_K mins */
    _Alignas(64) float d[KA_ROWS];
    _Alignas(64) float dmin[KA_ROWS];
    _Alignas(64) int32_t c[2][KA_BT][KA_ROWS]; /* stored C tiles */
    _Alignas(64) int32_t dot[KA_BT][KA_ROWS];
    _Alignas(64) int32_t msum[KA_BT][KA_ROWS];
    uint8_t xpad[KA_BT][CI_Q8K_BYTES];      /* last partial batch tile, zero rows */
} ka_work;

/* Quants, scales and d of rows [r, r + rn) of super-block blk; missing rows
 * are zero (their columns are computed and dropped). */
static void ka_unpack(ka_work *w, int q6, const ci_mm_args *a, int r, int rn, int blk)
{
    memset(w->q, 0, sizeof w->q);
    memset(w->sc, 0, sizeof w->sc);
    memset(w->mn, 0, sizeof w->mn);
    memset(w->d, 0, sizeof w->d);
    memset(w->dmin, 0, sizeof w->dmin);
    for (int n = 0; n < rn; n++) {
        if (!q6) {
            const uint8_t *wb = a->w + (size_t)(r + n) * a->w_stride + (size_t)blk * CI_Q4K_BYTES;
            uint8_t sm[16];
            ci_q4k_scales(wb + 4, sm);
            for (int j = 0; j < 8; j++) {
                w->sc[j][n] = sm[j];
                w->mn[j][n] = sm[8 + j];
            }
            w->d[n] = _cvtsh_ss(ci_ld_u16(wb));
            w->dmin[n] = _cvtsh_ss(ci_ld_u16(wb + 2));
            for (int c = 0; c < 4; c++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(wb + 16 + 32 * c));
                const __m256i m4 = _mm256_set1_epi8(0x0f);
                _mm256_storeu_si256((__m256i *)&w->q[n][64 * c], _mm256_and_si256(v, m4));
                _mm256_storeu_si256((__m256i *)&w->q[n][64 * c + 32], _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
            }
        } else {
            const uint8_t *wb = a->w + (size_t)(r + n) * a->w_stride + (size_t)blk * CI_Q6K_BYTES;
            for (int g = 0; g < 16; g++) w->sc[g][n] = (int8_t)wb[192 + g];
            w->d[n] = _cvtsh_ss(ci_ld_u16(wb + 208));
            for (int h = 0; h < 2; h++) {
                const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)(wb + 64 * h));
                const __m256i a1 = _mm256_loadu_si256((const __m256i *)(wb + 64 * h + 32));
                const __m256i hb = _mm256_loadu_si256((const __m256i *)(wb + 128 + 32 * h));
                /* part p: low bits from ql (a0|a1 by p&1, nibble by p>>1), bits 4-5 = qh bits 2p, 2p+1 */
                const __m256i lo[4] = { _mm256_and_si256(a0, m4), _mm256_and_si256(a1, m4),
                                        _mm256_and_si256(_mm256_srli_epi16(a0, 4), m4),
                                        _mm256_and_si256(_mm256_srli_epi16(a1, 4), m4) };
                const __m256i hi[4] = { _mm256_and_si256(hb, m3), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m3),
                                        _mm256_and_si256(_mm256_srli_epi16(hb, 4), m3),
                                        _mm256_and_si256(_mm256_srli_epi16(hb, 6), m3) };
                for (int p = 0; p < 4; p++)
                    _mm256_storeu_si256((__m256i *)&w->q[n][128 * h + 32 * p],
                                        _mm256_or_si256(lo[p], _mm256_slli_epi16(hi[p], 4)));
            }
        }
    }
    /* B tile layout: k-quad t of the block, 4 bytes per row */
    for (int t = 0; t < CI_QK_K / 4; t++)
        for (int n = 0; n < KA_ROWS; n++) memcpy(&w->bt[t][n], &w->q[n][4 * t], 4);
}

void ci_kq_mm_amx(int q6, const ci_mm_args *a, int r0, int r1)
{
    const int nb = a->cols / CI_QK_K, batch = a->batch;
    const int k = q6 ? 16 : 32, nsub = CI_QK_K / k;
    const size_t sbytes = ((size_t)batch * KA_ROWS * sizeof(float) + 63) & ~(size_t)63;
    uint8_t *mem = ka_scratch(sizeof(ka_work) + 64 + sbytes);
    ka_work *w = (ka_work *)mem;
    float *s = (float *)(mem + ((sizeof(ka_work) + 63) & ~(size_t)63));
    memset(w->xpad, 0, sizeof w->xpad);
    ka_load_config(k);
    for (int r = r0; r < r1; r += KA_ROWS) {
        const int rn = r1 - r < KA_ROWS ? r1 - r : KA_ROWS;
        memset(s, 0, (size_t)batch * KA_ROWS * sizeof(float));
        for (int blk = 0; blk < nb; blk++) {
            ka_unpack(w, q6, a, r, rn, blk);
            /* the min / offset term as int16 pairs against x's bsums
             * (two adjacent bsums form one dword): vpdpwssd, exact */
            __m512i scv[16], pairv[8];
            for (int j = 0; j < nsub; j++) scv[j] = _mm512_loadu_si512(w->sc[j]);
            for (int j = 0; j < 8; j++) {
                const __m512i lo = _mm512_loadu_si512(q6 ? w->sc[2 * j] : w->mn[j]);
                const __m512i hi = _mm512_loadu_si512(q6 ? w->sc[2 * j + 1] : w->mn[j]);
                pairv[j] = _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(hi, 16));
            }
            for (int b0 = 0; b0 < batch; b0 += KA_BT) {
                const int bm = batch - b0 < KA_BT ? batch - b0 : KA_BT;
                const uint8_t *xt = a->xq + (size_t)b0 * a->xq_stride + (size_t)blk * CI_Q8K_BYTES;
                size_t xs = a->xq_stride;
                if (bm < KA_BT) { /* the tile load reads 16 rows: copy, zero rows after */
                    for (int m = 0; m < bm; m++) memcpy(w->xpad[m], xt + (size_t)m * xs, CI_Q8K_BYTES);
                    for (int m = bm; m < KA_BT; m++) memset(w->xpad[m], 0, CI_Q8K_BYTES);
                    xt = w->xpad[0];
                    xs = CI_Q8K_BYTES;
                }
                __m512i acc[KA_BT];
#pragma GCC unroll 16
                for (int m = 0; m < KA_BT; m++) acc[m] = _mm512_setzero_si512();
                /* two sub-blocks per step on separate tiles, so one
                 * product runs while the other's C tile is stored */
                for (int j = 0; j < nsub; j += 2) {
                    _tile_zero(2);
                    _tile_zero(5);
                    _tile_loadd(0, xt + 4 + k * j, (long)xs);
                    _tile_loadd(1, &w->bt[j * (k / 4)][0], 64);
                    _tile_loadd(3, xt + 4 + k * (j + 1), (long)xs);
                    _tile_loadd(4, &w->bt[(j + 1) * (k / 4)][0], 64);
                    _tile_dpbsud(2, 0, 1);
                    _tile_dpbsud(5, 3, 4);
                    _tile_stored(2, w->c[0], 64);
                    _tile_stored(5, w->c[1], 64);
#pragma GCC unroll 16
                    for (int m = 0; m < KA_BT; m++)
                        acc[m] = _mm512_add_epi32(acc[m], _mm512_add_epi32(_mm512_mullo_epi32(_mm512_load_si512(w->c[0][m]), scv[j]),
                                                                            _mm512_mullo_epi32(_mm512_load_si512(w->c[1][m]), scv[j + 1])));
                }
                for (int m = 0; m < bm; m++) {
                    const uint8_t *xb = xt + (size_t)m * xs;
                    uint32_t bs[8]; /* bsums 2j, 2j+1 as one int16 pair */
                    memcpy(bs, xb + CI_Q8K_BSUMS, sizeof bs);
                    __m512i ms = _mm512_setzero_si512();
#pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) ms = _mm512_dpwssd_epi32(ms, pairv[j], _mm512_set1_epi32((int)bs[j]));
                    /* Q4_K: Σ m_j·(bsum_2j + bsum_2j+1); Q6_K: quants used
                     * as q+32, so dot -= 32·Σ_g sc_g·bsum_g */
                    if (q6) acc[m] = _mm512_sub_epi32(acc[m], _mm512_slli_epi32(ms, 5));
                    _mm512_store_si512(w->dot[m], acc[m]);
                    _mm512_store_si512(w->msum[m], ms);
                }
                /* ci_kq4/6_block_acc on 16 rows at once: the same IEEE
                 * operations in the same order (no fma), hence the same
                 * bits (the tests compare with the scalar reference) */
                const __m512 dv = _mm512_load_ps(w->d), dminv = _mm512_load_ps(w->dmin);
                for (int m = 0; m < bm; m++) {
                    const __m512 dx = _mm512_set1_ps(ci_ld_f32(xt + (size_t)m * xs));
                    float *sr = s + (size_t)(b0 + m) * KA_ROWS;
                    __m512 v = _mm512_load_ps(sr);
                    v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_mul_ps(dv, dx), _mm512_cvtepi32_ps(_mm512_load_si512(w->dot[m]))));
                    if (!q6)
                        v = _mm512_sub_ps(v, _mm512_mul_ps(_mm512_mul_ps(dminv, dx),
                                                           _mm512_cvtepi32_ps(_mm512_load_si512(w->msum[m]))));
                    _mm512_store_ps(sr, v);
                }
            }
        }
        for (int b = 0; b < batch; b++)
            for (int n = 0; n < rn; n++) a->y[(size_t)b * a->ldy + r + n] = s[(size_t)b * KA_ROWS + n];
    }
    _tile_release();
}

CI_TARGET_END
