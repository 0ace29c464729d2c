/*
 * util.c — see util.h. Nothing here knows about models; it is the floor the
 * other subsystems stand on.
 */
#include "util.h"
#include "util/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ci_error(cinfer_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void ci_error_prefix(cinfer_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[256], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    /* Truncation is acceptable: the message is for humans. */
    size_t n = strlen(prefix);
    if (n > sizeof err->message - 3) n = sizeof err->message - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t rest = sizeof err->message - n - 3;
    size_t oldlen = strnlen(old, rest);
    memcpy(err->message + n + 2, old, oldlen);
    err->message[n + 2 + oldlen] = '\0';
}

void cinfer_free(void *ptr) { free(ptr); }

static void out_of_memory(size_t n) {
    fprintf(stderr, "cinfer: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ci_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *ci_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *ci_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

void *ci_realloc_array(void *p, size_t count, size_t size) {
    size_t total;
    if (ci_mul_overflow(count, size, &total)) out_of_memory(SIZE_MAX);
    return ci_realloc(p, total);
}

void *ci_try_malloc(size_t n) {
    if (ci_fault_hit(CI_FAULT_ALLOC)) return NULL;
    return malloc(n ? n : 1);
}

void *ci_try_realloc_array(void *p, size_t count, size_t size) {
    size_t total;
    if (ci_mul_overflow(count, size, &total) || ci_fault_hit(CI_FAULT_ALLOC)) return NULL;
    return realloc(p, total ? total : 1);
}

char *ci_strdup(const char *s) { return ci_strndup(s, strlen(s)); }

char *ci_strndup(const char *s, size_t n) {
    char *p = ci_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ci_buf_reserve(ci_buf *b, size_t extra) {
    size_t need;
    if (ci_add_overflow(b->len, extra, &need) || ci_add_overflow(need, 1, &need)) out_of_memory(SIZE_MAX);
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = ci_realloc(b->data, cap);
    b->cap = cap;
}

void ci_buf_append(ci_buf *b, const void *data, size_t len) {
    ci_buf_reserve(b, len);
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void ci_buf_puts(ci_buf *b, const char *s) { ci_buf_append(b, s, strlen(s)); }

void ci_buf_putc(ci_buf *b, char c) {
    ci_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void ci_buf_vprintf(ci_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    ci_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void ci_buf_printf(ci_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ci_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *ci_buf_take(ci_buf *b, size_t *len_out) {
    if (!b->data) ci_buf_reserve(b, 0), b->data[0] = '\0';
    char *d = b->data;
    if (len_out) *len_out = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void ci_buf_free(ci_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ci_read_file(const char *path, size_t max_bytes, size_t *len_out, cinfer_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ci_error(err, CINFER_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ci_error(err, CINFER_ERR_IO, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        ci_error(err, CINFER_ERR_LIMIT, "%s: file is %lld bytes, more than the limit of %zu",
                 path, (long long)st.st_size, max_bytes);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    char *data = ci_malloc(size + 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, data + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            ci_error(err, CINFER_ERR_IO, "%s: read failed after %zu of %zu bytes", path, got, size);
            free(data);
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    data[size] = '\0';
    if (len_out) *len_out = size;
    return data;
}

int ci_map_file(const char *path, ci_mapped_file *out, cinfer_error *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ci_error(err, CINFER_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ci_error(err, CINFER_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return ci_error(err, CINFER_ERR_FORMAT, "%s: file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ci_error(err, CINFER_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    out->data = p;
    out->size = (size_t)st.st_size;
    return CINFER_OK;
}

void ci_unmap_file(ci_mapped_file *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    mf->data = NULL;
    mf->size = 0;
}

bool ci_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool ci_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *ci_path_folder(const char *path) {
    if (ci_is_directory(path)) return ci_strdup(path);
    const char *slash = strrchr(path, '/');
    if (!slash) return ci_strdup(".");
    return slash == path ? ci_strdup("/") : ci_strndup(path, (size_t)(slash - path));
}

char *ci_path_join(const char *dir, const char *name) {
    ci_buf b = {0};
    ci_buf_puts(&b, dir);
    if (b.len && b.data[b.len - 1] != '/') ci_buf_putc(&b, '/');
    ci_buf_puts(&b, name);
    return ci_buf_take(&b, NULL);
}

double ci_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
