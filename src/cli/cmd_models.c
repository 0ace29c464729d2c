/*
 * cmd_models.c — `cinfer models --remote URL`: lists an OpenAI-compatible
 * endpoint's models (GET /models), one id per line, or the raw JSON.
 * Mostly a connectivity check: it exercises the same configuration, TLS,
 * key handling and retries as a chat turn.
 */
#include "commands.h"
#include "gen_args.h"
#include "cinfer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    printf("usage: cinfer models [--remote URL] [OPTIONS]\n\n"
           "Lists the models an OpenAI-compatible endpoint serves (default endpoint:\n"
           "$OPENAI_BASE_URL, else %s).\n\n",
           CINFER_DEFAULTS.remote.base_url);
    remote_args_help(stdout);
    printf("  --json                print the endpoint's \"data\" array as JSON\n");
}

int cmd_models(int argc, char **argv) {
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage();
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            as_json = true;
        } else {
            int r = remote_args_parse(&ro, "models", argc, argv, &i);
            if (r == 1) continue;
            if (r == 2) return 2;
            return cli_usage_error("models", "unknown option '%s'", a);
        }
    }
    cinfer_error err = {0};
    char *text = cinfer_remote_list_models(&ro, &err);
    if (!text) {
        fprintf(stderr, "cinfer models: %s\n", err.message);
        return 1;
    }
    if (as_json) {
        printf("%s\n", text);
    } else {
        json_t *data = json_loads(text, 0, NULL);
        size_t i;
        json_t *m;
        json_array_foreach(data, i, m) {
            const char *id = json_string_value(json_object_get(m, "id"));
            /* Ids come from the server: print only plain printable text. */
            if (!id) continue;
            for (const char *p = id; *p; p++) putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
            putchar('\n');
        }
        json_decref(data);
    }
    cinfer_free(text);
    return 0;
}
