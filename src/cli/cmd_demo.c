/*
 * cmd_demo.c — `cinfer demo`: the main job on the built-in demo material.
 * Renders a two-turn chat with the model's own chat template (thinking on and
 * off) and tokenizes the result with the model's tokenizer, showing the ids
 * that the engine would feed to the forward pass.
 */
#include "commands.h"
#include "cinfer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *DEMO_MESSAGES =
    "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
    " {\"role\":\"user\",\"content\":\"你好！请用一句话介绍你自己。\"},"
    " {\"role\":\"assistant\",\"content\":\"<think>\\nThe user greets me in Chinese.\\n</think>\\n\\n你好！我是一个乐于助人的助手。\"},"
    " {\"role\":\"user\",\"content\":\"What is 2+2?\"}]";

static void print_usage(FILE *out) {
    fprintf(out,
            "usage: cinfer demo --model PATH\n\n"
            "Renders a sample multi-turn chat with the model's chat template (with\n"
            "enable_thinking true and false) and tokenizes it with the model's tokenizer.\n"
            "PATH is a model folder with tokenizer.json and tokenizer_config.json\n"
            "(`make demo` passes the real Qwen3 tokenizer files).\n");
}

static int render_and_tokenize(const cinfer_template *tpl, const cinfer_tokenizer *tok,
                               const char *bos, const char *eos, bool thinking) {
    /* The context transformers builds: messages, flags and the special tokens map. */
    json_t *ctx = json_object();
    json_object_set_new(ctx, "messages", json_loads(DEMO_MESSAGES, 0, NULL));
    json_object_set_new(ctx, "add_generation_prompt", json_true());
    json_object_set_new(ctx, "enable_thinking", json_boolean(thinking));
    if (bos) json_object_set_new(ctx, "bos_token", json_string(bos));
    if (eos) json_object_set_new(ctx, "eos_token", json_string(eos));
    char *context = json_dumps(ctx, JSON_COMPACT);
    json_decref(ctx);
    cinfer_error err = {0};
    size_t len = 0;
    char *text = cinfer_template_render_json(tpl, context, strlen(context), &len, &err);
    free(context);
    if (!text) {
        fprintf(stderr, "cinfer demo: render: %s\n", err.message);
        return 1;
    }
    int32_t *ids = NULL;
    long n = cinfer_tokenize(tok, text, len, 0, &ids, &err);
    if (n < 0) {
        fprintf(stderr, "cinfer demo: tokenize: %s\n", err.message);
        cinfer_free(text);
        return 1;
    }
    printf("=== enable_thinking=%s: rendered prompt (%zu bytes) ===\n%s\n", thinking ? "true" : "false", len, text);
    printf("=== %ld tokens ===\n[", n);
    for (long i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    printf("]\n");
    /* Round trip: decoding the ids gives back the rendered text. */
    size_t dlen = 0;
    char *decoded = cinfer_detokenize(tok, ids, (size_t)n, false, &dlen, &err);
    int rc = 0;
    if (!decoded || dlen != len || memcmp(decoded, text, len) != 0) {
        fprintf(stderr, "cinfer demo: decode(encode(text)) != text\n");
        rc = 1;
    } else {
        printf("=== decode(tokens) == rendered prompt: ok ===\n\n");
    }
    cinfer_free(decoded);
    cinfer_free(ids);
    cinfer_free(text);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            print_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--model") == 0) {
            if (!(model = cli_option_value("demo", argc, argv, &i))) return 2;
        } else {
            return cli_usage_error("demo", "unknown argument '%s'", argv[i]);
        }
    }
    if (!model) return cli_usage_error("demo", "--model PATH is required");

    cinfer_error err = {0};
    cinfer_chat_template_source src = {0};
    if (cinfer_chat_template_source_load(model, &src, &err) != 0) {
        fprintf(stderr, "cinfer demo: %s\n", err.message);
        return 1;
    }
    cinfer_template *tpl = cinfer_template_parse(src.template_text, strlen(src.template_text), &err);
    cinfer_tokenizer *tok = tpl ? cinfer_tokenizer_load(model, &err) : NULL;
    int rc = 1;
    if (tpl && tok) {
        rc = render_and_tokenize(tpl, tok, src.bos_token, src.eos_token, true);
        if (rc == 0) rc = render_and_tokenize(tpl, tok, src.bos_token, src.eos_token, false);
    } else {
        fprintf(stderr, "cinfer demo: %s\n", err.message);
    }
    cinfer_tokenizer_free(tok);
    cinfer_template_free(tpl);
    cinfer_chat_template_source_free(&src);
    return rc;
}
