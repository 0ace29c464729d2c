/*
 * qwen3.c — the Qwen3 forward pass, batched over tokens of many sequences.
 *
 * Per layer (HF Qwen3DecoderLayer):
 *   h   = x + o_proj(attention(rope(q_norm(q_proj(rms(x)))), rope(k_norm(k_proj(rms(x)))), v_proj(rms(x))))
 *   out = h + down_proj(silu(gate_proj(rms(h))) * up_proj(rms(h)))
 * Matrix products run over the whole batch at once (weights are read once per
 * call, which is what makes batched decode cheap). Attention runs per
 * (chunk, KV head): a chunk is a run of consecutive positions of one
 * sequence (a prefill piece, or one decode token), and one ci_attention call
 * serves all its queries and the query heads sharing the KV head, reading
 * the cache once. Its per-query arithmetic does not depend on the chunking,
 * so a token's result is bitwise the same in decode, in any prefill split,
 * mixed with other sequences, on any thread count.
 *
 * Sparse (mixture-of-experts) layers replace the MLP with
 *   out = h + Σ_r w_r · down_e(silu(gate_e(rms(h))) * up_e(rms(h)))   over the
 * token's top-k experts e = ids[r] (qwen3_moe_route). The batch's (token,
 * expert) slots are grouped by expert (counting sort, tokens in batch order
 * within an expert) so each routed expert's matrices are read once per layer
 * and multiplied for its whole group with ci_matmul, whose rows do not
 * depend on the group size. The sum runs in rank order, w_0·y_0 first, as
 * llama.cpp's build_moe_ffn adds its views: a token's result does not depend
 * on which other tokens share the batch.
 */
#include "model/qwen3.h"
#include "kernels/threadpool.h"
#include "util/fault.h"
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

/* Attention chunks aim at this many query rows (tokens × query heads per KV
 * head): enough that each K/V tile, converted to fp32 once, feeds many FMAs,
 * small enough that the rows' scores stay in L2 at prefill lengths. */
#define ATTN_CHUNK_ROWS 64
/* Contexts up to this length get full-size chunks; longer ones get fewer
 * tokens per chunk instead of more scratch. */
#define ATTN_FULL_CHUNK_CONTEXT 4096

static int attn_group(const qwen3_hparams *hp) { return hp->n_heads / hp->n_kv_heads; }

/* Per-thread ci_attention scratch: a single decode token at max_context must
 * fit; prefill chunks are then sized to what fits (plan_attention). */
static int attn_scratch_init(qwen3_state *s, const qwen3_hparams *hp, int max_batch, int max_context, cinfer_error *err) {
    if (hp->head_dim <= 0 || hp->head_dim > CI_MAX_HEAD_DIM || hp->n_kv_heads <= 0 || hp->n_heads < hp->n_kv_heads ||
        hp->n_heads % hp->n_kv_heads != 0)
        return ci_error(err, CINFER_ERR_INVALID, "state: head_dim %d, %d query heads on %d KV heads not supported",
                        hp->head_dim, hp->n_heads, hp->n_kv_heads);
    int group = attn_group(hp);
    int64_t rows = ATTN_CHUNK_ROWS > group ? ATTN_CHUNK_ROWS : group;
    if (rows > (int64_t)group * max_batch) rows = (int64_t)group * max_batch;
    int ctx = max_context < ATTN_FULL_CHUNK_CONTEXT ? max_context : ATTN_FULL_CHUNK_CONTEXT;
    size_t one = ci_attn_scratch_floats(hp->head_dim, group, max_context);
    size_t chunk = ci_attn_scratch_floats(hp->head_dim, (int)rows, ctx);
    size_t per = one > chunk ? one : chunk, total;
    if (per == SIZE_MAX || ci_mul_overflow(per, (size_t)s->n_threads, &total) || total > SIZE_MAX / sizeof(float) / 2)
        return ci_error(err, CINFER_ERR_NOMEM, "state: attention scratch for context %d overflows", max_context);
    s->attn_scratch_floats = per;
    s->attn_scratch = alloc_floats(total);
    return CINFER_OK;
}

static int moe_state_init(qwen3_state *s, const qwen3_hparams *hp, int max_batch, cinfer_error *err) {
    if (hp->n_experts <= 0) return CINFER_OK;
    if (hp->n_experts_used <= 0 || hp->n_experts_used > hp->n_experts || hp->expert_intermediate <= 0)
        return ci_error(err, CINFER_ERR_INVALID, "state: %d of %d experts of size %d not supported", hp->n_experts_used,
                        hp->n_experts, hp->expert_intermediate);
    size_t B = (size_t)max_batch, S = B * (size_t)hp->n_experts_used, E = (size_t)hp->n_experts;
    s->router_logits = alloc_floats(B * E);
    s->moe_ids = ci_malloc(S * sizeof(int32_t));
    s->moe_weights = alloc_floats(S);
    s->moe_offset = ci_malloc((E + 1) * sizeof(int32_t));
    s->moe_slot_row = ci_malloc(S * sizeof(int32_t));
    s->moe_row_token = ci_malloc(S * sizeof(int32_t));
    s->moe_x = alloc_floats(S * (size_t)hp->hidden);
    s->moe_gate = alloc_floats(S * (size_t)hp->expert_intermediate);
    s->moe_up = alloc_floats(S * (size_t)hp->expert_intermediate);
    if (!s->router_logits || !s->moe_weights || !s->moe_x || !s->moe_gate || !s->moe_up)
        return ci_error(err, CINFER_ERR_NOMEM, "state: cannot allocate expert scratch for batch %d", max_batch);
    return CINFER_OK;
}

int qwen3_state_init(qwen3_state *s, const qwen3_hparams *hp, int max_batch, int max_context, int n_threads,
                     cinfer_error *err) {
    *s = (qwen3_state){0};
    if (max_batch <= 0 || max_context <= 0)
        return ci_error(err, CINFER_ERR_INVALID, "state: max_batch and max_context must be positive");
    size_t B = (size_t)max_batch;
    size_t qdim = (size_t)hp->n_heads * (size_t)hp->head_dim;
    size_t kvdim = (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    s->max_batch = max_batch;
    s->max_context = max_context;
    s->n_threads = n_threads > 0 ? n_threads : ci_threadpool_threads();
    s->x = alloc_floats(B * (size_t)hp->hidden);
    s->xb = alloc_floats(B * (size_t)(hp->hidden > (int)qdim ? hp->hidden : (int)qdim));
    s->q = alloc_floats(B * qdim);
    s->k = alloc_floats(B * kvdim);
    s->v = alloc_floats(B * kvdim);
    s->attn_out = alloc_floats(B * qdim);
    s->gate = alloc_floats(B * (size_t)hp->intermediate);
    s->up = alloc_floats(B * (size_t)hp->intermediate);
    s->rope_cos = alloc_floats(B * (size_t)hp->head_dim / 2);
    s->rope_sin = alloc_floats(B * (size_t)hp->head_dim / 2);
    s->logit_rows = ci_malloc(B * sizeof(int32_t));
    s->attn_chunks = ci_malloc(B * sizeof(qwen3_attn_chunk));
    if (moe_state_init(s, hp, max_batch, err) != CINFER_OK) {
        qwen3_state_free(s);
        return err ? err->code : CINFER_ERR_NOMEM;
    }
    if (attn_scratch_init(s, hp, max_batch, max_context, err) != CINFER_OK) {
        qwen3_state_free(s);
        return err ? err->code : CINFER_ERR_INVALID;
    }
    if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->attn_out || !s->gate || !s->up || !s->attn_scratch ||
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
    free(s->attn_scratch);
    free(s->attn_chunks);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->logit_rows);
    free(s->router_logits);
    free(s->moe_ids);
    free(s->moe_weights);
    free(s->moe_offset);
    free(s->moe_slot_row);
    free(s->moe_row_token);
    free(s->moe_x);
    free(s->moe_gate);
    free(s->moe_up);
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
    ci_kv_pool *kv;
    const ci_kernel_table *kt; /* fetched once per forward, not per task */
    int layer;
} attn_job;

/* Keys go into the block transposed, [head_dim][block_size], so attention's
 * SIMD lanes run over positions; values stay [block_size][head_dim]. */
static void store_kv_task(void *ctx, int i, int thread) {
    attn_job *j = ctx;
    const qwen3_hparams *hp = &j->m->hp;
    ci_kv_pool *kv = j->kv;
    int d = hp->head_dim;
    const ci_block_table *bt = &j->b->seq_blocks[j->b->seq[i]];
    int pos = j->b->pos[i];
    int32_t block = bt->blocks[pos / kv->block_size];
    size_t slot = (size_t)(pos % kv->block_size), bs = (size_t)kv->block_size;
    for (int h = 0; h < hp->n_kv_heads; h++) {
        const float *k = j->s->k + ((size_t)i * hp->n_kv_heads + h) * d;
        const float *v = j->s->v + ((size_t)i * hp->n_kv_heads + h) * d;
        void *kd = ci_kv_k_ptr(kv, j->layer, block, h);
        uint8_t *vd = (uint8_t *)ci_kv_v_ptr(kv, j->layer, block, h) + slot * d * kv->elem_size;
        if (kv->dtype == CI_KV_F32) {
            for (int e = 0; e < d; e++) ((float *)kd)[(size_t)e * bs + slot] = k[e];
            memcpy(vd, v, (size_t)d * sizeof(float));
        } else {
            uint16_t kh[CI_MAX_HEAD_DIM];
            j->kt->fp32_to_fp16_row(kh, k, (size_t)d);
            for (int e = 0; e < d; e++) ((uint16_t *)kd)[(size_t)e * bs + slot] = kh[e];
            j->kt->fp32_to_fp16_row((uint16_t *)vd, v, (size_t)d);
        }
    }
}

/* Task = (KV head, chunk), head-major: consecutive tasks (on all threads)
 * read the same head's K/V, which then stays in cache across its chunks;
 * within a head the chunks go heaviest first (plan_attention), so the last
 * tasks handed out are small ones. */
static void attention_task(void *ctx, int task, int thread) {
    attn_job *j = ctx;
    const qwen3_hparams *hp = &j->m->hp;
    const qwen3_state *s = j->s;
    ci_kv_pool *kv = j->kv;
    const qwen3_attn_chunk *c = &s->attn_chunks[task % s->attn_n_chunks];
    int kvh = task / s->attn_n_chunks;
    int d = hp->head_dim, group = attn_group(hp);
    size_t row = (size_t)hp->n_heads * d;
    size_t head_off = (size_t)c->first * row + (size_t)kvh * group * d;
    ci_attn_args a = {
        .head_dim = d,
        .group = group,
        .n_tok = c->n_tok,
        .pos0 = j->b->pos[c->first],
        .q = s->q + head_off,
        .q_stride = row,
        .out = s->attn_out + head_off,
        .out_stride = row,
        .scale = 1.0f / sqrtf((float)d),
        .kv_f32 = kv->dtype == CI_KV_F32,
        .k = ci_kv_k_ptr(kv, j->layer, 0, kvh),
        .v = ci_kv_v_ptr(kv, j->layer, 0, kvh),
        .block_stride = (size_t)kv->n_kv_heads * (size_t)kv->block_size * (size_t)d * kv->elem_size,
        .blocks = j->b->seq_blocks[j->b->seq[c->first]].blocks,
        .block_size = kv->block_size,
        .scratch = s->attn_scratch + (size_t)thread * s->attn_scratch_floats,
    };
    j->kt->attention(&a);
}

/* Heaviest first, so the dynamic hand-out of ci_parallel_for ends with the
 * small tasks (causal chunks late in a prompt cost the most). Heapsort: no
 * allocation, O(n log n) for large decode batches. */
static void sort_chunks_heaviest_first(qwen3_attn_chunk *c, int n) {
    /* min-heap on cost, then repeatedly move the minimum to the end */
    for (int start = n / 2 - 1, end = n;; ) {
        int root;
        if (start >= 0) root = start--;
        else {
            if (--end <= 0) break;
            qwen3_attn_chunk t = c[0]; c[0] = c[end]; c[end] = t;
            root = 0;
        }
        for (;;) {
            int child = 2 * root + 1;
            if (child >= end) break;
            if (child + 1 < end && c[child + 1].cost < c[child].cost) child++;
            if (c[root].cost <= c[child].cost) break;
            qwen3_attn_chunk t = c[root]; c[root] = c[child]; c[child] = t;
            root = child;
        }
    }
}

/* Splits the batch into attention chunks: maximal runs of tokens of one
 * sequence at consecutive positions (the scheduler puts a sequence's tokens
 * together; anything else just gives shorter runs), cut into pieces of about
 * ATTN_CHUNK_ROWS query rows — fewer when there are few tasks per thread or
 * the context is long (scratch). Also checks the block ids the chunks read. */
static int plan_attention(const qwen3_model *m, qwen3_state *s, const ci_kv_pool *kv, const qwen3_batch *b,
                          cinfer_error *err) {
    const qwen3_hparams *hp = &m->hp;
    int B = b->n_tokens, group = attn_group(hp);
    if (kv->head_dim != hp->head_dim || kv->n_kv_heads != hp->n_kv_heads || kv->n_layers < hp->n_layers)
        return ci_error(err, CINFER_ERR_INVALID, "forward: KV cache shape does not match the model");
    int target = ATTN_CHUNK_ROWS / group > 1 ? ATTN_CHUNK_ROWS / group : 1;
    /* at least ~4 tasks per thread when the batch allows it */
    int64_t spread = ((int64_t)B * hp->n_kv_heads + 4 * (int64_t)s->n_threads - 1) / (4 * (int64_t)s->n_threads);
    if (spread < target) target = spread > 1 ? (int)spread : 1;
    int n = 0;
    for (int i = 0; i < B;) {
        int e = i + 1;
        while (e < B && b->seq[e] == b->seq[i] && b->pos[e] == b->pos[e - 1] + 1) e++;
        const ci_block_table *bt = &b->seq_blocks[b->seq[i]];
        for (int bi = 0; bi <= b->pos[e - 1] / kv->block_size; bi++)
            if (bt->blocks[bi] < 0 || bt->blocks[bi] >= kv->n_blocks)
                return ci_error(err, CINFER_ERR_INVALID, "forward: KV block id %d out of range", bt->blocks[bi]);
        int run = e - i, pieces = (run + target - 1) / target;
        for (int p = 0; p < pieces; p++) {
            int first = i + (int)((int64_t)run * p / pieces), last = i + (int)((int64_t)run * (p + 1) / pieces);
            while (first < last) {
                int len = last - first;
                while (len > 1 && ci_attn_scratch_floats(hp->head_dim, group * len, b->pos[first] + len) > s->attn_scratch_floats)
                    len = (len + 1) / 2;
                int64_t p0 = b->pos[first];
                s->attn_chunks[n++] = (qwen3_attn_chunk){.first = first, .n_tok = len, .cost = len * (2 * p0 + len + 1)};
                first += len;
            }
        }
        i = e;
    }
    sort_chunks_heaviest_first(s->attn_chunks, n);
    s->attn_n_chunks = n;
    return CINFER_OK;
}

static void run_attention(attn_job *aj) {
    ci_parallel_for(aj->b->n_tokens, store_kv_task, aj);
    ci_parallel_for(aj->s->attn_n_chunks * aj->m->hp.n_kv_heads, attention_task, aj);
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

/* ---- mixture of experts ---- */

void qwen3_moe_route(const float *logits, int n_experts, int k, bool norm, int32_t *ids, float *weights) {
    float mx = logits[0];
    for (int e = 1; e < n_experts; e++) mx = logits[e] > mx ? logits[e] : mx;
    double sum = 0.0;
    for (int e = 0; e < n_experts; e++) sum += (double)expf(logits[e] - mx);
    float scale = (float)(1.0 / sum);
    int n = 0;
    /* insertion into the sorted top-k; ascending ids and a strict '>' keep
     * the lower id first among equal probabilities */
    for (int e = 0; e < n_experts; e++) {
        float p = expf(logits[e] - mx) * scale;
        if (n == k && !(p > weights[k - 1])) continue;
        int at = n < k ? n++ : k - 1;
        while (at > 0 && p > weights[at - 1]) {
            weights[at] = weights[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        weights[at] = p;
        ids[at] = e;
    }
    if (!norm) return;
    double total = 0.0; /* ggml_sum_rows: a double sum stored as float */
    for (int r = 0; r < k; r++) total += weights[r];
    float t = (float)total;
    for (int r = 0; r < k; r++) weights[r] /= t;
}

static void route_task(void *ctx, int i, int thread) {
    rows_job *j = ctx;
    const qwen3_hparams *hp = &j->m->hp;
    size_t k = (size_t)hp->n_experts_used;
    qwen3_moe_route(j->s->router_logits + (size_t)i * hp->n_experts, hp->n_experts, hp->n_experts_used,
                    hp->norm_topk_prob, j->s->moe_ids + i * k, j->s->moe_weights + i * k);
}

static void moe_gather_task(void *ctx, int row, int thread) {
    rows_job *j = ctx;
    size_t H = (size_t)j->m->hp.hidden;
    memcpy(j->s->moe_x + row * H, j->s->xb + (size_t)j->s->moe_row_token[row] * H, H * sizeof(float));
}

static void moe_swiglu_task(void *ctx, int row, int thread) {
    rows_job *j = ctx;
    size_t I = (size_t)j->m->hp.expert_intermediate;
    ci_silu_mul(j->s->moe_gate + row * I, j->s->moe_gate + row * I, j->s->moe_up + row * I, (int)I);
}

/* xb[t] = Σ_r w_r · y_r in rank order: (w_0·y_0 + w_1·y_1) + ... */
static void moe_combine_task(void *ctx, int t, int thread) {
    rows_job *j = ctx;
    const qwen3_state *s = j->s;
    int H = j->m->hp.hidden, k = j->m->hp.n_experts_used;
    float *out = s->xb + (size_t)t * H;
    for (int r = 0; r < k; r++) {
        const float *y = s->moe_x + (size_t)s->moe_slot_row[t * k + r] * H;
        float w = s->moe_weights[t * k + r];
        if (r == 0)
            for (int c = 0; c < H; c++) out[c] = w * y[c];
        else
            for (int c = 0; c < H; c++) {
                float wy = w * y[c];
                out[c] = out[c] + wy;
            }
    }
}

/* s->xb (normed h, [B, H]) -> s->xb (the experts' weighted sum). */
static void forward_moe(const qwen3_model *m, qwen3_state *s, rows_job *rj, const qwen3_layer *L) {
    const qwen3_hparams *hp = &m->hp;
    int B = rj->b->n_tokens, E = hp->n_experts, k = hp->n_experts_used;
    size_t H = (size_t)hp->hidden, I = (size_t)hp->expert_intermediate;
    matmul(s->router_logits, s->xb, B, &L->router);
    ci_parallel_for(B, route_task, rj);
    /* counting sort of the slots by expert; batch order within an expert */
    int32_t *off = s->moe_offset;
    memset(off, 0, (size_t)(E + 1) * sizeof *off);
    for (int i = 0; i < B * k; i++) off[s->moe_ids[i] + 1]++;
    for (int e = 0; e < E; e++) off[e + 1] += off[e];
    for (int i = 0; i < B * k; i++) {
        int row = off[s->moe_ids[i]]++;
        s->moe_slot_row[i] = row;
        s->moe_row_token[row] = i / k;
    }
    for (int e = E; e > 0; e--) off[e] = off[e - 1]; /* back to first rows */
    off[0] = 0;
    ci_parallel_for(B * k, moe_gather_task, rj);
    for (int e = 0; e < E; e++) {
        int n = off[e + 1] - off[e];
        if (n == 0) continue;
        matmul(s->moe_gate + off[e] * I, s->moe_x + off[e] * H, n, &L->exp_gate[e]);
        matmul(s->moe_up + off[e] * I, s->moe_x + off[e] * H, n, &L->exp_up[e]);
    }
    ci_parallel_for(B * k, moe_swiglu_task, rj);
    for (int e = 0; e < E; e++) {
        int n = off[e + 1] - off[e];
        if (n > 0) matmul(s->moe_x + off[e] * H, s->moe_gate + off[e] * I, n, &L->exp_down[e]);
    }
    ci_parallel_for(B, moe_combine_task, rj);
}

static int validate_batch(const qwen3_model *m, const qwen3_state *s, const ci_kv_pool *kv, const qwen3_batch *b,
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

static void forward_layer(const qwen3_model *m, qwen3_state *s, rows_job *rj, attn_job *aj, int l) {
    const qwen3_layer *L = &m->w.layers[l];
    int B = rj->b->n_tokens;
    size_t H = (size_t)m->hp.hidden;
    rj->layer = aj->layer = l;

    rj->norm_weight = L->attn_norm;
    ci_parallel_for(B, rmsnorm_rows_task, rj);
    if (L->p_qkv) {
        float *ys[3] = {s->q, s->k, s->v};
        size_t ldy[3] = {(size_t)L->wq.rows, (size_t)L->wk.rows, (size_t)L->wv.rows};
        ci_matmul_packed(L->p_qkv, ys, ldy, s->xb, H, B);
    } else {
        matmul(s->q, s->xb, B, &L->wq);
        matmul(s->k, s->xb, B, &L->wk);
        matmul(s->v, s->xb, B, &L->wv);
    }
    ci_parallel_for(B, qk_rope_store_task, rj);
    run_attention(aj);
    matmul1(s->xb, s->attn_out, B, &L->wo, L->p_o);
    ci_parallel_for(B, residual_task, rj);

    rj->norm_weight = L->ffn_norm;
    ci_parallel_for(B, rmsnorm_rows_task, rj);
    if (L->moe) {
        forward_moe(m, s, rj, L);
        ci_parallel_for(B, residual_task, rj);
        return;
    }
    if (L->p_gate_up) {
        float *ys[2] = {s->gate, s->up};
        size_t ldy[2] = {(size_t)L->w_gate.rows, (size_t)L->w_up.rows};
        ci_matmul_packed(L->p_gate_up, ys, ldy, s->xb, H, B);
    } else {
        matmul(s->gate, s->xb, B, &L->w_gate);
        matmul(s->up, s->xb, B, &L->w_up);
    }
    ci_parallel_for(B, swiglu_task, rj);
    matmul1(s->xb, s->gate, B, &L->w_down, L->p_down);
    ci_parallel_for(B, residual_task, rj);
}

int qwen3_forward(const qwen3_model *m, qwen3_state *s, ci_kv_pool *kv, const qwen3_batch *b,
                  float *logits, cinfer_error *err) {
    if (validate_batch(m, s, kv, b, err) != CINFER_OK) return err ? err->code : CINFER_ERR_INVALID;
    if (ci_fault_hit(CI_FAULT_FORWARD)) return ci_error(err, CINFER_ERR_NOMEM, "forward: injected fault");
    if (plan_attention(m, s, kv, b, err) != CINFER_OK) return err ? err->code : CINFER_ERR_INVALID;
    const qwen3_hparams *hp = &m->hp;
    int B = b->n_tokens;
    size_t H = (size_t)hp->hidden;
    int d = hp->head_dim;
    for (int i = 0; i < B; i++) {
        const uint8_t *row = (const uint8_t *)m->w.tok_embd.data + (size_t)b->tokens[i] * ci_row_bytes(m->w.tok_embd.type, H);
        ci_dequantize_row(s->x + (size_t)i * H, row, m->w.tok_embd.type, H);
        ci_rope_cache(s->rope_cos + (size_t)i * (d / 2), s->rope_sin + (size_t)i * (d / 2), d, b->pos[i], hp->rope_theta);
    }

    /* this model's thread count: its per-thread scratch was sized for it */
    int prev_limit = ci_threadpool_limit(s->n_threads);
    rows_job rj = {.m = m, .s = s, .b = b};
    attn_job aj = {.m = m, .s = s, .b = b, .kv = kv, .kt = ci_kernels_current()};
    for (int l = 0; l < hp->n_layers; l++) forward_layer(m, s, &rj, &aj, l);

    /* Final norm and lm_head only for the rows that want logits. */
    int n_out = 0;
    for (int i = 0; i < B; i++) {
        if (b->want_logits && !b->want_logits[i]) continue;
        ci_rmsnorm(s->xb + (size_t)n_out * H, s->x + (size_t)i * H, m->w.output_norm, (int)H, hp->rms_eps);
        s->logit_rows[n_out++] = i;
    }
    if (n_out > 0) matmul1(logits, s->xb, n_out, &m->w.output, m->w.p_output);
    ci_threadpool_limit(prev_limit);
    return n_out;
}

int qwen3_attention_layer(const qwen3_model *m, qwen3_state *s, ci_kv_pool *kv, const qwen3_batch *b, int layer,
                          cinfer_error *err) {
    if (layer < 0 || layer >= m->hp.n_layers || layer >= kv->n_layers)
        return ci_error(err, CINFER_ERR_INVALID, "attention: layer %d out of range", layer);
    if (validate_batch(m, s, kv, b, err) != CINFER_OK || plan_attention(m, s, kv, b, err) != CINFER_OK)
        return err ? err->code : CINFER_ERR_INVALID;
    int prev_limit = ci_threadpool_limit(s->n_threads);
    attn_job aj = {.m = m, .s = s, .b = b, .kv = kv, .kt = ci_kernels_current(), .layer = layer};
    run_attention(&aj);
    ci_threadpool_limit(prev_limit);
    return CINFER_OK;
}
