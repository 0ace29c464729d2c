/*
 * engine.c — the local model behind cinfer.h's cinfer_model / cinfer_chat:
 * checkpoint + tokenizer + chat template + generation defaults + scheduler.
 *
 * A chat turn is: messages → the model's own chat template → token ids →
 * scheduler (batched forward, sampler) → output splitter (detokenizer,
 * thinking/content, stop strings) → result and streamed deltas. The
 * synchronous calls here drive the scheduler from the calling thread; the
 * server drives the same scheduler from its own loop.
 *
 * Structured output: one constraint vocabulary (built on first use) and one
 * cache of compiled grammars per model; each generation takes a grammar
 * reference for its request, the scheduler a matcher per sequence.
 */
#include "cinfer.h"
#include "client/remote.h"
#include "engine/engine_internal.h"
#include "engine/output.h"
#include "engine/scheduler.h"
#include "format/model_config.h"
#include "kernels/threadpool.h"
#include "model/loader.h"
#include "template/template.h"
#include "tokenizer/tok_gguf.h"
#include "util/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STOP_IDS CI_MODEL_MAX_STOP_IDS

/* struct cinfer_model is in engine_internal.h (the server drives its scheduler). */

void cinfer_model_options_init(cinfer_model_options *o) { *o = (cinfer_model_options){0}; }

void cinfer_gen_options_init(cinfer_gen_options *o) {
    *o = (cinfer_gen_options){.temperature = -1, .top_p = -1, .top_k = -1, .min_p = -1, .repetition_penalty = -1,
                              .enable_thinking = -1};
}

/* ------------------------------------------------------------- loading */

static void progress_bar(void *user, size_t done, size_t total) {
    (void)user;
    int width = 40, filled = total ? (int)(done * (size_t)width / total) : width;
    fprintf(stderr, "\rloading [%.*s%*s] %3zu%%", filled, "########################################", width - filled, "",
            total ? done * 100 / total : 100);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

static void add_stop_id(cinfer_model *m, int32_t id) {
    if (id < 0 || id >= m->ck.model.hp.vocab) return;
    for (int i = 0; i < m->n_stop_ids; i++)
        if (m->stop_ids[i] == id) return;
    if (m->n_stop_ids < MAX_STOP_IDS) m->stop_ids[m->n_stop_ids++] = id;
}

/* Sampling defaults as transformers reads generation_config.json: without
 * do_sample=true the model decodes greedily. */
static ci_sampling_params defaults_from_generation_config(const qwen3_checkpoint *ck) {
    ci_sampling_params p = ci_sampling_defaults();
    const ci_generation_config *g = &ck->generation;
    if (!ck->has_generation_config || !(g->has_do_sample && g->do_sample)) return p;
    p.temperature = g->has_temperature ? (float)g->temperature : 1.0f;
    p.top_k = g->has_top_k ? g->top_k : 50; /* transformers' default top_k */
    p.top_p = g->has_top_p ? (float)g->top_p : 1.0f;
    p.min_p = g->has_min_p ? (float)g->min_p : 0.0f;
    p.repetition_penalty = g->has_repetition_penalty ? (float)g->repetition_penalty : 1.0f;
    return p;
}

/* The tokenizer and chat template travel with the checkpoint: tokenizer.json
 * and tokenizer_config.json / chat_template.jinja beside an HF checkpoint,
 * tokenizer.ggml.* and tokenizer.chat_template inside a GGUF. */
static int load_tokenizer_and_template(cinfer_model *m, const char *path, cinfer_error *err) {
    /* What the tokenizer and template loaders are given: the GGUF file, or the HF folder. */
    char *source = m->ck.is_gguf ? ci_strdup(path) : ci_path_folder(path);
    int rc = CINFER_OK;
    m->tok = m->ck.is_gguf ? ci_tok_load_gguf(m->ck.gguf, path, err) : cinfer_tokenizer_load(source, err);
    if (!m->tok) rc = err ? err->code : CINFER_ERR_FORMAT;
    /* A model without a chat template still runs raw prompts. */
    cinfer_chat_template_source src = {0};
    int found = m->ck.is_gguf ? tpl_source_from_gguf(m->ck.gguf, path, &src, NULL)
                              : cinfer_chat_template_source_load(source, &src, NULL);
    if (rc == CINFER_OK && found == CINFER_OK && src.template_text) {
        m->tpl = cinfer_template_parse(src.template_text, strlen(src.template_text), err);
        if (!m->tpl) {
            ci_error_prefix(err, "%s: chat template", source);
            rc = err ? err->code : CINFER_ERR_TEMPLATE;
        }
        m->bos_token = src.bos_token, src.bos_token = NULL;
        m->eos_token = src.eos_token, src.eos_token = NULL;
    }
    cinfer_chat_template_source_free(&src);
    free(source);
    return rc;
}

/* The thinking markers and the close sequence the scheduler forces (and
 * after which a constraint starts), as the Qwen3 template writes it. */
static void load_thinking_ids(cinfer_model *m) {
    m->think_start = m->think_end = -1;
    cinfer_tokenizer_thinking_ids(m->tok, &m->think_start, &m->think_end);
    if (m->think_end < 0) return;
    static const char close_text[] = "\n\n</think>\n\n";
    int32_t *ids = NULL;
    long n = cinfer_tokenize(m->tok, close_text, sizeof close_text - 1, 0, &ids, NULL);
    if (n > 0 && n <= CI_MODEL_MAX_CLOSE_IDS) {
        memcpy(m->think_close, ids, (size_t)n * sizeof *ids);
        m->n_think_close = (int)n;
    }
    free(ids);
}

ci_cons_grammar *ci_model_constraint(cinfer_model *m, ci_cons_kind kind, const char *src, size_t len,
                                     cinfer_error *err) {
    if (m->remote) {
        ci_error(err, CINFER_ERR_INVALID, "structured output needs a local model");
        return NULL;
    }
    pthread_mutex_lock(&m->cons_lock);
    if (!m->cons_vocab) {
        m->cons_vocab = ci_cons_vocab_from_tokenizer(m->tok, m->stop_ids, (size_t)m->n_stop_ids, err);
        if (m->cons_vocab) m->cons_cache = ci_cons_cache_new(m->cons_vocab, CI_MODEL_CONSTRAINT_CACHE);
    }
    ci_cons_cache *cache = m->cons_cache;
    pthread_mutex_unlock(&m->cons_lock);
    if (!cache) return NULL;
    ci_cons_options opts = ci_cons_default_options();
    return ci_cons_cache_get(cache, kind, src ? src : "", src ? len : 0, &opts, err);
}

cinfer_model *cinfer_model_load(const char *path, const cinfer_model_options *opts, cinfer_error *err) {
    cinfer_model_options o;
    if (opts) o = *opts;
    else cinfer_model_options_init(&o);

    cinfer_model *m = ci_calloc(1, sizeof *m);
    pthread_mutex_init(&m->cons_lock, NULL);
    bool bar = o.show_progress && isatty(STDERR_FILENO);
    if (qwen3_checkpoint_open(path, &m->ck, bar ? progress_bar : NULL, NULL, err) != CINFER_OK) {
        pthread_mutex_destroy(&m->cons_lock);
        free(m);
        return NULL;
    }
    if (load_tokenizer_and_template(m, path, err) != CINFER_OK) {
        cinfer_model_free(m);
        return NULL;
    }
    const qwen3_hparams *hp = &m->ck.model.hp;
    /* Stop ids: generation_config's eos list, else config's, and the tokenizer's eos token. */
    for (int i = 0; i < m->ck.generation.n_eos; i++) add_stop_id(m, m->ck.generation.eos_token_ids[i]);
    for (int i = 0; i < m->ck.config.n_eos; i++) add_stop_id(m, m->ck.config.eos_token_ids[i]);
    if (m->eos_token) add_stop_id(m, cinfer_tokenizer_token_id(m->tok, m->eos_token));
    m->defaults = defaults_from_generation_config(&m->ck);
    load_thinking_ids(m);

    const int cap = CINFER_DEFAULTS.model.max_model_len;
    int max_len = o.max_model_len > 0 ? o.max_model_len : (hp->max_positions < cap ? hp->max_positions : cap);
    if (max_len > hp->max_positions) {
        ci_error(err, CINFER_ERR_INVALID, "max_model_len %d exceeds the model's max_position_embeddings %d", max_len,
                 hp->max_positions);
        cinfer_model_free(m);
        return NULL;
    }
    m->max_model_len = max_len;
    ci_sched_options so = {
        .max_num_seqs = o.max_num_seqs > 0 ? o.max_num_seqs : CINFER_DEFAULTS.model.max_num_seqs,
        .max_batch_tokens = CINFER_DEFAULTS.model.max_batch_tokens,
        .max_model_len = max_len,
        .block_size = CINFER_DEFAULTS.model.kv_block_size,
        .kv_dtype = CI_KV_F16,
        /* this model's threads; models loaded before keep theirs */
        .n_threads = ci_threadpool_reserve(o.n_threads),
    };
    if (so.max_batch_tokens < so.max_num_seqs) so.max_batch_tokens = so.max_num_seqs;
    size_t block_bytes = ci_kv_block_bytes(hp->n_layers, hp->n_kv_heads, hp->head_dim, so.block_size, so.kv_dtype);
    int per_seq = (max_len + so.block_size - 1) / so.block_size;
    if (o.kv_cache_gib > 0) {
        double blocks = o.kv_cache_gib * 1073741824.0 / (double)block_bytes;
        so.n_kv_blocks = blocks > 1e9 ? 1000000000 : (int)blocks;
    } else {
        so.n_kv_blocks = per_seq * so.max_num_seqs;
    }
    if (!(m->sched = ci_sched_new(&m->ck.model, &so, err))) {
        cinfer_model_free(m);
        return NULL;
    }
    const qwen3_layer *L0 = &m->ck.model.w.layers[0];
    snprintf(m->description, sizeof m->description,
             "qwen3: %d layers, hidden %d, heads %d/%d, head_dim %d, ffn %d, vocab %d, weights %s, context %d",
             hp->n_layers, hp->hidden, hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->intermediate, hp->vocab,
             ci_wtype_name(L0->wq.type), max_len);
    return m;
}

cinfer_model *cinfer_model_open_remote(const cinfer_remote_options *o, cinfer_error *err) {
    ci_remote *r = ci_remote_open(o, err);
    if (!r) return NULL;
    cinfer_model *m = ci_calloc(1, sizeof *m);
    m->remote = r;
    pthread_mutex_init(&m->cons_lock, NULL);
    snprintf(m->description, sizeof m->description, "remote OpenAI-compatible endpoint");
    return m;
}

void cinfer_model_free(cinfer_model *m) {
    if (!m) return;
    if (m->remote) ci_remote_close(m->remote);
    ci_sched_free(m->sched);
    ci_cons_cache_free(m->cons_cache); /* the scheduler's matchers went first */
    ci_cons_vocab_free(m->cons_vocab);
    pthread_mutex_destroy(&m->cons_lock);
    cinfer_template_free(m->tpl);
    cinfer_tokenizer_free(m->tok);
    free(m->bos_token);
    free(m->eos_token);
    qwen3_checkpoint_close(&m->ck);
    free(m);
}

const cinfer_tokenizer *cinfer_model_tokenizer(const cinfer_model *m) { return m->tok; }
const char *cinfer_model_describe(const cinfer_model *m) { return m->description; }

void cinfer_result_free(cinfer_result *r) {
    if (!r) return;
    free(r->thinking);
    free(r->content);
    free(r->tokens);
    free(r->top_logprobs);
    free(r->tool_calls_json);
    *r = (cinfer_result){0};
}

/* ---------------------------------------------------------- generation */

typedef struct run_state {
    cinfer_model *m;
    const cinfer_gen_options *o;
    const ci_request_params *rp;
    ci_output *out;
    ci_buf thinking_delta, content_delta;
    int32_t *tokens;
    int n_tokens, cap_tokens;
    cinfer_top_logprob *tops;
    int n_top;
    bool done, user_stopped;
    ci_finish_reason finish;
    int prompt_tokens;
    double t_start, t_first, t_last;
} run_state;

static bool deliver(run_state *r) {
    bool keep_going = true;
    if (r->o->on_delta && (r->thinking_delta.len || r->content_delta.len))
        keep_going = r->o->on_delta(r->o->user, r->thinking_delta.data ? r->thinking_delta.data : "", r->thinking_delta.len,
                                    r->content_delta.data ? r->content_delta.data : "", r->content_delta.len);
    r->thinking_delta.len = r->content_delta.len = 0;
    return keep_going;
}

static bool on_token(void *user, const ci_token_event *ev) {
    run_state *r = user;
    bool stop = false;
    if (ev->token >= 0) {
        r->t_last = ci_now_seconds();
        if (r->n_tokens == 0) r->t_first = r->t_last;
        if (r->n_tokens == r->cap_tokens) {
            r->cap_tokens = r->cap_tokens ? r->cap_tokens * 2 : 256;
            r->tokens = ci_realloc_array(r->tokens, (size_t)r->cap_tokens, sizeof *r->tokens);
            if (r->n_top) r->tops = ci_realloc_array(r->tops, (size_t)r->cap_tokens * (size_t)r->n_top, sizeof *r->tops);
        }
        for (int k = 0; k < r->n_top; k++)
            r->tops[(size_t)r->n_tokens * (size_t)r->n_top + (size_t)k] =
                k < ev->n_top ? (cinfer_top_logprob){ev->top_ids[k], ev->top_logprobs[k]} : (cinfer_top_logprob){-1, -INFINITY};
        r->tokens[r->n_tokens++] = ev->token;
        /* a stop id itself is not text (a constraint's last token, also finishing with STOP, is) */
        bool is_stop_token = false;
        for (int i = 0; ev->finish == CI_FINISH_STOP && i < r->rp->n_stop_ids; i++)
            is_stop_token |= r->rp->stop_ids[i] == ev->token;
        if (!is_stop_token && ci_output_push(r->out, ev->token, &r->thinking_delta, &r->content_delta)) stop = true;
        if (!deliver(r)) r->user_stopped = stop = true;
    }
    if (ev->finish != CI_FINISH_NONE) {
        r->done = true;
        r->finish = ev->finish;
        r->prompt_tokens = ev->n_prompt_tokens;
    }
    return stop;
}

/* What a request's params point to, owned by the run. */
typedef struct run_controls {
    ci_logit_bias *bias;
    int32_t stop_ids[CI_MODEL_MAX_STOP_IDS + 64];
    ci_cons_grammar *grammar;
} run_controls;

static void run_controls_free(run_controls *c) {
    free(c->bias);
    ci_cons_grammar_unref(c->grammar);
}

/* The sampling controls and the constraint of the options into rp (the
 * scheduler checks the ids against the vocabulary). */
static int request_controls(cinfer_model *m, const int32_t *ids, int n_ids, const cinfer_gen_options *o,
                            ci_request_params *rp, run_controls *c, cinfer_error *err) {
    if (o->n_stop_token_ids < 0 || o->n_stop_token_ids > 64 || (o->n_stop_token_ids > 0 && !o->stop_token_ids))
        return ci_error(err, CINFER_ERR_INVALID, "stop_token_ids: at most 64 ids");
    int n_stop = o->ignore_eos ? 0 : m->n_stop_ids;
    memcpy(c->stop_ids, m->stop_ids, (size_t)n_stop * sizeof *c->stop_ids);
    for (int i = 0; i < o->n_stop_token_ids; i++) c->stop_ids[n_stop++] = o->stop_token_ids[i];
    rp->stop_ids = c->stop_ids;
    rp->n_stop_ids = n_stop;
    if (o->n_logit_bias < 0 || o->n_logit_bias > CI_MAX_CONTROL_IDS || (o->n_logit_bias > 0 && (!o->logit_bias_ids || !o->logit_bias)))
        return ci_error(err, CINFER_ERR_INVALID, "logit_bias: at most %d entries, with ids and biases", CI_MAX_CONTROL_IDS);
    if (o->n_logit_bias > 0) c->bias = ci_malloc((size_t)o->n_logit_bias * sizeof *c->bias);
    for (int i = 0; i < o->n_logit_bias; i++) c->bias[i] = (ci_logit_bias){o->logit_bias_ids[i], o->logit_bias[i]};
    rp->logit_bias = c->bias;
    rp->n_logit_bias = o->n_logit_bias;
    rp->min_tokens = o->min_tokens;
    rp->bad_words = o->bad_words;
    rp->bad_word_lens = o->bad_word_lens;
    rp->n_bad_words = o->n_bad_words;
    rp->allowed_ids = o->allowed_token_ids;
    rp->n_allowed_ids = o->n_allowed_token_ids;
    if (o->constraint == CINFER_CONSTRAINT_NONE) return CINFER_OK;
    if (o->constraint < CINFER_CONSTRAINT_JSON_SCHEMA || o->constraint > CINFER_CONSTRAINT_GBNF)
        return ci_error(err, CINFER_ERR_INVALID, "unknown constraint kind %d", (int)o->constraint);
    const char *src = o->constraint_source ? o->constraint_source : "";
    size_t len = o->constraint_len ? o->constraint_len : strlen(src);
    /* the kinds are numbered alike (cinfer.h, constrain.h) */
    if (!(c->grammar = ci_model_constraint(m, (ci_cons_kind)o->constraint, src, len, err)))
        return err ? err->code : CINFER_ERR_FORMAT;
    rp->constraint = c->grammar;
    /* thinking first: the constraint starts after the close sequence */
    rp->thinking_open = ci_prompt_opens_thinking(m->tok, ids, n_ids);
    /* a chat with thinking on may open <think> at the first position; a raw prompt may not */
    rp->think_start_id = o->raw || o->enable_thinking == 0 ? -1 : m->think_start;
    rp->think_end_id = m->think_end;
    rp->forced_close = m->think_close;
    rp->n_forced_close = m->n_think_close;
    return CINFER_OK;
}

/* The scheduler request for one generation: the model's sampling defaults
 * overridden by the options, the output room the context leaves. */
static int request_params(cinfer_model *m, const int32_t *ids, int n_ids, const cinfer_gen_options *o,
                          ci_request_params *rp, run_controls *c, cinfer_error *err) {
    if (o->top_logprobs < 0 || o->top_logprobs > CI_MAX_TOP_LOGPROBS)
        return ci_error(err, CINFER_ERR_INVALID, "top_logprobs must be between 0 and %d", CI_MAX_TOP_LOGPROBS);
    *rp = (ci_request_params){.sampling = m->defaults, .top_logprobs = o->top_logprobs, .thinking_budget = -1,
                              .think_start_id = -1, .think_end_id = -1};
    if (o->temperature >= 0) rp->sampling.temperature = o->temperature;
    if (o->top_p >= 0) rp->sampling.top_p = o->top_p;
    if (o->top_k >= 0) rp->sampling.top_k = o->top_k;
    if (o->min_p >= 0) rp->sampling.min_p = o->min_p;
    if (o->repetition_penalty > 0) rp->sampling.repetition_penalty = o->repetition_penalty;
    rp->sampling.presence_penalty = o->presence_penalty;
    rp->sampling.frequency_penalty = o->frequency_penalty;
    rp->sampling.has_seed = o->has_seed;
    rp->sampling.seed = o->seed;
    int room = m->max_model_len - n_ids;
    rp->max_new_tokens = o->max_new_tokens > 0 && o->max_new_tokens < room ? o->max_new_tokens : room;
    return request_controls(m, ids, n_ids, o, rp, c, err);
}

/* Moves a finished run into the caller's result. */
static void take_result(run_state *r, int n_ids, cinfer_result *out) {
    ci_output_finish(r->out, &r->thinking_delta, &r->content_delta);
    deliver(r);
    size_t tl, cl;
    const char *t = ci_output_thinking(r->out, &tl), *c = ci_output_content(r->out, &cl);
    out->thinking = ci_strndup(t, tl);
    out->content = ci_strndup(c, cl);
    out->finish_reason = r->user_stopped ? "cancelled"
                         : r->finish == CI_FINISH_LENGTH ? "length"
                         : r->finish == CI_FINISH_CANCELLED ? "cancelled"
                                                            : "stop";
    out->prompt_tokens = n_ids;
    out->completion_tokens = r->n_tokens;
    out->tokens = r->tokens, r->tokens = NULL;
    out->n_tokens = r->n_tokens;
    out->n_top_logprobs = r->n_top;
    out->top_logprobs = r->tops, r->tops = NULL;
    if (r->n_tokens > 0) {
        out->prefill_seconds = r->t_first - r->t_start;
        out->decode_seconds = r->t_last - r->t_first;
    }
}

static int run_prompt(cinfer_model *m, const int32_t *ids, int n_ids, const cinfer_gen_options *o, cinfer_result *out,
                      cinfer_error *err) {
    *out = (cinfer_result){0};
    ci_request_params rp;
    run_controls ctl = {0};
    if (request_params(m, ids, n_ids, o, &rp, &ctl, err) != CINFER_OK) {
        run_controls_free(&ctl);
        return err ? err->code : CINFER_ERR_INVALID;
    }
    ci_output_options oo = {.stop = o->stop, .n_stop = o->n_stop, .parse_thinking = true,
                            .thinking_open = ci_prompt_opens_thinking(m->tok, ids, n_ids)};
    run_state r = {.m = m, .o = o, .rp = &rp, .out = ci_output_new(m->tok, &oo), .n_top = o->top_logprobs};
    r.t_start = ci_now_seconds();
    int64_t id = ci_sched_submit(m->sched, ids, n_ids, &rp, on_token, &r, err);
    int rc = id < 0 ? (int)id : CINFER_OK;
    /* Steps until the request has ended — a failing step ends it too
     * (CI_FINISH_ERROR) — so the scheduler never keeps a callback into r,
     * which lives on this stack frame, after we return. */
    cinfer_error step_err = {0};
    while (id > 0 && !r.done) {
        step_err.code = CINFER_OK;
        ci_sched_step(m->sched, &step_err);
    }
    if (rc == CINFER_OK && r.finish == CI_FINISH_ERROR)
        rc = ci_error(err, step_err.code != CINFER_OK ? step_err.code : CINFER_ERR_NOMEM, "generation failed: %s",
                      step_err.code != CINFER_OK ? step_err.message : "the scheduler ended the request");
    if (rc == CINFER_OK) take_result(&r, n_ids, out);
    free(r.tokens);
    free(r.tops);
    ci_buf_free(&r.thinking_delta);
    ci_buf_free(&r.content_delta);
    ci_output_free(r.out);
    run_controls_free(&ctl);
    return rc;
}

static json_t *message_json(const char *role, const char *content, const char *reasoning) {
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string(role ? role : "user"));
    json_object_set_new(msg, "content", json_string(content ? content : ""));
    if (reasoning) json_object_set_new(msg, "reasoning_content", json_string(reasoning));
    return msg;
}

/* Renders messages with the model's template, as transformers'
 * apply_chat_template(messages, add_generation_prompt=True, enable_thinking=…). */
static char *render_chat(cinfer_model *m, json_t *messages, int enable_thinking, size_t *len, cinfer_error *err) {
    if (!m->tpl) {
        ci_error(err, CINFER_ERR_INVALID, "this model has no chat template; use a raw prompt");
        return NULL;
    }
    json_t *ctx = json_object();
    json_object_set(ctx, "messages", messages);
    json_object_set_new(ctx, "add_generation_prompt", json_true());
    if (enable_thinking >= 0) json_object_set_new(ctx, "enable_thinking", json_boolean(enable_thinking));
    if (m->bos_token) json_object_set_new(ctx, "bos_token", json_string(m->bos_token));
    if (m->eos_token) json_object_set_new(ctx, "eos_token", json_string(m->eos_token));
    char *text = tpl_render_jansson(m->tpl, ctx, NULL, len, err);
    json_decref(ctx);
    return text;
}

static int run_text(cinfer_model *m, const char *text, size_t len, const cinfer_gen_options *o, cinfer_result *out,
                    cinfer_error *err) {
    int32_t *ids = NULL;
    long n = cinfer_tokenize(m->tok, text, len, 0, &ids, err);
    if (n < 0) return (int)n;
    if (n == 0) {
        free(ids);
        return ci_error(err, CINFER_ERR_INVALID, "the prompt is empty");
    }
    if (n > INT32_MAX) n = INT32_MAX;
    int rc = run_prompt(m, ids, (int)n, o, out, err);
    free(ids);
    return rc;
}

int cinfer_chat(cinfer_model *m, const cinfer_message *history, size_t n_history, const char *system_prompt,
                const char *user_input, const cinfer_gen_options *o, cinfer_result *out, cinfer_error *err) {
    cinfer_gen_options defaults;
    if (!o) cinfer_gen_options_init(&defaults), o = &defaults;
    json_t *messages = json_array();
    bool history_has_system = n_history > 0 && history[0].role && strcmp(history[0].role, "system") == 0;
    if (system_prompt && *system_prompt && !history_has_system)
        json_array_append_new(messages, message_json("system", system_prompt, NULL));
    for (size_t i = 0; i < n_history; i++)
        json_array_append_new(messages, message_json(history[i].role, history[i].content, history[i].reasoning_content));
    if (user_input) json_array_append_new(messages, message_json("user", user_input, NULL));
    if (m->remote && (o->constraint || o->n_logit_bias || o->n_stop_token_ids || o->min_tokens || o->ignore_eos ||
                      o->n_bad_words || o->n_allowed_token_ids)) {
        json_decref(messages);
        return ci_error(err, CINFER_ERR_INVALID,
                        "constraints and token-level sampling controls need a local model (remote: use extra_json)");
    }
    if (m->remote) {
        int rc = ci_remote_chat(m->remote, messages, o, out, err);
        json_decref(messages);
        return rc;
    }
    size_t len = 0;
    char *text = render_chat(m, messages, o->enable_thinking, &len, err);
    json_decref(messages);
    if (!text) return err ? err->code : CINFER_ERR_TEMPLATE;
    int rc = run_text(m, text, len, o, out, err);
    free(text);
    return rc;
}

int cinfer_generate(cinfer_model *m, const char *prompt, const cinfer_gen_options *o, cinfer_result *out,
                    cinfer_error *err) {
    cinfer_gen_options defaults;
    if (!o) cinfer_gen_options_init(&defaults), o = &defaults;
    if (o->raw && m->remote)
        return ci_error(err, CINFER_ERR_INVALID, "a raw prompt needs a local model (remote endpoints take chat messages)");
    if (o->raw) return run_text(m, prompt, strlen(prompt), o, out, err);
    return cinfer_chat(m, NULL, 0, NULL, prompt, o, out, err);
}
