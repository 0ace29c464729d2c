/*
 * tokenizer_internal.h — the tokenizer's internal model and its builder.
 *
 * Why a builder: a tokenizer can come from a Hugging Face tokenizer.json
 * (tok_json.c) or from a GGUF file's tokenizer.ggml.* metadata. Both feed
 * the same in-memory description (vocabulary strings, merges in rank order,
 * added tokens with their flags, normalizer, pre-tokenizer steps) into
 * ci_tok_builder, which validates everything and produces the immutable
 * cinfer_tokenizer. All loaders share one set of checks and one encoder.
 *
 * GGUF mapping (for the GGUF loader):
 *   tokenizer.ggml.tokens[i]        -> ci_tok_builder_add_vocab(text, i) for
 *                                      token_type 1 (normal) and 5 (unused),
 *                                      and for 3/4 add_added(...) with
 *                                      special = (type == 3), normalized = false
 *                                      (HF's converters mark added tokens that
 *                                      way; GGUF keeps no lstrip/rstrip flags).
 *   tokenizer.ggml.merges[r]        -> ci_tok_builder_add_merge_string("a b")
 *   tokenizer.ggml.pre              -> ci_tok_pretokenizer_regex_for_gguf_pre()
 *                                      then add_split(regex, ISOLATED) and
 *                                      set_byte_level(false, false)
 *   NFC normalizer for "qwen2" (Qwen's tokenizer.json declares NFC).
 *
 * The tokenizer supports byte-level BPE models only (GPT-2, Llama-3, Qwen2/3,
 * DeepSeek): the pre-tokenizer must end with ByteLevel and the vocabulary is
 * written in the byte-to-unicode alphabet.
 */
#ifndef CINFER_TOKENIZER_INTERNAL_H
#define CINFER_TOKENIZER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "cinfer.h"
#include "util/util.h"

/* ------------------------------------------------------------------ bounds */
/* Every count read from a file is checked against these before allocation. */
#define CI_TOK_MAX_FILE_BYTES   ((size_t)512 << 20) /* tokenizer.json */
#define CI_TOK_MAX_CONFIG_BYTES ((size_t)64 << 20)  /* tokenizer_config.json */
#define CI_TOK_MAX_IDS          (1 << 24)           /* largest id + 1 */
#define CI_TOK_MAX_MERGES       (1 << 24)
#define CI_TOK_MAX_ADDED        (1 << 20)
#define CI_TOK_MAX_TOKEN_BYTES  (64 << 10)          /* one token's text */
#define CI_TOK_MAX_REGEX_BYTES  (64 << 10)
#define CI_TOK_MAX_SPLIT_STEPS  16
/* Inputs to cinfer_tokenize are bounded so offsets fit in int32 pieces. */
#define CI_TOK_MAX_INPUT_BYTES  ((size_t)1 << 30)

/* ---------------------------------------------------------------- pieces */

typedef enum ci_normalizer_kind {
    CI_NORMALIZER_NONE = 0,
    CI_NORMALIZER_NFC,
} ci_normalizer_kind;

/* HF SplitDelimiterBehavior. */
typedef enum ci_split_behavior {
    CI_SPLIT_REMOVED = 0,
    CI_SPLIT_ISOLATED,
    CI_SPLIT_MERGED_WITH_PREVIOUS,
    CI_SPLIT_MERGED_WITH_NEXT,
    CI_SPLIT_CONTIGUOUS,
} ci_split_behavior;

typedef struct ci_added_token_spec {
    const char *content;
    size_t content_len;
    int32_t id;
    bool special;     /* skipped by skip_special decode, not matched with SPLIT_SPECIAL */
    bool lstrip;      /* absorbs White_Space on its left */
    bool rstrip;      /* absorbs White_Space on its right */
    bool single_word; /* only matches when not touching word characters */
    bool normalized;  /* matched in the normalized text, against its normalized form */
} ci_added_token_spec;

/* One entry per id. `text` is the token as written in the file (byte-level
 * alphabet for vocab tokens); `bytes` is what decoding it produces. */
typedef struct ci_tok_entry {
    uint32_t text_off, text_len;
    uint32_t bytes_off, bytes_len;
    uint8_t present;   /* some token has this id */
    uint8_t added;     /* index into added[] is valid */
    uint8_t special;
    int32_t added_index;
} ci_tok_entry;

typedef struct ci_added_token {
    uint32_t content_off, content_len; /* into pool */
    uint32_t match_off, match_len;     /* pattern searched for (normalized form when normalized) */
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} ci_added_token;

/* Byte trie used to find added tokens leftmost-longest (HF uses an
 * Aho-Corasick automaton with MatchKind::LeftmostLongest; trying the trie at
 * each position from the left gives the same matches). Children are kept in
 * per-node sorted edge lists. */
typedef struct ci_trie_edge {
    uint8_t byte;
    int32_t child;
} ci_trie_edge;

typedef struct ci_trie_node {
    uint32_t edge_off, edge_count;
    int32_t pattern; /* index into the owning matcher's pattern list, -1 if none */
} ci_trie_node;

typedef struct ci_added_matcher {
    ci_trie_node *nodes;
    ci_trie_edge *edges;
    size_t n_nodes;
    int32_t *pattern_added; /* pattern index -> index in tokenizer->added */
    size_t n_patterns;
    bool can_start[256];    /* first bytes of some pattern, for a quick scan */
    bool empty;
} ci_added_matcher;

/* A compiled pre-tokenizer regex. `exact` has \s spelled out as Unicode
 * White_Space (Oniguruma's meaning). PCRE2's own \s differs from it only in
 * also matching U+180E, and runs about twice as fast, so `fast` keeps it and
 * is used for text without U+180E (NULL when the pattern has no \s/\S). */
typedef struct ci_regex {
    pcre2_code *exact, *fast;
    bool exact_jit, fast_jit;
} ci_regex;

typedef struct ci_split_step {
    ci_regex re;
    ci_split_behavior behavior;
    bool invert;
} ci_split_step;

/* Merge table: open addressing keyed by (left id, right id). */
typedef struct ci_merge_slot {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t new_id;
} ci_merge_slot;

/* Generic string -> id hash (open addressing; stores offsets into pool). */
typedef struct ci_str_slot {
    uint32_t hash32;
    uint32_t off, len;
    int32_t id; /* -1 empty */
} ci_str_slot;

typedef struct ci_str_map {
    ci_str_slot *slots;
    size_t mask; /* capacity - 1 */
    size_t count;
} ci_str_map;

struct cinfer_tokenizer {
    uint64_t uid; /* unique per instance; keys the per-thread caches */

    char *pool; /* all strings */
    size_t pool_len;

    ci_tok_entry *entries;
    size_t n_ids;

    ci_str_map text_to_id;  /* model vocab by file text */
    ci_str_map bytes_to_id; /* model vocab by decoded bytes (ignore_merges lookup) */
    ci_str_map added_by_content; /* added token content -> id */

    ci_merge_slot *merges;
    size_t merges_mask;
    size_t n_merges;

    int32_t byte_symbol[256]; /* id of the one-byte token for each byte, -1 if none */

    ci_added_token *added;
    size_t n_added;
    ci_added_matcher raw_matcher;        /* tokens with normalized = false */
    ci_added_matcher normalized_matcher; /* tokens with normalized = true */

    ci_normalizer_kind normalizer;
    ci_split_step steps[CI_TOK_MAX_SPLIT_STEPS];
    size_t n_steps;
    bool byte_level_add_prefix_space;
    ci_regex byte_level_regex; /* GPT-2 regex when ByteLevel.use_regex (exact == NULL otherwise) */

    bool ignore_merges;
    int32_t unk_id; /* -1: unknown symbols are dropped, as HF does without unk_token */
    bool fuse_unk;

    char *bos_token, *eos_token; /* tokenizer_config.json */
    int32_t post_bos_id;         /* id a TemplateProcessing post-processor would prepend, -1 if none */
    int32_t think_start_id, think_end_id; /* "<think>" / "</think>", -1 if absent */
};

/* ---------------------------------------------------------------- builder */

typedef struct ci_tok_builder ci_tok_builder;

ci_tok_builder *ci_tok_builder_new(void);
void ci_tok_builder_free(ci_tok_builder *b);

/* Model vocabulary entry: `text` in the byte-level alphabet. */
int ci_tok_builder_add_vocab(ci_tok_builder *b, const char *text, size_t len, int32_t id, cinfer_error *err);
/* Next merge (rank = number of merges added before). Both halves are vocab texts. */
int ci_tok_builder_add_merge(ci_tok_builder *b, const char *left, size_t left_len, const char *right,
                             size_t right_len, cinfer_error *err);
/* "a b" form: exactly one space, as HF requires. */
int ci_tok_builder_add_merge_string(ci_tok_builder *b, const char *merge, size_t len, cinfer_error *err);
int ci_tok_builder_add_added(ci_tok_builder *b, const ci_added_token_spec *spec, cinfer_error *err);
void ci_tok_builder_set_normalizer(ci_tok_builder *b, ci_normalizer_kind kind);
/* A Split pre-tokenizer step with an Oniguruma-syntax regex (translated to PCRE2). */
int ci_tok_builder_add_split_regex(ci_tok_builder *b, const char *regex, size_t len, ci_split_behavior behavior,
                                   bool invert, cinfer_error *err);
/* A Split step on a literal string (HF pattern {"String": ...}). */
int ci_tok_builder_add_split_literal(ci_tok_builder *b, const char *literal, size_t len, ci_split_behavior behavior,
                                     bool invert, cinfer_error *err);
/* The final ByteLevel pre-tokenizer. Required. */
int ci_tok_builder_set_byte_level(ci_tok_builder *b, bool add_prefix_space, bool use_regex, cinfer_error *err);
/* BPE options; unk_token may be NULL. */
void ci_tok_builder_set_bpe_options(ci_tok_builder *b, bool ignore_merges, const char *unk_token, bool fuse_unk);
void ci_tok_builder_set_special_strings(ci_tok_builder *b, const char *bos, const char *eos);
/* Token text a TemplateProcessing post-processor would put first (exposed, never added by encode). */
void ci_tok_builder_set_post_bos(ci_tok_builder *b, const char *token_text);
/* Validates and produces the tokenizer; the builder is consumed (freed) either way. */
cinfer_tokenizer *ci_tok_builder_finish(ci_tok_builder *b, cinfer_error *err);

/* Regex that a GGUF tokenizer.ggml.pre name stands for (the text the model's
 * tokenizer.json carries), or NULL when unknown. */
const char *ci_tok_pretokenizer_regex_for_gguf_pre(const char *pre_name);

/* Loads tokenizer.json (+ tokenizer_config.json beside it). */
cinfer_tokenizer *ci_tok_load_hf_json(const char *json_path, cinfer_error *err);
/* The same from memory; cfg_json NULL: no tokenizer_config.json. The names
 * prefix error messages. */
cinfer_tokenizer *ci_tok_load_hf_memory(const char *json, size_t len, const char *json_name, const char *cfg_json,
                                        size_t cfg_len, const char *cfg_name, cinfer_error *err);

/* ------------------------------------------------------------ internals */

/* Translates an Oniguruma pattern as HF tokenizers uses it into PCRE2 syntax
 * with the same meaning (\s, \S, \h, \H, \uHHHH). Returns malloc'd text. */
char *ci_tok_translate_regex(const char *onig, size_t len, bool native_space, cinfer_error *err);
int ci_tok_compile_regex(const char *onig, size_t len, ci_regex *out, cinfer_error *err);
void ci_tok_regex_free(ci_regex *re);

/* Unicode helpers (tok_unicode.c). */
bool ci_uni_is_white_space(uint32_t cp);   /* Unicode White_Space, as Rust/Oniguruma */
bool ci_uni_is_word_char(uint32_t cp);     /* Rust regex \w (Unicode) */
/* Decodes one code point at s[0..n) if valid; returns its length (1..4) or 0 if invalid. */
size_t ci_utf8_decode_valid(const uint8_t *s, size_t n, uint32_t *cp);
/* Length of the maximal invalid subpart at s (>= 1), given s does not start a valid char,
 * or 0 when the bytes at s are a truncated-but-valid prefix that reaches the end (streaming). */
size_t ci_utf8_invalid_prefix_len(const uint8_t *s, size_t n, bool at_end);
/* Returns true when s is valid UTF-8. */
bool ci_utf8_is_valid(const uint8_t *s, size_t n);
/* Appends s with invalid sequences replaced by U+FFFD (Python errors="replace");
 * s may be NULL when n == 0 (out is left untouched). */
void ci_utf8_append_lossy(ci_buf *out, const uint8_t *s, size_t n);
/* NFC; `maybe` quick check says whether the text might change. */
bool ci_nfc_might_change(const uint8_t *s, size_t n);
/* Returns malloc'd NFC of valid UTF-8 s, length in *out_len; NULL on failure. */
char *ci_nfc(const uint8_t *s, size_t n, size_t *out_len);

/* Byte <-> unicode alphabet of ByteLevel (GPT-2 bytes_to_unicode). */
uint32_t ci_byte_level_char(uint8_t byte);
/* -1 when cp is not in the alphabet. */
int ci_byte_level_byte(uint32_t cp);

/* Hash used by the maps. */
uint64_t ci_tok_hash(const void *data, size_t len);
int32_t ci_str_map_get(const ci_str_map *m, const char *pool, const void *key, size_t len);

#endif
