/*
 * api_tools.c — the public face (cinfer.h) of two tools that live in lower
 * layers: quantization (src/model/quantize.c) and test models
 * (src/format/test_model.c). Thin wrappers: names in, the internal enums
 * out, and results in public types; the work and its rules stay where they
 * are documented.
 */
#include "cinfer.h"
#include "format/test_model.h"
#include "model/quantize.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- quantize */

const char *cinfer_quantize_scheme_name(const char *type) {
    ci_quant_scheme s;
    return type && ci_quant_scheme_parse(type, &s) ? ci_quant_scheme_name(s) : NULL;
}

typedef struct progress_relay {
    cinfer_quantize_progress_fn fn;
    void *user;
} progress_relay;

static void relay_progress(void *user, const char *tensor, ci_wtype type, uint64_t done, uint64_t total) {
    const progress_relay *r = user;
    r->fn(r->user, tensor, ci_wtype_name(type), done, total);
}

int cinfer_quantize(const char *in, const char *out, const char *type, cinfer_quantize_progress_fn progress,
                    void *user, cinfer_quantize_stats *stats, cinfer_error *err) {
    _Static_assert(CI_WT_COUNT <= sizeof stats->per_type / sizeof stats->per_type[0], "per_type holds every type");
    ci_quant_scheme scheme;
    if (!in || !out || !type) return ci_error(err, CINFER_ERR_INVALID, "quantize: input, output and type are required");
    if (!ci_quant_scheme_parse(type, &scheme))
        return ci_error(err, CINFER_ERR_INVALID, "unknown quantization type '%s' (q8_0, q4_0, q4_k, q6_k, q4_k_m)", type);
    progress_relay relay = {progress, user};
    ci_quantize_stats st;
    int rc = ci_quantize_model(in, out, scheme, progress ? relay_progress : NULL, &relay, &st, err);
    if (rc != CINFER_OK || !stats) return rc;
    *stats = (cinfer_quantize_stats){.n_tensors = st.n_tensors,
                                     .n_copied = st.n_copied,
                                     .n_fallback = st.n_fallback,
                                     .in_bytes = st.in_bytes,
                                     .out_bytes = st.out_bytes};
    for (int t = 0; t < CI_WT_COUNT; t++) {
        if (!st.per_type[t]) continue;
        stats->per_type[stats->n_types].type = ci_wtype_name((ci_wtype)t);
        stats->per_type[stats->n_types++].count = st.per_type[t];
    }
    return CINFER_OK;
}

/* --------------------------------------------------------- test models */

static const char *const DTYPE_NAMES[] = {[CI_TM_F32] = "f32", [CI_TM_BF16] = "bf16", [CI_TM_F16] = "f16",
                                          [CI_TM_Q8_0] = "q8_0"};

void cinfer_test_model_options_init(cinfer_test_model_options *o) {
    *o = (cinfer_test_model_options){.shape = CINFER_DEFAULTS.test_model.shape,
                                     .dtype = CINFER_DEFAULTS.test_model.dtype,
                                     .format = CINFER_DEFAULTS.test_model.format,
                                     .shards = CINFER_DEFAULTS.test_model.shards};
}

/* The internal options for `o` writing to `out`; CINFER_ERR_INVALID for a
 * name that is not one of the documented ones. */
static int to_internal(const cinfer_test_model_options *o, const char *out, ci_test_model_options *t, cinfer_error *err) {
    *t = (ci_test_model_options){.out = out, .shards = o->shards, .untied = o->untied, .no_lm_head = o->no_lm_head,
                                 .seed = o->seed, .tokenizer_dir = o->tokenizer_dir, .progress = o->show_progress};
    if (!o->shape || !(t->shape = ci_test_model_shape_get(o->shape)))
        return ci_error(err, CINFER_ERR_INVALID, "unknown shape '%s' (tiny, small, 0.6b, 4b)", o->shape ? o->shape : "");
    size_t d = 0;
    while (d < sizeof DTYPE_NAMES / sizeof DTYPE_NAMES[0] && !(o->dtype && strcmp(o->dtype, DTYPE_NAMES[d]) == 0)) d++;
    if (d == sizeof DTYPE_NAMES / sizeof DTYPE_NAMES[0])
        return ci_error(err, CINFER_ERR_INVALID, "unknown dtype '%s' (f32, bf16, f16, q8_0)", o->dtype ? o->dtype : "");
    t->dtype = (ci_test_model_dtype)d;
    if (o->format && strcmp(o->format, "hf") == 0) t->format = CI_TM_HF;
    else if (o->format && strcmp(o->format, "gguf") == 0) t->format = CI_TM_GGUF;
    else return ci_error(err, CINFER_ERR_INVALID, "unknown format '%s' (hf, gguf)", o->format ? o->format : "");
    return CINFER_OK;
}

int cinfer_test_model_check(const cinfer_test_model_options *o, cinfer_error *err) {
    ci_test_model_options t;
    if (to_internal(o, "-", &t, err) != CINFER_OK) return CINFER_ERR_INVALID;
    if (!t.tokenizer_dir) t.tokenizer_dir = ""; /* the folder itself is checked when writing */
    return ci_test_model_check_options(&t, err);
}

int cinfer_make_test_model(const char *out, const cinfer_test_model_options *o, cinfer_error *err) {
    ci_test_model_options t;
    if (to_internal(o, out, &t, err) != CINFER_OK) return CINFER_ERR_INVALID;
    return ci_test_model_write(&t, err);
}

char *cinfer_test_model_tensor_list(const cinfer_test_model_options *o, cinfer_error *err) {
    ci_test_model_options t;
    if (cinfer_test_model_check(o, err) != CINFER_OK || to_internal(o, "-", &t, err) != CINFER_OK) return NULL;
    return ci_test_model_list_text(&t);
}
