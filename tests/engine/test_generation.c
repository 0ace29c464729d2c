/*
 * test_generation.c MODEL_DIR TEMPLATES_DIR — generation options through the
 * public API on a generated model, and the thinking/content split on every
 * reference chat template.
 *
 * Expected values never come from the code under test alone:
 *  - seeded runs are compared with each other, top_k=1 with temperature 0,
 *    a stop-string run with the prefix of the unstopped run's text;
 *  - the thinking split is checked against a plain string procedure written
 *    here (decode everything, cut at the first "</think>", drop a leading
 *    "<think>", strip newlines — the transformers recipe on text), and the
 *    streamed pieces must add up to the final strings.
 */
#include "test.h"
#include "cinfer.h"
#include "engine/output.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static cinfer_model *model;

static cinfer_result gen(const char *prompt, void (*tweak)(cinfer_gen_options *)) {
    cinfer_gen_options o;
    cinfer_gen_options_init(&o);
    o.max_new_tokens = 24;
    if (tweak) tweak(&o);
    cinfer_result r;
    cinfer_error err = {0};
    int rc = cinfer_generate(model, prompt, &o, &r, &err);
    CHECK_MSG(rc == 0, "generate: %s", err.message);
    if (rc) memset(&r, 0, sizeof r);
    return r;
}

static bool same_tokens(const cinfer_result *a, const cinfer_result *b) {
    return a->n_tokens == b->n_tokens && memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t)) == 0;
}

static void seed7(cinfer_gen_options *o) { o->temperature = 1.0f, o->top_k = 0, o->top_p = 1.0f, o->has_seed = true, o->seed = 7; }
static void seed8(cinfer_gen_options *o) { seed7(o), o->seed = 8; }
static void greedy(cinfer_gen_options *o) { o->temperature = 0; }
static void top_k_1(cinfer_gen_options *o) { o->temperature = 0.9f, o->top_k = 1, o->has_seed = true, o->seed = 99; }
static void five_tokens(cinfer_gen_options *o) { greedy(o), o->max_new_tokens = 5; }

static void test_options(void) {
    cinfer_result a = gen("Tell me a story.", seed7), b = gen("Tell me a story.", seed7), c = gen("Tell me a story.", seed8);
    CHECK_MSG(same_tokens(&a, &b), "same seed must give the same tokens");
    CHECK_MSG(!same_tokens(&a, &c), "different seeds gave identical output (possible but unlikely at T=1)");
    cinfer_result g = gen("Tell me a story.", greedy), k1 = gen("Tell me a story.", top_k_1);
    CHECK_MSG(same_tokens(&g, &k1), "top_k=1 must equal greedy");
    cinfer_result five = gen("Tell me a story.", five_tokens);
    CHECK(five.n_tokens == 5 && !strcmp(five.finish_reason, "length"));
    CHECK(five.n_tokens <= g.n_tokens && memcmp(five.tokens, g.tokens, 5 * sizeof(int32_t)) == 0);
    CHECK(g.prompt_tokens > 0 && g.completion_tokens == g.n_tokens);

    /* Stop string: take a piece from the middle of the greedy answer. */
    size_t len = strlen(g.content);
    if (len >= 12) {
        char stop[8];
        size_t at = len / 2;
        while (at < len && (g.content[at] & 0xC0) == 0x80) at++; /* start on a character */
        size_t n = 0;
        while (at + n < len && n < 4) n++;
        while (at + n < len && (g.content[at + n] & 0xC0) == 0x80) n++;
        if (n < sizeof stop) {
            memcpy(stop, g.content + at, n);
            stop[n] = '\0';
            const char *stops[] = {stop};
            cinfer_gen_options o;
            cinfer_gen_options_init(&o);
            o.max_new_tokens = 24;
            o.temperature = 0;
            o.stop = stops;
            o.n_stop = 1;
            cinfer_result s;
            cinfer_error err = {0};
            CHECK(cinfer_generate(model, "Tell me a story.", &o, &s, &err) == 0);
            /* Expected: the unstopped text up to the first occurrence, trailing newlines dropped. */
            size_t first = (size_t)(strstr(g.content, stop) - g.content);
            while (first > 0 && g.content[first - 1] == '\n') first--;
            CHECK_MSG(strlen(s.content) == first && !strncmp(s.content, g.content, first), "stop: got \"%s\"", s.content);
            CHECK(!strcmp(s.finish_reason, "stop"));
            cinfer_result_free(&s);
        }
    }
    cinfer_result_free(&a), cinfer_result_free(&b), cinfer_result_free(&c);
    cinfer_result_free(&g), cinfer_result_free(&k1), cinfer_result_free(&five);
}

/* ---- thinking split ---- */

static char *strip_newlines(const char *s, size_t n) {
    while (n && *s == '\n') s++, n--;
    while (n && s[n - 1] == '\n') n--;
    return strndup(s, n);
}

/* The recipe on text: everything after the prompt, cut at the first </think>. */
static void reference_split(const char *generated, bool prompt_open, char **thinking, char **content) {
    const char *end = strstr(generated, "</think>");
    const char *start = generated;
    bool thinks = prompt_open || !strncmp(generated, "<think>", 7);
    if (!thinks) {
        *thinking = strdup("");
        *content = strip_newlines(generated, strlen(generated));
        return;
    }
    if (!strncmp(start, "<think>", 7) && !prompt_open) start += 7;
    if (!end) {
        *thinking = strip_newlines(start, strlen(start));
        *content = strdup("");
        return;
    }
    *thinking = strip_newlines(start, (size_t)(end - start));
    *content = strip_newlines(end + 8, strlen(end + 8));
}

typedef struct collected {
    ci_buf thinking, content;
} collected;

static void check_split(const cinfer_tokenizer *tok, const char *tname, const int32_t *prompt, long n_prompt,
                        const char *generated) {
    int32_t *ids = NULL;
    long n = cinfer_tokenize(tok, generated, strlen(generated), 0, &ids, NULL);
    CHECK(n > 0);
    bool open = ci_prompt_opens_thinking(tok, prompt, (int)n_prompt);
    ci_output_options oo = {.parse_thinking = true, .thinking_open = open};
    ci_output *out = ci_output_new(tok, &oo);
    collected c = {0};
    for (long i = 0; i < n; i++) ci_output_push(out, ids[i], &c.thinking, &c.content);
    ci_output_finish(out, &c.thinking, &c.content);
    char *want_t, *want_c;
    reference_split(generated, open, &want_t, &want_c);
    size_t tl, cl;
    const char *t = ci_output_thinking(out, &tl), *ct = ci_output_content(out, &cl);
    CHECK_MSG(tl == strlen(want_t) && !memcmp(t, want_t, tl), "%s: thinking \"%.*s\" want \"%s\" (gen \"%s\")", tname, (int)tl, t,
              want_t, generated);
    CHECK_MSG(cl == strlen(want_c) && !memcmp(ct, want_c, cl), "%s: content \"%.*s\" want \"%s\" (gen \"%s\")", tname, (int)cl, ct,
              want_c, generated);
    CHECK(c.thinking.len == tl && (tl == 0 || !memcmp(c.thinking.data, t, tl)));
    CHECK(c.content.len == cl && (cl == 0 || !memcmp(c.content.data, ct, cl)));
    free(want_t), free(want_c), free(ids);
    ci_buf_free(&c.thinking), ci_buf_free(&c.content);
    ci_output_free(out);
}

static void test_thinking_split(const char *templates_dir) {
    const cinfer_tokenizer *tok = cinfer_model_tokenizer(model);
    DIR *d = opendir(templates_dir);
    CHECK_MSG(d != NULL, "cannot open %s", templates_dir);
    if (!d) return;
    int n_templates = 0, n_open = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 6, ".jinja")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", templates_dir, e->d_name);
        FILE *f = fopen(path, "rb");
        char *src = calloc(1, 1 << 20);
        size_t sl = fread(src, 1, (1 << 20) - 1, f);
        fclose(f);
        cinfer_error err = {0};
        cinfer_template *tpl = cinfer_template_parse(src, sl, &err);
        CHECK_MSG(tpl != NULL, "%s: %s", e->d_name, err.message);
        const char *thinking_flags[] = {"", ",\"enable_thinking\":true", ",\"enable_thinking\":false"};
        for (int k = 0; tpl && k < 3; k++) {
            char ctx[512];
            snprintf(ctx, sizeof ctx,
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"What is 2+2?\"}],\"add_generation_prompt\":true,"
                     "\"bos_token\":\"<|endoftext|>\",\"eos_token\":\"<|im_end|>\"%s}", thinking_flags[k]);
            size_t pl;
            char *prompt = cinfer_template_render_json(tpl, ctx, strlen(ctx), &pl, &err);
            if (!prompt) continue; /* some templates refuse contexts; the template tests cover that */
            int32_t *pids = NULL;
            long np = cinfer_tokenize(tok, prompt, pl, 0, &pids, NULL);
            n_open += ci_prompt_opens_thinking(tok, pids, (int)np);
            const char *outputs[] = {
                "Let me add.\n2+2=4.\n</think>\n\nThe answer is 4.",
                "<think>\nLet me add.\n</think>\n\nThe answer is 4.",
                "<think>\n\n</think>\n\nFour.",
                "The answer is 4.",
                "<think>\nStill thinking when the budget ran o",
                "Thinking without an opening tag, cut off",
                "答案是 4 🙂\n\n",
            };
            for (size_t o = 0; o < sizeof outputs / sizeof *outputs; o++) check_split(tok, e->d_name, pids, np, outputs[o]);
            free(pids);
            cinfer_free(prompt);
        }
        n_templates++;
        cinfer_template_free(tpl);
        free(src);
    }
    closedir(d);
    printf("thinking split: %d templates x 3 thinking settings x 7 outputs; %d prompts open <think>\n", n_templates, n_open);
    CHECK(n_templates >= 15);
    CHECK(n_open >= 2 * 3); /* Thinking-2507 and QwQ open it in every setting */
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_generation MODEL_DIR TEMPLATES_DIR\n");
        return 2;
    }
    cinfer_error err = {0};
    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.max_model_len = 512;
    model = cinfer_model_load(argv[1], &mo, &err);
    if (!model) {
        fprintf(stderr, "load: %s\n", err.message);
        return 1;
    }
    test_options();
    test_thinking_split(argv[2]);
    cinfer_model_free(model);
    TEST_MAIN_END();
}
