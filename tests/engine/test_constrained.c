/*
 * test_constrained.c — structured output and the token-level sampling
 * controls wired through the sampler and the scheduler (issue 12):
 *  (a) exactness: a constraint whose mask allows every token (a vocabulary
 *      of ASCII-named tokens, regex [a-z0-9]*) gives the same tokens as no
 *      constraint, same seed: greedy, temperature 1 with top-k / top-p /
 *      min-p;
 *  (b) the sampler's distribution with logit_bias and a mask equals a
 *      double-precision reference that renormalises over the allowed set
 *      (max abs diff <= 2e-6), and seeded draws follow it (chi-square);
 *  (c) JSON-schema, regex and choice constrained generation on the tiny
 *      random model at temperature 1: outputs finished by the constraint
 *      are written for validate_constrained.mjs (ajv + ajv-formats, JS
 *      RegExp, membership); outputs cut by max tokens must be accepted
 *      prefixes (accept_bytes on a fresh matcher) and never count as passes;
 *  (d) thinking first: with <think> open in the prompt (thinking budget) or
 *      opened by the model at the first position, the thinking is
 *      unconstrained and the answer after the close sequence validates;
 *  (e) logit_bias -100 bans a token in 200 draws, +100 forces it;
 *      min_tokens; stop ids; allowed_token_ids; bad_words — against the
 *      unrestricted run of the same request where one exists;
 *  (f) eight constrained requests decoding in one batch validate and give
 *      the tokens each gives alone (seeded: batch invariance) and under
 *      preemption (a KV pool too small for all: recompute never feeds a
 *      matcher twice).
 * usage: test_constrained MODEL_DIR OUT.jsonl
 */
#include "engine/engine_internal.h"
#include "engine/output.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAXTOK = 256 };

typedef struct collected {
    int32_t tokens[MAXTOK];
    int n;
    bool done;
    ci_finish_reason finish;
} collected;

static bool collect(void *user, const ci_token_event *ev) {
    collected *c = user;
    if (ev->token >= 0 && c->n < MAXTOK) c->tokens[c->n++] = ev->token;
    if (ev->finish != CI_FINISH_NONE) c->done = true, c->finish = ev->finish;
    return false;
}

static void run_all(ci_scheduler *s, collected *cs, int n) {
    for (int guard = 0; guard < 100000; guard++) {
        bool all = true;
        for (int i = 0; i < n; i++) all = all && cs[i].done;
        if (all) return;
        ci_sched_step(s, NULL);
    }
}

static ci_request_params sampled(int max_new, float temperature, uint64_t seed) {
    ci_request_params p = {.sampling = ci_sampling_defaults(), .max_new_tokens = max_new, .thinking_budget = -1,
                           .think_start_id = -1, .think_end_id = -1};
    p.sampling.temperature = temperature;
    p.sampling.has_seed = true;
    p.sampling.seed = seed;
    return p;
}

static collected run_one(cinfer_model *m, const int32_t *prompt, int n, const ci_request_params *p) {
    collected c = {0};
    cinfer_error err = {0};
    int64_t id = ci_sched_submit(m->sched, prompt, n, p, collect, &c, &err);
    CHECK_MSG(id > 0, "%s", err.message);
    if (id > 0) run_all(m->sched, &c, 1);
    return c;
}

static bool same_tokens(const collected *a, const collected *b) {
    return a->n == b->n && memcmp(a->tokens, b->tokens, (size_t)a->n * sizeof *a->tokens) == 0;
}

static int32_t prompt_a[12] = {785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13, 576, 220};

/* ----------------------------------------------------------- (a) exactness */

static void test_exactness(cinfer_model *m) {
    int V = m->ck.model.hp.vocab;
    /* every id gets an ASCII name, so [a-z0-9]* allows every token */
    ci_cons_token *toks = calloc((size_t)V, sizeof *toks);
    char *names = calloc((size_t)V, 12);
    for (int i = 0; i < V; i++) {
        int len = snprintf(names + (size_t)i * 12, 12, "t%d", i);
        toks[i] = (ci_cons_token){.bytes = (const uint8_t *)names + (size_t)i * 12, .len = (uint32_t)len};
    }
    ci_cons_vocab_desc d = {.tokens = toks, .n_tokens = (size_t)V, .eos_ids = m->stop_ids, .n_eos = (size_t)m->n_stop_ids};
    cinfer_error err = {0};
    ci_cons_vocab *v = ci_cons_vocab_new(&d, &err);
    CHECK_MSG(v != NULL, "%s", err.message);
    ci_cons_grammar *g = v ? ci_cons_compile(CI_CONS_REGEX, "[a-z0-9]*", 9, NULL, v, &err) : NULL;
    CHECK_MSG(g != NULL, "%s", err.message);
    struct { float t; int k; float p, min_p; } modes[] = {{0, 0, 1, 0}, {1.0f, 0, 1, 0}, {1.0f, 40, 0.9f, 0}, {1.0f, 0, 0.8f, 0},
                                                          {0.7f, 0, 1, 0.05f}};
    for (size_t i = 0; g && i < sizeof modes / sizeof *modes; i++)
        for (uint64_t seed = 1; seed <= 3; seed++) {
            ci_request_params p = sampled(32, modes[i].t, seed);
            p.sampling.top_k = modes[i].k;
            p.sampling.top_p = modes[i].p;
            p.sampling.min_p = modes[i].min_p;
            p.stop_ids = m->stop_ids;
            p.n_stop_ids = m->n_stop_ids;
            collected free_run = run_one(m, prompt_a, 12, &p);
            p.constraint = g;
            collected cons_run = run_one(m, prompt_a, 12, &p);
            CHECK_MSG(same_tokens(&free_run, &cons_run) && free_run.finish == cons_run.finish,
                      "mode %zu seed %llu: an all-allowing constraint changed the tokens", i, (unsigned long long)seed);
        }
    ci_cons_grammar_unref(g);
    ci_cons_vocab_free(v);
    free(toks);
    free(names);
}

/* ------------------------------------------- (b) masked distribution, exact */

enum { SV = 64 };

/* Independent double-precision reference: bias, mask, temperature, softmax
 * over the allowed set, top_k (ties kept), top_p, min_p, renormalised. */
static void reference_probs(const float *logits, const ci_sampling_params *p, const ci_logit_controls *c, double *out) {
    double l[SV];
    bool keep[SV];
    for (int i = 0; i < SV; i++) l[i] = logits[i];
    for (int i = 0; i < c->n_bias; i++) l[c->bias[i].id] += c->bias[i].bias;
    for (int i = 0; i < SV; i++) keep[i] = (c->mask[i / 32] >> (i % 32)) & 1;
    for (int i = 0; i < SV; i++) l[i] /= p->temperature;
    if (p->top_k > 0) {
        for (int i = 0; i < SV; i++) {
            if (!keep[i]) continue;
            int above = 0;
            for (int j = 0; j < SV; j++) above += keep[j] && l[j] > l[i];
            if (above >= p->top_k) keep[i] = false;
        }
    }
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < SV; i++) if (keep[i] && l[i] > mx) mx = l[i];
    for (int i = 0; i < SV; i++) out[i] = keep[i] ? exp(l[i] - mx) : 0, z += out[i];
    for (int i = 0; i < SV; i++) out[i] /= z;
    if (p->top_p < 1) { /* keep the most likely while the mass before them is < top_p */
        bool kept[SV] = {0};
        double before = 0;
        for (int n = 0; n < SV; n++) {
            int best = -1;
            for (int i = 0; i < SV; i++) if (out[i] > 0 && !kept[i] && (best < 0 || out[i] > out[best])) best = i;
            if (best < 0 || (n > 0 && before >= p->top_p)) break;
            kept[best] = true;
            before += out[best];
        }
        for (int i = 0; i < SV; i++) if (!kept[i]) out[i] = 0;
    }
    if (p->min_p > 0) {
        double top = 0;
        for (int i = 0; i < SV; i++) top = fmax(top, out[i]);
        for (int i = 0; i < SV; i++) if (out[i] < p->min_p * top) out[i] = 0;
    }
    z = 0;
    for (int i = 0; i < SV; i++) z += out[i];
    for (int i = 0; i < SV; i++) out[i] /= z;
}

static void test_masked_distribution(void) {
    ci_sampler_scratch sc;
    ci_sampler_scratch_init(&sc, SV);
    float logits[SV];
    uint32_t x = 12345;
    for (int i = 0; i < SV; i++) x = x * 1103515245u + 12345u, logits[i] = (float)((x >> 8) % 4000) / 1000.0f - 2.0f;
    uint32_t mask[2] = {0, 0};
    int allowed[] = {1, 4, 9, 16, 25, 33, 36, 49, 57, 63};
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) mask[allowed[i] / 32] |= 1u << (allowed[i] % 32);
    ci_logit_bias bias[] = {{4, 1.5f}, {9, -0.75f}, {2, 50.0f} /* masked: the bias cannot bring it back */};
    ci_logit_controls ctl = {.bias = bias, .n_bias = 3, .mask = mask};
    struct { float t; int k; float p, min_p; } modes[] = {{1, 0, 1, 0}, {0.7f, 0, 1, 0}, {1, 4, 1, 0}, {1, 0, 0.7f, 0},
                                                          {1.3f, 6, 0.9f, 0.1f}, {1, 0, 1, 0.3f}};
    for (size_t mi = 0; mi < sizeof modes / sizeof *modes; mi++) {
        ci_sampling_params p = ci_sampling_defaults();
        p.temperature = modes[mi].t, p.top_k = modes[mi].k, p.top_p = modes[mi].p, p.min_p = modes[mi].min_p;
        double want[SV];
        reference_probs(logits, &p, &ctl, want);
        const int32_t *ids;
        const float *probs;
        int n = ci_sample_dist(&sc, &p, &ctl, logits, NULL, 0, NULL, 0, &ids, &probs);
        double got[SV] = {0}, maxdiff = 0;
        for (int i = 0; i < n; i++) got[ids[i]] += probs[i];
        for (int i = 0; i < SV; i++) maxdiff = fmax(maxdiff, fabs(got[i] - want[i]));
        CHECK_MSG(maxdiff <= 2e-6, "mode %zu: max |p - reference| = %g", mi, maxdiff);
        /* seeded draws follow that distribution; never a masked token */
        enum { N = 100000 };
        int counts[SV] = {0};
        ci_rng rng;
        ci_rng_seed(&rng, 77 + mi);
        for (int i = 0; i < N; i++) {
            int32_t t = ci_sample(&sc, &p, &ctl, &rng, logits, NULL, 0, NULL, 0);
            counts[t >= 0 && t < SV ? t : 0]++;
        }
        double chi2 = 0;
        int dof = -1, outside = 0;
        for (int i = 0; i < SV; i++) {
            if (want[i] == 0) { outside += counts[i]; continue; }
            double e = want[i] * N;
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
            dof++;
        }
        CHECK_MSG(outside == 0, "mode %zu: %d draws outside the allowed set", mi, outside);
        double limit = dof + 6.0 * sqrt(2.0 * (dof > 0 ? dof : 1)) + 10.0; /* far beyond the 99.99% quantile */
        CHECK_MSG(chi2 < limit, "mode %zu: chi2 %.1f over %d dof", mi, chi2, dof);
    }
    /* a mask that allows nothing: no token */
    uint32_t none[2] = {0, 0};
    ci_logit_controls nothing = {.mask = none};
    ci_sampling_params p = ci_sampling_defaults();
    ci_rng rng;
    ci_rng_seed(&rng, 1);
    CHECK(ci_sample(&sc, &p, &nothing, &rng, logits, NULL, 0, NULL, 0) == -1);
    p.temperature = 1;
    CHECK(ci_sample(&sc, &p, &nothing, &rng, logits, NULL, 0, NULL, 0) == -1);
    ci_sampler_scratch_free(&sc);
}

/* ------------------------------------------------- (c, d, f) validated runs */

static FILE *g_out;
static int g_written, g_cut;

/* Text of ids (end ids left out). */
static char *text_of(cinfer_model *m, const int32_t *ids, int n, size_t *len) {
    int k = n;
    while (k > 0) {
        bool stop = false;
        for (int i = 0; i < m->n_stop_ids; i++) stop |= ids[k - 1] == m->stop_ids[i];
        if (!stop) break;
        k--;
    }
    return cinfer_detokenize(m->tok, ids, (size_t)k, false, len, NULL);
}

/* A finished answer goes to the validator; a cut one must be an accepted
 * prefix of the language. */
static void record(cinfer_model *m, ci_cons_grammar *g, const char *kind, const char *src, const char *label,
                   const int32_t *ids, int n, ci_finish_reason finish) {
    size_t len = 0;
    char *text = text_of(m, ids, n, &len);
    CHECK_MSG(finish == CI_FINISH_STOP || finish == CI_FINISH_LENGTH, "%s: finish %d", label, (int)finish);
    if (finish == CI_FINISH_LENGTH) {
        ci_cons_matcher *fresh = ci_cons_matcher_new(g);
        CHECK_MSG(ci_cons_accept_bytes(fresh, text, len), "%s: a cut output is not a prefix: %s", label, text);
        ci_cons_matcher_free(fresh);
        g_cut++;
    } else {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s%}", "kind", kind, "source", src, "label", label, "output", text, len);
        char *line = json_dumps(o, JSON_COMPACT);
        fprintf(g_out, "%s\n", line);
        free(line);
        json_decref(o);
        g_written++;
    }
    free(text);
}

static const char *const schemas[] = {
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":999},\"b\":{\"type\":\"boolean\"}},"
    "\"required\":[\"a\",\"b\"],\"additionalProperties\":false}",
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":5},\"minItems\":1,\"maxItems\":3}",
    "{\"type\":\"object\",\"properties\":{\"name\":{\"enum\":[\"ann\",\"bob\",\"cy\"]},\"tags\":{\"type\":\"array\","
    "\"items\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":5},\"maxItems\":4},\"ok\":{\"type\":\"null\"}},\"required\":[\"name\",\"tags\"]}",
    "{\"anyOf\":[{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},{\"type\":\"string\",\"format\":\"date\"}]}",
    "{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},"
    "\"c\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"},\"maxItems\":2}},\"required\":[\"v\"]}},\"$ref\":\"#/$defs/n\"}",
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"format\":\"uuid\"},\"score\":{\"type\":\"number\","
    "\"minimum\":0,\"maximum\":1}},\"required\":[\"id\",\"score\"]}",
};
enum { N_SCHEMAS = sizeof schemas / sizeof *schemas };

static ci_cons_grammar *grammar(cinfer_model *m, ci_cons_kind kind, const char *src) {
    cinfer_error err = {0};
    ci_cons_grammar *g = ci_model_constraint(m, kind, src, strlen(src), &err);
    CHECK_MSG(g != NULL, "%s: %s", src, err.message);
    return g;
}

/* (c) through the C API: cinfer_generate with a constraint, temperature 1. */
static void test_api_generation(cinfer_model *m) {
    struct { cinfer_constraint_kind kind; const char *kname, *src; } extra[] = {
        {CINFER_CONSTRAINT_REGEX, "regex", "[a-z]{2,6}-[0-9]{2,4}( [A-Z][a-z]{1,5}){0,3}"},
        {CINFER_CONSTRAINT_CHOICE, "choice", "[\"yes\",\"no\",\"maybe not\"]"},
        {CINFER_CONSTRAINT_JSON_OBJECT, "json_object", ""},
    };
    int n_cases = N_SCHEMAS + 3;
    for (int c = 0; c < n_cases; c++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            cinfer_gen_options o;
            cinfer_gen_options_init(&o);
            o.raw = true;
            o.enable_thinking = 0;
            o.temperature = 1.0f;
            o.has_seed = true;
            o.seed = seed;
            o.max_new_tokens = 160;
            bool schema = c < N_SCHEMAS;
            o.constraint = schema ? CINFER_CONSTRAINT_JSON_SCHEMA : extra[c - N_SCHEMAS].kind;
            o.constraint_source = schema ? schemas[c] : extra[c - N_SCHEMAS].src;
            cinfer_result r;
            cinfer_error err = {0};
            int rc = cinfer_generate(m, "Answer in JSON:", &o, &r, &err);
            CHECK_MSG(rc == CINFER_OK, "%s", err.message);
            if (rc != CINFER_OK) continue;
            const char *kname = schema ? "json" : extra[c - N_SCHEMAS].kname;
            ci_cons_grammar *g = grammar(m, (ci_cons_kind)o.constraint, o.constraint_source);
            char label[64];
            snprintf(label, sizeof label, "api case %d seed %llu", c, (unsigned long long)seed);
            ci_finish_reason fin = !strcmp(r.finish_reason, "length") ? CI_FINISH_LENGTH : CI_FINISH_STOP;
            if (g) record(m, g, kname, o.constraint_source, label, r.tokens, r.n_tokens, fin);
            /* the content is the text of the tokens */
            size_t len = 0;
            char *t = text_of(m, r.tokens, r.n_tokens, &len);
            CHECK_MSG(strcmp(t, r.content) == 0, "%s: content '%s' vs tokens '%s'", label, r.content, t);
            free(t);
            ci_cons_grammar_unref(g);
            cinfer_result_free(&r);
        }
    /* bad input is an error naming the problem, never a run */
    cinfer_gen_options o;
    cinfer_gen_options_init(&o);
    o.raw = true;
    o.constraint = CINFER_CONSTRAINT_JSON_SCHEMA;
    o.constraint_source = "{\"type\":\"object\",\"patternProperties\":{}}";
    cinfer_result r;
    cinfer_error err = {0};
    CHECK(cinfer_generate(m, "x", &o, &r, &err) != CINFER_OK && strstr(err.message, "patternProperties"));
}

/* (d) thinking first. */
static void test_thinking_first(cinfer_model *m) {
    ci_cons_grammar *g = grammar(m, CI_CONS_JSON_SCHEMA, schemas[0]);
    if (!g || m->think_end < 0 || m->n_think_close != 3) {
        CHECK_MSG(false, "the test model needs the Qwen3 thinking ids");
        ci_cons_grammar_unref(g);
        return;
    }
    int32_t *prompt = NULL;
    const char *text = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n";
    long np = cinfer_tokenize(m->tok, text, strlen(text), 0, &prompt, NULL);
    CHECK(np > 0 && ci_prompt_opens_thinking(m->tok, prompt, (int)np));
    int free_first = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        ci_request_params p = sampled(120, 1.0f, seed);
        p.stop_ids = m->stop_ids, p.n_stop_ids = m->n_stop_ids;
        p.constraint = g;
        p.thinking_open = true, p.thinking_budget = 5;
        p.think_start_id = m->think_start, p.think_end_id = m->think_end;
        p.forced_close = m->think_close, p.n_forced_close = m->n_think_close;
        collected c = run_one(m, prompt, (int)np, &p);
        CHECK_MSG(c.n >= 8 && memcmp(c.tokens + 5, m->think_close, 3 * sizeof(int32_t)) == 0,
                  "seed %llu: the thinking did not close after the budget", (unsigned long long)seed);
        if (c.n < 8) continue;
        /* the thinking was free: its first token is usually no JSON start */
        ci_cons_matcher *fresh = ci_cons_matcher_new(g);
        free_first += !ci_cons_accept_token(fresh, c.tokens[0]);
        ci_cons_matcher_free(fresh);
        char label[64];
        snprintf(label, sizeof label, "thinking budget seed %llu", (unsigned long long)seed);
        record(m, g, "json", schemas[0], label, c.tokens + 8, c.n - 8, c.finish);
    }
    CHECK_MSG(free_first > 0, "the thinking looked constrained in every run");
    /* the model opens <think> at the first position (a +100 bias makes it) */
    for (uint64_t seed = 1; seed <= 3; seed++) {
        ci_request_params p = sampled(120, 1.0f, seed);
        p.stop_ids = m->stop_ids, p.n_stop_ids = m->n_stop_ids;
        p.constraint = g;
        p.thinking_budget = 4;
        p.think_start_id = m->think_start, p.think_end_id = m->think_end;
        p.forced_close = m->think_close, p.n_forced_close = m->n_think_close;
        ci_logit_bias b = {m->think_start, 100.0f};
        p.logit_bias = &b, p.n_logit_bias = 1;
        collected c = run_one(m, prompt_a, 12, &p);
        CHECK_MSG(c.n >= 8 && c.tokens[0] == m->think_start && memcmp(c.tokens + 5, m->think_close, 12) == 0,
                  "seed %llu: <think> at the first position did not defer the constraint", (unsigned long long)seed);
        char label[64];
        snprintf(label, sizeof label, "model opens think seed %llu", (unsigned long long)seed);
        if (c.n >= 8) record(m, g, "json", schemas[0], label, c.tokens + 8, c.n - 8, c.finish);
    }
    free(prompt);
    ci_cons_grammar_unref(g);
}

/* (f) several constrained requests in one batch; each also alone. */
static void test_batch(cinfer_model *m) {
    enum { NB = 8 };
    ci_cons_grammar *gs[NB];
    ci_request_params ps[NB];
    collected together[NB], alone[NB];
    memset(together, 0, sizeof together);
    for (int i = 0; i < NB; i++) {
        gs[i] = grammar(m, CI_CONS_JSON_SCHEMA, schemas[i % N_SCHEMAS]);
        ps[i] = sampled(150, 1.0f, 100 + (uint64_t)i);
        ps[i].sampling.top_p = 0.95f;
        ps[i].stop_ids = m->stop_ids, ps[i].n_stop_ids = m->n_stop_ids;
        ps[i].constraint = gs[i];
    }
    for (int i = 0; i < NB; i++) CHECK(gs[i] && ci_sched_submit(m->sched, prompt_a, 12, &ps[i], collect, &together[i], NULL) > 0);
    run_all(m->sched, together, NB);
    /* under preemption (a pool for one full sequence): recomputed sequences
     * neither resample nor feed their matchers twice, so the tokens stay */
    ci_sched_options small = {.max_num_seqs = NB, .max_batch_tokens = 64, .max_model_len = 176, .block_size = 16,
                              .n_kv_blocks = 11, .kv_dtype = CI_KV_F16, .disable_prefix_caching = true, .n_threads = 2};
    ci_scheduler *tight = ci_sched_new(&m->ck.model, &small, NULL);
    CHECK(tight != NULL);
    collected crowded[NB];
    memset(crowded, 0, sizeof crowded);
    for (int i = 0; tight && i < NB; i++) CHECK(gs[i] && ci_sched_submit(tight, prompt_a, 12, &ps[i], collect, &crowded[i], NULL) > 0);
    if (tight) run_all(tight, crowded, NB);
    ci_sched_stats st = {0};
    if (tight) ci_sched_get_stats(tight, &st);
    CHECK_MSG(st.preemptions > 0, "no preemption (%llu)", (unsigned long long)st.preemptions);
    ci_sched_free(tight);
    for (int i = 0; i < NB; i++) {
        CHECK_MSG(same_tokens(&crowded[i], &together[i]) && crowded[i].finish == together[i].finish,
                  "request %d: tokens differ under preemption", i);
        alone[i] = run_one(m, prompt_a, 12, &ps[i]);
        CHECK_MSG(same_tokens(&alone[i], &together[i]), "request %d: batched tokens differ from alone", i);
        char label[64];
        snprintf(label, sizeof label, "batch request %d", i);
        if (gs[i]) record(m, gs[i], "json", schemas[i % N_SCHEMAS], label, together[i].tokens, together[i].n, together[i].finish);
        ci_cons_grammar_unref(gs[i]);
    }
}

/* ------------------------------------------------------------ (e) controls */

static bool contains(const collected *c, int32_t t) {
    for (int i = 0; i < c->n; i++)
        if (c->tokens[i] == t) return true;
    return false;
}

static void test_controls(cinfer_model *m) {
    ci_request_params base = sampled(200, 1.0f, 5);
    collected ref = run_one(m, prompt_a, 12, &base);
    CHECK(ref.n == 200);
    /* -100 bans the reference's first token (and a frequent one) */
    ci_logit_bias ban[2] = {{ref.tokens[0], -100.0f}, {ref.tokens[1], -100.0f}};
    ci_request_params p = base;
    p.logit_bias = ban, p.n_logit_bias = 2;
    collected c = run_one(m, prompt_a, 12, &p);
    CHECK(c.n == 200 && !contains(&c, ban[0].id) && !contains(&c, ban[1].id));
    /* +100 forces */
    ci_logit_bias force = {1234, 100.0f};
    p = base, p.max_new_tokens = 20, p.logit_bias = &force, p.n_logit_bias = 1;
    c = run_one(m, prompt_a, 12, &p);
    bool all = c.n == 20;
    for (int i = 0; i < c.n; i++) all &= c.tokens[i] == 1234;
    CHECK(all);
    /* min_tokens: an end id forced by +100 waits for min_tokens tokens */
    int32_t eos = m->stop_ids[0];
    ci_logit_bias end = {eos, 100.0f};
    p = base, p.stop_ids = m->stop_ids, p.n_stop_ids = m->n_stop_ids, p.logit_bias = &end, p.n_logit_bias = 1;
    p.min_tokens = 7;
    c = run_one(m, prompt_a, 12, &p);
    CHECK_MSG(c.n == 8 && c.tokens[7] == eos && c.finish == CI_FINISH_STOP, "min_tokens: n %d", c.n);
    for (int i = 0; i < 7 && i < c.n; i++) CHECK(c.tokens[i] != eos);
    /* stop ids: a token of the reference that did not occur before ends it
     * there (same seed: the same draws up to that point) */
    int k = 5;
    for (bool earlier = true; earlier && k < ref.n; k += earlier) {
        earlier = false;
        for (int i = 0; i < k; i++) earlier |= ref.tokens[i] == ref.tokens[k];
    }
    CHECK(k < ref.n);
    if (k < ref.n) {
        p = base, p.stop_ids = &ref.tokens[k], p.n_stop_ids = 1;
        c = run_one(m, prompt_a, 12, &p);
        CHECK(c.n == k + 1 && c.finish == CI_FINISH_STOP && memcmp(c.tokens, ref.tokens, (size_t)(k + 1) * 4) == 0);
    }
    /* allowed_token_ids */
    int32_t allowed[3] = {10, 20, 30000};
    p = base, p.max_new_tokens = 60, p.allowed_ids = allowed, p.n_allowed_ids = 3;
    c = run_one(m, prompt_a, 12, &p);
    bool inside = c.n == 60;
    for (int i = 0; i < c.n; i++) inside &= c.tokens[i] == 10 || c.tokens[i] == 20 || c.tokens[i] == 30000;
    CHECK(inside);
    /* bad words: banning (ref[k-1] ref[k]), whose first token first occurs
     * at k-1, leaves positions < k as they were and changes position k;
     * banning (ref[0]) changes position 0 */
    int32_t bad[3] = {0, 0, ref.tokens[0]}, lens[2] = {2, 1};
    if (k < ref.n) {
        bad[0] = ref.tokens[k - 1], bad[1] = ref.tokens[k];
        bool first = true;
        for (int i = 0; i < k - 1; i++) first &= ref.tokens[i] != bad[0];
        p = base, p.bad_words = bad, p.bad_word_lens = lens, p.n_bad_words = 1;
        c = run_one(m, prompt_a, 12, &p);
        if (first) CHECK(c.n > k && memcmp(c.tokens, ref.tokens, (size_t)k * 4) == 0 && c.tokens[k] != ref.tokens[k]);
        bool pair_seen = false;
        for (int i = 1; i < c.n; i++) pair_seen |= c.tokens[i - 1] == bad[0] && c.tokens[i] == bad[1];
        CHECK(!pair_seen);
    }
    p = base, p.bad_words = bad + 2, p.bad_word_lens = lens + 1, p.n_bad_words = 1;
    c = run_one(m, prompt_a, 12, &p);
    CHECK(c.n > 0 && !contains(&c, ref.tokens[0]));
    /* invalid controls are refused at submit */
    ci_logit_bias wild = {1, 101.0f}, outside = {-3, 1.0f};
    cinfer_error err = {0};
    p = base, p.logit_bias = &wild, p.n_logit_bias = 1;
    CHECK(ci_sched_submit(m->sched, prompt_a, 12, &p, collect, &c, &err) < 0 && strstr(err.message, "logit_bias"));
    p.logit_bias = &outside;
    CHECK(ci_sched_submit(m->sched, prompt_a, 12, &p, collect, &c, &err) < 0);
    int32_t zero_len = 0;
    p = base, p.bad_words = bad, p.bad_word_lens = &zero_len, p.n_bad_words = 1;
    CHECK(ci_sched_submit(m->sched, prompt_a, 12, &p, collect, &c, &err) < 0 && strstr(err.message, "bad_words"));
    p = base, p.min_tokens = -1;
    CHECK(ci_sched_submit(m->sched, prompt_a, 12, &p, collect, &c, &err) < 0);
    /* allowed ids that are all banned (min_tokens vs the only allowed end id): the request errs, never hangs */
    p = base, p.stop_ids = &allowed[0], p.n_stop_ids = 1, p.allowed_ids = allowed, p.n_allowed_ids = 1, p.min_tokens = 3;
    c = run_one(m, prompt_a, 12, &p);
    CHECK(c.done && c.finish == CI_FINISH_ERROR && c.n == 0);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_constrained MODEL_DIR OUT.jsonl\n");
        return 2;
    }
    test_masked_distribution();
    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.max_model_len = 512;
    mo.n_threads = 2;
    cinfer_error err = {0};
    cinfer_model *m = cinfer_model_load(argv[1], &mo, &err);
    CHECK_MSG(m != NULL, "%s", err.message);
    g_out = fopen(argv[2], "w");
    CHECK(g_out != NULL);
    if (m && g_out) {
        test_exactness(m);
        test_controls(m);
        test_api_generation(m);
        test_thinking_first(m);
        test_batch(m);
        printf("constrained outputs: %d finished (written for validation), %d cut by max tokens (accepted prefixes)\n",
               g_written, g_cut);
    }
    if (g_out) fclose(g_out);
    cinfer_model_free(m);
    TEST_MAIN_END();
}
