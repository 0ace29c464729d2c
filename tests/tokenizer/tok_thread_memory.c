/*
 * tok_thread_memory.c — what encoding costs per thread: resident memory of
 * N threads that each encoded a slice of a text and are still alive (as a
 * server's connection threads are), and CPU time of one thread encoding the
 * whole text repeatedly (the word cache's effect on speed).
 *
 * A measurement tool, not a test (no ctest entry): RSS depends on the
 * allocator and the machine. Figures go into the report of a change.
 *
 * usage: tok_thread_memory TOKENIZER_PATH TEXT_FILE [THREADS [BYTES_PER_THREAD [REPEATS]]]
 */
#include "cinfer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double rss_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

typedef struct worker {
    const cinfer_tokenizer *tok;
    const char *text;
    size_t len;
    long n_ids;
    pthread_barrier_t *encoded, *measured;
} worker;

static void *run_worker(void *p) {
    worker *w = p;
    int32_t *ids = NULL;
    w->n_ids = cinfer_tokenize(w->tok, w->text, w->len, 0, &ids, NULL);
    cinfer_free(ids);
    pthread_barrier_wait(w->encoded);  /* every thread has encoded ... */
    pthread_barrier_wait(w->measured); /* ... and stays alive until RSS was read */
    return NULL;
}

/* Start of the UTF-8 character at or before i. */
static size_t char_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tok_thread_memory TOKENIZER_PATH TEXT_FILE [THREADS [BYTES_PER_THREAD [REPEATS]]]\n");
        return 2;
    }
    int n_threads = argc > 3 ? atoi(argv[3]) : 64;
    size_t slice = argc > 4 ? (size_t)atol(argv[4]) : 16384;
    int repeats = argc > 5 ? atoi(argv[5]) : 10;
    if (n_threads < 1 || n_threads > 4096 || slice < 1 || repeats < 0) return 2;
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(argv[1], &err);
    if (!tok) {
        fprintf(stderr, "load: %s\n", err.message);
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(len + 1);
    if (fread(text, 1, len, f) != len) return 1;
    fclose(f);

    double rss0 = rss_mib();
    pthread_barrier_t encoded, measured;
    pthread_barrier_init(&encoded, NULL, (unsigned)n_threads + 1);
    pthread_barrier_init(&measured, NULL, (unsigned)n_threads + 1);
    worker *w = calloc((size_t)n_threads, sizeof *w);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    for (int i = 0; i < n_threads; i++) {
        size_t start = char_start(text, (size_t)i * slice % len);
        size_t end = start + slice < len ? char_start(text, start + slice) : len;
        w[i] = (worker){tok, text + start, end - start, 0, &encoded, &measured};
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    pthread_barrier_wait(&encoded);
    double rss_alive = rss_mib();
    pthread_barrier_wait(&measured);
    for (int i = 0; i < n_threads; i++) pthread_join(th[i], NULL);
    double rss_joined = rss_mib();
    printf("threads %d, %zu bytes each: RSS after load %.1f MiB, all alive after encoding %.1f MiB (+%.2f MiB per "
           "thread), after join %.1f MiB\n",
           n_threads, slice, rss0, rss_alive, (rss_alive - rss0) / n_threads, rss_joined);

    /* Single thread, whole text, repeated: thread CPU time is what the word cache saves. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    long n = 0;
    for (int r = 0; r < repeats; r++) {
        int32_t *ids = NULL;
        n = cinfer_tokenize(tok, text, len, 0, &ids, NULL);
        cinfer_free(ids);
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double cpu = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (repeats)
        printf("one thread, whole text (%zu bytes, %ld ids) x %d: %.3f s CPU, %.1f MB/s\n", len, n, repeats, cpu,
               (double)len * repeats / cpu / 1e6);
    free(w);
    free(th);
    free(text);
    cinfer_tokenizer_free(tok);
    return 0;
}
