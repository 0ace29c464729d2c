/*
 * cinfer.h — public C API of libcinfer.
 *
 * cinfer is a runtime for Qwen3-family language models: a client for
 * OpenAI-compatible endpoints, a local engine that loads real checkpoints,
 * and an OpenAI-compatible server. This header is the only one a program
 * embedding cinfer needs.
 *
 * Conventions:
 *  - Every object is opaque and created/freed by a prefixed pair of calls.
 *  - Fallible calls take a `cinfer_error *` (may be NULL) and report failure
 *    through their return value (NULL or a negative int); the error carries
 *    a human-readable message naming what was wrong and where.
 *  - Strings are UTF-8 with explicit lengths where binary-safe matters.
 *  - Memory returned to the caller is released with cinfer_free().
 */
#ifndef CINFER_H
#define CINFER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CINFER_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

typedef struct cinfer_error {
    int code;            /* 0 = no error; otherwise one of cinfer_status */
    char message[512];   /* NUL-terminated, human readable */
} cinfer_error;

typedef enum cinfer_status {
    CINFER_OK = 0,
    CINFER_ERR_IO = -1,        /* file missing / unreadable */
    CINFER_ERR_FORMAT = -2,    /* corrupt, truncated or unsupported input */
    CINFER_ERR_LIMIT = -3,     /* input exceeds a configured bound */
    CINFER_ERR_NOMEM = -4,
    CINFER_ERR_INVALID = -5,   /* bad argument from the caller */
    CINFER_ERR_TEMPLATE = -6,  /* template syntax or runtime error, raise_exception */
    CINFER_ERR_NETWORK = -7,
} cinfer_status;

/* Releases memory that a cinfer_* call returned to the caller. */
void cinfer_free(void *ptr);

/* ------------------------------------------------------------- tokenizer */

typedef struct cinfer_tokenizer cinfer_tokenizer;

/* Loads a Hugging Face tokenizer. `path` is a model folder (tokenizer.json +
 * optional tokenizer_config.json) or a tokenizer.json file. */
cinfer_tokenizer *cinfer_tokenizer_load(const char *path, cinfer_error *err);
void cinfer_tokenizer_free(cinfer_tokenizer *tok);

enum {
    /* Text of special added tokens (e.g. "<|im_end|>") inside the input is
     * NOT matched: it is encoded as ordinary text. Use on untrusted content. */
    CINFER_TOKENIZE_SPLIT_SPECIAL = 1 << 0,
};

/* Encodes `len` bytes of UTF-8 `text`. On success returns the number of ids
 * and stores a cinfer_free()-able array in *ids_out (NULL when 0 ids).
 * Invalid UTF-8 is replaced by U+FFFD before encoding (as HF does when it
 * receives a Python str built with errors="replace"). Returns < 0 on error. */
long cinfer_tokenize(const cinfer_tokenizer *tok, const char *text, size_t len,
                     unsigned flags, int32_t **ids_out, cinfer_error *err);

/* Decodes ids to UTF-8 (invalid byte sequences become U+FFFD, as HF's
 * decode with errors="replace"). Returns a NUL-terminated cinfer_free()-able
 * string, its byte length in *len_out when non-NULL. */
char *cinfer_detokenize(const cinfer_tokenizer *tok, const int32_t *ids, size_t n,
                        bool skip_special, size_t *len_out, cinfer_error *err);

/* Incremental detokenizer for streaming: feed ids one at a time; each call
 * returns the bytes that became complete UTF-8. The concatenation of all
 * pieces plus cinfer_detok_stream_flush() equals cinfer_detokenize(). */
typedef struct cinfer_detok_stream cinfer_detok_stream;
cinfer_detok_stream *cinfer_detok_stream_new(const cinfer_tokenizer *tok, bool skip_special);
/* Returns a pointer valid until the next call on the stream; *len_out gets its length. */
const char *cinfer_detok_stream_push(cinfer_detok_stream *s, int32_t id, size_t *len_out);
const char *cinfer_detok_stream_flush(cinfer_detok_stream *s, size_t *len_out);
void cinfer_detok_stream_free(cinfer_detok_stream *s);

/* Vocabulary queries. Ids are in [0, cinfer_tokenizer_vocab_size()). */
size_t cinfer_tokenizer_vocab_size(const cinfer_tokenizer *tok);
/* Id of a token given by its exact text (added tokens and vocab), or -1. */
int32_t cinfer_tokenizer_token_id(const cinfer_tokenizer *tok, const char *token_text);
/* The decoded bytes of one token (NOT NUL-terminated in general; length in *len_out). */
const char *cinfer_tokenizer_token_bytes(const cinfer_tokenizer *tok, int32_t id, size_t *len_out);
bool cinfer_tokenizer_is_special(const cinfer_tokenizer *tok, int32_t id);
/* Text of the bos / eos tokens from tokenizer_config.json; NULL when absent. */
const char *cinfer_tokenizer_bos_token(const cinfer_tokenizer *tok);
const char *cinfer_tokenizer_eos_token(const cinfer_tokenizer *tok);

/* ---------------------------------------------------------- chat template */

typedef struct cinfer_template cinfer_template;

/* Parses a Jinja2 chat template. Syntax errors report line and column. */
cinfer_template *cinfer_template_parse(const char *source, size_t len, cinfer_error *err);
void cinfer_template_free(cinfer_template *tpl);

/* Finds a model's own chat template: `path` is a model folder
 * (chat_template.jinja, else tokenizer_config.json "chat_template", a string
 * or a list of {name, template} where "default" wins) or a
 * tokenizer_config.json file. Also returns the bos/eos token strings the
 * template context needs (NULL when absent). Free with cinfer_chat_template_source_free. */
typedef struct cinfer_chat_template_source {
    char *template_text;
    char *bos_token;
    char *eos_token;
} cinfer_chat_template_source;
int cinfer_chat_template_source_load(const char *path, cinfer_chat_template_source *out, cinfer_error *err);
void cinfer_chat_template_source_free(cinfer_chat_template_source *src);

/* Renders with a context given as a JSON object text (messages, tools,
 * add_generation_prompt, enable_thinking, bos_token, ... any extra keys).
 * Returns a NUL-terminated cinfer_free()-able string; byte length in *len_out. */
char *cinfer_template_render_json(const cinfer_template *tpl, const char *context_json,
                                  size_t context_len, size_t *len_out, cinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CINFER_H */
