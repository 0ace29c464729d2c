/* gen_args.c — see gen_args.h. */
#include "gen_args.h"
#include "commands.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void gen_args_help(FILE *out) {
    fprintf(out,
            "  --system S            system prompt\n"
            "  --think | --no-think  enable_thinking for the chat template (default: the template's)\n"
            "  --temperature T       0 = greedy (default: generation_config.json)\n"
            "  --top-p P  --top-k K  --min-p P\n"
            "  --repetition-penalty R  --presence-penalty P  --frequency-penalty F\n"
            "  --max-tokens N        at most N new tokens\n"
            "  --stop S              stop string (repeatable, up to %d)\n"
            "  --seed N              same seed, same output\n"
            "  --threads N           CPU threads (default: all)\n"
            "  --ctx-size N          context length (default: min(model maximum, %d))\n",
            GEN_ARGS_MAX_STOP, CINFER_DEFAULTS.model.max_model_len);
}

void gen_args_init(gen_args *a) {
    memset(a, 0, sizeof *a);
    cinfer_gen_options_init(&a->gen);
    a->gen.stop = a->stop;
}

static int parse_float(const char *cmd, const char *opt, const char *v, float *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end) return cli_usage_error(cmd, "%s expects a number, got '%s'", opt, v);
    *out = (float)d;
    return 0;
}

static int parse_int(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return cli_usage_error(cmd, "%s expects an integer in [%lld, %lld], got '%s'", opt, lo, hi, v);
    *out = n;
    return 0;
}

int gen_args_parse(gen_args *a, const char *cmd, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    if (!strcmp(opt, "--think")) return a->gen.enable_thinking = 1, 1;
    if (!strcmp(opt, "--no-think")) return a->gen.enable_thinking = 0, 1;
    static const char *const with_value[] = {"--system", "--temperature", "--top-p", "--top-k", "--min-p",
                                             "--repetition-penalty", "--presence-penalty", "--frequency-penalty",
                                             "--max-tokens", "--stop", "--seed", "--threads", "--ctx-size", NULL};
    bool known = false;
    for (int k = 0; with_value[k]; k++) known |= !strcmp(opt, with_value[k]);
    if (!known) return 0;
    const char *v = cli_option_value(cmd, argc, argv, i);
    if (!v) return 2;
    long long n = 0;
    int bad = 0;
    if (!strcmp(opt, "--system")) a->system = v;
    else if (!strcmp(opt, "--temperature")) bad = parse_float(cmd, opt, v, &a->gen.temperature);
    else if (!strcmp(opt, "--top-p")) bad = parse_float(cmd, opt, v, &a->gen.top_p);
    else if (!strcmp(opt, "--min-p")) bad = parse_float(cmd, opt, v, &a->gen.min_p);
    else if (!strcmp(opt, "--repetition-penalty")) bad = parse_float(cmd, opt, v, &a->gen.repetition_penalty);
    else if (!strcmp(opt, "--presence-penalty")) bad = parse_float(cmd, opt, v, &a->gen.presence_penalty);
    else if (!strcmp(opt, "--frequency-penalty")) bad = parse_float(cmd, opt, v, &a->gen.frequency_penalty);
    else if (!strcmp(opt, "--top-k")) bad = parse_int(cmd, opt, v, 0, 1 << 30, &n), a->gen.top_k = (int)n;
    else if (!strcmp(opt, "--max-tokens")) bad = parse_int(cmd, opt, v, 1, 1 << 30, &n), a->gen.max_new_tokens = (int)n;
    else if (!strcmp(opt, "--threads")) bad = parse_int(cmd, opt, v, 1, 1024, &n), a->n_threads = (int)n;
    else if (!strcmp(opt, "--ctx-size")) bad = parse_int(cmd, opt, v, 16, 1 << 24, &n), a->ctx_size = (int)n;
    else if (!strcmp(opt, "--seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno || end == v || *end) bad = cli_usage_error(cmd, "--seed expects a non-negative integer, got '%s'", v);
        a->gen.has_seed = true;
        a->gen.seed = s;
    } else if (!strcmp(opt, "--stop")) {
        if (a->gen.n_stop >= GEN_ARGS_MAX_STOP) bad = cli_usage_error(cmd, "at most %d --stop strings", GEN_ARGS_MAX_STOP);
        else a->stop[a->gen.n_stop++] = v;
    }
    return bad ? 2 : 1;
}

void constraint_args_help(FILE *out) {
    fprintf(out,
            "  --json-schema FILE    the answer is JSON valid against this JSON Schema\n"
            "  --regex RE            the answer matches RE (JavaScript syntax, whole answer)\n"
            "  --grammar FILE        the answer follows this GBNF grammar (llama.cpp syntax, rule root)\n"
            "  --choice JSON         the answer is one of these strings, e.g. '[\"yes\",\"no\"]'\n"
            "                        (with thinking, the constraint starts after </think>)\n");
}

int constraint_args_parse(gen_args *a, const char *cmd, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    static const char *const opts[] = {"--json-schema", "--regex", "--grammar", "--choice", NULL};
    static const cinfer_constraint_kind kinds[] = {CINFER_CONSTRAINT_JSON_SCHEMA, CINFER_CONSTRAINT_REGEX,
                                                   CINFER_CONSTRAINT_GBNF, CINFER_CONSTRAINT_CHOICE};
    int k = 0;
    while (opts[k] && strcmp(opt, opts[k])) k++;
    if (!opts[k]) return 0;
    const char *v = cli_option_value(cmd, argc, argv, i);
    if (!v) return 2;
    if (a->gen.constraint != CINFER_CONSTRAINT_NONE)
        return cli_usage_error(cmd, "give one of --json-schema, --regex, --grammar, --choice");
    a->gen.constraint = kinds[k];
    if (kinds[k] == CINFER_CONSTRAINT_REGEX || kinds[k] == CINFER_CONSTRAINT_CHOICE) {
        a->gen.constraint_source = v;
        a->gen.constraint_len = strlen(v);
        return 1;
    }
    size_t len = 0;
    if (!(a->constraint_file = cli_read_input(cmd, v, 1 << 20, &len))) return 2; /* the reason is printed */
    if (len == 0) return cli_usage_error(cmd, "%s %s: the file is empty", opt, v);
    a->gen.constraint_source = a->constraint_file;
    a->gen.constraint_len = len;
    return 1;
}

void gen_args_free(gen_args *a) {
    free(a->constraint_file);
    a->constraint_file = NULL;
}

void remote_args_help(FILE *out) {
    fprintf(out,
            "  --remote URL          base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1\n"
            "  --model NAME          model name at the endpoint (default: the first one it lists)\n"
            "  --api-key-env VAR     read the API key from $VAR (default $OPENAI_API_KEY, then $CINFER_API_KEY)\n"
            "  --ca-bundle FILE      also trust the CA certificates in this PEM file\n"
            "  --timeout S           whole request, seconds (default %g)\n"
            "  -v, --verbose         request summary on stderr (the key masked)\n",
            CINFER_DEFAULTS.remote.timeout_s);
}

int remote_args_parse(cinfer_remote_options *ro, const char *cmd, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    if (!strcmp(opt, "-v") || !strcmp(opt, "--verbose")) return ro->verbose = true, 1;
    if (strcmp(opt, "--remote") && strcmp(opt, "--model") && strcmp(opt, "--api-key-env") && strcmp(opt, "--ca-bundle") &&
        strcmp(opt, "--timeout"))
        return 0;
    const char *v = cli_option_value(cmd, argc, argv, i);
    if (!v) return 2;
    if (!strcmp(opt, "--remote")) ro->base_url = v;
    else if (!strcmp(opt, "--model")) ro->model = v;
    else if (!strcmp(opt, "--ca-bundle")) ro->ca_bundle = v;
    else if (!strcmp(opt, "--api-key-env")) {
        /* Keys stay out of argv (visible in ps); only the variable's name is passed. */
        ro->api_key = getenv(v);
        if (!ro->api_key) return cli_usage_error(cmd, "environment variable %s is not set", v);
    } else {
        float t = 0;
        if (parse_float(cmd, opt, v, &t) || t <= 0) return t <= 0 ? cli_usage_error(cmd, "--timeout needs a positive number of seconds") : 2;
        ro->timeout = t;
    }
    return 1;
}

cinfer_model *cli_open_model(const char *cmd, const char *path, cinfer_remote_options *ro, const gen_args *ga,
                             const volatile sig_atomic_t *cancel) {
    cinfer_error err = {0};
    cinfer_model *m;
    if (ro->base_url) {
        ro->cancel = cancel;
        m = cinfer_model_open_remote(ro, &err);
    } else {
        cinfer_model_options mo;
        cinfer_model_options_init(&mo);
        mo.n_threads = ga->n_threads;
        mo.max_model_len = ga->ctx_size;
        mo.show_progress = true;
        if (!(path = cli_resolve_model(cmd, path))) return NULL;
        m = cinfer_model_load(path, &mo, &err);
    }
    if (!m) fprintf(stderr, "cinfer %s: %s\n", cmd, err.message);
    return m;
}
