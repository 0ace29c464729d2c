/*
 * cons_regex.c — regular expressions (the subset used for structured output)
 * compiled into the grammar IR.
 *
 * Semantics are JavaScript's with the `u` flag, matched against the whole
 * output (full match): literals, escapes (\d \w \s \D \W \S \n \t \r \f \v
 * \0 \xHH \uHHHH \u{H..} and escaped punctuation), classes with ranges and
 * negation, `.` (any code point but \n \r U+2028 U+2029), groups (capturing,
 * (?:...), (?<name>...)), alternation, and the quantifiers * + ? {m} {m,}
 * {m,n} (a trailing lazy `?` changes nothing for a constraint). `^` and `$`
 * are accepted at the ends of a top-level alternative only.
 *
 * Rejected with an error naming the construct: backreferences, lookaround,
 * word boundaries, inline flags, possessive quantifiers, {m,n} with bounds
 * over CI_CONS_MAX_REPEAT, an unbounded repetition of something that can
 * match the empty string (it would be left recursion, and it is the shape
 * of catastrophic patterns like (a*)*), groups nested deeper than
 * CI_CONS_MAX_NEST, and patterns whose expansion exceeds the IR bounds.
 *
 * JSON Schema `pattern` (o->search): unanchored unless ^ / $ are given, and
 * every character is restricted to o->universe (characters a JSON string
 * can hold without an escape), so the JSON text is the string value itself.
 */
#include "constrain/cons_internal.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct rx {
    ci_cons_ir *ir;
    const char *s;
    size_t n, i;
    const ci_cons_regex_opts *o;
    cinfer_error *err;
    int rc;
} rx;

typedef struct ranges {
    ci_cons_cp_range *r;
    size_t n, cap;
} ranges;

static void rg_add(ranges *g, uint32_t lo, uint32_t hi) {
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->r = ci_realloc_array(g->r, g->cap, sizeof *g->r);
    }
    g->r[g->n++] = (ci_cons_cp_range){lo, hi};
}

static void rg_complement(ranges *g) {
    g->n = ci_cons_cp_normalize(g->r, g->n);
    ranges c = {0};
    uint32_t next = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->r[i].lo > next) rg_add(&c, next, g->r[i].lo - 1);
        next = g->r[i].hi + 1;
    }
    if (next <= 0x10FFFF) rg_add(&c, next, 0x10FFFF);
    free(g->r);
    *g = c;
}

static int rx_fail(rx *x, const char *what) {
    if (x->rc == CINFER_OK)
        x->rc = ci_error(x->err, CINFER_ERR_FORMAT, "regex: %s at offset %zu", what, x->i);
    return x->rc;
}

static void add_class_escape(ranges *g, char c) {
    switch (c) {
    case 'd': rg_add(g, '0', '9'); break;
    case 'w': rg_add(g, '0', '9'), rg_add(g, 'A', 'Z'), rg_add(g, 'a', 'z'), rg_add(g, '_', '_'); break;
    case 's':
        rg_add(g, 9, 13), rg_add(g, ' ', ' '), rg_add(g, 0xA0, 0xA0), rg_add(g, 0x1680, 0x1680);
        rg_add(g, 0x2000, 0x200A), rg_add(g, 0x2028, 0x2029), rg_add(g, 0x202F, 0x202F);
        rg_add(g, 0x205F, 0x205F), rg_add(g, 0x3000, 0x3000), rg_add(g, 0xFEFF, 0xFEFF);
        break;
    default: {
        ranges t = {0};
        add_class_escape(&t, (char)(c - 'A' + 'a'));
        rg_complement(&t);
        for (size_t i = 0; i < t.n; i++) rg_add(g, t.r[i].lo, t.r[i].hi);
        free(t.r);
    }
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex(rx *x, int digits, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < digits; k++) {
        if (x->i >= x->n || hexval(x->s[x->i]) < 0) return false;
        v = v * 16 + (uint32_t)hexval(x->s[x->i++]);
    }
    *out = v;
    return true;
}

/* After a backslash: a single code point (returns 1, *cp) or a class escape
 * added to g (returns 2). 0 on error. */
static int read_escape(rx *x, uint32_t *cp, ranges *g, bool in_class) {
    if (x->i >= x->n) return rx_fail(x, "trailing backslash"), 0;
    char c = x->s[x->i++];
    switch (c) {
    case 'd': case 'w': case 's': case 'D': case 'W': case 'S': add_class_escape(g, c); return 2;
    case 'n': *cp = '\n'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'v': *cp = '\v'; return 1;
    case '0': *cp = 0; return 1;
    case 'b':
        if (in_class) { *cp = '\b'; return 1; }
        return rx_fail(x, "word boundaries (\\b) are not supported"), 0;
    case 'B': return rx_fail(x, "word boundaries (\\B) are not supported"), 0;
    case 'x':
        if (!read_hex(x, 2, cp)) return rx_fail(x, "bad \\x escape"), 0;
        return 1;
    case 'u':
        if (x->i < x->n && x->s[x->i] == '{') {
            x->i++;
            uint32_t v = 0;
            int k = 0;
            while (x->i < x->n && hexval(x->s[x->i]) >= 0 && k < 8) v = v * 16 + (uint32_t)hexval(x->s[x->i++]), k++;
            if (k == 0 || x->i >= x->n || x->s[x->i] != '}' || v > 0x10FFFF) return rx_fail(x, "bad \\u{...} escape"), 0;
            x->i++;
            *cp = v;
            return 1;
        }
        if (!read_hex(x, 4, cp)) return rx_fail(x, "bad \\u escape"), 0;
        return 1;
    default:
        if ((c >= '1' && c <= '9') || c == 'k') return rx_fail(x, "backreferences are not supported"), 0;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return rx_fail(x, "unknown escape"), 0;
        *cp = (uint8_t)c;
        return 1;
    }
}

static bool read_cp(rx *x, uint32_t *cp) {
    size_t k = ci_cons_utf8_decode(x->s + x->i, x->n - x->i, cp);
    if (k == 0) return rx_fail(x, "invalid UTF-8"), false;
    x->i += k;
    return true;
}

/* Element for a set of code points, restricted to the universe if any. */
static uint32_t class_elem(rx *x, ranges *g, bool negate) {
    if (negate) rg_complement(g);
    if (x->o && x->o->universe) {
        ranges out = {0};
        g->n = ci_cons_cp_normalize(g->r, g->n);
        for (size_t i = 0; i < g->n; i++)
            for (size_t j = 0; j < x->o->n_universe; j++) {
                uint32_t lo = g->r[i].lo > x->o->universe[j].lo ? g->r[i].lo : x->o->universe[j].lo;
                uint32_t hi = g->r[i].hi < x->o->universe[j].hi ? g->r[i].hi : x->o->universe[j].hi;
                if (lo <= hi) rg_add(&out, lo, hi);
            }
        free(g->r);
        *g = out;
    }
    uint32_t e = ci_cons_ir_cp_class(x->ir, g->r, g->n, false);
    free(g->r);
    *g = (ranges){0};
    return e;
}

static uint32_t parse_class(rx *x) {
    ranges g = {0};
    bool neg = false;
    if (x->i < x->n && x->s[x->i] == '^') neg = true, x->i++;
    while (x->rc == CINFER_OK) {
        if (x->i >= x->n) {
            rx_fail(x, "unterminated character class");
            break;
        }
        if (x->s[x->i] == ']') { /* JS: [] matches nothing, [^] anything */
            x->i++;
            break;
        }
        uint32_t lo;
        if (x->s[x->i] == '\\') {
            x->i++;
            int k = read_escape(x, &lo, &g, true);
            if (k != 1) continue;
        } else if (!read_cp(x, &lo)) {
            break;
        }
        if (x->i + 1 < x->n && x->s[x->i] == '-' && x->s[x->i + 1] != ']') {
            x->i++;
            uint32_t hi;
            if (x->s[x->i] == '\\') {
                x->i++;
                ranges dummy = {0};
                int k = read_escape(x, &hi, &dummy, true);
                free(dummy.r);
                if (k != 1) {
                    rx_fail(x, "a class escape cannot end a range");
                    break;
                }
            } else if (!read_cp(x, &hi)) {
                break;
            }
            if (hi < lo) {
                rx_fail(x, "range out of order in character class");
                break;
            }
            rg_add(&g, lo, hi);
        } else {
            rg_add(&g, lo, lo);
        }
    }
    if (x->rc != CINFER_OK) {
        free(g.r);
        return 0;
    }
    return class_elem(x, &g, neg);
}

static uint32_t parse_alt(rx *x, int depth, bool *nullable, bool top);

static bool parse_uint(rx *x, long *out) {
    if (x->i >= x->n || x->s[x->i] < '0' || x->s[x->i] > '9') return false;
    long v = 0;
    while (x->i < x->n && x->s[x->i] >= '0' && x->s[x->i] <= '9') {
        v = v * 10 + (x->s[x->i++] - '0');
        if (v > 1000000) v = 1000000;
    }
    *out = v;
    return true;
}

/* One atom; *nullable says whether it can match "". Returns 0 with x->rc set on error. */
static uint32_t parse_atom(rx *x, int depth, bool *nullable) {
    *nullable = false;
    char c = x->s[x->i];
    if (c == '(') {
        x->i++;
        if (depth >= CI_CONS_MAX_NEST) return rx_fail(x, "groups nested too deeply"), 0;
        if (x->i < x->n && x->s[x->i] == '?') {
            if (x->i + 1 < x->n && x->s[x->i + 1] == ':') {
                x->i += 2;
            } else if (x->i + 2 < x->n && x->s[x->i + 1] == '<' && x->s[x->i + 2] != '=' && x->s[x->i + 2] != '!') {
                size_t e = x->i + 2;
                while (e < x->n && x->s[e] != '>') e++;
                if (e >= x->n) return rx_fail(x, "unterminated group name"), 0;
                x->i = e + 1;
            } else if (x->i + 1 < x->n && (x->s[x->i + 1] == '=' || x->s[x->i + 1] == '!' || x->s[x->i + 1] == '<')) {
                return rx_fail(x, "lookaround assertions are not supported"), 0;
            } else {
                return rx_fail(x, "inline flags and other (? groups are not supported"), 0;
            }
        }
        uint32_t e = parse_alt(x, depth + 1, nullable, false);
        if (x->rc != CINFER_OK) return 0;
        if (x->i >= x->n || x->s[x->i] != ')') return rx_fail(x, "missing )"), 0;
        x->i++;
        return e;
    }
    if (c == '[') {
        x->i++;
        return parse_class(x);
    }
    ranges g = {0};
    if (c == '.') {
        x->i++;
        rg_add(&g, '\n', '\n'), rg_add(&g, '\r', '\r'), rg_add(&g, 0x2028, 0x2029);
        return class_elem(x, &g, true);
    }
    if (c == ')') return rx_fail(x, "unbalanced )"), 0;
    if (c == '*' || c == '+' || c == '?' || c == '{') /* with the u flag a lone { is an error too */
        return rx_fail(x, "quantifier without an operand"), 0;
    if (c == '^' || c == '$') return rx_fail(x, "anchors are only supported at the start / end of the pattern"), 0;
    uint32_t cp;
    if (c == '\\') {
        x->i++;
        int k = read_escape(x, &cp, &g, false);
        if (k == 0) return 0;
        if (k == 2) return class_elem(x, &g, false);
    } else if (!read_cp(x, &cp)) {
        return 0;
    }
    rg_add(&g, cp, cp);
    return class_elem(x, &g, false);
}

static uint32_t parse_seq(rx *x, int depth, bool *nullable, bool top, bool *anch_start, bool *anch_end) {
    ci_cons_seq seq = {0};
    *nullable = true;
    if (top && x->i < x->n && x->s[x->i] == '^') *anch_start = true, x->i++;
    while (x->rc == CINFER_OK && x->i < x->n && x->s[x->i] != '|' && x->s[x->i] != ')') {
        if (top && x->s[x->i] == '$' && (x->i + 1 == x->n || x->s[x->i + 1] == '|')) {
            *anch_end = true;
            x->i++;
            break;
        }
        bool an;
        uint32_t a = parse_atom(x, depth, &an);
        if (x->rc != CINFER_OK) break;
        long min = 1, max = 1;
        if (x->i < x->n) {
            char q = x->s[x->i];
            size_t save = x->i;
            if (q == '*') min = 0, max = -1, x->i++;
            else if (q == '+') min = 1, max = -1, x->i++;
            else if (q == '?') min = 0, max = 1, x->i++;
            else if (q == '{') {
                x->i++;
                if (!parse_uint(x, &min)) {
                    x->i = save;
                    rx_fail(x, "bad {m,n} quantifier");
                    break;
                }
                max = min;
                if (x->i < x->n && x->s[x->i] == ',') {
                    x->i++;
                    if (!parse_uint(x, &max)) max = -1;
                }
                if (x->i >= x->n || x->s[x->i] != '}') {
                    rx_fail(x, "bad {m,n} quantifier");
                    break;
                }
                x->i++;
                if (max >= 0 && max < min) {
                    rx_fail(x, "{m,n} with n < m");
                    break;
                }
                if (min > CI_CONS_MAX_REPEAT || max > CI_CONS_MAX_REPEAT) {
                    rx_fail(x, "repetition count over 4096");
                    break;
                }
            }
            if (x->i != save && x->i < x->n) {
                if (x->s[x->i] == '?') x->i++; /* lazy: same language */
                else if (x->s[x->i] == '+') {
                    rx_fail(x, "possessive quantifiers are not supported");
                    break;
                }
            }
            if (x->i < x->n && x->i != save && (x->s[x->i] == '*' || x->s[x->i] == '+' || x->s[x->i] == '?' || x->s[x->i] == '{')) {
                rx_fail(x, "nested quantifier");
                break;
            }
        }
        if (max < 0 && an) {
            rx_fail(x, "unbounded repetition of a sub-pattern that can match the empty string (e.g. (a*)*) "
                       "is not supported");
            break;
        }
        if (!(min == 1 && max == 1)) a = ci_cons_ir_repeat(x->ir, a, min, max);
        if (!(an || min == 0)) *nullable = false;
        ci_cons_seq_push(&seq, a);
        if (x->ir->overflow) {
            rx_fail(x, "pattern too large after expanding repetitions");
            break;
        }
    }
    uint32_t r = 0;
    if (x->rc == CINFER_OK) {
        uint32_t rule = ci_cons_ir_rule(x->ir, NULL);
        ci_cons_ir_add_alt(x->ir, rule, &seq);
        r = ci_cons_ref(rule);
    }
    ci_cons_seq_free(&seq);
    return r;
}

static uint32_t any_star(rx *x) {
    ranges g = {0};
    rg_add(&g, 0, 0x10FFFF);
    uint32_t c = class_elem(x, &g, false);
    return ci_cons_ir_repeat(x->ir, c, 0, -1);
}

static uint32_t parse_alt(rx *x, int depth, bool *nullable, bool top) {
    uint32_t rule = ci_cons_ir_rule(x->ir, NULL);
    *nullable = false;
    ci_cons_seq one = {0};
    for (;;) {
        bool n, as = false, ae = false;
        uint32_t s = parse_seq(x, depth, &n, top, &as, &ae);
        if (x->rc != CINFER_OK) break;
        if (n) *nullable = true;
        one.n = 0;
        if (top && x->o && x->o->search && !as) ci_cons_seq_push(&one, any_star(x));
        ci_cons_seq_push(&one, s);
        if (top && x->o && x->o->search && !ae) ci_cons_seq_push(&one, any_star(x));
        ci_cons_ir_add_alt(x->ir, rule, &one);
        if (x->i < x->n && x->s[x->i] == '|') {
            x->i++;
            continue;
        }
        break;
    }
    ci_cons_seq_free(&one);
    return ci_cons_ref(rule);
}

int ci_cons_regex_compile(ci_cons_ir *ir, const char *src, size_t len, const ci_cons_regex_opts *o,
                          uint32_t *elem_out, cinfer_error *err) {
    if (len > CI_CONS_MAX_SOURCE)
        return ci_error(err, CINFER_ERR_LIMIT, "regex too large: %zu bytes (limit %zu)", len, CI_CONS_MAX_SOURCE);
    rx x = {.ir = ir, .s = src, .n = len, .o = o, .err = err, .rc = CINFER_OK};
    bool nullable;
    uint32_t e = parse_alt(&x, 0, &nullable, true);
    if (x.rc == CINFER_OK && x.i < x.n) rx_fail(&x, "unbalanced )");
    if (x.rc == CINFER_OK && ir->overflow)
        x.rc = ci_error(err, CINFER_ERR_LIMIT, "regex too large after expanding repetitions");
    if (x.rc == CINFER_OK) *elem_out = e;
    return x.rc;
}
