/*
 * threadpool.c — see threadpool.h.
 *
 * One job at a time: the caller publishes (fn, ctx, n_tasks), resets the
 * task counter and bumps `gen` (release). Workers notice the new generation
 * (spinning briefly, else sleeping on cv_work), grab tasks with an atomic
 * counter, then decrement `pending`. The caller runs tasks too, then waits
 * until every worker has decremented `pending`: that is what makes it safe
 * to overwrite the job fields for the next call (no worker still reads
 * them). Waking all workers per job is fine here: callers only fan out work
 * big enough to need them.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernels/threadpool.h"
#include "util/util.h"

#define MAX_THREADS 256
/* ~50-100 µs of pause instructions: covers the gap between consecutive
 * matmuls of a decode step without burning a core when the engine idles. */
#define SPIN_ITERS 2000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct pool {
    int nworkers;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    atomic_uint gen;
    atomic_int next;
    atomic_int pending;
    atomic_int stop;
    /* current job: written by the caller before gen is bumped */
    void (*fn)(void *ctx, int task, int thread);
    void *ctx;
    int n_tasks;
} pool;

static pool g_pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv_work = PTHREAD_COND_INITIALIZER,
    .cv_done = PTHREAD_COND_INITIALIZER,
};
/* Held for a whole ci_parallel_for and for (re)configuration; a concurrent
 * caller that cannot take it runs its tasks inline instead. */
static pthread_mutex_t g_busy = PTHREAD_MUTEX_INITIALIZER;
static int g_started;
static int g_threads; /* configured total incl. caller; 0 = not yet decided */
static _Thread_local int t_in_task;
/* threads a parallel_for will use (workers actually started + caller);
 * 0 = not known yet */
static atomic_int g_effective;

typedef struct worker_arg { int index; unsigned gen0; } worker_arg;

static void run_tasks(pool *p, int thread)
{
    int n = p->n_tasks;
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= n) break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *argp)
{
    worker_arg arg = *(worker_arg *)argp;
    free(argp);
    pool *p = &g_pool;
    unsigned seen = arg.gen0;
    t_in_task = 1; /* a task calling ci_parallel_for runs it inline */
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < SPIN_ITERS; i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        run_tasks(p, arg.index);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static int default_threads(void)
{
    const char *env = getenv("CINFER_THREADS");
    long n = 0;
    if (env && *env) n = strtol(env, NULL, 10);
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    return (int)n;
}

/* g_busy held */
static void pool_start(void)
{
    pool *p = &g_pool;
    if (g_threads <= 0) g_threads = default_threads();
    int want = g_threads - 1;
    p->th = want > 0 ? ci_calloc((size_t)want, sizeof(pthread_t)) : NULL;
    p->nworkers = 0;
    atomic_store(&p->stop, 0);
    unsigned g0 = atomic_load(&p->gen);
    for (int i = 0; i < want; i++) {
        worker_arg *a = ci_malloc(sizeof *a);
        a->index = i + 1;
        a->gen0 = g0;
        if (pthread_create(&p->th[i], NULL, worker_main, a) != 0) {
            free(a); /* run with the workers we got */
            break;
        }
        p->nworkers++;
    }
    g_started = 1;
    atomic_store(&g_effective, p->nworkers + 1);
}

/* g_busy held */
static void pool_stop(void)
{
    pool *p = &g_pool;
    if (!g_started) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->th[i], NULL);
    free(p->th);
    p->th = NULL;
    p->nworkers = 0;
    g_started = 0;
}

void ci_parallel_for(int n_tasks, void (*fn)(void *ctx, int task, int thread), void *ctx)
{
    if (n_tasks <= 0) return;
    if (n_tasks == 1 || t_in_task || pthread_mutex_trylock(&g_busy) != 0) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    if (!g_started) pool_start();
    pool *p = &g_pool;
    if (p->nworkers == 0) {
        pthread_mutex_unlock(&g_busy);
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->nworkers, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);

    t_in_task = 1;
    run_tasks(p, 0);
    t_in_task = 0;

    for (int i = 0; i < SPIN_ITERS && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
        cpu_relax();
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&g_busy);
}

int ci_threadpool_threads(void)
{
    /* lock-free: may be called from inside a task while g_busy is held */
    int n = atomic_load_explicit(&g_effective, memory_order_acquire);
    if (n > 0) return n;
    if (t_in_task) return 1;
    pthread_mutex_lock(&g_busy);
    if (g_threads <= 0) g_threads = default_threads();
    n = g_threads;
    atomic_store(&g_effective, n);
    pthread_mutex_unlock(&g_busy);
    return n;
}

void ci_threadpool_set_threads(int n)
{
    pthread_mutex_lock(&g_busy);
    pool_stop();
    g_threads = n > 0 ? (n > MAX_THREADS ? MAX_THREADS : n) : default_threads();
    atomic_store(&g_effective, g_threads);
    pthread_mutex_unlock(&g_busy);
}

void ci_threadpool_shutdown(void)
{
    pthread_mutex_lock(&g_busy);
    pool_stop();
    pthread_mutex_unlock(&g_busy);
}
