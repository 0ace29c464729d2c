/*
 * kv_cache.h — the paged key/value cache: the block pool (its memory layout
 * is model/kv_layout.h, what the forward pass reads and writes) and the
 * bookkeeping of who holds which block.
 *
 * A sequence owns a block table (ci_block_table). Blocks are reference
 * counted so full blocks with identical token prefixes can be shared between
 * sequences.
 *
 * Prefix caching (as vLLM's automatic prefix caching): a full block can be
 * registered under a hash of its tokens chained with its parent block's hash,
 * so the hash names the whole prefix up to the block's end. A new sequence
 * looks its full prompt blocks up and shares the hits (refcount + 1) instead
 * of computing them. A registered block whose refcount drops to zero is not
 * freed but parked on an LRU list: still findable, and evicted (oldest first)
 * only when the free list is empty. "Available" blocks = free + evictable.
 * Hash hits are verified against the stored tokens and parent, so a 64-bit
 * collision can never share wrong K/V.
 */
#ifndef CINFER_KV_CACHE_H
#define CINFER_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"
#include "model/kv_layout.h"

typedef struct ci_kv_cache {
    ci_kv_pool pool;       /* the blocks' memory; pool.n_blocks, pool.block_size */
    int32_t *refcount;     /* [n_blocks] */
    int32_t *free_list;    /* stack of free block ids */
    int n_free;
    /* prefix cache */
    bool prefix_caching;   /* false: blocks are never registered */
    uint64_t *hash;        /* [n_blocks] chained hash of a registered block */
    int32_t *parent;       /* [n_blocks] parent block id at registration, -1 for the first */
    int32_t *tokens;       /* [n_blocks * block_size] tokens of a registered block */
    bool *registered;      /* [n_blocks] findable in the hash table */
    int32_t *bucket;       /* [n_buckets] head of each hash chain, -1 empty */
    int32_t *chain_next;   /* [n_blocks] next block in the same hash chain */
    uint32_t bucket_mask;
    int32_t *lru_prev, *lru_next; /* [n_blocks] LRU list of registered blocks with refcount 0 */
    int32_t lru_head, lru_tail;   /* head = least recently used */
    int n_evictable;
    uint64_t evictions;
} ci_kv_cache;

int ci_kv_cache_init(ci_kv_cache *kv, int n_layers, int n_kv_heads, int head_dim, int block_size,
                     int n_blocks, ci_kv_dtype dtype, cinfer_error *err);
void ci_kv_cache_free(ci_kv_cache *kv);

/* Takes a free block (refcount 1), evicting the least recently used cached
 * block when the free list is empty; -1 when nothing is available. */
int32_t ci_kv_alloc_block(ci_kv_cache *kv);
/* Adds a reference to a block (prefix sharing); a cached block with no
 * reference leaves the LRU list. */
void ci_kv_retain_block(ci_kv_cache *kv, int32_t block);
/* Drops a reference. At zero a registered block becomes evictable (LRU
 * tail), any other block returns to the free list. */
void ci_kv_release_block(ci_kv_cache *kv, int32_t block);
/* Blocks an allocation can get: free + evictable. */
static inline int ci_kv_available(const ci_kv_cache *kv) { return kv->n_free + kv->n_evictable; }

/* Hash of one full block: its tokens chained with the parent's hash (0 for
 * the first block of a sequence). */
uint64_t ci_kv_chain_hash(uint64_t parent_hash, const int32_t *tokens, int n);
/* Finds a registered block with this hash, parent block and tokens
 * (block_size of them); -1 when none. Does not take a reference. */
int32_t ci_kv_lookup(const ci_kv_cache *kv, uint64_t hash, int32_t parent, const int32_t *tokens);
/* Registers a full block (in use by the caller) under `hash`. Does nothing
 * when prefix caching is off, the block is registered already, or another
 * block holds the same prefix. */
void ci_kv_register(ci_kv_cache *kv, int32_t block, uint64_t hash, int32_t parent, const int32_t *tokens);

#endif
