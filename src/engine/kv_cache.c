/*
 * kv_cache.c — block pool bookkeeping for the paged KV cache (see kv_cache.h).
 * Everything is allocated once at start-up from the memory budget; nothing
 * here allocates afterwards, so a full cache means "wait or preempt", never OOM.
 *
 * Prefix-cache structures are index arrays over block ids: a chained hash
 * table (bucket heads + per-block next links) and an intrusive doubly linked
 * LRU list, so every operation is O(1) apart from walking one hash chain.
 */
#include "engine/kv_cache.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

int ci_kv_cache_init(ci_kv_cache *kv, int n_layers, int n_kv_heads, int head_dim, int block_size,
                     int n_blocks, ci_kv_dtype dtype, cinfer_error *err) {
    *kv = (ci_kv_cache){0};
    int rc = ci_kv_pool_init(&kv->pool, n_layers, n_kv_heads, head_dim, block_size, n_blocks, dtype, err);
    if (rc != CINFER_OK) return rc;
    kv->refcount = ci_calloc((size_t)n_blocks, sizeof *kv->refcount);
    kv->free_list = ci_malloc((size_t)n_blocks * sizeof *kv->free_list);
    /* Hand out low block ids first: stack popped from the end. */
    for (int i = 0; i < n_blocks; i++) kv->free_list[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;

    kv->prefix_caching = true;
    kv->hash = ci_calloc((size_t)n_blocks, sizeof *kv->hash);
    kv->parent = ci_malloc((size_t)n_blocks * sizeof *kv->parent);
    kv->tokens = ci_realloc_array(NULL, (size_t)n_blocks * (size_t)block_size, sizeof *kv->tokens);
    kv->registered = ci_calloc((size_t)n_blocks, sizeof *kv->registered);
    kv->chain_next = ci_malloc((size_t)n_blocks * sizeof *kv->chain_next);
    kv->lru_prev = ci_malloc((size_t)n_blocks * sizeof *kv->lru_prev);
    kv->lru_next = ci_malloc((size_t)n_blocks * sizeof *kv->lru_next);
    uint32_t nb = 16;
    while (nb < (uint32_t)n_blocks && nb < (1u << 30)) nb <<= 1;
    kv->bucket_mask = nb - 1;
    kv->bucket = ci_malloc((size_t)nb * sizeof *kv->bucket);
    for (uint32_t i = 0; i < nb; i++) kv->bucket[i] = -1;
    kv->lru_head = kv->lru_tail = -1;
    return CINFER_OK;
}

void ci_kv_cache_free(ci_kv_cache *kv) {
    ci_kv_pool_free(&kv->pool);
    free(kv->refcount);
    free(kv->free_list);
    free(kv->hash);
    free(kv->parent);
    free(kv->tokens);
    free(kv->registered);
    free(kv->chain_next);
    free(kv->lru_prev);
    free(kv->lru_next);
    free(kv->bucket);
    *kv = (ci_kv_cache){0};
}

static void lru_unlink(ci_kv_cache *kv, int32_t b) {
    int32_t p = kv->lru_prev[b], n = kv->lru_next[b];
    if (p >= 0) kv->lru_next[p] = n;
    else kv->lru_head = n;
    if (n >= 0) kv->lru_prev[n] = p;
    else kv->lru_tail = p;
    kv->n_evictable--;
}

static void lru_push_tail(ci_kv_cache *kv, int32_t b) {
    kv->lru_prev[b] = kv->lru_tail;
    kv->lru_next[b] = -1;
    if (kv->lru_tail >= 0) kv->lru_next[kv->lru_tail] = b;
    else kv->lru_head = b;
    kv->lru_tail = b;
    kv->n_evictable++;
}

static void unregister(ci_kv_cache *kv, int32_t b) {
    int32_t *link = &kv->bucket[kv->hash[b] & kv->bucket_mask];
    while (*link >= 0 && *link != b) link = &kv->chain_next[*link];
    if (*link == b) *link = kv->chain_next[b];
    kv->registered[b] = false;
}

int32_t ci_kv_alloc_block(ci_kv_cache *kv) {
    int32_t b;
    if (kv->n_free > 0) {
        b = kv->free_list[--kv->n_free];
    } else if (kv->lru_head >= 0) {
        /* Evict the least recently used cached prefix block. Blocks chained
         * after it become unreachable by lookups (their parent is gone) and
         * age out of the LRU list in turn. */
        b = kv->lru_head;
        lru_unlink(kv, b);
        unregister(kv, b);
        kv->evictions++;
    } else {
        return -1;
    }
    kv->refcount[b] = 1;
    return b;
}

void ci_kv_retain_block(ci_kv_cache *kv, int32_t block) {
    if (kv->refcount[block]++ == 0 && kv->registered[block]) lru_unlink(kv, block);
}

void ci_kv_release_block(ci_kv_cache *kv, int32_t block) {
    if (--kv->refcount[block] != 0) return;
    if (kv->registered[block]) lru_push_tail(kv, block);
    else kv->free_list[kv->n_free++] = block;
}

uint64_t ci_kv_chain_hash(uint64_t parent_hash, const int32_t *tokens, int n) {
    /* FNV-1a over the parent hash and the token ids, then a murmur finaliser. */
    uint64_t h = 1469598103934665603ull ^ parent_hash;
    h *= 1099511628211ull;
    for (int i = 0; i < n; i++) {
        uint32_t t = (uint32_t)tokens[i];
        for (int k = 0; k < 4; k++) {
            h ^= (t >> (8 * k)) & 0xff;
            h *= 1099511628211ull;
        }
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int32_t ci_kv_lookup(const ci_kv_cache *kv, uint64_t hash, int32_t parent, const int32_t *tokens) {
    if (!kv->prefix_caching) return -1;
    for (int32_t b = kv->bucket[hash & kv->bucket_mask]; b >= 0; b = kv->chain_next[b])
        if (kv->hash[b] == hash && kv->parent[b] == parent &&
            memcmp(kv->tokens + (size_t)b * (size_t)kv->pool.block_size, tokens, (size_t)kv->pool.block_size * sizeof(int32_t)) == 0)
            return b;
    return -1;
}

void ci_kv_register(ci_kv_cache *kv, int32_t block, uint64_t hash, int32_t parent, const int32_t *tokens) {
    if (!kv->prefix_caching || kv->registered[block]) return;
    if (ci_kv_lookup(kv, hash, parent, tokens) >= 0) return; /* same prefix already cached in another block */
    kv->hash[block] = hash;
    kv->parent[block] = parent;
    memcpy(kv->tokens + (size_t)block * (size_t)kv->pool.block_size, tokens, (size_t)kv->pool.block_size * sizeof(int32_t));
    uint32_t bi = (uint32_t)(hash & kv->bucket_mask);
    kv->chain_next[block] = kv->bucket[bi];
    kv->bucket[bi] = block;
    kv->registered[block] = true;
}
