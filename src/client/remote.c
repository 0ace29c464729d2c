/*
 * remote.c — a chat turn against an OpenAI-compatible endpoint
 * (POST /chat/completions, streamed or not) and the models list.
 *
 * The request is built from the engine's messages and the generation
 * options; only options the caller set are sent, so a strict server such as
 * OpenAI's never sees fields it rejects unless asked. The answer goes
 * through the same pipeline whether streamed or not: reasoning and content
 * pieces into the thinking/content splitter (reasoning.h), tool-call pieces
 * into an assembler keyed by their index. Everything the server sends is
 * untrusted: sizes are bounded, types checked, messages made printable.
 */
#include "client/remote.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_util.h"
#include "client/http.h"
#include "client/reasoning.h"
#include "client/sse.h"
#include "util/util.h"

#define ANSWER_MAX (64u << 20)      /* total bytes of one answer, any channel */
#define MAX_TOOL_CALLS 128

struct ci_remote {
    ci_http_client *http;
    char *model; /* NULL until resolved from /models */
    pthread_mutex_t model_lock;
};

void cinfer_remote_options_init(cinfer_remote_options *o) { *o = (cinfer_remote_options){.max_retries = -1}; }

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static ci_http_client *open_http(const cinfer_remote_options *o, cinfer_error *err) {
    cinfer_remote_options defaults;
    if (!o) cinfer_remote_options_init(&defaults), o = &defaults;
    ci_http_config cfg = {
        .base_url = o->base_url ? o->base_url
                    : env_nonempty("OPENAI_BASE_URL") ? env_nonempty("OPENAI_BASE_URL")
                                                      : "https://api.openai.com/v1",
        .api_key = o->api_key ? o->api_key
                   : env_nonempty("OPENAI_API_KEY") ? env_nonempty("OPENAI_API_KEY")
                                                    : env_nonempty("CINFER_API_KEY"),
        .ca_bundle = o->ca_bundle,
        .connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : 10,
        .timeout = o->timeout > 0 ? o->timeout : 600,
        .idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : 60,
        .max_retries = o->max_retries >= 0 ? o->max_retries : 2,
        .verbose = o->verbose,
        .cancel = o->cancel,
    };
    return ci_http_open(&cfg, err);
}

ci_remote *ci_remote_open(const cinfer_remote_options *o, cinfer_error *err) {
    ci_http_client *http = open_http(o, err);
    if (!http) return NULL;
    ci_remote *r = ci_calloc(1, sizeof *r);
    r->http = http;
    pthread_mutex_init(&r->model_lock, NULL);
    if (o && o->model && *o->model) r->model = ci_strdup(o->model);
    return r;
}

void ci_remote_close(ci_remote *r) {
    if (!r) return;
    ci_http_close(r->http);
    free(r->model);
    pthread_mutex_destroy(&r->model_lock);
    free(r);
}

/* ------------------------------------------------------------ models list */

/* Collects a whole (non-streamed) body, bounded. */
typedef struct body_sink {
    ci_buf body;
    bool too_large;
} body_sink;

static bool body_on_data(void *user, const char *data, size_t len) {
    body_sink *b = user;
    if (b->body.len + len > ANSWER_MAX) {
        b->too_large = true;
        return false;
    }
    ci_buf_append(&b->body, data, len);
    return true;
}
static void body_on_attempt(void *user) { ((body_sink *)user)->body.len = 0; }

/* GET /models; returns the "data" array (a new reference) or NULL. */
static json_t *fetch_models(ci_http_client *http, cinfer_error *err) {
    body_sink b = {0};
    ci_http_sink sink = {.on_body = body_on_data, .on_attempt = body_on_attempt, .user = &b};
    ci_http_outcome outcome;
    json_t *data = NULL;
    int rc = ci_http_request(http, "GET", "/models", NULL, false, &sink, &outcome, err);
    if (rc == CINFER_OK) {
        if (outcome == CI_HTTP_CANCELLED) {
            ci_error(err, CINFER_ERR_NETWORK, "listing models: cancelled");
        } else if (b.too_large) {
            ci_error(err, CINFER_ERR_LIMIT, "listing models: the response is larger than %u bytes", ANSWER_MAX);
        } else {
            json_t *root = json_loadb(b.body.data ? b.body.data : "", b.body.len, 0, NULL);
            json_t *arr = json_object_get(root, "data");
            if (json_is_array(arr)) data = json_incref(arr);
            else ci_error(err, CINFER_ERR_FORMAT, "listing models: the response has no \"data\" array");
            json_decref(root);
        }
    }
    ci_buf_free(&b.body);
    return data;
}

char *cinfer_remote_list_models(const cinfer_remote_options *o, cinfer_error *err) {
    ci_http_client *http = open_http(o, err);
    if (!http) return NULL;
    json_t *data = fetch_models(http, err);
    ci_http_close(http);
    if (!data) return NULL;
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    return text;
}

/* Picks the endpoint's first model once; threads sharing the handle wait for it. */
static int resolve_model(ci_remote *r, cinfer_error *err) {
    pthread_mutex_lock(&r->model_lock);
    int rc = CINFER_OK;
    if (!r->model) {
        json_t *data = fetch_models(r->http, err);
        if (!data) {
            ci_error_prefix(err, "no model given and none could be listed");
            rc = err ? err->code : CINFER_ERR_NETWORK;
        } else {
            const char *id = json_string_value(json_object_get(json_array_get(data, 0), "id"));
            if (id && *id && strlen(id) < 1024) r->model = ci_strdup(id);
            json_decref(data);
            if (!r->model) rc = ci_error(err, CINFER_ERR_INVALID, "no model given and the endpoint lists none");
        }
    }
    pthread_mutex_unlock(&r->model_lock);
    return rc;
}

/* ---------------------------------------------------------------- request */

/* A float option as the number the user wrote: 0.7f is 0.699999988 as a
 * double; printing 7 significant digits and reading back gives 0.7. */
static json_t *json_float(float f) {
    char text[32];
    snprintf(text, sizeof text, "%.7g", (double)f);
    return json_real(strtod(text, NULL));
}

/* Merges extra fields: objects into objects, null removes, anything else replaces. */
static void merge_extra(json_t *req, json_t *extra) {
    const char *key;
    json_t *value;
    json_object_foreach(extra, key, value) {
        json_t *have = json_object_get(req, key);
        if (json_is_null(value)) json_object_del(req, key);
        else if (json_is_object(value) && json_is_object(have)) json_object_update(have, value);
        else json_object_set(req, key, value);
    }
}

static json_t *build_request(const char *model, const json_t *messages, const cinfer_gen_options *o, bool stream,
                             cinfer_error *err) {
    json_t *req = json_object();
    json_object_set_new(req, "model", json_string(model));
    /* reasoning_content is dropped from history: DeepSeek rejects it, and
     * Qwen3 templates discard earlier turns' thinking anyway. */
    json_t *msgs = json_deep_copy(messages);
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) json_object_del(m, "reasoning_content");
    json_object_set_new(req, "messages", msgs);
    json_object_set_new(req, "stream", json_boolean(stream));
    if (stream) json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (o->temperature >= 0) json_object_set_new(req, "temperature", json_float(o->temperature));
    if (o->top_p >= 0) json_object_set_new(req, "top_p", json_float(o->top_p));
    if (o->top_k >= 0) json_object_set_new(req, "top_k", json_integer(o->top_k));
    if (o->min_p >= 0) json_object_set_new(req, "min_p", json_float(o->min_p));
    if (o->repetition_penalty > 0) json_object_set_new(req, "repetition_penalty", json_float(o->repetition_penalty));
    if (o->presence_penalty != 0) json_object_set_new(req, "presence_penalty", json_float(o->presence_penalty));
    if (o->frequency_penalty != 0) json_object_set_new(req, "frequency_penalty", json_float(o->frequency_penalty));
    if (o->max_new_tokens > 0) json_object_set_new(req, "max_tokens", json_integer(o->max_new_tokens));
    if (o->has_seed) json_object_set_new(req, "seed", json_integer((json_int_t)(o->seed & INT64_MAX)));
    if (o->n_stop > 0 && o->stop) {
        json_t *stop = json_array();
        for (int k = 0; k < o->n_stop; k++)
            if (o->stop[k]) json_array_append_new(stop, json_string(o->stop[k]));
        json_object_set_new(req, "stop", stop);
    }
    if (o->enable_thinking >= 0) {
        json_object_set_new(req, "chat_template_kwargs", json_pack("{s:b}", "enable_thinking", o->enable_thinking));
        json_object_set_new(req, "enable_thinking", json_boolean(o->enable_thinking));
    }
    json_error_t jerr;
    if (o->tools_json) {
        json_t *tools = json_loads(o->tools_json, 0, &jerr);
        if (!json_is_array(tools)) {
            ci_error(err, CINFER_ERR_INVALID, "tools must be a JSON array%s%s", tools ? "" : ": ", tools ? "" : jerr.text);
            json_decref(tools);
            json_decref(req);
            return NULL;
        }
        json_object_set_new(req, "tools", tools);
    }
    if (o->extra_json) {
        json_t *extra = json_loads(o->extra_json, 0, &jerr);
        if (!json_is_object(extra)) {
            ci_error(err, CINFER_ERR_INVALID, "extra request fields must be a JSON object%s%s", extra ? "" : ": ",
                     extra ? "" : jerr.text);
            json_decref(extra);
            json_decref(req);
            return NULL;
        }
        merge_extra(req, extra);
        json_decref(extra);
    }
    return req;
}

/* ----------------------------------------------------------------- answer */

typedef struct tool_call {
    ci_buf id, type, name, arguments;
    bool present;
} tool_call;

typedef struct answer {
    const cinfer_gen_options *o;
    bool streaming;
    bool whole_body;           /* streaming was asked for, the server sent plain JSON */
    bool body_started;
    ci_sse_parser sse;
    body_sink body;            /* non-streamed response */
    ci_reasoning_split split;
    ci_buf thinking_delta, content_delta;
    tool_call calls[MAX_TOOL_CALLS];
    int n_calls;               /* highest index seen + 1 */
    json_t *whole_tool_calls;  /* non-streamed message.tool_calls */
    const char *finish_reason; /* static string */
    int prompt_tokens, completion_tokens;
    size_t received;           /* answer bytes, all channels */
    bool done;                 /* [DONE] seen */
    bool delivered;            /* on_delta got text */
    bool user_stopped;         /* on_delta returned false */
    bool failed;
    cinfer_error error;        /* why it failed */
} answer;

static void answer_reset(answer *a) {
    ci_sse_reset(&a->sse);
    a->body.body.len = 0;
    a->body.too_large = false;
    ci_reasoning_reset(&a->split);
    a->thinking_delta.len = a->content_delta.len = 0;
    for (int i = 0; i < a->n_calls; i++) {
        tool_call *t = &a->calls[i];
        t->id.len = t->type.len = t->name.len = t->arguments.len = 0;
        t->present = false;
    }
    a->n_calls = 0;
    json_decref(a->whole_tool_calls);
    a->whole_tool_calls = NULL;
    a->finish_reason = NULL;
    a->prompt_tokens = a->completion_tokens = 0;
    a->received = 0;
    a->done = a->delivered = a->user_stopped = a->failed = false;
    a->whole_body = a->body_started = false;
    a->error = (cinfer_error){0};
}

static void answer_free(answer *a) {
    ci_sse_free(&a->sse);
    ci_buf_free(&a->body.body);
    ci_reasoning_free(&a->split);
    ci_buf_free(&a->thinking_delta);
    ci_buf_free(&a->content_delta);
    for (int i = 0; i < MAX_TOOL_CALLS; i++) {
        tool_call *t = &a->calls[i];
        ci_buf_free(&t->id), ci_buf_free(&t->type), ci_buf_free(&t->name), ci_buf_free(&t->arguments);
    }
    json_decref(a->whole_tool_calls);
}

static bool answer_fail(answer *a, int code, const char *fmt, const char *detail) {
    a->failed = true;
    char printable[320];
    ci_printable_excerpt(detail ? detail : "", detail ? strlen(detail) : 0, 300, printable, sizeof printable);
    ci_error(&a->error, code, fmt, printable);
    return false;
}

static bool count_bytes(answer *a, size_t n) {
    if (a->received + n > ANSWER_MAX) {
        a->failed = true;
        ci_error(&a->error, CINFER_ERR_LIMIT, "the answer is larger than %u bytes", ANSWER_MAX);
        return false;
    }
    a->received += n;
    return true;
}

static const char *static_finish_reason(const char *s) {
    static const char *const known[] = {"stop", "length", "tool_calls", "content_filter", "function_call"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(s, known[i]) == 0) return known[i];
    return "stop";
}

/* Reads usage and finish_reason, common to chunks and whole responses. */
static void read_common(answer *a, const json_t *root, const json_t *choice) {
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        json_int_t p = json_integer_value(json_object_get(usage, "prompt_tokens"));
        json_int_t c = json_integer_value(json_object_get(usage, "completion_tokens"));
        if (p >= 0 && p <= INT32_MAX) a->prompt_tokens = (int)p;
        if (c >= 0 && c <= INT32_MAX) a->completion_tokens = (int)c;
    }
    const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
    if (fr) a->finish_reason = static_finish_reason(fr);
}

/* An error object inside a 200 response (mid-stream errors look like this). */
static bool check_error_payload(answer *a, const json_t *root, const char *text, size_t len) {
    json_t *e = json_object_get(root, "error");
    const char *object = json_string_value(json_object_get(root, "object"));
    if (!e && !(object && strcmp(object, "error") == 0)) return true;
    char *msg = ci_http_error_message(text, len);
    answer_fail(a, CINFER_ERR_NETWORK, "the server reported an error: %s", msg ? msg : "(no message)");
    free(msg);
    return false;
}

static bool append_piece(answer *a, ci_buf *to, const json_t *v) {
    const char *s = json_string_value(v);
    if (!s) return true;
    size_t n = json_string_length(v);
    if (!count_bytes(a, n)) return false;
    ci_buf_append(to, s, n);
    return true;
}

static bool add_tool_call_delta(answer *a, const json_t *delta_calls) {
    size_t i;
    json_t *d;
    json_array_foreach(delta_calls, i, d) {
        json_t *index_v = json_object_get(d, "index");
        json_int_t index = json_is_integer(index_v) ? json_integer_value(index_v) : (json_int_t)i;
        if (index < 0 || index >= MAX_TOOL_CALLS)
            return answer_fail(a, CINFER_ERR_LIMIT, "tool call index out of range%s", "");
        tool_call *t = &a->calls[index];
        t->present = true;
        if ((int)index >= a->n_calls) a->n_calls = (int)index + 1;
        json_t *fn = json_object_get(d, "function");
        /* id and type come whole in the first piece; name and arguments may be cut up. */
        if (json_is_string(json_object_get(d, "id"))) t->id.len = 0;
        if (json_is_string(json_object_get(d, "type"))) t->type.len = 0;
        if (!append_piece(a, &t->id, json_object_get(d, "id")) || !append_piece(a, &t->type, json_object_get(d, "type")) ||
            !append_piece(a, &t->name, json_object_get(fn, "name")) ||
            !append_piece(a, &t->arguments, json_object_get(fn, "arguments")))
            return false;
    }
    return true;
}

/* Delivers what the splitter produced to the caller's callback. */
static bool deliver(answer *a) {
    if (!a->o->on_delta || (!a->thinking_delta.len && !a->content_delta.len)) return true;
    bool go_on = a->o->on_delta(a->o->user, a->thinking_delta.data ? a->thinking_delta.data : "", a->thinking_delta.len,
                                a->content_delta.data ? a->content_delta.data : "", a->content_delta.len);
    a->delivered = true;
    a->thinking_delta.len = a->content_delta.len = 0;
    if (!go_on) a->user_stopped = true;
    return go_on;
}

/* The text fields of a delta (streamed) or a message (whole). */
static bool take_text(answer *a, const json_t *msg) {
    static const char *const reasoning_keys[] = {"reasoning_content", "reasoning"};
    for (size_t k = 0; k < 2; k++) {
        json_t *v = json_object_get(msg, reasoning_keys[k]);
        if (!json_is_string(v)) continue;
        if (!count_bytes(a, json_string_length(v))) return false;
        ci_reasoning_push_reasoning(&a->split, json_string_value(v), json_string_length(v), &a->thinking_delta);
        break; /* servers that send both send the same text twice */
    }
    json_t *content = json_object_get(msg, "content");
    if (json_is_string(content)) {
        if (!count_bytes(a, json_string_length(content))) return false;
        ci_reasoning_push_content(&a->split, json_string_value(content), json_string_length(content),
                                  &a->thinking_delta, &a->content_delta);
    }
    return true;
}

static bool on_event(void *user, const char *name, const char *data, size_t len) {
    answer *a = user;
    if (a->done) return true; /* nothing counts after [DONE] */
    if (strcmp(data, "[DONE]") == 0) {
        a->done = true;
        return true;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return answer_fail(a, CINFER_ERR_FORMAT, "malformed event stream: an event is not a JSON object: \"%s\"", data);
    }
    bool ok = check_error_payload(a, root, data, len);
    if (ok && strcmp(name, "error") == 0) ok = answer_fail(a, CINFER_ERR_NETWORK, "the server reported an error: %s", data);
    if (ok) {
        json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
        json_t *delta = json_object_get(choice, "delta");
        read_common(a, root, choice);
        if (json_is_object(delta)) {
            ok = take_text(a, delta);
            json_t *calls = json_object_get(delta, "tool_calls");
            if (ok && json_is_array(calls)) ok = add_tool_call_delta(a, calls);
        }
        if (ok) ok = deliver(a);
    }
    json_decref(root);
    return ok;
}

static bool answer_on_body(void *user, const char *data, size_t len) {
    answer *a = user;
    if (a->streaming && !a->body_started) {
        /* Some servers ignore "stream": true and answer with one JSON
         * object; no SSE line can start with '{', so this is unambiguous. */
        size_t i = 0;
        while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
        if (i == len) return true; /* only whitespace so far: decide later */
        a->body_started = true;
        a->whole_body = data[i] == '{';
    }
    if (!a->streaming || a->whole_body) {
        if (!body_on_data(&a->body, data, len)) {
            a->failed = true;
            ci_error(&a->error, CINFER_ERR_LIMIT, "the answer is larger than %u bytes", ANSWER_MAX);
            return false;
        }
        return true;
    }
    cinfer_error perr = {0};
    int rc = ci_sse_feed(&a->sse, data, len, on_event, a, &perr);
    if (rc < 0) {
        a->failed = true;
        a->error = perr;
        return false;
    }
    return rc == 0;
}

static void answer_on_attempt(void *user) { answer_reset(user); }
static bool answer_delivered(void *user) { return ((answer *)user)->delivered; }

static int parse_whole(answer *a, cinfer_error *err) {
    json_error_t jerr;
    json_t *root = json_loadb(a->body.body.data ? a->body.body.data : "", a->body.body.len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return ci_error(err, CINFER_ERR_FORMAT, "the response is not a JSON object (%s)", jerr.text);
    }
    int rc = CINFER_OK;
    if (!check_error_payload(a, root, a->body.body.data, a->body.body.len)) {
        if (err) *err = a->error;
        rc = a->error.code;
    } else {
        json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
        json_t *msg = json_object_get(choice, "message");
        if (!json_is_object(msg)) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "the response has no choices[0].message");
        } else {
            read_common(a, root, choice);
            if (!take_text(a, msg)) {
                if (err) *err = a->error;
                rc = a->error.code;
            }
            json_t *calls = json_object_get(msg, "tool_calls");
            if (json_is_array(calls) && json_array_size(calls) > 0) a->whole_tool_calls = json_incref(calls);
        }
    }
    json_decref(root);
    return rc;
}

static char *tool_calls_text(answer *a) {
    if (a->whole_tool_calls) return json_dumps(a->whole_tool_calls, JSON_COMPACT);
    if (a->n_calls == 0) return NULL;
    json_t *arr = json_array();
    for (int i = 0; i < a->n_calls; i++) {
        tool_call *t = &a->calls[i];
        if (!t->present) continue;
        json_t *call = json_object();
        json_object_set_new(call, "id", json_stringn_nocheck(t->id.data ? t->id.data : "", t->id.len));
        json_object_set_new(call, "type", json_stringn_nocheck(t->type.len ? t->type.data : "function",
                                                               t->type.len ? t->type.len : 8));
        json_object_set_new(call, "function",
                            json_pack("{s:s%,s:s%}", "name", t->name.data ? t->name.data : "", t->name.len,
                                      "arguments", t->arguments.data ? t->arguments.data : "", t->arguments.len));
        json_array_append_new(arr, call);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

int ci_remote_chat(ci_remote *r, const json_t *messages, const cinfer_gen_options *o, cinfer_result *out,
                   cinfer_error *err) {
    *out = (cinfer_result){0};
    if (o->raw) return ci_error(err, CINFER_ERR_INVALID, "a raw prompt needs a local model");
    int rc = resolve_model(r, err);
    if (rc != CINFER_OK) return rc;
    bool streaming = o->on_delta != NULL;
    json_t *req = build_request(r->model, messages, o, streaming, err);
    if (!req) return err ? err->code : CINFER_ERR_INVALID;
    /* 15 digits: 0.7 goes out as 0.7, not jansson's default 0.69999999999999996. */
    char *body = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(req);

    answer *a = ci_calloc(1, sizeof *a);
    a->o = o;
    a->streaming = streaming;
    ci_sse_init(&a->sse, 0, 0);
    ci_reasoning_init(&a->split);
    ci_http_sink sink = {.on_body = answer_on_body, .on_attempt = answer_on_attempt, .delivered = answer_delivered,
                         .user = a};
    ci_http_outcome outcome = CI_HTTP_COMPLETE;
    rc = ci_http_request(r->http, "POST", "/chat/completions", body, streaming, &sink, &outcome, err);
    free(body);
    bool cancelled = rc == CINFER_OK && (outcome == CI_HTTP_CANCELLED || a->user_stopped);
    if (rc == CINFER_OK && !cancelled && a->failed) {
        if (err) *err = a->error;
        rc = a->error.code;
    }
    if (rc == CINFER_OK && !cancelled) {
        if (!streaming || a->whole_body) {
            rc = parse_whole(a, err);
        } else if (!a->done && !a->finish_reason) {
            /* A clean close before the end: a dropped connection without
             * chunked framing, or a proxy cutting the stream. */
            rc = ci_error(err, CINFER_ERR_NETWORK, "the stream ended before the answer was complete (no finish_reason, no [DONE])");
        }
    }
    if (rc == CINFER_OK) {
        ci_reasoning_finish(&a->split, &a->thinking_delta, &a->content_delta);
        if (!cancelled) deliver(a);
        size_t tl, cl;
        const char *t = ci_reasoning_thinking(&a->split, &tl), *c = ci_reasoning_content(&a->split, &cl);
        out->thinking = ci_strndup(t, tl);
        out->content = ci_strndup(c, cl);
        out->tool_calls_json = tool_calls_text(a);
        out->finish_reason = cancelled ? "cancelled" : a->finish_reason ? a->finish_reason : "stop";
        out->prompt_tokens = a->prompt_tokens;
        out->completion_tokens = a->completion_tokens;
    }
    answer_free(a);
    free(a);
    return rc;
}
