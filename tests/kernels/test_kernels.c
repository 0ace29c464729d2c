/*
 * test_kernels.c — kernels against independent double-precision
 * computations, and every SIMD variant this CPU has against the scalar
 * reference, in one process (ci_kernels_get).
 *
 * Tolerances (u = 2^-24, fp32 unit roundoff) come from the arithmetic:
 *  - an fp32 dot of n terms, any summation order, with or without FMA:
 *    |err| ≤ (n+2)·u·Σ|x_k·w_k| (γ_n bound); two such computations differ by
 *    at most twice that.
 *  - quantized matmul: block sums are exact int32, so only the per-block
 *    scaling and the fp32 sum of nb block terms t_b round:
 *    |err| ≤ (nb+20)·u·Σ_k|d_w·d_x·q_w,k·q_x,k| per computation (20 covers
 *    the 16-lane reduce; lanes hold partial block sums, hence per-product).
 *  - element kernels: a few u relative per element, plus n·u for the fp32
 *    reductions (mean of squares, softmax sum).
 * Usage: test_kernels [--dispatch-scalar]  (the second mode is run by CTest
 * with CINFER_CPU=scalar and checks the public dispatch path).
 */
#include <immintrin.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/threadpool.h"
#include "../unit/test.h"

static const double U = 0x1p-24;

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_f(void) { return (float)((rnd_u32() >> 8) * 0x1p-24 * 2.0 - 1.0); }
static void fill(float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) v[i] = rnd_f() * scale;
}

static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static const ci_kernel_variant ALL_V[] = { CI_KERNEL_SCALAR, CI_KERNEL_AVX2, CI_KERNEL_AVX2_VNNI, CI_KERNEL_AVX512,
                                           CI_KERNEL_AVX512_VNNI };
#define NV ((int)(sizeof ALL_V / sizeof ALL_V[0]))

typedef struct wmat {
    uint8_t *buf;   /* allocation */
    uint8_t *w;     /* buf + 1: deliberately misaligned rows */
    float *deq;     /* exact decoded weights rows×cols */
    size_t rb;
} wmat;

static wmat make_w(ci_wtype wt, int rows, int cols)
{
    wmat m;
    m.rb = ci_row_bytes(wt, (size_t)cols);
    m.buf = malloc(m.rb * (size_t)rows + 1);
    m.w = m.buf + 1;
    m.deq = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    float *src = malloc(sizeof(float) * (size_t)cols);
    for (int r = 0; r < rows; r++) {
        /* vary magnitudes across rows (and some outliers) as real weights do */
        fill(src, (size_t)cols, (r % 3 == 0) ? 0.05f : 1.0f);
        if (r % 5 == 1) src[(r * 7) % cols] = 3.0f;
        ci_quantize_row(m.w + (size_t)r * m.rb, wt, src, (size_t)cols);
        ci_dequantize_row(m.deq + (size_t)r * cols, m.w + (size_t)r * m.rb, wt, (size_t)cols);
    }
    free(src);
    return m;
}
static void free_w(wmat *m) { free(m->buf); free(m->deq); }

/* One output's exact value and the sum of its terms' magnitudes. */
typedef struct ref_out { double val, abs; } ref_out;

/* Independent double reference of y[b][r]. For quantized types the terms
 * are block terms with x quantized as ggml does. */
static ref_out ref_dot(ci_wtype wt, const wmat *m, const float *x, int r, int cols)
{
    ref_out o = { 0, 0 };
    if (wt == CI_WT_Q8_0 || wt == CI_WT_Q4_0) {
        ci_block_q8_0 *xq = malloc(sizeof(ci_block_q8_0) * (size_t)(cols / 32));
        ci_quantize_row_q8_0(xq, x, (size_t)cols);
        const float *wd = m->deq + (size_t)r * cols;
        for (int b = 0; b < cols / 32; b++) {
            double s = 0, sa = 0;
            for (int j = 0; j < 32; j++) {
                s += (double)wd[b * 32 + j] * xq[b].qs[j];
                sa += fabs((double)wd[b * 32 + j] * xq[b].qs[j]);
            }
            /* SIMD splits a block over lanes (4 products each) that may
             * cancel, so bound with the products' magnitudes */
            o.val += s * ci_fp16_to_fp32(xq[b].d);
            o.abs += sa * ci_fp16_to_fp32(xq[b].d);
        }
        free(xq);
    } else {
        const float *wd = m->deq + (size_t)r * cols;
        for (int k = 0; k < cols; k++) {
            double t = (double)x[k] * wd[k];
            o.val += t;
            o.abs += fabs(t);
        }
    }
    return o;
}

static double tol_one(ci_wtype wt, int cols, double abs_sum)
{
    if (wt == CI_WT_Q8_0 || wt == CI_WT_Q4_0) return (cols / 32 + 20) * U * abs_sum + 1e-30;
    return (cols + 2) * U * abs_sum + 1e-30;
}

/* ---- matmul ---- */

static int g_fail_prints;

static void check_matmul_shape(ci_wtype wt, int rows, int cols, int batch)
{
    wmat m = make_w(wt, rows, cols);
    const size_t ldx = (size_t)cols + 3, ldy = (size_t)rows + 5; /* strides ≠ widths */
    float *x = malloc(sizeof(float) * ldx * (size_t)batch);
    fill(x, ldx * (size_t)batch, 2.0f);
    float *yref = malloc(sizeof(float) * ldy * (size_t)batch);
    float *y = malloc(sizeof(float) * ldy * (size_t)batch);
    float *y1 = malloc(sizeof(float) * ldy);
    const ci_kernel_table *sc = ci_kernels_get(CI_KERNEL_SCALAR);

    /* scalar reference vs independent double computation */
    ci_matmul_with(sc, yref, ldy, x, ldx, batch, m.w, wt, rows, cols);
    int bad = 0;
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++) {
            ref_out o = ref_dot(wt, &m, x + (size_t)b * ldx, r, cols);
            double err = fabs(yref[(size_t)b * ldy + r] - o.val);
            if (err > tol_one(wt, cols, o.abs)) {
                if (g_fail_prints++ < 10 || (wt >= 3 && g_fail_prints < 40))
                    fprintf(stderr, "scalar %s %dx%d b=%d r=%d: %g vs %g\n", ci_wtype_name(wt), rows, cols, b, r,
                            yref[(size_t)b * ldy + r], o.val);
                bad++;
            }
        }
    CHECK_MSG(bad == 0, "scalar vs double %s rows=%d cols=%d batch=%d: %d bad", ci_wtype_name(wt), rows, cols, batch, bad);

    /* quantized: the result also approximates the unquantized product within
     * the activation quantization error: |x - q·d16| ≤ d/2 + 127·|d - d16| */
    if (wt == CI_WT_Q8_0 || wt == CI_WT_Q4_0) {
        bad = 0;
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++) {
                const float *xr = x + (size_t)b * ldx, *wd = m.deq + (size_t)r * cols;
                double exact = 0, bound = 0, absd = 0;
                for (int blk = 0; blk < cols / 32; blk++) {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xr[blk * 32 + j]));
                    double d = amax / 127.0f, d16 = ci_fp16_to_fp32(ci_fp32_to_fp16((float)d));
                    double e = d / 2 * (1 + 1e-6) + 127 * fabs(d - d16);
                    for (int j = 0; j < 32; j++) {
                        exact += (double)xr[blk * 32 + j] * wd[blk * 32 + j];
                        absd += fabs((double)xr[blk * 32 + j] * wd[blk * 32 + j]);
                        bound += e * fabs(wd[blk * 32 + j]);
                    }
                }
                if (fabs(yref[(size_t)b * ldy + r] - exact) > bound + (cols + 2) * U * absd * 2) bad++;
            }
        CHECK_MSG(bad == 0, "quantized vs exact %s: %d outside quantization bound", ci_wtype_name(wt), bad);
    }

    float *ybase = NULL; /* the non-VNNI variant's result, for bitwise VNNI checks */
    for (int vi = 1; vi < NV; vi++) {
        const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
        if (!t) continue;
        ci_threadpool_set_threads(2);
        ci_matmul_with(t, y, ldy, x, ldx, batch, m.w, wt, rows, cols);
        bad = 0;
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++) {
                ref_out o = ref_dot(wt, &m, x + (size_t)b * ldx, r, cols);
                double tol = 2 * tol_one(wt, cols, o.abs);
                double err = fabs((double)y[(size_t)b * ldy + r] - yref[(size_t)b * ldy + r]);
                if (!(err <= tol)) {
                    if (g_fail_prints++ < 10 || (wt >= 3 && g_fail_prints < 40))
                        fprintf(stderr, "%s %s %dx%d b=%d r=%d: %.9g vs ref %.9g (tol %g)\n", t->name,
                                ci_wtype_name(wt), rows, cols, b, r, y[(size_t)b * ldy + r],
                                yref[(size_t)b * ldy + r], tol);
                    bad++;
                }
            }
        CHECK_MSG(bad == 0, "%s vs scalar %s rows=%d cols=%d batch=%d: %d bad", t->name, ci_wtype_name(wt), rows,
                  cols, batch, bad);

        /* bitwise independent of batch tiling and thread split */
        ci_threadpool_set_threads(1);
        int diff = 0;
        for (int b = 0; b < batch; b++) {
            ci_matmul_with(t, y1, ldy, x + (size_t)b * ldx, ldx, 1, m.w, wt, rows, cols);
            diff += memcmp(y1, y + (size_t)b * ldy, sizeof(float) * (size_t)rows) != 0;
        }
        CHECK_MSG(diff == 0, "%s %s: batch-1/1-thread results differ from batched/2-thread in %d rows", t->name,
                  ci_wtype_name(wt), diff);

        /* VNNI and non-VNNI variants of a width compute identical int lanes */
        if (ALL_V[vi] == CI_KERNEL_AVX2 || ALL_V[vi] == CI_KERNEL_AVX512) {
            free(ybase);
            ybase = malloc(sizeof(float) * ldy * (size_t)batch);
            memcpy(ybase, y, sizeof(float) * ldy * (size_t)batch);
        } else if ((ALL_V[vi] == CI_KERNEL_AVX2_VNNI || ALL_V[vi] == CI_KERNEL_AVX512_VNNI) && ybase) {
            diff = 0;
            for (int b = 0; b < batch; b++)
                diff += memcmp(ybase + (size_t)b * ldy, y + (size_t)b * ldy, sizeof(float) * (size_t)rows) != 0;
            CHECK_MSG(diff == 0, "%s %s differs bitwise from its non-VNNI sibling", t->name, ci_wtype_name(wt));
        }
    }
    ci_threadpool_set_threads(0);
    free(ybase);
    free(x); free(yref); free(y); free(y1);
    free_w(&m);
}

static void test_matmul(void)
{
    static const int batches[] = { 1, 3, 17, 64 };
    for (int wt = 0; wt < CI_WT_COUNT; wt++) {
        if (ci_wtype_block_size((ci_wtype)wt) > 32) continue; /* K-quants: test_kquant */
        const int q = ci_wtype_block_size((ci_wtype)wt) == 32;
        /* block types: 32·k with k odd (exercises the odd block of a zmm pair);
         * float types: also sizes with vector tails */
        const int cols_list[] = { q ? 32 * 1 : 7, q ? 32 * 9 : 37, q ? 32 * 33 : 1000, q ? 32 * 4 : 64 };
        const int rows_list[] = { 1, 7, 37, 45 };
        for (int ci = 0; ci < 4; ci++)
            for (int bi = 0; bi < 4; bi++) {
                int rows = rows_list[(ci + bi) % 4];
                if (batches[bi] == 64 && cols_list[ci] > 500) rows = 13; /* keep scalar time small */
                check_matmul_shape((ci_wtype)wt, rows, cols_list[ci], batches[bi]);
            }
    }
}

/* ---- quantization ---- */

static void test_quant(void)
{
    enum { N = 32 * 41 };
    float x[N], y[N];
    uint8_t q8[N / 32 * 34], q4[N / 32 * 18], q8b[N / 32 * 34];
    CHECK(ci_row_bytes(CI_WT_Q8_0, 64) == 68);
    CHECK(ci_row_bytes(CI_WT_Q4_0, 64) == 36);
    CHECK(ci_row_bytes(CI_WT_Q4_0, 33) == 0);
    CHECK(ci_row_bytes(CI_WT_BF16, 33) == 66);
    CHECK(ci_row_bytes(CI_WT_F32, 3) == 12);
    CHECK(ci_row_bytes((ci_wtype)99, 32) == 0);
    CHECK(ci_wtype_block_bytes(CI_WT_Q8_0) == 34 && ci_wtype_block_bytes(CI_WT_Q4_0) == 18);
    CHECK(ci_wtype_block_size(CI_WT_F16) == 1 && ci_wtype_block_size(CI_WT_Q4_0) == 32);

    for (int rep = 0; rep < 20; rep++) {
        float scale = rep < 10 ? 1.0f : (float)ldexp(1.0, rep * 4 - 60);
        fill(x, N, scale);
        if (rep == 1) memset(x, 0, sizeof(float) * 32); /* all-zero block: d = 0 */
        /* Q8_0 round trip: |x - q·d16| ≤ d/2 + 127·|d - d16| */
        ci_quantize_row_q8_0(q8, x, N);
        ci_dequantize_row(y, q8, CI_WT_Q8_0, N);
        int bad = 0;
        for (int b = 0; b < N / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            double d = amax / 127.0f, d16 = ci_fp16_to_fp32(ci_fp32_to_fp16((float)d));
            for (int j = 0; j < 32; j++)
                if (fabs((double)x[b * 32 + j] - y[b * 32 + j]) > d / 2 * (1 + 1e-6) + 127 * fabs(d - d16) + 1e-45) bad++;
        }
        CHECK_MSG(bad == 0, "q8_0 round trip rep %d: %d elements out of bound", rep, bad);
        /* Q4_0: ≤ |d|/2 (+ fp16 of d), except the clamped top code 15: ≤ |d| */
        ci_quantize_row_q4_0(q4, x, N);
        ci_dequantize_row(y, q4, CI_WT_Q4_0, N);
        bad = 0;
        for (int b = 0; b < N / 32; b++) {
            float amax = 0, mx = 0;
            for (int j = 0; j < 32; j++)
                if (fabsf(x[b * 32 + j]) > amax) { amax = fabsf(x[b * 32 + j]); mx = x[b * 32 + j]; }
            double d = fabs(mx / -8.0f), d16 = fabs(ci_fp16_to_fp32(ci_fp32_to_fp16(mx / -8.0f)));
            for (int j = 0; j < 32; j++) {
                int code = j < 16 ? (q4[b * 18 + 2 + j] & 15) : (q4[b * 18 + 2 + j - 16] >> 4);
                double lim = (code == 15 ? d : d / 2) * (1 + 1e-6) + 8 * fabs(d - d16) + 1e-45;
                if (fabs((double)x[b * 32 + j] - y[b * 32 + j]) > lim) bad++;
            }
        }
        CHECK_MSG(bad == 0, "q4_0 round trip rep %d: %d elements out of bound", rep, bad);
        /* every table's activation quantizer is bit-exact with the reference */
        for (int vi = 1; vi < NV; vi++) {
            const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
            if (!t) continue;
            t->quantize_q8_0(q8b, x, N);
            CHECK_MSG(memcmp(q8, q8b, sizeof q8) == 0, "%s quantize_q8_0 differs from reference (rep %d)", t->name, rep);
        }
    }

    /* ggml specifics: ties round away from zero (roundf), id = 1/d */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) + 0.5f; /* amax 16.5 */
    x[0] = 127.0f;                                               /* d = 1, id = 1 */
    ci_quantize_row_q8_0(q8, x, 32);
    CHECK(ci_fp16_to_fp32((uint16_t)(q8[0] | q8[1] << 8)) == 1.0f);
    CHECK((int8_t)q8[2] == 127);
    CHECK((int8_t)q8[2 + 1] == -15);  /* -14.5 → -15 */
    CHECK((int8_t)q8[2 + 16] == 1);   /* 0.5 → 1 */
    CHECK((int8_t)q8[2 + 31] == 16);  /* 15.5 → 16 */
    for (int vi = 1; vi < NV; vi++) {
        const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
        if (!t) continue;
        t->quantize_q8_0(q8b, x, 32);
        CHECK_MSG(memcmp(q8, q8b, 34) == 0, "%s: ties", t->name);
    }
    /* non-finite input: defined output, same in every table */
    for (int j = 0; j < 64; j++) x[j] = (float)j;
    x[5] = NAN;
    x[40] = INFINITY;
    ci_quantize_row_q8_0(q8, x, 64);
    for (int vi = 1; vi < NV; vi++) {
        const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
        if (!t) continue;
        t->quantize_q8_0(q8b, x, 64);
        CHECK_MSG(memcmp(q8, q8b, 68) == 0, "%s: non-finite block", t->name);
    }

    /* Q4_0 layout: qs[j] low nibble is element j, high nibble element j+16;
     * d = max/-8 keeps the sign: the largest-magnitude value maps to code 0 */
    for (int j = 0; j < 32; j++) x[j] = 0.0f;
    x[3] = 8.0f;   /* max → d = -1, x[3] → code 0 */
    x[19] = -4.0f; /* → -4/-1 + 8.5 = 12.5 → 12 */
    ci_quantize_row_q4_0(q4, x, 32);
    CHECK(ci_fp16_to_fp32((uint16_t)(q4[0] | q4[1] << 8)) == -1.0f);
    CHECK((q4[2 + 3] & 15) == 0);
    CHECK((q4[2 + 3] >> 4) == 12);
    CHECK((q4[2 + 0] & 15) == 8); /* 0 → code 8 */
    ci_dequantize_row(y, q4, CI_WT_Q4_0, 32);
    CHECK(y[3] == 8.0f && y[19] == -4.0f && y[0] == 0.0f);
}

/* ---- fp16 / bf16 ---- */

__attribute__((target("f16c"))) static uint16_t hw_f2h(float f) { return (uint16_t)_cvtss_sh(f, 0); }
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h) { return _cvtsh_ss(h); }

static void test_conv(void)
{
    /* widening: every half, then back (exact round trip, NaN stays NaN) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ci_fp16_to_fp32((uint16_t)h);
        uint16_t back = ci_fp32_to_fp16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan ? !(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != h) bad++;
    }
    CHECK_MSG(bad == 0, "fp16 round trip: %d bad", bad);
    CHECK(ci_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(ci_fp32_to_fp16(65519.996f) == 0x7bff);
    CHECK(ci_fp32_to_fp16(65520.0f) == 0x7c00);    /* tie at the top rounds to inf */
    CHECK(ci_fp32_to_fp16(-INFINITY) == 0xfc00);
    CHECK(ci_fp32_to_fp16(0x1p-24f) == 0x0001);     /* smallest subnormal */
    CHECK(ci_fp32_to_fp16(0x1p-25f) == 0x0000);     /* tie → even (0) */
    CHECK(ci_fp32_to_fp16(0x1.8p-24f) == 0x0002);   /* 1.5 ulp tie → even (2) */
    CHECK(ci_fp32_to_fp16(0x1.000002p-25f) == 0x0001);
    CHECK(ci_fp32_to_fp16(0x1.ff8p-15f) == 0x03ff); /* largest subnormal */
    CHECK(ci_fp32_to_fp16(0x1.ffcp-15f) == 0x0400); /* tie rounds up into the first normal */
    CHECK(ci_fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);       /* tie → even */
    CHECK(ci_fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02);   /* tie → even (up) */
    CHECK(ci_fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(ci_fp16_to_fp32(0x0001) == 0x1p-24f);
    CHECK(ci_fp16_to_fp32(0x8000) == 0.0f && signbit(ci_fp16_to_fp32(0x8000)));
    CHECK(isinf(ci_fp16_to_fp32(0x7c00)));
    CHECK(isnan(ci_fp16_to_fp32(ci_fp32_to_fp16(NAN))));
    /* against the F16C hardware: all halves widened, and a sweep of fp32 bit
     * patterns (every exponent, many mantissas, NaNs) narrowed, bit for bit */
    if (ci_cpu_features() & CI_CPU_F16C) {
        bad = 0;
        for (uint32_t h = 0; h < 65536; h++)
            if (f2u(hw_h2f((uint16_t)h)) != f2u(ci_fp16_to_fp32((uint16_t)h))) bad++;
        CHECK_MSG(bad == 0, "fp16->fp32 vs F16C: %d differ", bad);
        bad = 0;
        for (uint64_t u = 0; u < (1ull << 32); u += 997) {
            float f = u2f((uint32_t)u);
            if (hw_f2h(f) != ci_fp32_to_fp16(f)) {
                if (bad++ < 3) fprintf(stderr, "fp32->fp16 %08x: hw %04x sw %04x\n", (unsigned)u, hw_f2h(f), ci_fp32_to_fp16(f));
            }
        }
        CHECK_MSG(bad == 0, "fp32->fp16 vs F16C: %d differ", bad);
    }

    /* bf16 */
    CHECK(ci_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(ci_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);         /* tie → even */
    CHECK(ci_fp32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);     /* tie → even (up) */
    CHECK(ci_fp32_to_bf16(u2f(0x3f808001)) == 0x3f81);        /* just above the tie */
    CHECK(ci_fp32_to_bf16(u2f(0x7f7fffff)) == 0x7f80);        /* FLT_MAX rounds to inf */
    CHECK(ci_fp32_to_bf16(INFINITY) == 0x7f80);
    CHECK(ci_fp32_to_bf16(-INFINITY) == 0xff80);
    uint16_t bn = ci_fp32_to_bf16(u2f(0x7f800001)); /* sNaN with low payload: stays NaN */
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f));
    bn = ci_fp32_to_bf16(u2f(0xffffffff));
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) && (bn & 0x8000));
    CHECK(ci_fp32_to_bf16(u2f(0x00008000)) == 0x0000); /* subnormal tie → even */
    CHECK(ci_fp32_to_bf16(u2f(0x00018000)) == 0x0002);
    CHECK(ci_fp32_to_bf16(u2f(0x00008001)) == 0x0001);
    CHECK(ci_fp32_to_bf16(-0.0f) == 0x8000);
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ci_bf16_to_fp32((uint16_t)h);
        int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (is_nan ? !isnan(f) : ci_fp32_to_bf16(f) != h) bad++;
    }
    CHECK_MSG(bad == 0, "bf16 round trip: %d bad", bad);
    /* rows */
    float fr[5] = { 1, -2, 0.5f, 65504, 0x1p-24f }, fr2[5];
    uint16_t hr[5];
    ci_fp32_to_fp16_row(hr, fr, 5);
    ci_fp16_to_fp32_row(fr2, hr, 5);
    CHECK(memcmp(fr, fr2, sizeof fr) == 0);
    ci_fp32_to_bf16_row(hr, fr, 3);
    ci_bf16_to_fp32_row(fr2, hr, 3);
    CHECK(memcmp(fr, fr2, 3 * sizeof(float)) == 0);
}

/* ---- row kernels ---- */

static void test_rope(void)
{
    const int hd = 128;
    float c[64], s[64];
    const int poss[] = { 0, 1, 7, 1000, 40959, 131071 };
    const double thetas[] = { 10000.0, 1000000.0 };
    for (int ti = 0; ti < 2; ti++)
        for (int pi = 0; pi < 6; pi++) {
            int pos = poss[pi];
            ci_rope_cache(c, s, hd, pos, thetas[ti]);
            int bad = 0;
            for (int i = 0; i < hd / 2; i++) {
                double inv = 1.0 / pow(thetas[ti], 2.0 * i / hd);
                double ang = pos * inv;
                /* fp32 inv_freq and angle: ≤ ~5u relative error of the angle */
                double tol = 6 * U * ang + 2 * U;
                if (fabs(c[i] - cos(ang)) > tol || fabs(s[i] - sin(ang)) > tol) bad++;
            }
            CHECK_MSG(bad == 0, "rope cache pos %d theta %g: %d bad", pos, thetas[ti], bad);
            if (pos == 0) CHECK(c[0] == 1.0f && s[5] == 0.0f);
            /* the rotation vs double, and every table bitwise equal to the reference */
            float v[128], vref[128], v2[128];
            fill(v, hd, 3.0f);
            memcpy(vref, v, sizeof v);
            ci_kernels_get(CI_KERNEL_SCALAR)->rope_neox(vref, hd, c, s);
            bad = 0;
            for (int i = 0; i < hd / 2; i++) {
                double a = v[i], b = v[i + hd / 2];
                double e0 = a * c[i] - b * s[i], e1 = b * c[i] + a * s[i];
                double t0 = 3 * U * (fabs(a * c[i]) + fabs(b * s[i])) + 1e-30;
                double t1 = 3 * U * (fabs(b * c[i]) + fabs(a * s[i])) + 1e-30;
                if (fabs(vref[i] - e0) > t0 || fabs(vref[i + hd / 2] - e1) > t1) bad++;
            }
            CHECK_MSG(bad == 0, "rope rotation pos %d: %d bad", pos, bad);
            for (int vi = 1; vi < NV; vi++) {
                const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
                if (!t) continue;
                memcpy(v2, v, sizeof v);
                t->rope_neox(v2, hd, c, s);
                CHECK_MSG(memcmp(v2, vref, sizeof v) == 0, "%s rope differs", t->name);
            }
        }
}

static void test_rows(void)
{
    const int sizes[] = { 1, 5, 16, 37, 128, 1000, 1027 };
    for (int si = 0; si < 7; si++) {
        const int n = sizes[si];
        float *x = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n),
              *o2 = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
        uint16_t *h = malloc(2 * (size_t)n);
        fill(x, n, 4.0f);
        fill(w, n, 2.0f);
        fill(g, n, 8.0f);
        for (int i = 0; i < n; i++) h[i] = ci_fp32_to_fp16(w[i]);
        for (int vi = 0; vi < NV; vi++) {
            const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
            if (!t) continue;
            /* rmsnorm vs double */
            const float eps = 1e-6f;
            t->rmsnorm(o, x, w, n, eps);
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
            double inv = 1.0 / sqrt(ss / n + eps);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                double e = w[i] * (x[i] * inv);
                if (fabs(o[i] - e) > (n + 8) * U * fabs(e) + 1e-30) bad++;
            }
            CHECK_MSG(bad == 0, "%s rmsnorm n=%d: %d bad", t->name, n, bad);
            /* softmax vs double */
            memcpy(o, x, sizeof(float) * n);
            t->softmax(o, n);
            double mx = x[0], sum = 0;
            for (int i = 1; i < n; i++) mx = fmax(mx, x[i]);
            for (int i = 0; i < n; i++) sum += exp(x[i] - mx);
            bad = 0;
            for (int i = 0; i < n; i++) {
                double e = exp(x[i] - mx) / sum;
                if (fabs(o[i] - e) > (n + 10) * U * e + 1e-30) bad++;
            }
            CHECK_MSG(bad == 0, "%s softmax n=%d: %d bad", t->name, n, bad);
            /* silu(g)*up vs double */
            t->silu_mul(o, g, x, n);
            bad = 0;
            for (int i = 0; i < n; i++) {
                double e = g[i] / (1.0 + exp(-(double)g[i])) * x[i];
                if (fabs(o[i] - e) > 8 * U * fabs(e) + 1e-30) bad++;
            }
            CHECK_MSG(bad == 0, "%s silu_mul n=%d: %d bad", t->name, n, bad);
            /* the exp's saturation ends: gates far outside the usual range */
            {
                static const float ext[] = {-200.f, -100.f, -88.5f, -88.f, -87.5f, -87.f, -50.f, -1e-30f, 0.f,
                                            1e-30f, 20.f, 87.5f, 88.5f, 100.f, 1e30f, -1e30f};
                for (int i = 0; i < n; i++) g[i] = ext[i % (int)(sizeof ext / sizeof ext[0])];
                t->silu_mul(o, g, x, n);
                bad = 0;
                for (int i = 0; i < n; i++) {
                    double e = (double)g[i] / (1.0 + exp(-(double)g[i])) * x[i];
                    if (!(fabs(o[i] - e) <= 8 * U * fabs(e) + 1e-30)) bad++;
                }
                CHECK_MSG(bad == 0, "%s silu_mul extreme gates n=%d: %d bad", t->name, n, bad);
                fill(g, n, 8.0f);
            }
            /* add: exact */
            memcpy(o, w, sizeof(float) * n);
            t->add(o, x, n);
            bad = 0;
            for (int i = 0; i < n; i++) bad += o[i] != w[i] + x[i];
            CHECK_MSG(bad == 0, "%s add n=%d", t->name, n);
            /* dot / axpy, f32 and f16, vs double */
            double d = 0, dabs = 0, dh = 0, dhabs = 0;
            for (int i = 0; i < n; i++) {
                d += (double)x[i] * w[i];
                dabs += fabs((double)x[i] * w[i]);
                dh += (double)x[i] * ci_fp16_to_fp32(h[i]);
                dhabs += fabs((double)x[i] * ci_fp16_to_fp32(h[i]));
            }
            CHECK_MSG(fabs(t->dot_f32(x, w, n) - d) <= (n + 2) * U * dabs + 1e-30, "%s dot_f32 n=%d", t->name, n);
            CHECK_MSG(fabs(t->dot_f32_f16(x, h, n) - dh) <= (n + 2) * U * dhabs + 1e-30, "%s dot_f32_f16 n=%d", t->name, n);
            memcpy(o, g, sizeof(float) * n);
            memcpy(o2, g, sizeof(float) * n);
            t->axpy_f32(o, 0.37f, x, n);
            t->axpy_f32_f16(o2, -1.5f, h, n);
            bad = 0;
            for (int i = 0; i < n; i++) {
                double e = g[i] + 0.37 * (double)x[i];
                double e2 = g[i] - 1.5 * (double)ci_fp16_to_fp32(h[i]);
                if (fabs(o[i] - e) > 2 * U * (fabs(g[i]) + fabs(0.37 * x[i])) + 1e-30) bad++;
                if (fabs(o2[i] - e2) > 2 * U * (fabs(g[i]) + fabs(1.5 * w[i])) + 1e-30) bad++;
            }
            CHECK_MSG(bad == 0, "%s axpy n=%d: %d bad", t->name, n, bad);
        }
        free(x); free(w); free(o); free(o2); free(g); free(h);
    }
}

static void test_dispatch(void)
{
    const char *d = ci_kernels_describe();
    CHECK(d && *d);
    /* the table's name, then "+amx…" when the packed products use tiles */
    const char *tn = ci_kernels_current() ? ci_kernels_current()->name : "";
    CHECK(!strncmp(tn, d, strlen(tn)) && (d[strlen(tn)] == 0 || !strncmp(d + strlen(tn), "+amx", 4)));
    CHECK(ci_kernels_get(CI_KERNEL_SCALAR) != NULL);
    CHECK(ci_kernels_get(CI_KERNEL_COUNT) == NULL);
    printf("dispatch: %s; variants:", d);
    for (int vi = 0; vi < NV; vi++)
        if (ci_kernels_get(ALL_V[vi])) printf(" %s", ci_kernels_get(ALL_V[vi])->name);
    printf("\n");
}

/* Run with CINFER_CPU=scalar: the public entry points must use the reference. */
static void test_dispatch_scalar(void)
{
    CHECK_STREQ(ci_kernels_describe(), "scalar");
    const int rows = 19, cols = 32 * 5, batch = 3;
    for (int wt = 0; wt < CI_WT_COUNT; wt++) {
        if (ci_row_bytes((ci_wtype)wt, cols) == 0) continue; /* K-quants: test_kquant */
        wmat m = make_w((ci_wtype)wt, rows, cols);
        float x[3 * 160], y[3 * 19], yr[3 * 19];
        fill(x, sizeof x / sizeof x[0], 1.0f);
        ci_matmul(y, rows, x, cols, batch, m.w, (ci_wtype)wt, rows, cols);
        ci_matmul_with(ci_kernels_get(CI_KERNEL_SCALAR), yr, rows, x, cols, batch, m.w, (ci_wtype)wt, rows, cols);
        CHECK_MSG(memcmp(y, yr, sizeof y) == 0, "public ci_matmul %s is not the scalar reference", ci_wtype_name((ci_wtype)wt));
        free_w(&m);
    }
    float a[37], b[37];
    fill(a, 37, 1);
    fill(b, 37, 1);
    CHECK(ci_dot_f32(a, b, 37) == ci_kernels_get(CI_KERNEL_SCALAR)->dot_f32(a, b, 37));
}

/* ---- packed Q8_0 weights: bitwise equal to the scalar reference ---- */

/* Raw Q8_0 rows: random int8 over the whole range (-128 included, which the
 * quantizer never produces) and random finite fp16 scales of both signs. */
static uint8_t *make_raw_q8(int rows, int cols)
{
    const int nb = cols / 32;
    uint8_t *w = malloc((size_t)rows * nb * sizeof(ci_block_q8_0) + 1);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < nb; i++) {
            uint8_t *blk = w + ((size_t)r * nb + i) * sizeof(ci_block_q8_0);
            uint16_t d = ci_fp32_to_fp16(rnd_f() * ((r + i) % 4 == 0 ? 1e-3f : 0.05f));
            memcpy(blk, &d, 2);
            for (int k = 0; k < 32; k++) blk[2 + k] = (uint8_t)rnd_u32();
            if ((r + i) % 3 == 0) blk[2 + (r * 5 + i) % 32] = 0x80;
            if ((r + i) % 7 == 0) memset(blk + 2, 0x80, 32); /* all -128: extreme int32 sums */
        }
    return w;
}

/* One packed product against its reference outputs, bitwise, with a
 * sentinel in the gaps of y past each segment's rows (nothing may be
 * written there). `what` names the kernel/threads/shape in messages. */
static void check_packed_vs_ref(const ci_packed *p, int nseg, const int *rows, float *const *y, float *const *yref,
                                const size_t *ldy, const float *x, size_t ldx, int batch, const char *what)
{
    for (int s = 0; s < nseg; s++) memset(y[s], 0x7f, sizeof(float) * ldy[s] * (size_t)batch);
    ci_matmul_packed(p, y, ldy, x, ldx, batch);
    for (int s = 0; s < nseg; s++) {
        int diff = 0, gap = 0;
        for (int b = 0; b < batch; b++) {
            diff += memcmp(yref[s] + (size_t)b * ldy[s], y[s] + (size_t)b * ldy[s], sizeof(float) * (size_t)rows[s]) != 0;
            for (size_t k = (size_t)rows[s]; k < ldy[s]; k++) gap += f2u(y[s][(size_t)b * ldy[s] + k]) != 0x7f7f7f7fu;
        }
        CHECK_MSG(diff == 0, "%s seg %d/%d rows=%d batch=%d: %d batch rows differ from the reference", what, s, nseg,
                  rows[s], batch, diff);
        CHECK_MSG(gap == 0, "%s wrote past segment %d's rows", what, s);
    }
}

static void test_packed(void)
{
    static const int cols_list[] = { 32, 32 * 3, 32 * 9, 32 * 33 };
    static const int batches[] = { 1, 2, 3, 5, 15, 16, 17, 31, 33, 48, 70 };
    static const int modes[] = { INT_MAX, 1, 0 }; /* VNNI only, AMX from batch 1, default threshold */
    static const char *mode_name[] = { "vnni", "amx", "default" };
    const ci_kernel_table *sc = ci_kernels_get(CI_KERNEL_SCALAR);
    const int amx = ci_amx_int8_usable();
    if (!amx) fprintf(stderr, "packed q8_0: AMX cases skipped (no AMX-INT8 usable by this process or CINFER_CPU caps it)\n");
    int any = 0, cases = 0;
    /* the last case: long rows and many groups, so the AMX kernel splits
     * them into several L2 chunks and block slices */
    for (int c = 0; c < 23; c++) {
        const int cols = c == 22 ? 32 * 101 : cols_list[c % 4], batch = c == 22 ? 33 : batches[c % 11];
        int nseg = 1 + c % 3, rows[3];
        uint8_t *wraw[3];
        const void *w[3];
        for (int s = 0; s < nseg; s++) {
            rows[s] = c == 0 ? 16 * (s + 1) : c == 22 ? 250 : 1 + (int)(rnd_u32() % 50);
            wraw[s] = make_raw_q8(rows[s], cols);
            w[s] = wraw[s] + (s & 1); /* odd segments misaligned */
            if (s & 1) memmove(wraw[s] + 1, wraw[s], (size_t)rows[s] * (cols / 32) * sizeof(ci_block_q8_0));
        }
        const size_t ldx = (size_t)cols + 3;
        float *x = malloc(sizeof(float) * ldx * (size_t)batch);
        for (int b = 0; b < batch; b++) fill(x + (size_t)b * ldx, ldx, b % 4 == 1 ? 100.0f : b % 4 == 2 ? 1e-3f : 1.0f);
        if (batch > 3) memset(x + 3 * ldx, 0, sizeof(float) * (size_t)cols); /* an all-zero row */
        float *yref[3], *y[3];
        size_t ldy[3];
        for (int s = 0; s < nseg; s++) {
            ldy[s] = (size_t)rows[s] + 2 + s;
            yref[s] = malloc(sizeof(float) * ldy[s] * (size_t)batch);
            y[s] = malloc(sizeof(float) * ldy[s] * (size_t)batch);
            ci_matmul_with(sc, yref[s], ldy[s], x, ldx, batch, w[s], CI_WT_Q8_0, rows[s], cols);
        }
        ci_packed *p = ci_pack_weights(nseg, w, rows, CI_WT_Q8_0, cols);
        if (p) {
            any = 1;
            for (int thr = 1; thr <= 2; thr++)
                for (int mi = 0; mi < 3; mi++) {
                    if (mi == 1 && !amx) continue;
                    ci_threadpool_set_threads(thr);
                    ci_packed_set_amx_min_batch(modes[mi]);
                    char what[96];
                    snprintf(what, sizeof what, "packed q8_0 %s thr=%d cols=%d", mode_name[mi], thr, cols);
                    check_packed_vs_ref(p, nseg, rows, y, yref, ldy, x, ldx, batch, what);
                    cases++;
                }
            ci_packed_free(p);
        } else {
            const ci_kernel_table *t = ci_kernels_get(CI_KERNEL_AVX512_VNNI);
            const int vnni_cur = t && ci_kernels_current() == t;
            const char *pe = getenv("CINFER_PACK");
            CHECK_MSG(!vnni_cur || (pe && !strcmp(pe, "0")), "pack refused with VNNI kernels selected");
        }
        for (int s = 0; s < nseg; s++) { free(wraw[s]); free(yref[s]); free(y[s]); }
        free(x);
    }
    ci_packed_set_amx_min_batch(0);
    ci_threadpool_set_threads(0);
    fprintf(stderr, "packed q8_0: %s (%d runs)\n", any ? "tested" : "skipped (no packed form: kernels without AVX512-VNNI, or CINFER_PACK=0)", cases);
}

/* ---- packed BF16 weights: scalar model == AVX-512 == AMX, bitwise ---- */

/* Random bf16 weights, rows×cols, stored at w (may be misaligned); scale
 * sets the magnitude, with some zeros and sign changes. */
static void fill_bf16(uint8_t *w, int rows, int cols, float scale)
{
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++) {
        float v = rnd_u32() % 17 == 0 ? 0.0f : rnd_f() * scale * (i % 5 == 0 ? 8.0f : 1.0f);
        uint16_t h = ci_fp32_to_bf16(v);
        memcpy(w + 2 * i, &h, 2);
    }
}

/* tiny = 1: products around 2^-126 and below, so the DAZ/FTZ behaviour of
 * the kernels must match the model too. */
static void check_bf16_packed_case(int nseg, const int *rows, int cols, int batch, int tiny, int *runs)
{
    const float wscale = tiny ? 0x1p-60f : 0.05f;
    uint8_t *wraw[3];
    const void *w[3];
    float *yref[3], *y[3];
    size_t ldy[3];
    const size_t ldx = (size_t)cols + 5;
    float *x = malloc(sizeof(float) * ldx * (size_t)batch);
    for (int b = 0; b < batch; b++)
        fill(x + (size_t)b * ldx, ldx, tiny ? 0x1p-62f : b % 4 == 1 ? 100.0f : b % 4 == 2 ? 1e-3f : 1.0f);
    if (batch > 3) memset(x + 3 * ldx, 0, sizeof(float) * (size_t)cols); /* an all-zero row */
    for (int s = 0; s < nseg; s++) {
        wraw[s] = malloc((size_t)rows[s] * (size_t)cols * 2 + 1);
        w[s] = wraw[s] + (s & 1); /* odd segments misaligned */
        fill_bf16(wraw[s] + (s & 1), rows[s], cols, wscale);
        ldy[s] = (size_t)rows[s] + 1 + s;
        yref[s] = malloc(sizeof(float) * ldy[s] * (size_t)batch);
        y[s] = malloc(sizeof(float) * ldy[s] * (size_t)batch);
        ci_matmul_bf16_ref(yref[s], ldy[s], x, ldx, batch, w[s], rows[s], cols);
    }
    ci_packed *p = ci_pack_weights(nseg, w, rows, CI_WT_BF16, cols);
    CHECK_MSG(p != NULL, "bf16 pack refused (nseg=%d cols=%d)", nseg, cols);
    static const int kernels[] = { CI_BF16_KERNEL_AVX512, CI_BF16_KERNEL_AMX, CI_BF16_KERNEL_AUTO };
    static const char *kname[] = { "avx512", "amx", "auto" };
    for (int thr = 1; p && thr <= 2; thr++)
        for (int ki = 0; ki < 3; ki++) {
            if (kernels[ki] == CI_BF16_KERNEL_AMX && !ci_amx_bf16_usable()) continue;
            ci_threadpool_set_threads(thr);
            ci_bf16_packed_force_kernel(kernels[ki]);
            char what[96];
            snprintf(what, sizeof what, "packed bf16 %s thr=%d cols=%d%s", kname[ki], thr, cols, tiny ? " tiny" : "");
            check_packed_vs_ref(p, nseg, rows, y, yref, ldy, x, ldx, batch, what);
            (*runs)++;
        }
    ci_bf16_packed_force_kernel(CI_BF16_KERNEL_AUTO);
    ci_threadpool_set_threads(0);
    ci_packed_free(p);
    for (int s = 0; s < nseg; s++) { free(wraw[s]); free(yref[s]); free(y[s]); }
    free(x);
}

/* The model against a double-precision product of the unrounded x: x
 * rounded to bf16 (8-bit significand) costs ≤ 2^-8 relative per term, and
 * each product passes through ≤ 16 chain roundings, E+O, and nc accumulator
 * additions, so |y - Σ x·w| ≤ (2^-8 + (nc+18)·u·(1+2^-8))·Σ|x·w|. */
static void test_bf16_ref_accuracy(void)
{
    static const int cols_list[] = { 2, 6, 30, 34, 98, 130, 1030, 33 };
    double worst = 0;
    for (int c = 0; c < 8; c++) {
        const int cols = cols_list[c], rows = 7, batch = 3, nc = (cols + 31) / 32;
        uint8_t *w = malloc((size_t)rows * cols * 2);
        float *x = malloc(sizeof(float) * (size_t)cols * batch), y[3 * 7];
        fill_bf16(w, rows, cols, 1.0f);
        fill(x, (size_t)cols * batch, 1.0f);
        ci_matmul_bf16_ref(y, rows, x, (size_t)cols, batch, w, rows, cols);
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++) {
                double exact = 0, mag = 0;
                for (int k = 0; k < cols; k++) {
                    uint16_t h;
                    memcpy(&h, w + 2 * ((size_t)r * cols + k), 2);
                    double t = (double)x[(size_t)b * cols + k] * ci_bf16_to_fp32(h);
                    exact += t;
                    mag += fabs(t);
                }
                const double tol = (0x1p-8 + (nc + 18) * U * (1 + 0x1p-8)) * mag + 1e-30;
                const double err = fabs(y[b * rows + r] - exact);
                if (mag > 0 && err / mag > worst) worst = err / mag;
                CHECK_MSG(err <= tol, "bf16 model cols=%d: |%.9g - %.9g| > %.3g", cols, y[b * rows + r], exact, tol);
            }
        free(w);
        free(x);
    }
    fprintf(stderr, "packed bf16 model vs double: worst error %.3g·Σ|x·w| (bound 2^-8 + (nc+18)u)\n", worst);
}

static void test_packed_bf16(void)
{
    if (!(ci_cpu_features() & CI_CPU_FMA)) {
        fprintf(stderr, "packed bf16: skipped (the model needs FMA instructions)\n");
        return;
    }
    test_bf16_ref_accuracy();
    int rows1 = 5;
    ci_packed *probe = ci_pack_weights(1, (const void *[]){ "0123456789" }, &rows1, CI_WT_BF16, 1);
    if (!probe) {
        const char *pe = getenv("CINFER_PACK");
        fprintf(stderr, "packed bf16: skipped (%s)\n", pe && !strcmp(pe, "0") ? "CINFER_PACK=0"
                                                          : "no AVX-512 kernels selected on this CPU");
        return;
    }
    ci_packed_free(probe);
    if (!ci_amx_bf16_usable())
        fprintf(stderr, "packed bf16: AMX cases skipped (no AMX-BF16 usable by this process or CINFER_CPU caps it)\n");
    static const int cols_list[] = { 2, 6, 30, 34, 62, 98, 130, 318, 1030, 33 };
    static const int batches[] = { 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 48, 70 };
    int runs = 0;
    for (int c = 0; c < 26; c++) {
        const int cols = cols_list[c % 10], batch = batches[c % 13], nseg = 1 + c % 3;
        int rows[3];
        for (int s = 0; s < nseg; s++) rows[s] = c == 0 ? 16 * (s + 1) : 1 + (int)(rnd_u32() % 50);
        check_bf16_packed_case(nseg, rows, cols, batch, c % 5 == 4, &runs);
    }
    /* AMX k blocks of 16 chunks with C spilled between them: several
     * batch-tile pairs, partial tiles, k ending on and just past a block */
    static const int kblock_cases[][4] = { { 1030, 70, 37, 20 }, { 512, 35, 33, 0 }, { 1024, 50, 17, 40 }, { 1571, 97, 48, 0 } };
    for (int c = 0; c < 4; c++) {
        const int *kc = kblock_cases[c];
        int rows[2] = { kc[2], kc[3] };
        check_bf16_packed_case(kc[3] ? 2 : 1, rows, kc[0], kc[1], 0, &runs);
    }
    fprintf(stderr, "packed bf16: %d runs bitwise equal to the scalar model\n", runs);
}

/* ---- K-quants (Q4_K, Q6_K weights; Q8_K activations) ----
 * The reference decode below is written from the element formulas in
 * kernels.h (independent of kernels_kquant.c's word-parallel unpacking). */

static double kq_h2d(const uint8_t *p) { return ci_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

/* Exact (double) value of element e of a Q4_K / Q6_K block. */
static double kq_elem(ci_wtype wt, const uint8_t *blk, int e)
{
    if (wt == CI_WT_Q4_K) {
        const uint8_t *s = blk + 4, *qs = blk + 16;
        int j = e / 32, sc, m;
        if (j < 4) {
            sc = s[j] & 63;
            m = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
            m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
        uint8_t byte = qs[32 * (e / 64) + e % 32];
        int q = e % 64 < 32 ? byte & 15 : byte >> 4;
        return kq_h2d(blk) * sc * q - kq_h2d(blk + 2) * m;
    }
    const uint8_t *ql = blk, *qh = blk + 128;
    const int8_t *sc = (const int8_t *)(blk + 192);
    int h = e / 128, p = (e % 128) / 32, l = e % 32;
    uint8_t lb = ql[64 * h + 32 * (p & 1) + l];
    int q = (p < 2 ? lb & 15 : lb >> 4) | (((qh[32 * h + l] >> (2 * p)) & 3) << 4);
    return kq_h2d(blk + 208) * sc[e / 16] * (q - 32);
}

static size_t kq_bytes(ci_wtype wt) { return wt == CI_WT_Q4_K ? 144 : 210; }

/* Random bytes are valid blocks once the fp16 scale fields hold finite
 * values: every 6-bit scale/min, int8 scale and quant is then reachable. */
static void kq_random_block(ci_wtype wt, uint8_t *blk)
{
    for (size_t i = 0; i < kq_bytes(wt); i++) blk[i] = (uint8_t)rnd_u32();
    for (int k = 0; k < (wt == CI_WT_Q4_K ? 2 : 1); k++) {
        float v = (float)ldexp(1.0 + (rnd_u32() & 1023) / 1024.0, -12 + (int)(rnd_u32() % 6));
        if (wt == CI_WT_Q6_K && (rnd_u32() & 1)) v = -v; /* Q6_K's d carries the sign */
        uint16_t h = ci_fp32_to_fp16(v);
        uint8_t *dst = wt == CI_WT_Q4_K ? blk + 2 * k : blk + 208;
        dst[0] = (uint8_t)h;
        dst[1] = (uint8_t)(h >> 8);
    }
}

static void test_kquant_layout(void)
{
    CHECK(ci_row_bytes(CI_WT_Q4_K, 512) == 288 && ci_row_bytes(CI_WT_Q6_K, 768) == 630);
    CHECK(ci_row_bytes(CI_WT_Q4_K, 255) == 0 && ci_row_bytes(CI_WT_Q6_K, 32 * 9) == 0);
    CHECK(ci_wtype_block_size(CI_WT_Q4_K) == 256 && ci_wtype_block_bytes(CI_WT_Q6_K) == 210);
    CHECK(sizeof(ci_block_q8_K) == 292 && sizeof(ci_block_q4_K) == 144 && sizeof(ci_block_q6_K) == 210);
    CHECK_STREQ(ci_wtype_name(CI_WT_Q4_K), "q4_k");
    CHECK_STREQ(ci_wtype_name(CI_WT_Q6_K), "q6_k");

    /* Hand-built Q4_K block: d = 0.5, dmin = 0.25. Sub-block 5 has scale
     * (s[9]&15) | (s[1]>>6)<<4 = 3 | 1<<4 = 19 and min (s[9]>>4) | (s[5]>>6)<<4
     * = 2 | 2<<4 = 34; element 5·32+3 = 163 is the high nibble of qs[64+3]. */
    uint8_t b4[144] = { 0 };
    uint16_t h = ci_fp32_to_fp16(0.5f);
    b4[0] = (uint8_t)h; b4[1] = (uint8_t)(h >> 8);
    h = ci_fp32_to_fp16(0.25f);
    b4[2] = (uint8_t)h; b4[3] = (uint8_t)(h >> 8);
    b4[4 + 9] = 3 | 2 << 4;
    b4[4 + 1] = 1 << 6 | 7; /* sub-block 1: scale 7 */
    b4[4 + 5] = 2 << 6 | 9; /* sub-block 1: min 9 */
    b4[16 + 67] = 0xa5;     /* element 131 (sub-block 4, low nibble 5), 163 (high nibble 10) */
    b4[16 + 40] = 0x0c;     /* qs[40]: chunk 1, l = 8: element 72 (sub-block 2) low nibble 12 */
    float y[256];
    CHECK(ci_dequantize_row(y, b4, CI_WT_Q4_K, 256) == 0);
    CHECK(y[163] == (float)(0.5 * 19 * 10 - 0.25 * 34));
    CHECK(y[131] == 0.0f);  /* sub-block 4: scale s[8]&15 | (s[0]>>6)<<4 = 0, min 0 */
    CHECK(y[72] == 0.0f);   /* sub-block 2: scale 0, min 0 */
    CHECK(y[40] == (float)(-0.25 * 9)); /* sub-block 1, q 0 */
    CHECK(y[0] == 0.0f);
    int bad = 0;
    for (int e = 0; e < 256; e++) bad += y[e] != (float)kq_elem(CI_WT_Q4_K, b4, e);
    CHECK_MSG(bad == 0, "q4_k hand block: %d elements differ from the element formula", bad);
    b4[16 + 8] = 0x3c; /* element 8 (sub-block 0: scale 0) and 40 (sub-block 1: q 3) */
    ci_dequantize_row(y, b4, CI_WT_Q4_K, 256);
    CHECK(y[40] == (float)(0.5 * 7 * 3 - 0.25 * 9));

    /* Hand-built Q6_K block: d = -2, scales[g] = g - 8; element 200 = half 1,
     * part 2, l = 8: high nibble of ql[64+8], bits 4-5 of qh[32+8]. */
    uint8_t b6[210] = { 0 };
    h = ci_fp32_to_fp16(-2.0f);
    b6[208] = (uint8_t)h; b6[209] = (uint8_t)(h >> 8);
    for (int g = 0; g < 16; g++) b6[192 + g] = (uint8_t)(int8_t)(g - 8);
    b6[64 + 8] = 0x70;       /* element 200: low bits 7; element 136: low bits 0 */
    b6[128 + 32 + 8] = 0x2d; /* 0b00101101: part 0 → 1, part 1 → 3, part 2 → 2, part 3 → 0 */
    CHECK(ci_dequantize_row(y, b6, CI_WT_Q6_K, 256) == 0);
    CHECK(y[200] == (float)(-2.0 * (12 - 8) * ((7 | 2 << 4) - 32)));
    CHECK(y[136] == (float)(-2.0 * (8 - 8) * ((0 | 1 << 4) - 32))); /* scale 0 */
    CHECK(y[168] == (float)(-2.0 * (10 - 8) * ((0 | 3 << 4) - 32)));
    CHECK(y[0] == (float)(-2.0 * -8 * -32));
    bad = 0;
    for (int e = 0; e < 256; e++) bad += y[e] != (float)kq_elem(CI_WT_Q6_K, b6, e);
    CHECK_MSG(bad == 0, "q6_k hand block: %d elements differ from the element formula", bad);

    /* random blocks: ggml's fp32 dequantization ((d·sc)·q - dmin·m) is
     * within a few roundings of the exact value */
    for (int wt = CI_WT_Q4_K; wt <= CI_WT_Q6_K; wt++)
        for (int rep = 0; rep < 50; rep++) {
            uint8_t blk[210];
            kq_random_block((ci_wtype)wt, blk);
            ci_dequantize_row(y, blk, (ci_wtype)wt, 256);
            bad = 0;
            for (int e = 0; e < 256; e++) {
                double ex = kq_elem((ci_wtype)wt, blk, e);
                double mag = wt == CI_WT_Q4_K ? fabs(kq_h2d(blk)) * 63 * 15 + fabs(kq_h2d(blk + 2)) * 63 : fabs(ex);
                bad += fabs(y[e] - ex) > 3 * U * mag;
            }
            CHECK_MSG(bad == 0, "%s random block dequantization: %d elements off", ci_wtype_name((ci_wtype)wt), bad);
        }
}

/* Q8_K: the element of largest magnitude maps to -127 (d = max/-127 as
 * 1/(-127/max) in fp32), every element rounds to nearest (ties to even),
 * bsums are the sums of each 16 quants. */
static void test_kquant_q8k(void)
{
    enum { NB = 5 };
    static float x[256 * NB];
    static ci_block_q8_K q[NB];
    for (int rep = 0; rep < 20; rep++) {
        fill(x, 256 * NB, rep < 10 ? 1.0f : (float)ldexp(1.0, rep * 6 - 80));
        if (rep == 1) memset(x + 256, 0, 256 * sizeof(float)); /* zero block */
        if (rep == 2) x[77] = -3.0f;                            /* negative max */
        ci_quantize_row_q8_K(q, x, 256 * NB);
        int bad = 0;
        for (int b = 0; b < NB; b++) {
            const float *xb = x + 256 * b;
            float mx = 0, amax = 0;
            for (int j = 0; j < 256; j++)
                if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); mx = xb[j]; }
            if (amax == 0) {
                int nz = q[b].d != 0;
                for (int j = 0; j < 256; j++) nz += q[b].qs[j] != 0;
                for (int g = 0; g < 16; g++) nz += q[b].bsums[g] != 0;
                bad += nz != 0;
                continue;
            }
            const float iscale = -127.0f / mx;
            bad += q[b].d != 1.0f / iscale;
            for (int j = 0; j < 256; j++) {
                /* nearest, ties to even (rint in the default mode), of the fp32 product */
                double want = rint((double)(iscale * xb[j]));
                if (want > 127) want = 127;
                bad += q[b].qs[j] != (int)want;
                if (xb[j] == mx) bad += q[b].qs[j] != -127;
            }
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int l = 0; l < 16; l++) sum += q[b].qs[16 * g + l];
                bad += q[b].bsums[g] != sum;
            }
        }
        CHECK_MSG(bad == 0, "q8_K rep %d: %d mismatches", rep, bad);
    }
    /* ties: max -127 gives iscale 1, d 1: 2.5 → 2 (even), 3.5 → 4, -0.5 → 0;
     * max +254 gives iscale -0.5, d -2: 5 → -2.5 → -2 */
    memset(x, 0, 256 * sizeof(float));
    x[0] = -127.0f; x[1] = 2.5f; x[2] = 3.5f; x[3] = -0.5f;
    ci_quantize_row_q8_K(q, x, 256);
    CHECK(q[0].d == 1.0f && q[0].qs[0] == -127 && q[0].qs[1] == 2 && q[0].qs[2] == 4 && q[0].qs[3] == 0);
    CHECK(q[0].bsums[0] == -127 + 2 + 4);
    x[0] = 254.0f; x[1] = 5.0f;
    ci_quantize_row_q8_K(q, x, 256);
    CHECK(q[0].d == -2.0f && q[0].qs[0] == -127 && q[0].qs[1] == -2);
}

/* Round trips: quantize → dequantize. The fits are least-squares searches
 * with no closed-form per-element bound, so the checks are (a) each element
 * is within half a step of the grid its stored scales define, plus how far
 * it lies outside that grid's range, (b) the relative RMS error per input
 * distribution stays within 25% of the value measured on 2000 blocks
 * (uniform: Q4_K 0.055, Q6_K 0.013 — below the plain min/max grid's
 * 1/(15·√3) = 0.038·range, resp. 1/(63·√3)·range), (c) determinism and
 * requantizing dequantized values. */
static void test_kquant_roundtrip(void)
{
    enum { N = 256 * 7 };
    static float x[N], y[N];
    static uint8_t qb[N / 256 * 210], qb2[N / 256 * 210];
    for (int wt = CI_WT_Q4_K; wt <= CI_WT_Q6_K; wt++) {
        const size_t bb = kq_bytes((ci_wtype)wt);
        double se_d[4] = { 0 }, ss_d[4] = { 0 };
        for (int rep = 0; rep < 24; rep++) {
            const int dist = rep % 4; /* uniform, sums of 4 (bell-shaped), outliers, all positive */
            const float scale = rep < 12 ? 1.0f : (float)ldexp(1.0, rep - 18);
            for (int i = 0; i < N; i++) {
                float v = rnd_f();
                if (dist == 1) v = (rnd_f() + rnd_f() + rnd_f() + rnd_f()) * 0.5f;
                if (dist == 2 && rnd_u32() % 61 == 0) v *= 12.0f;
                if (dist == 3) v = 0.7f + 0.3f * v;
                x[i] = v * scale;
            }
            if (rep == 5) memset(x + 512, 0, 256 * sizeof(float));
            CHECK(ci_quantize_row(qb, (ci_wtype)wt, x, N) == 0);
            ci_dequantize_row(y, qb, (ci_wtype)wt, N);
            int bad = 0;
            for (int b = 0; b < N / 256; b++) {
                const uint8_t *blk = qb + b * bb;
                double ss = 0, se = 0;
                for (int e = 0; e < 256; e++) {
                    const double xe = x[256 * b + e], err = fabs(y[256 * b + e] - xe);
                    ss += xe * xe;
                    se += err * err;
                    double step, lo, hi;
                    if (wt == CI_WT_Q4_K) { /* codes 0 and 15 of the element's sub-block */
                        uint8_t probe[144];
                        memcpy(probe, blk, 144);
                        const int at = 16 + 32 * (e / 64) + e % 32, high = e % 64 >= 32;
                        probe[at] = 0;
                        lo = kq_elem(CI_WT_Q4_K, probe, e);
                        probe[at] = high ? 0xf0 : 0x0f;
                        hi = kq_elem(CI_WT_Q4_K, probe, e);
                        step = (hi - lo) / 15;
                    } else {
                        const double dg = kq_h2d(blk + 208) * (int8_t)blk[192 + e / 16];
                        lo = fmin(-32 * dg, 31 * dg);
                        hi = fmax(-32 * dg, 31 * dg);
                        step = fabs(dg);
                    }
                    double lim = step / 2 + 4 * U * (fabs(lo) + fabs(hi)) + 1e-30;
                    if (xe < lo) lim += lo - xe;
                    if (xe > hi) lim += xe - hi;
                    if (!(err <= lim) && bad++ < 3)
                        fprintf(stderr, "%s rep %d block %d e %d: x %g y %g (range %g..%g step %g)\n",
                                ci_wtype_name((ci_wtype)wt), rep, b, e, xe, y[256 * b + e], lo, hi, step);
                }
                se_d[dist] += se / (double)scale / scale;
                ss_d[dist] += ss / (double)scale / scale;
            }
            CHECK_MSG(bad == 0, "%s round trip rep %d: %d elements outside their step bound", ci_wtype_name((ci_wtype)wt),
                      rep, bad);
            ci_quantize_row(qb2, (ci_wtype)wt, x, N);
            CHECK(memcmp(qb, qb2, N / 256 * bb) == 0);
        }
        /* measured on 2000 blocks per distribution: Q4_K 0.0545 0.0689 0.0953 0.0235,
         * Q6_K 0.0132 0.0170 0.0295 0.0104 */
        static const double measured[2][4] = { { 0.0545, 0.0689, 0.0953, 0.0235 }, { 0.0132, 0.0170, 0.0295, 0.0104 } };
        for (int dist = 0; dist < 4; dist++) {
            const double rel = sqrt(se_d[dist] / ss_d[dist]), lim = 1.25 * measured[wt - CI_WT_Q4_K][dist];
            CHECK_MSG(rel < lim, "%s distribution %d: relative RMS error %.4f (limit %.4f)", ci_wtype_name((ci_wtype)wt),
                      dist, rel, lim);
        }
        const double lim = 1.25 * measured[wt - CI_WT_Q4_K][0];
        /* values already on a grid: a second round trip moves them much less */
        ci_dequantize_row(y, qb, (ci_wtype)wt, N);
        ci_quantize_row(qb2, (ci_wtype)wt, y, N);
        ci_dequantize_row(x, qb2, (ci_wtype)wt, N);
        double se = 0, ss = 0;
        for (int i = 0; i < N; i++) {
            se += (x[i] - y[i]) * (double)(x[i] - y[i]);
            ss += (double)y[i] * y[i];
        }
        CHECK_MSG(sqrt(se / ss) < lim / 2, "%s requantizing dequantized values: relative RMS %g",
                  ci_wtype_name((ci_wtype)wt), sqrt(se / ss));
    }
    memset(x, 0, 256 * sizeof(float));
    for (int wt = CI_WT_Q4_K; wt <= CI_WT_Q6_K; wt++) {
        ci_quantize_row(qb, (ci_wtype)wt, x, 256);
        ci_dequantize_row(y, qb, (ci_wtype)wt, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++) nz += y[i] != 0.0f;
        CHECK_MSG(nz == 0, "%s zero block", ci_wtype_name((ci_wtype)wt));
    }
}

/* One matmul shape: the scalar kernel against an independent double
 * computation on the same Q8_K activations; every SIMD table against the
 * scalar kernel; bitwise independence of batch tiling and threads; and the
 * result against the dequantized weights times the unquantized x, within
 * the activation quantization error. Tolerances as for Q8_0 (file top),
 * with nb super-blocks and per-product magnitudes of both the scale and
 * the min parts (they are accumulated separately, then cancel). */
static void check_kquant_matmul(ci_wtype wt, int rows, int cols, int batch, int random_bytes)
{
    const size_t bb = kq_bytes(wt), rb = ci_row_bytes(wt, (size_t)cols);
    const int nb = cols / 256;
    uint8_t *buf = malloc(rb * (size_t)rows + 1), *w = buf + 1; /* misaligned rows */
    double *wex = malloc(sizeof(double) * (size_t)rows * (size_t)cols);
    double *wmin = malloc(sizeof(double) * (size_t)rows * (size_t)cols); /* |dmin·m| per element (Q4_K) */
    float *tmp = malloc(sizeof(float) * (size_t)cols);
    for (int r = 0; r < rows; r++) {
        uint8_t *row = w + (size_t)r * rb;
        if (random_bytes) {
            for (int b = 0; b < nb; b++) kq_random_block(wt, row + (size_t)b * bb);
        } else {
            fill(tmp, (size_t)cols, r % 3 == 0 ? 0.05f : 1.0f);
            if (r % 5 == 1) tmp[(r * 7) % cols] = 3.0f;
            ci_quantize_row(row, wt, tmp, (size_t)cols);
        }
        for (int b = 0; b < nb; b++)
            for (int e = 0; e < 256; e++) {
                const uint8_t *blk = row + (size_t)b * bb;
                wex[(size_t)r * cols + 256 * b + e] = kq_elem(wt, blk, e);
                wmin[(size_t)r * cols + 256 * b + e] = wt == CI_WT_Q4_K ? fabs(kq_h2d(blk + 2)) * 63 : 0;
            }
    }
    const size_t ldx = (size_t)cols + 3, ldy = (size_t)rows + 5;
    float *x = malloc(sizeof(float) * ldx * (size_t)batch);
    fill(x, ldx * (size_t)batch, 2.0f);
    float *yref = malloc(sizeof(float) * ldy * (size_t)batch), *y = malloc(sizeof(float) * ldy * (size_t)batch);
    float *y1 = malloc(sizeof(float) * ldy);
    ci_block_q8_K *xq = malloc(sizeof(ci_block_q8_K) * (size_t)nb * (size_t)batch);
    for (int b = 0; b < batch; b++) ci_quantize_row_q8_K(xq + (size_t)b * nb, x + (size_t)b * ldx, (size_t)cols);
    double *val = malloc(sizeof(double) * (size_t)rows * batch), *mag = malloc(sizeof(double) * (size_t)rows * batch);
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++) {
            double v = 0, m = 0;
            for (int k = 0; k < cols; k++) {
                const ci_block_q8_K *xb = &xq[(size_t)b * nb + k / 256];
                const double xk = (double)xb->qs[k % 256] * xb->d;
                v += wex[(size_t)r * cols + k] * xk;
                m += (fabs(wex[(size_t)r * cols + k]) + 2 * wmin[(size_t)r * cols + k]) * fabs(xk);
            }
            val[(size_t)b * rows + r] = v;
            mag[(size_t)b * rows + r] = m;
        }
    const ci_kernel_table *sc = ci_kernels_get(CI_KERNEL_SCALAR);
    ci_matmul_with(sc, yref, ldy, x, ldx, batch, w, wt, rows, cols);
    int bad = 0;
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++) {
            double tol = (nb + 20) * U * mag[(size_t)b * rows + r] + 1e-30;
            if (!(fabs(yref[(size_t)b * ldy + r] - val[(size_t)b * rows + r]) <= tol)) {
                if (g_fail_prints++ < 10)
                    fprintf(stderr, "scalar %s %dx%d b=%d r=%d: %.9g vs %.9g (tol %g)\n", ci_wtype_name(wt), rows, cols, b,
                            r, yref[(size_t)b * ldy + r], val[(size_t)b * rows + r], tol);
                bad++;
            }
        }
    CHECK_MSG(bad == 0, "scalar vs double %s rows=%d cols=%d batch=%d%s: %d bad", ci_wtype_name(wt), rows, cols, batch,
              random_bytes ? " (random blocks)" : "", bad);

    /* against the plain product of the decoded weights and x: the only
     * difference is x's quantization, |x - d·q| ≤ |d|·(1/2 + 2^-16) */
    bad = 0;
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++) {
            double exact = 0, bound = 0;
            for (int k = 0; k < cols; k++) {
                const double wk = wex[(size_t)r * cols + k];
                exact += wk * x[(size_t)b * ldx + k];
                bound += fabs(wk) * fabs(xq[(size_t)b * nb + k / 256].d) * (0.5 + 0x1p-16);
            }
            bound += 2 * (nb + 20) * U * mag[(size_t)b * rows + r] + 1e-30;
            if (!(fabs(yref[(size_t)b * ldy + r] - exact) <= bound)) bad++;
        }
    CHECK_MSG(bad == 0, "%s vs dequantized float product: %d outside the activation quantization bound",
              ci_wtype_name(wt), bad);

    for (int vi = 1; vi < NV; vi++) {
        const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
        if (!t) continue;
        ci_threadpool_set_threads(2);
        ci_matmul_with(t, y, ldy, x, ldx, batch, w, wt, rows, cols);
        bad = 0;
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++) {
                double tol = 2 * (nb + 20) * U * mag[(size_t)b * rows + r] + 1e-30;
                double err = fabs((double)y[(size_t)b * ldy + r] - yref[(size_t)b * ldy + r]);
                if (!(err <= tol)) {
                    if (g_fail_prints++ < 10)
                        fprintf(stderr, "%s %s %dx%d b=%d r=%d: %.9g vs ref %.9g (tol %g)\n", t->name, ci_wtype_name(wt),
                                rows, cols, b, r, y[(size_t)b * ldy + r], yref[(size_t)b * ldy + r], tol);
                    bad++;
                }
            }
        CHECK_MSG(bad == 0, "%s vs scalar %s rows=%d cols=%d batch=%d%s: %d bad", t->name, ci_wtype_name(wt), rows, cols,
                  batch, random_bytes ? " (random blocks)" : "", bad);
        ci_threadpool_set_threads(1);
        int diff = 0;
        for (int b = 0; b < batch; b++) {
            ci_matmul_with(t, y1, ldy, x + (size_t)b * ldx, ldx, 1, w, wt, rows, cols);
            diff += memcmp(y1, y + (size_t)b * ldy, sizeof(float) * (size_t)rows) != 0;
        }
        CHECK_MSG(diff == 0, "%s %s: batch-1/1-thread results differ from batched/2-thread in %d rows", t->name,
                  ci_wtype_name(wt), diff);
    }
    ci_threadpool_set_threads(0);
    /* the public entry point uses the selected table */
    ci_matmul(y, ldy, x, ldx, batch, w, wt, rows, cols);
    ci_matmul_with(ci_kernels_current(), yref, ldy, x, ldx, batch, w, wt, rows, cols);
    int diff = 0;
    for (int b = 0; b < batch; b++) diff += memcmp(y + (size_t)b * ldy, yref + (size_t)b * ldy, sizeof(float) * (size_t)rows) != 0;
    CHECK_MSG(diff == 0, "public ci_matmul %s differs from the current table", ci_wtype_name(wt));
    free(buf); free(wex); free(wmin); free(tmp); free(x); free(yref); free(y); free(y1); free(xq); free(val); free(mag);
}

static void test_kquant(void)
{
    test_kquant_layout();
    test_kquant_q8k();
    test_kquant_roundtrip();
    static const int cols_list[] = { 256, 256 * 3, 256 * 5, 256 * 12 };
    static const int rows_list[] = { 1, 7, 37, 45 };
    static const int batches[] = { 1, 3, 17 };
    for (int wt = CI_WT_Q4_K; wt <= CI_WT_Q6_K; wt++)
        for (int ci = 0; ci < 4; ci++)
            for (int bi = 0; bi < 3; bi++)
                check_kquant_matmul((ci_wtype)wt, rows_list[(ci + bi) % 4], cols_list[ci], batches[bi], (ci + bi) % 2);
}

/* The K-quant AMX path (kernels_kq_amx.c) against the AVX-512 kernels and
 * the scalar reference: all three must agree bitwise (same int32 block sums,
 * same fp32 epilogue), for random valid blocks, odd row counts, every batch
 * size and 1 or 2 threads. */
static void test_kquant_amx(void)
{
    const ci_kernel_table *t512 = ci_kernels_get(CI_KERNEL_AVX512), *sc = ci_kernels_get(CI_KERNEL_SCALAR);
    if (!t512 || !ci_amx_int8_usable()) {
        printf("test_kquant_amx: skipped (no AVX-512 or AMX-INT8 usable)\n");
        return;
    }
    static const int cols_list[] = { 256, 256 * 3, 256 * 5 };
    static const int rows_list[] = { 1, 17, 37 };
    for (int wt = CI_WT_Q4_K; wt <= CI_WT_Q6_K; wt++)
        for (int ci = 0; ci < 3; ci++) {
            const int cols = cols_list[ci], rows = rows_list[ci], nb = cols / 256, maxb = 70;
            const size_t bb = kq_bytes((ci_wtype)wt), rb = ci_row_bytes((ci_wtype)wt, (size_t)cols);
            uint8_t *buf = malloc(rb * (size_t)rows + 1), *w = buf + 1;
            for (int r = 0; r < rows; r++)
                for (int b = 0; b < nb; b++) kq_random_block((ci_wtype)wt, w + (size_t)r * rb + (size_t)b * bb);
            const size_t ldx = (size_t)cols + 1, ldy = (size_t)rows + 3;
            float *x = malloc(sizeof(float) * ldx * maxb);
            fill(x, ldx * maxb, 3.0f);
            float *yref = malloc(sizeof(float) * ldy * maxb), *ysimd = malloc(sizeof(float) * ldy * maxb);
            float *yamx = malloc(sizeof(float) * ldy * maxb);
            int bad = 0;
            for (int batch = 1; batch <= maxb; batch += batch < 20 ? 1 : 7) {
                ci_threadpool_set_threads(1);
                ci_matmul_with(sc, yref, ldy, x, ldx, batch, w, (ci_wtype)wt, rows, cols);
                ci_kq_set_amx_min_batch(INT_MAX);
                ci_matmul_with(t512, ysimd, ldy, x, ldx, batch, w, (ci_wtype)wt, rows, cols);
                for (int th = 1; th <= 2; th++) {
                    ci_threadpool_set_threads(th);
                    ci_kq_set_amx_min_batch(1);
                    ci_matmul_with(t512, yamx, ldy, x, ldx, batch, w, (ci_wtype)wt, rows, cols);
                    for (int b = 0; b < batch; b++) {
                        const size_t o = (size_t)b * ldy;
                        if (memcmp(yamx + o, yref + o, sizeof(float) * (size_t)rows) ||
                            memcmp(ysimd + o, yref + o, sizeof(float) * (size_t)rows)) {
                            if (g_fail_prints++ < 10)
                                fprintf(stderr, "kquant amx %s %dx%d batch %d threads %d row-set %d differs\n",
                                        ci_wtype_name((ci_wtype)wt), rows, cols, batch, th, b);
                            bad++;
                        }
                    }
                }
            }
            ci_kq_set_amx_min_batch(0);
            ci_threadpool_set_threads(0);
            CHECK_MSG(bad == 0, "AMX/AVX-512/scalar %s %dx%d: %d batch rows differ", ci_wtype_name((ci_wtype)wt), rows,
                      cols, bad);
            free(buf); free(x); free(yref); free(ysimd); free(yamx);
        }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--dispatch-scalar")) {
        test_dispatch_scalar();
        TEST_MAIN_END();
    }
    test_dispatch();
    test_conv();
    test_quant();
    test_rope();
    test_rows();
    test_matmul();
    test_packed();
    test_kquant();
    test_kquant_amx();
    test_packed_bf16();
    ci_threadpool_shutdown();
    TEST_MAIN_END();
}
