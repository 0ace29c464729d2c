/*
 * cmd_bench.c — `cinfer bench`: llama-bench-style throughput of the forward
 * pass on one checkpoint (cinfer_bench_*, cinfer.h, states what pp and tg
 * measure). This file parses the options and prints the table or JSON.
 */
#include "commands.h"
#include "cinfer.h"

#include <stdlib.h>
#include <string.h>

#define CMD "bench"

static void usage(FILE *out) {
    cinfer_bench_options d;
    cinfer_bench_options_init(&d);
    fprintf(out,
            "usage: cinfer " CMD " MODEL [options]\n\n"
            "Measures prompt processing (pp) and generation (tg) speed like llama-bench.\n\n"
            "  -p, --n-prompt N   prompt tokens in one forward (default %d; 0 skips pp)\n"
            "  -n, --n-gen N      decode steps of one token (default %d; 0 skips tg)\n"
            "  -t, --threads N    threads (default: CINFER_THREADS or all CPUs)\n"
            "  -r, --repetitions N  timed runs per test; the median is reported (default %d)\n"
            "  -b, --batch S      sequences decoding together in tg; aggregate t/s (default %d)\n"
            "  --json             print one JSON object instead of a table\n",
            d.n_prompt, d.n_gen, d.repetitions, d.n_seqs);
}

static bool parse_int(const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > 1000000) return false;
    *out = (int)v;
    return true;
}

/* Returns -1 for --help, 0 ok, 2 usage error (printed). */
static int parse_args(int argc, char **argv, const char **path, cinfer_bench_options *o, bool *json) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return -1;
        int *dst = NULL, lo = 0;
        if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) dst = &o->n_prompt;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) dst = &o->n_gen;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { dst = &o->n_threads; lo = 1; }
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) { dst = &o->repetitions; lo = 1; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) { dst = &o->n_seqs; lo = 1; }
        else if (!strcmp(a, "--json")) { *json = true; continue; }
        else if (a[0] == '-') return cli_usage_error(CMD, "unknown option '%s'", a);
        else if (!*path) { *path = a; continue; }
        else return cli_usage_error(CMD, "unexpected argument '%s'", a);
        const char *v = cli_option_value(CMD, argc, argv, &i);
        if (!v) return 2;
        if (!parse_int(v, lo, dst)) return cli_usage_error(CMD, "bad value '%s' for %s", v, a);
    }
    if (!*path) {
        usage(stderr);
        return 2;
    }
    if (o->n_prompt == 0 && o->n_gen == 0) return cli_usage_error(CMD, "nothing to do (-p 0 -n 0)");
    if (o->n_seqs > CINFER_BENCH_MAX_SEQS)
        return cli_usage_error(CMD, "-b %d: at most %d sequences", o->n_seqs, CINFER_BENCH_MAX_SEQS);
    return 0;
}

static void print_results(const char *path, const cinfer_bench_options *o, const cinfer_bench_info *in,
                          const cinfer_bench_stat *pp, const cinfer_bench_stat *tg, bool json) {
    if (json) {
        printf("{\"model\":\"%s\",\"type\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,\"reps\":%d,"
               "\"n_prompt\":%d,\"n_gen\":%d,\"batch\":%d,\"pp_tps\":%.3f,\"pp_min\":%.3f,\"pp_max\":%.3f,"
               "\"tg_tps\":%.3f,\"tg_min\":%.3f,\"tg_max\":%.3f}\n",
               path, in->weight_type, in->kernels, in->n_threads, o->repetitions, o->n_prompt, o->n_gen, o->n_seqs,
               pp->median, pp->min, pp->max, tg->median, tg->min, tg->max);
        return;
    }
    printf("| %-6s | %7s | %-16s | %-7s | %12s | %17s |\n", "type", "threads", "kernels", "test", "t/s (median)",
           "min .. max");
    if (o->n_prompt > 0)
        printf("| %-6s | %7d | %-16s | pp%-5d | %12.2f | %7.2f .. %7.2f |\n", in->weight_type, in->n_threads,
               in->kernels, o->n_prompt, pp->median, pp->min, pp->max);
    if (o->n_gen > 0 && o->n_seqs == 1)
        printf("| %-6s | %7d | %-16s | tg%-5d | %12.2f | %7.2f .. %7.2f |\n", in->weight_type, in->n_threads,
               in->kernels, o->n_gen, tg->median, tg->min, tg->max);
    else if (o->n_gen > 0)
        printf("| %-6s | %7d | %-16s | tg%d×%d | %12.2f | %7.2f .. %7.2f |\n", in->weight_type, in->n_threads,
               in->kernels, o->n_gen, o->n_seqs, tg->median, tg->min, tg->max);
}

int cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    bool json = false;
    cinfer_bench_options o;
    cinfer_bench_options_init(&o);
    int rc = parse_args(argc, argv, &path, &o, &json);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    cinfer_error err = {0};
    if (!(path = cli_resolve_model(CMD, path))) return 1;
    cinfer_bench *b = cinfer_bench_open(path, &o, &err);
    if (!b) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        return 1;
    }
    cinfer_bench_info in;
    cinfer_bench_get_info(b, &in);
    if (!json)
        fprintf(stderr, "cinfer bench: %s (%s, %d layers, hidden %d), kernels %s, %d threads, %d reps (load %.2f s)\n",
                path, in.weight_type, in.n_layers, in.hidden, in.kernels, in.n_threads, o.repetitions, in.load_seconds);
    cinfer_bench_stat pp = {0}, tg = {0};
    if ((o.n_prompt > 0 && cinfer_bench_run_pp(b, &pp, &err) != CINFER_OK) ||
        (o.n_gen > 0 && cinfer_bench_run_tg(b, &tg, &err) != CINFER_OK)) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        cinfer_bench_free(b);
        return 1;
    }
    print_results(path, &o, &in, &pp, &tg, json);
    cinfer_bench_free(b);
    return 0;
}
