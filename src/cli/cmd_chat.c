/*
 * cmd_chat.c — `cinfer chat MODEL` / `cinfer chat --remote URL`: an
 * interactive multi-turn chat. History (user and assistant turns, the
 * assistant's final answer only, as the Qwen3 card recommends) is resent each
 * turn through the model's chat template; a local model's prefix cache makes
 * that cheap. Line editing and history come from libedit. Ctrl-C stops the
 * answer being generated, not the program.
 *
 * Commands: /reset, /system TEXT, /think on|off, /help, /exit.
 */
#include "commands.h"
#include "gen_args.h"

#include <editline/readline.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

static void usage(FILE *out) {
    fprintf(out,
            "usage: cinfer chat MODEL [options]\n"
            "       cinfer chat --remote URL [--model NAME] [options]\n\n"
            "Interactive chat with a local model (Hugging Face folder or GGUF) or an\n"
            "OpenAI-compatible endpoint (key from $OPENAI_API_KEY). Thinking is shown dimmed.\n\n"
            "options:\n");
    gen_args_help(out);
    remote_args_help(out);
    fprintf(out,
            "\n"
            "commands inside the chat:\n"
            "  /reset                forget the conversation\n"
            "  /system TEXT          set the system prompt (and reset)\n"
            "  /think on|off         enable_thinking for the next turns\n"
            "  /exit                 leave (also Ctrl-D)\n");
}

typedef struct turn {
    char *role;
    char *content;
} turn;

typedef struct history {
    turn *turns;
    size_t n, cap;
} history;

static void history_add(history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->turns = realloc(h->turns, h->cap * sizeof *h->turns);
        if (!h->turns) abort();
    }
    h->turns[h->n].role = strdup(role);
    h->turns[h->n].content = strdup(content);
    h->n++;
}

static void history_clear(history *h) {
    for (size_t i = 0; i < h->n; i++) free(h->turns[i].role), free(h->turns[i].content);
    h->n = 0;
}

typedef struct printer {
    bool tty;
    bool in_thinking;
} printer;

static bool print_delta(void *user, const char *thinking, size_t tl, const char *content, size_t cl) {
    printer *p = user;
    if (tl) {
        if (!p->in_thinking) fputs(p->tty ? "\033[2m" : "<think>\n", stdout), p->in_thinking = true;
        fwrite(thinking, 1, tl, stdout);
    }
    if (cl) {
        if (p->in_thinking) fputs(p->tty ? "\033[0m\n\n" : "\n</think>\n\n", stdout), p->in_thinking = false;
        fwrite(content, 1, cl, stdout);
    }
    fflush(stdout);
    return !interrupted;
}

/* Reads one line: libedit on a terminal, plain getline otherwise (pipes, tests). */
static char *read_line(bool tty, const char *prompt) {
    if (tty) {
        char *line = readline(prompt);
        if (line && *line) add_history(line);
        return line;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    return line;
}

int cmd_chat(int argc, char **argv) {
    const char *model_path = NULL;
    gen_args ga;
    gen_args_init(&ga);
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) return usage(stdout), 0;
        int g = gen_args_parse(&ga, "chat", argc, argv, &i);
        if (g == 0) g = remote_args_parse(&ro, "chat", argc, argv, &i);
        if (g == 2) return 2;
        if (g == 1) continue;
        if (a[0] == '-') {
            return cli_usage_error("chat", "unknown option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else {
            return cli_usage_error("chat", "unexpected argument '%s'", a);
        }
    }
    if (!model_path == !ro.base_url) return cli_usage_error("chat", "give either MODEL or --remote URL");

    cinfer_model *m = cli_open_model("chat", model_path, &ro, &ga, &interrupted);
    if (!m) return 1;
    cinfer_error err = {0};
    bool tty_in = isatty(STDIN_FILENO);
    printer pr = {.tty = isatty(STDOUT_FILENO)};
    ga.gen.on_delta = print_delta;
    ga.gen.user = &pr;
    char *system = ga.system ? strdup(ga.system) : NULL;
    history h = {0};
    if (tty_in) fprintf(stderr, "%s\n/help for commands, Ctrl-D to leave.\n", cinfer_model_describe(m));

    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: Ctrl-C interrupts a blocking read too */

    int rc = 0;
    for (;;) {
        interrupted = 0;
        char *line = read_line(tty_in, ">>> ");
        if (!line) {
            if (interrupted) { /* Ctrl-C at the prompt: a fresh prompt, not an exit */
                fputc('\n', stderr);
                continue;
            }
            break;
        }
        if (!*line) {
            free(line);
            continue;
        }
        if (line[0] == '/') {
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit") || !strcmp(line, "/bye")) {
                free(line);
                break;
            } else if (!strcmp(line, "/reset")) {
                history_clear(&h);
                fprintf(stderr, "(conversation cleared)\n");
            } else if (!strncmp(line, "/system", 7) && (line[7] == ' ' || line[7] == '\0')) {
                free(system);
                system = line[7] ? strdup(line + 8) : NULL;
                history_clear(&h);
                fprintf(stderr, "(system prompt %s; conversation cleared)\n", system ? "set" : "removed");
            } else if (!strcmp(line, "/think on")) {
                ga.gen.enable_thinking = 1;
                fprintf(stderr, "(thinking on)\n");
            } else if (!strcmp(line, "/think off")) {
                ga.gen.enable_thinking = 0;
                fprintf(stderr, "(thinking off)\n");
            } else if (!strcmp(line, "/help")) {
                fprintf(stderr, "/reset  /system TEXT  /think on|off  /exit\n");
            } else {
                fprintf(stderr, "unknown command %s (/help lists them)\n", line);
            }
            free(line);
            continue;
        }
        cinfer_message *msgs = calloc(h.n ? h.n : 1, sizeof *msgs);
        for (size_t i = 0; i < h.n; i++) msgs[i] = (cinfer_message){.role = h.turns[i].role, .content = h.turns[i].content};
        cinfer_result r;
        pr.in_thinking = false;
        int crc = cinfer_chat(m, msgs, h.n, system, line, &ga.gen, &r, &err);
        free(msgs);
        if (pr.in_thinking) fputs(pr.tty ? "\033[0m" : "\n</think>", stdout);
        fputc('\n', stdout);
        fflush(stdout);
        if (crc != CINFER_OK) {
            fprintf(stderr, "cinfer chat: %s\n", err.message);
            free(line);
            if (!tty_in) { rc = 1; break; }
            continue;
        }
        if (!strcmp(r.finish_reason, "cancelled")) {
            fprintf(stderr, "(stopped)\n");
        } else {
            /* Only completed turns join the history. */
            history_add(&h, "user", line);
            history_add(&h, "assistant", r.content);
        }
        cinfer_result_free(&r);
        free(line);
    }
    signal(SIGINT, SIG_DFL);
    history_clear(&h);
    free(h.turns);
    free(system);
    cinfer_model_free(m);
    return rc;
}
