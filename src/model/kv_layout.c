/*
 * kv_layout.c — the KV block pool's memory (see kv_layout.h), allocated once
 * at start-up: a full cache means "wait or preempt", never an allocation.
 */
#include "model/kv_layout.h"
#include "util/util.h"

#include <stdlib.h>

size_t ci_kv_block_bytes(int n_layers, int n_kv_heads, int head_dim, int block_size, ci_kv_dtype dtype) {
    size_t elem = dtype == CI_KV_F32 ? 4 : 2;
    return 2 * (size_t)n_layers * (size_t)n_kv_heads * (size_t)head_dim * (size_t)block_size * elem;
}

int ci_kv_pool_init(ci_kv_pool *p, int n_layers, int n_kv_heads, int head_dim, int block_size, int n_blocks,
                    ci_kv_dtype dtype, cinfer_error *err) {
    *p = (ci_kv_pool){0};
    if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 || block_size <= 0 || n_blocks <= 0)
        return ci_error(err, CINFER_ERR_INVALID, "kv cache: invalid geometry (layers %d, kv heads %d, head_dim %d, block %d, blocks %d)",
                        n_layers, n_kv_heads, head_dim, block_size, n_blocks);
    size_t elem = dtype == CI_KV_F32 ? 4 : 2;
    size_t per_side = 0;
    if (ci_mul_overflow((size_t)n_layers * (size_t)n_kv_heads * (size_t)head_dim * (size_t)block_size, (size_t)n_blocks, &per_side) ||
        ci_mul_overflow(per_side, elem, &per_side) || per_side > SIZE_MAX - 63)
        return ci_error(err, CINFER_ERR_LIMIT, "kv cache: size overflows");
    p->k = aligned_alloc(64, (per_side + 63) & ~(size_t)63);
    p->v = aligned_alloc(64, (per_side + 63) & ~(size_t)63);
    if (!p->k || !p->v) {
        ci_kv_pool_free(p);
        return ci_error(err, CINFER_ERR_NOMEM, "kv cache: cannot allocate 2 x %zu bytes", per_side);
    }
    p->n_layers = n_layers;
    p->n_kv_heads = n_kv_heads;
    p->head_dim = head_dim;
    p->block_size = block_size;
    p->n_blocks = n_blocks;
    p->dtype = dtype;
    p->elem_size = elem;
    return CINFER_OK;
}

void ci_kv_pool_free(ci_kv_pool *p) {
    free(p->k);
    free(p->v);
    *p = (ci_kv_pool){0};
}
