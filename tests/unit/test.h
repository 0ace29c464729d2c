/* test.h — minimal assertion helpers shared by the C unit tests.
 * A failed CHECK prints file:line and the expression and counts a failure;
 * TEST_MAIN_END prints the "N passed, N failed" closing line and sets the
 * exit code. */
#ifndef CINFER_TEST_H
#define CINFER_TEST_H
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond) do { \
    if (cond) test_passed++; \
    else { test_failed++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_MSG(cond, ...) do { \
    if (cond) test_passed++; \
    else { test_failed++; fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_STREQ(a, b) CHECK_MSG(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))

#define TEST_MAIN_END() do { \
    printf("%d passed, %d failed\n", test_passed, test_failed); \
    return test_failed ? 1 : 0; \
} while (0)

#endif
