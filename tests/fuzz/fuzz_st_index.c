/*
 * fuzz_st_index — model.safetensors.index.json (the shard map of a
 * checkpoint) through ci_st_model_open.
 *
 * The index reader takes only a path today, so each input is written to a
 * private temporary folder; the shards it names do not exist there, so what
 * is exercised is the JSON, the weight_map checks (shard names that leave
 * the folder, duplicates, limits) and the error paths.
 * TODO(in-memory index entry point): call it directly once it exists.
 */
#include "fuzz_common.h"

#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file("model.safetensors.index.json", data, size);
    cinfer_error err = {0};
    ci_st_model *m = ci_st_model_open(path, &err);
    if (m) ci_st_model_close(m);
    return 0;
}
