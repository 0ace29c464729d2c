/*
 * scheduler.h — continuous batching over the paged KV cache.
 *
 * One scheduler owns the model's KV cache and scratch state and is driven by
 * one thread calling ci_sched_step(). Every step:
 *   1. admits waiting requests while sequence slots and KV blocks allow;
 *   2. builds one batch: a decode token for every running sequence that has
 *      finished its prompt, then prompt chunks (chunked prefill) up to the
 *      token budget;
 *   3. makes sure every position in the batch has a KV block — when the pool
 *      is exhausted the youngest running sequence is preempted (its blocks
 *      freed, its tokens kept) and recomputed later;
 *   4. runs one forward pass, samples one token per sequence that reached the
 *      end of its known tokens, reports it through the request's callback and
 *      retires finished sequences.
 * Requests enter and leave through a mutex-protected queue, so other threads
 * (HTTP handlers) can submit and cancel at any time; callbacks run on the
 * scheduler thread.
 */
#ifndef CINFER_SCHEDULER_H
#define CINFER_SCHEDULER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "model/qwen3.h"

typedef enum ci_finish_reason {
    CI_FINISH_NONE = 0,
    CI_FINISH_STOP,      /* a stop token, or the callback asked to stop (stop string) */
    CI_FINISH_LENGTH,    /* max_new_tokens or the context length */
    CI_FINISH_CANCELLED, /* the client went away */
    CI_FINISH_ERROR,
} ci_finish_reason;

#define CI_MAX_TOP_LOGPROBS 20

typedef struct ci_token_event {
    int64_t request_id;
    int32_t token;            /* -1 when the event only reports finishing */
    float logprob;            /* log-softmax of the raw logits */
    int n_top;                /* top_logprobs entries */
    int32_t top_ids[CI_MAX_TOP_LOGPROBS];
    float top_logprobs[CI_MAX_TOP_LOGPROBS];
    ci_finish_reason finish;  /* != NONE on the last event of a request */
    int n_prompt_tokens;
    int n_output_tokens;
    int n_cached_tokens;      /* prompt tokens served from the prefix cache */
} ci_token_event;

/* Returns true to stop the request after this token (e.g. a stop string
 * matched); the scheduler then reports CI_FINISH_STOP. */
typedef bool (*ci_token_callback)(void *user, const ci_token_event *ev);

typedef struct ci_request_params {
    ci_sampling_params sampling;
    int max_new_tokens;          /* > 0 */
    const int32_t *stop_ids;     /* copied at submit */
    int n_stop_ids;
    int top_logprobs;            /* 0..CI_MAX_TOP_LOGPROBS */
    bool want_logprobs;
} ci_request_params;

typedef struct ci_sched_options {
    int max_num_seqs;        /* running sequences at once */
    int max_batch_tokens;    /* tokens per forward pass (prefill chunk budget) */
    int max_model_len;       /* prompt + output positions per sequence */
    int block_size;          /* positions per KV block */
    int n_kv_blocks;         /* pool size */
    ci_kv_dtype kv_dtype;
} ci_sched_options;

typedef struct ci_scheduler ci_scheduler;

ci_scheduler *ci_sched_new(const qwen3_model *model, const ci_sched_options *opts, cinfer_error *err);
void ci_sched_free(ci_scheduler *s);

/* Thread-safe. Copies the prompt. Returns a request id (> 0) or < 0 when the
 * request can never run (empty prompt, prompt longer than max_model_len). */
int64_t ci_sched_submit(ci_scheduler *s, const int32_t *prompt, int n_prompt, const ci_request_params *p,
                        ci_token_callback cb, void *user, cinfer_error *err);
/* Thread-safe. The request finishes with CI_FINISH_CANCELLED at the next step
 * and its KV blocks are freed then. */
void ci_sched_cancel(ci_scheduler *s, int64_t request_id);

/* Runs one iteration. Returns the number of requests still waiting or
 * running (0: idle), or < 0 on an internal error. */
int ci_sched_step(ci_scheduler *s, cinfer_error *err);

/* Blocks until a request is submitted or ci_sched_wakeup() is called. */
void ci_sched_wait_for_work(ci_scheduler *s);
void ci_sched_wakeup(ci_scheduler *s);

typedef struct ci_sched_stats {
    int running;
    int waiting;
    int kv_blocks_total;
    int kv_blocks_free;
    uint64_t prompt_tokens;
    uint64_t generated_tokens;
    uint64_t preemptions;
    uint64_t prefix_hit_tokens;
    uint64_t prefix_query_tokens;
} ci_sched_stats;
/* Thread-safe snapshot. */
void ci_sched_get_stats(ci_scheduler *s, ci_sched_stats *out);

#endif
