/*
 * ollama.c — the Ollama API adapter: /api/chat, /api/generate (generation
 * over the one internal request) and the model endpoints /api/tags,
 * /api/show, /api/ps, /api/version; /api/embed answers "not supported yet".
 *
 * Parse: messages (content, thinking, tool_calls with object arguments,
 * tool results as role "tool"), `tools` (OpenAI's shape), `think` (a
 * boolean, or low/medium/high → srv_reasoning_effort), `options` and
 * `stream` — which defaults to true in Ollama — become an OpenAI chat
 * request for srv_chat_prepare; /api/generate renders `prompt` (and
 * `system`) as one user turn, or with `raw` tokenizes it as it is.
 * `options.num_ctx` caps prompt + output below the server's context
 * (larger values are clamped to it: the context is fixed at startup).
 * `keep_alive` is accepted with no effect (the model stays loaded).
 *
 * Render: one JSON object, or NDJSON lines (application/x-ndjson) of
 * message / response deltas, then a final line with done: true,
 * done_reason and Ollama's counters; durations are nanoseconds (prompt
 * evaluation: arrival to the first token; evaluation: first to last).
 * Errors are {"error": "..."} (the route's srv_shape); a failed stream
 * ends with such a line.
 */
#include "server/openai.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_MESSAGES 4096

typedef struct oll_ctx {
    bool generate;             /* /api/generate: "response" instead of "message" */
} oll_ctx;

static void ctx_free(void *p) { free(p); }

/* ------------------------------------------------------------- render */

/* RFC 3339 UTC with nanoseconds, as Ollama writes created_at */
static json_t *timestamp(double t) {
    time_t sec = (time_t)t;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char b[64];
    size_t n = strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(b + n, sizeof b - n, ".%09ldZ", (long)((t - (double)sec) * 1e9));
    return json_string(b);
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static json_t *envelope(const job *j) {
    return json_pack("{s:s,s:o}", "model", j->srv->model_name, "created_at", timestamp(wall_now()));
}

static json_int_t ns(double seconds) { return seconds > 0 ? (json_int_t)(seconds * 1e9) : 0; }

/* done, done_reason and the counters of a finished choice */
static void final_fields(const job *j, const choice *c, json_t *o) {
    double first = j->t_first_token > 0 ? j->t_first_token : j->t_done, done = j->t_done > 0 ? j->t_done : ci_now_seconds();
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string(c->finish == CI_FINISH_LENGTH ? "length" : "stop"));
    json_object_set_new(o, "total_duration", json_integer(ns(done - j->t_arrival)));
    json_object_set_new(o, "load_duration", json_integer(0));
    json_object_set_new(o, "prompt_eval_count", json_integer(c->n_prompt));
    json_object_set_new(o, "prompt_eval_duration", json_integer(ns(first - j->t_arrival)));
    json_object_set_new(o, "eval_count", json_integer(c->n_generated));
    json_object_set_new(o, "eval_duration", json_integer(ns(done - first)));
}

/* OpenAI tool calls → Ollama's: {function: {name, arguments: object}} */
static json_t *ollama_calls(json_t *calls) {
    json_t *out = json_array();
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) {
        json_t *fn = json_object_get(call, "function");
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        json_t *obj = args ? json_loads(args, 0, NULL) : NULL;
        if (!json_is_object(obj)) json_decref(obj), obj = json_object();
        json_array_append_new(out, json_pack("{s:{s:i,s:O,s:o}}", "function", "index", (int)k, "name",
                                             json_object_get(fn, "name"), "arguments", obj));
    }
    return out;
}

/* One line's payload: message {role, content, thinking?, tool_calls?}
 * for chat, response (+ thinking) for generate. */
static json_t *payload(const job *j, const char *think, size_t tl, const char *text, size_t cl, json_t *calls) {
    const oll_ctx *x = j->api_ctx;
    json_t *o = envelope(j);
    if (x->generate) {
        json_object_set_new(o, "response", srv_json_text(text, cl));
        if (tl) json_object_set_new(o, "thinking", srv_json_text(think, tl));
        json_decref(calls);
        return o;
    }
    json_t *m = json_pack("{s:s,s:o}", "role", "assistant", "content", srv_json_text(text, cl));
    if (tl) json_object_set_new(m, "thinking", srv_json_text(think, tl));
    if (calls) json_object_set_new(m, "tool_calls", ollama_calls(calls)), json_decref(calls);
    json_object_set_new(o, "message", m);
    return o;
}

static int ollama_reply(srv_request *r, job *j) {
    choice *c = &j->choices[0];
    size_t tl = 0, cl = 0, visible = 0;
    const char *think = c->out ? ci_output_thinking(c->out, &tl) : "";
    const char *content = c->out ? ci_output_content(c->out, &cl) : "";
    json_t *calls = srv_choice_tool_calls(j, c, &visible);
    json_t *o = payload(j, think, tl, content, visible, calls);
    final_fields(j, c, o);
    return srv_send_json(r, 200, o);
}

static void line(ci_buf *out, json_t *o) {
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) return;
    ci_buf_puts(out, text);
    ci_buf_putc(out, '\n');
    free(text);
}

static void ollama_stream(job *j, ci_buf *out) {
    choice *c = &j->choices[0];
    srv_delta d;
    if (c->finish_sent || !srv_choice_take(j, 0, &d)) return;
    if (d.think_len || d.content_len || d.tool_calls) {
        json_t *o = payload(j, d.think, d.think_len, d.content, d.content_len, d.tool_calls);
        json_object_set_new(o, "done", json_false());
        line(out, o);
    }
    if (!d.last) return;
    json_t *o = payload(j, "", 0, "", 0, NULL);
    final_fields(j, c, o);
    line(out, o);
    c->finish_sent = true;
}

static void ollama_stream_end(job *j, ci_buf *out) { (void)j, (void)out; }

static void ollama_stream_error(job *j, const srv_error *e, ci_buf *out) {
    (void)j;
    line(out, srv_error_json_shaped(e, SRV_SHAPE_OLLAMA));
}

static const srv_api OLLAMA_API = {
    .id_prefix = "ollama-",
    .stream_type = "application/x-ndjson",
    .reply = ollama_reply,
    .stream = ollama_stream,
    .stream_end = ollama_stream_end,
    .stream_error = ollama_stream_error,
};

/* -------------------------------------------------------------- parse */

/* `model` must name the served model ("NAME" or "NAME:latest"). */
static bool check_model(const server *s, json_t *req, const char *key, srv_error *e) {
    json_t *m = json_object_get(req, key);
    if (!json_is_string(m)) return srv_fail(e, 400, key, "%s is required", key);
    const char *name = json_string_value(m);
    size_t n = strlen(s->model_name);
    if (strcmp(name, s->model_name) == 0 || (strncmp(name, s->model_name, n) == 0 && strcmp(name + n, ":latest") == 0))
        return true;
    return srv_fail(e, 404, key, "model '%s' not found", name);
}

/* options: sampling and limits; the runner's own knobs are accepted with no
 * effect (cinfer sizes batches and threads at startup). */
static bool parse_options(const server *s, json_t *opt, srv_gen_request *g, srv_error *e) {
    if (!opt || json_is_null(opt)) return true;
    static const char *const KNOWN[] = {
        "temperature", "top_k", "top_p", "min_p", "num_predict", "seed", "stop", "num_ctx", "repeat_penalty",
        "presence_penalty", "frequency_penalty",
        /* no effect by design */
        "num_keep", "num_batch", "num_gpu", "main_gpu", "use_mmap", "use_mlock", "num_thread", "numa", "low_vram",
        "vocab_only", NULL};
    if (!json_is_object(opt)) return srv_fail(e, 400, "options", "options must be an object");
    if (!srv_check_fields(opt, KNOWN, "options", e)) return false;
    double d;
    bool set;
    long long k;
    ci_sampling_params *sp = &g->sampling;
    if (!srv_opt_number(opt, "temperature", 0, 100, &d, &set, e)) return false;
    if (set) sp->temperature = (float)d;
    if (!srv_opt_number(opt, "top_p", 1e-9, 1, &d, &set, e)) return false;
    if (set) sp->top_p = (float)d;
    if (!srv_opt_number(opt, "min_p", 0, 1, &d, &set, e)) return false;
    if (set) sp->min_p = (float)d;
    if (!srv_opt_number(opt, "repeat_penalty", 1e-3, 100, &d, &set, e)) return false;
    if (set) sp->repetition_penalty = (float)d;
    if (!srv_opt_number(opt, "presence_penalty", -2, 2, &d, &set, e)) return false;
    if (set) sp->presence_penalty = (float)d;
    if (!srv_opt_number(opt, "frequency_penalty", -2, 2, &d, &set, e)) return false;
    if (set) sp->frequency_penalty = (float)d;
    if (!srv_opt_int(opt, "top_k", 0, 1 << 30, &k, &set, e)) return false;
    if (set) sp->top_k = (int)k;
    if (!srv_opt_int(opt, "seed", INT64_MIN, INT64_MAX, &k, &set, e)) return false;
    if (set) sp->has_seed = true, sp->seed = (uint64_t)k;
    /* -1: no limit, -2: fill the context — both up to the context here */
    if (!srv_opt_int(opt, "num_predict", -2, INT32_MAX, &k, &set, e)) return false;
    if (set && k == 0) return srv_fail(e, 400, "options.num_predict", "options.num_predict must be positive, -1 or -2");
    if (set && k > 0) g->max_tokens = k;
    if (!srv_opt_int(opt, "num_ctx", 1, INT32_MAX, &k, &set, e)) return false;
    if (set) g->max_context = k < s->m->max_model_len ? (int)k : s->m->max_model_len;
    json_t *stop = json_object_get(opt, "stop");
    if (json_is_string(stop)) return srv_gen_add_stop(g, json_string_value(stop), json_string_length(stop), e);
    if (stop && !json_is_null(stop) && !json_is_array(stop))
        return srv_fail(e, 400, "options.stop", "options.stop must be a list of strings");
    size_t i;
    json_t *v;
    json_array_foreach(stop, i, v) {
        if (!json_is_string(v)) return srv_fail(e, 400, "options.stop", "options.stop must be a list of strings");
        if (!srv_gen_add_stop(g, json_string_value(v), json_string_length(v), e)) return false;
    }
    return true;
}

/* think → enable_thinking (+ a budget for the levels); absent: the template's default */
static bool parse_think(json_t *req, json_t *chat, srv_gen_request *g, srv_error *e) {
    json_t *t = json_object_get(req, "think");
    if (!t || json_is_null(t)) return true;
    int on;
    if (json_is_boolean(t)) on = json_is_true(t);
    else if (!json_is_string(t) || !srv_reasoning_effort(json_string_value(t), &on, &g->thinking_budget))
        return srv_fail(e, 400, "think", "think must be true, false, \"low\", \"medium\" or \"high\"");
    json_object_set_new(chat, "enable_thinking", json_boolean(on));
    return true;
}

/* The fields both generation endpoints share. */
static bool parse_shared(const server *s, json_t *req, json_t *chat, srv_gen_request *g, srv_error *e) {
    if (!check_model(s, req, "model", e) || !parse_options(s, json_object_get(req, "options"), g, e)) return false;
    g->stream = true; /* Ollama streams unless told not to */
    if (!srv_opt_bool(req, "stream", &g->stream, e)) return false;
    json_t *f = json_object_get(req, "format");
    if (f && !json_is_null(f) && !(json_is_string(f) && json_string_length(f) == 0))
        return srv_fail(e, 400, "format", "format (JSON output) is not supported yet");
    json_t *ka = json_object_get(req, "keep_alive");
    if (ka && !json_is_null(ka) && !json_is_string(ka) && !json_is_number(ka))
        return srv_fail(e, 400, "keep_alive", "keep_alive must be a duration string or a number of seconds");
    return parse_think(req, chat, g, e);
}

static bool no_images(json_t *obj, const char *param, srv_error *e) {
    json_t *im = json_object_get(obj, "images");
    if (im && !json_is_null(im) && json_array_size(im) > 0)
        return srv_fail(e, 400, param, "%s: images are not supported (text-only model)", param);
    return true;
}

/* One Ollama message → the chat shape (tool_calls get ids; arguments stay objects). */
static json_t *chat_message(json_t *m, size_t i, srv_error *e) {
    static const char *const KNOWN[] = {"role", "content", "thinking", "images", "tool_calls", "tool_name", NULL};
    char p[40];
    snprintf(p, sizeof p, "messages[%zu]", i);
    if (!json_is_object(m)) return srv_fail(e, 400, p, "%s must be an object", p), NULL;
    if (!srv_check_fields(m, KNOWN, p, e) || !no_images(m, p, e)) return NULL;
    json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
    if (!json_is_string(role)) return srv_fail(e, 400, p, "%s.role must be a string", p), NULL;
    if (content && !json_is_null(content) && !json_is_string(content))
        return srv_fail(e, 400, p, "%s.content must be a string", p), NULL;
    json_t *out = json_pack("{s:O,s:O}", "role", role, "content", json_is_string(content) ? content : json_string(""));
    json_t *v;
    if (json_is_string(v = json_object_get(m, "thinking"))) json_object_set(out, "reasoning_content", v);
    if (json_is_string(v = json_object_get(m, "tool_name"))) json_object_set(out, "name", v);
    json_t *calls = json_object_get(m, "tool_calls");
    if (calls && !json_is_null(calls)) {
        if (!json_is_array(calls)) return json_decref(out), srv_fail(e, 400, p, "%s.tool_calls must be a list", p), NULL;
        json_t *tc = json_array();
        size_t k;
        json_t *call;
        json_array_foreach(calls, k, call) {
            json_t *fn = json_object_get(call, "function");
            json_t *args = json_object_get(fn, "arguments");
            if (!json_is_string(json_object_get(fn, "name")) || (args && !json_is_object(args))) {
                json_decref(tc), json_decref(out);
                return srv_fail(e, 400, p, "%s.tool_calls[%zu] must be {function: {name, arguments: {...}}}", p, k), NULL;
            }
            char id[64];
            snprintf(id, sizeof id, "call_%zu_%zu", i, k);
            json_array_append_new(tc, json_pack("{s:s,s:s,s:{s:O,s:O}}", "id", id, "type", "function", "function", "name",
                                                json_object_get(fn, "name"), "arguments", args ? args : json_object()));
        }
        json_object_set_new(out, "tool_calls", tc);
    }
    return out;
}

static bool chat_parse(const server *s, json_t *req, srv_gen_request *g, bool *empty, srv_error *e) {
    static const char *const KNOWN[] = {"model", "messages", "tools", "format", "options", "stream", "keep_alive",
                                        "think", NULL};
    g->prompt_param = "messages";
    g->max_tokens_param = "options.num_predict";
    json_t *chat = json_object(), *messages = json_array();
    json_object_set_new(chat, "messages", messages);
    bool ok = srv_check_fields(req, KNOWN, NULL, e) && parse_shared(s, req, chat, g, e);
    json_t *msgs = json_object_get(req, "messages");
    if (ok && msgs && !json_is_null(msgs) && (!json_is_array(msgs) || json_array_size(msgs) > MAX_MESSAGES))
        ok = srv_fail(e, 400, "messages", "messages must be a list of at most %d messages", MAX_MESSAGES);
    *empty = ok && json_array_size(msgs) == 0;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!ok || *empty) break;
        json_t *cm = chat_message(m, i, e);
        if (!cm) ok = false;
        else json_array_append_new(messages, cm);
    }
    json_t *tools = json_object_get(req, "tools");
    if (tools && !json_is_null(tools)) json_object_set(chat, "tools", tools);
    if (ok && !*empty) ok = srv_chat_prepare(s, chat, g, e);
    json_decref(chat);
    if (!ok) return false;
    oll_ctx *x = ci_calloc(1, sizeof *x);
    g->api_ctx = x, g->api_ctx_free = ctx_free;
    return true;
}

static bool raw_prompt(const server *s, json_t *prompt, srv_gen_request *g, srv_error *e) {
    srv_prompt *p = &g->prompts[0];
    cinfer_error err = {0};
    p->n_ids = cinfer_tokenize(s->m->tok, json_string_value(prompt), json_string_length(prompt), 0, &p->ids, &err);
    if (p->n_ids < 0) return srv_fail(e, 400, "prompt", "cannot tokenize the prompt: %s", err.message);
    g->n_prompts = 1;
    g->keep_newlines = true;
    return true;
}

static bool generate_parse(const server *s, json_t *req, srv_gen_request *g, bool *empty, srv_error *e) {
    static const char *const KNOWN[] = {"model", "prompt", "suffix", "images", "format", "options", "system", "template",
                                        "context", "stream", "raw", "keep_alive", "think", NULL};
    g->max_tokens_param = "options.num_predict";
    json_t *chat = json_object(), *messages = json_array();
    json_object_set_new(chat, "messages", messages);
    bool raw = false;
    json_t *prompt = json_object_get(req, "prompt"), *system = json_object_get(req, "system"), *v;
    bool ok = srv_check_fields(req, KNOWN, NULL, e) && parse_shared(s, req, chat, g, e) && no_images(req, "images", e) &&
              srv_opt_bool(req, "raw", &raw, e);
    if (ok && (v = json_object_get(req, "suffix")) && !json_is_null(v) && json_string_length(v) > 0)
        ok = srv_fail(e, 400, "suffix", "suffix (fill-in-the-middle) is not supported");
    if (ok && (v = json_object_get(req, "template")) && !json_is_null(v) && json_string_length(v) > 0)
        ok = srv_fail(e, 400, "template", "template overrides are not supported (the model's chat template is used)");
    if (ok && (v = json_object_get(req, "context")) && !json_is_null(v) && json_array_size(v) > 0)
        ok = srv_fail(e, 400, "context", "context (the deprecated token history) is not supported; use /api/chat");
    if (ok && prompt && !json_is_null(prompt) && !json_is_string(prompt)) ok = srv_fail(e, 400, "prompt", "prompt must be a string");
    if (ok && system && !json_is_null(system) && !json_is_string(system)) ok = srv_fail(e, 400, "system", "system must be a string");
    if (ok && raw && json_object_get(chat, "enable_thinking"))
        ok = srv_fail(e, 400, "think", "think needs the chat template; it cannot apply to a raw prompt");
    *empty = ok && json_string_length(prompt) == 0;
    if (ok && !*empty) {
        if (raw) {
            ok = raw_prompt(s, prompt, g, e);
        } else {
            if (json_is_string(system)) json_array_append_new(messages, json_pack("{s:s,s:O}", "role", "system", "content", system));
            json_array_append_new(messages, json_pack("{s:s,s:O}", "role", "user", "content", prompt));
            ok = srv_chat_prepare(s, chat, g, e);
        }
    }
    json_decref(chat);
    if (!ok) return false;
    oll_ctx *x = ci_calloc(1, sizeof *x);
    x->generate = true;
    g->api_ctx = x, g->api_ctx_free = ctx_free;
    return true;
}

/* An empty request loads the model in Ollama: answered at once. */
static int load_reply(srv_request *r, bool generate) {
    json_t *o = json_pack("{s:s,s:o}", "model", r->srv->model_name, "created_at", timestamp(wall_now()));
    if (generate) json_object_set_new(o, "response", json_string(""));
    else json_object_set_new(o, "message", json_pack("{s:s,s:s}", "role", "assistant", "content", ""));
    json_object_set_new(o, "done_reason", json_string("load"));
    json_object_set_new(o, "done", json_true());
    return srv_send_json(r, 200, o);
}

static int run(srv_request *r, bool generate) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    srv_gen_request g;
    srv_gen_init(&g, r->srv);
    bool empty = false;
    bool ok = generate ? generate_parse(r->srv, req, &g, &empty, &e) : chat_parse(r->srv, req, &g, &empty, &e);
    int ret = !ok ? srv_send_error(r, &e) : empty ? load_reply(r, generate) : srv_gen_run(r, &g, &OLLAMA_API);
    srv_gen_free(&g);
    json_decref(req);
    return ret;
}

int api_ollama_chat(srv_request *r) { return run(r, false); }
int api_ollama_generate(srv_request *r) { return run(r, true); }

/* ------------------------------------------------------------- models */

static long long parameter_count(const qwen3_hparams *hp) {
    long long h = hp->hidden, q = (long long)hp->n_heads * hp->head_dim, kv = (long long)hp->n_kv_heads * hp->head_dim;
    long long layer = h * q * 2 + h * kv * 2 + 3 * h * hp->intermediate;
    return (long long)hp->vocab * h + (long long)hp->n_layers * layer;
}

static json_t *details(const server *s) {
    const qwen3_model *m = &s->m->ck.model;
    double p = (double)parameter_count(&m->hp);
    char size[32];
    if (p >= 1e9) snprintf(size, sizeof size, "%.1fB", p / 1e9);
    else snprintf(size, sizeof size, "%.0fM", p / 1e6);
    const char *q = m->w.layers ? ci_wtype_name(m->w.layers[0].wq.type) : "";
    return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", s->m->ck.is_gguf ? "gguf" : "safetensors",
                     "family", "qwen3", "families", "qwen3", "parameter_size", size, "quantization_level", q ? q : "");
}

static json_t *model_entry(const server *s) {
    char digest[80];
    snprintf(digest, sizeof digest, "%s", s->fingerprint + 3); /* stable per model and build */
    time_t t = (time_t)s->started;
    return json_pack("{s:s,s:s,s:o,s:I,s:s,s:o}", "name", s->model_name, "model", s->model_name, "modified_at",
                     timestamp((double)t), "size", (json_int_t)0, "digest", digest, "details", details(s));
}

int api_ollama_tags(srv_request *r) {
    return srv_send_json(r, 200, json_pack("{s:[o]}", "models", model_entry(r->srv)));
}

int api_ollama_ps(srv_request *r) {
    json_t *m = model_entry(r->srv);
    /* loaded until the server stops: expires far in the future */
    json_object_set_new(m, "expires_at", timestamp((double)time(NULL) + 365.0 * 86400));
    json_object_set_new(m, "size_vram", json_integer(0));
    json_object_set_new(m, "context_length", json_integer(r->srv->m->max_model_len));
    return srv_send_json(r, 200, json_pack("{s:[o]}", "models", m));
}

int api_ollama_show(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    static const char *const KNOWN[] = {"model", "name", "verbose", NULL};
    const char *key = json_object_get(req, "model") ? "model" : "name";
    bool ok = srv_check_fields(req, KNOWN, NULL, &e) && check_model(r->srv, req, key, &e);
    json_decref(req);
    if (!ok) return srv_send_error(r, &e);
    const server *s = r->srv;
    const qwen3_hparams *hp = &s->m->ck.model.hp;
    cinfer_chat_template_source src = {0};
    bool have_tpl = cinfer_chat_template_source_load(s->m->ck.path, &src, NULL) == 0;
    const char *tpl = have_tpl ? src.template_text : NULL;
    json_t *info = json_pack("{s:s,s:I,s:i,s:i,s:i,s:i,s:i,s:i}", "general.architecture", "qwen3", "general.parameter_count",
                             (json_int_t)parameter_count(hp), "qwen3.context_length", s->m->max_model_len,
                             "qwen3.embedding_length", hp->hidden, "qwen3.block_count", hp->n_layers,
                             "qwen3.attention.head_count", hp->n_heads, "qwen3.attention.head_count_kv", hp->n_kv_heads,
                             "qwen3.feed_forward_length", hp->intermediate);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:[s,s,s],s:o}", "license", "", "modelfile", "", "parameters", "",
                          "template", tpl ? tpl : "", "details", details(s), "model_info", info, "capabilities",
                          "completion", "tools", "thinking", "modified_at", timestamp((double)s->started));
    if (have_tpl) cinfer_chat_template_source_free(&src);
    return srv_send_json(r, 200, o);
}

int api_ollama_version(srv_request *r) { return srv_send_json(r, 200, json_pack("{s:s}", "version", CINFER_VERSION)); }

int api_ollama_embed(srv_request *r) {
    return srv_send_errorf(r, 501, NULL, "embeddings are not supported yet by this server (%s)", r->url);
}
