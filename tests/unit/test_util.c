/* Unit tests for src/util: buffers, file reading limits, error formatting. */
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <unistd.h>

static void test_buf(void) {
    ci_buf b = {0};
    for (int i = 0; i < 1000; i++) ci_buf_printf(&b, "%d,", i);
    CHECK(b.len == 3890);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    CHECK(b.data[b.len] == '\0');
    size_t n;
    char *s = ci_buf_take(&b, &n);
    CHECK(n == 3890 && b.data == NULL && b.len == 0);
    free(s);
    ci_buf e = {0};
    char *empty = ci_buf_take(&e, &n);
    CHECK(empty && n == 0 && empty[0] == '\0');
    free(empty);
}

static void test_read_file(void) {
    char path[] = "/tmp/cinfer_test_util_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "hello", 5) == 5);
    close(fd);
    cinfer_error err = {0};
    size_t len = 0;
    char *d = ci_read_file(path, 100, &len, &err);
    CHECK(d && len == 5 && strcmp(d, "hello") == 0);
    free(d);
    d = ci_read_file(path, 4, &len, &err);
    CHECK(d == NULL && err.code == CINFER_ERR_LIMIT);
    CHECK(strstr(err.message, "limit") != NULL);
    unlink(path);
    d = ci_read_file(path, 100, &len, &err);
    CHECK(d == NULL && err.code == CINFER_ERR_IO);
    ci_error_prefix(&err, "loading %s", "x");
    CHECK(strncmp(err.message, "loading x: ", 11) == 0);
}

int main(void) {
    test_buf();
    test_read_file();
    TEST_MAIN_END();
}
