/*
 * kv_cache.h — the paged key/value cache.
 *
 * Memory is one pool of fixed-size blocks (block_size token positions each,
 * all layers and KV heads). A sequence owns a block table: logical block i
 * holds its positions [i*block_size, (i+1)*block_size). Blocks are reference
 * counted so full blocks with identical token prefixes can be shared between
 * sequences (prefix caching, src/engine). Layout inside the pool is
 * [layer][block][kv_head][slot][head_dim], so one head's keys of one block are
 * contiguous — attention walks them linearly.
 *
 * K/V are stored as fp16 by default (as llama.cpp does): half the memory
 * traffic of fp32 for a relative error of ~5e-4 per element.
 */
#ifndef CINFER_KV_CACHE_H
#define CINFER_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"

typedef enum ci_kv_dtype { CI_KV_F16 = 0, CI_KV_F32 = 1 } ci_kv_dtype;

typedef struct ci_block_table {
    const int32_t *blocks;
    int n_blocks;
} ci_block_table;

typedef struct ci_kv_cache {
    int n_layers;
    int n_kv_heads;
    int head_dim;
    int block_size;
    int n_blocks;
    ci_kv_dtype dtype;
    size_t elem_size;
    uint8_t *k;            /* pool of keys */
    uint8_t *v;            /* pool of values */
    int32_t *refcount;     /* [n_blocks] */
    int32_t *free_list;    /* stack of free block ids */
    int n_free;
} ci_kv_cache;

/* Bytes one block takes for K and V together. */
size_t ci_kv_block_bytes(int n_layers, int n_kv_heads, int head_dim, int block_size, ci_kv_dtype dtype);

int ci_kv_cache_init(ci_kv_cache *kv, int n_layers, int n_kv_heads, int head_dim, int block_size,
                     int n_blocks, ci_kv_dtype dtype, cinfer_error *err);
void ci_kv_cache_free(ci_kv_cache *kv);

/* Takes a free block (refcount 1); -1 when the pool is exhausted. */
int32_t ci_kv_alloc_block(ci_kv_cache *kv);
/* Adds a reference to a block already in use (prefix sharing). */
void ci_kv_retain_block(ci_kv_cache *kv, int32_t block);
/* Drops a reference; the block returns to the free list at zero. */
void ci_kv_release_block(ci_kv_cache *kv, int32_t block);

/* Start of the [block_size][head_dim] keys (values) of one head of one block. */
static inline void *ci_kv_k_ptr(const ci_kv_cache *kv, int layer, int32_t block, int head) {
    size_t idx = (((size_t)layer * (size_t)kv->n_blocks + (size_t)block) * (size_t)kv->n_kv_heads + (size_t)head) *
                 (size_t)kv->block_size * (size_t)kv->head_dim;
    return kv->k + idx * kv->elem_size;
}
static inline void *ci_kv_v_ptr(const ci_kv_cache *kv, int layer, int32_t block, int head) {
    size_t idx = (((size_t)layer * (size_t)kv->n_blocks + (size_t)block) * (size_t)kv->n_kv_heads + (size_t)head) *
                 (size_t)kv->block_size * (size_t)kv->head_dim;
    return kv->v + idx * kv->elem_size;
}

#endif
