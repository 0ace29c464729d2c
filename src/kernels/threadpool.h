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

/* Number of threads ci_parallel_for uses (caller included), ≥ 1. */
int ci_threadpool_threads(void);

/* Resizes the pool (n ≤ 0: back to the default). Not to be called while a
 * ci_parallel_for is running. */
void ci_threadpool_set_threads(int n);

/* Joins the workers (e.g. before exit, for leak checkers). The next
 * ci_parallel_for restarts them. */
void ci_threadpool_shutdown(void);

#endif
