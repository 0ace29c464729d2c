/*
 * safetensors.c — see safetensors.h. The JSON header is parsed with jansson
 * (duplicate keys rejected), then every entry is validated against the
 * mapped size before any pointer into the data is formed. Overlap is found
 * by sorting the tensors by their begin offset.
 */
#include "safetensors.h"

#include "name_index.h"
#include "numeric.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t size; } DTYPES[CI_ST_DTYPE_COUNT] = {
    [CI_ST_BOOL] = {"BOOL", 1}, [CI_ST_U8] = {"U8", 1},     [CI_ST_I8] = {"I8", 1},
    [CI_ST_U16] = {"U16", 2},   [CI_ST_I16] = {"I16", 2},   [CI_ST_F16] = {"F16", 2},
    [CI_ST_BF16] = {"BF16", 2}, [CI_ST_U32] = {"U32", 4},   [CI_ST_I32] = {"I32", 4},
    [CI_ST_F32] = {"F32", 4},   [CI_ST_U64] = {"U64", 8},   [CI_ST_I64] = {"I64", 8},
    [CI_ST_F64] = {"F64", 8},   [CI_ST_F8_E4M3] = {"F8_E4M3", 1}, [CI_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *ci_st_dtype_name(ci_st_dtype d) { return (unsigned)d < CI_ST_DTYPE_COUNT ? DTYPES[d].name : "?"; }
size_t ci_st_dtype_size(ci_st_dtype d) { return (unsigned)d < CI_ST_DTYPE_COUNT ? DTYPES[d].size : 0; }

bool ci_st_dtype_parse(const char *name, ci_st_dtype *out) {
    for (int i = 0; i < CI_ST_DTYPE_COUNT; i++)
        if (strcmp(DTYPES[i].name, name) == 0) {
            *out = (ci_st_dtype)i;
            return true;
        }
    return false;
}

struct ci_st_private {
    ci_name_index index;
    bool owns_mapping;
};

static int bad_tensor(cinfer_error *err, const char *file, const char *tensor, const char *fmt, ...) CI_PRINTF(4, 5);
static int bad_tensor(cinfer_error *err, const char *file, const char *tensor, const char *fmt, ...) {
    char msg[360];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor '%.120s': %s", file, tensor, msg);
}

/* Reads a non-negative JSON integer. */
static bool json_u64(json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int compare_begin(const void *a, const void *b) {
    const ci_st_tensor *x = *(ci_st_tensor *const *)a, *y = *(ci_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->n_bytes > y->n_bytes) - (x->n_bytes < y->n_bytes);
}

static int parse_entry(ci_st_file *f, const char *name, json_t *entry, size_t data_size, ci_st_tensor *t,
                       cinfer_error *err) {
    t->name = ci_strdup(name);
    t->file = f->path;
    if (!json_is_object(entry)) return bad_tensor(err, f->path, name, "header entry is not an object");
    const char *dtype = json_string_value(json_object_get(entry, "dtype"));
    json_t *shape = json_object_get(entry, "shape"), *offsets = json_object_get(entry, "data_offsets");
    if (!dtype) return bad_tensor(err, f->path, name, "missing \"dtype\"");
    if (!ci_st_dtype_parse(dtype, &t->dtype)) return bad_tensor(err, f->path, name, "unknown dtype \"%.40s\"", dtype);
    if (!json_is_array(shape)) return bad_tensor(err, f->path, name, "missing \"shape\" array");
    if (json_array_size(shape) > CI_ST_MAX_DIMS)
        return bad_tensor(err, f->path, name, "%zu dimensions (at most %d)", json_array_size(shape), CI_ST_MAX_DIMS);
    t->n_dims = (uint32_t)json_array_size(shape);
    t->n_elements = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (!json_u64(json_array_get(shape, d), &t->shape[d]))
            return bad_tensor(err, f->path, name, "shape[%u] is not a non-negative integer", d);
        if (__builtin_mul_overflow(t->n_elements, t->shape[d], &t->n_elements))
            return bad_tensor(err, f->path, name, "shape overflows");
    }
    uint64_t begin, end, expect;
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 || !json_u64(json_array_get(offsets, 0), &begin) ||
        !json_u64(json_array_get(offsets, 1), &end))
        return bad_tensor(err, f->path, name, "\"data_offsets\" must be [begin, end] with non-negative integers");
    if (end < begin) return bad_tensor(err, f->path, name, "data_offsets [%llu, %llu] end before begin",
                                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return bad_tensor(err, f->path, name, "data_offsets [%llu, %llu] outside the data section of %zu bytes",
                          (unsigned long long)begin, (unsigned long long)end, data_size);
    if (__builtin_mul_overflow(t->n_elements, (uint64_t)ci_st_dtype_size(t->dtype), &expect) || expect != end - begin)
        return bad_tensor(err, f->path, name, "shape × %s size is %llu elements but data_offsets span %llu bytes", dtype,
                          (unsigned long long)t->n_elements, (unsigned long long)(end - begin));
    t->begin = (size_t)begin;
    t->n_bytes = (size_t)(end - begin);
    t->data = f->map.data + 8 + f->header_len + t->begin;
    return 0;
}

static int parse(ci_st_file *f, cinfer_error *err) {
    if (f->map.size < 8)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header length", f->path,
                        f->map.size);
    uint64_t n = ci_load_le64(f->map.data);
    if (n > CI_ST_MAX_HEADER)
        return ci_error(err, CINFER_ERR_LIMIT, "%s: header length %llu exceeds the limit of %u bytes", f->path,
                        (unsigned long long)n, CI_ST_MAX_HEADER);
    if (n > f->map.size - 8)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes)", f->path,
                        (unsigned long long)n, f->map.size);
    if (n < 2) return ci_error(err, CINFER_ERR_FORMAT, "%s: header length %llu is too small", f->path, (unsigned long long)n);
    f->header_len = (size_t)n;
    size_t data_size = f->map.size - 8 - f->header_len;
    json_error_t je;
    json_t *root = json_loadb((const char *)f->map.data + 8, f->header_len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return ci_error(err, CINFER_ERR_FORMAT, "%s: header JSON: %s (at byte %d of the header)", f->path, je.text, je.position);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = ci_error(err, CINFER_ERR_FORMAT, "%s: header is not a JSON object", f->path);
        goto done;
    }
    size_t count = json_object_size(root);
    if (count > CI_ST_MAX_TENSORS) {
        rc = ci_error(err, CINFER_ERR_LIMIT, "%s: %zu header entries exceed the limit", f->path, count);
        goto done;
    }
    f->tensors = ci_calloc(count ? count : 1, sizeof *f->tensors);
    ci_name_index_init(&f->priv->index, count);
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(value)) {
                rc = ci_error(err, CINFER_ERR_FORMAT, "%s: __metadata__ is not an object", f->path);
                goto done;
            }
            size_t m = json_object_size(value), k = 0;
            f->metadata_keys = ci_calloc(m ? m : 1, sizeof(char *));
            f->metadata_values = ci_calloc(m ? m : 1, sizeof(char *));
            const char *mk;
            json_t *mv;
            json_object_foreach(value, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = ci_error(err, CINFER_ERR_FORMAT, "%s: __metadata__ value of '%.80s' is not a string", f->path, mk);
                    goto done;
                }
                f->metadata_keys[k] = ci_strdup(mk);
                f->metadata_values[k] = ci_strdup(json_string_value(mv));
                f->n_metadata = ++k;
            }
            continue;
        }
        ci_st_tensor *t = &f->tensors[f->n_tensors++];
        if ((rc = parse_entry(f, key, value, data_size, t, err)) != 0) goto done;
        ci_name_index_insert(&f->priv->index, t->name, strlen(t->name), f->n_tensors - 1);
    }
    /* Non-overlap: after sorting by begin, each tensor must start at or after
     * the end of the previous one (empty tensors overlap nothing). */
    ci_st_tensor **by_begin = ci_calloc(f->n_tensors ? f->n_tensors : 1, sizeof *by_begin);
    for (size_t i = 0; i < f->n_tensors; i++) by_begin[i] = &f->tensors[i];
    qsort(by_begin, f->n_tensors, sizeof *by_begin, compare_begin);
    const ci_st_tensor *prev = NULL;
    for (size_t i = 0; i < f->n_tensors && !rc; i++) {
        const ci_st_tensor *t = by_begin[i];
        if (t->n_bytes == 0) continue;
        if (prev && t->begin < prev->begin + prev->n_bytes)
            rc = bad_tensor(err, f->path, t->name, "data [%zu, %zu) overlaps tensor '%.120s' [%zu, %zu)", t->begin,
                            t->begin + t->n_bytes, prev->name, prev->begin, prev->begin + prev->n_bytes);
        prev = t;
    }
    free(by_begin);
done:
    json_decref(root);
    return rc;
}

static ci_st_file *open_common(const uint8_t *data, size_t size, const char *name, ci_mapped_file *map, cinfer_error *err) {
    ci_st_file *f = ci_calloc(1, sizeof *f);
    f->priv = ci_calloc(1, sizeof *f->priv);
    f->path = ci_strdup(name);
    if (map) f->map = *map, f->priv->owns_mapping = true;
    else f->map.data = data, f->map.size = size;
    if (parse(f, err) != 0) {
        ci_st_close(f);
        return NULL;
    }
    return f;
}

ci_st_file *ci_st_open(const char *path, cinfer_error *err) {
    ci_mapped_file map;
    if (ci_map_file(path, &map, err) != 0) return NULL;
    return open_common(NULL, 0, path, &map, err);
}

ci_st_file *ci_st_open_memory(const uint8_t *data, size_t size, const char *name, cinfer_error *err) {
    return open_common(data, size, name, NULL, err);
}

void ci_st_close(ci_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_metadata; i++) free(f->metadata_keys[i]), free(f->metadata_values[i]);
    free(f->metadata_keys);
    free(f->metadata_values);
    ci_name_index_free(&f->priv->index);
    if (f->priv->owns_mapping) ci_unmap_file(&f->map);
    free(f->priv);
    free(f->path);
    free(f);
}

const ci_st_tensor *ci_st_find(const ci_st_file *f, const char *name) {
    size_t i = ci_name_index_find(&f->priv->index, name, strlen(name));
    return i == SIZE_MAX ? NULL : &f->tensors[i];
}

const char *ci_st_metadata(const ci_st_file *f, const char *key) {
    for (size_t i = 0; i < f->n_metadata; i++)
        if (strcmp(f->metadata_keys[i], key) == 0) return f->metadata_values[i];
    return NULL;
}

int ci_st_tensor_to_f32(const ci_st_tensor *t, uint64_t start, size_t count, float *out, cinfer_error *err) {
    if (start > t->n_elements || count > t->n_elements - start)
        return ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s': elements [%llu, +%zu) out of range", t->file, t->name,
                        (unsigned long long)start, count);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case CI_ST_F32:
        for (size_t i = 0; i < count; i++) {
            uint32_t bits = ci_load_le32(p + 4 * (start + i));
            memcpy(&out[i], &bits, 4);
        }
        return 0;
    case CI_ST_F16:
        for (size_t i = 0; i < count; i++) out[i] = ci_fp16_to_fp32(ci_load_le16(p + 2 * (start + i)));
        return 0;
    case CI_ST_BF16:
        for (size_t i = 0; i < count; i++) out[i] = ci_bf16_to_fp32(ci_load_le16(p + 2 * (start + i)));
        return 0;
    default:
        return ci_error(err, CINFER_ERR_FORMAT, "%s: tensor '%s': unsupported dtype %s (F32, F16 and BF16 are supported)",
                        t->file, t->name, ci_st_dtype_name(t->dtype));
    }
}

/* ------------------------------------------------------------ multi-file */

struct ci_st_model_private {
    ci_name_index index; /* name -> position in tensors[] */
};

static int compare_tensor_name(const void *a, const void *b) {
    return strcmp((*(const ci_st_tensor *const *)a)->name, (*(const ci_st_tensor *const *)b)->name);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static ci_st_model *model_new(const char *dir) {
    ci_st_model *m = ci_calloc(1, sizeof *m);
    m->priv = ci_calloc(1, sizeof *m->priv);
    m->dir = ci_strdup(dir);
    return m;
}

static void model_index_tensors(ci_st_model *m) {
    qsort(m->tensors, m->n_tensors, sizeof *m->tensors, compare_tensor_name);
    ci_name_index_init(&m->priv->index, m->n_tensors);
    for (size_t i = 0; i < m->n_tensors; i++)
        ci_name_index_insert(&m->priv->index, m->tensors[i]->name, strlen(m->tensors[i]->name), i);
}

static ci_st_model *open_single(const char *path, cinfer_error *err) {
    ci_st_file *f = ci_st_open(path, err);
    if (!f) return NULL;
    char *dir = ci_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else strcpy(dir, ".");
    ci_st_model *m = model_new(dir);
    free(dir);
    m->n_files = 1;
    m->files = ci_calloc(1, sizeof *m->files);
    m->files[0] = f;
    m->n_tensors = f->n_tensors;
    m->tensors = ci_calloc(f->n_tensors ? f->n_tensors : 1, sizeof *m->tensors);
    for (size_t i = 0; i < f->n_tensors; i++) m->tensors[i] = &f->tensors[i];
    model_index_tensors(m);
    return m;
}

void ci_st_index_free(ci_st_index *ix) {
    for (size_t i = 0; i < ix->n_shards; i++) free(ix->shards[i]);
    for (size_t i = 0; i < ix->n_entries; i++) free(ix->tensors[i]);
    free(ix->shards);
    free(ix->tensors);
    free(ix->shard_of);
    memset(ix, 0, sizeof *ix);
}

int ci_st_index_parse(const char *json, size_t len, const char *name, ci_st_index *ix, cinfer_error *err) {
    memset(ix, 0, sizeof *ix);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return ci_error(err, CINFER_ERR_FORMAT, "%s:%d:%d: %s", name, je.line, je.column, je.text);
    json_t *map = json_object_get(root, "weight_map");
    int rc = 0;
    if (!json_is_object(map)) {
        rc = ci_error(err, CINFER_ERR_FORMAT, "%s: no \"weight_map\" object", name);
        goto done;
    }
    size_t n = json_object_size(map);
    if (n > CI_ST_MAX_TENSORS) {
        rc = ci_error(err, CINFER_ERR_LIMIT, "%s: %zu tensors in weight_map exceed the limit", name, n);
        goto done;
    }
    ix->tensors = ci_calloc(n ? n : 1, sizeof *ix->tensors);
    ix->shard_of = ci_calloc(n ? n : 1, sizeof *ix->shard_of);
    ci_name_index shard_names;
    ci_name_index_init(&shard_names, 16);
    const char *tensor;
    json_t *file;
    json_object_foreach(map, tensor, file) {
        const char *shard = json_string_value(file);
        /* Shard names are plain file names next to the index: never a path. */
        if (!shard || !*shard || strchr(shard, '/') || strcmp(shard, ".") == 0 || strcmp(shard, "..") == 0) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "%s: tensor '%.120s' maps to an invalid shard name", name, tensor);
            break;
        }
        size_t which = ci_name_index_find(&shard_names, shard, strlen(shard));
        if (which == SIZE_MAX) {
            if (ix->n_shards >= CI_ST_MAX_SHARDS) {
                rc = ci_error(err, CINFER_ERR_LIMIT, "%s: more than %d shards", name, CI_ST_MAX_SHARDS);
                break;
            }
            ix->shards = ci_realloc_array(ix->shards, ix->n_shards + 1, sizeof *ix->shards);
            which = ix->n_shards;
            ix->shards[ix->n_shards++] = ci_strdup(shard);
            ci_name_index_insert(&shard_names, ix->shards[which], strlen(shard), which);
        }
        ix->tensors[ix->n_entries] = ci_strdup(tensor);
        ix->shard_of[ix->n_entries++] = which;
    }
    ci_name_index_free(&shard_names);
done:
    json_decref(root);
    if (rc) ci_st_index_free(ix);
    return rc;
}

static ci_st_model *open_index(const char *index_path, cinfer_error *err) {
    size_t len;
    char *text = ci_read_file(index_path, 64u << 20, &len, err);
    if (!text) return NULL;
    ci_st_index ix;
    int rc = ci_st_index_parse(text, len, index_path, &ix, err);
    free(text);
    if (rc) return NULL;
    char *dir = ci_strdup(index_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else strcpy(dir, ".");
    ci_st_model *m = model_new(dir);
    free(dir);
    m->files = ci_calloc(ix.n_shards ? ix.n_shards : 1, sizeof *m->files);
    for (size_t i = 0; i < ix.n_shards && !rc; i++) {
        char *path = ci_path_join(m->dir, ix.shards[i]);
        m->files[i] = ci_st_open(path, err);
        free(path);
        if (!m->files[i]) {
            ci_error_prefix(err, "%s", index_path);
            rc = CINFER_ERR_FORMAT;
        } else {
            m->n_files = i + 1;
        }
    }
    m->tensors = ci_calloc(ix.n_entries ? ix.n_entries : 1, sizeof *m->tensors);
    for (size_t i = 0; i < ix.n_entries && !rc; i++) {
        const ci_st_tensor *t = ci_st_find(m->files[ix.shard_of[i]], ix.tensors[i]);
        if (!t)
            rc = ci_error(err, CINFER_ERR_FORMAT, "%s: tensor '%.120s' is listed in shard %s but that file does not hold it",
                          index_path, ix.tensors[i], ix.shards[ix.shard_of[i]]);
        else m->tensors[m->n_tensors++] = t;
    }
    ci_st_index_free(&ix);
    if (rc) {
        ci_st_model_close(m);
        return NULL;
    }
    model_index_tensors(m);
    return m;
}

ci_st_model *ci_st_model_open(const char *path, cinfer_error *err) {
    if (ci_is_directory(path)) {
        char *index = ci_path_join(path, "model.safetensors.index.json");
        char *single = ci_path_join(path, "model.safetensors");
        ci_st_model *m = NULL;
        if (ci_file_exists(index)) m = open_index(index, err);
        else if (ci_file_exists(single)) m = open_single(single, err);
        else ci_error(err, CINFER_ERR_IO, "%s: neither model.safetensors.index.json nor model.safetensors found", path);
        free(index);
        free(single);
        return m;
    }
    if (ends_with(path, ".json")) return open_index(path, err);
    return open_single(path, err);
}

void ci_st_model_close(ci_st_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_files; i++) ci_st_close(m->files[i]);
    free(m->files);
    free(m->tensors);
    ci_name_index_free(&m->priv->index);
    free(m->priv);
    free(m->dir);
    free(m);
}

const ci_st_tensor *ci_st_model_find(const ci_st_model *m, const char *name) {
    size_t i = ci_name_index_find(&m->priv->index, name, strlen(name));
    return i == SIZE_MAX ? NULL : m->tensors[i];
}

/* ----------------------------------------------------------------- writer */

typedef struct st_writer_tensor {
    char *name;
    ci_st_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[CI_ST_MAX_DIMS];
    uint64_t bytes;
} st_writer_tensor;

struct ci_st_writer {
    char *path;
    FILE *fp;
    st_writer_tensor *tensors;
    size_t n, cap;
    bool started;
    size_t current;
    uint64_t written;
};

ci_st_writer *ci_st_writer_open(const char *path, cinfer_error *err) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        ci_error(err, CINFER_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    ci_st_writer *w = ci_calloc(1, sizeof *w);
    w->path = ci_strdup(path);
    w->fp = fp;
    return w;
}

int ci_st_writer_add(ci_st_writer *w, const char *name, ci_st_dtype dtype, uint32_t n_dims, const uint64_t *shape,
                     cinfer_error *err) {
    if (w->started) return ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s' added after data began", w->path, name);
    if (n_dims > CI_ST_MAX_DIMS || (unsigned)dtype >= CI_ST_DTYPE_COUNT || !strcmp(name, "__metadata__"))
        return ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s': bad dtype, name or dimension count", w->path, name);
    uint64_t bytes = ci_st_dtype_size(dtype);
    for (uint32_t d = 0; d < n_dims; d++)
        if (__builtin_mul_overflow(bytes, shape[d], &bytes))
            return ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s': size overflows", w->path, name);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->tensors[i].name, name))
            return ci_error(err, CINFER_ERR_INVALID, "%s: duplicate tensor name '%s'", w->path, name);
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->tensors = ci_realloc_array(w->tensors, w->cap, sizeof *w->tensors);
    }
    st_writer_tensor *t = &w->tensors[w->n++];
    memset(t, 0, sizeof *t);
    t->name = ci_strdup(name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    memcpy(t->shape, shape, n_dims * sizeof *shape);
    t->bytes = bytes;
    return 0;
}

static int compare_writer_name(const void *a, const void *b) {
    return strcmp(((const st_writer_tensor *)a)->name, ((const st_writer_tensor *)b)->name);
}

int ci_st_writer_begin_data(ci_st_writer *w, cinfer_error *err) {
    if (w->started) return ci_error(err, CINFER_ERR_INVALID, "%s: begin_data called twice", w->path);
    w->started = true;
    /* The reference writer orders by dtype alignment, then name; with one
     * dtype per checkpoint that is name order. */
    qsort(w->tensors, w->n, sizeof *w->tensors, compare_writer_name);
    json_t *header = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(header, "__metadata__", meta);
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n; i++) {
        st_writer_tensor *t = &w->tensors[i];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++) json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)offset));
        json_array_append_new(offs, json_integer((json_int_t)(offset + t->bytes)));
        json_object_set_new(e, "dtype", json_string(ci_st_dtype_name(t->dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(header, t->name, e);
        offset += t->bytes;
    }
    char *text = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(header);
    size_t len = strlen(text);
    size_t padded = (len + 7) / 8 * 8; /* data starts 8-aligned, padded with spaces as the reference does */
    uint8_t lenbytes[8];
    ci_store_le64(lenbytes, padded);
    int rc = 0;
    if (fwrite(lenbytes, 1, 8, w->fp) != 8 || fwrite(text, 1, len, w->fp) != len ||
        fwrite("       ", 1, padded - len, w->fp) != padded - len)
        rc = ci_error(err, CINFER_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    free(text);
    return rc;
}

size_t ci_st_writer_count(const ci_st_writer *w) { return w->n; }
const char *ci_st_writer_name(const ci_st_writer *w, size_t i) { return i < w->n ? w->tensors[i].name : NULL; }

int ci_st_writer_write(ci_st_writer *w, const void *data, size_t len, cinfer_error *err) {
    if (!w->started) return ci_error(err, CINFER_ERR_INVALID, "%s: data written before begin_data", w->path);
    const uint8_t *p = data;
    while (len) {
        while (w->current < w->n && w->written == w->tensors[w->current].bytes) w->current++, w->written = 0;
        if (w->current >= w->n)
            return ci_error(err, CINFER_ERR_INVALID, "%s: %zu bytes written past the last tensor", w->path, len);
        uint64_t room = w->tensors[w->current].bytes - w->written;
        size_t k = len < room ? len : (size_t)room;
        if (fwrite(p, 1, k, w->fp) != k) return ci_error(err, CINFER_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
        p += k;
        len -= k;
        w->written += k;
    }
    return 0;
}

static void writer_free(ci_st_writer *w) {
    for (size_t i = 0; i < w->n; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->path);
    free(w);
}

int ci_st_writer_close(ci_st_writer *w, cinfer_error *err) {
    int rc = w->started ? 0 : ci_st_writer_begin_data(w, err);
    while (!rc && w->current < w->n && w->written == w->tensors[w->current].bytes) w->current++, w->written = 0;
    if (!rc && w->current < w->n)
        rc = ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s' got %llu of %llu bytes", w->path,
                      w->tensors[w->current].name, (unsigned long long)w->written,
                      (unsigned long long)w->tensors[w->current].bytes);
    if (fclose(w->fp) != 0 && !rc) rc = ci_error(err, CINFER_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
    if (rc) remove(w->path);
    writer_free(w);
    return rc;
}

void ci_st_writer_abort(ci_st_writer *w) {
    if (!w) return;
    fclose(w->fp);
    remove(w->path);
    writer_free(w);
}
