/*
 * test_format_files.c — GGUF and safetensors readers/writers: round trips
 * of every value type and dtype, and every validation error on files broken
 * on purpose (truncated at every offset, lying lengths and counts, offsets
 * outside the file, overlaps, duplicates, unknown types, random byte flips).
 * Corrupt images are parsed from exact-size heap copies so that AddressSanitizer
 * (-DCINFER_SANITIZE=ON) sees any read past the end.
 */
#include "format/gguf.h"
#include "format/numeric.h"
#include "format/safetensors.h"
#include "test.h"
#include "tokenizer/tok_gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static char *tmp_path(const char *name) { return ci_path_join(tmpdir, name); }

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    if (!fp) abort();
    if (len) fwrite(data, 1, len, fp);
    fclose(fp);
}

/* ------------------------------------------------------------ numeric */

static void test_numeric(void) {
    CHECK(ci_fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(ci_fp32_to_fp16(-2.0f) == 0xc000);
    CHECK(ci_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(ci_fp32_to_fp16(65519.0f) == 0x7bff);
    CHECK(ci_fp32_to_fp16(65520.0f) == 0x7c00);          /* ties to even -> infinity */
    CHECK(ci_fp32_to_fp16(ldexpf(1, -24)) == 0x0001);    /* smallest subnormal */
    CHECK(ci_fp32_to_fp16(ldexpf(1, -25)) == 0x0000);    /* tie -> even (zero) */
    CHECK(ci_fp32_to_fp16(ldexpf(3, -26)) == 0x0001);    /* above the tie */
    CHECK(ci_fp32_to_fp16(1.0f + ldexpf(1, -11)) == 0x3c00); /* tie -> even */
    CHECK(ci_fp32_to_fp16(1.0f + ldexpf(3, -11)) == 0x3c02); /* tie -> even (up) */
    CHECK(ci_fp32_to_fp16(ldexpf(1, -14) - ldexpf(1, -25)) == 0x0400); /* subnormal rounding carries into normal */
    CHECK((ci_fp32_to_fp16(NAN) & 0x7fff) > 0x7c00);
    CHECK(ci_fp32_to_fp16(INFINITY) == 0x7c00);
    int roundtrip_ok = 1;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        if (ci_fp32_to_fp16(ci_fp16_to_fp32((uint16_t)h)) != h) roundtrip_ok = 0;
    }
    CHECK(roundtrip_ok);
    CHECK(ci_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(ci_fp32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80); /* tie -> even */
    CHECK(ci_fp32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82);
    CHECK(ci_fp32_to_bf16(-3.0f) == 0xc040);
    CHECK((ci_fp32_to_bf16(NAN) & 0x7fff) > 0x7f80);
    CHECK(ci_bf16_to_fp32(0x3f80) == 1.0f);

    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = (float)((i * 37) % 23 - 11) * 0.173f;
    uint8_t q[2 * sizeof(ci_block_q8_0)];
    ci_quantize_row_q8_0(q, x, 64);
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    CHECK(ci_load_le16(q) == ci_fp32_to_fp16(amax / 127.0f));
    CHECK((int8_t)q[2 + 5] == (int8_t)roundf(x[5] * (1.0f / (amax / 127.0f))));
    ci_dequantize_row(y, q, CI_WT_Q8_0, 64);
    float worst = 0;
    for (int i = 0; i < 64; i++) worst = fmaxf(worst, fabsf(x[i] - y[i]));
    CHECK(worst <= amax / 127.0f);
    float zeros[32] = {0};
    ci_quantize_row_q8_0(q, zeros, 32);
    CHECK(ci_load_le16(q) == 0 && q[2] == 0);
    uint8_t q4[2 * sizeof(ci_block_q4_0)];
    ci_quantize_row_q4_0(q4, x, 64);
    ci_dequantize_row(y, q4, CI_WT_Q4_0, 64);
    worst = 0;
    for (int i = 0; i < 32; i++) worst = fmaxf(worst, fabsf(x[i] - y[i]));
    CHECK(worst <= amax / 8.0f * 1.01f);
}

/* --------------------------------------------------------------- GGUF */

static uint8_t *load(const char *path, size_t *len) {
    cinfer_error err = {0};
    char *d = ci_read_file(path, 1u << 30, len, &err);
    if (!d) abort();
    return (uint8_t *)d;
}

/* Parses a copy of exactly `len` bytes; returns the error code (0 = ok). */
static int parse_gguf_copy(const uint8_t *img, size_t len, cinfer_error *err) {
    uint8_t *copy = ci_malloc(len ? len : 1);
    memcpy(copy, img, len);
    ci_gguf_file *f = ci_gguf_open_memory(copy, len, "mem.gguf", err);
    int rc = f ? 0 : err->code;
    if (f) {
        /* Touch everything a caller could touch. */
        for (size_t i = 0; i < f->n_tensors; i++) {
            volatile uint8_t sink = 0;
            if (f->tensors[i].n_bytes) sink ^= f->tensors[i].data[f->tensors[i].n_bytes - 1];
            (void)sink;
        }
        ci_gguf_close(f);
    }
    free(copy);
    return rc;
}

static void nested_array_kv(ci_gguf_writer *w, const char *key, int depth) {
    /* key, type ARRAY, then depth-1 levels of single-element arrays of arrays,
     * innermost an array of two int32. */
    ci_buf b = {0};
    uint8_t tmp[8];
    ci_store_le64(tmp, strlen(key));
    ci_buf_append(&b, tmp, 8);
    ci_buf_puts(&b, key);
    ci_store_le32(tmp, CI_GGUF_ARRAY);
    ci_buf_append(&b, tmp, 4);
    for (int d = 1; d < depth; d++) {
        ci_store_le32(tmp, CI_GGUF_ARRAY);
        ci_buf_append(&b, tmp, 4);
        ci_store_le64(tmp, 1);
        ci_buf_append(&b, tmp, 8);
    }
    ci_store_le32(tmp, CI_GGUF_INT32);
    ci_buf_append(&b, tmp, 4);
    ci_store_le64(tmp, 2);
    ci_buf_append(&b, tmp, 8);
    ci_store_le32(tmp, (uint32_t)-5);
    ci_buf_append(&b, tmp, 4);
    ci_store_le32(tmp, 77);
    ci_buf_append(&b, tmp, 4);
    ci_gguf_writer_kv_raw(w, b.data, b.len, 1);
    ci_buf_free(&b);
}

typedef struct test_tensor {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
} test_tensor;

static const test_tensor GGUF_TENSORS[] = {
    {"t.f32", CI_GGML_F32, 2, {4, 3}}, {"t.f16", CI_GGML_F16, 1, {8}},     {"t.bf16", CI_GGML_BF16, 2, {2, 2}},
    {"t.q8_0", CI_GGML_Q8_0, 2, {64, 2}}, {"t.q4_0", CI_GGML_Q4_0, 1, {32}}, {"t.q4_k", CI_GGML_Q4_K, 1, {256}},
    {"t.q6_k", CI_GGML_Q6_K, 3, {256, 1, 2}},
};
#define N_GGUF_TENSORS (sizeof GGUF_TENSORS / sizeof GGUF_TENSORS[0])

static uint8_t pattern_byte(size_t tensor, size_t i) { return (uint8_t)(tensor * 31 + i * 7 + 1); }

/* Writes the reference GGUF; nested_depth > 0 adds a nested array key. */
static int write_reference_gguf(const char *path, uint32_t alignment, int nested_depth, cinfer_error *err) {
    ci_gguf_writer *w = ci_gguf_writer_open(path, alignment, err);
    if (!w) return -1;
    ci_gguf_writer_kv_str(w, "general.architecture", "qwen3", 5);
    ci_gguf_writer_kv_u8(w, "k.u8", 250);
    ci_gguf_writer_kv_i8(w, "k.i8", -100);
    ci_gguf_writer_kv_u16(w, "k.u16", 65000);
    ci_gguf_writer_kv_i16(w, "k.i16", -32000);
    ci_gguf_writer_kv_u32(w, "k.u32", 4000000000u);
    ci_gguf_writer_kv_i32(w, "k.i32", -2000000000);
    ci_gguf_writer_kv_u64(w, "k.u64", 0xfedcba9876543210ull);
    ci_gguf_writer_kv_i64(w, "k.i64", -1234567890123ll);
    ci_gguf_writer_kv_f32(w, "k.f32", 0.15625f);
    ci_gguf_writer_kv_f64(w, "k.f64", 1e-300);
    ci_gguf_writer_kv_bool(w, "k.bool", true);
    ci_gguf_writer_kv_str(w, "k.str", "h\xc3\xa9llo\0x", 8);
    int32_t ints[] = {1, -2, 3};
    ci_gguf_writer_kv_array(w, "k.arr_i32", CI_GGUF_INT32, ints, 3);
    float floats[] = {0.5f, -1.25f};
    ci_gguf_writer_kv_array(w, "k.arr_f32", CI_GGUF_FLOAT32, floats, 2);
    uint16_t shorts[] = {7, 65535};
    ci_gguf_writer_kv_array(w, "k.arr_u16", CI_GGUF_UINT16, shorts, 2);
    const char *strs[] = {"a", "", "\xe4\xbd\xa0\xe5\xa5\xbd"};
    ci_gguf_writer_kv_str_array(w, "k.arr_str", strs, NULL, 3);
    ci_gguf_writer_kv_array(w, "k.arr_empty", CI_GGUF_UINT8, NULL, 0);
    if (nested_depth) nested_array_kv(w, "k.nested", nested_depth);
    for (size_t i = 0; i < N_GGUF_TENSORS; i++)
        if (ci_gguf_writer_add_tensor(w, GGUF_TENSORS[i].name, GGUF_TENSORS[i].type, GGUF_TENSORS[i].n_dims,
                                      GGUF_TENSORS[i].ne, err))
            return -1;
    if (ci_gguf_writer_begin_data(w, err)) return -1;
    for (size_t i = 0; i < N_GGUF_TENSORS; i++) {
        uint64_t bytes;
        ci_ggml_tensor_bytes(GGUF_TENSORS[i].type, GGUF_TENSORS[i].n_dims, GGUF_TENSORS[i].ne, &bytes);
        for (size_t j = 0; j < bytes; j++) { /* byte at a time: exercises chunked streaming */
            uint8_t b = pattern_byte(i, j);
            if (ci_gguf_writer_write(w, &b, 1, err)) return -1;
        }
    }
    return ci_gguf_writer_close(w, err);
}

static void test_gguf_roundtrip(uint32_t alignment) {
    char *path = tmp_path("ref.gguf");
    cinfer_error err = {0};
    CHECK_MSG(write_reference_gguf(path, alignment, 2, &err) == 0, "%s", err.message);
    ci_gguf_file *f = ci_gguf_open(path, &err);
    CHECK_MSG(f != NULL, "%s", err.message);
    if (!f) return;
    CHECK(f->version == 3);
    CHECK(f->alignment == (alignment ? alignment : 32));
    CHECK(f->data_offset % f->alignment == 0);
    uint64_t u;
    int64_t i64;
    double d;
    bool b;
    uint32_t u32;
    ci_gguf_str s;
    CHECK(ci_gguf_get_u64(f, "k.u8", &u) && u == 250);
    CHECK(ci_gguf_get_i64(f, "k.i8", &i64) && i64 == -100);
    CHECK(ci_gguf_get_u64(f, "k.u16", &u) && u == 65000);
    CHECK(ci_gguf_get_i64(f, "k.i16", &i64) && i64 == -32000);
    CHECK(ci_gguf_get_u32(f, "k.u32", &u32) && u32 == 4000000000u);
    CHECK(ci_gguf_get_i64(f, "k.i32", &i64) && i64 == -2000000000);
    CHECK(!ci_gguf_get_u32(f, "k.i32", &u32));      /* negative does not fit */
    CHECK(!ci_gguf_get_u32(f, "k.u64", &u32));      /* too big */
    CHECK(ci_gguf_get_u64(f, "k.u64", &u) && u == 0xfedcba9876543210ull);
    CHECK(ci_gguf_get_i64(f, "k.i64", &i64) && i64 == -1234567890123ll);
    CHECK(ci_gguf_get_f64(f, "k.f32", &d) && d == 0.15625);
    CHECK(ci_gguf_get_f64(f, "k.f64", &d) && d == 1e-300);
    CHECK(ci_gguf_get_bool(f, "k.bool", &b) && b);
    CHECK(ci_gguf_get_str(f, "k.str", &s) && s.len == 8 && memcmp(s.ptr, "h\xc3\xa9llo\0x", 8) == 0);
    CHECK(!ci_gguf_get_str(f, "k.u8", &s));
    CHECK(ci_gguf_find(f, "missing") == NULL);
    char *arch = ci_gguf_dup_str(f, "general.architecture");
    CHECK(arch && strcmp(arch, "qwen3") == 0);
    free(arch);
    const ci_gguf_value *a = ci_gguf_get_array(f, "k.arr_i32", CI_GGUF_INT32);
    CHECK(a && a->v.arr.count == 3 && ci_gguf_array_i64(a, 1, &i64) && i64 == -2 && ci_gguf_array_i64(a, 2, &i64) &&
          i64 == 3);
    CHECK(a && !ci_gguf_array_u64(a, 1, &u)); /* -2 does not fit */
    CHECK(a && !ci_gguf_array_i64(a, 3, &i64)); /* past the end */
    a = ci_gguf_get_array(f, "k.arr_f32", CI_GGUF_FLOAT32);
    CHECK(a && a->v.arr.count == 2 && ci_gguf_array_f64(a, 1) == -1.25);
    a = ci_gguf_get_array(f, "k.arr_u16", CI_GGUF_UINT16);
    CHECK(a && ci_gguf_array_u64(a, 1, &u) && u == 65535);
    a = ci_gguf_get_array(f, "k.arr_str", CI_GGUF_STRING);
    CHECK(a && a->v.arr.count == 3 && a->v.arr.strings[1].len == 0 && a->v.arr.strings[2].len == 6);
    CHECK(ci_gguf_get_array(f, "k.arr_str", CI_GGUF_INT32) == NULL);
    a = ci_gguf_get_array(f, "k.arr_empty", CI_GGUF_UINT8);
    CHECK(a && a->v.arr.count == 0);
    a = ci_gguf_get_array(f, "k.nested", CI_GGUF_ARRAY);
    CHECK(a && a->v.arr.count == 1 && a->v.arr.items[0].v.arr.elem_type == CI_GGUF_INT32 &&
          ci_gguf_array_i64(&a->v.arr.items[0], 0, &i64) && i64 == -5 &&
          ci_gguf_array_i64(&a->v.arr.items[0], 1, &i64) && i64 == 77);
    CHECK(f->n_tensors == N_GGUF_TENSORS);
    for (size_t i = 0; i < N_GGUF_TENSORS; i++) {
        const ci_gguf_tensor *t = ci_gguf_find_tensor(f, GGUF_TENSORS[i].name);
        CHECK_MSG(t != NULL, "%s", GGUF_TENSORS[i].name);
        if (!t) continue;
        CHECK(t->type == GGUF_TENSORS[i].type && t->n_dims == GGUF_TENSORS[i].n_dims);
        for (uint32_t k = 0; k < t->n_dims; k++) CHECK(t->ne[k] == GGUF_TENSORS[i].ne[k]);
        CHECK((size_t)(t->data - f->map.data) % f->alignment == 0);
        int same = 1;
        for (size_t j = 0; j < t->n_bytes; j++) same &= t->data[j] == pattern_byte(i, j);
        CHECK_MSG(same, "data of %s", t->name);
    }
    CHECK(ci_gguf_find_tensor(f, "t.nope") == NULL);
    ci_gguf_close(f);
    free(path);
}

/* Builds a GGUF image by hand so that single fields can be set to lies. */
typedef struct image {
    ci_buf b;
} image;
static void img_u32(image *im, uint32_t v) { uint8_t p[4]; ci_store_le32(p, v); ci_buf_append(&im->b, p, 4); }
static void img_u64(image *im, uint64_t v) { uint8_t p[8]; ci_store_le64(p, v); ci_buf_append(&im->b, p, 8); }
static void img_str(image *im, const char *s) { img_u64(im, strlen(s)); ci_buf_puts(&im->b, s); }

typedef struct hand_tensor {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
} hand_tensor;

/* Header + optional raw kv bytes + tensors; data section of `data_bytes` zeros. */
static uint8_t *hand_gguf(uint32_t version, uint64_t n_tensors_claim, uint64_t n_kv_claim, const void *kv, size_t kv_len,
                          const hand_tensor *ts, size_t n_ts, size_t data_bytes, size_t *len) {
    image im = {{0}};
    ci_buf_append(&im.b, "GGUF", 4);
    img_u32(&im, version);
    img_u64(&im, n_tensors_claim);
    img_u64(&im, n_kv_claim);
    if (kv_len) ci_buf_append(&im.b, kv, kv_len);
    for (size_t i = 0; i < n_ts; i++) {
        img_str(&im, ts[i].name);
        img_u32(&im, ts[i].n_dims);
        for (uint32_t d = 0; d < ts[i].n_dims && d < 5; d++) img_u64(&im, ts[i].ne[d]);
        img_u32(&im, ts[i].type);
        img_u64(&im, ts[i].offset);
    }
    while (im.b.len % 32) ci_buf_putc(&im.b, 0);
    for (size_t i = 0; i < data_bytes; i++) ci_buf_putc(&im.b, 0);
    return (uint8_t *)ci_buf_take(&im.b, len);
}

static void expect_gguf_error(const uint8_t *img, size_t len, const char *must_contain, const char *label) {
    cinfer_error err = {0};
    int rc = parse_gguf_copy(img, len, &err);
    CHECK_MSG(rc != 0, "%s: accepted", label);
    CHECK_MSG(strstr(err.message, "mem.gguf") != NULL, "%s: message lacks the file name: %s", label, err.message);
    if (must_contain) CHECK_MSG(strstr(err.message, must_contain) != NULL, "%s: '%s' not in: %s", label, must_contain, err.message);
}

static void kv_bytes(ci_buf *b, const char *key, uint32_t type, const void *payload, size_t len) {
    uint8_t p[8];
    ci_store_le64(p, strlen(key));
    ci_buf_append(b, p, 8);
    ci_buf_puts(b, key);
    ci_store_le32(p, type);
    ci_buf_append(b, p, 4);
    ci_buf_append(b, payload, len);
}

static void test_gguf_errors(void) {
    size_t len;
    uint8_t *img;
    hand_tensor ok = {"w", 2, {32, 2}, CI_GGML_F32, 0};
    /* The valid baseline first. */
    img = hand_gguf(3, 1, 0, NULL, 0, &ok, 1, 256, &len);
    cinfer_error err = {0};
    CHECK_MSG(parse_gguf_copy(img, len, &err) == 0, "baseline: %s", err.message);
    /* Truncated at every offset: always an error, never a crash. */
    int all_fail = 1;
    for (size_t cut = 0; cut < len; cut++)
        if (parse_gguf_copy(img, cut, &err) == 0) all_fail = 0;
    CHECK(all_fail);
    /* Random byte flips (deterministic): no crash, anything accepted stays in bounds. */
    uint64_t state = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *copy = ci_malloc(len);
        memcpy(copy, img, len);
        for (int k = 0; k < 1 + iter % 4; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            copy[(state >> 33) % len] = (uint8_t)(state >> 17);
        }
        parse_gguf_copy(copy, len, &err);
        free(copy);
    }
    free(img);

    img = hand_gguf(3, 1, 0, NULL, 0, &ok, 1, 256, &len);
    img[0] = 'X';
    expect_gguf_error(img, len, "magic", "bad magic");
    free(img);
    img = hand_gguf(1, 1, 0, NULL, 0, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "version 1", "version 1");
    free(img);
    img = hand_gguf(4, 1, 0, NULL, 0, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "version 4", "version 4");
    free(img);
    img = hand_gguf(0x03000000u, 1, 0, NULL, 0, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "big-endian", "big endian");
    free(img);
    img = hand_gguf(2, 1, 0, NULL, 0, &ok, 1, 256, &len);
    CHECK(parse_gguf_copy(img, len, &err) == 0); /* v2: same layout */
    free(img);
    img = hand_gguf(3, 1ull << 60, 0, NULL, 0, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "tensors", "huge tensor count");
    free(img);
    img = hand_gguf(3, 1, 1ull << 60, NULL, 0, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "metadata", "huge kv count");
    free(img);

    /* Metadata lies. */
    ci_buf kv = {0};
    uint8_t p[16];
    ci_store_le64(p, 1ull << 63);
    ci_buf_append(&kv, p, 8); /* key length 2^63 */
    img = hand_gguf(3, 0, 1, kv.data, kv.len, NULL, 0, 64, &len);
    expect_gguf_error(img, len, "claims", "huge key length");
    free(img);
    ci_buf_free(&kv);
    ci_store_le32(p, 7);
    kv_bytes(&kv, "k", 99, p, 4);
    img = hand_gguf(3, 0, 1, kv.data, kv.len, NULL, 0, 64, &len);
    expect_gguf_error(img, len, "unknown value type", "unknown value type");
    free(img);
    ci_buf_free(&kv);
    ci_store_le32(p, CI_GGUF_UINT8);
    ci_store_le64(p + 4, 1ull << 40);
    kv_bytes(&kv, "k.arr", CI_GGUF_ARRAY, p, 12);
    img = hand_gguf(3, 0, 1, kv.data, kv.len, NULL, 0, 64, &len);
    expect_gguf_error(img, len, "k.arr", "huge array");
    free(img);
    ci_buf_free(&kv);
    ci_store_le32(p, CI_GGUF_STRING);
    ci_store_le64(p + 4, 1000);
    kv_bytes(&kv, "k.strs", CI_GGUF_ARRAY, p, 12);
    img = hand_gguf(3, 0, 1, kv.data, kv.len, NULL, 0, 64, &len);
    expect_gguf_error(img, len, "k.strs", "string array longer than the file");
    free(img);
    ci_buf_free(&kv);
    ci_store_le32(p, 77);
    ci_store_le64(p + 4, 1);
    kv_bytes(&kv, "k.weird", CI_GGUF_ARRAY, p, 12);
    img = hand_gguf(3, 0, 1, kv.data, kv.len, NULL, 0, 64, &len);
    expect_gguf_error(img, len, "unknown element type", "array of unknown type");
    free(img);
    ci_buf_free(&kv);
    /* Arrays nested deeper than the limit. */
    {
        char *path = tmp_path("deep.gguf");
        ci_gguf_writer *w = ci_gguf_writer_open(path, 0, &err);
        nested_array_kv(w, "k.deep", CI_GGUF_MAX_ARRAY_DEPTH + 1);
        CHECK(ci_gguf_writer_close(w, &err) == 0);
        size_t n;
        uint8_t *deep = load(path, &n);
        cinfer_error e2 = {0};
        CHECK(parse_gguf_copy(deep, n, &e2) == CINFER_ERR_LIMIT && strstr(e2.message, "nested"));
        free(deep);
        free(path);
    }
    ci_store_le32(p, 1);
    kv_bytes(&kv, "dup", CI_GGUF_UINT32, p, 4);
    kv_bytes(&kv, "dup", CI_GGUF_UINT32, p, 4);
    img = hand_gguf(3, 0, 2, kv.data, kv.len, NULL, 0, 64, &len);
    expect_gguf_error(img, len, "duplicate metadata key 'dup'", "duplicate key");
    free(img);
    ci_buf_free(&kv);
    ci_store_le32(p, 48);
    kv_bytes(&kv, "general.alignment", CI_GGUF_UINT32, p, 4);
    img = hand_gguf(3, 1, 1, kv.data, kv.len, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "power of two", "alignment 48");
    free(img);
    ci_buf_free(&kv);
    ci_store_le32(p, 0);
    kv_bytes(&kv, "general.alignment", CI_GGUF_UINT32, p, 4);
    img = hand_gguf(3, 1, 1, kv.data, kv.len, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "power of two", "alignment 0");
    free(img);
    ci_buf_free(&kv);
    ci_store_le64(p, 64);
    kv_bytes(&kv, "general.alignment", CI_GGUF_UINT64, p, 8);
    img = hand_gguf(3, 1, 1, kv.data, kv.len, &ok, 1, 256, &len);
    expect_gguf_error(img, len, "uint32", "alignment as u64");
    free(img);
    ci_buf_free(&kv);

    /* Tensor info lies: each message names the tensor. */
    struct { hand_tensor t; size_t data; const char *msg; } cases[] = {
        {{"bad.type", 1, {32}, 99, 0}, 256, "unknown ggml type 99"},
        {{"bad.dims0", 0, {0}, CI_GGML_F32, 0}, 256, "0 dimensions"},
        {{"bad.dims5", 5, {1, 1, 1, 1, 1}, CI_GGML_F32, 0}, 256, "5 dimensions"},
        {{"bad.overflow", 3, {1ull << 32, 1ull << 32, 1ull << 32}, CI_GGML_F32, 0}, 256, "overflow"},
        {{"bad.huge", 2, {1ull << 31, 1ull << 31}, CI_GGML_F32, 0}, 256, "exceeds the file size"},
        {{"bad.outside", 1, {32}, CI_GGML_F32, 1u << 20}, 256, "outside the file"},
        {{"bad.offset_overflow", 1, {32}, CI_GGML_F32, UINT64_MAX - 31}, 256, "outside the file"},
        {{"bad.short", 1, {48}, CI_GGML_F32, 0}, 128, "outside the file"},
        {{"bad.misaligned", 1, {8}, CI_GGML_F32, 8}, 256, "alignment"},
        {{"bad.block", 1, {16}, CI_GGML_Q8_0, 0}, 256, "block size"},
        {{"bad.q4k", 1, {300}, CI_GGML_Q4_K, 0}, 256, "block size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        img = hand_gguf(3, 1, 0, NULL, 0, &cases[i].t, 1, cases[i].data, &len);
        expect_gguf_error(img, len, cases[i].msg, cases[i].t.name);
        cinfer_error e2 = {0};
        parse_gguf_copy(img, len, &e2);
        CHECK_MSG(strstr(e2.message, cases[i].t.name) != NULL, "%s: message lacks the tensor: %s", cases[i].t.name, e2.message);
        free(img);
    }
    hand_tensor dup[2] = {{"same", 1, {8}, CI_GGML_F32, 0}, {"same", 1, {8}, CI_GGML_F32, 32}};
    img = hand_gguf(3, 2, 0, NULL, 0, dup, 2, 256, &len);
    expect_gguf_error(img, len, "'same'", "duplicate tensor");
    expect_gguf_error(img, len, "duplicate tensor name", "duplicate tensor");
    free(img);
    hand_tensor longname = {"", 1, {8}, CI_GGML_F32, 0};
    img = hand_gguf(3, 1, 0, NULL, 0, &longname, 1, 256, &len);
    expect_gguf_error(img, len, "name length", "empty name");
    free(img);

    /* Through the file API: the path is in the message; missing file is IO. */
    char *path = tmp_path("bad.gguf");
    img = hand_gguf(3, 1, 0, NULL, 0, &cases[5].t, 1, 256, &len);
    write_bytes(path, img, len);
    free(img);
    ci_gguf_file *f = ci_gguf_open(path, &err);
    CHECK(f == NULL && strstr(err.message, path) && strstr(err.message, "bad.outside"));
    CHECK(ci_gguf_open("/nonexistent/x.gguf", &err) == NULL && err.code == CINFER_ERR_IO);
    write_bytes(path, "", 0);
    CHECK(ci_gguf_open(path, &err) == NULL && err.code != 0);
    free(path);

    /* Writer misuse is reported, not silently written. */
    path = tmp_path("w.gguf");
    ci_gguf_writer *w = ci_gguf_writer_open(path, 0, &err);
    uint64_t ne = 16;
    CHECK(ci_gguf_writer_add_tensor(w, "x", CI_GGML_Q8_0, 1, &ne, &err) != 0); /* not a block multiple */
    ne = 4;
    CHECK(ci_gguf_writer_add_tensor(w, "x", CI_GGML_F32, 1, &ne, &err) == 0);
    CHECK(ci_gguf_writer_add_tensor(w, "x", CI_GGML_F32, 1, &ne, &err) != 0); /* duplicate */
    CHECK(ci_gguf_writer_begin_data(w, &err) == 0);
    CHECK(ci_gguf_writer_write(w, "abcd", 4, &err) == 0);
    CHECK(ci_gguf_writer_close(w, &err) != 0 && strstr(err.message, "'x'")); /* 4 of 16 bytes */
    CHECK(access(path, F_OK) != 0);                                           /* and removed */
    CHECK(ci_gguf_writer_open(path, 3, &err) == NULL);
    free(path);
}

/* ------------------------------------------------------------ safetensors */

static uint8_t *st_image(const char *header, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    uint8_t *img = ci_calloc(*len, 1);
    ci_store_le64(img, h);
    memcpy(img + 8, header, h);
    for (size_t i = 0; i < data_len; i++) img[8 + h + i] = (uint8_t)(i * 13 + 5);
    return img;
}

static int parse_st_copy(const uint8_t *img, size_t len, cinfer_error *err) {
    uint8_t *copy = ci_malloc(len ? len : 1);
    memcpy(copy, img, len);
    ci_st_file *f = ci_st_open_memory(copy, len, "mem.safetensors", err);
    int rc = f ? 0 : err->code;
    if (f) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            volatile uint8_t sink = 0;
            if (f->tensors[i].n_bytes) sink ^= f->tensors[i].data[f->tensors[i].n_bytes - 1];
            (void)sink;
        }
        ci_st_close(f);
    }
    free(copy);
    return rc;
}

static void expect_st_error(const char *header, size_t data_len, const char *must_contain, const char *label) {
    size_t len;
    uint8_t *img = st_image(header, data_len, &len);
    cinfer_error err = {0};
    int rc = parse_st_copy(img, len, &err);
    CHECK_MSG(rc != 0, "%s: accepted", label);
    CHECK_MSG(strstr(err.message, "mem.safetensors") != NULL, "%s: no file name in: %s", label, err.message);
    if (must_contain) CHECK_MSG(strstr(err.message, must_contain) != NULL, "%s: '%s' not in: %s", label, must_contain, err.message);
    free(img);
}

static void test_safetensors_roundtrip(void) {
    char *path = tmp_path("rt.safetensors");
    cinfer_error err = {0};
    ci_st_writer *w = ci_st_writer_open(path, &err);
    CHECK(w != NULL);
    struct { const char *name; ci_st_dtype dt; uint32_t n_dims; uint64_t shape[3]; } ts[] = {
        {"z.f32", CI_ST_F32, 2, {2, 3}}, {"a.bf16", CI_ST_BF16, 1, {5}}, {"m.f16", CI_ST_F16, 3, {1, 2, 2}},
        {"b.i64", CI_ST_I64, 1, {2}},   {"c.u8", CI_ST_U8, 1, {3}},     {"d.bool", CI_ST_BOOL, 1, {1}},
        {"e.f64", CI_ST_F64, 1, {1}},   {"f.scalar", CI_ST_I32, 0, {0}}, {"g.empty", CI_ST_F32, 2, {0, 4}},
    };
    size_t n = sizeof ts / sizeof ts[0];
    for (size_t i = 0; i < n; i++) CHECK(ci_st_writer_add(w, ts[i].name, ts[i].dt, ts[i].n_dims, ts[i].shape, &err) == 0);
    CHECK(ci_st_writer_add(w, "a.bf16", CI_ST_F32, 1, ts[0].shape, &err) != 0);
    CHECK(ci_st_writer_begin_data(w, &err) == 0);
    CHECK(strcmp(ci_st_writer_name(w, 0), "a.bf16") == 0 && strcmp(ci_st_writer_name(w, n - 1), "z.f32") == 0);
    const float values[6] = {1.5f, -2.0f, 0.333f, 1e-8f, 65504.0f, -0.0f};
    for (size_t k = 0; k < ci_st_writer_count(w); k++) {
        const char *name = ci_st_writer_name(w, k);
        uint8_t buf[64] = {0};
        size_t bytes = 0;
        if (!strcmp(name, "z.f32")) {
            for (int i = 0; i < 6; i++) memcpy(buf + 4 * i, &values[i], 4);
            bytes = 24;
        } else if (!strcmp(name, "a.bf16")) {
            for (int i = 0; i < 5; i++) ci_store_le16(buf + 2 * i, ci_fp32_to_bf16(values[i]));
            bytes = 10;
        } else if (!strcmp(name, "m.f16")) {
            for (int i = 0; i < 4; i++) ci_store_le16(buf + 2 * i, ci_fp32_to_fp16(values[i]));
            bytes = 8;
        } else if (!strcmp(name, "b.i64")) bytes = 16, buf[0] = 9;
        else if (!strcmp(name, "c.u8")) bytes = 3, buf[2] = 200;
        else if (!strcmp(name, "d.bool")) bytes = 1, buf[0] = 1;
        else if (!strcmp(name, "e.f64")) bytes = 8;
        else if (!strcmp(name, "f.scalar")) bytes = 4, buf[0] = 42;
        CHECK(ci_st_writer_write(w, buf, bytes, &err) == 0);
    }
    CHECK_MSG(ci_st_writer_close(w, &err) == 0, "%s", err.message);

    ci_st_file *f = ci_st_open(path, &err);
    CHECK_MSG(f != NULL, "%s", err.message);
    if (!f) return;
    CHECK(f->header_len % 8 == 0);
    CHECK(f->n_tensors == n);
    const char *fmt = ci_st_metadata(f, "format");
    CHECK(fmt && strcmp(fmt, "pt") == 0);
    /* Header and data are in name order (HF save_file). */
    int sorted = 1;
    for (size_t i = 1; i < f->n_tensors; i++) sorted &= strcmp(f->tensors[i - 1].name, f->tensors[i].name) < 0 &&
                                                       f->tensors[i - 1].begin <= f->tensors[i].begin;
    CHECK(sorted);
    float out[6];
    const ci_st_tensor *t = ci_st_find(f, "z.f32");
    CHECK(t && t->dtype == CI_ST_F32 && t->n_dims == 2 && t->shape[1] == 3 && ci_st_tensor_to_f32(t, 0, 6, out, &err) == 0);
    CHECK(memcmp(out, values, sizeof values) == 0);
    t = ci_st_find(f, "a.bf16");
    CHECK(t && ci_st_tensor_to_f32(t, 1, 4, out, &err) == 0 && out[0] == -2.0f && out[2] == ci_bf16_to_fp32(ci_fp32_to_bf16(1e-8f)));
    CHECK(t && ci_st_tensor_to_f32(t, 3, 3, out, &err) != 0); /* past the end */
    t = ci_st_find(f, "m.f16");
    CHECK(t && t->shape[0] == 1 && ci_st_tensor_to_f32(t, 0, 4, out, &err) == 0 && out[0] == 1.5f && out[3] == ci_fp16_to_fp32(ci_fp32_to_fp16(1e-8f)));
    t = ci_st_find(f, "b.i64");
    CHECK(t && t->n_bytes == 16 && t->data[0] == 9);
    CHECK(t && ci_st_tensor_to_f32(t, 0, 1, out, &err) != 0 && strstr(err.message, "unsupported dtype I64") && strstr(err.message, "b.i64"));
    t = ci_st_find(f, "f.scalar");
    CHECK(t && t->n_dims == 0 && t->n_elements == 1 && t->data[0] == 42);
    t = ci_st_find(f, "g.empty");
    CHECK(t && t->n_bytes == 0 && t->n_elements == 0);
    CHECK(ci_st_find(f, "nope") == NULL);
    ci_st_close(f);

    /* Truncation at every offset of this real file, and random flips. */
    size_t len;
    uint8_t *img = load(path, &len);
    int all_fail = 1;
    for (size_t cut = 0; cut < len; cut++)
        if (parse_st_copy(img, cut, &err) == 0) all_fail = 0;
    CHECK(all_fail);
    size_t header_end = 8 + (size_t)ci_load_le64(img);
    uint64_t state = 99;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *copy = ci_malloc(len);
        memcpy(copy, img, len);
        for (int k = 0; k < 1 + iter % 3; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            /* Mostly the header, where the structure is. */
            size_t at = (state >> 33) % (iter % 5 ? header_end : len);
            copy[at] = (uint8_t)(state >> 17);
        }
        parse_st_copy(copy, len, &err);
        free(copy);
    }
    free(img);
    free(path);
}

static void test_safetensors_errors(void) {
    const char *good = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}";
    size_t len;
    uint8_t *img = st_image(good, 16, &len);
    cinfer_error err = {0};
    CHECK_MSG(parse_st_copy(img, len, &err) == 0, "baseline: %s", err.message);
    free(img);

    /* Header length lies. */
    uint8_t small[8];
    ci_store_le64(small, 4);
    CHECK(parse_st_copy(small, 7, &err) != 0 && strstr(err.message, "too short"));
    img = st_image(good, 16, &len);
    ci_store_le64(img, len); /* beyond the file */
    CHECK(parse_st_copy(img, len, &err) != 0 && strstr(err.message, "exceeds the file"));
    ci_store_le64(img, 200ull << 20); /* beyond the 100 MiB limit */
    CHECK(parse_st_copy(img, len, &err) == CINFER_ERR_LIMIT && strstr(err.message, "limit"));
    ci_store_le64(img, UINT64_MAX);
    CHECK(parse_st_copy(img, len, &err) != 0);
    ci_store_le64(img, 1);
    CHECK(parse_st_copy(img, len, &err) != 0 && strstr(err.message, "too small"));
    ci_store_le64(img, strlen(good) - 1); /* cuts the JSON */
    CHECK(parse_st_copy(img, len, &err) != 0 && strstr(err.message, "JSON"));
    free(img);

    expect_st_error("[1,2]", 0, "not a JSON object", "array header");
    expect_st_error("{\"a\":", 0, "JSON", "bad json");
    expect_st_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "unknown dtype \"Q4\"", "unknown dtype");
    expect_st_error("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a': missing \"dtype\"", "missing dtype");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "'w': missing \"shape\"", "shape not array");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "'w': shape[0]", "negative dim");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions", "too many dims");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
                    "'w': shape overflows", "dim overflow");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'w': shape", "wrong span");
    expect_st_error("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,6]}}", 8, "span 6 bytes", "wrong shape");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "'w': data_offsets [0, 8] outside",
                    "offsets outside");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", 4, "outside", "empty outside");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before begin", "end<begin");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "[begin, end]", "one offset");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "[begin, end]", "negative offset");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999999]}}", 8, "JSON", "offset overflow");
    expect_st_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps tensor", "overlap");
    expect_st_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "duplicate", "duplicate names");
    expect_st_error("{\"__metadata__\":{\"format\":1}}", 0, "not a string", "metadata not string");
    expect_st_error("{\"__metadata__\":[]}", 0, "__metadata__", "metadata not object");
    expect_st_error("{\"w\":[]}", 0, "'w': header entry is not an object", "entry not object");
    /* Touching, not overlapping; empty tensors anywhere in range; a gap. */
    img = st_image("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                   "\"y\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]}}", 12, &len);
    CHECK_MSG(parse_st_copy(img, len, &err) == 0, "%s", err.message);
    free(img);

    /* Through the file API, the path appears in the message. */
    char *path = tmp_path("bad.safetensors");
    img = st_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, &len);
    write_bytes(path, img, len);
    free(img);
    CHECK(ci_st_open(path, &err) == NULL && strstr(err.message, path) && strstr(err.message, "'w'"));
    free(path);
}

static void write_shard(const char *name, const char *const *tensors, size_t n) {
    char *path = tmp_path(name);
    cinfer_error err = {0};
    ci_st_writer *w = ci_st_writer_open(path, &err);
    uint64_t shape[1] = {2};
    for (size_t i = 0; i < n; i++) ci_st_writer_add(w, tensors[i], CI_ST_F32, 1, shape, &err);
    ci_st_writer_begin_data(w, &err);
    for (size_t i = 0; i < n; i++) {
        const char *t = ci_st_writer_name(w, i);
        float v[2] = {(float)t[0], (float)strlen(t)};
        ci_st_writer_write(w, v, sizeof v, &err);
    }
    CHECK(ci_st_writer_close(w, &err) == 0);
    free(path);
}

static void test_sharded(void) {
    char *dir = tmp_path("sharded");
    mkdir(dir, 0777);
    const char *first[] = {"model.b", "model.a"}, *second[] = {"lm_head"};
    write_shard("sharded/model-00001-of-00002.safetensors", first, 2);
    write_shard("sharded/model-00002-of-00002.safetensors", second, 1);
    char *index = ci_path_join(dir, "model.safetensors.index.json");
    /* total_size deliberately wrong: it must not matter (facts.md §5). */
    const char *good_index = "{\"metadata\":{\"total_size\":1},\"weight_map\":{\"model.a\":\"model-00001-of-00002.safetensors\","
                             "\"model.b\":\"model-00001-of-00002.safetensors\",\"lm_head\":\"model-00002-of-00002.safetensors\"}}";
    write_bytes(index, good_index, strlen(good_index));
    cinfer_error err = {0};
    ci_st_model *m = ci_st_model_open(dir, &err);
    CHECK_MSG(m != NULL, "%s", err.message);
    if (m) {
        CHECK(m->n_files == 2 && m->n_tensors == 3);
        CHECK(strcmp(m->tensors[0]->name, "lm_head") == 0);
        const ci_st_tensor *t = ci_st_model_find(m, "lm_head");
        float v[2];
        CHECK(t && ci_st_tensor_to_f32(t, 0, 2, v, &err) == 0 && v[0] == 'l' && v[1] == 7);
        CHECK(t && strstr(t->file, "00002"));
        CHECK(ci_st_model_find(m, "model.a") && !ci_st_model_find(m, "model.c"));
        ci_st_model_close(m);
    }
    m = ci_st_model_open(index, &err); /* the index file itself */
    CHECK(m && m->n_tensors == 3);
    ci_st_model_close(m);
    char *single = ci_path_join(dir, "model-00001-of-00002.safetensors");
    m = ci_st_model_open(single, &err);
    CHECK(m && m->n_tensors == 2 && strcmp(m->tensors[0]->name, "model.a") == 0);
    ci_st_model_close(m);
    free(single);

    struct { const char *json; const char *msg; } bad[] = {
        {"{\"weight_map\":{\"model.a\":\"../x.safetensors\"}}", "invalid shard name"},
        {"{\"weight_map\":{\"model.a\":\"\"}}", "invalid shard name"},
        {"{\"weight_map\":{\"model.a\":7}}", "invalid shard name"},
        {"{\"weight_map\":{\"model.a\":\"missing.safetensors\"}}", "missing.safetensors"},
        {"{\"weight_map\":{\"lm_head\":\"model-00001-of-00002.safetensors\"}}", "'lm_head' is listed in shard"},
        {"{\"metadata\":{}}", "weight_map"},
        {"{\"weight_map\":", "index.json"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_bytes(index, bad[i].json, strlen(bad[i].json));
        m = ci_st_model_open(dir, &err);
        CHECK_MSG(m == NULL && strstr(err.message, bad[i].msg), "index case %zu: %s", i, err.message);
        ci_st_model_close(m);
    }
    /* The parser alone, from memory (the fuzzing entry point): no file is opened. */
    ci_st_index ix;
    CHECK(ci_st_index_parse(good_index, strlen(good_index), "mem.json", &ix, &err) == 0);
    CHECK(ix.n_shards == 2 && ix.n_entries == 3 && strcmp(ix.shards[1], "model-00002-of-00002.safetensors") == 0);
    CHECK(ix.n_entries == 3 && strcmp(ix.tensors[2], "lm_head") == 0 && ix.shard_of[2] == 1 && ix.shard_of[1] == 0);
    ci_st_index_free(&ix);
    const char *dup = "{\"weight_map\":{\"a\":\"s\",\"a\":\"t\"}}";
    CHECK(ci_st_index_parse(dup, strlen(dup), "mem.json", &ix, &err) != 0 && strstr(err.message, "mem.json") &&
          ix.n_entries == 0 && ix.tensors == NULL);
    CHECK(ci_st_index_parse(bad[0].json, strlen(bad[0].json), "mem.json", &ix, &err) != 0 &&
          strstr(err.message, "invalid shard name"));
    char *empty = tmp_path("empty_dir");
    mkdir(empty, 0777);
    CHECK(ci_st_model_open(empty, &err) == NULL && err.code == CINFER_ERR_IO);
    free(empty);
    free(index);
    free(dir);
}

/* Payload of an array value: element type, count, packed elements. */
static void array_payload(ci_buf *b, uint32_t elem_type, const void *elems, size_t count, size_t width) {
    uint8_t p[8];
    ci_store_le32(p, elem_type);
    ci_buf_append(b, p, 4);
    ci_store_le64(p, count);
    ci_buf_append(b, p, 8);
    ci_buf_append(b, elems, count * width); /* x86-64 is little-endian, as GGUF */
}

static void kv_array(ci_buf *kv, const char *key, uint32_t elem_type, const void *elems, size_t count, size_t width) {
    ci_buf payload = {0};
    array_payload(&payload, elem_type, elems, count, width);
    kv_bytes(kv, key, CI_GGUF_ARRAY, payload.data, payload.len);
    ci_buf_free(&payload);
}

/* Integer accessors never convert floats (fuzzing found [1e30, NaN] as
 * tokenizer.ggml.token_type overflowing a float-to-integer conversion) and
 * refuse values that do not fit; the tokenizer loader turns that into an error. */
static void test_gguf_conversions(void) {
    const float bad_types[2] = {1e30f, NAN};
    const double f64s[2] = {-1e300, 2.5};
    const uint64_t u64s[2] = {UINT64_MAX, 7};
    const int8_t i8s[2] = {-1, 5};
    ci_buf kv = {0};
    kv_array(&kv, "tokenizer.ggml.token_type", CI_GGUF_FLOAT32, bad_types, 2, 4);
    kv_array(&kv, "k.f64s", CI_GGUF_FLOAT64, f64s, 2, 8);
    kv_array(&kv, "k.u64s", CI_GGUF_UINT64, u64s, 2, 8);
    kv_array(&kv, "k.i8s", CI_GGUF_INT8, i8s, 2, 1);
    const char *tok_strs[2] = {"a", "b"};
    ci_buf strs = {0};
    uint8_t p[8];
    ci_store_le32(p, CI_GGUF_STRING);
    ci_buf_append(&strs, p, 4);
    ci_store_le64(p, 2);
    ci_buf_append(&strs, p, 8);
    for (int i = 0; i < 2; i++) {
        ci_store_le64(p, 1);
        ci_buf_append(&strs, p, 8);
        ci_buf_puts(&strs, tok_strs[i]);
    }
    kv_bytes(&kv, "tokenizer.ggml.tokens", CI_GGUF_ARRAY, strs.data, strs.len);
    ci_buf_free(&strs);
    kv_array(&kv, "tokenizer.ggml.merges", CI_GGUF_STRING, NULL, 0, 0);
    ci_store_le64(p, 4);
    kv_bytes(&kv, "tokenizer.ggml.model", CI_GGUF_STRING, p, 8);
    ci_buf_puts(&kv, "gpt2");
    ci_store_le64(p, 5);
    kv_bytes(&kv, "tokenizer.ggml.pre", CI_GGUF_STRING, p, 8);
    ci_buf_puts(&kv, "qwen2");
    double big = 1e300, half = 0.5;
    kv_bytes(&kv, "k.big", CI_GGUF_FLOAT64, &big, 8);
    kv_bytes(&kv, "k.half", CI_GGUF_FLOAT64, &half, 8);
    size_t len;
    uint8_t *img = hand_gguf(3, 0, 10, kv.data, kv.len, NULL, 0, 0, &len);
    ci_buf_free(&kv);
    cinfer_error err = {0};
    ci_gguf_file *f = ci_gguf_open_memory(img, len, "conv.gguf", &err);
    CHECK_MSG(f != NULL, "%s", err.message);
    if (!f) {
        free(img);
        return;
    }
    uint64_t u = 123;
    int64_t i = 123;
    const ci_gguf_value *a = ci_gguf_find(f, "tokenizer.ggml.token_type");
    CHECK(a && !ci_gguf_array_i64(a, 0, &i) && !ci_gguf_array_i64(a, 1, &i) && !ci_gguf_array_u64(a, 0, &u) &&
          !ci_gguf_array_u64(a, 1, &u) && i == 123 && u == 123);
    CHECK(a && ci_gguf_array_f64(a, 0) == (double)1e30f && isnan(ci_gguf_array_f64(a, 1)));
    a = ci_gguf_find(f, "k.f64s");
    CHECK(a && !ci_gguf_array_i64(a, 0, &i) && !ci_gguf_array_i64(a, 1, &i) && ci_gguf_array_f64(a, 0) == -1e300);
    a = ci_gguf_find(f, "k.u64s");
    CHECK(a && ci_gguf_array_u64(a, 0, &u) && u == UINT64_MAX && !ci_gguf_array_i64(a, 0, &i));
    CHECK(a && ci_gguf_array_i64(a, 1, &i) && i == 7 && !ci_gguf_array_u64(a, 2, &u));
    a = ci_gguf_find(f, "k.i8s");
    CHECK(a && ci_gguf_array_i64(a, 0, &i) && i == -1 && !ci_gguf_array_u64(a, 0, &u));
    CHECK(a && ci_gguf_array_u64(a, 1, &u) && u == 5 && ci_gguf_array_f64(a, 0) == -1.0);
    float fl = 0;
    double d = 0;
    CHECK(!ci_gguf_get_f32(f, "k.big", &fl) && ci_gguf_get_f64(f, "k.big", &d) && d == 1e300);
    CHECK(ci_gguf_get_f32(f, "k.half", &fl) && fl == 0.5f);
    /* The tokenizer loader, the path the fuzzer took: a clear error. */
    memset(&err, 0, sizeof err);
    cinfer_tokenizer *tok = ci_tok_load_gguf(f, "conv.gguf", &err);
    CHECK(tok == NULL && err.code == CINFER_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, "conv.gguf") && strstr(err.message, "token_type must be an integer array"), "%s",
              err.message);
    ci_gguf_close(f);
    free(img);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cinfer-format-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_numeric();
    test_gguf_roundtrip(0);
    test_gguf_roundtrip(64);
    test_gguf_errors();
    test_gguf_conversions();
    test_safetensors_roundtrip();
    test_safetensors_errors();
    test_sharded();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    TEST_MAIN_END();
}
