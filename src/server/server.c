/*
 * server.c — `cinfer serve`: an OpenAI-compatible HTTP server (libmicrohttpd).
 *
 * Threads:
 *  - libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION):
 *    a handler may block on its job's condition variable, and a streaming
 *    response's reader blocks until the scheduler produced the next piece.
 *  - one scheduler thread loops ci_sched_step() (one batched forward pass per
 *    iteration over every running request) and sleeps in
 *    ci_sched_wait_for_work() when idle. Its callbacks only append to a
 *    job under the job's mutex and signal it — no I/O on that thread.
 * Disconnects: a waiting handler or reader polls its socket between waits;
 * when the client is gone — or MHD tears the response down — every
 * unfinished choice is cancelled (ci_sched_cancel), which frees its KV
 * blocks at the next scheduler step.
 * Endpoints and request parsing live in api.c; this file owns HTTP, auth,
 * errors and the job life cycle.
 */
#include "server/server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY_BYTES (8u << 20)
#define WAIT_SLICE_MS 200

/* ------------------------------------------------------------------ auth */

bool ci_keys_equal(const char *offered, size_t offered_len, const char *expected) {
    size_t n = strlen(expected);
    /* Constant time in the offered content: always walk the expected key's
     * length and fold the length difference into the result. */
    unsigned char diff = (unsigned char)(offered_len != n);
    for (size_t i = 0; i < n; i++) {
        unsigned char a = i < offered_len ? (unsigned char)offered[i] : 0;
        diff |= (unsigned char)(a ^ (unsigned char)expected[i]);
    }
    return diff == 0;
}

/* ------------------------------------------------------------ responses */

int srv_send(struct MHD_Connection *c, server *s, int status, const char *content_type, const char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", content_type);
    int ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    ci_metrics_count_request(&s->metrics, status);
    return ret;
}

int srv_send_json(struct MHD_Connection *c, server *s, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return srv_send(c, s, 500, "application/json", "{}", 2);
    int ret = srv_send(c, s, status, "application/json", text, strlen(text));
    free(text);
    return ret;
}

int srv_send_error(struct MHD_Connection *c, server *s, int status, const char *param, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 401 ? "invalid_api_key" : status == 404 ? "model_not_found" : NULL;
    json_t *err = json_object();
    /* jansson rejects invalid UTF-8: messages quote client text, so repair it */
    ci_buf m = {0};
    srv_append_utf8_lossy(&m, msg, strlen(msg));
    json_object_set_new(err, "message", json_stringn(m.data ? m.data : "", m.len));
    ci_buf_free(&m);
    json_object_set_new(err, "type", json_string(type));
    json_object_set_new(err, "param", param ? json_string(param) : json_null());
    json_object_set_new(err, "code", code ? json_string(code) : json_null());
    return srv_send_json(c, s, status, json_pack("{s:o}", "error", err));
}

void srv_append_utf8_lossy(ci_buf *out, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = need > 0 && i + need <= n;
        for (size_t k = 1; ok && k < need; k++) ok = (p[i + k] & 0xC0) == 0x80;
        if (ok && need == 2 && c < 0xC2) ok = false;
        if (ok && need == 3) {
            unsigned cp = ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
            if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
        }
        if (ok && need == 4) {
            unsigned cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu);
            if (cp < 0x10000 || cp > 0x10FFFF) ok = false;
        }
        if (ok && c == 0) ok = false; /* NUL would end C strings downstream */
        if (ok) {
            ci_buf_append(out, s + i, need);
            i += need;
        } else {
            ci_buf_append(out, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
}

/* ------------------------------------------------------------------ jobs */

job *srv_job_new(server *s, int n_choices, bool is_chat) {
    job *j = ci_calloc(1, sizeof *j);
    j->srv = s;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->refs = 1;
    j->n_choices = n_choices;
    j->choices_per_prompt = n_choices;
    j->choices = ci_calloc((size_t)n_choices, sizeof *j->choices);
    for (int i = 0; i < n_choices; i++) {
        j->choices[i].job = j;
        j->choices[i].index = i;
    }
    j->is_chat = is_chat;
    j->created = (long long)time(NULL);
    j->t_arrival = ci_now_seconds();
    j->fd = -1;
    uint64_t r[2];
    if (getentropy(r, sizeof r) != 0) r[0] = (uint64_t)(uintptr_t)j, r[1] = (uint64_t)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%016llx%016llx", is_chat ? "chatcmpl" : "cmpl", (unsigned long long)r[0],
             (unsigned long long)r[1]);
    return j;
}

void srv_job_release(job *j) {
    pthread_mutex_lock(&j->lock);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->lock);
    if (!last) return;
    for (int i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        ci_output_free(c->out);
        ci_buf_free(&c->think_new);
        ci_buf_free(&c->content_new);
        ci_buf_free(&c->content_all);
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
    json_decref(j->tools);
    free(j->choices);
    ci_buf_free(&j->sse);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

/* Cancels every submitted, unfinished choice. Caller holds j->lock. */
void srv_job_cancel_locked(job *j) {
    if (j->cancelled) return;
    j->cancelled = true;
    for (int i = 0; i < j->n_choices; i++)
        if (j->choices[i].request_id > 0 && !j->choices[i].done) ci_sched_cancel(j->srv->sched, j->choices[i].request_id);
}

/* True when the peer closed its end (or the socket broke). */
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

/* Waits (job lock held) for a signal or a time slice; returns false when the
 * client went away meanwhile (the job is then cancelled). */
bool srv_job_wait_locked(job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    int rc = pthread_cond_timedwait(&j->cond, &j->lock, &ts);
    if (atomic_load(&j->srv->shutting_down)) {
        srv_job_cancel_locked(j);
        return true; /* the cancellation events finish the job */
    }
    if (rc == ETIMEDOUT && client_gone(j->fd)) {
        srv_job_cancel_locked(j);
        return false;
    }
    return true;
}

static bool is_model_stop_token(const server *s, int32_t t) {
    for (int i = 0; i < s->m->n_stop_ids; i++)
        if (s->m->stop_ids[i] == t) return true;
    return false;
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
        /* a prompt token's logprob (echo): recorded, never generated text */
        int at = ev->prompt_index;
        if (c->prompt_lps && at < c->n_prompt_ids) {
            c->prompt_lps[at] = ev->logprob;
            for (int k = 0; k < j->top_logprobs; k++) {
                size_t t = (size_t)at * (size_t)j->top_logprobs + (size_t)k;
                c->prompt_top_ids[t] = k < ev->n_top ? ev->top_ids[k] : -1;
                c->prompt_top_lps[t] = k < ev->n_top ? ev->top_logprobs[k] : -9999.0f;
            }
            c->n_prompt_lps++;
        }
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->lock);
        return false;
    }
    if (ev->token >= 0) {
        c->n_generated++;
        if (!j->any_token) {
            j->any_token = true;
            ci_metrics_observe(&s->metrics, &s->metrics.ttft, now - j->t_arrival);
        } else if (c->t_last > 0) {
            ci_metrics_observe(&s->metrics, &s->metrics.itl, now - c->t_last);
        }
        c->t_last = now;
        bool stop_id = ev->finish == CI_FINISH_STOP && is_model_stop_token(s, ev->token);
        if (!stop_id) {
            if (c->n_tokens == c->cap_tokens) {
                c->cap_tokens = c->cap_tokens ? c->cap_tokens * 2 : 64;
                c->tokens = ci_realloc_array(c->tokens, (size_t)c->cap_tokens, sizeof *c->tokens);
                if (j->want_logprobs) {
                    c->logprobs = ci_realloc_array(c->logprobs, (size_t)c->cap_tokens, sizeof *c->logprobs);
                    size_t k = (size_t)(j->top_logprobs > 0 ? j->top_logprobs : 1);
                    c->top_ids = ci_realloc_array(c->top_ids, (size_t)c->cap_tokens * k, sizeof *c->top_ids);
                    c->top_lps = ci_realloc_array(c->top_lps, (size_t)c->cap_tokens * k, sizeof *c->top_lps);
                }
            }
            if (j->want_logprobs) {
                c->logprobs[c->n_tokens] = ev->logprob;
                for (int k = 0; k < j->top_logprobs; k++) {
                    size_t at = (size_t)c->n_tokens * (size_t)j->top_logprobs + (size_t)k;
                    c->top_ids[at] = k < ev->n_top ? ev->top_ids[k] : -1;
                    c->top_lps[at] = k < ev->n_top ? ev->top_logprobs[k] : -9999.0f;
                }
            }
            c->tokens[c->n_tokens++] = ev->token;
            size_t before = c->content_new.len;
            stop = ci_output_push(c->out, ev->token, &c->think_new, &c->content_new);
            ci_buf_append(&c->content_all, c->content_new.data + before, c->content_new.len - before);
        }
    }
    if (ev->finish != CI_FINISH_NONE) {
        size_t before = c->content_new.len;
        ci_output_finish(c->out, &c->think_new, &c->content_new);
        if (c->content_new.len > before)
            ci_buf_append(&c->content_all, c->content_new.data + before, c->content_new.len - before);
        c->finish = ev->finish;
        c->n_prompt = ev->n_prompt_tokens;
        c->n_cached = ev->n_cached_tokens;
        c->done = true;
        if (++j->n_done == j->n_choices) ci_metrics_observe(&s->metrics, &s->metrics.e2e, now - j->t_arrival);
        last = true;
    }
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    if (last) srv_job_release(j);
    return stop;
}

/* Submits every choice of a prepared job. On failure the submitted ones are
 * cancelled and the error is returned; the caller still owns its reference. */
int srv_job_submit(job *j, const int32_t *const *prompts, const int *n_prompts, const ci_request_params *params,
                   const ci_output_options *oo, cinfer_error *err) {
    server *s = j->srv;
    for (int i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        ci_output_options o = oo[i];
        c->out = ci_output_new(s->m->tok, &o);
        pthread_mutex_lock(&j->lock);
        j->refs++;
        pthread_mutex_unlock(&j->lock);
        int64_t id = ci_sched_submit(s->sched, prompts[i], n_prompts[i], &params[i], srv_on_token, c, err);
        pthread_mutex_lock(&j->lock);
        if (id < 0) {
            j->refs--;
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

/* --------------------------------------------------------- scheduler loop */

static void *scheduler_main(void *arg) {
    server *s = arg;
    while (!atomic_load(&s->stopping)) {
        cinfer_error err = {0};
        int active = ci_sched_step(s->sched, &err);
        if (active < 0) {
            fprintf(stderr, "cinfer serve: scheduler step failed: %s\n", err.message);
            continue;
        }
        if (active == 0 && !atomic_load(&s->stopping)) ci_sched_wait_for_work(s->sched);
    }
    return NULL;
}

/* ------------------------------------------------------------- dispatch */

typedef struct conn_state {
    ci_buf body;
    bool too_large;
} conn_state;

static bool authorized(struct MHD_Connection *c, const server *s) {
    if (!s->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    return ci_keys_equal(h, strlen(h), s->api_key);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    server *s = cls;
    conn_state *st = *con_cls;
    if (!st) {
        st = ci_calloc(1, sizeof *st);
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size) {
        if (st->body.len + *upload_size > MAX_BODY_BYTES) st->too_large = true;
        else ci_buf_append(&st->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (st->too_large)
        return (enum MHD_Result)srv_send_error(c, s, 413, NULL, "request body exceeds %u bytes", MAX_BODY_BYTES);
    if (strcmp(url, "/health") == 0 || strcmp(url, "/ping") == 0) {
        if (!get && !post) return (enum MHD_Result)srv_send_error(c, s, 405, NULL, "use GET %s", url);
        return (enum MHD_Result)srv_send(c, s, 200, "text/plain", "", 0);
    }
    if (strcmp(url, "/metrics") == 0) {
        ci_sched_stats stats;
        ci_sched_get_stats(s->sched, &stats);
        ci_buf out = {0};
        ci_metrics_render(&s->metrics, &stats, s->model_name, &out);
        int ret = srv_send(c, s, 200, "text/plain; version=0.0.4", out.data ? out.data : "", out.len);
        ci_buf_free(&out);
        return (enum MHD_Result)ret;
    }
    bool v1 = strncmp(url, "/v1/", 4) == 0;
    if (v1 && !authorized(c, s))
        return (enum MHD_Result)srv_send_error(c, s, 401, NULL, "Incorrect or missing API key (send 'Authorization: Bearer KEY')");

    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    srv_request req = {.conn = c, .srv = s, .body = st->body.data ? st->body.data : "", .body_len = st->body.len, .fd = fd};
    if (strcmp(url, "/v1/models") == 0 && get) return (enum MHD_Result)api_models(&req);
    if (strncmp(url, "/v1/models/", 11) == 0 && get) return (enum MHD_Result)api_model_one(&req, url + 11);
    if (strcmp(url, "/v1/chat/completions") == 0 && post) return (enum MHD_Result)api_chat_completions(&req);
    if (strcmp(url, "/v1/completions") == 0 && post) return (enum MHD_Result)api_completions(&req);
    if ((strcmp(url, "/tokenize") == 0 || strcmp(url, "/v1/tokenize") == 0) && post) return (enum MHD_Result)api_tokenize(&req);
    if ((strcmp(url, "/detokenize") == 0 || strcmp(url, "/v1/detokenize") == 0) && post)
        return (enum MHD_Result)api_detokenize(&req);
    if (strcmp(url, "/v1/models") == 0 || strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/v1/completions") == 0 ||
        strcmp(url, "/tokenize") == 0 || strcmp(url, "/detokenize") == 0)
        return (enum MHD_Result)srv_send_error(c, s, 405, NULL, "method %s is not allowed on %s", method, url);
    return (enum MHD_Result)srv_send_error(c, s, 404, NULL, "no route for %s %s", method, url);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code) {
    conn_state *st = *con_cls;
    if (!st) return;
    ci_buf_free(&st->body);
    free(st);
    *con_cls = NULL;
}

static volatile sig_atomic_t g_signalled;
static void on_signal(int sig) { g_signalled = sig; }

int ci_server_run(cinfer_model *m, const ci_server_options *o, cinfer_error *err) {
    int rc;
    if (m->remote || !m->sched) return ci_error(err, CINFER_ERR_INVALID, "serve needs a local model");
    if (!m->tpl) return ci_error(err, CINFER_ERR_INVALID, "the model has no chat template");
    server *s = ci_calloc(1, sizeof *s);
    s->m = m;
    s->sched = m->sched;
    s->model_name = ci_strdup(o->served_model_name);
    s->api_key = o->api_key && *o->api_key ? ci_strdup(o->api_key) : NULL;
    ci_metrics_init(&s->metrics);
    ci_special_set_init(&s->specials, m->tok);
    s->think_start = cinfer_tokenizer_token_id(m->tok, "<think>");
    s->think_end = cinfer_tokenizer_token_id(m->tok, "</think>");
    if (s->think_end >= 0) {
        static const char close_text[] = "\n\n</think>\n\n";
        long n = cinfer_tokenize(m->tok, close_text, sizeof close_text - 1, 0, &s->think_close, NULL);
        s->n_think_close = n > 0 ? (int)n : 0;
    }
    atomic_store(&s->stopping, false);
    atomic_store(&s->shutting_down, false);
    if (pthread_create(&s->sched_thread, NULL, scheduler_main, s) != 0) {
        ci_error(err, CINFER_ERR_NOMEM, "cannot start the scheduler thread");
        goto fail_early;
    }

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    const char *host = o->host ? o->host : "127.0.0.1";
    if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        ci_error(err, CINFER_ERR_INVALID, "--host %s is not an IPv4 address", host);
        goto fail;
    }
    if (strcmp(host, "localhost") == 0) inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                            (uint16_t)o->port, NULL, NULL, handle, s,
                                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                            MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
                                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                                            MHD_OPTION_END);
    if (!d) {
        ci_error(err, CINFER_ERR_IO, "cannot listen on %s:%d (%s)", host, o->port, strerror(errno));
        goto fail;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int port = o->port;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (di && di->port) port = di->port; /* --port 0: the kernel picked one (tests) */
    fprintf(stderr, "cinfer serve: %s as '%s' listening on http://%s:%d/v1\n", cinfer_model_describe(m), s->model_name,
            host, port);
    while (!g_signalled) pause();
    fprintf(stderr, "cinfer serve: shutting down\n");
    atomic_store(&s->shutting_down, true); /* in-flight requests cancel themselves within a wait slice */
    MHD_stop_daemon(d);
    rc = CINFER_OK;
    goto stop_scheduler;
fail:
    rc = err ? err->code : CINFER_ERR_IO;
stop_scheduler:
    atomic_store(&s->stopping, true);
    ci_sched_wakeup(s->sched);
    pthread_join(s->sched_thread, NULL);
    goto release;
fail_early:
    rc = err ? err->code : CINFER_ERR_IO;
release:
    ci_special_set_free(&s->specials);
    ci_metrics_destroy(&s->metrics);
    free(s->think_close);
    free(s->model_name);
    free(s->api_key);
    free(s);
    return rc;
}

void ci_server_disable_prefix_caching(cinfer_model *m) {
    if (m && m->sched) ci_sched_set_prefix_caching(m->sched, false);
}
