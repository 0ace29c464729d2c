/*
 * fuzz_safetensors — the safetensors reader on an image in memory: header
 * JSON, offsets, shapes, metadata; then the first and last elements of every
 * float tensor converted to f32 and every tensor looked up by name again.
 */
#include "fuzz_common.h"

#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cinfer_error err = {0};
    ci_st_file *f = ci_st_open_memory(data, size, "fuzz.safetensors", &err);
    if (!f) return 0;
    float out[4];
    for (size_t i = 0; i < f->n_tensors; i++) {
        const ci_st_tensor *t = &f->tensors[i];
        FUZZ_ASSERT(ci_st_find(f, t->name) != NULL, "tensor %s not found by name", t->name);
        size_t count = t->n_elements < 4 ? (size_t)t->n_elements : 4;
        ci_st_tensor_to_f32(t, 0, count, out, &err);
        if (t->n_elements >= count) ci_st_tensor_to_f32(t, t->n_elements - count, count, out, &err);
        ci_st_tensor_to_f32(t, t->n_elements, 1, out, &err); /* one past the end: must be refused */
    }
    for (size_t i = 0; i < f->n_metadata; i++) (void)ci_st_metadata(f, f->metadata_keys[i]);
    ci_st_close(f);
    return 0;
}
