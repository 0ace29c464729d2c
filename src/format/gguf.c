/*
 * gguf.c — see gguf.h. The reader is a bounds-checked cursor over the
 * mapped bytes: every read first checks that the bytes exist, and every
 * claimed count is compared with what the remaining bytes could possibly
 * hold before memory is reserved for it.
 */
#include "gguf.h"

#include "name_index.h"
#include "numeric.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ type table */

static const struct { uint32_t id; ci_ggml_type_info info; } GGML_TYPES[] = {
    {CI_GGML_F32, {"F32", 1, 4}},       {CI_GGML_F16, {"F16", 1, 2}},
    {CI_GGML_Q4_0, {"Q4_0", 32, 18}},   {CI_GGML_Q4_1, {"Q4_1", 32, 20}},
    {CI_GGML_Q5_0, {"Q5_0", 32, 22}},   {CI_GGML_Q5_1, {"Q5_1", 32, 24}},
    {CI_GGML_Q8_0, {"Q8_0", 32, 34}},   {CI_GGML_Q8_1, {"Q8_1", 32, 36}},
    {CI_GGML_Q2_K, {"Q2_K", 256, 84}},  {CI_GGML_Q3_K, {"Q3_K", 256, 110}},
    {CI_GGML_Q4_K, {"Q4_K", 256, 144}}, {CI_GGML_Q5_K, {"Q5_K", 256, 176}},
    {CI_GGML_Q6_K, {"Q6_K", 256, 210}}, {CI_GGML_Q8_K, {"Q8_K", 256, 292}},
    {CI_GGML_I8, {"I8", 1, 1}},         {CI_GGML_I16, {"I16", 1, 2}},
    {CI_GGML_I32, {"I32", 1, 4}},       {CI_GGML_I64, {"I64", 1, 8}},
    {CI_GGML_F64, {"F64", 1, 8}},       {CI_GGML_BF16, {"BF16", 1, 2}},
};

const ci_ggml_type_info *ci_ggml_type_get(uint32_t type) {
    for (size_t i = 0; i < sizeof GGML_TYPES / sizeof GGML_TYPES[0]; i++)
        if (GGML_TYPES[i].id == type) return &GGML_TYPES[i].info;
    return NULL;
}

bool ci_ggml_tensor_bytes(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t *bytes_out) {
    const ci_ggml_type_info *t = ci_ggml_type_get(type);
    if (!t || n_dims == 0 || n_dims > CI_GGUF_MAX_DIMS) return false;
    if (ne[0] % t->block_size != 0) return false;
    uint64_t bytes;
    if (__builtin_mul_overflow(ne[0] / t->block_size, (uint64_t)t->block_bytes, &bytes)) return false;
    for (uint32_t d = 1; d < n_dims; d++)
        if (__builtin_mul_overflow(bytes, ne[d], &bytes)) return false;
    *bytes_out = bytes;
    return true;
}

static size_t value_type_width(uint32_t type) {
    switch (type) {
    case CI_GGUF_UINT8: case CI_GGUF_INT8: case CI_GGUF_BOOL: return 1;
    case CI_GGUF_UINT16: case CI_GGUF_INT16: return 2;
    case CI_GGUF_UINT32: case CI_GGUF_INT32: case CI_GGUF_FLOAT32: return 4;
    case CI_GGUF_UINT64: case CI_GGUF_INT64: case CI_GGUF_FLOAT64: return 8;
    default: return 0; /* STRING, ARRAY, unknown */
    }
}

const char *ci_gguf_value_type_name(uint32_t type) {
    static const char *const NAMES[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                        "bool", "string", "array", "uint64", "int64", "float64"};
    return type < sizeof NAMES / sizeof NAMES[0] ? NAMES[type] : "unknown";
}

/* Decodes one packed scalar; used for both single values and array elements. */
static void decode_scalar(uint32_t type, const uint8_t *p, ci_gguf_value *out) {
    out->type = type;
    switch (type) {
    case CI_GGUF_UINT8: out->v.u = p[0]; break;
    case CI_GGUF_INT8: out->v.i = (int8_t)p[0]; break;
    case CI_GGUF_UINT16: out->v.u = ci_load_le16(p); break;
    case CI_GGUF_INT16: out->v.i = (int16_t)ci_load_le16(p); break;
    case CI_GGUF_UINT32: out->v.u = ci_load_le32(p); break;
    case CI_GGUF_INT32: out->v.i = (int32_t)ci_load_le32(p); break;
    case CI_GGUF_UINT64: out->v.u = ci_load_le64(p); break;
    case CI_GGUF_INT64: out->v.i = (int64_t)ci_load_le64(p); break;
    case CI_GGUF_BOOL: out->v.b = p[0] != 0; break;
    case CI_GGUF_FLOAT32: {
        uint32_t bits = ci_load_le32(p);
        float f;
        memcpy(&f, &bits, sizeof f);
        out->v.f = f;
        break;
    }
    case CI_GGUF_FLOAT64: {
        uint64_t bits = ci_load_le64(p);
        memcpy(&out->v.f, &bits, sizeof out->v.f);
        break;
    }
    default: break;
    }
}

static bool is_unsigned(uint32_t t) { return t == CI_GGUF_UINT8 || t == CI_GGUF_UINT16 || t == CI_GGUF_UINT32 || t == CI_GGUF_UINT64; }
static bool is_signed(uint32_t t) { return t == CI_GGUF_INT8 || t == CI_GGUF_INT16 || t == CI_GGUF_INT32 || t == CI_GGUF_INT64; }

/* False when i is out of range or the array does not hold scalars. */
static bool array_element(const ci_gguf_value *arr, size_t i, ci_gguf_value *out) {
    size_t w = value_type_width(arr->v.arr.elem_type);
    if (arr->type != CI_GGUF_ARRAY || !w || i >= arr->v.arr.count) return false;
    decode_scalar(arr->v.arr.elem_type, arr->v.arr.raw + i * w, out);
    return true;
}

/* Integers only, as the scalar getters: a float element (which could be NaN,
 * fractional or beyond the integer range) is refused, never converted. */
bool ci_gguf_array_u64(const ci_gguf_value *arr, size_t i, uint64_t *out) {
    ci_gguf_value v;
    if (!array_element(arr, i, &v)) return false;
    if (is_unsigned(v.type)) *out = v.v.u;
    else if (is_signed(v.type) && v.v.i >= 0) *out = (uint64_t)v.v.i;
    else return false;
    return true;
}

bool ci_gguf_array_i64(const ci_gguf_value *arr, size_t i, int64_t *out) {
    ci_gguf_value v;
    if (!array_element(arr, i, &v)) return false;
    if (is_signed(v.type)) *out = v.v.i;
    else if (is_unsigned(v.type) && v.v.u <= (uint64_t)INT64_MAX) *out = (int64_t)v.v.u;
    else return false;
    return true;
}

double ci_gguf_array_f64(const ci_gguf_value *arr, size_t i) {
    ci_gguf_value v;
    if (!array_element(arr, i, &v)) return 0;
    if (v.type == CI_GGUF_FLOAT32 || v.type == CI_GGUF_FLOAT64) return v.v.f;
    if (is_signed(v.type)) return (double)v.v.i;
    if (is_unsigned(v.type)) return (double)v.v.u;
    if (v.type == CI_GGUF_BOOL) return v.v.b;
    return 0;
}

/* ----------------------------------------------------------------- reader */

struct ci_gguf_private {
    ci_name_index tensor_index;
    ci_name_index kv_index;
    bool owns_mapping;
};

typedef struct cursor {
    const uint8_t *data;
    size_t size, pos;
    const char *name; /* file name for messages */
    cinfer_error *err;
} cursor;

static int truncated(cursor *c, const char *what) {
    return ci_error(c->err, CINFER_ERR_FORMAT, "%s: truncated at byte %zu while reading %s (file is %zu bytes)",
                    c->name, c->pos, what, c->size);
}

static size_t remaining(const cursor *c) { return c->size - c->pos; }

static int read_bytes(cursor *c, size_t n, const uint8_t **out, const char *what) {
    *out = c->data + c->pos; /* defined even on failure; callers stop on error */
    if (n > remaining(c)) return truncated(c, what);
    *out = c->data + c->pos;
    c->pos += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *out, const char *what) {
    const uint8_t *p;
    if (read_bytes(c, 4, &p, what)) return CINFER_ERR_FORMAT;
    *out = ci_load_le32(p);
    return 0;
}

static int read_u64(cursor *c, uint64_t *out, const char *what) {
    const uint8_t *p;
    if (read_bytes(c, 8, &p, what)) return CINFER_ERR_FORMAT;
    *out = ci_load_le64(p);
    return 0;
}

static int read_string(cursor *c, ci_gguf_str *out, const char *what) {
    uint64_t len;
    if (read_u64(c, &len, what)) return CINFER_ERR_FORMAT;
    if (len > remaining(c))
        return ci_error(c->err, CINFER_ERR_FORMAT,
                        "%s: %s at byte %zu claims %llu bytes but only %zu remain", c->name, what, c->pos - 8,
                        (unsigned long long)len, remaining(c));
    out->ptr = (const char *)c->data + c->pos;
    out->len = (size_t)len;
    c->pos += (size_t)len;
    return 0;
}

static void free_value(ci_gguf_value *v) {
    if (v->type != CI_GGUF_ARRAY) return;
    free(v->v.arr.strings);
    if (v->v.arr.items) {
        for (size_t i = 0; i < v->v.arr.count; i++) free_value(&v->v.arr.items[i]);
        free(v->v.arr.items);
    }
    v->v.arr.strings = NULL;
    v->v.arr.items = NULL;
}

/* printf precision for a key quoted in a message: at most 200 bytes, and never
 * a length that does not fit an int (a negative precision would print up to
 * a NUL the mapping does not have). */
static int key_shown(size_t len) { return (int)(len > 200 ? 200 : len); }

/* `key` names the metadata entry for error messages. */
static int read_value(cursor *c, uint32_t type, ci_gguf_value *out, int depth, const ci_gguf_str *key) {
    memset(out, 0, sizeof *out);
    out->type = type;
    size_t width = value_type_width(type);
    if (width) {
        const uint8_t *p;
        if (read_bytes(c, width, &p, "a metadata value")) goto context;
        decode_scalar(type, p, out);
        return 0;
    }
    if (type == CI_GGUF_STRING) {
        if (read_string(c, &out->v.str, "a string value")) goto context;
        return 0;
    }
    if (type != CI_GGUF_ARRAY)
        return ci_error(c->err, CINFER_ERR_FORMAT, "%s: metadata key '%.*s' has unknown value type %u", c->name,
                        key_shown(key->len), key->ptr, type);
    if (depth >= CI_GGUF_MAX_ARRAY_DEPTH)
        return ci_error(c->err, CINFER_ERR_LIMIT, "%s: metadata key '%.*s': arrays nested deeper than %d", c->name,
                        key_shown(key->len), key->ptr, CI_GGUF_MAX_ARRAY_DEPTH);
    uint32_t elem_type;
    uint64_t count;
    if (read_u32(c, &elem_type, "an array element type") || read_u64(c, &count, "an array length")) goto context;
    /* The smallest encoding of one element bounds how many can fit. */
    size_t elem_width = value_type_width(elem_type);
    size_t min_elem = elem_width ? elem_width : elem_type == CI_GGUF_STRING ? 8 : elem_type == CI_GGUF_ARRAY ? 12 : 0;
    if (min_elem == 0)
        return ci_error(c->err, CINFER_ERR_FORMAT, "%s: metadata key '%.*s': array of unknown element type %u",
                        c->name, key_shown(key->len), key->ptr, elem_type);
    if (count > CI_GGUF_MAX_ARRAY_LEN)
        return ci_error(c->err, CINFER_ERR_LIMIT, "%s: metadata key '%.*s': array of %llu elements exceeds the limit of %u",
                        c->name, key_shown(key->len), key->ptr, (unsigned long long)count, CI_GGUF_MAX_ARRAY_LEN);
    if (count > remaining(c) / min_elem)
        return ci_error(c->err, CINFER_ERR_FORMAT,
                        "%s: metadata key '%.*s': array claims %llu elements but only %zu bytes remain", c->name,
                        key_shown(key->len), key->ptr, (unsigned long long)count, remaining(c));
    out->v.arr.elem_type = elem_type;
    out->v.arr.count = (size_t)count;
    if (elem_width) {
        const uint8_t *p;
        if (read_bytes(c, (size_t)count * elem_width, &p, "array elements")) goto context;
        out->v.arr.raw = p;
        return 0;
    }
    if (elem_type == CI_GGUF_STRING) {
        out->v.arr.strings = ci_calloc(count ? (size_t)count : 1, sizeof(ci_gguf_str));
        for (size_t i = 0; i < count; i++)
            if (read_string(c, &out->v.arr.strings[i], "a string array element")) {
                free_value(out);
                goto context;
            }
        return 0;
    }
    out->v.arr.items = ci_calloc(count ? (size_t)count : 1, sizeof(ci_gguf_value));
    for (size_t i = 0; i < count; i++)
        if (read_value(c, CI_GGUF_ARRAY, &out->v.arr.items[i], depth + 1, key)) {
            free_value(out);
            return CINFER_ERR_FORMAT;
        }
    return 0;
context:
    ci_error_prefix(c->err, "metadata key '%.*s'", key_shown(key->len), key->ptr);
    return CINFER_ERR_FORMAT;
}

static bool key_is(const ci_gguf_str *s, const char *key) { return s->len == strlen(key) && memcmp(s->ptr, key, s->len) == 0; }

static int fail_tensor(cursor *c, const char *tname, size_t index, const char *fmt, ...) CI_PRINTF(4, 5);
static int fail_tensor(cursor *c, const char *tname, size_t index, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ci_error(c->err, CINFER_ERR_FORMAT, "%s: tensor '%s' (#%zu): %s", c->name, tname ? tname : "?", index, msg);
}

static int parse(ci_gguf_file *f, cinfer_error *err) {
    cursor c = {f->map.data, f->map.size, 0, f->path, err};
    const uint8_t *magic;
    if (read_bytes(&c, 4, &magic, "the magic")) return CINFER_ERR_FORMAT;
    if (memcmp(magic, "GGUF", 4) != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: not a GGUF file (magic is %02x %02x %02x %02x, expected \"GGUF\")",
                        f->path, magic[0], magic[1], magic[2], magic[3]);
    if (read_u32(&c, &f->version, "the version")) return CINFER_ERR_FORMAT;
    /* v2 and v3 share the little-endian layout; v3 only added big-endian files,
     * which announce themselves by a byte-swapped version. */
    if (f->version != 2 && f->version != 3)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: unsupported GGUF version %u (supported: 2, 3)%s", f->path,
                        f->version, f->version == 0x03000000u ? " — a big-endian file" : "");
    uint64_t n_tensors, n_kv;
    if (read_u64(&c, &n_tensors, "the tensor count") || read_u64(&c, &n_kv, "the metadata count")) return CINFER_ERR_FORMAT;
    /* A metadata entry takes at least 8 (key len) + 4 (type) + 1 bytes; a
     * tensor info at least 8 + 4 + 8 + 4 + 8. */
    if (n_kv > remaining(&c) / 13)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: header claims %llu metadata entries, more than %zu bytes can hold",
                        f->path, (unsigned long long)n_kv, remaining(&c));
    if (n_tensors > remaining(&c) / 32)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: header claims %llu tensors, more than %zu bytes can hold", f->path,
                        (unsigned long long)n_tensors, remaining(&c));

    f->kv = ci_calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kv);
    ci_name_index_init(&f->priv->kv_index, (size_t)n_kv);
    f->alignment = 32;
    for (size_t i = 0; i < n_kv; i++) {
        ci_gguf_kv *kv = &f->kv[i];
        uint32_t type;
        if (read_string(&c, &kv->key, "a metadata key")) {
            ci_error_prefix(err, "metadata entry #%zu", i);
            return CINFER_ERR_FORMAT;
        }
        if (read_u32(&c, &type, "a metadata value type")) return CINFER_ERR_FORMAT;
        if (read_value(&c, type, &kv->value, 0, &kv->key)) return CINFER_ERR_FORMAT;
        f->n_kv = i + 1; /* so close() frees what was parsed */
        if (ci_name_index_insert(&f->priv->kv_index, kv->key.ptr, kv->key.len, i) != SIZE_MAX)
            return ci_error(err, CINFER_ERR_FORMAT, "%s: duplicate metadata key '%.*s'", f->path,
                            key_shown(kv->key.len), kv->key.ptr);
        if (key_is(&kv->key, "general.alignment")) {
            if (kv->value.type != CI_GGUF_UINT32)
                return ci_error(err, CINFER_ERR_FORMAT, "%s: general.alignment must be a uint32, not %s", f->path,
                                ci_gguf_value_type_name(kv->value.type));
            uint64_t a = kv->value.v.u;
            if (a == 0 || (a & (a - 1)) != 0)
                return ci_error(err, CINFER_ERR_FORMAT, "%s: general.alignment %llu is not a power of two", f->path,
                                (unsigned long long)a);
            f->alignment = (uint32_t)a;
        }
    }

    f->tensors = ci_calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
    ci_name_index_init(&f->priv->tensor_index, (size_t)n_tensors);
    for (size_t i = 0; i < n_tensors; i++) {
        ci_gguf_tensor *t = &f->tensors[i];
        ci_gguf_str name;
        if (read_string(&c, &name, "a tensor name")) {
            ci_error_prefix(err, "tensor info #%zu", i);
            return CINFER_ERR_FORMAT;
        }
        if (name.len == 0 || name.len > 255) /* GGML_MAX_NAME is 64; be lenient, but bounded */
            return fail_tensor(&c, NULL, i, "name length %zu is not in 1..255", name.len);
        t->name = ci_strndup(name.ptr, name.len);
        f->n_tensors = i + 1;
        if (memchr(name.ptr, '\0', name.len)) return fail_tensor(&c, t->name, i, "name contains a NUL byte");
        if (read_u32(&c, &t->n_dims, "a tensor's dimension count")) goto context;
        if (t->n_dims == 0 || t->n_dims > CI_GGUF_MAX_DIMS)
            return fail_tensor(&c, t->name, i, "%u dimensions (1..%d supported)", t->n_dims, CI_GGUF_MAX_DIMS);
        for (uint32_t d = 0; d < CI_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        t->n_elements = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (read_u64(&c, &t->ne[d], "a tensor dimension")) goto context;
            if (t->ne[d] > (uint64_t)INT64_MAX || __builtin_mul_overflow(t->n_elements, t->ne[d], &t->n_elements) ||
                t->n_elements > (uint64_t)INT64_MAX)
                return fail_tensor(&c, t->name, i, "dimensions overflow (ne[%u] = %llu)", d, (unsigned long long)t->ne[d]);
        }
        if (read_u32(&c, &t->type, "a tensor type") || read_u64(&c, &t->offset, "a tensor offset")) goto context;
        const ci_ggml_type_info *ti = ci_ggml_type_get(t->type);
        if (!ti) return fail_tensor(&c, t->name, i, "unknown ggml type %u", t->type);
        if (t->ne[0] % ti->block_size != 0)
            return fail_tensor(&c, t->name, i, "ne[0] = %llu is not a multiple of the %s block size %u",
                               (unsigned long long)t->ne[0], ti->name, ti->block_size);
        uint64_t bytes;
        if (!ci_ggml_tensor_bytes(t->type, t->n_dims, t->ne, &bytes) || bytes > f->map.size)
            return fail_tensor(&c, t->name, i, "data size overflows or exceeds the file size %zu", f->map.size);
        t->n_bytes = (size_t)bytes;
        if (ci_name_index_insert(&f->priv->tensor_index, t->name, name.len, i) != SIZE_MAX)
            return fail_tensor(&c, t->name, i, "duplicate tensor name");
        continue;
    context:
        ci_error_prefix(err, "tensor '%s' (#%zu)", t->name, i);
        return CINFER_ERR_FORMAT;
    }

    /* The data section starts at the next multiple of the alignment. */
    size_t data_offset = c.pos;
    size_t pad = (f->alignment - data_offset % f->alignment) % f->alignment;
    if (n_tensors > 0 && pad > remaining(&c))
        return ci_error(err, CINFER_ERR_FORMAT, "%s: truncated before the tensor data section (needs %zu bytes, has %zu)",
                        f->path, data_offset + pad, f->map.size);
    f->data_offset = data_offset + pad;
    for (size_t i = 0; i < f->n_tensors; i++) {
        ci_gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0)
            return fail_tensor(&c, t->name, i, "data offset %llu is not a multiple of the alignment %u",
                               (unsigned long long)t->offset, f->alignment);
        uint64_t start, end;
        if (__builtin_add_overflow((uint64_t)f->data_offset, t->offset, &start) ||
            __builtin_add_overflow(start, (uint64_t)t->n_bytes, &end) || end > f->map.size)
            return fail_tensor(&c, t->name, i,
                               "data [%llu, +%zu) in the data section at %zu lies outside the file (%zu bytes)",
                               (unsigned long long)t->offset, t->n_bytes, f->data_offset, f->map.size);
        t->data = f->map.data + start;
    }
    return 0;
}

static ci_gguf_file *open_common(const uint8_t *data, size_t size, const char *name, bool owns, ci_mapped_file *map,
                                 cinfer_error *err) {
    ci_gguf_file *f = ci_calloc(1, sizeof *f);
    f->priv = ci_calloc(1, sizeof *f->priv);
    f->priv->owns_mapping = owns;
    f->path = ci_strdup(name);
    if (map) f->map = *map;
    else f->map.data = data, f->map.size = size;
    if (parse(f, err) != 0) {
        ci_gguf_close(f);
        return NULL;
    }
    return f;
}

ci_gguf_file *ci_gguf_open(const char *path, cinfer_error *err) {
    ci_mapped_file map;
    if (ci_map_file(path, &map, err) != 0) return NULL;
    return open_common(NULL, 0, path, true, &map, err);
}

ci_gguf_file *ci_gguf_open_memory(const uint8_t *data, size_t size, const char *name, cinfer_error *err) {
    return open_common(data, size, name, false, NULL, err);
}

void ci_gguf_close(ci_gguf_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_kv; i++) free_value(&f->kv[i].value);
    free(f->kv);
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    ci_name_index_free(&f->priv->kv_index);
    ci_name_index_free(&f->priv->tensor_index);
    if (f->priv->owns_mapping) ci_unmap_file(&f->map);
    free(f->priv);
    free(f->path);
    free(f);
}

const ci_gguf_value *ci_gguf_find(const ci_gguf_file *f, const char *key) {
    size_t i = ci_name_index_find(&f->priv->kv_index, key, strlen(key));
    return i == SIZE_MAX ? NULL : &f->kv[i].value;
}

const ci_gguf_tensor *ci_gguf_find_tensor(const ci_gguf_file *f, const char *name) {
    size_t i = ci_name_index_find(&f->priv->tensor_index, name, strlen(name));
    return i == SIZE_MAX ? NULL : &f->tensors[i];
}

bool ci_gguf_get_u64(const ci_gguf_file *f, const char *key, uint64_t *out) {
    const ci_gguf_value *v = ci_gguf_find(f, key);
    if (!v) return false;
    if (is_unsigned(v->type)) *out = v->v.u;
    else if (is_signed(v->type) && v->v.i >= 0) *out = (uint64_t)v->v.i;
    else return false;
    return true;
}

bool ci_gguf_get_u32(const ci_gguf_file *f, const char *key, uint32_t *out) {
    uint64_t u;
    if (!ci_gguf_get_u64(f, key, &u) || u > UINT32_MAX) return false;
    *out = (uint32_t)u;
    return true;
}

bool ci_gguf_get_i64(const ci_gguf_file *f, const char *key, int64_t *out) {
    const ci_gguf_value *v = ci_gguf_find(f, key);
    if (!v) return false;
    if (is_signed(v->type)) *out = v->v.i;
    else if (is_unsigned(v->type) && v->v.u <= (uint64_t)INT64_MAX) *out = (int64_t)v->v.u;
    else return false;
    return true;
}

bool ci_gguf_get_f64(const ci_gguf_file *f, const char *key, double *out) {
    const ci_gguf_value *v = ci_gguf_find(f, key);
    if (!v || (v->type != CI_GGUF_FLOAT32 && v->type != CI_GGUF_FLOAT64)) return false;
    *out = v->v.f;
    return true;
}

bool ci_gguf_get_f32(const ci_gguf_file *f, const char *key, float *out) {
    double d;
    if (!ci_gguf_get_f64(f, key, &d) || (isfinite(d) && fabs(d) > FLT_MAX)) return false;
    *out = (float)d;
    return true;
}

bool ci_gguf_get_bool(const ci_gguf_file *f, const char *key, bool *out) {
    const ci_gguf_value *v = ci_gguf_find(f, key);
    if (!v || v->type != CI_GGUF_BOOL) return false;
    *out = v->v.b;
    return true;
}

bool ci_gguf_get_str(const ci_gguf_file *f, const char *key, ci_gguf_str *out) {
    const ci_gguf_value *v = ci_gguf_find(f, key);
    if (!v || v->type != CI_GGUF_STRING) return false;
    *out = v->v.str;
    return true;
}

char *ci_gguf_dup_str(const ci_gguf_file *f, const char *key) {
    ci_gguf_str s;
    return ci_gguf_get_str(f, key, &s) ? ci_strndup(s.ptr, s.len) : NULL;
}

const ci_gguf_value *ci_gguf_get_array(const ci_gguf_file *f, const char *key, uint32_t elem_type) {
    const ci_gguf_value *v = ci_gguf_find(f, key);
    return v && v->type == CI_GGUF_ARRAY && v->v.arr.elem_type == elem_type ? v : NULL;
}

/* ----------------------------------------------------------------- writer */

typedef struct writer_tensor {
    char *name;
    uint64_t offset, bytes;
} writer_tensor;

struct ci_gguf_writer {
    char *path;
    FILE *fp;
    uint32_t alignment;
    ci_buf kv;           /* encoded metadata entries */
    size_t n_kv;
    ci_buf infos;        /* encoded tensor infos */
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    ci_name_index names;
    uint64_t data_size;  /* aligned end of the last declared tensor */
    bool data_started;
    size_t current;      /* tensor being streamed */
    uint64_t written;    /* bytes of the current tensor written so far */
    bool failed;
};

static void put_u32(ci_buf *b, uint32_t v) {
    uint8_t p[4];
    ci_store_le32(p, v);
    ci_buf_append(b, p, 4);
}

static void put_u64(ci_buf *b, uint64_t v) {
    uint8_t p[8];
    ci_store_le64(p, v);
    ci_buf_append(b, p, 8);
}

static void put_str(ci_buf *b, const char *s, size_t len) {
    put_u64(b, len);
    ci_buf_append(b, s, len);
}

ci_gguf_writer *ci_gguf_writer_open(const char *path, uint32_t alignment, cinfer_error *err) {
    if (alignment != 0 && (alignment & (alignment - 1)) != 0) {
        ci_error(err, CINFER_ERR_INVALID, "%s: alignment %u is not a power of two", path, alignment);
        return NULL;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        ci_error(err, CINFER_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    ci_gguf_writer *w = ci_calloc(1, sizeof *w);
    w->path = ci_strdup(path);
    w->fp = fp;
    w->alignment = alignment ? alignment : 32;
    ci_name_index_init(&w->names, 512);
    if (alignment) ci_gguf_writer_kv_u32(w, "general.alignment", alignment);
    return w;
}

static void kv_head(ci_gguf_writer *w, const char *key, uint32_t type) {
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    w->n_kv++;
}

void ci_gguf_writer_kv_u8(ci_gguf_writer *w, const char *key, uint8_t v) { kv_head(w, key, CI_GGUF_UINT8); ci_buf_append(&w->kv, &v, 1); }
void ci_gguf_writer_kv_i8(ci_gguf_writer *w, const char *key, int8_t v) { kv_head(w, key, CI_GGUF_INT8); ci_buf_append(&w->kv, &v, 1); }
void ci_gguf_writer_kv_u16(ci_gguf_writer *w, const char *key, uint16_t v) {
    uint8_t p[2];
    ci_store_le16(p, v);
    kv_head(w, key, CI_GGUF_UINT16);
    ci_buf_append(&w->kv, p, 2);
}
void ci_gguf_writer_kv_i16(ci_gguf_writer *w, const char *key, int16_t v) {
    uint8_t p[2];
    ci_store_le16(p, (uint16_t)v);
    kv_head(w, key, CI_GGUF_INT16);
    ci_buf_append(&w->kv, p, 2);
}
void ci_gguf_writer_kv_u32(ci_gguf_writer *w, const char *key, uint32_t v) { kv_head(w, key, CI_GGUF_UINT32); put_u32(&w->kv, v); }
void ci_gguf_writer_kv_i32(ci_gguf_writer *w, const char *key, int32_t v) { kv_head(w, key, CI_GGUF_INT32); put_u32(&w->kv, (uint32_t)v); }
void ci_gguf_writer_kv_u64(ci_gguf_writer *w, const char *key, uint64_t v) { kv_head(w, key, CI_GGUF_UINT64); put_u64(&w->kv, v); }
void ci_gguf_writer_kv_i64(ci_gguf_writer *w, const char *key, int64_t v) { kv_head(w, key, CI_GGUF_INT64); put_u64(&w->kv, (uint64_t)v); }
void ci_gguf_writer_kv_f32(ci_gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    kv_head(w, key, CI_GGUF_FLOAT32);
    put_u32(&w->kv, bits);
}
void ci_gguf_writer_kv_f64(ci_gguf_writer *w, const char *key, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    kv_head(w, key, CI_GGUF_FLOAT64);
    put_u64(&w->kv, bits);
}
void ci_gguf_writer_kv_bool(ci_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    kv_head(w, key, CI_GGUF_BOOL);
    ci_buf_append(&w->kv, &b, 1);
}
void ci_gguf_writer_kv_str(ci_gguf_writer *w, const char *key, const char *s, size_t len) {
    kv_head(w, key, CI_GGUF_STRING);
    put_str(&w->kv, s, len);
}

void ci_gguf_writer_kv_array(ci_gguf_writer *w, const char *key, uint32_t elem_type, const void *values, size_t count) {
    size_t width = value_type_width(elem_type);
    kv_head(w, key, CI_GGUF_ARRAY);
    put_u32(&w->kv, elem_type);
    put_u64(&w->kv, count);
    const uint8_t *src = values;
    for (size_t i = 0; i < count; i++) {
        uint8_t p[8];
        /* Native values to little-endian, element by element. */
        switch (width) {
        case 1: p[0] = src[i]; break;
        case 2: { uint16_t v; memcpy(&v, src + 2 * i, 2); ci_store_le16(p, v); break; }
        case 4: { uint32_t v; memcpy(&v, src + 4 * i, 4); ci_store_le32(p, v); break; }
        case 8: { uint64_t v; memcpy(&v, src + 8 * i, 8); ci_store_le64(p, v); break; }
        default: return; /* strings and arrays have their own calls */
        }
        ci_buf_append(&w->kv, p, width);
    }
}

void ci_gguf_writer_kv_str_array(ci_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                                 size_t count) {
    kv_head(w, key, CI_GGUF_ARRAY);
    put_u32(&w->kv, CI_GGUF_STRING);
    put_u64(&w->kv, count);
    for (size_t i = 0; i < count; i++) put_str(&w->kv, strs[i], lens ? lens[i] : strlen(strs[i]));
}

/* A parsed value back to its GGUF bytes (after the type tag). */
static void encode_value(ci_buf *b, uint32_t type, const ci_gguf_value *v) {
    uint8_t x[8] = {0};
    switch (type) {
    case CI_GGUF_STRING:
        put_u64(b, v->v.str.len);
        ci_buf_append(b, v->v.str.ptr, v->v.str.len);
        return;
    case CI_GGUF_ARRAY: {
        const uint32_t et = v->v.arr.elem_type;
        put_u32(b, et);
        put_u64(b, v->v.arr.count);
        if (value_type_width(et)) ci_buf_append(b, v->v.arr.raw, v->v.arr.count * value_type_width(et));
        else if (et == CI_GGUF_STRING)
            for (size_t i = 0; i < v->v.arr.count; i++) {
                put_u64(b, v->v.arr.strings[i].len);
                ci_buf_append(b, v->v.arr.strings[i].ptr, v->v.arr.strings[i].len);
            }
        else
            for (size_t i = 0; i < v->v.arr.count; i++) encode_value(b, CI_GGUF_ARRAY, &v->v.arr.items[i]);
        return;
    }
    case CI_GGUF_FLOAT32: {
        float f = (float)v->v.f; /* exact: it was read from a float32 */
        uint32_t bits;
        memcpy(&bits, &f, 4);
        ci_store_le32(x, bits);
        break;
    }
    case CI_GGUF_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, &v->v.f, 8);
        ci_store_le64(x, bits);
        break;
    }
    case CI_GGUF_BOOL: x[0] = v->v.b; break;
    case CI_GGUF_INT8: case CI_GGUF_INT16: case CI_GGUF_INT32: case CI_GGUF_INT64:
        ci_store_le64(x, (uint64_t)v->v.i);
        break;
    default: ci_store_le64(x, v->v.u); break;
    }
    ci_buf_append(b, x, value_type_width(type));
}

void ci_gguf_writer_kv_copy(ci_gguf_writer *w, const ci_gguf_kv *kv) {
    put_u64(&w->kv, kv->key.len);
    ci_buf_append(&w->kv, kv->key.ptr, kv->key.len);
    put_u32(&w->kv, kv->value.type);
    encode_value(&w->kv, kv->value.type, &kv->value);
    w->n_kv++;
}

void ci_gguf_writer_kv_raw(ci_gguf_writer *w, const void *bytes, size_t len, size_t kv_delta) {
    ci_buf_append(&w->kv, bytes, len);
    w->n_kv += kv_delta;
}

int ci_gguf_writer_add_tensor(ci_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                              cinfer_error *err) {
    if (w->data_started) return ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s' declared after data began", w->path, name);
    uint64_t bytes;
    if (!ci_ggml_tensor_bytes(type, n_dims, ne, &bytes))
        return ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s': bad type %u or shape for that type", w->path, name, type);
    if (w->n_tensors == w->cap_tensors) {
        w->cap_tensors = w->cap_tensors ? w->cap_tensors * 2 : 64;
        w->tensors = ci_realloc_array(w->tensors, w->cap_tensors, sizeof *w->tensors);
    }
    uint64_t padded, end;
    if (__builtin_add_overflow(bytes, (uint64_t)w->alignment - 1, &padded) ||
        __builtin_add_overflow(w->data_size, padded / w->alignment * w->alignment, &end))
        return ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s': data size overflows", w->path, name);
    writer_tensor *t = &w->tensors[w->n_tensors];
    t->name = ci_strdup(name);
    if (ci_name_index_insert(&w->names, t->name, strlen(t->name), w->n_tensors) != SIZE_MAX) {
        free(t->name);
        return ci_error(err, CINFER_ERR_INVALID, "%s: duplicate tensor name '%s'", w->path, name);
    }
    t->offset = w->data_size;
    t->bytes = bytes;
    w->n_tensors++;
    w->data_size = end;
    put_str(&w->infos, name, strlen(name));
    put_u32(&w->infos, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put_u64(&w->infos, ne[d]);
    put_u32(&w->infos, type);
    put_u64(&w->infos, t->offset);
    return 0;
}

static int write_all(ci_gguf_writer *w, const void *data, size_t len, cinfer_error *err) {
    if (len && fwrite(data, 1, len, w->fp) != len) {
        w->failed = true;
        return ci_error(err, CINFER_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    }
    return 0;
}

static int write_zeros(ci_gguf_writer *w, size_t n, cinfer_error *err) {
    static const uint8_t zeros[64];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (write_all(w, zeros, k, err)) return CINFER_ERR_IO;
        n -= k;
    }
    return 0;
}

int ci_gguf_writer_begin_data(ci_gguf_writer *w, cinfer_error *err) {
    if (w->data_started) return ci_error(err, CINFER_ERR_INVALID, "%s: begin_data called twice", w->path);
    w->data_started = true;
    ci_buf head = {0};
    ci_buf_append(&head, "GGUF", 4);
    put_u32(&head, 3);
    put_u64(&head, w->n_tensors);
    put_u64(&head, w->n_kv);
    int rc = write_all(w, head.data, head.len, err);
    size_t total = head.len + w->kv.len + w->infos.len;
    ci_buf_free(&head);
    if (rc || write_all(w, w->kv.data, w->kv.len, err) || write_all(w, w->infos.data, w->infos.len, err)) return CINFER_ERR_IO;
    if (write_zeros(w, (w->alignment - total % w->alignment) % w->alignment, err)) return CINFER_ERR_IO;
    w->current = 0;
    w->written = 0;
    return 0;
}

int ci_gguf_writer_write(ci_gguf_writer *w, const void *data, size_t len, cinfer_error *err) {
    const uint8_t *p = data;
    if (!w->data_started) return ci_error(err, CINFER_ERR_INVALID, "%s: data written before begin_data", w->path);
    while (len) {
        if (w->current >= w->n_tensors)
            return ci_error(err, CINFER_ERR_INVALID, "%s: %zu bytes written past the last tensor", w->path, len);
        writer_tensor *t = &w->tensors[w->current];
        uint64_t room = t->bytes - w->written;
        size_t k = len < room ? len : (size_t)room;
        if (write_all(w, p, k, err)) return CINFER_ERR_IO;
        p += k;
        len -= k;
        w->written += k;
        if (w->written == t->bytes) {
            uint64_t pad = (w->alignment - t->bytes % w->alignment) % w->alignment;
            if (write_zeros(w, (size_t)pad, err)) return CINFER_ERR_IO;
            w->current++;
            w->written = 0;
        }
    }
    return 0;
}

static void writer_free(ci_gguf_writer *w) {
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    ci_name_index_free(&w->names);
    ci_buf_free(&w->kv);
    ci_buf_free(&w->infos);
    free(w->path);
    free(w);
}

int ci_gguf_writer_close(ci_gguf_writer *w, cinfer_error *err) {
    int rc = 0;
    if (!w->data_started) rc = ci_gguf_writer_begin_data(w, err);
    /* Zero-byte tensors complete without a write call. */
    while (!rc && w->current < w->n_tensors && w->tensors[w->current].bytes == 0) w->current++;
    if (!rc && w->current < w->n_tensors)
        rc = ci_error(err, CINFER_ERR_INVALID, "%s: tensor '%s' got %llu of %llu data bytes", w->path,
                      w->tensors[w->current].name, (unsigned long long)w->written,
                      (unsigned long long)w->tensors[w->current].bytes);
    if (fclose(w->fp) != 0 && !rc) rc = ci_error(err, CINFER_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
    if (rc) remove(w->path);
    writer_free(w);
    return rc;
}

void ci_gguf_writer_abort(ci_gguf_writer *w) {
    if (!w) return;
    fclose(w->fp);
    remove(w->path);
    writer_free(w);
}
