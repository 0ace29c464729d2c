/*
 * threadpool.c — see threadpool.h.
 *
 * One job at a time. The caller publishes (fn, ctx) and then one 64-bit
 * ticket = (job generation, task count, next task) with a release store,
 * and bumps `gen` to wake sleeping workers. Tasks are claimed by CAS on the
 * ticket, so a claim can only succeed for the job that is current; the
 * caller runs tasks too and returns once `done` reaches the task count.
 * It never waits for a worker that has not claimed anything: on a loaded
 * machine (other processes on the cores) a preempted worker costs nothing,
 * the caller just runs its share. A worker that wakes late finds the ticket
 * exhausted or belonging to a newer job and claims from that one. Job
 * fields stay valid while any claimed task of the job is unfinished, which
 * is exactly while the caller is still waiting.
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
    _Atomic unsigned long long ticket; /* TK_GEN | TK_N | TK_NEXT */
    atomic_int done;                   /* tasks finished in the current job */
    atomic_int caller_sleeping;
    atomic_int stop;
    /* current job: written by the caller before gen is bumped */
    void (*fn)(void *ctx, int task, int thread);
    void *ctx;
    /* workers with index >= job_threads claim nothing (the caller's cap);
     * stored before the ticket (release), read after it (acquire): a worker
     * that reads a newer job's value fails its claim on the older ticket */
    atomic_int job_threads;
    int task0; /* first task index of this chunk (jobs over TK_MAXN tasks run in chunks) */
    unsigned job_gen;
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
static _Thread_local int t_limit; /* ci_threadpool_limit of this thread, 0 = none */
/* threads a parallel_for will use (workers actually started + caller);
 * 0 = not known yet */
static atomic_int g_effective;

typedef struct worker_arg { int index; unsigned gen0; } worker_arg;

/* ticket layout: generation (24 bits) | task count (20) | next task (20) */
#define TK_BITS 20
#define TK_MAXN ((1 << TK_BITS) - 1)
#define TK_MASK ((unsigned long long)TK_MAXN)

/* Claims and runs tasks of whatever job is current until none is left. */
static void run_tasks(pool *p, int thread)
{
    unsigned long long t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    for (;;) {
        unsigned long long n = (t >> TK_BITS) & TK_MASK, next = t & TK_MASK;
        if (next >= n) break;
        if (thread > 0 && thread >= atomic_load_explicit(&p->job_threads, memory_order_acquire)) break;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* t reloaded */
        p->fn(p->ctx, p->task0 + (int)next, thread);
        /* seq_cst pairs with the caller's store of caller_sleeping then load
         * of done: one of the two sides sees the other (no lost wake-up) */
        int d = atomic_fetch_add(&p->done, 1) + 1;
        if (d == (int)n && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
        t = atomic_load_explicit(&p->ticket, memory_order_acquire);
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
    if (n_tasks == 1 || t_in_task || t_limit == 1 || pthread_mutex_trylock(&g_busy) != 0) {
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
    atomic_store_explicit(&p->job_threads, t_limit > 0 ? t_limit : MAX_THREADS, memory_order_release);
    for (int t0 = 0; t0 < n_tasks; t0 += TK_MAXN) {
        int n = n_tasks - t0 < TK_MAXN ? n_tasks - t0 : TK_MAXN;
        p->task0 = t0;
        atomic_store_explicit(&p->done, 0, memory_order_relaxed);
        p->job_gen = (p->job_gen + 1) & 0xffffff;
        atomic_store_explicit(&p->ticket,
                              ((unsigned long long)p->job_gen << (2 * TK_BITS)) | ((unsigned long long)n << TK_BITS),
                              memory_order_release);
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);

        t_in_task = 1;
        run_tasks(p, 0);
        t_in_task = 0;

        /* only tasks a worker has claimed and not finished are waited for */
        for (int i = 0; i < SPIN_ITERS && atomic_load_explicit(&p->done, memory_order_acquire) < n; i++)
            cpu_relax();
        if (atomic_load_explicit(&p->done, memory_order_acquire) < n) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->caller_sleeping, 1);
            while (atomic_load(&p->done) < n) pthread_cond_wait(&p->cv_done, &p->mu);
            atomic_store(&p->caller_sleeping, 0);
            pthread_mutex_unlock(&p->mu);
        }
    }
    pthread_mutex_unlock(&g_busy);
}

int ci_threadpool_threads(void)
{
    /* lock-free: may be called from inside a task while g_busy is held */
    int n = atomic_load_explicit(&g_effective, memory_order_acquire);
    if (n <= 0 && t_in_task) return 1;
    if (n <= 0) {
        pthread_mutex_lock(&g_busy);
        if (g_threads <= 0) g_threads = default_threads();
        n = g_threads;
        atomic_store(&g_effective, n);
        pthread_mutex_unlock(&g_busy);
    }
    return t_limit > 0 && t_limit < n ? t_limit : n;
}

int ci_threadpool_limit(int n)
{
    int prev = t_limit;
    t_limit = n > 0 ? n : 0;
    return prev;
}

int ci_threadpool_reserve(int n)
{
    if (n <= 0) n = default_threads();
    if (n > MAX_THREADS) n = MAX_THREADS;
    pthread_mutex_lock(&g_busy);
    if (n > g_threads) {
        pool_stop(); /* restarted with n threads by the next ci_parallel_for */
        g_threads = n;
        atomic_store(&g_effective, g_threads);
    }
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
