/*
 * responses.c — the OpenAI Responses adapter (POST /v1/responses, and
 * GET / DELETE /v1/responses/{id}, POST /v1/responses/{id}/cancel).
 *
 * Parse: `input` (a string or a list of items: messages, function_call,
 * function_call_output, reasoning), `instructions`, function `tools` and
 * `tool_choice`, `reasoning.effort` (srv_reasoning_effort) are translated to
 * an OpenAI chat request and go through srv_chat_prepare like chat
 * completions, so prompts and forced tool calls are rendered one way. With
 * `previous_response_id` the stored conversation of that response (its
 * messages and its output, as chat messages) comes first; `instructions`
 * are not carried over, as OpenAI specifies.
 *
 * Render: output items — a reasoning item from the model's thinking, a
 * message with one output_text part, function_call items for parsed tool
 * calls — in a `response` object; streamed as the SDK's event sequence
 * (response.created, response.in_progress, per item output_item.added,
 * content_part.added, *.delta, *.done, content_part.done, output_item.done,
 * then response.completed or response.incomplete), every event with its
 * sequence_number. A finished response is stored (store: true, the
 * default) with its conversation in the bounded store (responses_store.c).
 *
 * No silent ignoring: an unknown field, tool type, item type or content part
 * type is a 400 naming it; the few fields accepted without effect are
 * listed in docs/SERVER.md.
 */
#include "server/openai.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 4096
#define MAX_TOOLS 256

/* ------------------------------------------------------------- state */

enum { OPEN_NONE, OPEN_REASONING, OPEN_MESSAGE };

typedef struct resp_ctx {
    json_t *req;            /* the request fields a response echoes */
    json_t *history;        /* the conversation so far as chat messages (stored) */
    bool store;
    /* streaming */
    int seq;                /* sequence_number of the next event */
    int open;               /* the item being streamed */
    int n_items;
    bool message_sent;
    ci_buf think, text;     /* streamed text of the open item */
    json_t *output;         /* finished output items */
} resp_ctx;

static void ctx_free(void *p) {
    resp_ctx *x = p;
    json_decref(x->req);
    json_decref(x->history);
    json_decref(x->output);
    ci_buf_free(&x->think);
    ci_buf_free(&x->text);
    free(x);
}

/* item ids share the response's random part: "msg_<hex>_<index>" */
static json_t *item_id(const job *j, const char *prefix, int index) {
    const char *hex = strchr(j->id, '_');
    char id[96];
    snprintf(id, sizeof id, "%s_%s_%d", prefix, hex ? hex + 1 : j->id, index);
    return json_string(id);
}

/* ------------------------------------------------------------ objects */

static json_t *usage_json(const job *j) {
    const choice *c = &j->choices[0];
    return json_pack("{s:i,s:{s:i},s:i,s:{s:i},s:i}", "input_tokens", c->n_prompt, "input_tokens_details",
                     "cached_tokens", c->n_cached, "output_tokens", c->n_generated, "output_tokens_details",
                     "reasoning_tokens", srv_choice_reasoning_tokens(j, c), "total_tokens", c->n_prompt + c->n_generated);
}

/* The response object: status, output and usage around the echoed request. */
static json_t *response_json(const job *j, const resp_ctx *x, const char *status, json_t *output, json_t *usage) {
    json_t *r = json_pack("{s:s,s:s,s:I,s:s,s:b,s:n,s:n,s:s}", "id", j->id, "object", "response", "created_at",
                          (json_int_t)j->created, "status", status, "background", 0, "error", "incomplete_details",
                          "model", j->srv->model_name);
    json_object_update(r, x->req);
    json_object_set_new(r, "output", output ? output : json_array());
    json_object_set_new(r, "usage", usage ? usage : json_null());
    if (strcmp(status, "incomplete") == 0)
        json_object_set_new(r, "incomplete_details", json_pack("{s:s}", "reason", "max_output_tokens"));
    return r;
}

static json_t *reasoning_item(const job *j, int index, const char *text, size_t len, const char *status) {
    json_t *part = json_pack("{s:s,s:o}", "type", "reasoning_text", "text", srv_json_text(text, len));
    return json_pack("{s:o,s:s,s:[],s:[o],s:s}", "id", item_id(j, "rs", index), "type", "reasoning", "summary",
                     "content", part, "status", status);
}

static json_t *text_part(const char *text, size_t len) {
    return json_pack("{s:s,s:o,s:[],s:[]}", "type", "output_text", "text", srv_json_text(text, len), "annotations",
                     "logprobs");
}

static json_t *message_item(const job *j, int index, json_t *content, const char *status) {
    return json_pack("{s:o,s:s,s:s,s:s,s:o}", "id", item_id(j, "msg", index), "type", "message", "role", "assistant",
                     "status", status, "content", content);
}

/* A chat tool call → a function_call item. */
static json_t *call_item(const job *j, int index, json_t *call, const char *arguments) {
    json_t *fn = json_object_get(call, "function");
    return json_pack("{s:o,s:s,s:O,s:O,s:s,s:s}", "id", item_id(j, "fc", index), "type", "function_call", "call_id",
                     json_object_get(call, "id"), "name", json_object_get(fn, "name"), "arguments",
                     arguments ? arguments : json_string_value(json_object_get(fn, "arguments")), "status", "completed");
}

static const char *status_of(const choice *c) { return c->finish == CI_FINISH_LENGTH ? "incomplete" : "completed"; }

/* Appends this turn's output to the conversation as a chat message and
 * stores the response with it. */
static void store_response(job *j, resp_ctx *x, json_t *response, const char *think, size_t tl, const char *text,
                           size_t cl, json_t *calls) {
    if (!x->store) return;
    json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content", srv_json_text(text, cl));
    if (tl) json_object_set_new(msg, "reasoning_content", srv_json_text(think, tl));
    if (calls) json_object_set(msg, "tool_calls", calls);
    json_array_append_new(x->history, msg);
    char *rt = json_dumps(response, JSON_COMPACT), *ht = json_dumps(x->history, JSON_COMPACT);
    if (rt && ht) srv_response_store_put(j->srv->responses, j->id, rt, ht);
    free(rt);
    free(ht);
}

/* ------------------------------------------------------------ replies */

static int responses_reply(srv_request *r, job *j) {
    resp_ctx *x = j->api_ctx;
    choice *c = &j->choices[0];
    size_t tl = 0, cl = 0, visible = 0;
    const char *think = c->out ? ci_output_thinking(c->out, &tl) : "";
    const char *content = c->out ? ci_output_content(c->out, &cl) : "";
    json_t *calls = srv_choice_tool_calls(j, c, &visible);
    json_t *output = json_array();
    if (tl) json_array_append_new(output, reasoning_item(j, (int)json_array_size(output), think, tl, "completed"));
    if (visible || !calls)
        json_array_append_new(output, message_item(j, (int)json_array_size(output), json_pack("[o]", text_part(content, visible)),
                                                   status_of(c)));
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) json_array_append_new(output, call_item(j, (int)json_array_size(output), call, NULL));
    json_t *resp = response_json(j, x, status_of(c), output, usage_json(j));
    store_response(j, x, resp, think, tl, content, visible, calls);
    json_decref(calls);
    return srv_send_json(r, 200, resp);
}

/* ------------------------------------------------------------- stream */

static void event(resp_ctx *x, ci_buf *out, const char *type, json_t *obj) {
    json_object_set_new(obj, "type", json_string(type));
    json_object_set_new(obj, "sequence_number", json_integer(x->seq++));
    srv_sse(out, type, obj);
}

static void open_item(job *j, resp_ctx *x, ci_buf *out, int kind) {
    int index = x->n_items;
    json_t *item = kind == OPEN_REASONING ? reasoning_item(j, index, "", 0, "in_progress")
                                          : message_item(j, index, json_array(), "in_progress");
    json_t *id = json_incref(json_object_get(item, "id"));
    if (kind == OPEN_REASONING) json_object_set_new(item, "content", json_array());
    event(x, out, "response.output_item.added", json_pack("{s:i,s:o}", "output_index", index, "item", item));
    json_t *part = kind == OPEN_REASONING ? json_pack("{s:s,s:s}", "type", "reasoning_text", "text", "") : text_part("", 0);
    event(x, out, "response.content_part.added",
          json_pack("{s:o,s:i,s:i,s:o}", "item_id", id, "output_index", index, "content_index", 0, "part", part));
    x->open = kind;
    if (kind == OPEN_MESSAGE) x->message_sent = true;
}

static void close_item(job *j, resp_ctx *x, ci_buf *out, const char *status) {
    if (x->open == OPEN_NONE) return;
    int index = x->n_items++;
    json_t *item;
    if (x->open == OPEN_REASONING) {
        item = reasoning_item(j, index, x->think.data, x->think.len, "completed");
        json_t *id = json_object_get(item, "id");
        event(x, out, "response.reasoning_text.done",
              json_pack("{s:O,s:i,s:i,s:o}", "item_id", id, "output_index", index, "content_index", 0, "text",
                        srv_json_text(x->think.data, x->think.len)));
        event(x, out, "response.content_part.done",
              json_pack("{s:O,s:i,s:i,s:O}", "item_id", id, "output_index", index, "content_index", 0, "part",
                        json_array_get(json_object_get(item, "content"), 0)));
    } else {
        item = message_item(j, index, json_pack("[o]", text_part(x->text.data, x->text.len)), status);
        json_t *id = json_object_get(item, "id");
        event(x, out, "response.output_text.done",
              json_pack("{s:O,s:i,s:i,s:o,s:[]}", "item_id", id, "output_index", index, "content_index", 0, "text",
                        srv_json_text(x->text.data, x->text.len), "logprobs"));
        event(x, out, "response.content_part.done",
              json_pack("{s:O,s:i,s:i,s:O}", "item_id", id, "output_index", index, "content_index", 0, "part",
                        json_array_get(json_object_get(item, "content"), 0)));
    }
    event(x, out, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", index, "item", item));
    json_array_append_new(x->output, item);
    x->open = OPEN_NONE;
}

static void delta(job *j, resp_ctx *x, ci_buf *out, int kind, const char *s, size_t n) {
    if (x->open != kind) {
        close_item(j, x, out, "completed");
        open_item(j, x, out, kind);
    }
    ci_buf_append(kind == OPEN_REASONING ? &x->think : &x->text, s, n);
    json_t *id = item_id(j, kind == OPEN_REASONING ? "rs" : "msg", x->n_items);
    json_t *ev = json_pack("{s:o,s:i,s:i,s:o}", "item_id", id, "output_index", x->n_items, "content_index", 0, "delta",
                           srv_json_text(s, n));
    if (kind == OPEN_MESSAGE) json_object_set_new(ev, "logprobs", json_array());
    event(x, out, kind == OPEN_REASONING ? "response.reasoning_text.delta" : "response.output_text.delta", ev);
}

static void call_items(job *j, resp_ctx *x, ci_buf *out, json_t *calls) {
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) {
        int index = x->n_items++;
        json_t *done = call_item(j, index, call, NULL), *added = call_item(j, index, call, "");
        json_t *id = json_object_get(done, "id"), *args = json_object_get(done, "arguments");
        json_object_set_new(added, "status", json_string("in_progress"));
        event(x, out, "response.output_item.added", json_pack("{s:i,s:o}", "output_index", index, "item", added));
        event(x, out, "response.function_call_arguments.delta",
              json_pack("{s:O,s:i,s:O}", "item_id", id, "output_index", index, "delta", args));
        event(x, out, "response.function_call_arguments.done",
              json_pack("{s:O,s:i,s:O,s:O}", "item_id", id, "output_index", index, "name",
                        json_object_get(done, "name"), "arguments", args));
        event(x, out, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", index, "item", done));
        json_array_append_new(x->output, done);
    }
}

static void start_events(job *j, resp_ctx *x, ci_buf *out) {
    event(x, out, "response.created", json_pack("{s:o}", "response", response_json(j, x, "in_progress", NULL, NULL)));
    event(x, out, "response.in_progress", json_pack("{s:o}", "response", response_json(j, x, "in_progress", NULL, NULL)));
}

static void responses_stream(job *j, ci_buf *out) {
    resp_ctx *x = j->api_ctx;
    choice *c = &j->choices[0];
    if (!c->started) {
        start_events(j, x, out);
        c->started = true;
    }
    srv_delta d;
    if (c->finish_sent || !srv_choice_take(j, 0, &d)) return;
    if (d.think_len) delta(j, x, out, OPEN_REASONING, d.think, d.think_len);
    if (d.content_len) delta(j, x, out, OPEN_MESSAGE, d.content, d.content_len);
    if (!d.last) return;
    /* every response has a message unless it calls tools */
    if (!d.tool_calls && !x->message_sent) {
        close_item(j, x, out, "completed");
        open_item(j, x, out, OPEN_MESSAGE);
    }
    close_item(j, x, out, status_of(c));
    call_items(j, x, out, d.tool_calls);
    const char *status = status_of(c);
    json_t *resp = response_json(j, x, status, json_deep_copy(x->output), usage_json(j));
    size_t tl = 0;
    const char *think = c->out ? ci_output_thinking(c->out, &tl) : "";
    store_response(j, x, resp, think, tl, x->text.data ? x->text.data : "", x->text.len, d.tool_calls);
    json_decref(d.tool_calls);
    event(x, out, strcmp(status, "completed") == 0 ? "response.completed" : "response.incomplete",
          json_pack("{s:o}", "response", resp));
    c->finish_sent = true;
}

static void responses_stream_end(job *j, ci_buf *out) { (void)j, (void)out; } /* Responses streams have no [DONE] */

/* A failed stream ends with response.failed (after response.created, which
 * the SDK needs first). */
static void responses_stream_error(job *j, const srv_error *e, ci_buf *out) {
    resp_ctx *x = j->api_ctx;
    if (!j->choices[0].started) start_events(j, x, out);
    json_t *resp = response_json(j, x, "failed", json_deep_copy(x->output), NULL);
    json_object_set_new(resp, "error", json_pack("{s:s,s:o}", "code", e->status == 503 ? "server_shutting_down" : "server_error",
                                                 "message", srv_json_text(e->msg, strlen(e->msg))));
    event(x, out, "response.failed", json_pack("{s:o}", "response", resp));
}

static const srv_api RESPONSES_API = {
    .id_prefix = "resp_",
    .stream_type = "text/event-stream",
    .reply = responses_reply,
    .stream = responses_stream,
    .stream_end = responses_stream_end,
    .stream_error = responses_stream_error,
};

/* -------------------------------------------------------------- input */

/* A content list's text: input_text / output_text / text parts joined. */
static bool content_text(json_t *content, const char *param, ci_buf *text, srv_error *e) {
    if (json_is_string(content)) {
        ci_buf_append(text, json_string_value(content), json_string_length(content));
        return true;
    }
    if (!json_is_array(content)) return srv_fail(e, 400, param, "'%s' must be a string or a list of content parts", param);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *t = json_object_get(part, "text");
        if (!type) return srv_fail(e, 400, param, "%s[%zu].type must be a string", param, i);
        if (strcmp(type, "input_text") != 0 && strcmp(type, "output_text") != 0 && strcmp(type, "text") != 0)
            return srv_fail(e, 400, param, "%s[%zu]: content parts of type '%s' are not supported (only text)", param, i, type);
        if (!json_is_string(t)) return srv_fail(e, 400, param, "%s[%zu].text must be a string", param, i);
        if (i) ci_buf_putc(text, '\n');
        ci_buf_append(text, json_string_value(t), json_string_length(t));
    }
    return true;
}

/* The last message when it is an assistant turn that calls can join. */
static json_t *open_assistant(json_t *messages) {
    json_t *last = json_array_get(messages, json_array_size(messages) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    return role && strcmp(role, "assistant") == 0 ? last : NULL;
}

static bool message_input(json_t *item, const char *param, json_t *messages, json_t **reasoning, srv_error *e) {
    static const char *const KNOWN[] = {"type", "role", "content", "id", "status", NULL};
    if (!srv_check_fields(item, KNOWN, param, e)) return false;
    const char *role = json_string_value(json_object_get(item, "role"));
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system") && strcmp(role, "developer")))
        return srv_fail(e, 400, param, "%s.role must be one of user, assistant, system, developer", param);
    ci_buf text = {0};
    char cp[80];
    snprintf(cp, sizeof cp, "%s.content", param);
    if (!content_text(json_object_get(item, "content"), cp, &text, e)) return ci_buf_free(&text), false;
    json_t *m = json_pack("{s:s,s:o}", "role", role, "content", json_stringn(text.data ? text.data : "", text.len));
    ci_buf_free(&text);
    if (strcmp(role, "assistant") == 0 && *reasoning) json_object_set_new(m, "reasoning_content", *reasoning), *reasoning = NULL;
    json_array_append_new(messages, m);
    return true;
}

static bool call_input(json_t *item, const char *param, json_t *messages, json_t **reasoning, srv_error *e) {
    static const char *const KNOWN[] = {"type", "call_id", "name", "arguments", "id", "status", NULL};
    if (!srv_check_fields(item, KNOWN, param, e)) return false;
    json_t *id = json_object_get(item, "call_id"), *name = json_object_get(item, "name"),
           *args = json_object_get(item, "arguments");
    if (!json_is_string(id) || !json_is_string(name) || !json_is_string(args))
        return srv_fail(e, 400, param, "%s needs string call_id, name and arguments", param);
    json_t *m = open_assistant(messages);
    if (!m || *reasoning) {
        m = json_pack("{s:s,s:s}", "role", "assistant", "content", "");
        if (*reasoning) json_object_set_new(m, "reasoning_content", *reasoning), *reasoning = NULL;
        json_array_append_new(messages, m);
    }
    json_t *calls = json_object_get(m, "tool_calls");
    if (!calls) json_object_set_new(m, "tool_calls", calls = json_array());
    json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", id, "type", "function", "function", "name", name,
                                           "arguments", args));
    return true;
}

static bool output_input(json_t *item, const char *param, json_t *messages, srv_error *e) {
    static const char *const KNOWN[] = {"type", "call_id", "output", "id", "status", NULL};
    if (!srv_check_fields(item, KNOWN, param, e)) return false;
    json_t *id = json_object_get(item, "call_id");
    if (!json_is_string(id)) return srv_fail(e, 400, param, "%s.call_id must be a string", param);
    ci_buf text = {0};
    char op[80];
    snprintf(op, sizeof op, "%s.output", param);
    if (!content_text(json_object_get(item, "output"), op, &text, e)) return ci_buf_free(&text), false;
    json_array_append_new(messages, json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id, "content",
                                              json_stringn(text.data ? text.data : "", text.len)));
    ci_buf_free(&text);
    return true;
}

static bool reasoning_input(json_t *item, const char *param, json_t **reasoning, srv_error *e) {
    static const char *const KNOWN[] = {"type", "id", "summary", "content", "status", "encrypted_content", NULL};
    if (!srv_check_fields(item, KNOWN, param, e)) return false;
    json_t *c = json_object_get(item, "content");
    if (!c || json_is_null(c)) c = json_object_get(item, "summary");
    ci_buf text = {0};
    char cp[80];
    snprintf(cp, sizeof cp, "%s.content", param);
    bool ok = true;
    size_t i;
    json_t *part;
    json_array_foreach(c, i, part) {
        json_t *t = json_object_get(part, "text");
        if (!json_is_string(t)) {
            ok = srv_fail(e, 400, cp, "%s[%zu].text must be a string", cp, i);
            break;
        }
        if (i) ci_buf_putc(&text, '\n');
        ci_buf_append(&text, json_string_value(t), json_string_length(t));
    }
    if (ok) {
        json_decref(*reasoning);
        *reasoning = json_stringn(text.data ? text.data : "", text.len);
    }
    ci_buf_free(&text);
    return ok;
}

/* input items → chat messages appended to `messages` */
static bool input_messages(json_t *input, json_t *messages, srv_error *e) {
    if (json_is_string(input)) {
        json_array_append_new(messages, json_pack("{s:s,s:O}", "role", "user", "content", input));
        return true;
    }
    if (!json_is_array(input)) return srv_fail(e, 400, "input", "'input' must be a string or a list of items");
    if (json_array_size(input) > MAX_ITEMS) return srv_fail(e, 400, "input", "at most %d input items", MAX_ITEMS);
    json_t *reasoning = NULL; /* a reasoning item waits for its assistant turn */
    bool ok = true;
    size_t i;
    json_t *item;
    json_array_foreach(input, i, item) {
        char param[40];
        snprintf(param, sizeof param, "input[%zu]", i);
        if (!json_is_object(item)) {
            ok = srv_fail(e, 400, param, "%s must be an object", param);
            break;
        }
        json_t *tv = json_object_get(item, "type");
        const char *type = tv ? json_string_value(tv) : "message"; /* EasyInputMessage has no type */
        if (!type) ok = srv_fail(e, 400, param, "%s.type must be a string", param);
        else if (strcmp(type, "message") == 0) ok = message_input(item, param, messages, &reasoning, e);
        else if (strcmp(type, "function_call") == 0) ok = call_input(item, param, messages, &reasoning, e);
        else if (strcmp(type, "function_call_output") == 0) ok = output_input(item, param, messages, e);
        else if (strcmp(type, "reasoning") == 0) ok = reasoning_input(item, param, &reasoning, e);
        else ok = srv_fail(e, 400, param, "%s: input items of type '%s' are not supported", param, type);
        if (!ok) break;
    }
    json_decref(reasoning);
    return ok;
}

/* ------------------------------------------------------ tools, options */

static bool tools_chat(json_t *tools, json_t *chat, srv_error *e) {
    if (!tools || json_is_null(tools)) return true;
    if (!json_is_array(tools) || json_array_size(tools) > MAX_TOOLS)
        return srv_fail(e, 400, "tools", "'tools' must be a list of at most %d tools", MAX_TOOLS);
    json_t *out = json_array();
    json_object_set_new(chat, "tools", out);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        static const char *const KNOWN[] = {"type", "name", "description", "parameters", "strict", NULL};
        char param[32];
        snprintf(param, sizeof param, "tools[%zu]", i);
        const char *type = json_string_value(json_object_get(t, "type"));
        if (!json_is_object(t) || !type) return srv_fail(e, 400, param, "%s must be an object with a type", param);
        if (strcmp(type, "function") != 0)
            return srv_fail(e, 400, param, "%s: tools of type '%s' are not supported (only function)", param, type);
        if (!srv_check_fields(t, KNOWN, param, e)) return false;
        if (!json_is_string(json_object_get(t, "name"))) return srv_fail(e, 400, param, "%s.name must be a string", param);
        json_t *fn = json_pack("{s:O}", "name", json_object_get(t, "name"));
        json_t *v;
        if ((v = json_object_get(t, "description")) && json_is_string(v)) json_object_set(fn, "description", v);
        if ((v = json_object_get(t, "parameters")) && json_is_object(v)) json_object_set(fn, "parameters", v);
        json_array_append_new(out, json_pack("{s:s,s:o}", "type", "function", "function", fn));
    }
    return true;
}

static bool tool_choice_chat(json_t *tc, json_t *chat, srv_error *e) {
    if (!tc || json_is_null(tc)) return true;
    if (json_is_string(tc)) return json_object_set(chat, "tool_choice", tc) == 0;
    const char *type = json_string_value(json_object_get(tc, "type"));
    json_t *name = json_object_get(tc, "name");
    if (!json_is_object(tc) || !type || strcmp(type, "function") != 0 || !json_is_string(name))
        return srv_fail(e, 400, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                        "{\"type\": \"function\", \"name\": ...}");
    json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", name));
    return true;
}

/* reasoning.effort → enable_thinking and a thinking budget */
static bool reasoning_chat(json_t *reasoning, json_t *chat, srv_gen_request *g, srv_error *e) {
    if (!reasoning || json_is_null(reasoning)) return true;
    static const char *const KNOWN[] = {"effort", "summary", "generate_summary", NULL};
    if (!json_is_object(reasoning)) return srv_fail(e, 400, "reasoning", "'reasoning' must be an object");
    if (!srv_check_fields(reasoning, KNOWN, "reasoning", e)) return false;
    json_t *effort = json_object_get(reasoning, "effort");
    if (!effort || json_is_null(effort)) return true;
    int thinking;
    if (!json_is_string(effort) || !srv_reasoning_effort(json_string_value(effort), &thinking, &g->thinking_budget))
        return srv_fail(e, 400, "reasoning.effort", "'reasoning.effort' must be one of none, minimal, low, medium, high");
    json_object_set_new(chat, "enable_thinking", json_boolean(thinking));
    return true;
}

/* text: only the plain-text format until structured output exists */
static bool text_option(json_t *text, srv_error *e) {
    if (!text || json_is_null(text)) return true;
    static const char *const KNOWN[] = {"format", "verbosity", NULL};
    if (!json_is_object(text)) return srv_fail(e, 400, "text", "'text' must be an object");
    if (!srv_check_fields(text, KNOWN, "text", e)) return false;
    json_t *f = json_object_get(text, "format");
    const char *type = json_string_value(json_object_get(f, "type"));
    if (f && !json_is_null(f) && (!type || strcmp(type, "text") != 0))
        return srv_fail(e, 400, "text.format", "'text.format' of type '%s' is not supported yet (structured output); only "
                        "{\"type\": \"text\"}", type ? type : "?");
    json_t *v = json_object_get(text, "verbosity");
    if (v && !json_is_null(v) && !(json_is_string(v) && strcmp(json_string_value(v), "medium") == 0))
        return srv_fail(e, 400, "text.verbosity", "'text.verbosity' other than \"medium\" is not supported");
    return true;
}

/* Fields that must be absent or take their no-op value. */
static bool unsupported_options(json_t *req, srv_error *e) {
    json_t *v;
    if ((v = json_object_get(req, "background")) && json_is_true(v))
        return srv_fail(e, 400, "background", "'background' responses are not supported");
    if ((v = json_object_get(req, "truncation")) && !json_is_null(v) &&
        !(json_is_string(v) && strcmp(json_string_value(v), "disabled") == 0))
        return srv_fail(e, 400, "truncation", "only 'truncation': \"disabled\" is supported");
    /* reasoning items always carry their text; there is nothing encrypted to include */
    if ((v = json_object_get(req, "include")) && !json_is_null(v)) {
        size_t i;
        json_t *x;
        if (!json_is_array(v)) return srv_fail(e, 400, "include", "'include' must be a list");
        json_array_foreach(v, i, x)
            if (!json_is_string(x) || strcmp(json_string_value(x), "reasoning.encrypted_content") != 0)
                return srv_fail(e, 400, "include", "include[%zu] is not supported (only \"reasoning.encrypted_content\", "
                                "which has no effect)", i);
    }
    if ((v = json_object_get(req, "metadata")) && !json_is_null(v) && !json_is_object(v))
        return srv_fail(e, 400, "metadata", "'metadata' must be an object");
    if ((v = json_object_get(req, "stream_options")) && !json_is_null(v) && !json_is_object(v))
        return srv_fail(e, 400, "stream_options", "'stream_options' must be an object");
    return true;
}

/* The request fields a response object repeats. */
static json_t *echo_fields(json_t *req, const srv_gen_request *g, bool store) {
    json_t *o = json_object(), *v;
    json_object_set_new(o, "instructions", json_is_string(v = json_object_get(req, "instructions")) ? json_incref(v) : json_null());
    json_object_set_new(o, "max_output_tokens", g->max_tokens >= 0 ? json_integer(g->max_tokens) : json_null());
    json_object_set_new(o, "previous_response_id",
                        json_is_string(v = json_object_get(req, "previous_response_id")) ? json_incref(v) : json_null());
    json_t *reasoning = json_object_get(req, "reasoning");
    json_object_set_new(o, "reasoning", json_pack("{s:O,s:O}", "effort", json_object_get(reasoning, "effort") ?
                        json_object_get(reasoning, "effort") : json_null(), "summary", json_object_get(reasoning, "summary") ?
                        json_object_get(reasoning, "summary") : json_null()));
    json_object_set_new(o, "store", json_boolean(store));
    /* the float parameters as the client wrote them, not their binary expansion */
    json_object_set_new(o, "temperature", json_real(round(g->sampling.temperature * 1e6) / 1e6));
    json_object_set_new(o, "top_p", json_real(round(g->sampling.top_p * 1e6) / 1e6));
    json_object_set_new(o, "text", json_pack("{s:{s:s}}", "format", "type", "text"));
    json_object_set_new(o, "tool_choice", (v = json_object_get(req, "tool_choice")) ? json_incref(v) : json_string("auto"));
    json_object_set_new(o, "tools", json_is_array(v = json_object_get(req, "tools")) ? json_incref(v) : json_array());
    json_object_set_new(o, "parallel_tool_calls", json_boolean(!json_is_false(json_object_get(req, "parallel_tool_calls"))));
    json_object_set_new(o, "truncation", json_string("disabled"));
    json_object_set_new(o, "metadata", json_is_object(v = json_object_get(req, "metadata")) ? json_incref(v) : json_object());
    json_object_set_new(o, "user", json_is_string(v = json_object_get(req, "user")) ? json_incref(v) : json_null());
    return o;
}

/* The conversation this request continues (previous_response_id). */
static json_t *previous_history(const server *s, json_t *req, srv_error *e) {
    json_t *prev = json_object_get(req, "previous_response_id");
    if (!prev || json_is_null(prev)) return json_array();
    if (!json_is_string(prev)) return srv_fail(e, 400, "previous_response_id", "'previous_response_id' must be a string"), NULL;
    char *history = NULL;
    if (!srv_response_store_get(s->responses, json_string_value(prev), NULL, &history) || !history) {
        free(history);
        srv_fail(e, 404, "previous_response_id", "Previous response with id '%s' not found.", json_string_value(prev));
        return NULL;
    }
    json_t *h = json_loads(history, 0, NULL);
    free(history);
    if (!json_is_array(h)) return json_decref(h), srv_fail(e, 500, NULL, "the stored conversation is unreadable"), NULL;
    return h;
}

static bool sampling(json_t *req, srv_gen_request *g, srv_error *e) {
    double d;
    bool set;
    if (!srv_opt_number(req, "temperature", 0, 2, &d, &set, e)) return false;
    if (set) g->sampling.temperature = (float)d;
    if (!srv_opt_number(req, "top_p", 1e-9, 1, &d, &set, e)) return false;
    if (set) g->sampling.top_p = (float)d;
    return srv_opt_int(req, "max_output_tokens", 1, INT32_MAX, &g->max_tokens, NULL, e) &&
           srv_opt_bool(req, "stream", &g->stream, e);
}

static bool responses_parse(const server *s, json_t *req, srv_gen_request *g, srv_error *e) {
    static const char *const KNOWN[] = {
        "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature", "top_p",
        "reasoning", "text", "store", "previous_response_id", "stream", "stream_options", "metadata", "user",
        "parallel_tool_calls", "service_tier", "truncation", "include", "background", "safety_identifier",
        "prompt_cache_key", NULL};
    g->prompt_param = "input";
    g->max_tokens_param = "max_output_tokens";
    if (!srv_check_fields(req, KNOWN, NULL, e) || !srv_check_model(s, req, e) || !unsupported_options(req, e) ||
        !sampling(req, g, e) || !text_option(json_object_get(req, "text"), e))
        return false;
    bool store = true;
    if (!srv_opt_bool(req, "store", &store, e)) return false;
    json_t *instr = json_object_get(req, "instructions"), *input = json_object_get(req, "input");
    if (instr && !json_is_null(instr) && !json_is_string(instr))
        return srv_fail(e, 400, "instructions", "'instructions' must be a string");
    if (!input) return srv_fail(e, 400, "input", "'input' is required");
    json_t *history = previous_history(s, req, e);
    if (!history) return false;
    resp_ctx *x = ci_calloc(1, sizeof *x);
    x->history = history;
    x->store = store;
    x->output = json_array();
    g->api_ctx = x, g->api_ctx_free = ctx_free;
    if (!input_messages(input, x->history, e)) return false;
    json_t *chat = json_object(), *messages = json_array();
    json_object_set_new(chat, "messages", messages);
    if (json_is_string(instr)) json_array_append_new(messages, json_pack("{s:s,s:O}", "role", "system", "content", instr));
    json_array_extend(messages, x->history);
    bool ok = tools_chat(json_object_get(req, "tools"), chat, e) &&
              tool_choice_chat(json_object_get(req, "tool_choice"), chat, e) &&
              reasoning_chat(json_object_get(req, "reasoning"), chat, g, e) && srv_chat_prepare(s, chat, g, e);
    json_decref(chat);
    if (ok) x->req = echo_fields(req, g, store);
    return ok;
}

int api_responses_create(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    srv_gen_request g;
    srv_gen_init(&g, r->srv);
    int ret = responses_parse(r->srv, req, &g, &e) ? srv_gen_run(r, &g, &RESPONSES_API) : srv_send_error(r, &e);
    srv_gen_free(&g);
    json_decref(req);
    return ret;
}

/* ------------------------------------------------------ stored responses */

int api_responses_item(srv_request *r) {
    char id[128];
    const char *rest = r->url + strlen("/v1/responses/"), *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *action = slash ? slash + 1 : "";
    bool get = strcmp(r->method, "GET") == 0, del = strcmp(r->method, "DELETE") == 0;
    bool cancel = strcmp(r->method, "POST") == 0 && strcmp(action, "cancel") == 0;
    if (n == 0 || n >= sizeof id || (slash && !cancel) || (!slash && !get && !del))
        return srv_send_errorf(r, 404, NULL, "Invalid URL (%s %s): no such route", r->method, r->url);
    memcpy(id, rest, n);
    id[n] = '\0';
    char *text = NULL;
    if (!srv_response_store_get(r->srv->responses, id, &text, NULL))
        return srv_send_errorf(r, 404, NULL, "Response with id '%s' not found.", id);
    int ret;
    if (cancel) {
        ret = srv_send_errorf(r, 400, NULL, "Cannot cancel a response that was not created with background=true.");
    } else if (del) {
        srv_response_store_delete(r->srv->responses, id);
        ret = srv_send_json(r, 200, json_pack("{s:s,s:s,s:b}", "id", id, "object", "response", "deleted", 1));
    } else {
        ret = srv_send(r, 200, "application/json", text, strlen(text));
    }
    free(text);
    return ret;
}
