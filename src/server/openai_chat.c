/*
 * openai_chat.c — the OpenAI chat completions adapter
 * (POST /v1/chat/completions): messages, tools and template flags → the
 * internal request; the job's events → a chat.completion body or
 * chat.completion.chunk events.
 *
 * Every client-controlled size is bounded before it is used: messages,
 * content parts, tools (and, in the shared readers, stop strings, n,
 * max_tokens, top_logprobs). Wrong types give 400 with `param` set.
 */
#include "server/openai.h"
#include "template/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 4096
#define MAX_CONTENT_PARTS 1024
#define MAX_TOOLS 256

/* ------------------------------------------------------------ messages */

/* content as a string: text parts joined with "\n" (as vLLM does) */
static bool message_content(json_t *m, const char *param, json_t *out, srv_error *e) {
    json_t *content = json_object_get(m, "content");
    if (json_is_string(content)) return json_object_set(out, "content", content) == 0;
    if (!content || json_is_null(content)) return json_object_set_new(out, "content", json_string("")) == 0;
    if (!json_is_array(content))
        return srv_fail(e, 400, param, "%s.content must be a string, a list of text parts or null", param);
    if (json_array_size(content) > MAX_CONTENT_PARTS)
        return srv_fail(e, 400, param, "%s.content has more than %d parts", param, MAX_CONTENT_PARTS);
    ci_buf text = {0};
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *type = json_object_get(part, "type"), *t = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 || !json_is_string(t)) {
            ci_buf_free(&text);
            return srv_fail(e, 400, param, "%s.content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported",
                            param, i);
        }
        if (i) ci_buf_putc(&text, '\n');
        ci_buf_append(&text, json_string_value(t), json_string_length(t));
    }
    json_object_set_new(out, "content", json_stringn(text.data ? text.data : "", text.len));
    ci_buf_free(&text);
    return true;
}

/* tool_calls with arguments as an object when they parse (the Qwen3
 * template prints mappings with tojson) */
static bool message_tool_calls(json_t *m, const char *param, json_t *out, srv_error *e) {
    json_t *calls = json_object_get(m, "tool_calls");
    if (calls && !json_is_null(calls) && !json_is_array(calls)) return srv_fail(e, 400, param, "%s.tool_calls must be a list", param);
    if (json_array_size(calls) == 0) return true;
    json_t *copy = json_deep_copy(calls);
    size_t i;
    json_t *call;
    json_array_foreach(copy, i, call) {
        json_t *fn = json_object_get(call, "function");
        json_t *args = json_object_get(fn, "arguments");
        if (!json_is_string(args)) continue;
        json_t *parsed = json_loads(json_string_value(args), 0, NULL);
        if (json_is_object(parsed)) json_object_set_new(fn, "arguments", parsed);
        else json_decref(parsed);
    }
    json_object_set_new(out, "tool_calls", copy);
    return true;
}

/* Copies one message into the template's shape. */
static json_t *template_message(json_t *m, size_t index, srv_error *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu]", index);
    if (!json_is_object(m)) return srv_fail(e, 400, param, "each message must be an object"), NULL;
    json_t *role = json_object_get(m, "role");
    if (!json_is_string(role)) return srv_fail(e, 400, param, "%s.role must be a string", param), NULL;
    const char *rs = json_string_value(role);
    if (strcmp(rs, "developer") == 0) rs = "system";
    if (strcmp(rs, "system") != 0 && strcmp(rs, "user") != 0 && strcmp(rs, "assistant") != 0 && strcmp(rs, "tool") != 0)
        return srv_fail(e, 400, param, "%s.role '%s' is not one of system, developer, user, assistant, tool", param, rs), NULL;
    json_t *out = json_object();
    json_object_set_new(out, "role", json_string(rs));
    if (!message_content(m, param, out, e) || !message_tool_calls(m, param, out, e)) {
        json_decref(out);
        return NULL;
    }
    json_t *rc = json_object_get(m, "reasoning_content");
    if (!rc) rc = json_object_get(m, "reasoning");
    if (json_is_string(rc)) json_object_set(out, "reasoning_content", rc);
    json_t *v;
    if ((v = json_object_get(m, "tool_call_id")) && json_is_string(v)) json_object_set(out, "tool_call_id", v);
    if ((v = json_object_get(m, "name")) && json_is_string(v)) json_object_set(out, "name", v);
    return out;
}

/* --------------------------------------------------------------- tools */

static bool check_tools(json_t *tools, srv_error *e) {
    if (!tools || json_is_null(tools)) return true;
    if (!json_is_array(tools) || json_array_size(tools) > MAX_TOOLS)
        return srv_fail(e, 400, "tools", "'tools' must be a list of at most %d tools", MAX_TOOLS);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *fn = json_object_get(t, "function");
        if (!json_is_object(t) || !json_is_object(fn) || !json_is_string(json_object_get(fn, "name")))
            return srv_fail(e, 400, "tools", "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", i);
    }
    return true;
}

static bool tool_choice_value(json_t *tc, srv_tool_mode *mode, const char **named, srv_error *e) {
    *mode = TOOLS_AUTO;
    *named = NULL;
    if (json_is_string(tc)) {
        const char *v = json_string_value(tc);
        if (strcmp(v, "none") == 0) *mode = TOOLS_OFF;
        else if (strcmp(v, "required") == 0) *mode = TOOLS_REQUIRED;
        else if (strcmp(v, "auto") != 0)
            return srv_fail(e, 400, "tool_choice", "Invalid value for 'tool_choice': '%s'. Supported values are \"none\", "
                            "\"auto\", \"required\" and {\"type\": \"function\", \"function\": {\"name\": ...}}", v);
    } else if (json_is_object(tc)) {
        json_t *type = json_object_get(tc, "type"), *name = json_object_get(json_object_get(tc, "function"), "name");
        if ((type && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0)) || !json_is_string(name))
            return srv_fail(e, 400, "tool_choice", "'tool_choice' must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
        *mode = TOOLS_NAMED;
        *named = json_string_value(name);
    } else if (tc && !json_is_null(tc)) {
        return srv_fail(e, 400, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or an object");
    }
    return true;
}

/* Reads tool_choice against the request's tools. */
static bool parse_tool_choice(json_t *req, srv_tool_mode *mode, const char **named, srv_error *e) {
    json_t *tools = json_object_get(req, "tools");
    if (!tool_choice_value(json_object_get(req, "tool_choice"), mode, named, e)) return false;
    if (json_array_size(tools) == 0) {
        if (*mode == TOOLS_REQUIRED || *mode == TOOLS_NAMED)
            return srv_fail(e, 400, "tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                            "'tools' are specified.");
        *mode = TOOLS_OFF;
        return true;
    }
    if (!*named) return true;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
        if (strcmp(json_string_value(json_object_get(json_object_get(t, "function"), "name")), *named) == 0) return true;
    return srv_fail(e, 400, "tool_choice", "Invalid value for 'tool_choice': no function named '%s' was specified in the "
                    "'tools' parameter.", *named);
}

/* ------------------------------------------------------------- prompt */

/* The template context: messages, tools, flags and chat_template_kwargs. */
static json_t *template_context(const server *s, json_t *req, srv_tool_mode *mode, const char **named, srv_error *e) {
    json_t *messages = json_object_get(req, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return srv_fail(e, 400, "messages", "'messages' must be a non-empty list"), NULL;
    if (json_array_size(messages) > MAX_MESSAGES) return srv_fail(e, 400, "messages", "at most %d messages", MAX_MESSAGES), NULL;
    json_t *tools = json_object_get(req, "tools"), *et = json_object_get(req, "enable_thinking"),
           *kw = json_object_get(req, "chat_template_kwargs");
    if (!check_tools(tools, e) || !parse_tool_choice(req, mode, named, e)) return NULL;
    if (et && !json_is_null(et) && !json_is_boolean(et))
        return srv_fail(e, 400, "enable_thinking", "'enable_thinking' must be a boolean"), NULL;
    if (kw && !json_is_null(kw) && !json_is_object(kw))
        return srv_fail(e, 400, "chat_template_kwargs", "'chat_template_kwargs' must be an object"), NULL;
    json_t *ctx = json_object(), *msgs = json_array();
    json_object_set_new(ctx, "messages", msgs);
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        json_t *tm = template_message(m, i, e);
        if (!tm) return json_decref(ctx), NULL;
        json_array_append_new(msgs, tm);
    }
    /* "none": the tools are left out of the prompt too (as vLLM's
     * --exclude-tools-when-tool-choice-none), so the model has no reason to
     * call them; the content is never parsed for calls. */
    if (*mode != TOOLS_OFF) json_object_set(ctx, "tools", tools);
    json_object_set_new(ctx, "add_generation_prompt", json_true());
    if (s->m->bos_token) json_object_set_new(ctx, "bos_token", json_string(s->m->bos_token));
    if (s->m->eos_token) json_object_set_new(ctx, "eos_token", json_string(s->m->eos_token));
    if (json_is_boolean(et)) json_object_set(ctx, "enable_thinking", et);
    const char *key;
    json_t *v;
    json_object_foreach(json_is_object(kw) ? kw : NULL, key, v)
        if (strcmp(key, "messages") != 0 && strcmp(key, "tools") != 0) json_object_set(ctx, key, v);
    return ctx;
}

long srv_openai_chat_prompt(const server *s, json_t *req, srv_tool_mode *mode, const char **named, int32_t **ids,
                            srv_error *e) {
    *ids = NULL;
    json_t *ctx = template_context(s, req, mode, named, e);
    if (!ctx) return -1;
    cinfer_error err = {0};
    char *text = NULL;
    long n = ci_render_chat_protected(s->m->tpl, s->m->tok, &s->specials, ctx, ids, &text, &err);
    json_decref(ctx);
    free(text);
    if (n < 0) return srv_fail(e, 400, "messages", "cannot apply the chat template: %s", err.message), -1;
    if (n == 0) return srv_fail(e, 400, "messages", "the prompt is empty"), -1;
    return n;
}

/* The ids the answer must start with for tool_choice "required" or a named
 * function: Qwen3's call opening up to the name, or through
 * `"arguments":` for a named function ("required" with a single tool is
 * that tool named). The forced text ends where the tokenizer's
 * pre-tokenizer splits anyway (before the space of ` {"`), so the model
 * continues with the ids it would have produced itself; the name is JSON
 * text tokenized as plain text. */
static bool tool_call_prefix(const server *s, srv_gen_request *g, const char *named, srv_error *e) {
    if (g->tools_mode != TOOLS_REQUIRED && g->tools_mode != TOOLS_NAMED) return true;
    if (g->tools_mode == TOOLS_REQUIRED && json_array_size(g->tools) == 1)
        named = json_string_value(json_object_get(json_object_get(json_array_get(g->tools, 0), "function"), "name"));
    ci_buf text = {0};
    ci_buf_puts(&text, "\n{\"name\": ");
    if (named) {
        json_t *js = json_string(named);
        char *quoted = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        json_decref(js);
        ci_buf_puts(&text, quoted ? quoted : "\"\"");
        ci_buf_puts(&text, ", \"arguments\":");
        free(quoted);
    } else {
        ci_buf_putc(&text, '"');
    }
    int32_t *tag = NULL, *rest = NULL;
    cinfer_error err = {0};
    long nt = cinfer_tokenize(s->m->tok, "<tool_call>", 11, 0, &tag, &err);
    long nr = nt < 0 ? -1 : cinfer_tokenize(s->m->tok, text.data, text.len, CINFER_TOKENIZE_SPLIT_SPECIAL, &rest, &err);
    ci_buf_free(&text);
    bool ok = false;
    if (nt < 0 || nr < 0) {
        srv_fail(e, 400, "tool_choice", "cannot tokenize the tool call opening: %s", err.message);
    } else if (nt + nr > CI_MAX_FORCED_TOKENS) {
        srv_fail(e, 400, "tool_choice", "the function name is too long");
    } else {
        g->forced_prefix = ci_malloc((size_t)(nt + nr) * sizeof *g->forced_prefix);
        if (nt) memcpy(g->forced_prefix, tag, (size_t)nt * sizeof *tag);
        if (nr) memcpy(g->forced_prefix + nt, rest, (size_t)nr * sizeof *rest);
        g->n_forced_prefix = (int)(nt + nr);
        ok = true;
    }
    free(tag);
    free(rest);
    return ok;
}

/* ------------------------------------------------------------- render */

/* Chat logprobs entries for tokens [from, to) of a choice. */
static json_t *chat_logprobs(const job *j, const choice *c, int from, int to) {
    const server *s = j->srv;
    json_t *content = json_array();
    for (int t = from; t < to; t++) {
        json_t *tops = json_array();
        for (int k = 0; k < j->top_logprobs; k++) {
            size_t at = (size_t)t * (size_t)j->top_logprobs + (size_t)k;
            if (c->top_ids[at] < 0) continue;
            json_array_append_new(tops, json_pack("{s:o,s:f,s:o}", "token", srv_token_text(s, c->top_ids[at]), "logprob",
                                                  (double)c->top_lps[at], "bytes", srv_token_bytes(s, c->top_ids[at])));
        }
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", srv_token_text(s, c->tokens[t]), "logprob",
                                                 (double)c->logprobs[t], "bytes", srv_token_bytes(s, c->tokens[t]),
                                                 "top_logprobs", tops));
    }
    return json_pack("{s:o}", "content", content);
}

/* finish_reason as OpenAI (and vLLM) give it: "tool_calls" for calls the
 * model chose ("auto") or had to make ("required") — for the latter only
 * when the model ended normally, else "length" —, and the plain reason for
 * a named function ("stop" when the call is complete). */
static const char *chat_finish(const job *j, const choice *c, bool has_calls) {
    if (!has_calls) return srv_openai_finish(c->finish);
    if (j->tools_mode == TOOLS_AUTO) return "tool_calls";
    if (j->tools_mode == TOOLS_REQUIRED && c->finish == CI_FINISH_STOP) return "tool_calls";
    return srv_openai_finish(c->finish);
}

static json_t *reply_choice(job *j, int i) {
    choice *c = &j->choices[i];
    size_t tl = 0, cl = 0, visible = 0;
    const char *thinking = c->out ? ci_output_thinking(c->out, &tl) : "";
    const char *content = c->out ? ci_output_content(c->out, &cl) : "";
    json_t *calls = srv_choice_tool_calls(j, c, &visible);
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string("assistant"));
    json_object_set_new(msg, "content", calls && visible == 0 ? json_null() : srv_json_text(content, visible));
    json_object_set_new(msg, "reasoning_content", tl ? srv_json_text(thinking, tl) : json_null());
    if (calls) json_object_set_new(msg, "tool_calls", calls);
    json_t *ch = json_pack("{s:i,s:o}", "index", i, "message", msg);
    json_object_set_new(ch, "logprobs", j->want_logprobs ? chat_logprobs(j, c, 0, c->n_tokens) : json_null());
    json_object_set_new(ch, "finish_reason", json_string(chat_finish(j, c, calls != NULL)));
    return ch;
}

static int chat_reply(srv_request *r, job *j) {
    json_t *choices = json_array();
    for (int i = 0; i < j->n_choices; i++) json_array_append_new(choices, reply_choice(j, i));
    json_t *body = srv_openai_envelope(j, "chat.completion");
    json_object_set_new(body, "choices", choices);
    json_object_set_new(body, "usage", srv_openai_usage(j));
    return srv_send_json(r, 200, body);
}

static void chat_chunk(job *j, ci_buf *out, int index, json_t *delta, json_t **logprobs, const char *finish) {
    json_t *ch = json_pack("{s:i,s:o}", "index", index, "delta", delta);
    json_object_set_new(ch, "logprobs", *logprobs ? *logprobs : json_null());
    *logprobs = NULL; /* logprobs travel with the first chunk that follows them */
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *obj = srv_openai_envelope(j, "chat.completion.chunk");
    json_object_set_new(obj, "choices", json_pack("[o]", ch));
    srv_sse(out, NULL, obj);
}

/* One choice's new events as chunks: role (once), reasoning, content, tool
 * calls, then the finish. */
static void chat_stream_choice(job *j, int i, ci_buf *out) {
    choice *c = &j->choices[i];
    json_t *lp = NULL, *none = NULL;
    srv_delta d;
    if (!c->started) {
        chat_chunk(j, out, i, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), &none, NULL);
        c->started = true;
    }
    if (!srv_choice_take(j, i, &d)) return;
    if (j->want_logprobs && d.tok_to > d.tok_from) lp = chat_logprobs(j, c, d.tok_from, d.tok_to);
    if (d.think_len) chat_chunk(j, out, i, json_pack("{s:o}", "reasoning_content", srv_json_text(d.think, d.think_len)), &lp, NULL);
    if (d.content_len) chat_chunk(j, out, i, json_pack("{s:o}", "content", srv_json_text(d.content, d.content_len)), &lp, NULL);
    if (d.tool_calls) {
        size_t k;
        json_t *call;
        json_array_foreach(d.tool_calls, k, call) json_object_set_new(call, "index", json_integer((json_int_t)k));
        chat_chunk(j, out, i, json_pack("{s:o}", "tool_calls", d.tool_calls), &lp, NULL);
    }
    if (lp) chat_chunk(j, out, i, json_object(), &lp, NULL);
    if (d.last) {
        chat_chunk(j, out, i, json_object(), &none, chat_finish(j, c, d.tool_calls != NULL));
        c->finish_sent = true;
    }
}

static void chat_stream(job *j, ci_buf *out) {
    for (int i = 0; i < j->n_choices; i++)
        if (!j->choices[i].finish_sent) chat_stream_choice(j, i, out);
}

static void chat_stream_end(job *j, ci_buf *out) { srv_openai_stream_end(j, "chat.completion.chunk", out); }

static const srv_api CHAT_API = {
    .id_prefix = "chatcmpl-",
    .stream_type = "text/event-stream",
    .reply = chat_reply,
    .stream = chat_stream,
    .stream_end = chat_stream_end,
    .stream_error = srv_openai_stream_error,
};

/* -------------------------------------------------------------- parse */

bool srv_chat_prepare(const server *s, json_t *req, srv_gen_request *g, srv_error *e) {
    g->parse_thinking = true;
    const char *named = NULL;
    srv_prompt *p = &g->prompts[0];
    p->n_ids = srv_openai_chat_prompt(s, req, &g->tools_mode, &named, &p->ids, e);
    if (p->n_ids < 0) return false;
    g->n_prompts = 1;
    if (g->tools_mode != TOOLS_OFF) g->tools = json_incref(json_object_get(req, "tools"));
    return tool_call_prefix(s, g, named, e);
}

static bool chat_parse(const server *s, json_t *req, srv_gen_request *g, srv_error *e) {
    g->prompt_param = "messages";
    return srv_openai_parse_common(s, req, true, g, e) && srv_chat_prepare(s, req, g, e);
}

int api_chat_completions(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    srv_gen_request g;
    srv_gen_init(&g, r->srv);
    int ret = chat_parse(r->srv, req, &g, &e) ? srv_gen_run(r, &g, &CHAT_API) : srv_send_error(r, &e);
    srv_gen_free(&g);
    json_decref(req);
    return ret;
}
