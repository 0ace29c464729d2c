/*
 * kernels_avx512.c — AVX-512 (F/BW/VL/DQ) kernels, plus the AVX512-VNNI int8
 * matmuls. (Packed BF16 weights have their own file, kernels_bf16_packed.c.)
 *
 * Compiled per section with CI_TARGET_BEGIN; reached only through the
 * tables ci_kernels_init builds after checking the CPU (and the OS's zmm
 * state). The int8 matmuls are in kernels_q_avx512.inc, included twice
 * (AVX512-BW maddubs, AVX512-VNNI vpdpbusd); both give bitwise equal results.
 *
 * Float matmul tiles: 4 weight rows × 4 batch rows = 16 zmm accumulators
 * (+4 weight vectors, 1 x vector) of the 32 registers; row tails use masked
 * loads (never touch memory past the row). Every accumulator sees the same
 * operation sequence whatever the tile shape, so results do not depend on
 * batch size or the row split across threads.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels_impl.h"

CI_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")

#define CI_AI static inline __attribute__((always_inline))

/* Fixed-order horizontal sum (same in every tile shape). */
CI_AI float hsum16(__m512 v)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 weights of type wt at byte p (lanes beyond `m` read as 0), to fp32. */
CI_AI __m512 ldw16(int wt, const uint8_t *p, __mmask16 m)
{
    if (wt == CI_WT_F32) return _mm512_maskz_loadu_ps(m, p);
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if (wt == CI_WT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

CI_AI __m512 ldw16u(int wt, const uint8_t *p)
{
    if (wt == CI_WT_F32) return _mm512_loadu_ps(p);
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (wt == CI_WT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#define F_RW 4
#define F_BX 4
#define F_PF 16

CI_AI void tile_f(int wt, int RW, int BX, const ci_mm_args *a, int r, int b)
{
    const int esz = wt == CI_WT_F32 ? 4 : 2;
    const int cols = a->cols;
    const uint8_t *wp[F_RW];
    const float *xp[F_BX];
    __m512 acc[F_RW][F_BX];
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++) wp[i] = a->w + (size_t)(r + i) * a->w_stride;
#pragma GCC unroll 4
    for (int j = 0; j < BX; j++) xp[j] = a->x + (size_t)(b + j) * a->ldx;
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) acc[i][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= cols; k += 16) {
        __m512 wv[F_RW];
        /* software prefetch F_PF rows further on (see kernels_packed.c):
         * one core keeps too few misses in flight with the HW prefetcher */
#pragma GCC unroll 4
        for (int i = 0; i < RW; i++) _mm_prefetch((const char *)(wp[i] + F_PF * a->w_stride + (size_t)k * esz), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int i = 0; i < RW; i++) wv[i] = ldw16u(wt, wp[i] + (size_t)k * esz);
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) {
            __m512 xv = _mm512_loadu_ps(xp[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < RW; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
    if (k < cols) {
        const __mmask16 m = (__mmask16)((1u << (cols - k)) - 1);
        __m512 wv[F_RW];
#pragma GCC unroll 4
        for (int i = 0; i < RW; i++) wv[i] = ldw16(wt, wp[i] + (size_t)k * esz, m);
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, xp[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < RW; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RW; i++)
#pragma GCC unroll 4
        for (int j = 0; j < BX; j++) a->y[(size_t)(b + j) * a->ldy + r + i] = hsum16(acc[i][j]);
}

/* Expands to a 4×4 switch over the (rows, batch) remainder shapes. */
#define TILE_SWITCH(call, RWMAX, BXMAX, rw, bx)                                  \
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

CI_AI void mm_float(int wt, const ci_mm_args *a, int r0, int r1)
{
    for (int r = r0; r < r1; r += F_RW) {
        const int rw = r1 - r < F_RW ? r1 - r : F_RW;
        for (int b = 0; b < a->batch; b += F_BX) {
            const int bx = a->batch - b < F_BX ? a->batch - b : F_BX;
#define CALL_F(R, B) tile_f(wt, R, B, a, r, b)
            TILE_SWITCH(CALL_F, 4, 4, rw, bx)
#undef CALL_F
        }
    }
}

static void mm_f32(const ci_mm_args *a, int r0, int r1) { mm_float(CI_WT_F32, a, r0, r1); }
static void mm_f16(const ci_mm_args *a, int r0, int r1) { mm_float(CI_WT_F16, a, r0, r1); }
static void mm_bf16(const ci_mm_args *a, int r0, int r1) { mm_float(CI_WT_BF16, a, r0, r1); }

/* ---- Q8_0 activation quantizer, bit-exact with the scalar reference ---- */

/* roundf (half away from zero): t = trunc(v); |v - t| is exact; ≥ 0.5 rounds away. */
CI_AI __m512 roundf16(__m512 v)
{
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    __mmask16 ge = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(_mm512_set1_ps(-0.0f), v));
    return _mm512_mask_add_ps(t, ge, t, one);
}

static void quantize_q8_0(void *dst, const float *src, size_t n)
{
    uint8_t *out = dst;
    for (size_t blk = 0; blk < n / CI_QK; blk++, out += CI_Q8_BYTES) {
        const float *x = src + blk * CI_QK;
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        __mmask16 nan = _mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        if (nan || amax > 3.4e38f) { /* NaN/inf block: the reference's (defined) answer */
            ci_quantize_q8_0_scalar(out, x, CI_QK);
            continue;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        memcpy(out, &dh, 2);
        const __m512 idv = _mm512_set1_ps(id);
        __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(roundf16(_mm512_mul_ps(v0, idv))));
        __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(roundf16(_mm512_mul_ps(v1, idv))));
        _mm_storeu_si128((__m128i *)(out + 2), q0);
        _mm_storeu_si128((__m128i *)(out + 18), q1);
    }
}

CI_TARGET_END

/* ---- int8 matmuls ---- */

CI_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
#define CI_QVNNI 0
#include "kernels/kernels_q_avx512.inc"
#undef CI_QVNNI
CI_TARGET_END

CI_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#define CI_QVNNI 1
#include "kernels/kernels_q_avx512.inc"
#undef CI_QVNNI
CI_TARGET_END

CI_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
#include "kernels/kernels_kq_avx512.inc"
CI_TARGET_END

/* ---- vector kernels ---- */

CI_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")

CI_AI __mmask16 tailmask(int rem) { return (__mmask16)((1u << rem) - 1); }

static float dot_f32(const float *a, const float *b, int n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return hsum16(_mm512_add_ps(s0, s1));
}

static void axpy_f32(float *y, float a, const float *x, int n)
{
    const __m512 av = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static float dot_f32_f16(const float *a, const uint16_t *b, int n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + i))), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + i + 16))), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, b + i)), s0);
    }
    return hsum16(_mm512_add_ps(s0, s1));
}

static void axpy_f32_f16(float *y, float a, const uint16_t *x, int n)
{
    const __m512 av = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)),
                                                        _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        s = _mm512_fmadd_ps(v, v, s);
    }
    const float scale = 1.0f / sqrtf(hsum16(s) / (float)n + eps);
    /* same two roundings as the reference: weight · (x · scale) */
    const __m512 sv = _mm512_set1_ps(scale);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask(n - i);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, weight + i),
                                                        _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv)));
    }
}

static void add(float *y, const float *x, int n)
{
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* Bit-identical to the reference: separate mul/sub/add, no FMA. */
static void rope_neox(float *v, int head_dim, const float *c, const float *s)
{
    const int h = head_dim / 2;
    for (int i = 0; i < h; i += 16) {
        __mmask16 m = h - i >= 16 ? 0xffff : tailmask(h - i);
        __m512 a = _mm512_maskz_loadu_ps(m, v + i), b = _mm512_maskz_loadu_ps(m, v + i + h);
        __m512 cv = _mm512_maskz_loadu_ps(m, c + i), sv = _mm512_maskz_loadu_ps(m, s + i);
        _mm512_mask_storeu_ps(v + i, m, _mm512_sub_ps(_mm512_mul_ps(a, cv), _mm512_mul_ps(b, sv)));
        _mm512_mask_storeu_ps(v + i + h, m, _mm512_add_ps(_mm512_mul_ps(b, cv), _mm512_mul_ps(a, sv)));
    }
}

/* ---- attention (kernels_attn_simd.inc) ---- */

typedef __m512 at_v;
#define AT_VL 16
#define AT_LD(p) _mm512_loadu_ps(p)
#define AT_ST(p, v) _mm512_storeu_ps((p), (v))
#define AT_LDH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define AT_SET1(x) _mm512_set1_ps(x)
#define AT_ZERO() _mm512_setzero_ps()
#define AT_ADD(a, b) _mm512_add_ps((a), (b))
#define AT_SUB(a, b) _mm512_sub_ps((a), (b))
#define AT_MUL(a, b) _mm512_mul_ps((a), (b))
#define AT_MAX(a, b) _mm512_max_ps((a), (b))
#define AT_MIN(a, b) _mm512_min_ps((a), (b))
#define AT_ROUND(v) _mm512_roundscale_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define AT_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define AT_POW2(n) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define AT_ZERO_BELOW(y, x, c) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask((x), _mm512_set1_ps(c), _CMP_NLT_UQ), (y))
#define AT_HSUM(v) hsum16(v)
#define AT_HMAX(v) _mm512_reduce_max_ps(v)
#define AT_QR 4
#define AT_QJ 4
#define AT_PR 4
#define AT_PD 4
#define AT_NAME attention_avx512
#define AT_DIV(a, b) _mm512_div_ps((a), (b))
#define AT_SILU_NAME silu_mul_avx512
#include "kernels/kernels_attn_simd.inc"

/* vcvtps2ph rounds to nearest even, overflows to inf and quiets NaN keeping
 * the top payload bits: exactly ci_fp32_to_fp16. */
static void fp32_to_fp16_row(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : tailmask((int)(n - i));
        _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT));
    }
}

void ci_kernels_fill_avx512(ci_kernel_table *t, int vnni)
{
    *t = (ci_kernel_table){
        .name = vnni ? "avx512+vnni" : "avx512",
        .matmul = { mm_f32, mm_f16, mm_bf16,
                    vnni ? mm_q8_0_vnni : mm_q8_0_novnni, vnni ? mm_q4_0_vnni : mm_q4_0_novnni,
                    mm_q4_K, mm_q6_K },
        .xprep = { CI_XPREP_NONE, CI_XPREP_NONE, CI_XPREP_NONE,
                   CI_XPREP_Q8_0, CI_XPREP_Q8_0, CI_XPREP_Q8_K, CI_XPREP_Q8_K },
        .quantize_q8_0 = quantize_q8_0,
        .dot_f32 = dot_f32,
        .axpy_f32 = axpy_f32,
        .dot_f32_f16 = dot_f32_f16,
        .axpy_f32_f16 = axpy_f32_f16,
        .rmsnorm = rmsnorm,
        .silu_mul = silu_mul_avx512,
        .softmax = ci_softmax_scalar,
        .add = add,
        .rope_neox = rope_neox,
        .attention = attention_avx512,
        .fp32_to_fp16_row = fp32_to_fp16_row,
    };
}

CI_TARGET_END
