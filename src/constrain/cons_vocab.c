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
 * are what that whole-subtree test needs. Two more per-node indexes serve
 * the walk: the counter-cut lists (a subtree's tokens sorted by how many
 * characters they have below the node, so a counter with k characters left
 * takes a prefix instead of a walk) and ready masks of the largest subtrees
 * (accepting one is a vectorised OR). Each node also keeps tok_hi so the walk
 * never reads a far node to know a subtree's token run.
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

/* Characters in b[0..n) (complete, valid UTF-8 by construction of the caller). */
static uint32_t count_chars(const uint8_t *b, size_t n) {
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++) c += (b[i] & 0xC0) != 0x80;
    return c;
}

typedef struct cut_item { uint32_t chars, k; } cut_item;

static int cmp_cut_item(const void *a, const void *b) {
    const cut_item *x = a, *y = b;
    if (x->chars != y->chars) return x->chars < y->chars ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

/* The counter-cut lists (see ci_cons_vocab.cut_off). Byte depth of a node is
 * recovered from its path; a token's characters below the node are counted
 * from that depth. Size: the qualifying subtrees plus one count per
 * character of depth (about two entries per token: 1.2 MB for Qwen3). */
static void build_cuts(ci_cons_vocab *v) {
    ci_cons_trie_node *nodes = v->nodes;
    size_t nn = v->n_nodes;
    v->cut_off = ci_malloc(nn * sizeof *v->cut_off);
    uint32_t *depth = ci_malloc(nn * sizeof *depth);
    uint32_t *stack = ci_malloc(((size_t)v->max_len + 2) * sizeof *stack);
    size_t sp = 0, n_cut = 0, cap = 0;
    depth[0] = 0;
    for (size_t i = 1; i < nn; i++) { /* pre-order: the parent is the innermost open node */
        while (sp > 0 && i >= nodes[stack[sp - 1]].end) sp--;
        depth[i] = sp ? depth[stack[sp - 1]] + 1 : 1;
        stack[sp++] = (uint32_t)i;
    }
    free(stack);
    for (size_t i = 0; i < nn; i++) {
        const ci_cons_trie_node *nd = &nodes[i];
        uint32_t lo = nd->tok_lo + nd->n_here, hi = nd->tok_hi;
        v->cut_off[i] = UINT32_MAX;
        if (i == 0 || !nd->utf8_below || hi - lo < CI_CONS_CUT_MIN || nd->chars_below == 255) continue;
        cap += nd->chars_below + 1u + (hi - lo);
    }
    v->cut = ci_malloc((cap + 1) * sizeof *v->cut);
    cut_item *items = ci_malloc((v->n_order + 1) * sizeof *items);
    for (size_t i = 1; i < nn; i++) {
        const ci_cons_trie_node *nd = &nodes[i];
        uint32_t lo = nd->tok_lo + nd->n_here, hi = nd->tok_hi;
        if (!nd->utf8_below || hi - lo < CI_CONS_CUT_MIN || nd->chars_below == 255) continue;
        uint32_t n = hi - lo, cb = nd->chars_below;
        for (uint32_t k = 0; k < n; k++) {
            int32_t t = v->order[lo + k];
            items[k] = (cut_item){count_chars(v->bytes + v->off[t] + depth[i], v->len[t] - depth[i]), lo + k};
        }
        qsort(items, n, sizeof *items, cmp_cut_item);
        v->cut_off[i] = (uint32_t)n_cut;
        uint32_t *cnt = v->cut + n_cut, *ids = cnt + cb + 1;
        uint32_t k = 0;
        for (uint32_t r = 0; r <= cb; r++) {
            while (k < n && items[k].chars <= r) k++;
            cnt[r] = k;
        }
        for (k = 0; k < n; k++) ids[k] = (uint32_t)v->order[items[k].k];
        n_cut += cb + 1u + n;
    }
    v->n_cut = n_cut;
    free(items);
    free(depth);
}

/* Ready masks of the large subtrees (see ci_cons_vocab.bits_off). Bounded:
 * a node qualifies only with CI_CONS_BITS_MIN tokens below it, so there are
 * at most depth * n_order / CI_CONS_BITS_MIN of them (49 masks, 0.9 MB for
 * Qwen3), and never more than CI_CONS_BITS_MAX_BYTES in all (the first in
 * pre-order; the others are marked token by token). */
static void build_bits(ci_cons_vocab *v) {
    size_t words = (v->n_tokens + 31) / 32, n = 0, max_n = CI_CONS_BITS_MAX_BYTES / (words * sizeof *v->bits);
    v->bits_off = ci_malloc(v->n_nodes * sizeof *v->bits_off);
    for (size_t i = 1; i < v->n_nodes && n < max_n; i++) {
        const ci_cons_trie_node *nd = &v->nodes[i];
        if (nd->tok_hi - (nd->tok_lo + nd->n_here) >= CI_CONS_BITS_MIN) n++;
    }
    v->bits = ci_calloc(n * words + 1, sizeof *v->bits);
    v->n_bits_masks = n;
    n = 0;
    v->bits_off[0] = UINT32_MAX;
    for (size_t i = 1; i < v->n_nodes; i++) {
        const ci_cons_trie_node *nd = &v->nodes[i];
        uint32_t lo = nd->tok_lo + nd->n_here, hi = nd->tok_hi;
        v->bits_off[i] = UINT32_MAX;
        if (hi - lo < CI_CONS_BITS_MIN || n == v->n_bits_masks) continue;
        uint32_t *b = v->bits + n * words;
        for (uint32_t k = lo; k < hi; k++) b[(uint32_t)v->order[k] >> 5] |= 1u << ((uint32_t)v->order[k] & 31);
        v->bits_off[i] = (uint32_t)(n * words);
        n++;
    }
}

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
    for (size_t i = 0; i <= nn; i++) nodes[i].tok_hi = i < nn ? nodes[nodes[i].end].tok_lo : (uint32_t)n;
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
    build_cuts(v);
    build_bits(v);
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
    free(v->nodes), free(v->order), free(v->below_sets), free(v->cut_off), free(v->cut), free(v->bits_off), free(v->bits);
    free(v);
}

size_t ci_cons_vocab_size(const ci_cons_vocab *v) { return v ? v->n_tokens : 0; }
size_t ci_cons_mask_words(const ci_cons_vocab *v) { return v ? (v->n_tokens + 31) / 32 : 0; }
