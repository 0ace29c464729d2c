/*
 * cons_schema.c — JSON Schema (what OpenAI strict structured outputs
 * accept, and a bit more) compiled into the grammar IR.
 *
 * Every output the grammar allows validates against the schema (sound);
 * where exact enforcement would be impractical the grammar allows a subset
 * (documented in docs/STRUCTURED_OUTPUT.md), never a superset:
 *   - properties are emitted in declared order; optional ones may be left
 *     out; additionalProperties absent or false: no other keys; true or a
 *     schema: other keys after the declared ones, whose names differ from
 *     every declared name (a byte trie complement) and use no escapes;
 *   - strings are UTF-8; \u escapes never produce surrogates; minLength /
 *     maxLength count code points (an escape is one); `pattern` strings use
 *     only characters that need no escape; formats produce a valid subset
 *     (date: days 01-28 in February, never Feb 29);
 *   - numbers: at most 16 integer digits, 16 fraction digits, 2 exponent
 *     digits; with minimum / maximum (exclusive too) the integer part is
 *     bounded and no exponent is used; fractional bounds round inwards;
 *   - oneOf is compiled as anyOf (outputs matching two branches would fail
 *     oneOf: keep branches disjoint);
 *   - whitespace: at most json_ws_max bytes after { [ , : and before } ].
 * Unsupported keywords are errors naming the keyword and where it is.
 *
 * $ref (local "#", "#/$defs/x", any "#/..." JSON pointer) becomes a rule
 * reference, compiled once through a work list, so recursive schemas are
 * recursive rules and compiling never follows a reference cycle. Nesting of
 * the schema document itself is bounded (CI_CONS_MAX_NEST while compiling;
 * jansson stops parsing at 2048 levels).
 */
#include "constrain/cons_internal.h"
#include "util/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCHEMA_NODES 100000
#define MAX_INT_DIGITS 16
#define INT_LIMIT 9999999999999999LL /* 16 digits */

typedef struct pending { json_t *s; uint32_t rule; char *path; } pending;
typedef struct refmap { char *ptr; uint32_t rule; } refmap;

typedef struct sc {
    ci_cons_ir *ir;
    json_t *root;
    int ws_max;
    cinfer_error *err;
    int rc;
    long r_ws, r_value, r_string, r_number, r_integer, r_object, r_array, r_char; /* -1 until built */
    refmap *refs;
    size_t n_refs, cap_refs;
    pending *pend;
    size_t n_pend, cap_pend;
    size_t n_nodes;
} sc;

static int sc_fail(sc *c, const char *path, const char *fmt, const char *arg) {
    if (c->rc == CINFER_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, fmt, arg);
        c->rc = ci_error(c->err, CINFER_ERR_FORMAT, "json schema: %s at %s", msg, *path ? path : "#");
    }
    return c->rc;
}

/* ------------------------------------------------------------ small builders */

static uint32_t lit(sc *c, const char *s) {
    ci_cons_seq q = {0};
    ci_cons_seq_lit(c->ir, &q, s, strlen(s));
    uint32_t e = ci_cons_ir_group(c->ir, &q);
    ci_cons_seq_free(&q);
    return e;
}

static uint32_t regex_elem(sc *c, const char *re) {
    uint32_t e = 0;
    cinfer_error err = {0};
    if (ci_cons_regex_compile(c->ir, re, strlen(re), NULL, &e, &err) != CINFER_OK)
        c->rc = ci_error(c->err, CINFER_ERR_FORMAT, "internal regex: %s", err.message);
    return e;
}

/* Adds one alternative given as a list of elements (CI_CONS_END terminated). */
static void alt(sc *c, uint32_t rule, const uint32_t *els) {
    ci_cons_seq q = {0};
    for (; *els != CI_CONS_END; els++) ci_cons_seq_push(&q, *els);
    ci_cons_ir_add_alt(c->ir, rule, &q);
    ci_cons_seq_free(&q);
}

/* Pushes ws (nothing when json_ws_max is 0). */
static void push_ws(sc *c, ci_cons_seq *q) {
    if (c->ws_max == 0) return;
    if (c->r_ws < 0) {
        ci_cons_set s = {{0}};
        ci_cons_set_add(&s, ' '), ci_cons_set_add(&s, '\n'), ci_cons_set_add(&s, '\t'), ci_cons_set_add(&s, '\r');
        uint32_t e = ci_cons_ir_repeat(c->ir, ci_cons_ir_set(c->ir, &s), 0, c->ws_max);
        ci_cons_seq one = {0};
        ci_cons_seq_push(&one, e);
        c->r_ws = ci_cons_ir_rule(c->ir, "ws");
        ci_cons_ir_add_alt(c->ir, (uint32_t)c->r_ws, &one);
        ci_cons_seq_free(&one);
    }
    ci_cons_seq_push(q, ci_cons_ref((uint32_t)c->r_ws));
}

static void push_lit(sc *c, ci_cons_seq *q, const char *s) { ci_cons_seq_lit(c->ir, q, s, strlen(s)); }

/* Characters a JSON string holds without escaping. */
static const ci_cons_cp_range json_safe[] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};

/* One JSON string character (unescaped, or an escape that is not a surrogate). */
static uint32_t string_char(sc *c) {
    if (c->r_char >= 0) return ci_cons_ref((uint32_t)c->r_char);
    uint32_t r = ci_cons_ir_rule(c->ir, "string-char");
    c->r_char = r;
    uint32_t plain = ci_cons_ir_cp_class(c->ir, json_safe, 3, false);
    alt(c, r, (uint32_t[]){plain, CI_CONS_END});
    uint32_t esc = regex_elem(c, "\\\\([\"\\\\/bfnrt]|u([0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))");
    alt(c, r, (uint32_t[]){esc, CI_CONS_END});
    return ci_cons_ref(r);
}

static uint32_t string_elem(sc *c, long min, long max) {
    ci_cons_seq q = {0};
    push_lit(c, &q, "\"");
    ci_cons_seq_push(&q, ci_cons_ir_repeat(c->ir, string_char(c), min, max));
    push_lit(c, &q, "\"");
    uint32_t e = ci_cons_ir_group(c->ir, &q);
    ci_cons_seq_free(&q);
    return e;
}

static uint32_t any_string(sc *c) {
    if (c->r_string < 0) {
        uint32_t e = string_elem(c, 0, -1);
        c->r_string = ci_cons_ir_rule(c->ir, "string");
        alt(c, (uint32_t)c->r_string, (uint32_t[]){e, CI_CONS_END});
    }
    return ci_cons_ref((uint32_t)c->r_string);
}

static uint32_t any_integer(sc *c) {
    if (c->r_integer < 0) {
        uint32_t e = regex_elem(c, "-?(0|[1-9][0-9]{0,15})");
        c->r_integer = ci_cons_ir_rule(c->ir, "integer");
        alt(c, (uint32_t)c->r_integer, (uint32_t[]){e, CI_CONS_END});
    }
    return ci_cons_ref((uint32_t)c->r_integer);
}

static uint32_t any_number(sc *c) {
    if (c->r_number < 0) {
        uint32_t e = regex_elem(c, "-?(0|[1-9][0-9]{0,15})(\\.[0-9]{1,16})?([eE][-+]?[0-9]{1,2})?");
        c->r_number = ci_cons_ir_rule(c->ir, "number");
        alt(c, (uint32_t)c->r_number, (uint32_t[]){e, CI_CONS_END});
    }
    return ci_cons_ref((uint32_t)c->r_number);
}

static uint32_t any_value(sc *c);

/* "{" ws (member ("," ws member)* ws)? "}" with member = string ":" ws value */
static uint32_t any_object(sc *c) {
    if (c->r_object >= 0) return ci_cons_ref((uint32_t)c->r_object);
    uint32_t r = ci_cons_ir_rule(c->ir, "object");
    c->r_object = r;
    uint32_t val = any_value(c);
    ci_cons_seq m = {0};
    ci_cons_seq_push(&m, any_string(c));
    push_lit(c, &m, ":");
    push_ws(c, &m);
    ci_cons_seq_push(&m, val);
    uint32_t member = ci_cons_ir_group(c->ir, &m);
    ci_cons_seq_free(&m);
    ci_cons_seq more = {0};
    push_lit(c, &more, ",");
    push_ws(c, &more);
    ci_cons_seq_push(&more, member);
    uint32_t rest = ci_cons_ir_repeat(c->ir, ci_cons_ir_group(c->ir, &more), 0, -1);
    ci_cons_seq_free(&more);
    ci_cons_seq q = {0};
    push_lit(c, &q, "{");
    push_ws(c, &q);
    push_lit(c, &q, "}");
    ci_cons_ir_add_alt(c->ir, r, &q);
    q.n = 0;
    push_lit(c, &q, "{");
    push_ws(c, &q);
    ci_cons_seq_push(&q, member);
    ci_cons_seq_push(&q, rest);
    push_ws(c, &q);
    push_lit(c, &q, "}");
    ci_cons_ir_add_alt(c->ir, r, &q);
    ci_cons_seq_free(&q);
    return ci_cons_ref(r);
}

/* "[" ws (item ("," ws item){min-1,max-1} ws)? "]" */
static uint32_t array_of(sc *c, uint32_t item, long min, long max) {
    uint32_t r = ci_cons_ir_rule(c->ir, NULL);
    ci_cons_seq q = {0};
    if (min == 0) {
        push_lit(c, &q, "[");
        push_ws(c, &q);
        push_lit(c, &q, "]");
        ci_cons_ir_add_alt(c->ir, r, &q);
    }
    if (max != 0) {
        ci_cons_seq more = {0};
        push_lit(c, &more, ",");
        push_ws(c, &more);
        ci_cons_seq_push(&more, item);
        uint32_t rest = ci_cons_ir_repeat(c->ir, ci_cons_ir_group(c->ir, &more), min > 0 ? min - 1 : 0,
                                          max < 0 ? -1 : max - 1);
        ci_cons_seq_free(&more);
        q.n = 0;
        push_lit(c, &q, "[");
        push_ws(c, &q);
        ci_cons_seq_push(&q, item);
        ci_cons_seq_push(&q, rest);
        push_ws(c, &q);
        push_lit(c, &q, "]");
        ci_cons_ir_add_alt(c->ir, r, &q);
    }
    ci_cons_seq_free(&q);
    return ci_cons_ref(r);
}

static uint32_t any_value(sc *c) {
    if (c->r_value >= 0) return ci_cons_ref((uint32_t)c->r_value);
    uint32_t r = ci_cons_ir_rule(c->ir, "value");
    c->r_value = r;
    alt(c, r, (uint32_t[]){any_object(c), CI_CONS_END});
    if (c->r_array < 0) c->r_array = (long)(array_of(c, ci_cons_ref(r), 0, -1) & ~CI_CONS_REF_BIT);
    alt(c, r, (uint32_t[]){ci_cons_ref((uint32_t)c->r_array), CI_CONS_END});
    alt(c, r, (uint32_t[]){any_string(c), CI_CONS_END});
    alt(c, r, (uint32_t[]){any_number(c), CI_CONS_END});
    alt(c, r, (uint32_t[]){lit(c, "true"), CI_CONS_END});
    alt(c, r, (uint32_t[]){lit(c, "false"), CI_CONS_END});
    alt(c, r, (uint32_t[]){lit(c, "null"), CI_CONS_END});
    return ci_cons_ref(r);
}

/* ------------------------------------------------------------ integer ranges */

/* Digit strings a..b of equal length n (leading zeros allowed), as an element. */
static uint32_t digits_range(sc *c, const char *a, const char *b, int n) {
    ci_cons_seq q = {0};
    int k = 0;
    while (k < n && a[k] == b[k]) k++;
    ci_cons_seq_lit(c->ir, &q, a, (size_t)k);
    if (k < n) {
        a += k, b += k, n -= k;
        uint32_t r = ci_cons_ir_rule(c->ir, NULL);
        char nines[24], zeros[24];
        memset(nines, '9', sizeof nines), memset(zeros, '0', sizeof zeros);
        bool a_low = memcmp(a + 1, zeros, (size_t)n - 1) == 0; /* a = d00..0 */
        bool b_high = memcmp(b + 1, nines, (size_t)n - 1) == 0; /* b = d99..9 */
        int mid_lo = a[0] + (a_low ? 0 : 1), mid_hi = b[0] - (b_high ? 0 : 1);
        ci_cons_seq s = {0};
        if (!a_low) {
            ci_cons_seq_lit(c->ir, &s, a, 1);
            ci_cons_seq_push(&s, digits_range(c, a + 1, nines, n - 1));
            ci_cons_ir_add_alt(c->ir, r, &s);
        }
        if (mid_lo <= mid_hi) {
            s.n = 0;
            ci_cons_set ds = {{0}};
            ci_cons_set_range(&ds, (unsigned)mid_lo, (unsigned)mid_hi);
            ci_cons_seq_push(&s, ci_cons_ir_set(c->ir, &ds));
            ci_cons_set d09 = {{0}};
            ci_cons_set_range(&d09, '0', '9');
            uint32_t dig = ci_cons_ir_set(c->ir, &d09);
            for (int i = 1; i < n; i++) ci_cons_seq_push(&s, dig);
            ci_cons_ir_add_alt(c->ir, r, &s);
        }
        if (!b_high) {
            s.n = 0;
            ci_cons_seq_lit(c->ir, &s, b, 1);
            ci_cons_seq_push(&s, digits_range(c, zeros, b + 1, n - 1));
            ci_cons_ir_add_alt(c->ir, r, &s);
        }
        ci_cons_seq_free(&s);
        ci_cons_seq_push(&q, ci_cons_ref(r));
    }
    uint32_t e = ci_cons_ir_group(c->ir, &q);
    ci_cons_seq_free(&q);
    return e;
}

/* Non-negative integers lo..hi without leading zeros. Adds alternatives to rule. */
static void uint_range(sc *c, uint32_t rule, ci_cons_seq *prefix, long long lo, long long hi) {
    char a[24], b[24];
    int dl = snprintf(a, sizeof a, "%lld", lo);
    int dh = snprintf(b, sizeof b, "%lld", hi);
    long long p10 = 1; /* 10^(d-1) */
    for (int k = 1; k < dl; k++) p10 *= 10;
    for (int d = dl; d <= dh; d++, p10 *= 10) {
        long long from = d == dl ? lo : p10;
        long long to = d == dh ? hi : p10 * 10 - 1;
        char fa[24], fb[24];
        snprintf(fa, sizeof fa, "%lld", from);
        snprintf(fb, sizeof fb, "%lld", to);
        ci_cons_seq s = {0};
        ci_cons_seq_append(&s, prefix);
        ci_cons_seq_push(&s, digits_range(c, fa, fb, d));
        ci_cons_ir_add_alt(c->ir, rule, &s);
        ci_cons_seq_free(&s);
    }
}

static uint32_t int_range(sc *c, long long lo, long long hi) {
    uint32_t r = ci_cons_ir_rule(c->ir, NULL);
    ci_cons_seq none = {0}, minus = {0};
    push_lit(c, &minus, "-");
    if (hi >= 0) uint_range(c, r, &none, lo > 0 ? lo : 0, hi);
    if (lo < 0) uint_range(c, r, &minus, hi < 0 ? -hi : 1, -lo);
    ci_cons_seq_free(&minus);
    return ci_cons_ref(r);
}

/* --------------------------------------------------------------- schemas */

static bool is_annotation(const char *k) {
    static const char *const ann[] = {"title", "description", "default", "examples", "$schema", "$id",
                                      "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions",
                                      NULL};
    for (int i = 0; ann[i]; i++)
        if (strcmp(k, ann[i]) == 0) return true;
    return false;
}

static bool is_supported(const char *k) {
    static const char *const sup[] = {"type", "properties", "required", "additionalProperties", "items",
                                      "minItems", "maxItems", "enum", "const", "pattern", "format", "minLength",
                                      "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                      "anyOf", "oneOf", "allOf", "$ref", NULL};
    for (int i = 0; sup[i]; i++)
        if (strcmp(k, sup[i]) == 0) return true;
    return is_annotation(k);
}

static uint32_t compile(sc *c, json_t *s, int depth, const char *path);

static void child_path(char *out, size_t cap, const char *path, const char *a, const char *b) {
    snprintf(out, cap, "%s/%s%s%s", path, a, b ? "/" : "", b ? b : "");
}

static uint32_t compile_ref(sc *c, const char *ref, const char *path) {
    for (size_t i = 0; i < c->n_refs; i++)
        if (strcmp(c->refs[i].ptr, ref) == 0) return ci_cons_ref(c->refs[i].rule);
    if (ref[0] != '#') return sc_fail(c, path, "only local $ref (\"#...\") is supported, not '%.100s'", ref), 0;
    /* resolve the JSON pointer */
    json_t *t = c->root;
    const char *p = ref + 1;
    char tok[256];
    while (*p && t) {
        if (*p != '/') return sc_fail(c, path, "bad $ref '%.100s'", ref), 0;
        p++;
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && p[1] == '0') tok[n++] = '~', p += 2;
            else if (p[0] == '~' && p[1] == '1') tok[n++] = '/', p += 2;
            else tok[n++] = *p++;
        }
        tok[n] = 0;
        if (json_is_object(t)) t = json_object_get(t, tok);
        else if (json_is_array(t)) t = json_array_get(t, (size_t)strtoul(tok, NULL, 10));
        else t = NULL;
    }
    if (!t) return sc_fail(c, path, "$ref '%.100s' does not resolve", ref), 0;
    uint32_t rule = ci_cons_ir_rule(c->ir, ref);
    if (c->n_refs == c->cap_refs) {
        c->cap_refs = c->cap_refs ? c->cap_refs * 2 : 16;
        c->refs = ci_realloc_array(c->refs, c->cap_refs, sizeof *c->refs);
    }
    c->refs[c->n_refs++] = (refmap){ci_strdup(ref), rule};
    if (c->n_pend == c->cap_pend) {
        c->cap_pend = c->cap_pend ? c->cap_pend * 2 : 16;
        c->pend = ci_realloc_array(c->pend, c->cap_pend, sizeof *c->pend);
    }
    c->pend[c->n_pend++] = (pending){t, rule, ci_strdup(ref)};
    return ci_cons_ref(rule);
}

static bool get_count(sc *c, json_t *s, const char *key, long *out, const char *path) {
    json_t *v = json_object_get(s, key);
    if (!v) return false;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return sc_fail(c, path, "'%s' must be a non-negative integer", key), false;
    if (json_integer_value(v) > CI_CONS_MAX_REPEAT)
        return sc_fail(c, path, "'%s' over 4096 is not supported", key), false;
    *out = (long)json_integer_value(v);
    return true;
}

static uint32_t compile_string(sc *c, json_t *s, const char *path) {
    json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    long min = 0, max = -1;
    bool has_min = get_count(c, s, "minLength", &min, path);
    bool has_max = get_count(c, s, "maxLength", &max, path); /* both read: each may report an error */
    bool has_len = has_min || has_max;
    if (c->rc) return 0;
    if (max >= 0 && min > max) return sc_fail(c, path, "minLength > maxLength%s", ""), 0;
    if ((pat || fmt) && has_len) return sc_fail(c, path, "%s combined with minLength/maxLength is not supported", pat ? "pattern" : "format"), 0;
    if (pat && fmt) return sc_fail(c, path, "pattern combined with format is not supported%s", ""), 0;
    if (pat) {
        if (!json_is_string(pat)) return sc_fail(c, path, "'pattern' must be a string%s", ""), 0;
        ci_cons_regex_opts o = {.universe = json_safe, .n_universe = 3, .search = true};
        uint32_t e = 0;
        cinfer_error err = {0};
        if (ci_cons_regex_compile(c->ir, json_string_value(pat), json_string_length(pat), &o, &e, &err) != CINFER_OK)
            return sc_fail(c, path, "bad pattern: %.250s", err.message), 0;
        ci_cons_seq q = {0};
        push_lit(c, &q, "\"");
        ci_cons_seq_push(&q, e);
        push_lit(c, &q, "\"");
        e = ci_cons_ir_group(c->ir, &q);
        ci_cons_seq_free(&q);
        return e;
    }
    if (fmt) {
        const char *f = json_is_string(fmt) ? json_string_value(fmt) : "";
        static const char date[] = "[0-9]{4}-(02-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(0[1-9]|[12][0-9]|30)|(0[13578]|1[02])-31)";
        static const char time[] = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[-+]([01][0-9]|2[0-3]):[0-5][0-9])";
        char re[512];
        if (strcmp(f, "date") == 0) snprintf(re, sizeof re, "\"%s\"", date);
        else if (strcmp(f, "time") == 0) snprintf(re, sizeof re, "\"%s\"", time);
        else if (strcmp(f, "date-time") == 0) snprintf(re, sizeof re, "\"%sT%s\"", date, time);
        else if (strcmp(f, "email") == 0)
            snprintf(re, sizeof re, "\"[a-z0-9]{1,16}(\\.[a-z0-9]{1,16}){0,2}@([a-z0-9]{1,16}\\.){1,2}[a-z]{2,6}\"");
        else if (strcmp(f, "uuid") == 0)
            snprintf(re, sizeof re, "\"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\"");
        else return sc_fail(c, path, "unsupported format '%.80s'", f), 0;
        return regex_elem(c, re);
    }
    if (!has_len) return any_string(c);
    return string_elem(c, min, max);
}

static bool get_bound(sc *c, json_t *s, const char *key, double *out, const char *path) {
    json_t *v = json_object_get(s, key);
    if (!v) return false;
    if (!json_is_number(v)) return sc_fail(c, path, "'%s' must be a number", key), false;
    *out = json_number_value(v);
    return true;
}

static uint32_t compile_number(sc *c, json_t *s, bool integer, const char *path) {
    double mn = 0, mx = 0, emn = 0, emx = 0;
    bool has_mn = get_bound(c, s, "minimum", &mn, path), has_mx = get_bound(c, s, "maximum", &mx, path);
    bool has_emn = get_bound(c, s, "exclusiveMinimum", &emn, path), has_emx = get_bound(c, s, "exclusiveMaximum", &emx, path);
    if (c->rc) return 0;
    if (!has_mn && !has_mx && !has_emn && !has_emx) return integer ? any_integer(c) : any_number(c);
    double lo = -(double)INT_LIMIT, hi = (double)INT_LIMIT;
    if (has_mn) lo = fmax(lo, ceil(mn));
    if (has_emn) lo = fmax(lo, floor(emn) + 1);
    if (has_mx) hi = fmin(hi, floor(mx));
    if (has_emx) hi = fmin(hi, ceil(emx) - 1);
    if (lo > hi) return sc_fail(c, path, "no integer satisfies the minimum/maximum bounds%s", ""), 0;
    long long ilo = (long long)lo, ihi = (long long)hi;
    uint32_t ints = int_range(c, ilo, ihi);
    if (integer) return ints;
    /* I.F with I in [max(lo,0), hi-1], and -(I.F) with I in [max(-hi,0), -lo-1] */
    uint32_t r = ci_cons_ir_rule(c->ir, NULL);
    alt(c, r, (uint32_t[]){ints, CI_CONS_END});
    uint32_t frac = regex_elem(c, "\\.[0-9]{1,16}");
    long long plo = ilo > 0 ? ilo : 0, phi = ihi - 1;
    ci_cons_seq none = {0}, minus = {0};
    if (plo <= phi) {
        uint32_t pr = ci_cons_ir_rule(c->ir, NULL);
        uint_range(c, pr, &none, plo, phi);
        alt(c, r, (uint32_t[]){ci_cons_ref(pr), frac, CI_CONS_END});
    }
    long long nlo = -ihi > 0 ? -ihi : 0, nhi = -ilo - 1;
    if (nlo <= nhi) {
        uint32_t nr = ci_cons_ir_rule(c->ir, NULL);
        push_lit(c, &minus, "-");
        uint_range(c, nr, &minus, nlo, nhi);
        alt(c, r, (uint32_t[]){ci_cons_ref(nr), frac, CI_CONS_END});
    }
    ci_cons_seq_free(&minus);
    return ci_cons_ref(r);
}

typedef struct kname { const char *s; size_t n; } kname;
static int cmp_kname(const void *a, const void *b) {
    const kname *x = a, *y = b;
    int r = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return r ? r : (x->n > y->n) - (x->n < y->n);
}

/* A JSON key (with quotes) that is none of `names` and uses no escapes:
 * a trie of the names where every step may leave the trie. */
static uint32_t other_key(sc *c, kname *names, size_t n, const char *path) {
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < names[i].n; k++) {
            unsigned char ch = (unsigned char)names[i].s[k];
            if (ch < 0x20 || ch >= 0x7F || ch == '"' || ch == '\\')
                return sc_fail(c, path, "additionalProperties with a property name that is not plain printable ASCII (%.60s)",
                               names[i].s), 0;
        }
    qsort(names, n, sizeof *names, cmp_kname);
    uint32_t any_char = ci_cons_ir_cp_class(c->ir, json_safe, 3, false);
    ci_cons_seq tail = {0};
    ci_cons_seq_push(&tail, ci_cons_ir_repeat(c->ir, any_char, 0, -1));
    push_lit(c, &tail, "\"");
    uint32_t free_tail = ci_cons_ir_group(c->ir, &tail);
    ci_cons_seq_free(&tail);
    typedef struct { size_t lo, hi, depth; uint32_t rule; } item;
    item *work = ci_malloc((n + 2) * sizeof *work);
    size_t nw = 0;
    uint32_t start = ci_cons_ir_rule(c->ir, NULL);
    work[nw++] = (item){0, n, 0, start};
    ci_cons_seq s = {0};
    while (nw > 0 && !c->ir->overflow) {
        item it = work[--nw];
        size_t lo = it.lo;
        bool word = false;
        while (lo < it.hi && names[lo].n == it.depth) lo++, word = true;
        if (!word) {
            s.n = 0;
            push_lit(c, &s, "\"");
            ci_cons_ir_add_alt(c->ir, it.rule, &s);
        }
        /* leave the trie: a first character not among the children */
        ci_cons_cp_range ex[130];
        size_t ne = 0;
        for (size_t k = lo; k < it.hi; k++) {
            unsigned char ch = (unsigned char)names[k].s[it.depth];
            if (ne == 0 || ex[ne - 1].lo != ch) ex[ne++] = (ci_cons_cp_range){ch, ch};
        }
        ci_cons_cp_range allowed[140];
        size_t na = 0;
        uint32_t next = 0x20;
        for (size_t k = 0; k <= ne; k++) {
            uint32_t stop = k < ne ? ex[k].lo : 0x110000;
            for (int j = 0; j < 3; j++) {
                uint32_t a = json_safe[j].lo > next ? json_safe[j].lo : next;
                uint32_t b = json_safe[j].hi < stop - 1 ? json_safe[j].hi : stop - 1;
                if (a <= b) allowed[na++] = (ci_cons_cp_range){a, b};
            }
            if (k < ne) next = ex[k].lo + 1;
        }
        s.n = 0;
        ci_cons_seq_push(&s, ci_cons_ir_cp_class(c->ir, allowed, na, false));
        ci_cons_seq_push(&s, free_tail);
        ci_cons_ir_add_alt(c->ir, it.rule, &s);
        /* follow the trie */
        while (lo < it.hi) {
            unsigned char ch = (unsigned char)names[lo].s[it.depth];
            size_t hi = lo;
            while (hi < it.hi && (unsigned char)names[hi].s[it.depth] == ch) hi++;
            uint32_t r = ci_cons_ir_rule(c->ir, NULL);
            s.n = 0;
            ci_cons_seq_push(&s, ci_cons_ir_byte(c->ir, ch));
            ci_cons_seq_push(&s, ci_cons_ref(r));
            ci_cons_ir_add_alt(c->ir, it.rule, &s);
            work[nw++] = (item){lo, hi, it.depth + 1, r};
            lo = hi;
        }
    }
    ci_cons_seq_free(&s);
    free(work);
    ci_cons_seq q = {0};
    push_lit(c, &q, "\"");
    ci_cons_seq_push(&q, ci_cons_ref(start));
    uint32_t e = ci_cons_ir_group(c->ir, &q);
    ci_cons_seq_free(&q);
    return e;
}

static uint32_t compile_object(sc *c, json_t *s, int depth, const char *path) {
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return sc_fail(c, path, "'properties' must be an object%s", ""), 0;
    if (req && !json_is_array(req)) return sc_fail(c, path, "'required' must be an array%s", ""), 0;
    if (addl && !json_is_boolean(addl) && !json_is_object(addl))
        return sc_fail(c, path, "'additionalProperties' must be a boolean or a schema%s", ""), 0;
    if (!props && !addl) return any_object(c); /* {"type": "object"}: any object */
    size_t n = props ? json_object_size(props) : 0;
    kname *names = ci_malloc((n + 1) * sizeof *names);
    uint32_t *kv = ci_malloc((n + 1) * sizeof *kv);
    bool *required = ci_calloc(n + 1, 1);
    size_t i = 0;
    const char *key;
    json_t *sub;
    json_object_foreach(props, key, sub) {
        char cp[512];
        child_path(cp, sizeof cp, path, "properties", key);
        names[i] = (kname){key, strlen(key)};
        json_t *ks = json_string(key);
        char *enc = json_dumps(ks, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(ks);
        ci_cons_seq q = {0};
        push_lit(c, &q, enc);
        free(enc);
        push_lit(c, &q, ":");
        push_ws(c, &q);
        ci_cons_seq_push(&q, compile(c, sub, depth + 1, cp));
        kv[i] = ci_cons_ir_group(c->ir, &q);
        ci_cons_seq_free(&q);
        i++;
        if (c->rc) break;
    }
    for (size_t k = 0; c->rc == CINFER_OK && req && k < json_array_size(req); k++) {
        json_t *r = json_array_get(req, k);
        if (!json_is_string(r)) {
            sc_fail(c, path, "'required' entries must be strings%s", "");
            break;
        }
        size_t j = 0;
        while (j < n && strcmp(names[j].s, json_string_value(r)) != 0) j++;
        if (j == n) {
            sc_fail(c, path, "required property '%.100s' is not in properties", json_string_value(r));
            break;
        }
        required[j] = true;
    }
    uint32_t extra = CI_CONS_END; /* member for additional properties */
    if (c->rc == CINFER_OK && addl && !(json_is_false(addl))) {
        char cp[512];
        child_path(cp, sizeof cp, path, "additionalProperties", NULL);
        uint32_t val = json_is_true(addl) ? any_value(c) : compile(c, addl, depth + 1, cp);
        kname *copy = ci_malloc((n + 1) * sizeof *copy);
        memcpy(copy, names, n * sizeof *names);
        uint32_t k = other_key(c, copy, n, path);
        free(copy);
        ci_cons_seq q = {0};
        ci_cons_seq_push(&q, k);
        push_lit(c, &q, ":");
        push_ws(c, &q);
        ci_cons_seq_push(&q, val);
        extra = ci_cons_ir_group(c->ir, &q);
        ci_cons_seq_free(&q);
    }
    uint32_t result = 0;
    if (c->rc == CINFER_OK) {
        /* R[i][first]: members from property i on; `first`: nothing emitted yet. */
        uint32_t next[2];
        for (int f = 0; f < 2; f++) {
            next[f] = ci_cons_ir_rule(c->ir, NULL);
            ci_cons_seq q = {0};
            ci_cons_ir_add_alt(c->ir, next[f], &q); /* no more members */
            if (extra != CI_CONS_END) {
                /* extras after the declared members: [","] extra ("," ws extra)* */
                ci_cons_seq more = {0};
                push_lit(c, &more, ",");
                push_ws(c, &more);
                ci_cons_seq_push(&more, extra);
                uint32_t rest = ci_cons_ir_repeat(c->ir, ci_cons_ir_group(c->ir, &more), 0, -1);
                if (f == 0) ci_cons_seq_append(&q, &more);
                else ci_cons_seq_push(&q, extra);
                ci_cons_seq_push(&q, rest);
                ci_cons_ir_add_alt(c->ir, next[f], &q);
                ci_cons_seq_free(&more);
            }
            ci_cons_seq_free(&q);
        }
        for (size_t k = n; k-- > 0;) {
            uint32_t cur[2];
            for (int f = 0; f < 2; f++) {
                cur[f] = ci_cons_ir_rule(c->ir, NULL);
                ci_cons_seq q = {0};
                if (f == 0) {
                    push_lit(c, &q, ",");
                    push_ws(c, &q);
                }
                ci_cons_seq_push(&q, kv[k]);
                ci_cons_seq_push(&q, ci_cons_ref(next[0]));
                ci_cons_ir_add_alt(c->ir, cur[f], &q);
                if (!required[k]) {
                    q.n = 0;
                    ci_cons_seq_push(&q, ci_cons_ref(next[f]));
                    ci_cons_ir_add_alt(c->ir, cur[f], &q);
                }
                ci_cons_seq_free(&q);
            }
            next[0] = cur[0], next[1] = cur[1];
        }
        ci_cons_seq q = {0};
        push_lit(c, &q, "{");
        push_ws(c, &q);
        ci_cons_seq_push(&q, ci_cons_ref(next[1]));
        push_ws(c, &q);
        push_lit(c, &q, "}");
        result = ci_cons_ir_group(c->ir, &q);
        ci_cons_seq_free(&q);
    }
    free(names), free(kv), free(required);
    return result;
}

static uint32_t compile_literal_values(sc *c, json_t *vals, json_t *type, const char *path) {
    uint32_t r = ci_cons_ir_rule(c->ir, NULL);
    size_t kept = 0;
    for (size_t k = 0; k < json_array_size(vals); k++) {
        json_t *v = json_array_get(vals, k);
        if (type) { /* keep values of the declared type(s) only */
            const char *tn = json_is_string(v) ? "string" : json_is_integer(v) ? "integer" : json_is_real(v) ? "number"
                             : json_is_boolean(v) ? "boolean" : json_is_null(v) ? "null" : json_is_array(v) ? "array" : "object";
            bool ok = false;
            for (size_t t = 0; t < (json_is_array(type) ? json_array_size(type) : 1); t++) {
                json_t *tt = json_is_array(type) ? json_array_get(type, t) : type;
                const char *ts = json_string_value(tt);
                if (ts && (strcmp(ts, tn) == 0 || (strcmp(ts, "number") == 0 && strcmp(tn, "integer") == 0))) ok = true;
            }
            if (!ok) continue;
        }
        char *enc = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!enc) continue;
        ci_cons_seq q = {0};
        push_lit(c, &q, enc);
        ci_cons_ir_add_alt(c->ir, r, &q);
        ci_cons_seq_free(&q);
        free(enc);
        kept++;
    }
    if (kept == 0) return sc_fail(c, path, "enum/const has no value of the declared type%s", ""), 0;
    return ci_cons_ref(r);
}

static uint32_t compile(sc *c, json_t *s, int depth, const char *path) {
    if (c->rc) return 0;
    if (depth > CI_CONS_MAX_NEST) {
        c->rc = ci_error(c->err, CINFER_ERR_LIMIT, "json schema: nested deeper than %d levels", CI_CONS_MAX_NEST);
        return 0;
    }
    if (++c->n_nodes > MAX_SCHEMA_NODES) {
        c->rc = ci_error(c->err, CINFER_ERR_LIMIT, "json schema: more than %d subschemas", MAX_SCHEMA_NODES);
        return 0;
    }
    if (json_is_true(s)) return any_value(c);
    if (json_is_false(s)) return sc_fail(c, path, "schema `false` matches nothing%s", ""), 0;
    if (!json_is_object(s)) return sc_fail(c, path, "a schema must be an object or a boolean%s", ""), 0;
    const char *key;
    json_t *v;
    size_t n_valid = 0;
    json_object_foreach(s, key, v) {
        if (!is_supported(key)) return sc_fail(c, path, "unsupported keyword '%.100s'", key), 0;
        if (!is_annotation(key)) n_valid++;
    }
    json_t *ref = json_object_get(s, "$ref");
    if (ref) {
        if (!json_is_string(ref)) return sc_fail(c, path, "'$ref' must be a string%s", ""), 0;
        if (n_valid > 1) return sc_fail(c, path, "$ref with sibling keywords is not supported%s", ""), 0;
        return compile_ref(c, json_string_value(ref), path);
    }
    json_t *type = json_object_get(s, "type");
    if (type && !json_is_string(type) && !json_is_array(type))
        return sc_fail(c, path, "'type' must be a string or an array%s", ""), 0;
    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (en || cn) {
        if (en && !json_is_array(en)) return sc_fail(c, path, "'enum' must be an array%s", ""), 0;
        if (n_valid > 1 + (type != NULL))
            return sc_fail(c, path, "%s combined with keywords other than type is not supported", en ? "enum" : "const"), 0;
        if (cn) {
            json_t *arr = json_array();
            json_array_append(arr, cn);
            uint32_t e = compile_literal_values(c, arr, type, path);
            json_decref(arr);
            return e;
        }
        return compile_literal_values(c, en, type, path);
    }
    const char *comb = json_object_get(s, "anyOf") ? "anyOf" : json_object_get(s, "oneOf") ? "oneOf"
                       : json_object_get(s, "allOf") ? "allOf" : NULL;
    if (comb) {
        json_t *arr = json_object_get(s, comb);
        if (!json_is_array(arr) || json_array_size(arr) == 0) return sc_fail(c, path, "'%s' must be a non-empty array", comb), 0;
        if (n_valid > 1) return sc_fail(c, path, "%s with sibling keywords is not supported", comb), 0;
        if (strcmp(comb, "allOf") == 0 && json_array_size(arr) != 1)
            return sc_fail(c, path, "allOf with more than one schema is not supported%s", ""), 0;
        uint32_t r = ci_cons_ir_rule(c->ir, NULL);
        for (size_t k = 0; k < json_array_size(arr) && c->rc == CINFER_OK; k++) {
            char cp[512], idx[24];
            snprintf(idx, sizeof idx, "%zu", k);
            child_path(cp, sizeof cp, path, comb, idx);
            uint32_t e = compile(c, json_array_get(arr, k), depth + 1, cp);
            alt(c, r, (uint32_t[]){e, CI_CONS_END});
        }
        return ci_cons_ref(r);
    }
    /* Types: declared, or implied by the keywords present, or any value. */
    static const char *const all_types[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
    bool want[7] = {0};
    if (type) {
        size_t nt = json_is_array(type) ? json_array_size(type) : 1;
        if (nt == 0) return sc_fail(c, path, "'type' is an empty array%s", ""), 0;
        for (size_t t = 0; t < nt; t++) {
            const char *ts = json_string_value(json_is_array(type) ? json_array_get(type, t) : type);
            int k = 0;
            while (k < 7 && (!ts || strcmp(ts, all_types[k]) != 0)) k++;
            if (k == 7) return sc_fail(c, path, "unknown type '%.60s'", ts ? ts : "?"), 0;
            want[k] = true;
        }
        if (want[3]) want[4] = false; /* number covers integer */
    } else if (n_valid == 0) {
        return any_value(c);
    } else {
        want[0] = json_object_get(s, "properties") || json_object_get(s, "required") || json_object_get(s, "additionalProperties");
        want[1] = json_object_get(s, "items") || json_object_get(s, "minItems") || json_object_get(s, "maxItems");
        want[2] = json_object_get(s, "pattern") || json_object_get(s, "format") || json_object_get(s, "minLength") || json_object_get(s, "maxLength");
        want[3] = json_object_get(s, "minimum") || json_object_get(s, "maximum") || json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum");
    }
    uint32_t r = ci_cons_ir_rule(c->ir, NULL);
    for (int k = 0; k < 7 && c->rc == CINFER_OK; k++) {
        if (!want[k]) continue;
        uint32_t e = 0;
        switch (k) {
        case 0: e = compile_object(c, s, depth, path); break;
        case 1: {
            json_t *items = json_object_get(s, "items");
            long mn = 0, mx = -1;
            get_count(c, s, "minItems", &mn, path);
            get_count(c, s, "maxItems", &mx, path);
            if (c->rc) break;
            if (mx >= 0 && mn > mx) {
                sc_fail(c, path, "minItems > maxItems%s", "");
                break;
            }
            if (items && json_is_array(items)) {
                sc_fail(c, path, "tuple 'items' (an array) is not supported%s", "");
                break;
            }
            char cp[512];
            child_path(cp, sizeof cp, path, "items", NULL);
            uint32_t it = items ? compile(c, items, depth + 1, cp) : any_value(c);
            e = array_of(c, it, mn, mx);
            break;
        }
        case 2: e = compile_string(c, s, path); break;
        case 3: e = compile_number(c, s, false, path); break;
        case 4: e = compile_number(c, s, true, path); break;
        case 5: {
            uint32_t b = ci_cons_ir_rule(c->ir, NULL);
            alt(c, b, (uint32_t[]){lit(c, "true"), CI_CONS_END});
            alt(c, b, (uint32_t[]){lit(c, "false"), CI_CONS_END});
            e = ci_cons_ref(b);
            break;
        }
        case 6: e = lit(c, "null"); break;
        }
        if (c->rc == CINFER_OK) alt(c, r, (uint32_t[]){e, CI_CONS_END});
    }
    return ci_cons_ref(r);
}

int ci_cons_schema_compile(ci_cons_ir *ir, const char *src, size_t len, bool any_object_only,
                           const ci_cons_options *o, uint32_t *root, cinfer_error *err) {
    sc c = {.ir = ir, .ws_max = o->json_ws_max, .err = err, .rc = CINFER_OK,
            .r_ws = -1, .r_value = -1, .r_string = -1, .r_number = -1, .r_integer = -1,
            .r_object = -1, .r_array = -1, .r_char = -1};
    *root = ci_cons_ir_rule(ir, "root");
    if (any_object_only) {
        alt(&c, *root, (uint32_t[]){any_object(&c), CI_CONS_END});
        return c.rc;
    }
    json_error_t jerr;
    c.root = json_loadb(src, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!c.root) return ci_error(err, CINFER_ERR_FORMAT, "json schema: invalid JSON: %s (line %d, column %d)",
                                 jerr.text, jerr.line, jerr.column);
    uint32_t e = compile(&c, c.root, 0, "");
    if (c.rc == CINFER_OK) alt(&c, *root, (uint32_t[]){e, CI_CONS_END});
    for (size_t k = 0; k < c.n_pend && c.rc == CINFER_OK; k++) {
        uint32_t x = compile(&c, c.pend[k].s, 0, c.pend[k].path);
        if (c.rc == CINFER_OK) alt(&c, c.pend[k].rule, (uint32_t[]){x, CI_CONS_END});
    }
    if (c.rc == CINFER_OK && ir->overflow)
        c.rc = ci_error(err, CINFER_ERR_LIMIT, "json schema: too large after expansion (over %u rules or %u elements)",
                        CI_CONS_MAX_RULES, CI_CONS_MAX_ELEMS);
    for (size_t k = 0; k < c.n_refs; k++) free(c.refs[k].ptr);
    for (size_t k = 0; k < c.n_pend; k++) free(c.pend[k].path);
    free(c.refs), free(c.pend);
    json_decref(c.root);
    return c.rc;
}
