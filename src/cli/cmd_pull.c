/*
 * cmd_pull.c — `cinfer pull NAME`, and the name → path step every command
 * that takes a MODEL runs (cli_resolve_model).
 *
 * The download itself is cinfer_hub_pull (src/hub); this file only renders
 * its progress: on a terminal one bar per file in flight plus a total with
 * rate and ETA, redrawn in place at most ten times a second; otherwise plain
 * lines (one per finished file, a total every ten seconds) that read well in
 * logs. Ctrl-C stops the transfers and leaves the partial files, so running
 * the same command again resumes them.
 */
#include "commands.h"
#include "cinfer.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "pull"
#define MAX_SHOWN 8

bool cli_pull_first;
static volatile sig_atomic_t g_cancel;
static void on_sigint(int sig) { g_cancel = 1; }

static void usage(FILE *out) {
    fprintf(out,
            "usage: cinfer pull NAME [options]\n\n"
            "Downloads a model into the Hugging Face cache ($HF_HOME/hub, shared with huggingface-cli and\n"
            "transformers) or ModelScope's ($MODELSCOPE_CACHE). Files already there are not fetched again;\n"
            "an interrupted pull resumes. Afterwards every command takes NAME where it takes a MODEL path.\n\n"
            "NAME:\n"
            "  ORG/REPO                 the files a run needs (config, tokenizer, safetensors)\n"
            "  ORG/REPO-GGUF:QUANT      one GGUF quant (split files included), e.g. :Q4_K_M\n"
            "  modelscope:ORG/REPO      from ModelScope\n\n"
            "options:\n"
            "  --revision R             branch, tag or commit (default main; ModelScope master)\n"
            "  --source hf|modelscope   where to download from (default hf, or the NAME's prefix)\n"
            "  --include GLOB           fetch the files matching GLOB instead of the default set (repeatable)\n"
            "  --exclude GLOB           leave out files matching GLOB (repeatable)\n"
            "  --connections N          files downloaded in parallel (default %d)\n"
            "  --retries N              tries after a failure, per file (default %d)\n"
            "  --timeout S              a transfer stalled for S seconds fails (default %g)\n"
            "  --quiet                  no progress output\n\n"
            "environment: HF_ENDPOINT (mirror), HF_TOKEN or $HF_HOME/token (gated repos), HF_HOME, HF_HUB_CACHE,\n"
            "HF_HUB_OFFLINE=1 (no network), MODELSCOPE_CACHE, MODELSCOPE_DOMAIN.\n",
            4, 5, 60.0);
}

/* ------------------------------------------------------------ progress */

typedef struct shown {
    char name[64];
    uint64_t done, total;
    bool finished;
} shown;

typedef struct progress {
    bool tty, quiet;
    double t0, last_draw, last_line;
    int lines_drawn;
    shown files[MAX_SHOWN];
    cinfer_hub_progress last;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void human(uint64_t b, char *out, size_t cap) {
    if (b >= 1000000000ull) snprintf(out, cap, "%.2f GB", (double)b / 1e9);
    else if (b >= 1000000ull) snprintf(out, cap, "%.1f MB", (double)b / 1e6);
    else snprintf(out, cap, "%.1f kB", (double)b / 1e3);
}

static void bar(char *out, int width, uint64_t done, uint64_t total) {
    int fill = total ? (int)((double)done / (double)total * width) : width;
    if (fill > width) fill = width;
    for (int i = 0; i < width; i++) out[i] = i < fill ? '#' : '.';
    out[width] = '\0';
}

static shown *slot(progress *pg, const char *name) {
    shown *free_slot = NULL;
    for (int i = 0; i < MAX_SHOWN; i++) {
        if (pg->files[i].name[0] && !strncmp(pg->files[i].name, name, sizeof pg->files[i].name - 1))
            return &pg->files[i];
        if (!free_slot && (!pg->files[i].name[0] || pg->files[i].finished)) free_slot = &pg->files[i];
    }
    if (free_slot) {
        memset(free_slot, 0, sizeof *free_slot);
        snprintf(free_slot->name, sizeof free_slot->name, "%s", name);
    }
    return free_slot;
}

static void total_line(const progress *pg, char *out, size_t cap) {
    const cinfer_hub_progress *p = &pg->last;
    double el = now_s() - pg->t0, rate = el > 0.5 ? (double)p->done / el : 0;
    char d[32], t[32], r[32], eta[32] = "--";
    human(p->done, d, sizeof d), human(p->total, t, sizeof t), human((uint64_t)rate, r, sizeof r);
    if (rate > 0 && p->total > p->done) {
        double s = (double)(p->total - p->done) / rate;
        snprintf(eta, sizeof eta, "%dm%02ds", (int)(s / 60), (int)s % 60);
    }
    snprintf(out, cap, "%3d%%  %s / %s  %s/s  ETA %s  (%d/%d files)",
             p->total ? (int)(100.0 * (double)p->done / (double)p->total) : 100, d, t, r, eta, p->files_done,
             p->files_total);
}

static void draw(progress *pg) {
    if (pg->lines_drawn) fprintf(stderr, "\033[%dA", pg->lines_drawn);
    int lines = 0;
    char b[41], d[32], t[32], line[160];
    for (int i = 0; i < MAX_SHOWN; i++) {
        shown *s = &pg->files[i];
        if (!s->name[0] || s->finished) continue;
        bar(b, 24, s->done, s->total);
        human(s->done, d, sizeof d), human(s->total, t, sizeof t);
        fprintf(stderr, "\r\033[K%-40.40s [%s] %s / %s\n", s->name, b, d, t);
        lines++;
    }
    bar(b, 40, pg->last.done, pg->last.total);
    total_line(pg, line, sizeof line);
    fprintf(stderr, "\r\033[Ktotal [%s] %s\n", b, line);
    lines++;
    for (int i = lines; i < pg->lines_drawn; i++) fprintf(stderr, "\r\033[K\n"); /* clear leftovers */
    if (pg->lines_drawn > lines) fprintf(stderr, "\033[%dA", pg->lines_drawn - lines);
    pg->lines_drawn = lines;
    fflush(stderr);
}

static void on_progress(const cinfer_hub_progress *p, void *user) {
    progress *pg = user;
    if (pg->quiet) return;
    pg->last = *p;
    double t = now_s();
    shown *s = p->file ? slot(pg, p->file) : NULL;
    if (s) s->done = p->file_done, s->total = p->file_total;
    char d[32], line[160];
    switch (p->event) {
    case CINFER_HUB_PLAN:
        human(p->total, d, sizeof d);
        fprintf(stderr, "pull: %d files, %s\n", p->files_total, d);
        return;
    case CINFER_HUB_RETRY:
        if (pg->tty && pg->lines_drawn) fprintf(stderr, "\033[%dA\033[J", pg->lines_drawn), pg->lines_drawn = 0;
        fprintf(stderr, "pull: %s: %s; retrying in %.1fs\n", p->file ? p->file : "", p->note ? p->note : "", p->wait_s);
        return;
    case CINFER_HUB_FILE_DONE:
        if (s) s->finished = true;
        if (!pg->tty) {
            human(p->file_total, d, sizeof d);
            fprintf(stderr, "pull: %s (%s) ok\n", p->file, d);
            return;
        }
        break;
    case CINFER_HUB_BYTES:
        if (!pg->tty) {
            if (t - pg->last_line < 10) return;
            pg->last_line = t;
            total_line(pg, line, sizeof line);
            fprintf(stderr, "pull: %s\n", line);
            return;
        }
        if (t - pg->last_draw < 0.1) return;
        break;
    }
    pg->last_draw = t;
    draw(pg);
}

/* ------------------------------------------------------------ commands */

static char *pull_name(const char *cmd, const char *name, const cinfer_hub_options *o, bool quiet) {
    progress pg = {.tty = isatty(STDERR_FILENO), .quiet = quiet, .t0 = now_s()};
    cinfer_hub_options opts = *o;
    opts.progress = on_progress;
    opts.progress_user = &pg;
    opts.cancel = &g_cancel;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    cinfer_error err = {0};
    char *path = NULL;
    int rc = cinfer_hub_pull(name, &opts, &path, &err);
    sigaction(SIGINT, &old, NULL);
    if (pg.tty && !quiet && pg.lines_drawn) draw(&pg);
    if (rc) {
        fprintf(stderr, "cinfer %s: %s\n", cmd, err.message);
        if (g_cancel) fprintf(stderr, "cinfer %s: run the same command again to resume\n", cmd);
        return NULL;
    }
    return path;
}

static char *g_resolved; /* one model per process; kept for its lifetime */

const char *cli_resolve_model(const char *cmd, const char *name) {
    if (cli_pull_first && cinfer_hub_is_model_name(name)) {
        cinfer_hub_options o;
        cinfer_hub_options_init(&o);
        char *p = pull_name(cmd, name, &o, false);
        if (!p) return NULL;
        free(g_resolved);
        return g_resolved = p;
    }
    cinfer_error err = {0};
    char *p = cinfer_resolve_model(name, &err);
    if (!p) {
        fprintf(stderr, "cinfer %s: %s\n", cmd, err.message);
        return NULL;
    }
    free(g_resolved);
    return g_resolved = p;
}

int cmd_pull(int argc, char **argv) {
    cinfer_hub_options o;
    cinfer_hub_options_init(&o);
    const char *name = NULL, *incl[32], *excl[32];
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) { quiet = true; continue; }
        if (a[0] != '-') {
            if (name) return cli_usage_error(CMD, "unexpected argument '%s'", a);
            name = a;
            continue;
        }
        if (strcmp(a, "--revision") && strcmp(a, "--source") && strcmp(a, "--include") && strcmp(a, "--exclude") &&
            strcmp(a, "--connections") && strcmp(a, "--retries") && strcmp(a, "--timeout"))
            return cli_usage_error(CMD, "unknown option '%s'", a);
        if (!(v = cli_option_value(CMD, argc, argv, &i))) return 2;
        char *end;
        if (!strcmp(a, "--revision")) o.revision = v;
        else if (!strcmp(a, "--source")) o.source = v;
        else if (!strcmp(a, "--include") || !strcmp(a, "--exclude")) {
            size_t *n = a[2] == 'i' ? &o.n_include : &o.n_exclude;
            if (*n >= 32) return cli_usage_error(CMD, "at most 32 %s patterns", a);
            (a[2] == 'i' ? incl : excl)[(*n)++] = v;
        } else if (!strcmp(a, "--timeout")) {
            o.stall_timeout_s = strtod(v, &end);
            if (*end || !(o.stall_timeout_s >= 1 && o.stall_timeout_s <= 3600))
                return cli_usage_error(CMD, "--timeout takes 1..3600 seconds");
        } else {
            long n = strtol(v, &end, 10);
            bool conn = !strcmp(a, "--connections");
            if (*end || !*v || n < (conn ? 1 : 0) || n > (conn ? 64 : 100))
                return cli_usage_error(CMD, "%s takes %s", a, conn ? "1..64" : "0..100");
            if (conn) o.connections = (int)n;
            else o.max_retries = (int)n;
        }
    }
    if (!name) return cli_usage_error(CMD, "NAME is required (e.g. Qwen/Qwen3-0.6B)");
    o.include = incl, o.exclude = excl;
    char *path = pull_name(CMD, name, &o, quiet);
    if (!path) return 1;
    printf("%s\n", path);
    if (!quiet) fprintf(stderr, "pull: done; use it as 'cinfer run %s' or 'cinfer chat %s'\n", name, name);
    free(path);
    return 0;
}
