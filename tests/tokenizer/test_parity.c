/*
 * test_parity.c — compares cinfer's Qwen3 tokenizer with the reference ids
 * produced by reference_encode.mjs (see there for how HF's behaviour is
 * reconstructed where the reference library differs from HF).
 *
 * For every corpus string: encode == reference (with and without special
 * token recognition), decode(encode(s)) == the NFC text the reference
 * computed, decode == the reference's decode, and the streaming decoder's
 * pieces + flush == the full decode (with and without skip_special).
 *
 * usage: test_parity TOKENIZER_DIR CORPUS.jsonl EXPECTED.jsonl
 */
#include "cinfer.h"
#include "../unit/test.h"

#include <jansson.h>
#include <stdlib.h>

static int reported;

static void show_text(const char *label, const char *s, size_t n) {
    fprintf(stderr, "  %s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n && i < 160; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fprintf(stderr, "%s\"\n", n > 160 ? "..." : "");
}

static bool same_ids(const char *what, size_t line, const char *text, size_t text_len, json_t *expected,
                     const int32_t *got, long n) {
    bool ok = (size_t)n == json_array_size(expected);
    for (long i = 0; ok && i < n; i++) ok = json_integer_value(json_array_get(expected, (size_t)i)) == got[i];
    if (!ok && reported++ < 15) {
        fprintf(stderr, "line %zu: %s ids differ\n", line + 1, what);
        show_text("text", text, text_len);
        fprintf(stderr, "  expected:");
        for (size_t i = 0; i < json_array_size(expected) && i < 40; i++)
            fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(expected, i)));
        fprintf(stderr, "\n  got:     ");
        for (long i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

static bool stream_matches(const cinfer_tokenizer *tok, const int32_t *ids, long n, bool skip_special) {
    size_t full_len;
    char *full = cinfer_detokenize(tok, ids, (size_t)n, skip_special, &full_len, NULL);
    cinfer_detok_stream *s = cinfer_detok_stream_new(tok, skip_special);
    char *joined = malloc(full_len * 2 + 64);
    size_t jl = 0, cap = full_len * 2 + 64;
    bool ok = full != NULL;
    for (long i = 0; ok && i <= n; i++) {
        size_t pl;
        const char *piece = i < n ? cinfer_detok_stream_push(s, ids[i], &pl) : cinfer_detok_stream_flush(s, &pl);
        if (jl + pl > cap) {
            ok = false;
            break;
        }
        memcpy(joined + jl, piece, pl);
        jl += pl;
    }
    ok = ok && jl == full_len && memcmp(joined, full, jl) == 0;
    cinfer_detok_stream_free(s);
    free(joined);
    cinfer_free(full);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_parity TOKENIZER_DIR CORPUS.jsonl EXPECTED.jsonl\n");
        return 2;
    }
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(argv[1], &err);
    if (!tok) {
        fprintf(stderr, "cannot load tokenizer: %s\n", err.message);
        return 1;
    }
    FILE *fc = fopen(argv[2], "r"), *fe = fopen(argv[3], "r");
    if (!fc || !fe) {
        fprintf(stderr, "cannot open corpus or expected file\n");
        return 1;
    }
    char *lc = NULL, *le = NULL;
    size_t cc = 0, ce = 0, line = 0, fixed = 0;
    size_t enc_ok = 0, split_ok = 0, rt_ok = 0, dec_ok = 0, stream_ok = 0;
    while (getline(&lc, &cc, fc) > 0) {
        if (getline(&le, &ce, fe) <= 0) {
            CHECK_MSG(0, "expected file is shorter than the corpus (line %zu)", line + 1);
            break;
        }
        json_error_t jerr;
        json_t *text_j = json_loads(lc, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        json_t *exp = json_loads(le, JSON_ALLOW_NUL, &jerr);
        if (!json_is_string(text_j) || !json_is_object(exp)) {
            CHECK_MSG(0, "line %zu is not valid JSON", line + 1);
            json_decref(text_j);
            json_decref(exp);
            line++;
            continue;
        }
        const char *text = json_string_value(text_j);
        size_t text_len = json_string_length(text_j);
        if (json_is_string(json_object_get(exp, "hf_fix"))) fixed++;

        int32_t *ids = NULL, *ids_split = NULL;
        long n = cinfer_tokenize(tok, text, text_len, 0, &ids, &err);
        long ns = cinfer_tokenize(tok, text, text_len, CINFER_TOKENIZE_SPLIT_SPECIAL, &ids_split, &err);
        CHECK_MSG(n >= 0 && ns >= 0, "line %zu: tokenize failed: %s", line + 1, err.message);
        if (n >= 0 && ns >= 0) {
            bool a = same_ids("default", line, text, text_len, json_object_get(exp, "ids"), ids, n);
            bool b = same_ids("split-special", line, text, text_len, json_object_get(exp, "ids_split"), ids_split, ns);
            enc_ok += a;
            split_ok += b;
            CHECK(a);
            CHECK(b);

            size_t dl;
            char *dec = cinfer_detokenize(tok, ids, (size_t)n, false, &dl, &err);
            json_t *nfc = json_object_get(exp, "nfc"), *rdec = json_object_get(exp, "decoded");
            bool rt = dec && dl == json_string_length(nfc) && memcmp(dec, json_string_value(nfc), dl) == 0;
            bool dd = dec && dl == json_string_length(rdec) && memcmp(dec, json_string_value(rdec), dl) == 0;
            if (!rt && reported++ < 15) {
                fprintf(stderr, "line %zu: decode(encode(s)) != NFC(s)\n", line + 1);
                show_text("expected", json_string_value(nfc), json_string_length(nfc));
                if (dec) show_text("got", dec, dl);
            }
            rt_ok += rt;
            dec_ok += dd;
            CHECK(rt);
            CHECK_MSG(dd, "line %zu: decode differs from the reference decode", line + 1);
            cinfer_free(dec);

            bool st = stream_matches(tok, ids, n, false) && stream_matches(tok, ids, n, true) &&
                      stream_matches(tok, ids_split, ns, false);
            stream_ok += st;
            CHECK_MSG(st, "line %zu: streaming decode differs from full decode", line + 1);
        }
        cinfer_free(ids);
        cinfer_free(ids_split);
        json_decref(text_j);
        json_decref(exp);
        line++;
    }
    free(lc);
    free(le);
    fclose(fc);
    fclose(fe);
    cinfer_tokenizer_free(tok);
    printf("parity: %zu strings (%zu with HF corrections): encode %zu, split-special %zu, round trip %zu, "
           "decode %zu, stream %zu identical\n",
           line, fixed, enc_ok, split_ok, rt_ok, dec_ok, stream_ok);
    CHECK_MSG(line >= 2000, "corpus has only %zu strings", line);
    TEST_MAIN_END();
}
