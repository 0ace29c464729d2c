/*
 * openai.h — the pieces the two OpenAI adapters share (openai_common.c):
 * the sampling and stream fields both accept, finish reasons, usage,
 * chunk envelopes, the stream's ending and its error event, token texts.
 */
#ifndef CINFER_SERVER_OPENAI_H
#define CINFER_SERVER_OPENAI_H

#include "server/job.h"

/* Reads the fields chat and completions share: model, sampling, n,
 * max_tokens, thinking budget, stream options, stop, ignore_eos and
 * logprobs (chat: a boolean + top_logprobs; completions: an integer). */
bool srv_openai_parse_common(const server *s, json_t *req, bool is_chat, srv_gen_request *g, srv_error *e);

const char *srv_openai_finish(ci_finish_reason f);
json_t *srv_openai_usage(const job *j);
/* {id, object, created, model} of a response or chunk. */
json_t *srv_openai_envelope(const job *j, const char *object);
/* The stream's end: the usage chunk when asked for, then [DONE]. */
void srv_openai_stream_end(job *j, const char *object, ci_buf *out);
/* A failed stream: an SSE `error` event with the error object, then [DONE]. */
void srv_openai_stream_error(job *j, const srv_error *e, ci_buf *out);

json_t *srv_token_text(const server *s, int32_t id);
json_t *srv_token_bytes(const server *s, int32_t id);

/* Chat messages (+ tools, template flags) → prompt ids, the template
 * applied with message contents protected; also reads tool_choice. Used by
 * chat completions and /tokenize. Returns the id count or -1. */
long srv_openai_chat_prompt(const server *s, json_t *req, srv_tool_mode *mode, const char **named, int32_t **ids,
                            srv_error *e);

/* The chat part of a generation request from an OpenAI-chat-shaped object
 * ({messages, tools, tool_choice, enable_thinking, chat_template_kwargs}):
 * the prompt (g->prompts[0]), thinking parsing, the tool mode and, for
 * tool_choice "required" or a named function, the forced call opening.
 * Chat completions parse into it directly; the Responses, Anthropic and
 * Ollama adapters translate their bodies to this shape first, so every API
 * renders prompts and forces tool calls the same way. */
bool srv_chat_prepare(const server *s, json_t *chat, srv_gen_request *g, srv_error *e);

#endif
