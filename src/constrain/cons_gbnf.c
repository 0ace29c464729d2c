/*
 * cons_gbnf.c — GBNF grammars as llama.cpp writes them, compiled into the
 * grammar IR.
 *
 *   root  ::= "{" ws pair ("," ws pair)* "}"    # comments to end of line
 *   pair  ::= [a-z]+ ":" [^\x00-\x1f,}]{1,8}
 *
 * Supported: rules `name ::= alternatives` (names: letters, digits, '-',
 * '_'), string literals with escapes (\n \r \t \\ \" \[ \] \xHH \uHHHH
 * \UHHHHHHHH), character classes with ranges and ^ negation (code points;
 * matched as UTF-8), `.` (any code point), grouping, |, * + ?, {m} {m,}
 * {m,n} {,n}. The start rule is `root`. Newlines may appear anywhere
 * between terms (a new rule starts at `name ::=`), which accepts every
 * grammar llama.cpp accepts plus multi-line alternatives.
 *
 * Errors name the problem and the line: undefined rules, a missing root,
 * a rule defined twice, left recursion (found by cons_ir.c, which names the
 * cycle), token references (<...>, not supported), unterminated literals,
 * classes or groups, repetition counts over CI_CONS_MAX_REPEAT.
 */
#include "constrain/cons_internal.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gb {
    ci_cons_ir *ir;
    const char *s;
    size_t n, i;
    cinfer_error *err;
    int rc;
    /* user rule names -> rule id (open addressing) */
    uint32_t *slot_rule;
    size_t cap;
} gb;

static int gb_fail(gb *g, const char *what) {
    if (g->rc == CINFER_OK) {
        size_t line = 1;
        for (size_t k = 0; k < g->i && k < g->n; k++) line += g->s[k] == '\n';
        g->rc = ci_error(g->err, CINFER_ERR_FORMAT, "grammar: %s (line %zu)", what, line);
    }
    return g->rc;
}

static bool is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void skip_ws(gb *g) {
    while (g->i < g->n) {
        char c = g->s[g->i];
        if (c == '#') {
            while (g->i < g->n && g->s[g->i] != '\n') g->i++;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            g->i++;
        } else {
            break;
        }
    }
}

static uint64_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* Rule id for a user name, creating an undefined rule on first use. */
static uint32_t rule_for(gb *g, const char *name, size_t len) {
    if ((g->ir->n_rules + 1) * 2 > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        while ((g->ir->n_rules + 1) * 2 > cap) cap *= 2;
        uint32_t *ns = ci_malloc(cap * sizeof *ns);
        memset(ns, 0xFF, cap * sizeof *ns);
        for (size_t k = 0; k < g->cap; k++) {
            uint32_t r = g->slot_rule[k];
            if (r == UINT32_MAX) continue;
            const char *nm = g->ir->rules[r].name;
            size_t h = name_hash(nm, strlen(nm)) & (cap - 1);
            while (ns[h] != UINT32_MAX) h = (h + 1) & (cap - 1);
            ns[h] = r;
        }
        free(g->slot_rule);
        g->slot_rule = ns;
        g->cap = cap;
    }
    size_t h = name_hash(name, len) & (g->cap - 1);
    while (g->slot_rule[h] != UINT32_MAX) {
        const char *nm = g->ir->rules[g->slot_rule[h]].name;
        if (strlen(nm) == len && memcmp(nm, name, len) == 0) return g->slot_rule[h];
        h = (h + 1) & (g->cap - 1);
    }
    char *tmp = ci_strndup(name, len);
    uint32_t r = ci_cons_ir_rule(g->ir, tmp);
    free(tmp);
    if (!g->ir->overflow) g->slot_rule[h] = r;
    return r;
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One (possibly escaped) code point of a literal or class. */
static bool read_char(gb *g, uint32_t *cp) {
    if (g->i >= g->n) return gb_fail(g, "unexpected end of grammar"), false;
    if (g->s[g->i] != '\\') {
        size_t k = ci_cons_utf8_decode(g->s + g->i, g->n - g->i, cp);
        if (!k) return gb_fail(g, "invalid UTF-8"), false;
        g->i += k;
        return true;
    }
    g->i++;
    if (g->i >= g->n) return gb_fail(g, "trailing backslash"), false;
    char c = g->s[g->i++];
    int digits = 0;
    switch (c) {
    case 'n': *cp = '\n'; return true;
    case 'r': *cp = '\r'; return true;
    case 't': *cp = '\t'; return true;
    case '\\': case '"': case '[': case ']': case '-': case '^': *cp = (uint8_t)c; return true;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default: return gb_fail(g, "unknown escape"), false;
    }
    uint32_t v = 0;
    for (int k = 0; k < digits; k++) {
        if (g->i >= g->n || hexv(g->s[g->i]) < 0) return gb_fail(g, "bad hex escape"), false;
        v = v * 16 + (uint32_t)hexv(g->s[g->i++]);
    }
    if (v > 0x10FFFF) return gb_fail(g, "escape beyond U+10FFFF"), false;
    *cp = v;
    return true;
}

static uint32_t parse_alts(gb *g, uint32_t rule, int depth);

static bool parse_count(gb *g, long *v) {
    if (g->i >= g->n || g->s[g->i] < '0' || g->s[g->i] > '9') return false;
    long x = 0;
    while (g->i < g->n && g->s[g->i] >= '0' && g->s[g->i] <= '9') {
        x = x * 10 + (g->s[g->i++] - '0');
        if (x > 1000000) x = 1000000;
    }
    *v = x;
    return true;
}

/* Whether a rule definition `name ::=` starts at g->i. */
static bool at_rule_start(gb *g) {
    size_t k = g->i;
    while (k < g->n && is_word(g->s[k])) k++;
    if (k == g->i) return false;
    while (k < g->n && (g->s[k] == ' ' || g->s[k] == '\t' || g->s[k] == '\n' || g->s[k] == '\r')) k++;
    return k + 3 <= g->n && memcmp(g->s + k, "::=", 3) == 0;
}

static uint32_t parse_term(gb *g, int depth) {
    char c = g->s[g->i];
    if (c == '"') {
        g->i++;
        ci_cons_seq seq = {0};
        while (g->rc == CINFER_OK) {
            if (g->i >= g->n) {
                gb_fail(g, "unterminated string literal");
                break;
            }
            if (g->s[g->i] == '"') {
                g->i++;
                break;
            }
            uint32_t cp;
            if (!read_char(g, &cp)) break;
            char buf[4];
            size_t k = ci_cons_utf8_encode(cp, buf);
            ci_cons_seq_lit(g->ir, &seq, buf, k);
        }
        uint32_t r = 0;
        if (g->rc == CINFER_OK) {
            uint32_t rule = ci_cons_ir_rule(g->ir, NULL);
            ci_cons_ir_add_alt(g->ir, rule, &seq); /* also covers "" (the empty string) */
            r = ci_cons_ref(rule);
        }
        ci_cons_seq_free(&seq);
        return r;
    }
    if (c == '[') {
        g->i++;
        bool neg = false;
        if (g->i < g->n && g->s[g->i] == '^') neg = true, g->i++;
        ci_cons_cp_range *r = NULL;
        size_t n = 0, cap = 0;
        while (g->rc == CINFER_OK) {
            if (g->i >= g->n) {
                gb_fail(g, "unterminated character class");
                break;
            }
            if (g->s[g->i] == ']') {
                g->i++;
                break;
            }
            uint32_t lo, hi;
            if (!read_char(g, &lo)) break;
            hi = lo;
            if (g->i + 1 < g->n && g->s[g->i] == '-' && g->s[g->i + 1] != ']') {
                g->i++;
                if (!read_char(g, &hi)) break;
                if (hi < lo) {
                    gb_fail(g, "character range out of order");
                    break;
                }
            }
            if (n == cap) cap = cap ? cap * 2 : 8, r = ci_realloc_array(r, cap, sizeof *r);
            r[n++] = (ci_cons_cp_range){lo, hi};
        }
        uint32_t e = 0;
        if (g->rc == CINFER_OK) e = ci_cons_ir_cp_class(g->ir, r, n, neg);
        free(r);
        return e;
    }
    if (c == '.') {
        g->i++;
        ci_cons_cp_range all = {0, 0x10FFFF};
        return ci_cons_ir_cp_class(g->ir, &all, 1, false);
    }
    if (c == '(') {
        g->i++;
        if (depth >= CI_CONS_MAX_NEST) return gb_fail(g, "groups nested too deeply"), 0;
        uint32_t rule = ci_cons_ir_rule(g->ir, NULL);
        parse_alts(g, rule, depth + 1);
        if (g->rc != CINFER_OK) return 0;
        skip_ws(g);
        if (g->i >= g->n || g->s[g->i] != ')') return gb_fail(g, "missing )"), 0;
        g->i++;
        return ci_cons_ref(rule);
    }
    if (c == '<') return gb_fail(g, "token references (<...>) are not supported"), 0;
    if (is_word(c)) {
        size_t st = g->i;
        while (g->i < g->n && is_word(g->s[g->i])) g->i++;
        return ci_cons_ref(rule_for(g, g->s + st, g->i - st));
    }
    return gb_fail(g, "unexpected character"), 0;
}

static void parse_seq(gb *g, uint32_t rule, int depth) {
    ci_cons_seq seq = {0};
    for (;;) {
        skip_ws(g);
        if (g->i >= g->n || g->s[g->i] == '|' || g->s[g->i] == ')') break;
        if (depth == 0 && at_rule_start(g)) break;
        uint32_t t = parse_term(g, depth);
        if (g->rc != CINFER_OK) break;
        long min = 1, max = 1;
        if (g->i < g->n) {
            char q = g->s[g->i];
            if (q == '*') min = 0, max = -1, g->i++;
            else if (q == '+') min = 1, max = -1, g->i++;
            else if (q == '?') min = 0, max = 1, g->i++;
            else if (q == '{') {
                g->i++;
                skip_ws(g);
                bool has_min = parse_count(g, &min);
                if (!has_min) min = 0;
                skip_ws(g);
                max = min;
                if (g->i < g->n && g->s[g->i] == ',') {
                    g->i++;
                    skip_ws(g);
                    if (!parse_count(g, &max)) max = -1;
                    skip_ws(g);
                } else if (!has_min) {
                    gb_fail(g, "bad {m,n} repetition");
                    break;
                }
                if (g->i >= g->n || g->s[g->i] != '}') {
                    gb_fail(g, "bad {m,n} repetition");
                    break;
                }
                g->i++;
                if (min > CI_CONS_MAX_REPEAT || max > CI_CONS_MAX_REPEAT) {
                    gb_fail(g, "repetition count over 4096");
                    break;
                }
                if (max >= 0 && max < min) {
                    gb_fail(g, "{m,n} with n < m");
                    break;
                }
            }
        }
        if (!(min == 1 && max == 1)) t = ci_cons_ir_repeat(g->ir, t, min, max);
        ci_cons_seq_push(&seq, t);
        if (g->ir->overflow) break;
    }
    if (g->rc == CINFER_OK) ci_cons_ir_add_alt(g->ir, rule, &seq);
    ci_cons_seq_free(&seq);
}

static uint32_t parse_alts(gb *g, uint32_t rule, int depth) {
    for (;;) {
        parse_seq(g, rule, depth);
        if (g->rc != CINFER_OK) break;
        skip_ws(g);
        if (g->i < g->n && g->s[g->i] == '|') {
            g->i++;
            continue;
        }
        break;
    }
    return rule;
}

int ci_cons_gbnf_compile(ci_cons_ir *ir, const char *src, size_t len, uint32_t *root, cinfer_error *err) {
    gb g = {.ir = ir, .s = src, .n = len, .err = err, .rc = CINFER_OK};
    bool any = false;
    for (;;) {
        skip_ws(&g);
        if (g.i >= g.n) break;
        size_t st = g.i;
        while (g.i < g.n && is_word(g.s[g.i])) g.i++;
        if (g.i == st) {
            gb_fail(&g, "expected a rule name");
            break;
        }
        uint32_t r = rule_for(&g, g.s + st, g.i - st);
        skip_ws(&g);
        if (g.i + 3 > g.n || memcmp(g.s + g.i, "::=", 3) != 0) {
            gb_fail(&g, "expected ::= after the rule name");
            break;
        }
        g.i += 3;
        if (!ir->overflow && ir->rules[r].defined) {
            char msg[160];
            snprintf(msg, sizeof msg, "rule '%.100s' defined twice", ir->rules[r].name);
            gb_fail(&g, msg);
            break;
        }
        parse_alts(&g, r, 0);
        if (g.rc != CINFER_OK) break;
        if (g.i < g.n && g.s[g.i] == ')') {
            gb_fail(&g, "unbalanced )");
            break;
        }
        any = true;
        if (ir->overflow) break;
    }
    if (g.rc == CINFER_OK && ir->overflow)
        g.rc = ci_error(err, CINFER_ERR_LIMIT, "grammar too large after expanding repetitions");
    if (g.rc == CINFER_OK && !any) g.rc = ci_error(err, CINFER_ERR_FORMAT, "grammar: no rules");
    if (g.rc == CINFER_OK) {
        long r = -1;
        for (size_t k = 0; k < g.cap; k++)
            if (g.slot_rule[k] != UINT32_MAX && strcmp(ir->rules[g.slot_rule[k]].name, "root") == 0) r = g.slot_rule[k];
        if (r < 0 || !ir->rules[r].defined) g.rc = ci_error(err, CINFER_ERR_FORMAT, "grammar: no `root` rule");
        else *root = (uint32_t)r;
    }
    free(g.slot_rule);
    return g.rc;
}
