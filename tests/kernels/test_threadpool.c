/* test_threadpool.c — ci_parallel_for: every task runs exactly once, thread
 * ids are in range and distinct among concurrent tasks, across many calls
 * with varied task counts and pool sizes; nested and concurrent calls fall
 * back to inline execution. No sleeps, no timing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "kernels/threadpool.h"
#include "../unit/test.h"

#define MAXT 1000

typedef struct job {
    atomic_int hits[MAXT];
    atomic_int bad_thread;
    atomic_int busy[64]; /* per thread id: tasks currently running on it */
    int nthreads;
    long sum_expect;
    atomic_long sum;
} job;

static void task_fn(void *ctx, int task, int thread)
{
    job *j = ctx;
    if (thread < 0 || thread >= j->nthreads || thread >= 64) {
        atomic_fetch_add(&j->bad_thread, 1);
        thread = 0;
    }
    if (atomic_fetch_add(&j->busy[thread], 1) != 0) atomic_fetch_add(&j->bad_thread, 1);
    atomic_fetch_add(&j->hits[task], 1);
    /* a little uneven work */
    long s = 0;
    for (int i = 0; i < (task % 7) * 50; i++) s += i ^ task;
    atomic_fetch_add(&j->sum, (long)task + (s & 0));
    atomic_fetch_sub(&j->busy[thread], 1);
}

static int run_check(int n)
{
    static job j;
    for (int i = 0; i < MAXT; i++) atomic_store(&j.hits[i], 0);
    atomic_store(&j.bad_thread, 0);
    atomic_store(&j.sum, 0);
    j.nthreads = ci_threadpool_threads();
    ci_parallel_for(n, task_fn, &j);
    int ok = atomic_load(&j.bad_thread) == 0;
    for (int i = 0; i < n; i++) ok &= atomic_load(&j.hits[i]) == 1;
    for (int i = n; i < MAXT; i++) ok &= atomic_load(&j.hits[i]) == 0;
    ok &= atomic_load(&j.sum) == (long)n * (n - 1) / 2;
    return ok;
}

/* nested: a task calling ci_parallel_for runs the inner loop inline */
static atomic_int nested_count;
static void inner_fn(void *ctx, int task, int thread)
{
    (void)ctx; (void)task;
    if (thread == 0) atomic_fetch_add(&nested_count, 1);
}
static void outer_fn(void *ctx, int task, int thread)
{
    (void)ctx; (void)task; (void)thread;
    ci_parallel_for(5, inner_fn, NULL);
}

/* concurrent callers: each keeps its own results straight */
typedef struct cjob { atomic_int hits[200]; int ok; } cjob;
static void ctask(void *ctx, int task, int thread)
{
    (void)thread;
    atomic_fetch_add(&((cjob *)ctx)->hits[task], 1);
}
static void *caller_main(void *arg)
{
    cjob *c = arg;
    c->ok = 1;
    for (int rep = 0; rep < 300; rep++) {
        for (int i = 0; i < 200; i++) atomic_store(&c->hits[i], 0);
        int n = 1 + rep % 200;
        ci_parallel_for(n, ctask, c);
        for (int i = 0; i < 200; i++) c->ok &= atomic_load(&c->hits[i]) == (i < n);
    }
    return NULL;
}

int main(void)
{
    CHECK(ci_threadpool_threads() >= 1);
    const int sizes[] = { 1, 2, 3, 4, 8 };
    for (int si = 0; si < 5; si++) {
        ci_threadpool_set_threads(sizes[si]);
        CHECK(ci_threadpool_threads() == sizes[si]);
        int bad = 0;
        for (int rep = 0; rep < 2000; rep++) {
            int n = (rep * 37) % 300;
            if (rep % 100 == 99) n = MAXT;
            bad += !run_check(n);
        }
        CHECK_MSG(bad == 0, "threads=%d: %d failing calls", sizes[si], bad);
        atomic_store(&nested_count, 0);
        ci_parallel_for(6, outer_fn, NULL);
        CHECK_MSG(atomic_load(&nested_count) == 30, "nested threads=%d: %d", sizes[si], atomic_load(&nested_count));
    }
    ci_threadpool_set_threads(2);
    static cjob c1, c2;
    pthread_t t1, t2;
    pthread_create(&t1, NULL, caller_main, &c1);
    pthread_create(&t2, NULL, caller_main, &c2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(c1.ok && c2.ok);
    /* after shutdown the pool restarts on demand */
    ci_threadpool_shutdown();
    CHECK(run_check(50));
    ci_threadpool_set_threads(0);
    CHECK(run_check(77));
    ci_threadpool_shutdown();
    TEST_MAIN_END();
}
