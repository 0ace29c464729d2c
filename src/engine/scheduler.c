/*
 * scheduler.c — see scheduler.h for the loop. Memory is sized once in
 * ci_sched_new (KV pool, forward scratch, logits rows); a step allocates
 * only when a sequence's token or block list grows.
 */
#include "engine/scheduler.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct seq {
    int64_t id;
    uint64_t arrival;       /* admission order: the largest is the youngest */
    int32_t *tokens;        /* prompt followed by output */
    int n_tokens, cap_tokens;
    int n_prompt;
    int n_computed;         /* positions whose K/V are in the cache */
    int32_t *blocks;
    uint64_t *block_hash;   /* chained hash of each full block in [0, n_hashed) */
    int n_blocks, cap_blocks;
    int n_hashed;           /* leading full blocks already hashed (and offered to the cache) */
    bool admitted_once;     /* prefix-cache stats count the first admission only */
    uint64_t prompt_hash;   /* hash of the whole prompt, 0 when it has no full block */
    bool in_thinking;
    int n_thinking;         /* tokens generated inside <think> */
    bool budget_spent;      /* the close sequence was forced */
    int32_t *forced_close;
    int32_t *forced_prefix;
    bool prefix_pending;    /* the answer has not started yet: the prefix is still to be forced */
    int plp_next;           /* prompt logprobs: next position whose logits are still to be reported */
    ci_request_params params;
    int32_t *stop_ids;
    ci_rng rng;
    ci_token_callback cb;
    void *user;
    bool cancelled;
    int n_cached;           /* prompt tokens found in the prefix cache */
    struct seq *next;       /* waiting / incoming list link */
    /* per-step scratch */
    int step_chunk;         /* tokens of this seq in the current batch */
    int logits_row;         /* row in the logits buffer, -1 when none */
    int plp_row0, plp_rows; /* prompt-logprob rows in the logits buffer */
    int plp_pos0;           /* the prompt position of plp_row0 */
} seq;

struct ci_scheduler {
    const qwen3_model *model;
    ci_sched_options opt;
    ci_kv_cache kv;
    qwen3_state state;
    ci_sampler_scratch sampler;
    float *logits;          /* [logits_rows, vocab] */
    int logits_rows;        /* max_num_seqs, grown once for prompt-logprob rows */

    /* batch assembly buffers, [max_batch_tokens] */
    int32_t *b_tokens, *b_pos, *b_seq;
    bool *b_want;
    ci_block_table *b_tables; /* [max_num_seqs] */
    seq **b_seqs;             /* [max_num_seqs] */

    seq **running;
    int n_running;
    seq *waiting_head, *waiting_tail;

    pthread_mutex_t lock;   /* guards incoming, cancels, stats, next_id */
    pthread_cond_t work;
    seq *incoming_head, *incoming_tail;
    int64_t *cancels;
    int n_cancels, cap_cancels;
    int64_t next_id;
    uint64_t next_arrival;
    bool wakeup;
    ci_sched_stats stats;
};

/* ------------------------------------------------------------ lifecycle */

ci_scheduler *ci_sched_new(const qwen3_model *model, const ci_sched_options *o, cinfer_error *err) {
    int blocks_per_seq = (o->max_model_len + o->block_size - 1) / (o->block_size > 0 ? o->block_size : 1);
    if (o->max_num_seqs <= 0 || o->max_batch_tokens < o->max_num_seqs || o->max_model_len <= 0 || o->block_size <= 0) {
        ci_error(err, CINFER_ERR_INVALID,
                 "scheduler: need max_num_seqs > 0, max_batch_tokens >= max_num_seqs, max_model_len > 0, block_size > 0");
        return NULL;
    }
    if (o->n_kv_blocks < blocks_per_seq) {
        ci_error(err, CINFER_ERR_KV_TOO_SMALL,
                 "scheduler: the KV cache holds %d blocks of %d positions, fewer than one sequence of max_model_len %d needs (%d)",
                 o->n_kv_blocks, o->block_size, o->max_model_len, blocks_per_seq);
        return NULL;
    }
    ci_scheduler *s = ci_calloc(1, sizeof *s);
    s->model = model;
    s->opt = *o;
    const qwen3_hparams *hp = &model->hp;
    if (ci_kv_cache_init(&s->kv, hp->n_layers, hp->n_kv_heads, hp->head_dim, o->block_size, o->n_kv_blocks, o->kv_dtype, err) != 0 ||
        qwen3_state_init(&s->state, hp, o->max_batch_tokens, o->max_model_len, err) != 0) {
        ci_kv_cache_free(&s->kv);
        free(s);
        return NULL;
    }
    s->kv.prefix_caching = !o->disable_prefix_caching;
    ci_sampler_scratch_init(&s->sampler, hp->vocab);
    size_t logits_n;
    if (ci_mul_overflow((size_t)o->max_num_seqs, (size_t)hp->vocab, &logits_n)) logits_n = SIZE_MAX;
    s->logits = ci_realloc_array(NULL, logits_n, sizeof(float));
    s->logits_rows = o->max_num_seqs;
    s->b_tokens = ci_malloc((size_t)o->max_batch_tokens * sizeof(int32_t));
    s->b_pos = ci_malloc((size_t)o->max_batch_tokens * sizeof(int32_t));
    s->b_seq = ci_malloc((size_t)o->max_batch_tokens * sizeof(int32_t));
    s->b_want = ci_malloc((size_t)o->max_batch_tokens * sizeof(bool));
    s->b_tables = ci_malloc((size_t)o->max_num_seqs * sizeof(ci_block_table));
    s->b_seqs = ci_malloc((size_t)o->max_num_seqs * sizeof(seq *));
    s->running = ci_malloc((size_t)o->max_num_seqs * sizeof(seq *));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    s->next_id = 1;
    s->stats.kv_blocks_total = o->n_kv_blocks;
    s->stats.kv_blocks_free = ci_kv_available(&s->kv);
    return s;
}

static void seq_free(seq *q) {
    if (!q) return;
    free(q->tokens);
    free(q->blocks);
    free(q->block_hash);
    free(q->stop_ids);
    free(q->forced_close);
    free(q->forced_prefix);
    free(q);
}

static void release_blocks(ci_scheduler *s, seq *q) {
    for (int i = 0; i < q->n_blocks; i++) ci_kv_release_block(&s->kv, q->blocks[i]);
    q->n_blocks = 0;
    q->n_hashed = 0;
    q->n_computed = 0;
}

void ci_sched_free(ci_scheduler *s) {
    if (!s) return;
    for (int i = 0; i < s->n_running; i++) seq_free(s->running[i]);
    for (seq *q = s->waiting_head, *n; q; q = n) n = q->next, seq_free(q);
    for (seq *q = s->incoming_head, *n; q; q = n) n = q->next, seq_free(q);
    ci_kv_cache_free(&s->kv);
    qwen3_state_free(&s->state);
    ci_sampler_scratch_free(&s->sampler);
    free(s->logits);
    free(s->b_tokens);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    free(s->b_tables);
    free(s->b_seqs);
    free(s->running);
    free(s->cancels);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    free(s);
}

/* ---------------------------------------------------------- submission */

int64_t ci_sched_submit(ci_scheduler *s, const int32_t *prompt, int n_prompt, const ci_request_params *p,
                        ci_token_callback cb, void *user, cinfer_error *err) {
    if (n_prompt <= 0) return ci_error(err, CINFER_ERR_INVALID, "the prompt is empty");
    if (n_prompt >= s->opt.max_model_len)
        return ci_error(err, CINFER_ERR_LIMIT, "the prompt has %d tokens; the context holds %d (prompt + output)",
                        n_prompt, s->opt.max_model_len);
    if (p->max_new_tokens < 0) return ci_error(err, CINFER_ERR_INVALID, "max_new_tokens must not be negative");
    if (p->n_forced_prefix < 0 || p->n_forced_prefix > CI_MAX_FORCED_TOKENS || p->n_forced_close < 0 ||
        p->n_forced_close > CI_MAX_FORCED_TOKENS)
        return ci_error(err, CINFER_ERR_INVALID, "a forced token sequence is longer than %d tokens", CI_MAX_FORCED_TOKENS);
    for (int i = 0; i < p->n_forced_prefix; i++)
        if (p->forced_prefix[i] < 0 || p->forced_prefix[i] >= s->model->hp.vocab)
            return ci_error(err, CINFER_ERR_INVALID, "forced token %d is outside the vocabulary", p->forced_prefix[i]);
    bool close_used = p->thinking_budget >= 0 || p->n_forced_prefix > 0;
    for (int i = 0; close_used && i < p->n_forced_close; i++)
        if (p->forced_close[i] < 0 || p->forced_close[i] >= s->model->hp.vocab)
            return ci_error(err, CINFER_ERR_INVALID, "forced token %d is outside the vocabulary", p->forced_close[i]);
    if (p->top_logprobs < 0 || p->top_logprobs > CI_MAX_TOP_LOGPROBS)
        return ci_error(err, CINFER_ERR_INVALID, "top_logprobs must be between 0 and %d", CI_MAX_TOP_LOGPROBS);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= s->model->hp.vocab)
            return ci_error(err, CINFER_ERR_INVALID, "prompt token %d at index %d is outside the vocabulary", prompt[i], i);

    seq *q = ci_calloc(1, sizeof *q);
    int cap = n_prompt + (p->max_new_tokens < s->opt.max_model_len ? p->max_new_tokens : s->opt.max_model_len) + 1;
    if (cap > s->opt.max_model_len + 1) cap = s->opt.max_model_len + 1;
    q->tokens = ci_malloc((size_t)cap * sizeof(int32_t));
    q->cap_tokens = cap;
    memcpy(q->tokens, prompt, (size_t)n_prompt * sizeof(int32_t));
    q->n_tokens = q->n_prompt = n_prompt;
    q->params = *p;
    if (p->n_stop_ids > 0) {
        q->stop_ids = ci_malloc((size_t)p->n_stop_ids * sizeof(int32_t));
        memcpy(q->stop_ids, p->stop_ids, (size_t)p->n_stop_ids * sizeof(int32_t));
    }
    q->params.stop_ids = q->stop_ids;
    /* the close sequence also says what follows the model's own </think> before an answer prefix */
    if (close_used && p->n_forced_close > 0) {
        q->forced_close = ci_malloc((size_t)p->n_forced_close * sizeof(int32_t));
        memcpy(q->forced_close, p->forced_close, (size_t)p->n_forced_close * sizeof(int32_t));
    } else {
        q->params.n_forced_close = 0;
    }
    if (!q->forced_close) q->params.thinking_budget = -1;
    q->params.forced_close = q->forced_close;
    if (p->n_forced_prefix > 0) {
        q->forced_prefix = ci_malloc((size_t)p->n_forced_prefix * sizeof(int32_t));
        memcpy(q->forced_prefix, p->forced_prefix, (size_t)p->n_forced_prefix * sizeof(int32_t));
        q->prefix_pending = true;
    } else {
        q->params.n_forced_prefix = 0;
    }
    q->params.forced_prefix = q->forced_prefix;
    q->in_thinking = p->thinking_open;
    if (n_prompt > s->opt.block_size) q->prompt_hash = ci_kv_chain_hash(0, prompt, n_prompt) | 1;
    q->cb = cb;
    q->user = user;
    q->logits_row = -1;
    uint64_t seed = p->sampling.has_seed ? p->sampling.seed : 0;
    if (!p->sampling.has_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)q;
    }
    ci_rng_seed(&q->rng, seed);

    pthread_mutex_lock(&s->lock);
    q->id = s->next_id++;
    if (s->incoming_tail) s->incoming_tail->next = q;
    else s->incoming_head = q;
    s->incoming_tail = q;
    s->stats.waiting++;
    int64_t id = q->id;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    return id;
}

void ci_sched_cancel(ci_scheduler *s, int64_t request_id) {
    pthread_mutex_lock(&s->lock);
    if (s->n_cancels == s->cap_cancels) {
        s->cap_cancels = s->cap_cancels ? s->cap_cancels * 2 : 16;
        s->cancels = ci_realloc_array(s->cancels, (size_t)s->cap_cancels, sizeof *s->cancels);
    }
    s->cancels[s->n_cancels++] = request_id;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
}

void ci_sched_set_prefix_caching(ci_scheduler *s, bool on) { s->kv.prefix_caching = on; }

void ci_sched_wait_for_work(ci_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    while (!s->incoming_head && s->n_cancels == 0 && !s->wakeup) pthread_cond_wait(&s->work, &s->lock);
    s->wakeup = false;
    pthread_mutex_unlock(&s->lock);
}

void ci_sched_wakeup(ci_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    s->wakeup = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
}

void ci_sched_get_stats(ci_scheduler *s, ci_sched_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------- helpers */

static void waiting_push_back(ci_scheduler *s, seq *q) {
    q->next = NULL;
    if (s->waiting_tail) s->waiting_tail->next = q;
    else s->waiting_head = q;
    s->waiting_tail = q;
}

static void waiting_push_front(ci_scheduler *s, seq *q) {
    q->next = s->waiting_head;
    s->waiting_head = q;
    if (!s->waiting_tail) s->waiting_tail = q;
}

static seq *waiting_pop_front(ci_scheduler *s) {
    seq *q = s->waiting_head;
    if (q) {
        s->waiting_head = q->next;
        if (!s->waiting_head) s->waiting_tail = NULL;
        q->next = NULL;
    }
    return q;
}

static void finish(ci_scheduler *s, seq *q, ci_finish_reason why, int32_t token, const ci_token_event *base) {
    ci_token_event ev = base ? *base : (ci_token_event){0};
    ev.request_id = q->id;
    ev.token = token;
    ev.finish = why;
    ev.n_prompt_tokens = q->n_prompt;
    ev.n_output_tokens = q->n_tokens - q->n_prompt;
    ev.n_cached_tokens = q->n_cached;
    if (q->cb) q->cb(q->user, &ev);
    release_blocks(s, q);
    seq_free(q);
}

static void remove_running(ci_scheduler *s, int idx) {
    memmove(&s->running[idx], &s->running[idx + 1], (size_t)(s->n_running - idx - 1) * sizeof(seq *));
    s->n_running--;
}

/* Applies queued cancellations and moves new submissions to the waiting list. */
static void drain_incoming(ci_scheduler *s) {
    pthread_mutex_lock(&s->lock);
    seq *in = s->incoming_head;
    s->incoming_head = s->incoming_tail = NULL;
    int n_cancels = s->n_cancels;
    int64_t cancels_local[64];
    int64_t *cancels = n_cancels <= 64 ? cancels_local : ci_malloc((size_t)n_cancels * sizeof(int64_t));
    if (n_cancels) memcpy(cancels, s->cancels, (size_t)n_cancels * sizeof(int64_t));
    s->n_cancels = 0;
    pthread_mutex_unlock(&s->lock);

    for (seq *q = in, *n; q; q = n) {
        n = q->next;
        q->arrival = s->next_arrival++;
        waiting_push_back(s, q);
    }
    for (int c = 0; c < n_cancels; c++) {
        for (int i = 0; i < s->n_running; i++)
            if (s->running[i]->id == cancels[c]) s->running[i]->cancelled = true;
        for (seq *q = s->waiting_head; q; q = q->next)
            if (q->id == cancels[c]) q->cancelled = true;
    }
    if (cancels != cancels_local) free(cancels);

    for (int i = s->n_running - 1; i >= 0; i--)
        if (s->running[i]->cancelled) {
            seq *q = s->running[i];
            remove_running(s, i);
            finish(s, q, CI_FINISH_CANCELLED, -1, NULL);
        }
    seq **link = &s->waiting_head;
    s->waiting_tail = NULL;
    while (*link) {
        seq *q = *link;
        if (q->cancelled) {
            *link = q->next;
            finish(s, q, CI_FINISH_CANCELLED, -1, NULL);
        } else {
            s->waiting_tail = q;
            link = &q->next;
        }
    }
}

static void reserve_blocks(seq *q, int need) {
    if (need > q->cap_blocks) {
        q->cap_blocks = need + 8;
        q->blocks = ci_realloc_array(q->blocks, (size_t)q->cap_blocks, sizeof(int32_t));
        q->block_hash = ci_realloc_array(q->block_hash, (size_t)q->cap_blocks, sizeof(uint64_t));
    }
}

/* Grows q's block table to cover positions [0, n_positions). */
static bool ensure_blocks(ci_scheduler *s, seq *q, int n_positions) {
    int need = (n_positions + s->opt.block_size - 1) / s->opt.block_size;
    if (need - q->n_blocks > ci_kv_available(&s->kv)) return false;
    reserve_blocks(q, need);
    while (q->n_blocks < need) q->blocks[q->n_blocks++] = ci_kv_alloc_block(&s->kv);
    return true;
}

/* Whether prompt positions still need logits for prompt logprobs
 * (positions 0 .. n_prompt-2 give the logprobs of tokens 1 .. n_prompt-1). */
static bool plp_pending(const seq *q) { return q->params.want_prompt_logprobs && q->plp_next < q->n_prompt - 1; }

/* Prompt-logprob rows that computing positions [from, from + n) yields. */
static int plp_rows_in(const seq *q, int from, int n) {
    if (!plp_pending(q)) return 0;
    int lo = from > q->plp_next ? from : q->plp_next;
    int hi = from + n < q->n_prompt - 1 ? from + n : q->n_prompt - 1;
    return hi > lo ? hi - lo : 0;
}

/* The largest chunk of q whose prompt-logprob rows fit in rows_left. */
static int plp_cap_chunk(const seq *q, int chunk, int rows_left) {
    if (!plp_pending(q)) return chunk;
    int free_positions = q->plp_next - q->n_computed; /* recomputed after a preemption: no rows */
    if (free_positions < 0) free_positions = 0;
    int cap = free_positions + rows_left;
    return chunk < cap ? chunk : cap;
}

/* On admission of a sequence with no blocks: shares the cached blocks of
 * its longest cached prefix. The last known token is always left to
 * compute, since sampling needs its logits; positions whose prompt
 * logprobs are still to be reported are computed too. */
static void match_prefix(ci_scheduler *s, seq *q) {
    const int bs = s->opt.block_size;
    int max_blocks = (q->n_tokens - 1) / bs;
    if (plp_pending(q) && max_blocks > q->plp_next / bs) max_blocks = q->plp_next / bs;
    reserve_blocks(q, max_blocks);
    uint64_t h = 0;
    int matched = 0;
    for (int i = 0; i < max_blocks; i++) {
        const int32_t *toks = q->tokens + (size_t)i * (size_t)bs;
        h = ci_kv_chain_hash(h, toks, bs);
        int32_t b = ci_kv_lookup(&s->kv, h, i ? q->blocks[i - 1] : -1, toks);
        if (b < 0) break;
        ci_kv_retain_block(&s->kv, b);
        q->blocks[i] = b;
        q->block_hash[i] = h;
        matched++;
    }
    q->n_blocks = q->n_hashed = matched;
    q->n_computed = matched * bs;
    if (!q->admitted_once) {
        q->admitted_once = true;
        q->n_cached = q->n_computed < q->n_prompt ? q->n_computed : q->n_prompt;
        pthread_mutex_lock(&s->lock);
        s->stats.prompt_tokens += (uint64_t)q->n_prompt;
        s->stats.prefix_query_tokens += (uint64_t)q->n_prompt;
        s->stats.prefix_hit_tokens += (uint64_t)q->n_cached;
        pthread_mutex_unlock(&s->lock);
    }
}

/* Whether a running sequence with the same prompt is still computing it
 * (its blocks are not all in the cache yet). Only identical prompts wait:
 * prompts that merely share a system prompt are admitted at once. */
static bool sibling_prefilling(const ci_scheduler *s, const seq *q) {
    if (!q->prompt_hash || !s->kv.prefix_caching || plp_pending(q)) return false;
    for (int i = 0; i < s->n_running; i++) {
        const seq *r = s->running[i];
        if (r->prompt_hash == q->prompt_hash && r->n_prompt == q->n_prompt && r->n_computed < r->n_prompt - 1 &&
            memcmp(r->tokens, q->tokens, (size_t)q->n_prompt * sizeof(int32_t)) == 0)
            return true;
    }
    return false;
}

/* Offers the blocks that became full (all positions computed) to the cache. */
static void register_full_blocks(ci_scheduler *s, seq *q) {
    const int bs = s->opt.block_size;
    while ((q->n_hashed + 1) * bs <= q->n_computed && q->n_hashed < q->n_blocks) {
        int i = q->n_hashed;
        const int32_t *toks = q->tokens + (size_t)i * (size_t)bs;
        uint64_t h = ci_kv_chain_hash(i ? q->block_hash[i - 1] : 0, toks, bs);
        q->block_hash[i] = h;
        ci_kv_register(&s->kv, q->blocks[i], h, i ? q->blocks[i - 1] : -1, toks);
        q->n_hashed++;
    }
}

/* Frees the youngest running sequence's blocks and puts it back at the head
 * of the waiting list; it recomputes its tokens when readmitted. */
static seq *preempt_youngest(ci_scheduler *s) {
    int y = 0;
    for (int i = 1; i < s->n_running; i++)
        if (s->running[i]->arrival > s->running[y]->arrival) y = i;
    seq *q = s->running[y];
    remove_running(s, y);
    release_blocks(s, q);
    waiting_push_front(s, q);
    s->stats.preemptions++;
    return q;
}

static bool is_stop_id(const seq *q, int32_t t) {
    for (int i = 0; i < q->params.n_stop_ids; i++)
        if (q->stop_ids[i] == t) return true;
    return false;
}

/* Appends forced tokens as if generated and reports each (logprob 0).
 * Returns a finish reason when the length limit or the callback (a stop
 * string) ended the request. */
static ci_finish_reason append_forced(ci_scheduler *s, seq *q, const int32_t *ids, int n, const ci_token_event *ev) {
    for (int k = 0; k < n; k++) {
        if (q->n_tokens - q->n_prompt >= q->params.max_new_tokens || q->n_tokens >= s->opt.max_model_len ||
            q->n_tokens >= q->cap_tokens - 1)
            return CI_FINISH_LENGTH;
        q->tokens[q->n_tokens++] = ids[k];
        ci_token_event fe = *ev;
        fe.token = ids[k];
        fe.logprob = 0;
        fe.n_top = 0;
        fe.n_output_tokens = q->n_tokens - q->n_prompt;
        if (q->cb && q->cb(q->user, &fe)) return CI_FINISH_STOP;
    }
    return CI_FINISH_NONE;
}

/* The answer starts now: forces its prefix, if any. After the model's own
 * </think>, the rest of the close sequence (what follows </think> in it)
 * comes first, so the prefix sits where the template puts answers. */
static ci_finish_reason start_answer(ci_scheduler *s, seq *q, bool after_model_close, const ci_token_event *ev) {
    if (!q->prefix_pending) return CI_FINISH_NONE;
    q->prefix_pending = false;
    const ci_request_params *p = &q->params;
    if (after_model_close) {
        int k = 0;
        while (k < p->n_forced_close && q->forced_close[k] != p->think_end_id) k++;
        if (k < p->n_forced_close) {
            ci_finish_reason why = append_forced(s, q, q->forced_close + k + 1, p->n_forced_close - k - 1, ev);
            if (why != CI_FINISH_NONE) return why;
        }
    }
    return append_forced(s, q, q->forced_prefix, p->n_forced_prefix, ev);
}

/* Follows the <think> state of an output token: when the thinking budget
 * is spent, appends the close sequence as forced output; when thinking
 * ends, starts the answer (its forced prefix). Returns a finish reason
 * when a forced token ended the request. */
static ci_finish_reason track_thinking(ci_scheduler *s, seq *q, int32_t tok, ci_token_event *ev) {
    const ci_request_params *p = &q->params;
    bool budget_on = p->thinking_budget >= 0 && !q->budget_spent;
    if (!budget_on && !q->prefix_pending) return CI_FINISH_NONE;
    int n_out = q->n_tokens - q->n_prompt;
    if (tok == p->think_start_id && n_out == 1 && !q->in_thinking) {
        q->in_thinking = true;
        if (!budget_on || p->thinking_budget > 0) return CI_FINISH_NONE;
    } else if (tok == p->think_end_id && q->in_thinking) {
        q->in_thinking = false;
        q->budget_spent = true;
        return start_answer(s, q, true, ev);
    } else if (q->in_thinking) {
        q->n_thinking++;
    }
    if (!budget_on || !q->in_thinking || q->n_thinking < p->thinking_budget) return CI_FINISH_NONE;
    q->budget_spent = true;
    q->in_thinking = false;
    ci_finish_reason why = append_forced(s, q, q->forced_close, p->n_forced_close, ev);
    return why != CI_FINISH_NONE ? why : start_answer(s, q, false, ev);
}

/* Reports the prompt logprobs computed in this step (rows in batch order). */
static void report_prompt_logprobs(ci_scheduler *s, seq *q) {
    const int V = s->model->hp.vocab;
    for (int r = 0; r < q->plp_rows; r++) {
        int pos = q->plp_pos0 + r;
        const float *logits = s->logits + (size_t)(q->plp_row0 + r) * (size_t)V;
        ci_token_event ev = {.request_id = q->id, .token = q->tokens[pos + 1], .prompt_index = pos + 1,
                             .n_prompt_tokens = q->n_prompt};
        ev.logprob = ci_logprob_of(logits, V, ev.token);
        ev.n_top = ci_top_logprobs(logits, V, q->params.top_logprobs, ev.top_ids, ev.top_logprobs);
        if (q->cb) q->cb(q->user, &ev);
        q->plp_next = pos + 1;
    }
    q->plp_rows = 0;
}

/* ----------------------------------------------------------------- step */

int ci_sched_step(ci_scheduler *s, cinfer_error *err) {
    drain_incoming(s);
    const int budget = s->opt.max_batch_tokens;
    int n_batch = 0, n_bseq = 0;
    int plp_rows_left = CI_PROMPT_LOGPROB_ROWS;

    /* Running sequences, oldest first: each needs its next chunk's blocks.
     * When the pool is dry, the youngest gives its blocks back. */
    for (int i = 0; i < s->n_running; i++) s->running[i]->step_chunk = 0;
    for (int i = 0; i < s->n_running;) {
        seq *q = s->running[i];
        int remaining = q->n_tokens - q->n_computed;
        int room = budget - n_batch;
        int chunk = remaining < room ? remaining : room;
        chunk = plp_cap_chunk(q, chunk, plp_rows_left);
        if (chunk <= 0) { i++; continue; }
        if (!ensure_blocks(s, q, q->n_computed + chunk)) {
            /* Try a smaller chunk first: what the free blocks cover. */
            int cover = (q->n_blocks + ci_kv_available(&s->kv)) * s->opt.block_size - q->n_computed;
            if (cover > 0 && cover < chunk && remaining > 1) {
                chunk = cover;
                ensure_blocks(s, q, q->n_computed + chunk);
            } else {
                seq *victim = preempt_youngest(s);
                if (victim == q) continue; /* q itself was youngest; index i now holds the next one */
                /* i may have shifted if victim was before q: restart the scan. */
                n_batch = 0;
                plp_rows_left = CI_PROMPT_LOGPROB_ROWS;
                for (int k = 0; k < s->n_running; k++) s->running[k]->step_chunk = 0;
                i = 0;
                continue;
            }
        }
        q->step_chunk = chunk;
        plp_rows_left -= plp_rows_in(q, q->n_computed, chunk);
        n_batch += chunk;
        i++;
    }

    /* Admit waiting requests while slots, budget and blocks allow. */
    while (s->waiting_head && s->n_running < s->opt.max_num_seqs && n_batch < budget) {
        seq *q = s->waiting_head;
        /* Several sequences from one prompt (n > 1, or identical requests
         * arriving together): let the first compute the shared prefix and
         * admit the others once its blocks are in the cache. */
        if (q->n_blocks == 0 && !q->admitted_once && sibling_prefilling(s, q)) break;
        if (q->n_blocks == 0) match_prefix(s, q);
        int remaining = q->n_tokens - q->n_computed;
        int room = budget - n_batch;
        int chunk = remaining < room ? remaining : room;
        chunk = plp_cap_chunk(q, chunk, plp_rows_left);
        /* positions the blocks it holds (the shared prefix, maybe a partial
         * last block) still have room for, plus what can be allocated */
        int cover = (q->n_blocks + ci_kv_available(&s->kv)) * s->opt.block_size - q->n_computed;
        if (cover < chunk) chunk = cover;
        if (chunk <= 0) {
            release_blocks(s, q); /* do not hold shared blocks while waiting */
            break;
        }
        waiting_pop_front(s);
        ensure_blocks(s, q, q->n_computed + chunk);
        q->step_chunk = chunk;
        plp_rows_left -= plp_rows_in(q, q->n_computed, chunk);
        s->running[s->n_running++] = q;
        n_batch += chunk;
    }

    /* Assemble the batch. Logits rows: a sequence's prompt-logprob
     * positions, then its last position when the chunk reaches it. */
    n_batch = 0;
    int n_rows = 0;
    for (int i = 0; i < s->n_running; i++) {
        seq *q = s->running[i];
        q->logits_row = -1;
        q->plp_rows = 0;
        if (q->step_chunk == 0) continue;
        s->b_tables[n_bseq] = (ci_block_table){.blocks = q->blocks, .n_blocks = q->n_blocks};
        s->b_seqs[n_bseq] = q;
        bool plp = plp_pending(q);
        for (int t = 0; t < q->step_chunk; t++) {
            int pos = q->n_computed + t;
            s->b_tokens[n_batch] = q->tokens[pos];
            s->b_pos[n_batch] = pos;
            s->b_seq[n_batch] = n_bseq;
            s->b_want[n_batch] = pos == q->n_tokens - 1 || (plp && pos >= q->plp_next && pos < q->n_prompt - 1);
            n_rows += s->b_want[n_batch];
            n_batch++;
        }
        n_bseq++;
    }
    if (n_rows > s->logits_rows) {
        /* the first prompt-logprob request: room for its rows from now on */
        int rows = s->opt.max_num_seqs + CI_PROMPT_LOGPROB_ROWS;
        size_t n;
        if (ci_mul_overflow((size_t)rows, (size_t)s->model->hp.vocab, &n)) n = SIZE_MAX;
        s->logits = ci_realloc_array(s->logits, n, sizeof(float));
        s->logits_rows = rows;
    }

    if (n_batch > 0) {
        qwen3_batch b = {.n_tokens = n_batch, .tokens = s->b_tokens, .pos = s->b_pos, .seq = s->b_seq,
                         .want_logits = s->b_want, .n_seqs = n_bseq, .seq_blocks = s->b_tables};
        int rows = qwen3_forward(s->model, &s->state, &s->kv, &b, s->logits, err);
        if (rows < 0) return rows;
        /* Logits rows come in batch order. */
        int row = 0;
        for (int k = 0; k < n_bseq; k++) {
            seq *q = s->b_seqs[k];
            q->plp_rows = plp_rows_in(q, q->n_computed, q->step_chunk);
            q->plp_pos0 = q->n_computed > q->plp_next ? q->n_computed : q->plp_next;
            q->plp_row0 = row;
            row += q->plp_rows;
            q->n_computed += q->step_chunk;
            register_full_blocks(s, q);
            if (q->n_computed == q->n_tokens) q->logits_row = row++;
        }
    }

    /* Sample, report, retire. */
    int V = s->model->hp.vocab;
    uint64_t generated = 0;
    for (int i = 0; i < s->n_running;) {
        seq *q = s->running[i];
        if (q->plp_rows > 0) report_prompt_logprobs(s, q);
        if (q->logits_row < 0) { i++; continue; }
        if (q->params.max_new_tokens == 0) { /* the prompt was all that was asked for */
            remove_running(s, i);
            finish(s, q, CI_FINISH_LENGTH, -1, NULL);
            continue;
        }
        const float *logits = s->logits + (size_t)q->logits_row * V;
        int n_out = q->n_tokens - q->n_prompt;
        int32_t tok = ci_sample(&s->sampler, &q->params.sampling, &q->rng, logits, q->tokens, q->n_prompt,
                                q->tokens + q->n_prompt, n_out);
        ci_token_event ev = {.request_id = q->id, .token = tok, .n_prompt_tokens = q->n_prompt,
                             .n_cached_tokens = q->n_cached};
        ci_finish_reason why = CI_FINISH_NONE;
        if (q->prefix_pending && n_out == 0 && !q->in_thinking && tok != q->params.think_start_id) {
            /* The answer starts at the first position and must begin with
             * the forced prefix: the sampled token gives way to it. */
            why = start_answer(s, q, false, &ev);
            if (why == CI_FINISH_NONE) { i++; continue; }
            remove_running(s, i);
            finish(s, q, why, -1, &ev);
            continue;
        }
        if (q->params.want_logprobs || q->params.top_logprobs > 0) {
            ev.logprob = ci_logprob_of(logits, V, tok);
            ev.n_top = ci_top_logprobs(logits, V, q->params.top_logprobs, ev.top_ids, ev.top_logprobs);
        }
        q->tokens[q->n_tokens++] = tok;
        generated++;
        ev.n_output_tokens = q->n_tokens - q->n_prompt;
        if (is_stop_id(q, tok)) why = CI_FINISH_STOP;
        else if (ev.n_output_tokens >= q->params.max_new_tokens || q->n_tokens >= s->opt.max_model_len) why = CI_FINISH_LENGTH;
        if (why == CI_FINISH_NONE) {
            if (q->cb && q->cb(q->user, &ev)) why = CI_FINISH_STOP;
            if (why == CI_FINISH_NONE) why = track_thinking(s, q, tok, &ev);
            if (why == CI_FINISH_NONE) { i++; continue; }
            remove_running(s, i);
            finish(s, q, why, -1, &ev);
        } else {
            remove_running(s, i);
            finish(s, q, why, tok, &ev);
        }
    }

    int waiting = 0;
    for (seq *q = s->waiting_head; q; q = q->next) waiting++;
    pthread_mutex_lock(&s->lock);
    s->stats.running = s->n_running;
    s->stats.waiting = waiting;
    for (seq *q = s->incoming_head; q; q = q->next) s->stats.waiting++;
    s->stats.kv_blocks_free = ci_kv_available(&s->kv);
    s->stats.kv_evictions = s->kv.evictions;
    s->stats.generated_tokens += generated;
    int active = s->stats.running + s->stats.waiting;
    pthread_mutex_unlock(&s->lock);
    return active;
}
