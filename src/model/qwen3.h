/*
 * qwen3.h — the Qwen3 transformer (dense, and mixture-of-experts as
 * Qwen3MoeForCausalLM): hyper-parameters, weights and one batched forward
 * pass over a paged KV cache.
 *
 * Shaped after llama2.c's run.c (Config / Weights / State, all scratch memory
 * allocated up front) but batched from the start: one call takes tokens from
 * several sequences at different positions — prefill chunks and single decode
 * tokens mixed — because the scheduler (src/engine) builds exactly such
 * batches. Nothing here knows about files: src/model/loader.c fills the
 * weights from a safetensors folder or a GGUF file.
 */
#ifndef CINFER_QWEN3_H
#define CINFER_QWEN3_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/kv_layout.h"

/* Largest head_dim the attention scratch supports (Qwen3: 128). */
#define CI_MAX_HEAD_DIM 512

typedef struct qwen3_hparams {
    int n_layers;
    int hidden;         /* H */
    int intermediate;   /* I */
    int n_heads;        /* query heads */
    int n_kv_heads;     /* key/value heads (GQA) */
    int head_dim;       /* d; n_heads*d may differ from H (0.6B, 4B) */
    int vocab;          /* rows of the embedding / lm_head (151936 for Qwen3) */
    float rms_eps;
    double rope_theta;
    int max_positions;  /* max_position_embeddings */
    /* Mixture of experts; n_experts 0 for dense models. Which layers are
     * sparse is per layer (qwen3_layer.moe). */
    int n_experts;          /* E */
    int n_experts_used;     /* k, top-k experts per token */
    int expert_intermediate;/* I_e, moe_intermediate_size */
    bool norm_topk_prob;    /* renormalise the k router weights to sum 1 */
} qwen3_hparams;

/* A 2-D weight as stored: rows = output features, cols = input features,
 * row-major, each row ci_row_bytes(type, cols) bytes. Usually points into a
 * memory-mapped file. */
typedef struct ci_weight {
    const void *data;
    ci_wtype type;
    int rows;
    int cols;
} ci_weight;

typedef struct qwen3_layer {
    const float *attn_norm;   /* [H] */
    const float *q_norm;      /* [d] per-head RMSNorm of queries */
    const float *k_norm;      /* [d] */
    const float *ffn_norm;    /* [H] */
    ci_weight wq;             /* [n_heads*d, H] */
    ci_weight wk;             /* [n_kv*d, H] */
    ci_weight wv;             /* [n_kv*d, H] */
    ci_weight wo;             /* [H, n_heads*d] */
    ci_weight w_gate;         /* [I, H]   (dense layers) */
    ci_weight w_up;           /* [I, H] */
    ci_weight w_down;         /* [H, I] */
    /* Sparse layers (moe true): the router and each expert's matrices. An
     * expert is a view: a slice of a stacked GGUF tensor or its own HF tensor.
     * The arrays are owned by the loader. */
    bool moe;
    ci_weight router;         /* [E, H] */
    ci_weight *exp_gate;      /* [E] of [I_e, H] */
    ci_weight *exp_up;        /* [E] of [I_e, H] */
    ci_weight *exp_down;      /* [E] of [H, I_e] */
    /* Copies repacked at load for the selected kernels (ci_pack_weights),
     * or NULL: then the ci_weights above are used. Results are bitwise the
     * same either way. Owned by whoever filled them (the loader). */
    ci_packed *p_qkv;         /* wq | wk | wv as one product */
    ci_packed *p_o;
    ci_packed *p_gate_up;     /* w_gate | w_up as one product */
    ci_packed *p_down;
} qwen3_layer;

typedef struct qwen3_weights {
    ci_weight tok_embd;       /* [V, H] */
    ci_weight output;         /* [V, H]; equals tok_embd when tied and not stored */
    const float *output_norm; /* [H] */
    qwen3_layer *layers;      /* [n_layers] */
    ci_packed *p_output;      /* repacked output, or NULL (see qwen3_layer) */
} qwen3_weights;

/* One forward call's input. Token i belongs to sequence seq[i] (an index
 * into seq_blocks), sits at position pos[i], and its K/V are written into the
 * cache slot for that position. Tokens of one sequence must appear in
 * increasing position order; every earlier position of the sequence must
 * already be in the cache or earlier in this batch. */
typedef struct qwen3_batch {
    int n_tokens;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const bool *want_logits;      /* NULL: logits for every token */
    int n_seqs;
    const ci_block_table *seq_blocks; /* [n_seqs] */
} qwen3_batch;

/* A run of consecutive positions of one sequence, consecutive in the batch:
 * the query tokens one attention call takes (for each KV head). */
typedef struct qwen3_attn_chunk {
    int32_t first;   /* batch index of the first token */
    int32_t n_tok;
    int64_t cost;    /* ~ query·position pairs, for ordering heaviest first */
} qwen3_attn_chunk;

/* Scratch memory for forward passes of up to max_batch tokens over contexts
 * of up to max_context positions. */
typedef struct qwen3_state {
    int max_batch;
    int max_context;
    int n_threads;   /* threads its forward passes use at most (per-thread scratch) */
    float *x;        /* [B, H] residual stream */
    float *xb;       /* [B, H] normed input */
    float *q;        /* [B, n_heads*d] */
    float *k;        /* [B, n_kv*d] */
    float *v;        /* [B, n_kv*d] */
    float *attn_out; /* [B, n_heads*d] */
    float *gate;     /* [B, I] */
    float *up;       /* [B, I] */
    float *attn_scratch;         /* [threads][attn_scratch_floats] (ci_attention) */
    size_t attn_scratch_floats;  /* per thread: one token at max_context, or a
                                  * chunk of ~64 query rows at shorter contexts */
    qwen3_attn_chunk *attn_chunks; /* [max_batch] this batch's chunks, heaviest first */
    int attn_n_chunks;
    float *rope_cos; /* [B, d/2] */
    float *rope_sin; /* [B, d/2] */
    int32_t *logit_rows; /* [B] batch index of each logits row */
    /* Mixture of experts (NULL for dense models); S = B * k routed slots. */
    float *router_logits;   /* [B, E] */
    int32_t *moe_ids;       /* [S] token t's experts in rank order at t*k.. */
    float *moe_weights;     /* [S] their router weights */
    int32_t *moe_offset;    /* [E + 1] first grouped row of each expert */
    int32_t *moe_slot_row;  /* [S] grouped row of slot t*k + r */
    int32_t *moe_row_token; /* [S] token of each grouped row */
    float *moe_x;           /* [S, H] inputs grouped by expert, then their outputs */
    float *moe_gate;        /* [S, I_e] */
    float *moe_up;          /* [S, I_e] */
} qwen3_state;

typedef struct qwen3_model {
    qwen3_hparams hp;
    qwen3_weights w;
} qwen3_model;

/* Scratch for batches of up to max_batch tokens, contexts of up to
 * max_context positions and forward passes on up to n_threads threads
 * (<= 0: ci_threadpool_threads()); the forward pass caps its parallel loops
 * at that count (ci_threadpool_limit), whatever size the shared pool has. */
int qwen3_state_init(qwen3_state *s, const qwen3_hparams *hp, int max_batch, int max_context, int n_threads,
                     cinfer_error *err);
void qwen3_state_free(qwen3_state *s);

/* Runs the batch through the model. Writes logits (vocab floats per row) for
 * the tokens with want_logits, in batch order, into `logits`, and returns the
 * number of rows written, or < 0 on error (bad batch). */
int qwen3_forward(const qwen3_model *m, qwen3_state *s, ci_kv_pool *kv, const qwen3_batch *b,
                  float *logits, cinfer_error *err);

/* The router of one token, as transformers' Qwen3MoeSparseMoeBlock and
 * llama.cpp's build_moe_ffn compute it: p = softmax(logits) in fp32 (exp
 * sums in double, then one fp32 scale, as ggml_soft_max), the k largest p in
 * descending order — an exact tie goes to the lower expert id — and, when
 * norm, each divided by their sum. Writes ids[k] and weights[k]. */
void qwen3_moe_route(const float *logits, int n_experts, int k, bool norm, int32_t *ids, float *weights);

/* The attention step of one layer alone (tests; only m->hp is read): stores
 * the batch's K/V rows from s->k and s->v into the cache, then writes
 * s->attn_out from s->q. Returns CINFER_OK or an error (bad batch). */
int qwen3_attention_layer(const qwen3_model *m, qwen3_state *s, ci_kv_pool *kv, const qwen3_batch *b, int layer,
                          cinfer_error *err);

#endif
