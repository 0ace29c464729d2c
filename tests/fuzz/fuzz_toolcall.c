/*
 * fuzz_toolcall — the Qwen3 tool-call parsers that read generated text
 * (`<tool_call>{"name": …, "arguments": …}</tool_call>`): the general one
 * and the lenient one used when the answer was forced to open with a call.
 * Every call returned must be an OpenAI tool_calls entry whose arguments are
 * a string, and the visible content must be a prefix of the input.
 */
#include "fuzz_common.h"

#include "server/server_internal.h"

static json_t *tools;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}},"
                       " {\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", 0, NULL);
    return tools ? 0 : 1;
}

static void check_calls(json_t *calls, size_t content_len, size_t size) {
    if (!calls) return;
    FUZZ_ASSERT(json_is_array(calls) && json_array_size(calls) > 0, "tool_calls is not a non-empty array");
    FUZZ_ASSERT(content_len <= size, "content length %zu beyond the input (%zu)", content_len, size);
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        FUZZ_ASSERT(json_is_string(json_object_get(fn, "name")), "call %zu has no name", i);
        FUZZ_ASSERT(json_is_string(json_object_get(fn, "arguments")), "call %zu arguments are not a string", i);
    }
    json_decref(calls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t content_len = 0;
    check_calls(ci_parse_tool_calls((const char *)data, size, &content_len), content_len, size);
    content_len = 0;
    check_calls(ci_parse_forced_tool_call((const char *)data, size, tools, &content_len), content_len, size);
    return 0;
}
