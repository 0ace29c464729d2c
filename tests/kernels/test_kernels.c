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
 *  - BF16 fast path: x rounded to bf16 adds ≤ 2^-8·Σ|x_k·w_k|.
 *  - element kernels: a few u relative per element, plus n·u for the fp32
 *    reductions (mean of squares, softmax sum).
 * Usage: test_kernels [--dispatch-scalar]  (the second mode is run by CTest
 * with CINFER_CPU=scalar and checks the public dispatch path).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
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

static const ci_kvariant ALL_V[] = { CI_KV_SCALAR, CI_KV_AVX2, CI_KV_AVX2_VNNI, CI_KV_AVX512,
                                     CI_KV_AVX512_VNNI, CI_KV_AVX512_BF16 };
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
    const ci_kernel_table *sc = ci_kernels_get(CI_KV_SCALAR);

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

    float *ybase = NULL; /* first non-fast variant's result, for bitwise VNNI checks */
    for (int vi = 1; vi < NV; vi++) {
        const ci_kernel_table *t = ci_kernels_get(ALL_V[vi]);
        if (!t) continue;
        const int fast_bf16 = wt == CI_WT_BF16 && t->xprep[wt] == CI_XPREP_BF16;
        ci_threadpool_set_threads(2);
        ci_matmul_with(t, y, ldy, x, ldx, batch, m.w, wt, rows, cols);
        bad = 0;
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++) {
                ref_out o = ref_dot(wt, &m, x + (size_t)b * ldx, r, cols);
                double tol = 2 * tol_one(wt, cols, o.abs);
                if (fast_bf16) tol += 0x1p-8 * o.abs;
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
        if (ALL_V[vi] == CI_KV_AVX2 || ALL_V[vi] == CI_KV_AVX512) {
            free(ybase);
            ybase = malloc(sizeof(float) * ldy * (size_t)batch);
            memcpy(ybase, y, sizeof(float) * ldy * (size_t)batch);
        } else if ((ALL_V[vi] == CI_KV_AVX2_VNNI || ALL_V[vi] == CI_KV_AVX512_VNNI) && ybase) {
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
    if (__builtin_cpu_supports("f16c")) {
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
            ci_kernels_get(CI_KV_SCALAR)->rope_neox(vref, hd, c, s);
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
    CHECK(ci_kernels_current() != NULL && !strcmp(ci_kernels_current()->name, d));
    CHECK(ci_kernels_get(CI_KV_SCALAR) != NULL);
    CHECK(ci_kernels_get(CI_KV_COUNT) == NULL);
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
        wmat m = make_w((ci_wtype)wt, rows, cols);
        float x[3 * 160], y[3 * 19], yr[3 * 19];
        fill(x, sizeof x / sizeof x[0], 1.0f);
        ci_matmul(y, rows, x, cols, batch, m.w, (ci_wtype)wt, rows, cols);
        ci_matmul_with(ci_kernels_get(CI_KV_SCALAR), yr, rows, x, cols, batch, m.w, (ci_wtype)wt, rows, cols);
        CHECK_MSG(memcmp(y, yr, sizeof y) == 0, "public ci_matmul %s is not the scalar reference", ci_wtype_name((ci_wtype)wt));
        free_w(&m);
    }
    float a[37], b[37];
    fill(a, 37, 1);
    fill(b, 37, 1);
    CHECK(ci_dot_f32(a, b, 37) == ci_kernels_get(CI_KV_SCALAR)->dot_f32(a, b, 37));
}

/* ---- packed Q8_0 weights: bitwise equal to ci_matmul on each segment ---- */

static void test_packed(void)
{
    static const int cols_list[] = { 32, 32 * 9, 32 * 33, 32 * 4, 32 * 17 };
    static const int seg_list[][3] = { { 7, 0, 0 }, { 8, 4, 5 }, { 12, 37, 0 }, { 4, 4, 4 } };
    static const int batches[] = { 1, 3, 17 };
    const ci_kernel_table *t = ci_kernels_get(CI_KV_AVX512_VNNI);
    int any = 0;
    for (int ci = 0; ci < 5; ci++)
        for (int si = 0; si < 4; si++)
            for (int bi = 0; bi < 3; bi++) {
                const int cols = cols_list[ci], batch = batches[bi];
                int nseg = 0, rows[3];
                wmat m[3];
                const void *w[3];
                for (int s = 0; s < 3 && seg_list[si][s]; s++) {
                    rows[s] = seg_list[si][s];
                    m[s] = make_w(CI_WT_Q8_0, rows[s], cols);
                    w[s] = m[s].w;
                    nseg++;
                }
                ci_threadpool_set_threads(si % 2 ? 1 : 2);
                ci_packed *p = ci_pack_weights(nseg, w, rows, CI_WT_Q8_0, cols);
                if (p) {
                    any = 1;
                    CHECK(t != NULL);
                    float *x = malloc(sizeof(float) * (size_t)batch * (cols + 3));
                    fill(x, (size_t)batch * (cols + 3), 1.0f);
                    float *y[3], *yr = malloc(sizeof(float) * (size_t)batch * 64);
                    size_t ldy[3];
                    for (int s = 0; s < nseg; s++) {
                        ldy[s] = (size_t)rows[s] + s;
                        y[s] = malloc(sizeof(float) * ldy[s] * (size_t)batch);
                    }
                    ci_matmul_packed(p, y, ldy, x, (size_t)cols + 3, batch);
                    for (int s = 0; s < nseg; s++) {
                        ci_matmul_with(t, yr, (size_t)rows[s], x, (size_t)cols + 3, batch, w[s], CI_WT_Q8_0, rows[s], cols);
                        int diff = 0;
                        for (int b = 0; b < batch; b++)
                            diff += memcmp(yr + (size_t)b * rows[s], y[s] + (size_t)b * ldy[s], sizeof(float) * rows[s]) != 0;
                        CHECK_MSG(diff == 0, "packed q8_0 cols=%d seg %d/%d batch=%d differs from ci_matmul in %d rows",
                                  cols, s, nseg, batch, diff);
                        free(y[s]);
                    }
                    free(x); free(yr);
                    ci_packed_free(p);
                } else {
                    const int vnni_cur = ci_kernels_current() == t || ci_kernels_current() == ci_kernels_get(CI_KV_AVX512_BF16);
                    const char *pe = getenv("CINFER_PACK");
                    CHECK_MSG(!vnni_cur || (pe && !strcmp(pe, "0")), "pack refused with VNNI kernels selected");
                }
                for (int s = 0; s < nseg; s++) free_w(&m[s]);
            }
    ci_threadpool_set_threads(0);
    fprintf(stderr, "packed q8_0: %s\n", any ? "tested" : "not available on this CPU (skipped)");
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
    ci_threadpool_shutdown();
    TEST_MAIN_END();
}
