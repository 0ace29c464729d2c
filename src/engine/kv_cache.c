/*
 * kv_cache.c — block pool bookkeeping for the paged KV cache (see kv_cache.h).
 * The pool is allocated once at start-up from the memory budget; nothing here
 * allocates afterwards, so a full cache means "wait or preempt", never OOM.
 */
#include "engine/kv_cache.h"
#include "util/util.h"

#include <stdlib.h>

size_t ci_kv_block_bytes(int n_layers, int n_kv_heads, int head_dim, int block_size, ci_kv_dtype dtype) {
    size_t elem = dtype == CI_KV_F32 ? 4 : 2;
    return 2 * (size_t)n_layers * (size_t)n_kv_heads * (size_t)head_dim * (size_t)block_size * elem;
}

int ci_kv_cache_init(ci_kv_cache *kv, int n_layers, int n_kv_heads, int head_dim, int block_size,
                     int n_blocks, ci_kv_dtype dtype, cinfer_error *err) {
    *kv = (ci_kv_cache){0};
    if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 || block_size <= 0 || n_blocks <= 0)
        return ci_error(err, CINFER_ERR_INVALID, "kv cache: invalid geometry (layers %d, kv heads %d, head_dim %d, block %d, blocks %d)",
                        n_layers, n_kv_heads, head_dim, block_size, n_blocks);
    size_t elem = dtype == CI_KV_F32 ? 4 : 2;
    size_t per_side = 0;
    if (ci_mul_overflow((size_t)n_layers * (size_t)n_kv_heads * (size_t)head_dim * (size_t)block_size, (size_t)n_blocks, &per_side) ||
        ci_mul_overflow(per_side, elem, &per_side))
        return ci_error(err, CINFER_ERR_LIMIT, "kv cache: size overflows");
    kv->k = aligned_alloc(64, (per_side + 63) & ~(size_t)63);
    kv->v = aligned_alloc(64, (per_side + 63) & ~(size_t)63);
    if (!kv->k || !kv->v) {
        free(kv->k);
        free(kv->v);
        *kv = (ci_kv_cache){0};
        return ci_error(err, CINFER_ERR_NOMEM, "kv cache: cannot allocate 2 x %zu bytes", per_side);
    }
    kv->n_layers = n_layers;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->dtype = dtype;
    kv->elem_size = elem;
    kv->refcount = ci_calloc((size_t)n_blocks, sizeof *kv->refcount);
    kv->free_list = ci_malloc((size_t)n_blocks * sizeof *kv->free_list);
    /* Hand out low block ids first: stack popped from the end. */
    for (int i = 0; i < n_blocks; i++) kv->free_list[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    return CINFER_OK;
}

void ci_kv_cache_free(ci_kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    free(kv->refcount);
    free(kv->free_list);
    *kv = (ci_kv_cache){0};
}

int32_t ci_kv_alloc_block(ci_kv_cache *kv) {
    if (kv->n_free == 0) return -1;
    int32_t b = kv->free_list[--kv->n_free];
    kv->refcount[b] = 1;
    return b;
}

void ci_kv_retain_block(ci_kv_cache *kv, int32_t block) { kv->refcount[block]++; }

void ci_kv_release_block(ci_kv_cache *kv, int32_t block) {
    if (--kv->refcount[block] == 0) kv->free_list[kv->n_free++] = block;
}
