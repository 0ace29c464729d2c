/*
 * hub_cache.c — the two cache layouts on disk: lookups, list, remove.
 *
 * Hugging Face (huggingface_hub's layout, shared with transformers and
 * huggingface-cli):
 *   $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
 *     models--ORG--NAME/blobs/<etag>              file bytes, named by git sha1 or LFS sha256
 *     models--ORG--NAME/blobs/<etag>.incomplete   a download in progress
 *     models--ORG--NAME/snapshots/<commit>/<file> relative symlink to ../../blobs/<etag>
 *     models--ORG--NAME/refs/<revision>           the commit the revision pointed to
 * ModelScope: $MODELSCOPE_CACHE (default ~/.cache/modelscope/hub), plain files in
 *   models/ORG/NAME with '.' in NAME written "___" (modelscope >= 1.2x), or
 *   ORG/NAME (older releases); both are read, the first is written.
 *
 * Lookups never touch the network. A model counts as cached only through a
 * ref (written when a pull finishes), so a half-finished first pull is not
 * picked up as a model.
 */
#include "hub/hub.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *env_path(const char *var, const char *suffix) {
    const char *v = getenv(var);
    if (!v || !*v) return NULL;
    return suffix ? ci_path_join(v, suffix) : ci_strdup(v);
}

char *ci_hub_hf_root(void) {
    char *p = env_path("HF_HUB_CACHE", NULL);
    if (!p) p = env_path("HF_HOME", "hub");
    if (!p) p = env_path("XDG_CACHE_HOME", "huggingface/hub");
    if (!p) p = env_path("HOME", ".cache/huggingface/hub");
    return p ? p : ci_strdup(".cache/huggingface/hub");
}

char *ci_hub_ms_root(void) {
    char *p = env_path("MODELSCOPE_CACHE", NULL);
    if (!p) p = env_path("HOME", ".cache/modelscope/hub");
    return p ? p : ci_strdup(".cache/modelscope/hub");
}

bool ci_hub_offline(void) {
    const char *v = getenv("HF_HUB_OFFLINE");
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

char *ci_hub_hf_repo_dir(const char *root, const ci_hub_ref *ref) {
    ci_buf b = {0};
    ci_buf_printf(&b, "%s/models--%s--%s", root, ref->org, ref->name);
    return ci_buf_take(&b, NULL);
}

/* ModelScope writes '.' in a model name as "___" (dots confuse its Python imports). */
static char *ms_dir(const char *root, const char *mid, const ci_hub_ref *ref, bool dots) {
    ci_buf b = {0};
    ci_buf_printf(&b, "%s/%s%s/", root, mid, ref->org);
    for (const char *c = ref->name; *c; c++) {
        if (*c == '.' && dots) ci_buf_puts(&b, "___");
        else ci_buf_putc(&b, *c);
    }
    return ci_buf_take(&b, NULL);
}

char *ci_hub_ms_repo_dir(const char *root, const ci_hub_ref *ref) { return ms_dir(root, "models/", ref, true); }

int ci_hub_mkdirs(const char *base, const char *rel, cinfer_error *err) {
    ci_buf b = {0};
    ci_buf_puts(&b, base);
    const char *p = rel;
    int rc = 0;
    while (*p && rc == 0) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        ci_buf_putc(&b, '/');
        ci_buf_append(&b, p, n);
        struct stat st;
        if (mkdir(b.data, 0755) != 0 && errno != EEXIST)
            rc = ci_error(err, CINFER_ERR_IO, "%s: cannot create: %s", b.data, strerror(errno));
        else if (lstat(b.data, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = ci_error(err, CINFER_ERR_IO, "%s: not a plain folder (a symlink here could lead out of the cache)",
                          b.data);
        p += n;
        while (*p == '/') p++;
    }
    ci_buf_free(&b);
    return rc;
}

/* Bounded walk of a snapshot for GGUF files matching `quant`: the shortest
 * matching stem, first shard, only when every shard of it is present. */
typedef struct gguf_pick {
    const char *quant;
    char best[1024];
    size_t best_stem;
    int shards_seen, shards_want;
} gguf_pick;

static void scan_gguf(const char *dir, int depth, gguf_pick *pk) {
    DIR *d = depth <= 3 ? opendir(dir) : NULL;
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = ci_path_join(dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) scan_gguf(p, depth + 1, pk);
        int s, ns;
        if (S_ISREG(st.st_mode) && ci_hub_gguf_match(e->d_name, pk->quant, &s, &ns)) {
            size_t stem = strlen(e->d_name) - 5 - (ns ? 15 : 0);
            bool better = !pk->best[0] || stem < pk->best_stem;
            if (better) pk->shards_seen = 0, pk->best_stem = stem;
            if (stem == pk->best_stem) {
                pk->shards_seen++;
                pk->shards_want = ns;
                if (better || s == 1) snprintf(pk->best, sizeof pk->best, "%s", p);
            }
        }
        free(p);
    }
    closedir(d);
}

char *ci_hub_model_path_in(const char *dir, const char *quant) {
    if (!ci_is_directory(dir)) return NULL;
    if (!quant || !*quant) {
        char *cfg = ci_path_join(dir, "config.json");
        bool hf = ci_file_exists(cfg);
        free(cfg);
        if (hf) return ci_strdup(dir);
        quant = "Q4_K_M";
    }
    gguf_pick pk = {.quant = quant};
    scan_gguf(dir, 0, &pk);
    if (!pk.best[0] || (pk.shards_want && pk.shards_seen != pk.shards_want)) return NULL;
    return ci_strdup(pk.best);
}

/* Reads a ref file: a commit id (hex, at most 64). */
static bool read_ref(const char *repo, const char *rev, char out[65]) {
    char *p = NULL;
    ci_buf b = {0};
    ci_buf_printf(&b, "%s/refs/%s", repo, rev);
    p = ci_buf_take(&b, NULL);
    size_t len = 0;
    char *text = ci_read_file(p, 128, &len, NULL);
    free(p);
    if (!text) return false;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    bool ok = len >= 7 && len <= 64;
    for (size_t i = 0; ok && i < len; i++) ok = (text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f');
    if (ok) memcpy(out, text, len), out[len] = '\0';
    free(text);
    return ok;
}

/* The snapshot refs/main (else the repo's only ref) points to; caller frees. */
static char *hf_snapshot(const char *repo) {
    char commit[65];
    if (!read_ref(repo, "main", commit)) {
        char *refs = ci_path_join(repo, "refs");
        DIR *d = opendir(refs);
        free(refs);
        if (!d) return NULL;
        int n = 0;
        char only[256] = "";
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') n++, snprintf(only, sizeof only, "%s", e->d_name);
        closedir(d);
        if (n != 1 || !read_ref(repo, only, commit)) return NULL;
    }
    ci_buf b = {0};
    ci_buf_printf(&b, "%s/snapshots/%s", repo, commit);
    return ci_buf_take(&b, NULL);
}

static char *resolve_in_caches(const ci_hub_ref *ref) {
    char *path = NULL;
    if (!ref->source_given || ref->source == CI_HUB_HF) {
        char *root = ci_hub_hf_root(), *repo = ci_hub_hf_repo_dir(root, ref), *snap = hf_snapshot(repo);
        if (snap) path = ci_hub_model_path_in(snap, ref->quant);
        free(root), free(repo), free(snap);
    }
    if (!path && (!ref->source_given || ref->source == CI_HUB_MODELSCOPE)) {
        char *root = ci_hub_ms_root();
        for (int k = 0; k < 4 && !path; k++) {
            char *dir = ms_dir(root, k < 2 ? "models/" : "", ref, k % 2 == 0);
            path = ci_hub_model_path_in(dir, ref->quant);
            free(dir);
        }
        free(root);
    }
    return path;
}

bool cinfer_hub_is_model_name(const char *s) {
    struct stat st;
    ci_hub_ref ref;
    return s && stat(s, &st) != 0 && ci_hub_parse_name(s, &ref, NULL) == 0;
}

char *cinfer_resolve_model(const char *name_or_path, cinfer_error *err) {
    if (!name_or_path) {
        ci_error(err, CINFER_ERR_INVALID, "no model given");
        return NULL;
    }
    if (!cinfer_hub_is_model_name(name_or_path)) return ci_strdup(name_or_path);
    ci_hub_ref ref;
    ci_hub_parse_name(name_or_path, &ref, NULL);
    char *path = resolve_in_caches(&ref);
    if (!path)
        ci_error(err, CINFER_ERR_IO,
                 "%s: not a file or folder, and not in the model caches; download it with "
                 "'cinfer pull %s' (or add --pull)",
                 name_or_path, name_or_path);
    return path;
}

/* ----------------------------------------------------------------- list */

static uint64_t g_walk_bytes; /* nftw has no user pointer; list/rm are not re-entrant */
static int g_walk_gguf, g_walk_st;

static int add_size(const char *path, const struct stat *st0, int type, struct FTW *ftw) {
    struct stat st;
    if (type == FTW_SL || type == FTW_F) {
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) g_walk_bytes += (uint64_t)st.st_size;
        if (ci_hub_has_suffix(path, ".gguf")) g_walk_gguf = 1;
        if (ci_hub_has_suffix(path, ".safetensors")) g_walk_st = 1;
    }
    return 0;
}

static void fill_entry(cinfer_hub_entry *e, const char *name, const char *rev, const char *path) {
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->revision, sizeof e->revision, "%s", rev);
    snprintf(e->path, sizeof e->path, "%s", path);
    g_walk_bytes = 0, g_walk_gguf = g_walk_st = 0;
    nftw(path, add_size, 16, FTW_PHYS);
    e->bytes = g_walk_bytes;
    snprintf(e->format, sizeof e->format, "%s", g_walk_st ? "safetensors" : g_walk_gguf ? "gguf" : "other");
}

static void push_entry(cinfer_hub_entry **v, size_t *n, const char *name, const char *rev, const char *path) {
    if (*n >= 4096) return;
    *v = ci_realloc_array(*v, *n + 1, sizeof **v);
    fill_entry(&(*v)[(*n)++], name, rev, path);
}

/* One HF repo: every snapshot, labelled with the refs pointing at it. */
static void list_hf_repo(const char *repo, const char *name, cinfer_hub_entry **v, size_t *n) {
    char *snaps = ci_path_join(repo, "snapshots");
    DIR *d = opendir(snaps);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char label[160] = "";
        char *refs = ci_path_join(repo, "refs");
        DIR *rd = opendir(refs);
        struct dirent *re;
        while (rd && (re = readdir(rd))) {
            char c[65];
            if (re->d_name[0] != '.' && read_ref(repo, re->d_name, c) && !strcmp(c, e->d_name))
                snprintf(label + strlen(label), sizeof label - strlen(label), "%s%.100s", label[0] ? "," : "", re->d_name);
        }
        if (rd) closedir(rd);
        free(refs);
        char rev[160], *path = ci_path_join(snaps, e->d_name);
        snprintf(rev, sizeof rev, "%s @ %.7s", label[0] ? label : "(no ref)", e->d_name);
        push_entry(v, n, name, rev, path);
        free(path);
    }
    if (d) closedir(d);
    free(snaps);
}

static void list_ms_root(const char *base, cinfer_hub_entry **v, size_t *n) {
    DIR *d = opendir(base);
    struct dirent *o;
    while (d && (o = readdir(d))) {
        if (o->d_name[0] == '.' || !strcmp(o->d_name, "models")) continue;
        char *org = ci_path_join(base, o->d_name);
        DIR *od = opendir(org);
        struct dirent *m;
        while (od && (m = readdir(od))) {
            if (m->d_name[0] == '.') continue;
            char *dir = ci_path_join(org, m->d_name), *cfg = ci_path_join(dir, "config.json");
            char *probe = ci_hub_model_path_in(dir, NULL);
            if (probe || ci_file_exists(cfg)) {
                char name[256];
                snprintf(name, sizeof name, "modelscope:%.100s/%.100s", o->d_name, m->d_name);
                push_entry(v, n, name, "master", dir);
            }
            free(probe), free(cfg), free(dir);
        }
        if (od) closedir(od);
        free(org);
    }
    if (d) closedir(d);
}

int cinfer_hub_list(cinfer_hub_entry **out, size_t *n, cinfer_error *err) {
    *out = NULL, *n = 0;
    char *root = ci_hub_hf_root();
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "models--", 8) != 0) continue;
        const char *sep = strstr(e->d_name + 8, "--");
        if (!sep) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s/%s", (int)(sep - e->d_name - 8), e->d_name + 8, sep + 2);
        char *repo = ci_path_join(root, e->d_name);
        list_hf_repo(repo, name, out, n);
        free(repo);
    }
    if (d) closedir(d);
    free(root);
    root = ci_hub_ms_root();
    char *models = ci_path_join(root, "models");
    list_ms_root(models, out, n);
    list_ms_root(root, out, n);
    free(models), free(root);
    return 0;
}

/* --------------------------------------------------------------- remove */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    if (type == FTW_F && S_ISREG(st->st_mode)) g_walk_bytes += (uint64_t)st->st_size;
    return remove(path) == 0 ? 0 : -1;
}

static int rm_tree(const char *path) { return nftw(path, rm_entry, 16, FTW_PHYS | FTW_DEPTH); }

/* Adds the blob names snapshot links point to, to `keep`. */
static char **g_keep;
static size_t g_n_keep;
static int keep_link(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    if (type != FTW_SL) return 0;
    char target[4096];
    ssize_t k = readlink(path, target, sizeof target - 1);
    if (k <= 0) return 0;
    target[k] = '\0';
    const char *base = strrchr(target, '/');
    g_keep = ci_realloc_array(g_keep, g_n_keep + 1, sizeof *g_keep);
    g_keep[g_n_keep++] = ci_strdup(base ? base + 1 : target);
    return 0;
}

static int remove_hf(const char *repo, const char *revision, uint64_t *freed, cinfer_error *err) {
    char commit[65] = "";
    if (revision && !read_ref(repo, revision, commit)) snprintf(commit, sizeof commit, "%.64s", revision);
    char *snaps = ci_path_join(repo, "snapshots");
    int removed = 0;
    DIR *d = opendir(snaps);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (revision && strcmp(e->d_name, commit) != 0)) continue;
        char *p = ci_path_join(snaps, e->d_name);
        rm_tree(p);
        free(p);
        removed++;
    }
    if (d) closedir(d);
    if (!removed) {
        free(snaps);
        return ci_error(err, CINFER_ERR_INVALID, "revision '%s' is not cached", revision ? revision : "");
    }
    /* refs pointing at removed snapshots go too */
    char *refs = ci_path_join(repo, "refs");
    d = opendir(refs);
    while (d && (e = readdir(d))) {
        char c[65];
        if (e->d_name[0] == '.' || !read_ref(repo, e->d_name, c)) continue;
        char *sp = ci_path_join(snaps, c);
        if (!ci_is_directory(sp)) {
            char *rp = ci_path_join(refs, e->d_name);
            unlink(rp);
            free(rp);
        }
        free(sp);
    }
    if (d) closedir(d);
    free(refs);
    g_keep = NULL, g_n_keep = 0;
    nftw(snaps, keep_link, 16, FTW_PHYS);
    free(snaps);
    char *blobs = ci_path_join(repo, "blobs");
    d = opendir(blobs);
    g_walk_bytes = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        bool keep = false;
        for (size_t i = 0; i < g_n_keep && !keep; i++) keep = !strcmp(g_keep[i], e->d_name);
        if (keep) continue;
        char *bp = ci_path_join(blobs, e->d_name);
        struct stat st;
        if (lstat(bp, &st) == 0 && S_ISREG(st.st_mode) && unlink(bp) == 0) g_walk_bytes += (uint64_t)st.st_size;
        free(bp);
    }
    if (d) closedir(d);
    free(blobs);
    for (size_t i = 0; i < g_n_keep; i++) free(g_keep[i]);
    free(g_keep);
    if (g_n_keep == 0) {
        uint64_t b = g_walk_bytes;
        rm_tree(repo); /* nothing left: the whole repo folder */
        g_walk_bytes = b;
    }
    *freed = g_walk_bytes;
    return 0;
}

int cinfer_hub_remove(const char *name, const char *revision, uint64_t *freed, cinfer_error *err) {
    ci_hub_ref ref;
    uint64_t dummy;
    if (!freed) freed = &dummy;
    *freed = 0;
    if (ci_hub_parse_name(name, &ref, err)) return CINFER_ERR_INVALID;
    if (revision && !ci_hub_valid_revision(revision))
        return ci_error(err, CINFER_ERR_INVALID, "'%s' is not a revision", revision);
    if (!ref.source_given || ref.source == CI_HUB_HF) {
        char *root = ci_hub_hf_root(), *repo = ci_hub_hf_repo_dir(root, &ref);
        int rc = 1;
        if (ci_is_directory(repo)) rc = remove_hf(repo, revision, freed, err);
        free(root), free(repo);
        if (rc <= 0) return rc;
    }
    if (!ref.source_given || ref.source == CI_HUB_MODELSCOPE) {
        char *root = ci_hub_ms_root();
        for (int k = 0; k < 4; k++) {
            char *dir = ms_dir(root, k < 2 ? "models/" : "", &ref, k % 2 == 0);
            if (ci_is_directory(dir)) {
                g_walk_bytes = 0;
                int rc = rm_tree(dir);
                *freed = g_walk_bytes;
                free(dir), free(root);
                return rc == 0 ? 0 : ci_error(err, CINFER_ERR_IO, "%s: cannot remove everything", name);
            }
            free(dir);
        }
        free(root);
    }
    return ci_error(err, CINFER_ERR_INVALID, "%s is not in the model caches", name);
}
