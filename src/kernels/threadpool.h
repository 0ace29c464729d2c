/*
 * threadpool.h — a fixed pool of pthread workers for data-parallel loops.
 *
 * Threads: the calling thread plus (n-1) workers, n = number of online CPUs
 * by default, CINFER_THREADS=n in the environment, or
 * ci_threadpool_set_threads(n). Never more threads than that, so kernels do
 * not oversubscribe the cores.
 *
 * Idle workers spin briefly (≈ tens of µs, so back-to-back decode matmuls do
 * not pay a futex wake-up each) and then block on a condition variable;
 * they never spin while the pool is idle for longer.
 *
 * Concurrency: ci_parallel_for is meant to be called from one thread at a
 * time (the engine's scheduler thread). A call made while another thread's
 * call is in progress, or from inside a task, does not corrupt anything: it
 * runs all its tasks on the calling thread.
 */
#ifndef CINFER_THREADPOOL_H
#define CINFER_THREADPOOL_H

/* Runs fn(ctx, task, thread) for every task in [0, n_tasks) and returns when
 * all have finished. `thread` is in [0, ci_threadpool_threads()), distinct
 * among concurrently running tasks (0 = the calling thread), for per-thread
 * scratch. Tasks are handed out dynamically; their order is unspecified. */
void ci_parallel_for(int n_tasks, void (*fn)(void *ctx, int task, int thread), void *ctx);

/* Number of threads ci_parallel_for uses when called from this thread
 * (caller included, within this thread's limit), ≥ 1. */
int ci_threadpool_threads(void);

/* Resizes the pool (n ≤ 0: back to the default). Not to be called while a
 * ci_parallel_for is running. For tests and benchmarks; code that serves
 * several models uses ci_threadpool_reserve and ci_threadpool_limit. */
void ci_threadpool_set_threads(int n);

/* Per-model thread counts: every model asks the pool for its count at load
 * (the pool grows to the largest count asked for and never shrinks, so no
 * load takes threads from a model loaded before), and each forward pass
 * caps its own loops at its model's count, so per-thread scratch sized at
 * load stays large enough.
 * ci_threadpool_reserve grows the pool to at least n threads (n ≤ 0: the
 * default count) and returns the count asked for. */
int ci_threadpool_reserve(int n);
/* Caps the ci_parallel_for calls made from the calling thread (and tasks'
 * `thread` indices) at n threads, n ≤ 0: no cap. Returns the previous cap,
 * to be restored when done. */
int ci_threadpool_limit(int n);

/* Joins the workers (e.g. before exit, for leak checkers). The next
 * ci_parallel_for restarts them. */
void ci_threadpool_shutdown(void);

#endif
