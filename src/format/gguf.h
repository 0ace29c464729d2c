/*
 * gguf.h — GGUF (v3, and v2 which has the same layout) reader and writer.
 *
 * File layout (ggml docs/gguf.md), all little-endian:
 *   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
 *   kv_count × { string key, u32 value_type, value },
 *   tensor_count × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
 *   padding to general.alignment (default 32), then the tensor data section;
 *   each tensor's offset is relative to the data section and aligned.
 * A string is u64 length + bytes (no NUL); an array is u32 element type,
 * u64 count, elements (arrays may nest).
 *
 * The reader works over a read-only mapping of the file. Every count, length
 * and dimension is checked against the bytes that remain before anything is
 * allocated, so a corrupt or hostile file yields an error naming the file
 * (and the key or tensor), never a crash or a huge allocation. Strings and
 * tensor data point into the mapping; they live as long as the file is open.
 *
 * The writer streams: metadata and tensor infos are collected in memory
 * (small), then the tensor data is written in the order the tensors were
 * added, so a multi-GB model never has to be held in memory.
 */
#ifndef CINFER_FORMAT_GGUF_H
#define CINFER_FORMAT_GGUF_H

#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

/* ---------------------------------------------------------- ggml types */

enum {
    CI_GGML_F32 = 0, CI_GGML_F16 = 1, CI_GGML_Q4_0 = 2, CI_GGML_Q4_1 = 3,
    CI_GGML_Q5_0 = 6, CI_GGML_Q5_1 = 7, CI_GGML_Q8_0 = 8, CI_GGML_Q8_1 = 9,
    CI_GGML_Q2_K = 10, CI_GGML_Q3_K = 11, CI_GGML_Q4_K = 12, CI_GGML_Q5_K = 13,
    CI_GGML_Q6_K = 14, CI_GGML_Q8_K = 15, CI_GGML_I8 = 24, CI_GGML_I16 = 25,
    CI_GGML_I32 = 26, CI_GGML_I64 = 27, CI_GGML_F64 = 28, CI_GGML_BF16 = 30,
};

typedef struct ci_ggml_type_info {
    const char *name;    /* "F32", "Q8_0", ... */
    uint32_t block_size; /* weights per block (1 for plain types) */
    uint32_t block_bytes;/* bytes per block */
} ci_ggml_type_info;

/* NULL for a type id cinfer does not know. */
const ci_ggml_type_info *ci_ggml_type_get(uint32_t type);
/* Bytes of a tensor with dims ne[0..n_dims): false when a type is unknown,
 * ne[0] is not a multiple of the block size, or the size overflows. */
bool ci_ggml_tensor_bytes(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t *bytes_out);

/* llama.cpp's general.file_type values (LLAMA_FTYPE_*) for the ones cinfer writes. */
enum { CI_GGUF_FTYPE_ALL_F32 = 0, CI_GGUF_FTYPE_MOSTLY_F16 = 1, CI_GGUF_FTYPE_MOSTLY_Q4_0 = 2,
       CI_GGUF_FTYPE_MOSTLY_Q8_0 = 7, CI_GGUF_FTYPE_MOSTLY_Q4_K_S = 14, CI_GGUF_FTYPE_MOSTLY_Q4_K_M = 15,
       CI_GGUF_FTYPE_MOSTLY_Q6_K = 18, CI_GGUF_FTYPE_MOSTLY_BF16 = 32 };

/* ----------------------------------------------------- metadata values */

typedef enum ci_gguf_value_type {
    CI_GGUF_UINT8 = 0, CI_GGUF_INT8 = 1, CI_GGUF_UINT16 = 2, CI_GGUF_INT16 = 3,
    CI_GGUF_UINT32 = 4, CI_GGUF_INT32 = 5, CI_GGUF_FLOAT32 = 6, CI_GGUF_BOOL = 7,
    CI_GGUF_STRING = 8, CI_GGUF_ARRAY = 9, CI_GGUF_UINT64 = 10, CI_GGUF_INT64 = 11,
    CI_GGUF_FLOAT64 = 12,
} ci_gguf_value_type;

#define CI_GGUF_MAX_ARRAY_DEPTH 4          /* arrays of arrays nest at most this deep */
#define CI_GGUF_MAX_ARRAY_LEN (1u << 26)   /* elements per array (a vocabulary is ~256k) */
#define CI_GGUF_MAX_DIMS 4                 /* GGML_MAX_DIMS */

typedef struct ci_gguf_str {
    const char *ptr; /* into the mapping, NOT NUL-terminated */
    size_t len;
} ci_gguf_str;

typedef struct ci_gguf_value ci_gguf_value;
struct ci_gguf_value {
    uint32_t type; /* ci_gguf_value_type */
    union {
        uint64_t u;  /* UINT8/16/32/64 */
        int64_t i;   /* INT8/16/32/64 */
        double f;    /* FLOAT32/64 */
        bool b;      /* BOOL */
        ci_gguf_str str;
        struct {
            uint32_t elem_type;
            size_t count;
            const uint8_t *raw;          /* numeric/bool elements, packed little-endian */
            ci_gguf_str *strings;        /* elem_type STRING: count entries */
            ci_gguf_value *items;        /* elem_type ARRAY: count nested arrays */
        } arr;
    } v;
};

/* Integer element i of an array value: false when i is out of range, the
 * element type is not an integer type (float, bool, string and array
 * elements are refused, as by ci_gguf_get_i64) or the value does not fit. */
bool ci_gguf_array_u64(const ci_gguf_value *arr, size_t i, uint64_t *out);
bool ci_gguf_array_i64(const ci_gguf_value *arr, size_t i, int64_t *out);
/* Numeric element i (any integer / float / bool element type); 0 when i is out of range. */
double ci_gguf_array_f64(const ci_gguf_value *arr, size_t i);
const char *ci_gguf_value_type_name(uint32_t type);

/* ----------------------------------------------------------------- reader */

typedef struct ci_gguf_kv {
    ci_gguf_str key;
    ci_gguf_value value;
} ci_gguf_kv;

typedef struct ci_gguf_tensor {
    char *name;             /* NUL-terminated copy */
    uint32_t n_dims;
    uint64_t ne[CI_GGUF_MAX_DIMS]; /* ne[0] innermost; unused dims are 1 */
    uint32_t type;          /* CI_GGML_* */
    uint64_t offset;        /* relative to the data section */
    uint64_t n_elements;
    size_t n_bytes;
    const uint8_t *data;    /* into the mapping */
} ci_gguf_tensor;

typedef struct ci_gguf_file {
    char *path;
    ci_mapped_file map;
    uint32_t version;
    size_t n_kv;
    ci_gguf_kv *kv;
    size_t n_tensors;
    ci_gguf_tensor *tensors;
    uint32_t alignment;
    size_t data_offset;     /* file offset of the tensor data section */
    struct ci_gguf_private *priv;
} ci_gguf_file;

ci_gguf_file *ci_gguf_open(const char *path, cinfer_error *err);
/* Parses a GGUF image already in memory (not copied; must outlive the file).
 * `name` is used in error messages. */
ci_gguf_file *ci_gguf_open_memory(const uint8_t *data, size_t size, const char *name, cinfer_error *err);
void ci_gguf_close(ci_gguf_file *f);

const ci_gguf_value *ci_gguf_find(const ci_gguf_file *f, const char *key);
const ci_gguf_tensor *ci_gguf_find_tensor(const ci_gguf_file *f, const char *name);

/* Typed lookups: return false when the key is absent or does not hold a
 * value convertible to the type without loss (integers of any width in
 * range; float32/float64 for floats, within float range for _f32). */
bool ci_gguf_get_u32(const ci_gguf_file *f, const char *key, uint32_t *out);
bool ci_gguf_get_u64(const ci_gguf_file *f, const char *key, uint64_t *out);
bool ci_gguf_get_i64(const ci_gguf_file *f, const char *key, int64_t *out);
bool ci_gguf_get_f32(const ci_gguf_file *f, const char *key, float *out);
bool ci_gguf_get_f64(const ci_gguf_file *f, const char *key, double *out);
bool ci_gguf_get_bool(const ci_gguf_file *f, const char *key, bool *out);
bool ci_gguf_get_str(const ci_gguf_file *f, const char *key, ci_gguf_str *out);
/* NUL-terminated copy of a string value (caller frees), NULL when absent. */
char *ci_gguf_dup_str(const ci_gguf_file *f, const char *key);
/* Array value with the given element type, NULL when absent or another type. */
const ci_gguf_value *ci_gguf_get_array(const ci_gguf_file *f, const char *key, uint32_t elem_type);

/* ----------------------------------------------------------------- writer */

typedef struct ci_gguf_writer ci_gguf_writer;

/* Creates the file (truncating). alignment 0 = default 32; other values are
 * written as general.alignment. */
ci_gguf_writer *ci_gguf_writer_open(const char *path, uint32_t alignment, cinfer_error *err);

/* Metadata, in the order given. */
void ci_gguf_writer_kv_u8(ci_gguf_writer *w, const char *key, uint8_t v);
void ci_gguf_writer_kv_i8(ci_gguf_writer *w, const char *key, int8_t v);
void ci_gguf_writer_kv_u16(ci_gguf_writer *w, const char *key, uint16_t v);
void ci_gguf_writer_kv_i16(ci_gguf_writer *w, const char *key, int16_t v);
void ci_gguf_writer_kv_u32(ci_gguf_writer *w, const char *key, uint32_t v);
void ci_gguf_writer_kv_i32(ci_gguf_writer *w, const char *key, int32_t v);
void ci_gguf_writer_kv_u64(ci_gguf_writer *w, const char *key, uint64_t v);
void ci_gguf_writer_kv_i64(ci_gguf_writer *w, const char *key, int64_t v);
void ci_gguf_writer_kv_f32(ci_gguf_writer *w, const char *key, float v);
void ci_gguf_writer_kv_f64(ci_gguf_writer *w, const char *key, double v);
void ci_gguf_writer_kv_bool(ci_gguf_writer *w, const char *key, bool v);
void ci_gguf_writer_kv_str(ci_gguf_writer *w, const char *key, const char *s, size_t len);
/* Array of a numeric/bool element type: `count` packed native values of the
 * element's width (e.g. int32_t[] for INT32). */
void ci_gguf_writer_kv_array(ci_gguf_writer *w, const char *key, uint32_t elem_type, const void *values, size_t count);
/* Array of strings; lens may be NULL (strings are then NUL-terminated). */
void ci_gguf_writer_kv_str_array(ci_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                                 size_t count);
/* Copies one key/value pair read by ci_gguf_open (same key, type and value
 * bytes), e.g. to carry metadata from one GGUF into another. */
void ci_gguf_writer_kv_copy(ci_gguf_writer *w, const ci_gguf_kv *kv);
/* Raw escape hatch for tests: appends bytes to the metadata section and
 * counts `kv_delta` more entries. */
void ci_gguf_writer_kv_raw(ci_gguf_writer *w, const void *bytes, size_t len, size_t kv_delta);

/* Declares a tensor; data follows later in declaration order. */
int ci_gguf_writer_add_tensor(ci_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                              const uint64_t *ne, cinfer_error *err);
/* Writes header, metadata and tensor infos. Call once, after all tensors are declared. */
int ci_gguf_writer_begin_data(ci_gguf_writer *w, cinfer_error *err);
/* Streams data bytes of the current tensor; may be called in pieces. Padding
 * between tensors is inserted automatically. */
int ci_gguf_writer_write(ci_gguf_writer *w, const void *data, size_t len, cinfer_error *err);
/* Checks that every tensor got all its bytes and closes the file. Frees w. */
int ci_gguf_writer_close(ci_gguf_writer *w, cinfer_error *err);
/* Closes and deletes a half-written file. Frees w. */
void ci_gguf_writer_abort(ci_gguf_writer *w);

#endif
