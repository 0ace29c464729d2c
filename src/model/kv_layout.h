/*
 * kv_layout.h — the memory layout of the paged key/value cache: what the
 * forward pass needs to write and read K/V, and nothing about who owns
 * which block.
 *
 * Memory is one pool of fixed-size blocks (block_size token positions each,
 * all layers and KV heads). A sequence reaches its positions through a block
 * table: logical block i holds its positions [i*block_size, (i+1)*block_size).
 * Layout inside the pool is [layer][block][kv_head][block_size·head_dim], so
 * one head's keys (values) of one block are contiguous; within that, values
 * are [slot][head_dim] and keys transposed, [head_dim][slot], so attention's
 * SIMD lanes run over positions (qwen3.c writes them, ci_attention reads
 * them).
 *
 * K/V are stored as fp16 by default (as llama.cpp does): half the memory
 * traffic of fp32 for a relative error of ~5e-4 per element.
 *
 * The engine's block bookkeeping (free list, reference counts, prefix
 * cache) builds on this pool: engine/kv_cache.h.
 */
#ifndef CINFER_KV_LAYOUT_H
#define CINFER_KV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"

typedef enum ci_kv_dtype { CI_KV_F16 = 0, CI_KV_F32 = 1 } ci_kv_dtype;

typedef struct ci_block_table {
    const int32_t *blocks;
    int n_blocks;
} ci_block_table;

typedef struct ci_kv_pool {
    int n_layers;
    int n_kv_heads;
    int head_dim;
    int block_size;
    int n_blocks;
    ci_kv_dtype dtype;
    size_t elem_size;
    uint8_t *k;            /* pool of keys */
    uint8_t *v;            /* pool of values */
} ci_kv_pool;

/* Bytes one block takes for K and V together. */
size_t ci_kv_block_bytes(int n_layers, int n_kv_heads, int head_dim, int block_size, ci_kv_dtype dtype);

int ci_kv_pool_init(ci_kv_pool *p, int n_layers, int n_kv_heads, int head_dim, int block_size, int n_blocks,
                    ci_kv_dtype dtype, cinfer_error *err);
void ci_kv_pool_free(ci_kv_pool *p);

/* Start of the keys ([head_dim][block_size]) or values ([block_size][head_dim])
 * of one head of one block. */
static inline void *ci_kv_k_ptr(const ci_kv_pool *kv, int layer, int32_t block, int head) {
    size_t idx = (((size_t)layer * (size_t)kv->n_blocks + (size_t)block) * (size_t)kv->n_kv_heads + (size_t)head) *
                 (size_t)kv->block_size * (size_t)kv->head_dim;
    return kv->k + idx * kv->elem_size;
}
static inline void *ci_kv_v_ptr(const ci_kv_pool *kv, int layer, int32_t block, int head) {
    size_t idx = (((size_t)layer * (size_t)kv->n_blocks + (size_t)block) * (size_t)kv->n_kv_heads + (size_t)head) *
                 (size_t)kv->block_size * (size_t)kv->head_dim;
    return kv->v + idx * kv->elem_size;
}

#endif
