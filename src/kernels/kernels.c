/*
 * kernels.c — weight-type helpers, conversions, ggml quantizers, the
 * run-time dispatcher and the ci_matmul driver (activation preparation +
 * splitting rows over the thread pool). The arithmetic lives in
 * kernels_scalar.c / kernels_avx2.c / kernels_avx512.c.
 */
#include <cpuid.h>
#include <math.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/threadpool.h"
#include "util/util.h"

_Static_assert(sizeof(ci_block_q8_0) == CI_Q8_BYTES, "ggml block_q8_0 is 34 bytes");
_Static_assert(sizeof(ci_block_q4_0) == CI_Q4_BYTES, "ggml block_q4_0 is 18 bytes");

/* ------------------------------------------------------------ weight types */

const char *ci_wtype_name(ci_wtype wt)
{
    switch (wt) {
    case CI_WT_F32: return "f32";
    case CI_WT_F16: return "f16";
    case CI_WT_BF16: return "bf16";
    case CI_WT_Q8_0: return "q8_0";
    case CI_WT_Q4_0: return "q4_0";
    case CI_WT_Q4_K: return "q4_k";
    case CI_WT_Q6_K: return "q6_k";
    default: return "?";
    }
}

int ci_wtype_block_size(ci_wtype wt)
{
    switch (wt) {
    case CI_WT_F32: case CI_WT_F16: case CI_WT_BF16: return 1;
    case CI_WT_Q8_0: case CI_WT_Q4_0: return CI_QK;
    case CI_WT_Q4_K: case CI_WT_Q6_K: return CI_QK_K;
    default: return 0;
    }
}

size_t ci_wtype_block_bytes(ci_wtype wt)
{
    switch (wt) {
    case CI_WT_F32: return 4;
    case CI_WT_F16: case CI_WT_BF16: return 2;
    case CI_WT_Q8_0: return CI_Q8_BYTES;
    case CI_WT_Q4_0: return CI_Q4_BYTES;
    case CI_WT_Q4_K: return CI_Q4K_BYTES;
    case CI_WT_Q6_K: return CI_Q6K_BYTES;
    default: return 0;
    }
}

size_t ci_row_bytes(ci_wtype wt, size_t n)
{
    int bs = ci_wtype_block_size(wt);
    size_t out;
    if (bs == 0 || n % (size_t)bs != 0) return 0;
    if (ci_mul_overflow(n / (size_t)bs, ci_wtype_block_bytes(wt), &out)) return 0;
    return out;
}

/* ------------------------------------------------------------- conversions */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float ci_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant·2^-24 is exact in fp32 */
        float v = (float)mant * 0x1p-24f;
        return u2f(f2u(v) | sign);
    }
    if (exp == 31) /* inf / NaN; NaN quieted as F16C's vcvtph2ps does */
        return u2f(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0));
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t ci_fp32_to_fp16(float f)
{
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) /* NaN: quiet, keep the top payload bits (= vcvtps2ph) */
        return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));
    if (x >= 0x477ff000u) /* ≥ 65520 rounds to inf (includes inf) */
        return (uint16_t)(sign | 0x7c00);
    if (x < 0x38800000u) {
        /* result is a half subnormal or zero: adding 0.5f aligns the value
         * so the FPU's own round-to-nearest-even does the rounding at bit
         * 2^-24; the low mantissa bits are then the half's mantissa. */
        float t = u2f(x) + 0.5f;
        return (uint16_t)(sign | (uint16_t)(f2u(t) - f2u(0.5f)));
    }
    /* normal: rebias exponent, round to nearest even on the 13 dropped bits */
    uint32_t odd = (x >> 13) & 1;
    x += 0xc8000fffu + odd; /* (15-127)<<23 rebias + 0xfff rounding */
    return (uint16_t)(sign | (x >> 13));
}

float ci_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t ci_fp32_to_bf16(float f)
{
    uint32_t x = f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: quiet it, never round into inf */
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void ci_fp16_to_fp32_row(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = ci_fp16_to_fp32(src[i]);
}
void ci_fp32_to_fp16_row(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = ci_fp32_to_fp16(src[i]);
}
void ci_bf16_to_fp32_row(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = ci_bf16_to_fp32(src[i]);
}
void ci_fp32_to_bf16_row(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = ci_fp32_to_bf16(src[i]);
}

/* -------------------------------------------------------------- quantizers */

/* float -> int8 without the UB of converting an out-of-range/NaN value:
 * finite inputs of the quantizers always land in range, non-finite ones get 0. */
static inline int q_clamp_cvt(float r, float lo, float hi)
{
    return (r >= lo && r <= hi) ? (int)r : 0;
}

void ci_quantize_q8_0_scalar(void *dst, const float *src, size_t n)
{
    uint8_t *out = dst;
    for (size_t b = 0; b < n / CI_QK; b++, out += CI_Q8_BYTES) {
        const float *x = src + b * CI_QK;
        float amax = 0.0f;
        for (int j = 0; j < CI_QK; j++) {
            float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = ci_fp32_to_fp16(d);
        memcpy(out, &dh, 2);
        for (int j = 0; j < CI_QK; j++)
            out[2 + j] = (uint8_t)(int8_t)q_clamp_cvt(roundf(x[j] * id), -128.0f, 127.0f);
    }
}

void ci_quantize_row_q8_0(void *dst, const float *src, size_t n)
{
    ci_quantize_q8_0_scalar(dst, src, n);
}

void ci_quantize_row_q4_0(void *dst, const float *src, size_t n)
{
    uint8_t *out = dst;
    for (size_t b = 0; b < n / CI_QK; b++, out += CI_Q4_BYTES) {
        const float *x = src + b * CI_QK;
        const float max = ci_signed_absmax(x, CI_QK); /* maps to -8 */
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = ci_fp32_to_fp16(d);
        memcpy(out, &dh, 2);
        for (int j = 0; j < CI_QK / 2; j++) {
            /* ggml truncates toward zero after +8.5 (int8 cast), then caps at 15 */
            int q0 = q_clamp_cvt(x[j] * id + 8.5f, -128.0f, 127.99f);
            int q1 = q_clamp_cvt(x[j + CI_QK / 2] * id + 8.5f, -128.0f, 127.99f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            out[2 + j] = (uint8_t)((q0 & 0xf) | ((q1 & 0xf) << 4));
        }
    }
}

int ci_quantize_row(void *dst, ci_wtype wt, const float *src, size_t n)
{
    if (ci_row_bytes(wt, n) == 0 && n != 0) return -1;
    switch (wt) {
    case CI_WT_F32: memcpy(dst, src, n * 4); return 0;
    case CI_WT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = ci_fp32_to_fp16(src[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
        return 0;
    case CI_WT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = ci_fp32_to_bf16(src[i]);
            memcpy((uint8_t *)dst + 2 * i, &h, 2);
        }
        return 0;
    case CI_WT_Q8_0: ci_quantize_row_q8_0(dst, src, n); return 0;
    case CI_WT_Q4_0: ci_quantize_row_q4_0(dst, src, n); return 0;
    case CI_WT_Q4_K: ci_quantize_row_q4_K(dst, src, n); return 0;
    case CI_WT_Q6_K: ci_quantize_row_q6_K(dst, src, n); return 0;
    default: return -1;
    }
}

int ci_dequantize_row(float *dst, const void *src, ci_wtype wt, size_t n)
{
    const uint8_t *p = src;
    if (ci_row_bytes(wt, n) == 0 && n != 0) return -1;
    switch (wt) {
    case CI_WT_F32: memcpy(dst, src, n * 4); return 0;
    case CI_WT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = ci_fp16_to_fp32(ci_ld_u16(p + 2 * i));
        return 0;
    case CI_WT_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = ci_bf16_to_fp32(ci_ld_u16(p + 2 * i));
        return 0;
    case CI_WT_Q8_0:
        for (size_t b = 0; b < n / CI_QK; b++, p += CI_Q8_BYTES) {
            float d = ci_fp16_to_fp32(ci_ld_u16(p));
            for (int j = 0; j < CI_QK; j++) dst[b * CI_QK + j] = d * (float)(int8_t)p[2 + j];
        }
        return 0;
    case CI_WT_Q4_0:
        for (size_t b = 0; b < n / CI_QK; b++, p += CI_Q4_BYTES) {
            float d = ci_fp16_to_fp32(ci_ld_u16(p));
            for (int j = 0; j < CI_QK / 2; j++) {
                dst[b * CI_QK + j] = d * (float)((p[2 + j] & 0xf) - 8);
                dst[b * CI_QK + j + CI_QK / 2] = d * (float)((p[2 + j] >> 4) - 8);
            }
        }
        return 0;
    case CI_WT_Q4_K: ci_dequantize_q4_K(dst, p, n); return 0;
    case CI_WT_Q6_K: ci_dequantize_q6_K(dst, p, n); return 0;
    default: return -1;
    }
}

/* ---------------------------------------------------------------- dispatch */

static ci_kernel_table g_tables[CI_KERNEL_COUNT];
static int g_have[CI_KERNEL_COUNT];
static const ci_kernel_table *g_cur;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_amx_int8, g_amx_bf16; /* usable and selected (cap allows it) */
static char g_desc[64];            /* ci_kernels_describe: table name + AMX */

/* XCR0: the register state the OS saves on a context switch. An ISA is
 * usable only when the CPU has it and the OS saves its registers. */
#define XCR0_YMM 0x6u         /* SSE + AVX upper halves */
#define XCR0_ZMM 0xe0u        /* opmask, ZMM0-15 upper halves, ZMM16-31 */
#define XCR0_TILE (3u << 17)  /* XTILECFG, XTILEDATA */

unsigned ci_cpu_features(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned l1c = c;
    if (!(l1c & (1u << 27))) return 0; /* OSXSAVE: XGETBV and XCR0 unavailable */
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    const int ymm = (xlo & XCR0_YMM) == XCR0_YMM, zmm = ymm && (xlo & XCR0_ZMM) == XCR0_ZMM;
    const int tile = (xlo & XCR0_TILE) == XCR0_TILE;
    if (!ymm || !(l1c & (1u << 28))) return 0; /* AVX: nothing below is usable without it */

    unsigned f = 0;
    if (l1c & (1u << 12)) f |= CI_CPU_FMA;
    if (l1c & (1u << 29)) f |= CI_CPU_F16C;
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (__get_cpuid_count(7, 0, &a, &b7, &c7, &d7) && a >= 1) __get_cpuid_count(7, 1, &a71, &b, &c, &d);
    if (b7 & (1u << 5)) f |= CI_CPU_AVX2;
    if (a71 & (1u << 4)) f |= CI_CPU_AVX_VNNI;
    if (zmm) {
        if (b7 & (1u << 16)) f |= CI_CPU_AVX512F;
        if (b7 & (1u << 17)) f |= CI_CPU_AVX512DQ;
        if (b7 & (1u << 30)) f |= CI_CPU_AVX512BW;
        if (b7 & (1u << 31)) f |= CI_CPU_AVX512VL;
        if (c7 & (1u << 11)) f |= CI_CPU_AVX512_VNNI;
        if (a71 & (1u << 5)) f |= CI_CPU_AVX512_BF16;
    }
    if (tile && (d7 & (1u << 24))) {
        f |= CI_CPU_AMX_TILE;
        if (d7 & (1u << 25)) f |= CI_CPU_AMX_INT8;
        if (d7 & (1u << 22)) f |= CI_CPU_AMX_BF16;
    }
    return f;
}

/* Linux lets a process use the 8 KiB of AMX tile data only after it asks
 * (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without that the
 * first tile instruction faults. */
static int amx_request_permission(void)
{
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}

static int has_all(unsigned have, unsigned want) { return (have & want) == want; }

static void init_once(void)
{
    const unsigned f = ci_cpu_features();
    int avx2 = has_all(f, CI_CPU_AVX2 | CI_CPU_FMA | CI_CPU_F16C);
    int avxvnni = avx2 && has_all(f, CI_CPU_AVX_VNNI);
    int avx512 = avx2 && has_all(f, CI_CPU_AVX512F | CI_CPU_AVX512BW | CI_CPU_AVX512VL | CI_CPU_AVX512DQ);
    int vnni512 = avx512 && has_all(f, CI_CPU_AVX512_VNNI);
    int bf16 = vnni512 && has_all(f, CI_CPU_AVX512_BF16);

    ci_kernels_fill_scalar(&g_tables[CI_KERNEL_SCALAR]);
    g_have[CI_KERNEL_SCALAR] = 1;
    if (avx2) { ci_kernels_fill_avx2(&g_tables[CI_KERNEL_AVX2], 0); g_have[CI_KERNEL_AVX2] = 1; }
    if (avxvnni) { ci_kernels_fill_avx2(&g_tables[CI_KERNEL_AVX2_VNNI], 1); g_have[CI_KERNEL_AVX2_VNNI] = 1; }
    if (avx512) { ci_kernels_fill_avx512(&g_tables[CI_KERNEL_AVX512], 0); g_have[CI_KERNEL_AVX512] = 1; }
    if (vnni512) { ci_kernels_fill_avx512(&g_tables[CI_KERNEL_AVX512_VNNI], 1); g_have[CI_KERNEL_AVX512_VNNI] = 1; }

    int cap = 3;
    const char *env = getenv("CINFER_CPU");
    if (env && *env) {
        if (!strcmp(env, "scalar")) cap = 0;
        else if (!strcmp(env, "avx2")) cap = 1;
        else if (!strcmp(env, "avx512")) cap = 2;
        else if (!strcmp(env, "amx")) cap = 3;
        else fprintf(stderr, "cinfer: ignoring CINFER_CPU=%s (scalar|avx2|avx512|amx)\n", env);
    }
    /* AMX kernels work on packed weights and need the AVX-512 table beside
     * them for everything else. */
    if (cap >= 3 && vnni512 && has_all(f, CI_CPU_AMX_TILE) && amx_request_permission()) {
        g_amx_int8 = has_all(f, CI_CPU_AMX_INT8);
        g_amx_bf16 = has_all(f, CI_CPU_AMX_BF16) && bf16;
    }

    ci_kernel_variant pick = CI_KERNEL_SCALAR;
    if (cap >= 2 && g_have[CI_KERNEL_AVX512])
        pick = g_have[CI_KERNEL_AVX512_VNNI] ? CI_KERNEL_AVX512_VNNI : CI_KERNEL_AVX512;
    else if (cap >= 1 && g_have[CI_KERNEL_AVX2])
        pick = g_have[CI_KERNEL_AVX2_VNNI] ? CI_KERNEL_AVX2_VNNI : CI_KERNEL_AVX2;
    g_cur = &g_tables[pick];
    snprintf(g_desc, sizeof g_desc, "%s%s", g_cur->name,
             g_amx_int8 && g_amx_bf16 ? "+amx" : g_amx_int8 ? "+amx-int8" : g_amx_bf16 ? "+amx-bf16" : "");
}

void ci_kernels_init(void) { pthread_once(&g_once, init_once); }

int ci_amx_int8_usable(void)
{
    pthread_once(&g_once, init_once);
    return g_amx_int8;
}

int ci_amx_bf16_usable(void)
{
    pthread_once(&g_once, init_once);
    return g_amx_bf16;
}

static inline const ci_kernel_table *cur(void)
{
    pthread_once(&g_once, init_once);
    return g_cur;
}

const char *ci_kernels_describe(void)
{
    pthread_once(&g_once, init_once);
    return g_desc;
}
const ci_kernel_table *ci_kernels_current(void) { return cur(); }

const ci_kernel_table *ci_kernels_get(ci_kernel_variant v)
{
    ci_kernels_init();
    if ((int)v < 0 || v >= CI_KERNEL_COUNT || !g_have[v]) return NULL;
    return &g_tables[v];
}

/* ------------------------------------------------------------ row kernels */

void ci_rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    cur()->rmsnorm(out, x, weight, n, eps);
}
void ci_silu_mul(float *out, const float *gate, const float *up, int n) { cur()->silu_mul(out, gate, up, n); }
void ci_softmax(float *x, int n) { cur()->softmax(x, n); }
void ci_add(float *y, const float *x, int n) { cur()->add(y, x, n); }
void ci_rope_neox(float *vec, int head_dim, const float *cos, const float *sin)
{
    cur()->rope_neox(vec, head_dim, cos, sin);
}
float ci_dot_f32(const float *a, const float *b, int n) { return cur()->dot_f32(a, b, n); }
void ci_axpy_f32(float *y, float a, const float *x, int n) { cur()->axpy_f32(y, a, x, n); }
float ci_dot_f32_f16(const float *a, const uint16_t *b, int n) { return cur()->dot_f32_f16(a, b, n); }
void ci_axpy_f32_f16(float *y, float a, const uint16_t *x, int n) { cur()->axpy_f32_f16(y, a, x, n); }

void ci_rope_cache(float *cos_out, float *sin_out, int head_dim, int pos, double theta)
{
    /* HF: inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all
     * fp32; freqs = inv_freq * position (fp32); cos()/sin() in fp32. Each
     * fp32 step here is correctly rounded (double math, then rounded). */
    const float base = (float)theta;
    const float pf = (float)pos;
    for (int i = 0; i < head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        float p = (float)pow((double)base, (double)e);
        float inv = 1.0f / p;
        float ang = pf * inv;
        cos_out[i] = (float)cos((double)ang);
        sin_out[i] = (float)sin((double)ang);
    }
}

/* ------------------------------------------------------------------ matmul */

/* Per-calling-thread scratch for prepared activations, kept between calls so
 * decode does not pay an allocation (and page faults) per matmul. */
static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
typedef struct scratch { void *p; size_t cap; } scratch;

static void scratch_free(void *s)
{
    if (s) { free(((scratch *)s)->p); free(s); }
}
static void scratch_key_init(void)
{
    if (pthread_key_create(&g_scratch_key, scratch_free) != 0) abort();
}
static void *scratch_get(size_t n)
{
    pthread_once(&g_scratch_once, scratch_key_init);
    scratch *s = pthread_getspecific(g_scratch_key);
    if (!s) {
        s = ci_calloc(1, sizeof *s);
        if (pthread_setspecific(g_scratch_key, s) != 0) abort();
    }
    if (s->cap < n) {
        free(s->p);
        /* 64-byte alignment keeps SIMD loads of the x rows within lines */
        size_t cap = (n + 63) & ~(size_t)63;
        if (posix_memalign(&s->p, 64, cap) != 0) abort();
        s->cap = cap;
    }
    return s->p;
}

void *ci_kernels_scratch(size_t n) { return scratch_get(n); }

typedef struct mm_job {
    const ci_kernel_table *t;
    ci_mm_args a;
    ci_wtype wt;
    int rows, rows_per_task;
    const float *x;
    size_t ldx;
    uint8_t *xq;
    int rows_per_prep_task;
} mm_job;

static void mm_task(void *ctx, int task, int thread)
{
    (void)thread;
    const mm_job *j = ctx;
    int r0 = task * j->rows_per_task;
    int r1 = r0 + j->rows_per_task;
    if (r1 > j->rows) r1 = j->rows;
    if (r0 < r1) j->t->matmul[j->wt](&j->a, r0, r1);
}

static void prep_task(void *ctx, int task, int thread)
{
    (void)thread;
    const mm_job *j = ctx;
    int b0 = task * j->rows_per_prep_task, b1 = b0 + j->rows_per_prep_task;
    if (b1 > j->a.batch) b1 = j->a.batch;
    for (int b = b0; b < b1; b++) {
        const float *xr = j->x + (size_t)b * j->ldx;
        uint8_t *dst = j->xq + (size_t)b * j->a.xq_stride;
        if (j->t->xprep[j->wt] == CI_XPREP_Q8_0)
            j->t->quantize_q8_0(dst, xr, (size_t)j->a.cols);
        else
            ci_quantize_row_q8_K(dst, xr, (size_t)j->a.cols);
    }
}

/* Row granularity of a task: the kernels tile 4 weight rows at a time. */
#define MM_ROW_QUANTUM 4

void ci_matmul_with(const ci_kernel_table *t, float *y, size_t ldy, const float *x, size_t ldx,
                    int batch, const void *w, ci_wtype wt, int rows, int cols)
{
    if (batch <= 0 || rows <= 0) return;
    size_t rb = (unsigned)wt < CI_WT_COUNT && cols > 0 ? ci_row_bytes(wt, (size_t)cols) : 0;
    if (rb == 0 || !t->matmul[wt]) {
        /* a caller bug (shapes come from validated model files): fail loudly */
        fprintf(stderr, "ci_matmul: invalid weight type %d / cols %d\n", (int)wt, cols);
        abort();
    }
    mm_job j = { .t = t, .wt = wt, .rows = rows, .x = x, .ldx = ldx };
    j.a = (ci_mm_args){ .y = y, .ldy = ldy, .x = x, .ldx = ldx, .batch = batch,
                        .w = w, .w_stride = rb, .cols = cols };

    int nthreads = ci_threadpool_threads();
    if (t->xprep[wt] != CI_XPREP_NONE) {
        size_t stride = t->xprep[wt] == CI_XPREP_Q8_0 ? (size_t)cols / CI_QK * CI_Q8_BYTES
                                                       : (size_t)cols / CI_QK_K * CI_Q8K_BYTES;
        stride = (stride + 63) & ~(size_t)63;
        j.xq = scratch_get(stride * (size_t)batch);
        j.a.xq = j.xq;
        j.a.xq_stride = stride;
        /* preparing x is O(batch·cols): only worth threads for prefill */
        int ptasks = batch >= 16 && nthreads > 1 ? nthreads : 1;
        j.rows_per_prep_task = (batch + ptasks - 1) / ptasks;
        ptasks = (batch + j.rows_per_prep_task - 1) / j.rows_per_prep_task;
        ci_parallel_for(ptasks, prep_task, &j);
    }

    /* Dynamic task grabbing balances a late-waking worker; a few tasks per
     * thread suffice. Tiny products stay on the calling thread. */
    double work = (double)batch * rows * cols;
    int ntasks = 1;
    if (nthreads > 1 && work >= 65536.0) {
        int quanta = (rows + MM_ROW_QUANTUM - 1) / MM_ROW_QUANTUM;
        ntasks = nthreads * 4;
        if (ntasks > quanta) ntasks = quanta;
    }
    int per = (rows + ntasks - 1) / ntasks;
    per = (per + MM_ROW_QUANTUM - 1) / MM_ROW_QUANTUM * MM_ROW_QUANTUM;
    j.rows_per_task = per;
    ntasks = (rows + per - 1) / per;
    ci_parallel_for(ntasks, mm_task, &j);
}

void ci_matmul(float *y, size_t ldy, const float *x, size_t ldx, int batch,
               const void *w, ci_wtype wt, int rows, int cols)
{
    ci_matmul_with(cur(), y, ldy, x, ldx, batch, w, wt, rows, cols);
}

/* ---------------------------------------------------------- packed weights */

static int pack_env_enabled(void)
{
    const char *env = getenv("CINFER_PACK");
    return !(env && !strcmp(env, "0"));
}

static int pack_enabled(void)
{
    return cur() == &g_tables[CI_KERNEL_AVX512_VNNI] && pack_env_enabled();
}

typedef struct pack_job {
    ci_packed *p;
    const void *const *w;
} pack_job;

/* One group of 16 rows into the layout of kernels_impl.h; rows past the
 * segment's end are zero weights (u8 128) with zero scales. */
static void pack_task(void *ctx, int g, int thread)
{
    (void)thread;
    const pack_job *j = ctx;
    ci_packed *p = j->p;
    int s = 0;
    while (s + 1 < p->n_seg && g >= p->seg_group[s + 1]) s++;
    const int r0 = (g - p->seg_group[s]) * CI_PK_GROUP;
    const int seg_rows = p->seg_start[s + 1] - p->seg_start[s];
    const size_t rb = (size_t)p->nb * CI_Q8_BYTES;
    uint8_t *q = p->q + (size_t)g * p->qstride;
    uint16_t *d = (uint16_t *)(q + (size_t)p->nb * CI_PK_QBLK);
    memset(q, 0, p->qstride);
    for (int n = 0; n < CI_PK_GROUP; n++) {
        const uint8_t *src = r0 + n < seg_rows ? (const uint8_t *)j->w[s] + (size_t)(r0 + n) * rb : NULL;
        for (int i = 0; i < p->nb; i++) {
            const uint8_t *blk = src ? src + (size_t)i * CI_Q8_BYTES : NULL;
            uint8_t *tile = q + (size_t)i * CI_PK_QBLK;
            /* k-quad kq is tile row kq; output row n is its 4-byte column */
            for (int kq = 0; kq < CI_QK / 4; kq++) {
                uint32_t v = 0;
                if (blk) memcpy(&v, blk + 2 + 4 * kq, 4);
                v ^= 0x80808080u;
                memcpy(tile + kq * 64 + n * 4, &v, 4);
            }
            d[(size_t)i * CI_PK_GROUP + n] = blk ? ci_ld_u16(blk) : 0;
        }
    }
}

ci_packed *ci_pack_weights(int n_seg, const void *const *w, const int *rows, ci_wtype wt, int cols)
{
    if (wt == CI_WT_BF16) return pack_env_enabled() ? ci_pack_weights_bf16(n_seg, w, rows, cols) : NULL;
    if (wt != CI_WT_Q8_0 || n_seg < 1 || n_seg > CI_PK_MAX_SEG || cols <= 0 || cols % CI_QK) return NULL;
    if (!pack_enabled()) return NULL;
    int total = 0, groups = 0;
    for (int s = 0; s < n_seg; s++) {
        if (rows[s] <= 0 || rows[s] > INT32_MAX - CI_PK_GROUP - total) return NULL;
        total += rows[s];
        groups += (rows[s] + CI_PK_GROUP - 1) / CI_PK_GROUP;
    }
    ci_packed *p = ci_calloc(1, sizeof *p);
    p->wt = CI_WT_Q8_0;
    p->rows = total;
    p->cols = cols;
    p->nb = cols / CI_QK;
    p->n_seg = n_seg;
    for (int s = 0, r = 0, g = 0; s <= n_seg; s++) {
        p->seg_start[s] = r;
        p->seg_group[s] = g;
        if (s < n_seg) {
            r += rows[s];
            g += (rows[s] + CI_PK_GROUP - 1) / CI_PK_GROUP;
        }
    }
    /* quants, then 16 fp16 scales per block, rounded up to whole lines */
    p->qstride = (size_t)p->nb * CI_PK_QBLK + (((size_t)p->nb * CI_PK_GROUP * 2 + 63) & ~(size_t)63);
    if (ci_mul_overflow(p->qstride, (size_t)groups, &p->bytes) ||
        posix_memalign(&p->mem, 64, p->bytes) != 0) {
        free(p);
        return NULL;
    }
    p->q = p->mem;
    pack_job j = { .p = p, .w = w };
    ci_parallel_for(groups, pack_task, &j);
    return p;
}

void ci_packed_free(ci_packed *p)
{
    if (!p) return;
    free(p->mem);
    free(p);
}

size_t ci_packed_bytes(const ci_packed *p) { return p ? p->bytes : 0; }

/* Batch from which products use AMX (when usable); 0 = the default. */
static int g_amx_min_batch;
#define PK_AMX_MIN_BATCH_DEFAULT 5 /* measured crossover with the VNNI kernel: 4-5 rows */

void ci_packed_set_amx_min_batch(int n) { g_amx_min_batch = n > 0 ? n : 0; }

/* Groups per matmul task: AMX tasks are whole L2 chunks of weights. */
#define PK_AMX_TASK_GROUPS 8

typedef struct pk_job {
    ci_pk_args a;
    const float *x;
    size_t ldx;
    int groups, groups_per_task, rows_per_prep_task, amx;
    uint8_t *xq8;       /* per prep task: one Q8_0 row */
    size_t xq8_stride;
} pk_job;

static void pk_prep_task(void *ctx, int task, int thread)
{
    (void)thread;
    pk_job *j = ctx;
    const ci_packed *p = j->a.p;
    const int padded = j->amx ? (j->a.batch + CI_PK_GROUP - 1) / CI_PK_GROUP * CI_PK_GROUP : j->a.batch;
    int b0 = task * j->rows_per_prep_task, b1 = b0 + j->rows_per_prep_task;
    if (b1 > padded) b1 = padded;
    uint8_t *tmp = j->xq8 + (size_t)task * j->xq8_stride;
    for (int b = b0; b < b1; b++) {
        if (b < j->a.batch) cur()->quantize_q8_0(tmp, j->x + (size_t)b * j->ldx, (size_t)p->cols);
        ci_pk_prep_row((uint8_t *)j->a.xp, p->nb, b, b < j->a.batch ? tmp : NULL);
    }
}

static void pk_mm_task(void *ctx, int task, int thread)
{
    (void)thread;
    const pk_job *j = ctx;
    int g0 = task * j->groups_per_task, g1 = g0 + j->groups_per_task;
    if (g1 > j->groups) g1 = j->groups;
    if (g0 >= g1) return;
    if (j->amx) ci_pk_mm_amx(&j->a, g0, g1);
    else ci_pk_mm_vnni(&j->a, g0, g1);
}

void ci_matmul_packed(const ci_packed *p, float *const *y, const size_t *ldy, const float *x, size_t ldx, int batch)
{
    if (batch <= 0) return;
    if (p->wt == CI_WT_BF16) {
        ci_matmul_packed_bf16(p, y, ldy, x, ldx, batch);
        return;
    }
    pk_job j = { .x = x, .ldx = ldx, .groups = p->seg_group[p->n_seg] };
    j.a.p = p;
    j.a.batch = batch;
    for (int s = 0; s < p->n_seg; s++) {
        j.a.y[s] = y[s];
        j.a.ldy[s] = ldy[s];
    }
    int nthreads = ci_threadpool_threads();
    const int min_amx = g_amx_min_batch ? g_amx_min_batch : PK_AMX_MIN_BATCH_DEFAULT;
    j.amx = batch >= min_amx && ci_amx_int8_usable();
    /* x records cover whole tiles of 16 batch rows; the tile loads read the
     * padding rows (zeros), the VNNI kernel never does */
    const int padded = j.amx ? (batch + CI_PK_GROUP - 1) / CI_PK_GROUP * CI_PK_GROUP : batch;
    int ptasks = batch >= 16 && nthreads > 1 ? nthreads : 1;
    j.rows_per_prep_task = (padded + ptasks - 1) / ptasks;
    ptasks = (padded + j.rows_per_prep_task - 1) / j.rows_per_prep_task;
    j.xq8_stride = ((size_t)p->nb * CI_Q8_BYTES + 63) & ~(size_t)63;
    const size_t xbytes = (size_t)((batch + CI_PK_GROUP - 1) / CI_PK_GROUP) * (size_t)p->nb * CI_PK_XREC;
    uint8_t *buf = scratch_get(xbytes + j.xq8_stride * (size_t)ptasks);
    j.a.xp = buf;
    j.xq8 = buf + xbytes;
    ci_parallel_for(ptasks, pk_prep_task, &j);

    double work = (double)batch * p->rows * p->cols;
    int ntasks = 1;
    if (nthreads > 1 && work >= 65536.0) ntasks = j.amx ? (j.groups + PK_AMX_TASK_GROUPS - 1) / PK_AMX_TASK_GROUPS
                                                        : nthreads * 4;
    if (ntasks > j.groups) ntasks = j.groups;
    if (ntasks < 1) ntasks = 1;
    j.groups_per_task = (j.groups + ntasks - 1) / ntasks;
    ntasks = (j.groups + j.groups_per_task - 1) / j.groups_per_task;
    ci_parallel_for(ntasks, pk_mm_task, &j);
}
