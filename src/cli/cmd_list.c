/*
 * cmd_list.c — `cinfer list`: the models in the Hugging Face and ModelScope
 * caches, one line per snapshot, with the name the other commands accept.
 */
#include "commands.h"
#include "cinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "list"

int cmd_list(int argc, char **argv) {
    bool paths = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: cinfer list [--paths]\n\n"
                   "Lists the models cached by 'cinfer pull', huggingface-cli, transformers or ModelScope\n"
                   "($HF_HOME/hub, $MODELSCOPE_CACHE): name, format, size on disk, revision (ref @ commit).\n"
                   "  --paths   also print each snapshot's folder\n");
            return 0;
        }
        if (!strcmp(argv[i], "--paths")) paths = true;
        else return cli_usage_error(CMD, "unexpected argument '%s'", argv[i]);
    }
    cinfer_hub_entry *e = NULL;
    size_t n = 0;
    cinfer_error err = {0};
    if (cinfer_hub_list(&e, &n, &err) != 0) {
        fprintf(stderr, "cinfer " CMD ": %s\n", err.message);
        return 1;
    }
    if (n == 0) fprintf(stderr, "no cached models (cinfer pull ORG/NAME downloads one)\n");
    else printf("%-48s %-12s %10s  %s\n", "NAME", "FORMAT", "SIZE", "REVISION");
    for (size_t i = 0; i < n; i++) {
        printf("%-48s %-12s %7.2f GB  %s\n", e[i].name, e[i].format, (double)e[i].bytes / 1e9, e[i].revision);
        if (paths) printf("    %s\n", e[i].path);
    }
    cinfer_free(e);
    return 0;
}
