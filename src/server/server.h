/*
 * server.h — shared state of `cinfer serve` between the HTTP layer
 * (http.c, server.c), the request model (request.c, job.c, stream.c) and
 * the API adapters (openai_*.c, endpoints.c). Internal to src/server.
 *
 * The layers, from the socket inwards:
 *   gate.c     accepts; holds each connection (no thread) until its first
 *              request head is complete and checked, then hands it to MHD;
 *   http.c     libmicrohttpd glue: connection limits, body cap, auth, the
 *              route table (dispatch, 404, 405 with Allow), error bodies;
 *   adapters   one file per HTTP API: parse a body into the one internal
 *              request (request.h) and render the job's events into that
 *              API's JSON body or stream (openai_chat.c, openai_completions.c);
 *   request.c  checks a request against the model and submits it as a job;
 *   job.c      the job: engine callbacks → per-choice events (deltas,
 *              tokens, finish), cancellation, waiting;
 *   stream.c   the streamed response (adapter events → MHD) and SSE framing.
 */
#ifndef CINFER_SERVER_SERVER_H
#define CINFER_SERVER_SERVER_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "engine/engine_internal.h"
#include "server/server_internal.h"

typedef struct server {
    cinfer_model *m;
    ci_scheduler *sched;
    ci_server_options opt;       /* defaults filled in (ci_server_options_resolve) */
    char *model_name;
    char *api_key;
    ci_special_set specials;
    ci_metrics metrics;
    int32_t think_start, think_end;
    int32_t *think_close;        /* ids of "\n\n</think>\n\n" (forced at the thinking budget) */
    int n_think_close;
    pthread_t sched_thread;
    atomic_int n_jobs;           /* jobs not yet released (shutdown waits for 0) */
    atomic_int n_inflight;       /* submitted choices not yet finished (queue bound) */
    atomic_bool draining;        /* first signal: new work and /health get 503 */
    atomic_bool aborting;        /* shutdown timeout: running jobs end with an error */
    atomic_bool stopping;        /* HTTP is down: the scheduler thread exits */
    int wake_fd[2];              /* self-pipe: signals and job releases wake the main thread */
    void *conns;                 /* http.c: per-address connection counts */
} server;

/* One error answer: OpenAI's {"error": {message, type, param, code}}. */
typedef struct srv_error {
    int status;
    const char *code;            /* NULL: derived from the status */
    int retry_after_s;           /* > 0: a Retry-After header (503) */
    char param[64];
    char msg[768];
} srv_error;

/* Records an error; returns false so parsers can `return srv_fail(...)`. */
bool srv_fail(srv_error *e, int status, const char *param, const char *fmt, ...) CI_PRINTF(4, 5);
/* The error object of OpenAI's shape (type and default code by status). */
json_t *srv_error_json(const srv_error *e);

typedef struct srv_request {
    struct MHD_Connection *conn;
    server *srv;
    const char *url;
    const char *body;
    size_t body_len;
    int fd;
} srv_request;

int srv_send(srv_request *r, int status, const char *content_type, const char *body, size_t len);
int srv_send_json(srv_request *r, int status, json_t *body); /* steals body */
int srv_send_error(srv_request *r, const srv_error *e);
int srv_send_errorf(srv_request *r, int status, const char *param, const char *fmt, ...) CI_PRINTF(4, 5);
/* Counts a response in the metrics and queues it (headers already set). */
int srv_queue(srv_request *r, int status, struct MHD_Response *resp);

/* ---------------------------------------------------------- JSON helpers */

void srv_append_utf8_lossy(ci_buf *out, const char *s, size_t n);
/* A JSON string of n bytes, invalid UTF-8 replaced by U+FFFD. */
json_t *srv_json_text(const char *s, size_t n);
/* The body as a JSON object (400 otherwise). */
json_t *srv_parse_body(const srv_request *r, srv_error *e);
/* Optional fields: absent or null leave *out (and *set false). */
bool srv_opt_number(json_t *obj, const char *key, double lo, double hi, double *out, bool *set, srv_error *e);
bool srv_opt_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, bool *set, srv_error *e);
bool srv_opt_bool(json_t *obj, const char *key, bool *out, srv_error *e);
/* 'model', when given, must name the served model (404 otherwise). */
bool srv_check_model(const server *s, json_t *req, srv_error *e);
/* Token ids from a JSON array, each in [0, vocab). */
long srv_read_token_ids(const server *s, json_t *a, const char *param, int32_t **ids, srv_error *e);

/* -------------------------------------------------------------- routes */

/* libmicrohttpd callbacks (http.c) */
enum MHD_Result srv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                           const char *upload_data, size_t *upload_size, void **con_cls);
void srv_request_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code);
void srv_connection_notify(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode toe);

int api_health(srv_request *r);
int api_metrics(srv_request *r);
int api_models(srv_request *r);
int api_model_one(srv_request *r);
int api_tokenize(srv_request *r);
int api_detokenize(srv_request *r);
int api_chat_completions(srv_request *r);
int api_completions(srv_request *r);

#endif
