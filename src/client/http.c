/*
 * http.c — libcurl transport; the policy is described in http.h.
 *
 * Each attempt drives one easy handle through a multi handle with
 * curl_multi_poll() in 50 ms slices, so the loop itself can enforce the idle
 * timeout (time since the last byte) and notice the cancel flag promptly,
 * without relying on curl's once-a-second progress callback. The easy handle
 * is kept between requests so keep-alive connections are reused.
 */
#include "client/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/client_util.h"

#define ERROR_BODY_MAX (64u << 10)  /* error responses kept for the message */
#define CA_FILE_MAX (16u << 20)
#define RETRY_AFTER_MAX 60.0        /* longer waits than this fall back to backoff */
#define POLL_SLICE_MS 50

struct ci_http_client {
    char *base_url;
    char *auth_header;   /* "Authorization: Bearer ..." — never printed */
    char key_mask[48];
    char *ca_blob;       /* system CAs + the extra file, PEM */
    size_t ca_blob_len;
    ci_http_config cfg;
    CURL *easy;
    CURLM *multi;
    pthread_mutex_t lock; /* one request at a time per client */
};

/* Per-attempt state shared with the curl callbacks. */
typedef struct attempt {
    ci_http_client *c;
    const ci_http_sink *sink;
    long status;
    double last_byte;
    bool sink_stopped;
    ci_buf error_body;
    double retry_after;  /* seconds, < 0: none */
} attempt;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* --------------------------------------------------------------- helpers */

double ci_http_parse_retry_after(const char *value, long long now) {
    while (*value == ' ' || *value == '\t') value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        double s = strtod(value, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
        return *end == '\0' && s >= 0 ? s : -1;
    }
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t)-1) return -1;
    double d = (double)((long long)when - now);
    return d < 0 ? 0 : d;
}

static const char *json_str(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

char *ci_http_error_message(const char *text, size_t len) {
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    if (!root) return NULL;
    const char *msg = NULL;
    json_t *e = json_object_get(root, "error");
    if (json_is_object(e)) msg = json_str(e, "message");
    else if (json_is_string(e)) msg = json_string_value(e);
    if (!msg) msg = json_str(root, "message");
    if (!msg) msg = json_str(root, "detail");
    char *out = NULL;
    if (msg) {
        char buf[400];
        ci_printable_excerpt(msg, strlen(msg), 300, buf, sizeof buf);
        out = ci_strdup(buf);
    }
    json_decref(root);
    return out;
}

/* The URL without user:password@ (it goes into error messages). */
static void redacted_url(const char *url, char *out, size_t size) {
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *slash = strchr(host, '/');
    const char *at = memchr(host, '@', slash ? (size_t)(slash - host) : strlen(host));
    if (at) snprintf(out, size, "%.*s***@%s", (int)(host - url), url, at + 1);
    else snprintf(out, size, "%s", url);
}

/* ------------------------------------------------------------- lifecycle */

/* Reads the extra CA file and prepends the system bundle, so that the file
 * adds trust instead of replacing it (CURLOPT_CAINFO alone would replace). */
static int load_ca_blob(ci_http_client *c, cinfer_error *err) {
    size_t extra_len;
    char *extra = ci_read_file(c->cfg.ca_bundle, CA_FILE_MAX, &extra_len, err);
    if (!extra) {
        ci_error_prefix(err, "CA bundle");
        return err ? err->code : CINFER_ERR_IO;
    }
    ci_buf blob = {0};
    char *system_path = NULL;
    if (curl_easy_getinfo(c->easy, CURLINFO_CAINFO, &system_path) == CURLE_OK && system_path) {
        char *system = ci_read_file(system_path, CA_FILE_MAX, NULL, NULL);
        if (system) ci_buf_puts(&blob, system), ci_buf_putc(&blob, '\n');
        free(system);
    }
    ci_buf_append(&blob, extra, extra_len);
    free(extra);
    c->ca_blob = ci_buf_take(&blob, &c->ca_blob_len);
    return CINFER_OK;
}

ci_http_client *ci_http_open(const ci_http_config *cfg, cinfer_error *err) {
    pthread_once(&curl_once, curl_init_once);
    const char *url = cfg->base_url;
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        ci_error(err, CINFER_ERR_INVALID, "base URL must start with http:// or https:// (got \"%.200s\")", url ? url : "");
        return NULL;
    }
    for (const char *k = cfg->api_key; k && *k; k++)
        if ((unsigned char)*k < 0x20 || *k == 0x7f) {
            /* A header injection vector; and never echo the key itself. */
            ci_error(err, CINFER_ERR_INVALID, "the API key contains control characters");
            return NULL;
        }
    ci_http_client *c = ci_calloc(1, sizeof *c);
    c->cfg = *cfg;
    c->cfg.base_url = NULL, c->cfg.api_key = NULL, c->cfg.ca_bundle = NULL; /* caller's memory */
    if (c->cfg.backoff_initial <= 0) c->cfg.backoff_initial = 0.5;
    if (c->cfg.backoff_max <= 0) c->cfg.backoff_max = 8;
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    c->base_url = ci_strndup(url, n);
    if (cfg->api_key && *cfg->api_key) {
        ci_buf h = {0};
        ci_buf_printf(&h, "Authorization: Bearer %s", cfg->api_key);
        c->auth_header = ci_buf_take(&h, NULL);
    }
    ci_mask_secret(cfg->api_key, c->key_mask, sizeof c->key_mask);
    pthread_mutex_init(&c->lock, NULL);
    c->easy = curl_easy_init();
    c->multi = curl_multi_init();
    if (!c->easy || !c->multi) {
        ci_error(err, CINFER_ERR_NOMEM, "cannot create an HTTP handle");
        ci_http_close(c);
        return NULL;
    }
    if (cfg->ca_bundle && *cfg->ca_bundle) {
        c->cfg.ca_bundle = cfg->ca_bundle; /* for the message only */
        if (load_ca_blob(c, err) != CINFER_OK) {
            ci_http_close(c);
            return NULL;
        }
        c->cfg.ca_bundle = NULL;
    }
    return c;
}

void ci_http_close(ci_http_client *c) {
    if (!c) return;
    if (c->easy) curl_easy_cleanup(c->easy);
    if (c->multi) curl_multi_cleanup(c->multi);
    if (c->auth_header) {
        /* Do not leave the key lying in freed memory. */
        volatile char *p = c->auth_header;
        while (*p) *p++ = 0;
        free(c->auth_header);
    }
    free(c->ca_blob);
    free(c->base_url);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* -------------------------------------------------------------- callbacks */

static size_t on_header(char *data, size_t size, size_t count, void *user) {
    attempt *a = user;
    size_t len = size * count;
    a->last_byte = ci_now_seconds();
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        a->retry_after = -1; /* a new response (after 100 Continue or a redirect) */
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon) return len;
    size_t name_len = (size_t)(colon - data);
    char value[128];
    size_t vlen = len - name_len - 1;
    if (vlen >= sizeof value) return len;
    memcpy(value, colon + 1, vlen);
    value[vlen] = '\0';
    if (name_len == 14 && strncasecmp(data, "retry-after-ms", 14) == 0) {
        char *end;
        double ms = strtod(value, &end);
        if (end != value && ms >= 0) a->retry_after = ms / 1000.0;
    } else if (name_len == 11 && strncasecmp(data, "retry-after", 11) == 0 && a->retry_after < 0) {
        a->retry_after = ci_http_parse_retry_after(value, (long long)time(NULL));
    }
    return len;
}

static size_t on_write(char *data, size_t size, size_t count, void *user) {
    attempt *a = user;
    size_t len = size * count;
    a->last_byte = ci_now_seconds();
    if (a->status == 0) curl_easy_getinfo(a->c->easy, CURLINFO_RESPONSE_CODE, &a->status);
    if (a->status >= 200 && a->status < 300) {
        if (!a->sink->on_body(a->sink->user, data, len)) {
            a->sink_stopped = true;
            return 0; /* makes curl abort with CURLE_WRITE_ERROR */
        }
        return len;
    }
    size_t room = ERROR_BODY_MAX - a->error_body.len;
    ci_buf_append(&a->error_body, data, len < room ? len : room);
    return len;
}

/* ------------------------------------------------------------ the request */

static bool cancelled(const ci_http_client *c) { return c->cfg.cancel && *c->cfg.cancel; }

static bool retryable_status(long s) { return s == 408 || s == 409 || s == 429 || s >= 500; }

static bool retryable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Sleeps up to `seconds` in slices; false when cancelled meanwhile. */
static bool wait_cancellable(const ci_http_client *c, double seconds) {
    double until = ci_now_seconds() + seconds;
    for (;;) {
        if (cancelled(c)) return false;
        double left = until - ci_now_seconds();
        if (left <= 0) return true;
        double slice = left < POLL_SLICE_MS / 1000.0 ? left : POLL_SLICE_MS / 1000.0;
        struct timespec ts = {0, (long)(slice * 1e9)};
        nanosleep(&ts, NULL);
    }
}

typedef enum { ATTEMPT_OK, ATTEMPT_RETRY, ATTEMPT_FAIL } attempt_result;

static attempt_result run_attempt(ci_http_client *c, const char *method, const char *url, const char *body,
                                  bool streaming, double deadline, attempt *a, ci_http_outcome *outcome,
                                  cinfer_error *err) {
    CURL *h = c->easy;
    curl_easy_reset(h);
    char curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, streaming ? "Accept: text/event-stream" : "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");
    if (c->auth_header) headers = curl_slist_append(headers, c->auth_header);
    double left = deadline - ci_now_seconds();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cinfer/" CINFER_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->cfg.connect_timeout * 1000));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left > 0.001 ? (long)(left * 1000) : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_blob) {
        struct curl_blob blob = {.data = c->ca_blob, .len = c->ca_blob_len, .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
    }
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);

    a->last_byte = ci_now_seconds();
    bool idle_expired = false, user_cancelled = false;
    CURLcode rc = CURLE_OK;
    curl_multi_add_handle(c->multi, h);
    for (;;) {
        int running = 0;
        CURLMcode mrc = curl_multi_perform(c->multi, &running);
        if (mrc != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            snprintf(curl_err, sizeof curl_err, "%s", curl_multi_strerror(mrc));
            break;
        }
        if (!running) {
            int queued;
            CURLMsg *msg = curl_multi_info_read(c->multi, &queued);
            rc = msg && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_OK;
            break;
        }
        if (cancelled(c)) {
            user_cancelled = true;
            break;
        }
        if (streaming && ci_now_seconds() - a->last_byte > c->cfg.idle_timeout) {
            idle_expired = true;
            break;
        }
        curl_multi_poll(c->multi, NULL, 0, POLL_SLICE_MS, NULL);
    }
    curl_multi_remove_handle(c->multi, h);
    curl_slist_free_all(headers);
    if (a->status == 0) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);

    char where[300];
    redacted_url(url, where, sizeof where);
    if (user_cancelled || (a->sink_stopped && cancelled(c))) {
        *outcome = CI_HTTP_CANCELLED;
        return ATTEMPT_OK;
    }
    if (a->sink_stopped) {
        *outcome = CI_HTTP_SINK_STOPPED;
        return ATTEMPT_OK;
    }
    bool delivered = a->sink->delivered && a->sink->delivered(a->sink->user);
    if (idle_expired) {
        ci_error(err, CINFER_ERR_NETWORK, "%s %s: no data from the server for %.3g s (idle timeout)", method, where,
                 c->cfg.idle_timeout);
        return delivered ? ATTEMPT_FAIL : ATTEMPT_RETRY;
    }
    if (rc != CURLE_OK) {
        const char *detail = curl_err[0] ? curl_err : curl_easy_strerror(rc);
        if (rc == CURLE_OPERATION_TIMEDOUT && ci_now_seconds() >= deadline - 0.01)
            ci_error(err, CINFER_ERR_NETWORK, "%s %s: the request took longer than the %.3g s timeout", method, where,
                     c->cfg.timeout);
        else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
            ci_error(err, CINFER_ERR_NETWORK, "%s %s: TLS certificate verification failed: %s (a private CA can be added with a CA bundle option)",
                     method, where, detail);
        else
            ci_error(err, CINFER_ERR_NETWORK, "%s %s: %s%s", method, where, detail,
                     delivered ? " (the connection broke after part of the answer arrived)" : "");
        return retryable_curl(rc) && !delivered ? ATTEMPT_RETRY : ATTEMPT_FAIL;
    }
    if (a->status >= 200 && a->status < 300) {
        *outcome = CI_HTTP_COMPLETE;
        return ATTEMPT_OK;
    }
    char *server_msg = a->error_body.len ? ci_http_error_message(a->error_body.data, a->error_body.len) : NULL;
    char excerpt[240] = "";
    if (!server_msg && a->error_body.len)
        ci_printable_excerpt(a->error_body.data, a->error_body.len, 200, excerpt, sizeof excerpt);
    ci_error(err, a->status == 401 || a->status == 403 ? CINFER_ERR_INVALID : CINFER_ERR_NETWORK,
             "%s %s: HTTP %ld%s%s", method, where, a->status, server_msg || excerpt[0] ? ": " : "",
             server_msg ? server_msg : excerpt);
    free(server_msg);
    return retryable_status(a->status) ? ATTEMPT_RETRY : ATTEMPT_FAIL;
}

int ci_http_request(ci_http_client *c, const char *method, const char *path, const char *body, bool streaming,
                    const ci_http_sink *sink, ci_http_outcome *outcome, cinfer_error *err) {
    pthread_mutex_lock(&c->lock);
    ci_buf url = {0};
    ci_buf_printf(&url, "%s%s", c->base_url, path);
    double start = ci_now_seconds(), deadline = start + c->cfg.timeout;
    if (c->cfg.verbose) {
        char shown[300];
        redacted_url(url.data, shown, sizeof shown);
        fprintf(stderr, "cinfer: %s %s (key %s, %s)\n", method, shown, c->key_mask,
                streaming ? "streaming" : "not streaming");
    }
    int rc = CINFER_ERR_NETWORK;
    for (int n = 0;; n++) {
        attempt a = {.c = c, .sink = sink, .retry_after = -1};
        if (sink->on_attempt) sink->on_attempt(sink->user);
        attempt_result r = run_attempt(c, method, url.data, body, streaming, deadline, &a, outcome, err);
        ci_buf_free(&a.error_body);
        if (c->cfg.verbose)
            fprintf(stderr, "cinfer: attempt %d: HTTP %ld, %s\n", n + 1, a.status,
                    r == ATTEMPT_OK ? "ok" : err && err->message[0] ? err->message : "failed");
        if (r == ATTEMPT_OK) {
            rc = CINFER_OK;
            break;
        }
        rc = err ? err->code : CINFER_ERR_NETWORK;
        if (r == ATTEMPT_FAIL || n >= c->cfg.max_retries) {
            if (r == ATTEMPT_RETRY && n > 0) ci_error_prefix(err, "gave up after %d attempts", n + 1);
            break;
        }
        double delay;
        if (a.retry_after >= 0 && a.retry_after <= RETRY_AFTER_MAX) {
            delay = a.retry_after;
        } else {
            delay = c->cfg.backoff_initial * (double)(1u << (n < 16 ? n : 16));
            if (delay > c->cfg.backoff_max) delay = c->cfg.backoff_max;
            delay *= 1.0 - 0.25 * ((double)rand() / RAND_MAX); /* jitter spreads retrying clients apart */
        }
        if (ci_now_seconds() + delay >= deadline) {
            ci_error_prefix(err, "no time left to retry");
            break;
        }
        if (c->cfg.verbose) fprintf(stderr, "cinfer: retrying in %.2f s\n", delay);
        if (!wait_cancellable(c, delay)) {
            *outcome = CI_HTTP_CANCELLED;
            rc = CINFER_OK;
            break;
        }
    }
    ci_buf_free(&url);
    pthread_mutex_unlock(&c->lock);
    return rc;
}
