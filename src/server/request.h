/*
 * request.h — the one internal generation request every HTTP API parses
 * into, and the interface an API adapter implements.
 *
 * An adapter (openai_chat.c, openai_completions.c; later Responses,
 * Anthropic Messages, Ollama) does two things:
 *  - parse: its JSON body → srv_gen_request (prompt ids per prompt,
 *    sampling, stop rules, output options, tool mode, logprob options,
 *    stream options), then srv_gen_run();
 *  - render: a srv_api whose functions turn the job's events (job.h:
 *    per-choice deltas of thinking and content, tokens with logprobs, tool
 *    calls, finish) into that API's JSON body or stream.
 * Everything between — context-length checks, thinking control, engine
 * parameters, submission, waiting, disconnects, cancellation, failures and
 * shutdown — is shared and knows no API.
 */
#ifndef CINFER_SERVER_REQUEST_H
#define CINFER_SERVER_REQUEST_H

#include "server/server.h"

#define SRV_MAX_N 16           /* choices per prompt */
#define SRV_MAX_PROMPTS 64
#define SRV_MAX_CHOICES 64
#define SRV_MAX_STOP 16
#define SRV_MAX_STOP_BYTES 1024
#define SRV_MAX_TOKENS_IN_REQUEST (1 << 20)
#define SRV_MAX_STOP_TOKEN_IDS 64

/* tool_choice, as it shapes the output */
typedef enum srv_tool_mode {
    TOOLS_OFF,       /* no tools, or "none": content is never parsed for calls */
    TOOLS_AUTO,      /* the model may call: content is parsed */
    TOOLS_REQUIRED,  /* the answer is forced to open with a call */
    TOOLS_NAMED,     /* ... with a call to one named function */
} srv_tool_mode;

typedef struct srv_prompt {
    int32_t *ids;
    long n_ids;                  /* the real count (may exceed the context: reported) */
    char *text;                  /* the prompt as text, for echo (NULL: none) */
    size_t text_len;
} srv_prompt;

typedef struct srv_gen_request {
    /* prompts: each gives n choices (choices [k*n, (k+1)*n) share prompt k) */
    srv_prompt prompts[SRV_MAX_PROMPTS];
    int n_prompts;
    int n;
    const char *prompt_param;    /* names the prompt in errors ("messages", "prompt") */
    const char *max_tokens_param; /* names the output limit in errors ("max_tokens") */
    int max_context;             /* prompt + output cap below the model's (Ollama num_ctx); 0: the model's */
    /* sampling and length */
    ci_sampling_params sampling;
    long long max_tokens;        /* -1: up to the context; 0: the prompt only (prompt logprobs) */
    /* stop rules */
    char *stop[SRV_MAX_STOP];    /* owned copies */
    int n_stop;
    bool ignore_eos;             /* generate max_tokens whatever the model says (benchmarks) */
    /* output */
    bool parse_thinking;         /* split thinking from content (chat) */
    bool keep_newlines;          /* raw completions: no newline stripping */
    long long thinking_budget;   /* -1: none; applies with parse_thinking */
    bool echo;                   /* the prompt text opens each choice's output */
    /* tools */
    srv_tool_mode tools_mode;
    json_t *tools;               /* a reference (NULL when TOOLS_OFF) */
    int32_t *forced_prefix;      /* the answer opens with these ids (owned) */
    int n_forced_prefix;
    /* structured output and token-level controls (engine/scheduler.h);
     * every pointer is owned and freed by srv_gen_free */
    ci_cons_grammar *constraint; /* a reference from ci_model_constraint(), or NULL */
    ci_logit_bias *logit_bias;   /* ids checked against the vocabulary at submit */
    int n_logit_bias;
    int32_t *stop_token_ids;     /* end generation besides the model's end ids (at most SRV_MAX_STOP_TOKEN_IDS) */
    int n_stop_token_ids;
    int min_tokens;              /* end ids and stop_token_ids banned before this many tokens */
    int32_t *bad_words;          /* banned token sequences, concatenated */
    int32_t *bad_word_lens;
    int n_bad_words;
    int32_t *allowed_token_ids;
    int n_allowed_token_ids;
    /* logprobs */
    bool logprobs;
    int top_logprobs;
    bool prompt_logprobs;        /* the prompt tokens' logprobs (echo) */
    /* streaming */
    bool stream, include_usage;
    /* the adapter's own state for rendering (e.g. the Responses request
     * and its stream's item indexes); moves to the job, freed with it */
    void *api_ctx;
    void (*api_ctx_free)(void *ctx);
} srv_gen_request;

struct job;

/* How one API renders a job. Every function runs with the job's lock held
 * except reply. */
typedef struct srv_api {
    const char *id_prefix;       /* response ids: "<prefix><32 hex>" ("chatcmpl-", "resp_") */
    const char *stream_type;     /* Content-Type of a stream */
    /* non-streaming: the body of a finished job that did not fail */
    int (*reply)(srv_request *r, struct job *j);
    /* streaming: append the events for what is new; the adapter marks each
     * choice's finish as sent (choice.finish_sent) */
    void (*stream)(struct job *j, ci_buf *out);
    /* after every choice's finish was sent */
    void (*stream_end)(struct job *j, ci_buf *out);
    /* the job failed (engine error, shutdown): the last bytes of the stream */
    void (*stream_error)(struct job *j, const srv_error *e, ci_buf *out);
} srv_api;

/* Defaults: the model's generation_config.json sampling, one prompt, one
 * choice, no limit but the context. */
void srv_gen_init(srv_gen_request *g, const server *s);
void srv_gen_free(srv_gen_request *g);
/* Adds a stop string (copied); false with e set when over the limits. */
bool srv_gen_add_stop(srv_gen_request *g, const char *s, size_t len, srv_error *e);

/* Reasoning effort as the Responses API (reasoning.effort) and Ollama
 * (think: "low"…) name it → thinking on (1) or off (0) and a budget
 * (-1: none): "none"/"minimal" off; "low" 1024 and "medium" 4096 tokens;
 * "high" unbounded. False for another word. */
bool srv_reasoning_effort(const char *effort, int *thinking, long long *budget);

/* Checks the request against the model (context length), submits it as a
 * job and answers: a stream when g->stream, else waits and replies (an
 * error JSON when the job failed). Does not free g. */
int srv_gen_run(srv_request *r, srv_gen_request *g, const srv_api *api);

#endif
