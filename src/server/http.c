/*
 * http.c — the HTTP side of `cinfer serve` (libmicrohttpd): responses and
 * error bodies, authentication, request bodies, and the one route table
 * that serves dispatch, 405 answers (with Allow) and 404s.
 */
#include "server/server.h"
#include "server/webui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ responses */

int srv_queue(srv_request *r, int status, struct MHD_Response *resp) {
    srv_cors_headers(r, resp);
    int ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    ci_metrics_count_request(&r->srv->metrics, status);
    return ret;
}

int srv_send(srv_request *r, int status, const char *content_type, const char *body, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    return srv_queue(r, status, resp);
}

int srv_send_json(srv_request *r, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return srv_send(r, 500, "application/json", "{}", 2);
    int ret = srv_send(r, status, "application/json", text, strlen(text));
    free(text);
    return ret;
}

int srv_send_error(srv_request *r, const srv_error *e) {
    json_t *body = srv_error_json_shaped(e, r->shape);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return srv_send(r, 500, "application/json", "{}", 2);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) return free(text), MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (e->retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", e->retry_after_s);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    return srv_queue(r, e->status, resp);
}

int srv_send_errorf(srv_request *r, int status, const char *param, const char *fmt, ...) {
    srv_error e = {.status = status};
    snprintf(e.param, sizeof e.param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    return srv_send_error(r, &e);
}

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

/* `Authorization: Bearer KEY` (OpenAI, Ollama clients) or `x-api-key: KEY`
 * (Anthropic clients), on every protected route alike. */
static bool authorized(struct MHD_Connection *c, const server *s) {
    if (!s->api_key) return true;
    const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
    if (x && ci_keys_equal(x, strlen(x), s->api_key)) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    return ci_keys_equal(h, strlen(h), s->api_key);
}

/* The API key protects the generating APIs: /v1/ and Ollama's /api/ paths. */
static bool protected_path(const char *url) { return strncmp(url, "/v1/", 4) == 0 || strncmp(url, "/api/", 5) == 0; }

/* --------------------------------------------------------------- routes */

typedef struct route {
    const char *method;
    const char *path;
    bool prefix;                 /* path is a prefix ("/v1/models/NAME") */
    int (*fn)(srv_request *r);
    srv_shape shape;             /* the API's error shape */
} route;

#define OAI SRV_SHAPE_OPENAI
#define ANT SRV_SHAPE_ANTHROPIC
#define OLL SRV_SHAPE_OLLAMA
static const route ROUTES[] = {
    {"GET", "/", false, api_webui, OAI},  /* the chat page and its assets (webui.c) */
    {"GET", "/app.js", false, api_webui, OAI},
    {"GET", "/app.css", false, api_webui, OAI},
    {"GET", "/favicon.svg", false, api_webui, OAI},
    {"GET", "/health", false, api_health, OAI},
    {"POST", "/health", false, api_health, OAI},
    {"GET", "/ping", false, api_health, OAI},
    {"POST", "/ping", false, api_health, OAI},
    {"GET", "/metrics", false, api_metrics, OAI},
    {"GET", "/version", false, api_version, OAI},
    {"GET", "/v1/models", false, api_models, OAI},
    {"GET", "/v1/models/", true, api_model_one, OAI},
    {"POST", "/v1/chat/completions", false, api_chat_completions, OAI},
    {"POST", "/v1/completions", false, api_completions, OAI},
    {"POST", "/v1/responses", false, api_responses_create, OAI},
    {"GET", "/v1/responses/", true, api_responses_item, OAI},
    {"DELETE", "/v1/responses/", true, api_responses_item, OAI},
    {"POST", "/v1/responses/", true, api_responses_item, OAI},
    {"POST", "/v1/messages", false, api_anthropic_messages, ANT},
    {"POST", "/v1/messages/count_tokens", false, api_anthropic_count_tokens, ANT},
    {"POST", "/api/chat", false, api_ollama_chat, OLL},
    {"POST", "/api/generate", false, api_ollama_generate, OLL},
    {"GET", "/api/tags", false, api_ollama_tags, OLL},
    {"POST", "/api/show", false, api_ollama_show, OLL},
    {"GET", "/api/ps", false, api_ollama_ps, OLL},
    {"GET", "/api/version", false, api_ollama_version, OLL},
    {"POST", "/api/embed", false, api_ollama_embed, OLL},
    {"POST", "/api/embeddings", false, api_ollama_embed, OLL},
    {"POST", "/tokenize", false, api_tokenize, OAI},
    {"POST", "/v1/tokenize", false, api_tokenize, OAI},
    {"POST", "/detokenize", false, api_detokenize, OAI},
    {"POST", "/v1/detokenize", false, api_detokenize, OAI},
};
#undef OAI
#undef ANT
#undef OLL
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

static bool path_matches(const route *rt, const char *url) {
    return rt->prefix ? strncmp(url, rt->path, strlen(rt->path)) == 0 && url[strlen(rt->path)] : strcmp(url, rt->path) == 0;
}

/* The route for (method, url); NULL with *allow listing the methods the
 * path takes ("" when no route has the path). */
static const route *find_route(const char *method, const char *url, char *allow, size_t allow_size) {
    allow[0] = '\0';
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (!path_matches(&ROUTES[i], url)) continue;
        if (strcmp(ROUTES[i].method, method) == 0) return &ROUTES[i];
        if (!strstr(allow, ROUTES[i].method)) {
            size_t n = strlen(allow);
            snprintf(allow + n, allow_size - n, "%s%s", n ? ", " : "", ROUTES[i].method);
        }
    }
    return NULL;
}

/* The error shape of a path: its routes', else by prefix (unknown /api/
 * paths answer as Ollama, unknown /v1/messages* as Anthropic). */
static srv_shape path_shape(const char *url) {
    for (size_t i = 0; i < N_ROUTES; i++)
        if (path_matches(&ROUTES[i], url)) return ROUTES[i].shape;
    if (strncmp(url, "/api/", 5) == 0) return SRV_SHAPE_OLLAMA;
    if (strncmp(url, "/v1/messages", 12) == 0) return SRV_SHAPE_ANTHROPIC;
    return SRV_SHAPE_OPENAI;
}

static int method_not_allowed(srv_request *r, const char *method, const char *allow) {
    srv_error e = {.status = 405};
    snprintf(e.msg, sizeof e.msg, "method %s is not allowed on %s (allowed: %s)", method, r->url, allow);
    json_t *body = srv_error_json_shaped(&e, r->shape);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Allow", allow);
    return srv_queue(r, 405, resp);
}

static int dispatch(srv_request *r, const char *method) {
    char allow[64];
    const route *rt = find_route(method, r->url, allow, sizeof allow);
    if (rt) return rt->fn(r);
    if (allow[0]) return method_not_allowed(r, method, allow);
    return srv_send_errorf(r, 404, NULL, "Invalid URL (%s %s): no such route", method, r->url);
}

/* ------------------------------------------------------------- requests */

typedef struct conn_state {
    ci_buf body;
    bool too_large;
    bool answered;               /* answered before the body was read */
} conn_state;

/* Connections start with the short header timeout (a client that trickles
 * its headers — slowloris — is dropped); srv_handle switches to the idle
 * timeout once the headers are complete, so streams are never cut by it. */
void srv_connection_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe) {
    (void)socket_context;
    server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->opt.header_timeout_s);
}

/* What can be answered from the headers alone, before any body byte is
 * read: a wrong key, a declared body over the cap. Returns -1 otherwise. */
static int answer_from_headers(srv_request *r) {
    server *s = r->srv;
    /* a preflight carries no credentials (browsers never send them) */
    if (strcmp(r->method, "OPTIONS") == 0) return srv_cors_preflight(r);
    if (protected_path(r->url) && !authorized(r->conn, s))
        return srv_send_errorf(r, 401, NULL,
                               "Incorrect or missing API key (send 'Authorization: Bearer KEY' or 'x-api-key: KEY')");
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->opt.max_body_bytes)
        return srv_send_errorf(r, 413, NULL, "request body exceeds %u bytes", s->opt.max_body_bytes);
    return -1;
}

static srv_request make_request(server *s, struct MHD_Connection *c, const char *url, const char *method,
                                const conn_state *st) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return (srv_request){.conn = c, .srv = s, .url = url, .body = st && st->body.data ? st->body.data : "",
                         .body_len = st ? st->body.len : 0, .fd = ci ? ci->connect_fd : -1, .method = method,
                         .shape = path_shape(url)};
}

enum MHD_Result srv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                           const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    conn_state *st = *con_cls;
    if (!st) { /* the headers are complete */
        st = ci_calloc(1, sizeof *st);
        *con_cls = st;
        atomic_fetch_add(&s->n_requests, 1);
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->opt.idle_timeout_s);
        srv_request r = make_request(s, c, url, method, NULL);
        int ret = answer_from_headers(&r);
        if (ret >= 0) st->answered = true;
        return ret >= 0 ? (enum MHD_Result)ret : MHD_YES;
    }
    if (*upload_size) {
        /* a chunked body (no Content-Length) over the cap is read and
         * dropped, then answered 413: MHD 0.9.75 refuses a response queued
         * while the upload runs (it closes the connection instead) */
        if (!st->answered && st->body.len + *upload_size <= s->opt.max_body_bytes)
            ci_buf_append(&st->body, upload_data, *upload_size);
        else
            st->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (st->answered) return MHD_YES;
    if (st->too_large) {
        srv_request r = make_request(s, c, url, method, NULL);
        return (enum MHD_Result)srv_send_errorf(&r, 413, NULL, "request body exceeds %u bytes", s->opt.max_body_bytes);
    }
    srv_request r = make_request(s, c, url, method, st);
    return (enum MHD_Result)dispatch(&r, method);
}

void srv_request_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode code) {
    (void)c, (void)code;
    server *s = cls;
    conn_state *st = *con_cls;
    if (!st) return;
    ci_buf_free(&st->body);
    free(st);
    *con_cls = NULL;
    /* The answer is out: a draining main thread may stop HTTP once none is left. */
    if (atomic_fetch_sub(&s->n_requests, 1) == 1 && atomic_load(&s->draining)) {
        char b = 'r';
        ssize_t w = write(s->wake_fd[1], &b, 1);
        (void)w;
    }
}
