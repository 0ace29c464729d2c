/*
 * constrain.h — the constraint engine: JSON Schema, regular expressions,
 * choice lists and GBNF grammars compiled into one pushdown automaton over
 * bytes, and the per-token mask of allowed tokens over a whole vocabulary.
 *
 * Objects and ownership
 *   ci_cons_vocab    token id -> bytes, the special/excluded flags, the
 *                    end-of-generation ids, and a byte trie of all tokens.
 *                    Built once per model (ci_cons_vocab_from_tokenizer);
 *                    immutable; the caller owns it and must keep it alive
 *                    until every grammar compiled against it is released.
 *   ci_cons_grammar  a compiled constraint. Logically immutable and shared:
 *                    refcounted (ci_cons_grammar_ref / _unref, atomic), safe
 *                    to use from many threads at once. Internally it keeps a
 *                    memo of automaton states, transitions and masks under a
 *                    mutex, so the second request with the same schema (or
 *                    the n-th sequence of an n > 1 request) finds its masks
 *                    already computed.
 *   ci_cons_matcher  per-sequence state (the current automaton state and a
 *                    short history for rollback). Not thread-safe: one
 *                    matcher belongs to one sequence. Holds a grammar ref.
 *   ci_cons_cache    compiled grammars keyed by (kind, options, source) with
 *                    a size bound; thread-safe.
 *
 * Integration (sampler): for each step, ci_cons_fill_mask(m, bits) and clear
 * the logits of tokens whose bit is 0 (set them to -inf) BEFORE temperature,
 * top-k, top-p and min-p, so every sampling mode renormalises over the
 * allowed set; after sampling, ci_cons_accept_token(m, id). The mask has
 * ci_cons_mask_words(vocab) uint32 words, bit (id & 31) of word id >> 5.
 * End-of-generation ids are allowed exactly when the output is complete;
 * when ci_cons_is_terminated() the only allowed tokens are end ids (the
 * caller may stop right away).
 */
#ifndef CINFER_CONSTRAIN_H
#define CINFER_CONSTRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"

/* ------------------------------------------------------------- vocabulary */

/* One token as the caller describes it. `bytes` is what the token decodes to
 * (for byte-level BPE the raw bytes, not the byte-to-unicode text). */
typedef struct ci_cons_token {
    const uint8_t *bytes;
    uint32_t len;
    bool excluded; /* special / added control tokens: never allowed by a constraint */
} ci_cons_token;

typedef struct ci_cons_vocab_desc {
    const ci_cons_token *tokens; /* [n_tokens], index = token id */
    size_t n_tokens;
    const int32_t *eos_ids;      /* tokens that end generation; allowed when complete */
    size_t n_eos;
} ci_cons_vocab_desc;

typedef struct ci_cons_vocab ci_cons_vocab;

/* Copies everything it needs from `d`. */
ci_cons_vocab *ci_cons_vocab_new(const ci_cons_vocab_desc *d, cinfer_error *err);
/* Adapter for cinfer's tokenizer: every id's decoded bytes; special tokens
 * and added tokens (e.g. Qwen3's <think>, <tool_call>) are excluded;
 * `eos_ids` (e.g. <|im_end|>, <|endoftext|>) end generation. */
ci_cons_vocab *ci_cons_vocab_from_tokenizer(const cinfer_tokenizer *tok, const int32_t *eos_ids,
                                            size_t n_eos, cinfer_error *err);
void ci_cons_vocab_free(ci_cons_vocab *v);
size_t ci_cons_vocab_size(const ci_cons_vocab *v);
/* Words (uint32) in a mask for this vocabulary: ceil(size / 32). */
size_t ci_cons_mask_words(const ci_cons_vocab *v);

/* ---------------------------------------------------------------- compile */

typedef enum ci_cons_kind {
    CI_CONS_JSON_SCHEMA = 1, /* source: a JSON Schema document */
    CI_CONS_JSON_OBJECT,     /* source ignored: any JSON object */
    CI_CONS_REGEX,           /* source: a regex, full-match semantics */
    CI_CONS_CHOICE,          /* source: a JSON array of strings, output is one of them */
    CI_CONS_GBNF,            /* source: a llama.cpp GBNF grammar with a `root` rule */
} ci_cons_kind;

typedef struct ci_cons_options {
    /* JSON: at most this many whitespace bytes (space, \n, \t, \r) at each
     * place JSON allows whitespace (after { [ , : and before } ] ,). 0 is
     * strictly compact. */
    int json_ws_max;
} ci_cons_options;

/* The defaults (json_ws_max = 2), in one place. */
ci_cons_options ci_cons_default_options(void);

typedef struct ci_cons_grammar ci_cons_grammar;

/* Compiles a constraint; NULL with err filled (CINFER_ERR_FORMAT for bad
 * input naming the problem, CINFER_ERR_LIMIT for an input over a bound).
 * `opts` may be NULL (defaults). The result has refcount 1. */
ci_cons_grammar *ci_cons_compile(ci_cons_kind kind, const char *src, size_t len, const ci_cons_options *opts,
                                 const ci_cons_vocab *v, cinfer_error *err);
ci_cons_grammar *ci_cons_grammar_ref(ci_cons_grammar *g);
void ci_cons_grammar_unref(ci_cons_grammar *g);
/* Counts for diagnostics: rules and positions of the compiled automaton. */
void ci_cons_grammar_stats(const ci_cons_grammar *g, size_t *n_rules, size_t *n_positions);
/* The vocabulary it was compiled against (its masks have that many bits). */
const ci_cons_vocab *ci_cons_grammar_vocab(const ci_cons_grammar *g);

/* ------------------------------------------------------------------ cache */

typedef struct ci_cons_cache ci_cons_cache;
ci_cons_cache *ci_cons_cache_new(const ci_cons_vocab *v, size_t max_entries);
void ci_cons_cache_free(ci_cons_cache *c);
/* A new reference to the grammar for (kind, opts, src), compiled on a miss.
 * Compile errors are not cached. The least recently used entry goes when
 * the cache is full (grammars still referenced by matchers stay alive). */
ci_cons_grammar *ci_cons_cache_get(ci_cons_cache *c, ci_cons_kind kind, const char *src, size_t len,
                                   const ci_cons_options *opts, cinfer_error *err);

/* ---------------------------------------------------------------- matcher */

typedef struct ci_cons_matcher ci_cons_matcher;

ci_cons_matcher *ci_cons_matcher_new(ci_cons_grammar *g);
/* An independent copy (n > 1, beam/speculative branches): O(state size). */
ci_cons_matcher *ci_cons_matcher_clone(const ci_cons_matcher *m);
void ci_cons_matcher_free(ci_cons_matcher *m);

/* Writes the allowed-token bitmask (ci_cons_mask_words words). Fails only
 * when the automaton exceeds a bound (state too large); then the mask is all
 * zeros except the end ids, and err says why. */
int ci_cons_fill_mask(ci_cons_matcher *m, uint32_t *mask, cinfer_error *err);
/* Advances by one token. Returns false (and leaves the state unchanged) when
 * the token is not allowed. An end id is accepted when the output is
 * complete; afterwards nothing more is accepted. */
bool ci_cons_accept_token(ci_cons_matcher *m, int32_t id);
/* Advances by raw bytes (e.g. a forced prefix); false leaves the state unchanged. */
bool ci_cons_accept_bytes(ci_cons_matcher *m, const void *bytes, size_t len);
/* True when the output so far is a complete sentence (an end id is allowed). */
bool ci_cons_is_complete(const ci_cons_matcher *m);
/* True when complete and no further byte can follow (or an end id was
 * accepted): the caller should end the sequence. */
bool ci_cons_is_terminated(const ci_cons_matcher *m);
/* Undoes the last n accepted tokens (n <= CI_CONS_MAX_ROLLBACK; an accepted end id counts). */
#define CI_CONS_MAX_ROLLBACK 64
int ci_cons_rollback(ci_cons_matcher *m, int n, cinfer_error *err);

#endif
