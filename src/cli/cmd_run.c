/*
 * cmd_run.c — `cinfer run MODEL -p TEXT`: one generation, streamed to the
 * terminal (thinking visibly marked, then the answer) or printed as one JSON
 * object with --json.
 */
#include "commands.h"
#include "gen_args.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

static void usage(FILE *out) {
    fprintf(out,
            "usage: cinfer run MODEL -p TEXT [options]\n"
            "       cinfer run --remote URL [--model NAME] -p TEXT [options]\n\n"
            "Generates an answer with a local model. MODEL is a Hugging Face folder as\n"
            "downloaded (config.json, *.safetensors, tokenizer files) or a GGUF file.\n"
            "Thinking is shown between <think> and </think> (dimmed on a terminal), then the answer.\n\n"
            "options:\n"
            "  -p, --prompt TEXT     the user message (or the raw prompt with --raw)\n");
    gen_args_help(out);
    constraint_args_help(out);
    remote_args_help(out);
    fprintf(out,
            "  --raw                 feed TEXT to the model without the chat template\n"
            "  --json                print one JSON object: thinking, content, tokens, finish_reason, usage\n"
            "  --top-logprobs K      with --json: the K most likely tokens per generated token\n"
            "  --stats               print prompt and generation speed to stderr\n");
}

typedef struct stream_state {
    bool tty;
    bool in_thinking;
    bool any;
} stream_state;

static bool print_delta(void *user, const char *thinking, size_t tl, const char *content, size_t cl) {
    stream_state *s = user;
    if (tl) {
        if (!s->in_thinking) {
            fputs(s->tty ? "\033[2m<think>\n" : "<think>\n", stdout);
            s->in_thinking = true;
        }
        fwrite(thinking, 1, tl, stdout);
    }
    if (cl) {
        if (s->in_thinking) {
            fputs(s->tty ? "\n</think>\033[0m\n\n" : "\n</think>\n\n", stdout);
            s->in_thinking = false;
        }
        fwrite(content, 1, cl, stdout);
    }
    s->any = true;
    fflush(stdout);
    return !interrupted;
}

static json_t *result_json(const cinfer_model *m, const cinfer_result *r) {
    json_t *o = json_object();
    json_object_set_new(o, "thinking", json_string(r->thinking));
    json_object_set_new(o, "content", json_string(r->content));
    json_t *toks = json_array();
    for (int i = 0; i < r->n_tokens; i++) json_array_append_new(toks, json_integer(r->tokens[i]));
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "finish_reason", json_string(r->finish_reason));
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(r->prompt_tokens));
    json_object_set_new(usage, "completion_tokens", json_integer(r->completion_tokens));
    json_object_set_new(usage, "total_tokens", json_integer(r->prompt_tokens + r->completion_tokens));
    json_object_set_new(o, "usage", usage);
    if (r->n_top_logprobs > 0) {
        const cinfer_tokenizer *tok = cinfer_model_tokenizer(m);
        json_t *all = json_array();
        for (int i = 0; i < r->n_tokens; i++) {
            json_t *step = json_array();
            for (int k = 0; k < r->n_top_logprobs; k++) {
                const cinfer_top_logprob *t = &r->top_logprobs[(size_t)i * r->n_top_logprobs + k];
                if (t->id < 0) continue;
                size_t len = 0;
                const char *bytes = cinfer_tokenizer_token_bytes(tok, t->id, &len);
                json_t *e = json_object();
                json_object_set_new(e, "id", json_integer(t->id));
                /* A token can be part of a UTF-8 character: show it with U+FFFD then. */
                json_t *text = bytes ? json_stringn(bytes, len) : NULL;
                if (!text) {
                    size_t dl = 0;
                    char *d = cinfer_detokenize(tok, &t->id, 1, false, &dl, NULL);
                    text = json_stringn(d ? d : "", d ? dl : 0);
                    cinfer_free(d);
                }
                json_object_set_new(e, "token", text);
                json_object_set_new(e, "logprob", json_real(t->logprob));
                json_array_append_new(step, e);
            }
            json_array_append_new(all, step);
        }
        json_object_set_new(o, "top_logprobs", all);
    }
    return o;
}

/* The command; the caller owns (and frees) the parsed flags in *ga. */
static int run(gen_args *ga, int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    bool json = false, stats = false;
    long top_logprobs = 0;
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return usage(stdout), 0;
        int g = gen_args_parse(ga, "run", argc, argv, &i);
        if (g == 0) g = constraint_args_parse(ga, "run", argc, argv, &i);
        if (g == 0) g = remote_args_parse(&ro, "run", argc, argv, &i);
        if (g == 2) return 2;
        if (g == 1) continue;
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(prompt = cli_option_value("run", argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--raw")) {
            ga->gen.raw = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "--top-logprobs")) {
            const char *v = cli_option_value("run", argc, argv, &i);
            if (!v) return 2;
            char *end;
            top_logprobs = strtol(v, &end, 10);
            if (*end || top_logprobs < 0 || top_logprobs > 20)
                return cli_usage_error("run", "--top-logprobs expects 0..20, got '%s'", v);
        } else if (a[0] == '-') {
            return cli_usage_error("run", "unknown option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else {
            return cli_usage_error("run", "unexpected argument '%s'", a);
        }
    }
    if (!model_path == !ro.base_url) return cli_usage_error("run", "give either MODEL or --remote URL");
    if (ro.base_url && (ga->gen.raw || top_logprobs))
        return cli_usage_error("run", "--raw and --top-logprobs need a local model");
    if (!prompt) return cli_usage_error("run", "-p TEXT is required");
    if (top_logprobs && !json) return cli_usage_error("run", "--top-logprobs needs --json");

    cinfer_model *m = cli_open_model("run", model_path, &ro, ga, &interrupted);
    if (!m) return 1;
    cinfer_error err = {0};
    stream_state ss = {.tty = isatty(STDOUT_FILENO)};
    ga->gen.top_logprobs = (int)top_logprobs;
    if (!json) {
        ga->gen.on_delta = print_delta;
        ga->gen.user = &ss;
    }
    signal(SIGINT, on_sigint);
    cinfer_result r;
    int rc = ga->gen.raw ? cinfer_generate(m, prompt, &ga->gen, &r, &err)
                         : cinfer_chat(m, NULL, 0, ga->system, prompt, &ga->gen, &r, &err);
    signal(SIGINT, SIG_DFL);
    if (rc != CINFER_OK) {
        fprintf(stderr, "cinfer run: %s\n", err.message);
        cinfer_model_free(m);
        return 1;
    }
    if (json) {
        json_t *o = result_json(m, &r);
        if (r.tool_calls_json) json_object_set_new(o, "tool_calls", json_loads(r.tool_calls_json, 0, NULL));
        char *text = json_dumps(o, JSON_COMPACT);
        puts(text);
        free(text);
        json_decref(o);
    } else {
        if (ss.in_thinking) fputs(ss.tty ? "\n</think>\033[0m\n" : "\n</think>\n", stdout);
        fputc('\n', stdout);
    }
    fflush(stdout); /* the answer first, then the numbers on stderr */
    if (stats) {
        /* The first token comes out of the prefill pass; the rest are decode steps. */
        int decoded = r.n_tokens > 1 ? r.n_tokens - 1 : 0;
        fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tokens/s); generation: %d tokens in %.3f s (%.1f tokens/s); finish: %s\n",
                r.prompt_tokens, r.prefill_seconds, r.prefill_seconds > 0 ? r.prompt_tokens / r.prefill_seconds : 0.0,
                decoded, r.decode_seconds, r.decode_seconds > 0 ? decoded / r.decode_seconds : 0.0, r.finish_reason);
    }
    cinfer_result_free(&r);
    cinfer_model_free(m);
    return 0;
}

int cmd_run(int argc, char **argv) {
    gen_args ga;
    gen_args_init(&ga);
    int rc = run(&ga, argc, argv);
    gen_args_free(&ga);
    return rc;
}
