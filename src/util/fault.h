/*
 * fault.h — fault injection for tests: make the Nth fallible allocation or
 * the Nth forward pass fail, so tests can walk every failure path and check
 * that it ends the affected requests and frees what they held.
 *
 * Compiled in only with CINFER_FAULT_INJECTION (the CMake option of the same
 * name: on for Debug and RelWithDebInfo, the build the tests use; off for
 * Release). Without it the hooks are constant false and cost nothing.
 *
 * What is counted: allocations through the fallible allocators
 * (ci_try_malloc, ci_try_realloc_array — the ones a caller handles NULL
 * from; the aborting ci_malloc family has no failure path to test) and
 * calls of qwen3_forward. Counters are process-wide and atomic.
 */
#ifndef CINFER_FAULT_H
#define CINFER_FAULT_H

#include <stdbool.h>

typedef enum ci_fault_kind {
    CI_FAULT_ALLOC = 1 << 0,
    CI_FAULT_FORWARD = 1 << 1,
} ci_fault_kind;

#ifdef CINFER_FAULT_INJECTION
/* Arms the kinds in `kinds` (a mask): the nth event of each kind from now
 * (n >= 1) fails, once; n <= 0 disarms them. */
void ci_fault_arm(unsigned kinds, int n);
/* Counts one event of `kind`; true when this one is to fail. */
bool ci_fault_hit(ci_fault_kind kind);
/* How many events of `kind` were counted since it was last armed (tests
 * size their loops with it). */
int ci_fault_count(ci_fault_kind kind);
#define CI_FAULT_ENABLED 1
#else
static inline void ci_fault_arm(unsigned kinds, int n) { (void)kinds, (void)n; }
static inline bool ci_fault_hit(ci_fault_kind kind) { (void)kind; return false; }
static inline int ci_fault_count(ci_fault_kind kind) { (void)kind; return 0; }
#define CI_FAULT_ENABLED 0
#endif

#endif
