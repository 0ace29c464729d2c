/*
 * cmd_template.c — `cinfer template`: render a chat template with a JSON
 * context and print the result byte for byte (no newline added), so the
 * output can be compared with transformers' apply_chat_template.
 */
#include "commands.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cinfer.h"

static const char *const CMD = "template";

static void print_help(FILE *out) {
    fprintf(out,
            "usage: cinfer template (--template FILE | --model PATH) --context CONTEXT.json\n"
            "\n"
            "Renders a Jinja2 chat template the way Hugging Face transformers'\n"
            "apply_chat_template does and prints the text exactly, without adding a newline.\n"
            "\n"
            "  --template FILE    a Jinja2 template file\n"
            "  --model PATH       a model folder (chat_template.jinja or tokenizer_config.json)\n"
            "                     or a tokenizer_config.json; the model's bos_token and\n"
            "                     eos_token are added to the context unless it has them\n"
            "  --context FILE     JSON object with the template variables: messages, tools,\n"
            "                     add_generation_prompt, enable_thinking, ... ('-' = stdin)\n"
            "  -h, --help         show this help\n"
            "\n"
            "Exit status: 0 rendered, 1 template/IO error (message on stderr), 2 usage error.\n");
}

/* Input caps: far above any real template or context, below memory trouble. */
#define MAX_TEMPLATE_BYTES ((size_t)16 << 20)
#define MAX_CONTEXT_BYTES ((size_t)256 << 20)

int cmd_template(int argc, char **argv) {
    const char *template_path = NULL, *model_path = NULL, *context_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            print_help(stdout);
            return 0;
        } else if (strcmp(argv[i], "--template") == 0) {
            if (!(template_path = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--model") == 0) {
            if (!(model_path = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--context") == 0) {
            if (!(context_path = cli_option_value(CMD, argc, argv, &i))) return 2;
        } else {
            return cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
        }
    }
    if (!template_path == !model_path) return cli_usage_error(CMD, "give exactly one of --template or --model");
    if (!context_path) return cli_usage_error(CMD, "--context is required");

    cinfer_error err = {0};
    cinfer_chat_template_source src = {0};
    char *template_text = NULL;
    size_t template_len = 0;
    if (model_path) {
        if (cinfer_chat_template_source_load(model_path, &src, &err) != 0) {
            fprintf(stderr, "cinfer template: %s\n", err.message);
            return 1;
        }
        template_text = src.template_text;
        template_len = strlen(template_text);
    } else {
        template_text = cli_read_input(CMD, template_path, MAX_TEMPLATE_BYTES, &template_len);
        if (!template_text) return 1;
    }

    int status = 1;
    size_t ctx_len;
    json_t *ctx = NULL;
    cinfer_template *tpl = NULL;
    char *ctx_text = cli_read_input(CMD, context_path, MAX_CONTEXT_BYTES, &ctx_len);
    if (!ctx_text) goto done;
    json_error_t jerr;
    ctx = json_loadb(ctx_text, ctx_len, JSON_ALLOW_NUL, &jerr);
    free(ctx_text);
    if (!ctx || !json_is_object(ctx)) {
        if (ctx) fprintf(stderr, "cinfer template: %s: the context must be a JSON object\n", context_path);
        else fprintf(stderr, "cinfer template: %s: invalid JSON at line %d column %d: %s\n", context_path, jerr.line,
                     jerr.column, jerr.text);
        goto done;
    }
    /* transformers passes the tokenizer's special tokens to the template;
     * the caller's context wins */
    if (model_path) {
        if (src.bos_token && !json_object_get(ctx, "bos_token"))
            json_object_set_new(ctx, "bos_token", json_string(src.bos_token));
        if (src.eos_token && !json_object_get(ctx, "eos_token"))
            json_object_set_new(ctx, "eos_token", json_string(src.eos_token));
    }
    tpl = cinfer_template_parse(template_text, template_len, &err);
    if (!tpl) {
        fprintf(stderr, "cinfer template: %s\n", err.message);
        goto done;
    }
    /* The merged context goes back to text for the public render call (a
     * lossless round trip: jansson keeps key order, escapes NUL, and prints
     * doubles with 17 significant digits). */
    char *merged = json_dumps(ctx, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!merged) {
        fprintf(stderr, "cinfer template: out of memory\n");
        goto done;
    }
    size_t out_len;
    char *out = cinfer_template_render_json(tpl, merged, strlen(merged), &out_len, &err);
    free(merged);
    if (!out) {
        fprintf(stderr, "cinfer template: %s\n", err.message);
        goto done;
    }
    status = fwrite(out, 1, out_len, stdout) == out_len && fflush(stdout) == 0 ? 0 : 1;
    if (status) fprintf(stderr, "cinfer template: failed to write output\n");
    cinfer_free(out);
done:
    cinfer_template_free(tpl);
    json_decref(ctx);
    if (model_path) cinfer_chat_template_source_free(&src);
    else free(template_text);
    return status;
}
