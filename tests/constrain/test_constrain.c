/*
 * test_constrain.c — tests of the constraint engine (src/constrain).
 *
 *   test_constrain unit QWEN3_DIR
 *       compilers on valid and invalid input (errors must name the problem),
 *       bad-input bounds (1 MB sources, 10,000-deep schemas, regex blow-ups),
 *       matcher API (accept, complete, clone, rollback), and exactness
 *       against independent computations over the real Qwen3 vocabulary:
 *       a byte-level "anything" grammar allows exactly every non-special
 *       token, and the regex (.|\n)* allows exactly the tokens that are valid
 *       UTF-8 (checked by a separate decoder here).
 *   test_constrain walk QWEN3_DIR CASES.jsonl OUT.jsonl
 *       seeded random walks (uniform over the allowed tokens, steering to an
 *       end after a length budget) for every case; each output is written
 *       for the independent checker (validate.mjs: ajv, JS RegExp, ...).
 */
#include "constrain/cons_internal.h"
#include "constrain/constrain.h"
#include "util/util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

static ci_cons_vocab *load_vocab(const char *dir, cinfer_tokenizer **tok_out) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(dir, &err);
    if (!tok) {
        fprintf(stderr, "cannot load tokenizer %s: %s\n", dir, err.message);
        exit(1);
    }
    int32_t eos[2] = {cinfer_tokenizer_token_id(tok, "<|im_end|>"), cinfer_tokenizer_token_id(tok, "<|endoftext|>")};
    ci_cons_vocab *v = ci_cons_vocab_from_tokenizer(tok, eos, 2, &err);
    if (!v) {
        fprintf(stderr, "vocab: %s\n", err.message);
        exit(1);
    }
    *tok_out = tok;
    return v;
}

/* ------------------------------------------------------------------ RNG */
static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool bit(const uint32_t *m, int32_t id) { return (m[id >> 5] >> (id & 31)) & 1; }

/* ------------------------------------------------------------ unit tests */

static void expect_error(const ci_cons_vocab *v, ci_cons_kind kind, const char *src, const char *needle) {
    cinfer_error err = {0};
    ci_cons_grammar *g = ci_cons_compile(kind, src, strlen(src), NULL, v, &err);
    CHECK(g == NULL, "expected an error for %.80s", src);
    CHECK(err.code != 0 && strstr(err.message, needle), "error for %.80s: got '%s', want '%s'", src, err.message, needle);
    if (g) ci_cons_grammar_unref(g);
}

static ci_cons_grammar *must_compile(const ci_cons_vocab *v, ci_cons_kind kind, const char *src) {
    cinfer_error err = {0};
    ci_cons_grammar *g = ci_cons_compile(kind, src, src ? strlen(src) : 0, NULL, v, &err);
    CHECK(g != NULL, "compile %.80s: %s", src ? src : "(null)", err.message);
    return g;
}

/* Whether the whole string is accepted and complete. */
static bool matches(ci_cons_grammar *g, const char *s) {
    ci_cons_matcher *m = ci_cons_matcher_new(g);
    bool ok = ci_cons_accept_bytes(m, s, strlen(s)) && ci_cons_is_complete(m);
    ci_cons_matcher_free(m);
    return ok;
}

static void test_compilers(const ci_cons_vocab *v) {
    /* regex */
    ci_cons_grammar *g = must_compile(v, CI_CONS_REGEX, "[a-c]{2,3}(x|yz)?\\d+");
    if (g) {
        CHECK(matches(g, "ab1"), "ab1");
        CHECK(matches(g, "abcyz42"), "abcyz42");
        CHECK(!matches(g, "a1"), "a1");
        CHECK(!matches(g, "abcdx1"), "abcdx1");
        ci_cons_grammar_unref(g);
    }
    g = must_compile(v, CI_CONS_REGEX, "^[^a-z]é.$");
    if (g) {
        CHECK(matches(g, "Xé\xe4\xb8\xad"), "unicode .");
        CHECK(!matches(g, "xé1"), "negated class");
        CHECK(!matches(g, "Xé\n"), ". excludes newline");
        ci_cons_grammar_unref(g);
    }
    expect_error(v, CI_CONS_REGEX, "(a", "missing )");
    expect_error(v, CI_CONS_REGEX, "a)", "unbalanced )");
    expect_error(v, CI_CONS_REGEX, "(a)\\1", "backreferences");
    expect_error(v, CI_CONS_REGEX, "(?=a)", "lookaround");
    expect_error(v, CI_CONS_REGEX, "(a*)*", "empty string");
    expect_error(v, CI_CONS_REGEX, "a{5000}", "over 4096");
    {
        ci_buf big = {0};
        for (int i = 0; i < 600; i++) ci_buf_printf(&big, "%sa{4000}", i ? "|" : "");
        expect_error(v, CI_CONS_REGEX, big.data, "too large");
        ci_buf_free(&big);
    }
    /* catastrophic-backtracking shapes are linear here: nested counters are
     * shared rules, and ambiguous paths collapse into one state */
    g = must_compile(v, CI_CONS_REGEX, "((a{4000}){4000}){4000}");
    if (g) ci_cons_grammar_unref(g);
    g = must_compile(v, CI_CONS_REGEX, "(x+x+)+y");
    if (g) {
        ci_buf xs = {0};
        for (int i = 0; i < 5000; i++) ci_buf_putc(&xs, 'x');
        CHECK(!matches(g, xs.data), "(x+x+)+y without y");
        ci_buf_putc(&xs, 'y');
        CHECK(matches(g, xs.data), "(x+x+)+y");
        ci_buf_free(&xs);
        ci_cons_grammar_unref(g);
    }
    expect_error(v, CI_CONS_REGEX, "a^b", "anchors");
    expect_error(v, CI_CONS_REGEX, "[z-a]", "out of order");
    expect_error(v, CI_CONS_REGEX, "\\bword", "word boundaries");
    /* GBNF */
    g = must_compile(v, CI_CONS_GBNF,
                     "# arithmetic\nroot ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\n"
                     "term ::= num | \"(\" expr \")\"\nnum ::= [0-9]{1,3}\n");
    if (g) {
        CHECK(matches(g, "1+(22-333)"), "expr");
        CHECK(!matches(g, "1+"), "incomplete expr");
        CHECK(!matches(g, "1234"), "{1,3}");
        ci_cons_grammar_unref(g);
    }
    g = must_compile(v, CI_CONS_GBNF, "root ::= \"a\" [^\\n\\x41]? x\nx ::= (\"\\u00e9\" |\n \"b\")+");
    if (g) {
        CHECK(matches(g, "azé"), "escapes");
        CHECK(!matches(g, "aAb"), "negated escape");
        ci_cons_grammar_unref(g);
    }
    expect_error(v, CI_CONS_GBNF, "root ::= foo", "undefined rule 'foo'");
    expect_error(v, CI_CONS_GBNF, "expr ::= \"a\"", "no `root` rule");
    expect_error(v, CI_CONS_GBNF, "root ::= root \"a\" | \"b\"", "left recursion: root -> root");
    expect_error(v, CI_CONS_GBNF, "root ::= a\na ::= b? a \"x\" | \"y\"\nb ::= \"z\"", "left recursion");
    expect_error(v, CI_CONS_GBNF, "root ::= \"abc", "unterminated string");
    expect_error(v, CI_CONS_GBNF, "root ::= [abc", "unterminated character class");
    expect_error(v, CI_CONS_GBNF, "root ::= (\"a\"", "missing )");
    expect_error(v, CI_CONS_GBNF, "root ::= \"a\"\nroot ::= \"b\"", "defined twice");
    expect_error(v, CI_CONS_GBNF, "root ::= <think>", "token references");
    expect_error(v, CI_CONS_GBNF, "root ::= a\na ::= a", "matches no string");
    /* choice */
    g = must_compile(v, CI_CONS_CHOICE, "[\"red\", \"green\", \"greenish\", \"\\u00e9t\\u00e9\"]");
    if (g) {
        CHECK(matches(g, "green") && matches(g, "greenish") && matches(g, "été") && !matches(g, "gree"), "choices");
        ci_cons_grammar_unref(g);
    }
    expect_error(v, CI_CONS_CHOICE, "[]", "non-empty JSON array");
    expect_error(v, CI_CONS_CHOICE, "[1]", "not a string");
    /* JSON schema */
    g = must_compile(v, CI_CONS_JSON_SCHEMA,
                     "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":-15,\"maximum\":120},"
                     "\"b\":{\"type\":\"string\",\"maxLength\":3},\"c\":{\"enum\":[\"x\",1,null]}},"
                     "\"required\":[\"a\"],\"additionalProperties\":false}");
    if (g) {
        CHECK(matches(g, "{\"a\":-15}") && matches(g, "{\"a\":120,\"c\":null}") && matches(g, "{ \"a\": 7, \"b\": \"xyz\"}"),
              "object accepts");
        CHECK(!matches(g, "{\"a\":121}") && !matches(g, "{\"a\":-16}") && !matches(g, "{\"b\":\"x\"}") &&
                  !matches(g, "{\"a\":1,\"b\":\"long\"}") && !matches(g, "{\"a\":01}"),
              "object rejects");
        ci_cons_grammar_unref(g);
    }
    g = must_compile(v, CI_CONS_JSON_SCHEMA,
                     "{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"array\",\"items\":"
                     "{\"$ref\":\"#/$defs/n\"},\"maxItems\":2}},\"required\":[\"k\"],\"additionalProperties\":false}},"
                     "\"$ref\":\"#/$defs/n\"}");
    if (g) {
        CHECK(matches(g, "{\"k\":[{\"k\":[]},{\"k\":[{\"k\":[]}]}]}"), "recursive ref");
        CHECK(!matches(g, "{\"k\":[{\"k\":[]},{\"k\":[]},{\"k\":[]}]}"), "maxItems");
        ci_cons_grammar_unref(g);
    }
    g = must_compile(v, CI_CONS_JSON_SCHEMA,
                     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}},\"required\":[\"id\"],"
                     "\"additionalProperties\":{\"type\":\"number\",\"minimum\":0,\"maximum\":2}}");
    if (g) {
        CHECK(matches(g, "{\"id\":\"x\",\"i\":1.5,\"idd\":0}"), "additional");
        CHECK(!matches(g, "{\"id\":\"x\",\"id\":1}"), "duplicate of declared key");
        CHECK(!matches(g, "{\"id\":\"x\",\"q\":2.5}"), "additional bound");
        ci_cons_grammar_unref(g);
    }
    g = must_compile(v, CI_CONS_JSON_OBJECT, NULL);
    if (g) {
        CHECK(matches(g, "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}") && !matches(g, "[1]") && !matches(g, "{\"a\":\"\\ud800\"}"),
              "json_object");
        ci_cons_grammar_unref(g);
    }
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"string\",\"minLength\":1,\"contains\":{}}", "unsupported keyword 'contains'");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"object\",\"patternProperties\":{}}", "'patternProperties'");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"bogus\"}", "unknown type 'bogus'");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":", "invalid JSON");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"$ref\":\"#/$defs/missing\"}", "does not resolve");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"$ref\":\"#\"}", "matches no string");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"null\"}]}", "left recursion");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"string\",\"format\":\"hostname\"}", "unsupported format 'hostname'");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{},\"required\":[\"x\"]}", "required property 'x'");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "no integer");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"array\",\"maxItems\":100000}", "over 4096");
    expect_error(v, CI_CONS_JSON_SCHEMA, "{\"type\":\"string\",\"pattern\":\"(\"}", "bad pattern");
    expect_error(v, CI_CONS_JSON_SCHEMA, "false", "matches nothing");
}

static void test_bad_input_bounds(const ci_cons_vocab *v) {
    /* 10,000-deep nesting */
    ci_buf b = {0};
    for (int i = 0; i < 10000; i++) ci_buf_puts(&b, "{\"type\":\"array\",\"items\":");
    ci_buf_puts(&b, "{\"type\":\"null\"}");
    for (int i = 0; i < 10000; i++) ci_buf_putc(&b, '}');
    expect_error(v, CI_CONS_JSON_SCHEMA, b.data, "depth");
    ci_buf_free(&b);
    /* 200 < depth < 2048: parsed by jansson, refused by the compiler */
    for (int i = 0; i < 500; i++) ci_buf_puts(&b, "{\"type\":\"array\",\"items\":");
    ci_buf_puts(&b, "{\"type\":\"null\"}");
    for (int i = 0; i < 500; i++) ci_buf_putc(&b, '}');
    expect_error(v, CI_CONS_JSON_SCHEMA, b.data, "nested deeper");
    ci_buf_free(&b);
    /* 1 MB schema */
    ci_buf_puts(&b, "{\"type\":\"object\",\"description\":\"");
    while (b.len < (1u << 20)) ci_buf_puts(&b, "xxxxxxxxxxxxxxxx");
    ci_buf_puts(&b, "\"}");
    expect_error(v, CI_CONS_JSON_SCHEMA, b.data, "too large");
    expect_error(v, CI_CONS_GBNF, b.data, "too large");
    ci_buf_free(&b);
    /* many properties each with a long counted string: IR bound */
    ci_buf_puts(&b, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < 400; i++) ci_buf_printf(&b, "%s\"p%d\":{\"type\":\"array\",\"minItems\":4000,\"maxItems\":4096,\"items\":{\"type\":\"string\",\"maxLength\":4000}}", i ? "," : "", i);
    ci_buf_puts(&b, "}}");
    double t0 = ci_now_seconds();
    cinfer_error err = {0};
    ci_cons_grammar *g = ci_cons_compile(CI_CONS_JSON_SCHEMA, b.data, b.len, NULL, v, &err);
    CHECK(g == NULL && strstr(err.message, "too large"), "expansion bound: %s", err.message);
    fprintf(stderr, "  large-expansion schema rejected in %.3f s: %s\n", ci_now_seconds() - t0, err.message);
    if (g) ci_cons_grammar_unref(g);
    ci_buf_free(&b);
}

static void test_matcher_api(const ci_cons_vocab *v, cinfer_tokenizer *tok) {
    ci_cons_grammar *g = must_compile(v, CI_CONS_CHOICE, "[\"yes\",\"no\"]");
    if (!g) return;
    size_t words = ci_cons_mask_words(v);
    uint32_t *mask = ci_calloc(words, sizeof *mask);
    ci_cons_matcher *m = ci_cons_matcher_new(g);
    cinfer_error err = {0};
    CHECK(ci_cons_fill_mask(m, mask, &err) == 0, "%s", err.message);
    int32_t yes = cinfer_tokenizer_token_id(tok, "yes"), no = cinfer_tokenizer_token_id(tok, "no");
    int32_t eos = cinfer_tokenizer_token_id(tok, "<|im_end|>"), think = cinfer_tokenizer_token_id(tok, "<think>");
    CHECK(yes >= 0 && no >= 0 && eos >= 0 && think >= 0, "token ids");
    CHECK(bit(mask, yes) && bit(mask, no) && !bit(mask, eos) && !bit(mask, think), "first mask");
    size_t n_allowed = 0;
    for (size_t i = 0; i < v->n_tokens; i++) n_allowed += bit(mask, (int32_t)i);
    /* independent count: tokens whose bytes are a non-empty prefix of "yes" or "no" */
    size_t expect = 0;
    for (size_t i = 0; i < v->n_tokens; i++) {
        size_t len = 0;
        const char *b = cinfer_tokenizer_token_bytes(tok, (int32_t)i, &len);
        if (!b || len == 0 || cinfer_tokenizer_is_special(tok, (int32_t)i) || v->excluded[i]) continue;
        if ((len <= 3 && memcmp(b, "yes", len) == 0) || (len <= 2 && memcmp(b, "no", len) == 0)) expect++;
    }
    CHECK(n_allowed == expect, "allowed %zu, expected %zu", n_allowed, expect);
    CHECK(!ci_cons_accept_token(m, eos), "eos before complete");
    ci_cons_matcher *c = ci_cons_matcher_clone(m);
    CHECK(ci_cons_accept_token(m, yes) && ci_cons_is_complete(m) && ci_cons_is_terminated(m), "yes");
    CHECK(!ci_cons_accept_token(m, no), "after yes");
    ci_cons_fill_mask(m, mask, &err);
    n_allowed = 0;
    for (size_t i = 0; i < v->n_tokens; i++) n_allowed += bit(mask, (int32_t)i);
    CHECK(n_allowed == 2 && bit(mask, eos), "only end ids once complete (%zu)", n_allowed);
    CHECK(ci_cons_accept_token(m, eos) && ci_cons_is_terminated(m) && !ci_cons_accept_token(m, eos), "eos");
    CHECK(ci_cons_rollback(m, 2, &err) == 0 && !ci_cons_is_complete(m), "rollback");
    CHECK(ci_cons_accept_token(m, no) && ci_cons_is_complete(m), "after rollback");
    CHECK(ci_cons_rollback(m, 5, &err) != 0, "rollback too far");
    CHECK(!ci_cons_is_complete(c) && ci_cons_accept_token(c, no), "clone is independent");
    ci_cons_matcher_free(c);
    ci_cons_matcher_free(m);
    free(mask);
    ci_cons_grammar_unref(g);

    /* cache: same source gives the same grammar; errors are not cached */
    ci_cons_cache *cache = ci_cons_cache_new(v, 2);
    ci_cons_grammar *a = ci_cons_cache_get(cache, CI_CONS_REGEX, "a+", 2, NULL, &err);
    ci_cons_grammar *b2 = ci_cons_cache_get(cache, CI_CONS_REGEX, "a+", 2, NULL, &err);
    CHECK(a && a == b2, "cache hit");
    ci_cons_grammar *x = ci_cons_cache_get(cache, CI_CONS_REGEX, "(", 1, NULL, &err);
    CHECK(!x && strstr(err.message, "missing )"), "cache error");
    ci_cons_grammar *d = ci_cons_cache_get(cache, CI_CONS_REGEX, "b+", 2, NULL, &err);
    ci_cons_grammar *e = ci_cons_cache_get(cache, CI_CONS_REGEX, "c+", 2, NULL, &err);
    ci_cons_grammar *a2 = ci_cons_cache_get(cache, CI_CONS_REGEX, "a+", 2, NULL, &err);
    CHECK(a2 && a2 != a, "LRU eviction (old grammar stays alive while referenced)");
    ci_cons_matcher *ma = ci_cons_matcher_new(a);
    CHECK(ci_cons_accept_bytes(ma, "aaa", 3), "evicted grammar still usable");
    ci_cons_matcher_free(ma);
    ci_cons_grammar_unref(a), ci_cons_grammar_unref(b2), ci_cons_grammar_unref(d), ci_cons_grammar_unref(e);
    ci_cons_grammar_unref(a2);
    ci_cons_cache_free(cache);
}

/* Valid UTF-8 where the last sequence may be incomplete (independent decoder). */
static bool utf8_prefix_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
        else return false;
        size_t k = 1;
        for (; k < len && i + k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
            /* reject overlong / surrogate / > 10FFFF as soon as the second byte decides */
            if (k == 1) {
                if (len == 3 && c == 0xE0 && s[i + 1] < 0xA0) return false;
                if (len == 3 && c == 0xED && s[i + 1] >= 0xA0) return false;
                if (len == 4 && c == 0xF0 && s[i + 1] < 0x90) return false;
                if (len == 4 && c == 0xF4 && s[i + 1] >= 0x90) return false;
            }
        }
        if (k == len && cp < min) return false;
        i += k;
    }
    return true;
}

static void test_exactness(const ci_cons_vocab *v, cinfer_tokenizer *tok) {
    size_t words = ci_cons_mask_words(v);
    uint32_t *mask = ci_calloc(words, sizeof *mask);
    cinfer_error err = {0};
    /* byte-level: root ::= [\x00-\xff]* built in the IR directly */
    ci_cons_ir ir;
    ci_cons_ir_init(&ir);
    ci_cons_set all;
    memset(&all, 0xFF, sizeof all);
    uint32_t root = ci_cons_ir_rule(&ir, "root");
    ci_cons_seq s = {0};
    ci_cons_seq_push(&s, ci_cons_ir_repeat(&ir, ci_cons_ir_set(&ir, &all), 0, -1));
    ci_cons_ir_add_alt(&ir, root, &s);
    ci_cons_seq_free(&s);
    ci_cons_grammar *g = ci_cons_grammar_from_ir(&ir, root, v, &err);
    ci_cons_ir_free(&ir);
    CHECK(g != NULL, "%s", err.message);
    int32_t eos = cinfer_tokenizer_token_id(tok, "<|im_end|>");
    if (g) {
        ci_cons_matcher *m = ci_cons_matcher_new(g);
        rng_state = 7;
        for (int step = 0; step < 4; step++) {
            CHECK(ci_cons_fill_mask(m, mask, &err) == 0, "%s", err.message);
            size_t bad = 0;
            for (size_t i = 0; i < v->n_tokens; i++) {
                size_t len = 0;
                const char *b = cinfer_tokenizer_token_bytes(tok, (int32_t)i, &len);
                bool want = (b && len > 0 && !cinfer_tokenizer_is_special(tok, (int32_t)i) && !v->excluded[i]) ||
                            (int32_t)i == eos || (int32_t)i == cinfer_tokenizer_token_id(tok, "<|endoftext|>");
                if (bit(mask, (int32_t)i) != want) bad++;
            }
            CHECK(bad == 0, "byte-level anything: %zu tokens differ at step %d", bad, step);
            int32_t id;
            do id = (int32_t)(rng_next() % v->n_tokens);
            while (!bit(mask, id) || v->is_eos[id]);
            CHECK(ci_cons_accept_token(m, id), "accept %d", id);
        }
        ci_cons_matcher_free(m);
        ci_cons_grammar_unref(g);
    }
    /* regex (.|\n)*: exactly the tokens that keep the output valid UTF-8 */
    g = must_compile(v, CI_CONS_REGEX, "(.|\\n)*");
    if (g) {
        ci_cons_matcher *m = ci_cons_matcher_new(g);
        uint8_t prefix[64];
        size_t plen = 0;
        rng_state = 11;
        for (int step = 0; step < 6; step++) {
            CHECK(ci_cons_fill_mask(m, mask, &err) == 0, "%s", err.message);
            size_t bad = 0, allowed = 0;
            for (size_t i = 0; i < v->n_tokens; i++) {
                if (v->excluded[i] || v->is_eos[i]) continue;
                size_t len = 0;
                const char *b = cinfer_tokenizer_token_bytes(tok, (int32_t)i, &len);
                uint8_t buf[512];
                if (!b || len == 0 || plen + len > sizeof buf) continue;
                memcpy(buf, prefix, plen);
                memcpy(buf + plen, b, len);
                /* \r U+2028 U+2029 are excluded by `.` and not \n: reject them independently */
                bool want = utf8_prefix_ok(buf, plen + len);
                for (size_t k = plen; k < plen + len && want; k++) if (buf[k] == '\r') want = false;
                if (want && (memmem(buf, plen + len, "\xe2\x80\xa8", 3) || memmem(buf, plen + len, "\xe2\x80\xa9", 3))) want = false;
                if (bit(mask, (int32_t)i) != want) bad++;
                allowed += want;
            }
            CHECK(bad == 0, "regex anything: %zu tokens differ at step %d (of %zu allowed)", bad, step, allowed);
            int32_t id;
            size_t len = 0;
            do {
                id = (int32_t)(rng_next() % v->n_tokens);
                cinfer_tokenizer_token_bytes(tok, id, &len);
            } while (!bit(mask, id) || v->is_eos[id] || plen + len > 40);
            const char *b = cinfer_tokenizer_token_bytes(tok, id, &len);
            memcpy(prefix + plen, b, len);
            plen += len;
            CHECK(ci_cons_accept_token(m, id), "accept");
        }
        ci_cons_matcher_free(m);
        ci_cons_grammar_unref(g);
    }
    free(mask);
}

/* The trie walk with its shortcuts (whole subtrees accepted through the
 * dominant successor or character by character, counter cuts from the
 * per-node lists sorted by character count, ready masks of large subtrees)
 * must agree with feeding each token's bytes one at a time (accept +
 * rollback: the memoised transitions only), at random states of many
 * grammars. The cases put counters near their bounds over ASCII, multi-byte
 * and mixed characters, nested counters, and counters whose next character
 * is also a counter character (the cut must not apply there). */
static void test_mask_vs_bruteforce(const ci_cons_vocab *v) {
    static const struct { ci_cons_kind kind; const char *src; } cases[] = {
        {CI_CONS_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\"},\"t\":{\"type\":\"string\",\"maxLength\":5},"
                              "\"n\":{\"type\":\"number\"}},\"required\":[\"s\",\"t\",\"n\"],\"additionalProperties\":false}"},
        {CI_CONS_REGEX, "[a-z]{1,12}( [A-Z][^ ]{0,5}){1,3}"},
        {CI_CONS_GBNF, "root ::= [^\"]* \"\\\"\" [0-9]+"},
        {CI_CONS_JSON_SCHEMA, "{\"type\":\"string\",\"minLength\":2,\"maxLength\":7}"},
        {CI_CONS_REGEX, "[^\"]{0,9}"},
        {CI_CONS_REGEX, "([A-Z][a-z]{1,12} ){2,20}[0-9]{3}-[0-9]{4}"},
        {CI_CONS_REGEX, "[a-z]{0,3}[a-z0-9]{2,4}\\.[0-9]{1,3}"},
        {CI_CONS_REGEX, "([\\u0100-\\uffff]|[0-9]){0,4}x?"},
        {CI_CONS_REGEX, "[\\u00e0-\\u00ff\\u4e00-\\u9fff a-z]{1,6}!"},
        {CI_CONS_GBNF, "root ::= stmt (\"\\n\" stmt){0,20}\nstmt ::= ident \" = \" expr\nexpr ::= term ((\" + \" | \" * \") term)*\n"
                       "term ::= ident | [0-9]{1,6} | \"(\" expr \")\" | \"[\" expr (\", \" expr)* \"]\"\nident ::= [a-z_] [a-z0-9_]{0,15}\n"},
        {CI_CONS_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"maxLength\":3},"
                              "\"b\":{\"type\":\"integer\",\"minimum\":-50,\"maximum\":5000},\"c\":{\"type\":\"string\",\"format\":\"date\"},"
                              "\"d\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":8},\"maxItems\":4},"
                              "\"e\":{\"type\":[\"string\",\"null\"],\"maxLength\":12}},\"required\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}"},
        {CI_CONS_JSON_OBJECT, ""},
    };
    size_t words = ci_cons_mask_words(v);
    uint32_t *mask = ci_calloc(words, sizeof *mask);
    cinfer_error err = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ci_cons_grammar *g = must_compile(v, cases[c].kind, cases[c].src);
        if (!g) continue;
        /* three walks per grammar; half the picks prefer 1-2 byte tokens so
         * that counters stop at every distance from their bounds */
        for (int walk = 0; walk < 3; walk++) {
            ci_cons_matcher *m = ci_cons_matcher_new(g);
            rng_state = 99 + c * 7 + (uint64_t)walk;
            size_t n_ok = 0;
            int step;
            for (step = 0; step < 8; step++) {
                if (ci_cons_fill_mask(m, mask, &err) != 0) break;
                size_t bad = 0;
                for (size_t i = 0; i < v->n_tokens; i++) {
                    if (v->excluded[i] || v->is_eos[i] || v->len[i] == 0) {
                        if (!v->is_eos[i] && bit(mask, (int32_t)i)) bad++;
                        continue;
                    }
                    bool ok = ci_cons_accept_bytes(m, v->bytes + v->off[i], v->len[i]);
                    if (ok) ci_cons_rollback(m, 1, &err);
                    if (ok != bit(mask, (int32_t)i)) bad++;
                }
                CHECK(bad == 0, "case %zu walk %d step %d: %zu tokens differ from byte-by-byte matching", c, walk, step, bad);
                for (size_t w = 0; w < words; w++) n_ok += (size_t)__builtin_popcount(mask[w]);
                bool short_pick = rng_next() % 2 == 0;
                int32_t id = -1;
                for (int tries = 0; tries < 4000000; tries++) {
                    int32_t k = (int32_t)(rng_next() % v->n_tokens);
                    if (!bit(mask, k) || v->is_eos[k]) continue;
                    id = k;
                    if (!short_pick || v->len[k] <= 2 || tries > 2000000) break;
                }
                if (id < 0 || !ci_cons_accept_token(m, id)) break;
            }
            fprintf(stderr, "  mask vs byte-by-byte: case %zu walk %d: %d states, %zu allowed in all\n", c, walk, step, n_ok);
            ci_cons_matcher_free(m);
        }
        ci_cons_grammar_unref(g);
    }
    free(mask);
}

/* Shared grammar, concurrent matchers: each thread's seeded walk must
 * produce the same text as the same walk run alone (the memo is shared
 * under a mutex; results must not depend on interleaving). */
typedef struct walk_job {
    ci_cons_grammar *g;
    const ci_cons_vocab *v;
    uint64_t seed;
    char out[4096];
} walk_job;

static void *walk_thread(void *arg) {
    walk_job *j = arg;
    size_t words = ci_cons_mask_words(j->v);
    uint32_t *mask = ci_malloc(words * sizeof *mask);
    ci_cons_matcher *m = ci_cons_matcher_new(j->g);
    uint64_t st = j->seed;
    size_t len = 0;
    cinfer_error err = {0};
    for (int step = 0; step < 200 && !ci_cons_is_terminated(m); step++) {
        if (ci_cons_fill_mask(m, mask, &err) != 0) break;
        size_t n = 0;
        for (size_t w = 0; w < words; w++) n += (size_t)__builtin_popcount(mask[w]);
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        size_t k = (size_t)(st >> 33) % n;
        int32_t id = -1;
        for (size_t w = 0; w < words && id < 0; w++)
            for (uint32_t bits = mask[w]; bits; bits &= bits - 1)
                if (k-- == 0) {
                    id = (int32_t)(w * 32 + (uint32_t)__builtin_ctz(bits));
                    break;
                }
        if (j->v->is_eos[id] || !ci_cons_accept_token(m, id)) break;
        if (len + j->v->len[id] < sizeof j->out) memcpy(j->out + len, j->v->bytes + j->v->off[id], j->v->len[id]), len += j->v->len[id];
    }
    j->out[len] = 0;
    ci_cons_matcher_free(m);
    free(mask);
    return NULL;
}

static void test_concurrent(const ci_cons_vocab *v) {
    const char *src = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"maxLength\":6},"
                      "\"b\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":99},\"maxItems\":3},"
                      "\"c\":{\"enum\":[\"x\",\"y\"]}},\"required\":[\"a\",\"b\",\"c\"],\"additionalProperties\":false}";
    enum { N = 6 };
    walk_job alone[N], together[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        ci_cons_grammar *g = must_compile(v, CI_CONS_JSON_SCHEMA, src); /* fresh memo per solo run */
        if (!g) return;
        alone[i] = (walk_job){.g = g, .v = v, .seed = 1000u + (uint64_t)i};
        walk_thread(&alone[i]);
        ci_cons_grammar_unref(g);
    }
    ci_cons_grammar *g = must_compile(v, CI_CONS_JSON_SCHEMA, src);
    if (!g) return;
    for (int i = 0; i < N; i++) {
        together[i] = (walk_job){.g = g, .v = v, .seed = 1000u + (uint64_t)i};
        pthread_create(&th[i], NULL, walk_thread, &together[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++)
        CHECK(strcmp(alone[i].out, together[i].out) == 0 && alone[i].out[0] == '{', "thread %d: '%s' vs '%s'", i,
              together[i].out, alone[i].out);
    ci_cons_grammar_unref(g);
}

/* Mutation fuzz of the compilers: truncations, byte flips, insertions of
 * syntax characters. Every result is a grammar or an error with a message;
 * a compiled grammar must give a start mask. (Run under CINFER_SANITIZE.) */
static void test_fuzz_compilers(const ci_cons_vocab *v) {
    static const struct { ci_cons_kind kind; const char *src; } seeds[] = {
        {CI_CONS_JSON_SCHEMA, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"},"
                              "\"b\":{\"$ref\":\"#/$defs/n\"},\"c\":{\"anyOf\":[{\"type\":\"integer\",\"minimum\":-5},{\"enum\":[1,\"x\"]}]}},"
                              "\"required\":[\"a\"],\"additionalProperties\":{\"type\":\"boolean\"},"
                              "\"$defs\":{\"n\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"},\"maxItems\":2}}}"},
        {CI_CONS_REGEX, "^(?:[A-Z]\\w{0,5}|\\d+(\\.\\d{1,2})?|[^\\s\"]{2,}|\\u00e9+)(-[a-f0-9]{2}){0,3}$"},
        {CI_CONS_GBNF, "root ::= obj\nobj ::= \"{\" (kv (\",\" kv){0,2})? \"}\"\nkv ::= [a-z]+ \":\" (obj | [0-9]{1,3} | \"\\x41\")\n"},
        {CI_CONS_CHOICE, "[\"a\",\"bc\",\"\\u00e9\"]"},
    };
    static const char ins[] = "{}[]()\"\\|*+?^$.,:-#\n0{}9";
    size_t words = ci_cons_mask_words(v);
    uint32_t *mask = ci_calloc(words, sizeof *mask);
    rng_state = 4242;
    int compiled = 0, rejected = 0;
    for (int it = 0; it < 3000; it++) {
        size_t k = rng_next() % (sizeof seeds / sizeof seeds[0]);
        char buf[1024];
        size_t n = strlen(seeds[k].src);
        memcpy(buf, seeds[k].src, n);
        int muts = 1 + (int)(rng_next() % 3);
        for (int m = 0; m < muts && n > 0; m++) {
            size_t at = rng_next() % n;
            switch (rng_next() % 4) {
            case 0: n = at; break;                                         /* truncate */
            case 1: buf[at] = (char)(rng_next() & 0xFF); break;             /* flip */
            case 2: if (n + 1 < sizeof buf) { memmove(buf + at + 1, buf + at, n - at); buf[at] = ins[rng_next() % (sizeof ins - 1)]; n++; } break;
            default: memmove(buf + at, buf + at + 1, n - at - 1); n--; break; /* delete */
            }
        }
        cinfer_error err = {0};
        ci_cons_grammar *g = ci_cons_compile(seeds[k].kind, buf, n, NULL, v, &err);
        if (!g) {
            CHECK(err.code != 0 && err.message[0], "fuzz %d: no error message", it);
            rejected++;
            continue;
        }
        compiled++;
        ci_cons_matcher *m = ci_cons_matcher_new(g);
        CHECK(m != NULL, "fuzz %d: no matcher", it);
        if (m) {
            int rc = ci_cons_fill_mask(m, mask, &err);
            CHECK(rc == 0 || err.message[0], "fuzz %d: mask", it);
            ci_cons_matcher_free(m);
        }
        ci_cons_grammar_unref(g);
    }
    fprintf(stderr, "  fuzz: %d mutated sources compiled, %d rejected with an error\n", compiled, rejected);
    free(mask);
}

/* ----------------------------------------------------------------- walks */

static bool closing_token(const ci_cons_vocab *v, int32_t id) {
    if (v->len[id] == 0) return false;
    for (uint32_t k = 0; k < v->len[id]; k++) {
        uint8_t c = v->bytes[v->off[id] + k];
        if (c != '"' && c != ']' && c != '}') return false;
    }
    return true;
}

static int run_walks(const ci_cons_vocab *v, const char *cases_path, const char *out_path) {
    json_error_t jerr;
    FILE *in = fopen(cases_path, "r"), *out = fopen(out_path, "w");
    if (!in || !out) {
        fprintf(stderr, "cannot open %s / %s\n", cases_path, out_path);
        return 1;
    }
    size_t words = ci_cons_mask_words(v);
    uint32_t *mask = ci_calloc(words, sizeof *mask);
    int32_t *allowed = ci_malloc(v->n_tokens * sizeof *allowed);
    char line[1 << 16];
    int n_case = 0, n_walks = 0, n_complete = 0, n_cut = 0;
    double t0 = ci_now_seconds();
    while (fgets(line, sizeof line, in)) {
        json_t *c = json_loads(line, 0, &jerr);
        if (!c) continue;
        const char *kind_s = json_string_value(json_object_get(c, "kind"));
        const char *src = json_string_value(json_object_get(c, "source"));
        int seeds = (int)json_integer_value(json_object_get(c, "seeds"));
        int budget = (int)json_integer_value(json_object_get(c, "budget"));
        if (budget <= 0) budget = 64;
        ci_cons_kind kind = strcmp(kind_s, "schema") == 0 ? CI_CONS_JSON_SCHEMA : strcmp(kind_s, "regex") == 0 ? CI_CONS_REGEX
                            : strcmp(kind_s, "choice") == 0 ? CI_CONS_CHOICE : strcmp(kind_s, "gbnf") == 0 ? CI_CONS_GBNF
                                                                                                      : CI_CONS_JSON_OBJECT;
        cinfer_error err = {0};
        ci_cons_grammar *g = ci_cons_compile(kind, src, src ? strlen(src) : 0, NULL, v, &err);
        if (!g) {
            json_t *o = json_pack("{s:i,s:s}", "case", n_case, "compile_error", err.message);
            char *s = json_dumps(o, JSON_COMPACT);
            fprintf(out, "%s\n", s);
            free(s), json_decref(o), json_decref(c);
            n_case++;
            continue;
        }
        for (int seed = 0; seed < seeds; seed++) {
            rng_state = (uint64_t)n_case * 1000003u + (uint64_t)seed;
            ci_cons_matcher *m = ci_cons_matcher_new(g);
            ci_buf text = {0};
            bool done = false, error = false;
            int step = 0;
            for (; step < budget * 4 && !done; step++) {
                if (ci_cons_fill_mask(m, mask, &err) != 0) {
                    fprintf(stderr, "case %d seed %d: %s\n", n_case, seed, err.message);
                    error = true;
                    break;
                }
                size_t na = 0, nc = 0;
                bool eos_ok = false;
                for (size_t w = 0; w < words; w++)
                    for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
                        int32_t id = (int32_t)(w * 32 + (uint32_t)__builtin_ctz(bits));
                        if (v->is_eos[id]) eos_ok = true;
                        else allowed[na++] = id;
                    }
                int32_t pick;
                if (eos_ok && (na == 0 || step >= budget)) {
                    pick = v->eos[0];
                } else if (step >= budget) {
                    for (size_t k = 0; k < na; k++)
                        if (closing_token(v, allowed[k])) allowed[nc++] = allowed[k];
                    pick = nc ? allowed[rng_next() % nc] : allowed[rng_next() % na];
                } else {
                    pick = allowed[rng_next() % na]; /* the end ids are 2 of ~150k: walks run to the budget */
                }
                if (!ci_cons_accept_token(m, pick)) {
                    fprintf(stderr, "case %d seed %d: masked token %d rejected by accept\n", n_case, seed, pick);
                    error = true;
                    break;
                }
                if (v->is_eos[pick]) done = true;
                else ci_buf_append(&text, v->bytes + v->off[pick], v->len[pick]);
            }
            /* a cut walk must still be a prefix the grammar accepts */
            ci_cons_matcher *chk = ci_cons_matcher_new(g);
            bool prefix_ok = ci_cons_accept_bytes(chk, text.data ? text.data : "", text.len);
            ci_cons_matcher_free(chk);
            json_t *o = json_pack("{s:i,s:i,s:b,s:b,s:b,s:s%,s:i}", "case", n_case, "seed", seed, "complete", done,
                                  "error", error, "prefix_ok", prefix_ok, "output", text.data ? text.data : "", text.len,
                                  "tokens", step);
            if (!o) { /* output not valid UTF-8: jansson refuses it; report as such */
                o = json_pack("{s:i,s:i,s:b,s:b,s:b,s:s}", "case", n_case, "seed", seed, "complete", done, "error", true,
                              "prefix_ok", prefix_ok, "output", "<invalid utf-8>");
            }
            char *s = json_dumps(o, JSON_COMPACT);
            fprintf(out, "%s\n", s);
            free(s);
            json_decref(o);
            n_walks++;
            n_complete += done;
            n_cut += !done && !error;
            ci_buf_free(&text);
            ci_cons_matcher_free(m);
        }
        ci_cons_grammar_unref(g);
        json_decref(c);
        n_case++;
    }
    fprintf(stderr, "walks: %d cases, %d walks, %d complete, %d cut by the length bound, %.1f s\n", n_case, n_walks,
            n_complete, n_cut, ci_now_seconds() - t0);
    fclose(in);
    fclose(out);
    free(mask);
    free(allowed);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_constrain unit QWEN3_DIR | walk QWEN3_DIR CASES OUT\n");
        return 2;
    }
    cinfer_tokenizer *tok = NULL;
    double t0 = ci_now_seconds();
    ci_cons_vocab *v = load_vocab(argv[2], &tok);
    fprintf(stderr, "vocabulary: %zu tokens, %zu trie nodes, %.2f s\n", v->n_tokens, v->n_nodes, ci_now_seconds() - t0);
    int rc = 0;
    if (strcmp(argv[1], "unit") == 0) {
        test_compilers(v);
        test_bad_input_bounds(v);
        test_matcher_api(v, tok);
        test_exactness(v, tok);
        test_mask_vs_bruteforce(v);
        test_concurrent(v);
        test_fuzz_compilers(v);
        rc = failures ? 1 : 0;
        fprintf(stderr, "%s (%d failures)\n", rc ? "FAILED" : "OK", failures);
    } else if (strcmp(argv[1], "walk") == 0 && argc >= 5) {
        rc = run_walks(v, argv[3], argv[4]);
    } else {
        rc = 2;
    }
    ci_cons_vocab_free(v);
    cinfer_tokenizer_free(tok);
    return rc;
}
