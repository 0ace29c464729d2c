/*
 * engine_internal.h — the fields of a loaded local cinfer_model, for code
 * inside libcinfer that drives the scheduler itself (the server). Programs
 * embedding cinfer use cinfer.h only.
 */
#ifndef CINFER_ENGINE_INTERNAL_H
#define CINFER_ENGINE_INTERNAL_H

#include "cinfer.h"
#include "client/remote.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "model/loader.h"

#define CI_MODEL_MAX_STOP_IDS 8

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
};

#endif
