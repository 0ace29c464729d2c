/* cli_common.c — argument helpers shared by the subcommands. */
#include "commands.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "cinfer %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'cinfer %s --help')\n", cmd);
    return 2;
}

const char *cli_option_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

char *cli_read_input(const char *cmd, const char *path, size_t max, size_t *len) {
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cinfer %s: %s: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    size_t n = 0, cap = 0;
    char *data = NULL;
    const char *problem = NULL;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 65536 + 1;
            char *grown = realloc(data, cap);
            if (!grown) {
                problem = "out of memory";
                break;
            }
            data = grown;
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (n > max) {
            problem = "larger than the limit";
            break;
        }
        if (got == 0) {
            if (ferror(f)) problem = strerror(errno ? errno : EIO);
            break;
        }
    }
    if (!is_stdin) fclose(f);
    if (problem) {
        if (n > max) fprintf(stderr, "cinfer %s: %s: more than the limit of %zu bytes\n", cmd, path, max);
        else fprintf(stderr, "cinfer %s: %s: %s\n", cmd, path, problem);
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}
