/*
 * job.c — jobs: engine callbacks in, per-choice events out (see job.h).
 *
 * The scheduler thread only records and signals (no I/O on it). Waiting
 * connection threads check their client on every wake-up, at most every
 * DISCONNECT_CHECK_MS: tokens wake a waiter far more often than the wait's
 * time slice runs out, so checking only on timeouts would miss a client
 * that left a busy request (it would generate to the end).
 */
#include "server/job.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_SLICE_MS 200
#define DISCONNECT_CHECK_MS 20

job *srv_job_new(server *s, const srv_api *api, int n_choices, int choices_per_prompt) {
    job *j = ci_calloc(1, sizeof *j);
    j->srv = s;
    j->api = api;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->refs = 1;
    j->n_choices = n_choices;
    j->choices_per_prompt = choices_per_prompt;
    j->choices = ci_calloc((size_t)n_choices, sizeof *j->choices);
    for (int i = 0; i < n_choices; i++) {
        j->choices[i].job = j;
        j->choices[i].index = i;
    }
    j->created = (long long)time(NULL);
    j->t_arrival = ci_now_seconds();
    j->fd = -1;
    uint64_t r[2];
    if (getentropy(r, sizeof r) != 0) r[0] = (uint64_t)(uintptr_t)j, r[1] = (uint64_t)time(NULL);
    snprintf(j->id, sizeof j->id, "%s%016llx%016llx", api->id_prefix, (unsigned long long)r[0], (unsigned long long)r[1]);
    atomic_fetch_add(&s->n_jobs, 1);
    return j;
}

static void choice_free(choice *c) {
    ci_output_free(c->out);
    free(c->tokens);
    free(c->logprobs);
    free(c->top_ids);
    free(c->top_lps);
    free(c->echo);
    free(c->prompt_ids);
    free(c->prompt_lps);
    free(c->prompt_top_ids);
    free(c->prompt_top_lps);
}

void srv_job_release(job *j) {
    pthread_mutex_lock(&j->lock);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->lock);
    if (!last) return;
    server *s = j->srv;
    for (int i = 0; i < j->n_choices; i++) choice_free(&j->choices[i]);
    json_decref(j->tools);
    if (j->api_ctx && j->api_ctx_free) j->api_ctx_free(j->api_ctx);
    free(j->choices);
    ci_buf_free(&j->out);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
    atomic_fetch_sub(&s->n_jobs, 1);
    if (atomic_load(&s->draining)) { /* the main thread waits for the last job */
        char b = 'j';
        ssize_t w = write(s->wake_fd[1], &b, 1);
        (void)w;
    }
}

void srv_job_cancel_locked(job *j) {
    if (j->cancelled) return;
    j->cancelled = true;
    for (int i = 0; i < j->n_choices; i++)
        if (j->choices[i].request_id > 0 && !j->choices[i].done) ci_sched_cancel(j->srv->sched, j->choices[i].request_id);
    pthread_cond_broadcast(&j->cond);
}

void srv_job_fail_locked(job *j, int status, const char *msg) {
    if (!j->fail.status) {
        srv_fail(&j->fail, status, NULL, "%s", msg);
        if (status == 503) j->fail.code = "server_shutting_down";
    }
    srv_job_cancel_locked(j);
}

/* True when the peer closed its end (or the socket broke). A half-closed
 * client (FIN after its request) counts as gone, as nginx counts it
 * (proxy_ignore_client_abort off): a FIN and a full close look the same to
 * the reader, and a client that left must not hold KV blocks. */
static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
    if (p.revents & POLLIN) {
        char b;
        ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0) return true;
    }
    return false;
}

bool srv_job_wait_locked(job *j) {
    server *s = j->srv;
    if (atomic_load(&s->aborting) && !j->fail.status)
        srv_job_fail_locked(j, 503, "the server is shutting down; the request was not finished in time");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&j->cond, &j->lock, &ts);
    double now = ci_now_seconds();
    if (j->client_gone) return false;
    if (now - j->t_checked < DISCONNECT_CHECK_MS * 1e-3) return true;
    j->t_checked = now;
    if (!client_gone(j->fd)) return true;
    j->client_gone = true;
    srv_job_cancel_locked(j);
    return false;
}

static bool is_model_stop_token(const server *s, int32_t t) {
    for (int i = 0; i < s->m->n_stop_ids; i++)
        if (s->m->stop_ids[i] == t) return true;
    return false;
}

static void copy_top(const job *j, const ci_token_event *ev, int32_t *ids, float *lps) {
    for (int k = 0; k < j->top_logprobs; k++) {
        ids[k] = k < ev->n_top ? ev->top_ids[k] : -1;
        lps[k] = k < ev->n_top ? ev->top_logprobs[k] : CI_LOGPROB_NONE;
    }
}

/* A prompt token's logprob (echo): recorded, never generated text. */
static void record_prompt_logprob(job *j, choice *c, const ci_token_event *ev) {
    int at = ev->prompt_index;
    if (!c->prompt_lps || at >= c->n_prompt_ids) return;
    c->prompt_lps[at] = ev->logprob;
    size_t base = (size_t)at * (size_t)j->top_logprobs;
    copy_top(j, ev, c->prompt_top_ids + base, c->prompt_top_lps + base);
    c->n_prompt_lps++;
}

/* A visible generated token: kept with its logprobs, fed to the splitter. */
static bool record_token(job *j, choice *c, const ci_token_event *ev) {
    if (c->n_tokens == c->cap_tokens) {
        c->cap_tokens = c->cap_tokens ? c->cap_tokens * 2 : 64;
        c->tokens = ci_realloc_array(c->tokens, (size_t)c->cap_tokens, sizeof *c->tokens);
        if (j->want_logprobs) {
            size_t k = (size_t)(j->top_logprobs > 0 ? j->top_logprobs : 1);
            c->logprobs = ci_realloc_array(c->logprobs, (size_t)c->cap_tokens, sizeof *c->logprobs);
            c->top_ids = ci_realloc_array(c->top_ids, (size_t)c->cap_tokens * k, sizeof *c->top_ids);
            c->top_lps = ci_realloc_array(c->top_lps, (size_t)c->cap_tokens * k, sizeof *c->top_lps);
        }
    }
    if (j->want_logprobs) {
        c->logprobs[c->n_tokens] = ev->logprob;
        size_t base = (size_t)c->n_tokens * (size_t)j->top_logprobs;
        copy_top(j, ev, c->top_ids + base, c->top_lps + base);
    }
    c->tokens[c->n_tokens++] = ev->token;
    return ci_output_push(c->out, ev->token, NULL, NULL);
}

static void observe_token(server *s, job *j, choice *c, double now) {
    if (!j->any_token) {
        j->any_token = true;
        j->t_first_token = now;
        ci_metrics_observe(&s->metrics, &s->metrics.ttft, now - j->t_arrival);
    } else if (c->t_last > 0) {
        ci_metrics_observe(&s->metrics, &s->metrics.itl, now - c->t_last);
    }
    c->t_last = now;
}

/* Scheduler-thread callback: record, split, signal. */
bool srv_on_token(void *user, const ci_token_event *ev) {
    choice *c = user;
    job *j = c->job;
    server *s = j->srv;
    bool stop = false, last = false;
    double now = ci_now_seconds();
    pthread_mutex_lock(&j->lock);
    if (ev->prompt_index > 0) {
        record_prompt_logprob(j, c, ev);
    } else {
        if (ev->token >= 0) {
            c->n_generated++;
            observe_token(s, j, c, now);
            if (!(ev->finish == CI_FINISH_STOP && is_model_stop_token(s, ev->token))) stop = record_token(j, c, ev);
        }
        if (ev->finish != CI_FINISH_NONE) {
            ci_output_finish(c->out, NULL, NULL);
            c->finish = ev->finish;
            c->n_prompt = ev->n_prompt_tokens;
            c->n_cached = ev->n_cached_tokens;
            c->done = true;
            atomic_fetch_sub(&s->n_inflight, 1);
            ci_metrics_count_finish(&s->metrics, (int)ev->finish);
            if (++j->n_done == j->n_choices) {
                j->t_done = now;
                ci_metrics_observe(&s->metrics, &s->metrics.e2e, now - j->t_arrival);
            }
            if (ev->finish == CI_FINISH_ERROR) srv_job_fail_locked(j, 500, "the engine failed while generating this request");
            last = true;
        }
    }
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    if (last) srv_job_release(j);
    return stop;
}

int srv_job_submit(job *j, const int32_t *const *prompts, const int *n_prompts, const ci_request_params *params,
                   const ci_output_options *oo, cinfer_error *err) {
    server *s = j->srv;
    for (int i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        c->out = ci_output_new(s->m->tok, &oo[i]);
        c->n_prompt = n_prompts[i];
        pthread_mutex_lock(&j->lock);
        j->refs++;
        pthread_mutex_unlock(&j->lock);
        int64_t id = ci_sched_submit(s->sched, prompts[i], n_prompts[i], &params[i], srv_on_token, c, err);
        pthread_mutex_lock(&j->lock);
        if (id < 0) {
            j->refs--;
            atomic_fetch_sub(&s->n_inflight, j->n_choices - i); /* their reservation (srv_gen_run) */
            /* choices never submitted count as done so waiters do not hang */
            for (int k = i; k < j->n_choices; k++) {
                j->choices[k].done = true;
                j->choices[k].finish = CI_FINISH_ERROR;
                j->n_done++;
            }
            srv_job_cancel_locked(j);
            pthread_mutex_unlock(&j->lock);
            return (int)id;
        }
        c->request_id = id;
        /* a cancel that raced with this submission */
        if (j->cancelled) ci_sched_cancel(s->sched, id);
        pthread_mutex_unlock(&j->lock);
    }
    return 0;
}

/* ------------------------------------------------------------- events */

/* Length of the longest prefix of s[0..n) that ends on a UTF-8 character boundary. */
static size_t utf8_complete(const char *s, size_t n) {
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead < 0x80 ? 1 : (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : (lead >> 3) == 30 ? 4 : 1;
    return (n - (i - 1) >= need) ? n : i - 1;
}

/* How much of the content may be shown while tool calls are possible:
 * nothing from "<tool_call>" on, nor a tail that could start it. */
static size_t tool_safe_len(const char *s, size_t n) {
    static const char tag[] = "<tool_call>";
    const size_t tl = sizeof tag - 1;
    const char *hit = memmem(s, n, tag, tl);
    if (hit) return (size_t)(hit - s);
    for (size_t k = tl - 1; k > 0; k--)
        if (k <= n && memcmp(s + n - k, tag, k) == 0) return n - k;
    return n;
}

json_t *srv_choice_tool_calls(job *j, const choice *c, size_t *visible) {
    size_t len = 0;
    const char *content = c->out ? ci_output_content(c->out, &len) : "";
    *visible = len;
    if (j->tools_mode == TOOLS_OFF) return NULL;
    json_t *calls = ci_parse_tool_calls(content, len, visible);
    if (!calls && j->tools_mode != TOOLS_AUTO) calls = ci_parse_forced_tool_call(content, len, j->tools, visible);
    return calls;
}

bool srv_choice_take(job *j, int i, srv_delta *d) {
    choice *c = &j->choices[i];
    *d = (srv_delta){.tok_from = c->n_tokens_taken, .tok_to = c->n_tokens, .last = c->done};
    size_t tl = 0, cl = 0;
    const char *think = c->out ? ci_output_thinking(c->out, &tl) : "";
    const char *content = c->out ? ci_output_content(c->out, &cl) : "";
    size_t think_end = c->done ? tl : utf8_complete(think, tl);
    size_t content_end = cl;
    if (c->done) {
        if (j->tools_mode != TOOLS_OFF) d->tool_calls = srv_choice_tool_calls(j, c, &content_end);
    } else {
        if (j->tools_mode != TOOLS_OFF) content_end = tool_safe_len(content, cl);
        content_end = utf8_complete(content, content_end);
    }
    if (think_end > c->think_taken) {
        d->think = think + c->think_taken;
        d->think_len = think_end - c->think_taken;
        c->think_taken = think_end;
    }
    if (content_end > c->content_taken) {
        d->content = content + c->content_taken;
        d->content_len = content_end - c->content_taken;
        c->content_taken = content_end;
    }
    c->n_tokens_taken = c->n_tokens;
    return d->last || d->think_len || d->content_len || d->tok_to > d->tok_from;
}

choice *srv_prompt_source(job *j, const choice *c) {
    return &j->choices[c->index / j->choices_per_prompt * j->choices_per_prompt];
}

bool srv_prompt_logprobs_ready(job *j, const choice *c) {
    const choice *src = srv_prompt_source(j, c);
    return src->done || src->n_prompt_lps >= src->n_prompt_ids - 1;
}

int srv_choice_reasoning_tokens(const job *j, const choice *c) {
    size_t tl = 0;
    if (!c->out || !ci_output_thinking(c->out, &tl) || tl == 0) return 0;
    /* the thinking ends with </think> (generated or forced); cut inside it: all */
    for (int t = 0; t < c->n_tokens; t++)
        if (c->tokens[t] == j->srv->think_end) return t + 1;
    return c->n_tokens;
}
