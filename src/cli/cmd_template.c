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
#include "template/template.h"
#include "util/util.h"

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

static char *read_context(const char *path, size_t *len, cinfer_error *err) {
    if (strcmp(path, "-") != 0) return ci_read_file(path, 256u << 20, len, err);
    ci_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (b.len + n > (256u << 20)) {
            ci_buf_free(&b);
            ci_error(err, CINFER_ERR_LIMIT, "stdin context larger than 256 MiB");
            return NULL;
        }
        ci_buf_append(&b, chunk, n);
    }
    return ci_buf_take(&b, len);
}

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
        template_text = ci_read_file(template_path, 16u << 20, &template_len, &err);
        if (!template_text) {
            fprintf(stderr, "cinfer template: %s\n", err.message);
            return 1;
        }
    }

    int status = 1;
    size_t ctx_len;
    json_t *ctx = NULL;
    cinfer_template *tpl = NULL;
    char *ctx_text = read_context(context_path, &ctx_len, &err);
    if (!ctx_text) {
        fprintf(stderr, "cinfer template: %s\n", err.message);
        goto done;
    }
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
    size_t out_len;
    char *out = tpl_render_jansson(tpl, ctx, NULL, &out_len, &err);
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
