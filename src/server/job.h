/*
 * job.h — one HTTP generation request in flight, and the event stream the
 * API adapters render (internal to src/server).
 *
 * A job holds 1..n choices, each one scheduler request. The scheduler
 * thread feeds each choice through srv_on_token: it records the token (and
 * its logprobs) and runs the output splitter (detokenizer, thinking/content,
 * stop strings). The connection thread waits on the job's condition
 * variable and takes each choice's events with srv_choice_take():
 *   - new thinking text and new content text (whole UTF-8 characters;
 *     with tools, content from "<tool_call>" on is held back);
 *   - the range of new tokens (their logprobs are in the choice);
 *   - at the end, the parsed tool calls and the finish.
 * A non-streaming reply reads the finished choices directly. Everything in
 * a job is guarded by its mutex; the job is freed when the connection and
 * every choice have let go of it (reference count).
 *
 * Failures: a choice that finishes with CI_FINISH_ERROR, or a shutdown that
 * runs out of time, sets job.fail; the job is cancelled and the adapter
 * renders the error (a JSON error, or its stream's error event).
 */
#ifndef CINFER_SERVER_JOB_H
#define CINFER_SERVER_JOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/output.h"
#include "engine/scheduler.h"
#include "server/request.h"

typedef struct choice {
    struct job *job;
    int index;
    int64_t request_id;        /* 0 until submitted */
    ci_output *out;
    size_t think_taken, content_taken; /* bytes of each channel already taken */
    int32_t *tokens;           /* visible tokens (stop ids excluded) */
    float *logprobs;
    int32_t *top_ids;          /* [n_tokens * top_logprobs] */
    float *top_lps;
    int n_tokens, cap_tokens, n_tokens_taken;
    int n_generated;           /* usage: every generated token, stop ids included */
    int n_prompt, n_cached;    /* n_prompt: as submitted, then as the engine reports it */
    ci_finish_reason finish;
    bool done;                 /* the engine finished it */
    bool started, finish_sent; /* streaming: adapter state */
    double t_last;
    char *echo;                /* echo: the prompt text */
    size_t echo_len;
    /* prompt logprobs (echo), on the first choice of each prompt (the others
     * share it): the prompt ids and their logprobs (NaN until reported;
     * entry 0 never is, OpenAI gives the first token none) */
    int32_t *prompt_ids;
    int n_prompt_ids;
    float *prompt_lps;
    int32_t *prompt_top_ids;   /* [n_prompt_ids * top_logprobs] */
    float *prompt_top_lps;
    int n_prompt_lps;          /* reported so far */
    size_t lp_offset;          /* streaming: text_offset of the next logprobs entry */
} choice;

typedef struct job {
    server *srv;
    const srv_api *api;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;
    choice *choices;
    int n_choices, n_done;
    int choices_per_prompt;    /* n: choices [k*n, (k+1)*n) share prompt k */
    bool stream, include_usage;
    srv_tool_mode tools_mode;
    json_t *tools;             /* the request's tools (a reference), for reading forced calls */
    bool want_logprobs;
    int top_logprobs;
    bool cancelled;            /* cancellation requested */
    bool client_gone;          /* ... because the client left */
    srv_error fail;            /* status != 0: the job failed */
    char id[64];
    long long created;
    double t_arrival;
    double t_first_token, t_done; /* the first token of any choice; the last choice's end (0: not yet) */
    double t_checked;          /* last disconnect check */
    bool any_token;
    int fd;                    /* client socket, for disconnect checks */
    ci_buf out;                /* streaming: bytes not yet handed to MHD */
    size_t out_off;
    bool stream_ended;
    void *api_ctx;             /* the adapter's state (srv_gen_request.api_ctx) */
    void (*api_ctx_free)(void *ctx);
} job;

/* What is new in one choice since the last take. */
typedef struct srv_delta {
    const char *think, *content; /* valid while the lock is held */
    size_t think_len, content_len;
    int tok_from, tok_to;        /* new tokens [from, to) */
    json_t *tool_calls;          /* at the end, with tools: the calls (owned by the taker) */
    bool last;                   /* the choice is done: everything was taken */
} srv_delta;

job *srv_job_new(server *s, const srv_api *api, int n_choices, int choices_per_prompt);
void srv_job_release(job *j);
/* Cancels every submitted, unfinished choice. Caller holds j->lock. */
void srv_job_cancel_locked(job *j);
/* Ends the job with an error (the adapter renders it). Caller holds j->lock. */
void srv_job_fail_locked(job *j, int status, const char *msg);
/* Waits (lock held) for an event or a time slice. Checks the client on
 * every wake-up (rate-limited); returns false when it left (the job is
 * then cancelled). */
bool srv_job_wait_locked(job *j);
bool srv_on_token(void *user, const ci_token_event *ev);
/* Submits every choice (their places in s->n_inflight are reserved by the
 * caller). On failure the submitted ones are cancelled; the caller still
 * owns its reference. */
int srv_job_submit(job *j, const int32_t *const *prompts, const int *n_prompts, const ci_request_params *params,
                   const ci_output_options *oo, cinfer_error *err);

/* Takes what is new in choice i; false when nothing is (and it is not
 * done). Caller holds j->lock. */
bool srv_choice_take(job *j, int i, srv_delta *d);
/* The tool calls in a finished choice (NULL: none) and the length of the
 * content before them. */
json_t *srv_choice_tool_calls(job *j, const choice *c, size_t *visible);
/* Tokens of a finished choice spent on thinking (through </think>). */
int srv_choice_reasoning_tokens(const job *j, const choice *c);
/* The choice that computed the prompt logprobs of c's prompt. */
choice *srv_prompt_source(job *j, const choice *c);
bool srv_prompt_logprobs_ready(job *j, const choice *c);

/* Starts the streamed response of a submitted job (takes the reference). */
int srv_stream_start(srv_request *r, job *j);
/* SSE framing: "event: NAME\n" (when name) "data: JSON\n\n"; steals obj. */
void srv_sse(ci_buf *out, const char *name, json_t *obj);
void srv_sse_done(ci_buf *out);

#endif
