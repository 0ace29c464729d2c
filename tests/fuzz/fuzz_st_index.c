/*
 * fuzz_st_index — model.safetensors.index.json (the shard map of a
 * checkpoint) through ci_st_index_parse, the in-memory reader that
 * ci_st_model_open uses: the JSON, the weight_map checks (shard names that
 * leave the folder, duplicates, limits) and the error paths.
 */
#include "fuzz_common.h"

#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cinfer_error err = {0};
    ci_st_index ix;
    if (ci_st_index_parse((const char *)data, size, "model.safetensors.index.json", &ix, &err) == 0) {
        FUZZ_ASSERT(ix.n_shards > 0 || ix.n_entries == 0, "entries without shards");
        ci_st_index_free(&ix);
    }
    return 0;
}
