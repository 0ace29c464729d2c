/*
 * http.h — the client's HTTP transport on libcurl: one JSON request to an
 * OpenAI-compatible endpoint with timeouts, retries and cancellation.
 *
 * Policy (as the official OpenAI SDKs):
 *  - retried: connection errors, timeouts, HTTP 408, 409, 429 and 5xx, with
 *    exponential backoff (0.5 s doubling to at most 8 s, minus up to 25 %
 *    jitter), or after the server's Retry-After / retry-after-ms when it
 *    asks for at most 60 s; never other 4xx, and never once the sink says
 *    output already reached the caller (a retry would repeat it);
 *  - `timeout` bounds the whole call, retries and waits included; the idle
 *    timeout (streaming only: a non-streamed answer arrives all at the end)
 *    fires when no byte came for that long;
 *  - a cancel flag (set from a signal handler) is polled every 50 ms, also
 *    while waiting to retry;
 *  - HTTPS verifies the peer; an extra CA file is added to the system store,
 *    not substituted for it;
 *  - the API key only ever goes into the Authorization header; verbose
 *    output shows it masked.
 */
#ifndef CINFER_CLIENT_HTTP_H
#define CINFER_CLIENT_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "cinfer.h"
#include "util/util.h"

typedef struct ci_http_client ci_http_client;

typedef struct ci_http_config {
    const char *base_url;    /* "http(s)://host[:port]/prefix", no trailing slash needed */
    const char *api_key;     /* NULL or "": no Authorization header */
    const char *ca_bundle;   /* extra PEM CA file, or NULL */
    double connect_timeout, timeout, idle_timeout; /* seconds, > 0 */
    int max_retries;
    double backoff_initial, backoff_max;           /* seconds; 0: 0.5 and 8 */
    bool verbose;
    const volatile sig_atomic_t *cancel;           /* may be NULL */
} ci_http_config;

/* Where the body of a successful (2xx) response goes. */
typedef struct ci_http_sink {
    /* Body bytes as they arrive; return false to abort the transfer (the
     * sink records why: its own parse error or the caller cancelling). */
    bool (*on_body)(void *user, const char *data, size_t len);
    /* Called before every attempt: forget what an earlier attempt gave. */
    void (*on_attempt)(void *user);
    /* True once output reached the caller: no more retries. */
    bool (*delivered)(void *user);
    void *user;
} ci_http_sink;

typedef enum ci_http_outcome {
    CI_HTTP_COMPLETE,        /* a 2xx response was read to its end */
    CI_HTTP_SINK_STOPPED,    /* on_body returned false */
    CI_HTTP_CANCELLED,       /* the cancel flag was set */
} ci_http_outcome;

ci_http_client *ci_http_open(const ci_http_config *cfg, cinfer_error *err);
void ci_http_close(ci_http_client *c);

/* method "GET" or "POST"; path is appended to the base URL ("/models");
 * body is a JSON text for POST. Returns CINFER_OK with *outcome set, or a
 * negative status with err naming the failure (HTTP status and the server's
 * own error message when it sent one). */
int ci_http_request(ci_http_client *c, const char *method, const char *path, const char *body, bool streaming,
                    const ci_http_sink *sink, ci_http_outcome *outcome, cinfer_error *err);

/* The human-readable message of an OpenAI-style error JSON ({"error":
 * {"message":...}}, {"error":"..."}, {"message":...}, {"detail":...}), made
 * printable, or NULL when the text holds none. Caller frees. */
char *ci_http_error_message(const char *json_text, size_t len);

/* Seconds a Retry-After value asks for (delta-seconds or an HTTP date), or
 * -1 when it is not a valid value. `now` is the current Unix time. */
double ci_http_parse_retry_after(const char *value, long long now);

#endif
