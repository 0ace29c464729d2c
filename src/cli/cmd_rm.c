/*
 * cmd_rm.c — `cinfer rm NAME [--revision R]`: removes a cached model's
 * snapshot; blobs another snapshot still links to stay.
 */
#include "commands.h"
#include "cinfer.h"

#include <stdio.h>
#include <string.h>

#define CMD "rm"

int cmd_rm(int argc, char **argv) {
    const char *name = NULL, *rev = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("usage: cinfer rm NAME [--revision R]\n\n"
                   "Removes NAME from the cache (every snapshot, or the one REVISION points to). Files\n"
                   "shared with a snapshot that stays are kept. 'cinfer list' shows the names.\n");
            return 0;
        }
        if (!strcmp(a, "--revision")) {
            if (!(rev = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (a[0] == '-') return cli_usage_error(CMD, "unknown option '%s'", a);
        else if (name) return cli_usage_error(CMD, "unexpected argument '%s'", a);
        else name = a;
    }
    if (!name) return cli_usage_error(CMD, "NAME is required");
    cinfer_error err = {0};
    uint64_t freed = 0;
    if (cinfer_hub_remove(name, rev, &freed, &err) != 0) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        return 1;
    }
    printf("removed %s (%.2f GB freed)\n", name, (double)freed / 1e9);
    return 0;
}
