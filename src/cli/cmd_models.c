/*
 * cmd_models.c — `cinfer models --remote URL`: lists an OpenAI-compatible
 * endpoint's models (GET /models), one id per line, or the raw JSON.
 * Mostly a connectivity check: it exercises the same configuration, TLS,
 * key handling and retries as a chat turn.
 */
#include "commands.h"
#include "cinfer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char HELP[] =
    "usage: cinfer models [--remote URL] [OPTIONS]\n\n"
    "Lists the models an OpenAI-compatible endpoint serves.\n\n"
    "  --remote URL        base URL, e.g. https://api.siliconflow.cn/v1\n"
    "                      (default: $OPENAI_BASE_URL, else https://api.openai.com/v1)\n"
    "  --api-key-env NAME  read the API key from this environment variable\n"
    "                      (default: $OPENAI_API_KEY, else $CINFER_API_KEY; never printed)\n"
    "  --ca-bundle FILE    also trust the CA certificates in this PEM file\n"
    "  --timeout S         whole request, seconds (default 600)\n"
    "  --json              print the endpoint's \"data\" array as JSON\n"
    "  -v, --verbose       request summary on stderr (the key masked)\n";

int cmd_models(int argc, char **argv) {
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(HELP, stdout);
            return 0;
        } else if (strcmp(a, "--remote") == 0) {
            if (!(ro.base_url = cli_option_value("models", argc, argv, &i))) return 2;
        } else if (strcmp(a, "--api-key-env") == 0) {
            const char *name = cli_option_value("models", argc, argv, &i);
            if (!name) return 2;
            ro.api_key = getenv(name);
            if (!ro.api_key) return cli_usage_error("models", "environment variable %s is not set", name);
        } else if (strcmp(a, "--ca-bundle") == 0) {
            if (!(ro.ca_bundle = cli_option_value("models", argc, argv, &i))) return 2;
        } else if (strcmp(a, "--timeout") == 0) {
            const char *v = cli_option_value("models", argc, argv, &i);
            if (!v) return 2;
            ro.timeout = atof(v);
            if (ro.timeout <= 0) return cli_usage_error("models", "--timeout needs a positive number of seconds");
        } else if (strcmp(a, "--json") == 0) {
            as_json = true;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            ro.verbose = true;
        } else {
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
