/*
 * cmd_bench.c — `cinfer bench`: llama-bench-style throughput of the forward
 * pass on one checkpoint.
 *
 *   pp: one forward of P prompt tokens (positions 0..P-1, logits for the
 *       last one only, as llama-bench's prompt test), tokens/s = P / time.
 *   tg: N single-token decode steps from an empty cache (positions 0..N-1,
 *       logits every step), tokens/s = N / time.
 *   tg with -b S: S sequences decode together, one token each per step (one
 *       forward of S tokens, logits for all), as a server's batched decode;
 *       tokens/s = S·N / time, the aggregate (llama-batched-bench's S_TG).
 *
 * Each test runs REPS times after one untimed warm-up; the median is
 * reported (min/max beside it). Tokens are pseudo-random ids, fixed by seed,
 * like llama-bench's. qwen3_forward is driven directly (no tokenizer, no
 * sampler, no scheduler), so this measures the model code alone.
 */
#include "commands.h"
#include "engine/kv_cache.h"
#include "kernels/kernels.h"
#include "kernels/threadpool.h"
#include "model/loader.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "bench"
#define BLOCK 16

static void usage(FILE *out) {
    fprintf(out,
            "usage: cinfer " CMD " MODEL [options]\n\n"
            "Measures prompt processing (pp) and generation (tg) speed like llama-bench.\n\n"
            "  -p, --n-prompt N   prompt tokens in one forward (default 512; 0 skips pp)\n"
            "  -n, --n-gen N      decode steps of one token (default 128; 0 skips tg)\n"
            "  -t, --threads N    threads (default: CINFER_THREADS or all CPUs)\n"
            "  -r, --repetitions N  timed runs per test; the median is reported (default 5)\n"
            "  -b, --batch S      sequences decoding together in tg; aggregate t/s (default 1)\n"
            "  --json             print one JSON object instead of a table\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct bench_ctx {
    qwen3_checkpoint ck;
    qwen3_state st;
    ci_kv_cache kv;
    int32_t *blocks;      /* n_seqs block tables of n_blocks each */
    int n_blocks, n_seqs;
    ci_block_table *tables;
    int32_t *tokens, *pos, *seq;
    bool *want;
    float *logits;
} bench_ctx;

/* One sequence: positions [0, n) through forward calls of `chunk` tokens
 * (chunk = n for pp, 1 for tg), logits for the last token of each call.
 * n_seqs > 1 (tg only): every call holds one token of each sequence, all at
 * the same position, logits for all. Returns seconds, or < 0 on error. */
static double run_test(bench_ctx *c, int n, int chunk, int n_seqs, unsigned seed, cinfer_error *err) {
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

typedef struct result { double med, lo, hi; } result;

static int bench_one(bench_ctx *c, int n, int chunk, int n_seqs, int reps, result *out, cinfer_error *err) {
    double *t = ci_malloc((size_t)reps * sizeof(double));
    if (run_test(c, n, chunk, n_seqs, 999, err) < 0) { free(t); return -1; } /* warm-up */
    for (int r = 0; r < reps; r++) {
        t[r] = run_test(c, n, chunk, n_seqs, (unsigned)r, err);
        if (t[r] < 0) { free(t); return -1; }
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    double tokens = (double)n * n_seqs;
    out->med = tokens / med;
    out->lo = tokens / t[reps - 1];
    out->hi = tokens / t[0];
    free(t);
    return 0;
}

static bool parse_int(const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > 1000000) return false;
    *out = (int)v;
    return true;
}

int cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    int n_prompt = 512, n_gen = 128, threads = 0, reps = 5, n_seqs = 1;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) { usage(stdout); return 0; }
        int *dst = NULL, lo = 0;
        if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) dst = &n_prompt;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) dst = &n_gen;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { dst = &threads; lo = 1; }
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) { dst = &reps; lo = 1; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) { dst = &n_seqs; lo = 1; }
        else if (!strcmp(a, "--json")) { json = true; continue; }
        else if (a[0] == '-') return cli_usage_error(CMD, "unknown option '%s'", a);
        else if (!path) { path = a; continue; }
        else return cli_usage_error(CMD, "unexpected argument '%s'", a);
        const char *v = cli_option_value(CMD, argc, argv, &i);
        if (!v) return 2;
        if (!parse_int(v, lo, dst)) return cli_usage_error(CMD, "bad value '%s' for %s", v, a);
    }
    if (!path) { usage(stderr); return 2; }
    if (n_prompt == 0 && n_gen == 0) return cli_usage_error(CMD, "nothing to do (-p 0 -n 0)");
    if (n_seqs > 256) return cli_usage_error(CMD, "-b %d: at most 256 sequences", n_seqs);

    if (threads > 0) ci_threadpool_set_threads(threads);
    threads = ci_threadpool_threads();

    cinfer_error err = {0};
    bench_ctx c;
    memset(&c, 0, sizeof c);
    double tl = ci_now_seconds();
    if (qwen3_checkpoint_open(path, &c.ck, NULL, NULL, &err) != CINFER_OK) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        return 1;
    }
    double load_s = ci_now_seconds() - tl;
    const qwen3_hparams *hp = &c.ck.model.hp;
    int ctx = n_prompt > n_gen ? n_prompt : n_gen;
    int max_batch = n_prompt > n_seqs ? n_prompt : n_seqs;
    c.n_blocks = (ctx + BLOCK - 1) / BLOCK;
    c.n_seqs = n_seqs;
    size_t n_tokens = (size_t)ctx > (size_t)n_gen * (size_t)n_seqs ? (size_t)ctx : (size_t)n_gen * (size_t)n_seqs;
    int rc = 1;
    if (qwen3_state_init(&c.st, hp, max_batch, ctx, threads, &err) != CINFER_OK ||
        ci_kv_cache_init(&c.kv, hp->n_layers, hp->n_kv_heads, hp->head_dim, BLOCK, c.n_blocks * n_seqs, CI_KV_F16, &err) !=
            CINFER_OK) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        goto out;
    }
    c.blocks = ci_malloc((size_t)c.n_blocks * n_seqs * sizeof(int32_t));
    c.tables = ci_malloc((size_t)n_seqs * sizeof(ci_block_table));
    for (int i = 0; i < c.n_blocks * n_seqs; i++) c.blocks[i] = ci_kv_alloc_block(&c.kv);
    for (int q = 0; q < n_seqs; q++) c.tables[q] = (ci_block_table){.blocks = c.blocks + (size_t)q * c.n_blocks, .n_blocks = c.n_blocks};
    c.tokens = ci_malloc(n_tokens * sizeof(int32_t));
    c.pos = ci_malloc(n_tokens * sizeof(int32_t));
    c.seq = ci_malloc(n_tokens * sizeof(int32_t));
    c.want = ci_malloc((size_t)max_batch * sizeof(bool));
    c.logits = ci_malloc((size_t)hp->vocab * (size_t)n_seqs * sizeof(float));

    ci_wtype wt = c.ck.model.w.layers[0].wq.type;
    result pp = {0}, tg = {0};
    if (!json)
        fprintf(stderr, "cinfer bench: %s (%s, %d layers, hidden %d), kernels %s, %d threads, %d reps (load %.2f s)\n",
                path, ci_wtype_name(wt), hp->n_layers, hp->hidden, ci_kernels_describe(), threads, reps, load_s);
    if (n_prompt > 0 && bench_one(&c, n_prompt, n_prompt, 1, reps, &pp, &err) != 0) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        goto out;
    }
    if (n_gen > 0 && bench_one(&c, n_gen, 1, n_seqs, reps, &tg, &err) != 0) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        goto out;
    }
    if (json) {
        printf("{\"model\":\"%s\",\"type\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,\"reps\":%d,"
               "\"n_prompt\":%d,\"n_gen\":%d,\"batch\":%d,\"pp_tps\":%.3f,\"pp_min\":%.3f,\"pp_max\":%.3f,"
               "\"tg_tps\":%.3f,\"tg_min\":%.3f,\"tg_max\":%.3f}\n",
               path, ci_wtype_name(wt), ci_kernels_describe(), threads, reps, n_prompt, n_gen, n_seqs, pp.med, pp.lo, pp.hi,
               tg.med, tg.lo, tg.hi);
    } else {
        printf("| %-6s | %7s | %-16s | %-7s | %12s | %17s |\n", "type", "threads", "kernels", "test", "t/s (median)",
               "min .. max");
        if (n_prompt > 0)
            printf("| %-6s | %7d | %-16s | pp%-5d | %12.2f | %7.2f .. %7.2f |\n", ci_wtype_name(wt), threads,
                   ci_kernels_describe(), n_prompt, pp.med, pp.lo, pp.hi);
        if (n_gen > 0 && n_seqs == 1)
            printf("| %-6s | %7d | %-16s | tg%-5d | %12.2f | %7.2f .. %7.2f |\n", ci_wtype_name(wt), threads,
                   ci_kernels_describe(), n_gen, tg.med, tg.lo, tg.hi);
        else if (n_gen > 0)
            printf("| %-6s | %7d | %-16s | tg%d×%d | %12.2f | %7.2f .. %7.2f |\n", ci_wtype_name(wt), threads,
                   ci_kernels_describe(), n_gen, n_seqs, tg.med, tg.lo, tg.hi);
    }
    rc = 0;
out:
    free(c.blocks);
    free(c.tables);
    free(c.tokens);
    free(c.pos);
    free(c.seq);
    free(c.want);
    free(c.logits);
    if (c.kv.pool.k) ci_kv_cache_free(&c.kv);
    qwen3_state_free(&c.st);
    qwen3_checkpoint_close(&c.ck);
    return rc;
}
