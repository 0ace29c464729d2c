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
    ci_cons_matcher *cons;  /* the constraint's state, NULL: none */
    bool cons_waiting;      /* thinking first: the constraint starts with the answer */
    int cons_words;         /* words of the constraint's masks (its vocabulary may be smaller) */
    ci_logit_bias *bias;    /* the request's control lists (owned copies) */
    int32_t *allowed, *bad, *bad_lens;
    int plp_next;           /* prompt logprobs: next position whose logits are still to be reported */
    ci_request_params params;
    int32_t *stop_ids;
    ci_rng rng;
    ci_token_callback cb;
    void *user;
    bool cancelled;
    bool counted_running;   /* in stats.running (else stats.waiting) since the last publish_stats */
    int n_cached;           /* prompt tokens found in the prefix cache */
    struct seq *next;       /* waiting / incoming / failed list link */
} seq;

/* One sequence's share of a step (vLLM: a scheduled request). */
typedef struct planned {
    seq *q;
    int chunk;              /* positions it computes: [q->n_computed, + chunk) */
    /* set by the batch assembly, read by the update */
    int logits_row;         /* the row it samples from; -1 when the chunk ends before its last token */
    int plp_row0, plp_rows; /* its prompt-logprob rows */
    int plp_pos0;           /* the prompt position of plp_row0 */
} planned;

/* What a step does: the planning stage's result. The blocks each planned
 * chunk needs are already in its sequence's block table. */
typedef struct sched_plan {
    planned *e;             /* [max_num_seqs] in batch order */
    int n;
    int n_tokens;           /* sum of the chunks */
    int plp_rows_left;      /* prompt-logprob rows still free in this step */
    int n_preempted;        /* running sequences sent back to the waiting queue */
    seq *failed;            /* out of memory while planning (linked by next): ended with CI_FINISH_ERROR */
} sched_plan;

struct ci_scheduler {
    const qwen3_model *model;
    ci_sched_options opt;
    ci_kv_cache kv;
    qwen3_state state;
    ci_sampler_scratch sampler;
    uint32_t *mask, *mask2; /* [mask_words]: the allowed mask of the token being sampled */
    int mask_words;
    float *logits;          /* [logits_rows, vocab] */
    int logits_rows;        /* max_num_seqs, grown once for prompt-logprob rows */

    sched_plan plan;
    /* batch assembly buffers, [max_batch_tokens] */
    int32_t *b_tokens, *b_pos, *b_seq;
    bool *b_want;
    ci_block_table *b_tables; /* [max_num_seqs] */

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
        qwen3_state_init(&s->state, hp, o->max_batch_tokens, o->max_model_len, o->n_threads, err) != 0) {
        ci_kv_cache_free(&s->kv);
        free(s);
        return NULL;
    }
    s->kv.prefix_caching = !o->disable_prefix_caching;
    ci_sampler_scratch_init(&s->sampler, hp->vocab);
    s->mask_words = (hp->vocab + 31) / 32;
    s->mask = ci_malloc((size_t)s->mask_words * sizeof(uint32_t));
    s->mask2 = ci_malloc((size_t)s->mask_words * sizeof(uint32_t));
    size_t logits_n;
    if (ci_mul_overflow((size_t)o->max_num_seqs, (size_t)hp->vocab, &logits_n)) logits_n = SIZE_MAX;
    s->logits = ci_realloc_array(NULL, logits_n, sizeof(float));
    s->logits_rows = o->max_num_seqs;
    s->b_tokens = ci_malloc((size_t)o->max_batch_tokens * sizeof(int32_t));
    s->b_pos = ci_malloc((size_t)o->max_batch_tokens * sizeof(int32_t));
    s->b_seq = ci_malloc((size_t)o->max_batch_tokens * sizeof(int32_t));
    s->b_want = ci_malloc((size_t)o->max_batch_tokens * sizeof(bool));
    s->b_tables = ci_malloc((size_t)o->max_num_seqs * sizeof(ci_block_table));
    s->plan.e = ci_malloc((size_t)o->max_num_seqs * sizeof(planned));
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
    ci_cons_matcher_free(q->cons);
    free(q->bias);
    free(q->allowed);
    free(q->bad);
    free(q->bad_lens);
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
    free(s->mask);
    free(s->mask2);
    free(s->logits);
    free(s->b_tokens);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    free(s->b_tables);
    free(s->plan.e);
    free(s->running);
    free(s->cancels);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    free(s);
}

/* ---------------------------------------------------------- submission */

static int check_ids(int V, const int32_t *ids, int n, const char *what, cinfer_error *err) {
    if (n < 0 || n > CI_MAX_CONTROL_IDS || (n > 0 && !ids))
        return ci_error(err, CINFER_ERR_INVALID, "%s: at most %d token ids", what, CI_MAX_CONTROL_IDS);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ci_error(err, CINFER_ERR_INVALID, "%s: token %d is outside the vocabulary (0..%d)", what, ids[i], V - 1);
    return CINFER_OK;
}

/* The constraint and the sampling controls against the vocabulary. */
static int check_controls(int V, const ci_request_params *p, cinfer_error *err) {
    if (p->constraint && ci_cons_vocab_size(ci_cons_grammar_vocab(p->constraint)) > (size_t)V)
        return ci_error(err, CINFER_ERR_INVALID, "the constraint was compiled for a larger vocabulary than the model's");
    if (p->constraint && p->thinking_open && p->think_end_id < 0)
        return ci_error(err, CINFER_ERR_INVALID, "a constraint after open thinking needs the think ids");
    if (p->n_logit_bias < 0 || p->n_logit_bias > CI_MAX_CONTROL_IDS || (p->n_logit_bias > 0 && !p->logit_bias))
        return ci_error(err, CINFER_ERR_INVALID, "logit_bias: at most %d entries", CI_MAX_CONTROL_IDS);
    for (int i = 0; i < p->n_logit_bias; i++) {
        const ci_logit_bias *b = &p->logit_bias[i];
        if (b->id < 0 || b->id >= V)
            return ci_error(err, CINFER_ERR_INVALID, "logit_bias: token %d is outside the vocabulary (0..%d)", b->id, V - 1);
        if (!(b->bias >= -100.0f && b->bias <= 100.0f))
            return ci_error(err, CINFER_ERR_INVALID, "logit_bias: the bias of token %d must be between -100 and 100", b->id);
    }
    if (p->min_tokens < 0) return ci_error(err, CINFER_ERR_INVALID, "min_tokens must not be negative");
    if (check_ids(V, p->allowed_ids, p->n_allowed_ids, "allowed_token_ids", err) != CINFER_OK)
        return err ? err->code : CINFER_ERR_INVALID;
    if (p->n_bad_words < 0 || p->n_bad_words > CI_MAX_CONTROL_IDS || (p->n_bad_words > 0 && (!p->bad_words || !p->bad_word_lens)))
        return ci_error(err, CINFER_ERR_INVALID, "bad_words: at most %d sequences", CI_MAX_CONTROL_IDS);
    long total = 0;
    for (int i = 0; i < p->n_bad_words; i++) {
        if (p->bad_word_lens[i] < 1 || p->bad_word_lens[i] > CI_MAX_CONTROL_IDS)
            return ci_error(err, CINFER_ERR_INVALID, "bad_words: sequence %d is empty or too long", i);
        total += p->bad_word_lens[i];
        if (total > CI_MAX_CONTROL_IDS) return ci_error(err, CINFER_ERR_INVALID, "bad_words: more than %d tokens", CI_MAX_CONTROL_IDS);
    }
    return check_ids(V, p->bad_words, (int)total, "bad_words", err);
}

/* Checks a request against the scheduler's limits and the vocabulary. */
static int check_request(const ci_scheduler *s, const int32_t *prompt, int n_prompt, const ci_request_params *p,
                         cinfer_error *err) {
    const int V = s->model->hp.vocab;
    if (n_prompt <= 0) return ci_error(err, CINFER_ERR_INVALID, "the prompt is empty");
    if (n_prompt >= s->opt.max_model_len)
        return ci_error(err, CINFER_ERR_LIMIT, "the prompt has %d tokens; the context holds %d (prompt + output)",
                        n_prompt, s->opt.max_model_len);
    if (p->max_new_tokens < 0) return ci_error(err, CINFER_ERR_INVALID, "max_new_tokens must not be negative");
    if (p->n_forced_prefix < 0 || p->n_forced_prefix > CI_MAX_FORCED_TOKENS || p->n_forced_close < 0 ||
        p->n_forced_close > CI_MAX_FORCED_TOKENS)
        return ci_error(err, CINFER_ERR_INVALID, "a forced token sequence is longer than %d tokens", CI_MAX_FORCED_TOKENS);
    for (int i = 0; i < p->n_forced_prefix; i++)
        if (p->forced_prefix[i] < 0 || p->forced_prefix[i] >= V)
            return ci_error(err, CINFER_ERR_INVALID, "forced token %d is outside the vocabulary", p->forced_prefix[i]);
    bool close_used = p->thinking_budget >= 0 || p->n_forced_prefix > 0 || p->constraint;
    for (int i = 0; close_used && i < p->n_forced_close; i++)
        if (p->forced_close[i] < 0 || p->forced_close[i] >= V)
            return ci_error(err, CINFER_ERR_INVALID, "forced token %d is outside the vocabulary", p->forced_close[i]);
    if (p->top_logprobs < 0 || p->top_logprobs > CI_MAX_TOP_LOGPROBS)
        return ci_error(err, CINFER_ERR_INVALID, "top_logprobs must be between 0 and %d", CI_MAX_TOP_LOGPROBS);
    if (check_controls(V, p, err) != CINFER_OK) return err ? err->code : CINFER_ERR_INVALID;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return ci_error(err, CINFER_ERR_INVALID, "prompt token %d at index %d is outside the vocabulary", prompt[i], i);
    return CINFER_OK;
}

/* A copy of n ids in *out (NULL when n is 0); false when out of memory. */
static bool copy_ids(int32_t **out, const int32_t *ids, int n) {
    *out = NULL;
    if (n <= 0) return true;
    if (!(*out = ci_try_malloc((size_t)n * sizeof(int32_t)))) return false;
    memcpy(*out, ids, (size_t)n * sizeof(int32_t));
    return true;
}

/* Copies of the request's control lists and a matcher for its constraint. */
static bool copy_controls(seq *q, const ci_request_params *p) {
    int n_bad = 0;
    for (int i = 0; i < p->n_bad_words; i++) n_bad += p->bad_word_lens[i];
    if (p->n_logit_bias > 0) {
        if (!(q->bias = ci_try_malloc((size_t)p->n_logit_bias * sizeof *q->bias))) return false;
        memcpy(q->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *q->bias);
    }
    if (!copy_ids(&q->allowed, p->allowed_ids, p->n_allowed_ids) || !copy_ids(&q->bad, p->bad_words, n_bad) ||
        !copy_ids(&q->bad_lens, p->bad_word_lens, p->n_bad_words))
        return false;
    q->params.logit_bias = q->bias;
    q->params.allowed_ids = q->allowed;
    q->params.bad_words = q->bad;
    q->params.bad_word_lens = q->bad_lens;
    q->params.constraint = NULL; /* the matcher holds the reference */
    if (!p->constraint) return true;
    q->cons_words = (int)ci_cons_mask_words(ci_cons_grammar_vocab(p->constraint));
    return (q->cons = ci_cons_matcher_new(p->constraint)) != NULL;
}

/* A new sequence owning copies of the prompt and the request's id lists;
 * NULL when out of memory. */
static seq *seq_new(const ci_scheduler *s, const int32_t *prompt, int n_prompt, const ci_request_params *p) {
    seq *q = ci_try_malloc(sizeof *q);
    if (!q) return NULL;
    *q = (seq){.params = *p, .n_tokens = n_prompt, .n_prompt = n_prompt, .in_thinking = p->thinking_open};
    int cap = n_prompt + (p->max_new_tokens < s->opt.max_model_len ? p->max_new_tokens : s->opt.max_model_len) + 1;
    q->cap_tokens = cap > s->opt.max_model_len + 1 ? s->opt.max_model_len + 1 : cap;
    /* the close sequence also says what follows the model's own </think> before an answer prefix */
    bool close_used = p->thinking_budget >= 0 || p->n_forced_prefix > 0 || p->constraint;
    if (!close_used) q->params.n_forced_close = 0;
    if (!(q->tokens = ci_try_malloc((size_t)q->cap_tokens * sizeof(int32_t))) ||
        !copy_ids(&q->stop_ids, p->stop_ids, p->n_stop_ids) ||
        !copy_ids(&q->forced_close, p->forced_close, q->params.n_forced_close) ||
        !copy_ids(&q->forced_prefix, p->forced_prefix, p->n_forced_prefix) || !copy_controls(q, p)) {
        seq_free(q);
        return NULL;
    }
    memcpy(q->tokens, prompt, (size_t)n_prompt * sizeof(int32_t));
    q->params.stop_ids = q->stop_ids;
    q->params.forced_close = q->forced_close;
    if (!q->forced_close) q->params.thinking_budget = -1;
    q->params.forced_prefix = q->forced_prefix;
    q->prefix_pending = q->forced_prefix != NULL;
    q->cons_waiting = q->cons && p->thinking_open;
    if (n_prompt > s->opt.block_size) q->prompt_hash = ci_kv_chain_hash(0, prompt, n_prompt) | 1;
    uint64_t seed = p->sampling.has_seed ? p->sampling.seed : 0;
    if (!p->sampling.has_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)q;
    }
    ci_rng_seed(&q->rng, seed);
    return q;
}

int64_t ci_sched_submit(ci_scheduler *s, const int32_t *prompt, int n_prompt, const ci_request_params *p,
                        ci_token_callback cb, void *user, cinfer_error *err) {
    int rc = check_request(s, prompt, n_prompt, p, err);
    if (rc != CINFER_OK) return rc;
    seq *q = seq_new(s, prompt, n_prompt, p);
    if (!q) return ci_error(err, CINFER_ERR_NOMEM, "scheduler: out of memory for a request of %d prompt tokens", n_prompt);
    q->cb = cb;
    q->user = user;
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
    /* Leave the gauges before the callback: a client told it finished may
     * submit again at once, and must not find itself counted twice. */
    pthread_mutex_lock(&s->lock);
    if (q->counted_running) s->stats.running--;
    else s->stats.waiting--;
    pthread_mutex_unlock(&s->lock);
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

/* Room for `need` entries in q's block table; -1 when out of memory. */
static int reserve_blocks(seq *q, int need) {
    if (need <= q->cap_blocks) return 0;
    int cap = need + 8;
    int32_t *blocks = ci_try_realloc_array(q->blocks, (size_t)cap, sizeof(int32_t));
    if (blocks) q->blocks = blocks;
    uint64_t *hash = blocks ? ci_try_realloc_array(q->block_hash, (size_t)cap, sizeof(uint64_t)) : NULL;
    if (!hash) return -1;
    q->block_hash = hash;
    q->cap_blocks = cap;
    return 0;
}

/* Grows q's block table to cover positions [0, n_positions): 1 done, 0 not
 * enough blocks available (nothing taken), -1 out of memory. */
static int ensure_blocks(ci_scheduler *s, seq *q, int n_positions) {
    int need = (n_positions + s->opt.block_size - 1) / s->opt.block_size;
    if (need - q->n_blocks > ci_kv_available(&s->kv)) return 0;
    if (reserve_blocks(q, need) != 0) return -1;
    while (q->n_blocks < need) q->blocks[q->n_blocks++] = ci_kv_alloc_block(&s->kv);
    return 1;
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
 * logprobs are still to be reported are computed too. -1: out of memory. */
static int match_prefix(ci_scheduler *s, seq *q) {
    const int bs = s->opt.block_size;
    int max_blocks = (q->n_tokens - 1) / bs;
    if (plp_pending(q) && max_blocks > q->plp_next / bs) max_blocks = q->plp_next / bs;
    if (reserve_blocks(q, max_blocks) != 0) return -1;
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
    return 0;
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
static seq *preempt_youngest(ci_scheduler *s, sched_plan *p) {
    int y = 0;
    for (int i = 1; i < s->n_running; i++)
        if (s->running[i]->arrival > s->running[y]->arrival) y = i;
    seq *q = s->running[y];
    remove_running(s, y);
    release_blocks(s, q);
    waiting_push_front(s, q);
    p->n_preempted++;
    return q;
}

static bool is_stop_id(const seq *q, int32_t t) {
    for (int i = 0; i < q->params.n_stop_ids; i++)
        if (q->stop_ids[i] == t) return true;
    return false;
}

/* Whether q's tokens now go through its constraint. */
static bool cons_active(const seq *q) { return q->cons && !q->cons_waiting; }

/* Appends forced tokens as if generated and reports each (logprob 0); an
 * active constraint accepts each. Returns a finish reason when the length
 * limit, the callback (a stop string) or the constraint (terminated, or a
 * token it does not allow: CI_FINISH_ERROR) ended the request. */
static ci_finish_reason append_forced(ci_scheduler *s, seq *q, const int32_t *ids, int n, const ci_token_event *ev) {
    for (int k = 0; k < n; k++) {
        if (q->n_tokens - q->n_prompt >= q->params.max_new_tokens || q->n_tokens >= s->opt.max_model_len ||
            q->n_tokens >= q->cap_tokens - 1)
            return CI_FINISH_LENGTH;
        bool fed = cons_active(q);
        if (fed && !ci_cons_accept_token(q->cons, ids[k])) return CI_FINISH_ERROR; /* not in the constraint's language */
        q->tokens[q->n_tokens++] = ids[k];
        ci_token_event fe = *ev;
        fe.token = ids[k];
        fe.logprob = 0;
        fe.n_top = 0;
        fe.n_output_tokens = q->n_tokens - q->n_prompt;
        if (q->cb && q->cb(q->user, &fe)) return CI_FINISH_STOP;
        if (fed && ci_cons_is_terminated(q->cons)) return CI_FINISH_STOP;
    }
    return CI_FINISH_NONE;
}

/* The answer starts now: starts the constraint and forces the prefix, if
 * any. After the model's own </think>, the rest of the close sequence (what
 * follows </think> in it) comes first, so the prefix and the constrained
 * output sit where the template puts answers. */
static ci_finish_reason start_answer(ci_scheduler *s, seq *q, bool after_model_close, const ci_token_event *ev) {
    if (!q->prefix_pending && !q->cons_waiting) return CI_FINISH_NONE;
    const ci_request_params *p = &q->params;
    if (after_model_close) {
        int k = 0;
        while (k < p->n_forced_close && q->forced_close[k] != p->think_end_id) k++;
        if (k < p->n_forced_close) {
            ci_finish_reason why = append_forced(s, q, q->forced_close + k + 1, p->n_forced_close - k - 1, ev);
            if (why != CI_FINISH_NONE) return why;
        }
    }
    q->cons_waiting = false; /* the constraint starts here, with the prefix */
    if (!q->prefix_pending) return CI_FINISH_NONE;
    q->prefix_pending = false;
    return append_forced(s, q, q->forced_prefix, p->n_forced_prefix, ev);
}

/* Follows the <think> state of an output token: when the thinking budget
 * is spent, appends the close sequence as forced output; when thinking
 * ends, starts the answer (its forced prefix). Returns a finish reason
 * when a forced token ended the request. */
static ci_finish_reason track_thinking(ci_scheduler *s, seq *q, int32_t tok, ci_token_event *ev) {
    const ci_request_params *p = &q->params;
    bool budget_on = p->thinking_budget >= 0 && !q->budget_spent;
    if (!budget_on && !q->prefix_pending && !q->cons_waiting) return CI_FINISH_NONE;
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
static void report_prompt_logprobs(ci_scheduler *s, const planned *e) {
    const int V = s->model->hp.vocab;
    seq *q = e->q;
    for (int r = 0; r < e->plp_rows; r++) {
        int pos = e->plp_pos0 + r;
        const float *logits = s->logits + (size_t)(e->plp_row0 + r) * (size_t)V;
        ci_token_event ev = {.request_id = q->id, .token = q->tokens[pos + 1], .prompt_index = pos + 1,
                             .n_prompt_tokens = q->n_prompt};
        ev.logprob = ci_logprob_of(logits, V, ev.token);
        ev.n_top = ci_top_logprobs(logits, V, q->params.top_logprobs, ev.top_ids, ev.top_logprobs);
        if (q->cb) q->cb(q->user, &ev);
        q->plp_next = pos + 1;
    }
}

/* ------------------------------------------------------------- planning
 * Planning touches only the scheduler's bookkeeping (queues, block tables,
 * the block pool): it never calls back and never runs the model. */

/* Takes q out of the queues for good: it ran out of memory while planning
 * and is ended with CI_FINISH_ERROR by the update stage. */
static void plan_fail(ci_scheduler *s, sched_plan *p, seq *q) {
    release_blocks(s, q);
    q->next = p->failed;
    p->failed = q;
}

static void plan_add(sched_plan *p, seq *q, int chunk) {
    p->e[p->n++] = (planned){.q = q, .chunk = chunk};
    p->plp_rows_left -= plp_rows_in(q, q->n_computed, chunk);
    p->n_tokens += chunk;
}

/* q's next chunk: its uncomputed tokens, as far as the step's token budget
 * and prompt-logprob rows leave room. */
static int next_chunk(const ci_scheduler *s, const seq *q, const sched_plan *p) {
    int remaining = q->n_tokens - q->n_computed;
    int room = s->opt.max_batch_tokens - p->n_tokens;
    return plp_cap_chunk(q, remaining < room ? remaining : room, p->plp_rows_left);
}

/* Positions q can compute with the blocks it holds plus every available one. */
static int blocks_cover(const ci_scheduler *s, const seq *q) {
    return (q->n_blocks + ci_kv_available(&s->kv)) * s->opt.block_size - q->n_computed;
}

/* Gives a running sequence the blocks for `chunk` more positions, or for
 * fewer when that is what the available blocks cover. Returns the chunk
 * granted, 0 when q must wait for blocks (someone is to be preempted), -1
 * when out of memory. */
static int grant_blocks(ci_scheduler *s, seq *q, int chunk) {
    int r = ensure_blocks(s, q, q->n_computed + chunk);
    if (r != 0) return r > 0 ? chunk : -1;
    int cover = blocks_cover(s, q);
    if (cover <= 0 || cover >= chunk || q->n_tokens - q->n_computed <= 1) return 0;
    return ensure_blocks(s, q, q->n_computed + cover) > 0 ? cover : -1;
}

/* One pass over the running sequences in running order (the order of their
 * latest admission): each gets its next chunk and the blocks for it. When
 * the pool is dry, the youngest running sequence (latest arrival) gives its
 * blocks back and returns to the head of the waiting queue. When that
 * victim is another sequence, the blocks — and, when it was planned
 * already, the budget and rows — it gave back may serve sequences planned
 * before (a chunk cut to the free blocks can grow), so the pass reports
 * false and is made again; blocks granted so far stay granted. */
static bool plan_running_pass(ci_scheduler *s, sched_plan *p) {
    p->n = p->n_tokens = 0;
    p->plp_rows_left = CI_PROMPT_LOGPROB_ROWS;
    for (int i = 0; i < s->n_running;) {
        seq *q = s->running[i];
        int chunk = next_chunk(s, q, p);
        int granted = chunk > 0 ? grant_blocks(s, q, chunk) : 0;
        if (chunk <= 0 || granted > 0) {
            if (granted > 0) plan_add(p, q, granted);
            i++;
        } else if (granted < 0) {
            remove_running(s, i); /* index i now holds the next one */
            plan_fail(s, p, q);
        } else if (preempt_youngest(s, p) != q) {
            return false;
        } /* else q itself was the youngest: index i now holds the next one */
    }
    return true;
}

/* Admits waiting requests in queue order while sequence slots, the token
 * budget and KV blocks allow; each starts after its cached prefix. */
static void plan_admissions(ci_scheduler *s, sched_plan *p) {
    while (s->waiting_head && s->n_running < s->opt.max_num_seqs && p->n_tokens < s->opt.max_batch_tokens) {
        seq *q = s->waiting_head;
        /* Several sequences from one prompt (n > 1, or identical requests
         * arriving together): let the first compute the shared prefix and
         * admit the others once its blocks are in the cache. */
        if (q->n_blocks == 0 && !q->admitted_once && sibling_prefilling(s, q)) break;
        if (q->n_blocks == 0 && match_prefix(s, q) != 0) {
            plan_fail(s, p, waiting_pop_front(s));
            continue;
        }
        int chunk = next_chunk(s, q, p);
        /* what the blocks it holds (the shared prefix, maybe a partial last
         * block) still have room for, plus what can be allocated */
        int cover = blocks_cover(s, q);
        if (cover < chunk) chunk = cover;
        if (chunk <= 0) {
            release_blocks(s, q); /* do not hold shared blocks while waiting */
            break;
        }
        waiting_pop_front(s);
        if (ensure_blocks(s, q, q->n_computed + chunk) < 0) {
            plan_fail(s, p, q);
            continue;
        }
        s->running[s->n_running++] = q;
        plan_add(p, q, chunk);
    }
}

/* The planning stage (vLLM's schedule()): running sequences first, then
 * admissions, into s->plan. */
static sched_plan *schedule(ci_scheduler *s) {
    sched_plan *p = &s->plan;
    p->n_preempted = 0;
    p->failed = NULL;
    while (!plan_running_pass(s, p)) {
    }
    plan_admissions(s, p);
    return p;
}

/* ------------------------------------------------- assembly, execution */

static int grow_logits(ci_scheduler *s, cinfer_error *err) {
    /* the first prompt-logprob request: room for its rows from now on */
    int rows = s->opt.max_num_seqs + CI_PROMPT_LOGPROB_ROWS;
    float *l = ci_try_realloc_array(s->logits, (size_t)rows * (size_t)s->model->hp.vocab, sizeof(float));
    if (!l) return ci_error(err, CINFER_ERR_NOMEM, "scheduler: out of memory for %d logits rows", rows);
    s->logits = l;
    s->logits_rows = rows;
    return CINFER_OK;
}

/* Lays the plan out as one batch and gives every planned sequence its
 * logits rows: its prompt-logprob positions, then its last position when
 * the chunk reaches it (rows come in batch order). Returns the number of
 * tokens, or < 0 when out of memory. */
static int assemble_batch(ci_scheduler *s, sched_plan *p, cinfer_error *err) {
    int n = 0, rows = 0;
    for (int k = 0; k < p->n; k++) {
        planned *e = &p->e[k];
        const seq *q = e->q;
        s->b_tables[k] = (ci_block_table){.blocks = q->blocks, .n_blocks = q->n_blocks};
        bool plp = plp_pending(q);
        for (int t = 0; t < e->chunk; t++, n++) {
            int pos = q->n_computed + t;
            s->b_tokens[n] = q->tokens[pos];
            s->b_pos[n] = pos;
            s->b_seq[n] = k;
            s->b_want[n] = pos == q->n_tokens - 1 || (plp && pos >= q->plp_next && pos < q->n_prompt - 1);
        }
        e->plp_rows = plp_rows_in(q, q->n_computed, e->chunk);
        e->plp_pos0 = q->n_computed > q->plp_next ? q->n_computed : q->plp_next;
        e->plp_row0 = rows;
        rows += e->plp_rows;
        e->logits_row = q->n_computed + e->chunk == q->n_tokens ? rows++ : -1;
    }
    if (rows > s->logits_rows && grow_logits(s, err) != CINFER_OK) return CINFER_ERR_NOMEM;
    return n;
}

/* The forward pass over the assembled batch; then the computed positions
 * count and the blocks they filled are offered to the prefix cache. */
static int execute(ci_scheduler *s, const sched_plan *p, int n_tokens, cinfer_error *err) {
    if (n_tokens == 0) return CINFER_OK;
    qwen3_batch b = {.n_tokens = n_tokens, .tokens = s->b_tokens, .pos = s->b_pos, .seq = s->b_seq,
                     .want_logits = s->b_want, .n_seqs = p->n, .seq_blocks = s->b_tables};
    int rows = qwen3_forward(s->model, &s->state, &s->kv.pool, &b, s->logits, err);
    if (rows < 0) return rows;
    for (int k = 0; k < p->n; k++) {
        p->e[k].q->n_computed += p->e[k].chunk;
        register_full_blocks(s, p->e[k].q);
    }
    return CINFER_OK;
}

/* --------------------------------------------------------------- update */

static void retire(ci_scheduler *s, seq *q, ci_finish_reason why, int32_t token, const ci_token_event *base) {
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == q) {
            remove_running(s, i);
            break;
        }
    finish(s, q, why, token, base);
}

static inline void mask_clear(uint32_t *m, int32_t id) { m[id >> 5] &= ~(1u << (id & 31)); }
static inline void mask_set(uint32_t *m, int32_t id) { m[id >> 5] |= 1u << (id & 31); }

/* Whether q's output ends with the first n tokens of w. */
static bool output_ends_with(const seq *q, const int32_t *w, int n) {
    if (q->n_tokens - q->n_prompt < n) return false;
    return memcmp(q->tokens + q->n_tokens - n, w, (size_t)n * sizeof *w) == 0;
}

/* The allowed mask of q's next token (scheduler.h) in s->mask; *mask is
 * NULL when every token is allowed. Fails when the constraint's mask
 * cannot be computed. */
static int build_mask(ci_scheduler *s, seq *q, const uint32_t **mask, cinfer_error *err) {
    const ci_request_params *p = &q->params;
    int n_out = q->n_tokens - q->n_prompt, W = s->mask_words;
    bool ban_stops = n_out < p->min_tokens && p->n_stop_ids > 0;
    *mask = NULL;
    if (!cons_active(q) && p->n_allowed_ids == 0 && !ban_stops && p->n_bad_words == 0) return CINFER_OK;
    uint32_t *m = s->mask;
    if (cons_active(q)) {
        memset(m + q->cons_words, 0, (size_t)(W - q->cons_words) * sizeof *m);
        if (ci_cons_fill_mask(q->cons, m, err) != 0) return err ? err->code : CINFER_ERR_LIMIT;
        /* thinking first: the model may open <think> at the first position */
        if (n_out == 0 && p->think_start_id >= 0 && !p->thinking_open) mask_set(m, p->think_start_id);
    } else {
        memset(m, 0xff, (size_t)W * sizeof *m);
    }
    if (p->n_allowed_ids > 0) {
        memset(s->mask2, 0, (size_t)W * sizeof *m);
        for (int i = 0; i < p->n_allowed_ids; i++) mask_set(s->mask2, q->allowed[i]);
        for (int w = 0; w < W; w++) m[w] &= s->mask2[w];
    }
    for (int i = 0; ban_stops && i < p->n_stop_ids; i++) mask_clear(m, q->stop_ids[i]);
    const int32_t *w = q->bad;
    for (int i = 0; i < p->n_bad_words; w += q->bad_lens[i++])
        if (output_ends_with(q, w, q->bad_lens[i] - 1)) mask_clear(m, w[q->bad_lens[i] - 1]);
    *mask = m;
    return CINFER_OK;
}

/* Feeds a sampled token to q's active constraint. false: it was not
 * accepted (cannot happen for a token its mask allowed). */
static bool feed_constraint(seq *q, int32_t tok) {
    if (!cons_active(q)) return true;
    if (tok == q->params.think_start_id && q->n_tokens == q->n_prompt && !q->params.thinking_open) {
        q->cons_waiting = true; /* the model thinks first; the constraint starts with the answer */
        return true;
    }
    return ci_cons_accept_token(q->cons, tok);
}

/* Samples q's next token, reports it and applies the stop rules, forced
 * tokens, the constraint and the thinking budget; retires q when it is
 * done. Returns 1 when a sampled token was appended. */
static int sample_next(ci_scheduler *s, seq *q, const float *logits) {
    const int V = s->model->hp.vocab;
    int n_out = q->n_tokens - q->n_prompt;
    const uint32_t *mask;
    cinfer_error merr = {0};
    int32_t tok = -1;
    if (build_mask(s, q, &mask, &merr) == CINFER_OK) {
        ci_logit_controls ctl = {.bias = q->bias, .n_bias = q->params.n_logit_bias, .mask = mask};
        tok = ci_sample(&s->sampler, &q->params.sampling, &ctl, &q->rng, logits, q->tokens, q->n_prompt,
                        q->tokens + q->n_prompt, n_out);
    }
    ci_token_event ev = {.request_id = q->id, .token = tok, .n_prompt_tokens = q->n_prompt,
                         .n_cached_tokens = q->n_cached};
    ci_finish_reason why;
    if (tok < 0) { /* no mask, or it allows nothing */
        retire(s, q, CI_FINISH_ERROR, -1, &ev);
        return 0;
    }
    if (q->prefix_pending && n_out == 0 && !q->in_thinking && tok != q->params.think_start_id) {
        /* The answer starts at the first position and must begin with the
         * forced prefix: the sampled token gives way to it. */
        if ((why = start_answer(s, q, false, &ev)) != CI_FINISH_NONE) retire(s, q, why, -1, &ev);
        return 0;
    }
    if (!feed_constraint(q, tok)) {
        retire(s, q, CI_FINISH_ERROR, -1, &ev);
        return 0;
    }
    if (q->params.want_logprobs || q->params.top_logprobs > 0) {
        ev.logprob = ci_logprob_of(logits, V, tok);
        ev.n_top = ci_top_logprobs(logits, V, q->params.top_logprobs, ev.top_ids, ev.top_logprobs);
    }
    q->tokens[q->n_tokens++] = tok;
    ev.n_output_tokens = q->n_tokens - q->n_prompt;
    if (is_stop_id(q, tok) || (cons_active(q) && ci_cons_is_terminated(q->cons))) why = CI_FINISH_STOP;
    else if (ev.n_output_tokens >= q->params.max_new_tokens || q->n_tokens >= s->opt.max_model_len) why = CI_FINISH_LENGTH;
    else why = CI_FINISH_NONE;
    if (why != CI_FINISH_NONE) { /* the final event carries the token */
        retire(s, q, why, tok, &ev);
        return 1;
    }
    if (q->cb && q->cb(q->user, &ev)) why = CI_FINISH_STOP;
    else why = track_thinking(s, q, tok, &ev);
    if (why != CI_FINISH_NONE) retire(s, q, why, -1, &ev);
    return 1;
}

/* The update stage (vLLM's update_from_output()): in batch order, reports
 * prompt logprobs, samples where a chunk reached the last token, reports,
 * and retires finished sequences. Returns the number of tokens sampled. */
static uint64_t update_from_output(ci_scheduler *s, const sched_plan *p) {
    uint64_t generated = 0;
    for (int k = 0; k < p->n; k++) {
        const planned *e = &p->e[k];
        if (e->plp_rows > 0) report_prompt_logprobs(s, e);
        if (e->logits_row < 0) continue;
        if (e->q->params.max_new_tokens == 0) /* the prompt was all that was asked for */
            retire(s, e->q, CI_FINISH_LENGTH, -1, NULL);
        else
            generated += (uint64_t)sample_next(s, e->q, s->logits + (size_t)e->logits_row * (size_t)s->model->hp.vocab);
    }
    return generated;
}

/* The step failed (forward pass, or memory for the batch): every sequence
 * of the batch ends with CI_FINISH_ERROR, which frees its blocks. */
static void end_batch(ci_scheduler *s, const sched_plan *p) {
    for (int k = 0; k < p->n; k++) retire(s, p->e[k].q, CI_FINISH_ERROR, -1, NULL);
}

static void end_failed(ci_scheduler *s, sched_plan *p) {
    for (seq *q = p->failed, *n; q; q = n) n = q->next, finish(s, q, CI_FINISH_ERROR, -1, NULL);
    p->failed = NULL;
}

static int publish_stats(ci_scheduler *s, const sched_plan *p, uint64_t generated) {
    int waiting = 0;
    for (seq *q = s->waiting_head; q; q = q->next) waiting++, q->counted_running = false;
    for (int i = 0; i < s->n_running; i++) s->running[i]->counted_running = true;
    pthread_mutex_lock(&s->lock);
    s->stats.running = s->n_running;
    s->stats.waiting = waiting;
    for (seq *q = s->incoming_head; q; q = q->next) s->stats.waiting++;
    s->stats.kv_blocks_free = ci_kv_available(&s->kv);
    s->stats.kv_evictions = s->kv.evictions;
    s->stats.generated_tokens += generated;
    s->stats.preemptions += (uint64_t)p->n_preempted;
    int active = s->stats.running + s->stats.waiting;
    pthread_mutex_unlock(&s->lock);
    return active;
}

/* ----------------------------------------------------------------- step */

int ci_sched_step(ci_scheduler *s, cinfer_error *err) {
    drain_incoming(s);
    sched_plan *p = schedule(s);
    int n_tokens = assemble_batch(s, p, err);
    bool ok = n_tokens >= 0 && execute(s, p, n_tokens, err) == CINFER_OK;
    uint64_t generated = 0;
    if (ok) generated = update_from_output(s, p);
    else end_batch(s, p);
    if (p->failed && ok) ci_error(err, CINFER_ERR_NOMEM, "scheduler: out of memory growing a request's block table");
    end_failed(s, p);
    return publish_stats(s, p, generated);
}
