/*
 * cons_compile.c — the front door: ci_cons_compile() dispatches to the
 * compilers, checks the IR once (cons_ir.c), and wraps it as a refcounted,
 * shareable grammar; the choice-list compiler; the grammar cache.
 *
 * Choice lists become a trie of rules (one rule per branching point), so
 * the automaton is deterministic however many choices share a prefix.
 *
 * The cache is keyed by (kind, options, source) — a 64-bit hash to find the
 * entry, the full key compared to accept it — and evicts the least recently
 * used entry; entries are grammar references, so an evicted grammar lives
 * on while matchers still use it.
 */
#include "constrain/cons_internal.h"
#include "util/util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

ci_cons_options ci_cons_default_options(void) { return (ci_cons_options){.json_ws_max = 2}; }

/* ----------------------------------------------------------------- choice */

typedef struct choice_str { const char *s; size_t n; } choice_str;

static int cmp_choice(const void *a, const void *b) {
    const choice_str *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int compile_choice(ci_cons_ir *ir, const char *src, size_t len, uint32_t *root, cinfer_error *err) {
    json_error_t jerr;
    json_t *arr = json_loadb(src, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!arr) return ci_error(err, CINFER_ERR_FORMAT, "choice list: invalid JSON: %s (line %d)", jerr.text, jerr.line);
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        json_decref(arr);
        return ci_error(err, CINFER_ERR_FORMAT, "choice list: expected a non-empty JSON array of strings");
    }
    size_t n = json_array_size(arr);
    choice_str *c = ci_malloc(n * sizeof *c);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_is_string(e)) {
            free(c);
            json_decref(arr);
            return ci_error(err, CINFER_ERR_FORMAT, "choice list: element %zu is not a string", i);
        }
        c[i] = (choice_str){json_string_value(e), json_string_length(e)};
    }
    qsort(c, n, sizeof *c, cmp_choice);
    /* Work list of (lo, hi, depth, rule): strings [lo, hi) share `depth` bytes. */
    typedef struct { size_t lo, hi, depth; uint32_t rule; } item;
    item *work = ci_malloc((2 * n + 1) * sizeof *work);
    size_t nw = 0;
    *root = ci_cons_ir_rule(ir, "root");
    work[nw++] = (item){0, n, 0, *root};
    ci_cons_seq seq = {0};
    while (nw > 0 && !ir->overflow) {
        item it = work[--nw];
        size_t lo = it.lo;
        if (c[lo].n == it.depth) {
            seq.n = 0;
            ci_cons_ir_add_alt(ir, it.rule, &seq);
            while (lo < it.hi && c[lo].n == it.depth) lo++;
        }
        while (lo < it.hi) {
            uint8_t b = (uint8_t)c[lo].s[it.depth];
            size_t hi = lo;
            while (hi < it.hi && (uint8_t)c[hi].s[it.depth] == b) hi++;
            /* common prefix of the group beyond depth (sorted: first and last suffice) */
            size_t l = it.depth + 1;
            while (l < c[lo].n && l < c[hi - 1].n && c[lo].s[l] == c[hi - 1].s[l]) l++;
            seq.n = 0;
            ci_cons_seq_lit(ir, &seq, c[lo].s + it.depth, l - it.depth);
            if (!(hi - lo == 1 && c[lo].n == l)) {
                uint32_t r = ci_cons_ir_rule(ir, NULL);
                ci_cons_seq_push(&seq, ci_cons_ref(r));
                work[nw++] = (item){lo, hi, l, r};
            }
            ci_cons_ir_add_alt(ir, it.rule, &seq);
            lo = hi;
        }
    }
    ci_cons_seq_free(&seq);
    free(work);
    free(c);
    json_decref(arr);
    return CINFER_OK;
}

/* ---------------------------------------------------------------- compile */

ci_cons_grammar *ci_cons_compile(ci_cons_kind kind, const char *src, size_t len, const ci_cons_options *opts,
                                 const ci_cons_vocab *v, cinfer_error *err) {
    ci_cons_options o = opts ? *opts : ci_cons_default_options();
    if (!v) {
        ci_error(err, CINFER_ERR_INVALID, "constraint: no vocabulary");
        return NULL;
    }
    if (o.json_ws_max < 0 || o.json_ws_max > 64) {
        ci_error(err, CINFER_ERR_INVALID, "constraint: json_ws_max must be 0..64");
        return NULL;
    }
    if (!src && kind != CI_CONS_JSON_OBJECT) {
        ci_error(err, CINFER_ERR_INVALID, "constraint: no source");
        return NULL;
    }
    if (len > CI_CONS_MAX_SOURCE) {
        ci_error(err, CINFER_ERR_LIMIT, "constraint source too large: %zu bytes (limit %zu)", len, CI_CONS_MAX_SOURCE);
        return NULL;
    }
    ci_cons_ir ir;
    ci_cons_ir_init(&ir);
    uint32_t root = 0;
    int rc;
    switch (kind) {
    case CI_CONS_JSON_SCHEMA: rc = ci_cons_schema_compile(&ir, src, len, false, &o, &root, err); break;
    case CI_CONS_JSON_OBJECT: rc = ci_cons_schema_compile(&ir, NULL, 0, true, &o, &root, err); break;
    case CI_CONS_GBNF: rc = ci_cons_gbnf_compile(&ir, src, len, &root, err); break;
    case CI_CONS_CHOICE: rc = compile_choice(&ir, src, len, &root, err); break;
    case CI_CONS_REGEX: {
        uint32_t e = 0;
        rc = ci_cons_regex_compile(&ir, src, len, NULL, &e, err);
        if (rc == CINFER_OK) {
            root = ci_cons_ir_rule(&ir, "root");
            ci_cons_seq s = {0};
            ci_cons_seq_push(&s, e);
            ci_cons_ir_add_alt(&ir, root, &s);
            ci_cons_seq_free(&s);
        }
        break;
    }
    default: rc = ci_error(err, CINFER_ERR_INVALID, "constraint: unknown kind %d", (int)kind); break;
    }
    ci_cons_grammar *g = rc == CINFER_OK ? ci_cons_grammar_from_ir(&ir, root, v, err) : NULL;
    ci_cons_ir_free(&ir);
    return g;
}

ci_cons_grammar *ci_cons_grammar_from_ir(ci_cons_ir *ir, uint32_t root, const ci_cons_vocab *v, cinfer_error *err) {
    ci_cons_grammar *g = ci_calloc(1, sizeof *g);
    if (ci_cons_ir_finish(ir, root, g, err) != CINFER_OK) {
        free(g);
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->vocab = v;
    g->rt = ci_cons_runtime_new(g->n_classes);
    /* The start state must be within the automaton's bounds. */
    ci_cons_matcher *m = ci_cons_matcher_new(g);
    if (!m) {
        ci_error(err, CINFER_ERR_LIMIT, "constraint: the start state exceeds the automaton's bounds (too ambiguous)");
        ci_cons_grammar_unref(g);
        return NULL;
    }
    ci_cons_matcher_free(m);
    return g;
}

ci_cons_grammar *ci_cons_grammar_ref(ci_cons_grammar *g) {
    if (g) atomic_fetch_add(&g->refs, 1);
    return g;
}

void ci_cons_grammar_unref(ci_cons_grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    ci_cons_runtime_free(g->rt);
    ci_cons_grammar_free_ir(g);
    free(g);
}

void ci_cons_grammar_stats(const ci_cons_grammar *g, size_t *n_rules, size_t *n_positions) {
    if (n_rules) *n_rules = g->n_rules;
    if (n_positions) *n_positions = g->n_pos;
}

const ci_cons_vocab *ci_cons_grammar_vocab(const ci_cons_grammar *g) { return g->vocab; }

/* ------------------------------------------------------------------ cache */

typedef struct cache_entry {
    uint64_t hash;
    char *key;
    size_t key_len;
    ci_cons_grammar *g;
    uint64_t used;
} cache_entry;

struct ci_cons_cache {
    pthread_mutex_t mu;
    const ci_cons_vocab *vocab;
    cache_entry *e;
    size_t n, max;
    uint64_t clock;
};

ci_cons_cache *ci_cons_cache_new(const ci_cons_vocab *v, size_t max_entries) {
    ci_cons_cache *c = ci_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->vocab = v;
    c->max = max_entries ? max_entries : 1;
    c->e = ci_calloc(c->max, sizeof *c->e);
    return c;
}

void ci_cons_cache_free(ci_cons_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) free(c->e[i].key), ci_cons_grammar_unref(c->e[i].g);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

ci_cons_grammar *ci_cons_cache_get(ci_cons_cache *c, ci_cons_kind kind, const char *src, size_t len,
                                   const ci_cons_options *opts, cinfer_error *err) {
    ci_cons_options o = opts ? *opts : ci_cons_default_options();
    if (len > CI_CONS_MAX_SOURCE) {
        ci_error(err, CINFER_ERR_LIMIT, "constraint source too large: %zu bytes (limit %zu)", len, CI_CONS_MAX_SOURCE);
        return NULL;
    }
    ci_buf key = {0};
    ci_buf_printf(&key, "%d:%d:", (int)kind, o.json_ws_max);
    if (src) ci_buf_append(&key, src, len);
    uint64_t h = hash_bytes(key.data, key.len);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].hash == h && c->e[i].key_len == key.len && memcmp(c->e[i].key, key.data, key.len) == 0) {
            c->e[i].used = ++c->clock;
            ci_cons_grammar *g = ci_cons_grammar_ref(c->e[i].g);
            pthread_mutex_unlock(&c->mu);
            ci_buf_free(&key);
            return g;
        }
    pthread_mutex_unlock(&c->mu);
    /* Compile outside the lock: a slow schema must not block other requests. */
    ci_cons_grammar *g = ci_cons_compile(kind, src, len, &o, c->vocab, err);
    if (!g) {
        ci_buf_free(&key);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    size_t slot = c->n;
    if (c->n == c->max) {
        slot = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->e[i].used < c->e[slot].used) slot = i;
        free(c->e[slot].key);
        ci_cons_grammar_unref(c->e[slot].g);
    } else {
        c->n++;
    }
    size_t kl = key.len;
    c->e[slot] = (cache_entry){.hash = h, .key = ci_buf_take(&key, NULL), .key_len = kl,
                               .g = ci_cons_grammar_ref(g), .used = ++c->clock};
    pthread_mutex_unlock(&c->mu);
    return g;
}
