/*
 * openai_completions.c — the OpenAI (legacy) completions adapter
 * (POST /v1/completions): prompts as strings or token ids, echo, legacy
 * logprobs → the internal request; the job's events → a text_completion
 * body or text_completion chunks.
 *
 * Echo with logprobs returns the prompt tokens' logprobs too, computed once
 * per prompt (by its first choice); streamed, the first chunk of a choice
 * carries the echo and the prompt's logprobs, so it waits for them.
 */
#include "server/openai.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- render */

typedef struct legacy_logprobs {
    json_t *tokens, *token_logprobs, *top_logprobs, *text_offset;
} legacy_logprobs;

/* One entry of the legacy shape; `known` false gives nulls (the first
 * prompt token, or one whose logprob never arrived). */
static void legacy_entry(const job *j, legacy_logprobs *o, int32_t id, bool known, float lp, const int32_t *top_ids,
                         const float *top_lps, size_t *offset) {
    const server *s = j->srv;
    size_t n = 0;
    cinfer_tokenizer_token_bytes(s->m->tok, id, &n);
    json_array_append_new(o->tokens, srv_token_text(s, id));
    json_array_append_new(o->token_logprobs, known ? json_real(lp) : json_null());
    json_t *top = known ? json_object() : json_null();
    for (int k = 0; known && k < j->top_logprobs; k++) {
        if (top_ids[k] < 0) continue;
        json_t *txt = srv_token_text(s, top_ids[k]);
        json_object_set_new(top, json_string_value(txt), json_real(top_lps[k]));
        json_decref(txt);
    }
    json_array_append_new(o->top_logprobs, top);
    json_array_append_new(o->text_offset, json_integer((json_int_t)*offset));
    *offset += n;
}

/* The legacy logprobs: the prompt's tokens first when with_prompt (echo),
 * then output tokens [from, to). text_offset counts bytes of the returned
 * text from *offset on, which advances. */
static json_t *completion_logprobs(job *j, const choice *c, bool with_prompt, int from, int to, size_t *offset) {
    legacy_logprobs o = {json_array(), json_array(), json_array(), json_array()};
    const choice *src = srv_prompt_source(j, c);
    for (int t = 0; with_prompt && t < src->n_prompt_ids; t++) {
        size_t at = (size_t)t * (size_t)j->top_logprobs;
        legacy_entry(j, &o, src->prompt_ids[t], t > 0 && !isnan(src->prompt_lps[t]), src->prompt_lps[t],
                     src->prompt_top_ids + at, src->prompt_top_lps + at, offset);
    }
    for (int t = from; t < to; t++) {
        size_t at = (size_t)t * (size_t)j->top_logprobs;
        legacy_entry(j, &o, c->tokens[t], true, c->logprobs[t], c->top_ids ? c->top_ids + at : NULL,
                     c->top_lps ? c->top_lps + at : NULL, offset);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", o.tokens, "token_logprobs", o.token_logprobs, "top_logprobs",
                     o.top_logprobs, "text_offset", o.text_offset);
}

static json_t *reply_choice(job *j, int i) {
    choice *c = &j->choices[i];
    size_t cl = 0, offset = 0;
    const char *content = c->out ? ci_output_content(c->out, &cl) : "";
    ci_buf text = {0};
    if (c->echo) ci_buf_append(&text, c->echo, c->echo_len);
    ci_buf_append(&text, content, cl);
    json_t *ch = json_pack("{s:i,s:o}", "index", i, "text", srv_json_text(text.data, text.len));
    ci_buf_free(&text);
    json_object_set_new(ch, "logprobs",
                        j->want_logprobs ? completion_logprobs(j, c, c->echo != NULL, 0, c->n_tokens, &offset) : json_null());
    json_object_set_new(ch, "finish_reason", json_string(srv_openai_finish(c->finish)));
    return ch;
}

static int completions_reply(srv_request *r, job *j) {
    json_t *choices = json_array();
    for (int i = 0; i < j->n_choices; i++) json_array_append_new(choices, reply_choice(j, i));
    json_t *body = srv_openai_envelope(j, "text_completion");
    json_object_set_new(body, "choices", choices);
    json_object_set_new(body, "usage", srv_openai_usage(j));
    return srv_send_json(r, 200, body);
}

static void text_chunk(job *j, ci_buf *out, int index, const char *text, size_t n, json_t *logprobs, const char *finish) {
    json_t *ch = json_pack("{s:i,s:o}", "index", index, "text", srv_json_text(text, n));
    json_object_set_new(ch, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *obj = srv_openai_envelope(j, "text_completion");
    json_object_set_new(obj, "choices", json_pack("[o]", ch));
    srv_sse(out, NULL, obj);
}

/* One choice's new events: the echo (first), new text with its logprobs,
 * then the finish. */
static void completions_stream_choice(job *j, int i, ci_buf *out) {
    choice *c = &j->choices[i];
    bool first = !c->started, echo_lps = first && c->echo && j->want_logprobs;
    if (echo_lps && !srv_prompt_logprobs_ready(j, c)) return;
    srv_delta d;
    if (!srv_choice_take(j, i, &d) && !first) return;
    c->started = true;
    json_t *lp = NULL;
    if (j->want_logprobs && (d.tok_to > d.tok_from || echo_lps))
        lp = completion_logprobs(j, c, echo_lps, d.tok_from, d.tok_to, &c->lp_offset);
    ci_buf piece = {0};
    if (first && c->echo_len) ci_buf_append(&piece, c->echo, c->echo_len);
    if (d.content_len) ci_buf_append(&piece, d.content, d.content_len);
    if (piece.len || lp) text_chunk(j, out, i, piece.data, piece.len, lp, NULL);
    ci_buf_free(&piece);
    if (d.last) {
        text_chunk(j, out, i, "", 0, NULL, srv_openai_finish(c->finish));
        c->finish_sent = true;
    }
}

static void completions_stream(job *j, ci_buf *out) {
    for (int i = 0; i < j->n_choices; i++)
        if (!j->choices[i].finish_sent) completions_stream_choice(j, i, out);
}

static void completions_stream_end(job *j, ci_buf *out) { srv_openai_stream_end(j, "text_completion", out); }

static const srv_api COMPLETIONS_API = {
    .id_prefix = "cmpl-",
    .stream_type = "text/event-stream",
    .reply = completions_reply,
    .stream = completions_stream,
    .stream_end = completions_stream_end,
    .stream_error = srv_openai_stream_error,
};

/* -------------------------------------------------------------- parse */

/* One prompt: a string (tokenized, special tokens recognised as vLLM does
 * for raw prompts) or a list of token ids (its text detokenized for echo). */
static bool read_prompt(const server *s, json_t *v, srv_prompt *p, srv_error *e) {
    cinfer_error err = {0};
    if (json_is_string(v)) {
        p->n_ids = cinfer_tokenize(s->m->tok, json_string_value(v), json_string_length(v), 0, &p->ids, &err);
        if (p->n_ids < 0) return srv_fail(e, 400, "prompt", "cannot tokenize the prompt: %s", err.message);
        p->text = ci_strndup(json_string_value(v), json_string_length(v));
        p->text_len = json_string_length(v);
        return true;
    }
    if (!json_is_array(v))
        return srv_fail(e, 400, "prompt", "'prompt' must be a string, a list of strings, a list of token ids or a list of "
                        "such lists");
    if (json_array_size(v) > SRV_MAX_TOKENS_IN_REQUEST) return srv_fail(e, 400, "prompt", "the prompt has too many tokens");
    p->n_ids = srv_read_token_ids(s, v, "prompt", &p->ids, e);
    if (p->n_ids < 0) return false;
    p->text = cinfer_detokenize(s->m->tok, p->ids, (size_t)p->n_ids, false, &p->text_len, &err);
    if (!p->text) p->text = ci_strdup(""), p->text_len = 0;
    return true;
}

static bool read_prompts(const server *s, json_t *req, srv_gen_request *g, srv_error *e) {
    json_t *p = json_object_get(req, "prompt");
    if (!p || (json_is_array(p) && json_array_size(p) == 0))
        return srv_fail(e, 400, "prompt", "'prompt' is required and must not be empty");
    /* a list of strings or of id lists = several prompts; a flat id list = one */
    bool list = json_is_array(p) && !json_is_integer(json_array_get(p, 0));
    size_t n = list ? json_array_size(p) : 1;
    if (n > SRV_MAX_PROMPTS || n * (size_t)g->n > SRV_MAX_CHOICES)
        return srv_fail(e, 400, "prompt", "at most %d prompts and %d choices per request", SRV_MAX_PROMPTS, SRV_MAX_CHOICES);
    for (size_t i = 0; i < n; i++) {
        srv_prompt *pr = &g->prompts[g->n_prompts++];
        if (!read_prompt(s, list ? json_array_get(p, i) : p, pr, e)) return false;
        if (pr->n_ids == 0) return srv_fail(e, 400, "prompt", "prompt %zu is empty", i);
    }
    return true;
}

static bool completions_parse(const server *s, json_t *req, srv_gen_request *g, srv_error *e) {
    g->keep_newlines = true;
    if (!srv_openai_parse_common(s, req, false, g, e) || !srv_opt_bool(req, "echo", &g->echo, e)) return false;
    if (g->max_tokens == 0 && !g->echo)
        return srv_fail(e, 400, "max_tokens", "'max_tokens' 0 needs 'echo': true (the prompt only)");
    g->prompt_logprobs = g->echo && g->logprobs;
    return read_prompts(s, req, g, e);
}

int api_completions(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    srv_gen_request g;
    srv_gen_init(&g, r->srv);
    int ret = completions_parse(r->srv, req, &g, &e) ? srv_gen_run(r, &g, &COMPLETIONS_API) : srv_send_error(r, &e);
    srv_gen_free(&g);
    json_decref(req);
    return ret;
}
