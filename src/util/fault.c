/*
 * fault.c — see fault.h. One countdown per kind: arming stores n, every
 * event decrements it, and the event that takes it from 1 to 0 fails.
 */
#include "util/fault.h"

#ifdef CINFER_FAULT_INJECTION
#include <stdatomic.h>

enum { N_KINDS = 2 };

static atomic_int g_countdown[N_KINDS]; /* 0: disarmed */
static atomic_int g_counted[N_KINDS];

static int kind_index(ci_fault_kind kind) { return kind == CI_FAULT_ALLOC ? 0 : 1; }

void ci_fault_arm(unsigned kinds, int n) {
    for (int i = 0; i < N_KINDS; i++)
        if (kinds & (1u << i)) {
            atomic_store(&g_countdown[i], n > 0 ? n : 0);
            atomic_store(&g_counted[i], 0);
        }
}

bool ci_fault_hit(ci_fault_kind kind) {
    int i = kind_index(kind);
    atomic_fetch_add(&g_counted[i], 1);
    int c = atomic_load(&g_countdown[i]);
    /* CAS so that exactly one event among concurrent ones takes 1 -> 0 */
    while (c > 0 && !atomic_compare_exchange_weak(&g_countdown[i], &c, c - 1)) {
    }
    return c == 1;
}

int ci_fault_count(ci_fault_kind kind) { return atomic_load(&g_counted[kind_index(kind)]); }
#endif
