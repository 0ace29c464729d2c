/*
 * tok_json_scan.c — a single streaming pass over tokenizer.json that feeds
 * "model.vocab" and "model.merges" straight into the builder.
 *
 * Why: those two hold ~300k strings of an 11 MB file; building jansson
 * objects for them (a malloc per string, a hash table per object) was most
 * of the time to load a tokenizer. This pass reads them in place; jansson
 * still parses the rest (a few KiB), in a copy of the text where the two
 * values are replaced by {} and [] (tok_json.c).
 *
 * Strict and bounded, as it reads untrusted input: the grammar is RFC 8259
 * as jansson accepts it with JSON_ALLOW_NUL (strings are valid UTF-8 without
 * raw control characters, \u escapes pair their surrogates, keys hold no
 * NUL, integers fit in int64), nesting is limited to CI_JSON_SCAN_MAX_DEPTH without recursion,
 * and every read is checked against the end of the text. Values outside the
 * two are only skipped over (jansson validates them afterwards). Any syntax
 * error returns CI_JSON_SCAN_SYNTAX and the caller falls back to jansson on
 * the whole text, which reports it with line and column.
 */
#include "tokenizer/tok_json_scan.h"

#include <stdio.h>
#include <string.h>

#define CI_JSON_SCAN_MAX_DEPTH 2048 /* jansson's own limit */

typedef struct scan {
    const char *p, *end;
    ci_buf str; /* unescaped string when it had escapes */
} scan;

typedef struct str_view {
    const char *s;
    size_t n;
} str_view;

#define SYNTAX CI_JSON_SCAN_SYNTAX
/* printf arguments for at most 80 bytes of a view (views are not NUL-terminated). */
#define SHOWN(v) (int)((v).n < 80 ? (v).n : 80), (v).s

static void skip_ws(scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

/* Consumes c (after whitespace) or fails. */
static int expect(scan *s, char c) {
    skip_ws(s);
    if (s->p >= s->end || *s->p != c) return SYNTAX;
    s->p++;
    return 0;
}

static int hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return SYNTAX;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static void put_utf8(ci_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    ci_buf_append(b, u, n);
}

/* One escape after the backslash at s->p; appends its text to s->str. */
static int unescape_one(scan *s) {
    if (s->end - s->p < 2) return SYNTAX;
    char c = s->p[1];
    s->p += 2;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = c ? strchr(from, c) : NULL;
    if (k) {
        ci_buf_putc(&s->str, to[k - from]);
        return 0;
    }
    if (c != 'u' || s->end - s->p < 4) return SYNTAX;
    uint32_t cp;
    if (hex4(s->p, &cp)) return SYNTAX;
    s->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return SYNTAX; /* lone low surrogate */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo;
        if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' || hex4(s->p + 2, &lo) || lo < 0xDC00 ||
            lo > 0xDFFF)
            return SYNTAX;
        s->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    put_utf8(&s->str, cp);
    return 0;
}

/* A string at s->p (after whitespace). The view points into the text when
 * there were no escapes, else into s->str (valid until the next string). */
static int read_string(scan *s, str_view *out);

/* An object key: a string without NUL (jansson refuses "\u0000" in keys). */
static int read_key(scan *s, str_view *out) {
    if (read_string(s, out)) return SYNTAX;
    return memchr(out->s, 0, out->n) ? SYNTAX : 0;
}

static int read_string(scan *s, str_view *out) {
    if (expect(s, '"')) return SYNTAX;
    const char *start = s->p;
    bool escaped = false;
    s->str.len = 0;
    while (s->p < s->end) {
        const char *run = s->p;
        while (s->p < s->end && (uint8_t)*s->p >= 0x20 && (uint8_t)*s->p < 0x80 && *s->p != '"' && *s->p != '\\')
            s->p++;
        if (escaped) ci_buf_append(&s->str, run, (size_t)(s->p - run));
        if (s->p >= s->end) break;
        uint8_t c = (uint8_t)*s->p;
        if (c == '"') {
            *out = escaped ? (str_view){s->str.data ? s->str.data : "", s->str.len}
                           : (str_view){start, (size_t)(s->p - start)};
            s->p++;
            return 0;
        }
        if (c < 0x20) return SYNTAX; /* raw control character */
        if (c == '\\') {
            if (!escaped) {
                ci_buf_append(&s->str, start, (size_t)(s->p - start));
                escaped = true;
            }
            if (unescape_one(s)) return SYNTAX;
            continue;
        }
        uint32_t cp;
        size_t k = ci_utf8_decode_valid((const uint8_t *)s->p, (size_t)(s->end - s->p), &cp);
        if (!k) return SYNTAX;
        if (escaped) ci_buf_append(&s->str, s->p, k);
        s->p += k;
    }
    return SYNTAX; /* unterminated */
}

/* A number token; *is_int and *value are set for integers that fit int64. */
static int read_number(scan *s, bool *is_int, int64_t *value) {
    const char *p = s->p, *e = s->end;
    bool neg = p < e && *p == '-';
    if (neg) p++;
    if (p >= e || *p < '0' || *p > '9') return SYNTAX;
    uint64_t mag = 0;
    bool overflow = false;
    if (*p == '0') p++;
    else
        while (p < e && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p++ - '0');
            if (mag > (UINT64_MAX - d) / 10) overflow = true;
            else mag = mag * 10 + d;
        }
    *is_int = true;
    if (p < e && *p == '.') {
        *is_int = false;
        if (++p >= e || *p < '0' || *p > '9') return SYNTAX;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *is_int = false;
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return SYNTAX;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (*is_int) { /* jansson refuses integers outside int64 */
        if (overflow || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) return SYNTAX;
        *value = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    }
    s->p = p;
    return 0;
}

static int read_literal(scan *s) {
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(s->end - s->p) >= n && memcmp(s->p, words[i], n) == 0) {
            s->p += n;
            return 0;
        }
    }
    return SYNTAX;
}

/* Skips one value of any kind, checking its grammar; nesting is tracked in
 * a bit stack (1 = object), not by recursion. */
static int skip_value(scan *s) {
    uint8_t stack[CI_JSON_SCAN_MAX_DEPTH / 8];
    int depth = 0;
    bool is_int;
    int64_t v;
    str_view sv;
    for (;;) {
        skip_ws(s);
        if (s->p >= s->end) return SYNTAX;
        char c = *s->p;
        bool opened = false;
        if (c == '{' || c == '[') {
            if (depth >= CI_JSON_SCAN_MAX_DEPTH) return SYNTAX;
            if (c == '{') stack[depth / 8] |= (uint8_t)(1u << (depth % 8));
            else stack[depth / 8] &= (uint8_t)~(1u << (depth % 8));
            depth++;
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == (c == '{' ? '}' : ']')) {
                s->p++;
                depth--;
            } else
                opened = true;
        } else if (c == '"') {
            if (read_string(s, &sv)) return SYNTAX;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (read_number(s, &is_int, &v)) return SYNTAX;
        } else if (read_literal(s))
            return SYNTAX;
        /* After a value (or an opening bracket): a key if in an object, then the next value. */
        for (;;) {
            if (depth == 0) return 0;
            bool in_object = stack[(depth - 1) / 8] >> ((depth - 1) % 8) & 1;
            if (!opened) {
                skip_ws(s);
                if (s->p >= s->end) return SYNTAX;
                if (*s->p == (in_object ? '}' : ']')) {
                    s->p++;
                    depth--;
                    continue;
                }
                if (*s->p != ',') return SYNTAX;
                s->p++;
            }
            if (in_object && (read_key(s, &sv) || expect(s, ':'))) return SYNTAX;
            break;
        }
    }
}

/* Walks an object: for each key calls fn (which consumes the value). */
typedef int (*member_fn)(scan *s, str_view key, void *ctx, cinfer_error *err);

static int each_member(scan *s, member_fn fn, void *ctx, cinfer_error *err) {
    if (expect(s, '{')) return SYNTAX;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        str_view key;
        if (read_key(s, &key)) return SYNTAX;
        if (expect(s, ':')) return SYNTAX;
        skip_ws(s);
        int rc = fn(s, key, ctx, err);
        if (rc) return rc;
        skip_ws(s);
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return 0;
        }
        if (expect(s, ',')) return SYNTAX;
    }
}

/* ------------------------------------------------------------- vocab */

static int vocab_member(scan *s, str_view key, void *ctx, cinfer_error *err) {
    ci_tok_builder *b = ctx;
    /* The key may live in s->str, which the value does not touch (no string). */
    skip_ws(s);
    if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
        bool is_int;
        int64_t id;
        if (read_number(s, &is_int, &id)) return SYNTAX;
        if (is_int) {
            if (id < 0 || id >= CI_TOK_MAX_IDS)
                return ci_error(err, CINFER_ERR_FORMAT, "model.vocab[\"%.*s\"] = %lld is outside [0, %d)",
                                SHOWN(key), (long long)id, CI_TOK_MAX_IDS);
            return ci_tok_builder_add_vocab(b, key.s, key.n, (int32_t)id, err);
        }
    } else {
        char name[96];
        snprintf(name, sizeof name, "%.*s", SHOWN(key)); /* s->str is reused by the value */
        if (skip_value(s)) return SYNTAX;
        return ci_error(err, CINFER_ERR_FORMAT, "model.vocab[\"%s\"] must be an integer id", name);
    }
    return ci_error(err, CINFER_ERR_FORMAT, "model.vocab[\"%.*s\"] must be an integer id", SHOWN(key));
}

/* ------------------------------------------------------------ merges */

/* One merge: "a b" or ["a", "b"]. */
static int read_merge(scan *s, ci_tok_builder *b, size_t index, cinfer_error *err) {
    skip_ws(s);
    str_view a, c;
    if (s->p < s->end && *s->p == '"') {
        if (read_string(s, &a)) return SYNTAX;
        return ci_tok_builder_add_merge_string(b, a.s, a.n, err);
    }
    if (s->p < s->end && *s->p == '[') {
        const char *at = s->p;
        s->p++;
        skip_ws(s);
        /* Both halves are kept: the first is copied out of s->str before the second is read. */
        if (s->p < s->end && *s->p == '"' && !read_string(s, &a)) {
            ci_buf first = {0};
            ci_buf_append(&first, a.s, a.n);
            int rc = SYNTAX;
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                skip_ws(s);
                if (s->p < s->end && *s->p == '"' && !read_string(s, &c)) {
                    skip_ws(s);
                    if (s->p < s->end && *s->p == ']') {
                        s->p++;
                        rc = ci_tok_builder_add_merge(b, first.data ? first.data : "", first.len, c.s, c.n, err);
                    }
                }
            }
            ci_buf_free(&first);
            if (rc != SYNTAX) return rc;
        }
        s->p = at; /* not a pair of strings: check the grammar, then say what is wrong */
    }
    if (skip_value(s)) return SYNTAX;
    return ci_error(err, CINFER_ERR_FORMAT, "model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", index);
}

static int read_merges(scan *s, ci_tok_builder *b, cinfer_error *err) {
    if (expect(s, '[')) return SYNTAX;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (size_t i = 0;; i++) {
        int rc = read_merge(s, b, i, err);
        if (rc) return rc;
        skip_ws(s);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        if (expect(s, ',')) return SYNTAX;
    }
}

/* ------------------------------------------------------------- walk */

typedef struct walk_ctx {
    ci_tok_builder *b;
    const char *text;
    ci_json_scan_result *res;
} walk_ctx;

static bool key_is(str_view k, const char *name) { return k.n == strlen(name) && memcmp(k.s, name, k.n) == 0; }

static int model_member(scan *s, str_view key, void *ctx, cinfer_error *err) {
    walk_ctx *w = ctx;
    bool vocab = key_is(key, "vocab"), merges = key_is(key, "merges");
    char open = vocab ? '{' : '[';
    if ((!vocab && !merges) || s->p >= s->end || *s->p != open) return skip_value(s); /* jansson judges it */
    size_t start = (size_t)(s->p - w->text);
    int rc = vocab ? each_member(s, vocab_member, w->b, err) : read_merges(s, w->b, err);
    if (rc) return rc;
    ci_json_span *span = vocab ? &w->res->vocab : &w->res->merges;
    if (span->end) return SYNTAX; /* a repeated key: let jansson refuse the file */
    *span = (ci_json_span){start, (size_t)(s->p - w->text)};
    return 0;
}

static int top_member(scan *s, str_view key, void *ctx, cinfer_error *err) {
    if (key_is(key, "model") && s->p < s->end && *s->p == '{') return each_member(s, model_member, ctx, err);
    return skip_value(s);
}

int ci_json_scan_model(ci_tok_builder *b, const char *json, size_t len, ci_json_scan_result *res, cinfer_error *err) {
    memset(res, 0, sizeof *res);
    if (!json) return SYNTAX;
    scan s = {.p = json, .end = json + len};
    walk_ctx w = {b, json, res};
    skip_ws(&s);
    int rc = s.p < s.end && *s.p == '{' ? each_member(&s, top_member, &w, err) : SYNTAX;
    skip_ws(&s);
    if (!rc && s.p != s.end) rc = SYNTAX; /* trailing text */
    ci_buf_free(&s.str);
    return rc;
}
