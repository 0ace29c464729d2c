/*
 * cmd_serve.c — `cinfer serve MODEL`: the OpenAI-compatible server, with
 * vLLM's flag names so it drops in for `vllm serve` (src/server/).
 */
#include "commands.h"
#include "server/server_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: cinfer serve MODEL [options]\n\n"
            "Serves a local model (Hugging Face folder or GGUF file) over an OpenAI-compatible\n"
            "HTTP API: /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics,\n"
            "/tokenize, /detokenize. Requests are batched continuously; identical prompt\n"
            "prefixes share their KV cache blocks.\n\n"
            "options:\n"
            "  --host ADDR                IPv4 address to listen on (default 127.0.0.1)\n"
            "  --port N                   TCP port (default 8000)\n"
            "  --api-key KEY              require 'Authorization: Bearer KEY' on /v1/* (default: $CINFER_API_KEY,\n"
            "                             unset = no authentication)\n"
            "  --served-model-name NAME   the model name clients send (default: MODEL as given)\n"
            "  --max-num-seqs N           sequences decoded together (default 32)\n"
            "  --kv-cache-memory GIB      KV cache size in GiB (default 4)\n"
            "  --max-model-len N          prompt + output tokens per sequence (default: min(model, 32768))\n"
            "  --threads N                CPU threads for the forward pass (default: all)\n"
            "  --no-prefix-caching        do not share KV blocks between requests\n\n"
            "Request extensions (as vLLM / Qwen): top_k, min_p, repetition_penalty,\n"
            "chat_template_kwargs, enable_thinking, thinking_budget (alias max_thinking_tokens:\n"
            "at most this many reasoning tokens, then \"</think>\" is forced and the model answers).\n");
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int cmd_serve(int argc, char **argv) {
    const char *model_path = NULL, *host = "127.0.0.1", *api_key = NULL, *name = NULL;
    long port = 8000, max_seqs = 32, max_len = 0, threads = 0;
    double kv_gib = 4.0;
    bool no_prefix = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--host") == 0) {
            if (!(host = cli_option_value("serve", argc, argv, &i))) return 2;
        } else if (strcmp(a, "--port") == 0) {
            if (!(v = cli_option_value("serve", argc, argv, &i))) return 2;
            if (!parse_int(v, 0, 65535, &port)) return cli_usage_error("serve", "--port must be 0..65535");
        } else if (strcmp(a, "--api-key") == 0) {
            if (!(api_key = cli_option_value("serve", argc, argv, &i))) return 2;
        } else if (strcmp(a, "--served-model-name") == 0) {
            if (!(name = cli_option_value("serve", argc, argv, &i))) return 2;
        } else if (strcmp(a, "--max-num-seqs") == 0) {
            if (!(v = cli_option_value("serve", argc, argv, &i))) return 2;
            if (!parse_int(v, 1, 4096, &max_seqs)) return cli_usage_error("serve", "--max-num-seqs must be 1..4096");
        } else if (strcmp(a, "--max-model-len") == 0) {
            if (!(v = cli_option_value("serve", argc, argv, &i))) return 2;
            if (!parse_int(v, 16, 1 << 24, &max_len)) return cli_usage_error("serve", "--max-model-len must be 16..16777216");
        } else if (strcmp(a, "--threads") == 0) {
            if (!(v = cli_option_value("serve", argc, argv, &i))) return 2;
            if (!parse_int(v, 1, 1024, &threads)) return cli_usage_error("serve", "--threads must be 1..1024");
        } else if (strcmp(a, "--kv-cache-memory") == 0) {
            if (!(v = cli_option_value("serve", argc, argv, &i))) return 2;
            char *end;
            kv_gib = strtod(v, &end);
            if (*end || !(kv_gib > 0 && kv_gib <= 4096)) return cli_usage_error("serve", "--kv-cache-memory takes GiB in (0, 4096]");
        } else if (strcmp(a, "--no-prefix-caching") == 0) {
            no_prefix = true;
        } else if (a[0] == '-') {
            return cli_usage_error("serve", "unknown option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else {
            return cli_usage_error("serve", "more than one MODEL given");
        }
    }
    if (!model_path) return cli_usage_error("serve", "MODEL is required");
    if (!api_key) api_key = getenv("CINFER_API_KEY");

    cinfer_model_options mo;
    cinfer_model_options_init(&mo);
    mo.n_threads = (int)threads;
    mo.max_model_len = (int)max_len;
    mo.max_num_seqs = (int)max_seqs;
    mo.kv_cache_gib = kv_gib;
    mo.show_progress = true;
    cinfer_error err = {0};
    cinfer_model *m = cinfer_model_load(model_path, &mo, &err);
    if (!m) {
        fprintf(stderr, "cinfer serve: %s\n", err.message);
        if (strstr(err.message, "fewer than one sequence"))
            fprintf(stderr, "cinfer serve: give a larger --kv-cache-memory or a smaller --max-model-len\n");
        return 1;
    }
    if (no_prefix) ci_server_disable_prefix_caching(m);
    ci_server_options so = {.host = host, .port = (int)port, .api_key = api_key,
                            .served_model_name = name ? name : model_path, .max_num_seqs = (int)max_seqs};
    int rc = ci_server_run(m, &so, &err);
    if (rc != 0) fprintf(stderr, "cinfer serve: %s\n", err.message);
    cinfer_model_free(m);
    return rc == 0 ? 0 : 1;
}
