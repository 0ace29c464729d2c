/*
 * fuzz_tokenizer — encode and decode with the real Qwen3 tokenizer (the npm
 * reference package's tokenizer.json, loaded once).
 *
 * Properties, for every input that is valid UTF-8:
 *   - decode(encode(x)) == NFC(x): the byte-level BPE loses nothing, and
 *     Qwen3's only normalizer is NFC (utf8proc, the library the Unicode
 *     standard's tables come from here too);
 *   - the same with special-token text matched (flags 0): a special token
 *     decodes to its own text;
 *   - streaming decode (one id at a time, then flush) == decode.
 * Invalid UTF-8 must encode without error (it is replaced by U+FFFD).
 */
#include "fuzz_common.h"

#include <utf8proc.h>

#include "cinfer.h"

static cinfer_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    cinfer_error err = {0};
    tok = cinfer_tokenizer_load(fuzz_qwen3_tokenizer_dir(), &err);
    if (!tok) {
        fprintf(stderr, "fuzz_tokenizer: cannot load the Qwen3 tokenizer (%s): %s\n"
                        "  run `make test` once (it installs node_modules) or set CINFER_FUZZ_TOKENIZER\n",
                fuzz_qwen3_tokenizer_dir(), err.message);
        exit(1);
    }
    return 0;
}

static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return false;
        i += (size_t)k;
    }
    return true;
}

static void check_round_trip(const uint8_t *data, size_t size, const uint8_t *want, size_t want_len,
                             unsigned flags) {
    cinfer_error err = {0};
    int32_t *ids = NULL;
    long n = cinfer_tokenize(tok, (const char *)data, size, flags, &ids, &err);
    FUZZ_ASSERT(n >= 0, "encode failed: %s", err.message);
    size_t len = 0;
    char *back = cinfer_detokenize(tok, ids, (size_t)n, false, &len, &err);
    FUZZ_ASSERT(back != NULL, "decode failed: %s", err.message);
    if (want) FUZZ_ASSERT(len == want_len && memcmp(back, want, len) == 0, "round trip differs (flags %u)", flags);

    cinfer_detok_stream *st = cinfer_detok_stream_new(tok, false);
    FUZZ_ASSERT(st != NULL, "no stream");
    size_t at = 0, piece_len;
    for (long i = 0; i < n; i++) {
        const char *p = cinfer_detok_stream_push(st, ids[i], &piece_len);
        FUZZ_ASSERT(at + piece_len <= len && (!piece_len || memcmp(back + at, p, piece_len) == 0),
                    "stream piece %ld differs from decode", i);
        at += piece_len;
    }
    const char *p = cinfer_detok_stream_flush(st, &piece_len);
    FUZZ_ASSERT(at + piece_len == len && (!piece_len || memcmp(back + at, p, piece_len) == 0),
                "stream flush differs from decode");
    cinfer_detok_stream_free(st);
    cinfer_free(back);
    cinfer_free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!valid_utf8(data, size)) {
        check_round_trip(data, size, NULL, 0, 0); /* no expectation: U+FFFD replaces the invalid bytes */
        return 0;
    }
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t nfc_len =
        utf8proc_map(data, (utf8proc_ssize_t)size, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    FUZZ_ASSERT(nfc_len >= 0, "utf8proc rejected valid UTF-8");
    check_round_trip(data, size, nfc, (size_t)nfc_len, CINFER_TOKENIZE_SPLIT_SPECIAL);
    check_round_trip(data, size, nfc, (size_t)nfc_len, 0);
    free(nfc);
    return 0;
}
