/*
 * name_index.h — a small open-addressing hash from names (byte strings, not
 * necessarily NUL-terminated) to indices. The format readers use it to
 * reject duplicate tensor names / metadata keys and to look names up in O(1);
 * a GGUF with 151936 vocabulary strings and hundreds of tensors must not pay
 * a quadratic scan.
 */
#ifndef CINFER_FORMAT_NAME_INDEX_H
#define CINFER_FORMAT_NAME_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct ci_name_index {
    struct ci_name_slot { const char *name; size_t len; size_t index; } *slots; /* name NULL = empty */
    size_t cap; /* power of two, at least 2x the entries */
    size_t count;
} ci_name_index;

/* Sizes the table for up to `expected` entries (may grow later). */
void ci_name_index_init(ci_name_index *ix, size_t expected);
/* Inserts name -> index; the name bytes must outlive the index. Returns the
 * index already stored under that name instead (and inserts nothing), or
 * SIZE_MAX when the name was new. */
size_t ci_name_index_insert(ci_name_index *ix, const char *name, size_t len, size_t index);
/* Returns the index stored for name, or SIZE_MAX. */
size_t ci_name_index_find(const ci_name_index *ix, const char *name, size_t len);
void ci_name_index_free(ci_name_index *ix);

#endif
