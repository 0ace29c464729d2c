/* forward_dump MODEL '[ids]' [--bin] [--chunk N] — teacher-forced forward of
 * one sequence through the paged cache, N tokens per forward call.
 * Prints "position argmax p(argmax)" per position, or with --bin the raw
 * logits (vocab little-endian float32 per position) for the parity scripts.
 * A test tool, not installed. */
#include "model/loader.h"
#include "engine/kv_cache.h"
#include "kernels/threadpool.h"
#include "util/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: forward_dump MODEL '[ids]' [--bin] [--chunk N]\n"); return 2; }
    bool bin = false;
    int chunk = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--bin")) bin = true;
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
    }
    cinfer_error err = {0};
    qwen3_checkpoint ck;
    if (qwen3_checkpoint_open(argv[1], &ck, NULL, NULL, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    json_t *arr = json_loads(argv[2], 0, NULL);
    int n = (int)json_array_size(arr);
    int32_t *toks = malloc(n * sizeof *toks), *pos = malloc(n * sizeof *pos), *seq = calloc(n, sizeof *seq);
    for (int i = 0; i < n; i++) toks[i] = (int32_t)json_integer_value(json_array_get(arr, i)), pos[i] = i;
    if (chunk <= 0) chunk = n;
    const qwen3_hparams *hp = &ck.model.hp;
    ci_kv_cache kv;
    int bs = 16, nb = (n + bs - 1) / bs;
    if (ci_kv_cache_init(&kv, hp->n_layers, hp->n_kv_heads, hp->head_dim, bs, nb, CI_KV_F16, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    int32_t *blocks = malloc(nb * sizeof *blocks);
    for (int i = 0; i < nb; i++) blocks[i] = ci_kv_alloc_block(&kv);
    ci_block_table bt = {blocks, nb};
    qwen3_state st;
    if (qwen3_state_init(&st, hp, chunk, n, 0, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
    float *logits = malloc((size_t)chunk * hp->vocab * sizeof(float));
    for (int s0 = 0; s0 < n; s0 += chunk) {
        int m = n - s0 < chunk ? n - s0 : chunk;
        qwen3_batch b = {.n_tokens = m, .tokens = toks + s0, .pos = pos + s0, .seq = seq, .n_seqs = 1, .seq_blocks = &bt};
        int rows = qwen3_forward(&ck.model, &st, &kv.pool, &b, logits, &err);
        if (rows < 0) { fprintf(stderr, "%s\n", err.message); return 1; }
        for (int r = 0; r < rows; r++) {
            float *l = logits + (size_t)r * hp->vocab;
            if (bin) { fwrite(l, sizeof(float), hp->vocab, stdout); continue; }
            int best = 0;
            for (int v = 1; v < hp->vocab; v++) if (l[v] > l[best]) best = v;
            double mx = l[best], z = 0;
            for (int v = 0; v < hp->vocab; v++) z += exp(l[v] - mx);
            printf("%d %d %.5f\n", s0 + r, best, 1.0 / z);
        }
    }
    /* freed so that leak checkers see the library's own leaks only */
    free(logits);
    qwen3_state_free(&st);
    free(blocks);
    ci_kv_cache_free(&kv);
    free(toks);
    free(pos);
    free(seq);
    json_decref(arr);
    qwen3_checkpoint_close(&ck);
    return 0;
}
