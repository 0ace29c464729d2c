/*
 * kernels_kquant.c — ggml's K-quant formats Q4_K and Q6_K (weights) and
 * Q8_K (activations): reference quantizers and dequantizers.
 *
 * The quantizers follow ggml's reference algorithms step by step (same
 * search grids, same fp32 operation order, same round-to-nearest-even
 * "nearest_int"), so a file quantized here holds what llama.cpp's
 * llama-quantize (without an importance matrix) would write:
 *  - Q4_K: per 32-weight sub-block a weighted least-squares fit of scale and
 *    min over a grid of 21 candidate inverse scales (make_qkx2_quants,
 *    weights av|x| + |x_i|), then the 8 scales and 8 mins are themselves
 *    quantized to 6 bits against the super-block's fp16 d / dmin, and the
 *    weights requantized with the rounded scales.
 *  - Q6_K: per 16-weight group a symmetric fit (make_qx_quants, rmse type 1:
 *    weights x², 19 candidate scales), the 16 group scales quantized to int8
 *    against the super-block's fp16 d, the weights requantized.
 *  - Q8_K: d = max/-127 of the element of largest magnitude, q = round(x/d)
 *    capped at 127, plus the sums of each 16 quants (used by the dot
 *    products to apply the Q4_K mins and the Q6_K offset of 32).
 * Little-endian only (as the rest of cinfer: x86-64).
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"

_Static_assert(sizeof(ci_block_q4_K) == CI_Q4K_BYTES, "ggml block_q4_K is 144 bytes");
_Static_assert(sizeof(ci_block_q6_K) == CI_Q6K_BYTES, "ggml block_q6_K is 210 bytes");
_Static_assert(sizeof(ci_block_q8_K) == CI_Q8K_BYTES, "ggml block_q8_K is 292 bytes");
_Static_assert(offsetof(ci_block_q8_K, bsums) == CI_Q8K_BSUMS, "Q8_K bsums offset");

#define GROUP_MAX_EPS 1e-15f /* ggml: a group below this is all zero */

/* Round to nearest, ties to even, for |v| ≤ 2^22: adding 1.5·2^23 leaves
 * the rounded integer (+2^22) in the low mantissa bits. Defined for every
 * float (NaN gives 0; out-of-range values give garbage the callers clamp),
 * exactly as ggml's nearest_int. */
static inline int nearest_int(float v)
{
    float t = v + 12582912.0f;
    uint32_t u;
    memcpy(&u, &t, 4);
    return (int)(u & 0x007fffffu) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static inline void st_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* ---------------------------------------------------------------- Q4_K */

/* Asymmetric fit of n values to L ∈ [0, nmax]: x ≈ scale·L - the_min.
 * Starts from the min/max grid, then tries nstep+1 inverse scales
 * (rmin + rdelta·is + nmax)/(max - min), each followed by the weighted
 * least-squares scale and min for its L; keeps the lowest weighted squared
 * error. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

void ci_quantize_row_q4_K(void *dst, const float *src, size_t n)
{
    uint8_t *out = dst;
    for (size_t b = 0; b < n / CI_QK_K; b++, out += CI_Q4K_BYTES) {
        const float *x = src + b * CI_QK_K;
        uint8_t L[CI_QK_K], Laux[32];
        float w[32], mins[8], scales[8];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *xj = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += xj[l] * xj[l];
            const float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xj[l]);
            scales[j] = make_qkx2_quants(32, 15, xj, w, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        uint8_t *sp = out + 4;
        memset(sp, 0, 12);
        for (int j = 0; j < 8; j++) {
            /* ggml stores the int in a uint8 first, then caps at 63 */
            uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
            if (ls > 63) ls = 63;
            if (lm > 63) lm = 63;
            if (j < 4) {
                sp[j] = ls;
                sp[j + 4] = lm;
            } else {
                sp[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
                sp[j - 4] |= (uint8_t)((ls >> 4) << 6);
                sp[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        const uint16_t dh = ci_fp32_to_fp16(max_scale / 63.0f), mh = ci_fp32_to_fp16(max_min / 63.0f);
        st_u16(out, dh);
        st_u16(out + 2, mh);
        const float d = ci_fp16_to_fp32(dh), dmin = ci_fp16_to_fp32(mh);
        uint8_t sm[16];
        ci_q4k_scales(sp, sm);
        for (int j = 0; j < 8; j++) {
            const float dj = d * (float)sm[j];
            if (dj == 0.0f) continue; /* keeps the first fit's L, as ggml */
            const float mj = dmin * (float)sm[8 + j];
            for (int l = 0; l < 32; l++)
                L[32 * j + l] = (uint8_t)clampi(nearest_int((x[32 * j + l] + mj) / dj), 0, 15);
        }
        uint8_t *q = out + 16;
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) q[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void ci_dequantize_q4_K(float *dst, const uint8_t *src, size_t n)
{
    for (size_t b = 0; b < n / CI_QK_K; b++, src += CI_Q4K_BYTES) {
        const float d = ci_fp16_to_fp32(ci_ld_u16(src)), dmin = ci_fp16_to_fp32(ci_ld_u16(src + 2));
        uint8_t sm[16];
        ci_q4k_scales(src + 4, sm);
        const uint8_t *q = src + 16;
        float *y = dst + b * CI_QK_K;
        for (int c = 0; c < 4; c++) {
            const float d1 = d * (float)sm[2 * c], m1 = dmin * (float)sm[8 + 2 * c];
            const float d2 = d * (float)sm[2 * c + 1], m2 = dmin * (float)sm[8 + 2 * c + 1];
            for (int l = 0; l < 32; l++) y[64 * c + l] = d1 * (float)(q[32 * c + l] & 0xf) - m1;
            for (int l = 0; l < 32; l++) y[64 * c + 32 + l] = d2 * (float)(q[32 * c + l] >> 4) - m2;
        }
    }
}

/* ---------------------------------------------------------------- Q6_K */

/* Symmetric fit of n values to L - nmax, L ∈ [0, 2·nmax): x ≈ scale·(L-nmax),
 * the value of largest magnitude mapping to -nmax; then 18 nearby inverse
 * scales, each scored by the x²-weighted least-squares fit it allows
 * (ggml's make_qx_quants with rmse_type 1, no importance weights). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    const float max = ci_signed_absmax(x, n), amax = fabsf(max);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void ci_quantize_row_q6_K(void *dst, const float *src, size_t n)
{
    uint8_t *out = dst;
    for (size_t b = 0; b < n / CI_QK_K; b++, out += CI_Q6K_BYTES) {
        const float *x = src + b * CI_QK_K;
        int8_t L[CI_QK_K];
        float scales[16];
        float max_scale = 0, max_abs_scale = 0;
        for (int g = 0; g < 16; g++) {
            scales[g] = make_qx_quants(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        memset(out, 0, CI_Q6K_BYTES);
        if (max_abs_scale < GROUP_MAX_EPS) continue; /* all zero: d = 0 */
        uint8_t *ql = out, *qh = out + 128;
        int8_t *sc = (int8_t *)(out + 192);
        const float iscale = -128.0f / max_scale;
        const uint16_t dh = ci_fp32_to_fp16(1 / iscale);
        st_u16(out + 208, dh);
        for (int g = 0; g < 16; g++) sc[g] = (int8_t)clampi(nearest_int(iscale * scales[g]), -128, 127);
        const float d = ci_fp16_to_fp32(dh);
        for (int g = 0; g < 16; g++) {
            const float dg = d * (float)sc[g];
            if (dg == 0.0f) continue; /* keeps the first fit's L, as ggml */
            for (int l = 0; l < 16; l++) L[16 * g + l] = (int8_t)(clampi(nearest_int(x[16 * g + l] / dg), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[64 * h + l] = (uint8_t)((Lh[l] & 0xf) | ((Lh[l + 64] & 0xf) << 4));
                ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0xf) | ((Lh[l + 96] & 0xf) << 4));
                qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                           ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

void ci_dequantize_q6_K(float *dst, const uint8_t *src, size_t n)
{
    for (size_t b = 0; b < n / CI_QK_K; b++, src += CI_Q6K_BYTES) {
        const float d = ci_fp16_to_fp32(ci_ld_u16(src + 208));
        const uint8_t *ql = src, *qh = src + 128;
        const int8_t *sc = (const int8_t *)(src + 192);
        float *y = dst + b * CI_QK_K;
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t a = ql[64 * h + l], c = ql[64 * h + 32 + l], hb = qh[32 * h + l];
                const int q1 = ((a & 0xf) | ((hb & 3) << 4)) - 32;
                const int q2 = ((c & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
                const int q3 = ((a >> 4) | (((hb >> 4) & 3) << 4)) - 32;
                const int q4 = ((c >> 4) | (((hb >> 6) & 3) << 4)) - 32;
                const int g = 8 * h + l / 16;
                y[128 * h + l] = d * (float)sc[g] * (float)q1;
                y[128 * h + 32 + l] = d * (float)sc[g + 2] * (float)q2;
                y[128 * h + 64 + l] = d * (float)sc[g + 4] * (float)q3;
                y[128 * h + 96 + l] = d * (float)sc[g + 6] * (float)q4;
            }
        }
    }
}

/* ---------------------------------------------------------------- Q8_K */

void ci_quantize_row_q8_K(void *dst, const float *src, size_t n)
{
    uint8_t *out = dst;
    for (size_t b = 0; b < n / CI_QK_K; b++, out += CI_Q8K_BYTES) {
        const float *x = src + b * CI_QK_K;
        const float max = ci_signed_absmax(x, CI_QK_K), amax = fabsf(max);
        int8_t *qs = (int8_t *)(out + 4);
        int16_t bsums[16];
        float d = 0.0f;
        if (amax == 0.0f) {
            memset(qs, 0, CI_QK_K);
            memset(bsums, 0, sizeof bsums);
        } else {
            /* the element of largest magnitude maps to -127 (ggml chose
             * -127 over -128 so every quant is in [-127, 127]) */
            const float iscale = -127.0f / max;
            for (int j = 0; j < CI_QK_K; j++) {
                int v = nearest_int(iscale * x[j]);
                qs[j] = (int8_t)clampi(v, -128, 127);
            }
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += qs[16 * g + l];
                bsums[g] = (int16_t)s;
            }
            d = 1 / iscale;
        }
        memcpy(out, &d, 4);
        memcpy(out + CI_Q8K_BSUMS, bsums, sizeof bsums);
    }
}
