/*
 * responses_store.c — the in-memory store behind GET /v1/responses/{id}
 * and previous_response_id.
 *
 * Entries hold JSON texts, not jansson trees: texts are immutable, so a
 * reader gets its own copy and no reference count is shared between
 * connection threads. A hash table (chained) finds an id; a doubly linked
 * list orders entries by last use. Two bounds keep memory fixed whatever
 * clients send: an entry count and a byte total (ids + texts); beyond
 * either the least recently used entries go. One mutex: every operation is
 * a lookup and a copy, far cheaper than generating the response.
 */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 1024

typedef struct entry {
    char *id, *response, *history;
    size_t bytes;
    struct entry *next_hash;
    struct entry *prev, *next; /* LRU: head = most recent */
} entry;

struct srv_response_store {
    pthread_mutex_t lock;
    entry *buckets[N_BUCKETS];
    entry *head, *tail;
    int n, max_entries;
    size_t bytes, max_bytes;
};

static unsigned bucket_of(const char *id) {
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return h % N_BUCKETS;
}

srv_response_store *srv_response_store_new(int max_entries, size_t max_bytes) {
    srv_response_store *st = ci_calloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    st->max_entries = max_entries;
    st->max_bytes = max_bytes;
    return st;
}

static void entry_free(entry *e) {
    free(e->id);
    free(e->response);
    free(e->history);
    free(e);
}

void srv_response_store_free(srv_response_store *st) {
    if (!st) return;
    for (entry *e = st->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static entry **find_slot(srv_response_store *st, const char *id) {
    entry **slot = &st->buckets[bucket_of(id)];
    while (*slot && strcmp((*slot)->id, id) != 0) slot = &(*slot)->next_hash;
    return slot;
}

static void lru_unlink(srv_response_store *st, entry *e) {
    if (e->prev) e->prev->next = e->next;
    else st->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(srv_response_store *st, entry *e) {
    e->next = st->head;
    e->prev = NULL;
    if (st->head) st->head->prev = e;
    st->head = e;
    if (!st->tail) st->tail = e;
}

/* Unlinks and frees the entry at *slot. Caller holds the lock. */
static void remove_at(srv_response_store *st, entry **slot) {
    entry *e = *slot;
    *slot = e->next_hash;
    lru_unlink(st, e);
    st->n--;
    st->bytes -= e->bytes;
    entry_free(e);
}

bool srv_response_store_put(srv_response_store *st, const char *id, const char *response, const char *history) {
    size_t bytes = strlen(id) + strlen(response) + (history ? strlen(history) : 0) + sizeof(entry);
    if (bytes > st->max_bytes) return false;
    entry *e = ci_calloc(1, sizeof *e);
    e->id = ci_strdup(id);
    e->response = ci_strdup(response);
    e->history = history ? ci_strdup(history) : NULL;
    e->bytes = bytes;
    pthread_mutex_lock(&st->lock);
    entry **slot = find_slot(st, id);
    if (*slot) remove_at(st, slot);
    while (st->tail && (st->n + 1 > st->max_entries || st->bytes + bytes > st->max_bytes))
        remove_at(st, find_slot(st, st->tail->id));
    slot = find_slot(st, id);
    *slot = e;
    lru_push_front(st, e);
    st->n++;
    st->bytes += bytes;
    pthread_mutex_unlock(&st->lock);
    return true;
}

bool srv_response_store_get(srv_response_store *st, const char *id, char **response, char **history) {
    pthread_mutex_lock(&st->lock);
    entry *e = *find_slot(st, id);
    if (e) {
        lru_unlink(st, e);
        lru_push_front(st, e);
        if (response) *response = ci_strdup(e->response);
        if (history) *history = e->history ? ci_strdup(e->history) : NULL;
    }
    pthread_mutex_unlock(&st->lock);
    return e != NULL;
}

bool srv_response_store_delete(srv_response_store *st, const char *id) {
    pthread_mutex_lock(&st->lock);
    entry **slot = find_slot(st, id);
    bool found = *slot != NULL;
    if (found) remove_at(st, slot);
    pthread_mutex_unlock(&st->lock);
    return found;
}
