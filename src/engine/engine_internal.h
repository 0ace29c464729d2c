/*
 * engine_internal.h — the fields of a loaded local cinfer_model, for code
 * inside libcinfer that drives the scheduler itself (the server). Programs
 * embedding cinfer use cinfer.h only.
 */
#ifndef CINFER_ENGINE_INTERNAL_H
#define CINFER_ENGINE_INTERNAL_H

#include "cinfer.h"
#include "client/remote.h"
#include "constrain/constrain.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "model/loader.h"

#define CI_MODEL_MAX_STOP_IDS 8
#define CI_MODEL_MAX_CLOSE_IDS 16
#define CI_MODEL_CONSTRAINT_CACHE 64 /* compiled grammars kept per model */

struct cinfer_model {
    ci_remote *remote;          /* set for cinfer_model_open_remote(); nothing below is then used */
    qwen3_checkpoint ck;
    cinfer_tokenizer *tok;
    cinfer_template *tpl;       /* NULL when the model has no chat template */
    char *bos_token, *eos_token;
    ci_scheduler *sched;
    int max_model_len;
    int32_t stop_ids[CI_MODEL_MAX_STOP_IDS];
    int n_stop_ids;
    ci_sampling_params defaults; /* from generation_config.json */
    char description[256];
    /* thinking markers and the close sequence "\n\n</think>\n\n" (ids; -1 / 0: none) */
    int32_t think_start, think_end;
    int32_t think_close[CI_MODEL_MAX_CLOSE_IDS];
    int n_think_close;
    /* structured output: the vocabulary (built on first use) and compiled grammars */
    pthread_mutex_t cons_lock;
    ci_cons_vocab *cons_vocab;
    ci_cons_cache *cons_cache;
};

/* A reference to the compiled constraint (cached by source) for this
 * model's vocabulary; release with ci_cons_grammar_unref. Thread-safe. The
 * vocabulary (~0.4 s for Qwen3) is built by the first call. NULL with err
 * set (CINFER_ERR_FORMAT: bad source, naming the problem). */
ci_cons_grammar *ci_model_constraint(cinfer_model *m, ci_cons_kind kind, const char *src, size_t len,
                                     cinfer_error *err);

#endif
