/*
 * bench.c — cinfer_bench_* (cinfer.h): llama-bench-style throughput of the
 * forward pass on one checkpoint, behind `cinfer bench`.
 *
 * qwen3_forward is driven directly (no tokenizer, no sampler, no scheduler),
 * so this measures the model code alone. Everything a test touches — forward
 * state, a KV pool with every block of every sequence allocated up front,
 * token/position buffers, logits — is allocated once by cinfer_bench_open;
 * a timed run only fills ids and calls the forward pass. The median of the
 * timed runs is the result (min/max beside it), as llama-bench reports.
 */
#include "cinfer.h"
#include "engine/kv_cache.h"
#include "kernels/kernels.h"
#include "kernels/threadpool.h"
#include "model/loader.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

struct cinfer_bench {
    cinfer_bench_options o;
    double load_seconds;
    qwen3_checkpoint ck;
    qwen3_state st;
    ci_kv_cache kv;
    int32_t *blocks; /* n_seqs block tables of n_blocks each */
    int n_blocks;
    ci_block_table *tables;
    int32_t *tokens, *pos, *seq;
    bool *want;
    float *logits;
};

void cinfer_bench_options_init(cinfer_bench_options *o) {
    *o = (cinfer_bench_options){.n_prompt = CINFER_DEFAULTS.bench.n_prompt,
                                .n_gen = CINFER_DEFAULTS.bench.n_gen,
                                .n_seqs = CINFER_DEFAULTS.bench.n_seqs,
                                .repetitions = CINFER_DEFAULTS.bench.repetitions};
}

static int check_options(const cinfer_bench_options *o, cinfer_error *err) {
    if (o->n_prompt < 0 || o->n_gen < 0 || o->n_prompt > (1 << 24) || o->n_gen > (1 << 24))
        return ci_error(err, CINFER_ERR_INVALID, "bench: n_prompt and n_gen must be 0..%d", 1 << 24);
    if (o->n_prompt == 0 && o->n_gen == 0) return ci_error(err, CINFER_ERR_INVALID, "bench: nothing to do (n_prompt = n_gen = 0)");
    if (o->n_seqs < 1 || o->n_seqs > CINFER_BENCH_MAX_SEQS)
        return ci_error(err, CINFER_ERR_INVALID, "bench: n_seqs %d: must be 1..%d", o->n_seqs, CINFER_BENCH_MAX_SEQS);
    if (o->repetitions < 1) return ci_error(err, CINFER_ERR_INVALID, "bench: repetitions must be at least 1");
    return CINFER_OK;
}

/* State, KV pool (every block of every sequence taken now) and buffers. */
static int allocate(cinfer_bench *b, cinfer_error *err) {
    const qwen3_hparams *hp = &b->ck.model.hp;
    const cinfer_bench_options *o = &b->o;
    int block = CINFER_DEFAULTS.model.kv_block_size;
    int ctx = o->n_prompt > o->n_gen ? o->n_prompt : o->n_gen;
    int max_batch = o->n_prompt > o->n_seqs ? o->n_prompt : o->n_seqs;
    size_t n_tokens = (size_t)o->n_gen * (size_t)o->n_seqs;
    if (n_tokens < (size_t)ctx) n_tokens = (size_t)ctx;
    b->n_blocks = (ctx + block - 1) / block;
    int n_all = b->n_blocks * o->n_seqs;
    if (qwen3_state_init(&b->st, hp, max_batch, ctx, o->n_threads, err) != CINFER_OK ||
        ci_kv_cache_init(&b->kv, hp->n_layers, hp->n_kv_heads, hp->head_dim, block, n_all, CI_KV_F16, err) != CINFER_OK)
        return err ? err->code : CINFER_ERR_NOMEM;
    b->blocks = ci_malloc((size_t)n_all * sizeof(int32_t));
    b->tables = ci_malloc((size_t)o->n_seqs * sizeof(ci_block_table));
    for (int i = 0; i < n_all; i++) b->blocks[i] = ci_kv_alloc_block(&b->kv);
    for (int q = 0; q < o->n_seqs; q++)
        b->tables[q] = (ci_block_table){.blocks = b->blocks + (size_t)q * b->n_blocks, .n_blocks = b->n_blocks};
    b->tokens = ci_malloc(n_tokens * sizeof(int32_t));
    b->pos = ci_malloc(n_tokens * sizeof(int32_t));
    b->seq = ci_malloc(n_tokens * sizeof(int32_t));
    b->want = ci_malloc((size_t)max_batch * sizeof(bool));
    b->logits = ci_malloc((size_t)hp->vocab * (size_t)o->n_seqs * sizeof(float));
    return CINFER_OK;
}

cinfer_bench *cinfer_bench_open(const char *path, const cinfer_bench_options *o, cinfer_error *err) {
    cinfer_bench *b = ci_calloc(1, sizeof *b);
    if (o) b->o = *o;
    else cinfer_bench_options_init(&b->o);
    if (check_options(&b->o, err) != CINFER_OK) {
        free(b);
        return NULL;
    }
    if (b->o.n_threads > 0) ci_threadpool_set_threads(b->o.n_threads);
    b->o.n_threads = ci_threadpool_threads();
    double t0 = ci_now_seconds();
    if (qwen3_checkpoint_open(path, &b->ck, NULL, NULL, err) != CINFER_OK) {
        free(b);
        return NULL;
    }
    b->load_seconds = ci_now_seconds() - t0;
    if (allocate(b, err) != CINFER_OK) {
        cinfer_bench_free(b);
        return NULL;
    }
    return b;
}

void cinfer_bench_free(cinfer_bench *b) {
    if (!b) return;
    free(b->blocks);
    free(b->tables);
    free(b->tokens);
    free(b->pos);
    free(b->seq);
    free(b->want);
    free(b->logits);
    if (b->kv.pool.k) ci_kv_cache_free(&b->kv);
    qwen3_state_free(&b->st);
    qwen3_checkpoint_close(&b->ck);
    free(b);
}

void cinfer_bench_get_info(const cinfer_bench *b, cinfer_bench_info *out) {
    const qwen3_hparams *hp = &b->ck.model.hp;
    *out = (cinfer_bench_info){.weight_type = ci_wtype_name(b->ck.model.w.layers[0].wq.type),
                               .kernels = ci_kernels_describe(),
                               .n_threads = b->o.n_threads,
                               .n_layers = hp->n_layers,
                               .hidden = hp->hidden,
                               .load_seconds = b->load_seconds};
}

/* One sequence: positions [0, n) through forward calls of `chunk` tokens
 * (chunk = n for pp, 1 for tg), logits for the last token of each call.
 * n_seqs > 1 (tg only): every call holds one token of each sequence, all at
 * the same position, logits for all. Returns seconds, or < 0 on error. */
static double run_test(cinfer_bench *c, int n, int chunk, int n_seqs, unsigned seed, cinfer_error *err) {
    int V = c->ck.model.hp.vocab;
    unsigned s = seed * 2654435761u + 12345u;
    int per_call = n_seqs > 1 ? n_seqs : chunk;
    int total = n_seqs > 1 ? n * n_seqs : n;
    for (int i = 0; i < total; i++) {
        s = s * 1103515245u + 12345u;
        c->tokens[i] = (int32_t)((s >> 8) % (unsigned)V);
        c->pos[i] = n_seqs > 1 ? i / n_seqs : i;
        c->seq[i] = n_seqs > 1 ? i % n_seqs : 0;
    }
    double t0 = ci_now_seconds();
    for (int i = 0; i < total; i += per_call) {
        int m = total - i < per_call ? total - i : per_call;
        for (int j = 0; j < m; j++) c->want[j] = n_seqs > 1 || j == m - 1;
        qwen3_batch b = {.n_tokens = m,
                         .tokens = c->tokens + i,
                         .pos = c->pos + i,
                         .seq = c->seq + i,
                         .want_logits = c->want,
                         .n_seqs = n_seqs,
                         .seq_blocks = c->tables};
        if (qwen3_forward(&c->ck.model, &c->st, &c->kv.pool, &b, c->logits, err) < 0) return -1.0;
    }
    return ci_now_seconds() - t0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench_one(cinfer_bench *c, int n, int chunk, int n_seqs, cinfer_bench_stat *out, cinfer_error *err) {
    int reps = c->o.repetitions;
    double *t = ci_malloc((size_t)reps * sizeof(double));
    if (run_test(c, n, chunk, n_seqs, 999, err) < 0) { /* warm-up */
        free(t);
        return err ? err->code : CINFER_ERR_INVALID;
    }
    for (int r = 0; r < reps; r++) {
        t[r] = run_test(c, n, chunk, n_seqs, (unsigned)r, err);
        if (t[r] < 0) {
            free(t);
            return err ? err->code : CINFER_ERR_INVALID;
        }
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    double tokens = (double)n * n_seqs;
    *out = (cinfer_bench_stat){.median = tokens / med, .min = tokens / t[reps - 1], .max = tokens / t[0]};
    free(t);
    return CINFER_OK;
}

int cinfer_bench_run_pp(cinfer_bench *b, cinfer_bench_stat *out, cinfer_error *err) {
    if (b->o.n_prompt <= 0) return ci_error(err, CINFER_ERR_INVALID, "bench: opened with n_prompt 0 (no pp test)");
    return bench_one(b, b->o.n_prompt, b->o.n_prompt, 1, out, err);
}

int cinfer_bench_run_tg(cinfer_bench *b, cinfer_bench_stat *out, cinfer_error *err) {
    if (b->o.n_gen <= 0) return ci_error(err, CINFER_ERR_INVALID, "bench: opened with n_gen 0 (no tg test)");
    return bench_one(b, b->o.n_gen, 1, b->o.n_seqs, out, err);
}
