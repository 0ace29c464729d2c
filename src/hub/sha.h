/*
 * sha.h — SHA-256 and SHA-1 (FIPS 180-4), streaming.
 *
 * The hub names every blob by a content hash: LFS files by their SHA-256,
 * small git files by their git blob id (SHA-1 over "blob <size>\0" + bytes).
 * A download is only placed in the cache after its bytes hash to that name,
 * so both digests are needed; neither is used for anything secret.
 */
#ifndef CINFER_HUB_SHA_H
#define CINFER_HUB_SHA_H

#include <stddef.h>
#include <stdint.h>

typedef struct ci_sha256 {
    uint32_t h[8];
    uint64_t len;      /* bytes hashed so far */
    uint8_t buf[64];
    size_t fill;
} ci_sha256;

typedef struct ci_sha1 {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
} ci_sha1;

void ci_sha256_init(ci_sha256 *s);
void ci_sha256_update(ci_sha256 *s, const void *data, size_t n);
void ci_sha256_final(ci_sha256 *s, uint8_t out[32]);

void ci_sha1_init(ci_sha1 *s);
void ci_sha1_update(ci_sha1 *s, const void *data, size_t n);
void ci_sha1_final(ci_sha1 *s, uint8_t out[20]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void ci_hex(const uint8_t *in, size_t n, char *out);

#endif
