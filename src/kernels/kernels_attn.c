/*
 * kernels_attn.c — causal attention over a paged KV cache: the scratch
 * sizing, the dispatch, and the scalar reference.
 *
 * The reference is the plain definition of ci_attention (kernels.h), one
 * query row at a time; it is what the SIMD version (kernels_attn_simd.inc)
 * is tested against. It reads the cache through the block table directly and
 * needs only the scores part of the scratch.
 */
#include <math.h>
#include <stdint.h>

#include "kernels/kernels_impl.h"
#include "util/util.h"

size_t ci_attn_scratch_floats(int head_dim, int rows, int n_pos)
{
    if (head_dim <= 0 || rows <= 0 || n_pos <= 0) return SIZE_MAX;
    /* layout in kernels_impl.h: S and O per row, one tile, inv */
    size_t dp = ci_attn_pad16((size_t)head_dim), sld = ci_attn_pad16((size_t)n_pos);
    size_t per_row, total;
    if (ci_add_overflow(sld, dp, &per_row) || ci_mul_overflow((size_t)rows, per_row, &total) ||
        ci_add_overflow(total, (size_t)CI_ATTN_TILE * dp + ci_attn_pad16((size_t)rows), &total))
        return SIZE_MAX;
    return total;
}

void ci_attention(const ci_attn_args *a) { ci_kernels_current()->attention(a); }

static inline float kv_elem(const uint8_t *block, size_t idx, int f32)
{
    return f32 ? ci_ld_f32(block + idx * 4) : ci_fp16_to_fp32(ci_ld_u16(block + idx * 2));
}

void ci_attention_scalar(const ci_attn_args *a)
{
    const int d = a->head_dim, bs = a->block_size, f32 = a->kv_f32;
    const int rows = a->group * a->n_tok;
    float *s = a->scratch; /* one row of scores at a time */
    for (int r = 0; r < rows; r++) {
        const int i = r / a->group, g = r % a->group;
        const int n = a->pos0 + i + 1;
        const float *q = a->q + (size_t)i * a->q_stride + (size_t)g * d;
        float *out = a->out + (size_t)i * a->out_stride + (size_t)g * d;

        for (int t = 0; t < n; t++) {
            const uint8_t *kb = a->k + (size_t)a->blocks[t / bs] * a->block_stride;
            const size_t slot = (size_t)(t % bs);
            float acc = 0.0f;
            for (int k = 0; k < d; k++) acc += q[k] * kv_elem(kb, (size_t)k * bs + slot, f32);
            s[t] = acc * a->scale;
        }
        float m = s[0];
        for (int t = 1; t < n; t++)
            if (s[t] > m) m = s[t];
        float sum = 0.0f;
        for (int t = 0; t < n; t++) {
            s[t] = expf(s[t] - m);
            sum += s[t];
        }
        const float inv = 1.0f / sum;

        for (int k = 0; k < d; k++) out[k] = 0.0f;
        for (int t = 0; t < n; t++) {
            const uint8_t *vb = a->v + (size_t)a->blocks[t / bs] * a->block_stride;
            const size_t row = (size_t)(t % bs) * d;
            for (int k = 0; k < d; k++) out[k] += s[t] * kv_elem(vb, row + k, f32);
        }
        for (int k = 0; k < d; k++) out[k] *= inv;
    }
}
