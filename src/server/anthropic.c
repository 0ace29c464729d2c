/*
 * anthropic.c — the Anthropic Messages adapter (POST /v1/messages and
 * /v1/messages/count_tokens).
 *
 * Parse: `system` (a string or text blocks), messages of content blocks
 * (text, tool_use, tool_result, thinking), `tools` (input_schema) and
 * `tool_choice` (auto, any, tool, none), `thinking` ({type: "enabled",
 * budget_tokens} → thinking on with that budget; without it thinking is
 * off, as Anthropic's models do not think unless asked) are translated to
 * an OpenAI chat request for srv_chat_prepare: tool_use blocks become
 * assistant tool_calls, tool_result blocks tool messages, thinking blocks
 * the assistant's reasoning. max_tokens is required (it counts thinking
 * tokens too, as Anthropic's does).
 *
 * Render: a `message` with thinking, text and tool_use blocks and
 * stop_reason end_turn / max_tokens / stop_sequence (with the matched
 * string) / tool_use; streamed as message_start, ping, per block
 * content_block_start / _delta (thinking_delta, text_delta,
 * input_json_delta) / _stop, then message_delta (stop_reason, usage) and
 * message_stop. Errors have Anthropic's shape (the route's srv_shape); a
 * failed stream ends with an `error` event.
 */
#include "server/openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 4096
#define MAX_BLOCKS 1024
#define MAX_TOOLS 256

typedef struct ant_ctx {
    char *stop[SRV_MAX_STOP];   /* stop_sequences, to name the one that matched */
    int n_stop;
    /* streaming */
    int n_blocks;               /* blocks started so far */
    int open;                   /* 0 none, 1 thinking, 2 text */
    bool text_sent;
} ant_ctx;

static void ctx_free(void *p) {
    ant_ctx *x = p;
    for (int i = 0; i < x->n_stop; i++) free(x->stop[i]);
    free(x);
}

/* ------------------------------------------------------------- render */

/* The stop sequence that ended a choice, or NULL (an end of turn, a
 * length cut): a stop string ended it when its last token was kept (the
 * model's own stop token never is); with several, the earliest in the
 * generated text. */
static const char *matched_stop(const job *j, const ant_ctx *x, const choice *c) {
    if (c->finish != CI_FINISH_STOP || x->n_stop == 0 || c->n_generated != c->n_tokens) return NULL;
    if (x->n_stop == 1) return x->stop[0];
    size_t len = 0;
    cinfer_error err = {0};
    char *text = cinfer_detokenize(j->srv->m->tok, c->tokens, (size_t)c->n_tokens, false, &len, &err);
    const char *best = NULL;
    size_t at = (size_t)-1;
    for (int i = 0; text && i < x->n_stop; i++) {
        const char *hit = memmem(text, len, x->stop[i], strlen(x->stop[i]));
        if (hit && (size_t)(hit - text) < at) at = (size_t)(hit - text), best = x->stop[i];
    }
    free(text);
    return best ? best : x->stop[0];
}

static const char *stop_reason(const job *j, const choice *c, bool calls) {
    if (c->finish == CI_FINISH_LENGTH) return "max_tokens";
    if (calls) return "tool_use";
    return matched_stop(j, j->api_ctx, c) ? "stop_sequence" : "end_turn";
}

static json_t *stop_sequence(const job *j, const choice *c) {
    const char *s = c->finish == CI_FINISH_LENGTH ? NULL : matched_stop(j, j->api_ctx, c);
    return s ? json_string(s) : json_null();
}

/* "call_<hex>" → "toolu_<hex>" */
static json_t *tool_use_id(json_t *call) {
    const char *id = json_string_value(json_object_get(call, "id"));
    const char *hex = id ? strchr(id, '_') : NULL;
    char out[80];
    snprintf(out, sizeof out, "toolu_%s", hex ? hex + 1 : "0");
    return json_string(out);
}

/* A tool call → a tool_use block, appended to `blocks`. Arguments that are
 * no JSON object (a forced call the model garbled) cannot be an input:
 * they stay visible as a text block before the call, whose input is {}. */
static void append_tool_use(json_t *blocks, json_t *call) {
    json_t *fn = json_object_get(call, "function");
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    json_t *input = args ? json_loads(args, 0, NULL) : NULL;
    if (!json_is_object(input)) {
        json_decref(input);
        input = json_object();
        json_array_append_new(blocks, json_pack("{s:s,s:s}", "type", "text", "text", args ? args : ""));
    }
    json_array_append_new(blocks, json_pack("{s:s,s:o,s:O,s:o}", "type", "tool_use", "id", tool_use_id(call), "name",
                                            json_object_get(fn, "name"), "input", input));
}

static json_t *usage_json(const choice *c) {
    return json_pack("{s:i,s:i,s:i,s:i}", "input_tokens", c->n_prompt - c->n_cached, "output_tokens", c->n_generated,
                     "cache_creation_input_tokens", 0, "cache_read_input_tokens", c->n_cached);
}

static json_t *message_json(const job *j, json_t *content) {
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", j->id, "type", "message", "role", "assistant", "model",
                     j->srv->model_name, "content", content);
}

static int messages_reply(srv_request *r, job *j) {
    choice *c = &j->choices[0];
    size_t tl = 0, cl = 0, visible = 0;
    const char *think = c->out ? ci_output_thinking(c->out, &tl) : "";
    const char *content = c->out ? ci_output_content(c->out, &cl) : "";
    json_t *calls = srv_choice_tool_calls(j, c, &visible);
    json_t *blocks = json_array();
    if (tl)
        json_array_append_new(blocks, json_pack("{s:s,s:o,s:s}", "type", "thinking", "thinking", srv_json_text(think, tl),
                                                "signature", ""));
    if (visible || !calls)
        json_array_append_new(blocks, json_pack("{s:s,s:o}", "type", "text", "text", srv_json_text(content, visible)));
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) append_tool_use(blocks, call);
    json_t *msg = message_json(j, blocks);
    json_object_set_new(msg, "stop_reason", json_string(stop_reason(j, c, calls != NULL)));
    json_object_set_new(msg, "stop_sequence", stop_sequence(j, c));
    json_object_set_new(msg, "usage", usage_json(c));
    json_decref(calls);
    return srv_send_json(r, 200, msg);
}

/* ------------------------------------------------------------- stream */

enum { OPEN_NONE, OPEN_THINKING, OPEN_TEXT };

static void ev(ci_buf *out, const char *type, json_t *obj) {
    json_object_set_new(obj, "type", json_string(type));
    srv_sse(out, type, obj);
}

static void block_stop(ant_ctx *x, ci_buf *out) {
    if (x->open == OPEN_NONE) return;
    ev(out, "content_block_stop", json_pack("{s:i}", "index", x->n_blocks - 1));
    x->open = OPEN_NONE;
}

static void block_start(ant_ctx *x, ci_buf *out, json_t *block) {
    block_stop(x, out);
    ev(out, "content_block_start", json_pack("{s:i,s:o}", "index", x->n_blocks++, "content_block", block));
}

static void text_delta(ant_ctx *x, ci_buf *out, int kind, const char *s, size_t n) {
    if (x->open != kind) {
        block_start(x, out, kind == OPEN_THINKING ? json_pack("{s:s,s:s,s:s}", "type", "thinking", "thinking", "", "signature", "")
                                                  : json_pack("{s:s,s:s}", "type", "text", "text", ""));
        x->open = kind;
        if (kind == OPEN_TEXT) x->text_sent = true;
    }
    json_t *d = kind == OPEN_THINKING ? json_pack("{s:s,s:o}", "type", "thinking_delta", "thinking", srv_json_text(s, n))
                                      : json_pack("{s:s,s:o}", "type", "text_delta", "text", srv_json_text(s, n));
    ev(out, "content_block_delta", json_pack("{s:i,s:o}", "index", x->n_blocks - 1, "delta", d));
}

static void tool_blocks(ant_ctx *x, ci_buf *out, json_t *calls) {
    json_t *blocks = json_array();
    size_t k;
    json_t *call, *b;
    json_array_foreach(calls, k, call) append_tool_use(blocks, call);
    json_array_foreach(blocks, k, b) {
        if (strcmp(json_string_value(json_object_get(b, "type")), "text") == 0) {
            json_t *t = json_object_get(b, "text");
            text_delta(x, out, OPEN_TEXT, json_string_value(t), json_string_length(t));
            continue;
        }
        char *args = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
        json_t *start = json_deep_copy(b);
        json_object_set_new(start, "input", json_object());
        block_start(x, out, start);
        ev(out, "content_block_delta", json_pack("{s:i,s:{s:s,s:s}}", "index", x->n_blocks - 1, "delta", "type",
                                                  "input_json_delta", "partial_json", args ? args : "{}"));
        free(args);
        ev(out, "content_block_stop", json_pack("{s:i}", "index", x->n_blocks - 1));
    }
    json_decref(blocks);
}

static void messages_stream(job *j, ci_buf *out) {
    ant_ctx *x = j->api_ctx;
    choice *c = &j->choices[0];
    if (!c->started) {
        json_t *msg = message_json(j, json_array());
        json_object_set_new(msg, "stop_reason", json_null());
        json_object_set_new(msg, "stop_sequence", json_null());
        json_object_set_new(msg, "usage", json_pack("{s:i,s:i,s:i,s:i}", "input_tokens", c->n_prompt, "output_tokens", 0,
                                                    "cache_creation_input_tokens", 0, "cache_read_input_tokens", 0));
        ev(out, "message_start", json_pack("{s:o}", "message", msg));
        ev(out, "ping", json_object());
        c->started = true;
    }
    srv_delta d;
    if (c->finish_sent || !srv_choice_take(j, 0, &d)) return;
    if (d.think_len) text_delta(x, out, OPEN_THINKING, d.think, d.think_len);
    if (d.content_len) text_delta(x, out, OPEN_TEXT, d.content, d.content_len);
    if (!d.last) return;
    if (!d.tool_calls && !x->text_sent) text_delta(x, out, OPEN_TEXT, "", 0);
    block_stop(x, out);
    tool_blocks(x, out, d.tool_calls);
    json_t *delta = json_pack("{s:s,s:o}", "stop_reason", stop_reason(j, c, d.tool_calls != NULL), "stop_sequence",
                              stop_sequence(j, c));
    ev(out, "message_delta", json_pack("{s:o,s:o}", "delta", delta, "usage", usage_json(c)));
    ev(out, "message_stop", json_object());
    json_decref(d.tool_calls);
    c->finish_sent = true;
}

static void messages_stream_end(job *j, ci_buf *out) { (void)j, (void)out; }

static void messages_stream_error(job *j, const srv_error *e, ci_buf *out) {
    (void)j;
    srv_sse(out, "error", srv_error_json_shaped(e, SRV_SHAPE_ANTHROPIC));
}

static const srv_api MESSAGES_API = {
    .id_prefix = "msg_",
    .stream_type = "text/event-stream",
    .reply = messages_reply,
    .stream = messages_stream,
    .stream_end = messages_stream_end,
    .stream_error = messages_stream_error,
};

/* -------------------------------------------------------------- parse */

/* Text of a string or a list of text blocks (system, tool_result content). */
static bool blocks_text(json_t *v, const char *param, ci_buf *text, srv_error *e) {
    if (json_is_string(v)) {
        ci_buf_append(text, json_string_value(v), json_string_length(v));
        return true;
    }
    if (!json_is_array(v) || json_array_size(v) > MAX_BLOCKS)
        return srv_fail(e, 400, param, "%s must be a string or a list of text blocks", param);
    size_t i;
    json_t *b;
    json_array_foreach(v, i, b) {
        static const char *const KNOWN[] = {"type", "text", "cache_control", "citations", NULL};
        char p[96];
        snprintf(p, sizeof p, "%s[%zu]", param, i);
        const char *type = json_string_value(json_object_get(b, "type"));
        if (!type || strcmp(type, "text") != 0)
            return srv_fail(e, 400, p, "%s: blocks of type '%s' are not supported here (only text)", p, type ? type : "?");
        if (!srv_check_fields(b, KNOWN, p, e)) return false;
        json_t *t = json_object_get(b, "text");
        if (!json_is_string(t)) return srv_fail(e, 400, p, "%s.text must be a string", p);
        if (i) ci_buf_putc(text, '\n');
        ci_buf_append(text, json_string_value(t), json_string_length(t));
    }
    return true;
}

static bool tool_result(json_t *b, const char *p, json_t *messages, srv_error *e) {
    static const char *const KNOWN[] = {"type", "tool_use_id", "content", "is_error", "cache_control", NULL};
    if (!srv_check_fields(b, KNOWN, p, e)) return false;
    json_t *id = json_object_get(b, "tool_use_id"), *err = json_object_get(b, "is_error");
    if (!json_is_string(id)) return srv_fail(e, 400, p, "%s.tool_use_id must be a string", p);
    if (err && !json_is_boolean(err)) return srv_fail(e, 400, p, "%s.is_error must be a boolean", p);
    ci_buf text = {0};
    if (json_is_true(err)) ci_buf_puts(&text, "Error: ");
    char cp[112];
    snprintf(cp, sizeof cp, "%s.content", p);
    json_t *content = json_object_get(b, "content");
    if (content && !blocks_text(content, cp, &text, e)) return ci_buf_free(&text), false;
    json_array_append_new(messages, json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id, "content",
                                              json_stringn(text.data ? text.data : "", text.len)));
    ci_buf_free(&text);
    return true;
}

static bool tool_use(json_t *b, const char *p, json_t *calls, srv_error *e) {
    static const char *const KNOWN[] = {"type", "id", "name", "input", "cache_control", NULL};
    if (!srv_check_fields(b, KNOWN, p, e)) return false;
    json_t *id = json_object_get(b, "id"), *name = json_object_get(b, "name"), *input = json_object_get(b, "input");
    if (!json_is_string(id) || !json_is_string(name) || !json_is_object(input))
        return srv_fail(e, 400, p, "%s needs a string id and name and an object input", p);
    char *args = json_dumps(input, JSON_COMPACT);
    json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:s}}", "id", id, "type", "function", "function", "name", name,
                                           "arguments", args ? args : "{}"));
    free(args);
    return true;
}

/* One block of message i, into the turn being built. */
static bool content_block(json_t *b, const char *p, bool assistant, json_t *messages, ci_buf *text, ci_buf *think,
                          json_t *calls, srv_error *e) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!json_is_object(b) || !type) return srv_fail(e, 400, p, "%s must be an object with a type", p);
    if (strcmp(type, "text") == 0) {
        static const char *const KNOWN[] = {"type", "text", "cache_control", "citations", NULL};
        json_t *t = json_object_get(b, "text");
        if (!srv_check_fields(b, KNOWN, p, e)) return false;
        if (!json_is_string(t)) return srv_fail(e, 400, p, "%s.text must be a string", p);
        if (text->len) ci_buf_putc(text, '\n');
        ci_buf_append(text, json_string_value(t), json_string_length(t));
        return true;
    }
    if (assistant && strcmp(type, "tool_use") == 0) return tool_use(b, p, calls, e);
    if (assistant && strcmp(type, "thinking") == 0) {
        static const char *const KNOWN[] = {"type", "thinking", "signature", NULL};
        json_t *t = json_object_get(b, "thinking");
        if (!srv_check_fields(b, KNOWN, p, e)) return false;
        if (!json_is_string(t)) return srv_fail(e, 400, p, "%s.thinking must be a string", p);
        ci_buf_append(think, json_string_value(t), json_string_length(t));
        return true;
    }
    if (!assistant && strcmp(type, "tool_result") == 0) return tool_result(b, p, messages, e);
    return srv_fail(e, 400, p, "%s: content blocks of type '%s' are not supported in %s messages", p, type,
                    assistant ? "assistant" : "user");
}

static bool one_message(json_t *m, size_t i, json_t *messages, srv_error *e) {
    static const char *const KNOWN[] = {"role", "content", NULL};
    char p[48];
    snprintf(p, sizeof p, "messages[%zu]", i);
    if (!json_is_object(m)) return srv_fail(e, 400, p, "%s must be an object", p);
    if (!srv_check_fields(m, KNOWN, p, e)) return false;
    const char *role = json_string_value(json_object_get(m, "role"));
    if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
        return srv_fail(e, 400, p, "%s.role must be \"user\" or \"assistant\"", p);
    bool assistant = role[0] == 'a';
    json_t *content = json_object_get(m, "content");
    ci_buf text = {0}, think = {0};
    json_t *calls = json_array();
    bool ok = true;
    if (json_is_string(content)) {
        ci_buf_append(&text, json_string_value(content), json_string_length(content));
    } else if (!json_is_array(content) || json_array_size(content) > MAX_BLOCKS) {
        ok = srv_fail(e, 400, p, "%s.content must be a string or a list of at most %d blocks", p, MAX_BLOCKS);
    } else {
        size_t k;
        json_t *b;
        json_array_foreach(content, k, b) {
            char bp[80];
            snprintf(bp, sizeof bp, "%s.content[%zu]", p, k);
            if (!(ok = content_block(b, bp, assistant, messages, &text, &think, calls, e))) break;
        }
    }
    /* tool results went out as tool messages; the rest is one turn */
    if (ok && (text.len || think.len || json_array_size(calls) || assistant || json_is_string(content))) {
        json_t *msg = json_pack("{s:s,s:o}", "role", role, "content", json_stringn(text.data ? text.data : "", text.len));
        if (think.len) json_object_set_new(msg, "reasoning_content", json_stringn(think.data, think.len));
        if (json_array_size(calls)) json_object_set(msg, "tool_calls", calls);
        json_array_append_new(messages, msg);
    }
    json_decref(calls);
    ci_buf_free(&text);
    ci_buf_free(&think);
    return ok;
}

static bool tools_chat(json_t *tools, json_t *chat, srv_error *e) {
    if (!tools || json_is_null(tools)) return true;
    if (!json_is_array(tools) || json_array_size(tools) > MAX_TOOLS)
        return srv_fail(e, 400, "tools", "'tools' must be a list of at most %d tools", MAX_TOOLS);
    json_t *out = json_array();
    json_object_set_new(chat, "tools", out);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        static const char *const KNOWN[] = {"type", "name", "description", "input_schema", "cache_control", NULL};
        char p[32];
        snprintf(p, sizeof p, "tools[%zu]", i);
        if (!json_is_object(t)) return srv_fail(e, 400, p, "%s must be an object", p);
        const char *type = json_string_value(json_object_get(t, "type"));
        if (type && strcmp(type, "custom") != 0)
            return srv_fail(e, 400, p, "%s: tools of type '%s' are not supported (only custom tools)", p, type);
        if (!srv_check_fields(t, KNOWN, p, e)) return false;
        json_t *name = json_object_get(t, "name"), *schema = json_object_get(t, "input_schema");
        if (!json_is_string(name) || !json_is_object(schema))
            return srv_fail(e, 400, p, "%s needs a string name and an object input_schema", p);
        /* OpenAI's key order (name, description, parameters): templates print it with tojson */
        json_t *fn = json_pack("{s:O}", "name", name);
        json_t *d = json_object_get(t, "description");
        if (json_is_string(d)) json_object_set(fn, "description", d);
        json_object_set(fn, "parameters", schema);
        json_array_append_new(out, json_pack("{s:s,s:o}", "type", "function", "function", fn));
    }
    return true;
}

static bool tool_choice_chat(json_t *tc, json_t *chat, srv_error *e) {
    if (!tc || json_is_null(tc)) return true;
    static const char *const KNOWN[] = {"type", "name", "disable_parallel_tool_use", NULL};
    const char *type = json_string_value(json_object_get(tc, "type"));
    if (!json_is_object(tc) || !type) return srv_fail(e, 400, "tool_choice", "'tool_choice' must be an object with a type");
    if (!srv_check_fields(tc, KNOWN, "tool_choice", e)) return false;
    if (strcmp(type, "auto") == 0) json_object_set_new(chat, "tool_choice", json_string("auto"));
    else if (strcmp(type, "any") == 0) json_object_set_new(chat, "tool_choice", json_string("required"));
    else if (strcmp(type, "none") == 0) json_object_set_new(chat, "tool_choice", json_string("none"));
    else if (strcmp(type, "tool") == 0 && json_is_string(json_object_get(tc, "name")))
        json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name",
                                                           json_object_get(tc, "name")));
    else return srv_fail(e, 400, "tool_choice", "'tool_choice.type' must be auto, any, none or tool (with a name)");
    return true;
}

static bool thinking_chat(json_t *th, json_t *chat, srv_gen_request *g, srv_error *e) {
    json_object_set_new(chat, "enable_thinking", json_false());
    if (!th || json_is_null(th)) return true;
    static const char *const KNOWN[] = {"type", "budget_tokens", NULL};
    const char *type = json_string_value(json_object_get(th, "type"));
    if (!json_is_object(th) || !type) return srv_fail(e, 400, "thinking", "'thinking' must be an object with a type");
    if (!srv_check_fields(th, KNOWN, "thinking", e)) return false;
    if (strcmp(type, "disabled") == 0) return true;
    if (strcmp(type, "enabled") != 0) return srv_fail(e, 400, "thinking.type", "'thinking.type' must be enabled or disabled");
    json_t *b = json_object_get(th, "budget_tokens");
    if (!json_is_integer(b) || json_integer_value(b) < 0)
        return srv_fail(e, 400, "thinking.budget_tokens", "'thinking.budget_tokens' must be a non-negative integer");
    if (g->max_tokens >= 0 && json_integer_value(b) >= g->max_tokens)
        return srv_fail(e, 400, "thinking.budget_tokens", "'thinking.budget_tokens' must be less than max_tokens");
    g->thinking_budget = json_integer_value(b);
    json_object_set_new(chat, "enable_thinking", json_true());
    return true;
}

static bool stop_sequences(json_t *req, srv_gen_request *g, ant_ctx *x, srv_error *e) {
    json_t *ss = json_object_get(req, "stop_sequences");
    if (!ss || json_is_null(ss)) return true;
    if (!json_is_array(ss)) return srv_fail(e, 400, "stop_sequences", "'stop_sequences' must be a list of strings");
    size_t i;
    json_t *v;
    json_array_foreach(ss, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return srv_fail(e, 400, "stop_sequences", "'stop_sequences' must be a list of non-empty strings");
        if (!srv_gen_add_stop(g, json_string_value(v), json_string_length(v), e)) return false;
        x->stop[x->n_stop++] = ci_strndup(json_string_value(v), json_string_length(v));
    }
    return true;
}

static bool sampling(json_t *req, srv_gen_request *g, bool need_max, srv_error *e) {
    double d;
    bool set;
    long long k;
    if (!srv_opt_number(req, "temperature", 0, 1, &d, &set, e)) return false;
    if (set) g->sampling.temperature = (float)d;
    if (!srv_opt_number(req, "top_p", 1e-9, 1, &d, &set, e)) return false;
    if (set) g->sampling.top_p = (float)d;
    if (!srv_opt_int(req, "top_k", 0, 1 << 30, &k, &set, e)) return false;
    if (set) g->sampling.top_k = (int)k;
    if (!srv_opt_int(req, "max_tokens", 1, INT32_MAX, &g->max_tokens, &set, e)) return false;
    if (need_max && !set) return srv_fail(e, 400, "max_tokens", "max_tokens: Field required");
    json_t *md = json_object_get(req, "metadata");
    if (md && !json_is_null(md) && !json_is_object(md)) return srv_fail(e, 400, "metadata", "'metadata' must be an object");
    return srv_opt_bool(req, "stream", &g->stream, e);
}

/* The chat request of a Messages body (count_tokens: without output fields). */
static bool messages_parse(const server *s, json_t *req, srv_gen_request *g, bool generate, srv_error *e) {
    static const char *const GEN[] = {"model", "messages", "system", "max_tokens", "tools", "tool_choice", "thinking",
                                      "stop_sequences", "temperature", "top_p", "top_k", "stream", "metadata",
                                      "service_tier", NULL};
    static const char *const COUNT[] = {"model", "messages", "system", "tools", "tool_choice", "thinking", NULL};
    g->prompt_param = "messages";
    if (!srv_check_fields(req, generate ? GEN : COUNT, NULL, e) || !srv_check_model(s, req, e)) return false;
    if (generate && !sampling(req, g, true, e)) return false;
    ant_ctx *x = ci_calloc(1, sizeof *x);
    g->api_ctx = x, g->api_ctx_free = ctx_free;
    if (generate && !stop_sequences(req, g, x, e)) return false;
    json_t *msgs = json_object_get(req, "messages"), *system = json_object_get(req, "system");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0 || json_array_size(msgs) > MAX_MESSAGES)
        return srv_fail(e, 400, "messages", "'messages' must be a non-empty list of at most %d messages", MAX_MESSAGES);
    json_t *chat = json_object(), *messages = json_array();
    json_object_set_new(chat, "messages", messages);
    bool ok = true;
    if (system && !json_is_null(system)) {
        ci_buf text = {0};
        ok = blocks_text(system, "system", &text, e);
        if (ok) json_array_append_new(messages, json_pack("{s:s,s:o}", "role", "system", "content",
                                                          json_stringn(text.data ? text.data : "", text.len)));
        ci_buf_free(&text);
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) if (ok) ok = one_message(m, i, messages, e);
    ok = ok && tools_chat(json_object_get(req, "tools"), chat, e) &&
         tool_choice_chat(json_object_get(req, "tool_choice"), chat, e) &&
         thinking_chat(json_object_get(req, "thinking"), chat, g, e) && srv_chat_prepare(s, chat, g, e);
    json_decref(chat);
    return ok;
}

int api_anthropic_messages(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    srv_gen_request g;
    srv_gen_init(&g, r->srv);
    int ret = messages_parse(r->srv, req, &g, true, &e) ? srv_gen_run(r, &g, &MESSAGES_API) : srv_send_error(r, &e);
    srv_gen_free(&g);
    json_decref(req);
    return ret;
}

int api_anthropic_count_tokens(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    srv_gen_request g;
    srv_gen_init(&g, r->srv);
    int ret = messages_parse(r->srv, req, &g, false, &e)
                  ? srv_send_json(r, 200, json_pack("{s:I}", "input_tokens", (json_int_t)g.prompts[0].n_ids))
                  : srv_send_error(r, &e);
    srv_gen_free(&g);
    json_decref(req);
    return ret;
}
