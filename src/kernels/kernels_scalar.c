/*
 * kernels_scalar.c — the reference implementation of every kernel: plain C,
 * sequential fp32 sums, no FMA contraction (the build is ISO C11, where GCC
 * defaults to -ffp-contract=off). SIMD versions are tested against these.
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/kernels_impl.h"
#include "util/util.h"

/* ---- matmul ---- */

/* Float weight types: widen one weight row to fp32 (exact), then dot it with
 * every batch row, so each weight byte is read once. */
static void mm_float(const ci_mm_args *a, int r0, int r1, ci_wtype wt)
{
    float *wrow = ci_malloc((size_t)a->cols * sizeof(float));
    for (int r = r0; r < r1; r++) {
        ci_dequantize_row(wrow, a->w + (size_t)r * a->w_stride, wt, (size_t)a->cols);
        for (int b = 0; b < a->batch; b++) {
            const float *x = a->x + (size_t)b * a->ldx;
            float s = 0.0f;
            for (int k = 0; k < a->cols; k++) s += x[k] * wrow[k];
            a->y[(size_t)b * a->ldy + r] = s;
        }
    }
    free(wrow);
}

static void mm_f32(const ci_mm_args *a, int r0, int r1) { mm_float(a, r0, r1, CI_WT_F32); }
static void mm_f16(const ci_mm_args *a, int r0, int r1) { mm_float(a, r0, r1, CI_WT_F16); }
static void mm_bf16(const ci_mm_args *a, int r0, int r1) { mm_float(a, r0, r1, CI_WT_BF16); }

/* Quantized weights against Q8_0-quantized x: exact int32 block sums; THE
 * definition (kernels.h) accumulates s = fmaf((float)isum, d_w·d_x, s) over
 * blocks in order. d_w·d_x (fp16 × fp16) is exact in fp32 and the explicit
 * fmaf rounds once per block, so the packed SIMD kernels can reproduce it
 * bit for bit (kernels_packed.c). */
static void mm_q8_0(const ci_mm_args *a, int r0, int r1)
{
    const int nb = a->cols / CI_QK;
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_stride;
        for (int b = 0; b < a->batch; b++) {
            const uint8_t *x = a->xq + (size_t)b * a->xq_stride;
            float s = 0.0f;
            for (int i = 0; i < nb; i++) {
                const uint8_t *wb = w + (size_t)i * CI_Q8_BYTES, *xb = x + (size_t)i * CI_Q8_BYTES;
                int isum = 0;
                for (int j = 0; j < CI_QK; j++) isum += (int8_t)wb[2 + j] * (int8_t)xb[2 + j];
                s = fmaf((float)isum, ci_fp16_to_fp32(ci_ld_u16(wb)) * ci_fp16_to_fp32(ci_ld_u16(xb)), s);
            }
            a->y[(size_t)b * a->ldy + r] = s;
        }
    }
}

static void mm_q4_0(const ci_mm_args *a, int r0, int r1)
{
    const int nb = a->cols / CI_QK;
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_stride;
        for (int b = 0; b < a->batch; b++) {
            const uint8_t *x = a->xq + (size_t)b * a->xq_stride;
            float s = 0.0f;
            for (int i = 0; i < nb; i++) {
                const uint8_t *wb = w + (size_t)i * CI_Q4_BYTES, *xb = x + (size_t)i * CI_Q8_BYTES;
                int isum = 0;
                for (int j = 0; j < CI_QK / 2; j++) {
                    isum += ((wb[2 + j] & 0xf) - 8) * (int8_t)xb[2 + j];
                    isum += ((wb[2 + j] >> 4) - 8) * (int8_t)xb[2 + j + CI_QK / 2];
                }
                s = fmaf((float)isum, ci_fp16_to_fp32(ci_ld_u16(wb)) * ci_fp16_to_fp32(ci_ld_u16(xb)), s);
            }
            a->y[(size_t)b * a->ldy + r] = s;
        }
    }
}

/* K-quant weights against Q8_K-quantized x, as ggml's vec_dot_q4_K_q8_K /
 * q6_K_q8_K: per super-block the scale-weighted sub-block dots (and the
 * Q4_K min term, from x's 16-element sums) are exact int32s; each is
 * scaled by its fp32 factor and summed in fp32. */
static void mm_q4_K(const ci_mm_args *a, int r0, int r1)
{
    const int nb = a->cols / CI_QK_K;
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_stride;
        for (int b = 0; b < a->batch; b++) {
            const uint8_t *x = a->xq + (size_t)b * a->xq_stride;
            float s = 0.0f;
            for (int i = 0; i < nb; i++) {
                const uint8_t *wb = w + (size_t)i * CI_Q4K_BYTES, *xb = x + (size_t)i * CI_Q8K_BYTES;
                const int8_t *xq = (const int8_t *)(xb + 4);
                uint8_t sm[16];
                ci_q4k_scales(wb + 4, sm);
                int dot = 0, mins = 0;
                for (int c = 0; c < 4; c++) {
                    int lo = 0, hi = 0;
                    for (int l = 0; l < 32; l++) {
                        lo += (wb[16 + 32 * c + l] & 0xf) * xq[64 * c + l];
                        hi += (wb[16 + 32 * c + l] >> 4) * xq[64 * c + 32 + l];
                    }
                    dot += sm[2 * c] * lo + sm[2 * c + 1] * hi;
                }
                for (int j = 0; j < 8; j++)
                    mins += sm[8 + j] * ((int16_t)ci_ld_u16(xb + CI_Q8K_BSUMS + 4 * j) +
                                         (int16_t)ci_ld_u16(xb + CI_Q8K_BSUMS + 4 * j + 2));
                s = ci_kq4_block_acc(s, ci_fp16_to_fp32(ci_ld_u16(wb)), ci_fp16_to_fp32(ci_ld_u16(wb + 2)),
                                     ci_ld_f32(xb), dot, mins);
            }
            a->y[(size_t)b * a->ldy + r] = s;
        }
    }
}

static void mm_q6_K(const ci_mm_args *a, int r0, int r1)
{
    const int nb = a->cols / CI_QK_K;
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = a->w + (size_t)r * a->w_stride;
        for (int b = 0; b < a->batch; b++) {
            const uint8_t *x = a->xq + (size_t)b * a->xq_stride;
            float s = 0.0f;
            for (int i = 0; i < nb; i++) {
                const uint8_t *wb = w + (size_t)i * CI_Q6K_BYTES, *xb = x + (size_t)i * CI_Q8K_BYTES;
                const int8_t *xq = (const int8_t *)(xb + 4), *sc = (const int8_t *)(wb + 192);
                int grp[16] = { 0 };
                for (int h = 0; h < 2; h++)
                    for (int l = 0; l < 32; l++) {
                        const uint8_t lo = wb[64 * h + l], hi = wb[64 * h + 32 + l], qh = wb[128 + 32 * h + l];
                        const int e = 128 * h + l;
                        grp[e / 16] += (((lo & 0xf) | ((qh & 3) << 4)) - 32) * xq[e];
                        grp[(e + 32) / 16] += (((hi & 0xf) | (((qh >> 2) & 3) << 4)) - 32) * xq[e + 32];
                        grp[(e + 64) / 16] += (((lo >> 4) | (((qh >> 4) & 3) << 4)) - 32) * xq[e + 64];
                        grp[(e + 96) / 16] += (((hi >> 4) | (((qh >> 6) & 3) << 4)) - 32) * xq[e + 96];
                    }
                int dot = 0;
                for (int g = 0; g < 16; g++) dot += sc[g] * grp[g];
                s = ci_kq6_block_acc(s, ci_fp16_to_fp32(ci_ld_u16(wb + 208)), ci_ld_f32(xb), dot);
            }
            a->y[(size_t)b * a->ldy + r] = s;
        }
    }
}

/* ---- vector kernels ---- */

static float dot_f32(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_f32(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static float dot_f32_f16(const float *a, const uint16_t *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * ci_fp16_to_fp32(b[i]);
    return s;
}

static void axpy_f32_f16(float *y, float a, const uint16_t *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * ci_fp16_to_fp32(x[i]);
}

static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

void ci_silu_mul_scalar(float *out, const float *gate, const float *up, int n)
{
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void ci_softmax_scalar(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void add(float *y, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += x[i];
}

static void rope_neox(float *v, int head_dim, const float *c, const float *s)
{
    const int h = head_dim / 2;
    for (int i = 0; i < h; i++) {
        float a = v[i], b = v[i + h];
        v[i] = a * c[i] - b * s[i];
        v[i + h] = b * c[i] + a * s[i];
    }
}

void ci_kernels_fill_scalar(ci_kernel_table *t)
{
    *t = (ci_kernel_table){
        .name = "scalar",
        .matmul = { mm_f32, mm_f16, mm_bf16, mm_q8_0, mm_q4_0, mm_q4_K, mm_q6_K },
        .xprep = { CI_XPREP_NONE, CI_XPREP_NONE, CI_XPREP_NONE, CI_XPREP_Q8_0, CI_XPREP_Q8_0,
                   CI_XPREP_Q8_K, CI_XPREP_Q8_K },
        .quantize_q8_0 = ci_quantize_q8_0_scalar,
        .dot_f32 = dot_f32,
        .axpy_f32 = axpy_f32,
        .dot_f32_f16 = dot_f32_f16,
        .axpy_f32_f16 = axpy_f32_f16,
        .rmsnorm = rmsnorm,
        .silu_mul = ci_silu_mul_scalar,
        .softmax = ci_softmax_scalar,
        .add = add,
        .rope_neox = rope_neox,
        .attention = ci_attention_scalar,
        .fp32_to_fp16_row = ci_fp32_to_fp16_row,
    };
}
