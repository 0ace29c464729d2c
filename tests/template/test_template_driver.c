/*
 * test_template_driver.c — renders (template, context) pairs with cinfer and
 * compares them with reference renders computed by Python Jinja2
 * (run_cases.py writes the cases file). One process loops over all pairs:
 * spawning the CLI per pair would dominate the test time.
 *
 * Byte-identical output is required where Python rendered, and an error
 * where Python raised. Every 5th pair goes through the public JSON-text API
 * (cinfer_template_render_json) instead of the internal jansson one.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cinfer.h"
#include "template/template.h"
#include "../unit/test.h"

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static unsigned char *b64decode(const char *s, size_t *out_len) {
    size_t n = strlen(s);
    unsigned char *out = malloc(n / 4 * 3 + 4);
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) continue;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)((acc >> bits) & 0xFF);
        }
    }
    *out_len = k;
    return out;
}

static void show_bytes(const char *label, const char *s, size_t len, size_t at) {
    size_t from = at > 60 ? at - 60 : 0, to = at + 60 < len ? at + 60 : len;
    fprintf(stderr, "    %s (len %zu) around byte %zu: \"", label, len, at);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fputs("\"\n", stderr);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASES.json\n", argv[0]);
        return 2;
    }
    json_error_t jerr;
    json_t *root = json_load_file(argv[1], JSON_ALLOW_NUL, &jerr);
    if (!root) {
        fprintf(stderr, "%s: %s (line %d)\n", argv[1], jerr.text, jerr.line);
        return 2;
    }
    json_t *templates = json_object_get(root, "templates"), *contexts = json_object_get(root, "contexts"),
           *cases = json_object_get(root, "cases");
    size_t nt = json_array_size(templates);
    cinfer_template **parsed = calloc(nt + 1, sizeof *parsed);
    char **parse_errors = calloc(nt + 1, sizeof *parse_errors);
    bool *tried = calloc(nt + 1, sizeof *tried);
    size_t compared = 0, both_ok = 0, both_err = 0, shown = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        size_t t = (size_t)json_integer_value(json_object_get(c, "t"));
        size_t ci = (size_t)json_integer_value(json_object_get(c, "c"));
        json_t *tj = json_array_get(templates, t);
        const char *name = json_string_value(json_object_get(tj, "name"));
        if (!tried[t]) {
            tried[t] = true;
            cinfer_error err = {0};
            json_t *src = json_object_get(tj, "source");
            parsed[t] = cinfer_template_parse(json_string_value(src), json_string_length(src), &err);
            if (!parsed[t]) parse_errors[t] = strdup(err.message);
        }
        json_t *ctx = json_array_get(contexts, ci);
        bool expect_ok = json_is_true(json_object_get(c, "ok"));
        cinfer_error err = {0};
        char *out = NULL;
        size_t out_len = 0;
        if (parsed[t]) {
            if (i % 5 == 4) {
                char *text = json_dumps(ctx, JSON_COMPACT);
                out = cinfer_template_render_json(parsed[t], text, strlen(text), &out_len, &err);
                free(text);
            } else {
                out = tpl_render_jansson(parsed[t], ctx, NULL, &out_len, &err);
            }
            if (!out) CHECK_MSG(err.code == CINFER_ERR_TEMPLATE || err.code == CINFER_ERR_LIMIT, "error code %d", err.code);
        }
        const char *why = parsed[t] ? err.message : parse_errors[t];
        compared++;
        if (expect_ok) {
            size_t want_len;
            unsigned char *want = b64decode(json_string_value(json_object_get(c, "out")), &want_len);
            bool same = out && out_len == want_len && memcmp(out, want, want_len) == 0;
            CHECK_MSG(same, "%s, context %zu: output differs from Jinja2", name, ci);
            if (same) both_ok++;
            else if (shown++ < 8) {
                if (!out) fprintf(stderr, "    cinfer failed: %s\n", why);
                else {
                    size_t at = 0;
                    while (at < out_len && at < want_len && out[at] == (char)want[at]) at++;
                    show_bytes("jinja2", (const char *)want, want_len, at);
                    show_bytes("cinfer", out, out_len, at);
                }
            }
            free(want);
        } else {
            CHECK_MSG(!out, "%s, context %zu: Jinja2 raised (%s) but cinfer rendered", name, ci,
                      json_string_value(json_object_get(c, "err")));
            if (!out) both_err++;
            else if (shown++ < 8) show_bytes("cinfer", out, out_len, 0);
        }
        cinfer_free(out);
    }
    for (size_t t = 0; t < nt; t++) {
        cinfer_template_free(parsed[t]);
        free(parse_errors[t]);
    }
    free(parsed);
    free(parse_errors);
    free(tried);
    json_decref(root);
    printf("pairs compared: %zu (%zu identical renders, %zu errors on both sides)\n", compared, both_ok, both_err);
    TEST_MAIN_END();
}
