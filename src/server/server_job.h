/*
 * server_job.h — one HTTP generation request in flight (shared by the
 * request handlers and the scheduler callbacks; internal to src/server).
 *
 * A job holds 1..n choices, each one scheduler request. The scheduler thread
 * feeds each choice through its callback: it records the token (and its
 * logprobs), runs the output splitter (detokenizer, thinking/content, stop
 * strings) and appends the new text to the choice's pending deltas. The
 * connection thread waits on the job's condition variable and turns pending
 * deltas into a JSON body or SSE events. Everything in a job is guarded by
 * its mutex; the job is freed when the connection and every choice have let
 * go of it (reference count).
 */
#ifndef CINFER_SERVER_JOB_H
#define CINFER_SERVER_JOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/output.h"
#include "engine/scheduler.h"
#include "util/util.h"

struct server;

typedef struct choice {
    struct job *job;
    int index;
    int64_t request_id;        /* 0 until submitted */
    ci_output *out;
    ci_buf think_new, content_new;   /* not yet sent (streaming) */
    ci_buf content_all;              /* all content so far (tool-call parsing) */
    size_t content_streamed;         /* bytes of content_all already sent */
    int32_t *tokens;                 /* visible tokens (stop ids excluded) */
    float *logprobs;
    int32_t *top_ids;                /* [n_tokens * top_k] */
    float *top_lps;
    int n_tokens, cap_tokens, n_tokens_sent;
    int n_generated;                 /* usage: every generated token, stop ids included */
    int n_prompt, n_cached;
    ci_finish_reason finish;
    bool done, role_sent, finish_sent;
    double t_last;
    char *echo;                      /* completions with echo: the prompt text */
    size_t echo_len;
    /* echo with logprobs, on the first choice of each prompt (the others
     * share it): the prompt ids and their logprobs (NaN until reported;
     * entry 0 never is, OpenAI gives the first token none) */
    int32_t *prompt_ids;
    int n_prompt_ids;
    float *prompt_lps;
    int32_t *prompt_top_ids;         /* [n_prompt_ids * top_logprobs] */
    float *prompt_top_lps;
    int n_prompt_lps;                /* reported so far */
    size_t lp_offset;                /* streaming: text_offset of the next logprobs entry */
} choice;

/* tool_choice, as it shapes the output */
typedef enum tool_mode {
    TOOLS_OFF,       /* no tools, or "none": content is never parsed for calls */
    TOOLS_AUTO,      /* the model may call: content is parsed */
    TOOLS_REQUIRED,  /* the answer is forced to open with a call */
    TOOLS_NAMED,     /* ... with a call to one named function */
} tool_mode;

typedef struct job {
    struct server *srv;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;
    choice *choices;
    int n_choices, n_done;
    int choices_per_prompt;          /* n: choices [k*n, (k+1)*n) share prompt k */
    bool is_chat, stream, include_usage;
    tool_mode tools_mode;
    json_t *tools;                   /* the request's tools (a reference), for reading forced calls */
    bool want_logprobs;
    int top_logprobs;
    bool cancelled;
    char id[64];
    long long created;
    double t_arrival;
    bool any_token;
    int fd;                          /* client socket, for disconnect checks */
    ci_buf sse;                      /* streaming: bytes not yet handed to MHD */
    size_t sse_off;
    bool stream_ended;
} job;

#endif
