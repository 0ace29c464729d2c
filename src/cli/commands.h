/*
 * commands.h — the `cinfer` subcommands. Each takes argv starting at the
 * subcommand name, handles its own --help, and returns the process exit code
 * (0 ok, 1 runtime failure, 2 usage error).
 */
#ifndef CINFER_CLI_COMMANDS_H
#define CINFER_CLI_COMMANDS_H

int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_make_test_model(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);

/* Shared helpers for the command implementations (cli_common.c). */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
/* true when argv[i] is -h or --help */
bool cli_is_help(const char *arg);
/* Prints "cinfer CMD: message" plus a hint to stderr; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fetches the value after option argv[*i]; returns NULL (and prints) when missing. */
const char *cli_option_value(const char *cmd, int argc, char **argv, int *i);
/* Reads all of file `path` ("-": stdin), at most `max` bytes, NUL-terminated,
 * length in *len; free() it. On failure prints "cinfer CMD: PATH: why" and
 * returns NULL. (The CLI's own reader: commands use cinfer.h, not src/util.) */
char *cli_read_input(const char *cmd, const char *path, size_t max, size_t *len);
/* MODEL argument → path: an existing path as is, a model name from the caches
 * (downloaded first when cli_pull_first, set by main for --pull). Prints why
 * and returns NULL when it cannot (cmd_pull.c). */
extern bool cli_pull_first;
const char *cli_resolve_model(const char *cmd, const char *name);

#endif
