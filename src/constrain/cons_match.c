/*
 * cons_match.c — the matcher: a pushdown automaton over bytes run as a lazily
 * built deterministic automaton, and the per-token mask.
 *
 * State. A state is the set of pushdown stacks the input so far can be in
 * (the grammar may be ambiguous, so several), each stack a list of positions
 * in the flattened IR: the top is the byte set to match next, the entries
 * below are where to return after each open rule. Calls in tail position do
 * not push (as in llama.cpp's sampler), so `x*` and JSON string bodies run in
 * constant stack. A stack that empties means "complete"; that is the
 * ACCEPTING flag. The canonical form (sorted, deduplicated stacks) is
 * interned, so equal states have one id.
 *
 * Why this and not Earley: with left recursion rejected at compile time the
 * top-down expansion always terminates, states are small values that can be
 * hashed, and once a state has an id, transitions (state, byte class) ->
 * state are memoised in a table: after warm-up the automaton runs like a
 * DFA, one array load per byte. The stacks stay exact for recursive
 * grammars ($ref, nested JSON) up to CI_CONS_MAX_STACK deep.
 *
 * Mask. For a state, walk the vocabulary trie (cons_vocab.c) in pre-order
 * with the memoised transitions, skipping dead subtrees. A subtree is
 * accepted whole, without visiting it, when every byte used below it maps
 * the current state to one "dominant" successor, and so on for as deep as
 * the subtree goes (a string body loops on itself; a counted string steps
 * through its counter states) — that is what makes free-text states cheap.
 * A counter at its bound (k characters left, then every character below is
 * dead) takes the first entries of the node's token list sorted by
 * character count (cons_vocab.c) instead of walking the subtree: exact,
 * because the tokens with at most k characters below stay on the live
 * chain and every longer one dies at character k + 1.
 * The finished mask is memoised per state too, so the per-token cost in
 * steady state is one hash lookup and a 19 KB copy.
 *
 * Sharing. The memo (states, transitions, masks) belongs to the grammar and
 * is guarded by one mutex: all sequences using a grammar share the work.
 * When it passes CI_CONS_MAX_STATES or CI_CONS_MAX_MASK_BYTES it is cleared
 * (epoch++); matchers keep their state's canonical content, so they simply
 * re-intern it.
 */
#include "constrain/cons_internal.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ST_ACCEPTING 1u
#define CLOSURE_MAX_STEPS (1u << 16)
#define BULK_MIN_TOKENS 4

typedef struct state_rec {
    uint32_t off, len; /* canonical content in rt->pool: [flags, n_stacks, (len, pos...)*] */
    uint32_t *mask;    /* memoised mask, NULL until computed */
    int32_t dom_target;
    bool dom_done;
    int32_t mb_next; /* -2 unknown; the one state every valid multi-byte UTF-8 character leads to, or -1 */
    ci_cons_set dom;
    ci_cons_set live; /* bytes with a live successor (valid once dom_done) */
} state_rec;

typedef struct sref { uint32_t off, len; } sref;

struct ci_cons_runtime {
    pthread_mutex_t mu;
    uint64_t epoch;
    state_rec *st;
    size_t n_st, cap_st;
    uint32_t *pool;
    size_t pool_len, pool_cap;
    int32_t *tt;  /* transitions [state * n_classes + class]: -2 unknown, -1 dead, else state id */
    size_t tt_cap; /* states covered by tt */
    int n_classes;
    uint32_t *ht; /* state id + 1, 0 = empty */
    size_t ht_cap;
    size_t mask_bytes;
    /* scratch for one advance */
    uint32_t *arena;
    size_t n_arena, cap_arena;
    sref *work, *ready;
    size_t n_work, cap_work, n_ready, cap_ready;
    uint32_t *out;
    size_t n_out, cap_out;
    uint64_t stat_visits; /* trie nodes visited by mask walks (diagnostics, bench) */
    /* scratch for the trie walk */
    uint32_t *walk_end;
    int32_t *walk_state;
    size_t walk_cap;
};

ci_cons_runtime *ci_cons_runtime_new(int n_classes) {
    ci_cons_runtime *rt = ci_calloc(1, sizeof *rt);
    rt->n_classes = n_classes;
    pthread_mutex_init(&rt->mu, NULL);
    return rt;
}

static void rt_clear(ci_cons_runtime *rt) {
    for (size_t i = 0; i < rt->n_st; i++) free(rt->st[i].mask);
    rt->n_st = 0;
    rt->pool_len = 0;
    rt->mask_bytes = 0;
    if (rt->ht) memset(rt->ht, 0, rt->ht_cap * sizeof *rt->ht);
    rt->epoch++;
}

void ci_cons_runtime_free(ci_cons_runtime *rt) {
    if (!rt) return;
    rt_clear(rt);
    free(rt->st), free(rt->tt), free(rt->pool), free(rt->ht), free(rt->arena), free(rt->work), free(rt->ready), free(rt->out);
    free(rt->walk_end), free(rt->walk_state);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

uint64_t ci_cons_runtime_visits(ci_cons_runtime *rt) {
    pthread_mutex_lock(&rt->mu);
    uint64_t n = rt->stat_visits;
    pthread_mutex_unlock(&rt->mu);
    return n;
}

/* ------------------------------------------------------------ interning */

static uint64_t hash_words(const uint32_t *w, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++) {
        h ^= w[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h * 0x9E3779B97F4A7C15ull;
}

static void ht_insert(ci_cons_runtime *rt, uint32_t id) {
    const state_rec *s = &rt->st[id];
    size_t h = hash_words(rt->pool + s->off, s->len) & (rt->ht_cap - 1);
    while (rt->ht[h]) h = (h + 1) & (rt->ht_cap - 1);
    rt->ht[h] = id + 1;
}

/* Id of the state with this content, creating it if new. */
static int32_t intern(ci_cons_runtime *rt, const uint32_t *c, size_t n) {
    if ((rt->n_st + 1) * 2 > rt->ht_cap) {
        size_t cap = rt->ht_cap ? rt->ht_cap * 2 : 1024;
        free(rt->ht);
        rt->ht = ci_calloc(cap, sizeof *rt->ht);
        rt->ht_cap = cap;
        for (size_t i = 0; i < rt->n_st; i++) ht_insert(rt, (uint32_t)i);
    }
    size_t h = hash_words(c, n) & (rt->ht_cap - 1);
    while (rt->ht[h]) {
        const state_rec *s = &rt->st[rt->ht[h] - 1];
        if (s->len == n && memcmp(rt->pool + s->off, c, n * sizeof *c) == 0) return (int32_t)(rt->ht[h] - 1);
        h = (h + 1) & (rt->ht_cap - 1);
    }
    if (rt->n_st == rt->cap_st) {
        rt->cap_st = rt->cap_st ? rt->cap_st * 2 : 256;
        rt->st = ci_realloc_array(rt->st, rt->cap_st, sizeof *rt->st);
        rt->tt = ci_realloc_array(rt->tt, rt->cap_st * (size_t)rt->n_classes, sizeof *rt->tt);
    }
    for (int k = 0; k < rt->n_classes; k++) rt->tt[rt->n_st * (size_t)rt->n_classes + (size_t)k] = -2;
    if (rt->pool_len + n > rt->pool_cap) {
        size_t cap = rt->pool_cap ? rt->pool_cap : 4096;
        while (cap < rt->pool_len + n) cap *= 2;
        rt->pool = ci_realloc_array(rt->pool, cap, sizeof *rt->pool);
        rt->pool_cap = cap;
    }
    memcpy(rt->pool + rt->pool_len, c, n * sizeof *c);
    int32_t id = (int32_t)rt->n_st++;
    rt->st[id] = (state_rec){.off = (uint32_t)rt->pool_len, .len = (uint32_t)n, .dom_target = -1, .mb_next = -2};
    rt->pool_len += n;
    rt->ht[h] = (uint32_t)id + 1;
    return id;
}

/* ------------------------------------------------------------ advancing */

static uint32_t *arena_alloc(ci_cons_runtime *rt, size_t n) {
    if (rt->n_arena + n > rt->cap_arena) {
        size_t cap = rt->cap_arena ? rt->cap_arena : 4096;
        while (cap < rt->n_arena + n) cap *= 2;
        rt->arena = ci_realloc_array(rt->arena, cap, sizeof *rt->arena);
        rt->cap_arena = cap;
    }
    uint32_t *p = rt->arena + rt->n_arena;
    rt->n_arena += n;
    return p;
}

static void push_sref(sref **v, size_t *n, size_t *cap, sref s) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = ci_realloc_array(*v, *cap, sizeof **v);
    }
    (*v)[(*n)++] = s;
}

static int cmp_sref(const void *a, const void *b, void *arena) {
    const sref *x = a, *y = b;
    const uint32_t *ar = arena;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return memcmp(ar + x->off, ar + y->off, x->len * sizeof(uint32_t));
}

/* Expands every stack on the work list until its top is a byte set (ready)
 * or it empties (accepting). Returns false when a bound is exceeded. */
static bool closure(const ci_cons_grammar *g, ci_cons_runtime *rt, bool *accepting) {
    uint32_t steps = 0;
    while (rt->n_work > 0) {
        if (++steps > CLOSURE_MAX_STEPS) return false;
        sref s = rt->work[--rt->n_work];
        if (s.len == 0) {
            *accepting = true;
            continue;
        }
        uint32_t p = rt->arena[s.off + s.len - 1];
        uint32_t e = g->pos[p];
        if (e == CI_CONS_END) {
            s.len--;
            push_sref(&rt->work, &rt->n_work, &rt->cap_work, s);
        } else if (ci_cons_is_ref(e)) {
            uint32_t r = e & ~CI_CONS_REF_BIT;
            uint32_t keep = g->pos[p + 1] == CI_CONS_END ? s.len - 1 : s.len; /* tail call: no return slot */
            if (keep + 1 > CI_CONS_MAX_STACK) continue; /* deeper nesting is not allowed */
            for (uint32_t a = g->rule_alt_off[r]; a < g->rule_alt_off[r + 1]; a++) {
                uint32_t *d = arena_alloc(rt, keep + 1);
                const uint32_t *src = rt->arena + s.off; /* re-read: arena may have moved */
                memcpy(d, src, keep * sizeof *d);
                if (keep == s.len) d[keep - 1] = p + 1;
                d[keep] = g->rule_alts[a];
                push_sref(&rt->work, &rt->n_work, &rt->cap_work, (sref){(uint32_t)(d - rt->arena), keep + 1});
            }
        } else {
            push_sref(&rt->ready, &rt->n_ready, &rt->cap_ready, s);
        }
    }
    return true;
}

/* Serialises rt->ready (+ accepting) canonically into rt->out. */
static bool canonical(ci_cons_runtime *rt, bool accepting) {
    if (rt->n_ready > 1) qsort_r(rt->ready, rt->n_ready, sizeof *rt->ready, cmp_sref, rt->arena);
    size_t k = 0;
    for (size_t i = 0; i < rt->n_ready; i++)
        if (k == 0 || cmp_sref(&rt->ready[k - 1], &rt->ready[i], rt->arena) != 0) rt->ready[k++] = rt->ready[i];
    rt->n_ready = k;
    if (k > CI_CONS_MAX_STACKS) return false;
    size_t need = 2;
    for (size_t i = 0; i < k; i++) need += 1 + rt->ready[i].len;
    if (need > rt->cap_out) {
        rt->cap_out = need * 2;
        rt->out = ci_realloc_array(rt->out, rt->cap_out, sizeof *rt->out);
    }
    uint32_t *o = rt->out;
    size_t n = 0;
    o[n++] = accepting ? ST_ACCEPTING : 0;
    o[n++] = (uint32_t)k;
    for (size_t i = 0; i < k; i++) {
        o[n++] = rt->ready[i].len;
        memcpy(o + n, rt->arena + rt->ready[i].off, rt->ready[i].len * sizeof *o);
        n += rt->ready[i].len;
    }
    rt->n_out = n;
    return true;
}

/* Successor of `content` on byte b into rt->out. Returns 1 live, 0 dead, -1 bound exceeded. */
static int advance(const ci_cons_grammar *g, ci_cons_runtime *rt, const uint32_t *c, uint8_t b) {
    rt->n_arena = rt->n_work = rt->n_ready = 0;
    uint32_t n_stacks = c[1];
    const uint32_t *p = c + 2;
    for (uint32_t i = 0; i < n_stacks; i++) {
        uint32_t len = p[0];
        const uint32_t *s = p + 1;
        p += 1 + len;
        uint32_t top = s[len - 1];
        if (!ci_cons_set_has(&g->sets[g->pos[top]], b)) continue;
        uint32_t *d = arena_alloc(rt, len);
        memcpy(d, s, len * sizeof *d);
        d[len - 1] = top + 1;
        push_sref(&rt->work, &rt->n_work, &rt->cap_work, (sref){(uint32_t)(d - rt->arena), len});
    }
    if (rt->n_work == 0) return 0;
    bool acc = false;
    if (!closure(g, rt, &acc) || !canonical(rt, acc)) return -1;
    return (acc || rt->n_ready > 0) ? 1 : 0;
}

static bool initial_content(const ci_cons_grammar *g, ci_cons_runtime *rt) {
    rt->n_arena = rt->n_work = rt->n_ready = 0;
    for (uint32_t a = g->rule_alt_off[g->root]; a < g->rule_alt_off[g->root + 1]; a++) {
        uint32_t *d = arena_alloc(rt, 1);
        d[0] = g->rule_alts[a];
        push_sref(&rt->work, &rt->n_work, &rt->cap_work, (sref){(uint32_t)(d - rt->arena), 1});
    }
    bool acc = false;
    return closure(g, rt, &acc) && canonical(rt, acc);
}

static int32_t trans_slow(const ci_cons_grammar *g, ci_cons_runtime *rt, int32_t sid, int cls) {
    int r = advance(g, rt, rt->pool + rt->st[sid].off, g->class_rep[cls]);
    int32_t t = r == 1 ? intern(rt, rt->out, rt->n_out) : -1;
    rt->tt[(size_t)sid * (size_t)rt->n_classes + (size_t)cls] = t; /* rt->tt may have moved */
    return t;
}

/* Memoised transition. -1 dead (or over a bound: treated as not allowed). */
static inline int32_t trans(const ci_cons_grammar *g, ci_cons_runtime *rt, int32_t sid, int cls) {
    int32_t t = rt->tt[(size_t)sid * (size_t)rt->n_classes + (size_t)cls];
    return t != -2 ? t : trans_slow(g, rt, sid, cls);
}

static void compute_dom(const ci_cons_grammar *g, ci_cons_runtime *rt, int32_t sid) {
    int32_t tgt[256];
    int count[256] = {0};
    for (int c = 0; c < g->n_classes; c++) tgt[c] = trans(g, rt, sid, c);
    for (int b = 0; b < 256; b++) count[g->byte_class[b]]++;
    /* bytes per target: sum over classes with the same target */
    int best = -1, best_n = 0;
    for (int c = 0; c < g->n_classes; c++) {
        if (tgt[c] < 0) continue;
        int n = 0;
        for (int d = 0; d < g->n_classes; d++)
            if (tgt[d] == tgt[c]) n += count[d];
        if (n > best_n) best_n = n, best = c;
    }
    state_rec *s = &rt->st[sid];
    s->dom_done = true;
    memset(&s->dom, 0, sizeof s->dom);
    memset(&s->live, 0, sizeof s->live);
    s->dom_target = best < 0 ? -1 : tgt[best];
    for (int b = 0; b < 256; b++) {
        if (tgt[g->byte_class[b]] >= 0) ci_cons_set_add(&s->live, (unsigned)b);
        if (best >= 0 && tgt[g->byte_class[b]] == s->dom_target) ci_cons_set_add(&s->dom, (unsigned)b);
    }
}

/* Every path of up to `depth` bytes drawn from `below` stays live from sid. */
static bool bulk_ok(const ci_cons_grammar *g, ci_cons_runtime *rt, int32_t sid, const ci_cons_set *below, int depth) {
    for (int d = 0; d < depth; d++) {
        if (!rt->st[sid].dom_done) compute_dom(g, rt, sid);
        const state_rec *s = &rt->st[sid];
        if (s->dom_target < 0) return false;
        for (int w = 0; w < 4; w++)
            if (below->w[w] & ~s->dom.w[w]) return false;
        if (s->dom_target == sid) return true; /* a self-loop: every further step is this one */
        sid = s->dom_target;
    }
    return true;
}

/* The one state that every valid multi-byte UTF-8 character leads to from
 * sid, with live states in between, or -1 (string bodies: sid itself;
 * counted strings: the next count). Explores the product of the automaton
 * with a UTF-8 decoder over byte classes. */
static int32_t mb_next(const ci_cons_grammar *g, ci_cons_runtime *rt, int32_t sid) {
    if (rt->st[sid].mb_next != -2) return rt->st[sid].mb_next;
    /* lead byte range, then the ranges of the continuation bytes */
    static const uint8_t seqs[][4][2] = {
        {{0xC2, 0xDF}, {0x80, 0xBF}, {0, 0}, {0, 0}}, {{0xE0, 0xE0}, {0xA0, 0xBF}, {0x80, 0xBF}, {0, 0}},
        {{0xE1, 0xEC}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}}, {{0xED, 0xED}, {0x80, 0x9F}, {0x80, 0xBF}, {0, 0}},
        {{0xEE, 0xEF}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}}, {{0xF0, 0xF0}, {0x90, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
        {{0xF1, 0xF3}, {0x80, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}}, {{0xF4, 0xF4}, {0x80, 0x8F}, {0x80, 0xBF}, {0x80, 0xBF}}};
    bool ok = true;
    int32_t result = -1;
    for (size_t q = 0; q < sizeof seqs / sizeof seqs[0] && ok; q++) {
        int32_t cur[16], nxt[16];
        int nc = 1, nn;
        cur[0] = sid;
        for (int pos = 0; pos < 4 && ok && seqs[q][pos][0]; pos++) {
            nn = 0;
            bool seen_cls[256] = {0};
            for (unsigned b = seqs[q][pos][0]; b <= seqs[q][pos][1] && ok; b++) {
                int cls = g->byte_class[b];
                if (seen_cls[cls]) continue;
                seen_cls[cls] = true;
                for (int k = 0; k < nc && ok; k++) {
                    int32_t t = trans(g, rt, cur[k], cls);
                    if (t < 0) ok = false;
                    int m = 0;
                    while (m < nn && nxt[m] != t) m++;
                    if (m == nn) {
                        if (nn == 16) ok = false;
                        else nxt[nn++] = t;
                    }
                }
            }
            memcpy(cur, nxt, (size_t)nn * sizeof *cur);
            nc = nn;
        }
        if (ok && nc == 1 && (q == 0 || cur[0] == result)) result = cur[0];
        else ok = false;
    }
    rt->st[sid].mb_next = ok ? result : -1;
    return rt->st[sid].mb_next;
}

/* Character by character from sid over a subtree whose tokens are complete
 * UTF-8 using the bytes `below`, at most `chars` characters deep: while
 * every character used below leads to one next state that is live (ASCII
 * bytes through the dominant successor, multi-byte characters through
 * mb_next), step. Returns `chars` when that holds all the way (the whole
 * subtree is allowed: string bodies loop on one state; counted strings step
 * through their counters); k < chars when it holds for k characters and
 * then every character that can start below is dead (a counter at its
 * bound: exactly the tokens with at most k characters below are allowed);
 * -1 otherwise. */
static int utf8_run(const ci_cons_grammar *g, ci_cons_runtime *rt, int32_t sid, const ci_cons_set *below, int chars) {
    bool ascii = below->w[0] | below->w[1], multi = below->w[2] | below->w[3];
    for (int k = 0; k < chars; k++) {
        /* both may add states (rt->st moves): take the record after them */
        int32_t next = multi ? mb_next(g, rt, sid) : -1;
        if (!rt->st[sid].dom_done) compute_dom(g, rt, sid);
        const state_rec *s = &rt->st[sid];
        bool ok = !multi || next >= 0;
        if (ok && ascii) {
            ok = s->dom_target >= 0 && !(below->w[0] & ~s->dom.w[0]) && !(below->w[1] & ~s->dom.w[1]) &&
                 (!multi || s->dom_target == next);
            next = s->dom_target;
        }
        if (!ok) {
            /* a character starts with ASCII (w[0], w[1]) or a lead byte (w[3]);
             * continuation bytes (w[2]) never start one */
            bool dead = !(below->w[0] & s->live.w[0]) && !(below->w[1] & s->live.w[1]) &&
                        !(below->w[3] & s->live.w[3]);
            return dead ? k : -1;
        }
        if (next == sid) return chars; /* a self-loop: every further character is this one */
        sid = next;
    }
    return chars;
}

static inline void mark_range(uint32_t *mask, const int32_t *order, uint32_t lo, uint32_t hi) {
    for (uint32_t k = lo; k < hi; k++) {
        uint32_t id = (uint32_t)order[k];
        mask[id >> 5] |= 1u << (id & 31);
    }
}

static inline void mark_ids(uint32_t *mask, const uint32_t *ids, uint32_t n) {
    for (uint32_t k = 0; k < n; k++) mask[ids[k] >> 5] |= 1u << (ids[k] & 31);
}

/* Tokens of node i's subtree (below it): a ready mask for large subtrees (a
 * loop the compiler vectorises), else one bit per token. */
static inline void mark_subtree(uint32_t *restrict mask, const ci_cons_vocab *v, uint32_t i, size_t words) {
    const ci_cons_trie_node *nd = &v->nodes[i];
    uint32_t lo = nd->tok_lo + nd->n_here, hi = nd->tok_hi;
    if (hi - lo >= CI_CONS_BITS_MIN && v->bits_off[i] != UINT32_MAX) {
        const uint32_t *restrict b = v->bits + v->bits_off[i];
        for (size_t w = 0; w < words; w++) mask[w] |= b[w];
    } else {
        mark_range(mask, v->order, lo, hi);
    }
}

static void compute_mask(const ci_cons_grammar *g, ci_cons_runtime *rt, int32_t sid, uint32_t *mask) {
    const ci_cons_vocab *v = g->vocab;
    const ci_cons_trie_node *nodes = v->nodes;
    const int32_t *order = v->order;
    const uint8_t *byte_class = g->byte_class;
    const size_t n_classes = (size_t)rt->n_classes;
    size_t words = ci_cons_mask_words(v);
    memset(mask, 0, words * sizeof *mask);
    size_t depth_cap = (size_t)v->max_len + 2;
    if (rt->walk_cap < depth_cap) {
        rt->walk_cap = depth_cap;
        rt->walk_end = ci_realloc_array(rt->walk_end, depth_cap, sizeof *rt->walk_end);
        rt->walk_state = ci_realloc_array(rt->walk_state, depth_cap, sizeof *rt->walk_state);
    }
    uint32_t *pend = rt->walk_end;
    int32_t *pst = rt->walk_state;
    size_t sp = 0;
    uint32_t i = 1, n = (uint32_t)v->n_nodes;
    uint32_t top_end = n; /* end of the innermost open subtree */
    int32_t s = sid;      /* its state */
    uint64_t visits = 0;
    while (i < n) {
        while (i >= top_end) { /* leave finished subtrees */
            sp--;
            top_end = sp ? pend[sp - 1] : n;
            s = sp ? pst[sp - 1] : sid;
        }
        const ci_cons_trie_node *nd = &nodes[i];
        visits++;
        /* the next sibling is the next node whenever this subtree is skipped
         * or accepted whole: fetch it while this one is decided (the node
         * array is larger than the caches, a skip is otherwise a miss) */
        __builtin_prefetch(&nodes[nd->end]);
        int cls = byte_class[nd->byte];
        int32_t t = rt->tt[(size_t)s * n_classes + (size_t)cls]; /* rt->tt moves when states are added */
        if (t == -2) t = trans_slow(g, rt, s, cls);
        if (t < 0) {
            i = nd->end;
            continue;
        }
        if (nd->n_here == 1) {
            uint32_t id = (uint32_t)order[nd->tok_lo];
            mask[id >> 5] |= 1u << (id & 31);
        } else if (nd->n_here) {
            mark_range(mask, order, nd->tok_lo, nd->tok_lo + nd->n_here);
        }
        if (nd->end == i + 1) {
            i++;
            continue;
        }
        uint32_t below_n = nd->tok_hi - (nd->tok_lo + nd->n_here);
        if (below_n >= BULK_MIN_TOKENS) {
            const ci_cons_set *below = &v->below_sets[nd->below];
            int run = -1;
            if (bulk_ok(g, rt, t, below, nd->depth_below) ||
                (nd->utf8_below && (run = utf8_run(g, rt, t, below, nd->chars_below)) == nd->chars_below)) {
                mark_subtree(mask, v, i, words);
                i = nd->end;
                continue;
            }
            if (run >= 0 && v->cut_off[i] != UINT32_MAX) { /* a counter at its bound */
                const uint32_t *cnt = v->cut + v->cut_off[i], *ids = cnt + nd->chars_below + 1;
                mark_ids(mask, ids, cnt[run]);
                i = nd->end;
                continue;
            }
        }
        pend[sp] = top_end = nd->end;
        pst[sp] = s = t;
        sp++;
        i++;
    }
    rt->stat_visits += visits;
}

/* ---------------------------------------------------------------- matcher */

struct ci_cons_matcher {
    ci_cons_grammar *g;
    uint32_t *c; /* canonical content of the current state */
    size_t n, cap;
    uint64_t epoch;
    int32_t sid; /* valid while epoch == rt->epoch */
    bool ended;
    /* rollback ring: contents before each accepted token */
    struct hist { uint32_t *c; size_t n, cap; bool ended; } hist[CI_CONS_MAX_ROLLBACK];
    int hist_head, hist_n;
};

static void set_content(uint32_t **dst, size_t *n, size_t *cap, const uint32_t *src, size_t len) {
    if (len > *cap) {
        *cap = len * 2;
        *dst = ci_realloc_array(*dst, *cap, sizeof **dst);
    }
    memcpy(*dst, src, len * sizeof **dst);
    *n = len;
}

/* Resets the memo when it has grown past its bounds (safe points only). */
static void rt_maybe_reset(ci_cons_runtime *rt) {
    if (rt->n_st > CI_CONS_MAX_STATES || rt->mask_bytes > CI_CONS_MAX_MASK_BYTES) rt_clear(rt);
}

static int32_t resolve(ci_cons_matcher *m) {
    ci_cons_runtime *rt = m->g->rt;
    if (m->epoch != rt->epoch || m->sid < 0) {
        m->sid = intern(rt, m->c, m->n);
        m->epoch = rt->epoch;
    }
    return m->sid;
}

ci_cons_matcher *ci_cons_matcher_new(ci_cons_grammar *g) {
    ci_cons_runtime *rt = g->rt;
    pthread_mutex_lock(&rt->mu);
    bool ok = initial_content(g, rt);
    ci_cons_matcher *m = NULL;
    if (ok) {
        m = ci_calloc(1, sizeof *m);
        m->g = ci_cons_grammar_ref(g);
        set_content(&m->c, &m->n, &m->cap, rt->out, rt->n_out);
        m->sid = -1;
    }
    pthread_mutex_unlock(&rt->mu);
    return m;
}

ci_cons_matcher *ci_cons_matcher_clone(const ci_cons_matcher *src) {
    ci_cons_matcher *m = ci_calloc(1, sizeof *m);
    m->g = ci_cons_grammar_ref(src->g);
    set_content(&m->c, &m->n, &m->cap, src->c, src->n);
    m->epoch = src->epoch;
    m->sid = src->sid;
    m->ended = src->ended;
    m->hist_head = src->hist_head;
    m->hist_n = src->hist_n;
    for (int i = 0; i < CI_CONS_MAX_ROLLBACK; i++) {
        if (!src->hist[i].c) continue;
        set_content(&m->hist[i].c, &m->hist[i].n, &m->hist[i].cap, src->hist[i].c, src->hist[i].n);
        m->hist[i].ended = src->hist[i].ended;
    }
    return m;
}

void ci_cons_matcher_free(ci_cons_matcher *m) {
    if (!m) return;
    for (int i = 0; i < CI_CONS_MAX_ROLLBACK; i++) free(m->hist[i].c);
    free(m->c);
    ci_cons_grammar_unref(m->g);
    free(m);
}

static void set_eos(const ci_cons_vocab *v, uint32_t *mask) {
    for (size_t i = 0; i < v->n_eos; i++) mask[v->eos[i] >> 5] |= 1u << (v->eos[i] & 31);
}

int ci_cons_fill_mask(ci_cons_matcher *m, uint32_t *mask, cinfer_error *err) {
    const ci_cons_vocab *v = m->g->vocab;
    size_t words = ci_cons_mask_words(v);
    if (m->ended) {
        memset(mask, 0, words * sizeof *mask);
        set_eos(v, mask);
        return CINFER_OK;
    }
    ci_cons_runtime *rt = m->g->rt;
    pthread_mutex_lock(&rt->mu);
    rt_maybe_reset(rt);
    int32_t sid = resolve(m);
    state_rec *s = &rt->st[sid];
    if (s->mask) {
        memcpy(mask, s->mask, words * sizeof *mask);
    } else {
        compute_mask(m->g, rt, sid, mask);
        rt->st[sid].mask = ci_malloc(words * sizeof *mask);
        memcpy(rt->st[sid].mask, mask, words * sizeof *mask);
        rt->mask_bytes += words * sizeof *mask;
    }
    pthread_mutex_unlock(&rt->mu);
    bool complete = m->c[0] & ST_ACCEPTING;
    if (complete) set_eos(v, mask);
    if (!complete) {
        uint32_t any = 0;
        for (size_t i = 0; i < words && !any; i++) any |= mask[i];
        if (!any)
            return ci_error(err, CINFER_ERR_LIMIT,
                            "constraint: no token can continue the output (the state exceeds the automaton's "
                            "bounds or needs bytes no allowed token has)");
    }
    return CINFER_OK;
}

static void push_history(ci_cons_matcher *m) {
    struct hist *h = &m->hist[m->hist_head];
    set_content(&h->c, &h->n, &h->cap, m->c, m->n);
    h->ended = m->ended;
    m->hist_head = (m->hist_head + 1) % CI_CONS_MAX_ROLLBACK;
    if (m->hist_n < CI_CONS_MAX_ROLLBACK) m->hist_n++;
}

static bool walk_bytes(ci_cons_matcher *m, const uint8_t *b, size_t len) {
    const ci_cons_grammar *g = m->g;
    ci_cons_runtime *rt = g->rt;
    pthread_mutex_lock(&rt->mu);
    rt_maybe_reset(rt);
    int32_t sid = resolve(m);
    for (size_t i = 0; i < len && sid >= 0; i++) sid = trans(g, rt, sid, g->byte_class[b[i]]);
    if (sid >= 0 && len > 0) {
        push_history(m);
        set_content(&m->c, &m->n, &m->cap, rt->pool + rt->st[sid].off, rt->st[sid].len);
        m->sid = sid;
    }
    pthread_mutex_unlock(&rt->mu);
    return sid >= 0;
}

bool ci_cons_accept_token(ci_cons_matcher *m, int32_t id) {
    const ci_cons_vocab *v = m->g->vocab;
    if (m->ended || id < 0 || (size_t)id >= v->n_tokens) return false;
    if (v->is_eos[id]) {
        if (!(m->c[0] & ST_ACCEPTING)) return false;
        push_history(m);
        m->ended = true;
        return true;
    }
    if (v->excluded[id] || v->len[id] == 0) return false;
    return walk_bytes(m, v->bytes + v->off[id], v->len[id]);
}

bool ci_cons_accept_bytes(ci_cons_matcher *m, const void *bytes, size_t len) {
    if (m->ended) return len == 0;
    if (len == 0) return true;
    return walk_bytes(m, bytes, len);
}

bool ci_cons_is_complete(const ci_cons_matcher *m) { return m->ended || (m->c[0] & ST_ACCEPTING); }

bool ci_cons_is_terminated(const ci_cons_matcher *m) {
    return m->ended || ((m->c[0] & ST_ACCEPTING) && m->c[1] == 0);
}

int ci_cons_rollback(ci_cons_matcher *m, int n, cinfer_error *err) {
    if (n < 0 || n > m->hist_n)
        return ci_error(err, CINFER_ERR_INVALID, "constraint rollback of %d tokens: only %d recorded", n, m->hist_n);
    for (int i = 0; i < n; i++) {
        m->hist_head = (m->hist_head + CI_CONS_MAX_ROLLBACK - 1) % CI_CONS_MAX_ROLLBACK;
        struct hist *h = &m->hist[m->hist_head];
        set_content(&m->c, &m->n, &m->cap, h->c, h->n);
        m->ended = h->ended;
        m->hist_n--;
    }
    m->sid = -1;
    return CINFER_OK;
}
