/*
 * toolcall.c — Qwen3 tool calls in generated text → OpenAI tool_calls.
 *
 * Qwen3's template teaches the model to answer a call as
 *   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
 * (one block per call). Each block whose body is a JSON object with a string
 * "name" becomes {id, type:"function", function:{name, arguments}}, with
 * arguments re-serialised as a JSON string as OpenAI sends them. A block
 * that does not parse leaves the whole text as plain content (as vLLM's
 * hermes parser does), so a malformed call is never silently dropped.
 *
 * When the server forced the answer to open with a call (tool_choice
 * "required" or a named function) the first block is also read leniently:
 * the forced head `{"name": "NAME", "arguments":` is there by construction,
 * so a call to a known tool is reported even when the model's arguments are
 * not valid JSON (vLLM likewise returns a named call's raw output as its
 * arguments).
 */
#include "server/server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define OPEN_TAG "<tool_call>"
#define CLOSE_TAG "</tool_call>"
#define MAX_TOOL_CALLS 64

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static json_t *make_call(json_t *name, const char *args_text) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint64_t)(uintptr_t)name ^ (uint64_t)(uintptr_t)args_text;
    char id[40];
    snprintf(id, sizeof id, "call_%016llx", (unsigned long long)r);
    json_t *fn = json_pack("{s:O,s:s}", "name", name, "arguments", args_text ? args_text : "{}");
    return json_pack("{s:s,s:s,s:o}", "id", id, "type", "function", "function", fn);
}

json_t *ci_parse_tool_calls(const char *content, size_t len, size_t *content_len_out) {
    const size_t open_len = strlen(OPEN_TAG), close_len = strlen(CLOSE_TAG);
    const char *first = memmem(content, len, OPEN_TAG, open_len);
    *content_len_out = len;
    if (!first) return NULL;
    json_t *calls = json_array();
    const char *p = first, *end = content + len;
    while (p && json_array_size(calls) < MAX_TOOL_CALLS) {
        const char *body = p + open_len;
        const char *close = memmem(body, (size_t)(end - body), CLOSE_TAG, close_len);
        /* an unterminated last block (cut by max_tokens or the stop token) still counts when its JSON is complete */
        const char *body_end = close ? close : end;
        json_error_t jerr;
        json_t *obj = json_loadb(body, (size_t)(body_end - body), JSON_DECODE_ANY, &jerr);
        json_t *name = json_object_get(obj, "name");
        if (!json_is_object(obj) || !json_is_string(name)) {
            json_decref(obj);
            json_decref(calls);
            return NULL;
        }
        json_t *args = json_object_get(obj, "arguments");
        if (!args) args = json_object_get(obj, "parameters");
        char *args_text = json_is_string(args) ? strdup(json_string_value(args))
                          : args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY)
                                 : strdup("{}");
        json_array_append_new(calls, make_call(name, args_text));
        free(args_text);
        json_decref(obj);
        if (!close) break;
        p = close + close_len;
        while (p < end && is_space(*p)) p++;
        if (p >= end) break;
        if ((size_t)(end - p) < open_len || memcmp(p, OPEN_TAG, open_len) != 0) break; /* trailing text after the calls is dropped, as vLLM does */
    }
    size_t n = (size_t)(first - content);
    while (n > 0 && is_space(content[n - 1])) n--;
    *content_len_out = n;
    return calls;
}

/* Skips spaces, then `lit`; returns the position after it, or NULL. */
static const char *expect(const char *p, const char *end, const char *lit) {
    while (p < end && is_space(*p)) p++;
    size_t n = strlen(lit);
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0) return NULL;
    return p + n;
}

static bool is_tool_name(const json_t *tools, const char *name) {
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const char *n = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
        if (n && strcmp(n, name) == 0) return true;
    }
    return false;
}

json_t *ci_parse_forced_tool_call(const char *content, size_t len, const json_t *tools, size_t *content_len_out) {
    const size_t open_len = strlen(OPEN_TAG), close_len = strlen(CLOSE_TAG);
    *content_len_out = len;
    const char *first = memmem(content, len, OPEN_TAG, open_len), *end = content + len;
    if (!first) return NULL;
    const char *p = expect(first + open_len, end, "{");
    if (p) p = expect(p, end, "\"name\"");
    if (p) p = expect(p, end, ":");
    while (p && p < end && is_space(*p)) p++;
    if (!p || p >= end || *p != '"') return NULL;
    json_error_t jerr;
    json_t *name = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &jerr);
    if (!json_is_string(name) || !is_tool_name(tools, json_string_value(name)) || jerr.position <= 0 ||
        jerr.position > end - p) {
        json_decref(name);
        return NULL;
    }
    p += jerr.position;
    p = expect(p, end, ",");
    if (p) p = expect(p, end, "\"arguments\"");
    if (p) p = expect(p, end, ":");
    if (!p) {
        json_decref(name);
        return NULL;
    }
    const char *close = memmem(p, (size_t)(end - p), CLOSE_TAG, close_len);
    const char *rest_end = close ? close : end;
    while (p < rest_end && is_space(*p)) p++;
    while (rest_end > p && is_space(rest_end[-1])) rest_end--;
    /* a complete JSON object at the start of the rest is the arguments (the
     * model may have garbled only what follows); else the raw text */
    char *args_text = NULL;
    json_t *args = rest_end > p ? json_loadb(p, (size_t)(rest_end - p), JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
    if (json_is_object(args)) args_text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    if (!args_text) args_text = ci_strndup(p, (size_t)(rest_end - p));
    json_t *calls = json_pack("[o]", make_call(name, args_text));
    free(args_text);
    json_decref(name);
    size_t n = (size_t)(first - content);
    while (n > 0 && is_space(content[n - 1])) n--;
    *content_len_out = n;
    return calls;
}
