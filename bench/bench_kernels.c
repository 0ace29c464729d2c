/*
 * bench_kernels.c — ci_matmul throughput per dispatch variant.
 *
 * Decode-like shapes (batch 1) rotate through enough copies of the weights
 * (≥ 640 MiB) that every call streams them from DRAM, as a real model's
 * weights do (this host's L3 would otherwise hold one matrix). Prefill-like
 * shapes (batch 128) reuse one copy: they are compute-bound.
 * GFLOP/s = 2·batch·rows·cols / time; GB/s = weight bytes / time.
 *
 * usage: bench_kernels [seconds-per-case (default 0.3)] [--all]
 *   --all also times the scalar reference on prefill shapes (slow).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/threadpool.h"
#include "util/util.h"

typedef struct shape { const char *name; int batch, rows, cols; } shape;

/* Streaming read of a buffer, split over the pool: the memory bandwidth a
 * GEMV can hope for. */
typedef struct read_job { const uint64_t *p; size_t words_per_task; uint64_t sum[256]; } read_job;

static void read_task(void *ctx, int task, int thread)
{
    (void)thread;
    read_job *j = ctx;
    const uint64_t *p = j->p + (size_t)task * j->words_per_task;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i < j->words_per_task; i += 4) {
        a += p[i];
        b ^= p[i + 1];
        c += p[i + 2];
        d ^= p[i + 3];
    }
    j->sum[task] = a + b + c + d;
}

static void bench_read(double secs)
{
    const size_t bytes = (size_t)1 << 30, tasks = 64;
    uint64_t *buf = ci_malloc(bytes);
    memset(buf, 1, bytes);
    read_job *j = ci_calloc(1, sizeof *j);
    j->p = buf;
    j->words_per_task = bytes / 8 / tasks;
    for (int thr = 1; thr <= 2; thr++) {
        ci_threadpool_set_threads(thr);
        ci_parallel_for((int)tasks, read_task, j);
        int calls = 0;
        double t0 = ci_now_seconds(), el;
        do {
            ci_parallel_for((int)tasks, read_task, j);
            calls++;
            el = ci_now_seconds() - t0;
        } while (el < secs || calls < 2);
        printf("%-26s %-5s %-18s %3d %10.3f %9s %8.1f\n", "memory read 1 GiB", "-", "stream", thr,
               el / calls * 1e3, "-", (double)bytes * calls / el * 1e-9);
    }
    free(j);
    free(buf);
}

int main(int argc, char **argv)
{
    double secs = 0.3;
    int all = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all")) all = 1;
        else secs = atof(argv[i]);
    }
    const shape shapes[] = {
        { "decode  b=1   1024->3072", 1, 3072, 1024 },
        { "decode  b=1   3072->1024", 1, 1024, 3072 },
        { "prefill b=128 1024->3072", 128, 3072, 1024 },
        { "prefill b=128 3072->1024", 128, 1024, 3072 },
        { "prefill b=512 1024->3072", 512, 3072, 1024 },
    };
    const ci_wtype wts[] = { CI_WT_F32, CI_WT_BF16, CI_WT_Q8_0, CI_WT_Q4_0 };
    printf("selected: %s\n", ci_kernels_describe());
    printf("%-26s %-5s %-18s %3s %10s %9s %8s\n", "shape", "wtype", "variant", "thr", "ms/call", "GFLOP/s", "GB/s");
    bench_read(secs);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        for (size_t wi = 0; wi < sizeof wts / sizeof wts[0]; wi++) {
            const ci_wtype wt = wts[wi];
            const size_t rb = ci_row_bytes(wt, (size_t)s->cols), wbytes = rb * (size_t)s->rows;
            int ncopies = s->batch == 1 ? (int)((640u << 20) / wbytes) + 1 : 1;
            uint8_t *w = ci_malloc(wbytes * (size_t)ncopies);
            float *row = ci_malloc(sizeof(float) * (size_t)s->cols);
            for (int r = 0; r < s->rows; r++) {
                for (int k = 0; k < s->cols; k++) row[k] = (float)((r * 131 + k * 71) % 257 - 128) / 256.0f;
                ci_quantize_row(w + (size_t)r * rb, wt, row, (size_t)s->cols);
            }
            for (int c = 1; c < ncopies; c++) memcpy(w + (size_t)c * wbytes, w, wbytes);
            float *x = ci_malloc(sizeof(float) * (size_t)s->batch * s->cols);
            float *y = ci_malloc(sizeof(float) * (size_t)s->batch * s->rows);
            for (size_t i = 0; i < (size_t)s->batch * s->cols; i++) x[i] = (float)((i * 37) % 101 - 50) / 50.0f;
            for (int v = 0; v < CI_KERNEL_COUNT; v++) {
                const ci_kernel_table *t = ci_kernels_get((ci_kernel_variant)v);
                if (!t) continue;
                if (v == CI_KERNEL_SCALAR && s->batch > 1 && !all) continue;
                /* variants that share code for this type: skip duplicates */
                if ((wt == CI_WT_F32 || wt == CI_WT_BF16) && (v == CI_KERNEL_AVX2_VNNI || v == CI_KERNEL_AVX512_VNNI))
                    continue;
                for (int thr = 1; thr <= 2; thr++) {
                    ci_threadpool_set_threads(thr);
                    ci_matmul_with(t, y, (size_t)s->rows, x, (size_t)s->cols, s->batch, w, wt, s->rows, s->cols);
                    int calls = 0, c = 0;
                    double t0 = ci_now_seconds(), el;
                    do {
                        c = (c + 1) % ncopies;
                        ci_matmul_with(t, y, (size_t)s->rows, x, (size_t)s->cols, s->batch, w + (size_t)c * wbytes, wt,
                                       s->rows, s->cols);
                        calls++;
                        el = ci_now_seconds() - t0;
                    } while (el < secs || calls < 3);
                    double per = el / calls;
                    printf("%-26s %-5s %-18s %3d %10.3f %9.1f %8.1f\n", s->name, ci_wtype_name(wt), t->name, thr,
                           per * 1e3, 2.0 * s->batch * s->rows * s->cols / per * 1e-9, (double)wbytes / per * 1e-9);
                    fflush(stdout);
                }
            }
            /* the packed Q8_0 form the loader uses on VNNI CPUs */
            if (wt == CI_WT_Q8_0) {
                ci_packed **pk = ci_malloc(sizeof *pk * (size_t)ncopies);
                int ok = 1;
                for (int c = 0; c < ncopies && ok; c++) {
                    const void *wc = w + (size_t)c * wbytes;
                    pk[c] = ci_pack_weights(1, &wc, &s->rows, wt, s->cols);
                    ok = pk[c] != NULL;
                }
                /* both packed kernels, forced (the default picks by batch) */
                for (int amx = 0; amx <= 1 && ok; amx++)
                for (int thr = 1; thr <= 2; thr++) {
                    if (amx && (s->batch < 2 || !ci_amx_int8_usable())) break;
                    ci_packed_set_amx_min_batch(amx ? 1 : INT_MAX);
                    ci_threadpool_set_threads(thr);
                    size_t ldy = (size_t)s->rows;
                    ci_matmul_packed(pk[0], &y, &ldy, x, (size_t)s->cols, s->batch);
                    int calls = 0, c = 0;
                    double t0 = ci_now_seconds(), el;
                    do {
                        c = (c + 1) % ncopies;
                        ci_matmul_packed(pk[c], &y, &ldy, x, (size_t)s->cols, s->batch);
                        calls++;
                        el = ci_now_seconds() - t0;
                    } while (el < secs || calls < 3);
                    double per = el / calls;
                    printf("%-26s %-5s %-18s %3d %10.3f %9.1f %8.1f\n", s->name, ci_wtype_name(wt),
                           amx ? "packed-amx" : "packed-vnni", thr, per * 1e3,
                           2.0 * s->batch * s->rows * s->cols / per * 1e-9, (double)wbytes / per * 1e-9);
                    fflush(stdout);
                }
                ci_packed_set_amx_min_batch(0);
                for (int c = 0; c < ncopies; c++)
                    if (pk[c]) ci_packed_free(pk[c]);
                free(pk);
            }
            free(w); free(row); free(x); free(y);
        }
    }
    ci_threadpool_shutdown();
    return 0;
}
