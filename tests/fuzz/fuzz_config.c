/*
 * fuzz_config — the Hugging Face JSON files that configure a model:
 * config.json (both transformers 4.x and 5.x keys; every accepted config
 * must pass the bounds checks again), generation_config.json, and
 * tokenizer_config.json through the chat-template source loader.
 * tokenizer_config.json goes through cinfer_chat_template_source_from_memory,
 * the reader behind the path loader.
 */
#include "fuzz_common.h"

#include "format/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cinfer_error err = {0};
    ci_model_config cfg;
    if (ci_model_config_parse((const char *)data, size, "config.json", &cfg, &err) == 0)
        FUZZ_ASSERT(ci_model_config_validate(&cfg, "config.json", &err) == 0, "accepted config fails validation: %s",
                    err.message);
    ci_generation_config gen;
    ci_generation_config_parse((const char *)data, size, "generation_config.json", &gen, &err);

    cinfer_chat_template_source src;
    if (cinfer_chat_template_source_from_memory((const char *)data, size, NULL, 0, "tokenizer_config.json", &src,
                                                &err) == 0)
        cinfer_chat_template_source_free(&src);
    return 0;
}
