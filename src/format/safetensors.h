/*
 * safetensors.h — safetensors reader (single file and sharded checkpoints)
 * and a streaming writer.
 *
 * File layout: u64 little-endian header length N, then N bytes of JSON
 *   {"__metadata__": {str: str}?, "NAME": {"dtype": "BF16", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data; offsets are relative to the first byte after the header.
 *
 * The reader maps the file and validates everything before handing out
 * pointers: header length bounded (<= CI_ST_MAX_HEADER and the file size),
 * known dtypes, shape × dtype size == end - begin (checked arithmetic),
 * offsets inside the data section, no two tensors overlapping. Errors name
 * the file and the tensor.
 *
 * A sharded checkpoint (model.safetensors.index.json + shards) is opened as
 * one ci_st_model; the index's weight_map decides which shard holds which
 * tensor. metadata.total_size is NOT trusted (real index files disagree with
 * their tensors, see shared/reference/facts.md §5).
 */
#ifndef CINFER_FORMAT_SAFETENSORS_H
#define CINFER_FORMAT_SAFETENSORS_H

#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

#define CI_ST_MAX_HEADER (100u << 20) /* 100 MiB, as the reference implementation */
#define CI_ST_MAX_DIMS 8
#define CI_ST_MAX_TENSORS (1u << 20)
#define CI_ST_MAX_SHARDS 4096

typedef enum ci_st_dtype {
    CI_ST_BOOL, CI_ST_U8, CI_ST_I8, CI_ST_U16, CI_ST_I16, CI_ST_F16, CI_ST_BF16, CI_ST_U32,
    CI_ST_I32, CI_ST_F32, CI_ST_U64, CI_ST_I64, CI_ST_F64, CI_ST_F8_E4M3, CI_ST_F8_E5M2,
    CI_ST_DTYPE_COUNT
} ci_st_dtype;

const char *ci_st_dtype_name(ci_st_dtype dtype);  /* "BF16" */
size_t ci_st_dtype_size(ci_st_dtype dtype);       /* bytes per element */
/* Parses a dtype name; false when unknown. */
bool ci_st_dtype_parse(const char *name, ci_st_dtype *out);

typedef struct ci_st_tensor {
    char *name;
    ci_st_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[CI_ST_MAX_DIMS];
    uint64_t n_elements;
    size_t n_bytes;
    size_t begin;           /* data_offsets[0], relative to the data section */
    const uint8_t *data;    /* into the mapping */
    const char *file;       /* path of the file holding it */
} ci_st_tensor;

typedef struct ci_st_file {
    char *path;
    ci_mapped_file map;
    size_t header_len;
    size_t n_tensors;
    ci_st_tensor *tensors;   /* in header order */
    size_t n_metadata;
    char **metadata_keys, **metadata_values; /* __metadata__ */
    struct ci_st_private *priv;
} ci_st_file;

ci_st_file *ci_st_open(const char *path, cinfer_error *err);
/* Parses an image in memory (not copied). `name` is used in messages. */
ci_st_file *ci_st_open_memory(const uint8_t *data, size_t size, const char *name, cinfer_error *err);
void ci_st_close(ci_st_file *f);
const ci_st_tensor *ci_st_find(const ci_st_file *f, const char *name);
const char *ci_st_metadata(const ci_st_file *f, const char *key);

/* Converts `count` elements starting at element `start` of an F32/F16/BF16
 * tensor to float. Other dtypes: CINFER_ERR_FORMAT "unsupported dtype". */
int ci_st_tensor_to_f32(const ci_st_tensor *t, uint64_t start, size_t count, float *out, cinfer_error *err);

/* A whole checkpoint: a folder (model.safetensors.index.json, else
 * model.safetensors), an index file, or a single .safetensors file. */
typedef struct ci_st_model {
    char *dir;
    size_t n_files;
    ci_st_file **files;
    size_t n_tensors;
    const ci_st_tensor **tensors; /* sorted by name */
    struct ci_st_model_private *priv;
} ci_st_model;

ci_st_model *ci_st_model_open(const char *path, cinfer_error *err);

/* model.safetensors.index.json parsed from memory: which shard (a plain file
 * name next to the index, never a path) holds each tensor. `name` is used in
 * messages. ci_st_model_open reads the file, parses it with this and opens
 * the shards. */
typedef struct ci_st_index {
    size_t n_shards;
    char **shards;      /* distinct shard names, in order of first mention */
    size_t n_entries;
    char **tensors;     /* tensor names, in weight_map order */
    size_t *shard_of;   /* per entry: index into shards */
} ci_st_index;
int ci_st_index_parse(const char *json, size_t len, const char *name, ci_st_index *ix, cinfer_error *err);
void ci_st_index_free(ci_st_index *ix);
void ci_st_model_close(ci_st_model *m);
const ci_st_tensor *ci_st_model_find(const ci_st_model *m, const char *name);

/* Writer: declare tensors, begin_data (writes the header with the tensors
 * sorted by name, as HF's save_file does, and __metadata__ {"format":"pt"}),
 * then stream each tensor's bytes in the sorted order (ci_st_writer_name()
 * gives it). */
typedef struct ci_st_writer ci_st_writer;
ci_st_writer *ci_st_writer_open(const char *path, cinfer_error *err);
int ci_st_writer_add(ci_st_writer *w, const char *name, ci_st_dtype dtype, uint32_t n_dims, const uint64_t *shape,
                     cinfer_error *err);
int ci_st_writer_begin_data(ci_st_writer *w, cinfer_error *err);
size_t ci_st_writer_count(const ci_st_writer *w);
/* Name of the i-th tensor in data order (valid after begin_data). */
const char *ci_st_writer_name(const ci_st_writer *w, size_t i);
int ci_st_writer_write(ci_st_writer *w, const void *data, size_t len, cinfer_error *err);
int ci_st_writer_close(ci_st_writer *w, cinfer_error *err); /* frees w */
void ci_st_writer_abort(ci_st_writer *w);                   /* deletes the file, frees w */

#endif
