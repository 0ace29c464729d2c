/*
 * fuzz_openai_request — request bodies of the OpenAI-compatible API
 * (/v1/chat/completions, /v1/completions, /tokenize, /detokenize).
 *
 * PLACEHOLDER until the server exposes its body parsers: today they are
 * static functions of src/server/api.c that need a running server, so this
 * harness drives the same library calls the handlers make on the same JSON
 * (parsed with the server's flags): `messages` (+ `tools`) rendered and
 * tokenized through ci_render_chat_protected with the real Qwen3 template
 * and tokenizer, `prompt` tokenized, `tokens` detokenized.
 * TODO(server restructure): call the in-memory request parsers (chat,
 * completions, tokenize, detokenize, and every later API) directly.
 */
#include "fuzz_common.h"

#include "server/server_internal.h"

static cinfer_tokenizer *tok;
static cinfer_template *tpl;
static ci_special_set specials;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    cinfer_error err = {0};
    cinfer_chat_template_source src;
    tok = cinfer_tokenizer_load(fuzz_qwen3_tokenizer_dir(), &err);
    if (!tok || cinfer_chat_template_source_load(fuzz_qwen3_tokenizer_dir(), &src, &err) != 0) {
        fprintf(stderr, "fuzz_openai_request: cannot load the Qwen3 tokenizer/template (%s): %s\n",
                fuzz_qwen3_tokenizer_dir(), err.message);
        exit(1);
    }
    tpl = cinfer_template_parse(src.template_text, strlen(src.template_text), &err);
    cinfer_chat_template_source_free(&src);
    if (!tpl) {
        fprintf(stderr, "fuzz_openai_request: template: %s\n", err.message);
        exit(1);
    }
    ci_special_set_init(&specials, tok);
    return 0;
}

/* The shape the server gives the template (api.c template_message, in
 * short): known roles, string content, optional reasoning and tool calls;
 * NULL where the server answers 400. */
static json_t *template_messages(json_t *messages) {
    json_t *out = json_array(), *m;
    size_t i;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool")) ||
            !(json_is_string(content) || json_is_null(content) || !content)) {
            json_decref(out);
            return NULL;
        }
        json_t *msg = json_object(), *v;
        json_object_set_new(msg, "role", json_string(role));
        json_object_set_new(msg, "content", json_is_string(content) ? json_copy(content) : json_string(""));
        if (json_is_string(v = json_object_get(m, "reasoning_content"))) json_object_set_new(msg, "reasoning_content", json_copy(v));
        if (json_is_array(v = json_object_get(m, "tool_calls"))) json_object_set_new(msg, "tool_calls", json_deep_copy(v));
        json_array_append_new(out, msg);
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(req)) {
        json_decref(req);
        return 0;
    }
    cinfer_error err = {0};
    int32_t *ids = NULL;
    json_t *messages = json_object_get(req, "messages"), *prompt = json_object_get(req, "prompt");
    json_t *tokens = json_object_get(req, "tokens");
    if (json_is_array(messages) && json_array_size(messages) > 0 && json_array_size(messages) <= 256) {
        json_t *msgs = template_messages(messages);
        if (!msgs) {
            json_decref(req);
            return 0;
        }
        json_t *ctx = json_pack("{s:o,s:b}", "messages", msgs, "add_generation_prompt", 1);
        json_t *tools = json_object_get(req, "tools");
        if (json_is_array(tools)) json_object_set(ctx, "tools", tools);
        char *text = NULL;
        long n = ci_render_chat_protected(tpl, tok, &specials, ctx, &ids, &text, &err);
        FUZZ_ASSERT(n < 0 || text != NULL, "a prompt without its text");
        free(text);
        json_decref(ctx);
    } else if (json_is_string(prompt)) {
        cinfer_tokenize(tok, json_string_value(prompt), json_string_length(prompt), 0, &ids, &err);
    } else if (json_is_array(tokens) && json_array_size(tokens) <= 4096) {
        size_t n = json_array_size(tokens), vocab = cinfer_tokenizer_vocab_size(tok);
        ids = malloc((n ? n : 1) * sizeof *ids);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(tokens, i);
            if (json_is_integer(v) && json_integer_value(v) >= 0 && (size_t)json_integer_value(v) < vocab)
                ids[k++] = (int32_t)json_integer_value(v);
        }
        size_t len = 0;
        cinfer_free(cinfer_detokenize(tok, ids, k, false, &len, &err));
    }
    cinfer_free(ids);
    json_decref(req);
    return 0;
}
