/*
 * quantize.c — see quantize.h. Three steps: list the input's tensors with
 * checked shapes and types (HF: the tensors config.json implies, in
 * llama.cpp's GGUF order and names; GGUF: the file's own list), choose each
 * output type, then stream: metadata, tensor infos, and each tensor in
 * chunks of rows that the thread pool converts to f32 and quantizes, so memory
 * stays at a few MB whatever the model size.
 */
#include "model/quantize.h"

#include "format/gguf.h"
#include "format/model_config.h"
#include "format/numeric.h"
#include "format/safetensors.h"
#include "format/test_model.h"
#include "kernels/threadpool.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (8u << 20) /* output bytes converted per step */

static const char *const SCHEME_NAMES[CI_QS_COUNT] = {"q8_0", "q4_0", "q4_k", "q6_k", "q4_k_m"};

bool ci_quant_scheme_parse(const char *name, ci_quant_scheme *out) {
    for (int s = 0; s < CI_QS_COUNT; s++) {
        const char *a = SCHEME_NAMES[s], *b = name;
        while (*a && *b && tolower((unsigned char)*b) == *a) a++, b++;
        if (!*a && !*b) {
            *out = (ci_quant_scheme)s;
            return true;
        }
    }
    return false;
}

const char *ci_quant_scheme_name(ci_quant_scheme s) { return (unsigned)s < CI_QS_COUNT ? SCHEME_NAMES[s] : "?"; }

static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

ci_wtype ci_quant_pick_type(ci_quant_scheme s, const char *name, uint64_t cols, bool has_output, int i_attn_v,
                            int n_attn_v, int i_ffn_down, int n_ffn_down, int n_experts, bool *fallback) {
    static const ci_wtype BASE[CI_QS_COUNT] = {CI_WT_Q8_0, CI_WT_Q4_0, CI_WT_Q4_K, CI_WT_Q6_K, CI_WT_Q4_K};
    ci_wtype t = BASE[s];
    *fallback = false;
    bool k4 = s == CI_QS_Q4_K || s == CI_QS_Q4_K_M;
    if (n_experts == 8 && (strstr(name, "attn_v.weight") || strstr(name, "attn_k.weight"))) {
        t = CI_WT_Q8_0; /* llama.cpp's rule for 8-expert models */
    } else if (n_experts == 8 && k4 && strstr(name, "attn_output.weight")) {
        t = CI_WT_Q6_K; /* llama.cpp: Q5_K, which cinfer lacks: one step more bits */
        *fallback = true;
    } else if (!strcmp(name, "output.weight") || (!has_output && !strcmp(name, "token_embd.weight"))) {
        if (cols % (uint64_t)ci_wtype_block_size(t) != 0) t = CI_WT_Q8_0;
        else if (t != CI_WT_Q8_0) t = CI_WT_Q6_K;
    } else if (s == CI_QS_Q4_K_M && strstr(name, "attn_v.weight")) {
        if (use_more_bits(i_attn_v, n_attn_v)) t = CI_WT_Q6_K;
    } else if (s == CI_QS_Q4_K_M && strstr(name, "ffn_down")) {
        if (use_more_bits(i_ffn_down, n_ffn_down)) t = CI_WT_Q6_K;
    }
    if (cols % (uint64_t)ci_wtype_block_size(t) != 0) {
        *fallback = true; /* rows of 32 fit Q8_0, so the 8-expert Q8_0 choices never land here */
        if (t == CI_WT_Q4_K || t == CI_WT_Q6_K) t = CI_WT_Q8_0;
        if (cols % (uint64_t)ci_wtype_block_size(t) != 0) t = CI_WT_F16;
    }
    return t;
}

/* ------------------------------------------------------------- the plan */

typedef struct qtensor {
    char name[96];          /* GGUF name */
    const uint8_t *data;
    /* HF experts: a GGUF stack [n_parts][rows / n_parts][cols] read from
     * n_parts separate tensors (data unused); 0 otherwise */
    const uint8_t **parts;
    uint64_t n_parts;
    uint32_t n_dims;
    uint64_t ne[CI_GGUF_MAX_DIMS]; /* innermost first */
    uint64_t rows, cols;    /* cols = ne[0], rows = the product of the others */
    uint32_t in_ggml;       /* stored type (GGUF id) */
    size_t in_bytes;
    bool readable;          /* in_type can be converted to f32 */
    ci_wtype in_type;
    bool quantize;          /* a weight matrix: gets out_type */
    ci_wtype out_type;
    bool fallback;
} qtensor;

typedef struct plan {
    const char *in;
    bool is_gguf;
    ci_gguf_file *gguf;
    ci_st_model *st;
    ci_model_config config;
    char *dir;              /* HF: folder with config and tokenizer */
    qtensor *t;
    size_t n;
} plan;

static void plan_free(plan *p) {
    if (p->gguf) ci_gguf_close(p->gguf);
    if (p->st) ci_st_model_close(p->st);
    for (size_t i = 0; p->t && i < p->n; i++) free(p->t[i].parts);
    free(p->dir);
    free(p->t);
}

static uint32_t ggml_of(ci_wtype t) {
    switch (t) {
    case CI_WT_F32: return CI_GGML_F32;
    case CI_WT_F16: return CI_GGML_F16;
    case CI_WT_BF16: return CI_GGML_BF16;
    case CI_WT_Q8_0: return CI_GGML_Q8_0;
    case CI_WT_Q4_0: return CI_GGML_Q4_0;
    case CI_WT_Q4_K: return CI_GGML_Q4_K;
    case CI_WT_Q6_K: return CI_GGML_Q6_K;
    default: return CI_GGML_F32;
    }
}

static bool wtype_of_ggml(uint32_t g, ci_wtype *out) {
    for (int t = 0; t < CI_WT_COUNT; t++)
        if (ggml_of((ci_wtype)t) == g) {
            *out = (ci_wtype)t;
            return true;
        }
    return false;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int plan_gguf(plan *p, cinfer_error *err) {
    if (!(p->gguf = ci_gguf_open(p->in, err))) return err ? err->code : CINFER_ERR_FORMAT;
    int rc = ci_model_config_from_gguf(p->gguf, &p->config, err);
    if (rc) return rc;
    p->n = p->gguf->n_tensors;
    p->t = ci_calloc(p->n ? p->n : 1, sizeof *p->t);
    for (size_t i = 0; i < p->n; i++) {
        const ci_gguf_tensor *g = &p->gguf->tensors[i];
        qtensor *q = &p->t[i];
        if (strlen(g->name) >= sizeof q->name)
            return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor name '%.60s...' is too long", p->in, g->name);
        snprintf(q->name, sizeof q->name, "%s", g->name);
        q->data = g->data;
        q->n_dims = g->n_dims;
        memcpy(q->ne, g->ne, sizeof q->ne);
        q->cols = g->ne[0];
        q->rows = g->n_elements / (g->ne[0] ? g->ne[0] : 1);
        q->in_ggml = g->type;
        q->in_bytes = g->n_bytes;
        q->readable = wtype_of_ggml(g->type, &q->in_type);
        /* llama.cpp quantizes the tensors named *weight with 2+ dims, except the MoE router */
        q->quantize = g->n_dims >= 2 && ends_with(g->name, "weight") && !strstr(g->name, "ffn_gate_inp.weight");
        if (q->quantize && !q->readable) {
            const ci_ggml_type_info *ti = ci_ggml_type_get(g->type);
            return ci_error(err, CINFER_ERR_FORMAT,
                            "%s: tensor %s has type %s, which cinfer cannot read (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)",
                            p->in, g->name, ti ? ti->name : "?");
        }
    }
    return 0;
}

/* An HF tensor with a checked shape and a dtype cinfer reads. */
static int find_hf(const plan *p, const char *name, uint32_t n_dims, const uint64_t *shape, ci_wtype *type,
                   const ci_st_tensor **out, cinfer_error *err) {
    const ci_st_tensor *s = ci_st_model_find(p->st, name);
    if (!s)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s is missing%s", p->in, name,
                        strcmp(name, "lm_head.weight") ? "" : " and tie_word_embeddings is false");
    bool shape_ok = s->n_dims == n_dims && s->shape[0] == shape[0] && (n_dims == 1 || s->shape[1] == shape[1]);
    if (!shape_ok)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has %u dims [%llu, %llu]; config.json implies [%llu, %llu]",
                        s->file, name, s->n_dims, (unsigned long long)s->shape[0],
                        (unsigned long long)(s->n_dims > 1 ? s->shape[1] : 0), (unsigned long long)shape[0],
                        (unsigned long long)(n_dims > 1 ? shape[1] : 0));
    switch (s->dtype) {
    case CI_ST_F32: *type = CI_WT_F32; break;
    case CI_ST_F16: *type = CI_WT_F16; break;
    case CI_ST_BF16: *type = CI_WT_BF16; break;
    default:
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has dtype %s (F32, F16 or BF16 expected)", s->file, name,
                        ci_st_dtype_name(s->dtype));
    }
    *out = s;
    return 0;
}

static int plan_hf(plan *p, cinfer_error *err) {
    p->dir = ci_is_directory(p->in) ? ci_strdup(p->in) : ci_path_folder(p->in);
    int rc = ci_model_config_load(p->dir, &p->config, err);
    if (rc) return rc;
    const ci_model_config *c = &p->config;
    if (strcmp(c->model_type, "qwen3") != 0 && strcmp(c->model_type, "qwen3_moe") != 0)
        return ci_error(err, CINFER_ERR_FORMAT,
                        "%s: model_type \"%s\" is not supported (cinfer quantizes Qwen3: \"qwen3\", \"qwen3_moe\")", p->dir,
                        c->model_type);
    /* GGUF qwen3moe has no dense layers (llama.cpp makes every layer sparse) */
    for (uint32_t l = 0; c->num_experts && l < c->num_hidden_layers; l++)
        if (!ci_model_config_layer_is_moe(c, l))
            return ci_error(err, CINFER_ERR_FORMAT,
                            "%s: layer %u has a dense MLP (mlp_only_layers / decoder_sparse_step); GGUF qwen3moe cannot "
                            "hold it", p->dir, l);
    if (!(p->st = ci_st_model_open(p->in, err))) return err ? err->code : CINFER_ERR_FORMAT;
    /* The tensors and names llama.cpp's converter writes for this config. */
    ci_test_model_shape shape = {"", c->hidden_size, c->intermediate_size, c->num_hidden_layers,
                                 c->num_attention_heads, c->num_key_value_heads, c->head_dim,
                                 c->max_position_embeddings, c->rope_theta, c->vocab_size, c->num_experts,
                                 c->num_experts_per_tok, c->moe_intermediate_size};
    ci_test_model_options o = {.shape = &shape, .format = CI_TM_GGUF, .untied = !c->tie_word_embeddings};
    ci_test_model_tensor *list;
    p->n = ci_test_model_tensors(&o, &list);
    p->t = ci_calloc(p->n ? p->n : 1, sizeof *p->t);
    for (size_t i = 0; i < p->n && !rc; i++) {
        const ci_test_model_tensor *e = &list[i];
        qtensor *q = &p->t[i];
        snprintf(q->name, sizeof q->name, "%s", e->gguf_name);
        q->n_dims = e->n_dims;
        for (int d = 0; d < CI_GGUF_MAX_DIMS; d++) q->ne[d] = 1;
        for (uint32_t d = 0; d < e->n_dims; d++) q->ne[d] = e->shape[e->n_dims - 1 - d];
        q->cols = q->ne[0];
        q->rows = e->n_dims == 1 ? 1 : e->n_dims == 2 ? e->shape[0] : e->shape[0] * e->shape[1];
        /* the MoE router stays F32, as llama.cpp's converter and llama-quantize keep it */
        q->quantize = e->n_dims >= 2 && !strstr(e->gguf_name, "ffn_gate_inp.weight");
        q->readable = true;
        if (e->n_dims < 3) {
            uint64_t dims[2] = {e->shape[0], e->n_dims == 2 ? e->shape[1] : 0};
            const ci_st_tensor *st;
            rc = find_hf(p, e->hf_name, e->n_dims, dims, &q->in_type, &st, err);
            if (!rc) q->data = st->data, q->in_bytes = st->n_bytes;
            continue;
        }
        /* an expert stack: expert x is its own HF tensor */
        q->n_parts = e->shape[0];
        q->parts = ci_calloc((size_t)q->n_parts, sizeof *q->parts);
        for (uint64_t x = 0; x < q->n_parts && !rc; x++) {
            char name[96];
            snprintf(name, sizeof name, e->hf_name, (unsigned)x);
            const ci_st_tensor *st;
            ci_wtype t;
            rc = find_hf(p, name, 2, e->shape + 1, &t, &st, err);
            if (!rc && x > 0 && t != q->in_type)
                rc = ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has dtype %s, unlike expert 0's", st->file, name,
                              ci_st_dtype_name(st->dtype));
            if (rc) break;
            q->in_type = t;
            q->parts[x] = st->data;
            q->in_bytes += st->n_bytes;
        }
    }
    free(list);
    return rc;
}

static void choose_types(plan *p, ci_quant_scheme scheme) {
    bool has_output = false;
    int n_attn_v = 0, n_ffn_down = 0, i_attn_v = 0, i_ffn_down = 0;
    for (size_t i = 0; i < p->n; i++) {
        has_output |= !strcmp(p->t[i].name, "output.weight");
        n_attn_v += strstr(p->t[i].name, "attn_v.weight") != NULL;
        n_ffn_down += strstr(p->t[i].name, "ffn_down") != NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        qtensor *q = &p->t[i];
        if (!q->quantize) continue;
        q->out_type = ci_quant_pick_type(scheme, q->name, q->cols, has_output, i_attn_v, n_attn_v, i_ffn_down,
                                         n_ffn_down, (int)p->config.num_experts, &q->fallback);
        i_attn_v += strstr(q->name, "attn_v.weight") != NULL;
        i_ffn_down += strstr(q->name, "ffn_down") != NULL;
    }
}

/* ------------------------------------------------------------- metadata */

static void copy_gguf_metadata(ci_gguf_writer *w, const ci_gguf_file *f) {
    for (size_t i = 0; i < f->n_kv; i++) {
        const ci_gguf_kv *kv = &f->kv[i];
        const ci_gguf_str *k = &kv->key;
#define KEY_IS(s) (k->len == strlen(s) && !memcmp(k->ptr, s, k->len))
        if (KEY_IS("general.file_type") || KEY_IS("general.quantization_version") || KEY_IS("general.alignment") ||
            (k->len >= 6 && !memcmp(k->ptr, "split.", 6)))
            continue;
#undef KEY_IS
        ci_gguf_writer_kv_copy(w, kv);
    }
}

static uint32_t file_type_of(ci_quant_scheme s) {
    static const uint32_t FT[CI_QS_COUNT] = {CI_GGUF_FTYPE_MOSTLY_Q8_0, CI_GGUF_FTYPE_MOSTLY_Q4_0,
                                             CI_GGUF_FTYPE_MOSTLY_Q4_K_S, CI_GGUF_FTYPE_MOSTLY_Q6_K,
                                             CI_GGUF_FTYPE_MOSTLY_Q4_K_M};
    return FT[s];
}

static int write_metadata(ci_gguf_writer *w, const plan *p, ci_quant_scheme s, cinfer_error *err) {
    if (p->is_gguf) {
        copy_gguf_metadata(w, p->gguf);
        ci_gguf_writer_kv_u32(w, "general.file_type", file_type_of(s));
        ci_gguf_writer_kv_u32(w, "general.quantization_version", 2);
        return 0;
    }
    const ci_model_config *c = &p->config;
    const char *base = strrchr(p->dir, '/');
    base = base && base[1] ? base + 1 : p->dir;
    const ci_qwen3_gguf_meta meta = {
        .name = base, .layers = c->num_hidden_layers, .context_length = c->max_position_embeddings,
        .hidden = c->hidden_size, .intermediate = c->intermediate_size, .heads = c->num_attention_heads,
        .kv_heads = c->num_key_value_heads, .head_dim = c->head_dim, .vocab_size = c->vocab_size,
        .rope_theta = c->rope_theta, .rms_eps = c->rms_norm_eps, .file_type = file_type_of(s),
        .experts = c->num_experts, .experts_used = c->num_experts_per_tok, .expert_intermediate = c->moe_intermediate_size,
    };
    return ci_gguf_write_qwen3_metadata(w, &meta, p->dir, err);
}

/* ----------------------------------------------------------------- data */

typedef struct rows_job {
    const qtensor *q;
    ci_wtype out;
    size_t in_rb, out_rb;
    uint64_t r0;
    size_t nrows;
    uint8_t *dst;
    float *scratch;         /* cols floats per pool thread */
    int64_t *bad;           /* per pool thread: first row with a non-finite value it saw, -1 */
    int64_t bad_row;        /* first row with a non-finite value, -1 */
} rows_job;

static const uint8_t *row_data(const qtensor *q, uint64_t row, size_t row_bytes) {
    if (!q->parts) return q->data + row * row_bytes;
    uint64_t per = q->rows / q->n_parts;
    return q->parts[row / per] + (row % per) * row_bytes;
}

#define ROWS_PER_TASK 4 /* small tasks balance rows of uneven cost */

static void convert_task(void *ctx, int task, int thread) {
    rows_job *j = ctx;
    const size_t cols = (size_t)j->q->cols;
    float *f = j->scratch + (size_t)thread * cols;
    const size_t r0 = (size_t)task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK < j->nrows ? r0 + ROWS_PER_TASK : j->nrows;
    for (size_t r = r0; r < r1; r++) {
        const uint64_t row = j->r0 + r;
        ci_dequantize_row(f, row_data(j->q, row, j->in_rb), j->q->in_type, cols);
        bool finite = true;
        for (size_t k = 0; k < cols; k++) finite &= isfinite(f[k]) != 0;
        if (!finite && (j->bad[thread] < 0 || (int64_t)row < j->bad[thread])) j->bad[thread] = (int64_t)row;
        ci_quantize_row(j->dst + r * j->out_rb, j->out, f, cols);
    }
}

/* Rows are independent, so the output bytes do not depend on the split. */
static void convert_rows(rows_job *j) {
    const int threads = ci_threadpool_threads();
    j->scratch = ci_malloc((size_t)threads * (size_t)j->q->cols * sizeof(float));
    j->bad = ci_malloc((size_t)threads * sizeof(int64_t));
    for (int t = 0; t < threads; t++) j->bad[t] = -1;
    ci_parallel_for((int)((j->nrows + ROWS_PER_TASK - 1) / ROWS_PER_TASK), convert_task, j);
    j->bad_row = -1;
    for (int t = 0; t < threads; t++)
        if (j->bad[t] >= 0 && (j->bad_row < 0 || j->bad[t] < j->bad_row)) j->bad_row = j->bad[t];
    free(j->scratch);
    free(j->bad);
}

static int write_tensor(ci_gguf_writer *w, const plan *p, const qtensor *q, uint64_t *done, uint64_t total,
                        ci_quantize_progress progress, void *user, cinfer_error *err) {
    /* copied as stored: GGUF vectors, HF F32 vectors, and GGUF matrices that
     * already have their type (requantizing would only lose precision) */
    if ((!q->quantize && (p->is_gguf || q->in_type == CI_WT_F32) && !q->parts) ||
        (q->quantize && p->is_gguf && q->in_type == q->out_type)) {
        int rc = ci_gguf_writer_write(w, q->data, q->in_bytes, err);
        *done += q->in_bytes;
        if (progress) progress(user, q->name, q->in_type, *done, total);
        return rc;
    }
    const ci_wtype out = q->quantize ? q->out_type : CI_WT_F32;
    const size_t in_rb = ci_row_bytes(q->in_type, (size_t)q->cols), out_rb = ci_row_bytes(out, (size_t)q->cols);
    size_t per = CHUNK_BYTES / (out_rb ? out_rb : 1);
    if (per < 1) per = 1;
    uint8_t *buf = ci_malloc(per * out_rb);
    int rc = 0;
    for (uint64_t r0 = 0; r0 < q->rows && !rc; r0 += per) {
        rows_job j = {.q = q, .out = out, .in_rb = in_rb, .out_rb = out_rb, .r0 = r0, .dst = buf,
                      .nrows = (size_t)(q->rows - r0 < per ? q->rows - r0 : per)};
        convert_rows(&j);
        if (j.bad_row >= 0)
            rc = ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s row %lld holds a NaN or infinity", p->in, q->name,
                          (long long)j.bad_row);
        else rc = ci_gguf_writer_write(w, buf, j.nrows * out_rb, err);
        *done += j.nrows * out_rb;
        if (progress && !rc) progress(user, q->name, out, *done, total);
    }
    free(buf);
    return rc;
}

int ci_quantize_model(const char *in, const char *out, ci_quant_scheme scheme, ci_quantize_progress progress,
                      void *user, ci_quantize_stats *stats, cinfer_error *err) {
    if ((unsigned)scheme >= CI_QS_COUNT) return ci_error(err, CINFER_ERR_INVALID, "unknown quantization scheme");
    if (!ci_is_directory(in) && !ci_file_exists(in))
        return ci_error(err, CINFER_ERR_IO, "%s: no such model folder or file", in);
    plan p = {.in = in, .is_gguf = ends_with(in, ".gguf")};
    int rc = p.is_gguf ? plan_gguf(&p, err) : plan_hf(&p, err);
    if (rc) {
        plan_free(&p);
        return rc;
    }
    choose_types(&p, scheme);
    ci_quantize_stats st = {0};
    ci_gguf_writer *w = ci_gguf_writer_open(out, 0, err);
    if (!w) {
        plan_free(&p);
        return CINFER_ERR_IO;
    }
    rc = write_metadata(w, &p, scheme, err);
    uint64_t total = 0;
    for (size_t i = 0; i < p.n && !rc; i++) {
        const qtensor *q = &p.t[i];
        uint32_t type = q->quantize ? ggml_of(q->out_type) : p.is_gguf ? q->in_ggml : CI_GGML_F32;
        uint64_t bytes = 0;
        ci_ggml_tensor_bytes(type, q->n_dims, q->ne, &bytes);
        total += bytes;
        st.in_bytes += q->in_bytes;
        rc = ci_gguf_writer_add_tensor(w, q->name, type, q->n_dims, q->ne, err);
        st.n_tensors++;
        if (q->quantize) st.per_type[q->out_type]++;
        else st.n_copied++;
        st.n_fallback += q->fallback;
    }
    st.out_bytes = total;
    if (!rc) rc = ci_gguf_writer_begin_data(w, err);
    uint64_t done = 0;
    for (size_t i = 0; i < p.n && !rc; i++) rc = write_tensor(w, &p, &p.t[i], &done, total, progress, user, err);
    if (rc) ci_gguf_writer_abort(w);
    else rc = ci_gguf_writer_close(w, err);
    plan_free(&p);
    if (!rc && stats) *stats = st;
    return rc;
}
