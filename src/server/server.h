/*
 * server.h — shared state of `cinfer serve` between the HTTP layer
 * (http.c, server.c), the request model (request.c, job.c, stream.c) and
 * the API adapters (openai_*.c, responses.c, anthropic.c, ollama.c, endpoints.c). Internal to src/server.
 *
 * The layers, from the socket inwards:
 *   gate.c     accepts; holds each connection (no thread) until its first
 *              request head is complete and checked, then hands it to MHD;
 *   http.c     libmicrohttpd glue: connection limits, body cap, auth, the
 *              route table (dispatch, 404, 405 with Allow), error bodies;
 *   adapters   one file per HTTP API: parse a body into the one internal
 *              request (request.h) and render the job's events into that
 *              API's JSON body or stream (openai_chat.c, openai_completions.c,
 *              responses.c, anthropic.c, ollama.c);
 *   request.c  checks a request against the model and submits it as a job;
 *   job.c      the job: engine callbacks → per-choice events (deltas,
 *              tokens, finish), cancellation, waiting;
 *   stream.c   the streamed response (adapter events → MHD) and SSE framing.
 *   cors.c     CORS: allowed origins, preflight answers.
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
    atomic_int n_requests;       /* HTTP requests whose answer is not yet sent (shutdown waits for 0) */
    atomic_int n_inflight;       /* submitted choices not yet finished (queue bound) */
    atomic_bool draining;        /* first signal: new work and /health get 503 */
    atomic_bool aborting;        /* shutdown timeout: running jobs end with an error */
    atomic_bool stopping;        /* HTTP is down: the scheduler thread exits */
    int wake_fd[2];              /* self-pipe: signals and job releases wake the main thread */
    void *conns;                 /* http.c: per-address connection counts */
    long long started;           /* Unix time the model was loaded: /v1/models `created` */
    char fingerprint[32];        /* system_fingerprint: version, model and context */
    char **origins;              /* CORS: allowed origins ("*" = any); NULL: none */
    int n_origins;
    struct srv_response_store *responses; /* stored Responses (responses_store.c) */
} server;

/* One error answer: OpenAI's {"error": {message, type, param, code}}. */
typedef struct srv_error {
    int status;
    const char *code;            /* NULL: derived from the status */
    int retry_after_s;           /* > 0: a Retry-After header (503) */
    char param[64];
    char msg[768];
} srv_error;

/* The error body shape of an API, chosen by the route: OpenAI's
 * {"error": {message, type, param, code}}, Anthropic's {"type": "error",
 * "error": {type, message}} or Ollama's {"error": "message"}. */
typedef enum srv_shape { SRV_SHAPE_OPENAI, SRV_SHAPE_ANTHROPIC, SRV_SHAPE_OLLAMA } srv_shape;

/* Records an error; returns false so parsers can `return srv_fail(...)`. */
bool srv_fail(srv_error *e, int status, const char *param, const char *fmt, ...) CI_PRINTF(4, 5);
/* The error object of OpenAI's shape (type and default code by status). */
json_t *srv_error_json(const srv_error *e);
/* The error body in an API's shape. */
json_t *srv_error_json_shaped(const srv_error *e, srv_shape shape);

typedef struct srv_request {
    struct MHD_Connection *conn;
    server *srv;
    const char *url;
    const char *body;
    size_t body_len;
    int fd;
    const char *method;
    srv_shape shape;             /* how errors are written (the route's API) */
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
/* Every key of obj must be in `known` (NULL-terminated): an unknown or
 * unsupported field is a 400 naming it (param "where.key"), never ignored. */
bool srv_check_fields(json_t *obj, const char *const *known, const char *where, srv_error *e);
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
int api_version(srv_request *r);
int api_chat_completions(srv_request *r);
int api_completions(srv_request *r);
/* OpenAI Responses (responses.c) */
int api_responses_create(srv_request *r);
int api_responses_item(srv_request *r);   /* GET/DELETE /v1/responses/{id}, POST .../cancel, GET .../input_items */
/* Anthropic Messages (anthropic.c) */
int api_anthropic_messages(srv_request *r);
int api_anthropic_count_tokens(srv_request *r);
/* Ollama (ollama.c) */
int api_ollama_chat(srv_request *r);
int api_ollama_generate(srv_request *r);
int api_ollama_tags(srv_request *r);
int api_ollama_show(srv_request *r);
int api_ollama_ps(srv_request *r);
int api_ollama_version(srv_request *r);
int api_ollama_embed(srv_request *r);

/* ------------------------------------------------------ response store */

/* Stored Responses (responses_store.c), for GET /v1/responses/{id} and
 * previous_response_id: in memory, thread-safe, bounded by an entry count
 * and a byte total, least recently used entries evicted first. */
typedef struct srv_response_store srv_response_store;
#define SRV_RESPONSES_MAX_ENTRIES 4096
#define SRV_RESPONSES_MAX_BYTES ((size_t)64 << 20)

srv_response_store *srv_response_store_new(int max_entries, size_t max_bytes);
void srv_response_store_free(srv_response_store *st);
/* Stores copies of a response and of the conversation that led to it
 * (replacing an entry of the same id); evicts beyond the limits. False
 * when the entry alone exceeds the byte limit (then nothing is stored). */
bool srv_response_store_put(srv_response_store *st, const char *id, const char *response, const char *history);
/* Copies of an entry's texts (caller frees; either out may be NULL) and
 * marks it used. False when the id is unknown (or was evicted). */
bool srv_response_store_get(srv_response_store *st, const char *id, char **response, char **history);
bool srv_response_store_delete(srv_response_store *st, const char *id);

/* --------------------------------------------------------------- CORS */

/* Parses --allowed-origins ("*", "a,b" or a JSON list) into s->origins. */
void srv_cors_init(server *s, const char *spec);
void srv_cors_free(server *s);
/* Adds Access-Control-Allow-Origin (+ Vary: Origin) when the request's
 * Origin is allowed. */
void srv_cors_headers(const srv_request *r, struct MHD_Response *resp);
/* Answers a preflight (OPTIONS): 204 with the allowed methods and headers. */
int srv_cors_preflight(srv_request *r);

#endif
