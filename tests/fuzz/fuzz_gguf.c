/*
 * fuzz_gguf — the GGUF reader on an image in memory, then everything a model
 * load reads from the metadata: every value (arrays element by element, as
 * integers, unsigned and floats), the model hyper-parameters and the
 * tokenizer built from tokenizer.ggml.*, which then encodes and decodes a
 * fixed text (a vocabulary without byte tokens must fail cleanly or
 * encode, never read out of bounds).
 */
#include "fuzz_common.h"

#include "format/gguf.h"
#include "format/model_config.h"
#include "tokenizer/tok_gguf.h"

static double walk_value(const ci_gguf_value *v, int depth) {
    double acc = 0;
    if (v->type != CI_GGUF_ARRAY || depth > CI_GGUF_MAX_ARRAY_DEPTH) return acc;
    size_t n = v->v.arr.count < 4096 ? v->v.arr.count : 4096;
    for (size_t i = 0; i < n; i++) {
        if (v->v.arr.elem_type == CI_GGUF_ARRAY) {
            acc += walk_value(&v->v.arr.items[i], depth + 1);
        } else if (v->v.arr.elem_type == CI_GGUF_STRING) {
            acc += (double)v->v.arr.strings[i].len;
        } else {
            uint64_t u = 0;
            int64_t k = 0;
            if (ci_gguf_array_u64(v, i, &u)) acc += (double)u;
            if (ci_gguf_array_i64(v, i, &k)) acc += (double)k;
            acc += ci_gguf_array_f64(v, i);
        }
    }
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cinfer_error err = {0};
    ci_gguf_file *f = ci_gguf_open_memory(data, size, "fuzz.gguf", &err);
    if (!f) return 0;
    volatile double sink = 0;
    for (size_t i = 0; i < f->n_kv; i++) sink += walk_value(&f->kv[i].value, 0);
    for (size_t i = 0; i < f->n_tensors; i++) {
        const ci_gguf_tensor *t = &f->tensors[i];
        if (t->n_bytes) sink += t->data[0] + t->data[t->n_bytes - 1]; /* the reader bounds-checked both */
    }
    (void)sink;
    ci_model_config cfg;
    ci_model_config_from_gguf(f, &cfg, &err);
    cinfer_tokenizer *tok = ci_tok_load_gguf(f, "fuzz.gguf", &err);
    if (tok) {
        static const char text[] = "zzzz Hello, wörld! 123 <|im_end|>\n\t 你好";
        int32_t *ids = NULL;
        long n = cinfer_tokenize(tok, text, sizeof text - 1, 0, &ids, &err);
        if (n >= 0) {
            size_t len = 0;
            char *back = cinfer_detokenize(tok, ids, (size_t)n, false, &len, &err);
            cinfer_free(back);
        }
        cinfer_free(ids);
        cinfer_tokenizer_free(tok);
    }
    ci_gguf_close(f);
    return 0;
}
