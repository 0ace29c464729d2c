/*
 * bench_constrain.c — constraint engine speed on a real vocabulary.
 *
 *   bench_constrain QWEN3_TOKENIZER_DIR [walks]
 *
 * For a JSON schema (24 properties), a regex and a GBNF grammar: seeded
 * random walks (uniform over the allowed tokens, as in the property test);
 * every ci_cons_fill_mask and ci_cons_accept_token call is timed. Reported:
 * median / p99 / max per token for the first walk on a fresh grammar
 * ("cold": every state's mask computed for the first time), for the later
 * walks ("warm": the memo shared by the grammar's matchers has the states
 * seen before, as for a server that sees a schema again or an n > 1
 * request; new states still appear) and over all walks; each as wall time
 * and as the thread's CPU time (on a shared machine the wall p99 is mostly
 * preemption). Also the compile time of a 50-property schema (median of 20).
 */
#include "constrain/cons_internal.h"
#include "constrain/constrain.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread: on a shared machine the wall-clock p99 is mostly
 * time the thread was not running (preemption), so both are reported. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 1;
static uint64_t next_rand(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, size_t n) {
    if (n == 0) return;
    qsort(t, n, sizeof *t, cmp_d);
    printf("  %-28s %7zu calls  median %8.2f us  p99 %8.2f us  max %9.2f us\n", what, n, t[n / 2] * 1e6,
           t[(size_t)((double)n * 0.99)] * 1e6, t[n - 1] * 1e6);
}

static void report_count(const char *what, double *t, size_t n) {
    if (n == 0) return;
    qsort(t, n, sizeof *t, cmp_d);
    printf("  %-28s %7zu masks  median %8.0f     p99 %8.0f     max %9.0f\n", what, n, t[n / 2],
           t[(size_t)((double)n * 0.99)], t[n - 1]);
}

static void bench(const ci_cons_vocab *v, const char *name, ci_cons_kind kind, const char *src, int walks, int budget) {
    cinfer_error err = {0};
    double t0 = ci_now_seconds();
    ci_cons_grammar *g = ci_cons_compile(kind, src, strlen(src), NULL, v, &err);
    double tc = ci_now_seconds() - t0;
    if (!g) {
        printf("%s: compile error: %s\n", name, err.message);
        return;
    }
    size_t nr, np;
    ci_cons_grammar_stats(g, &nr, &np);
    printf("%s: compile %.2f ms (%zu rules, %zu positions)\n", name, tc * 1e3, nr, np);
    size_t words = ci_cons_mask_words(v);
    uint32_t *mask = ci_malloc(words * sizeof *mask);
    int32_t *allowed = ci_malloc(v->n_tokens * sizeof *allowed);
    size_t cap = (size_t)walks * (size_t)budget * 4 + 16;
    double *tm = ci_malloc(cap * sizeof *tm), *ta = ci_malloc(cap * sizeof *ta), *cold = ci_malloc(cap * sizeof *cold);
    double *warm = ci_malloc(cap * sizeof *warm), *cpu_cold = ci_malloc(cap * sizeof *cpu_cold);
    double *cpu_warm = ci_malloc(cap * sizeof *cpu_warm), *visits = ci_malloc(cap * sizeof *visits);
    size_t nvis = 0;
    size_t nm = 0, na_ = 0, ncold = 0, nwarm = 0, tokens = 0;
    for (int w = 0; w < walks; w++) {
        rng = (uint64_t)w * 7919 + 1;
        ci_cons_matcher *m = ci_cons_matcher_new(g);
        for (int step = 0; step < budget * 4; step++) {
            uint64_t v0 = ci_cons_runtime_visits(g->rt);
            double a = ci_now_seconds(), ca = cpu_now();
            if (ci_cons_fill_mask(m, mask, &err) != 0) break;
            double cb = cpu_now(), b = ci_now_seconds();
            uint64_t dv = ci_cons_runtime_visits(g->rt) - v0;
            if (dv) visits[nvis++] = (double)dv;
            tm[nm++] = b - a;
            if (w == 0) cpu_cold[ncold] = cb - ca, cold[ncold++] = b - a;
            else cpu_warm[nwarm] = cb - ca, warm[nwarm++] = b - a;
            size_t n = 0;
            bool eos = false;
            for (size_t i = 0; i < words; i++)
                for (uint32_t bits = mask[i]; bits; bits &= bits - 1) {
                    int32_t id = (int32_t)(i * 32 + (uint32_t)__builtin_ctz(bits));
                    if (v->is_eos[id]) eos = true;
                    else allowed[n++] = id;
                }
            if (eos && (n == 0 || step >= budget)) break;
            int32_t pick = allowed[next_rand() % n];
            if (step >= budget) { /* steer to an end: prefer closing tokens */
                for (size_t k = 0; k < n; k++) {
                    uint8_t c = v->len[allowed[k]] == 1 ? v->bytes[v->off[allowed[k]]] : 0;
                    if (c == '"' || c == '}' || c == ']') {
                        pick = allowed[k];
                        break;
                    }
                }
            }
            a = ci_now_seconds();
            ci_cons_accept_token(m, pick);
            ta[na_++] = ci_now_seconds() - a;
            tokens++;
        }
        ci_cons_matcher_free(m);
    }
    report("fill_mask, first walk (cold)", cold, ncold);
    report("  thread CPU time", cpu_cold, ncold);
    report("fill_mask, later walks (warm)", warm, nwarm);
    report("  thread CPU time", cpu_warm, nwarm);
    report("fill_mask, all walks", tm, nm);
    report_count("steps per new mask", visits, nvis);
    report("accept_token, all walks", ta, na_);
    free(mask), free(allowed), free(tm), free(ta), free(cold), free(warm), free(cpu_cold), free(cpu_warm), free(visits);
    ci_cons_grammar_unref(g);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_constrain QWEN3_TOKENIZER_DIR [walks]\n");
        return 2;
    }
    int walks = argc > 2 ? atoi(argv[2]) : 20;
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(argv[1], &err);
    if (!tok) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    int32_t eos[2] = {cinfer_tokenizer_token_id(tok, "<|im_end|>"), cinfer_tokenizer_token_id(tok, "<|endoftext|>")};
    double t0 = ci_now_seconds();
    ci_cons_vocab *v = ci_cons_vocab_from_tokenizer(tok, eos, 2, &err);
    printf("vocabulary: %zu tokens, %zu trie nodes, built in %.1f ms\n", v->n_tokens, v->n_nodes, (ci_now_seconds() - t0) * 1e3);

    ci_buf s = {0};
    static const char *const types[] = {
        "{\"type\":\"string\",\"maxLength\":24}", "{\"type\":\"integer\",\"minimum\":0,\"maximum\":5000}",
        "{\"type\":\"number\"}", "{\"type\":\"boolean\"}", "{\"enum\":[\"low\",\"medium\",\"high\"]}",
        "{\"type\":\"string\",\"format\":\"date\"}", "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":8},\"maxItems\":4}",
        "{\"type\":[\"string\",\"null\"],\"maxLength\":12}"};
    ci_buf_puts(&s, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 24; i++) ci_buf_printf(&s, "%s\"field_%d\":%s", i ? "," : "", i, types[i % 8]);
    ci_buf_puts(&s, "},\"required\":[");
    for (int i = 0; i < 24; i += 2) ci_buf_printf(&s, "%s\"field_%d\"", i ? "," : "", i);
    ci_buf_puts(&s, "],\"additionalProperties\":false}");
    bench(v, "json schema (24 properties)", CI_CONS_JSON_SCHEMA, s.data, walks, 400);
    bench(v, "regex", CI_CONS_REGEX, "([A-Z][a-z]{1,12} ){2,20}[0-9]{3}-[0-9]{4}( \\(ext\\. [0-9]{1,5}\\))?\\.", walks, 120);
    bench(v, "gbnf (arithmetic + lists)", CI_CONS_GBNF,
          "root ::= stmt (\"\\n\" stmt){0,20}\nstmt ::= ident \" = \" expr\nexpr ::= term ((\" + \" | \" * \") term)*\n"
          "term ::= ident | [0-9]{1,6} | \"(\" expr \")\" | \"[\" expr (\", \" expr)* \"]\"\nident ::= [a-z_] [a-z0-9_]{0,15}\n",
          walks, 300);
    bench(v, "json_object", CI_CONS_JSON_OBJECT, "", walks, 200);

    /* compile time, 50 properties */
    ci_buf_free(&s);
    ci_buf_puts(&s, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 50; i++) ci_buf_printf(&s, "%s\"property_%d\":%s", i ? "," : "", i, types[i % 8]);
    ci_buf_puts(&s, "},\"required\":[\"property_0\",\"property_7\"],\"additionalProperties\":false}");
    double t[20];
    for (int k = 0; k < 20; k++) {
        double a = ci_now_seconds();
        ci_cons_grammar *g = ci_cons_compile(CI_CONS_JSON_SCHEMA, s.data, s.len, NULL, v, &err);
        t[k] = ci_now_seconds() - a;
        ci_cons_grammar_unref(g);
    }
    qsort(t, 20, sizeof *t, cmp_d);
    printf("compile, 50-property schema: median %.2f ms, max %.2f ms\n", t[10] * 1e3, t[19] * 1e3);
    ci_buf_free(&s);
    ci_cons_vocab_free(v);
    cinfer_tokenizer_free(tok);
    return 0;
}
