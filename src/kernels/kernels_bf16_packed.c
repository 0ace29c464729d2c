/*
 * kernels_bf16_packed.c — BF16 weights repacked at load (placeholder: no
 * packed form yet, so ci_matmul keeps the stored layout).
 */
#include "kernels/kernels_impl.h"

ci_packed *ci_pack_weights_bf16(int n_seg, const void *const *w, const int *rows, int cols)
{
    (void)n_seg; (void)w; (void)rows; (void)cols;
    return NULL;
}

void ci_matmul_packed_bf16(const ci_packed *p, float *const *y, const size_t *ldy, const float *x, size_t ldx, int batch)
{
    (void)p; (void)y; (void)ldy; (void)x; (void)ldx; (void)batch;
}
