/*
 * gen_args.h — the generation flags shared by `cinfer run` and `cinfer chat`
 * (and their --remote forms): one parser, one help text.
 */
#ifndef CINFER_CLI_GEN_ARGS_H
#define CINFER_CLI_GEN_ARGS_H

#include <signal.h>
#include <stdio.h>

#include "cinfer.h"

#define GEN_ARGS_MAX_STOP 16

typedef struct gen_args {
    cinfer_gen_options gen;
    const char *stop[GEN_ARGS_MAX_STOP];
    const char *system;
    int n_threads;
    int ctx_size;
    char *constraint_file;    /* the text of --json-schema / --grammar FILE (owned) */
} gen_args;

void gen_args_init(gen_args *a);
/* Tries to consume argv[*i] (and its value). Returns 1 when consumed, 0 when
 * the option is not a generation option, 2 on a usage error (printed). */
int gen_args_parse(gen_args *a, const char *cmd, int argc, char **argv, int *i);
/* Prints the help lines of these options (defaults from CINFER_DEFAULTS). */
void gen_args_help(FILE *out);
/* Structured output (`cinfer run`): --json-schema FILE | --regex RE |
 * --grammar FILE | --choice JSON; same return convention. */
int constraint_args_parse(gen_args *a, const char *cmd, int argc, char **argv, int *i);
void constraint_args_help(FILE *out);
void gen_args_free(gen_args *a);

/* Flags that select and configure a remote OpenAI-compatible endpoint:
 * --remote URL, --model NAME, --api-key-env VAR, --ca-bundle FILE,
 * --timeout S, -v/--verbose. Same return convention as gen_args_parse. */
int remote_args_parse(cinfer_remote_options *ro, const char *cmd, int argc, char **argv, int *i);
void remote_args_help(FILE *out);

/* Opens the model a command line names: the remote endpoint when --remote
 * was given (cancel: polled while a request runs), else the local checkpoint
 * at `path` with the generation flags' threads and context size. Prints the
 * error as "cinfer CMD: ..." and returns NULL on failure. */
cinfer_model *cli_open_model(const char *cmd, const char *path, cinfer_remote_options *ro, const gen_args *ga,
                             const volatile sig_atomic_t *cancel);

#endif
