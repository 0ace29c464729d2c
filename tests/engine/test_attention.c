/*
 * test_attention.c — causal attention over the paged KV cache.
 *
 *  1. ci_attention of every kernel variant this CPU has, on random q/K/V in
 *     a paged cache (head_dim 64/128, GQA group 1/2/4, blocks of 16/32/7
 *     positions in shuffled order, fp16 and fp32 elements, runs of 1..300
 *     positions), against a double-precision reference within the bound
 *     derived in ref_bound();
 *  2. batch invariance, bitwise: the same rows from one run, from one token
 *     at a time and from random runs (kernel level); and through the model's
 *     attention step (qwen3_attention_layer: K/V store + chunk planning +
 *     thread pool) for a whole prompt, decode steps, random splits mixed
 *     with another sequence, a sequence split into two runs of one batch, on
 *     1 and 2 threads;
 *  3. each SIMD variant against the scalar reference within twice the bound.
 * Scratch is filled with NaN before each call so no result can depend on
 * what an earlier call left there.
 */
#include "test.h"
#include "engine/kv_cache.h"
#include "kernels/kernels.h"
#include "kernels/threadpool.h"
#include "model/qwen3.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 8) * (1.0f / 16777216.0f); }

static float *fill_nan(float *p, size_t n) {
    memset(p, 0xff, n * sizeof(float));
    return p;
}

/* ------------------------------------------------------------ kernel level */

/* One KV head's keys/values of a sequence of n positions in a paged cache
 * whose blocks are interleaved with another head's (junk) data. */
typedef struct paged {
    int d, bs, n, f32, n_blocks;
    size_t esz, block_stride;
    uint8_t *k, *v;
    int32_t *blocks;
    float *kref, *vref; /* [n][d] the stored values, widened */
} paged;

static void paged_init(paged *p, int d, int bs, int n, int f32) {
    *p = (paged){.d = d, .bs = bs, .n = n, .f32 = f32, .esz = f32 ? 4 : 2};
    int used = (n + bs - 1) / bs;
    p->n_blocks = used + 3;
    p->block_stride = 2 * (size_t)bs * d * p->esz; /* head 0, then a junk head */
    size_t bytes = p->block_stride * (size_t)p->n_blocks;
    p->k = malloc(bytes);
    p->v = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) p->k[i] = (uint8_t)rnd(), p->v[i] = (uint8_t)rnd();
    /* shuffled block ids */
    int32_t *perm = malloc((size_t)p->n_blocks * sizeof(int32_t));
    for (int i = 0; i < p->n_blocks; i++) perm[i] = i;
    for (int i = p->n_blocks - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1));
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    p->blocks = perm;
    p->kref = malloc((size_t)n * d * sizeof(float));
    p->vref = malloc((size_t)n * d * sizeof(float));
    for (int t = 0; t < n; t++) {
        uint8_t *kb = p->k + (size_t)p->blocks[t / bs] * p->block_stride;
        uint8_t *vb = p->v + (size_t)p->blocks[t / bs] * p->block_stride;
        int slot = t % bs;
        for (int e = 0; e < d; e++) {
            float kx = frand(-1.0f, 1.0f), vx = frand(-2.0f, 2.0f);
            size_t ki = (size_t)e * bs + slot, vi = (size_t)slot * d + e;
            if (f32) {
                memcpy(kb + ki * 4, &kx, 4);
                memcpy(vb + vi * 4, &vx, 4);
            } else {
                uint16_t kh = ci_fp32_to_fp16(kx), vh = ci_fp32_to_fp16(vx);
                memcpy(kb + ki * 2, &kh, 2);
                memcpy(vb + vi * 2, &vh, 2);
                kx = ci_fp16_to_fp32(kh);
                vx = ci_fp16_to_fp32(vh);
            }
            p->kref[(size_t)t * d + e] = kx;
            p->vref[(size_t)t * d + e] = vx;
        }
    }
}

static void paged_free(paged *p) {
    free(p->k);
    free(p->v);
    free(p->blocks);
    free(p->kref);
    free(p->vref);
}

/* Rows of a run: q and out are [n][group][d] for all n positions; the run
 * covers positions pos0 .. pos0+n_tok-1. */
static void run_kernel(const ci_kernel_table *t, const paged *p, int group, const float *q, float *out, int pos0,
                       int n_tok, float *scratch) {
    size_t row = (size_t)group * p->d;
    ci_attn_args a = {
        .head_dim = p->d, .group = group, .n_tok = n_tok, .pos0 = pos0,
        .q = q + (size_t)pos0 * row, .q_stride = row,
        .out = out + (size_t)pos0 * row, .out_stride = row,
        .scale = 1.0f / sqrtf((float)p->d),
        .kv_f32 = p->f32, .k = p->k, .v = p->v, .block_stride = p->block_stride,
        .blocks = p->blocks, .block_size = p->bs,
        .scratch = fill_nan(scratch, ci_attn_scratch_floats(p->d, group * n_tok, pos0 + n_tok)),
    };
    t->attention(&a);
}

/* Double-precision attention of row (position tq, head g), and the bound
 * for an fp32 computation, to first order in u = 2^-24: with
 * A = max_t scale·Σ_k|q_k·K_tk|, a score is off by ≤ (d+1)·u·A, s_t - m by
 * ≤ 2(d+2)·u·A, so e_t relatively by ε ≤ 2(d+2)·u·A + 4u (exp ≤ 2 ulp);
 * Σe and Σe·V add ≤ n·u each, the final scaling 2u, and the weighted mean
 * of V is within max|V|: |out - ref| ≤ max|V|·(2ε + 2n·u + 2u). bound =
 * 1.5× that (higher-order terms). */
static double ref_row(const paged *p, const float *q, float scale, int tq, double *out) {
    int d = p->d, n = tq + 1;
    double *s = malloc((size_t)n * sizeof(double));
    double m = -INFINITY, A = 0.0, vmax = 0.0;
    for (int t = 0; t < n; t++) {
        double acc = 0.0, mag = 0.0;
        for (int e = 0; e < d; e++) {
            acc += (double)q[e] * p->kref[(size_t)t * d + e];
            mag += fabs((double)q[e] * p->kref[(size_t)t * d + e]);
        }
        s[t] = acc * scale;
        if (s[t] > m) m = s[t];
        if (mag * scale > A) A = mag * scale;
    }
    double sum = 0.0;
    for (int t = 0; t < n; t++) sum += (s[t] = exp(s[t] - m));
    for (int e = 0; e < d; e++) out[e] = 0.0;
    for (int t = 0; t < n; t++)
        for (int e = 0; e < d; e++) {
            double v = p->vref[(size_t)t * d + e];
            out[e] += s[t] / sum * v;
            if (fabs(v) > vmax) vmax = fabs(v);
        }
    free(s);
    const double u = 0x1p-24;
    return 1.5 * vmax * u * (4.0 * (d + 2) * A + 2.0 * n + 10.0);
}

static int n_variants;
static const ci_kernel_table *variants[CI_KERNEL_COUNT];
static double worst_ratio; /* max error / bound seen, for the log */

static void kernel_case(int d, int group, int bs, int n, int f32, float qscale) {
    paged p;
    paged_init(&p, d, bs, n, f32);
    size_t row = (size_t)group * d, total = (size_t)n * row;
    float *q = malloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++) q[i] = frand(-qscale, qscale);
    float *scratch = aligned_alloc(64, (ci_attn_scratch_floats(d, group * n, n) * sizeof(float) + 63) & ~(size_t)63);
    float *out[CI_KERNEL_COUNT], *part = malloc(total * sizeof(float));
    double *ref = malloc(total * sizeof(double)), *bound = malloc((size_t)n * group * sizeof(double));
    const float scale = 1.0f / sqrtf((float)d);
    for (int tq = 0; tq < n; tq++)
        for (int g = 0; g < group; g++)
            bound[tq * group + g] = ref_row(&p, q + tq * row + (size_t)g * d, scale, tq, ref + tq * row + (size_t)g * d);

    for (int vi = 0; vi < n_variants; vi++) {
        const ci_kernel_table *t = variants[vi];
        out[vi] = malloc(total * sizeof(float));
        run_kernel(t, &p, group, q, out[vi], 0, n, scratch);

        /* 1. against double precision */
        double worst = 0.0;
        int bad = 0;
        for (size_t i = 0; i < total; i++) {
            double err = fabs(out[vi][i] - ref[i]), b = bound[i / d];
            if (!(err <= b)) bad++;
            if (err / b > worst) worst = err / b;
        }
        if (worst > worst_ratio) worst_ratio = worst;
        CHECK_MSG(bad == 0, "%s d=%d group=%d bs=%d n=%d %s: %d values off the reference (worst %.3g of the bound)",
                  t->name, d, group, bs, n, f32 ? "f32" : "f16", bad, worst);

        /* 2. one token at a time, and random runs: bitwise the same */
        fill_nan(part, total);
        for (int tq = 0; tq < n; tq++) run_kernel(t, &p, group, q, part, tq, 1, scratch);
        CHECK_MSG(memcmp(part, out[vi], total * sizeof(float)) == 0, "%s d=%d group=%d bs=%d n=%d: decode != prefill",
                  t->name, d, group, bs, n);
        for (int rep = 0; rep < 2; rep++) {
            fill_nan(part, total);
            for (int p0 = 0; p0 < n;) {
                int len = 1 + (int)(rnd() % (rep ? 70u : 9u));
                if (len > n - p0) len = n - p0;
                run_kernel(t, &p, group, q, part, p0, len, scratch);
                p0 += len;
            }
            CHECK_MSG(memcmp(part, out[vi], total * sizeof(float)) == 0,
                      "%s d=%d group=%d bs=%d n=%d: random runs != one run", t->name, d, group, bs, n);
        }

        /* 3. SIMD vs the scalar reference (variants[0]) */
        if (vi > 0) {
            int off = 0;
            for (size_t i = 0; i < total; i++)
                if (!(fabs(out[vi][i] - out[0][i]) <= 2.0 * bound[i / d])) off++;
            CHECK_MSG(off == 0, "%s vs scalar d=%d group=%d bs=%d n=%d: %d values apart", t->name, d, group, bs, n, off);
        }
    }
    for (int vi = 0; vi < n_variants; vi++) free(out[vi]);
    free(part);
    free(ref);
    free(bound);
    free(scratch);
    free(q);
    paged_free(&p);
}

static void test_kernels(void) {
    for (int v = 0; v < CI_KERNEL_COUNT; v++) {
        const ci_kernel_table *t = ci_kernels_get((ci_kernel_variant)v);
        int dup = 0;
        for (int i = 0; i < n_variants; i++) dup |= variants[i]->attention == (t ? t->attention : NULL);
        if (t && !dup) variants[n_variants++] = t; /* the VNNI/BF16 tables share the attention */
    }
    static const int lens[] = {1, 2, 15, 16, 17, 33, 64, 65, 100, 129, 300};
    for (int li = 0; li < (int)(sizeof lens / sizeof lens[0]); li++) {
        int n = lens[li];
        kernel_case(128, 2, 16, n, 0, 1.0f);
        kernel_case(64, 4, 32, n, 0, 1.0f);
        kernel_case(128, 1, 32, n, 0, 3.0f); /* peaked softmax: many tiny weights */
    }
    kernel_case(64, 2, 7, 150, 0, 1.0f);     /* blocks that do not align with vectors */
    kernel_case(128, 2, 16, 200, 1, 1.0f);   /* fp32 cache */
    kernel_case(64, 1, 16, 300, 1, 6.0f);
    kernel_case(40, 2, 16, 90, 0, 1.0f);     /* head_dim not a multiple of 16 */
    printf("attention kernels: %d variants, worst error %.3g of the bound\n", n_variants, worst_ratio);

    /* the KV store's fp16 conversion: bitwise ci_fp32_to_fp16 on any bits
     * (NaN payloads, infinities, subnormals, ties), odd lengths */
    enum { NCONV = 4099 };
    float *src = malloc(NCONV * sizeof(float));
    uint16_t *got = malloc(NCONV * sizeof(uint16_t));
    for (int i = 0; i < NCONV; i++) {
        uint32_t bits = rnd();
        if (i % 4 == 1) bits = (bits & 0x80001fffu) | ((uint32_t)(103 + rnd() % 40) << 23); /* half range, ties */
        if (i % 8 == 3) bits = (bits & 0x807fffffu) | 0x7f800000u;                        /* inf / NaN */
        memcpy(&src[i], &bits, 4);
    }
    for (int vi = 0; vi < n_variants; vi++)
        for (int n = 0; n <= NCONV; n += n < 40 ? 1 : 1021) {
            memset(got, 0xa5, NCONV * sizeof(uint16_t));
            variants[vi]->fp32_to_fp16_row(got, src, (size_t)n);
            int bad = 0;
            for (int i = 0; i < n; i++) bad += got[i] != ci_fp32_to_fp16(src[i]);
            for (int i = n; i < NCONV; i++) bad += got[i] != 0xa5a5; /* nothing written past n */
            CHECK_MSG(bad == 0, "%s fp32_to_fp16_row n=%d: %d values differ", variants[vi]->name, n, bad);
        }
    free(src);
    free(got);
}

/* ------------------------------------------------------------- model level */

enum { N_HEADS = 8, N_KV = 2, D = 128, LAYERS = 2, LAYER = 1, BS = 16, LEN_A = 300, LEN_B = 77, MAX_BATCH = 400 };
#define QROW (N_HEADS * D)
#define KVROW (N_KV * D)

typedef struct seqdata {
    int len;
    float *q, *k, *v, *out; /* [len][row] */
    int32_t blocks[32];
    int n_blocks;
} seqdata;

typedef struct model_env {
    qwen3_model m;
    qwen3_state st;
    ci_kv_cache kv;
    seqdata seq[2];
} model_env;

typedef struct tok { int seq, pos; } tok;

/* Runs one batch through the attention step; copies attn_out rows out. */
static int run_batch(model_env *env, const tok *toks, int n) {
    int32_t tokens[MAX_BATCH], pos[MAX_BATCH], seq[MAX_BATCH];
    ci_block_table tables[2];
    for (int s = 0; s < 2; s++) tables[s] = (ci_block_table){.blocks = env->seq[s].blocks, .n_blocks = env->seq[s].n_blocks};
    for (int i = 0; i < n; i++) {
        const seqdata *sd = &env->seq[toks[i].seq];
        tokens[i] = 0;
        pos[i] = toks[i].pos;
        seq[i] = toks[i].seq;
        memcpy(env->st.q + (size_t)i * QROW, sd->q + (size_t)toks[i].pos * QROW, QROW * sizeof(float));
        memcpy(env->st.k + (size_t)i * KVROW, sd->k + (size_t)toks[i].pos * KVROW, KVROW * sizeof(float));
        memcpy(env->st.v + (size_t)i * KVROW, sd->v + (size_t)toks[i].pos * KVROW, KVROW * sizeof(float));
    }
    fill_nan(env->st.attn_out, (size_t)n * QROW);
    qwen3_batch b = {.n_tokens = n, .tokens = tokens, .pos = pos, .seq = seq, .n_seqs = 2, .seq_blocks = tables};
    cinfer_error err = {0};
    int rc = qwen3_attention_layer(&env->m, &env->st, &env->kv.pool, &b, LAYER, &err);
    CHECK_MSG(rc == CINFER_OK, "attention layer: %s", err.message);
    for (int i = 0; i < n; i++)
        memcpy(env->seq[toks[i].seq].out + (size_t)toks[i].pos * QROW, env->st.attn_out + (size_t)i * QROW,
               QROW * sizeof(float));
    return rc;
}

static float *snapshot(const seqdata *sd) {
    float *c = malloc((size_t)sd->len * QROW * sizeof(float));
    memcpy(c, sd->out, (size_t)sd->len * QROW * sizeof(float));
    return c;
}

static void clear_outputs(model_env *env) {
    for (int s = 0; s < 2; s++) fill_nan(env->seq[s].out, (size_t)env->seq[s].len * QROW);
}

static int same_as(const model_env *env, float *const want[2]) {
    int ok = 1;
    for (int s = 0; s < 2; s++)
        ok &= memcmp(env->seq[s].out, want[s], (size_t)env->seq[s].len * QROW * sizeof(float)) == 0;
    return ok;
}

/* Sequence A's next piece and B's next piece in one batch, random sizes
 * (max_piece), random order; optionally A's piece as two runs around B's. */
static void run_mixed(model_env *env, int max_piece, int split_runs) {
    int next[2] = {0, 0};
    tok toks[MAX_BATCH];
    while (next[0] < LEN_A || next[1] < LEN_B) {
        int take[2];
        for (int s = 0; s < 2; s++) {
            int left = env->seq[s].len - next[s];
            take[s] = left > 0 ? 1 + (int)(rnd() % (uint32_t)max_piece) : 0;
            if (take[s] > left) take[s] = left;
        }
        int n = 0, first = (int)(rnd() % 2);
        int a_head = split_runs && take[0] > 1 ? take[0] / 2 : take[0];
        for (int i = 0; i < a_head && first == 0; i++) toks[n++] = (tok){0, next[0]++};
        for (int i = 0; i < take[1]; i++) toks[n++] = (tok){1, next[1]++};
        int rest = first == 0 ? take[0] - a_head : take[0];
        for (int i = 0; i < rest; i++) toks[n++] = (tok){0, next[0]++};
        if (n > 0) run_batch(env, toks, n);
    }
}

static void test_model(void) {
    model_env env;
    memset(&env, 0, sizeof env);
    env.m.hp = (qwen3_hparams){.n_layers = LAYERS, .hidden = 64, .intermediate = 64, .n_heads = N_HEADS,
                               .n_kv_heads = N_KV, .head_dim = D, .vocab = 1, .rms_eps = 1e-6f,
                               .rope_theta = 1e6, .max_positions = 4096};
    ci_threadpool_set_threads(2);
    cinfer_error err = {0};
    CHECK(qwen3_state_init(&env.st, &env.m.hp, MAX_BATCH, 512, 0, &err) == CINFER_OK);
    CHECK(ci_kv_cache_init(&env.kv, LAYERS, N_KV, D, BS, 48, CI_KV_F16, &err) == CINFER_OK);
    /* blocks handed out in a shuffled order */
    int32_t ids[48];
    for (int i = 0; i < 48; i++) ids[i] = ci_kv_alloc_block(&env.kv);
    for (int i = 47; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1));
        int32_t t = ids[i]; ids[i] = ids[j]; ids[j] = t;
    }
    int used = 0;
    const int lens[2] = {LEN_A, LEN_B};
    for (int s = 0; s < 2; s++) {
        seqdata *sd = &env.seq[s];
        sd->len = lens[s];
        sd->n_blocks = (sd->len + BS - 1) / BS;
        for (int i = 0; i < sd->n_blocks; i++) sd->blocks[i] = ids[used++];
        sd->q = malloc((size_t)sd->len * QROW * sizeof(float));
        sd->k = malloc((size_t)sd->len * KVROW * sizeof(float));
        sd->v = malloc((size_t)sd->len * KVROW * sizeof(float));
        sd->out = malloc((size_t)sd->len * QROW * sizeof(float));
        for (size_t i = 0; i < (size_t)sd->len * QROW; i++) sd->q[i] = frand(-2.0f, 2.0f);
        for (size_t i = 0; i < (size_t)sd->len * KVROW; i++) sd->k[i] = frand(-1.0f, 1.0f), sd->v[i] = frand(-1.0f, 1.0f);
    }

    /* whole prompts, one batch each, 1 thread */
    ci_threadpool_set_threads(1);
    clear_outputs(&env);
    tok toks[MAX_BATCH];
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < lens[s]; i++) toks[i] = (tok){s, i};
        run_batch(&env, toks, lens[s]);
    }
    float *want[2] = {snapshot(&env.seq[0]), snapshot(&env.seq[1])};

    /* the K/V store and the head mapping, against double precision: the
     * stored K/V are the fp16 roundings of the inputs */
    {
        paged p = {.d = D, .n = LEN_A};
        p.kref = malloc((size_t)LEN_A * D * sizeof(float));
        p.vref = malloc((size_t)LEN_A * D * sizeof(float));
        double out[D];
        int bad = 0;
        for (int kvh = 0; kvh < N_KV; kvh++) {
            for (int t = 0; t < LEN_A; t++)
                for (int e = 0; e < D; e++) {
                    p.kref[(size_t)t * D + e] = ci_fp16_to_fp32(ci_fp32_to_fp16(env.seq[0].k[(size_t)t * KVROW + kvh * D + e]));
                    p.vref[(size_t)t * D + e] = ci_fp16_to_fp32(ci_fp32_to_fp16(env.seq[0].v[(size_t)t * KVROW + kvh * D + e]));
                }
            for (int h = kvh * (N_HEADS / N_KV); h < (kvh + 1) * (N_HEADS / N_KV); h++)
                for (int t = 0; t < LEN_A; t += 13) {
                    double b = ref_row(&p, env.seq[0].q + (size_t)t * QROW + h * D, 1.0f / sqrtf((float)D), t, out);
                    for (int e = 0; e < D; e++)
                        if (!(fabs(want[0][(size_t)t * QROW + h * D + e] - out[e]) <= b)) bad++;
                }
        }
        CHECK_MSG(bad == 0, "model attention: %d values off the double-precision reference", bad);
        free(p.kref);
        free(p.vref);
    }

    /* decode: one token of each sequence per batch, 2 threads */
    ci_threadpool_set_threads(2);
    clear_outputs(&env);
    for (int p = 0; p < LEN_A; p++) {
        int n = 0;
        toks[n++] = (tok){0, p};
        if (p < LEN_B) toks[n++] = (tok){1, p};
        run_batch(&env, toks, n);
    }
    CHECK_MSG(same_as(&env, want), "decode steps differ from whole-prompt batches");

    /* whole prompts on 2 threads */
    clear_outputs(&env);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < lens[s]; i++) toks[i] = (tok){s, i};
        run_batch(&env, toks, lens[s]);
    }
    CHECK_MSG(same_as(&env, want), "2 threads differ from 1 thread");

    /* random pieces of both sequences in mixed batches, 1 and 2 threads */
    for (int rep = 0; rep < 6; rep++) {
        ci_threadpool_set_threads(1 + rep % 2);
        clear_outputs(&env);
        run_mixed(&env, rep < 2 ? 8 : rep < 4 ? 90 : 200, rep >= 2);
        CHECK_MSG(same_as(&env, want), "mixed batches (rep %d) differ from whole-prompt batches", rep);
    }
    ci_threadpool_set_threads(0);

    for (int s = 0; s < 2; s++) {
        free(want[s]);
        free(env.seq[s].q);
        free(env.seq[s].k);
        free(env.seq[s].v);
        free(env.seq[s].out);
    }
    qwen3_state_free(&env.st);
    ci_kv_cache_free(&env.kv);
}

int main(void) {
    test_kernels();
    test_model();
    TEST_MAIN_END();
}
