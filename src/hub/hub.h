/*
 * hub.h — internal pieces of `cinfer pull` and model-name resolution.
 *
 * Layer: beside src/client; uses util and libcurl only. The public entry points
 * (cinfer_hub_*, cinfer_resolve_model) are in include/cinfer.h.
 *
 *   hub_name.c   model names, revisions and hub file names checked as untrusted
 *                text; globs; which repo files a run needs; GGUF quant matching
 *   hub_cache.c  the two cache layouts: roots from the environment, lookups,
 *                list, remove, directory creation that never follows a symlink
 *   hub_http.c   one HTTP exchange at a time with libcurl: redirects followed by
 *                hand (so the token only goes to the endpoint's host), bounded
 *                bodies, Range resume, retries with backoff and Retry-After
 *   hub_pull.c   the download plan: metadata → selection → disk-space check →
 *                N worker threads → verify → blobs + snapshot links + ref
 *   sha.c        SHA-256 / SHA-1 for verification
 */
#ifndef CINFER_HUB_H
#define CINFER_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"
#include "util/util.h"

typedef enum ci_hub_source { CI_HUB_HF, CI_HUB_MODELSCOPE } ci_hub_source;

/* Name parts: [hf:|modelscope:]ORG/NAME[:QUANT]. */
typedef struct ci_hub_ref {
    ci_hub_source source;
    bool source_given;      /* the name carried a prefix */
    char org[97], name[97];
    char quant[33];         /* "" when none */
} ci_hub_ref;

int ci_hub_parse_name(const char *s, ci_hub_ref *out, cinfer_error *err);
bool ci_hub_valid_revision(const char *rev);
/* A repo-relative file name from the hub: relative, '/'-separated, no '.'
 * or '..' components, no backslash or control characters, bounded length. */
bool ci_hub_valid_file_name(const char *name, size_t len);
/* fnmatch without FNM_PATHNAME, as huggingface_hub's allow/ignore patterns. */
bool ci_hub_glob(const char *pattern, const char *name);
/* Case-insensitive: does GGUF file `file` carry quant tag `quant` as a whole
 * word of its base name? Sets *shard (1-based, 0 when not split) and *n_shards. */
bool ci_hub_gguf_match(const char *file, const char *quant, int *shard, int *n_shards);
bool ci_hub_has_suffix(const char *s, const char *suffix);

/* One file of a repo, from the hub's metadata. */
typedef struct ci_hub_file {
    char *name;             /* repo-relative, validated */
    uint64_t size;
    char hash[65];          /* sha256 (LFS, ModelScope) or git blob sha1; "" unknown */
    bool lfs;
    bool selected;
} ci_hub_file;

/* Marks the files a run needs (or those the include/exclude globs give) and,
 * for a quant, the matching GGUF file(s). Fails when nothing fits. */
int ci_hub_select(ci_hub_file *files, size_t n, const ci_hub_ref *ref, const cinfer_hub_options *o,
                  cinfer_error *err);

/* Cache roots from the environment; caller frees. */
char *ci_hub_hf_root(void);
char *ci_hub_ms_root(void);
/* HF: <root>/models--ORG--NAME.  ModelScope: <root>/ORG/NAME with '.' → "___". */
char *ci_hub_hf_repo_dir(const char *root, const ci_hub_ref *ref);
char *ci_hub_ms_repo_dir(const char *root, const ci_hub_ref *ref);
/* Creates dir `base`/`rel` (and parents below base); every component below
 * base must be a real directory, not a symlink. */
int ci_hub_mkdirs(const char *base, const char *rel, cinfer_error *err);
/* What a run loads from snapshot folder `dir`: the folder, or for a quant the
 * GGUF file (first shard). NULL when the snapshot does not hold it. */
char *ci_hub_model_path_in(const char *dir, const char *quant);
bool ci_hub_offline(void);

/* HTTP (hub_http.c). */
typedef struct ci_hub_http {
    const char *token;      /* sent to token_host only; NULL: none */
    char token_host[256];
    double stall_timeout_s;
    int max_retries;
    double max_wait_s;
    const volatile sig_atomic_t *cancel;
} ci_hub_http;

void ci_hub_http_init(ci_hub_http *h, const char *endpoint, const char *token);
/* Response headers the download path checks. */
typedef struct ci_hub_headers {
    char etag[130], linked_etag[130], repo_commit[64];
    int64_t linked_size;    /* -1 when absent */
} ci_hub_headers;

/* GET a JSON document (at most max bytes). Returns the body (free) or NULL. */
char *ci_hub_get_text(const ci_hub_http *h, const char *url, size_t max, cinfer_error *err);

typedef void (*ci_hub_bytes_fn)(void *user, uint64_t have);
/* Downloads url into `part` (appending from its current size with Range),
 * never past `size` bytes; retries inside. Fills *hdr from the first hop
 * (where the hub, not the storage host, answers). */
int ci_hub_fetch(const ci_hub_http *h, const char *url, const char *part, uint64_t size, ci_hub_headers *hdr,
                 ci_hub_bytes_fn on_bytes, void *user, cinfer_hub_progress_fn retry_fn, void *retry_user,
                 const char *file, cinfer_error *err);
/* Percent-encodes a path for a URL, keeping '/'. Caller frees. */
char *ci_hub_url_path(const char *s);
/* hex digest of a file: sha256, or git blob sha1 when git_sha1. */
int ci_hub_hash_file(const char *path, bool git_sha1, char out[65], cinfer_error *err);

#endif
