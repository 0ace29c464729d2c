/*
 * openai_common.c — what OpenAI's chat and completions APIs share (see
 * openai.h). Sampling fields left out take the model's
 * generation_config.json values (srv_gen_init).
 */
#include "server/openai.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static bool parse_sampling(json_t *req, ci_sampling_params *sp, srv_error *e) {
    static const struct {
        const char *key;
        double lo, hi;
        size_t off;
    } F[] = {
        {"temperature", 0, 100, offsetof(ci_sampling_params, temperature)},
        {"top_p", 1e-9, 1, offsetof(ci_sampling_params, top_p)},
        {"min_p", 0, 1, offsetof(ci_sampling_params, min_p)},
        {"presence_penalty", -2, 2, offsetof(ci_sampling_params, presence_penalty)},
        {"frequency_penalty", -2, 2, offsetof(ci_sampling_params, frequency_penalty)},
        {"repetition_penalty", 1e-3, 100, offsetof(ci_sampling_params, repetition_penalty)},
    };
    double d;
    bool set;
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) {
        if (!srv_opt_number(req, F[i].key, F[i].lo, F[i].hi, &d, &set, e)) return false;
        if (set) *(float *)((char *)sp + F[i].off) = (float)d;
    }
    long long k;
    if (!srv_opt_int(req, "top_k", -1, 1 << 30, &k, &set, e)) return false;
    if (set) sp->top_k = k <= 0 ? 0 : (int)k;
    if (!srv_opt_int(req, "seed", INT64_MIN, INT64_MAX, &k, &set, e)) return false;
    if (set) sp->has_seed = true, sp->seed = (uint64_t)k;
    return true;
}

static bool parse_stop(json_t *req, srv_gen_request *g, srv_error *e) {
    json_t *stop = json_object_get(req, "stop");
    if (!stop || json_is_null(stop)) return true;
    if (json_is_string(stop)) return srv_gen_add_stop(g, json_string_value(stop), json_string_length(stop), e);
    if (!json_is_array(stop)) return srv_fail(e, 400, "stop", "'stop' must be a string or a list of strings");
    if (json_array_size(stop) > SRV_MAX_STOP) return srv_fail(e, 400, "stop", "at most %d stop strings", SRV_MAX_STOP);
    size_t i;
    json_t *v;
    json_array_foreach(stop, i, v) {
        if (!json_is_string(v)) return srv_fail(e, 400, "stop", "'stop' must be a string or a list of strings");
        if (!srv_gen_add_stop(g, json_string_value(v), json_string_length(v), e)) return false;
    }
    return true;
}

static bool parse_logprobs(json_t *req, bool is_chat, srv_gen_request *g, srv_error *e) {
    long long k;
    bool set;
    if (!is_chat) {
        if (!srv_opt_int(req, "logprobs", 0, CI_MAX_TOP_LOGPROBS, &k, &set, e)) return false;
        if (set) g->logprobs = true, g->top_logprobs = (int)k;
        return true;
    }
    if (!srv_opt_bool(req, "logprobs", &g->logprobs, e)) return false;
    if (!srv_opt_int(req, "top_logprobs", 0, CI_MAX_TOP_LOGPROBS, &k, &set, e)) return false;
    if (!set) return true;
    if (!g->logprobs && k > 0) return srv_fail(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    g->top_logprobs = (int)k;
    return true;
}

bool srv_openai_parse_common(const server *s, json_t *req, bool is_chat, srv_gen_request *g, srv_error *e) {
    if (!srv_check_model(s, req, e) || !parse_sampling(req, &g->sampling, e)) return false;
    long long k;
    bool set;
    if (!srv_opt_int(req, "n", 1, SRV_MAX_N, &k, &set, e)) return false;
    if (set) g->n = (int)k;
    /* max_tokens 0 is the legacy echo-only request (prompt logprobs) */
    if (!srv_opt_int(req, "max_tokens", is_chat ? 1 : 0, INT32_MAX, &g->max_tokens, NULL, e)) return false;
    if (!srv_opt_int(req, "max_completion_tokens", 1, INT32_MAX, &g->max_tokens, NULL, e)) return false;
    /* thinking budget: Qwen's own API calls it thinking_budget; max_thinking_tokens accepted too */
    if (!srv_opt_int(req, "thinking_budget", 0, INT32_MAX, &g->thinking_budget, NULL, e)) return false;
    if (!srv_opt_int(req, "max_thinking_tokens", 0, INT32_MAX, &g->thinking_budget, NULL, e)) return false;
    if (!srv_opt_bool(req, "stream", &g->stream, e)) return false;
    if (!srv_opt_bool(req, "ignore_eos", &g->ignore_eos, e)) return false;
    json_t *so = json_object_get(req, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return srv_fail(e, 400, "stream_options", "'stream_options' must be an object");
        if (!srv_opt_bool(so, "include_usage", &g->include_usage, e)) return false;
    }
    return parse_stop(req, g, e) && parse_logprobs(req, is_chat, g, e);
}

const char *srv_openai_finish(ci_finish_reason f) {
    switch (f) {
    case CI_FINISH_LENGTH: return "length";
    case CI_FINISH_ERROR: return "error";
    case CI_FINISH_CANCELLED: return "abort";
    default: return "stop";
    }
}

json_t *srv_openai_usage(const job *j) {
    long long prompt = 0, completion = 0, cached = 0;
    /* choices of the same prompt share it: count each prompt once (n choices in a row) */
    for (int i = 0; i < j->n_choices; i++) {
        const choice *c = &j->choices[i];
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

json_t *srv_openai_envelope(const job *j, const char *object) {
    return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", j->id, "object", object, "created", (json_int_t)j->created, "model",
                     j->srv->model_name, "system_fingerprint", j->srv->fingerprint);
}

void srv_openai_stream_end(job *j, const char *object, ci_buf *out) {
    if (j->include_usage) {
        json_t *obj = srv_openai_envelope(j, object);
        json_object_set_new(obj, "choices", json_array());
        json_object_set_new(obj, "usage", srv_openai_usage(j));
        srv_sse(out, NULL, obj);
    }
    srv_sse_done(out);
}

void srv_openai_stream_error(job *j, const srv_error *e, ci_buf *out) {
    (void)j;
    srv_sse(out, "error", srv_error_json(e));
    srv_sse_done(out);
}

json_t *srv_token_text(const server *s, int32_t id) {
    size_t n = 0;
    const char *b = cinfer_tokenizer_token_bytes(s->m->tok, id, &n);
    return srv_json_text(b ? b : "", b ? n : 0);
}

json_t *srv_token_bytes(const server *s, int32_t id) {
    size_t n = 0;
    const char *b = cinfer_tokenizer_token_bytes(s->m->tok, id, &n);
    json_t *a = json_array();
    for (size_t i = 0; b && i < n; i++) json_array_append_new(a, json_integer((unsigned char)b[i]));
    return a;
}
