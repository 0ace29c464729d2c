/*
 * fuzz_template — Jinja2 chat templates: cinfer_template_parse, then
 * cinfer_template_render_json. The input is the template source; when it
 * holds a NUL byte, the bytes after the first NUL are the JSON context
 * instead of the fixed chat below (so the fuzzer reaches both the template
 * and the values it iterates over).
 */
#include "fuzz_common.h"

#include "cinfer.h"

static const char default_ctx[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"héllo <|im_end|>\"},"
    " {\"role\": \"assistant\", \"content\": \"<think>r</think>a\", \"reasoning_content\": \"r\","
    "  \"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": [1, 2.5, null]}}}]},"
    " {\"role\": \"tool\", \"content\": \"42\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"x\"}]}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}],"
    " \"add_generation_prompt\": true, \"enable_thinking\": false, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data;
    size_t src_len = size;
    const char *ctx = default_ctx;
    size_t ctx_len = sizeof default_ctx - 1;
    const uint8_t *nul = memchr(data, 0, size);
    if (nul) {
        src_len = (size_t)(nul - data);
        ctx = (const char *)nul + 1;
        ctx_len = size - src_len - 1;
    }
    cinfer_error err = {0};
    cinfer_template *tpl = cinfer_template_parse(src, src_len, &err);
    if (!tpl) return 0;
    size_t len = 0;
    char *out = cinfer_template_render_json(tpl, ctx, ctx_len, &len, &err);
    if (out) FUZZ_ASSERT(strlen(out) <= len, "render length %zu below the NUL-terminated text", len);
    cinfer_free(out);
    cinfer_template_free(tpl);
    return 0;
}
