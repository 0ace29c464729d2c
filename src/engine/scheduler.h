/*
 * scheduler.h — continuous batching over the paged KV cache.
 *
 * One scheduler owns the model's KV cache and scratch state and is driven by
 * one thread calling ci_sched_step(). A step runs in stages, as vLLM's v1
 * scheduler separates schedule() from update_from_output():
 *   1. intake: new submissions join the waiting queue (in submission
 *      order); cancelled requests end (CI_FINISH_CANCELLED);
 *   2. plan (no callbacks, no model): running sequences come first, in the
 *      order of their latest admission — each gets its next chunk (a decode
 *      token, or the next piece of its prompt: chunked prefill) within the
 *      step's token budget, and the KV blocks for it. When the pool is dry a
 *      chunk shrinks to what the free blocks cover, or else the youngest
 *      running sequence (latest arrival) is preempted: its blocks are freed,
 *      its tokens kept, and it returns to the head of the waiting queue to be
 *      recomputed later. Then waiting requests are admitted, in queue order,
 *      while sequence slots, budget and blocks allow;
 *   3. assemble the plan into one batch, with its logits rows;
 *   4. execute: one forward pass;
 *   5. update: in batch order, report prompt logprobs, sample one token per
 *      sequence whose chunk reached the end of its known tokens, report it
 *      through the request's callback, and retire finished sequences.
 * Failures end requests, never the scheduler: when the forward pass (or the
 * memory for the batch) fails, every request of that batch ends with
 * CI_FINISH_ERROR; a request whose own bookkeeping runs out of memory ends
 * alone. Their KV blocks are freed and the next step serves the others.
 *
 * Prefix caching: on admission a sequence shares the cached full blocks of
 * its longest cached prefix (never its last token, which must be computed
 * for logits) and starts computing after them; every block that becomes
 * full after a forward pass is registered for later requests (kv_cache.h).
 * A preempted sequence re-matches its prefix when readmitted.
 *
 * Forced tokens: the scheduler may append tokens as if generated, report
 * each through the callback (logprob 0), and let the model continue from
 * there — the appended tokens are computed in the next step like a prompt
 * chunk. Two triggers use this one mechanism:
 *  - thinking budget: once that many tokens were generated inside <think>,
 *    the request's close sequence (e.g. the ids of "\n\n</think>\n\n");
 *  - answer prefix (tool_choice "required" or a named function): the answer
 *    must begin with given tokens (e.g. "<tool_call>\n{\"name\": ..."). The
 *    answer begins at the first output position — unless the model opens
 *    <think> there, or the prompt left thinking open — else right after the
 *    thinking closes: after the forced close sequence, or after the model's
 *    own </think> followed by the rest of the close sequence ("\n\n"). At
 *    the first output position the sampled token gives way to the prefix.
 *
 * Constraints (structured output, constrain.h) and sampling controls: for
 * every sampled position the update stage builds the sequence's allowed
 * mask — the constraint's mask (its end ids only when the output is
 * complete), AND allowed_ids, minus the stop ids while fewer than
 * min_tokens were generated, minus the last token of each bad word whose
 * prefix ends the output — and the sampler applies logit_bias, then the
 * mask, then penalties and the sampling modes (sampler.h), so every mode
 * renormalises over the allowed set. The sampled token is accepted into
 * the sequence's matcher; when the matcher is terminated the request ends
 * with CI_FINISH_STOP; a mask that cannot be computed, or that allows
 * nothing, ends it with CI_FINISH_ERROR. Thinking first: when the prompt
 * leaves <think> open, or the model opens it at the first output position
 * (allowed there besides the constraint when think_start_id is given), the
 * constraint starts where the answer starts (see forced tokens: after
 * </think> and the rest of the close sequence). Forced tokens after that
 * point (answer prefixes) are accepted into the matcher too, and must be
 * allowed by it. Tokens are fed to the matcher once, when sampled or
 * forced: a preempted sequence recomputes its K/V and never resamples.
 *
 * Prompt logprobs (completions with echo): a request may ask for the
 * logprob of every prompt token after the first. Its prompt positions then
 * produce logits rows too, at most CI_PROMPT_LOGPROB_ROWS per step (a
 * logits row is vocab floats), so such a prompt is computed in chunks of
 * that size; it does not share cached prefix blocks, since skipped
 * positions would have no logits.
 *
 * Requests enter and leave through a mutex-protected queue, so other threads
 * (HTTP handlers) can submit and cancel at any time; callbacks run on the
 * scheduler thread.
 */
#ifndef CINFER_SCHEDULER_H
#define CINFER_SCHEDULER_H

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "constrain/constrain.h"
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
#define CI_LOGPROB_NONE (-INFINITY) /* "no logprob": absent top entries */

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
    /* > 0: not a generated token but the logprob (and top entries) of prompt
     * token number prompt_index, `token` (want_prompt_logprobs); such
     * events arrive in order, before the first generated token. */
    int prompt_index;
} ci_token_event;

/* Returns true to stop the request after this token (e.g. a stop string
 * matched); the scheduler then reports CI_FINISH_STOP. */
typedef bool (*ci_token_callback)(void *user, const ci_token_event *ev);

#define CI_PROMPT_LOGPROB_ROWS 64
#define CI_MAX_FORCED_TOKENS 256

typedef struct ci_request_params {
    ci_sampling_params sampling;
    int max_new_tokens;          /* >= 0; 0 computes the prompt only (prompt logprobs) */
    const int32_t *stop_ids;     /* copied at submit */
    int n_stop_ids;
    int top_logprobs;            /* 0..CI_MAX_TOP_LOGPROBS, for output and prompt tokens */
    bool want_logprobs;
    bool want_prompt_logprobs;   /* events with prompt_index for prompt tokens 1..n_prompt-1 */
    /* Thinking budget: < 0 off. Counting starts after think_start_id (when
     * it is the first output token) or at once when thinking_open. The think
     * ids (-1: none) are read when a budget or an answer prefix is given. */
    int thinking_budget;
    bool thinking_open;
    int32_t think_start_id, think_end_id;
    const int32_t *forced_close; /* appended when the budget is reached (copied at submit) */
    int n_forced_close;
    const int32_t *forced_prefix; /* the answer starts with these (copied at submit) */
    int n_forced_prefix;
    /* Structured output: NULL, or a grammar compiled against a vocabulary
     * no larger than the model's; each sequence gets its own matcher (and
     * so its own grammar reference) at submit. With thinking possible give
     * the think ids and forced_close too (the constraint starts after the
     * close sequence). */
    ci_cons_grammar *constraint;
    /* Sampling controls, copied at submit (stop_token_ids: append them to
     * stop_ids; ignore_eos: leave the model's end ids out of stop_ids). */
    const ci_logit_bias *logit_bias; /* ids in the vocabulary, bias in [-100, 100] */
    int n_logit_bias;
    const int32_t *allowed_ids;      /* n_allowed_ids > 0: only these may be sampled */
    int n_allowed_ids;
    const int32_t *bad_words;        /* token sequences, concatenated; bad_word_lens[i] >= 1 each */
    const int32_t *bad_word_lens;
    int n_bad_words;
    int min_tokens;                  /* the stop ids are banned until this many tokens were generated */
} ci_request_params;

#define CI_MAX_CONTROL_IDS 65536     /* logit_bias entries, allowed ids, bad-word tokens: each at most this */

typedef struct ci_sched_options {
    int max_num_seqs;        /* running sequences at once */
    int max_batch_tokens;    /* tokens per forward pass (prefill chunk budget) */
    int max_model_len;       /* prompt + output positions per sequence */
    int block_size;          /* positions per KV block */
    int n_kv_blocks;         /* pool size */
    ci_kv_dtype kv_dtype;
    bool disable_prefix_caching;
    int n_threads;           /* threads of this model's forward passes (<= 0: the pool's count);
                              * the caller reserves them (ci_threadpool_reserve) */
} ci_sched_options;

typedef struct ci_scheduler ci_scheduler;

ci_scheduler *ci_sched_new(const qwen3_model *model, const ci_sched_options *opts, cinfer_error *err);
void ci_sched_free(ci_scheduler *s);

/* Thread-safe. Copies the prompt. Returns a request id (> 0) or < 0 when the
 * request can never run (empty prompt, prompt longer than max_model_len) or
 * memory for it is short (CINFER_ERR_NOMEM). */
int64_t ci_sched_submit(ci_scheduler *s, const int32_t *prompt, int n_prompt, const ci_request_params *p,
                        ci_token_callback cb, void *user, cinfer_error *err);
/* Thread-safe. The request finishes with CI_FINISH_CANCELLED at the next step
 * and its KV blocks are freed then. */
void ci_sched_cancel(ci_scheduler *s, int64_t request_id);

/* Turns prefix caching on or off (call while no step runs). */
void ci_sched_set_prefix_caching(ci_scheduler *s, bool on);

/* Runs one step (see the top of this file). Never fails as a whole and
 * needs no retry: returns the number of requests still waiting or running
 * (>= 0; 0: idle, wait for work). When a forward pass or an allocation
 * failed in this step, the affected requests have already received their
 * final event with CI_FINISH_ERROR (their KV blocks are freed) and *err
 * (may be NULL) describes the failure, for logging; otherwise *err is left
 * as it was. Callers just keep stepping. */
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
    uint64_t prefix_hit_tokens;   /* prompt tokens served from the prefix cache */
    uint64_t prefix_query_tokens; /* prompt tokens looked up */
    uint64_t kv_evictions;        /* cached blocks reused for other data */
} ci_sched_stats;
/* Thread-safe snapshot. */
void ci_sched_get_stats(ci_scheduler *s, ci_sched_stats *out);

#endif
