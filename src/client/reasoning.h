/*
 * reasoning.h — splits a chat answer into thinking and content, for text
 * that arrives in pieces from a server.
 *
 * Servers deliver reasoning in two ways: a separate `reasoning_content` (or
 * `reasoning`) field (vLLM, llama.cpp, SiliconFlow, DeepSeek) or inside
 * <think>...</think> at the start of `content` (servers without a reasoning
 * parser). Both end up in the same two channels, with the local engine's
 * rules (engine/output.h): a <think> only opens thinking when it is the
 * first thing in the content (whitespace aside); the first </think> closes
 * it; tags belong to neither channel; leading and trailing newlines of each
 * channel are dropped, trailing ones held back until more text follows, so
 * the streamed pieces add up to exactly the final strings. Tags may be
 * split across pieces at any byte.
 */
#ifndef CINFER_CLIENT_REASONING_H
#define CINFER_CLIENT_REASONING_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

typedef struct ci_text_channel {
    ci_buf text;       /* everything emitted */
    ci_buf held;       /* trailing newlines not yet emitted */
    bool started;      /* a non-newline byte was seen */
} ci_text_channel;

typedef struct ci_reasoning_split {
    int state;             /* see reasoning.c */
    ci_buf pending;        /* bytes that may still be (part of) a tag */
    ci_text_channel thinking, content;
} ci_reasoning_split;

void ci_reasoning_init(ci_reasoning_split *s);
void ci_reasoning_free(ci_reasoning_split *s);
void ci_reasoning_reset(ci_reasoning_split *s);
/* A piece of a separate reasoning field: thinking, whatever it holds. */
void ci_reasoning_push_reasoning(ci_reasoning_split *s, const char *text, size_t len, ci_buf *thinking_delta);
/* A piece of content, which may carry <think> tags. */
void ci_reasoning_push_content(ci_reasoning_split *s, const char *text, size_t len, ci_buf *thinking_delta,
                               ci_buf *content_delta);
/* End of the answer: releases what was held for a possible tag. */
void ci_reasoning_finish(ci_reasoning_split *s, ci_buf *thinking_delta, ci_buf *content_delta);

const char *ci_reasoning_thinking(const ci_reasoning_split *s, size_t *len);
const char *ci_reasoning_content(const ci_reasoning_split *s, size_t *len);

#endif
