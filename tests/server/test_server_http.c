/*
 * test_server_http.c — `cinfer serve` over real sockets: the server runs
 * in this process (ci_server_run on a thread, the tiny model, one sequence
 * at a time so that a second request queues) and is driven with raw HTTP:
 *  - a client that leaves a non-streaming request, running or queued,
 *    stops it: the scheduler retires it and its KV blocks are free again;
 *  - limits: a declared body over the cap is 413 before any byte of it is
 *    sent, a wrong key is 401 before the body, a full queue is 503 with
 *    Retry-After;
 *  - the admission gate (gate.c): a head over the cap is 431 JSON, chunked
 *    411 JSON, `Content-Length: -5` 400 JSON with one status line, a head
 *    trickled byte by byte 408 JSON at its total deadline; 200 slow
 *    connections from 127.0.0.2 lose their oldest to the per-address cap
 *    and do not stop 127.0.0.1; admitted connections over the per-address
 *    limit are dropped while another address is served;
 *  - errors are OpenAI-shaped JSON: unknown route 404 `not_found`, wrong
 *    method 405 with Allow; an over-long prompt reports its real length;
 *  - SIGTERM: a request that finishes within the shutdown timeout ends
 *    normally; /health turns 503, requests still running when the shutdown
 *    timeout ends get an error (a stream: an `error` event, then [DONE]; a
 *    queued non-streaming request: 503 JSON), and the server returns 0.
 * No sleeps as synchronisation: every wait polls an observable condition
 * (scheduler stats, /health) with a bound.
 * usage: test_server_http MODEL_DIR (a tiny test model)
 */
#include "engine/engine_internal.h"
#include "server/server_internal.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LONG_GEN 16000 /* tokens: far longer than any wait below */

static cinfer_model *g_model;

/* ------------------------------------------------------------ the server */

typedef struct running_server {
    ci_server_options o;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int port, rc;
} running_server;

static void on_listening(void *user, int port) {
    running_server *rs = user;
    pthread_mutex_lock(&rs->lock);
    rs->port = port;
    pthread_cond_broadcast(&rs->cond);
    pthread_mutex_unlock(&rs->lock);
}

static void *server_thread(void *arg) {
    running_server *rs = arg;
    cinfer_error err = {0};
    rs->rc = ci_server_run(g_model, &rs->o, &err);
    if (rs->rc) fprintf(stderr, "server: %s\n", err.message);
    on_listening(rs, -1); /* a start failure must not hang the test */
    return NULL;
}

static void server_start(running_server *rs, ci_server_options o) {
    memset(rs, 0, sizeof *rs);
    rs->o = o;
    rs->o.host = "127.0.0.1";
    rs->o.served_model_name = "tiny";
    rs->o.max_num_seqs = 1;
    rs->o.on_listening = on_listening;
    rs->o.user = rs;
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->cond, NULL);
    pthread_create(&rs->thread, NULL, server_thread, rs);
    pthread_mutex_lock(&rs->lock);
    while (rs->port == 0) pthread_cond_wait(&rs->cond, &rs->lock);
    pthread_mutex_unlock(&rs->lock);
}

static void server_stop(running_server *rs) {
    kill(getpid(), SIGTERM);
    pthread_join(rs->thread, NULL);
    CHECK(rs->rc == 0);
    pthread_mutex_destroy(&rs->lock);
    pthread_cond_destroy(&rs->cond);
}

/* ---------------------------------------------------------------- client */

static int connect_from(const running_server *rs, const char *src) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {60, 0}; /* a safety bound on every read, never a synchronisation */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (src) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &a.sin_addr);
        bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rs->port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_str(int fd, const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w, n -= (size_t)w;
    }
}

/* Reads until the peer closes (or the safety bound). */
static char *read_all(int fd) {
    ci_buf b = {0};
    char tmp[4096];
    ssize_t r;
    while ((r = recv(fd, tmp, sizeof tmp, 0)) > 0) ci_buf_append(&b, tmp, (size_t)r);
    ci_buf_putc(&b, '\0');
    return b.data;
}

/* Reads until `needle` arrived; returns what was read. */
static char *read_until(int fd, const char *needle) {
    ci_buf b = {0};
    char tmp[4096];
    ssize_t r;
    ci_buf_putc(&b, '\0');
    b.len = 0;
    while (!strstr(b.data, needle) && (r = recv(fd, tmp, sizeof tmp, 0)) > 0) {
        ci_buf_append(&b, tmp, (size_t)r);
        ci_buf_putc(&b, '\0');
        b.len--;
    }
    return b.data;
}

static int post(const running_server *rs, const char *path, const char *body, const char *extra_headers) {
    int fd = connect_from(rs, NULL);
    char head[512];
    snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n%s"
             "Content-Length: %zu\r\n\r\n", path, extra_headers ? extra_headers : "", strlen(body));
    send_str(fd, head);
    send_str(fd, body);
    return fd;
}

static char *request(const running_server *rs, const char *raw) {
    int fd = connect_from(rs, NULL);
    send_str(fd, raw);
    char *out = read_all(fd);
    close(fd);
    return out;
}

/* -------------------------------------------------------------- waiting */

typedef bool (*stats_pred)(const ci_sched_stats *st);

/* Polls the scheduler's stats until pred holds (bounded: 60 s). */
static bool wait_stats(stats_pred pred) {
    for (int i = 0; i < 6000; i++) {
        ci_sched_stats st;
        ci_sched_get_stats(g_model->sched, &st);
        if (pred(&st)) return true;
        poll(NULL, 0, 10);
    }
    return false;
}

static bool one_running(const ci_sched_stats *st) { return st->running == 1 && st->kv_blocks_free < st->kv_blocks_total; }
static bool one_waiting(const ci_sched_stats *st) { return st->running == 1 && st->waiting == 1; }
static bool none_waiting(const ci_sched_stats *st) { return st->running == 1 && st->waiting == 0; }
static bool idle(const ci_sched_stats *st) {
    return st->running == 0 && st->waiting == 0 && st->kv_blocks_free == st->kv_blocks_total;
}

static const char *long_request(bool stream) {
    static char buf[256];
    snprintf(buf, sizeof buf, "{\"prompt\": \"Tell a long story\", \"max_tokens\": %d, \"temperature\": 0, "
             "\"ignore_eos\": true, \"stream\": %s}", LONG_GEN, stream ? "true" : "false");
    return buf;
}

/* ----------------------------------------------------------------- tests */

static void test_disconnect(void) {
    running_server rs;
    server_start(&rs, (ci_server_options){0});
    ci_sched_stats before;
    ci_sched_get_stats(g_model->sched, &before);
    /* running, non-streaming: the client leaves, the request stops */
    int a = post(&rs, "/v1/completions", long_request(false), NULL);
    CHECK(wait_stats(one_running));
    /* queued behind it: the client leaves, the request leaves the queue */
    int b = post(&rs, "/v1/completions", long_request(false), NULL);
    CHECK(wait_stats(one_waiting));
    close(b);
    CHECK(wait_stats(none_waiting));
    close(a);
    CHECK(wait_stats(idle));
    ci_sched_stats after;
    ci_sched_get_stats(g_model->sched, &after);
    CHECK_MSG(after.generated_tokens - before.generated_tokens < LONG_GEN, "generated %llu",
              (unsigned long long)(after.generated_tokens - before.generated_tokens));
    server_stop(&rs);
}

static void test_limits(void) {
    running_server rs;
    server_start(&rs, (ci_server_options){.api_key = "k", .max_queued = 1});
    /* 413 and 401 from the headers alone: no body byte is ever sent */
    char *r = request(&rs, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\n"
                           "Content-Length: 100000000\r\n\r\n");
    CHECK_MSG(strncmp(r, "HTTP/1.1 413", 12) == 0 && strstr(r, "\"code\":\"request_too_large\""), "%s", r);
    free(r);
    r = request(&rs, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    CHECK_MSG(strncmp(r, "HTTP/1.1 401", 12) == 0 && strstr(r, "\"type\":\"authentication_error\""), "%s", r);
    free(r);
    /* an over-long prompt is reported with its real length */
    ci_buf ids = {0};
    ci_buf_puts(&ids, "{\"prompt\": [1");
    for (int i = 1; i < 20000; i++) ci_buf_puts(&ids, ",1");
    ci_buf_puts(&ids, "]}");
    int p = post(&rs, "/v1/completions", ids.data, "Authorization: Bearer k\r\n");
    ci_buf_free(&ids);
    r = read_all(p);
    close(p);
    CHECK_MSG(strncmp(r, "HTTP/1.1 400", 12) == 0 && strstr(r, "your prompt has 20000 tokens"), "%s", r);
    free(r);
    /* routes: 404 not_found, 405 with Allow */
    r = request(&rs, "GET /v1/nothing HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n");
    CHECK_MSG(strncmp(r, "HTTP/1.1 404", 12) == 0 && strstr(r, "\"code\":\"not_found\""), "%s", r);
    free(r);
    r = request(&rs, "GET /v1/tokenize HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n");
    CHECK_MSG(strncmp(r, "HTTP/1.1 405", 12) == 0 && strstr(r, "Allow: POST\r\n") && strstr(r, "\"error\""), "%s", r);
    free(r);
    /* the queue holds one: the third request is 503 with Retry-After */
    int a = post(&rs, "/v1/completions", long_request(false), "Authorization: Bearer k\r\n");
    CHECK(wait_stats(one_running));
    int b = post(&rs, "/v1/completions", long_request(false), "Authorization: Bearer k\r\n");
    CHECK(wait_stats(one_waiting));
    int c = post(&rs, "/v1/completions", long_request(false), "Authorization: Bearer k\r\n");
    r = read_all(c);
    CHECK_MSG(strncmp(r, "HTTP/1.1 503", 12) == 0 && strstr(r, "Retry-After: 1\r\n") && strstr(r, "\"error\""), "%s", r);
    free(r);
    close(c);
    close(b);
    close(a);
    CHECK(wait_stats(idle));
    server_stop(&rs);
}

/* ------------------------------------------------------------ the gate */

/* An OpenAI-shaped JSON error with `status` (and `code` unless NULL), one
 * status line, Connection: close. */
static bool json_error(const char *r, int status, const char *code) {
    char line[32];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    if (strncmp(r, line, strlen(line)) != 0 || !strstr(r, "Content-Type: application/json\r\n")) return false;
    int lines = 0;
    for (const char *p = r; (p = strstr(p, "HTTP/1.")) != NULL; p++) lines += p == r || p[-1] == '\n';
    const char *body = strstr(r, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    bool ok = lines == 1 && json_is_string(json_object_get(e, "message")) && json_is_string(json_object_get(e, "type")) &&
              (!code || (json_is_string(json_object_get(e, "code")) && strcmp(json_string_value(json_object_get(e, "code")), code) == 0));
    json_decref(j);
    return ok;
}

/* Errors libmicrohttpd would answer in HTML come from the gate as JSON. */
static void test_gate_errors(void) {
    running_server rs;
    server_start(&rs, (ci_server_options){.header_timeout_s = 1});
    /* a head over the cap (16 KiB): 431 */
    ci_buf big = {0};
    ci_buf_puts(&big, "GET /health HTTP/1.1\r\nHost: t\r\nX-Filler: ");
    for (int i = 0; i < 64 * 1024; i++) ci_buf_putc(&big, 'a');
    ci_buf_puts(&big, "\r\n\r\n");
    char *r = request(&rs, big.data);
    CHECK_MSG(json_error(r, 431, "request_header_fields_too_large"), "%.300s", r);
    free(r);
    ci_buf_free(&big);
    /* a head just under the cap, in 99 header lines: the gate admits it and
     * libmicrohttpd (its memory sized from the cap) parses it */
    ci_buf near = {0};
    ci_buf_puts(&near, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (int i = 0; i < 97; i++) {
        ci_buf_printf(&near, "X-H%02d: ", i);
        for (int k = 0; k < 150; k++) ci_buf_putc(&near, 'b');
        ci_buf_puts(&near, "\r\n");
    }
    ci_buf_puts(&near, "\r\n");
    CHECK(near.len > 15000 && near.len < 16 * 1024);
    r = request(&rs, near.data);
    CHECK_MSG(strncmp(r, "HTTP/1.1 200", 12) == 0, "%.300s", r);
    free(r);
    ci_buf_free(&near);
    /* chunked: 411 (clients of this API send Content-Length) */
    r = request(&rs, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "ZZZZ\r\n{}\r\n0\r\n\r\n");
    CHECK_MSG(json_error(r, 411, "length_required"), "%s", r);
    free(r);
    /* an invalid Content-Length: 400 with exactly one status line (read to the close) */
    r = request(&rs, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n");
    CHECK_MSG(json_error(r, 400, NULL), "%s", r);
    free(r);
    r = request(&rs, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}");
    CHECK_MSG(json_error(r, 400, NULL), "%s", r);
    free(r);
    /* a head trickled byte by byte is answered 408 at its total deadline,
     * while bytes still arrive (an idle timeout would never fire) */
    ci_buf slow = {0};
    ci_buf_puts(&slow, "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    for (int i = 0; i < 200; i++) ci_buf_putc(&slow, 's');
    ci_buf_puts(&slow, "\r\n\r\n");
    int fd = connect_from(&rs, NULL);
    size_t sent = 0;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    /* the pacing of the client's input, not a synchronisation: 50 ms a byte */
    while (sent < slow.len && poll(&pf, 1, 50) == 0) send(fd, slow.data + sent++, 1, MSG_NOSIGNAL);
    CHECK_MSG(sent < slow.len, "the whole head went out (%zu bytes) without an answer", sent);
    r = read_all(fd);
    CHECK_MSG(json_error(r, 408, "request_timeout"), "%s", r);
    free(r);
    close(fd);
    ci_buf_free(&slow);
    server_stop(&rs);
}

/* Slow connections wait in the gate (no thread each): a flood from one
 * address ages out its own oldest ones and does not stop another address. */
static void test_gate_flood(void) {
    enum { N_SLOW = 200, PER_IP = 50 };
    running_server rs;
    server_start(&rs, (ci_server_options){.header_timeout_s = 120, .max_pending_per_ip = PER_IP,
                                          .max_connections_per_ip = 4});
    int slow[N_SLOW];
    for (int i = 0; i < N_SLOW; i++) {
        slow[i] = connect_from(&rs, "127.0.0.2");
        CHECK(slow[i] >= 0);
        send_str(slow[i], "GET /health HTTP/1.1\r\nHo");
    }
    /* accepted after all of them (one FIFO backlog): answered */
    char *r = request(&rs, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    CHECK_MSG(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    free(r);
    /* the oldest were closed without an answer, the newest PER_IP still wait */
    for (int i = 0; i < N_SLOW - PER_IP; i++) {
        r = read_all(slow[i]);
        CHECK_MSG(r[0] == '\0', "slow connection %d: %s", i, r);
        free(r);
    }
    for (int i = N_SLOW - PER_IP; i < N_SLOW; i++) {
        struct pollfd pf = {.fd = slow[i], .events = POLLIN};
        CHECK_MSG(poll(&pf, 1, 0) == 0, "slow connection %d was closed", i);
    }
    for (int i = 0; i < N_SLOW; i++) close(slow[i]);
    /* admitted connections per address (libmicrohttpd's limit, 4): four
     * answered keep-alive connections from 127.0.0.1 ... */
    int kept[4];
    for (int i = 0; i < 4; i++) {
        kept[i] = connect_from(&rs, "127.0.0.1");
        send_str(kept[i], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        r = read_until(kept[i], "\r\n\r\n");
        CHECK_MSG(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
        free(r);
    }
    /* ... a fifth one from there is dropped, another address is served */
    int fifth = connect_from(&rs, "127.0.0.1");
    send_str(fifth, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    r = read_all(fifth);
    CHECK_MSG(r[0] == '\0', "%s", r);
    free(r);
    close(fifth);
    int other = connect_from(&rs, "127.0.0.3");
    send_str(other, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    r = read_all(other);
    CHECK_MSG(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    free(r);
    close(other);
    for (int i = 0; i < 4; i++) close(kept[i]);
    server_stop(&rs);
}

static bool draining(running_server *rs) {
    for (int i = 0; i < 6000; i++) {
        char *r = request(rs, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        bool is503 = strncmp(r, "HTTP/1.1 503", 12) == 0;
        free(r);
        if (is503) return true;
        poll(NULL, 0, 10);
    }
    return false;
}

/* A request that finishes within the shutdown timeout ends normally. */
static void test_shutdown_finishes(void) {
    running_server rs;
    server_start(&rs, (ci_server_options){0});
    int s = post(&rs, "/v1/completions", "{\"prompt\": \"Hi\", \"max_tokens\": 8, \"ignore_eos\": true, "
                                         "\"stream\": true}", NULL);
    char *head = read_until(s, "data: ");
    CHECK(strncmp(head, "HTTP/1.1 200", 12) == 0);
    free(head);
    kill(getpid(), SIGTERM);
    char *body = read_all(s);
    CHECK_MSG(strstr(body, "\"finish_reason\":\"length\"") && strstr(body, "data: [DONE]\n\n") &&
              !strstr(body, "event: error"), "%s", body);
    free(body);
    close(s);
    pthread_join(rs.thread, NULL);
    CHECK(rs.rc == 0);
}

static void test_shutdown(void) {
    running_server rs;
    server_start(&rs, (ci_server_options){.shutdown_timeout_s = 4} /* its last 1 s: the delivery margin */);
    int s = post(&rs, "/v1/completions", long_request(true), NULL);
    char *head = read_until(s, "data: ");
    CHECK(strncmp(head, "HTTP/1.1 200", 12) == 0);
    free(head);
    CHECK(wait_stats(one_running));
    int n = post(&rs, "/v1/completions", long_request(false), NULL);
    CHECK(wait_stats(one_waiting));
    kill(getpid(), SIGTERM);
    CHECK(draining(&rs));
    char *body = read_all(s);
    size_t len = strlen(body);
    /* (chunked transfer encoding: the last chunk "0" follows) */
    const char *ev = strstr(body, "event: error\ndata: {\"error\":");
    CHECK_MSG(ev != NULL, "%s", body + (len > 400 ? len - 400 : 0));
    const char *done = ev ? strstr(ev, "data: [DONE]\n\n") : NULL;
    CHECK(done != NULL && strcmp(done + 14, "\r\n0\r\n\r\n") == 0);
    free(body);
    body = read_all(n);
    CHECK_MSG(strncmp(body, "HTTP/1.1 503", 12) == 0 && strstr(body, "\"code\":\"server_shutting_down\""), "%s", body);
    free(body);
    close(s);
    close(n);
    pthread_join(rs.thread, NULL);
    CHECK(rs.rc == 0);
    CHECK(wait_stats(idle));
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_server_http MODEL_DIR\n");
        return 2;
    }
    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.n_threads = 1;
    mo.max_num_seqs = 1;
    mo.max_model_len = LONG_GEN + 64;
    mo.kv_cache_gib = 0.05;
    cinfer_error err = {0};
    g_model = cinfer_model_load(argv[1], &mo, &err);
    if (!g_model) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], err.message);
        return 1;
    }
    test_disconnect();
    test_limits();
    test_gate_errors();
    test_gate_flood();
    test_shutdown_finishes();
    test_shutdown();
    cinfer_model_free(g_model);
    TEST_MAIN_END();
}
