/*
 * template.h — internal chat-template API for the engine and the server.
 *
 * cinfer.h exposes the JSON-text entry points; the engine already holds the
 * request as a jansson tree, so it renders from a json_t directly and can set
 * its own bounds. The interpreter reproduces Hugging Face transformers'
 * apply_chat_template environment: Jinja2 ImmutableSandboxedEnvironment with
 * trim_blocks, lstrip_blocks, loopcontrols, the {% generation %} tag, and the
 * globals raise_exception, strftime_now and the json.dumps-based tojson.
 *
 * Threads: a parsed cinfer_template is immutable. Rendering only reads it
 * (its literals are immortal values that are never reference counted, see
 * tpl_value.c) and keeps all of its own state in the render, so any number
 * of threads may render one template at once without locking. Parsing and
 * freeing are not concurrent with rendering.
 */
#ifndef CINFER_TEMPLATE_H
#define CINFER_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"

/* Bounds for untrusted templates and contexts. Exceeding one fails the
 * render (or parse) with CINFER_ERR_LIMIT. */
typedef struct tpl_limits {
    size_t max_source_bytes;     /* template text */
    int max_nesting;             /* parser nesting of blocks and expressions */
    int max_depth;               /* evaluator recursion (expressions, statements, macro calls) */
    int max_macro_depth;         /* nested macro calls */
    uint64_t max_iterations;     /* for-loop iterations over a whole render */
    size_t max_output_bytes;     /* rendered text */
    size_t max_string_bytes;     /* any single string or list built while rendering */
    size_t max_built_bytes;      /* all strings and lists built over a whole render (memory and time) */
} tpl_limits;

void tpl_limits_default(tpl_limits *limits);

/* Parses with explicit limits (NULL = defaults). */
cinfer_template *tpl_parse_with_limits(const char *source, size_t len, const tpl_limits *limits,
                                       cinfer_error *err);

/* Renders with `context`, a JSON object (messages, tools, add_generation_prompt,
 * enable_thinking, bos_token, eos_token, extra keys). The tree is only read.
 * limits NULL = defaults. Returns a NUL-terminated cinfer_free()-able string. */
char *tpl_render_jansson(const cinfer_template *tpl, const json_t *context, const tpl_limits *limits,
                         size_t *len_out, cinfer_error *err);

/* cinfer_chat_template_source_load for a GGUF file already open (the
 * engine holds one): tokenizer.chat_template and the bos/eos token strings.
 * `name` labels errors. Free *out with cinfer_chat_template_source_free. */
struct ci_gguf_file;
int tpl_source_from_gguf(const struct ci_gguf_file *f, const char *name, cinfer_chat_template_source *out,
                         cinfer_error *err);

#endif
