/*
 * cmd_quantize.c — `cinfer quantize IN OUT --type T`: a Qwen3 checkpoint to a
 * quantized GGUF (cinfer_quantize, cinfer.h; src/model/quantize.c has the
 * rules and the conversion).
 *
 * OUT appears only complete: the file is written as OUT.partial-PID in the
 * same folder and renamed at the end; on an error the library deletes it,
 * and SIGINT/SIGTERM/SIGHUP delete it before the process dies.
 */
#include "commands.h"
#include "cinfer.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "quantize"

static void usage(FILE *out) {
    fprintf(out,
            "usage: cinfer " CMD " IN OUT.gguf --type q8_0|q4_0|q4_k|q6_k|q4_k_m\n\n"
            "Quantizes a Qwen3 checkpoint into a GGUF file that cinfer and llama.cpp load.\n"
            "IN is a Hugging Face folder (config.json, tokenizer.json, tokenizer_config.json,\n"
            "safetensors) or a GGUF file. Types are chosen as llama.cpp's llama-quantize does:\n"
            "  q8_0, q4_0, q4_k, q6_k  every matrix in that type, except the output projection\n"
            "                          (output.weight, or the tied token_embd.weight): Q6_K\n"
            "                          (q8_0: Q8_0)\n"
            "  q4_k_m                  Q4_K; Q6_K for the output projection and for attn_v and\n"
            "                          ffn_down in the first and last eighth of the layers and\n"
            "                          every third layer between (what users download as Q4_K_M)\n"
            "Norm vectors stay F32. A matrix whose rows are not a multiple of 256 (K-quants)\n"
            "falls back to Q8_0 (llama.cpp: Q5_0, which cinfer does not compute), one not a\n"
            "multiple of 32 to F16. Matrices of a GGUF input already in the chosen type are\n"
            "copied unchanged. Uses all cores (CINFER_THREADS caps them).\n\n"
            "  --type T    the scheme (required)\n"
            "  --quiet     no progress line and no summary\n");
}

/* The partial file, removed by the signal handler (async-signal-safe calls only). */
static char g_partial[4096];

static void on_signal(int sig) {
    if (g_partial[0]) unlink(g_partial);
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct progress_state {
    bool tty;
    int last_pct;
    const char *last_name;
} progress_state;

static void on_progress(void *user, const char *tensor, const char *type, uint64_t done, uint64_t total) {
    progress_state *ps = user;
    if (!ps->tty || total == 0) return;
    int pct = (int)(100.0 * (double)done / (double)total);
    if (pct == ps->last_pct && tensor == ps->last_name) return;
    ps->last_pct = pct;
    ps->last_name = tensor;
    fprintf(stderr, "\r\033[Kquantize %3d%%  %s → %s", pct, tensor, type);
    fflush(stderr);
}

static bool is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--type")) {
            if (!(type = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s' (IN and OUT are already given)", a);
        }
    }
    if (!in || !out) return cli_usage_error(CMD, "needs IN and OUT");
    if (!(in = cli_resolve_model(CMD, in))) return 1;
    if (!type) return cli_usage_error(CMD, "missing --type (q8_0, q4_0, q4_k, q6_k, q4_k_m)");
    const char *scheme = cinfer_quantize_scheme_name(type);
    if (!scheme) return cli_usage_error(CMD, "unknown type '%s' (q8_0, q4_0, q4_k, q6_k, q4_k_m)", type);
    size_t n = strlen(out);
    if (n < 5 || strcmp(out + n - 5, ".gguf") != 0)
        return cli_usage_error(CMD, "OUT must end in .gguf (cinfer tells formats by that suffix): '%s'", out);
    if (is_directory(out)) return cli_usage_error(CMD, "OUT '%s' is a folder", out);
    if (same_file(in, out)) return cli_usage_error(CMD, "OUT '%s' is the input file", out);
    int len = snprintf(g_partial, sizeof g_partial, "%s.partial-%ld", out, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof g_partial) return cli_usage_error(CMD, "OUT path is too long");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    progress_state ps = {.tty = !quiet && isatty(STDERR_FILENO), .last_pct = -1};
    cinfer_error err = {0};
    cinfer_quantize_stats st;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = cinfer_quantize(in, g_partial, scheme, on_progress, &ps, &st, &err);
    if (ps.tty && ps.last_pct >= 0) fprintf(stderr, "\r\033[K");
    if (rc == 0 && rename(g_partial, out) != 0) {
        fprintf(stderr, "cinfer " CMD ": %s: cannot rename the finished file into place: %s\n", out, strerror(errno));
        unlink(g_partial);
        g_partial[0] = '\0';
        return 1;
    }
    g_partial[0] = '\0';
    if (rc) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!quiet) {
        printf("%s: %s, %zu tensors:", out, scheme, st.n_tensors);
        for (int t = 0; t < st.n_types; t++) printf(" %zu %s,", st.per_type[t].count, st.per_type[t].type);
        printf(" %zu vectors/copied", st.n_copied);
        if (st.n_fallback) printf(" (%zu matrices fell back: rows not a multiple of the block)", st.n_fallback);
        printf("\n  tensor data %.1f MiB -> %.1f MiB in %.1f s\n", (double)st.in_bytes / 1048576.0,
               (double)st.out_bytes / 1048576.0, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    }
    return 0;
}
