/*
 * test_scheduler.c — the continuous-batching scheduler and its KV cache:
 *  - KV cache prefix-cache bookkeeping (refcounts, LRU eviction, lookups);
 *  - scheduler: prefix-cache hits give the same greedy tokens as misses,
 *    preemption under a tiny KV pool gives the same tokens as without,
 *    cancellation frees blocks, the thinking budget forces "</think>";
 *  - forced answer prefixes (tool_choice): at the first output position or
 *    after the forced thinking close, and the continuation equals greedy
 *    decoding of the prompt with the prefix appended (teacher forcing);
 *  - prompt logprobs (echo): equal to logprobs from token-by-token decoding
 *    through qwen3_forward, across the per-step row cap, with prefix
 *    caching, and for two requests at once;
 *  - failure paths (fault injection, util/fault.h): the Nth forward pass or
 *    the Nth fallible allocation fails during a multi-request workload under
 *    preemption; every request ends (CI_FINISH_ERROR or normally, the normal
 *    ones with the tokens of a clean run), every KV block is free again, and
 *    the scheduler then serves a new request with the clean run's tokens;
 *    cinfer_generate reports a failed forward pass and leaves nothing behind;
 *  - per-model thread counts: loading a second model with more threads
 *    leaves the first one's output bitwise unchanged.
 * Leaks are caught by building with -DCINFER_SANITIZE=ON (LeakSanitizer).
 * usage: test_scheduler MODEL_DIR (a tiny test model: make-test-model --shape tiny)
 */
#include "engine/engine_internal.h"
#include "engine/kv_cache.h"
#include "engine/scheduler.h"
#include "util/fault.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ kv cache */

static void test_kv_prefix_bookkeeping(void) {
    ci_kv_cache kv;
    CHECK(ci_kv_cache_init(&kv, 1, 1, 4, 4, 4, CI_KV_F32, NULL) == 0);
    int32_t toks_a[4] = {1, 2, 3, 4}, toks_b[4] = {5, 6, 7, 8};
    uint64_t ha = ci_kv_chain_hash(0, toks_a, 4), hb = ci_kv_chain_hash(ha, toks_b, 4);
    CHECK(ha != hb);
    CHECK(ci_kv_chain_hash(0, toks_b, 4) != hb); /* chained: same tokens, other parent, other hash */
    int32_t a = ci_kv_alloc_block(&kv), b = ci_kv_alloc_block(&kv);
    CHECK(a >= 0 && b >= 0 && a != b);
    CHECK(ci_kv_available(&kv) == 2);
    ci_kv_register(&kv, a, ha, -1, toks_a);
    ci_kv_register(&kv, b, hb, a, toks_b);
    CHECK(ci_kv_lookup(&kv, ha, -1, toks_a) == a);
    CHECK(ci_kv_lookup(&kv, hb, a, toks_b) == b);
    CHECK(ci_kv_lookup(&kv, hb, -1, toks_b) == -1); /* wrong parent */
    int32_t other[4] = {1, 2, 3, 5};
    CHECK(ci_kv_lookup(&kv, ha, -1, other) == -1);  /* hash equal, tokens differ: verified */
    /* shared: a second sequence holds a */
    ci_kv_retain_block(&kv, a);
    CHECK(kv.refcount[a] == 2);
    ci_kv_release_block(&kv, a);
    ci_kv_release_block(&kv, a);
    CHECK(kv.refcount[a] == 0);
    CHECK(kv.n_evictable == 1);                      /* cached, not freed */
    CHECK(ci_kv_available(&kv) == 3);
    CHECK(ci_kv_lookup(&kv, ha, -1, toks_a) == a);   /* still findable */
    ci_kv_release_block(&kv, b);
    CHECK(kv.n_evictable == 2 && kv.n_free == 2);
    /* a hit takes the block off the LRU list */
    ci_kv_retain_block(&kv, a);
    CHECK(kv.n_evictable == 1);
    ci_kv_release_block(&kv, a);                     /* a is now the most recently used */
    /* exhaust the free list, then evict: least recently used first (b) */
    int32_t f1 = ci_kv_alloc_block(&kv), f2 = ci_kv_alloc_block(&kv);
    CHECK(f1 >= 0 && f2 >= 0 && kv.n_free == 0);
    int32_t e1 = ci_kv_alloc_block(&kv);
    CHECK(e1 == b);
    CHECK(ci_kv_lookup(&kv, hb, a, toks_b) == -1);
    CHECK(ci_kv_lookup(&kv, ha, -1, toks_a) == a);
    int32_t e2 = ci_kv_alloc_block(&kv);
    CHECK(e2 == a);
    CHECK(ci_kv_alloc_block(&kv) == -1);
    CHECK(kv.evictions == 2);
    /* registering a duplicate prefix keeps the first block */
    ci_kv_register(&kv, f1, ha, -1, toks_a);
    ci_kv_register(&kv, f2, ha, -1, toks_a);
    CHECK(ci_kv_lookup(&kv, ha, -1, toks_a) == f1);
    ci_kv_cache_free(&kv);
}

/* ----------------------------------------------------------- scheduler */

enum { MAX_PLP = 512, PLP_TOP = 3 };

typedef struct collected {
    int32_t tokens[256];
    float logprobs[256];
    int n;
    bool done;
    ci_finish_reason finish;
    int n_cached;
    /* prompt logprob events, by prompt index */
    float plp[MAX_PLP];
    int32_t plp_token[MAX_PLP];
    int32_t plp_top[MAX_PLP][PLP_TOP];
    int n_plp;
    bool plp_in_order, plp_after_output;
} collected;

static bool collect(void *user, const ci_token_event *ev) {
    collected *c = user;
    if (ev->prompt_index > 0) {
        if (ev->prompt_index != c->n_plp + 1) c->plp_in_order = false;
        if (c->n > 0) c->plp_after_output = true;
        if (ev->prompt_index < MAX_PLP) {
            c->plp[ev->prompt_index] = ev->logprob;
            c->plp_token[ev->prompt_index] = ev->token;
            for (int k = 0; k < PLP_TOP; k++) c->plp_top[ev->prompt_index][k] = k < ev->n_top ? ev->top_ids[k] : -1;
        }
        c->n_plp++;
        return false;
    }
    if (ev->token >= 0 && c->n < 256) c->logprobs[c->n] = ev->logprob, c->tokens[c->n++] = ev->token;
    if (ev->finish != CI_FINISH_NONE) {
        c->done = true;
        c->finish = ev->finish;
        c->n_cached = ev->n_cached_tokens;
    }
    return false;
}

static void run_all(ci_scheduler *s, collected *cs, int n) {
    for (int guard = 0; guard < 100000; guard++) {
        bool all = true;
        for (int i = 0; i < n; i++) all = all && cs[i].done;
        if (all) return;
        if (ci_sched_step(s, NULL) < 0) return;
    }
}

static ci_request_params greedy(int max_new) {
    ci_request_params p = {.sampling = ci_sampling_defaults(), .max_new_tokens = max_new, .thinking_budget = -1};
    return p;
}

static void make_prompt(int32_t *p, int n, int salt) {
    for (int i = 0; i < n; i++) p[i] = 100 + (i * 37 + salt * 101) % 5000;
}

/* The thinking close sequence "\n\n</think>\n\n" and the think ids, read
 * from the model's tokenizer (three ids: "\n\n", </think>, "\n\n"). */
static void thinking_ids(cinfer_model *m, int32_t *start, int32_t *end, int32_t close_ids[3]) {
    CHECK(cinfer_tokenizer_thinking_ids(m->tok, start, end) == 0);
    int32_t *ids = NULL;
    const char *text = "\n\n</think>\n\n";
    CHECK(cinfer_tokenize(m->tok, text, strlen(text), 0, &ids, NULL) == 3);
    memcpy(close_ids, ids, 3 * sizeof *ids);
    free(ids);
    CHECK(close_ids[1] == *end && close_ids[0] == close_ids[2]);
}

static void test_scheduler(cinfer_model *m) {
    const qwen3_model *model = &m->ck.model;
    ci_sched_options big = {.max_num_seqs = 8, .max_batch_tokens = 256, .max_model_len = 256, .block_size = 16,
                            .n_kv_blocks = 256, .kv_dtype = CI_KV_F16};
    ci_scheduler *s = ci_sched_new(model, &big, NULL);
    CHECK(s != NULL);
    if (!s) return;
    int32_t prompt[40];
    make_prompt(prompt, 40, 1);
    ci_request_params p = greedy(12);

    /* miss, then hit: same tokens; the hit reuses floor(39/16) = 2 blocks */
    collected miss = {0}, hit = {0};
    CHECK(ci_sched_submit(s, prompt, 40, &p, collect, &miss, NULL) > 0);
    run_all(s, &miss, 1);
    CHECK(ci_sched_submit(s, prompt, 40, &p, collect, &hit, NULL) > 0);
    run_all(s, &hit, 1);
    CHECK(miss.done && hit.done && miss.n == 12 && hit.n == 12);
    CHECK(memcmp(miss.tokens, hit.tokens, sizeof(int32_t) * 12) == 0);
    CHECK(miss.n_cached == 0);
    CHECK_MSG(hit.n_cached == 32, "cached %d", hit.n_cached);
    ci_sched_stats st;
    ci_sched_get_stats(s, &st);
    CHECK(st.prefix_query_tokens == 80 && st.prefix_hit_tokens == 32);
    CHECK(st.kv_blocks_free == st.kv_blocks_total); /* everything released (cached blocks are evictable) */

    /* two sequences from one new prompt submitted together (n = 2): the second shares the first's blocks */
    int32_t twin[40];
    make_prompt(twin, 40, 9);
    collected t1 = {0}, t2 = {0};
    ci_sched_submit(s, twin, 40, &p, collect, &t1, NULL);
    ci_sched_submit(s, twin, 40, &p, collect, &t2, NULL);
    for (int guard = 0; guard < 1000 && !(t1.done && t2.done); guard++) ci_sched_step(s, NULL);
    CHECK(t1.n_cached == 0);
    CHECK_MSG(t2.n_cached == 32, "twin cached %d", t2.n_cached);
    CHECK(memcmp(t1.tokens, t2.tokens, sizeof(int32_t) * 12) == 0);

    /* a longer prompt sharing the first 32 tokens hits 2 blocks, then diverges */
    int32_t longer[60];
    memcpy(longer, prompt, sizeof prompt);
    make_prompt(longer + 40, 20, 7);
    collected lg = {0};
    ci_sched_submit(s, longer, 60, &p, collect, &lg, NULL);
    run_all(s, &lg, 1);
    CHECK_MSG(lg.n_cached == 32, "cached %d", lg.n_cached);

    /* cancellation frees the blocks at the next step */
    collected cz = {0};
    int32_t fresh[50];
    make_prompt(fresh, 50, 3);
    int64_t id = ci_sched_submit(s, fresh, 50, &p, collect, &cz, NULL);
    ci_sched_step(s, NULL);
    ci_sched_get_stats(s, &st);
    CHECK(st.kv_blocks_free < st.kv_blocks_total);
    ci_sched_cancel(s, id);
    ci_sched_step(s, NULL);
    ci_sched_get_stats(s, &st);
    CHECK(cz.done && cz.finish == CI_FINISH_CANCELLED);
    CHECK(st.kv_blocks_free == st.kv_blocks_total);

    /* thinking budget: with thinking open, after 3 tokens the close sequence is forced */
    int32_t think_start, think_end, close_ids[3];
    thinking_ids(m, &think_start, &think_end, close_ids);
    ci_request_params tp = greedy(10);
    tp.thinking_budget = 3;
    tp.thinking_open = true;
    tp.think_start_id = think_start;
    tp.think_end_id = think_end;
    tp.forced_close = close_ids;
    tp.n_forced_close = 3;
    collected th = {0};
    ci_sched_submit(s, prompt, 40, &tp, collect, &th, NULL);
    run_all(s, &th, 1);
    CHECK(th.n == 10);
    CHECK(th.tokens[3] == close_ids[0] && th.tokens[4] == think_end && th.tokens[5] == close_ids[2]);
    ci_sched_free(s);

    /* preemption: 6 sequences in a pool that holds far fewer; same tokens as alone */
    enum { NSEQ = 6, PLEN = 30, OUT = 40 };
    collected solo[NSEQ], crowd[NSEQ];
    memset(solo, 0, sizeof solo);
    memset(crowd, 0, sizeof crowd);
    int32_t prompts[NSEQ][PLEN];
    for (int i = 0; i < NSEQ; i++) make_prompt(prompts[i], PLEN, 10 + i);
    ci_request_params pp = greedy(OUT);
    s = ci_sched_new(model, &big, NULL);
    for (int i = 0; i < NSEQ; i++) {
        ci_sched_submit(s, prompts[i], PLEN, &pp, collect, &solo[i], NULL);
        run_all(s, &solo[i], 1);
    }
    ci_sched_free(s);
    ci_sched_options small = big;
    small.max_model_len = 80;
    small.n_kv_blocks = 10; /* each sequence needs 5 blocks at its end */
    small.disable_prefix_caching = true;
    s = ci_sched_new(model, &small, NULL);
    CHECK(s != NULL);
    if (!s) return;
    for (int i = 0; i < NSEQ; i++) ci_sched_submit(s, prompts[i], PLEN, &pp, collect, &crowd[i], NULL);
    run_all(s, crowd, NSEQ);
    ci_sched_get_stats(s, &st);
    CHECK_MSG(st.preemptions > 0, "preemptions %llu", (unsigned long long)st.preemptions);
    for (int i = 0; i < NSEQ; i++) {
        CHECK(crowd[i].done && crowd[i].n == OUT);
        CHECK_MSG(memcmp(solo[i].tokens, crowd[i].tokens, sizeof(int32_t) * OUT) == 0, "sequence %d differs after preemption", i);
    }
    CHECK(st.kv_blocks_free == st.kv_blocks_total);
    ci_sched_free(s);
}

/* Forced answer prefix (tool_choice "required" / a named function). */
static void test_forced_prefix(cinfer_model *m) {
    ci_sched_options o = {.max_num_seqs = 4, .max_batch_tokens = 128, .max_model_len = 256, .block_size = 16,
                          .n_kv_blocks = 128, .kv_dtype = CI_KV_F16};
    ci_scheduler *s = ci_sched_new(&m->ck.model, &o, NULL);
    CHECK(s != NULL);
    if (!s) return;
    int32_t prompt[40 + 8];
    make_prompt(prompt, 40, 4);
    int32_t *pre = NULL;
    const char *pre_text = "<tool_call>\n{\"name\":";
    CHECK(cinfer_tokenize(m->tok, pre_text, strlen(pre_text), 0, &pre, NULL) == 5);
    int32_t prefix[5];
    memcpy(prefix, pre, sizeof prefix);
    free(pre);
    CHECK(prefix[0] == cinfer_tokenizer_token_id(m->tok, "<tool_call>"));
    int32_t think_start, think_end, close_ids[3];
    thinking_ids(m, &think_start, &think_end, close_ids);

    /* no thinking: the prefix is the first output, the model continues after it */
    ci_request_params p = greedy(12);
    p.forced_prefix = prefix;
    p.n_forced_prefix = 5;
    p.think_start_id = think_start;
    p.think_end_id = think_end;
    p.forced_close = close_ids;
    p.n_forced_close = 3;
    p.want_logprobs = true;
    collected f = {0};
    CHECK(ci_sched_submit(s, prompt, 40, &p, collect, &f, NULL) > 0);
    run_all(s, &f, 1);
    CHECK(f.done && f.finish == CI_FINISH_LENGTH && f.n == 12);
    CHECK(memcmp(f.tokens, prefix, sizeof prefix) == 0);
    for (int i = 0; i < 5; i++) CHECK(f.logprobs[i] == 0.0f); /* forced: logprob 0 */
    /* teacher forcing: the prompt with the prefix appended continues the same way */
    int32_t tf_prompt[48];
    memcpy(tf_prompt, prompt, 40 * sizeof(int32_t));
    memcpy(tf_prompt + 40, prefix, sizeof prefix);
    ci_request_params g = greedy(7);
    collected tf = {0};
    ci_sched_submit(s, tf_prompt, 45, &g, collect, &tf, NULL);
    run_all(s, &tf, 1);
    CHECK(tf.n == 7 && memcmp(tf.tokens, f.tokens + 5, 7 * sizeof(int32_t)) == 0);

    /* thinking open with a budget of 3: thinking, the close, then the prefix */
    ci_request_params t = p;
    t.thinking_budget = 3;
    t.thinking_open = true;
    t.max_new_tokens = 16;
    collected th = {0};
    ci_sched_submit(s, prompt, 40, &t, collect, &th, NULL);
    run_all(s, &th, 1);
    CHECK(th.n == 16);
    CHECK(memcmp(th.tokens + 3, close_ids, sizeof close_ids) == 0);
    CHECK(memcmp(th.tokens + 6, prefix, sizeof prefix) == 0);

    /* thinking open without a budget: nothing is forced while the model thinks */
    ci_request_params open = p;
    open.thinking_open = true;
    open.thinking_budget = -1;
    collected op = {0};
    ci_sched_submit(s, prompt, 40, &open, collect, &op, NULL);
    run_all(s, &op, 1);
    bool has_tag = false;
    for (int i = 0; i < op.n; i++) has_tag = has_tag || op.tokens[i] == prefix[0];
    CHECK(op.n == 12 && !has_tag);

    /* a length limit inside the prefix cuts it */
    ci_request_params shortp = p;
    shortp.max_new_tokens = 3;
    collected sh = {0};
    ci_sched_submit(s, prompt, 40, &shortp, collect, &sh, NULL);
    run_all(s, &sh, 1);
    CHECK(sh.finish == CI_FINISH_LENGTH && sh.n == 3 && memcmp(sh.tokens, prefix, 3 * sizeof(int32_t)) == 0);

    /* a forced token outside the vocabulary is refused */
    int32_t bad[1] = {-5};
    ci_request_params b = greedy(4);
    b.forced_prefix = bad;
    b.n_forced_prefix = 1;
    CHECK(ci_sched_submit(s, prompt, 40, &b, collect, &sh, NULL) < 0);
    ci_sched_free(s);
}

/* Reference prompt logprobs: token-by-token decoding through qwen3_forward
 * (one position per call, f32 KV cache) — a different path from the
 * scheduler's batched prompt chunks. lp[i] is the logprob of prompt[i],
 * top[i] the PLP_TOP most likely ids at that position (i >= 1). */
static void reference_prompt_logprobs(cinfer_model *m, const int32_t *prompt, int n, float *lp, int32_t (*top)[PLP_TOP]) {
    const qwen3_model *model = &m->ck.model;
    const qwen3_hparams *hp = &model->hp;
    ci_kv_cache kv;
    qwen3_state st;
    int bs = 16, nb = (n + bs - 1) / bs;
    CHECK(ci_kv_cache_init(&kv, hp->n_layers, hp->n_kv_heads, hp->head_dim, bs, nb, CI_KV_F16, NULL) == 0);
    CHECK(qwen3_state_init(&st, hp, 1, n, 0, NULL) == 0);
    int32_t *blocks = malloc((size_t)nb * sizeof *blocks);
    for (int i = 0; i < nb; i++) blocks[i] = ci_kv_alloc_block(&kv);
    ci_block_table table = {.blocks = blocks, .n_blocks = nb};
    float *logits = malloc((size_t)hp->vocab * sizeof *logits);
    for (int i = 0; i + 1 < n; i++) {
        int32_t seqi = 0;
        bool want = true;
        qwen3_batch b = {.n_tokens = 1, .tokens = &prompt[i], .pos = &i, .seq = &seqi, .want_logits = &want,
                         .n_seqs = 1, .seq_blocks = &table};
        CHECK(qwen3_forward(model, &st, &kv.pool, &b, logits, NULL) == 1);
        lp[i + 1] = ci_logprob_of(logits, hp->vocab, prompt[i + 1]);
        float tl[PLP_TOP];
        ci_top_logprobs(logits, hp->vocab, PLP_TOP, top[i + 1], tl);
    }
    free(logits);
    free(blocks);
    qwen3_state_free(&st);
    ci_kv_cache_free(&kv);
}

static void test_prompt_logprobs(cinfer_model *m) {
    enum { N = 150 }; /* more than CI_PROMPT_LOGPROB_ROWS: several steps */
    int32_t prompt[N];
    make_prompt(prompt, N, 21);
    static float ref[N];
    static int32_t ref_top[N][PLP_TOP];
    reference_prompt_logprobs(m, prompt, N, ref, ref_top);

    ci_sched_options o = {.max_num_seqs = 4, .max_batch_tokens = 256, .max_model_len = 256, .block_size = 16,
                          .n_kv_blocks = 128, .kv_dtype = CI_KV_F16};
    ci_scheduler *s = ci_sched_new(&m->ck.model, &o, NULL);
    CHECK(s != NULL);
    if (!s) return;
    ci_request_params p = greedy(0); /* the prompt only (echo with max_tokens 0) */
    p.want_prompt_logprobs = true;
    p.top_logprobs = PLP_TOP;

    /* the same prompt computed once without logprobs: it sits in the prefix cache */
    ci_request_params warm = greedy(2);
    collected w = {0};
    ci_sched_submit(s, prompt, N, &warm, collect, &w, NULL);
    run_all(s, &w, 1);

    /* two prompt-logprob requests at once (they share the per-step row cap), next to a plain one */
    static collected a, b2, plain;
    memset(&a, 0, sizeof a), memset(&b2, 0, sizeof b2), memset(&plain, 0, sizeof plain);
    a.plp_in_order = b2.plp_in_order = true;
    int32_t other[30];
    make_prompt(other, 30, 5);
    ci_request_params with_out = p;
    with_out.max_new_tokens = 4;
    CHECK(ci_sched_submit(s, prompt, N, &p, collect, &a, NULL) > 0);
    CHECK(ci_sched_submit(s, prompt, 100, &with_out, collect, &b2, NULL) > 0);
    ci_sched_submit(s, other, 30, &warm, collect, &plain, NULL);
    for (int guard = 0; guard < 10000 && !(a.done && b2.done && plain.done); guard++) ci_sched_step(s, NULL);
    CHECK(a.done && a.finish == CI_FINISH_LENGTH && a.n == 0);
    CHECK_MSG(a.n_plp == N - 1, "prompt logprobs %d", a.n_plp);
    CHECK(a.plp_in_order && !a.plp_after_output);
    CHECK(a.n_cached == 0); /* computed, not taken from the cache */
    CHECK(b2.done && b2.n == 4 && b2.n_plp == 99 && b2.plp_in_order && !b2.plp_after_output);
    CHECK(plain.done && plain.n == 2 && plain.n_plp == 0);
    double max_diff = 0;
    int top_agree = 0;
    for (int i = 1; i < N; i++) {
        CHECK(a.plp_token[i] == prompt[i]);
        double d = fabs((double)a.plp[i] - (double)ref[i]);
        if (d > max_diff) max_diff = d;
        top_agree += a.plp_top[i][0] == ref_top[i][0];
        if (i < 100) CHECK_MSG(fabs((double)b2.plp[i] - (double)a.plp[i]) < 1e-3, "%d: %g vs %g (b2 got %d)", i,
                               (double)b2.plp[i], (double)a.plp[i], b2.n_plp);
    }
    CHECK_MSG(max_diff < 1e-3, "prompt logprobs differ from decoding by %g", max_diff);
    fprintf(stderr, "prompt logprobs vs decoding: max |diff| %.3g, top-1 agrees at %d of %d\n", max_diff, top_agree, N - 1);
    CHECK_MSG(top_agree >= N - 3, "top-1 agrees at %d of %d positions", top_agree, N - 1);
    ci_sched_stats st;
    ci_sched_get_stats(s, &st);
    CHECK(st.kv_blocks_free == st.kv_blocks_total);

    /* max_new_tokens 0 without prompt logprobs computes the prompt and ends */
    collected z = {0};
    CHECK(ci_sched_submit(s, other, 30, &(ci_request_params){.sampling = ci_sampling_defaults(), .thinking_budget = -1},
                          collect, &z, NULL) > 0);
    run_all(s, &z, 1);
    CHECK(z.done && z.n == 0 && z.finish == CI_FINISH_LENGTH);
    ci_sched_free(s);
}

/* ------------------------------------------------------ failure paths */

/* A workload of NF requests in a pool too small for all of them at once
 * (preemption), sharing a prefix (prefix cache), one with prompt logprobs
 * (the logits rows grow). */
enum { NF = 4, FAULT_CTX = 96, FAULT_OUT = 12 };

static const ci_sched_options fault_opts = {.max_num_seqs = 4, .max_batch_tokens = 64, .max_model_len = FAULT_CTX,
                                            .block_size = 16, .n_kv_blocks = 9, .kv_dtype = CI_KV_F16};

typedef struct workload {
    int32_t prompts[NF][FAULT_CTX];
    int len[NF];
    ci_request_params params[NF];
} workload;

static void make_workload(workload *w) {
    static const int lens[NF] = {40, 60, 25, 70};
    for (int i = 0; i < NF; i++) {
        w->len[i] = lens[i];
        make_prompt(w->prompts[i], lens[i], 30 + i);
        w->params[i] = greedy(FAULT_OUT);
    }
    memcpy(w->prompts[1], w->prompts[0], 32 * sizeof(int32_t)); /* two shared blocks */
    w->params[2].want_prompt_logprobs = true;
    w->params[2].top_logprobs = 2;
}

/* Submits the workload and steps until every request ended. A request the
 * scheduler refused for lack of memory counts as ended with an error.
 * Returns the number of steps that reported an error. */
static int run_workload(ci_scheduler *s, const workload *w, collected *c) {
    memset(c, 0, NF * sizeof *c);
    for (int i = 0; i < NF; i++) {
        cinfer_error err = {0};
        if (ci_sched_submit(s, w->prompts[i], w->len[i], &w->params[i], collect, &c[i], &err) < 0) {
            CHECK_MSG(err.code == CINFER_ERR_NOMEM, "submit: %s", err.message);
            c[i].done = true;
            c[i].finish = CI_FINISH_ERROR;
        }
    }
    int failed_steps = 0;
    for (int guard = 0; guard < 10000; guard++) {
        bool all = true;
        for (int i = 0; i < NF; i++) all = all && c[i].done;
        if (all) break;
        cinfer_error err = {0};
        CHECK(ci_sched_step(s, &err) >= 0);
        failed_steps += err.code != CINFER_OK;
    }
    return failed_steps;
}

/* One workload with the Nth event of `kind` failing, on a fresh scheduler. */
static void fault_once(cinfer_model *m, const workload *w, const collected *clean, const collected *clean_new,
                       ci_fault_kind kind, int n) {
    ci_scheduler *s = ci_sched_new(&m->ck.model, &fault_opts, NULL);
    CHECK(s != NULL);
    if (!s) return;
    collected c[NF];
    ci_fault_arm(kind, n);
    int failed_steps = run_workload(s, w, c);
    ci_fault_arm(kind, 0);
    int errors = 0;
    for (int i = 0; i < NF; i++) {
        CHECK_MSG(c[i].done, "fault %d #%d: request %d did not end", kind, n, i);
        if (c[i].finish == CI_FINISH_ERROR) {
            errors++;
            continue;
        }
        /* the others are untouched: the same tokens as without the fault */
        CHECK_MSG(c[i].n == clean[i].n && memcmp(c[i].tokens, clean[i].tokens, sizeof(int32_t) * (size_t)c[i].n) == 0,
                  "fault %d #%d: request %d differs from the clean run", kind, n, i);
    }
    CHECK_MSG(errors > 0, "fault %d #%d: no request failed", kind, n);
    CHECK(failed_steps <= errors);
    ci_sched_stats st;
    ci_sched_get_stats(s, &st);
    CHECK_MSG(st.kv_blocks_free == st.kv_blocks_total && st.running == 0 && st.waiting == 0,
              "fault %d #%d: %d of %d blocks free, %d running, %d waiting", kind, n, st.kv_blocks_free, st.kv_blocks_total,
              st.running, st.waiting);
    /* the scheduler still serves: a new request gets the clean run's tokens */
    collected again = {0};
    CHECK(ci_sched_submit(s, w->prompts[3], 50, &w->params[0], collect, &again, NULL) > 0);
    run_all(s, &again, 1);
    CHECK_MSG(again.done && again.finish == clean_new->finish && again.n == clean_new->n &&
                  memcmp(again.tokens, clean_new->tokens, sizeof(int32_t) * (size_t)again.n) == 0,
              "fault %d #%d: the next request differs from a clean run", kind, n);
    ci_sched_free(s);
}

static void test_fault_injection(cinfer_model *m) {
    if (!CI_FAULT_ENABLED) {
        fprintf(stderr, "fault injection: skipped (built without CINFER_FAULT_INJECTION)\n");
        return;
    }
    static workload w;
    make_workload(&w);
    /* the clean run: reference tokens, and how many events of each kind it has */
    collected clean[NF], clean_new = {0};
    ci_scheduler *s = ci_sched_new(&m->ck.model, &fault_opts, NULL);
    CHECK(s != NULL);
    if (!s) return;
    ci_fault_arm(CI_FAULT_ALLOC | CI_FAULT_FORWARD, 0);
    CHECK(run_workload(s, &w, clean) == 0);
    int n_alloc = ci_fault_count(CI_FAULT_ALLOC), n_forward = ci_fault_count(CI_FAULT_FORWARD);
    ci_sched_stats st;
    ci_sched_get_stats(s, &st);
    CHECK_MSG(st.preemptions > 0, "the workload should preempt (%llu)", (unsigned long long)st.preemptions);
    for (int i = 0; i < NF; i++) CHECK(clean[i].done && clean[i].finish == CI_FINISH_LENGTH && clean[i].n == FAULT_OUT);
    ci_sched_submit(s, w.prompts[3], 50, &w.params[0], collect, &clean_new, NULL);
    run_all(s, &clean_new, 1);
    ci_sched_free(s);
    fprintf(stderr, "fault injection: %d fallible allocations, %d forward passes in the workload\n", n_alloc, n_forward);
    CHECK(n_alloc >= NF && n_forward > NF);

    for (int n = 1; n <= n_forward; n++) fault_once(m, &w, clean, &clean_new, CI_FAULT_FORWARD, n);
    for (int n = 1; n <= n_alloc; n++) fault_once(m, &w, clean, &clean_new, CI_FAULT_ALLOC, n);
}

/* cinfer_generate on a failing forward pass: an error, and the request is
 * gone from the scheduler (before the fix its callback pointed into the
 * returned call's stack frame). */
static void test_generate_error(cinfer_model *m) {
    if (!CI_FAULT_ENABLED) return;
    cinfer_gen_options o;
    cinfer_gen_options_init(&o);
    o.raw = true;
    o.temperature = 0;
    o.max_new_tokens = 6;
    cinfer_result clean = {0}, r = {0};
    cinfer_error err = {0};
    CHECK(cinfer_generate(m, "The quick brown fox", &o, &clean, &err) == CINFER_OK);
    for (int n = 1; n <= 3; n++) {
        ci_fault_arm(CI_FAULT_FORWARD, n);
        err = (cinfer_error){0};
        int rc = cinfer_generate(m, "The quick brown fox", &o, &r, &err);
        ci_fault_arm(CI_FAULT_FORWARD, 0);
        CHECK_MSG(rc == CINFER_ERR_NOMEM && strstr(err.message, "injected"), "forward #%d: rc %d (%s)", n, rc, err.message);
        cinfer_result_free(&r);
        ci_sched_stats st;
        ci_sched_get_stats(m->sched, &st);
        CHECK(st.running == 0 && st.waiting == 0 && st.kv_blocks_free == st.kv_blocks_total);
    }
    CHECK(cinfer_generate(m, "The quick brown fox", &o, &r, &err) == CINFER_OK);
    CHECK(r.n_tokens == clean.n_tokens && memcmp(r.tokens, clean.tokens, sizeof(int32_t) * (size_t)r.n_tokens) == 0);
    cinfer_result_free(&r);
    cinfer_result_free(&clean);
}

/* ------------------------------------------------- per-model threads */

/* A prompt's logprobs and a few greedy tokens with their logprobs, through
 * the model's own scheduler. */
static void model_output(cinfer_model *m, collected *c) {
    int32_t prompt[70];
    make_prompt(prompt, 70, 17);
    ci_request_params p = greedy(6);
    p.want_prompt_logprobs = true;
    p.want_logprobs = true;
    p.top_logprobs = PLP_TOP;
    memset(c, 0, sizeof *c);
    CHECK(ci_sched_submit(m->sched, prompt, 70, &p, collect, c, NULL) > 0);
    run_all(m->sched, c, 1);
    CHECK(c->done && c->finish == CI_FINISH_LENGTH && c->n == 6 && c->n_plp == 69);
}

static bool same_output(const collected *a, const collected *b) {
    return a->n == b->n && memcmp(a->tokens, b->tokens, sizeof a->tokens) == 0 &&
           memcmp(a->logprobs, b->logprobs, sizeof a->logprobs) == 0 && memcmp(a->plp, b->plp, sizeof a->plp) == 0 &&
           memcmp(a->plp_top, b->plp_top, sizeof a->plp_top) == 0;
}

static void test_thread_counts(const char *path) {
    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.max_model_len = 256;
    mo.n_threads = 1;
    cinfer_error err = {0};
    cinfer_model *a = cinfer_model_load(path, &mo, &err);
    CHECK_MSG(a != NULL, "%s", err.message);
    if (!a) return;
    static collected before, after, other;
    model_output(a, &before);
    mo.n_threads = 3; /* more threads than the first model's scratch was sized for */
    cinfer_model *b = cinfer_model_load(path, &mo, &err);
    CHECK_MSG(b != NULL, "%s", err.message);
    if (b) {
        model_output(a, &after);
        CHECK_MSG(same_output(&before, &after), "the first model's output changed after loading one with more threads");
        model_output(b, &other);
        CHECK_MSG(same_output(&before, &other), "3 threads differ from 1 thread");
        cinfer_model_free(b);
    }
    model_output(a, &after);
    CHECK(same_output(&before, &after));
    cinfer_model_free(a);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_scheduler MODEL_DIR\n");
        return 2;
    }
    test_kv_prefix_bookkeeping();
    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.max_model_len = 512;
    mo.n_threads = 2;
    cinfer_error err = {0};
    cinfer_model *m = cinfer_model_load(argv[1], &mo, &err);
    CHECK_MSG(m != NULL, "%s", err.message);
    if (m) {
        test_scheduler(m);
        test_forced_prefix(m);
        test_prompt_logprobs(m);
        test_fault_injection(m);
        test_generate_error(m);
        cinfer_model_free(m);
    }
    test_thread_counts(argv[1]);
    TEST_MAIN_END();
}
