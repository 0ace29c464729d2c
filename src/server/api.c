/*
 * api.c — the OpenAI / vLLM endpoints: request validation, prompt building,
 * job submission and response shaping (JSON bodies and SSE streams).
 *
 * Every client-controlled size is bounded before it is used: body bytes
 * (server.c), messages, content parts, stop strings, n, prompts per
 * completion request, max_tokens (prompt + max_tokens <= max_model_len, as
 * vLLM checks), top_logprobs, tools. Wrong types give 400 with `param` set.
 * Sampling fields left out take the model's generation_config.json values.
 */
#include "server/server.h"
#include "template/template.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 4096
#define MAX_CONTENT_PARTS 1024
#define MAX_N 16
#define MAX_PROMPTS 64
#define MAX_CHOICES 64
#define MAX_STOP 16
#define MAX_STOP_BYTES 1024
#define MAX_TOOLS 256
#define MAX_TOKENS_IN_REQUEST (1 << 20)

typedef struct perr {
    int status;
    char param[64];
    char msg[768];
} perr;

static bool fail(perr *e, int status, const char *param, const char *fmt, ...) CI_PRINTF(4, 5);
static bool fail(perr *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

static int send_perr(srv_request *r, const perr *e) {
    return srv_send_error(r->conn, r->srv, e->status, e->param[0] ? e->param : NULL, "%s", e->msg);
}

/* Parses the body as a JSON object (400 otherwise). */
static json_t *parse_body(srv_request *r, perr *e) {
    json_error_t jerr;
    json_t *req = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req) {
        fail(e, 400, NULL, "malformed JSON body: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(req)) {
        json_decref(req);
        fail(e, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return req;
}

/* Optional number in [lo, hi]; absent or null leaves *out. */
static bool opt_number(json_t *req, const char *key, double lo, double hi, double *out, bool *set, perr *e) {
    if (set) *set = false;
    json_t *v = json_object_get(req, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return fail(e, 400, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return fail(e, 400, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    if (set) *set = true;
    return true;
}

static bool opt_int(json_t *req, const char *key, long long lo, long long hi, long long *out, bool *set, perr *e) {
    if (set) *set = false;
    json_t *v = json_object_get(req, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) return fail(e, 400, key, "'%s' must be an integer", key);
    long long d = json_integer_value(v);
    if (d < lo || d > hi) return fail(e, 400, key, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, d);
    *out = d;
    if (set) *set = true;
    return true;
}

static bool opt_bool(json_t *req, const char *key, bool *out, perr *e) {
    json_t *v = json_object_get(req, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return fail(e, 400, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return true;
}

/* ------------------------------------------------------------ common params */

typedef struct gen_params {
    ci_sampling_params sampling;
    long long max_tokens;       /* -1: up to the context; 0 (completions with echo): the prompt only */
    const char *stop[MAX_STOP];
    int n_stop;
    int n;
    bool stream, include_usage;
    bool logprobs;
    int top_logprobs;
    long long thinking_budget;  /* -1: none */
    bool ignore_eos;            /* vLLM extension: generate max_tokens whatever the model says (benchmarks) */
} gen_params;

static bool check_model(server *s, json_t *req, perr *e) {
    json_t *m = json_object_get(req, "model");
    if (!m || json_is_null(m)) return true;
    if (!json_is_string(m)) return fail(e, 400, "model", "'model' must be a string");
    if (strcmp(json_string_value(m), s->model_name) != 0)
        return fail(e, 404, "model", "The model `%s` does not exist. This server serves `%s`.", json_string_value(m),
                    s->model_name);
    return true;
}

static bool parse_common(server *s, json_t *req, bool is_chat, gen_params *g, perr *e) {
    *g = (gen_params){.sampling = s->m->defaults, .max_tokens = -1, .n = 1, .thinking_budget = -1};
    if (!check_model(s, req, e)) return false;
    double d;
    bool set = false;
    if (!opt_number(req, "temperature", 0, 100, &d, &set, e)) return false;
    if (set) g->sampling.temperature = (float)d;
    if (!opt_number(req, "top_p", 1e-9, 1, &d, &set, e)) return false;
    if (set) g->sampling.top_p = (float)d;
    if (!opt_number(req, "min_p", 0, 1, &d, &set, e)) return false;
    if (set) g->sampling.min_p = (float)d;
    if (!opt_number(req, "presence_penalty", -2, 2, &d, &set, e)) return false;
    if (set) g->sampling.presence_penalty = (float)d;
    if (!opt_number(req, "frequency_penalty", -2, 2, &d, &set, e)) return false;
    if (set) g->sampling.frequency_penalty = (float)d;
    if (!opt_number(req, "repetition_penalty", 1e-3, 100, &d, &set, e)) return false;
    if (set) g->sampling.repetition_penalty = (float)d;
    long long k;
    if (!opt_int(req, "top_k", -1, 1 << 30, &k, &set, e)) return false;
    if (set) g->sampling.top_k = k <= 0 ? 0 : (int)k;
    if (!opt_int(req, "seed", INT64_MIN, INT64_MAX, &k, &set, e)) return false;
    if (set) g->sampling.has_seed = true, g->sampling.seed = (uint64_t)k;
    if (!opt_int(req, "n", 1, MAX_N, &k, &set, e)) return false;
    if (set) g->n = (int)k;
    /* max_tokens 0 is the legacy echo-only request (prompt logprobs) */
    if (!opt_int(req, "max_tokens", is_chat ? 1 : 0, INT32_MAX, &g->max_tokens, NULL, e)) return false;
    if (!opt_int(req, "max_completion_tokens", 1, INT32_MAX, &g->max_tokens, NULL, e)) return false;
    /* thinking budget: Qwen's own API calls it thinking_budget; max_thinking_tokens accepted too */
    if (!opt_int(req, "thinking_budget", 0, INT32_MAX, &g->thinking_budget, NULL, e)) return false;
    if (!opt_int(req, "max_thinking_tokens", 0, INT32_MAX, &g->thinking_budget, NULL, e)) return false;
    if (!opt_bool(req, "stream", &g->stream, e)) return false;
    if (!opt_bool(req, "ignore_eos", &g->ignore_eos, e)) return false;
    json_t *so = json_object_get(req, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return fail(e, 400, "stream_options", "'stream_options' must be an object");
        if (!opt_bool(so, "include_usage", &g->include_usage, e)) return false;
    }
    json_t *stop = json_object_get(req, "stop");
    if (json_is_string(stop)) {
        g->stop[g->n_stop++] = json_string_value(stop);
    } else if (json_is_array(stop)) {
        if (json_array_size(stop) > MAX_STOP) return fail(e, 400, "stop", "at most %d stop strings", MAX_STOP);
        size_t i;
        json_t *v;
        json_array_foreach(stop, i, v) {
            if (!json_is_string(v)) return fail(e, 400, "stop", "'stop' must be a string or a list of strings");
            g->stop[g->n_stop++] = json_string_value(v);
        }
    } else if (stop && !json_is_null(stop)) {
        return fail(e, 400, "stop", "'stop' must be a string or a list of strings");
    }
    for (int i = 0; i < g->n_stop; i++)
        if (strlen(g->stop[i]) > MAX_STOP_BYTES) return fail(e, 400, "stop", "a stop string is longer than %d bytes", MAX_STOP_BYTES);
    if (is_chat) {
        if (!opt_bool(req, "logprobs", &g->logprobs, e)) return false;
        if (!opt_int(req, "top_logprobs", 0, CI_MAX_TOP_LOGPROBS, &k, &set, e)) return false;
        if (set) {
            if (!g->logprobs && k > 0) return fail(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            g->top_logprobs = (int)k;
        }
    } else {
        if (!opt_int(req, "logprobs", 0, CI_MAX_TOP_LOGPROBS, &k, &set, e)) return false;
        if (set) g->logprobs = true, g->top_logprobs = (int)k;
    }
    return true;
}

/* Request params for one choice; checks the context length. */
static bool make_request_params(server *s, const gen_params *g, int n_prompt, int choice_index, ci_request_params *rp,
                                perr *e) {
    int max_len = s->m->max_model_len;
    if (n_prompt >= max_len)
        return fail(e, 400, "messages",
                    "This model's maximum context length is %d tokens. However, your prompt has %d tokens. "
                    "Please reduce the length of the prompt.", max_len, n_prompt);
    if (g->max_tokens >= 0 && (long long)n_prompt + g->max_tokens > max_len)
        return fail(e, 400, "max_tokens",
                    "This model's maximum context length is %d tokens. However, you requested %lld tokens "
                    "(%d in the prompt, %lld in the completion). Please reduce the length of the prompt or completion.",
                    max_len, (long long)n_prompt + g->max_tokens, n_prompt, g->max_tokens);
    *rp = (ci_request_params){.sampling = g->sampling, .thinking_budget = -1};
    /* n > 1 with a seed: each choice gets its own reproducible stream */
    if (rp->sampling.has_seed) rp->sampling.seed += (uint64_t)choice_index;
    rp->max_new_tokens = g->max_tokens >= 0 ? (int)g->max_tokens : max_len - n_prompt;
    rp->stop_ids = s->m->stop_ids;
    rp->n_stop_ids = g->ignore_eos ? 0 : s->m->n_stop_ids;
    rp->want_logprobs = g->logprobs;
    rp->top_logprobs = g->top_logprobs;
    return true;
}

/* --------------------------------------------------------- JSON builders */

static json_t *json_text(const char *s, size_t n) {
    json_t *v = json_stringn(s, n);
    if (v) return v;
    ci_buf b = {0};
    srv_append_utf8_lossy(&b, s, n);
    v = json_stringn(b.data ? b.data : "", b.len);
    ci_buf_free(&b);
    return v;
}

static json_t *token_text(server *s, int32_t id) {
    size_t n = 0;
    const char *b = cinfer_tokenizer_token_bytes(s->m->tok, id, &n);
    return json_text(b ? b : "", b ? n : 0);
}

static json_t *token_bytes_array(server *s, int32_t id) {
    size_t n = 0;
    const char *b = cinfer_tokenizer_token_bytes(s->m->tok, id, &n);
    json_t *a = json_array();
    for (size_t i = 0; b && i < n; i++) json_array_append_new(a, json_integer((unsigned char)b[i]));
    return a;
}

/* Chat logprobs entries for tokens [from, to) of a choice. */
static json_t *chat_logprobs(job *j, choice *c, int from, int to) {
    server *s = j->srv;
    json_t *content = json_array();
    for (int t = from; t < to; t++) {
        json_t *tops = json_array();
        for (int k = 0; k < j->top_logprobs; k++) {
            int32_t id = c->top_ids[(size_t)t * (size_t)j->top_logprobs + (size_t)k];
            if (id < 0) continue;
            json_array_append_new(tops, json_pack("{s:o,s:f,s:o}", "token", token_text(s, id), "logprob",
                                                  (double)c->top_lps[(size_t)t * (size_t)j->top_logprobs + (size_t)k],
                                                  "bytes", token_bytes_array(s, id)));
        }
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", token_text(s, c->tokens[t]), "logprob",
                                                 (double)c->logprobs[t], "bytes", token_bytes_array(s, c->tokens[t]),
                                                 "top_logprobs", tops));
    }
    return json_pack("{s:o}", "content", content);
}

typedef struct legacy_logprobs {
    json_t *tokens, *token_logprobs, *top_logprobs, *text_offset;
} legacy_logprobs;

/* One entry of the legacy shape; `known` false gives nulls (the first
 * prompt token, or one whose logprob never arrived). */
static void legacy_entry(job *j, legacy_logprobs *o, int32_t id, bool known, float lp, const int32_t *top_ids,
                         const float *top_lps, size_t *offset) {
    server *s = j->srv;
    size_t n = 0;
    cinfer_tokenizer_token_bytes(s->m->tok, id, &n);
    json_array_append_new(o->tokens, token_text(s, id));
    json_array_append_new(o->token_logprobs, known ? json_real(lp) : json_null());
    json_t *top = known ? json_object() : json_null();
    for (int k = 0; known && k < j->top_logprobs; k++) {
        if (top_ids[k] < 0) continue;
        json_t *txt = token_text(s, top_ids[k]);
        json_object_set_new(top, json_string_value(txt), json_real(top_lps[k]));
        json_decref(txt);
    }
    json_array_append_new(o->top_logprobs, top);
    json_array_append_new(o->text_offset, json_integer((json_int_t)*offset));
    *offset += n;
}

/* The choice whose request computed the prompt logprobs of c's prompt. */
static choice *prompt_source(job *j, const choice *c) {
    return &j->choices[c->index / j->choices_per_prompt * j->choices_per_prompt];
}

static bool prompt_logprobs_ready(job *j, const choice *c) {
    const choice *src = prompt_source(j, c);
    return src->done || src->n_prompt_lps >= src->n_prompt_ids - 1;
}

/* Completions logprobs (the legacy shape): the prompt's tokens first when
 * with_prompt (echo), then output tokens [from, to). text_offset counts
 * bytes of the returned text from *offset on, which advances. */
static json_t *completion_logprobs(job *j, choice *c, bool with_prompt, int from, int to, size_t *offset) {
    legacy_logprobs o = {json_array(), json_array(), json_array(), json_array()};
    const choice *src = prompt_source(j, c);
    for (int t = 0; with_prompt && t < src->n_prompt_ids; t++) {
        size_t at = (size_t)t * (size_t)j->top_logprobs;
        legacy_entry(j, &o, src->prompt_ids[t], t > 0 && !isnan(src->prompt_lps[t]), src->prompt_lps[t],
                     src->prompt_top_ids ? src->prompt_top_ids + at : NULL, src->prompt_top_lps ? src->prompt_top_lps + at : NULL,
                     offset);
    }
    for (int t = from; t < to; t++) {
        size_t at = (size_t)t * (size_t)j->top_logprobs;
        legacy_entry(j, &o, c->tokens[t], true, c->logprobs[t], c->top_ids ? c->top_ids + at : NULL,
                     c->top_lps ? c->top_lps + at : NULL, offset);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", o.tokens, "token_logprobs", o.token_logprobs, "top_logprobs",
                     o.top_logprobs, "text_offset", o.text_offset);
}

static const char *finish_name(ci_finish_reason f) {
    switch (f) {
    case CI_FINISH_LENGTH: return "length";
    case CI_FINISH_ERROR: return "error";
    case CI_FINISH_CANCELLED: return "abort";
    default: return "stop";
    }
}

/* The tool calls in a finished choice's content (NULL: none), with the
 * length of the content before them in *visible. */
static json_t *choice_tool_calls(job *j, const char *content, size_t len, size_t *visible) {
    *visible = len;
    if (j->tools_mode == TOOLS_OFF) return NULL;
    json_t *calls = ci_parse_tool_calls(content, len, visible);
    if (!calls && j->tools_mode != TOOLS_AUTO) calls = ci_parse_forced_tool_call(content, len, j->tools, visible);
    return calls;
}

/* finish_reason as OpenAI (and vLLM) give it: "tool_calls" for calls the
 * model chose ("auto") or had to make ("required") — for the latter only
 * when the model ended normally, else "length" —, and the plain reason for
 * a named function ("stop" when the call is complete). */
static const char *choice_finish(job *j, const choice *c, bool has_calls) {
    if (!has_calls) return finish_name(c->finish);
    if (j->tools_mode == TOOLS_AUTO) return "tool_calls";
    if (j->tools_mode == TOOLS_REQUIRED && c->finish == CI_FINISH_STOP) return "tool_calls";
    return finish_name(c->finish);
}

static json_t *usage_json(job *j) {
    long long prompt = 0, completion = 0, cached = 0;
    /* choices of the same prompt share it: count each prompt once (n choices in a row) */
    for (int i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        completion += c->n_generated;
        if (i % j->choices_per_prompt == 0) {
            prompt += c->n_prompt;
            cached += c->n_cached;
        }
    }
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                     (json_int_t)completion, "total_tokens", (json_int_t)(prompt + completion), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)cached);
}

/* Length of the longest prefix of s[0..n) that ends on a UTF-8 character boundary. */
static size_t utf8_complete(const char *s, size_t n) {
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead < 0x80 ? 1 : (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : (lead >> 3) == 30 ? 4 : 1;
    return (n - (i - 1) >= need) ? n : i - 1;
}

/* ---------------------------------------------------------- wait + reply */

static int reply_chat(srv_request *r, job *j) {
    server *s = r->srv;
    json_t *choices = json_array();
    for (int i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        size_t tl = 0, cl = 0;
        const char *thinking = c->out ? ci_output_thinking(c->out, &tl) : "";
        const char *content = c->out ? ci_output_content(c->out, &cl) : "";
        json_t *calls = NULL;
        size_t visible = cl;
        calls = choice_tool_calls(j, content, cl, &visible);
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", calls && visible == 0 ? json_null() : json_text(content, visible));
        json_object_set_new(msg, "reasoning_content", tl ? json_text(thinking, tl) : json_null());
        if (calls) json_object_set_new(msg, "tool_calls", calls);
        json_t *ch = json_pack("{s:i,s:o}", "index", i, "message", msg);
        json_object_set_new(ch, "logprobs", j->want_logprobs ? chat_logprobs(j, c, 0, c->n_tokens) : json_null());
        json_object_set_new(ch, "finish_reason", json_string(choice_finish(j, c, calls != NULL)));
        json_array_append_new(choices, ch);
    }
    json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", j->id, "object", "chat.completion", "created",
                             (json_int_t)j->created, "model", s->model_name, "choices", choices, "usage", usage_json(j));
    return srv_send_json(r->conn, s, 200, body);
}

static int reply_completion(srv_request *r, job *j) {
    server *s = r->srv;
    json_t *choices = json_array();
    for (int i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        size_t cl = 0;
        const char *content = c->out ? ci_output_content(c->out, &cl) : "";
        ci_buf text = {0};
        if (c->echo) ci_buf_append(&text, c->echo, c->echo_len);
        ci_buf_append(&text, content, cl);
        json_t *ch = json_pack("{s:i,s:o}", "index", i, "text", json_text(text.data ? text.data : "", text.len));
        size_t offset = 0;
        json_object_set_new(ch, "logprobs",
                            j->want_logprobs ? completion_logprobs(j, c, c->echo != NULL, 0, c->n_tokens, &offset) : json_null());
        json_object_set_new(ch, "finish_reason", json_string(finish_name(c->finish)));
        json_array_append_new(choices, ch);
        ci_buf_free(&text);
    }
    json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", j->id, "object", "text_completion", "created",
                             (json_int_t)j->created, "model", s->model_name, "choices", choices, "usage", usage_json(j));
    return srv_send_json(r->conn, s, 200, body);
}

/* Non-streaming: wait for every choice, then answer. */
static int wait_and_reply(srv_request *r, job *j) {
    pthread_mutex_lock(&j->lock);
    while (j->n_done < j->n_choices) srv_job_wait_locked(j);
    bool cancelled = j->cancelled;
    pthread_mutex_unlock(&j->lock);
    int ret;
    if (cancelled) ret = srv_send_error(r->conn, r->srv, 499, NULL, "client closed the request");
    else ret = j->is_chat ? reply_chat(r, j) : reply_completion(r, j);
    srv_job_release(j);
    return ret;
}

/* ------------------------------------------------------------ streaming */

static void sse_event(job *j, json_t *obj) {
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text) return;
    ci_buf_puts(&j->sse, "data: ");
    ci_buf_puts(&j->sse, text);
    ci_buf_puts(&j->sse, "\n\n");
    free(text);
}

static json_t *chunk_base(job *j) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", j->id, "object", j->is_chat ? "chat.completion.chunk" : "text_completion",
                     "created", (json_int_t)j->created, "model", j->srv->model_name);
}

static void chat_chunk(job *j, int index, json_t *delta, json_t *logprobs, const char *finish) {
    json_t *ch = json_pack("{s:i,s:o}", "index", index, "delta", delta);
    json_object_set_new(ch, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *obj = chunk_base(j);
    json_object_set_new(obj, "choices", json_pack("[o]", ch));
    sse_event(j, obj);
}

static void text_chunk(job *j, int index, const char *text, size_t n, json_t *logprobs, const char *finish) {
    json_t *ch = json_pack("{s:i,s:o}", "index", index, "text", json_text(text, n));
    json_object_set_new(ch, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *obj = chunk_base(j);
    json_object_set_new(obj, "choices", json_pack("[o]", ch));
    sse_event(j, obj);
}

/* Takes the complete-UTF-8 head of a pending delta. */
static size_t take_delta(ci_buf *b, bool final, ci_buf *out) {
    size_t n = final ? b->len : utf8_complete(b->data ? b->data : "", b->len);
    if (n == 0) return 0;
    ci_buf_append(out, b->data, n);
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
    return n;
}

/* How much of the content may be streamed while tool calls are possible:
 * nothing from "<tool_call>" on, nor a tail that could start it. */
static size_t tool_safe_len(const choice *c) {
    static const char tag[] = "<tool_call>";
    const size_t tl = sizeof tag - 1;
    const char *s = c->content_all.data ? c->content_all.data : "";
    size_t n = c->content_all.len;
    const char *hit = memmem(s, n, tag, tl);
    if (hit) return (size_t)(hit - s);
    for (size_t k = tl - 1; k > 0; k--)
        if (k <= n && memcmp(s + n - k, tag, k) == 0) return n - k;
    return n;
}

/* Turns what the scheduler produced into SSE events. Caller holds j->lock. */
static void build_stream_locked(job *j) {
    bool all_finished = true;
    for (int i = 0; i < j->n_choices; i++) {
        choice *c = &j->choices[i];
        if (c->finish_sent) continue;
        /* echo with logprobs: the first chunk carries the whole prompt's */
        bool echo_lps = !j->is_chat && !c->role_sent && c->echo && j->want_logprobs;
        if (echo_lps && !prompt_logprobs_ready(j, c)) {
            all_finished = false;
            continue;
        }
        json_t *lp = NULL;
        if (j->want_logprobs && (c->n_tokens > c->n_tokens_sent || echo_lps)) {
            lp = j->is_chat ? chat_logprobs(j, c, c->n_tokens_sent, c->n_tokens)
                            : completion_logprobs(j, c, echo_lps, c->n_tokens_sent, c->n_tokens, &c->lp_offset);
            c->n_tokens_sent = c->n_tokens;
        }
        if (j->is_chat) {
            if (!c->role_sent) {
                chat_chunk(j, i, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL, NULL);
                c->role_sent = true;
            }
            ci_buf piece = {0};
            if (take_delta(&c->think_new, c->done, &piece)) {
                chat_chunk(j, i, json_pack("{s:o}", "reasoning_content", json_text(piece.data, piece.len)), lp, NULL);
                lp = NULL;
                piece.len = 0;
            }
            if (j->tools_mode != TOOLS_OFF) {
                c->content_new.len = 0; /* content is streamed from content_all */
                size_t safe = c->done ? c->content_all.len : tool_safe_len(c);
                if (c->done) {
                    size_t visible = 0;
                    json_t *calls = choice_tool_calls(j, c->content_all.data ? c->content_all.data : "", c->content_all.len, &visible);
                    if (calls) safe = visible;
                    if (safe > c->content_streamed) {
                        chat_chunk(j, i, json_pack("{s:o}", "content", json_text(c->content_all.data + c->content_streamed, safe - c->content_streamed)), lp, NULL);
                        lp = NULL;
                        c->content_streamed = safe;
                    }
                    if (calls) {
                        size_t k;
                        json_t *call;
                        json_array_foreach(calls, k, call) json_object_set_new(call, "index", json_integer((json_int_t)k));
                        chat_chunk(j, i, json_pack("{s:o}", "tool_calls", calls), lp, NULL);
                        lp = NULL;
                        chat_chunk(j, i, json_object(), NULL, choice_finish(j, c, true));
                        c->finish_sent = true;
                    }
                } else {
                    safe = utf8_complete(c->content_all.data ? c->content_all.data : "", safe);
                    if (safe > c->content_streamed) {
                        chat_chunk(j, i, json_pack("{s:o}", "content", json_text(c->content_all.data + c->content_streamed, safe - c->content_streamed)), lp, NULL);
                        lp = NULL;
                        c->content_streamed = safe;
                    }
                }
            } else if (take_delta(&c->content_new, c->done, &piece)) {
                chat_chunk(j, i, json_pack("{s:o}", "content", json_text(piece.data, piece.len)), lp, NULL);
                lp = NULL;
            }
            ci_buf_free(&piece);
            if (lp) chat_chunk(j, i, json_object(), lp, NULL), lp = NULL;
            if (c->done && !c->finish_sent) {
                chat_chunk(j, i, json_object(), NULL, finish_name(c->finish));
                c->finish_sent = true;
            }
        } else {
            ci_buf piece = {0};
            if (!c->role_sent) {
                c->role_sent = true;
                if (c->echo_len) ci_buf_append(&piece, c->echo, c->echo_len);
            }
            take_delta(&c->content_new, c->done, &piece);
            if (piece.len || lp) text_chunk(j, i, piece.data ? piece.data : "", piece.len, lp, NULL);
            ci_buf_free(&piece);
            if (c->done) {
                text_chunk(j, i, "", 0, NULL, finish_name(c->finish));
                c->finish_sent = true;
            }
        }
        if (!c->finish_sent) all_finished = false;
    }
    if (all_finished && !j->stream_ended) {
        if (j->include_usage) {
            json_t *obj = chunk_base(j);
            json_object_set_new(obj, "choices", json_array());
            json_object_set_new(obj, "usage", usage_json(j));
            sse_event(j, obj);
        }
        ci_buf_puts(&j->sse, "data: [DONE]\n\n");
        j->stream_ended = true;
    }
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        if (j->sse_off < j->sse.len) {
            size_t n = j->sse.len - j->sse_off;
            if (n > max) n = max;
            memcpy(buf, j->sse.data + j->sse_off, n);
            j->sse_off += n;
            if (j->sse_off == j->sse.len) j->sse_off = j->sse.len = 0;
            pthread_mutex_unlock(&j->lock);
            return (ssize_t)n;
        }
        if (j->stream_ended) {
            pthread_mutex_unlock(&j->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (j->cancelled) {
            pthread_mutex_unlock(&j->lock);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        build_stream_locked(j);
        if (j->sse.len > j->sse_off || j->stream_ended) continue;
        if (!srv_job_wait_locked(j)) {
            pthread_mutex_unlock(&j->lock);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* MHD is done with the response (finished, or the client went away). */
static void stream_free(void *cls) {
    job *j = cls;
    pthread_mutex_lock(&j->lock);
    if (j->n_done < j->n_choices) srv_job_cancel_locked(j);
    pthread_mutex_unlock(&j->lock);
    srv_job_release(j);
}

static int start_stream(srv_request *r, job *j) {
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
    if (!resp) {
        pthread_mutex_lock(&j->lock);
        srv_job_cancel_locked(j);
        pthread_mutex_unlock(&j->lock);
        srv_job_release(j);
        return srv_send_error(r->conn, r->srv, 500, NULL, "cannot create the stream");
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    int ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    ci_metrics_count_request(&r->srv->metrics, 200);
    return ret;
}

/* --------------------------------------------------------------- chat */

/* Copies one message into the template's shape: content as a string (text
 * parts joined with "\n", as vLLM does), tool_calls with arguments as an
 * object when they parse (the Qwen3 template prints mappings with tojson). */
static json_t *template_message(json_t *m, size_t index, perr *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu]", index);
    if (!json_is_object(m)) return fail(e, 400, param, "each message must be an object"), NULL;
    json_t *role = json_object_get(m, "role");
    if (!json_is_string(role)) return fail(e, 400, param, "%s.role must be a string", param), NULL;
    const char *rs = json_string_value(role);
    if (strcmp(rs, "developer") == 0) rs = "system";
    if (strcmp(rs, "system") != 0 && strcmp(rs, "user") != 0 && strcmp(rs, "assistant") != 0 && strcmp(rs, "tool") != 0)
        return fail(e, 400, param, "%s.role '%s' is not one of system, developer, user, assistant, tool", param, rs), NULL;
    json_t *out = json_object();
    json_object_set_new(out, "role", json_string(rs));
    json_t *content = json_object_get(m, "content");
    if (json_is_string(content)) {
        json_object_set(out, "content", content);
    } else if (json_is_array(content)) {
        if (json_array_size(content) > MAX_CONTENT_PARTS) {
            json_decref(out);
            return fail(e, 400, param, "%s.content has more than %d parts", param, MAX_CONTENT_PARTS), NULL;
        }
        ci_buf text = {0};
        size_t i;
        json_t *part;
        json_array_foreach(content, i, part) {
            json_t *type = json_object_get(part, "type"), *t = json_object_get(part, "text");
            if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 || !json_is_string(t)) {
                ci_buf_free(&text);
                json_decref(out);
                return fail(e, 400, param, "%s.content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported", param, i), NULL;
            }
            if (i) ci_buf_putc(&text, '\n');
            ci_buf_append(&text, json_string_value(t), json_string_length(t));
        }
        json_object_set_new(out, "content", json_stringn(text.data ? text.data : "", text.len));
        ci_buf_free(&text);
    } else if (!content || json_is_null(content)) {
        json_object_set_new(out, "content", json_string(""));
    } else {
        json_decref(out);
        return fail(e, 400, param, "%s.content must be a string, a list of text parts or null", param), NULL;
    }
    json_t *rc = json_object_get(m, "reasoning_content");
    if (!rc) rc = json_object_get(m, "reasoning");
    if (json_is_string(rc)) json_object_set(out, "reasoning_content", rc);
    json_t *calls = json_object_get(m, "tool_calls");
    if (json_is_array(calls) && json_array_size(calls) > 0) {
        json_t *copy = json_deep_copy(calls);
        size_t i;
        json_t *call;
        json_array_foreach(copy, i, call) {
            json_t *fn = json_object_get(call, "function");
            json_t *args = json_object_get(fn, "arguments");
            if (json_is_string(args)) {
                json_t *parsed = json_loads(json_string_value(args), 0, NULL);
                if (json_is_object(parsed)) json_object_set_new(fn, "arguments", parsed);
                else json_decref(parsed);
            }
        }
        json_object_set_new(out, "tool_calls", copy);
    } else if (calls && !json_is_null(calls) && !json_is_array(calls)) {
        json_decref(out);
        return fail(e, 400, param, "%s.tool_calls must be a list", param), NULL;
    }
    json_t *v;
    if ((v = json_object_get(m, "tool_call_id")) && json_is_string(v)) json_object_set(out, "tool_call_id", v);
    if ((v = json_object_get(m, "name")) && json_is_string(v)) json_object_set(out, "name", v);
    return out;
}

/* Reads tool_choice against the request's tools. */
static bool parse_tool_choice(json_t *req, bool has_tools, tool_mode *mode, const char **named, perr *e) {
    json_t *tc = json_object_get(req, "tool_choice"), *tools = json_object_get(req, "tools");
    *mode = TOOLS_AUTO;
    *named = NULL;
    if (json_is_string(tc)) {
        const char *v = json_string_value(tc);
        if (strcmp(v, "none") == 0) *mode = TOOLS_OFF;
        else if (strcmp(v, "required") == 0) *mode = TOOLS_REQUIRED;
        else if (strcmp(v, "auto") != 0)
            return fail(e, 400, "tool_choice", "Invalid value for 'tool_choice': '%s'. Supported values are \"none\", "
                        "\"auto\", \"required\" and {\"type\": \"function\", \"function\": {\"name\": ...}}", v);
    } else if (json_is_object(tc)) {
        json_t *type = json_object_get(tc, "type"), *name = json_object_get(json_object_get(tc, "function"), "name");
        if ((type && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0)) || !json_is_string(name))
            return fail(e, 400, "tool_choice", "'tool_choice' must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
        *mode = TOOLS_NAMED;
        *named = json_string_value(name);
    } else if (tc && !json_is_null(tc)) {
        return fail(e, 400, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or an object");
    }
    if (!has_tools) {
        if (*mode == TOOLS_REQUIRED || *mode == TOOLS_NAMED)
            return fail(e, 400, "tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
        *mode = TOOLS_OFF;
        return true;
    }
    if (*named) {
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t)
            if (strcmp(json_string_value(json_object_get(json_object_get(t, "function"), "name")), *named) == 0) return true;
        return fail(e, 400, "tool_choice", "Invalid value for 'tool_choice': no function named '%s' was specified in the "
                    "'tools' parameter.", *named);
    }
    return true;
}

/* Builds the template context and tokenizes the prompt. */
static long chat_prompt(server *s, json_t *req, tool_mode *mode, const char **named, int32_t **ids, perr *e) {
    json_t *messages = json_object_get(req, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return fail(e, 400, "messages", "'messages' must be a non-empty list"), -1;
    if (json_array_size(messages) > MAX_MESSAGES)
        return fail(e, 400, "messages", "at most %d messages", MAX_MESSAGES), -1;
    json_t *ctx = json_object(), *msgs = json_array();
    json_object_set_new(ctx, "messages", msgs);
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        json_t *tm = template_message(m, i, e);
        if (!tm) {
            json_decref(ctx);
            return -1;
        }
        json_array_append_new(msgs, tm);
    }
    json_t *tools = json_object_get(req, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools) || json_array_size(tools) > MAX_TOOLS) {
            json_decref(ctx);
            return fail(e, 400, "tools", "'tools' must be a list of at most %d tools", MAX_TOOLS), -1;
        }
        json_t *t;
        json_array_foreach(tools, i, t) {
            json_t *fn = json_object_get(t, "function");
            if (!json_is_object(t) || !json_is_object(fn) || !json_is_string(json_object_get(fn, "name"))) {
                json_decref(ctx);
                return fail(e, 400, "tools", "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", i), -1;
            }
        }
    }
    if (!parse_tool_choice(req, json_array_size(tools) > 0, mode, named, e)) {
        json_decref(ctx);
        return -1;
    }
    /* "none": the tools are left out of the prompt too (as vLLM's
     * --exclude-tools-when-tool-choice-none), so the model has no reason to
     * call them; the content is never parsed for calls. */
    if (*mode != TOOLS_OFF) json_object_set(ctx, "tools", tools);
    json_object_set_new(ctx, "add_generation_prompt", json_true());
    if (s->m->bos_token) json_object_set_new(ctx, "bos_token", json_string(s->m->bos_token));
    if (s->m->eos_token) json_object_set_new(ctx, "eos_token", json_string(s->m->eos_token));
    json_t *et = json_object_get(req, "enable_thinking");
    if (et && !json_is_null(et)) {
        if (!json_is_boolean(et)) {
            json_decref(ctx);
            return fail(e, 400, "enable_thinking", "'enable_thinking' must be a boolean"), -1;
        }
        json_object_set(ctx, "enable_thinking", et);
    }
    json_t *kw = json_object_get(req, "chat_template_kwargs");
    if (kw && !json_is_null(kw)) {
        if (!json_is_object(kw)) {
            json_decref(ctx);
            return fail(e, 400, "chat_template_kwargs", "'chat_template_kwargs' must be an object"), -1;
        }
        const char *key;
        json_t *v;
        json_object_foreach(kw, key, v) {
            if (strcmp(key, "messages") == 0 || strcmp(key, "tools") == 0) continue;
            json_object_set(ctx, key, v);
        }
    }
    cinfer_error err = {0};
    char *text = NULL;
    long n = ci_render_chat_protected(s->m->tpl, s->m->tok, &s->specials, ctx, ids, &text, &err);
    json_decref(ctx);
    free(text);
    if (n < 0) return fail(e, 400, "messages", "cannot apply the chat template: %s", err.message), -1;
    if (n == 0) return fail(e, 400, "messages", "the prompt is empty"), -1;
    return n;
}

/* The ids the answer must start with for tool_choice "required" or a named
 * function: Qwen3's call opening up to the name, or through
 * `"arguments":` for a named function ("required" with a single tool is
 * that tool named). The forced text ends where the tokenizer's
 * pre-tokenizer splits anyway (before the space of ` {"`), so the model
 * continues with the ids it would have produced itself; the name is JSON
 * text tokenized as plain text. NULL with *n_out 0 when nothing is forced. */
static int32_t *tool_call_prefix(server *s, tool_mode mode, const char *named, json_t *tools, int *n_out, perr *e) {
    *n_out = 0;
    if (mode != TOOLS_REQUIRED && mode != TOOLS_NAMED) return NULL;
    if (mode == TOOLS_REQUIRED && json_array_size(tools) == 1)
        named = json_string_value(json_object_get(json_object_get(json_array_get(tools, 0), "function"), "name"));
    ci_buf text = {0};
    if (named) {
        json_t *js = json_string(named);
        char *quoted = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        json_decref(js);
        ci_buf_puts(&text, "\n{\"name\": ");
        ci_buf_puts(&text, quoted ? quoted : "\"\"");
        ci_buf_puts(&text, ", \"arguments\":");
        free(quoted);
    } else {
        ci_buf_puts(&text, "\n{\"name\": \"");
    }
    int32_t *tag = NULL, *rest = NULL;
    cinfer_error err = {0};
    long nt = cinfer_tokenize(s->m->tok, "<tool_call>", 11, 0, &tag, &err);
    long nr = nt < 0 ? -1 : cinfer_tokenize(s->m->tok, text.data, text.len, CINFER_TOKENIZE_SPLIT_SPECIAL, &rest, &err);
    ci_buf_free(&text);
    int32_t *ids = NULL;
    if (nt < 0 || nr < 0) {
        fail(e, 400, "tool_choice", "cannot tokenize the tool call opening: %s", err.message);
    } else if (nt + nr > CI_MAX_FORCED_TOKENS) {
        fail(e, 400, "tool_choice", "the function name is too long");
    } else {
        ids = ci_malloc((size_t)(nt + nr) * sizeof *ids);
        if (nt) memcpy(ids, tag, (size_t)nt * sizeof *ids);
        if (nr) memcpy(ids + nt, rest, (size_t)nr * sizeof *ids);
        *n_out = (int)(nt + nr);
    }
    free(tag);
    free(rest);
    return ids;
}

int api_chat_completions(srv_request *r) {
    server *s = r->srv;
    perr e = {0};
    json_t *req = parse_body(r, &e);
    if (!req) return send_perr(r, &e);
    gen_params g;
    int32_t *ids = NULL, *prefix = NULL;
    int n_prefix = 0;
    tool_mode mode = TOOLS_OFF;
    const char *named = NULL;
    long n = -1;
    if (!parse_common(s, req, true, &g, &e) || (n = chat_prompt(s, req, &mode, &named, &ids, &e)) < 0 ||
        (!(prefix = tool_call_prefix(s, mode, named, json_object_get(req, "tools"), &n_prefix, &e)) &&
         (mode == TOOLS_REQUIRED || mode == TOOLS_NAMED))) {
        json_decref(req);
        free(ids);
        return send_perr(r, &e);
    }
    if (n > s->m->max_model_len) n = s->m->max_model_len; /* make_request_params rejects it */
    bool thinking_open = ci_prompt_opens_thinking(s->m->tok, ids, (int)n);
    if (g.thinking_budget == 0 && thinking_open && s->n_think_close > 0) {
        /* budget 0 with the thinking already open in the prompt: close it right away */
        ids = ci_realloc_array(ids, (size_t)n + (size_t)s->n_think_close, sizeof *ids);
        memcpy(ids + n, s->think_close, (size_t)s->n_think_close * sizeof *ids);
        n += s->n_think_close;
        thinking_open = false;
        g.thinking_budget = -1;
    }
    ci_request_params rps[MAX_N];
    ci_output_options oos[MAX_N];
    const int32_t *prompts[MAX_N];
    int n_prompts[MAX_N];
    for (int i = 0; i < g.n; i++) {
        if (!make_request_params(s, &g, (int)n, i, &rps[i], &e)) {
            json_decref(req);
            free(ids);
            free(prefix);
            return send_perr(r, &e);
        }
        if (n_prefix > 0) {
            /* the answer opens with the call: after the thinking, if any */
            rps[i].forced_prefix = prefix;
            rps[i].n_forced_prefix = n_prefix;
            rps[i].thinking_open = thinking_open;
            rps[i].think_start_id = s->think_start;
            rps[i].think_end_id = s->think_end;
            rps[i].forced_close = s->think_close;
            rps[i].n_forced_close = s->n_think_close;
        }
        if (g.thinking_budget >= 0 && s->n_think_close > 0) {
            rps[i].thinking_budget = (int)(g.thinking_budget > INT32_MAX ? INT32_MAX : g.thinking_budget);
            rps[i].thinking_open = thinking_open;
            rps[i].think_start_id = s->think_start;
            rps[i].think_end_id = s->think_end;
            rps[i].forced_close = s->think_close;
            rps[i].n_forced_close = s->n_think_close;
        }
        oos[i] = (ci_output_options){.stop = g.stop, .n_stop = g.n_stop, .thinking_open = thinking_open, .parse_thinking = true};
        prompts[i] = ids;
        n_prompts[i] = (int)n;
    }
    job *j = srv_job_new(s, g.n, true);
    j->stream = g.stream;
    j->include_usage = g.include_usage;
    j->tools_mode = mode;
    if (mode != TOOLS_OFF) j->tools = json_incref(json_object_get(req, "tools"));
    j->want_logprobs = g.logprobs;
    j->top_logprobs = g.top_logprobs;
    j->fd = r->fd;
    cinfer_error err = {0};
    int rc = srv_job_submit(j, prompts, n_prompts, rps, oos, &err);
    free(ids);
    free(prefix);
    json_decref(req);
    if (rc < 0) {
        srv_job_release(j);
        return srv_send_error(r->conn, s, 400, NULL, "%s", err.message);
    }
    return g.stream ? start_stream(r, j) : wait_and_reply(r, j);
}

/* ---------------------------------------------------------- completions */

/* Reads one prompt: a string (tokenized, special tokens recognised as vLLM
 * does for raw prompts) or a list of token ids. */
static long read_prompt(server *s, json_t *p, int32_t **ids, char **text, size_t *text_len, perr *e) {
    *ids = NULL;
    *text = NULL;
    if (json_is_string(p)) {
        cinfer_error err = {0};
        long n = cinfer_tokenize(s->m->tok, json_string_value(p), json_string_length(p), 0, ids, &err);
        if (n < 0) return fail(e, 400, "prompt", "cannot tokenize the prompt: %s", err.message), -1;
        *text = ci_strndup(json_string_value(p), json_string_length(p));
        *text_len = json_string_length(p);
        return n;
    }
    if (json_is_array(p)) {
        size_t n = json_array_size(p);
        if (n > MAX_TOKENS_IN_REQUEST) return fail(e, 400, "prompt", "the prompt has too many tokens"), -1;
        *ids = ci_malloc((n ? n : 1) * sizeof **ids);
        int vocab = s->m->ck.model.hp.vocab;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(p, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
                free(*ids);
                *ids = NULL;
                return fail(e, 400, "prompt", "prompt token %zu is not an id in [0, %d)", i, vocab), -1;
            }
            (*ids)[i] = (int32_t)json_integer_value(v);
        }
        cinfer_error err = {0};
        *text = cinfer_detokenize(s->m->tok, *ids, n, false, text_len, &err);
        if (!*text) *text = ci_strdup(""), *text_len = 0;
        return (long)n;
    }
    return fail(e, 400, "prompt", "'prompt' must be a string, a list of strings, a list of token ids or a list of such lists"), -1;
}

int api_completions(srv_request *r) {
    server *s = r->srv;
    perr e = {0};
    json_t *req = parse_body(r, &e);
    if (!req) return send_perr(r, &e);
    gen_params g;
    bool echo = false;
    if (!parse_common(s, req, false, &g, &e) || !opt_bool(req, "echo", &echo, &e) ||
        (g.max_tokens == 0 && !echo && !fail(&e, 400, "max_tokens", "'max_tokens' 0 needs 'echo': true (the prompt only)"))) {
        json_decref(req);
        return send_perr(r, &e);
    }
    /* echo with logprobs: the prompt tokens' logprobs too, computed once per
     * prompt (by its first choice) */
    bool prompt_lps = echo && g.logprobs;
    json_t *p = json_object_get(req, "prompt");
    json_t *list = NULL;
    /* a list of strings or of id lists = several prompts; a flat id list = one */
    if (json_is_array(p) && json_array_size(p) > 0 && !json_is_integer(json_array_get(p, 0))) list = p;
    size_t n_in = list ? json_array_size(list) : 1;
    if (!p || (json_is_array(p) && json_array_size(p) == 0)) {
        json_decref(req);
        fail(&e, 400, "prompt", "'prompt' is required and must not be empty");
        return send_perr(r, &e);
    }
    if (n_in > MAX_PROMPTS || n_in * (size_t)g.n > MAX_CHOICES) {
        json_decref(req);
        fail(&e, 400, "prompt", "at most %d prompts and %d choices per request", MAX_PROMPTS, MAX_CHOICES);
        return send_perr(r, &e);
    }
    int n_choices = (int)n_in * g.n;
    int32_t **ids = ci_calloc(n_in, sizeof *ids);
    char **texts = ci_calloc(n_in, sizeof *texts);
    size_t *text_lens = ci_calloc(n_in, sizeof *text_lens);
    long *lens = ci_calloc(n_in, sizeof *lens);
    ci_request_params *rps = ci_calloc((size_t)n_choices, sizeof *rps);
    ci_output_options *oos = ci_calloc((size_t)n_choices, sizeof *oos);
    const int32_t **prompts = ci_calloc((size_t)n_choices, sizeof *prompts);
    int *n_prompts = ci_calloc((size_t)n_choices, sizeof *n_prompts);
    bool ok = true;
    for (size_t i = 0; ok && i < n_in; i++) {
        lens[i] = read_prompt(s, list ? json_array_get(list, i) : p, &ids[i], &texts[i], &text_lens[i], &e);
        if (lens[i] < 0) ok = false;
        else if (lens[i] == 0) ok = fail(&e, 400, "prompt", "prompt %zu is empty", i);
        for (int k = 0; ok && k < g.n; k++) {
            int c = (int)i * g.n + k;
            ok = make_request_params(s, &g, (int)(lens[i] > INT32_MAX ? INT32_MAX : lens[i]), k, &rps[c], &e);
            rps[c].want_prompt_logprobs = prompt_lps && k == 0;
            oos[c] = (ci_output_options){.stop = g.stop, .n_stop = g.n_stop, .parse_thinking = false, .keep_newlines = true};
            prompts[c] = ids[i];
            n_prompts[c] = (int)lens[i];
        }
    }
    int ret;
    if (!ok) {
        ret = send_perr(r, &e);
    } else {
        job *j = srv_job_new(s, n_choices, false);
        j->choices_per_prompt = g.n;
        j->stream = g.stream;
        j->include_usage = g.include_usage;
        j->want_logprobs = g.logprobs;
        j->top_logprobs = g.top_logprobs;
        j->fd = r->fd;
        if (echo)
            for (int c = 0; c < n_choices; c++) {
                size_t i = (size_t)(c / g.n);
                j->choices[c].echo = ci_strndup(texts[i], text_lens[i]);
                j->choices[c].echo_len = text_lens[i];
                if (rps[c].want_prompt_logprobs) {
                    choice *ch = &j->choices[c];
                    size_t np = (size_t)lens[i], k = (size_t)(g.top_logprobs > 0 ? g.top_logprobs : 1);
                    ch->n_prompt_ids = (int)np;
                    ch->prompt_ids = ci_malloc(np * sizeof *ch->prompt_ids);
                    memcpy(ch->prompt_ids, ids[i], np * sizeof *ch->prompt_ids);
                    ch->prompt_lps = ci_malloc(np * sizeof *ch->prompt_lps);
                    for (size_t t = 0; t < np; t++) ch->prompt_lps[t] = NAN;
                    ch->prompt_top_ids = ci_malloc(np * k * sizeof *ch->prompt_top_ids);
                    ch->prompt_top_lps = ci_malloc(np * k * sizeof *ch->prompt_top_lps);
                    for (size_t t = 0; t < np * k; t++) ch->prompt_top_ids[t] = -1, ch->prompt_top_lps[t] = -9999.0f;
                }
            }
        cinfer_error err = {0};
        int rc = srv_job_submit(j, (const int32_t *const *)prompts, n_prompts, rps, oos, &err);
        if (rc < 0) {
            srv_job_release(j);
            ret = srv_send_error(r->conn, s, 400, NULL, "%s", err.message);
        } else {
            ret = g.stream ? start_stream(r, j) : wait_and_reply(r, j);
        }
    }
    for (size_t i = 0; i < n_in; i++) free(ids[i]), free(texts[i]);
    free(ids);
    free(texts);
    free(text_lens);
    free(lens);
    free(rps);
    free(oos);
    free(prompts);
    free(n_prompts);
    json_decref(req);
    return ret;
}

/* ---------------------------------------------------- models, tokenize */

static json_t *model_card(server *s) {
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:i}", "id", s->model_name, "object", "model", "created", (json_int_t)0,
                     "owned_by", "cinfer", "root", s->model_name, "max_model_len", s->m->max_model_len);
}

int api_models(srv_request *r) {
    return srv_send_json(r->conn, r->srv, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_card(r->srv)));
}

int api_model_one(srv_request *r, const char *name) {
    if (strcmp(name, r->srv->model_name) != 0)
        return srv_send_error(r->conn, r->srv, 404, "model", "The model `%s` does not exist.", name);
    return srv_send_json(r->conn, r->srv, 200, model_card(r->srv));
}

int api_tokenize(srv_request *r) {
    server *s = r->srv;
    perr e = {0};
    json_t *req = parse_body(r, &e);
    if (!req) return send_perr(r, &e);
    int32_t *ids = NULL;
    long n = -1;
    if (!check_model(s, req, &e)) {
        json_decref(req);
        return send_perr(r, &e);
    }
    if (json_object_get(req, "messages")) {
        tool_mode mode;
        const char *named;
        n = chat_prompt(s, req, &mode, &named, &ids, &e);
    } else {
        json_t *p = json_object_get(req, "prompt");
        if (!json_is_string(p)) {
            fail(&e, 400, "prompt", "'prompt' (a string) or 'messages' is required");
        } else {
            cinfer_error err = {0};
            n = cinfer_tokenize(s->m->tok, json_string_value(p), json_string_length(p), 0, &ids, &err);
            if (n < 0) fail(&e, 400, "prompt", "cannot tokenize: %s", err.message);
        }
    }
    json_decref(req);
    if (n < 0) {
        free(ids);
        return send_perr(r, &e);
    }
    json_t *tokens = json_array();
    for (long i = 0; i < n; i++) json_array_append_new(tokens, json_integer(ids[i]));
    free(ids);
    return srv_send_json(r->conn, s, 200,
                         json_pack("{s:I,s:i,s:o}", "count", (json_int_t)n, "max_model_len", s->m->max_model_len, "tokens", tokens));
}

int api_detokenize(srv_request *r) {
    server *s = r->srv;
    perr e = {0};
    json_t *req = parse_body(r, &e);
    if (!req) return send_perr(r, &e);
    json_t *t = json_object_get(req, "tokens");
    if (!check_model(s, req, &e)) {
        json_decref(req);
        return send_perr(r, &e);
    }
    if (!json_is_array(t) || json_array_size(t) > MAX_TOKENS_IN_REQUEST) {
        json_decref(req);
        fail(&e, 400, "tokens", "'tokens' must be a list of token ids");
        return send_perr(r, &e);
    }
    size_t n = json_array_size(t);
    int32_t *ids = ci_malloc((n ? n : 1) * sizeof *ids);
    int vocab = s->m->ck.model.hp.vocab;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(t, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
            free(ids);
            json_decref(req);
            fail(&e, 400, "tokens", "tokens[%zu] is not an id in [0, %d)", i, vocab);
            return send_perr(r, &e);
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    json_decref(req);
    size_t len = 0;
    cinfer_error err = {0};
    char *text = cinfer_detokenize(s->m->tok, ids, n, false, &len, &err);
    free(ids);
    if (!text) return srv_send_error(r->conn, s, 400, "tokens", "cannot detokenize: %s", err.message);
    int ret = srv_send_json(r->conn, s, 200, json_pack("{s:o}", "prompt", json_text(text, len)));
    free(text);
    return ret;
}
