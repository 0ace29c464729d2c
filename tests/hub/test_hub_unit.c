/*
 * test_hub_unit.c — the hub's pure parts: SHA-256 and SHA-1 against the
 * FIPS 180-4 example vectors (and git's blob id of a known file), model-name
 * and hub file-name validation, GGUF quant matching, file selection.
 */
#include "hub/hub.h"
#include "hub/sha.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static void digest256(const void *data, size_t n, size_t step, char out[65]) {
    ci_sha256 s;
    uint8_t d[32];
    ci_sha256_init(&s);
    for (size_t i = 0; i < n; i += step) ci_sha256_update(&s, (const char *)data + i, n - i < step ? n - i : step);
    ci_sha256_final(&s, d);
    ci_hex(d, 32, out);
}

static void digest1(const void *data, size_t n, size_t step, char out[41]) {
    ci_sha1 s;
    uint8_t d[20];
    ci_sha1_init(&s);
    for (size_t i = 0; i < n; i += step) ci_sha1_update(&s, (const char *)data + i, n - i < step ? n - i : step);
    ci_sha1_final(&s, d);
    ci_hex(d, 20, out);
}

static void test_sha(void) {
    /* FIPS 180-4 / NIST CSRC examples: "abc", the 448-bit message, one million 'a'. */
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char h[65];
    digest256("abc", 3, 64, h);
    CHECK_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest256(two, strlen(two), 64, h);
    CHECK_STREQ(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    digest256("", 0, 64, h);
    CHECK_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char *mil = malloc(1000000);
    memset(mil, 'a', 1000000);
    for (size_t step = 1; step <= 1000000; step *= 1000) { /* 1, 1000, 1000000-byte updates */
        digest256(mil, 1000000, step, h);
        CHECK_STREQ(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }
    digest1("abc", 3, 1, h);
    CHECK_STREQ(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
    digest1(two, strlen(two), 7, h);
    CHECK_STREQ(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    digest1(mil, 1000000, 4096, h);
    CHECK_STREQ(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(mil);
    /* lengths around the padding boundary (55, 56, 63, 64 bytes): one-shot == byte-at-a-time */
    char buf[130];
    memset(buf, 'x', sizeof buf);
    for (size_t n = 50; n < 130; n++) {
        char a[65], b[65];
        digest256(buf, n, 1, a);
        digest256(buf, n, 1000, b);
        CHECK_STREQ(a, b);
    }
    /* git's blob id of "hello world\n" (git hash-object) through the file hasher */
    char path[] = "/tmp/hub_unit_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "hello world\n", 12) == 12);
    close(fd);
    char out[65];
    CHECK(ci_hub_hash_file(path, true, out, NULL) == 0);
    CHECK_STREQ(out, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
    CHECK(ci_hub_hash_file(path, false, out, NULL) == 0);
    CHECK_STREQ(out, "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447");
    unlink(path);
}

static void test_names(void) {
    ci_hub_ref r;
    CHECK(ci_hub_parse_name("Qwen/Qwen3-0.6B", &r, NULL) == 0 && !strcmp(r.org, "Qwen") &&
          !strcmp(r.name, "Qwen3-0.6B") && !r.quant[0] && r.source == CI_HUB_HF && !r.source_given);
    CHECK(ci_hub_parse_name("unsloth/Qwen3-4B-GGUF:Q4_K_M", &r, NULL) == 0 && !strcmp(r.quant, "Q4_K_M"));
    CHECK(ci_hub_parse_name("modelscope:Qwen/Qwen3-4B", &r, NULL) == 0 && r.source == CI_HUB_MODELSCOPE);
    CHECK(ci_hub_parse_name("hf.co/org/x:q8_0", &r, NULL) == 0 && r.source_given && !strcmp(r.quant, "q8_0"));
    const char *bad[] = {"../x/y", "/etc/passwd", "org/..", "..", "org/a..b", "org/.hidden", "org/x/y", "org/",
                         "/x", "org/na me", "org/x:", "org/x:a/b", "org\\x/y", "org/x:Q4;rm", "a/b\n", "",
                         "org/-x", "modelscope:../x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cinfer_error e = {0};
        CHECK_MSG(ci_hub_parse_name(bad[i], &r, &e) != 0 && e.message[0], "accepted '%s'", bad[i]);
    }
    CHECK(ci_hub_valid_revision("main") && ci_hub_valid_revision("refs/pr/1") && ci_hub_valid_revision("v2.0"));
    CHECK(!ci_hub_valid_revision("../x") && !ci_hub_valid_revision("/x") && !ci_hub_valid_revision("a/../b") &&
          !ci_hub_valid_revision("a b") && !ci_hub_valid_revision(""));
}

static void test_file_names(void) {
    const char *good[] = {"config.json", "original/params.json", "a/b/c.safetensors", "x..y"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK(ci_hub_valid_file_name(good[i], strlen(good[i])));
    const char *bad[] = {"../../etc/x", "/etc/x", "a/../b", "a//b", "./a", "a/.", "a\\b", "..", "a/", "c:x", "a\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_MSG(!ci_hub_valid_file_name(bad[i], strlen(bad[i])), "accepted '%s'", bad[i]);
    CHECK(!ci_hub_valid_file_name("a\0b", 3)); /* an embedded NUL from JSON "\u0000" */
}

static void test_gguf(void) {
    int s, n;
    CHECK(ci_hub_gguf_match("Qwen3-4B-Q4_K_M.gguf", "q4_k_m", &s, &n) && s == 0);
    CHECK(ci_hub_gguf_match("Q4_K_M/Qwen3-4B-Q4_K_M-00002-of-00003.gguf", "Q4_K_M", &s, &n) && s == 2 && n == 3);
    CHECK(ci_hub_gguf_match("model.Q8_0.gguf", "Q8_0", &s, &n));
    CHECK(!ci_hub_gguf_match("Qwen3-4B-Q4_K_M.gguf", "Q4_K", &s, &n));
    CHECK(!ci_hub_gguf_match("Qwen3-4B-IQ4_XS.gguf", "Q4_XS", &s, &n));
    CHECK(!ci_hub_gguf_match("mmproj-Q8_0.gguf", "Q8_0", &s, &n));
    CHECK(!ci_hub_gguf_match("Qwen3-4B-Q4_K_M.bin", "Q4_K_M", &s, &n));
}

static void test_select(void) {
    const char *names[] = {"config.json", "generation_config.json", "tokenizer.json", "model-00001-of-00002.safetensors",
                           "model-00002-of-00002.safetensors", "model.safetensors.index.json", "original/model.pth",
                           "pytorch_model.bin", "README.md", "merges.txt"};
    const bool want[] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 1};
    enum { N = sizeof names / sizeof *names };
    ci_hub_file f[N];
    memset(f, 0, sizeof f);
    for (int i = 0; i < N; i++) f[i].name = (char *)names[i];
    ci_hub_ref r;
    ci_hub_parse_name("Org/M", &r, NULL);
    cinfer_hub_options o;
    cinfer_hub_options_init(&o);
    CHECK(ci_hub_select(f, N, &r, &o, NULL) == 0);
    for (int i = 0; i < N; i++) CHECK_MSG(f[i].selected == want[i], "%s", names[i]);
    /* GGUF repo: the shortest matching stem and every shard of it */
    const char *g[] = {"M-UD-Q4_K_M.gguf", "M-Q4_K_M-00001-of-00002.gguf", "M-Q4_K_M-00002-of-00002.gguf", "M-Q8_0.gguf"};
    ci_hub_file gf[4];
    memset(gf, 0, sizeof gf);
    for (int i = 0; i < 4; i++) gf[i].name = (char *)g[i];
    CHECK(ci_hub_select(gf, 4, &r, &o, NULL) == 0); /* no quant: Q4_K_M as llama.cpp -hf */
    CHECK(!gf[0].selected && gf[1].selected && gf[2].selected && !gf[3].selected);
    ci_hub_parse_name("Org/M:q8_0", &r, NULL);
    CHECK(ci_hub_select(gf, 4, &r, &o, NULL) == 0 && gf[3].selected && !gf[1].selected);
    ci_hub_parse_name("Org/M:Q2_K", &r, NULL);
    cinfer_error e = {0};
    CHECK(ci_hub_select(gf, 4, &r, &o, &e) != 0 && strstr(e.message, "Q2_K"));
    gf[2].name = (char *)"other.gguf"; /* a missing shard is an error, not half a model */
    ci_hub_parse_name("Org/M:Q4_K_M", &r, NULL);
    CHECK(ci_hub_select(gf, 4, &r, &o, NULL) != 0);
}

int main(void) {
    test_sha();
    test_names();
    test_file_names();
    test_gguf();
    test_select();
    TEST_MAIN_END();
}
