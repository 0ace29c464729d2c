/*
 * fuzz_tokenizer_json — the tokenizer.json loader (vocabulary, merges in
 * both JSON forms, added tokens, normalizer, pre-tokenizer regex translated
 * from Oniguruma to PCRE2, decoder); an accepted tokenizer then encodes and
 * decodes a fixed text.
 * The input is the file's bytes, through cinfer_tokenizer_load_json (the
 * loader cinfer_tokenizer_load maps the file into).
 */
#include "fuzz_common.h"

#include "cinfer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load_json((const char *)data, size, &err);
    if (!tok) return 0;
    static const char text[] = "Hello, wörld! 123 <|im_end|> \xff\xfe zzzz\n\t 你好 🙂";
    int32_t *ids = NULL;
    long n = cinfer_tokenize(tok, text, sizeof text - 1, 0, &ids, &err);
    if (n >= 0) {
        size_t len = 0;
        cinfer_free(cinfer_detokenize(tok, ids, (size_t)n, false, &len, &err));
        cinfer_free(cinfer_detokenize(tok, ids, (size_t)n, true, &len, &err));
    }
    cinfer_free(ids);
    size_t vocab = cinfer_tokenizer_vocab_size(tok);
    for (int32_t id = 0; id < (int32_t)vocab && id < 64; id++) {
        size_t blen;
        (void)cinfer_tokenizer_token_bytes(tok, id, &blen);
        (void)cinfer_tokenizer_is_special(tok, id);
    }
    cinfer_tokenizer_free(tok);
    return 0;
}
