/* test_responses_store.c — the bounded store behind previous_response_id
 * (src/server/responses_store.c): lookups, replacement, deletion, LRU
 * eviction by entry count and by bytes, oversized entries, and concurrent
 * use from several threads (run under TSan/ASan in sanitizer builds). */
#include "server/server.h"
#include "test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static bool has(srv_response_store *st, const char *id) { return srv_response_store_get(st, id, NULL, NULL); }

static void test_basic(void) {
    srv_response_store *st = srv_response_store_new(8, 1 << 20);
    CHECK(!has(st, "a"));
    CHECK(srv_response_store_put(st, "a", "{\"n\":1}", "[1]"));
    char *r = NULL, *h = NULL;
    CHECK(srv_response_store_get(st, "a", &r, &h));
    CHECK_STREQ(r, "{\"n\":1}");
    CHECK_STREQ(h, "[1]");
    free(r), free(h);
    /* same id: replaced */
    CHECK(srv_response_store_put(st, "a", "{\"n\":2}", NULL));
    CHECK(srv_response_store_get(st, "a", &r, &h));
    CHECK_STREQ(r, "{\"n\":2}");
    CHECK(h == NULL);
    free(r);
    CHECK(srv_response_store_delete(st, "a"));
    CHECK(!srv_response_store_delete(st, "a"));
    CHECK(!has(st, "a"));
    srv_response_store_free(st);
}

static void test_lru_count(void) {
    srv_response_store *st = srv_response_store_new(3, 1 << 20);
    srv_response_store_put(st, "a", "1", NULL);
    srv_response_store_put(st, "b", "2", NULL);
    srv_response_store_put(st, "c", "3", NULL);
    CHECK(has(st, "a")); /* a is now the most recently used: b goes next */
    srv_response_store_put(st, "d", "4", NULL);
    CHECK(!has(st, "b"));
    CHECK(has(st, "a") && has(st, "c") && has(st, "d"));
    srv_response_store_put(st, "e", "5", NULL); /* a, c, d were read in that order: a goes */
    CHECK(!has(st, "a"));
    CHECK(has(st, "c") && has(st, "d") && has(st, "e"));
    srv_response_store_free(st);
}

static void test_bytes(void) {
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* room for two entries of ~1 KiB (plus bookkeeping), not three */
    srv_response_store *st = srv_response_store_new(100, 2 * (sizeof big + 200));
    CHECK(srv_response_store_put(st, "a", big, NULL));
    CHECK(srv_response_store_put(st, "b", big, NULL));
    CHECK(srv_response_store_put(st, "c", big, NULL));
    CHECK(!has(st, "a"));
    CHECK(has(st, "b") && has(st, "c"));
    /* one entry over the whole limit is refused and evicts nothing */
    char *huge = malloc(10000);
    memset(huge, 'y', 9999);
    huge[9999] = '\0';
    CHECK(!srv_response_store_put(st, "h", huge, NULL));
    CHECK(!has(st, "h") && has(st, "b") && has(st, "c"));
    free(huge);
    srv_response_store_free(st);
}

#define THREADS 4
#define OPS 2000

static void *worker(void *arg) {
    srv_response_store *st = ((void **)arg)[0];
    int t = (int)(intptr_t)((void **)arg)[1];
    char id[32], body[32];
    for (int i = 0; i < OPS; i++) {
        snprintf(id, sizeof id, "r%d", (i * 7 + t) % 50);
        snprintf(body, sizeof body, "{\"t\":%d,\"i\":%d}", t, i);
        switch (i % 3) {
        case 0: srv_response_store_put(st, id, body, "[]"); break;
        case 1: {
            char *r = NULL;
            if (srv_response_store_get(st, id, &r, NULL)) {
                if (r[0] != '{') abort(); /* a torn or freed text */
                free(r);
            }
            break;
        }
        default: srv_response_store_delete(st, id);
        }
    }
    return NULL;
}

static void test_threads(void) {
    srv_response_store *st = srv_response_store_new(16, 1 << 20);
    pthread_t th[THREADS];
    void *args[THREADS][2];
    for (int t = 0; t < THREADS; t++) {
        args[t][0] = st, args[t][1] = (void *)(intptr_t)t;
        pthread_create(&th[t], NULL, worker, args[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    int n = 0;
    char id[32];
    for (int k = 0; k < 50; k++) {
        snprintf(id, sizeof id, "r%d", k);
        n += has(st, id);
    }
    CHECK_MSG(n <= 16, "%d entries kept, limit 16", n);
    srv_response_store_free(st);
}

int main(void) {
    test_basic();
    test_lru_count();
    test_bytes();
    test_threads();
    TEST_MAIN_END();
}
