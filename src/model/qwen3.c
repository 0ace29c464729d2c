/*
 * qwen3.c — the Qwen3 forward pass, batched over tokens of many sequences.
 *
 * Per layer (HF Qwen3DecoderLayer):
 *   h   = x + o_proj(attention(rope(q_norm(q_proj(rms(x)))), rope(k_norm(k_proj(rms(x)))), v_proj(rms(x))))
 *   out = h + down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h)))
 * Matrix products run over the whole batch at once (weights are read once per
 * call, which is what makes batched decode cheap); attention runs per
 * (token, head) over that token's own sequence in the paged cache.
 */
#include "model/qwen3.h"
#include "kernels/threadpool.h"
#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *alloc_floats(size_t n) {
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (!p) return NULL;
    memset(p, 0, n * sizeof(float));
    return p;
}

int qwen3_state_init(qwen3_state *s, const qwen3_hparams *hp, int max_batch, int max_context, cinfer_error *err) {
    *s = (qwen3_state){0};
    if (max_batch <= 0 || max_context <= 0)
        return ci_error(err, CINFER_ERR_INVALID, "state: max_batch and max_context must be positive");
    size_t B = (size_t)max_batch;
    size_t qdim = (size_t)hp->n_heads * (size_t)hp->head_dim;
    size_t kvdim = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    s->max_batch = max_batch;
    s->max_context = max_context;
    s->n_threads = ci_threadpool_threads();
    s->x = alloc_floats(B * (size_t)hp->hidden);
    s->xb = alloc_floats(B * (size_t)(hp->hidden > (int)qdim ? hp->hidden : (int)qdim));
    s->q = alloc_floats(B * qdim);
    s->k = alloc_floats(B * kvdim);
    s->v = alloc_floats(B * kvdim);
    s->attn_out = alloc_floats(B * qdim);
    s->gate = alloc_floats(B * (size_t)hp->intermediate);
    s->up = alloc_floats(B * (size_t)hp->intermediate);
    s->scores = alloc_floats((size_t)s->n_threads * (size_t)max_context);
    s->rope_cos = alloc_floats(B * (size_t)hp->head_dim / 2);
    s->rope_sin = alloc_floats(B * (size_t)hp->head_dim / 2);
    s->logit_rows = ci_malloc(B * sizeof(int32_t));
    if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->attn_out || !s->gate || !s->up || !s->scores ||
        !s->rope_cos || !s->rope_sin) {
        qwen3_state_free(s);
        return ci_error(err, CINFER_ERR_NOMEM, "state: cannot allocate scratch for batch %d, context %d", max_batch, max_context);
    }
    return CINFER_OK;
}

void qwen3_state_free(qwen3_state *s) {
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->attn_out);
    free(s->gate);
    free(s->up);
    free(s->scores);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->logit_rows);
    *s = (qwen3_state){0};
}

static void matmul(float *y, const float *x, int batch, const ci_weight *w) {
    ci_matmul(y, (size_t)w->rows, x, (size_t)w->cols, batch, w->data, w->type, w->rows, w->cols);
}

/* One product through the packed copy when there is one. */
static void matmul1(float *y, const float *x, int batch, const ci_weight *w, const ci_packed *p) {
    if (!p) {
        matmul(y, x, batch, w);
        return;
    }
    size_t ldy = (size_t)w->rows;
    ci_matmul_packed(p, &y, &ldy, x, (size_t)w->cols, batch);
}

/* ---- per-token work, parallel over tokens ---- */

typedef struct rows_job {
    const qwen3_model *m;
    qwen3_state *s;
    const qwen3_batch *b;
    const float *norm_weight;
    int layer;
} rows_job;

static void rmsnorm_rows_task(void *ctx, int i, int thread) {
    rows_job *j = ctx;
    int H = j->m->hp.hidden;
    ci_rmsnorm(j->s->xb + (size_t)i * H, j->s->x + (size_t)i * H, j->norm_weight, H, j->m->hp.rms_eps);
}

/* Per-head q_norm / k_norm, then RoPE at the token's position. */
static void qk_rope_store_task(void *ctx, int i, int thread) {
    rows_job *j = ctx;
    const qwen3_hparams *hp = &j->m->hp;
    const qwen3_layer *L = &j->m->w.layers[j->layer];
    qwen3_state *s = j->s;
    int d = hp->head_dim;
    const float *cosv = s->rope_cos + (size_t)i * (d / 2);
    const float *sinv = s->rope_sin + (size_t)i * (d / 2);
    float *q = s->q + (size_t)i * hp->n_heads * d;
    for (int h = 0; h < hp->n_heads; h++) {
        ci_rmsnorm(q + h * d, q + h * d, L->q_norm, d, hp->rms_eps);
        ci_rope_neox(q + h * d, d, cosv, sinv);
    }
    float *k = s->k + (size_t)i * hp->n_kv_heads * d;
    for (int h = 0; h < hp->n_kv_heads; h++) {
        ci_rmsnorm(k + h * d, k + h * d, L->k_norm, d, hp->rms_eps);
        ci_rope_neox(k + h * d, d, cosv, sinv);
    }
}

typedef struct attn_job {
    const qwen3_model *m;
    qwen3_state *s;
    const qwen3_batch *b;
    ci_kv_cache *kv;
    int layer;
} attn_job;

static void store_kv_task(void *ctx, int i, int thread) {
    attn_job *j = ctx;
    const qwen3_hparams *hp = &j->m->hp;
    ci_kv_cache *kv = j->kv;
    int d = hp->head_dim;
    const ci_block_table *bt = &j->b->seq_blocks[j->b->seq[i]];
    int pos = j->b->pos[i];
    int32_t block = bt->blocks[pos / kv->block_size];
    int slot = pos % kv->block_size;
    for (int h = 0; h < hp->n_kv_heads; h++) {
        const float *k = j->s->k + ((size_t)i * hp->n_kv_heads + h) * d;
        const float *v = j->s->v + ((size_t)i * hp->n_kv_heads + h) * d;
        uint8_t *kd = (uint8_t *)ci_kv_k_ptr(kv, j->layer, block, h) + (size_t)slot * d * kv->elem_size;
        uint8_t *vd = (uint8_t *)ci_kv_v_ptr(kv, j->layer, block, h) + (size_t)slot * d * kv->elem_size;
        if (kv->dtype == CI_KV_F32) {
            memcpy(kd, k, (size_t)d * sizeof(float));
            memcpy(vd, v, (size_t)d * sizeof(float));
        } else {
            ci_fp32_to_fp16_row((uint16_t *)kd, k, (size_t)d);
            ci_fp32_to_fp16_row((uint16_t *)vd, v, (size_t)d);
        }
    }
}

/* Causal attention of one query head of one token over positions 0..pos of
 * its sequence: softmax(q·K/sqrt(d)) · V, walking the block table. */
static void attention_task(void *ctx, int task, int thread) {
    attn_job *j = ctx;
    const qwen3_hparams *hp = &j->m->hp;
    ci_kv_cache *kv = j->kv;
    int d = hp->head_dim;
    int i = task / hp->n_heads;
    int h = task % hp->n_heads;
    int kvh = h / (hp->n_heads / hp->n_kv_heads);
    const ci_block_table *bt = &j->b->seq_blocks[j->b->seq[i]];
    int n_pos = j->b->pos[i] + 1;
    const float *q = j->s->q + ((size_t)i * hp->n_heads + h) * d;
    float *scores = j->s->scores + (size_t)thread * j->s->max_context;
    float scale = 1.0f / sqrtf((float)d);
    int bs = kv->block_size;
    /* the selected kernels, fetched once: ci_dot_f32_f16 & co. would do a
     * pthread_once + indirect call per position (same functions, same bits) */
    const ci_kernel_table *kt = ci_kernels_current();

    for (int p0 = 0, bi = 0; p0 < n_pos; p0 += bs, bi++) {
        int n = n_pos - p0 < bs ? n_pos - p0 : bs;
        const void *kb = ci_kv_k_ptr(kv, j->layer, bt->blocks[bi], kvh);
        for (int t = 0; t < n; t++) {
            float dot = kv->dtype == CI_KV_F32 ? kt->dot_f32(q, (const float *)kb + (size_t)t * d, d)
                                               : kt->dot_f32_f16(q, (const uint16_t *)kb + (size_t)t * d, d);
            scores[p0 + t] = dot * scale;
        }
    }
    kt->softmax(scores, n_pos);
    float *out = j->s->attn_out + ((size_t)i * hp->n_heads + h) * d;
    memset(out, 0, (size_t)d * sizeof(float));
    for (int p0 = 0, bi = 0; p0 < n_pos; p0 += bs, bi++) {
        int n = n_pos - p0 < bs ? n_pos - p0 : bs;
        const void *vb = ci_kv_v_ptr(kv, j->layer, bt->blocks[bi], kvh);
        for (int t = 0; t < n; t++) {
            if (kv->dtype == CI_KV_F32) kt->axpy_f32(out, scores[p0 + t], (const float *)vb + (size_t)t * d, d);
            else kt->axpy_f32_f16(out, scores[p0 + t], (const uint16_t *)vb + (size_t)t * d, d);
        }
    }
}

static void swiglu_task(void *ctx, int i, int thread) {
    rows_job *j = ctx;
    size_t I = (size_t)j->m->hp.intermediate;
    ci_silu_mul(j->s->gate + i * I, j->s->gate + i * I, j->s->up + i * I, (int)I);
}

static void residual_task(void *ctx, int i, int thread) {
    rows_job *j = ctx;
    size_t H = (size_t)j->m->hp.hidden;
    ci_add(j->s->x + i * H, j->s->xb + i * H, (int)H);
}

static int validate_batch(const qwen3_model *m, const qwen3_state *s, const ci_kv_cache *kv, const qwen3_batch *b,
                          cinfer_error *err) {
    if (b->n_tokens <= 0 || b->n_tokens > s->max_batch)
        return ci_error(err, CINFER_ERR_INVALID, "forward: batch of %d tokens (max %d)", b->n_tokens, s->max_batch);
    for (int i = 0; i < b->n_tokens; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= m->hp.vocab)
            return ci_error(err, CINFER_ERR_INVALID, "forward: token id %d out of range", b->tokens[i]);
        if (b->seq[i] < 0 || b->seq[i] >= b->n_seqs)
            return ci_error(err, CINFER_ERR_INVALID, "forward: sequence index %d out of range", b->seq[i]);
        int pos = b->pos[i];
        if (pos < 0 || pos >= s->max_context)
            return ci_error(err, CINFER_ERR_INVALID, "forward: position %d outside the context (%d)", pos, s->max_context);
        const ci_block_table *bt = &b->seq_blocks[b->seq[i]];
        if (pos / kv->block_size >= bt->n_blocks)
            return ci_error(err, CINFER_ERR_INVALID, "forward: position %d has no KV block", pos);
    }
    return CINFER_OK;
}

int qwen3_forward(const qwen3_model *m, qwen3_state *s, ci_kv_cache *kv, const qwen3_batch *b,
                  float *logits, cinfer_error *err) {
    if (validate_batch(m, s, kv, b, err) != CINFER_OK) return err ? err->code : CINFER_ERR_INVALID;
    if (ci_threadpool_threads() > s->n_threads) /* attention scratch is per thread */
        return ci_error(err, CINFER_ERR_INVALID, "forward: thread pool grew to %d threads after the state was sized for %d",
                        ci_threadpool_threads(), s->n_threads);
    const qwen3_hparams *hp = &m->hp;
    int B = b->n_tokens;
    size_t H = (size_t)hp->hidden;
    int d = hp->head_dim;

    for (int i = 0; i < B; i++) {
        const uint8_t *row = (const uint8_t *)m->w.tok_embd.data + (size_t)b->tokens[i] * ci_row_bytes(m->w.tok_embd.type, H);
        ci_dequantize_row(s->x + (size_t)i * H, row, m->w.tok_embd.type, H);
        ci_rope_cache(s->rope_cos + (size_t)i * (d / 2), s->rope_sin + (size_t)i * (d / 2), d, b->pos[i], hp->rope_theta);
    }

    rows_job rj = {.m = m, .s = s, .b = b};
    attn_job aj = {.m = m, .s = s, .b = b, .kv = kv};
    for (int l = 0; l < hp->n_layers; l++) {
        const qwen3_layer *L = &m->w.layers[l];
        rj.layer = aj.layer = l;

        rj.norm_weight = L->attn_norm;
        ci_parallel_for(B, rmsnorm_rows_task, &rj);
        if (L->p_qkv) {
            float *ys[3] = {s->q, s->k, s->v};
            size_t ldy[3] = {(size_t)L->wq.rows, (size_t)L->wk.rows, (size_t)L->wv.rows};
            ci_matmul_packed(L->p_qkv, ys, ldy, s->xb, H, B);
        } else {
            matmul(s->q, s->xb, B, &L->wq);
            matmul(s->k, s->xb, B, &L->wk);
            matmul(s->v, s->xb, B, &L->wv);
        }
        ci_parallel_for(B, qk_rope_store_task, &rj);
        ci_parallel_for(B, store_kv_task, &aj);
        ci_parallel_for(B * hp->n_heads, attention_task, &aj);
        matmul1(s->xb, s->attn_out, B, &L->wo, L->p_o);
        ci_parallel_for(B, residual_task, &rj);

        rj.norm_weight = L->ffn_norm;
        ci_parallel_for(B, rmsnorm_rows_task, &rj);
        if (L->p_gate_up) {
            float *ys[2] = {s->gate, s->up};
            size_t ldy[2] = {(size_t)L->w_gate.rows, (size_t)L->w_up.rows};
            ci_matmul_packed(L->p_gate_up, ys, ldy, s->xb, H, B);
        } else {
            matmul(s->gate, s->xb, B, &L->w_gate);
            matmul(s->up, s->xb, B, &L->w_up);
        }
        ci_parallel_for(B, swiglu_task, &rj);
        matmul1(s->xb, s->gate, B, &L->w_down, L->p_down);
        ci_parallel_for(B, residual_task, &rj);
    }

    /* Final norm and lm_head only for the rows that want logits. */
    int n_out = 0;
    for (int i = 0; i < B; i++) {
        if (b->want_logits && !b->want_logits[i]) continue;
        ci_rmsnorm(s->xb + (size_t)n_out * H, s->x + (size_t)i * H, m->w.output_norm, (int)H, hp->rms_eps);
        s->logit_rows[n_out++] = i;
    }
    if (n_out > 0) matmul1(logits, s->xb, n_out, &m->w.output, m->w.p_output);
    return n_out;
}
