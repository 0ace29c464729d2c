/*
 * cmd_serve.c — `cinfer serve MODEL`: the OpenAI-compatible server, with
 * vLLM's flag names so it drops in for `vllm serve` (src/server/).
 *
 * The one internal header the CLI includes: the server has no public C API
 * (cinfer.h embeds models, not HTTP servers), so `serve` reaches
 * ci_server_options / ci_server_run / ci_server_disable_prefix_caching
 * through src/server's header. Every other command uses cinfer.h only.
 */
#include "commands.h"
#include "cinfer.h"
#include "server/server_internal.h" /* the documented exception, see above */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CMD "serve"

/* The parsed command line. Defaults come from CINFER_DEFAULTS.server. */
typedef struct serve_args {
    const char *model_path, *host, *api_key, *name, *allowed_origins;
    long port, max_seqs, max_len, threads;
    double kv_gib;
    bool no_prefix, no_webui;
    double shutdown_timeout_s;
    long max_waiting, max_connections, max_connections_per_ip, max_body_mb;
} serve_args;

static void serve_args_init(serve_args *a) {
    *a = (serve_args){.host = CINFER_DEFAULTS.server.host,
                      .port = CINFER_DEFAULTS.server.port,
                      .max_seqs = CINFER_DEFAULTS.server.max_num_seqs,
                      .kv_gib = CINFER_DEFAULTS.server.kv_cache_gib,
                      .shutdown_timeout_s = CINFER_DEFAULTS.server.shutdown_timeout_s,
                      .max_waiting = CINFER_DEFAULTS.server.max_waiting,
                      .max_connections = CINFER_DEFAULTS.server.max_connections,
                      .max_connections_per_ip = CINFER_DEFAULTS.server.max_connections_per_ip,
                      .max_body_mb = (long)(CINFER_DEFAULTS.server.max_body_bytes >> 20)};
}

static void usage(FILE *out) {
    serve_args d;
    serve_args_init(&d);
    fprintf(out,
            "usage: cinfer serve MODEL [options]\n\n"
            "Serves a local model (Hugging Face folder or GGUF file) over an OpenAI-compatible\n"
            "HTTP API: /v1/chat/completions, /v1/completions, /v1/responses, /v1/models,\n"
            "/health, /metrics, /version, /tokenize, /detokenize; Anthropic's /v1/messages;\n"
            "Ollama's /api/chat, /api/generate, /api/tags, /api/show, /api/ps. Requests are batched continuously; identical prompt\n"
            "prefixes share their KV cache blocks.\n\n"
            "options:\n"
            "  --host ADDR                IPv4 address to listen on (default %s)\n"
            "  --port N                   TCP port (default %ld)\n"
            "  --api-key KEY              require 'Authorization: Bearer KEY' (or 'x-api-key: KEY') on /v1/*\n"
            "                             and /api/* (default: $CINFER_API_KEY, unset = no authentication)\n"
            "  --allowed-origins LIST     CORS: origins whose web pages may call the server: '*', a comma\n"
            "                             list or a JSON list (default: none)\n"
            "  --served-model-name NAME   the model name clients send (default: MODEL as given)\n"
            "  --max-num-seqs N           sequences decoded together (default %ld)\n"
            "  --kv-cache-memory GIB      KV cache size in GiB (default %g)\n"
            "  --max-model-len N          prompt + output tokens per sequence (default: min(model, %d))\n"
            "  --threads N                CPU threads for the forward pass (default: all)\n"
            "  --no-prefix-caching        do not share KV blocks between requests\n"
            "  --no-webui                 do not serve the chat page on / (docs/WEBUI.md)\n"
            "  --max-waiting N            queued requests beyond the running ones; more get 503 (default %ld)\n"
            "  --max-connections N        open HTTP connections in all (default %ld)\n"
            "  --max-connections-per-ip N open connections from one client address (default %ld)\n"
            "  --max-body-mb N            request body limit in MiB; larger bodies get 413 (default %ld)\n"
            "  --shutdown-timeout S       on SIGTERM/SIGINT, seconds running requests get to finish\n"
            "                             before they are ended (default %g)\n\n"
            "Request extensions (as vLLM / Qwen): top_k, min_p, repetition_penalty,\n"
            "chat_template_kwargs, enable_thinking, thinking_budget (alias max_thinking_tokens:\n"
            "at most this many reasoning tokens, then \"</think>\" is forced and the model answers).\n",
            d.host, d.port, d.max_seqs, d.kv_gib, CINFER_DEFAULTS.model.max_model_len, d.max_waiting,
            d.max_connections, d.max_connections_per_ip, d.max_body_mb, d.shutdown_timeout_s);
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

/* The integer options: name, where the value goes, its range. */
typedef struct int_option {
    const char *name;
    size_t offset;
    long lo, hi;
} int_option;

static const int_option INT_OPTIONS[] = {
    {"--port", offsetof(serve_args, port), 0, 65535},
    {"--max-num-seqs", offsetof(serve_args, max_seqs), 1, 4096},
    {"--max-model-len", offsetof(serve_args, max_len), 16, 1 << 24},
    {"--threads", offsetof(serve_args, threads), 1, 1024},
    {"--max-waiting", offsetof(serve_args, max_waiting), 1, 1000000},
    {"--max-connections", offsetof(serve_args, max_connections), 1, 1000000},
    {"--max-connections-per-ip", offsetof(serve_args, max_connections_per_ip), 1, 1000000},
    {"--max-body-mb", offsetof(serve_args, max_body_mb), 1, 4096},
};

/* Consumes argv[*i] (and its value). Returns 1 when consumed, 0 when it is
 * not an option of this table, 2 on a usage error (printed). */
static int parse_int_option(serve_args *a, int argc, char **argv, int *i) {
    for (size_t k = 0; k < sizeof INT_OPTIONS / sizeof INT_OPTIONS[0]; k++) {
        const int_option *o = &INT_OPTIONS[k];
        if (strcmp(argv[*i], o->name) != 0) continue;
        const char *v = cli_option_value(CMD, argc, argv, i);
        if (!v) return 2;
        if (!parse_long(v, o->lo, o->hi, (long *)((char *)a + o->offset)))
            return cli_usage_error(CMD, "%s must be %ld..%ld", o->name, o->lo, o->hi);
        return 1;
    }
    return 0;
}

/* Returns -1 for --help, 0 ok, 2 usage error (printed). */
static int parse_args(serve_args *a, int argc, char **argv) {
    serve_args_init(a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        int r = parse_int_option(a, argc, argv, &i);
        if (r == 2) return 2;
        if (r == 1) continue;
        if (cli_is_help(arg)) {
            return -1;
        } else if (strcmp(arg, "--host") == 0) {
            if (!(a->host = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(arg, "--allowed-origins") == 0) {
            if (!(a->allowed_origins = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(arg, "--api-key") == 0) {
            if (!(a->api_key = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(arg, "--served-model-name") == 0) {
            if (!(a->name = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(arg, "--kv-cache-memory") == 0) {
            if (!(v = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!parse_double(v, 0, 4096, &a->kv_gib) || a->kv_gib == 0)
                return cli_usage_error(CMD, "--kv-cache-memory takes GiB in (0, 4096]");
        } else if (strcmp(arg, "--shutdown-timeout") == 0) {
            if (!(v = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!parse_double(v, 0, 86400, &a->shutdown_timeout_s) || a->shutdown_timeout_s == 0)
                return cli_usage_error(CMD, "--shutdown-timeout takes seconds in (0, 86400]");
        } else if (strcmp(arg, "--no-prefix-caching") == 0) {
            a->no_prefix = true;
        } else if (strcmp(arg, "--no-webui") == 0) {
            a->no_webui = true;
        } else if (arg[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", arg);
        } else if (!a->model_path) {
            a->model_path = arg;
        } else {
            return cli_usage_error(CMD, "more than one MODEL given");
        }
    }
    if (!a->model_path) return cli_usage_error(CMD, "MODEL is required");
    if (!a->api_key) a->api_key = getenv("CINFER_API_KEY");
    return 0;
}

static cinfer_model *load_model(const serve_args *a) {
    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.n_threads = (int)a->threads;
    mo.max_model_len = (int)a->max_len;
    mo.max_num_seqs = (int)a->max_seqs;
    mo.kv_cache_gib = a->kv_gib;
    mo.show_progress = true;
    cinfer_error err = {0};
    const char *path = cli_resolve_model(CMD, a->model_path);
    cinfer_model *m = path ? cinfer_model_load(path, &mo, &err) : NULL;
    if (!path) return NULL;
    if (!m) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        if (err.code == CINFER_ERR_KV_TOO_SMALL)
            fprintf(stderr, "cinfer " CMD ": give a larger --kv-cache-memory or a smaller --max-model-len\n");
    }
    return m;
}

int cmd_serve(int argc, char **argv) {
    serve_args a;
    int rc = parse_args(&a, argc, argv);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    cinfer_model *m = load_model(&a);
    if (!m) return 1;
    if (a.no_prefix) ci_server_disable_prefix_caching(m);
    ci_server_options so = {.host = a.host, .port = (int)a.port, .api_key = a.api_key,
                            .served_model_name = a.name ? a.name : a.model_path, .max_num_seqs = (int)a.max_seqs};
    so.shutdown_timeout_s = a.shutdown_timeout_s;
    so.max_queued = (int)a.max_waiting;
    so.max_connections = (int)a.max_connections;
    so.max_connections_per_ip = (int)a.max_connections_per_ip;
    so.max_body_bytes = (unsigned)a.max_body_mb << 20;
    so.no_webui = a.no_webui;
    so.allowed_origins = a.allowed_origins;
    cinfer_error err = {0};
    rc = ci_server_run(m, &so, &err);
    if (rc != 0) fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
    cinfer_model_free(m);
    return rc == 0 ? 0 : 1;
}
