/*
 * cons_ir.c — building, checking and flattening the grammar IR (see
 * cons_internal.h).
 *
 * Checks done once here so the matcher never has to:
 *   - every referenced rule is defined (GBNF: "undefined rule 'x'");
 *   - alternatives that can never match (they contain a rule that derives
 *     no finite string, or an empty byte set) are pruned, so every state the
 *     matcher reaches can still be completed; an unproductive root is an
 *     error ("matches nothing");
 *   - left recursion (a rule reaching itself before consuming a byte) is an
 *     error naming the cycle: the matcher expands rules top-down, which
 *     would not terminate on it. Rewrite `a ::= a x | y` as `a ::= y x*`.
 * All graph walks use explicit work lists (no recursion on input size).
 *
 * Character classes over code points become UTF-8 byte sequences with the
 * usual range splitting (each sequence is a list of byte ranges), as RE2
 * and Rust's regex-syntax do.
 */
#include "constrain/cons_internal.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ci_cons_ir_init(ci_cons_ir *ir) { *ir = (ci_cons_ir){0}; }

void ci_cons_ir_free(ci_cons_ir *ir) {
    for (size_t i = 0; i < ir->n_rules; i++) {
        free(ir->rules[i].name);
        free(ir->rules[i].alt_off);
    }
    free(ir->rules);
    free(ir->elems);
    free(ir->sets);
    *ir = (ci_cons_ir){0};
}

void ci_cons_seq_push(ci_cons_seq *s, uint32_t e) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->e = ci_realloc_array(s->e, s->cap, sizeof *s->e);
    }
    s->e[s->n++] = e;
}

void ci_cons_seq_lit(ci_cons_ir *ir, ci_cons_seq *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++) ci_cons_seq_push(s, ci_cons_ir_byte(ir, (uint8_t)bytes[i]));
}

void ci_cons_seq_append(ci_cons_seq *s, const ci_cons_seq *t) {
    for (size_t i = 0; i < t->n; i++) ci_cons_seq_push(s, t->e[i]);
}

void ci_cons_seq_free(ci_cons_seq *s) {
    free(s->e);
    *s = (ci_cons_seq){0};
}

uint32_t ci_cons_ir_rule(ci_cons_ir *ir, const char *name) {
    if (ir->n_rules >= CI_CONS_MAX_RULES) {
        ir->overflow = true;
        return 0;
    }
    if (ir->n_rules == ir->cap_rules) {
        ir->cap_rules = ir->cap_rules ? ir->cap_rules * 2 : 64;
        ir->rules = ci_realloc_array(ir->rules, ir->cap_rules, sizeof *ir->rules);
    }
    ci_cons_rule_def *r = &ir->rules[ir->n_rules];
    *r = (ci_cons_rule_def){0};
    if (name) {
        r->name = ci_strdup(name);
    } else {
        char buf[32];
        snprintf(buf, sizeof buf, "_%zu", ir->n_rules);
        r->name = ci_strdup(buf);
    }
    return (uint32_t)ir->n_rules++;
}

long ci_cons_ir_find(const ci_cons_ir *ir, const char *name) {
    for (size_t i = 0; i < ir->n_rules; i++)
        if (strcmp(ir->rules[i].name, name) == 0) return (long)i;
    return -1;
}

void ci_cons_ir_add_alt(ci_cons_ir *ir, uint32_t rule, const ci_cons_seq *seq) {
    if (ir->overflow || rule >= ir->n_rules) return;
    if (ir->n_elems + seq->n > CI_CONS_MAX_ELEMS) {
        ir->overflow = true;
        return;
    }
    ci_cons_rule_def *r = &ir->rules[rule];
    r->defined = true;
    if (r->n_alts + 2 > r->cap_alts) {
        r->cap_alts = r->cap_alts ? r->cap_alts * 2 : 4;
        r->alt_off = ci_realloc_array(r->alt_off, r->cap_alts, sizeof *r->alt_off);
    }
    /* Each alternative is stored as [len, elems...] in ir->elems. */
    if (ir->n_elems + seq->n + 1 > ir->cap_elems) {
        size_t cap = ir->cap_elems ? ir->cap_elems : 256;
        while (cap < ir->n_elems + seq->n + 1) cap *= 2;
        ir->elems = ci_realloc_array(ir->elems, cap, sizeof *ir->elems);
        ir->cap_elems = cap;
    }
    r->alt_off[r->n_alts++] = (uint32_t)ir->n_elems;
    ir->elems[ir->n_elems++] = (uint32_t)seq->n;
    if (seq->n) memcpy(ir->elems + ir->n_elems, seq->e, seq->n * sizeof *seq->e);
    ir->n_elems += seq->n;
}

uint32_t ci_cons_ir_set(ci_cons_ir *ir, const ci_cons_set *s) {
    /* Most grammars use a few hundred distinct sets; search from the newest. */
    for (size_t i = ir->n_sets; i-- > 0;)
        if (memcmp(&ir->sets[i], s, sizeof *s) == 0) return (uint32_t)i;
    if (ir->n_sets >= CI_CONS_MAX_RULES) {
        ir->overflow = true;
        return 0;
    }
    if (ir->n_sets == ir->cap_sets) {
        ir->cap_sets = ir->cap_sets ? ir->cap_sets * 2 : 64;
        ir->sets = ci_realloc_array(ir->sets, ir->cap_sets, sizeof *ir->sets);
    }
    ir->sets[ir->n_sets] = *s;
    return (uint32_t)ir->n_sets++;
}

uint32_t ci_cons_ir_byte(ci_cons_ir *ir, uint8_t b) {
    ci_cons_set s = {{0}};
    ci_cons_set_add(&s, b);
    return ci_cons_ir_set(ir, &s);
}

uint32_t ci_cons_ir_group(ci_cons_ir *ir, const ci_cons_seq *seq) {
    if (seq->n == 1) return seq->e[0];
    uint32_t r = ci_cons_ir_rule(ir, NULL);
    ci_cons_ir_add_alt(ir, r, seq);
    return ci_cons_ref(r);
}

uint32_t ci_cons_ir_repeat(ci_cons_ir *ir, uint32_t x, long min, long max) {
    ci_cons_seq body = {0}, tmp = {0};
    for (long i = 0; i < min && !ir->overflow; i++) ci_cons_seq_push(&body, x);
    if (max < 0) {
        /* S ::= x S | ε  (right recursion: a tail call, constant stack) */
        uint32_t s = ci_cons_ir_rule(ir, NULL);
        ci_cons_seq_push(&tmp, x);
        ci_cons_seq_push(&tmp, ci_cons_ref(s));
        ci_cons_ir_add_alt(ir, s, &tmp);
        tmp.n = 0;
        ci_cons_ir_add_alt(ir, s, &tmp);
        ci_cons_seq_push(&body, ci_cons_ref(s));
    } else if (max > min) {
        /* O_1 ::= x | ε ; O_k ::= x O_{k-1} | ε */
        uint32_t prev = 0;
        for (long k = 1; k <= max - min && !ir->overflow; k++) {
            uint32_t o = ci_cons_ir_rule(ir, NULL);
            tmp.n = 0;
            ci_cons_seq_push(&tmp, x);
            if (k > 1) ci_cons_seq_push(&tmp, ci_cons_ref(prev));
            ci_cons_ir_add_alt(ir, o, &tmp);
            tmp.n = 0;
            ci_cons_ir_add_alt(ir, o, &tmp);
            prev = o;
        }
        ci_cons_seq_push(&body, ci_cons_ref(prev));
    }
    uint32_t r;
    if (body.n == 1) {
        r = body.e[0];
    } else {
        r = ci_cons_ir_rule(ir, NULL);
        ci_cons_ir_add_alt(ir, r, &body);
        r = ci_cons_ref(r);
    }
    ci_cons_seq_free(&body);
    ci_cons_seq_free(&tmp);
    return r;
}

/* ---------------------------------------------------------------- UTF-8 */

size_t ci_cons_utf8_encode(uint32_t cp, char *b) {
    if (cp < 0x80) { b[0] = (char)cp; return 1; }
    if (cp < 0x800) { b[0] = (char)(0xC0 | (cp >> 6)); b[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)); b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18)); b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t ci_cons_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    if (n == 0) return 0;
    if (u[0] < 0x80) { *cp = u[0]; return 1; }
    size_t len = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 0;
    if (len == 0 || len > n || u[0] > 0xF4) return 0;
    uint32_t c = u[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (u[i] & 0x3F);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_for_len[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

static int cmp_range(const void *a, const void *b) {
    const ci_cons_cp_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

size_t ci_cons_cp_normalize(ci_cons_cp_range *r, size_t n) {
    if (n == 0) return 0;
    qsort(r, n, sizeof *r, cmp_range);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (r[i].lo <= r[k].hi + 1 || r[k].hi == UINT32_MAX) {
            if (r[i].hi > r[k].hi) r[k].hi = r[i].hi;
        } else {
            r[++k] = r[i];
        }
    }
    return k + 1;
}

/* Appends to `rule` the UTF-8 byte-range sequences of [lo, hi] (no surrogates inside). */
static void utf8_ranges(ci_cons_ir *ir, uint32_t rule, uint32_t lo, uint32_t hi) {
    uint32_t stack[64][2];
    int sp = 0;
    stack[sp][0] = lo, stack[sp][1] = hi, sp++;
    ci_cons_seq seq = {0};
    static const uint32_t maxs[3] = {0x7F, 0x7FF, 0xFFFF};
    while (sp > 0 && !ir->overflow) {
        sp--;
        uint32_t a = stack[sp][0], b = stack[sp][1];
        if (a > b) continue;
        bool split = false;
        for (int i = 0; i < 3 && !split; i++) {
            if (a <= maxs[i] && b > maxs[i]) {
                stack[sp][0] = maxs[i] + 1, stack[sp][1] = b, sp++;
                stack[sp][0] = a, stack[sp][1] = maxs[i], sp++;
                split = true;
            }
        }
        if (split) continue;
        char ea[4], eb[4];
        size_t n = ci_cons_utf8_encode(a, ea);
        ci_cons_utf8_encode(b, eb);
        for (size_t i = 1; i < n && !split; i++) {
            uint32_t m = (1u << (6 * i)) - 1;
            if ((a & ~m) != (b & ~m)) {
                if ((a & m) != 0) {
                    stack[sp][0] = (a | m) + 1, stack[sp][1] = b, sp++;
                    stack[sp][0] = a, stack[sp][1] = a | m, sp++;
                    split = true;
                } else if ((b & m) != m) {
                    stack[sp][0] = b & ~m, stack[sp][1] = b, sp++;
                    stack[sp][0] = a, stack[sp][1] = (b & ~m) - 1, sp++;
                    split = true;
                }
            }
        }
        if (split) continue;
        seq.n = 0;
        for (size_t i = 0; i < n; i++) {
            ci_cons_set s = {{0}};
            ci_cons_set_range(&s, (uint8_t)ea[i], (uint8_t)eb[i]);
            ci_cons_seq_push(&seq, ci_cons_ir_set(ir, &s));
        }
        ci_cons_ir_add_alt(ir, rule, &seq);
    }
    ci_cons_seq_free(&seq);
}

uint32_t ci_cons_ir_cp_class(ci_cons_ir *ir, const ci_cons_cp_range *in, size_t n, bool negate) {
    /* Normalise, complement if asked, cut out surrogates and > U+10FFFF. */
    ci_cons_cp_range *r = ci_malloc((2 * n + 4) * sizeof *r);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i].lo <= in[i].hi) r[k++] = in[i];
    k = ci_cons_cp_normalize(r, k);
    if (negate) {
        ci_cons_cp_range *c = ci_malloc((k + 2) * sizeof *c);
        size_t m = 0;
        uint32_t next = 0;
        for (size_t i = 0; i < k; i++) {
            if (r[i].lo > next) c[m++] = (ci_cons_cp_range){next, r[i].lo - 1};
            next = r[i].hi >= 0x10FFFF ? 0x110000 : r[i].hi + 1;
        }
        if (next <= 0x10FFFF) c[m++] = (ci_cons_cp_range){next, 0x10FFFF};
        free(r);
        r = ci_malloc((2 * m + 4) * sizeof *r);
        memcpy(r, c, m * sizeof *c);
        k = m;
        free(c);
    }
    size_t m = 0;
    ci_cons_cp_range *out = ci_malloc((2 * k + 2) * sizeof *out);
    for (size_t i = 0; i < k; i++) {
        uint32_t lo = r[i].lo, hi = r[i].hi > 0x10FFFF ? 0x10FFFF : r[i].hi;
        if (lo > hi) continue;
        if (lo < 0xD800 && hi > 0xDFFF) {
            out[m++] = (ci_cons_cp_range){lo, 0xD7FF};
            out[m++] = (ci_cons_cp_range){0xE000, hi};
        } else if (lo >= 0xD800 && hi <= 0xDFFF) {
            continue;
        } else if (lo >= 0xD800 && lo <= 0xDFFF) {
            out[m++] = (ci_cons_cp_range){0xE000, hi};
        } else if (hi >= 0xD800 && hi <= 0xDFFF) {
            out[m++] = (ci_cons_cp_range){lo, 0xD7FF};
        } else {
            out[m++] = (ci_cons_cp_range){lo, hi};
        }
    }
    free(r);
    uint32_t result;
    if (m == 0) {
        ci_cons_set empty = {{0}};
        result = ci_cons_ir_set(ir, &empty); /* pruned by finish: matches nothing */
    } else if (out[m - 1].hi < 0x80) {
        ci_cons_set s = {{0}};
        for (size_t i = 0; i < m; i++) ci_cons_set_range(&s, out[i].lo, out[i].hi);
        result = ci_cons_ir_set(ir, &s);
    } else {
        uint32_t rule = ci_cons_ir_rule(ir, NULL);
        ci_cons_set ascii = {{0}};
        bool any_ascii = false;
        for (size_t i = 0; i < m; i++) {
            uint32_t lo = out[i].lo, hi = out[i].hi;
            if (lo < 0x80) {
                ci_cons_set_range(&ascii, lo, hi < 0x7F ? hi : 0x7F);
                any_ascii = true;
                lo = 0x80;
            }
            if (lo <= hi) utf8_ranges(ir, rule, lo, hi);
        }
        if (any_ascii) {
            ci_cons_seq one = {0};
            ci_cons_seq_push(&one, ci_cons_ir_set(ir, &ascii));
            ci_cons_ir_add_alt(ir, rule, &one);
            ci_cons_seq_free(&one);
        }
        result = ci_cons_ref(rule);
    }
    free(out);
    return result;
}

/* ---------------------------------------------------------------- checks */

static bool set_empty(const ci_cons_set *s) { return !(s->w[0] | s->w[1] | s->w[2] | s->w[3]); }

/* Fixpoint over alternatives with a work list: `good[r]` becomes true when
 * some alternative of r has all its elements good. `nullable` mode treats
 * byte sets as bad (they consume), productive mode treats non-empty sets as
 * good. Linear in the IR size. */
static void fixpoint(const ci_cons_ir *ir, bool nullable, bool *good) {
    size_t n_alts_total = 0;
    for (size_t r = 0; r < ir->n_rules; r++) n_alts_total += ir->rules[r].n_alts;
    uint32_t *missing = ci_calloc(n_alts_total + 1, sizeof *missing);
    uint32_t *alt_rule = ci_malloc((n_alts_total + 1) * sizeof *alt_rule);
    uint32_t *alt_elems = ci_malloc((n_alts_total + 1) * sizeof *alt_elems);
    /* users[r]: alternatives that reference r (CSR). */
    uint32_t *user_cnt = ci_calloc(ir->n_rules + 1, sizeof *user_cnt);
    size_t a = 0;
    for (size_t r = 0; r < ir->n_rules; r++)
        for (size_t j = 0; j < ir->rules[r].n_alts; j++, a++) {
            alt_rule[a] = (uint32_t)r;
            alt_elems[a] = ir->rules[r].alt_off[j];
            const uint32_t *e = ir->elems + alt_elems[a] + 1;
            uint32_t len = e[-1];
            for (uint32_t i = 0; i < len; i++) {
                if (ci_cons_is_ref(e[i])) {
                    missing[a]++;
                    user_cnt[e[i] & ~CI_CONS_REF_BIT]++;
                } else if (nullable || set_empty(&ir->sets[e[i]])) {
                    missing[a] = UINT32_MAX / 2; /* never satisfiable */
                }
            }
        }
    uint32_t *user_off = ci_malloc((ir->n_rules + 1) * sizeof *user_off);
    size_t total = 0;
    for (size_t r = 0; r < ir->n_rules; r++) user_off[r] = (uint32_t)total, total += user_cnt[r];
    user_off[ir->n_rules] = (uint32_t)total;
    uint32_t *users = ci_malloc((total + 1) * sizeof *users);
    memset(user_cnt, 0, (ir->n_rules + 1) * sizeof *user_cnt);
    for (size_t k = 0; k < n_alts_total; k++) {
        const uint32_t *e = ir->elems + alt_elems[k] + 1;
        for (uint32_t i = 0; i < e[-1]; i++)
            if (ci_cons_is_ref(e[i])) {
                uint32_t r = e[i] & ~CI_CONS_REF_BIT;
                users[user_off[r] + user_cnt[r]++] = (uint32_t)k;
            }
    }
    uint32_t *work = ci_malloc((ir->n_rules + 1) * sizeof *work);
    size_t nw = 0;
    memset(good, 0, ir->n_rules * sizeof *good);
    for (size_t k = 0; k < n_alts_total; k++)
        if (missing[k] == 0 && !good[alt_rule[k]]) good[alt_rule[k]] = true, work[nw++] = alt_rule[k];
    while (nw > 0) {
        uint32_t r = work[--nw];
        for (uint32_t u = user_off[r]; u < user_off[r + 1]; u++) {
            uint32_t k = users[u];
            if (--missing[k] == 0 && !good[alt_rule[k]]) good[alt_rule[k]] = true, work[nw++] = alt_rule[k];
        }
    }
    free(missing), free(alt_rule), free(alt_elems), free(user_cnt), free(user_off), free(users), free(work);
}

static bool alt_productive(const ci_cons_ir *ir, const uint32_t *e, uint32_t len, const bool *prod) {
    for (uint32_t i = 0; i < len; i++) {
        if (ci_cons_is_ref(e[i]) ? !prod[e[i] & ~CI_CONS_REF_BIT] : set_empty(&ir->sets[e[i]])) return false;
    }
    return true;
}

/* Left recursion: edges r -> s where s is referenced after a nullable
 * prefix of an alternative of r. Iterative DFS with colours. */
static int check_left_recursion(const ci_cons_ir *ir, const bool *prod, const bool *nullable, cinfer_error *err) {
    size_t n = ir->n_rules;
    uint8_t *color = ci_calloc(n, 1);
    /* stack of (rule, alt index, elem index) */
    typedef struct { uint32_t r, alt, el; } frame;
    frame *st = ci_malloc((n + 1) * sizeof *st);
    int rc = CINFER_OK;
    for (size_t start = 0; start < n && rc == CINFER_OK; start++) {
        if (color[start]) continue;
        size_t sp = 0;
        st[sp++] = (frame){(uint32_t)start, 0, 0};
        color[start] = 1;
        while (sp > 0 && rc == CINFER_OK) {
            frame *f = &st[sp - 1];
            const ci_cons_rule_def *R = &ir->rules[f->r];
            if (f->alt >= R->n_alts) {
                color[f->r] = 2;
                sp--;
                continue;
            }
            const uint32_t *e = ir->elems + R->alt_off[f->alt] + 1;
            uint32_t len = e[-1];
            if (!alt_productive(ir, e, len, prod) || f->el >= len) {
                f->alt++, f->el = 0;
                continue;
            }
            uint32_t x = e[f->el];
            /* Advance past this element for next time; stop after a non-nullable one. */
            bool null_here = ci_cons_is_ref(x) && nullable[x & ~CI_CONS_REF_BIT];
            if (null_here) f->el++;
            else f->alt++, f->el = 0;
            if (!ci_cons_is_ref(x)) continue;
            uint32_t s = x & ~CI_CONS_REF_BIT;
            if (color[s] == 1) {
                /* cycle: s ... f->r -> s */
                ci_buf b = {0};
                ci_buf_printf(&b, "%s", ir->rules[s].name);
                size_t i = sp;
                while (i > 0 && st[i - 1].r != s) i--;
                for (size_t j = i; j < sp; j++) ci_buf_printf(&b, " -> %s", ir->rules[st[j].r].name);
                ci_buf_printf(&b, " -> %s", ir->rules[s].name);
                rc = ci_error(err, CINFER_ERR_FORMAT,
                              "left recursion: %s (a rule must consume input before referring back to itself; "
                              "rewrite `a ::= a x | y` as `a ::= y x*`)", b.data);
                ci_buf_free(&b);
            } else if (color[s] == 0) {
                color[s] = 1;
                st[sp++] = (frame){s, 0, 0};
            }
        }
    }
    free(color), free(st);
    return rc;
}

static void compute_byte_classes(ci_cons_grammar *g) {
    uint8_t cls[256] = {0};
    int n = 1;
    int16_t remap[2][256];
    for (size_t s = 0; s < g->n_sets && n < 256; s++) {
        for (int i = 0; i < 256; i++) remap[0][i] = remap[1][i] = -1;
        int m = 0;
        for (int b = 0; b < 256; b++) {
            int in = ci_cons_set_has(&g->sets[s], (unsigned)b);
            if (remap[in][cls[b]] < 0) remap[in][cls[b]] = (int16_t)m++;
            cls[b] = (uint8_t)remap[in][cls[b]];
        }
        n = m;
    }
    if (n >= 256) {
        for (int b = 0; b < 256; b++) cls[b] = (uint8_t)b;
        n = 256;
    }
    memcpy(g->byte_class, cls, 256);
    for (int b = 255; b >= 0; b--) g->class_rep[cls[b]] = (uint8_t)b;
    g->n_classes = n;
}

int ci_cons_ir_finish(ci_cons_ir *ir, uint32_t root, ci_cons_grammar *g, cinfer_error *err) {
    if (ir->overflow)
        return ci_error(err, CINFER_ERR_LIMIT, "constraint too large: over %u rules or %u grammar elements",
                        CI_CONS_MAX_RULES, CI_CONS_MAX_ELEMS);
    for (size_t r = 0; r < ir->n_rules; r++)
        for (size_t j = 0; j < ir->rules[r].n_alts; j++) {
            const uint32_t *e = ir->elems + ir->rules[r].alt_off[j] + 1;
            for (uint32_t i = 0; i < e[-1]; i++)
                if (ci_cons_is_ref(e[i]) && !ir->rules[e[i] & ~CI_CONS_REF_BIT].defined)
                    return ci_error(err, CINFER_ERR_FORMAT, "undefined rule '%s' (used in rule '%s')",
                                    ir->rules[e[i] & ~CI_CONS_REF_BIT].name, ir->rules[r].name);
        }
    if (root >= ir->n_rules || !ir->rules[root].defined) return ci_error(err, CINFER_ERR_FORMAT, "no root rule");
    bool *prod = ci_malloc(ir->n_rules + 1);
    bool *nul = ci_malloc(ir->n_rules + 1);
    fixpoint(ir, false, prod);
    fixpoint(ir, true, nul);
    int rc = CINFER_OK;
    if (!prod[root]) {
        rc = ci_error(err, CINFER_ERR_FORMAT, "the constraint matches no string at all (rule '%s' can never complete)",
                      ir->rules[root].name);
    } else {
        rc = check_left_recursion(ir, prod, nul, err);
    }
    if (rc != CINFER_OK) {
        free(prod), free(nul);
        return rc;
    }
    /* Flatten, dropping alternatives that cannot match. */
    size_t n_pos = 0, n_alts = 0;
    for (size_t r = 0; r < ir->n_rules; r++)
        for (size_t j = 0; j < ir->rules[r].n_alts; j++) {
            const uint32_t *e = ir->elems + ir->rules[r].alt_off[j] + 1;
            n_pos += e[-1] + 1;
            n_alts++;
        }
    g->pos = ci_malloc((n_pos + 1) * sizeof *g->pos);
    g->rule_alts = ci_malloc((n_alts + 1) * sizeof *g->rule_alts);
    g->rule_alt_off = ci_malloc((ir->n_rules + 1) * sizeof *g->rule_alt_off);
    size_t p = 0, a = 0;
    for (size_t r = 0; r < ir->n_rules; r++) {
        g->rule_alt_off[r] = (uint32_t)a;
        for (size_t j = 0; j < ir->rules[r].n_alts; j++) {
            const uint32_t *e = ir->elems + ir->rules[r].alt_off[j] + 1;
            if (!alt_productive(ir, e, e[-1], prod)) continue;
            g->rule_alts[a++] = (uint32_t)p;
            memcpy(g->pos + p, e, e[-1] * sizeof *e);
            p += e[-1];
            g->pos[p++] = CI_CONS_END;
        }
    }
    g->rule_alt_off[ir->n_rules] = (uint32_t)a;
    g->n_pos = p;
    g->n_rules = ir->n_rules;
    g->root = root;
    g->sets = ir->sets;
    g->n_sets = ir->n_sets;
    ir->sets = NULL;
    ir->n_sets = ir->cap_sets = 0;
    compute_byte_classes(g);
    free(prod), free(nul);
    return CINFER_OK;
}

void ci_cons_grammar_free_ir(ci_cons_grammar *g) {
    free(g->pos);
    free(g->rule_alts);
    free(g->rule_alt_off);
    free(g->sets);
}
