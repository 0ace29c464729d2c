/*
 * kernels_avx2.c — AVX2 + FMA + F16C kernels (Haswell and later, Zen).
 *
 * The whole file is compiled for that ISA (CI_TARGET_BEGIN, kernels_impl.h); its
 * functions are reached only through the table ci_kernels_init builds after
 * checking the CPU. The int8 matmuls are in kernels_q_avx2.inc, included
 * twice: plain AVX2 (maddubs) and AVX-VNNI (vpdpbusd on ymm).
 *
 * Matmul tiles: up to 4 weight rows × 2 batch rows → 8 ymm accumulators,
 * 4 weight vectors and one x vector fit the 16 ymm registers. Every
 * accumulator sees the same operation sequence whatever the tile shape, so
 * results do not depend on batch size or row split.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels_impl.h"

CI_TARGET_BEGIN("avx2,fma,f16c")

#define CI_AI static inline __attribute__((always_inline))

/* Fixed-order horizontal sum (same in every tile shape). */
CI_AI float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 weights of type wt starting at byte p, widened to fp32 (exact). */
CI_AI __m256 ldw8(int wt, const uint8_t *p)
{
    if (wt == CI_WT_F32) return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (wt == CI_WT_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

#define F_RW 4
#define F_BX 2

CI_AI void tile_f(int wt, int RW, int BX, const ci_mm_args *a, int r, int b)
{
    const int esz = wt == CI_WT_F32 ? 4 : 2;
    const int cols = a->cols;
    const uint8_t *wp[F_RW];
    const float *xp[F_BX];
    __m256 acc[F_RW][F_BX];
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++) wp[i] = a->w + (size_t)(r + i) * a->w_stride;
#pragma GCC unroll 4
    for (int j = 0; j < BX; j++) xp[j] = a->x + (size_t)(b + j) * a->ldx;
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) acc[i][j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 wv[F_RW];
#pragma GCC unroll 4
        for (int i = 0; i < RW; i++) wv[i] = ldw8(wt, wp[i] + (size_t)k * esz);
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) {
            __m256 xv = _mm256_loadu_ps(xp[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < RW; i++) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
    if (k < cols) {
        /* tail: zero-padded copies, so no load reads past the row */
        const int rem = cols - k;
        __m256 wv[F_RW];
#pragma GCC unroll 4
        for (int i = 0; i < RW; i++) {
            uint8_t tmp[32] = { 0 };
            memcpy(tmp, wp[i] + (size_t)k * esz, (size_t)rem * esz);
            wv[i] = ldw8(wt, tmp);
        }
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) {
            float tx[8] = { 0 };
            memcpy(tx, xp[j] + k, (size_t)rem * 4);
            __m256 xv = _mm256_loadu_ps(tx);
#pragma GCC unroll 4
            for (int i = 0; i < RW; i++) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) a->y[(size_t)(b + j) * a->ldy + r + i] = hsum8(acc[i][j]);
}

CI_AI void mm_float(int wt, const ci_mm_args *a, int r0, int r1)
{
    for (int r = r0; r < r1; r += F_RW) {
        const int rw = r1 - r < F_RW ? r1 - r : F_RW;
        for (int b = 0; b < a->batch; b += F_BX) {
            const int bx = a->batch - b < F_BX ? a->batch - b : F_BX;
            switch (rw * 4 + bx) {
            case 4 * 4 + 2: tile_f(wt, 4, 2, a, r, b); break;
            case 4 * 4 + 1: tile_f(wt, 4, 1, a, r, b); break;
            case 3 * 4 + 2: tile_f(wt, 3, 2, a, r, b); break;
            case 3 * 4 + 1: tile_f(wt, 3, 1, a, r, b); break;
            case 2 * 4 + 2: tile_f(wt, 2, 2, a, r, b); break;
            case 2 * 4 + 1: tile_f(wt, 2, 1, a, r, b); break;
            case 1 * 4 + 2: tile_f(wt, 1, 2, a, r, b); break;
            default: tile_f(wt, 1, 1, a, r, b); break;
            }
        }
    }
}

static void mm_f32(const ci_mm_args *a, int r0, int r1) { mm_float(CI_WT_F32, a, r0, r1); }
static void mm_f16(const ci_mm_args *a, int r0, int r1) { mm_float(CI_WT_F16, a, r0, r1); }
static void mm_bf16(const ci_mm_args *a, int r0, int r1) { mm_float(CI_WT_BF16, a, r0, r1); }

/* ---- Q8_0 activation quantizer, bit-exact with the scalar reference ---- */

/* roundf semantics (half away from zero), which _mm256_round_ps lacks:
 * t = trunc(v); |v - t| is exact, and ≥ 0.5 means round away. */
CI_AI __m256 roundf8(__m256 v)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sgn, _mm256_sub_ps(v, t));
    __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sgn, v));
    __m256 ge = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(ge, one));
}

static void quantize_q8_0(void *dst, const float *src, size_t n)
{
    uint8_t *out = dst;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (size_t blk = 0; blk < n / CI_QK; blk++, out += CI_Q8_BYTES) {
        const float *x = src + blk * CI_QK;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            m = _mm256_max_ps(m, _mm256_and_ps(v[i], absmask));
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v[i], v[i], _CMP_UNORD_Q));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (_mm256_movemask_ps(nan) || amax > 3.4e38f) {
            /* NaN/inf block: the reference's (defined) answer, rare */
            ci_quantize_q8_0_scalar(out, x, CI_QK);
            continue;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        memcpy(out, &dh, 2);
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(roundf8(_mm256_mul_ps(v[i], idv)));
        /* packs interleave 128-bit lanes; the permute restores element order */
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(out + 2), p);
    }
}

/* ---- int8 matmuls ---- */

#define CI_QVNNI 0
#include "kernels/kernels_q_avx2.inc"
#undef CI_QVNNI

CI_TARGET_END
CI_TARGET_BEGIN("avx2,fma,f16c,avxvnni")
#define CI_QVNNI 1
#include "kernels/kernels_q_avx2.inc"
#undef CI_QVNNI
CI_TARGET_END

CI_TARGET_BEGIN("avx2,fma,f16c")

#include "kernels/kernels_kq_avx2.inc"

/* ---- vector kernels ---- */

static float dot_f32(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_f32(float *y, float a, const float *x, int n)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static float dot_f32_f16(const float *a, const uint16_t *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8))), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * _cvtsh_ss(b[i]);
    return s;
}

static void axpy_f32_f16(float *y, float a, const uint16_t *x, int n)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * _cvtsh_ss(x[i]);
}

static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    __m256 s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        s = _mm256_fmadd_ps(v, v, s);
    }
    float ss = hsum8(s);
    for (; i < n; i++) ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    /* same two roundings as the reference: weight · (x · scale) */
    const __m256 sv = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(weight + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), sv)));
    for (; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

static void add(float *y, const float *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

/* Bit-identical to the reference: separate mul/sub/add, no FMA. */
static void rope_neox(float *v, int head_dim, const float *c, const float *s)
{
    const int h = head_dim / 2;
    int i = 0;
    for (; i + 8 <= h; i += 8) {
        __m256 a = _mm256_loadu_ps(v + i), b = _mm256_loadu_ps(v + i + h);
        __m256 cv = _mm256_loadu_ps(c + i), sv = _mm256_loadu_ps(s + i);
        _mm256_storeu_ps(v + i, _mm256_sub_ps(_mm256_mul_ps(a, cv), _mm256_mul_ps(b, sv)));
        _mm256_storeu_ps(v + i + h, _mm256_add_ps(_mm256_mul_ps(b, cv), _mm256_mul_ps(a, sv)));
    }
    for (; i < h; i++) {
        float a = v[i], b = v[i + h];
        v[i] = a * c[i] - b * s[i];
        v[i + h] = b * c[i] + a * s[i];
    }
}

/* ---- attention (kernels_attn_simd.inc) ---- */

CI_AI float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

typedef __m256 at_v;
#define AT_VL 8
#define AT_LD(p) _mm256_loadu_ps(p)
#define AT_ST(p, v) _mm256_storeu_ps((p), (v))
#define AT_LDH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define AT_SET1(x) _mm256_set1_ps(x)
#define AT_ZERO() _mm256_setzero_ps()
#define AT_ADD(a, b) _mm256_add_ps((a), (b))
#define AT_SUB(a, b) _mm256_sub_ps((a), (b))
#define AT_MUL(a, b) _mm256_mul_ps((a), (b))
#define AT_MAX(a, b) _mm256_max_ps((a), (b))
#define AT_MIN(a, b) _mm256_min_ps((a), (b))
#define AT_ROUND(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define AT_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define AT_POW2(n) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define AT_ZERO_BELOW(y, x, c) _mm256_andnot_ps(_mm256_cmp_ps((x), _mm256_set1_ps(c), _CMP_LT_OQ), (y))
#define AT_HSUM(v) hsum8(v)
#define AT_HMAX(v) hmax8(v)
#define AT_QR 4
#define AT_QJ 2
#define AT_PR 4
#define AT_PD 2
#define AT_NAME attention_avx2
#define AT_DIV(a, b) _mm256_div_ps((a), (b))
#define AT_SILU_NAME silu_mul_avx2
#include "kernels/kernels_attn_simd.inc"

/* vcvtps2ph rounds to nearest even, overflows to inf and quiets NaN keeping
 * the top payload bits: exactly ci_fp32_to_fp16. */
static void fp32_to_fp16_row(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = ci_fp32_to_fp16(src[i]);
}

void ci_kernels_fill_avx2(ci_kernel_table *t, int vnni)
{
    *t = (ci_kernel_table){
        .name = vnni ? "avx2+vnni" : "avx2",
        .matmul = { mm_f32, mm_f16, mm_bf16,
                    vnni ? mm_q8_0_vnni : mm_q8_0_novnni, vnni ? mm_q4_0_vnni : mm_q4_0_novnni,
                    mm_q4_K, mm_q6_K },
        .xprep = { CI_XPREP_NONE, CI_XPREP_NONE, CI_XPREP_NONE, CI_XPREP_Q8_0, CI_XPREP_Q8_0,
                   CI_XPREP_Q8_K, CI_XPREP_Q8_K },
        .quantize_q8_0 = quantize_q8_0,
        .dot_f32 = dot_f32,
        .axpy_f32 = axpy_f32,
        .dot_f32_f16 = dot_f32_f16,
        .axpy_f32_f16 = axpy_f32_f16,
        .rmsnorm = rmsnorm,
        .silu_mul = silu_mul_avx2,
        .softmax = ci_softmax_scalar,
        .add = add,
        .rope_neox = rope_neox,
        .attention = attention_avx2,
        .fp32_to_fp16_row = fp32_to_fp16_row,
    };
}

CI_TARGET_END
