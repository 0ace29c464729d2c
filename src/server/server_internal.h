/*
 * server_internal.h — the pieces of the OpenAI-compatible server that are
 * testable on their own: prompt building with protected message contents,
 * Qwen3 tool-call parsing, and the Prometheus metrics registry.
 */
#ifndef CINFER_SERVER_INTERNAL_H
#define CINFER_SERVER_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cinfer.h"
#include "util/util.h"

/* ---------------------------------------------------------------- prompt */

/* Special-token texts of a tokenizer (e.g. "<|im_start|>"), longest first:
 * the only strings the template's own text may turn into control tokens. */
typedef struct ci_special_set {
    char **text;
    size_t *len;
    int32_t *id;
    int n;
} ci_special_set;

void ci_special_set_init(ci_special_set *set, const cinfer_tokenizer *tok);
void ci_special_set_free(ci_special_set *set);

/* Tokenizes `text` where plain[i] marks bytes that came from message
 * contents: special-token text is matched only where no byte of the match is
 * plain; everything between two template-made special tokens is encoded
 * with CINFER_TOKENIZE_SPLIT_SPECIAL. With no special text inside contents
 * this equals cinfer_tokenize(text, 0). Returns the count, < 0 on error. */
long ci_tokenize_protected(const cinfer_tokenizer *tok, const ci_special_set *specials, const char *text, size_t len,
                           const uint8_t *plain, int32_t **ids_out, cinfer_error *err);

/* Renders `ctx` (messages, tools, flags) with the template and tokenizes it
 * so that text from message contents can never become control tokens:
 * contents are wrapped in unique markers for rendering, the markers give the
 * byte ranges that are plain text, and the marked render (markers removed)
 * is checked against a normal render. `ctx` is modified and restored. On
 * success returns the id count and the rendered text in *text_out (caller
 * frees). */
long ci_render_chat_protected(const cinfer_template *tpl, const cinfer_tokenizer *tok, const ci_special_set *specials,
                              json_t *ctx, int32_t **ids_out, char **text_out, cinfer_error *err);

/* ------------------------------------------------------------- tool calls */

/* Parses Qwen3 tool calls (`<tool_call>{"name":…,"arguments":…}</tool_call>`)
 * out of generated content. Returns a JSON array of OpenAI tool_calls (ids
 * "call_<hex>", arguments as a JSON string), or NULL when there is no
 * well-formed call; *content_len_out gets the length of the content before
 * the first call (trailing whitespace trimmed). */
json_t *ci_parse_tool_calls(const char *content, size_t len, size_t *content_len_out);

/* For an answer that was forced to open with a tool call: reads the first
 * block leniently, `<tool_call>{"name": "NAME", "arguments": REST`. When
 * NAME is a function of `tools` returns one call whose arguments are the
 * JSON object at the start of REST (up to </tool_call>), else REST itself
 * as text, trimmed — what vLLM returns for a named call. NULL otherwise. */
json_t *ci_parse_forced_tool_call(const char *content, size_t len, const json_t *tools, size_t *content_len_out);

/* --------------------------------------------------------------- metrics */

#define CI_HIST_BUCKETS 20

typedef struct ci_histogram {
    uint64_t counts[CI_HIST_BUCKETS + 1]; /* last = +Inf */
    double sum;
    uint64_t count;
} ci_histogram;

typedef struct ci_metrics {
    pthread_mutex_t lock;
    uint64_t requests_by_status[6][100]; /* [status / 100][status % 100] */
    uint64_t finished[5];                /* generation requests by ci_finish_reason */
    ci_histogram ttft, itl, e2e;
} ci_metrics;

void ci_metrics_init(ci_metrics *m);
void ci_metrics_destroy(ci_metrics *m);
void ci_metrics_count_request(ci_metrics *m, int status);
void ci_metrics_observe(ci_metrics *m, ci_histogram *h, double seconds);
/* A generation request (one choice) finished with this ci_finish_reason. */
void ci_metrics_count_finish(ci_metrics *m, int finish_reason);
struct ci_sched_stats;
/* Appends the Prometheus text exposition. */
void ci_metrics_render(ci_metrics *m, const struct ci_sched_stats *st, const char *model_name, ci_buf *out);

/* ----------------------------------------------------------------- server */

typedef struct ci_server_options {
    const char *host;
    int port;
    const char *api_key;          /* NULL: no authentication */
    const char *served_model_name;
    int max_num_seqs;
    /* limits and lifecycle (0: CINFER_DEFAULTS.server) */
    double shutdown_timeout_s;    /* SIGTERM/SIGINT: running requests get this long, then end with an error */
    int max_connections;          /* open connections in all */
    int max_connections_per_ip;   /* ... from one client address */
    int max_pending;              /* connections still sending their first request head (the gate) */
    int max_pending_per_ip;       /* ... from one client address */
    unsigned max_header_bytes;    /* a request head over this is 431 */
    int header_timeout_s;         /* total time from accept allowed for the first request head */
    int idle_timeout_s;           /* idle time allowed afterwards (keep-alive, slow readers) */
    int max_queued;               /* choices waiting beyond max_num_seqs; more get 503 + Retry-After */
    unsigned max_body_bytes;      /* larger bodies get 413, before they are read */
    bool no_webui;                /* `/` and the chat page's assets answer 404 */
    const char *allowed_origins;  /* CORS: "*", "https://a,https://b" or a JSON list; NULL: none */
    /* called once the socket accepts connections, with the bound port (--port 0) */
    void (*on_listening)(void *user, int port);
    void *user;
} ci_server_options;

/* Serves until SIGINT/SIGTERM. Prints "listening on http://HOST:PORT" on
 * stderr once the socket accepts connections. Returns 0, or an error code. */
int ci_server_run(cinfer_model *model, const ci_server_options *o, cinfer_error *err);

/* Turns automatic prefix caching off for a loaded local model. */
void ci_server_disable_prefix_caching(cinfer_model *m);

/* Constant-time comparison of an offered key with the configured one. */
bool ci_keys_equal(const char *offered, size_t offered_len, const char *expected);

#endif
