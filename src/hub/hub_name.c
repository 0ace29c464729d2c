/*
 * hub_name.c — model names, revisions and file names from the hub, checked as
 * untrusted text; which files of a repo a run needs.
 *
 * Everything here ends up in a path under the cache, so the rules are strict
 * allow-lists (the characters the Hugging Face Hub itself allows in repo ids)
 * rather than deny-lists of dangerous spellings.
 */
#include "hub/hub.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

static bool id_char(char c) { return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.'; }

/* One part of ORG/NAME: 1..96 id characters, not starting with '.' or '-',
 * and no ".." (Hub rule; also keeps it from naming a parent folder). */
static bool valid_part(const char *s, size_t n) {
    if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        if (!id_char(s[i])) return false;
        if (s[i] == '.' && i + 1 < n && s[i + 1] == '.') return false;
    }
    return true;
}

int ci_hub_parse_name(const char *s, ci_hub_ref *out, cinfer_error *err) {
    memset(out, 0, sizeof *out);
    const char *p = s;
    if (!strncmp(p, "modelscope:", 11)) out->source = CI_HUB_MODELSCOPE, out->source_given = true, p += 11;
    else if (!strncmp(p, "hf:", 3)) out->source = CI_HUB_HF, out->source_given = true, p += 3;
    else if (!strncmp(p, "hf.co/", 6)) out->source = CI_HUB_HF, out->source_given = true, p += 6;
    const char *slash = strchr(p, '/');
    if (!slash) return ci_error(err, CINFER_ERR_INVALID, "'%s' is not a model name (ORG/NAME[:QUANT])", s);
    const char *colon = strchr(slash, ':');
    size_t name_len = colon ? (size_t)(colon - slash - 1) : strlen(slash + 1);
    if (!valid_part(p, (size_t)(slash - p)) || !valid_part(slash + 1, name_len))
        return ci_error(err, CINFER_ERR_INVALID,
                        "'%s' is not a model name: ORG and NAME take letters, digits, '-', '_', '.' (no '..')", s);
    memcpy(out->org, p, (size_t)(slash - p));
    memcpy(out->name, slash + 1, name_len);
    if (colon) {
        const char *q = colon + 1;
        size_t qn = strlen(q);
        if (qn == 0 || qn > 32) return ci_error(err, CINFER_ERR_INVALID, "'%s': bad quant tag", s);
        for (size_t i = 0; i < qn; i++)
            if (!isalnum((unsigned char)q[i]) && q[i] != '_' && q[i] != '-')
                return ci_error(err, CINFER_ERR_INVALID, "'%s': a quant tag takes letters, digits, '_', '-'", s);
        memcpy(out->quant, q, qn);
    }
    return 0;
}

bool ci_hub_valid_revision(const char *rev) {
    size_t n = strlen(rev);
    if (n == 0 || n > 128 || rev[0] == '/' || rev[0] == '.' || rev[n - 1] == '/') return false;
    for (size_t i = 0; i < n; i++) {
        if (!id_char(rev[i]) && rev[i] != '/') return false;
        if (rev[i] == '.' && (i + 1 < n && rev[i + 1] == '.')) return false;
        if (rev[i] == '/' && (rev[i + 1] == '/' || rev[i + 1] == '.')) return false;
    }
    return true;
}

bool ci_hub_valid_file_name(const char *name, size_t len) {
    if (len == 0 || len > 1024 || strlen(name) != len || name[0] == '/') return false;
    const char *comp = name;
    for (size_t i = 0; i <= len; i++) {
        char c = name[i];
        if (c == '/' || c == '\0') {
            size_t cn = (size_t)(name + i - comp);
            if (cn == 0 || cn > 255) return false;
            if ((cn == 1 && comp[0] == '.') || (cn == 2 && comp[0] == '.' && comp[1] == '.')) return false;
            comp = name + i + 1;
            continue;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f || c == '\\' || c == ':') return false;
    }
    return true;
}

bool ci_hub_glob(const char *pattern, const char *name) { return fnmatch(pattern, name, 0) == 0; }

bool ci_hub_has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Parses a trailing "-NNNNN-of-MMMMM" (before .gguf) off base[0..*len). */
static void split_suffix(const char *base, size_t *len, int *shard, int *n_shards) {
    *shard = *n_shards = 0;
    size_t n = *len;
    if (n < 15) return;
    const char *t = base + n - 15; /* "-00001-of-00003" */
    if (t[0] != '-' || strncmp(t + 6, "-of-", 4) != 0) return;
    int a = 0, b = 0;
    for (int i = 1; i <= 5; i++) {
        if (!isdigit((unsigned char)t[i]) || !isdigit((unsigned char)t[i + 9])) return;
        a = a * 10 + (t[i] - '0');
        b = b * 10 + (t[i + 9] - '0');
    }
    if (a < 1 || b < 1 || a > b) return;
    *shard = a, *n_shards = b, *len = n - 15;
}

bool ci_hub_gguf_match(const char *file, const char *quant, int *shard, int *n_shards) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (!ci_hub_has_suffix(base, ".gguf") || !strncasecmp(base, "mmproj", 6)) return false;
    size_t len = strlen(base) - 5;
    split_suffix(base, &len, shard, n_shards);
    size_t qn = strlen(quant);
    for (size_t i = 0; i + qn <= len; i++) {
        if (strncasecmp(base + i, quant, qn) != 0) continue;
        bool left = i == 0 || base[i - 1] == '-' || base[i - 1] == '.';
        bool right = i + qn == len || base[i + qn] == '-' || base[i + qn] == '.';
        if (left && right) return true;
    }
    return false;
}

/* The files of an HF-layout checkpoint a run reads (top level only, so
 * original/ and other sub-folders stay out). */
static bool run_file(const char *name, bool have_safetensors) {
    if (strchr(name, '/')) return false;
    if (ci_hub_has_suffix(name, ".json") || ci_hub_has_suffix(name, ".jinja") || !strcmp(name, "merges.txt") ||
        !strcmp(name, "tokenizer.model"))
        return true;
    if (ci_hub_has_suffix(name, ".safetensors")) return true;
    return !have_safetensors && ci_hub_has_suffix(name, ".bin") && !strncmp(name, "pytorch_model", 13);
}

static size_t stem_len(const char *file) {
    size_t len = strlen(file) - 5;
    int a, b;
    split_suffix(file, &len, &a, &b);
    return len;
}

/* Picks the GGUF files for `quant`: among matching stems the shortest (so
 * "Q4_K_M" prefers "X-Q4_K_M.gguf" over "X-UD-Q4_K_M.gguf"), all its shards. */
static int select_gguf(ci_hub_file *files, size_t n, const char *quant, cinfer_error *err) {
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < n; i++) {
        int s, ns;
        if (!ci_hub_gguf_match(files[i].name, quant, &s, &ns)) continue;
        size_t sl = stem_len(files[i].name);
        if (!best || sl < best_len || (sl == best_len && strncmp(files[i].name, best, sl) < 0))
            best = files[i].name, best_len = sl;
    }
    if (!best) return ci_error(err, CINFER_ERR_INVALID, "no GGUF file for quant '%s'", quant);
    int want = 0, got = 0;
    for (size_t i = 0; i < n; i++) {
        int s, ns;
        if (!ci_hub_gguf_match(files[i].name, quant, &s, &ns)) continue;
        if (stem_len(files[i].name) != best_len || strncmp(files[i].name, best, best_len) != 0) continue;
        files[i].selected = true;
        want = ns, got++;
    }
    if (want > 0 && got != want)
        return ci_error(err, CINFER_ERR_FORMAT, "quant '%s': %d of %d split files listed by the hub", quant, got,
                        want);
    return 0;
}

/* Distinct quant tags present, for an error message. */
static void list_ggufs(const ci_hub_file *files, size_t n, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 2 < cap; i++) {
        if (!ci_hub_has_suffix(files[i].name, ".gguf")) continue;
        int w = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", files[i].name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

int ci_hub_select(ci_hub_file *files, size_t n, const ci_hub_ref *ref, const cinfer_hub_options *o,
                  cinfer_error *err) {
    bool have_st = false, have_gguf = false;
    for (size_t i = 0; i < n; i++) {
        files[i].selected = false;
        if (!strchr(files[i].name, '/') && ci_hub_has_suffix(files[i].name, ".safetensors")) have_st = true;
        if (ci_hub_has_suffix(files[i].name, ".gguf")) have_gguf = true;
    }
    if (o->n_include > 0) {
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < o->n_include; k++)
                if (ci_hub_glob(o->include[k], files[i].name)) files[i].selected = true;
    } else if (ref->quant[0] || (!have_st && have_gguf)) {
        const char *quant = ref->quant[0] ? ref->quant : "Q4_K_M"; /* llama.cpp's -hf default */
        int rc = select_gguf(files, n, quant, err);
        if (rc) {
            char names[300];
            list_ggufs(files, n, names, sizeof names);
            if (!names[0]) return ci_error(err, CINFER_ERR_INVALID, "the repo has no GGUF files (drop ':%s')", quant);
            if (!ref->quant[0]) ci_error_prefix(err, "name a quant with ORG/NAME:QUANT (files: %s)", names);
            return rc;
        }
    } else {
        for (size_t i = 0; i < n; i++) files[i].selected = run_file(files[i].name, have_st);
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < o->n_exclude && files[i].selected; k++)
            if (ci_hub_glob(o->exclude[k], files[i].name)) files[i].selected = false;
        count += files[i].selected;
    }
    if (count == 0) return ci_error(err, CINFER_ERR_INVALID, "no file of the repo matches the selection");
    return 0;
}
