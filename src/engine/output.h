/*
 * output.h — from generated token ids to the text a user sees.
 *
 * Feeds ids through the tokenizer's incremental detokenizer and splits the
 * text into two channels, thinking and content, at the model's think tags
 * (ids looked up in the tokenizer, never hard-coded):
 *  - thinking starts open when the prompt itself ends inside <think> (the
 *    *-Thinking-2507 templates and QwQ open it in the generation prompt), or
 *    when the first generated token is <think>;
 *  - the first </think> while thinking switches to content; the tags are
 *    not part of either channel;
 *  - output cut by max_new_tokens inside the thinking stays thinking;
 *  - leading and trailing newlines of each channel are dropped, as the
 *    transformers recipe does with .strip("\n"), and the streamed pieces add
 *    up to exactly the final strings (trailing newlines are held back until
 *    more text follows).
 * Stop strings are matched in each channel's text; the text from the match
 * on is never emitted (OpenAI semantics). Bytes that could begin a stop
 * string are held back until they cannot.
 */
#ifndef CINFER_OUTPUT_H
#define CINFER_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "cinfer.h"
#include "util/util.h"

#define CI_MAX_STOP_STRINGS 16

typedef struct ci_output_options {
    const char *const *stop;   /* stop strings (copied) */
    int n_stop;
    bool thinking_open;        /* the prompt ends inside <think> */
    bool parse_thinking;       /* false: everything is content, tags as text */
    bool keep_newlines;        /* raw completions: no leading/trailing newline stripping */
} ci_output_options;

typedef struct ci_output ci_output;

/* Whether a prompt leaves a <think> block open (its last <think> comes
 * after its last </think>). */
bool ci_prompt_opens_thinking(const cinfer_tokenizer *tok, const int32_t *prompt, int n);

ci_output *ci_output_new(const cinfer_tokenizer *tok, const ci_output_options *o);
void ci_output_free(ci_output *o);

/* Feeds one generated token. New visible text is appended to the deltas
 * (either may be NULL). Returns true when a stop string matched: the caller
 * stops generating; nothing after the match is ever emitted. */
bool ci_output_push(ci_output *o, int32_t token, ci_buf *thinking_delta, ci_buf *content_delta);
/* Ends the output: flushes what was held back (minus trailing newlines). */
void ci_output_finish(ci_output *o, ci_buf *thinking_delta, ci_buf *content_delta);

/* Everything emitted so far. */
const char *ci_output_thinking(const ci_output *o, size_t *len);
const char *ci_output_content(const ci_output *o, size_t *len);
bool ci_output_in_thinking(const ci_output *o);

#endif
