/*
 * hub_pull.c — `cinfer pull`: from a model name to verified files in a cache.
 *
 *   1. metadata: Hugging Face GET {endpoint}/api/models/ORG/NAME/revision/REV?blobs=true
 *      (the commit, every file with its size, git blob id and LFS sha256);
 *      ModelScope GET {endpoint}/api/v1/models/ORG/NAME/repo/files?Revision=REV&Recursive=true
 *      (Path, Size, Sha256). Every name and number is checked before use.
 *   2. selection (hub_name.c), then the bytes still missing are checked
 *      against the free space of the cache's file system (statvfs).
 *   3. N worker threads take files in turn: download into
 *      `<blob>.incomplete` (resumed with Range), hash it, and only when the
 *      hash is the one the metadata named rename it into place. A mismatch
 *      discards the partial file and fetches once more from zero; a second
 *      mismatch is an error.
 *   4. HF: snapshots/COMMIT/FILE → ../../blobs/HASH (relative links, as
 *      huggingface_hub makes them), then refs/REVISION ← COMMIT, written last
 *      so a model resolves only once every file is in. ModelScope: the files
 *      themselves under the model folder.
 * Requests are pinned to the commit the metadata named, and the hub's
 * X-Repo-Commit / X-Linked-Etag / ETag answers must agree with the metadata.
 */
#include "hub/hub.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_METADATA_BYTES (64u << 20)
#define MAX_FILES 100000
#define MAX_FILE_BYTES (1ull << 42) /* 4 TiB: larger than any checkpoint file */

void cinfer_hub_options_init(cinfer_hub_options *o) {
    memset(o, 0, sizeof *o);
    o->connections = 4;
    o->max_retries = 5;
    o->stall_timeout_s = 60;
    o->max_wait_s = 30;
}

typedef struct job {
    ci_hub_file *f;
    char *url, *part, *dest;
    bool cached;
} job;

typedef struct pull {
    const cinfer_hub_options *o;
    ci_hub_ref ref;
    ci_hub_http http;
    char commit[65];
    job *jobs;
    size_t n_jobs, next;
    pthread_mutex_t mu;
    uint64_t done, total;
    int files_done, files_total;
    int rc;
    cinfer_error err;
} pull;

static bool is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return false;
    return true;
}

static void emit(pull *p, cinfer_hub_event ev, const job *j, uint64_t file_done) {
    if (!p->o->progress) return;
    cinfer_hub_progress pr = {.event = ev, .file = j ? j->f->name : NULL, .file_done = file_done,
                              .file_total = j ? j->f->size : 0, .done = p->done, .total = p->total,
                              .files_done = p->files_done, .files_total = p->files_total};
    p->o->progress(&pr, p->o->progress_user);
}

/* ------------------------------------------------------------ metadata */

static int add_file(ci_hub_file **v, size_t *n, json_t *name, json_t *size, const char *hash, bool lfs,
                    cinfer_error *err) {
    if (!json_is_string(name) || !ci_hub_valid_file_name(json_string_value(name), json_string_length(name)))
        return ci_error(err, CINFER_ERR_FORMAT, "the hub listed a file name that is not a plain relative path: '%.100s'",
                        json_is_string(name) ? json_string_value(name) : "?");
    if (!json_is_integer(size) || json_integer_value(size) < 0 || (uint64_t)json_integer_value(size) > MAX_FILE_BYTES)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: the hub gave no valid size", json_string_value(name));
    if (*n >= MAX_FILES) return ci_error(err, CINFER_ERR_LIMIT, "the repo lists more than %d files", MAX_FILES);
    *v = ci_realloc_array(*v, *n + 1, sizeof **v);
    ci_hub_file *f = &(*v)[(*n)++];
    memset(f, 0, sizeof *f);
    f->name = ci_strdup(json_string_value(name));
    f->size = (uint64_t)json_integer_value(size);
    f->lfs = lfs;
    snprintf(f->hash, sizeof f->hash, "%s", hash ? hash : "");
    return 0;
}

static json_t *get_json(pull *p, const char *url, cinfer_error *err) {
    char *text = ci_hub_get_text(&p->http, url, MAX_METADATA_BYTES, err);
    if (!text) return NULL;
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!doc) ci_error(err, CINFER_ERR_FORMAT, "metadata: not JSON (%s)", je.text);
    return doc;
}

static int hf_metadata(pull *p, const char *endpoint, const char *rev, ci_hub_file **files, size_t *n,
                       cinfer_error *err) {
    ci_buf url = {0};
    ci_buf_printf(&url, "%s/api/models/%s/%s/revision/%s?blobs=true", endpoint, p->ref.org, p->ref.name, rev);
    json_t *doc = get_json(p, url.data, err);
    ci_buf_free(&url);
    if (!doc) return err->code ? err->code : CINFER_ERR_IO;
    int rc = 0;
    json_t *sha = json_object_get(doc, "sha"), *sib = json_object_get(doc, "siblings");
    if (!json_is_string(sha) || !is_hex(json_string_value(sha), 40) || !json_is_array(sib))
        rc = ci_error(err, CINFER_ERR_FORMAT, "metadata: no commit id and file list");
    else snprintf(p->commit, sizeof p->commit, "%s", json_string_value(sha));
    size_t i;
    json_t *e;
    json_array_foreach(sib, i, e) {
        if (rc) break;
        json_t *lfs = json_object_get(e, "lfs");
        const char *h = lfs ? json_string_value(json_object_get(lfs, "sha256"))
                            : json_string_value(json_object_get(e, "blobId"));
        if (!h || !is_hex(h, lfs ? 64 : 40)) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "metadata: a file without a valid %s",
                          lfs ? "lfs.sha256" : "blobId (is ?blobs=true supported by this endpoint?)");
            break;
        }
        json_t *size = lfs && json_object_get(lfs, "size") ? json_object_get(lfs, "size") : json_object_get(e, "size");
        rc = add_file(files, n, json_object_get(e, "rfilename"), size, h, lfs != NULL, err);
    }
    json_decref(doc);
    return rc;
}

static int ms_metadata(pull *p, const char *endpoint, const char *rev, ci_hub_file **files, size_t *n,
                       cinfer_error *err) {
    ci_buf url = {0};
    ci_buf_printf(&url, "%s/api/v1/models/%s/%s/repo/files?Revision=%s&Recursive=true", endpoint, p->ref.org,
                  p->ref.name, rev);
    json_t *doc = get_json(p, url.data, err);
    ci_buf_free(&url);
    if (!doc) return err->code ? err->code : CINFER_ERR_IO;
    int rc = 0;
    json_t *list = json_object_get(json_object_get(doc, "Data"), "Files");
    if (!json_is_array(list)) rc = ci_error(err, CINFER_ERR_FORMAT, "metadata: no Data.Files list");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        if (rc) break;
        const char *type = json_string_value(json_object_get(e, "Type"));
        if (type && !strcmp(type, "tree")) continue;
        if (!type || strcmp(type, "blob") != 0) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "metadata: an entry of type '%.20s' (only files are fetched)",
                          type ? type : "?");
            break;
        }
        const char *h = json_string_value(json_object_get(e, "Sha256"));
        if (h && *h && !is_hex(h, 64)) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "metadata: a Sha256 that is not 64 hex digits");
            break;
        }
        rc = add_file(files, n, json_object_get(e, "Path"), json_object_get(e, "Size"), h, true, err);
    }
    snprintf(p->commit, sizeof p->commit, "%s", rev);
    json_decref(doc);
    return rc;
}

/* ------------------------------------------------------------- workers */

typedef struct bytes_ctx {
    pull *p;
    job *j;
    uint64_t last;
} bytes_ctx;

static void on_bytes(void *user, uint64_t have) {
    bytes_ctx *b = user;
    pthread_mutex_lock(&b->p->mu);
    b->p->done += have - b->last; /* have can restart from 0: unsigned wrap adds back correctly */
    b->last = have;
    emit(b->p, CINFER_HUB_BYTES, b->j, have);
    pthread_mutex_unlock(&b->p->mu);
}

static void on_retry(const cinfer_hub_progress *pr, void *user) {
    pull *p = user;
    if (!p->o->progress) return;
    pthread_mutex_lock(&p->mu);
    cinfer_hub_progress q = *pr;
    q.done = p->done, q.total = p->total, q.files_done = p->files_done, q.files_total = p->files_total;
    p->o->progress(&q, p->o->progress_user);
    pthread_mutex_unlock(&p->mu);
}

/* The hub's own answers must agree with the metadata the plan came from. */
static int check_headers(const pull *p, const job *j, const ci_hub_headers *h, cinfer_error *err) {
    if (p->ref.source != CI_HUB_HF) return 0;
    if (h->repo_commit[0] && strcmp(h->repo_commit, p->commit) != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: X-Repo-Commit %.40s is not the commit %s", j->f->name,
                        h->repo_commit, p->commit);
    const char *tag = h->linked_etag[0] ? h->linked_etag : h->etag;
    bool content_hash = is_hex(tag, 40) || is_hex(tag, 64);
    if (content_hash && strcmp(tag, j->f->hash) != 0)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: the hub's ETag %.64s is not the hash %s of its metadata",
                        j->f->name, tag, j->f->hash);
    if (h->linked_size >= 0 && (uint64_t)h->linked_size != j->f->size)
        return ci_error(err, CINFER_ERR_FORMAT, "%s: X-Linked-Size %lld is not the size %llu of its metadata",
                        j->f->name, (long long)h->linked_size, (unsigned long long)j->f->size);
    return 0;
}

static int run_job(pull *p, job *j, cinfer_error *err) {
    for (int attempt = 0; attempt < 2; attempt++) {
        bytes_ctx bc = {p, j, 0};
        ci_hub_headers hdr;
        struct stat st;
        if (stat(j->part, &st) == 0) on_bytes(&bc, (uint64_t)st.st_size); /* resumed bytes count as done */
        int rc = ci_hub_fetch(&p->http, j->url, j->part, j->f->size, &hdr, on_bytes, &bc, on_retry, p, j->f->name, err);
        if (rc == 0) rc = check_headers(p, j, &hdr, err);
        if (rc) {
            pthread_mutex_lock(&p->mu);
            p->done -= bc.last;
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        if (!j->f->hash[0]) return 0; /* ModelScope without a hash: the size was checked */
        char got[65];
        if ((rc = ci_hub_hash_file(j->part, !j->f->lfs, got, err))) return rc;
        if (!strcmp(got, j->f->hash)) return 0;
        unlink(j->part); /* never placed: fetch again from zero */
        pthread_mutex_lock(&p->mu);
        p->done -= bc.last;
        pthread_mutex_unlock(&p->mu);
        ci_error(err, CINFER_ERR_FORMAT, "%s: the downloaded bytes hash to %s, the hub named %s", j->f->name, got,
                 j->f->hash);
        if (p->o->progress) {
            cinfer_hub_progress q = {.event = CINFER_HUB_RETRY, .file = j->f->name, .file_total = j->f->size,
                                     .note = err->message};
            on_retry(&q, p);
        }
    }
    ci_error_prefix(err, "checksum mismatch twice");
    return CINFER_ERR_FORMAT;
}

static void *worker(void *arg) {
    pull *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->rc != 0 || p->next >= p->n_jobs || (p->o->cancel && *p->o->cancel);
        job *j = stop ? NULL : &p->jobs[p->next++];
        pthread_mutex_unlock(&p->mu);
        if (!j) return NULL;
        cinfer_error e = {0};
        int rc = run_job(p, j, &e);
        if (rc == 0 && rename(j->part, j->dest) != 0)
            rc = ci_error(&e, CINFER_ERR_IO, "%s: cannot place the file: %s", j->dest, strerror(errno));
        pthread_mutex_lock(&p->mu);
        if (rc && !p->rc) p->rc = rc, p->err = e;
        if (!rc) p->files_done++, emit(p, CINFER_HUB_FILE_DONE, j, j->f->size);
        pthread_mutex_unlock(&p->mu);
    }
}

/* -------------------------------------------------------------- plan */

static char *env_or(const char *var, const char *def) {
    const char *v = getenv(var);
    char *s = ci_strdup(v && *v ? v : def);
    size_t n = strlen(s);
    while (n && s[n - 1] == '/') s[--n] = '\0';
    return s;
}

/* HF_TOKEN, else the file huggingface-cli login writes. Caller frees. */
static char *hf_token(void) {
    const char *v = getenv("HF_TOKEN");
    if (v && *v) return ci_strdup(v);
    char *path = NULL;
    const char *tp = getenv("HF_TOKEN_PATH");
    if (tp && *tp) path = ci_strdup(tp);
    else if ((v = getenv("HF_HOME")) && *v) path = ci_path_join(v, "token");
    else if ((v = getenv("HOME")) && *v) path = ci_path_join(v, ".cache/huggingface/token");
    char *t = path ? ci_read_file(path, 4096, NULL, NULL) : NULL;
    free(path);
    if (!t) return NULL;
    char *s = t;
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    char *out = n ? ci_strndup(s, n) : NULL;
    free(t);
    return out;
}

/* The cache root itself is the user's choice (it may sit behind symlinks, as
 * /home often does); only what is below it is checked by ci_hub_mkdirs. */
static int mkdir_root(const char *root, cinfer_error *err) {
    char *p = ci_strdup(root);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        mkdir(p, 0755);
        *c = '/';
    }
    int ok = mkdir(p, 0755) == 0 || errno == EEXIST;
    free(p);
    return ok && ci_is_directory(root) ? 0 : ci_error(err, CINFER_ERR_IO, "%s: cannot create the cache folder", root);
}

static int check_space(const char *dir, uint64_t need, cinfer_error *err) {
    struct statvfs vs;
    if (statvfs(dir, &vs) != 0) return 0; /* unknown: let the writes tell */
    uint64_t avail = (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
    if (need > avail)
        return ci_error(err, CINFER_ERR_IO, "%s: %.2f GB free, the download needs %.2f GB", dir, (double)avail / 1e9,
                        (double)need / 1e9);
    return 0;
}

/* A relative link from snapshots/COMMIT/NAME to blobs/HASH. */
static int link_snapshot(const char *repo, const char *commit, const ci_hub_file *f, cinfer_error *err) {
    ci_buf rel = {0}, target = {0}, path = {0};
    ci_buf_printf(&rel, "snapshots/%s/%s", commit, f->name);
    char *slash = strrchr(rel.data, '/');
    *slash = '\0';
    int rc = ci_hub_mkdirs(repo, rel.data, err);
    *slash = '/';
    int depth = 2;
    for (const char *c = f->name; *c; c++) depth += *c == '/';
    for (int i = 0; i < depth; i++) ci_buf_puts(&target, "../");
    ci_buf_printf(&target, "blobs/%s", f->hash);
    ci_buf_printf(&path, "%s/%s", repo, rel.data);
    if (rc == 0) {
        char cur[512];
        ssize_t k = readlink(path.data, cur, sizeof cur - 1);
        bool same = k > 0 && (size_t)k == target.len && !memcmp(cur, target.data, target.len);
        if (!same) {
            unlink(path.data); /* an old link or a planted file: replaced, never followed */
            if (symlink(target.data, path.data) != 0)
                rc = ci_error(err, CINFER_ERR_IO, "%s: cannot link: %s", path.data, strerror(errno));
        }
    }
    ci_buf_free(&rel), ci_buf_free(&target), ci_buf_free(&path);
    return rc;
}

static int write_ref(const char *repo, const char *rev, const char *commit, cinfer_error *err) {
    ci_buf rel = {0}, path = {0}, tmp = {0};
    ci_buf_printf(&rel, "refs/%s", rev);
    char *slash = strrchr(rel.data, '/');
    *slash = '\0';
    int rc = ci_hub_mkdirs(repo, rel.data, err);
    *slash = '/';
    ci_buf_printf(&path, "%s/%s", repo, rel.data);
    ci_buf_printf(&tmp, "%s.tmp-%ld", path.data, (long)getpid());
    FILE *f = rc ? NULL : fopen(tmp.data, "wb");
    if (!rc && (!f || fputs(commit, f) < 0 || fclose(f) != 0 || rename(tmp.data, path.data) != 0))
        rc = ci_error(err, CINFER_ERR_IO, "%s: cannot write: %s", path.data, strerror(errno));
    ci_buf_free(&rel), ci_buf_free(&path), ci_buf_free(&tmp);
    return rc;
}

/* One job per selected file: its URL, partial file and destination (HF: the
 * blob; ModelScope: the file under the model folder). */
static void plan_jobs(pull *p, ci_hub_file *files, size_t n, const char *endpoint, const char *base,
                      const char *tmpdir) {
    p->jobs = ci_calloc(n ? n : 1, sizeof *p->jobs);
    for (size_t i = 0; i < n; i++) {
        ci_hub_file *f = &files[i];
        if (!f->selected) continue;
        job *j = &p->jobs[p->n_jobs++];
        j->f = f;
        char *up = ci_hub_url_path(f->name);
        ci_buf b = {0};
        if (p->ref.source == CI_HUB_HF) {
            ci_buf_printf(&b, "%s/%s/%s/resolve/%s/%s", endpoint, p->ref.org, p->ref.name, p->commit, up);
            j->url = ci_buf_take(&b, NULL);
            ci_buf_printf(&b, "%s/blobs/%s", base, f->hash);
            j->dest = ci_buf_take(&b, NULL);
        } else {
            char *rv = ci_hub_url_path(p->commit);
            ci_buf_printf(&b, "%s/api/v1/models/%s/%s/repo?Revision=%s&FilePath=%s", endpoint, p->ref.org, p->ref.name,
                          rv, up);
            free(rv);
            j->url = ci_buf_take(&b, NULL);
            j->dest = ci_path_join(base, f->name);
        }
        free(up);
        /* HF: the partial blob is named by its hash (as huggingface_hub does), so
         * a later pull resumes it whatever file names it. ModelScope places by
         * path, so two files with equal bytes need two partial files. */
        if (p->ref.source == CI_HUB_HF) ci_buf_printf(&b, "%s/%s.incomplete", tmpdir, f->hash);
        else ci_buf_printf(&b, "%s/%s-%zu.incomplete", tmpdir, f->hash[0] ? f->hash : "file", i);
        j->part = ci_buf_take(&b, NULL);
        struct stat st;
        j->cached = stat(j->dest, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == f->size;
        for (size_t k = 0; k + 1 < p->n_jobs && !j->cached; k++)
            j->cached = !strcmp(p->jobs[k].dest, j->dest); /* same blob as an earlier file: one download */
        p->total += f->size;
        p->files_total++;
    }
}

static int download_all(pull *p, const char *space_dir, cinfer_error *err) {
    uint64_t need = 0;
    for (size_t i = 0; i < p->n_jobs; i++) {
        job *j = &p->jobs[i];
        struct stat st;
        if (j->cached) {
            p->done += j->f->size, p->files_done++;
            continue;
        }
        need += j->f->size - (stat(j->part, &st) == 0 && (uint64_t)st.st_size <= j->f->size ? (uint64_t)st.st_size : 0);
    }
    emit(p, CINFER_HUB_PLAN, NULL, 0);
    for (size_t i = 0; i < p->n_jobs; i++)
        if (p->jobs[i].cached) emit(p, CINFER_HUB_FILE_DONE, &p->jobs[i], p->jobs[i].f->size);
    int rc = check_space(space_dir, need, err);
    if (rc) return rc;
    /* cached jobs are skipped by compacting them away */
    size_t k = 0;
    for (size_t i = 0; i < p->n_jobs; i++)
        if (!p->jobs[i].cached) {
            job t = p->jobs[k];
            p->jobs[k++] = p->jobs[i];
            p->jobs[i] = t;
        }
    size_t todo = k;
    int nt = p->o->connections < 1 ? 1 : p->o->connections > 64 ? 64 : p->o->connections;
    if ((size_t)nt > todo) nt = (int)todo;
    pthread_t th[64];
    size_t saved_n = p->n_jobs;
    p->n_jobs = todo;
    int started = 0;
    for (int t = 0; t < nt; t++)
        if (pthread_create(&th[t], NULL, worker, p) == 0) started++;
    if (started == 0 && todo > 0) worker(p);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    p->n_jobs = saved_n;
    if (p->rc) {
        *err = p->err;
        return p->rc;
    }
    if (p->o->cancel && *p->o->cancel) return ci_error(err, CINFER_ERR_IO, "interrupted");
    return 0;
}

static void free_files(ci_hub_file *files, size_t n, pull *p) {
    for (size_t i = 0; i < n; i++) free(files[i].name);
    free(files);
    for (size_t i = 0; i < p->n_jobs; i++) free(p->jobs[i].url), free(p->jobs[i].part), free(p->jobs[i].dest);
    free(p->jobs);
}

static int pull_hf(pull *p, const char *rev, char **path_out, cinfer_error *err) {
    char *endpoint = env_or("HF_ENDPOINT", "https://huggingface.co"), *token = hf_token();
    ci_hub_http_init(&p->http, endpoint, token);
    p->http.stall_timeout_s = p->o->stall_timeout_s, p->http.max_retries = p->o->max_retries;
    p->http.max_wait_s = p->o->max_wait_s, p->http.cancel = p->o->cancel;
    ci_hub_file *files = NULL;
    size_t n = 0;
    char *root = ci_hub_hf_root(), *repo = ci_hub_hf_repo_dir(root, &p->ref), *blobs = NULL;
    int rc = hf_metadata(p, endpoint, rev, &files, &n, err);
    if (!rc) rc = ci_hub_select(files, n, &p->ref, p->o, err);
    if (!rc) rc = mkdir_root(root, err);
    if (!rc) rc = ci_hub_mkdirs(root, strrchr(repo, '/') + 1, err);
    if (!rc) rc = ci_hub_mkdirs(repo, "blobs", err);
    if (!rc) {
        blobs = ci_path_join(repo, "blobs");
        plan_jobs(p, files, n, endpoint, repo, blobs);
        rc = download_all(p, blobs, err);
    }
    for (size_t i = 0; !rc && i < p->n_jobs; i++) rc = link_snapshot(repo, p->commit, p->jobs[i].f, err);
    if (!rc && strcmp(rev, p->commit) != 0) rc = write_ref(repo, rev, p->commit, err);
    if (!rc) {
        ci_buf b = {0};
        ci_buf_printf(&b, "%s/snapshots/%s", repo, p->commit);
        char *snap = ci_buf_take(&b, NULL);
        *path_out = ci_hub_model_path_in(snap, p->ref.quant);
        if (!*path_out) *path_out = snap;
        else free(snap);
    }
    if (token) memset(token, 0, strlen(token));
    free(token), free(endpoint), free(root), free(repo), free(blobs);
    free_files(files, n, p);
    return rc;
}

static int pull_ms(pull *p, const char *rev, char **path_out, cinfer_error *err) {
    const char *dom = getenv("MODELSCOPE_DOMAIN");
    char *endpoint;
    if (dom && *dom && !strstr(dom, "://")) {
        ci_buf b = {0};
        ci_buf_printf(&b, "https://%s", dom);
        endpoint = ci_buf_take(&b, NULL);
    } else endpoint = env_or("MODELSCOPE_DOMAIN", "https://www.modelscope.cn");
    ci_hub_http_init(&p->http, endpoint, NULL);
    p->http.stall_timeout_s = p->o->stall_timeout_s, p->http.max_retries = p->o->max_retries;
    p->http.max_wait_s = p->o->max_wait_s, p->http.cancel = p->o->cancel;
    ci_hub_file *files = NULL;
    size_t n = 0;
    char *root = ci_hub_ms_root(), *dir = ci_hub_ms_repo_dir(root, &p->ref), *tmp = NULL;
    int rc = ms_metadata(p, endpoint, rev, &files, &n, err);
    if (!rc) rc = ci_hub_select(files, n, &p->ref, p->o, err);
    if (!rc) rc = mkdir_root(root, err);
    ci_buf rel = {0};
    ci_buf_printf(&rel, "models/%s/%s", p->ref.org, strrchr(dir, '/') + 1);
    if (!rc) rc = ci_hub_mkdirs(root, rel.data, err);
    ci_buf_free(&rel);
    ci_buf_printf(&rel, "models/._____temp/%s/%s", p->ref.org, p->ref.name);
    if (!rc) rc = ci_hub_mkdirs(root, rel.data, err);
    tmp = ci_path_join(root, rel.data);
    ci_buf_free(&rel);
    for (size_t i = 0; !rc && i < n; i++) { /* sub-folders of selected files, checked like the rest */
        char *slash = files[i].selected ? strrchr(files[i].name, '/') : NULL;
        if (!slash) continue;
        char *sub = ci_strndup(files[i].name, (size_t)(slash - files[i].name));
        rc = ci_hub_mkdirs(dir, sub, err);
        free(sub);
    }
    if (!rc) {
        plan_jobs(p, files, n, endpoint, dir, tmp);
        rc = download_all(p, tmp, err);
    }
    if (!rc) {
        *path_out = ci_hub_model_path_in(dir, p->ref.quant);
        if (!*path_out) *path_out = ci_strdup(dir);
    }
    free(endpoint), free(root), free(dir), free(tmp);
    free_files(files, n, p);
    return rc;
}

int cinfer_hub_pull(const char *name, const cinfer_hub_options *opts, char **path_out, cinfer_error *err) {
    cinfer_hub_options defaults;
    if (!opts) cinfer_hub_options_init(&defaults), opts = &defaults;
    *path_out = NULL;
    pull p = {.o = opts};
    if (ci_hub_parse_name(name, &p.ref, err)) return CINFER_ERR_INVALID;
    if (opts->source) {
        if (!strcmp(opts->source, "hf") || !strcmp(opts->source, "huggingface")) p.ref.source = CI_HUB_HF;
        else if (!strcmp(opts->source, "modelscope") || !strcmp(opts->source, "ms")) p.ref.source = CI_HUB_MODELSCOPE;
        else return ci_error(err, CINFER_ERR_INVALID, "unknown source '%s' (hf or modelscope)", opts->source);
        p.ref.source_given = true;
    }
    const char *rev = opts->revision ? opts->revision : p.ref.source == CI_HUB_HF ? "main" : "master";
    if (!ci_hub_valid_revision(rev)) return ci_error(err, CINFER_ERR_INVALID, "'%s' is not a revision", rev);
    if (ci_hub_offline()) {
        *path_out = opts->revision ? NULL : cinfer_resolve_model(name, NULL);
        if (*path_out) return 0;
        return ci_error(err, CINFER_ERR_IO, "%s: HF_HUB_OFFLINE is set and the model is not cached", name);
    }
    pthread_mutex_init(&p.mu, NULL);
    int rc = p.ref.source == CI_HUB_HF ? pull_hf(&p, rev, path_out, err) : pull_ms(&p, rev, path_out, err);
    pthread_mutex_destroy(&p.mu);
    if (rc) ci_error_prefix(err, "%s", name);
    return rc;
}
