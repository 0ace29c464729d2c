/*
 * test_tokenizer_unit.c — tokenizer behaviour on small hand-made
 * tokenizer.json files (written at test time) and on the real Qwen3 files.
 *
 * Expected values come from HF tokenizers' documented semantics, reasoned
 * out in the comments (never from cinfer's own output).
 *
 * usage: test_tokenizer_unit WORK_DIR [QWEN3_MODEL_DIR]
 */
#include "cinfer.h"
#include "tokenizer/tokenizer_internal.h"
#include "../unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *work_dir;

/* The Qwen2/3 split regex, as tokenizer.json writes it. */
static const char *QWEN_REGEX =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------------- helpers */

static char *path_in_work(const char *sub, const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s", work_dir, sub);
    mkdir(work_dir, 0755);
    mkdir(p, 0755);
    if (name) {
        size_t n = strlen(p);
        snprintf(p + n, 1024 - n, "/%s", name);
    }
    return p;
}

static void write_text(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fwrite(text, 1, len, f);
    fclose(f);
}

static void utf8_of(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* A tiny byte-level BPE tokenizer: ids 0..255 are the 256 byte tokens in
 * byte order (so the id of a one-byte token equals the byte), then merges. */
static json_t *tiny_tokenizer(void) {
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char s[4];
        utf8_of(ci_byte_level_char((uint8_t)b), s);
        json_object_set_new(vocab, s, json_integer(b));
    }
    /* merges: he(256) ll(257) hell(258) hello(259) aa(260) bc(261) ab(262) */
    const char *merged[][3] = {{"h", "e", "he"}, {"l", "l", "ll"}, {"he", "ll", "hell"}, {"hell", "o", "hello"},
                               {"a", "a", "aa"}, {"b", "c", "bc"},  {"a", "b", "ab"}};
    json_t *merges = json_array();
    for (int i = 0; i < 7; i++) {
        json_object_set_new(vocab, merged[i][2], json_integer(256 + i));
        json_t *pair = json_array();
        json_array_append_new(pair, json_string(merged[i][0]));
        json_array_append_new(pair, json_string(merged[i][1]));
        json_array_append_new(merges, pair);
    }
    json_object_set_new(vocab, "xyz", json_integer(263)); /* reachable only through ignore_merges */
    json_t *model = json_pack("{s:s, s:o, s:o, s:b}", "type", "BPE", "vocab", vocab, "merges", merges,
                              "ignore_merges", 0);
    json_t *split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex", QWEN_REGEX,
                              "behavior", "Isolated", "invert", 0);
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                           "use_regex", 0);
    json_t *pre = json_pack("{s:s, s:[o, o]}", "type", "Sequence", "pretokenizers", split, bl);
    return json_pack("{s:s, s:[], s:{s:s}, s:o, s:{s:s}, s:o}", "version", "1.0", "added_tokens", "normalizer",
                     "type", "NFC", "pre_tokenizer", pre, "decoder", "type", "ByteLevel", "model", model);
}

static void add_token(json_t *tj, int id, const char *content, bool special, bool lstrip, bool rstrip,
                      bool single_word, bool normalized) {
    json_array_append_new(json_object_get(tj, "added_tokens"),
                          json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "special",
                                    special, "lstrip", lstrip, "rstrip", rstrip, "single_word", single_word,
                                    "normalized", normalized));
}

/* Writes tj (consumed) as DIR/tokenizer.json and loads it. */
static cinfer_tokenizer *load_json(const char *sub, json_t *tj, cinfer_error *err) {
    char *text = json_dumps(tj, JSON_COMPACT);
    json_decref(tj);
    write_text(path_in_work(sub, "tokenizer.json"), text, strlen(text));
    free(text);
    return cinfer_tokenizer_load(path_in_work(sub, NULL), err);
}

static bool ids_equal(const cinfer_tokenizer *tok, const char *text, size_t len, unsigned flags, const int32_t *want,
                      long n_want) {
    int32_t *ids = NULL;
    cinfer_error err = {0};
    long n = cinfer_tokenize(tok, text, len, flags, &ids, &err);
    bool ok = n == n_want && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
    if (!ok) {
        fprintf(stderr, "  encode(\"%.*s\"): got", (int)len, text);
        for (long i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, " (n=%ld%s%s), want", n, n < 0 ? ", " : "", n < 0 ? err.message : "");
        for (long i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    cinfer_free(ids);
    return ok;
}

#define EXPECT_IDS(tok, text, flags, ...)                                                           \
    do {                                                                                            \
        const int32_t want_[] = {__VA_ARGS__};                                                      \
        CHECK_MSG(ids_equal(tok, text, sizeof(text) - 1, flags, want_, sizeof want_ / sizeof want_[0]), \
                  "encode(%s)", #text);                                                             \
    } while (0)

static bool error_mentions(const cinfer_error *err, const char *needle) {
    bool ok = strstr(err->message, needle) != NULL;
    if (!ok) fprintf(stderr, "  error \"%s\" does not mention \"%s\"\n", err->message, needle);
    return ok;
}

/* ------------------------------------------------------------------ BPE */

static void test_bpe_rules(void) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = load_json("bpe", tiny_tokenizer(), &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (!tok) return;
    /* h e l l o: he (rank 0), ll (1), hell (2), hello (3) -> one token. */
    EXPECT_IDS(tok, "hello", 0, 259);
    /* "aaa": the two (a,a) pairs have the same rank; the leftmost merges first. */
    EXPECT_IDS(tok, "aaa", 0, 260, 'a');
    /* "abc": (b,c) has rank 5, (a,b) rank 6: lowest rank first gives a + bc. */
    EXPECT_IDS(tok, "abc", 0, 'a', 261);
    /* Without ignore_merges, "xyz" cannot be reached by merges. */
    EXPECT_IDS(tok, "xyz", 0, 'x', 'y', 'z');
    /* " hello": the regex gives " hello" as one piece (optional non-letter +
     * letters); ByteLevel maps the space to 'Ġ' (byte 0x20 = id 32). */
    EXPECT_IDS(tok, " hello", 0, ' ', 259);
    /* Decoding maps byte-level chars back to bytes. */
    int32_t ids[] = {259, ' ', 259};
    size_t n;
    char *s = cinfer_detokenize(tok, ids, 3, false, &n, &err);
    CHECK(s && n == 11 && memcmp(s, "hello hello", 11) == 0);
    cinfer_free(s);
    cinfer_tokenizer_free(tok);

    json_t *tj = tiny_tokenizer();
    json_object_set_new(json_object_get(tj, "model"), "ignore_merges", json_true());
    tok = load_json("ignore_merges", tj, &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (tok) {
        /* ignore_merges: a word found whole in the vocabulary is one token. */
        EXPECT_IDS(tok, "xyz", 0, 263);
        cinfer_tokenizer_free(tok);
    }

    /* The "a b" string form of merges builds the same tokenizer. */
    tj = tiny_tokenizer();
    json_t *merges = json_object_get(json_object_get(tj, "model"), "merges");
    size_t i;
    json_t *pair;
    json_t *as_strings = json_array();
    json_array_foreach(merges, i, pair) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s %s", json_string_value(json_array_get(pair, 0)),
                 json_string_value(json_array_get(pair, 1)));
        json_array_append_new(as_strings, json_string(buf));
    }
    json_object_set_new(json_object_get(tj, "model"), "merges", as_strings);
    tok = load_json("merge_strings", tj, &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (tok) {
        EXPECT_IDS(tok, "hello abc", 0, 259, ' ', 'a', 261);
        cinfer_tokenizer_free(tok);
    }
}

/* Replaces the pre-tokenizer of the tiny tokenizer. */
static json_t *tiny_with_pre(json_t *pre) {
    json_t *tj = tiny_tokenizer();
    json_object_set_new(tj, "pre_tokenizer", pre);
    return tj;
}

static json_t *split_then_byte_level(const char *literal, const char *behavior) {
    return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b}]}", "type", "Sequence", "pretokenizers",
                     "type", "Split", "pattern", "String", literal, "behavior", behavior, "invert", 0, "type",
                     "ByteLevel", "add_prefix_space", 0, "use_regex", 0);
}

static void test_pretokenizers(void) {
    /* Split behaviours on "hello" (merges: he, ll, hell, hello). Which pieces
     * BPE sees decides the ids:
     *   delimiter "l", Removed    -> "he" "o"            -> he, o
     *   delimiter "l", Contiguous -> "he" "ll" "o"       -> he, ll, o
     *   delimiter "l", Isolated   -> "he" "l" "l" "o"    -> he, l, l, o
     *   delimiter "o", MergedWithPrevious -> "hello"     -> hello
     *   delimiter "h", MergedWithNext     -> "hello"     -> hello
     *   delimiter "h", Isolated   -> "h" "ello"          -> h, e, ll, o */
    struct {
        const char *lit, *behavior;
        int32_t want[4];
        long n;
    } cases[] = {
        {"l", "Removed", {256, 'o'}, 2},
        {"l", "Contiguous", {256, 257, 'o'}, 3},
        {"l", "Isolated", {256, 'l', 'l', 'o'}, 4},
        {"o", "MergedWithPrevious", {259}, 1},
        {"h", "MergedWithNext", {259}, 1},
        {"h", "Isolated", {'h', 'e', 257, 'o'}, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cinfer_error err = {0};
        cinfer_tokenizer *tok = load_json("split", tiny_with_pre(split_then_byte_level(cases[i].lit, cases[i].behavior)), &err);
        CHECK_MSG(tok, "load: %s", err.message);
        if (!tok) continue;
        CHECK_MSG(ids_equal(tok, "hello", 5, 0, cases[i].want, cases[i].n), "split %s %s", cases[i].lit,
                  cases[i].behavior);
        cinfer_tokenizer_free(tok);
    }

    /* GPT-2 style: ByteLevel alone with add_prefix_space and its own regex.
     * "hello world" -> " hello" (prefix space added) and " world". */
    cinfer_error err = {0};
    cinfer_tokenizer *tok =
        load_json("gpt2", tiny_with_pre(json_pack("{s:s, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                                  "use_regex", 1)),
                  &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (tok) {
        EXPECT_IDS(tok, "hello world", 0, ' ', 259, ' ', 'w', 'o', 'r', 'l', 'd');
        cinfer_tokenizer_free(tok);
    }

    /* A TemplateProcessing post-processor's leading special token is exposed,
     * never added by encode (add_special_tokens=False). */
    json_t *tj = tiny_tokenizer();
    add_token(tj, 300, "<bos>", true, false, false, false, false);
    json_object_set_new(tj, "post_processor",
                        json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}]}", "type", "TemplateProcessing", "single",
                                  "SpecialToken", "id", "<bos>", "type_id", 0, "Sequence", "id", "A", "type_id", 0));
    tok = load_json("post", tj, &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (tok) {
        CHECK(cinfer_tokenizer_post_processor_bos_id(tok) == 300);
        EXPECT_IDS(tok, "hello", 0, 259);
        cinfer_tokenizer_free(tok);
    }
}

/* ---------------------------------------------------------- added tokens */

static void test_added_tokens(void) {
    cinfer_error err = {0};
    json_t *tj = tiny_tokenizer();
    add_token(tj, 300, "<mask>", true, true, false, false, false); /* special, lstrip */
    add_token(tj, 301, "<r>", false, false, true, false, false);    /* rstrip */
    add_token(tj, 302, "cd", false, false, false, true, false);     /* single_word */
    add_token(tj, 303, "\xC7\x98", false, false, false, false, true); /* U+01D8, normalized */
    add_token(tj, 304, "<x>", false, false, false, false, false);
    add_token(tj, 305, "<x>>", false, false, false, false, false);
    add_token(tj, 306, "<a>", true, false, false, false, false);
    add_token(tj, 307, "a>b", false, false, false, false, false);
    add_token(tj, 308, "<plain>", false, false, false, false, false);
    cinfer_tokenizer *tok = load_json("added", tj, &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (!tok) return;

    /* lstrip: the whitespace left of <mask> belongs to the token, so "a  <mask>b"
     * is "a" | "  <mask>" | "b". */
    EXPECT_IDS(tok, "a  <mask>b", 0, 'a', 300, 'b');
    /* lstrip never reaches back past the start of the text. */
    EXPECT_IDS(tok, "  <mask>", 0, 300);
    /* rstrip: "x<r>  y" is "x" | "<r>  " | "y". */
    EXPECT_IDS(tok, "x<r>  y", 0, 'x', 301, 'y');
    /* Without stripping (<plain>), the spaces stay text: the regex splits "  y"
     * into " " (\s+(?!\S)) and " y" (non-letter + letters). */
    EXPECT_IDS(tok, "x<plain>  y", 0, 'x', 308, ' ', ' ', 'y');
    /* single_word: matches only when not touching word characters
     * (Rust regex \w: letters, marks, digits, '_'). */
    EXPECT_IDS(tok, "cd", 0, 302);
    EXPECT_IDS(tok, "(cd)", 0, '(', 302, ')');
    EXPECT_IDS(tok, "cd x", 0, 302, ' ', 'x');
    EXPECT_IDS(tok, "xcd", 0, 'x', 'c', 'd');
    EXPECT_IDS(tok, "cd_", 0, 'c', 'd', '_'); /* '_' is a word char: not matched */
    EXPECT_IDS(tok, "cd1", 0, 'c', 'd', '1');
    EXPECT_IDS(tok, "\xC7\x98" "cd", 0, 303, 'c', 'd'); /* U+01D8 is a word char */
    /* normalized=true: matched after NFC, against NFC(content). "u" + U+0308 +
     * U+0301 becomes U+01D8, which is the token. */
    EXPECT_IDS(tok, "bu\xCC\x88\xCC\x81", 0, 'b', 303);
    /* Leftmost-longest: "<x>>" wins over "<x>" at the same start. */
    EXPECT_IDS(tok, "<x>>>", 0, 305, '>');
    /* Special tokens are not matched with SPLIT_SPECIAL: "<mask>" is text.
     * The regex gives "<mask" and ">"; no merges apply. */
    EXPECT_IDS(tok, "<mask>", CINFER_TOKENIZE_SPLIT_SPECIAL, '<', 'm', 'a', 's', 'k', '>');
    /* ... while non-special ones still are. */
    EXPECT_IDS(tok, "<r>", CINFER_TOKENIZE_SPLIT_SPECIAL, 301);
    /* HF's matcher finds "<a>" first and, with SPLIT_SPECIAL, drops it; the
     * matcher has moved past it, so "a>b" (which overlaps) is not found either. */
    EXPECT_IDS(tok, "<a>b", CINFER_TOKENIZE_SPLIT_SPECIAL, '<', 'a', '>', 'b');
    EXPECT_IDS(tok, "<a>b", 0, 306, 'b');
    /* Queries. */
    CHECK(cinfer_tokenizer_is_special(tok, 300));
    CHECK(!cinfer_tokenizer_is_special(tok, 301));
    CHECK(cinfer_tokenizer_token_id(tok, "<x>>") == 305);
    CHECK(cinfer_tokenizer_token_id(tok, "hello") == 259);
    CHECK(cinfer_tokenizer_token_id(tok, "nope") == -1);
    CHECK(cinfer_tokenizer_vocab_size(tok) == 309);
    int32_t ts = -2, te = -2; /* no reasoning markers here */
    CHECK(cinfer_tokenizer_thinking_ids(tok, &ts, &te) == -1 && ts == -1 && te == -1);
    /* skip_special drops <mask> only. */
    int32_t ids[] = {300, 259, 301};
    size_t n;
    char *s = cinfer_detokenize(tok, ids, 3, true, &n, &err);
    CHECK(s && n == 8 && memcmp(s, "hello<r>", 8) == 0);
    cinfer_free(s);
    cinfer_tokenizer_free(tok);
}

/* ------------------------------------------------------ UTF-8 handling */

static void test_utf8(void) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = load_json("utf8", tiny_tokenizer(), &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (!tok) return;
    /* Invalid input becomes U+FFFD (EF BF BD) before encoding, one per
     * maximal invalid subpart, as Python's errors="replace":
     *   "a\xFFb"          -> a U+FFFD b
     *   "\xE6\x97"        -> one U+FFFD (truncated 3-byte sequence)
     *   "\xED\xA0\x80"    -> three (ED A0 is not a valid start of a char) */
    EXPECT_IDS(tok, "a\xFF" "b", 0, 'a', 0xEF, 0xBF, 0xBD, 'b');
    EXPECT_IDS(tok, "\xE6\x97", 0, 0xEF, 0xBF, 0xBD);
    EXPECT_IDS(tok, "\xED\xA0\x80", 0, 0xEF, 0xBF, 0xBD, 0xEF, 0xBF, 0xBD, 0xEF, 0xBF, 0xBD);
    /* Embedded NUL is ordinary text. */
    EXPECT_IDS(tok, "a\0b", 0, 'a', 0, 'b');

    /* Decoding bytes that are not UTF-8 (each id is one byte here). */
    struct {
        int32_t ids[6];
        size_t n;
        const char *want;
    } cases[] = {
        {{0xE6, 0x97, 'A'}, 3, "\xEF\xBF\xBD" "A"},                 /* truncated then ASCII: one U+FFFD */
        {{0xF0, 0x9F}, 2, "\xEF\xBF\xBD"},                          /* truncated at the end */
        {{0xC0, 0x80}, 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},              /* C0 never valid: one each */
        {{0xED, 0xA0, 0x80}, 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
        {{0xF4, 0x90, 0x80, 0x80}, 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
        {{0xE6, 0x97, 0xA5}, 3, "\xE6\x97\xA5"},                    /* valid: 日 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n;
        char *s = cinfer_detokenize(tok, cases[c].ids, cases[c].n, false, &n, &err);
        CHECK_MSG(s && n == strlen(cases[c].want) && memcmp(s, cases[c].want, n) == 0, "decode case %zu", c);
        cinfer_free(s);
        /* Streaming: nothing broken is emitted early and the pieces add up. */
        cinfer_detok_stream *st = cinfer_detok_stream_new(tok, false);
        char joined[64];
        size_t jl = 0;
        for (size_t i = 0; i <= cases[c].n; i++) {
            size_t pl;
            const char *p = i < cases[c].n ? cinfer_detok_stream_push(st, cases[c].ids[i], &pl)
                                           : cinfer_detok_stream_flush(st, &pl);
            CHECK(ci_utf8_is_valid((const uint8_t *)p, pl));
            memcpy(joined + jl, p, pl);
            jl += pl;
        }
        CHECK_MSG(jl == strlen(cases[c].want) && memcmp(joined, cases[c].want, jl) == 0, "stream case %zu", c);
        cinfer_detok_stream_free(st);
    }
    /* A 3-byte character split over three tokens appears only with the last one. */
    cinfer_detok_stream *st = cinfer_detok_stream_new(tok, false);
    size_t pl;
    cinfer_detok_stream_push(st, 0xE6, &pl);
    CHECK(pl == 0);
    cinfer_detok_stream_push(st, 0x97, &pl);
    CHECK(pl == 0);
    const char *p = cinfer_detok_stream_push(st, 0xA5, &pl);
    CHECK(pl == 3 && memcmp(p, "\xE6\x97\xA5", 3) == 0);
    p = cinfer_detok_stream_push(st, 'x', &pl);
    CHECK(pl == 1 && p[0] == 'x');
    cinfer_detok_stream_flush(st, &pl);
    CHECK(pl == 0);
    cinfer_detok_stream_free(st);
    cinfer_tokenizer_free(tok);
}

/* ------------------------------------------------------- hostile files */

/* The in-memory loader refuses `text` with the same message as the file loader. */
static void expect_memory_error(const char *sub, const char *text, size_t len, const char *needle) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load_json(text, len, &err);
    CHECK_MSG(!tok && err.code != 0 && error_mentions(&err, needle), "%s (in memory)", sub);
    cinfer_tokenizer_free(tok);
}

static void expect_load_error(const char *sub, json_t *tj, const char *needle) {
    char *text = json_dumps(tj, JSON_COMPACT);
    expect_memory_error(sub, text, strlen(text), needle);
    free(text);
    cinfer_error err = {0};
    cinfer_tokenizer *tok = load_json(sub, tj, &err);
    CHECK_MSG(!tok, "%s: loaded although it should not", sub);
    CHECK_MSG(err.code != 0 && error_mentions(&err, needle), "%s", sub);
    cinfer_tokenizer_free(tok);
}

static void expect_text_error(const char *sub, const char *text, size_t len, const char *needle) {
    expect_memory_error(sub, text, len, needle);
    write_text(path_in_work(sub, "tokenizer.json"), text, len);
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(path_in_work(sub, NULL), &err);
    CHECK_MSG(!tok && error_mentions(&err, needle), "%s", sub);
    cinfer_tokenizer_free(tok);
}

static void test_hostile_files(const char *qwen_dir) {
    expect_text_error("corrupt", "{\"model\": {\"vocab\": ", 20, "invalid JSON");
    expect_text_error("empty", "", 0, "invalid JSON");
    expect_text_error("array", "[1,2,3]", 7, "top level");
    expect_text_error("no_model", "{\"version\": \"1.0\"}", 18, "model");

    json_t *tj = tiny_tokenizer();
    json_object_set_new(json_object_get(tj, "model"), "vocab", json_array());
    expect_load_error("vocab_type", tj, "model.vocab");

    tj = tiny_tokenizer();
    json_object_set_new(json_object_get(json_object_get(tj, "model"), "vocab"), "hello", json_string("259"));
    expect_load_error("id_type", tj, "must be an integer");

    tj = tiny_tokenizer();
    json_object_set_new(json_object_get(json_object_get(tj, "model"), "vocab"), "zz", json_integer(5));
    expect_load_error("dup_id", tj, "used twice");

    tj = tiny_tokenizer();
    json_object_set_new(json_object_get(json_object_get(tj, "model"), "vocab"), "zz", json_integer(-3));
    expect_load_error("neg_id", tj, "outside");

    tj = tiny_tokenizer();
    json_object_set_new(json_object_get(json_object_get(tj, "model"), "vocab"), "zz", json_integer(1LL << 40));
    expect_load_error("huge_id", tj, "outside");

    tj = tiny_tokenizer();
    json_array_append_new(json_object_get(json_object_get(tj, "model"), "merges"), json_string("zz q"));
    expect_load_error("merge_unknown", tj, "unknown token");

    tj = tiny_tokenizer();
    json_array_append_new(json_object_get(json_object_get(tj, "model"), "merges"), json_string("x y"));
    expect_load_error("merge_result", tj, "not in the vocabulary");

    tj = tiny_tokenizer();
    json_array_append_new(json_object_get(json_object_get(tj, "model"), "merges"), json_string("a b c"));
    expect_load_error("merge_form", tj, "one space");

    tj = tiny_tokenizer();
    json_array_append_new(json_object_get(json_object_get(tj, "model"), "merges"), json_integer(7));
    expect_load_error("merge_type", tj, "model.merges[7]");

    tj = tiny_tokenizer();
    add_token(tj, 259, "<new>", true, false, false, false, false);
    expect_load_error("added_collides", tj, "id 259");

    tj = tiny_tokenizer();
    add_token(tj, 300, "hello", true, false, false, false, false);
    expect_load_error("added_vs_vocab", tj, "vocabulary gives it id 259");

    tj = tiny_tokenizer();
    add_token(tj, 300, "<a>", true, false, false, false, false);
    add_token(tj, 300, "<b>", true, false, false, false, false);
    expect_load_error("added_dup_id", tj, "two added tokens");

    tj = tiny_tokenizer();
    json_object_set_new(json_object_get(tj, "model"), "type", json_string("WordPiece"));
    expect_load_error("model_type", tj, "WordPiece");

    tj = tiny_tokenizer();
    json_object_set_new(
        json_object_get(json_array_get(json_object_get(json_object_get(tj, "pre_tokenizer"), "pretokenizers"), 0),
                        "pattern"),
        "Regex", json_string("(unclosed"));
    expect_load_error("bad_regex", tj, "does not compile");

    tj = tiny_tokenizer();
    json_array_remove(json_object_get(json_object_get(tj, "pre_tokenizer"), "pretokenizers"), 1);
    expect_load_error("no_byte_level", tj, "byte-level");

    tj = tiny_tokenizer();
    json_object_set_new(tj, "normalizer", json_pack("{s:s}", "type", "NFKC"));
    expect_load_error("normalizer", tj, "NFKC");

    tj = tiny_tokenizer();
    json_object_set_new(json_object_get(tj, "model"), "dropout", json_real(0.1));
    expect_load_error("dropout", tj, "dropout");

    /* Too big: a sparse 600 MiB file is refused before anything is read. */
    char *big = path_in_work("huge", "tokenizer.json");
    int fd = open(big, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)600 << 20) == 0);
    if (fd >= 0) close(fd);
    cinfer_error err = {0};
    CHECK(!cinfer_tokenizer_load(path_in_work("huge", NULL), &err) && err.code == CINFER_ERR_LIMIT);
    unlink(big);

    /* Missing files. */
    err = (cinfer_error){0};
    CHECK(!cinfer_tokenizer_load("/nonexistent/tokenizer.json", &err) && err.code == CINFER_ERR_IO);
    err = (cinfer_error){0};
    CHECK(!cinfer_tokenizer_load(path_in_work("emptydir", NULL), &err) && error_mentions(&err, "no tokenizer.json"));

    /* Truncated copy of the real tokenizer.json. */
    if (qwen_dir) {
        char src[1024];
        snprintf(src, sizeof src, "%s/tokenizer.json", qwen_dir);
        size_t len;
        char *data = ci_read_file(src, (size_t)64 << 20, &len, NULL);
        if (data) {
            expect_text_error("truncated", data, len / 3, "invalid JSON");
            free(data);
        }
    }

    /* tokenizer_config.json: bos/eos as string, object, null; wrong type is an error. */
    tj = tiny_tokenizer();
    const char *cfg = "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\"}";
    write_text(path_in_work("config_ok", "tokenizer_config.json"), cfg, strlen(cfg));
    cinfer_tokenizer *tok = load_json("config_ok", tj, &err);
    CHECK(tok && cinfer_tokenizer_bos_token(tok) && strcmp(cinfer_tokenizer_bos_token(tok), "<s>") == 0);
    CHECK(tok && cinfer_tokenizer_eos_token(tok) && strcmp(cinfer_tokenizer_eos_token(tok), "</s>") == 0);
    cinfer_tokenizer_free(tok);
    cfg = "{\"bos_token\": null}";
    write_text(path_in_work("config_null", "tokenizer_config.json"), cfg, strlen(cfg));
    tok = load_json("config_null", tiny_tokenizer(), &err);
    CHECK(tok && !cinfer_tokenizer_bos_token(tok) && !cinfer_tokenizer_eos_token(tok));
    cinfer_tokenizer_free(tok);
    cfg = "{\"eos_token\": 7}";
    write_text(path_in_work("config_bad", "tokenizer_config.json"), cfg, strlen(cfg));
    err = (cinfer_error){0};
    tok = load_json("config_bad", tiny_tokenizer(), &err); /* the config file is the problem */
    CHECK(!tok && error_mentions(&err, "tokenizer_config.json") && error_mentions(&err, "eos_token"));
}

/* ------------------------------------------------------------ in memory */

static void test_load_from_memory(void) {
    /* Same text, loaded from memory and from a file: same encoder. */
    json_t *tj = tiny_tokenizer();
    add_token(tj, 300, "<mask>", true, true, false, false, false);
    add_token(tj, 301, "<think>", false, false, false, false, false);
    char *text = json_dumps(tj, JSON_COMPACT);
    cinfer_error err = {0};
    cinfer_tokenizer *mem = cinfer_tokenizer_load_json(text, strlen(text), &err);
    CHECK_MSG(mem, "load_json: %s", err.message);
    cinfer_tokenizer *file = load_json("memory", tj, &err);
    CHECK(file != NULL);
    if (mem && file) {
        EXPECT_IDS(mem, "hello abc <mask>", 0, 259, ' ', 'a', 261, 300);
        CHECK(cinfer_tokenizer_vocab_size(mem) == cinfer_tokenizer_vocab_size(file));
        CHECK(!cinfer_tokenizer_bos_token(mem) && !cinfer_tokenizer_eos_token(mem));
        /* "<think>" without "</think>": the one that exists is given, the call says -1. */
        int32_t ts = -2, te = -2;
        CHECK(cinfer_tokenizer_thinking_ids(mem, &ts, &te) == -1 && ts == 301 && te == -1);
    }
    cinfer_tokenizer_free(mem);
    cinfer_tokenizer_free(file);

    /* The text needs no terminating NUL: a prefix of a longer buffer. */
    size_t len = strlen(text);
    char *padded = malloc(len + 5);
    memcpy(padded, text, len);
    memcpy(padded + len, "junk", 5);
    mem = cinfer_tokenizer_load_json(padded, len, &err);
    CHECK(mem != NULL);
    cinfer_tokenizer_free(mem);
    free(padded);

    /* tokenizer_config.json from memory: bos/eos strings; a bad one is refused. */
    const char *cfg = "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\"}";
    mem = cinfer_tokenizer_load_json_with_config(text, len, cfg, strlen(cfg), &err);
    CHECK(mem && cinfer_tokenizer_bos_token(mem) && strcmp(cinfer_tokenizer_bos_token(mem), "<s>") == 0);
    CHECK(mem && cinfer_tokenizer_eos_token(mem) && strcmp(cinfer_tokenizer_eos_token(mem), "</s>") == 0);
    cinfer_tokenizer_free(mem);
    err = (cinfer_error){0};
    mem = cinfer_tokenizer_load_json_with_config(text, len, "{\"eos_token\": 7}", 16, &err);
    CHECK(!mem && error_mentions(&err, "tokenizer_config.json") && error_mentions(&err, "eos_token"));
    err = (cinfer_error){0};
    mem = cinfer_tokenizer_load_json_with_config(text, len, "{\"eos", 5, &err);
    CHECK(!mem && error_mentions(&err, "invalid JSON"));
    free(text);

    /* NULL with a length is a caller error; NULL with 0 is empty JSON. */
    err = (cinfer_error){0};
    CHECK(!cinfer_tokenizer_load_json(NULL, 3, &err) && err.code == CINFER_ERR_INVALID);
    err = (cinfer_error){0};
    CHECK(!cinfer_tokenizer_load_json(NULL, 0, &err) && error_mentions(&err, "invalid JSON"));
    err = (cinfer_error){0};
    CHECK(!cinfer_tokenizer_load_json("{}", 2, &err) && error_mentions(&err, "model"));
}

/* ------------------------------------------------- streaming vocab/merges */

/* The compact tiny tokenizer.json with `insert` placed right after the first
 * `anchor` (and `drop` bytes after it removed). */
static char *tiny_text_edit(const char *anchor, const char *insert, size_t drop) {
    json_t *tj = tiny_tokenizer();
    char *text = json_dumps(tj, JSON_COMPACT);
    json_decref(tj);
    const char *at = strstr(text, anchor);
    if (!at) {
        fprintf(stderr, "anchor %s not found\n", anchor);
        exit(1);
    }
    size_t head = (size_t)(at - text) + strlen(anchor);
    ci_buf b = {0};
    ci_buf_append(&b, text, head);
    ci_buf_puts(&b, insert);
    ci_buf_puts(&b, text + head + drop);
    free(text);
    return ci_buf_take(&b, NULL);
}

static void expect_edit_error(const char *sub, const char *anchor, const char *insert, size_t drop, const char *needle) {
    char *text = tiny_text_edit(anchor, insert, drop);
    expect_text_error(sub, text, strlen(text), needle);
    free(text);
}

/* Encodings of one fixed text, to compare two loads of the same tokenizer. */
static bool same_encoder(const cinfer_tokenizer *a, const cinfer_tokenizer *b) {
    static const char text[] = "hello abc aaa xyz  \xC3\xA9t\xC3\xA9 hello\n\n<x>";
    int32_t *ia = NULL, *ib = NULL;
    long na = cinfer_tokenize(a, text, sizeof text - 1, 0, &ia, NULL);
    long nb = cinfer_tokenize(b, text, sizeof text - 1, 0, &ib, NULL);
    bool ok = na > 0 && na == nb && memcmp(ia, ib, (size_t)na * sizeof *ia) == 0 &&
              cinfer_tokenizer_vocab_size(a) == cinfer_tokenizer_vocab_size(b);
    cinfer_free(ia);
    cinfer_free(ib);
    return ok;
}

static void test_streaming_json(void) {
    /* The same tokenizer written in other valid ways loads the same: every
     * non-ASCII char as \u escapes (surrogate pairs beyond the BMP), indented,
     * merges before vocab, an emoji and escapes inside vocabulary tokens. */
    json_t *tj = tiny_tokenizer();
    json_t *vocab = json_object_get(json_object_get(tj, "model"), "vocab");
    json_object_set_new(vocab, "\xF0\x9F\x98\x80", json_integer(264));
    json_object_set_new(vocab, "q\\/\"\t", json_integer(265));
    char *compact = json_dumps(tj, JSON_COMPACT);
    char *escaped = json_dumps(tj, JSON_ENSURE_ASCII | JSON_INDENT(3));
    json_decref(tj);
    cinfer_error err = {0};
    cinfer_tokenizer *a = cinfer_tokenizer_load_json(compact, strlen(compact), &err);
    CHECK_MSG(a, "compact: %s", err.message);
    cinfer_tokenizer *b = cinfer_tokenizer_load_json(escaped, strlen(escaped), &err);
    CHECK_MSG(b, "escaped: %s", err.message);
    CHECK(strcasestr(escaped, "\\ud83d\\ude00") != NULL);
    if (a && b) {
        CHECK(same_encoder(a, b));
        CHECK(cinfer_tokenizer_token_id(b, "\xF0\x9F\x98\x80") == 264);
        CHECK(cinfer_tokenizer_token_id(b, "q\\/\"\t") == 265);
    }
    cinfer_tokenizer_free(b);
    /* merges ahead of vocab (the order of members is free) */
    char *moved = tiny_text_edit("{\"type\":\"BPE\",", "", 0);
    char *mv = strstr(moved, "\"vocab\":"), *mm = strstr(moved, ",\"merges\":");
    CHECK(mv && mm);
    if (a && mv && mm && mv < mm) {
        char *end_merges = strchr(strstr(mm, "]]"), ']') + 2; /* the merges array ends with "]]" */
        ci_buf r = {0};
        ci_buf_append(&r, moved, (size_t)(mv - moved));
        ci_buf_append(&r, mm + 1, (size_t)(end_merges - (mm + 1)));
        ci_buf_putc(&r, ',');
        ci_buf_append(&r, mv, (size_t)(mm - mv));
        ci_buf_puts(&r, end_merges);
        b = cinfer_tokenizer_load_json(r.data, r.len, &err);
        CHECK_MSG(b, "merges first: %s", err.message);
        json_t *ta = json_loads(r.data, 0, NULL); /* still valid JSON, by jansson */
        CHECK(ta != NULL);
        json_decref(ta);
        if (b) {
            /* a has extra vocab entries (264, 265), so compare encodings only */
            int32_t *ia = NULL, *ib = NULL;
            long na = cinfer_tokenize(a, "hello abc", 9, 0, &ia, NULL), nb = cinfer_tokenize(b, "hello abc", 9, 0, &ib, NULL);
            CHECK(na == 4 && na == nb && memcmp(ia, ib, 16) == 0);
            cinfer_free(ia);
            cinfer_free(ib);
        }
        cinfer_tokenizer_free(b);
        ci_buf_free(&r);
    }
    free(moved);
    cinfer_tokenizer_free(a);
    free(compact);
    free(escaped);

    /* Grammar errors inside the streamed values are JSON errors (reported by
     * jansson, with line and column), as are repeated keys. */
    const char *V = "\"vocab\":{";
    expect_edit_error("s_nul_key", V, "\"a\\u0000b\":300,", 0, "invalid JSON"); /* jansson: no NUL in keys */
    expect_edit_error("s_nul_key_elsewhere", "{", "\"x\":{\"\\u0000\":1},", 0, "invalid JSON");
    expect_edit_error("s_ctrl", V, "\"a\x01\":300,", 0, "invalid JSON");
    expect_edit_error("s_utf8", V, "\"a\xFF\":300,", 0, "invalid JSON");
    expect_edit_error("s_overlong", V, "\"\xC0\xAF\":300,", 0, "invalid JSON");
    expect_edit_error("s_lone_hi", V, "\"\\ud800\":300,", 0, "invalid JSON");
    expect_edit_error("s_lone_lo", V, "\"\\udc00\":300,", 0, "invalid JSON");
    expect_edit_error("s_hi_then_a", V, "\"\\ud800\\u0041\":300,", 0, "invalid JSON");
    expect_edit_error("s_bad_escape", V, "\"\\x41\":300,", 0, "invalid JSON");
    expect_edit_error("s_short_u", V, "\"\\u12\":300,", 0, "invalid JSON");
    expect_edit_error("s_big_int", V, "\"zz\":99999999999999999999,", 0, "invalid JSON");
    expect_edit_error("s_leading_zero", V, "\"zz\":0300,", 0, "invalid JSON");
    expect_edit_error("s_no_comma", V, "\"zz\":300 ", 0, "invalid JSON");
    expect_edit_error("s_no_colon", V, "\"zz\" 300,", 0, "invalid JSON");
    expect_edit_error("s_trailing_comma", V, "\"zz\":300,}", 0, "invalid JSON");
    expect_edit_error("s_bad_number", V, "\"zz\":1.e5,", 0, "invalid JSON");
    expect_edit_error("s_dup_vocab_key", "\"model\":{", "\"vocab\":{},", 0, "invalid JSON");
    expect_edit_error("s_merge_unterminated", "\"merges\":[", "[\"h\",\"e\"", 0, "invalid JSON");
    expect_edit_error("s_trailing_text", "\"version\":\"1.0\"", "} {", 0, "invalid JSON");
    /* Deep nesting elsewhere is bounded (jansson's limit, 2048). */
    ci_buf deep = {0};
    ci_buf_puts(&deep, "\"deep\":");
    for (int i = 0; i < 5000; i++) ci_buf_putc(&deep, '[');
    for (int i = 0; i < 5000; i++) ci_buf_putc(&deep, ']');
    ci_buf_putc(&deep, ',');
    expect_edit_error("s_deep", "{", deep.data, 0, "invalid JSON");
    deep.len = 0;
    /* ... but 100 levels are fine. */
    ci_buf_puts(&deep, "\"deep\":");
    for (int i = 0; i < 100; i++) ci_buf_puts(&deep, i % 2 ? "[" : "{\"k\":");
    ci_buf_puts(&deep, "[1,-0,2.5e-3,1E+2,true,false,null,\"x\\n\",{},[]]");
    for (int i = 99; i >= 0; i--) ci_buf_puts(&deep, i % 2 ? "]" : "}");
    ci_buf_putc(&deep, ',');
    char *ok_deep = tiny_text_edit("{", deep.data, 0);
    ci_buf_free(&deep);
    a = cinfer_tokenizer_load_json(ok_deep, strlen(ok_deep), &err);
    CHECK_MSG(a, "nested: %s", err.message);
    cinfer_tokenizer_free(a);
    free(ok_deep);

    /* Types the streaming pass reports itself, with the jansson path's messages. */
    expect_edit_error("s_real_id", V, "\"zz\":300.0,", 0, "must be an integer id");
    expect_edit_error("s_string_id", V, "\"zz\":\"300\",", 0, "must be an integer id");
    expect_edit_error("s_object_id", V, "\"zz\":{\"a\":[1]},", 0, "must be an integer id");
    expect_edit_error("s_neg_id", V, "\"zz\":-1,", 0, "outside");
    expect_edit_error("s_merge_one", "\"merges\":[", "[\"h\"],", 0, "model.merges[0]");
    expect_edit_error("s_merge_three", "\"merges\":[", "[\"h\",\"e\",\"l\"],", 0, "model.merges[0]");
    expect_edit_error("s_merge_numbers", "\"merges\":[", "[1,2],", 0, "model.merges[0]");
    expect_edit_error("s_merge_object", "\"merges\":[", "{\"h\":\"e\"},", 0, "model.merges[0]");
    expect_edit_error("s_merge_nospace", "\"merges\":[", "\"he\",", 0, "one space");
    /* A repeated vocabulary key is refused (the two entries collide). */
    char *dup = tiny_text_edit(V, "\"hello\":300,", 0);
    err = (cinfer_error){0};
    a = cinfer_tokenizer_load_json(dup, strlen(dup), &err);
    CHECK(!a && err.code == CINFER_ERR_FORMAT && error_mentions(&err, "hello"));
    free(dup);
    /* Every prefix of a valid file is refused without a crash (checked reads). */
    char *full = tiny_text_edit("{", "", 0);
    size_t full_len = strlen(full);
    for (size_t cut = 0; cut < full_len; cut += 97) {
        char *copy = malloc(cut ? cut : 1); /* exact size: a read past the end is an ASan error */
        memcpy(copy, full, cut);
        a = cinfer_tokenizer_load_json(copy, cut, &err);
        CHECK_MSG(!a, "prefix of %zu bytes loaded", cut);
        free(copy);
    }
    free(full);
}

/* --------------------------------------------------------------- builder */

static void test_builder_direct(void) {
    /* The GGUF path: vocabulary strings, "a b" merges, token types -> added tokens. */
    cinfer_error err = {0};
    ci_tok_builder *b = ci_tok_builder_new();
    for (int byte = 0; byte < 256; byte++) {
        char s[4];
        utf8_of(ci_byte_level_char((uint8_t)byte), s);
        CHECK(ci_tok_builder_add_vocab(b, s, strlen(s), byte, &err) == 0);
    }
    CHECK(ci_tok_builder_add_vocab(b, "he", 2, 256, &err) == 0);
    CHECK(ci_tok_builder_add_merge_string(b, "h e", 3, &err) == 0);
    ci_added_token_spec eot = {.content = "<|eot|>", .content_len = 7, .id = 257, .special = true};
    CHECK(ci_tok_builder_add_added(b, &eot, &err) == 0);
    const char *rx = ci_tok_pretokenizer_regex_for_gguf_pre("qwen2");
    CHECK(rx != NULL);
    CHECK(ci_tok_builder_add_split_regex(b, rx, strlen(rx), CI_SPLIT_ISOLATED, false, &err) == 0);
    CHECK(ci_tok_builder_set_byte_level(b, false, false, &err) == 0);
    ci_tok_builder_set_normalizer(b, CI_NORMALIZER_NFC);
    cinfer_tokenizer *tok = ci_tok_builder_finish(b, &err);
    CHECK_MSG(tok, "builder: %s", err.message);
    if (tok) {
        EXPECT_IDS(tok, "he<|eot|>", 0, 256, 257);
        cinfer_tokenizer_free(tok);
    }
}

/* A vocabulary without byte tokens (what a GGUF may carry): bytes that have
 * no token, with no unk_token, are dropped, as HF's BPE drops unknown
 * characters. Found by fuzzing under UBSan: the dropped word left the id
 * list NULL and the word cache copied from it. */
static void test_vocab_without_bytes(void) {
    cinfer_error err = {0};
    ci_tok_builder *b = ci_tok_builder_new();
    CHECK(ci_tok_builder_add_vocab(b, "a", 1, 0, &err) == 0);
    const char *rx = ci_tok_pretokenizer_regex_for_gguf_pre("qwen2");
    CHECK(ci_tok_builder_add_split_regex(b, rx, strlen(rx), CI_SPLIT_ISOLATED, false, &err) == 0);
    CHECK(ci_tok_builder_set_byte_level(b, false, false, &err) == 0);
    cinfer_tokenizer *tok = ci_tok_builder_finish(b, &err);
    CHECK_MSG(tok, "builder: %s", err.message);
    if (!tok) return;
    for (int pass = 0; pass < 2; pass++) { /* the second pass reads the word cache */
        int32_t *ids = NULL;
        err = (cinfer_error){0};
        CHECK(cinfer_tokenize(tok, "zzzz", 4, 0, &ids, &err) == 0 && err.code == 0 && ids == NULL);
        /* "zzzz zz": two words, both dropped; "azzza": one word, the z's dropped. */
        CHECK(cinfer_tokenize(tok, "zzzz zz", 7, 0, &ids, &err) == 0 && ids == NULL);
        EXPECT_IDS(tok, "azzza", 0, 0, 0);
    }
    /* Decoding nothing gives the empty string (detokenize {"tokens": []}). */
    size_t n = 7;
    char *s = cinfer_detokenize(tok, NULL, 0, false, &n, &err);
    CHECK(s && n == 0 && s[0] == '\0');
    cinfer_free(s);
    cinfer_tokenizer_free(tok);

    /* The lossy UTF-8 copy of nothing leaves the buffer as it was. */
    ci_buf buf = {0};
    ci_utf8_append_lossy(&buf, NULL, 0);
    CHECK(buf.len == 0);
    ci_buf_puts(&buf, "x");
    ci_utf8_append_lossy(&buf, NULL, 0);
    CHECK(buf.len == 1 && strcmp(buf.data, "x") == 0);
    ci_buf_free(&buf);
}

/* Letters the tiny tokenizer has no merges for: each is its own id (= byte). */
static const char PLAIN_LETTERS[] = "dfgijkmnpqrstuvwxyz";

/* " w1 w2 ..." with n distinct 4-letter words of PLAIN_LETTERS, every 7th
 * word "hello" (one merged token, so cached merges are exercised too). */
static char *distinct_words(size_t n, size_t *len) {
    ci_buf b = {0};
    size_t nl = sizeof PLAIN_LETTERS - 1;
    for (size_t i = 0; i < n; i++) {
        if (i % 7 == 3) {
            ci_buf_puts(&b, " hello");
            continue;
        }
        char w[6] = {' ', PLAIN_LETTERS[i % nl], PLAIN_LETTERS[i / nl % nl], PLAIN_LETTERS[i / nl / nl % nl],
                     PLAIN_LETTERS[i / nl / nl / nl % nl], 0};
        ci_buf_puts(&b, w);
    }
    *len = b.len;
    return ci_buf_take(&b, NULL);
}

/* What the tiny tokenizer must give for distinct_words: one id per byte
 * (ids 0..255 are the bytes), except " hello" -> ' ', hello (259). */
static int32_t *expected_distinct(const char *text, size_t len, size_t *n_out) {
    int32_t *ids = malloc(len * sizeof *ids);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        ids[n++] = (uint8_t)text[i];
        if (text[i] == ' ' && strncmp(text + i + 1, "hello", 5) == 0) {
            ids[n++] = 259;
            i += 5;
        }
    }
    *n_out = n;
    return ids;
}

/* More distinct words than the per-thread word cache holds: it grows, then
 * clears at its cap; every id stays right on the first and later passes. */
static void test_word_cache_bounds(void) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = load_json("cache", tiny_tokenizer(), &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (!tok) return;
    size_t len, n_want;
    char *text = distinct_words(40000, &len);
    int32_t *want = expected_distinct(text, len, &n_want);
    for (int pass = 0; pass < 3; pass++) {
        /* a prefix first, so later passes see a cache in a different state */
        size_t part = pass == 1 ? len / 3 : len;
        size_t n_part;
        int32_t *want_part = expected_distinct(text, part, &n_part);
        CHECK_MSG(ids_equal(tok, text, part, 0, want_part, (long)n_part), "pass %d", pass);
        free(want_part);
    }
    CHECK(n_want > 0);
    free(want);
    free(text);
    cinfer_tokenizer_free(tok);
}

/* --------------------------------------------------------- concurrency */

#define N_THREADS 8
#define N_TEXTS 6

typedef struct conc_arg {
    const cinfer_tokenizer *tok;
    const char *const *texts;
    const size_t *lens;
    int first;            /* texts are encoded in rotated order */
    int32_t *ids[N_TEXTS]; /* last result per text */
    long n[N_TEXTS];
} conc_arg;

static void *encode_texts(void *p) {
    conc_arg *a = p;
    for (int round = 0; round < 4; round++)
        for (int k = 0; k < N_TEXTS; k++) {
            int i = (a->first + k) % N_TEXTS;
            cinfer_free(a->ids[i]);
            a->ids[i] = NULL;
            a->n[i] = cinfer_tokenize(a->tok, a->texts[i], a->lens[i], 0, &a->ids[i], NULL);
        }
    return NULL;
}

/* One tokenizer, 8 threads encoding the same texts in different orders at
 * once: each result equals the single-thread one (run under TSan this also
 * shows that encode shares nothing mutable). */
static void check_concurrent(const cinfer_tokenizer *tok, const char *const *texts, const size_t *lens) {
    int32_t *single[N_TEXTS];
    long n_single[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) {
        single[i] = NULL;
        n_single[i] = cinfer_tokenize(tok, texts[i], lens[i], 0, &single[i], NULL);
        CHECK(n_single[i] >= 0);
    }
    conc_arg args[N_THREADS];
    pthread_t th[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (conc_arg){.tok = tok, .texts = texts, .lens = lens, .first = t % N_TEXTS};
        CHECK(pthread_create(&th[t], NULL, encode_texts, &args[t]) == 0);
    }
    for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < N_THREADS; t++)
        for (int i = 0; i < N_TEXTS; i++) {
            CHECK_MSG(args[t].n[i] == n_single[i] &&
                          (n_single[i] == 0 || memcmp(args[t].ids[i], single[i], (size_t)n_single[i] * 4) == 0),
                      "thread %d text %d", t, i);
            cinfer_free(args[t].ids[i]);
        }
    for (int i = 0; i < N_TEXTS; i++) cinfer_free(single[i]);
}

static void test_concurrent_tiny(void) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = load_json("concurrent", tiny_tokenizer(), &err);
    CHECK_MSG(tok, "load: %s", err.message);
    if (!tok) return;
    size_t big_len;
    char *big = distinct_words(20000, &big_len);
    const char *texts[N_TEXTS] = {"hello abc aaa", big, "xyz hello  hello\n", "a\xFF" "b <x> \xE6\x97\xA5", "",
                                  "hellohello hello hell he"};
    size_t lens[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) lens[i] = i == 1 ? big_len : strlen(texts[i]);
    check_concurrent(tok, texts, lens);
    /* The big text against its independent expectation, too. */
    size_t n_want;
    int32_t *want = expected_distinct(big, big_len, &n_want);
    CHECK(ids_equal(tok, big, big_len, 0, want, (long)n_want));
    free(want);
    free(big);
    cinfer_tokenizer_free(tok);
}

/* ---------------------------------------------------------------- Qwen3 */

/* Id of an added token as DIR/tokenizer.json lists it (read with jansson,
 * independently of the tokenizer's loader); -1 when absent. */
static int32_t added_id_in_file(const char *dir, const char *content) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    json_t *list = json_object_get(root, "added_tokens"), *item;
    size_t i;
    int32_t id = -1;
    json_array_foreach(list, i, item) {
        if (json_is_string(json_object_get(item, "content")) &&
            strcmp(json_string_value(json_object_get(item, "content")), content) == 0)
            id = (int32_t)json_integer_value(json_object_get(item, "id"));
    }
    json_decref(root);
    return id;
}

static void test_qwen3(const char *dir) {
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(dir, &err);
    CHECK_MSG(tok, "load %s: %s", dir, err.message);
    if (!tok) return;
    /* The reasoning markers are the file's added tokens of that text. */
    int32_t think = added_id_in_file(dir, "<think>"), think_end = added_id_in_file(dir, "</think>");
    int32_t ts = -2, te = -2;
    CHECK(think >= 0 && think_end >= 0 && think != think_end);
    CHECK(cinfer_tokenizer_thinking_ids(tok, &ts, &te) == 0 && ts == think && te == think_end);
    /* Facts (shared/reference/facts.md §4): 151,643 BPE ids + 26 added = 151,669. */
    CHECK(cinfer_tokenizer_vocab_size(tok) == 151669);
    CHECK(cinfer_tokenizer_token_id(tok, "<|im_end|>") == 151645);
    CHECK(cinfer_tokenizer_is_special(tok, 151643) && cinfer_tokenizer_is_special(tok, 151656));
    CHECK(!cinfer_tokenizer_is_special(tok, 151657) && !cinfer_tokenizer_is_special(tok, think));
    CHECK(cinfer_tokenizer_bos_token(tok) == NULL); /* bos_token: null */
    CHECK(cinfer_tokenizer_eos_token(tok) && strcmp(cinfer_tokenizer_eos_token(tok), "<|im_end|>") == 0);
    size_t n;
    const char *bytes = cinfer_tokenizer_token_bytes(tok, 151645, &n);
    CHECK(bytes && n == 10 && memcmp(bytes, "<|im_end|>", 10) == 0);
    /* skip_special keeps <think> (not special) and drops <|im_start|>/<|im_end|>. */
    int32_t ids[] = {151644, think, 151645};
    char *s = cinfer_detokenize(tok, ids, 3, true, &n, &err);
    CHECK(s && n == 7 && memcmp(s, "<think>", 7) == 0);
    cinfer_free(s);
    /* Ids without a token decode to nothing (HF filters them). */
    int32_t odd[] = {151700, 9707};
    s = cinfer_detokenize(tok, odd, 2, false, &n, &err);
    CHECK(s && n == 5 && memcmp(s, "Hello", 5) == 0);
    cinfer_free(s);

    /* Eight threads encoding at once agree with one thread. */
    const char *texts[N_TEXTS] = {
        "The quick brown fox — 快速的棕色狐狸 — jumps over the lazy dog 12345.",
        "<|im_start|>user\nHello <think>why</think> there<|im_end|>\n",
        "def f(x):\n    return x ** 2  # square\n\n\n",
        "Ünïcödé   ñ  \t\r\n 日本語のテキスト、句読点。",
        "   leading and trailing spaces   ",
        "a\xFF\xFE b \xE6\x97 c"};
    size_t lens[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) lens[i] = strlen(texts[i]);
    check_concurrent(tok, texts, lens);
    cinfer_tokenizer_free(tok);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_tokenizer_unit WORK_DIR [QWEN3_MODEL_DIR]\n");
        return 2;
    }
    work_dir = argv[1];
    const char *qwen = argc > 2 && ci_is_directory(argv[2]) ? argv[2] : NULL;
    test_bpe_rules();
    test_pretokenizers();
    test_added_tokens();
    test_utf8();
    test_hostile_files(qwen);
    test_builder_direct();
    test_load_from_memory();
    test_streaming_json();
    test_vocab_without_bytes();
    test_word_cache_bounds();
    test_concurrent_tiny();
    if (qwen) test_qwen3(qwen);
    else printf("note: Qwen3 files not found; skipping the Qwen3 checks\n");
    TEST_MAIN_END();
}
