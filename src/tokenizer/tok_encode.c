/*
 * tok_encode.c — text to ids, reproducing HF tokenizers' encode with
 * add_special_tokens=False:
 *
 *   1. invalid UTF-8 -> U+FFFD (Python errors="replace")
 *   2. added tokens with normalized=false are cut out of the raw text
 *      (AddedVocabulary::find_matches: leftmost-longest, single_word,
 *      lstrip/rstrip, special ones skipped under SPLIT_SPECIAL)
 *   3. each remaining piece is normalized (NFC), then added tokens with
 *      normalized=true are cut out of it the same way
 *   4. pre-tokenizer: Split steps (regex, 5 behaviours), then ByteLevel
 *      (add_prefix_space, optional GPT-2 regex)
 *   5. BPE on each pre-token's bytes, merging lowest rank first, leftmost
 *      on ties, with HF's exact priority-queue procedure.
 *
 * Why a per-thread context: encode takes a const tokenizer and may run on
 * many threads; the tokenizer is immutable after loading, and the word
 * cache, PCRE2 match data and scratch arrays are per thread (pthread key,
 * freed by its destructor when the thread exits), tagged with the
 * tokenizer's uid so a context never serves stale entries to another
 * tokenizer. Nothing mutable is shared, so no locks are needed.
 *
 * Why the context is small: a server runs one thread per connection, each
 * of which encodes. The word cache (it matters because prose repeats words)
 * starts at a few KiB and doubles only while a thread keeps meeting new
 * words, up to a fixed cap (CACHE_MAX_SLOTS: ~0.6 MiB in all), and is
 * cleared when full. Scratch arrays that one large input grew are released
 * after that call (CTX_KEEP_BYTES), so an idle thread holds tens of KiB.
 */
#include "tokenizer/tokenizer_internal.h"

#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------ thread ctx */

typedef struct piece {
    const uint8_t *p;
    size_t n;
} piece;

typedef struct piece_vec {
    piece *v;
    size_t n, cap;
} piece_vec;

typedef struct split_seg {
    size_t start, end;
    bool is_match;
} split_seg;

typedef struct bpe_symbol {
    int32_t id;
    int32_t prev, next;
    int32_t len; /* 0: merged into its left neighbour */
} bpe_symbol;

typedef struct bpe_merge_entry {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
} bpe_merge_entry;

/* Word cache: open addressing, at most half full. Keys and ids live in
 * arenas sized with the slots (CACHE_KEY_BYTES / CACHE_IDS per slot, ample
 * for words of a few bytes and tokens); whichever fills first triggers a
 * doubling, or a clear at the cap. */
#define CACHE_MIN_SLOTS ((size_t)1 << 9)
#define CACHE_MAX_SLOTS ((size_t)1 << 14)
#define CACHE_KEY_BYTES 8
#define CACHE_IDS 2
#define CACHE_MAX_KEY 256 /* longer words are not cached */
/* Scratch arrays above this size are freed after each call. */
#define CTX_KEEP_BYTES ((size_t)64 << 10)

typedef struct cache_slot {
    uint64_t hash; /* 0 = empty (hashes are forced non-zero) */
    uint32_t key_off, ids_off;
    uint16_t key_len, n_ids;
} cache_slot;

typedef struct word_cache {
    cache_slot *slots;
    size_t n_slots, count;
    uint8_t *keys;
    size_t keys_len;
    int32_t *ids;
    size_t ids_len;
} word_cache;

typedef struct tok_ctx {
    uint64_t tok_uid;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    word_cache cache;
    piece_vec pa, pb;
    split_seg *segs;
    size_t n_segs, cap_segs;
    bpe_symbol *syms;
    size_t cap_syms;
    bpe_merge_entry *heap;
    size_t cap_heap;
    ci_buf prefixed; /* pieces that got ByteLevel's prefix space */
} tok_ctx;

static pthread_key_t ctx_key;
static pthread_once_t ctx_key_once = PTHREAD_ONCE_INIT;

static void cache_free(word_cache *wc) {
    free(wc->slots);
    free(wc->keys);
    free(wc->ids);
    memset(wc, 0, sizeof *wc);
}

/* Empty cache with n_slots slots (a power of two) and arenas to match. */
static void cache_init(word_cache *wc, size_t n_slots) {
    cache_free(wc);
    wc->slots = ci_calloc(n_slots, sizeof *wc->slots);
    wc->keys = ci_malloc(n_slots * CACHE_KEY_BYTES);
    wc->ids = ci_malloc(n_slots * CACHE_IDS * sizeof *wc->ids);
    wc->n_slots = n_slots;
}

/* Frees scratch arrays that grew past CTX_KEEP_BYTES (they regrow on demand). */
static void ctx_trim(tok_ctx *c) {
    piece_vec *pv[2] = {&c->pa, &c->pb};
    for (int i = 0; i < 2; i++)
        if (pv[i]->cap * sizeof *pv[i]->v > CTX_KEEP_BYTES) {
            free(pv[i]->v);
            *pv[i] = (piece_vec){0};
        }
    if (c->cap_segs * sizeof *c->segs > CTX_KEEP_BYTES) {
        free(c->segs);
        c->segs = NULL;
        c->n_segs = c->cap_segs = 0;
    }
    if (c->cap_syms * sizeof *c->syms > CTX_KEEP_BYTES) {
        free(c->syms);
        c->syms = NULL;
        c->cap_syms = 0;
    }
    if (c->cap_heap * sizeof *c->heap > CTX_KEEP_BYTES) {
        free(c->heap);
        c->heap = NULL;
        c->cap_heap = 0;
    }
    if (c->prefixed.cap > CTX_KEEP_BYTES) ci_buf_free(&c->prefixed);
}

static void ctx_destroy(void *p) {
    tok_ctx *c = p;
    if (!c) return;
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    pcre2_jit_stack_free(c->jit_stack);
    cache_free(&c->cache);
    free(c->pa.v);
    free(c->pb.v);
    free(c->segs);
    free(c->syms);
    free(c->heap);
    ci_buf_free(&c->prefixed);
    free(c);
}

static void ctx_key_create(void) { pthread_key_create(&ctx_key, ctx_destroy); }

static tok_ctx *ctx_get(const cinfer_tokenizer *t) {
    pthread_once(&ctx_key_once, ctx_key_create);
    tok_ctx *c = pthread_getspecific(ctx_key);
    if (!c) {
        c = ci_calloc(1, sizeof *c);
        c->md = pcre2_match_data_create(1, NULL);
        c->mctx = pcre2_match_context_create(NULL);
        /* Long runs (10k-char words, whitespace) need more than the default
         * 32 KiB JIT stack; PCRE2 reserves the 8 MiB as address space and
         * only the pages a match touches become resident. */
        c->jit_stack = pcre2_jit_stack_create(32 << 10, 8 << 20, NULL);
        if (c->jit_stack) pcre2_jit_stack_assign(c->mctx, NULL, c->jit_stack);
        if (!c->md || !c->mctx) abort();
        pthread_setspecific(ctx_key, c);
    }
    if (c->tok_uid != t->uid || !c->cache.slots) {
        cache_init(&c->cache, CACHE_MIN_SLOTS);
        c->tok_uid = t->uid;
    }
    return c;
}

/* ------------------------------------------------------------ id output */

typedef struct id_vec {
    int32_t *v;
    size_t n, cap;
} id_vec;

static inline void ids_push(id_vec *o, int32_t id) {
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->v = ci_realloc_array(o->v, o->cap, sizeof *o->v);
    }
    o->v[o->n++] = id;
}

/* Appends n ids; n may be 0 with ids NULL (nothing is touched then). */
static void ids_append(id_vec *o, const int32_t *ids, size_t n) {
    if (n == 0) return;
    if (o->n + n > o->cap) {
        while (o->n + n > o->cap) o->cap = o->cap ? o->cap * 2 : 256;
        o->v = ci_realloc_array(o->v, o->cap, sizeof *o->v);
    }
    memcpy(o->v + o->n, ids, n * sizeof *ids);
    o->n += n;
}

static inline void pieces_push(piece_vec *pv, const uint8_t *p, size_t n) {
    if (pv->n == pv->cap) {
        pv->cap = pv->cap ? pv->cap * 2 : 1024;
        pv->v = ci_realloc_array(pv->v, pv->cap, sizeof *pv->v);
    }
    pv->v[pv->n].p = p;
    pv->v[pv->n].n = n;
    pv->n++;
}

/* -------------------------------------------------------------------- BPE */

static inline bool merge_lookup(const cinfer_tokenizer *t, int32_t left, int32_t right, uint32_t *rank,
                                int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & t->merges_mask;; i = (i + 1) & t->merges_mask) {
        const ci_merge_slot *s = &t->merges[i];
        if (s->key == key) {
            *rank = s->rank;
            *new_id = s->new_id;
            return true;
        }
        if (s->key == UINT64_MAX) return false;
    }
}

static inline bool heap_less(const bpe_merge_entry *a, const bpe_merge_entry *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(tok_ctx *c, size_t *n, bpe_merge_entry e) {
    if (*n == c->cap_heap) {
        c->cap_heap = c->cap_heap ? c->cap_heap * 2 : 256;
        c->heap = ci_realloc_array(c->heap, c->cap_heap, sizeof *c->heap);
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&e, &c->heap[parent])) break;
        c->heap[i] = c->heap[parent];
        i = parent;
    }
    c->heap[i] = e;
}

static bpe_merge_entry heap_pop(tok_ctx *c, size_t *n) {
    bpe_merge_entry top = c->heap[0];
    bpe_merge_entry last = c->heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= *n) break;
        size_t m = l;
        if (l + 1 < *n && heap_less(&c->heap[l + 1], &c->heap[l])) m = l + 1;
        if (!heap_less(&c->heap[m], &last)) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (*n) c->heap[i] = last;
    return top;
}

/* BPE of one pre-token (raw bytes; each byte is one ByteLevel char). Mirrors
 * HF's Word::merge_all: a min-queue of (rank, position); an entry is applied
 * only while its pair still produces the same token. */
static void bpe_word(const cinfer_tokenizer *t, tok_ctx *c, const uint8_t *w, size_t n, id_vec *out) {
    if (t->ignore_merges) {
        int32_t id = ci_str_map_get(&t->bytes_to_id, t->pool, w, n);
        if (id >= 0) {
            ids_push(out, id);
            return;
        }
    }
    if (n > c->cap_syms) {
        c->cap_syms = n + 64;
        c->syms = ci_realloc_array(c->syms, c->cap_syms, sizeof *c->syms);
    }
    bpe_symbol *s = c->syms;
    size_t ns = 0;
    int32_t pending_unk_len = 0; /* HF keeps one pending unk symbol to fuse */
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_symbol[w[i]];
        if (id >= 0) {
            if (pending_unk_len) {
                s[ns] = (bpe_symbol){t->unk_id, (int32_t)ns - 1, (int32_t)ns + 1, pending_unk_len};
                ns++;
                pending_unk_len = 0;
            }
            s[ns] = (bpe_symbol){id, (int32_t)ns - 1, (int32_t)ns + 1, 1};
            ns++;
        } else if (t->unk_id >= 0) {
            if (pending_unk_len && !t->fuse_unk) {
                s[ns] = (bpe_symbol){t->unk_id, (int32_t)ns - 1, (int32_t)ns + 1, pending_unk_len};
                ns++;
                pending_unk_len = 0;
            }
            pending_unk_len += 1;
        } /* no unk token: HF drops the character */
    }
    if (pending_unk_len) {
        s[ns] = (bpe_symbol){t->unk_id, (int32_t)ns - 1, (int32_t)ns + 1, pending_unk_len};
        ns++;
    }
    if (ns == 0) return;
    s[ns - 1].next = -1;
    if (ns > 1) {
        size_t hn = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            uint32_t rank;
            int32_t nid;
            if (merge_lookup(t, s[i].id, s[i + 1].id, &rank, &nid))
                heap_push(c, &hn, (bpe_merge_entry){rank, (int32_t)i, nid});
        }
        while (hn) {
            bpe_merge_entry top = heap_pop(c, &hn);
            bpe_symbol *cur = &s[top.pos];
            if (cur->len == 0 || cur->next < 0) continue;
            int32_t next_pos = cur->next;
            bpe_symbol right = s[next_pos];
            uint32_t rank;
            int32_t nid;
            if (!merge_lookup(t, cur->id, right.id, &rank, &nid) || nid != top.new_id) continue;
            cur->id = top.new_id;
            cur->len += right.len;
            cur->next = right.next;
            s[next_pos].len = 0;
            if (right.next >= 0) s[right.next].prev = top.pos;
            if (cur->prev >= 0 && merge_lookup(t, s[cur->prev].id, cur->id, &rank, &nid))
                heap_push(c, &hn, (bpe_merge_entry){rank, cur->prev, nid});
            if (cur->next >= 0 && merge_lookup(t, cur->id, s[cur->next].id, &rank, &nid))
                heap_push(c, &hn, (bpe_merge_entry){rank, top.pos, nid});
        }
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) ids_push(out, s[i].id);
}

/* Slot where key w (hash h) is, or the empty slot where it would go. */
static cache_slot *cache_find(const word_cache *wc, uint64_t h, const uint8_t *w, size_t n) {
    size_t mask = wc->n_slots - 1;
    for (size_t i = (size_t)(h >> 17) & mask;; i = (i + 1) & mask) {
        cache_slot *s = &wc->slots[i];
        if (s->hash == 0 || (s->hash == h && s->key_len == n && memcmp(wc->keys + s->key_off, w, n) == 0))
            return s;
    }
}

/* Doubles the cache, keeping its entries (slots hold their hash). */
static void cache_grow(word_cache *wc) {
    word_cache old = *wc;
    size_t n_slots = old.n_slots * 2, mask = n_slots - 1;
    wc->slots = ci_calloc(n_slots, sizeof *wc->slots);
    wc->keys = ci_realloc_array(old.keys, n_slots * CACHE_KEY_BYTES, 1);
    wc->ids = ci_realloc_array(old.ids, n_slots * CACHE_IDS, sizeof *wc->ids);
    wc->n_slots = n_slots;
    for (size_t j = 0; j < old.n_slots; j++) {
        if (!old.slots[j].hash) continue;
        size_t i = (size_t)(old.slots[j].hash >> 17) & mask;
        while (wc->slots[i].hash) i = (i + 1) & mask;
        wc->slots[i] = old.slots[j];
    }
    free(old.slots);
}

/* Makes room for one entry of n key bytes and k ids: grows below the cap,
 * clears at it. */
static void cache_make_room(word_cache *wc, size_t n, size_t k) {
    while (wc->count + 1 > wc->n_slots / 2 || wc->keys_len + n > wc->n_slots * CACHE_KEY_BYTES ||
           wc->ids_len + k > wc->n_slots * CACHE_IDS) {
        if (wc->n_slots >= CACHE_MAX_SLOTS) {
            memset(wc->slots, 0, wc->n_slots * sizeof *wc->slots);
            wc->count = wc->keys_len = wc->ids_len = 0;
            return; /* one entry always fits an empty cache: n <= CACHE_MAX_KEY, k <= n */
        }
        cache_grow(wc);
    }
}

static void cache_put(word_cache *wc, uint64_t h, const uint8_t *w, size_t n, const int32_t *ids, size_t k) {
    cache_make_room(wc, n, k);
    cache_slot *s = cache_find(wc, h, w, n);
    *s = (cache_slot){h, (uint32_t)wc->keys_len, (uint32_t)wc->ids_len, (uint16_t)n, (uint16_t)k};
    memcpy(wc->keys + wc->keys_len, w, n);
    wc->keys_len += n;
    if (k) memcpy(wc->ids + wc->ids_len, ids, k * sizeof *ids);
    wc->ids_len += k;
    wc->count++;
}

static void bpe_cached(const cinfer_tokenizer *t, tok_ctx *c, const uint8_t *w, size_t n, id_vec *out) {
    if (n == 1 && !t->ignore_merges) {
        int32_t id = t->byte_symbol[w[0]];
        if (id >= 0) ids_push(out, id);
        else if (t->unk_id >= 0) ids_push(out, t->unk_id);
        return;
    }
    if (n > CACHE_MAX_KEY) {
        bpe_word(t, c, w, n, out);
        return;
    }
    uint64_t h = ci_tok_hash(w, n) | 1;
    const cache_slot *s = cache_find(&c->cache, h, w, n);
    if (s->hash) {
        ids_append(out, c->cache.ids + s->ids_off, s->n_ids);
        return;
    }
    size_t before = out->n;
    bpe_word(t, c, w, n, out);
    /* A word yields at most one id per byte; it may yield none (bytes with no
     * token and no unk_token are dropped), and then out->v may be NULL. */
    size_t produced = out->n - before;
    cache_put(&c->cache, h, w, n, produced ? out->v + before : NULL, produced);
}

/* ------------------------------------------------------------ pre-tokenize */

static void seg_push(tok_ctx *c, size_t start, size_t end, bool is_match) {
    if (c->n_segs == c->cap_segs) {
        c->cap_segs = c->cap_segs ? c->cap_segs * 2 : 1024;
        c->segs = ci_realloc_array(c->segs, c->cap_segs, sizeof *c->segs);
    }
    c->segs[c->n_segs++] = (split_seg){start, end, is_match};
}

static size_t utf8_char_len_at(const uint8_t *p, size_t n, size_t i) {
    if (i >= n) return 1;
    uint8_t b = p[i];
    size_t k = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    return i + k <= n ? k : n - i;
}

/* HF Pattern::find_matches for a regex (Oniguruma's find_iter: an empty
 * match right after the previous match is skipped), then the delimiter
 * behaviour; non-empty results are appended to `out`. */
static int split_piece(tok_ctx *c, const ci_regex *rx, bool exact, ci_split_behavior behavior, bool invert,
                       const uint8_t *p, size_t n, piece_vec *out, cinfer_error *err) {
    const pcre2_code *re = exact || !rx->fast ? rx->exact : rx->fast;
    bool jit = exact || !rx->fast ? rx->exact_jit : rx->fast_jit;
    c->n_segs = 0;
    size_t prev = 0, last_end = 0, last_match_end = 0;
    bool have_last = false;
    while (last_end <= n) {
        int rc = jit ? pcre2_jit_match(re, p, n, last_end, 0, c->md, c->mctx)
                     : pcre2_match(re, p, n, last_end, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ci_error(err, CINFER_ERR_LIMIT, "pre-tokenizer regex failed on a %zu-byte piece: %s", n,
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t s = ov[0], e = ov[1];
        if (s == e && have_last && last_match_end == e) {
            last_end = e + utf8_char_len_at(p, n, e);
            continue;
        }
        last_end = e;
        have_last = true;
        last_match_end = e;
        if (prev != s) seg_push(c, prev, s, invert);
        seg_push(c, s, e, !invert);
        prev = e;
    }
    if (prev != n) seg_push(c, prev, n, invert);

    split_seg *sg = c->segs;
    size_t ns = c->n_segs;
    switch (behavior) {
    case CI_SPLIT_ISOLATED:
        for (size_t i = 0; i < ns; i++)
            if (sg[i].end > sg[i].start) pieces_push(out, p + sg[i].start, sg[i].end - sg[i].start);
        break;
    case CI_SPLIT_REMOVED:
        for (size_t i = 0; i < ns; i++)
            if (!sg[i].is_match && sg[i].end > sg[i].start) pieces_push(out, p + sg[i].start, sg[i].end - sg[i].start);
        break;
    case CI_SPLIT_MERGED_WITH_PREVIOUS: {
        size_t w = 0;
        bool previous_match = false;
        for (size_t i = 0; i < ns; i++) {
            split_seg cur = sg[i];
            if (cur.is_match && !previous_match && w > 0) sg[w - 1].end = cur.end;
            else sg[w++] = cur;
            previous_match = cur.is_match;
        }
        for (size_t i = 0; i < w; i++)
            if (sg[i].end > sg[i].start) pieces_push(out, p + sg[i].start, sg[i].end - sg[i].start);
        break;
    }
    case CI_SPLIT_MERGED_WITH_NEXT: {
        /* Walk backwards: a match is glued to the start of the piece after it. */
        size_t w = ns; /* results fill sg[w..ns) from the right */
        bool previous_match = false;
        for (size_t k = ns; k-- > 0;) {
            split_seg cur = sg[k];
            if (cur.is_match && !previous_match && w < ns) sg[w].start = cur.start;
            else sg[--w] = cur;
            previous_match = cur.is_match;
        }
        for (size_t i = w; i < ns; i++)
            if (sg[i].end > sg[i].start) pieces_push(out, p + sg[i].start, sg[i].end - sg[i].start);
        break;
    }
    case CI_SPLIT_CONTIGUOUS: {
        size_t w = 0;
        bool previous_match = false;
        for (size_t i = 0; i < ns; i++) {
            split_seg cur = sg[i];
            if (cur.is_match == previous_match && w > 0) sg[w - 1].end = cur.end;
            else sg[w++] = cur;
            previous_match = cur.is_match;
        }
        for (size_t i = 0; i < w; i++)
            if (sg[i].end > sg[i].start) pieces_push(out, p + sg[i].start, sg[i].end - sg[i].start);
        break;
    }
    }
    return 0;
}

/* Pre-tokenizes and BPE-encodes one normalized piece. */
static int encode_plain(const cinfer_tokenizer *t, tok_ctx *c, const uint8_t *p, size_t n, id_vec *out,
                        cinfer_error *err) {
    if (n == 0) return 0;
    /* U+180E is the one code point where PCRE2's \s and Oniguruma's disagree. */
    bool exact = memmem(p, n, "\xE1\xA0\x8E", 3) != NULL;
    piece_vec *cur = &c->pa, *next = &c->pb;
    cur->n = 0;
    pieces_push(cur, p, n);
    for (size_t s = 0; s < t->n_steps; s++) {
        next->n = 0;
        for (size_t i = 0; i < cur->n; i++)
            if (split_piece(c, &t->steps[s].re, exact, t->steps[s].behavior, t->steps[s].invert, cur->v[i].p,
                            cur->v[i].n, next, err))
                return CINFER_ERR_LIMIT;
        piece_vec *tmp = cur;
        cur = next;
        next = tmp;
    }
    if (t->byte_level_add_prefix_space) {
        /* One buffer sized up front so piece pointers into it stay valid. */
        size_t total = 0;
        for (size_t i = 0; i < cur->n; i++) total += cur->v[i].n + 1;
        c->prefixed.len = 0;
        ci_buf_reserve(&c->prefixed, total);
        for (size_t i = 0; i < cur->n; i++) {
            if (cur->v[i].p[0] == ' ') continue;
            uint8_t *dst = (uint8_t *)c->prefixed.data + c->prefixed.len;
            dst[0] = ' ';
            memcpy(dst + 1, cur->v[i].p, cur->v[i].n);
            c->prefixed.len += cur->v[i].n + 1;
            cur->v[i].p = dst;
            cur->v[i].n += 1;
        }
    }
    if (t->byte_level_regex.exact) {
        next->n = 0;
        for (size_t i = 0; i < cur->n; i++)
            if (split_piece(c, &t->byte_level_regex, exact, CI_SPLIT_ISOLATED, false, cur->v[i].p, cur->v[i].n, next,
                            err))
                return CINFER_ERR_LIMIT;
        piece_vec *tmp = cur;
        cur = next;
        next = tmp;
    }
    for (size_t i = 0; i < cur->n; i++) bpe_cached(t, c, cur->v[i].p, cur->v[i].n, out);
    return 0;
}

/* ------------------------------------------------------------ added tokens */

static uint32_t last_char_before(const uint8_t *s, size_t pos) {
    size_t i = pos;
    do i--;
    while (i > 0 && (s[i] & 0xC0) == 0x80);
    uint32_t cp = 0;
    ci_utf8_decode_valid(s + i, pos - i, &cp);
    return cp;
}

static uint32_t char_at(const uint8_t *s, size_t n, size_t pos) {
    uint32_t cp = 0;
    ci_utf8_decode_valid(s + pos, n - pos, &cp);
    return cp;
}

/* Finds the longest pattern starting at s[i]; returns its index or -1. */
static int32_t trie_longest(const ci_added_matcher *m, const uint8_t *s, size_t n, size_t i, size_t *match_len) {
    int32_t node = 0, best = -1;
    for (size_t j = i; j < n; j++) {
        const ci_trie_node *nd = &m->nodes[node];
        const ci_trie_edge *e = m->edges + nd->edge_off;
        int32_t child = -1;
        for (uint32_t k = 0; k < nd->edge_count; k++)
            if (e[k].byte == s[j]) {
                child = e[k].child;
                break;
            }
        if (child < 0) break;
        node = child;
        if (m->nodes[node].pattern >= 0) {
            best = m->nodes[node].pattern;
            *match_len = j + 1 - i;
        }
    }
    return best;
}

/* Segment callback: either an added-token id or a text range to process further. */
typedef int (*segment_fn)(const cinfer_tokenizer *t, tok_ctx *c, const uint8_t *p, size_t n, int32_t added_id,
                          id_vec *out, unsigned flags, cinfer_error *err);

/* HF AddedVocabulary::find_matches over `s`, calling `emit` for each split. */
static int split_added(const cinfer_tokenizer *t, tok_ctx *c, const ci_added_matcher *m, const uint8_t *s, size_t n,
                       unsigned flags, segment_fn emit, id_vec *out, cinfer_error *err) {
    size_t start_offset = 0;
    if (!m->empty) {
        size_t i = 0;
        while (i < n) {
            if (!m->can_start[s[i]]) {
                i++;
                continue;
            }
            size_t mlen = 0;
            int32_t pat = trie_longest(m, s, n, i, &mlen);
            if (pat < 0) {
                i++;
                continue;
            }
            size_t start = i, stop = i + mlen;
            i = stop; /* the automaton resumes after the match, whatever happens to it */
            const ci_added_token *a = &t->added[m->pattern_added[pat]];
            if ((flags & CINFER_TOKENIZE_SPLIT_SPECIAL) && a->special) continue;
            if (a->single_word) {
                bool start_space = start == 0 || !ci_uni_is_word_char(last_char_before(s, start));
                bool stop_space = stop == n || !ci_uni_is_word_char(char_at(s, n, stop));
                if (!start_space || !stop_space) continue;
            }
            if (a->lstrip) {
                size_t ns = start;
                while (ns > 0) {
                    size_t k = ns;
                    do k--;
                    while (k > 0 && (s[k] & 0xC0) == 0x80);
                    if (!ci_uni_is_white_space(char_at(s, n, k))) break;
                    ns = k;
                }
                start = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip) {
                while (stop < n) {
                    uint32_t cp = 0;
                    size_t k = ci_utf8_decode_valid(s + stop, n - stop, &cp);
                    if (!k || !ci_uni_is_white_space(cp)) break;
                    stop += k;
                }
            }
            if (start_offset < start) {
                int rc = emit(t, c, s + start_offset, start - start_offset, -1, out, flags, err);
                if (rc) return rc;
            }
            int rc = emit(t, c, s + start, stop - start, a->id, out, flags, err);
            if (rc) return rc;
            start_offset = stop;
        }
    }
    if (start_offset < n) return emit(t, c, s + start_offset, n - start_offset, -1, out, flags, err);
    return 0;
}

static int emit_normalized_piece(const cinfer_tokenizer *t, tok_ctx *c, const uint8_t *p, size_t n, int32_t added_id,
                                 id_vec *out, unsigned flags, cinfer_error *err) {
    if (added_id >= 0) {
        ids_push(out, added_id);
        return 0;
    }
    return encode_plain(t, c, p, n, out, err);
}

static int emit_raw_piece(const cinfer_tokenizer *t, tok_ctx *c, const uint8_t *p, size_t n, int32_t added_id,
                          id_vec *out, unsigned flags, cinfer_error *err) {
    if (added_id >= 0) {
        ids_push(out, added_id);
        return 0;
    }
    if (n == 0) return 0;
    char *normalized = NULL;
    if (t->normalizer == CI_NORMALIZER_NFC && ci_nfc_might_change(p, n)) {
        size_t nn;
        normalized = ci_nfc(p, n, &nn);
        if (!normalized) return ci_error(err, CINFER_ERR_INVALID, "NFC normalization failed");
        p = (const uint8_t *)normalized;
        n = nn;
    }
    int rc = split_added(t, c, &t->normalized_matcher, p, n, flags, emit_normalized_piece, out, err);
    free(normalized);
    return rc;
}

/* ------------------------------------------------------------------ API */

long cinfer_tokenize(const cinfer_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids_out,
                     cinfer_error *err) {
    if (ids_out) *ids_out = NULL;
    if (!t || !ids_out || (!text && len)) return ci_error(err, CINFER_ERR_INVALID, "cinfer_tokenize: NULL argument");
    if (len > CI_TOK_MAX_INPUT_BYTES)
        return ci_error(err, CINFER_ERR_LIMIT, "cinfer_tokenize: input is %zu bytes (limit %zu)", len,
                        CI_TOK_MAX_INPUT_BYTES);
    if (len == 0) return 0;
    const uint8_t *s = (const uint8_t *)text;
    ci_buf repaired = {0};
    if (!ci_utf8_is_valid(s, len)) {
        ci_utf8_append_lossy(&repaired, s, len);
        s = (const uint8_t *)repaired.data;
        len = repaired.len;
    }
    tok_ctx *c = ctx_get(t);
    id_vec out = {0};
    int rc = split_added(t, c, &t->raw_matcher, s, len, flags, emit_raw_piece, &out, err);
    ctx_trim(c);
    ci_buf_free(&repaired);
    if (rc) {
        free(out.v);
        return rc;
    }
    if (out.n == 0) {
        free(out.v);
        return 0;
    }
    *ids_out = out.v;
    return (long)out.n;
}

/* ------------------------------------------------------------- queries */

size_t cinfer_tokenizer_vocab_size(const cinfer_tokenizer *t) { return t ? t->n_ids : 0; }

int32_t cinfer_tokenizer_token_id(const cinfer_tokenizer *t, const char *token_text) {
    if (!t || !token_text) return -1;
    size_t n = strlen(token_text);
    int32_t id = ci_str_map_get(&t->added_by_content, t->pool, token_text, n);
    if (id >= 0) return id;
    return ci_str_map_get(&t->text_to_id, t->pool, token_text, n);
}

const char *cinfer_tokenizer_token_bytes(const cinfer_tokenizer *t, int32_t id, size_t *len_out) {
    if (len_out) *len_out = 0;
    if (!t || id < 0 || (size_t)id >= t->n_ids || !t->entries[id].present) return NULL;
    if (len_out) *len_out = t->entries[id].bytes_len;
    return t->pool + t->entries[id].bytes_off;
}

bool cinfer_tokenizer_is_special(const cinfer_tokenizer *t, int32_t id) {
    return t && id >= 0 && (size_t)id < t->n_ids && t->entries[id].special;
}

const char *cinfer_tokenizer_bos_token(const cinfer_tokenizer *t) { return t ? t->bos_token : NULL; }
const char *cinfer_tokenizer_eos_token(const cinfer_tokenizer *t) { return t ? t->eos_token : NULL; }

int32_t cinfer_tokenizer_post_processor_bos_id(const cinfer_tokenizer *t) { return t ? t->post_bos_id : -1; }

int cinfer_tokenizer_thinking_ids(const cinfer_tokenizer *t, int32_t *start, int32_t *end) {
    int32_t s = t ? t->think_start_id : -1, e = t ? t->think_end_id : -1;
    if (start) *start = s;
    if (end) *end = e;
    return s >= 0 && e >= 0 ? 0 : -1;
}
