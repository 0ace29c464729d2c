/* name_index.c — see name_index.h. FNV-1a hashing, linear probing. */
#include "name_index.h"

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_name(const char *name, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)name[i]) * 0x100000001b3ull;
    return h;
}

void ci_name_index_init(ci_name_index *ix, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 && cap < ((size_t)1 << 40)) cap *= 2;
    ix->slots = ci_calloc(cap, sizeof *ix->slots);
    ix->cap = cap;
    ix->count = 0;
}

static void grow(ci_name_index *ix) {
    ci_name_index bigger;
    bigger.cap = ix->cap * 2;
    bigger.count = 0;
    bigger.slots = ci_calloc(bigger.cap, sizeof *bigger.slots);
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i].name) ci_name_index_insert(&bigger, ix->slots[i].name, ix->slots[i].len, ix->slots[i].index);
    free(ix->slots);
    *ix = bigger;
}

size_t ci_name_index_insert(ci_name_index *ix, const char *name, size_t len, size_t index) {
    if ((ix->count + 1) * 2 > ix->cap) grow(ix);
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)hash_name(name, len) & mask;; i = (i + 1) & mask) {
        struct ci_name_slot *s = &ix->slots[i];
        if (!s->name) {
            s->name = name;
            s->len = len;
            s->index = index;
            ix->count++;
            return SIZE_MAX;
        }
        if (s->len == len && memcmp(s->name, name, len) == 0) return s->index;
    }
}

size_t ci_name_index_find(const ci_name_index *ix, const char *name, size_t len) {
    if (!ix->slots) return SIZE_MAX;
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)hash_name(name, len) & mask;; i = (i + 1) & mask) {
        const struct ci_name_slot *s = &ix->slots[i];
        if (!s->name) return SIZE_MAX;
        if (s->len == len && memcmp(s->name, name, len) == 0) return s->index;
    }
}

void ci_name_index_free(ci_name_index *ix) {
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = ix->count = 0;
}
