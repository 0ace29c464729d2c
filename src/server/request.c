/*
 * request.c — from the internal request (request.h) to a running job and
 * an answer, for every API alike.
 *
 * Checks every prompt against the context (prompt + max_tokens <=
 * max_model_len, as vLLM checks, reporting the real prompt length), applies
 * the thinking controls (a budget, or budget 0 with the thinking already
 * open in the prompt: the close is appended to the prompt), builds one
 * engine request per choice, submits them and then streams or waits. A
 * non-streaming job that failed or was cut by a shutdown is answered with
 * an error; one whose client left is answered 499 (nobody reads it).
 */
#include "server/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_gen_init(srv_gen_request *g, const server *s) {
    memset(g, 0, sizeof *g);
    g->sampling = s->m->defaults;
    g->max_tokens = -1;
    g->n = 1;
    g->thinking_budget = -1;
    g->prompt_param = "prompt";
    g->max_tokens_param = "max_tokens";
}

void srv_gen_free(srv_gen_request *g) {
    for (int i = 0; i < SRV_MAX_PROMPTS; i++) free(g->prompts[i].ids), free(g->prompts[i].text);
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    json_decref(g->tools);
    free(g->forced_prefix);
    if (g->api_ctx && g->api_ctx_free) g->api_ctx_free(g->api_ctx);
    if (g->constraint) ci_cons_grammar_unref(g->constraint);
    free(g->logit_bias);
    free(g->stop_token_ids);
    free(g->bad_words);
    free(g->bad_word_lens);
    free(g->allowed_token_ids);
    memset(g, 0, sizeof *g);
}

bool srv_reasoning_effort(const char *effort, int *thinking, long long *budget) {
    static const struct {
        const char *name;
        int thinking;
        long long budget;
    } E[] = {{"none", 0, -1}, {"minimal", 0, -1}, {"low", 1, 1024}, {"medium", 1, 4096}, {"high", 1, -1}};
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++)
        if (strcmp(effort, E[i].name) == 0) {
            *thinking = E[i].thinking;
            *budget = E[i].budget;
            return true;
        }
    return false;
}

bool srv_gen_add_stop(srv_gen_request *g, const char *s, size_t len, srv_error *e) {
    if (g->n_stop == SRV_MAX_STOP) return srv_fail(e, 400, "stop", "at most %d stop strings", SRV_MAX_STOP);
    if (len > SRV_MAX_STOP_BYTES) return srv_fail(e, 400, "stop", "a stop string is longer than %d bytes", SRV_MAX_STOP_BYTES);
    g->stop[g->n_stop++] = ci_strndup(s, len);
    return true;
}

static bool check_context(const server *s, const srv_gen_request *g, long n_prompt, srv_error *e) {
    int max_len = s->m->max_model_len;
    if (g->max_context > 0 && g->max_context < max_len) max_len = g->max_context;
    if (n_prompt >= max_len)
        return srv_fail(e, 400, g->prompt_param,
                        "This model's maximum context length is %d tokens. However, your prompt has %ld tokens. "
                        "Please reduce the length of the prompt.", max_len, n_prompt);
    if (g->max_tokens >= 0 && (long long)n_prompt + g->max_tokens > max_len)
        return srv_fail(e, 400, g->max_tokens_param,
                        "This model's maximum context length is %d tokens. However, you requested %lld tokens "
                        "(%ld in the prompt, %lld in the completion). Please reduce the length of the prompt or "
                        "completion.", max_len, (long long)n_prompt + g->max_tokens, n_prompt, g->max_tokens);
    return true;
}

/* Thinking controls of one prompt; may append the forced close to it. */
static bool prompt_thinking(const server *s, srv_gen_request *g, srv_prompt *p, long long *budget) {
    *budget = g->thinking_budget;
    if (!g->parse_thinking) return false;
    bool open = ci_prompt_opens_thinking(s->m->tok, p->ids, (int)p->n_ids);
    if (*budget == 0 && open && s->n_think_close > 0) {
        p->ids = ci_realloc_array(p->ids, (size_t)p->n_ids + (size_t)s->n_think_close, sizeof *p->ids);
        memcpy(p->ids + p->n_ids, s->think_close, (size_t)s->n_think_close * sizeof *p->ids);
        p->n_ids += s->n_think_close;
        open = false;
        *budget = -1;
    }
    return open;
}

/* The engine's stop ids: the model's end ids (unless ignore_eos), then
 * stop_token_ids; stops has room for both. Returns the count. */
static int engine_stop_ids(const server *s, const srv_gen_request *g, int32_t *stops) {
    int n = g->ignore_eos ? 0 : s->m->n_stop_ids;
    memcpy(stops, s->m->stop_ids, (size_t)n * sizeof *stops);
    for (int i = 0; i < g->n_stop_token_ids && i < SRV_MAX_STOP_TOKEN_IDS; i++) stops[n++] = g->stop_token_ids[i];
    return n;
}

/* The constraint and the token-level controls into an engine request. */
static void choice_controls(const srv_gen_request *g, ci_request_params *rp) {
    rp->constraint = g->constraint;
    rp->logit_bias = g->logit_bias;
    rp->n_logit_bias = g->n_logit_bias;
    rp->min_tokens = g->min_tokens;
    rp->bad_words = g->bad_words;
    rp->bad_word_lens = g->bad_word_lens;
    rp->n_bad_words = g->n_bad_words;
    rp->allowed_ids = g->allowed_token_ids;
    rp->n_allowed_ids = g->n_allowed_token_ids;
}

/* The engine request and output options of choice k of prompt p; stops:
 * engine_stop_ids(), n_stops of them. */
static void choice_params(const server *s, const srv_gen_request *g, const srv_prompt *p, int k, bool thinking_open,
                          long long budget, const int32_t *stops, int n_stops, ci_request_params *rp,
                          ci_output_options *oo) {
    *rp = (ci_request_params){.sampling = g->sampling, .thinking_budget = -1};
    /* n > 1 with a seed: each choice gets its own reproducible stream */
    if (rp->sampling.has_seed) rp->sampling.seed += (uint64_t)k;
    int max_len = g->max_context > 0 && g->max_context < s->m->max_model_len ? g->max_context : s->m->max_model_len;
    rp->max_new_tokens = g->max_tokens >= 0 ? (int)g->max_tokens : max_len - (int)p->n_ids;
    rp->stop_ids = stops;
    rp->n_stop_ids = n_stops;
    choice_controls(g, rp);
    rp->want_logprobs = g->logprobs;
    rp->top_logprobs = g->top_logprobs;
    rp->want_prompt_logprobs = g->prompt_logprobs && k == 0;
    /* a constraint starts after the thinking (and its close sequence) */
    bool think_ids = g->n_forced_prefix > 0 || (budget >= 0 && s->n_think_close > 0) || g->constraint;
    if (think_ids) {
        rp->thinking_open = thinking_open;
        rp->think_start_id = s->think_start;
        rp->think_end_id = s->think_end;
        rp->forced_close = s->think_close;
        rp->n_forced_close = s->n_think_close;
    }
    /* without thinking (raw completions) the model may not open <think> under a constraint */
    if (g->constraint && !g->parse_thinking) rp->think_start_id = -1;
    /* the answer opens with the call: after the thinking, if any */
    rp->forced_prefix = g->forced_prefix;
    rp->n_forced_prefix = g->n_forced_prefix;
    if (budget >= 0 && s->n_think_close > 0) rp->thinking_budget = (int)(budget > INT32_MAX ? INT32_MAX : budget);
    *oo = (ci_output_options){.stop = (const char *const *)g->stop, .n_stop = g->n_stop, .thinking_open = thinking_open,
                              .parse_thinking = g->parse_thinking, .keep_newlines = g->keep_newlines};
}

/* Echo text and the prompt-logprob arrays of choice c of prompt p. */
static void choice_echo(const srv_gen_request *g, const srv_prompt *p, int k, choice *c) {
    if (!g->echo) return;
    c->echo = ci_strndup(p->text ? p->text : "", p->text_len);
    c->echo_len = p->text_len;
    if (!(g->prompt_logprobs && k == 0)) return;
    size_t np = (size_t)p->n_ids, tk = (size_t)(g->top_logprobs > 0 ? g->top_logprobs : 1);
    c->n_prompt_ids = (int)np;
    c->prompt_ids = ci_malloc(np * sizeof *c->prompt_ids);
    memcpy(c->prompt_ids, p->ids, np * sizeof *c->prompt_ids);
    c->prompt_lps = ci_malloc(np * sizeof *c->prompt_lps);
    for (size_t t = 0; t < np; t++) c->prompt_lps[t] = NAN;
    c->prompt_top_ids = ci_malloc(np * tk * sizeof *c->prompt_top_ids);
    c->prompt_top_lps = ci_malloc(np * tk * sizeof *c->prompt_top_lps);
    for (size_t t = 0; t < np * tk; t++) c->prompt_top_ids[t] = -1, c->prompt_top_lps[t] = CI_LOGPROB_NONE;
}

/* Non-streaming: wait for every choice, then answer. */
static int wait_and_reply(srv_request *r, job *j) {
    pthread_mutex_lock(&j->lock);
    while (j->n_done < j->n_choices && !j->client_gone) srv_job_wait_locked(j);
    bool gone = j->client_gone;
    srv_error fail = j->fail;
    pthread_mutex_unlock(&j->lock);
    int ret;
    if (fail.status) ret = srv_send_error(r, &fail);
    else if (gone) ret = srv_send_errorf(r, 499, NULL, "client closed the request");
    else ret = j->api->reply(r, j);
    srv_job_release(j);
    return ret;
}

/* Builds the job and every choice's engine request; submits. */
static job *submit(srv_request *r, srv_gen_request *g, const srv_api *api, const bool *open, const long long *budget,
                   srv_error *e) {
    server *s = r->srv;
    int n_choices = g->n_prompts * g->n;
    ci_request_params rps[SRV_MAX_CHOICES];
    ci_output_options oos[SRV_MAX_CHOICES];
    const int32_t *prompts[SRV_MAX_CHOICES];
    int n_prompts[SRV_MAX_CHOICES];
    int32_t stops[CI_MODEL_MAX_STOP_IDS + SRV_MAX_STOP_TOKEN_IDS];
    int n_stops = engine_stop_ids(s, g, stops);
    job *j = srv_job_new(s, api, n_choices, g->n);
    for (int i = 0; i < g->n_prompts; i++) {
        const srv_prompt *p = &g->prompts[i];
        for (int k = 0; k < g->n; k++) {
            int c = i * g->n + k;
            choice_params(s, g, p, k, open[i], budget[i], stops, n_stops, &rps[c], &oos[c]);
            choice_echo(g, p, k, &j->choices[c]);
            prompts[c] = p->ids;
            n_prompts[c] = (int)p->n_ids;
        }
    }
    j->stream = g->stream;
    j->include_usage = g->include_usage;
    j->tools_mode = g->tools_mode;
    /* A copy, not a reference: the job may be released last on the scheduler
     * thread while the request's JSON is freed on the connection thread, and
     * jansson's reference counts are not atomic. */
    j->tools = g->tools ? json_deep_copy(g->tools) : NULL;
    j->want_logprobs = g->logprobs;
    j->top_logprobs = g->top_logprobs;
    j->fd = r->fd;
    j->api_ctx = g->api_ctx, j->api_ctx_free = g->api_ctx_free;
    g->api_ctx = NULL, g->api_ctx_free = NULL;
    cinfer_error err = {0};
    if (srv_job_submit(j, prompts, n_prompts, rps, oos, &err) < 0) {
        srv_job_release(j);
        srv_fail(e, 400, NULL, "%s", err.message);
        return NULL;
    }
    return j;
}

/* Reserves places for n choices among the running and queued ones; 503
 * (with Retry-After) when the queue is full or the server is draining. */
static bool admit(server *s, int n, srv_error *e) {
    if (atomic_load(&s->draining)) {
        srv_fail(e, 503, NULL, "the server is shutting down");
        e->code = "server_shutting_down";
        return false;
    }
    int limit = s->opt.max_num_seqs + s->opt.max_queued;
    if (atomic_fetch_add(&s->n_inflight, n) + n <= limit) return true;
    atomic_fetch_sub(&s->n_inflight, n);
    srv_fail(e, 503, NULL, "the server is busy: %d requests are running or queued; retry later", limit);
    e->code = "server_overloaded";
    e->retry_after_s = 1;
    return false;
}

int srv_gen_run(srv_request *r, srv_gen_request *g, const srv_api *api) {
    srv_error e = {0};
    if (g->n_prompts * g->n > SRV_MAX_CHOICES)
        return srv_send_errorf(r, 400, g->prompt_param, "at most %d choices per request", SRV_MAX_CHOICES);
    bool open[SRV_MAX_PROMPTS];
    long long budget[SRV_MAX_PROMPTS];
    for (int i = 0; i < g->n_prompts; i++) {
        /* the real count first; then again with a close appended */
        if (!check_context(r->srv, g, g->prompts[i].n_ids, &e)) return srv_send_error(r, &e);
        open[i] = prompt_thinking(r->srv, g, &g->prompts[i], &budget[i]);
        if (!check_context(r->srv, g, g->prompts[i].n_ids, &e)) return srv_send_error(r, &e);
    }
    if (!admit(r->srv, g->n_prompts * g->n, &e)) return srv_send_error(r, &e);
    job *j = submit(r, g, api, open, budget, &e);
    if (!j) return srv_send_error(r, &e);
    return g->stream ? srv_stream_start(r, j) : wait_and_reply(r, j);
}
