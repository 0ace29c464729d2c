/*
 * util.h — small shared helpers: errors, checked allocation, growable byte
 * buffers, whole-file reads and read-only file mappings.
 *
 * Allocation failure aborts (as Redis' zmalloc does): every size a client or
 * a file controls is bounded *before* it reaches an allocator, so running out
 * of memory here is a bug or a host problem, not an input error.
 */
#ifndef CINFER_UTIL_H
#define CINFER_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"

#if defined(__GNUC__)
#define CI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CI_UNUSED __attribute__((unused))
#else
#define CI_PRINTF(a, b)
#define CI_UNUSED
#endif

/* Fills *err (if non-NULL) and returns `code`, so callers can
 * `return ci_error(err, CINFER_ERR_FORMAT, "...")`. */
int ci_error(cinfer_error *err, int code, const char *fmt, ...) CI_PRINTF(3, 4);
/* Prepends "prefix: " to an existing message (adds context while unwinding). */
void ci_error_prefix(cinfer_error *err, const char *fmt, ...) CI_PRINTF(2, 3);

void *ci_malloc(size_t n);
void *ci_calloc(size_t count, size_t size);
void *ci_realloc(void *p, size_t n);
/* realloc for arrays: aborts on count*size overflow. */
void *ci_realloc_array(void *p, size_t count, size_t size);
char *ci_strdup(const char *s);
char *ci_strndup(const char *s, size_t n);
/* Fallible allocation, for the few places that turn running out of memory
 * into an error for one request instead of aborting (the scheduler's step):
 * NULL on failure (and on count*size overflow); the realloc leaves p valid
 * then. Fault injection (util/fault.h) can fail these. */
void *ci_try_malloc(size_t n);
void *ci_try_realloc_array(void *p, size_t count, size_t size);

/* Overflow-checked arithmetic; return false on overflow. */
static inline bool ci_add_overflow(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out); }
static inline bool ci_mul_overflow(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

/* Growable byte buffer; data is always NUL-terminated when non-NULL. */
typedef struct ci_buf {
    char *data;
    size_t len;
    size_t cap;
} ci_buf;

void ci_buf_reserve(ci_buf *b, size_t extra);
void ci_buf_append(ci_buf *b, const void *data, size_t len);
void ci_buf_puts(ci_buf *b, const char *s);
void ci_buf_putc(ci_buf *b, char c);
void ci_buf_printf(ci_buf *b, const char *fmt, ...) CI_PRINTF(2, 3);
void ci_buf_vprintf(ci_buf *b, const char *fmt, va_list ap);
/* Returns the buffer's data (caller owns it) and resets the buffer. */
char *ci_buf_take(ci_buf *b, size_t *len_out);
void ci_buf_free(ci_buf *b);

/* Reads a whole file; fails with CINFER_ERR_LIMIT when it exceeds max_bytes.
 * The result is NUL-terminated. */
char *ci_read_file(const char *path, size_t max_bytes, size_t *len_out, cinfer_error *err);

/* Read-only memory mapping of a whole file. */
typedef struct ci_mapped_file {
    const uint8_t *data;
    size_t size;
} ci_mapped_file;
int ci_map_file(const char *path, ci_mapped_file *out, cinfer_error *err);
void ci_unmap_file(ci_mapped_file *mf);

bool ci_is_directory(const char *path);
bool ci_file_exists(const char *path);
/* The folder a path stands for: the path itself when it is a directory,
 * else the folder holding the file ("." for a bare name). Caller frees. */
char *ci_path_folder(const char *path);
/* Joins dir and name with one '/'; caller frees. */
char *ci_path_join(const char *dir, const char *name);

/* Monotonic time in seconds. */
double ci_now_seconds(void);

#endif
