/*
 * loader.c — see loader.h. The two formats differ only in where a tensor is
 * found and how its type and shape are spelled; both go through one
 * `tensor_ref` description and the same checks.
 */
#include "model/loader.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tensor_ref {
    const void *data;
    ci_wtype type;
    bool type_known;
    const char *type_name;
    uint32_t n_dims;
    uint64_t rows;   /* PyTorch shape[0] (outer) for 2-D; 1 for 1-D */
    uint64_t cols;   /* innermost dimension */
    uint64_t mats;   /* 3-D GGUF stacks (experts): outermost dimension; else 1 */
} tensor_ref;

static bool st_lookup(const qwen3_checkpoint *ck, const char *name, tensor_ref *r) {
    const ci_st_tensor *t = ci_st_model_find(ck->safetensors, name);
    if (!t) return false;
    *r = (tensor_ref){.data = t->data, .n_dims = t->n_dims, .type_name = ci_st_dtype_name(t->dtype)};
    switch (t->dtype) {
    case CI_ST_F32: r->type = CI_WT_F32, r->type_known = true; break;
    case CI_ST_F16: r->type = CI_WT_F16, r->type_known = true; break;
    case CI_ST_BF16: r->type = CI_WT_BF16, r->type_known = true; break;
    default: break;
    }
    r->mats = 1;
    if (t->n_dims == 1) r->rows = 1, r->cols = t->shape[0];
    else if (t->n_dims == 2) r->rows = t->shape[0], r->cols = t->shape[1];
    return true;
}

static bool gguf_lookup(const qwen3_checkpoint *ck, const char *name, tensor_ref *r) {
    const ci_gguf_tensor *t = ci_gguf_find_tensor(ck->gguf, name);
    if (!t) return false;
    const ci_ggml_type_info *info = ci_ggml_type_get(t->type);
    *r = (tensor_ref){.data = t->data, .n_dims = t->n_dims, .type_name = info ? info->name : "unknown"};
    switch (t->type) {
    case CI_GGML_F32: r->type = CI_WT_F32, r->type_known = true; break;
    case CI_GGML_F16: r->type = CI_WT_F16, r->type_known = true; break;
    case CI_GGML_BF16: r->type = CI_WT_BF16, r->type_known = true; break;
    case CI_GGML_Q8_0: r->type = CI_WT_Q8_0, r->type_known = true; break;
    case CI_GGML_Q4_0: r->type = CI_WT_Q4_0, r->type_known = true; break;
    case CI_GGML_Q4_K: r->type = CI_WT_Q4_K, r->type_known = true; break;
    case CI_GGML_Q6_K: r->type = CI_WT_Q6_K, r->type_known = true; break;
    default: break;
    }
    /* GGUF lists dims innermost first: ne = {in, out}. */
    r->mats = 1;
    if (t->n_dims == 1) r->rows = 1, r->cols = t->ne[0];
    else if (t->n_dims == 2) r->rows = t->ne[1], r->cols = t->ne[0];
    else if (t->n_dims == 3) r->rows = t->ne[1], r->cols = t->ne[0], r->mats = t->ne[2];
    return true;
}

static bool lookup(const qwen3_checkpoint *ck, const char *name, tensor_ref *r) {
    return ck->is_gguf ? gguf_lookup(ck, name, r) : st_lookup(ck, name, r);
}

static const char *file_name(const qwen3_checkpoint *ck) { return ck->path; }

static int load_matrix(const qwen3_checkpoint *ck, const char *name, uint64_t rows, uint64_t cols, ci_weight *w,
                       cinfer_error *err) {
    tensor_ref r;
    if (!lookup(ck, name, &r)) return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s is missing", file_name(ck), name);
    if (!r.type_known)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has type %s, which cinfer does not compute with",
                        file_name(ck), name, r.type_name);
    if (r.n_dims != 2 || r.rows != rows || r.cols != cols)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has shape [%llu, %llu] (%u dims); the config implies [%llu, %llu]",
                        file_name(ck), name, (unsigned long long)r.rows, (unsigned long long)r.cols, r.n_dims,
                        (unsigned long long)rows, (unsigned long long)cols);
    if (ci_row_bytes(r.type, (size_t)cols) == 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s: %llu columns are not a multiple of %d, the %s block size",
                        file_name(ck), name, (unsigned long long)cols, ci_wtype_block_size(r.type), r.type_name);
    *w = (ci_weight){.data = r.data, .type = r.type, .rows = (int)rows, .cols = (int)cols};
    return CINFER_OK;
}

/* Experts of one projection: E HF tensors (name_fmt takes the layer and the
 * expert), or one GGUF stack [E][rows][cols] whose expert e is a row slice. */
static int load_experts(const qwen3_checkpoint *ck, const char *name_fmt, int layer, uint64_t E, uint64_t rows,
                        uint64_t cols, ci_weight *w, cinfer_error *err) {
    char name[128];
    if (!ck->is_gguf) {
        for (uint64_t e = 0; e < E; e++) {
            snprintf(name, sizeof name, name_fmt, layer, (int)e);
            int rc = load_matrix(ck, name, rows, cols, &w[e], err);
            if (rc) return rc;
        }
        return CINFER_OK;
    }
    snprintf(name, sizeof name, name_fmt, layer);
    tensor_ref r;
    if (!lookup(ck, name, &r)) return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s is missing", file_name(ck), name);
    if (!r.type_known)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has type %s, which cinfer does not compute with",
                        file_name(ck), name, r.type_name);
    if (r.n_dims != 3 || r.mats != E || r.rows != rows || r.cols != cols)
        return ci_error(err, CINFER_ERR_FORMAT,
                        "%s: tensor %s has shape [%llu, %llu, %llu] (%u dims); the config implies %llu experts of [%llu, %llu]",
                        file_name(ck), name, (unsigned long long)r.mats, (unsigned long long)r.rows,
                        (unsigned long long)r.cols, r.n_dims, (unsigned long long)E, (unsigned long long)rows,
                        (unsigned long long)cols);
    size_t row_bytes = ci_row_bytes(r.type, (size_t)cols);
    if (row_bytes == 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s: %llu columns are not a multiple of %d, the %s block size",
                        file_name(ck), name, (unsigned long long)cols, ci_wtype_block_size(r.type), r.type_name);
    for (uint64_t e = 0; e < E; e++)
        w[e] = (ci_weight){.data = (const uint8_t *)r.data + (size_t)e * (size_t)rows * row_bytes, .type = r.type,
                           .rows = (int)rows, .cols = (int)cols};
    return CINFER_OK;
}

static int load_vector(const qwen3_checkpoint *ck, const char *name, uint64_t n, float *dst, cinfer_error *err) {
    tensor_ref r;
    if (!lookup(ck, name, &r)) return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s is missing", file_name(ck), name);
    if (r.n_dims != 1 || r.cols != n)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has %u dims of innermost size %llu; expected a vector of %llu",
                        file_name(ck), name, r.n_dims, (unsigned long long)r.cols, (unsigned long long)n);
    if (!r.type_known || ci_dequantize_row(dst, r.data, r.type, (size_t)n) != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s has type %s; norms must be F32, F16 or BF16",
                        file_name(ck), name, r.type_name);
    return CINFER_OK;
}

/* Tensor names of the two layouts. */
typedef struct names {
    const char *embed, *output, *output_norm;
    const char *layer_fmt[11]; /* attn_norm, q_norm, k_norm, ffn_norm, q, k, v, o, gate, up, down */
} names;

static const names HF_NAMES = {
    "model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
    {"model.layers.%d.input_layernorm.weight", "model.layers.%d.self_attn.q_norm.weight",
     "model.layers.%d.self_attn.k_norm.weight", "model.layers.%d.post_attention_layernorm.weight",
     "model.layers.%d.self_attn.q_proj.weight", "model.layers.%d.self_attn.k_proj.weight",
     "model.layers.%d.self_attn.v_proj.weight", "model.layers.%d.self_attn.o_proj.weight",
     "model.layers.%d.mlp.gate_proj.weight", "model.layers.%d.mlp.up_proj.weight",
     "model.layers.%d.mlp.down_proj.weight"}};

/* Sparse layers: router, then the experts' gate, up, down (HF: per expert). */
static const char *const HF_MOE_NAMES[4] = {
    "model.layers.%d.mlp.gate.weight", "model.layers.%d.mlp.experts.%d.gate_proj.weight",
    "model.layers.%d.mlp.experts.%d.up_proj.weight", "model.layers.%d.mlp.experts.%d.down_proj.weight"};
static const char *const GGUF_MOE_NAMES[4] = {"blk.%d.ffn_gate_inp.weight", "blk.%d.ffn_gate_exps.weight",
                                               "blk.%d.ffn_up_exps.weight", "blk.%d.ffn_down_exps.weight"};

static const names GGUF_NAMES = {
    "token_embd.weight", "output.weight", "output_norm.weight",
    {"blk.%d.attn_norm.weight", "blk.%d.attn_q_norm.weight", "blk.%d.attn_k_norm.weight", "blk.%d.ffn_norm.weight",
     "blk.%d.attn_q.weight", "blk.%d.attn_k.weight", "blk.%d.attn_v.weight", "blk.%d.attn_output.weight",
     "blk.%d.ffn_gate.weight", "blk.%d.ffn_up.weight", "blk.%d.ffn_down.weight"}};

static int hparams_from_config(const ci_model_config *c, const char *name, qwen3_hparams *hp, cinfer_error *err) {
    bool moe_type = !strcmp(c->model_type, "qwen3_moe") || !strcmp(c->model_type, "qwen3moe");
    if (strcmp(c->model_type, "qwen3") != 0 && !moe_type)
        return ci_error(err, CINFER_ERR_FORMAT,
                        "%s: model_type \"%s\" is not supported (cinfer runs Qwen3: \"qwen3\", \"qwen3_moe\")", name,
                        c->model_type);
    if (!moe_type && c->num_experts)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: experts in a dense \"%s\" config", name, c->model_type);
    if (c->attention_bias)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: attention_bias=true is not a Qwen3 dense layout", name);
    if (strcmp(c->rope_type, "default") != 0 && c->rope_type[0])
        return ci_error(err, CINFER_ERR_FORMAT, "%s: rope scaling \"%s\" is not supported yet", name, c->rope_type);
    if (c->head_dim % 2 != 0 || c->head_dim > CI_MAX_HEAD_DIM)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: head_dim %u must be even and at most %d", name, c->head_dim,
                        CI_MAX_HEAD_DIM);
    *hp = (qwen3_hparams){
        .n_layers = (int)c->num_hidden_layers,
        .hidden = (int)c->hidden_size,
        .intermediate = (int)c->intermediate_size,
        .n_heads = (int)c->num_attention_heads,
        .n_kv_heads = (int)c->num_key_value_heads,
        .head_dim = (int)c->head_dim,
        .vocab = (int)c->vocab_size,
        .rms_eps = (float)c->rms_norm_eps,
        .rope_theta = c->rope_theta,
        .max_positions = (int)c->max_position_embeddings,
        .n_experts = (int)c->num_experts,
        .n_experts_used = (int)c->num_experts_per_tok,
        .expert_intermediate = (int)c->moe_intermediate_size,
        .norm_topk_prob = c->norm_topk_prob,
    };
    return CINFER_OK;
}

static int open_files(qwen3_checkpoint *ck, const char *path, cinfer_error *err) {
    if (!ci_is_directory(path) && !ci_file_exists(path))
        return ci_error(err, CINFER_ERR_IO, "%s: no such model folder or file", path);
    size_t n = strlen(path);
    ck->is_gguf = n >= 5 && strcmp(path + n - 5, ".gguf") == 0;
    if (ck->is_gguf) {
        if (!(ck->gguf = ci_gguf_open(path, err))) return err ? err->code : CINFER_ERR_FORMAT;
        return ci_model_config_from_gguf(ck->gguf, &ck->config, err);
    }
    /* A folder, or a .safetensors / index file whose folder holds config.json. */
    char *dir = ci_path_folder(path);
    int rc = ci_model_config_load(dir, &ck->config, err);
    if (rc == CINFER_OK) {
        char *gen_path = ci_path_join(dir, "generation_config.json");
        if (ci_file_exists(gen_path)) {
            rc = ci_generation_config_load(gen_path, &ck->generation, err);
            ck->has_generation_config = rc == CINFER_OK;
        }
        free(gen_path);
    }
    if (rc == CINFER_OK && !(ck->safetensors = ci_st_model_open(path, err))) rc = err ? err->code : CINFER_ERR_FORMAT;
    free(dir);
    return rc;
}

/* Repacks the matrices for the selected kernels where they have a packed
 * form (ci_pack_weights: Q8_0 on AVX512-VNNI, BF16 on AVX-512; CINFER_PACK=0
 * turns it off). q/k/v and gate/up become one product each. Q8_0 results are
 * bitwise the scalar reference's whatever the batch (the stored-layout SIMD
 * kernels differ from it by fp32 summation order); packed BF16 rounds x to bf16
 * as AMX does (kernels.h). A refused pack just keeps the stored layout. */
static void pack_weights(qwen3_model *m) {
    for (int l = 0; l < m->hp.n_layers; l++) {
        qwen3_layer *L = &m->w.layers[l];
        if (L->wq.type == L->wk.type && L->wk.type == L->wv.type) {
            const void *w[3] = {L->wq.data, L->wk.data, L->wv.data};
            int rows[3] = {L->wq.rows, L->wk.rows, L->wv.rows};
            L->p_qkv = ci_pack_weights(3, w, rows, L->wq.type, L->wq.cols);
        }
        if (!L->moe && L->w_gate.type == L->w_up.type) {
            const void *w[2] = {L->w_gate.data, L->w_up.data};
            int rows[2] = {L->w_gate.rows, L->w_up.rows};
            L->p_gate_up = ci_pack_weights(2, w, rows, L->w_gate.type, L->w_gate.cols);
        }
        if (L->moe) {
            L->p_o = ci_pack_weights(1, &L->wo.data, &L->wo.rows, L->wo.type, L->wo.cols);
            continue; /* experts stay in the mapped file: no second resident copy */
        }
        L->p_o = ci_pack_weights(1, &L->wo.data, &L->wo.rows, L->wo.type, L->wo.cols);
        L->p_down = ci_pack_weights(1, &L->w_down.data, &L->w_down.rows, L->w_down.type, L->w_down.cols);
    }
    m->w.p_output = ci_pack_weights(1, &m->w.output.data, &m->w.output.rows, m->w.output.type, m->w.output.cols);
}

int qwen3_checkpoint_open(const char *path, qwen3_checkpoint *ck, ci_load_progress progress, void *user,
                          cinfer_error *err) {
    *ck = (qwen3_checkpoint){0};
    ck->path = ci_strdup(path);
    int rc = open_files(ck, path, err);
    qwen3_hparams *hp = &ck->model.hp;
    if (rc == CINFER_OK) rc = hparams_from_config(&ck->config, path, hp, err);
    if (rc != CINFER_OK) {
        qwen3_checkpoint_close(ck);
        return rc;
    }
    const names *nm = ck->is_gguf ? &GGUF_NAMES : &HF_NAMES;
    uint64_t H = (uint64_t)hp->hidden, I = (uint64_t)hp->intermediate, d = (uint64_t)hp->head_dim;
    uint64_t qdim = (uint64_t)hp->n_heads * d, kvdim = (uint64_t)hp->n_kv_heads * d;
    size_t per_layer_norms = 2 * (size_t)H + 2 * (size_t)d;
    ck->norms = ci_malloc(((size_t)hp->n_layers * per_layer_norms + (size_t)H) * sizeof(float));
    ck->model.w.layers = ci_calloc((size_t)hp->n_layers, sizeof(qwen3_layer));
    if (hp->n_experts > 0) ck->experts = ci_calloc((size_t)hp->n_layers * 3 * (size_t)hp->n_experts, sizeof(ci_weight));
    qwen3_weights *w = &ck->model.w;
    size_t total = (size_t)hp->n_layers + 2, done = 0;

    rc = load_matrix(ck, nm->embed, (uint64_t)hp->vocab, H, &w->tok_embd, err);
    float *norm_dst = ck->norms;
    if (rc == CINFER_OK) {
        rc = load_vector(ck, nm->output_norm, H, norm_dst, err);
        w->output_norm = norm_dst;
        norm_dst += H;
    }
    if (rc == CINFER_OK) {
        tensor_ref r;
        if (lookup(ck, nm->output, &r)) rc = load_matrix(ck, nm->output, (uint64_t)hp->vocab, H, &w->output, err);
        else if (ck->config.tie_word_embeddings || ck->is_gguf) w->output = w->tok_embd; /* tied, lm_head not stored */
        else rc = ci_error(err, CINFER_ERR_FORMAT, "%s: tensor %s is missing and tie_word_embeddings is false", path, nm->output);
    }
    if (progress) progress(user, ++done, total);
    for (int l = 0; l < hp->n_layers && rc == CINFER_OK; l++) {
        qwen3_layer *L = &w->layers[l];
        char name[11][96];
        for (int k = 0; k < 11; k++) snprintf(name[k], sizeof name[k], nm->layer_fmt[k], l);
        float *attn_norm = norm_dst, *q_norm = attn_norm + H, *k_norm = q_norm + d, *ffn_norm = k_norm + d;
        norm_dst = ffn_norm + H;
        if ((rc = load_vector(ck, name[0], H, attn_norm, err)) || (rc = load_vector(ck, name[1], d, q_norm, err)) ||
            (rc = load_vector(ck, name[2], d, k_norm, err)) || (rc = load_vector(ck, name[3], H, ffn_norm, err)) ||
            (rc = load_matrix(ck, name[4], qdim, H, &L->wq, err)) || (rc = load_matrix(ck, name[5], kvdim, H, &L->wk, err)) ||
            (rc = load_matrix(ck, name[6], kvdim, H, &L->wv, err)) || (rc = load_matrix(ck, name[7], H, qdim, &L->wo, err)))
            break;
        L->moe = ci_model_config_layer_is_moe(&ck->config, (uint32_t)l);
        if (L->moe) {
            const char *const *mn = ck->is_gguf ? GGUF_MOE_NAMES : HF_MOE_NAMES;
            uint64_t E = (uint64_t)hp->n_experts, Ie = (uint64_t)hp->expert_intermediate;
            char router[96];
            snprintf(router, sizeof router, mn[0], l);
            L->exp_gate = ck->experts + (size_t)l * 3 * E;
            L->exp_up = L->exp_gate + E;
            L->exp_down = L->exp_up + E;
            if ((rc = load_matrix(ck, router, E, H, &L->router, err)) ||
                (rc = load_experts(ck, mn[1], l, E, Ie, H, L->exp_gate, err)) ||
                (rc = load_experts(ck, mn[2], l, E, Ie, H, L->exp_up, err)) ||
                (rc = load_experts(ck, mn[3], l, E, H, Ie, L->exp_down, err)))
                break;
        } else if ((rc = load_matrix(ck, name[8], I, H, &L->w_gate, err)) ||
                   (rc = load_matrix(ck, name[9], I, H, &L->w_up, err)) ||
                   (rc = load_matrix(ck, name[10], H, I, &L->w_down, err)))
            break;
        L->attn_norm = attn_norm;
        L->q_norm = q_norm;
        L->k_norm = k_norm;
        L->ffn_norm = ffn_norm;
        if (progress) progress(user, ++done, total);
    }
    if (rc == CINFER_OK) pack_weights(&ck->model);
    if (rc == CINFER_OK && progress) progress(user, total, total);
    if (rc != CINFER_OK) qwen3_checkpoint_close(ck);
    return rc;
}

void qwen3_checkpoint_close(qwen3_checkpoint *ck) {
    qwen3_weights *w = &ck->model.w;
    if (w->layers)
        for (int l = 0; l < ck->model.hp.n_layers; l++) {
            qwen3_layer *L = &w->layers[l];
            ci_packed_free(L->p_qkv);
            ci_packed_free(L->p_o);
            ci_packed_free(L->p_gate_up);
            ci_packed_free(L->p_down);
        }
    ci_packed_free(w->p_output);
    if (ck->safetensors) ci_st_model_close(ck->safetensors);
    if (ck->gguf) ci_gguf_close(ck->gguf);
    free(ck->norms);
    free(ck->model.w.layers);
    free(ck->experts);
    free(ck->path);
    *ck = (qwen3_checkpoint){0};
}
