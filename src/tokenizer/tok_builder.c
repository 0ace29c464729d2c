/*
 * tok_builder.c — turns an in-memory tokenizer description into the
 * immutable cinfer_tokenizer, checking it on the way.
 *
 * Why all validation lives here: both loaders (tokenizer.json, GGUF) hand
 * over the same pieces, and a corrupt file must end in an error that names
 * the bad token / merge / id, never in a crash or a silently wrong encoder.
 *
 * HF semantics reproduced here:
 *  - merges: (left id, right id) -> (rank, merged id); a repeated pair keeps
 *    the later rank (HF inserts into a HashMap). Both halves and their
 *    concatenation must be vocabulary tokens (HF: MergeTokenOutOfVocabulary).
 *  - added tokens: matched leftmost-longest; special ones are listed before
 *    the others, so when two have the same content the special one wins.
 *  - an added token whose content is also a vocab token must carry that id.
 */
#include "tokenizer/tokenizer_internal.h"

#include <string.h>

typedef struct vocab_item {
    uint32_t off, len;
    int32_t id;
} vocab_item;

typedef struct merge_item {
    uint32_t left_off, left_len, right_off, right_len;
} merge_item;

typedef struct added_item {
    uint32_t off, len;
    ci_added_token_spec spec; /* content pointer unused; see off/len */
} added_item;

struct ci_tok_builder {
    ci_buf pool;
    vocab_item *vocab;
    size_t n_vocab, cap_vocab;
    merge_item *merges;
    size_t n_merges, cap_merges;
    added_item *added;
    size_t n_added, cap_added;
    ci_normalizer_kind normalizer;
    ci_split_step steps[CI_TOK_MAX_SPLIT_STEPS];
    size_t n_steps;
    bool has_byte_level, add_prefix_space;
    ci_regex byte_level_regex;
    bool ignore_merges, fuse_unk;
    char *unk_token;
    char *bos, *eos, *post_bos;
};

static atomic_uint_fast64_t next_tokenizer_uid = 1;

ci_tok_builder *ci_tok_builder_new(void) {
    ci_tok_builder *b = ci_calloc(1, sizeof *b);
    b->normalizer = CI_NORMALIZER_NONE;
    return b;
}

void ci_tok_builder_free(ci_tok_builder *b) {
    if (!b) return;
    ci_buf_free(&b->pool);
    free(b->vocab);
    free(b->merges);
    free(b->added);
    for (size_t i = 0; i < b->n_steps; i++) ci_tok_regex_free(&b->steps[i].re);
    ci_tok_regex_free(&b->byte_level_regex);
    free(b->unk_token);
    free(b->bos);
    free(b->eos);
    free(b->post_bos);
    free(b);
}

/* Copies bytes into the pool; fails when the pool would outgrow 32-bit offsets. */
static int pool_add(ci_tok_builder *b, const void *data, size_t len, uint32_t *off, cinfer_error *err) {
    if (b->pool.len + len + 1 > UINT32_MAX)
        return ci_error(err, CINFER_ERR_LIMIT, "tokenizer strings exceed 4 GiB in total");
    *off = (uint32_t)b->pool.len;
    ci_buf_append(&b->pool, data, len);
    ci_buf_putc(&b->pool, '\0'); /* keeps texts printable in messages */
    return 0;
}

/* printf arguments for at most 80 bytes of text given with its length
 * (callers' strings need not be NUL-terminated). */
#define SHOWN(text, len) (int)((len) < 80 ? (len) : 80), (text)

#define GROW(arr, n, cap)                                                  \
    do {                                                                   \
        if ((n) == (cap)) {                                                \
            (cap) = (cap) ? (cap) * 2 : 256;                               \
            (arr) = ci_realloc_array((arr), (cap), sizeof *(arr));         \
        }                                                                  \
    } while (0)

int ci_tok_builder_add_vocab(ci_tok_builder *b, const char *text, size_t len, int32_t id, cinfer_error *err) {
    if (id < 0 || id >= CI_TOK_MAX_IDS)
        return ci_error(err, CINFER_ERR_FORMAT, "vocabulary token \"%.*s\" has id %d, outside [0, %d)", SHOWN(text, len), id,
                        CI_TOK_MAX_IDS);
    if (len > CI_TOK_MAX_TOKEN_BYTES)
        return ci_error(err, CINFER_ERR_LIMIT, "vocabulary token with id %d is %zu bytes long (limit %d)", id, len,
                        CI_TOK_MAX_TOKEN_BYTES);
    if (b->n_vocab >= CI_TOK_MAX_IDS)
        return ci_error(err, CINFER_ERR_LIMIT, "more than %d vocabulary tokens", CI_TOK_MAX_IDS);
    GROW(b->vocab, b->n_vocab, b->cap_vocab);
    vocab_item *v = &b->vocab[b->n_vocab];
    if (pool_add(b, text, len, &v->off, err)) return CINFER_ERR_LIMIT;
    v->len = (uint32_t)len;
    v->id = id;
    b->n_vocab++;
    return 0;
}

int ci_tok_builder_add_merge(ci_tok_builder *b, const char *left, size_t left_len, const char *right,
                             size_t right_len, cinfer_error *err) {
    if (b->n_merges >= CI_TOK_MAX_MERGES)
        return ci_error(err, CINFER_ERR_LIMIT, "more than %d merges", CI_TOK_MAX_MERGES);
    if (left_len > CI_TOK_MAX_TOKEN_BYTES || right_len > CI_TOK_MAX_TOKEN_BYTES)
        return ci_error(err, CINFER_ERR_LIMIT, "merge #%zu has a part longer than %d bytes", b->n_merges,
                        CI_TOK_MAX_TOKEN_BYTES);
    GROW(b->merges, b->n_merges, b->cap_merges);
    merge_item *m = &b->merges[b->n_merges];
    if (pool_add(b, left, left_len, &m->left_off, err) || pool_add(b, right, right_len, &m->right_off, err))
        return CINFER_ERR_LIMIT;
    m->left_len = (uint32_t)left_len;
    m->right_len = (uint32_t)right_len;
    b->n_merges++;
    return 0;
}

int ci_tok_builder_add_merge_string(ci_tok_builder *b, const char *merge, size_t len, cinfer_error *err) {
    const char *space = memchr(merge, ' ', len);
    if (!space || memchr(space + 1, ' ', len - (size_t)(space + 1 - merge)))
        return ci_error(err, CINFER_ERR_FORMAT, "merge #%zu \"%.*s\" is not two tokens separated by one space",
                        b->n_merges, SHOWN(merge, len));
    return ci_tok_builder_add_merge(b, merge, (size_t)(space - merge), space + 1, len - (size_t)(space + 1 - merge),
                                    err);
}

int ci_tok_builder_add_added(ci_tok_builder *b, const ci_added_token_spec *spec, cinfer_error *err) {
    if (spec->id < 0 || spec->id >= CI_TOK_MAX_IDS)
        return ci_error(err, CINFER_ERR_FORMAT, "added token \"%.*s\" has id %d, outside [0, %d)",
                        SHOWN(spec->content ? spec->content : "", spec->content ? spec->content_len : 0), spec->id,
                        CI_TOK_MAX_IDS);
    if (!spec->content || spec->content_len == 0)
        return ci_error(err, CINFER_ERR_FORMAT, "added token with id %d has empty content", spec->id);
    if (spec->content_len > CI_TOK_MAX_TOKEN_BYTES)
        return ci_error(err, CINFER_ERR_LIMIT, "added token with id %d is %zu bytes long (limit %d)", spec->id,
                        spec->content_len, CI_TOK_MAX_TOKEN_BYTES);
    if (!ci_utf8_is_valid((const uint8_t *)spec->content, spec->content_len))
        return ci_error(err, CINFER_ERR_FORMAT, "added token with id %d is not valid UTF-8", spec->id);
    if (b->n_added >= CI_TOK_MAX_ADDED)
        return ci_error(err, CINFER_ERR_LIMIT, "more than %d added tokens", CI_TOK_MAX_ADDED);
    GROW(b->added, b->n_added, b->cap_added);
    added_item *a = &b->added[b->n_added];
    if (pool_add(b, spec->content, spec->content_len, &a->off, err)) return CINFER_ERR_LIMIT;
    a->len = (uint32_t)spec->content_len;
    a->spec = *spec;
    a->spec.content = NULL;
    b->n_added++;
    return 0;
}

void ci_tok_builder_set_normalizer(ci_tok_builder *b, ci_normalizer_kind kind) { b->normalizer = kind; }

int ci_tok_builder_add_split_regex(ci_tok_builder *b, const char *regex, size_t len, ci_split_behavior behavior,
                                   bool invert, cinfer_error *err) {
    if (b->has_byte_level)
        return ci_error(err, CINFER_ERR_FORMAT, "a Split pre-tokenizer after ByteLevel is not supported");
    if (b->n_steps >= CI_TOK_MAX_SPLIT_STEPS)
        return ci_error(err, CINFER_ERR_LIMIT, "more than %d Split pre-tokenizers", CI_TOK_MAX_SPLIT_STEPS);
    int rc = ci_tok_compile_regex(regex, len, &b->steps[b->n_steps].re, err);
    if (rc) return rc;
    b->steps[b->n_steps].behavior = behavior;
    b->steps[b->n_steps].invert = invert;
    b->n_steps++;
    return 0;
}

int ci_tok_builder_add_split_literal(ci_tok_builder *b, const char *literal, size_t len, ci_split_behavior behavior,
                                     bool invert, cinfer_error *err) {
    if (len == 0) return ci_error(err, CINFER_ERR_FORMAT, "Split pre-tokenizer with an empty string pattern");
    if (len > CI_TOK_MAX_REGEX_BYTES) return ci_error(err, CINFER_ERR_LIMIT, "Split string pattern too long");
    /* Escape every ASCII punctuation byte; other bytes stand for themselves. */
    ci_buf rx = {0};
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)literal[i];
        if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            if (c < 0x20 || c == 0x7F) ci_buf_printf(&rx, "\\x{%X}", c);
            else {
                ci_buf_putc(&rx, '\\');
                ci_buf_putc(&rx, (char)c);
            }
        } else
            ci_buf_putc(&rx, (char)c);
    }
    /* The escaped text has no \s/\h/\u escapes of its own, so the translator leaves it as is. */
    int rc = ci_tok_builder_add_split_regex(b, rx.data, rx.len, behavior, invert, err);
    ci_buf_free(&rx);
    return rc;
}

int ci_tok_builder_set_byte_level(ci_tok_builder *b, bool add_prefix_space, bool use_regex, cinfer_error *err) {
    if (b->has_byte_level) return ci_error(err, CINFER_ERR_FORMAT, "more than one ByteLevel pre-tokenizer");
    b->has_byte_level = true;
    b->add_prefix_space = add_prefix_space;
    if (use_regex) {
        const char *gpt2 = ci_tok_pretokenizer_regex_for_gguf_pre("gpt-2");
        int rc = ci_tok_compile_regex(gpt2, strlen(gpt2), &b->byte_level_regex, err);
        if (rc) return rc;
    }
    return 0;
}

void ci_tok_builder_set_bpe_options(ci_tok_builder *b, bool ignore_merges, const char *unk_token, bool fuse_unk) {
    b->ignore_merges = ignore_merges;
    b->fuse_unk = fuse_unk;
    free(b->unk_token);
    b->unk_token = unk_token ? ci_strdup(unk_token) : NULL;
}

void ci_tok_builder_set_special_strings(ci_tok_builder *b, const char *bos, const char *eos) {
    free(b->bos);
    free(b->eos);
    b->bos = bos ? ci_strdup(bos) : NULL;
    b->eos = eos ? ci_strdup(eos) : NULL;
}

void ci_tok_builder_set_post_bos(ci_tok_builder *b, const char *token_text) {
    free(b->post_bos);
    b->post_bos = token_text ? ci_strdup(token_text) : NULL;
}

/* ------------------------------------------------------------------ maps */

static void str_map_init(ci_str_map *m, size_t expected) {
    size_t cap = 16;
    while (cap / 4 * 3 < expected + 1) cap <<= 1; /* at most 3/4 full: a vocabulary's map stays ~4 MiB */
    m->slots = ci_malloc(cap * sizeof *m->slots);
    memset(m->slots, 0xFF, cap * sizeof *m->slots); /* id -1: empty */
    m->mask = cap - 1;
    m->count = 0;
}

int32_t ci_str_map_get(const ci_str_map *m, const char *pool, const void *key, size_t len) {
    if (!m->slots) return -1;
    uint64_t h = ci_tok_hash(key, len);
    uint32_t h32 = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
        const ci_str_slot *s = &m->slots[i];
        if (s->id < 0) return -1;
        if (s->hash32 == h32 && s->len == len && memcmp(pool + s->off, key, len) == 0) return s->id;
    }
}

/* Inserts unless present; returns the id already stored, or -1 when inserted. */
static int32_t str_map_put(ci_str_map *m, const char *pool, uint32_t off, uint32_t len, int32_t id) {
    uint64_t h = ci_tok_hash(pool + off, len);
    uint32_t h32 = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
        ci_str_slot *s = &m->slots[i];
        if (s->id < 0) {
            s->hash32 = h32;
            s->off = off;
            s->len = len;
            s->id = id;
            m->count++;
            return -1;
        }
        if (s->hash32 == h32 && s->len == len && memcmp(pool + s->off, pool + off, len) == 0) return s->id;
    }
}

static void merge_put(cinfer_tokenizer *t, int32_t left, int32_t right, uint32_t rank, int32_t new_id) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & t->merges_mask;; i = (i + 1) & t->merges_mask) {
        ci_merge_slot *s = &t->merges[i];
        if (s->key == UINT64_MAX || s->key == key) {
            if (s->key == UINT64_MAX) t->n_merges++;
            s->key = key;
            s->rank = rank;
            s->new_id = new_id;
            return;
        }
    }
}

/* ------------------------------------------------------------ added trie */

/* Build-time trie node: children as a sibling list kept sorted by byte, so
 * memory stays proportional to the total pattern length. */
typedef struct trie_build_node {
    int32_t first_child, next_sibling;
    int32_t pattern;
    uint8_t byte;
} trie_build_node;

static void matcher_build(ci_added_matcher *m, const char *pool, const ci_added_token *added, const int32_t *order,
                          size_t n) {
    memset(m, 0, sizeof *m);
    m->empty = n == 0;
    if (n == 0) return;
    size_t total = 1;
    for (size_t i = 0; i < n; i++) total += added[order[i]].match_len;
    trie_build_node *bn = ci_malloc(total * sizeof *bn);
    size_t count = 1;
    bn[0] = (trie_build_node){-1, -1, -1, 0};
    m->pattern_added = ci_malloc(n * sizeof *m->pattern_added);
    m->n_patterns = n;
    for (size_t p = 0; p < n; p++) {
        const ci_added_token *a = &added[order[p]];
        m->pattern_added[p] = order[p];
        const uint8_t *s = (const uint8_t *)pool + a->match_off;
        int32_t node = 0;
        for (uint32_t k = 0; k < a->match_len; k++) {
            int32_t *link = &bn[node].first_child;
            while (*link >= 0 && bn[*link].byte < s[k]) link = &bn[*link].next_sibling;
            if (*link < 0 || bn[*link].byte != s[k]) {
                bn[count] = (trie_build_node){-1, *link, -1, s[k]};
                *link = (int32_t)count++;
            }
            node = *link;
        }
        if (a->match_len && bn[node].pattern < 0) bn[node].pattern = (int32_t)p; /* first listed wins */
        if (a->match_len) m->can_start[s[0]] = true;
    }
    m->nodes = ci_malloc(count * sizeof *m->nodes);
    m->edges = ci_malloc(count * sizeof *m->edges); /* every node but the root has one incoming edge */
    size_t e = 0;
    for (size_t i = 0; i < count; i++) {
        m->nodes[i].edge_off = (uint32_t)e;
        m->nodes[i].pattern = bn[i].pattern;
        for (int32_t c = bn[i].first_child; c >= 0; c = bn[c].next_sibling) {
            m->edges[e].byte = bn[c].byte;
            m->edges[e].child = c;
            e++;
        }
        m->nodes[i].edge_count = (uint32_t)(e - m->nodes[i].edge_off);
    }
    m->n_nodes = count;
    free(bn);
}

static void matcher_free(ci_added_matcher *m) {
    free(m->nodes);
    free(m->edges);
    free(m->pattern_added);
}

/* ---------------------------------------------------------------- finish */

void cinfer_tokenizer_free(cinfer_tokenizer *t) {
    if (!t) return;
    free(t->pool);
    free(t->entries);
    free(t->text_to_id.slots);
    free(t->bytes_to_id.slots);
    free(t->added_by_content.slots);
    free(t->merges);
    free(t->added);
    matcher_free(&t->raw_matcher);
    matcher_free(&t->normalized_matcher);
    for (size_t i = 0; i < t->n_steps; i++) ci_tok_regex_free(&t->steps[i].re);
    ci_tok_regex_free(&t->byte_level_regex);
    free(t->bos_token);
    free(t->eos_token);
    free(t);
}

/* Appends the byte-level decoding of text to the pool; falls back to the raw
 * text when a char is outside the alphabet (as HF's ByteLevel decoder does). */
static void decode_byte_level_text(ci_buf *pool, const char *text, size_t len, uint32_t *off, uint32_t *out_len) {
    size_t start = pool->len;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = ci_utf8_decode_valid((const uint8_t *)text + i, len - i, &cp);
        int byte = k ? ci_byte_level_byte(cp) : -1;
        if (byte < 0) {
            pool->len = start;
            ci_buf_append(pool, text, len);
            break;
        }
        ci_buf_putc(pool, (char)byte);
        i += k;
    }
    *off = (uint32_t)start;
    *out_len = (uint32_t)(pool->len - start);
    ci_buf_putc(pool, '\0');
}

/* Vocabulary: one entry per id with its file text and decoded bytes, and
 * text_to_id. Decoded bytes are appended to the builder pool, which later
 * moves to the tokenizer. */
static int finish_vocab(cinfer_tokenizer *t, ci_tok_builder *b, cinfer_error *err) {
    ci_buf *pool = &b->pool;
    str_map_init(&t->text_to_id, b->n_vocab);
    for (size_t i = 0; i < b->n_vocab; i++) {
        vocab_item *v = &b->vocab[i];
        ci_tok_entry *e = &t->entries[v->id];
        if (e->present)
            return ci_error(err, CINFER_ERR_FORMAT, "id %d is used twice in the vocabulary (\"%.60s\" and \"%.60s\")",
                            v->id, pool->data + e->text_off, pool->data + v->off);
        int32_t prev = str_map_put(&t->text_to_id, pool->data, v->off, v->len, v->id);
        if (prev >= 0)
            return ci_error(err, CINFER_ERR_FORMAT, "vocabulary token \"%.80s\" appears twice (ids %d and %d)",
                            pool->data + v->off, prev, v->id);
        e->present = 1;
        e->text_off = v->off;
        e->text_len = v->len;
        if (pool->len + (size_t)v->len * 2 + 2 > UINT32_MAX)
            return ci_error(err, CINFER_ERR_LIMIT, "tokenizer strings exceed 4 GiB in total");
        ci_buf_reserve(pool, (size_t)v->len + 2); /* the source text below must not move while appending */
        decode_byte_level_text(pool, pool->data + v->off, v->len, &e->bytes_off, &e->bytes_len);
    }
    return 0;
}

/* bytes_to_id only keeps tokens whose text is entirely in the byte alphabet
 * (the only ones a ByteLevel word can spell); first id wins on a tie. Runs
 * before added tokens exist, so it sees vocabulary entries only. */
static void finish_bytes_index(cinfer_tokenizer *t, const ci_buf *pool, size_t n_vocab) {
    str_map_init(&t->bytes_to_id, n_vocab);
    for (size_t id = 0; id < t->n_ids; id++) {
        const ci_tok_entry *e = &t->entries[id];
        if (!e->present) continue;
        bool pure = true;
        const char *txt = pool->data + e->text_off;
        for (size_t i = 0; i < e->text_len;) {
            uint32_t cp;
            size_t k = ci_utf8_decode_valid((const uint8_t *)txt + i, e->text_len - i, &cp);
            if (!k || ci_byte_level_byte(cp) < 0) {
                pure = false;
                break;
            }
            i += k;
        }
        if (pure) str_map_put(&t->bytes_to_id, pool->data, e->bytes_off, e->bytes_len, (int32_t)id);
    }
}

/* Checks one added token against the vocabulary and the added tokens before
 * it. Returns 1 for a repeat HF ignores, 0 to keep it, an error code else. */
static int check_added(const cinfer_tokenizer *t, const ci_buf *pool, const added_item *ai, cinfer_error *err) {
    const char *content = pool->data + ai->off;
    int32_t id = ai->spec.id;
    int32_t vocab_id = ci_str_map_get(&t->text_to_id, pool->data, content, ai->len);
    if (vocab_id >= 0 && vocab_id != id)
        return ci_error(err, CINFER_ERR_FORMAT, "added token \"%.80s\" has id %d but the vocabulary gives it id %d",
                        content, id, vocab_id);
    int32_t prev = ci_str_map_get(&t->added_by_content, pool->data, content, ai->len);
    if (prev >= 0) {
        if (prev != id)
            return ci_error(err, CINFER_ERR_FORMAT, "added token \"%.80s\" is listed twice with ids %d and %d",
                            content, prev, id);
        return 1; /* HF ignores a repeated token */
    }
    const ci_tok_entry *e = &t->entries[id];
    if (e->added)
        return ci_error(err, CINFER_ERR_FORMAT, "id %d is used by two added tokens (\"%.60s\" and \"%.60s\")", id,
                        pool->data + t->added[e->added_index].content_off, content);
    if (e->present && vocab_id < 0)
        return ci_error(err, CINFER_ERR_FORMAT, "id %d is used by vocabulary token \"%.60s\" and added token \"%.60s\"",
                        id, pool->data + e->text_off, content);
    return 0;
}

/* Appends the pattern a normalized added token is matched by: NFC of its content. */
static int set_normalized_match(ci_added_token *a, ci_buf *pool, cinfer_error *err) {
    size_t nlen;
    char *norm = ci_nfc((const uint8_t *)pool->data + a->content_off, a->content_len, &nlen);
    if (!norm)
        return ci_error(err, CINFER_ERR_FORMAT, "added token \"%.80s\" cannot be normalized",
                        pool->data + a->content_off);
    a->match_off = (uint32_t)pool->len;
    a->match_len = (uint32_t)nlen;
    ci_buf_append(pool, norm, nlen);
    ci_buf_putc(pool, '\0');
    free(norm);
    return 0;
}

/* Added tokens: t->added in file order (repeats dropped), added_by_content,
 * and their entries (an added token may also be a vocabulary token). */
static int finish_added(cinfer_tokenizer *t, ci_tok_builder *b, cinfer_error *err) {
    ci_buf *pool = &b->pool;
    t->added = ci_calloc(b->n_added ? b->n_added : 1, sizeof *t->added);
    str_map_init(&t->added_by_content, b->n_added);
    for (size_t i = 0; i < b->n_added; i++) {
        const added_item *ai = &b->added[i];
        int rc = check_added(t, pool, ai, err);
        if (rc == 1) continue;
        if (rc) return rc;
        ci_added_token *a = &t->added[t->n_added];
        *a = (ci_added_token){.content_off = ai->off, .content_len = ai->len, .match_off = ai->off,
                              .match_len = ai->len, .id = ai->spec.id, .special = ai->spec.special,
                              .lstrip = ai->spec.lstrip, .rstrip = ai->spec.rstrip,
                              .single_word = ai->spec.single_word, .normalized = ai->spec.normalized};
        if (a->normalized && b->normalizer == CI_NORMALIZER_NFC && set_normalized_match(a, pool, err))
            return CINFER_ERR_FORMAT;
        str_map_put(&t->added_by_content, pool->data, ai->off, ai->len, a->id);
        ci_tok_entry *e = &t->entries[a->id];
        if (!e->present) {
            e->present = 1;
            e->text_off = ai->off;
            e->text_len = ai->len;
        }
        /* Decoding an added token yields its content as written (HF's decode
         * emits added tokens verbatim, outside the ByteLevel decoder). */
        e->bytes_off = ai->off;
        e->bytes_len = ai->len;
        e->added = 1;
        e->special = a->special;
        e->added_index = (int32_t)t->n_added;
        t->n_added++;
    }
    return 0;
}

/* Merges: both halves and their concatenation must be vocabulary tokens. */
static int finish_merges(cinfer_tokenizer *t, const ci_tok_builder *b, cinfer_error *err) {
    const char *pool = b->pool.data;
    size_t mcap = 16;
    while (mcap < b->n_merges * 2 + 16) mcap <<= 1;
    t->merges = ci_malloc(mcap * sizeof *t->merges);
    memset(t->merges, 0xFF, mcap * sizeof *t->merges);
    t->merges_mask = mcap - 1;
    ci_buf joined = {0};
    int rc = 0;
    for (size_t r = 0; r < b->n_merges && !rc; r++) {
        const merge_item *m = &b->merges[r];
        const char *left = pool + m->left_off, *right = pool + m->right_off;
        int32_t lid = ci_str_map_get(&t->text_to_id, pool, left, m->left_len);
        int32_t rid = ci_str_map_get(&t->text_to_id, pool, right, m->right_len);
        if (lid < 0 || rid < 0) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "merge #%zu (\"%.60s\" \"%.60s\") references unknown token \"%.60s\"",
                          r, left, right, lid < 0 ? left : right);
            break;
        }
        joined.len = 0;
        ci_buf_append(&joined, left, m->left_len);
        ci_buf_append(&joined, right, m->right_len);
        int32_t nid = ci_str_map_get(&t->text_to_id, pool, joined.data, joined.len);
        if (nid < 0)
            rc = ci_error(err, CINFER_ERR_FORMAT,
                          "merge #%zu (\"%.60s\" \"%.60s\") produces \"%.120s\", which is not in the vocabulary", r,
                          left, right, joined.data);
        else
            merge_put(t, lid, rid, (uint32_t)r, nid);
    }
    ci_buf_free(&joined);
    return rc;
}

/* The one-byte token for each byte (its byte-level char), -1 when absent. */
static void finish_byte_symbols(cinfer_tokenizer *t, const char *pool) {
    for (int byte = 0; byte < 256; byte++) {
        uint8_t utf8[4];
        uint32_t cp = ci_byte_level_char((uint8_t)byte);
        size_t n = cp < 0x80 ? 1 : 2; /* the alphabet stays below U+0800 */
        if (n == 1) utf8[0] = (uint8_t)cp;
        else {
            utf8[0] = (uint8_t)(0xC0 | (cp >> 6));
            utf8[1] = (uint8_t)(0x80 | (cp & 0x3F));
        }
        t->byte_symbol[byte] = ci_str_map_get(&t->text_to_id, pool, utf8, n);
    }
}

/* BPE and pre-tokenizer options; compiled regexes and strings move to t. */
static int finish_options(cinfer_tokenizer *t, ci_tok_builder *b, cinfer_error *err) {
    if (b->unk_token) {
        t->unk_id = ci_str_map_get(&t->text_to_id, b->pool.data, b->unk_token, strlen(b->unk_token));
        if (t->unk_id < 0)
            return ci_error(err, CINFER_ERR_FORMAT, "unk_token \"%.80s\" is not in the vocabulary", b->unk_token);
    }
    t->ignore_merges = b->ignore_merges;
    t->fuse_unk = b->fuse_unk;
    t->normalizer = b->normalizer;
    memcpy(t->steps, b->steps, sizeof b->steps);
    t->n_steps = b->n_steps;
    b->n_steps = 0;
    t->byte_level_add_prefix_space = b->add_prefix_space;
    t->byte_level_regex = b->byte_level_regex;
    memset(&b->byte_level_regex, 0, sizeof b->byte_level_regex);
    t->bos_token = b->bos;
    t->eos_token = b->eos;
    b->bos = b->eos = NULL;
    return 0;
}

/* Matchers: special tokens first, then the others, each in file order. */
static void finish_matchers(cinfer_tokenizer *t, const char *pool) {
    int32_t *order = ci_malloc((t->n_added ? t->n_added : 1) * sizeof *order);
    for (int pass = 0; pass < 2; pass++) {
        bool want_normalized = pass == 1;
        size_t n = 0;
        for (int special = 1; special >= 0; special--)
            for (size_t i = 0; i < t->n_added; i++)
                if (t->added[i].normalized == want_normalized && t->added[i].special == (bool)special)
                    order[n++] = (int32_t)i;
        matcher_build(want_normalized ? &t->normalized_matcher : &t->raw_matcher, pool, t->added, order, n);
    }
    free(order);
}

/* The tokenizer shell: ids sized to the largest id of any token. */
static cinfer_tokenizer *tokenizer_new(const ci_tok_builder *b) {
    cinfer_tokenizer *t = ci_calloc(1, sizeof *t);
    t->uid = atomic_fetch_add(&next_tokenizer_uid, 1);
    t->unk_id = -1;
    t->post_bos_id = -1;
    int32_t max_id = -1;
    for (size_t i = 0; i < b->n_vocab; i++)
        if (b->vocab[i].id > max_id) max_id = b->vocab[i].id;
    for (size_t i = 0; i < b->n_added; i++)
        if (b->added[i].spec.id > max_id) max_id = b->added[i].spec.id;
    t->n_ids = (size_t)max_id + 1;
    t->entries = ci_calloc(t->n_ids, sizeof *t->entries);
    return t;
}

cinfer_tokenizer *ci_tok_builder_finish(ci_tok_builder *b, cinfer_error *err) {
    int rc = 0;
    if (!b->has_byte_level)
        rc = ci_error(err, CINFER_ERR_FORMAT,
                      "only byte-level BPE tokenizers are supported (the pre-tokenizer has no ByteLevel step)");
    else if (b->n_vocab == 0)
        rc = ci_error(err, CINFER_ERR_FORMAT, "the vocabulary is empty");
    if (rc) {
        ci_tok_builder_free(b);
        return NULL;
    }
    cinfer_tokenizer *t = tokenizer_new(b);
    rc = finish_vocab(t, b, err);
    if (!rc && b->ignore_merges) finish_bytes_index(t, &b->pool, b->n_vocab); /* its only user */
    if (!rc) rc = finish_added(t, b, err);
    if (!rc) rc = finish_merges(t, b, err);
    if (!rc) finish_byte_symbols(t, b->pool.data);
    if (!rc) rc = finish_options(t, b, err);
    if (rc) {
        cinfer_tokenizer_free(t);
        ci_tok_builder_free(b);
        return NULL;
    }
    finish_matchers(t, b->pool.data);
    t->pool_len = b->pool.len;
    t->pool = ci_buf_take(&b->pool, NULL);
    if (b->post_bos) t->post_bos_id = cinfer_tokenizer_token_id(t, b->post_bos);
    /* Reasoning markers (Qwen3 and its kind): the one place their ids are read. */
    t->think_start_id = cinfer_tokenizer_token_id(t, "<think>");
    t->think_end_id = cinfer_tokenizer_token_id(t, "</think>");
    ci_tok_builder_free(b);
    return t;
}
