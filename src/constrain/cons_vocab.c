/*
 * cons_vocab.c — the vocabulary side of the mask: a byte trie of every
 * token a constraint may allow, laid out in pre-order.
 *
 * Why pre-order: the mask walk (cons_match.c) visits nodes by increasing
 * index with a small stack of open ancestors and skips a rejected subtree
 * with `i = node.end`, so the walk is a flat loop with no recursion; and the
 * tokens of a subtree are one contiguous run of `order[]`, so a subtree the
 * automaton accepts as a whole is marked without visiting it.
 * `below` (the set of bytes used anywhere under a node) and `depth_below`
 * are what that whole-subtree test needs.
 *
 * Built once per model; nothing here depends on a grammar.
 */
#include "constrain/cons_internal.h"
#include "tokenizer/tokenizer_internal.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define CI_CONS_MAX_VOCAB (1u << 24)

static int cmp_tokens(const void *a, const void *b, void *arg) {
    const ci_cons_vocab *v = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->len[x], ly = v->len[y];
    int c = memcmp(v->bytes + v->off[x], v->bytes + v->off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static uint64_t set_hash(const ci_cons_set *s) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 4; i++) h = (h ^ s->w[i]) * 0xff51afd7ed558ccdull, h ^= h >> 33;
    return h;
}

static size_t nn_cap_hint(size_t total) { return total + 1; }

static void build_trie(ci_cons_vocab *v) {
    int32_t *ord = ci_malloc((v->n_tokens + 1) * sizeof *ord);
    size_t n = 0, total = 1;
    for (size_t i = 0; i < v->n_tokens; i++)
        if (!v->excluded[i] && !v->is_eos[i] && v->len[i] > 0) ord[n++] = (int32_t)i, total += v->len[i];
    qsort_r(ord, n, sizeof *ord, cmp_tokens, v);
    v->order = ord;
    v->n_order = n;
    ci_cons_trie_node *nodes = ci_calloc(total + 1, sizeof *nodes);
    uint32_t *parent = ci_malloc((total + 1) * sizeof *parent);
    uint32_t max_len = 0;
    for (size_t k = 0; k < n; k++)
        if (v->len[ord[k]] > max_len) max_len = v->len[ord[k]];
    uint32_t *path = ci_malloc(((size_t)max_len + 1) * sizeof *path); /* node at each depth of the current path */
    size_t nn = 1;
    path[0] = 0;
    const uint8_t *prev = NULL;
    uint32_t prev_len = 0;
    uint8_t *valid_from = ci_malloc((size_t)max_len + 2);
    uint32_t *chars_from = ci_malloc(((size_t)max_len + 2) * sizeof *chars_from);
    for (size_t k = 0; k < nn_cap_hint(total); k++) nodes[k].utf8_below = 1;
    for (size_t k = 0; k < n; k++) {
        int32_t t = ord[k];
        const uint8_t *b = v->bytes + v->off[t];
        uint32_t len = v->len[t];
        uint32_t lcp = 0;
        while (prev && lcp < len && lcp < prev_len && b[lcp] == prev[lcp]) lcp++;
        for (uint32_t d = lcp; d < len; d++) {
            nodes[nn].byte = b[d];
            nodes[nn].tok_lo = (uint32_t)k;
            parent[nn] = path[d];
            path[d + 1] = (uint32_t)nn;
            nn++;
        }
        if (nodes[path[len]].n_here < UINT16_MAX) nodes[path[len]].n_here++;
        /* valid_from[d]: bytes d..len are complete, valid UTF-8 */
        valid_from[len] = 1;
        chars_from[len] = 0;
        for (uint32_t d = len; d-- > 0;) {
            uint32_t cp;
            size_t used = ci_cons_utf8_decode((const char *)b + d, len - d, &cp);
            valid_from[d] = used && valid_from[d + used];
            chars_from[d] = valid_from[d] ? chars_from[d + used] + 1 : 0;
        }
        for (uint32_t d = 0; d < len; d++) {
            ci_cons_trie_node *nd = &nodes[path[d]];
            if (!valid_from[d]) nd->utf8_below = 0;
            else if (chars_from[d] > nd->chars_below) nd->chars_below = (uint8_t)(chars_from[d] > 255 ? 255 : chars_from[d]);
        }
        prev = b, prev_len = len;
    }
    free(path);
    free(valid_from);
    free(chars_from);
    v->max_len = max_len;
    /* end, depth_below, below sets: children come after parents, so one
     * backwards pass sees every child before its parent. */
    ci_cons_set *below = ci_calloc(nn, sizeof *below);
    for (size_t i = 0; i < nn; i++) nodes[i].end = (uint32_t)(i + 1);
    for (size_t i = nn; i-- > 1;) {
        uint32_t p = parent[i];
        if (nodes[i].end > nodes[p].end) nodes[p].end = nodes[i].end;
        unsigned d = nodes[i].depth_below + 1u;
        if (d > 255) d = 255;
        if (d > nodes[p].depth_below) nodes[p].depth_below = (uint8_t)d;
        for (int w = 0; w < 4; w++) below[p].w[w] |= below[i].w[w];
        ci_cons_set_add(&below[p], nodes[i].byte);
    }
    nodes[0].end = (uint32_t)nn;
    nodes[nn].tok_lo = (uint32_t)n; /* sentinel so nodes[end].tok_lo works for every node */
    nodes[nn].end = (uint32_t)nn + 1;
    /* Deduplicate the below sets (leaves share the empty set). */
    size_t cap = 1;
    while (cap < nn * 2) cap <<= 1;
    uint32_t *slot = ci_malloc(cap * sizeof *slot);
    memset(slot, 0xFF, cap * sizeof *slot);
    ci_cons_set *uniq = ci_malloc((nn + 1) * sizeof *uniq);
    size_t nu = 1;
    memset(&uniq[0], 0, sizeof uniq[0]);
    for (size_t i = 0; i < nn; i++) {
        const ci_cons_set *s = &below[i];
        if (!(s->w[0] | s->w[1] | s->w[2] | s->w[3])) {
            nodes[i].below = 0;
            continue;
        }
        size_t h = set_hash(s) & (cap - 1);
        while (slot[h] != UINT32_MAX && memcmp(&uniq[slot[h]], s, sizeof *s) != 0) h = (h + 1) & (cap - 1);
        if (slot[h] == UINT32_MAX) uniq[nu] = *s, slot[h] = (uint32_t)nu++;
        nodes[i].below = slot[h];
    }
    free(slot);
    free(below);
    free(parent);
    v->below_sets = ci_realloc_array(uniq, nu, sizeof *uniq);
    v->n_below_sets = nu;
    v->nodes = nodes;
    v->n_nodes = nn;
}

ci_cons_vocab *ci_cons_vocab_new(const ci_cons_vocab_desc *d, cinfer_error *err) {
    if (!d || !d->tokens || d->n_tokens == 0 || d->n_tokens > CI_CONS_MAX_VOCAB) {
        ci_error(err, CINFER_ERR_INVALID, "constraint vocabulary: need 1..%u tokens", CI_CONS_MAX_VOCAB);
        return NULL;
    }
    size_t total = 0;
    for (size_t i = 0; i < d->n_tokens; i++) {
        if (d->tokens[i].len && !d->tokens[i].bytes) {
            ci_error(err, CINFER_ERR_INVALID, "constraint vocabulary: token %zu has no bytes", i);
            return NULL;
        }
        if (d->tokens[i].len > 65536 || ci_add_overflow(total, d->tokens[i].len, &total) || total > (1u << 30)) {
            ci_error(err, CINFER_ERR_LIMIT, "constraint vocabulary: token bytes over the limit");
            return NULL;
        }
    }
    for (size_t i = 0; i < d->n_eos; i++)
        if (d->eos_ids[i] < 0 || (size_t)d->eos_ids[i] >= d->n_tokens) {
            ci_error(err, CINFER_ERR_INVALID, "constraint vocabulary: end id %d out of range", (int)d->eos_ids[i]);
            return NULL;
        }
    ci_cons_vocab *v = ci_calloc(1, sizeof *v);
    v->n_tokens = d->n_tokens;
    v->excluded = ci_calloc(d->n_tokens, 1);
    v->is_eos = ci_calloc(d->n_tokens, 1);
    v->off = ci_malloc(d->n_tokens * sizeof *v->off);
    v->len = ci_malloc(d->n_tokens * sizeof *v->len);
    v->bytes = ci_malloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < d->n_tokens; i++) {
        v->off[i] = (uint32_t)o;
        v->len[i] = d->tokens[i].len;
        if (d->tokens[i].len) memcpy(v->bytes + o, d->tokens[i].bytes, d->tokens[i].len);
        o += d->tokens[i].len;
        v->excluded[i] = d->tokens[i].excluded;
    }
    v->eos = ci_malloc((d->n_eos + 1) * sizeof *v->eos);
    for (size_t i = 0; i < d->n_eos; i++) {
        v->eos[v->n_eos++] = d->eos_ids[i];
        v->is_eos[d->eos_ids[i]] = 1;
    }
    build_trie(v);
    return v;
}

ci_cons_vocab *ci_cons_vocab_from_tokenizer(const cinfer_tokenizer *tok, const int32_t *eos_ids, size_t n_eos,
                                            cinfer_error *err) {
    size_t n = cinfer_tokenizer_vocab_size(tok);
    if (n == 0) {
        ci_error(err, CINFER_ERR_INVALID, "constraint vocabulary: empty tokenizer");
        return NULL;
    }
    ci_cons_token *t = ci_calloc(n, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *b = cinfer_tokenizer_token_bytes(tok, (int32_t)i, &len);
        t[i].bytes = (const uint8_t *)b;
        t[i].len = b ? (uint32_t)len : 0;
        /* Added tokens (<think>, <tool_call>, ...) are control text even when
         * not marked special: a constraint must never produce them as output. */
        t[i].excluded = !b || cinfer_tokenizer_is_special(tok, (int32_t)i) || tok->entries[i].added;
    }
    ci_cons_vocab_desc d = {.tokens = t, .n_tokens = n, .eos_ids = eos_ids, .n_eos = n_eos};
    ci_cons_vocab *v = ci_cons_vocab_new(&d, err);
    free(t);
    return v;
}

void ci_cons_vocab_free(ci_cons_vocab *v) {
    if (!v) return;
    free(v->excluded), free(v->is_eos), free(v->eos), free(v->bytes), free(v->off), free(v->len);
    free(v->nodes), free(v->order), free(v->below_sets);
    free(v);
}

size_t ci_cons_vocab_size(const ci_cons_vocab *v) { return v ? v->n_tokens : 0; }
size_t ci_cons_mask_words(const ci_cons_vocab *v) { return v ? (v->n_tokens + 31) / 32 : 0; }
