/*
 * server.c — `cinfer serve`: an OpenAI-compatible HTTP server (libmicrohttpd);
 * this file starts and stops it (server.h lists the layers).
 *
 * Threads:
 *  - libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION):
 *    a handler may block on its job's condition variable, and a streaming
 *    response's reader blocks until the scheduler produced the next piece.
 *  - one scheduler thread loops ci_sched_step() (one batched forward pass per
 *    iteration over every running request) and sleeps in
 *    ci_sched_wait_for_work() when idle. Its callbacks only append to a
 *    job under the job's mutex and signal it — no I/O on that thread.
 *  - the main thread waits for a signal, then shuts down gracefully:
 *    new work and /health get 503, running requests get
 *    --shutdown-timeout (less a delivery margin) to finish and are then
 *    ended with an error (an error event and [DONE] for streams, an error
 *    JSON otherwise); a second signal exits at once.
 *  - the admission gate's thread (gate.c) accepts connections and holds
 *    each until its first request head is complete, then hands it to
 *    libmicrohttpd, which runs without a listening socket of its own.
 */
#include "server/server.h"
#include "server/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------------- scheduler loop */

/* ci_sched_step never fails as a whole: a failed forward pass has already
 * ended the requests of that batch with CI_FINISH_ERROR (their clients get
 * an error) and freed their blocks, so the loop only logs and goes on. */
static void *scheduler_main(void *arg) {
    server *s = arg;
    while (!atomic_load(&s->stopping)) {
        cinfer_error err = {0};
        int active = ci_sched_step(s->sched, &err);
        if (err.code != CINFER_OK) fprintf(stderr, "cinfer serve: a batch failed: %s\n", err.message);
        if (active == 0 && !atomic_load(&s->stopping)) ci_sched_wait_for_work(s->sched);
    }
    return NULL;
}

/* ------------------------------------------------------------- signals */

/* The first SIGTERM/SIGINT starts a graceful shutdown; a second one exits
 * at once. The handler only writes to the server's self-pipe (async-signal
 * safe); the main thread does the rest. */
/* Lock-free atomic: written by the handler, read by the serving thread. */
static atomic_int g_signals;
static int g_wake_fd = -1;

static void on_signal(int sig) {
    (void)sig;
    if (atomic_fetch_add(&g_signals, 1) > 0) _exit(128 + sig);
    char b = 's';
    ssize_t w = write(g_wake_fd, &b, 1);
    (void)w;
}

/* Waits until the pipe has a byte or timeout_ms passed (< 0: forever). */
static void wait_wake(server *s, long timeout_ms) {
    struct pollfd p = {.fd = s->wake_fd[0], .events = POLLIN};
    if (poll(&p, 1, timeout_ms < 0 ? -1 : (int)timeout_ms) > 0) {
        char b[64];
        ssize_t r = read(s->wake_fd[0], b, sizeof b);
        (void)r;
    }
}

/* Waits until every job was released and every answer sent, or `seconds` passed. */
static void wait_jobs(server *s, double seconds) {
    double end = ci_now_seconds() + seconds;
    for (;;) {
        double left = end - ci_now_seconds();
        if ((atomic_load(&s->n_jobs) == 0 && atomic_load(&s->n_requests) == 0) || left <= 0) return;
        wait_wake(s, (long)(left * 1000) + 1);
    }
}

/* What the drain leaves for ending the requests still running after it:
 * a waiting handler notices the abort within one wait slice (200 ms,
 * job.c), writes its error answer and is released; the rest is HTTP's
 * teardown. Capped at a quarter of a short timeout. */
#define DELIVERY_MARGIN_S 1.0

/* Graceful shutdown: new work and /health get 503 while running requests
 * have shutdown_timeout_s to finish. Whatever still runs at the timeout
 * minus the delivery margin ends with an error, so that the answers are out
 * and the process exits within shutdown_timeout_s. */
static void shutdown_gracefully(server *s) {
    atomic_store(&s->draining, true);
    int n = atomic_load(&s->n_jobs);
    double timeout = s->opt.shutdown_timeout_s;
    double margin = DELIVERY_MARGIN_S < timeout / 4 ? DELIVERY_MARGIN_S : timeout / 4;
    fprintf(stderr, "cinfer serve: shutting down: %d request(s) running, waiting up to %g s\n", n, timeout);
    wait_jobs(s, timeout - margin);
    if (atomic_load(&s->n_jobs) == 0 && atomic_load(&s->n_requests) == 0) return;
    fprintf(stderr, "cinfer serve: ending %d request(s) with an error\n", atomic_load(&s->n_jobs));
    atomic_store(&s->aborting, true);
    wait_jobs(s, margin);
}

/* -------------------------------------------------------------- startup */

static void resolve_options(ci_server_options *o) {
    if (o->shutdown_timeout_s <= 0) o->shutdown_timeout_s = CINFER_DEFAULTS.server.shutdown_timeout_s;
    if (o->max_connections <= 0) o->max_connections = CINFER_DEFAULTS.server.max_connections;
    if (o->max_connections_per_ip <= 0) o->max_connections_per_ip = CINFER_DEFAULTS.server.max_connections_per_ip;
    if (o->max_pending <= 0) o->max_pending = CINFER_DEFAULTS.server.max_pending;
    if (o->max_pending_per_ip <= 0) o->max_pending_per_ip = CINFER_DEFAULTS.server.max_pending_per_ip;
    if (o->max_header_bytes < 256) o->max_header_bytes = CINFER_DEFAULTS.server.max_header_bytes;
    if (o->header_timeout_s <= 0) o->header_timeout_s = CINFER_DEFAULTS.server.header_timeout_s;
    if (o->idle_timeout_s <= 0) o->idle_timeout_s = CINFER_DEFAULTS.server.idle_timeout_s;
    if (o->max_queued <= 0) o->max_queued = CINFER_DEFAULTS.server.max_waiting;
    if (o->max_body_bytes == 0) o->max_body_bytes = CINFER_DEFAULTS.server.max_body_bytes;
    if (o->max_num_seqs <= 0) o->max_num_seqs = 1;
}

static server *server_new(cinfer_model *m, const ci_server_options *o) {
    server *s = ci_calloc(1, sizeof *s);
    s->m = m;
    s->sched = m->sched;
    s->opt = *o;
    resolve_options(&s->opt);
    s->model_name = ci_strdup(o->served_model_name);
    s->api_key = o->api_key && *o->api_key ? ci_strdup(o->api_key) : NULL;
    ci_metrics_init(&s->metrics);
    ci_special_set_init(&s->specials, m->tok);
    cinfer_tokenizer_thinking_ids(m->tok, &s->think_start, &s->think_end);
    if (s->think_end >= 0) {
        static const char close_text[] = "\n\n</think>\n\n";
        long n = cinfer_tokenize(m->tok, close_text, sizeof close_text - 1, 0, &s->think_close, NULL);
        s->n_think_close = n > 0 ? (int)n : 0;
    }
    s->wake_fd[0] = s->wake_fd[1] = -1;
    s->started = (long long)time(NULL);
    /* system_fingerprint: changes when the build, the model or its context do */
    uint64_t h = 1469598103934665603ULL;
    char key[512];
    snprintf(key, sizeof key, "%s|%s|%s|%d", CINFER_VERSION, cinfer_model_describe(m), s->model_name, m->max_model_len);
    for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(s->fingerprint, sizeof s->fingerprint, "fp_%012llx", (unsigned long long)(h >> 16));
    srv_cors_init(s, o->allowed_origins);
    s->responses = srv_response_store_new(SRV_RESPONSES_MAX_ENTRIES, SRV_RESPONSES_MAX_BYTES);
    return s;
}

static void server_free(server *s) {
    srv_response_store_free(s->responses);
    srv_cors_free(s);
    ci_special_set_free(&s->specials);
    ci_metrics_destroy(&s->metrics);
    for (int i = 0; i < 2; i++)
        if (s->wake_fd[i] >= 0) close(s->wake_fd[i]);
    free(s->think_close);
    free(s->model_name);
    free(s->api_key);
    free(s);
}

/* HTTP: libmicrohttpd without a listening socket of its own, one thread per
 * admitted connection, behind the admission gate (gate.c), which accepts,
 * waits for each first request head without a thread and answers the
 * malformed, oversized and slow ones itself. */
static struct MHD_Daemon *start_http(server *s, srv_gate **gate_out, cinfer_error *err) {
    const ci_server_options *o = &s->opt;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    const char *host = o->host ? o->host : "127.0.0.1";
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    if (strcmp(host, "0.0.0.0") != 0 && inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return ci_error(err, CINFER_ERR_INVALID, "--host %s is not an IPv4 address", host), NULL;
    srv_gate *gate = srv_gate_open(s, &addr, err);
    if (!gate) return NULL;
    /* MHD_USE_POLL: admitted sockets may be numbered beyond select's 1024 */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_NO_LISTEN_SOCKET |
            MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, NULL, NULL, srv_handle, s, MHD_OPTION_NOTIFY_COMPLETED, srv_request_done, s, MHD_OPTION_NOTIFY_CONNECTION,
        srv_connection_notify, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)o->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv_gate_mhd_memory_limit(o->max_header_bytes),
        MHD_OPTION_END);
    if (!d || srv_gate_start(gate, d, err) != CINFER_OK) {
        if (!d) ci_error(err, CINFER_ERR_IO, "cannot start libmicrohttpd (%s)", strerror(errno));
        srv_gate_close(gate);
        if (d) MHD_stop_daemon(d);
        return NULL;
    }
    int port = srv_gate_port(gate); /* --port 0: the kernel picked one (tests) */
    fprintf(stderr, "cinfer serve: %s as '%s' listening on http://%s:%d/v1\n", cinfer_model_describe(s->m),
            s->model_name, host, port);
    if (o->on_listening) o->on_listening(o->user, port);
    *gate_out = gate;
    return d;
}

static int start_signals(server *s, cinfer_error *err) {
    if (pipe(s->wake_fd) != 0) return ci_error(err, CINFER_ERR_IO, "cannot create a pipe (%s)", strerror(errno));
    for (int i = 0; i < 2; i++) fcntl(s->wake_fd[i], F_SETFL, fcntl(s->wake_fd[i], F_GETFL) | O_NONBLOCK);
    atomic_store(&g_signals, 0);
    g_wake_fd = s->wake_fd[1];
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int ci_server_run(cinfer_model *m, const ci_server_options *o, cinfer_error *err) {
    if (m->remote || !m->sched) return ci_error(err, CINFER_ERR_INVALID, "serve needs a local model");
    if (!m->tpl) return ci_error(err, CINFER_ERR_INVALID, "the model has no chat template");
    server *s = server_new(m, o);
    int rc = start_signals(s, err);
    if (rc != 0) {
        server_free(s);
        return rc;
    }
    if (pthread_create(&s->sched_thread, NULL, scheduler_main, s) != 0) {
        server_free(s);
        return ci_error(err, CINFER_ERR_NOMEM, "cannot start the scheduler thread");
    }
    srv_gate *gate = NULL;
    struct MHD_Daemon *d = start_http(s, &gate, err);
    if (d) {
        while (atomic_load(&g_signals) == 0) wait_wake(s, -1);
        shutdown_gracefully(s);
        srv_gate_close(gate);
        MHD_stop_daemon(d);
    }
    rc = d ? CINFER_OK : (err ? err->code : CINFER_ERR_IO);
    atomic_store(&s->stopping, true);
    ci_sched_wakeup(s->sched);
    pthread_join(s->sched_thread, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    g_wake_fd = -1;
    server_free(s);
    return rc;
}

void ci_server_disable_prefix_caching(cinfer_model *m) {
    if (m && m->sched) ci_sched_set_prefix_caching(m->sched, false);
}
