/*
 * tokenizer.c — cinfer_tokenizer_load: finds the tokenizer file a path
 * stands for and hands it to the matching loader.
 *
 * Kept apart from the loaders so that other sources (a GGUF file's
 * tokenizer.ggml.* metadata, through ci_tok_builder) plug in here.
 */
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tokenizer_internal.h"

#include <string.h>

cinfer_tokenizer *cinfer_tokenizer_load(const char *path, cinfer_error *err) {
    if (!path || !*path) {
        ci_error(err, CINFER_ERR_INVALID, "cinfer_tokenizer_load: empty path");
        return NULL;
    }
    if (ci_is_directory(path)) {
        char *json_path = ci_path_join(path, "tokenizer.json");
        if (!ci_file_exists(json_path)) {
            ci_error(err, CINFER_ERR_IO, "%s: no tokenizer.json in this folder", path);
            free(json_path);
            return NULL;
        }
        cinfer_tokenizer *t = ci_tok_load_hf_json(json_path, err);
        free(json_path);
        return t;
    }
    size_t n = strlen(path);
    if (n >= 5 && strcmp(path + n - 5, ".gguf") == 0) {
        ci_gguf_file *f = ci_gguf_open(path, err);
        if (!f) return NULL;
        cinfer_tokenizer *t = ci_tok_load_gguf(f, path, err);
        ci_gguf_close(f); /* the builder copied every string it kept */
        return t;
    }
    return ci_tok_load_hf_json(path, err);
}
