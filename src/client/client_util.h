/*
 * client_util.h — small text helpers of the HTTP client: turning untrusted
 * server text into something safe to put in an error message or on a
 * terminal, and masking secrets for verbose output.
 */
#ifndef CINFER_CLIENT_UTIL_H
#define CINFER_CLIENT_UTIL_H

#include <stddef.h>

/* Copies at most max_chars bytes of `text` into out (NUL-terminated, at most
 * out_size bytes), replacing control bytes (terminal escapes included) with
 * '?' and marking a cut with "...". A hostile server's message must not be
 * able to drive the user's terminal. */
void ci_printable_excerpt(const char *text, size_t len, size_t max_chars, char *out, size_t out_size);

/* "sk-...abcd" for long keys, "****" for short ones (too little to hide in). */
void ci_mask_secret(const char *secret, char *out, size_t out_size);

#endif
