/*
 * bench_tokenizer.c — single-thread encode throughput of cinfer's tokenizer.
 *
 * Encodes each file as one text (like llama.cpp's tokenize of a whole
 * document), repeats until at least --seconds have passed, and reports MB/s
 * of input. A cold first pass is timed separately (word cache empty).
 * With --ids OUT, writes the ids of each file as a JSON array per line so a
 * script can compare them with another tokenizer.
 *
 * usage: bench_tokenizer TOKENIZER_PATH [--seconds S] [--ids OUT] FILE...
 */
#include "cinfer.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *tok_path = NULL, *ids_path = NULL;
    double min_seconds = 2.0;
    const char *files[16];
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) min_seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--ids") == 0 && i + 1 < argc) ids_path = argv[++i];
        else if (!tok_path) tok_path = argv[i];
        else if (n_files < 16) files[n_files++] = argv[i];
    }
    if (!tok_path || n_files == 0) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER_PATH [--seconds S] [--ids OUT] FILE...\n");
        return 2;
    }
    cinfer_error err = {0};
    double t0 = ci_now_seconds();
    cinfer_tokenizer *tok = cinfer_tokenizer_load(tok_path, &err);
    if (!tok) {
        fprintf(stderr, "load: %s\n", err.message);
        return 1;
    }
    printf("load: %.3f s\n", ci_now_seconds() - t0);
    FILE *ids_out = ids_path ? fopen(ids_path, "w") : NULL;
    for (int f = 0; f < n_files; f++) {
        size_t len;
        char *text = ci_read_file(files[f], (size_t)1 << 30, &len, &err);
        if (!text) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        int32_t *ids = NULL;
        double start = ci_now_seconds();
        long n = cinfer_tokenize(tok, text, len, 0, &ids, &err);
        double cold = ci_now_seconds() - start;
        if (n < 0) {
            fprintf(stderr, "encode: %s\n", err.message);
            return 1;
        }
        if (ids_out) {
            fputc('[', ids_out);
            for (long i = 0; i < n; i++) fprintf(ids_out, i ? ",%d" : "%d", ids[i]);
            fputs("]\n", ids_out);
        }
        cinfer_free(ids);
        int reps = 0;
        start = ci_now_seconds();
        double elapsed;
        do {
            n = cinfer_tokenize(tok, text, len, 0, &ids, &err);
            cinfer_free(ids);
            reps++;
            elapsed = ci_now_seconds() - start;
        } while (elapsed < min_seconds);
        printf("%s: %zu bytes, %ld tokens, cold %.1f MB/s, warm %.1f MB/s (%d runs)\n", files[f], len, n,
               len / cold / 1e6, len * (double)reps / elapsed / 1e6, reps);
        free(text);
    }
    if (ids_out) fclose(ids_out);
    cinfer_tokenizer_free(tok);
    return 0;
}
