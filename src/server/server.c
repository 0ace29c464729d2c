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
 *  - the main thread waits for a signal, then shuts down.
 */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------------- scheduler loop */

/* A failed step has already ended the affected requests with
 * CI_FINISH_ERROR (their clients get an error), so the loop never retries
 * it as such: it logs once per run of failures and backs off (up to 1 s)
 * so that a persistent fault cannot spin a core. */
static void *scheduler_main(void *arg) {
    server *s = arg;
    long backoff_ms = 0;
    while (!atomic_load(&s->stopping)) {
        cinfer_error err = {0};
        int active = ci_sched_step(s->sched, &err);
        if (active < 0) {
            if (backoff_ms == 0) fprintf(stderr, "cinfer serve: scheduler step failed: %s\n", err.message);
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2) : 10;
            struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        backoff_ms = 0;
        if (active == 0 && !atomic_load(&s->stopping)) ci_sched_wait_for_work(s->sched);
    }
    return NULL;
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
                                            (uint16_t)o->port, NULL, NULL, srv_handle, s,
                                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                            MHD_OPTION_NOTIFY_COMPLETED, srv_request_done, NULL,
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
    atomic_store(&s->aborting, true); /* in-flight requests end themselves within a wait slice */
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
