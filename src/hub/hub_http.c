/*
 * hub_http.c — the HTTP exchanges of a pull, with libcurl easy handles.
 *
 * Redirects are followed here, not by libcurl, so that each hop decides on
 * its own whether the token goes with it: only to the endpoint's origin
 * (scheme://host:port), never to the storage host a 302 points at. That is
 * what huggingface_hub gets from requests, which drops Authorization when a
 * redirect changes host; the storage URL is pre-signed. Same-host redirects
 * (the Hub's relative 307s) keep the token, as huggingface_hub's
 * follow_relative_redirects does.
 *
 * A download appends to `<blob>.incomplete` and asks for the rest with Range,
 * so an interrupted transfer (dropped connection, Ctrl-C, crash) resumes where
 * it stopped. The body is bounded by the size the metadata declared — a server
 * that sends more is cut off and the transfer fails — and by a stall timeout.
 * Failures that can pass (network, 429, 5xx) are retried with exponential
 * backoff or the server's Retry-After, capped by max_wait_s.
 */
#include "hub/hub.h"
#include "hub/sha.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_REDIRECTS 5

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* scheme://host[:port] of an http(s) URL, lower-cased; false for others or
 * URLs carrying user info. */
static bool url_origin(const char *url, char *out, size_t cap) {
    const char *p = strstr(url, "://");
    if (!p || (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))) return false;
    const char *end = p + 3 + strcspn(p + 3, "/?#");
    if (memchr(p + 3, '@', (size_t)(end - p - 3)) || (size_t)(end - url) >= cap || end == p + 3) return false;
    for (size_t i = 0; url + i < end; i++) out[i] = (char)tolower((unsigned char)url[i]);
    out[end - url] = '\0';
    return true;
}

void ci_hub_http_init(ci_hub_http *h, const char *endpoint, const char *token) {
    memset(h, 0, sizeof *h);
    h->token = token && *token ? token : NULL;
    if (!url_origin(endpoint, h->token_host, sizeof h->token_host)) h->token = NULL;
    h->stall_timeout_s = 30;
    h->max_retries = 5;
    h->max_wait_s = 30;
}

char *ci_hub_url_path(const char *s) {
    ci_buf b = {0};
    ci_buf_puts(&b, "");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~/", c)) ci_buf_putc(&b, (char)c);
        else ci_buf_printf(&b, "%%%02X", c);
    }
    return ci_buf_take(&b, NULL);
}

/* One exchange: state shared by the curl callbacks. */
typedef struct hop {
    CURL *curl;
    long status;
    bool status_seen;
    char location[2048];
    double retry_after;                 /* seconds, -1 absent */
    int64_t range_start;                /* Content-Range start, -1 absent */
    ci_hub_headers *hdr;                /* NULL: not captured on this hop */
    /* body sinks */
    FILE *file;
    uint64_t have, limit;               /* bytes in the file; the most allowed */
    bool over, restarted;
    ci_buf *text;
    size_t text_max;
    ci_hub_bytes_fn on_bytes;
    void *user;
    const volatile sig_atomic_t *cancel;
} hop;

static void copy_etag(char *dst, size_t cap, const char *v, size_t n) {
    if (n >= 2 && v[0] == 'W' && v[1] == '/') v += 2, n -= 2;
    while (n && *v == '"') v++, n--;
    while (n && v[n - 1] == '"') n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud) {
    hop *h = ud;
    size_t n = size * nitems, len = n;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    if (len > 5 && !strncmp(line, "HTTP/", 5)) { /* a new response (after 100-continue etc.) */
        const char *sp = memchr(line, ' ', len);
        h->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        h->location[0] = '\0';
        return n;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon) return n;
    size_t kn = (size_t)(colon - line);
    const char *v = colon + 1;
    while (v < line + len && (*v == ' ' || *v == '\t')) v++;
    size_t vn = (size_t)(line + len - v);
    char val[2048];
    if (vn >= sizeof val) vn = sizeof val - 1;
    memcpy(val, v, vn);
    val[vn] = '\0';
#define IS(k) (kn == strlen(k) && !strncasecmp(line, k, kn))
    if (IS("location")) snprintf(h->location, sizeof h->location, "%s", val);
    else if (IS("retry-after")) h->retry_after = strtod(val, NULL);
    else if (IS("content-range") && !strncmp(val, "bytes ", 6)) h->range_start = strtoll(val + 6, NULL, 10);
    else if (h->hdr && IS("etag")) copy_etag(h->hdr->etag, sizeof h->hdr->etag, val, vn);
    else if (h->hdr && IS("x-linked-etag")) copy_etag(h->hdr->linked_etag, sizeof h->hdr->linked_etag, val, vn);
    else if (h->hdr && IS("x-repo-commit")) snprintf(h->hdr->repo_commit, sizeof h->hdr->repo_commit, "%.63s", val);
    else if (h->hdr && IS("x-linked-size")) h->hdr->linked_size = strtoll(val, NULL, 10);
#undef IS
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    hop *h = ud;
    size_t n = size * nmemb;
    if (h->status < 200 || h->status >= 300) return n; /* redirect or error page: ignored */
    if (h->text) {
        if (h->text->len + n > h->text_max) return h->over = true, 0;
        ci_buf_append(h->text, data, n);
        return n;
    }
    if (!h->restarted) { /* first bytes: does the server continue where we are? */
        h->restarted = true;
        if (h->status != 206 || h->range_start != (int64_t)h->have) {
            if (h->status == 206) return 0; /* a range we did not ask for */
            if (fflush(h->file) != 0 || ftruncate(fileno(h->file), 0) != 0) return 0;
            rewind(h->file);
            h->have = 0;
        }
    }
    if (h->have + n > h->limit) return h->over = true, 0;
    if (fwrite(data, 1, n, h->file) != n) return 0;
    h->have += n;
    if (h->on_bytes) h->on_bytes(h->user, h->have);
    return n;
}

static int on_xfer(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    hop *h = ud;
    return h->cancel && *h->cancel ? 1 : 0;
}

/* Resolves a Location against the current URL (absolute, or origin-relative). */
static bool next_url(const char *cur, const char *loc, char *out, size_t cap) {
    char origin[512];
    if (!strncasecmp(loc, "http://", 7) || !strncasecmp(loc, "https://", 8))
        return url_origin(loc, origin, sizeof origin) && (size_t)snprintf(out, cap, "%s", loc) < cap;
    if (loc[0] != '/' || loc[1] == '/' || !url_origin(cur, origin, sizeof origin)) return false;
    return (size_t)snprintf(out, cap, "%s%s", origin, loc) < cap;
}

typedef enum { OUT_OK, OUT_RETRY, OUT_FAIL } outcome;

/* Runs one request and its redirects. Sets err on failure. */
static outcome exchange(const ci_hub_http *hc, const char *url, hop *h, const char *what, double *wait,
                        cinfer_error *err) {
    char cur[2048];
    snprintf(cur, sizeof cur, "%s", url);
    ci_hub_headers *capture = h->hdr; /* NULL for metadata requests */
    for (int r = 0; r <= MAX_REDIRECTS; r++) {
        char origin[512];
        if (!url_origin(cur, origin, sizeof origin)) {
            ci_error(err, CINFER_ERR_FORMAT, "%s: refusing URL '%.200s' (http or https only)", what, cur);
            return OUT_FAIL;
        }
        CURL *c = h->curl;
        curl_easy_reset(c);
        struct curl_slist *hl = curl_slist_append(NULL, "Accept-Encoding: identity");
        if (hc->token && !strcmp(origin, hc->token_host)) {
            ci_buf auth = {0};
            ci_buf_printf(&auth, "Authorization: Bearer %s", hc->token);
            hl = curl_slist_append(hl, auth.data);
            memset(auth.data, 0, auth.len);
            ci_buf_free(&auth);
        }
        char range[64];
        if (h->file && h->have > 0) {
            snprintf(range, sizeof range, "%llu-", (unsigned long long)h->have);
            curl_easy_setopt(c, CURLOPT_RANGE, range);
        }
        curl_easy_setopt(c, CURLOPT_URL, cur);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "cinfer/" CINFER_VERSION);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(hc->stall_timeout_s > 1 ? hc->stall_timeout_s : 1));
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        h->status = 0, h->location[0] = '\0', h->retry_after = -1, h->range_start = -1, h->restarted = false;
        /* the hub's answers (not the storage host's) are the ones checked; after
         * a same-host redirect the last of them counts */
        h->hdr = capture && !strcmp(origin, hc->token_host) ? capture : NULL;
        if (h->hdr) memset(h->hdr, 0, sizeof *h->hdr), h->hdr->linked_size = -1;
        CURLcode cc = curl_easy_perform(c);
        curl_slist_free_all(hl);
        if (h->cancel && *h->cancel) {
            ci_error(err, CINFER_ERR_IO, "%s: interrupted (the partial download stays for a resume)", what);
            return OUT_FAIL;
        }
        if (h->over) {
            ci_error(err, CINFER_ERR_FORMAT, "%s: the server sent more bytes than the hub declared", what);
            return OUT_FAIL;
        }
        if (cc != CURLE_OK) {
            ci_error(err, CINFER_ERR_IO, "%s: %s", what, curl_easy_strerror(cc));
            *wait = -1;
            return OUT_RETRY;
        }
        long st = h->status;
        if (st >= 300 && st < 400) {
            if (!next_url(cur, h->location, cur, sizeof cur)) {
                ci_error(err, CINFER_ERR_FORMAT, "%s: HTTP %ld with a bad Location", what, st);
                return OUT_FAIL;
            }
            continue;
        }
        if (st >= 200 && st < 300) return OUT_OK;
        *wait = h->retry_after;
        if (st == 429 || st >= 500 || st == 408) {
            ci_error(err, CINFER_ERR_IO, "%s: HTTP %ld", what, st);
            return OUT_RETRY;
        }
        if (st == 401 || st == 403)
            ci_error(err, CINFER_ERR_IO,
                     "%s: HTTP %ld: the repo is gated or private — %s", what, st,
                     hc->token ? "the token (HF_TOKEN or $HF_HOME/token) was refused; check access on the repo page"
                               : "accept its terms on the hub and set HF_TOKEN (or run 'huggingface-cli login')");
        else if (st == 404) ci_error(err, CINFER_ERR_IO, "%s: HTTP 404: not found (check the name and revision)", what);
        else if (st == 416) {
            ci_error(err, CINFER_ERR_IO, "%s: HTTP 416: the partial file is larger than the server's", what);
            return OUT_RETRY;
        } else ci_error(err, CINFER_ERR_IO, "%s: HTTP %ld", what, st);
        return OUT_FAIL;
    }
    ci_error(err, CINFER_ERR_IO, "%s: more than %d redirects", what, MAX_REDIRECTS);
    return OUT_FAIL;
}

/* Sleeps `s` seconds in short slices so Ctrl-C stays prompt. */
static void pause_for(double s, const volatile sig_atomic_t *cancel) {
    double end = ci_now_seconds() + s;
    while (ci_now_seconds() < end && !(cancel && *cancel)) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static double backoff(const ci_hub_http *hc, int attempt, double retry_after) {
    double w = retry_after >= 0 ? retry_after : 0.5 * (double)(1 << (attempt < 10 ? attempt : 10));
    return w > hc->max_wait_s ? hc->max_wait_s : w;
}

char *ci_hub_get_text(const ci_hub_http *hc, const char *url, size_t max, cinfer_error *err) {
    pthread_once(&g_curl_once, curl_init_once);
    ci_buf body = {0};
    hop h = {.curl = curl_easy_init(), .text = &body, .text_max = max, .cancel = hc->cancel};
    if (!h.curl) {
        ci_error(err, CINFER_ERR_NOMEM, "curl_easy_init failed");
        return NULL;
    }
    for (int attempt = 0;; attempt++) {
        double wait = -1;
        body.len = 0;
        outcome o = exchange(hc, url, &h, "metadata", &wait, err);
        if (o == OUT_OK) break;
        if (o == OUT_FAIL || attempt >= hc->max_retries) {
            if (h.over) ci_error(err, CINFER_ERR_LIMIT, "metadata: more than %zu bytes", max);
            curl_easy_cleanup(h.curl);
            ci_buf_free(&body);
            return NULL;
        }
        pause_for(backoff(hc, attempt, wait), hc->cancel);
    }
    curl_easy_cleanup(h.curl);
    ci_buf_putc(&body, '\0');
    body.len--;
    return ci_buf_take(&body, NULL);
}

int ci_hub_fetch(const ci_hub_http *hc, const char *url, const char *part, uint64_t size, ci_hub_headers *hdr,
                 ci_hub_bytes_fn on_bytes, void *user, cinfer_hub_progress_fn retry_fn, void *retry_user,
                 const char *file, cinfer_error *err) {
    pthread_once(&g_curl_once, curl_init_once);
    FILE *f = fopen(part, "ab");
    if (!f) return ci_error(err, CINFER_ERR_IO, "%s: %s", part, strerror(errno));
    struct stat st;
    uint64_t have = fstat(fileno(f), &st) == 0 ? (uint64_t)st.st_size : 0;
    if (have > size) { /* not ours to continue: start over */
        if (ftruncate(fileno(f), 0) != 0) have = size;
        else have = 0;
    }
    hop h = {.curl = curl_easy_init(), .file = f, .have = have, .limit = size, .hdr = hdr, .on_bytes = on_bytes,
             .user = user, .cancel = hc->cancel};
    int rc = 0;
    memset(hdr, 0, sizeof *hdr);
    hdr->linked_size = -1;
    /* a complete partial file (a crash between the last byte and the rename)
     * needs no request: the caller's hash check decides */
    for (int attempt = 0; h.curl && !(h.have == size && size > 0); attempt++) {
        double wait = -1;
        outcome o = exchange(hc, url, &h, file, &wait, err);
        if (o == OUT_OK && h.have == size) break;
        if (o == OUT_OK) {
            ci_error(err, CINFER_ERR_IO, "%s: the body ended after %llu of %llu bytes", file,
                     (unsigned long long)h.have, (unsigned long long)size);
            o = OUT_RETRY;
        }
        if (o == OUT_FAIL || attempt >= hc->max_retries) {
            rc = err ? err->code : CINFER_ERR_IO;
            if (!rc) rc = CINFER_ERR_IO;
            break;
        }
        double w = backoff(hc, attempt, wait);
        if (retry_fn) {
            cinfer_hub_progress p = {.event = CINFER_HUB_RETRY, .file = file, .file_done = h.have,
                                     .file_total = size, .wait_s = w, .note = err ? err->message : ""};
            retry_fn(&p, retry_user);
        }
        pause_for(w, hc->cancel);
        if (hc->cancel && *hc->cancel) {
            rc = ci_error(err, CINFER_ERR_IO, "%s: interrupted (the partial download stays for a resume)", file);
            break;
        }
    }
    if (!h.curl) rc = ci_error(err, CINFER_ERR_NOMEM, "curl_easy_init failed");
    else curl_easy_cleanup(h.curl);
    if (fclose(f) != 0 && rc == 0) rc = ci_error(err, CINFER_ERR_IO, "%s: %s", part, strerror(errno));
    if (h.over) unlink(part); /* a lying server's bytes are not worth resuming */
    return rc;
}

int ci_hub_hash_file(const char *path, bool git_sha1, char out[65], cinfer_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return ci_error(err, CINFER_ERR_IO, "%s: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = ci_malloc(CHUNK);
    ci_sha256 s256;
    ci_sha1 s1;
    ci_sha256_init(&s256);
    ci_sha1_init(&s1);
    if (git_sha1) { /* git blob id: sha1("blob <size>\0" + bytes) */
        struct stat st;
        char head[48];
        int n = snprintf(head, sizeof head, "blob %lld", fstat(fileno(f), &st) == 0 ? (long long)st.st_size : 0LL);
        ci_sha1_update(&s1, head, (size_t)n + 1);
    }
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        if (git_sha1) ci_sha1_update(&s1, buf, n);
        else ci_sha256_update(&s256, buf, n);
    }
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) return ci_error(err, CINFER_ERR_IO, "%s: read error", path);
    uint8_t d[32];
    if (git_sha1) ci_sha1_final(&s1, d), ci_hex(d, 20, out);
    else ci_sha256_final(&s256, d), ci_hex(d, 32, out);
    return 0;
}
