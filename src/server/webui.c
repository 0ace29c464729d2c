/*
 * webui.c — serves the embedded chat page (webui.h): `/`, `/app.js`,
 * `/app.css`, `/favicon.svg`.
 *
 * Each asset goes out gzip-encoded when the client accepts it (the bytes
 * were compressed at build time), with an ETag (weak: both encodings share
 * it) and `Cache-Control: no-cache`, so a browser revalidates and gets a
 * 304 without the body; the paths carry no content hash, so nothing may be
 * cached without asking.
 * Every response carries a Content-Security-Policy that allows scripts,
 * styles, images and fetches from this origin only and no inline script:
 * were model output ever to slip past the page's sanitiser, a script in it
 * could neither run nor send anything anywhere.
 */
#include "server/webui.h"
#include "server/server.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char CSP[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ci_webui_asset *ci_webui_find(const char *path) {
    for (int i = 0; i < ci_webui_n_assets; i++)
        if (strcmp(ci_webui_assets[i].path, path) == 0) return &ci_webui_assets[i];
    return NULL;
}

/* The next comma-separated element of a header list: [*start, *end),
 * whitespace trimmed; returns the position after it, NULL at the end. */
static const char *next_element(const char *p, const char **start, const char **end) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (!*p) return NULL;
    *start = p;
    while (*p && *p != ',') p++;
    const char *e = p;
    while (e > *start && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *end = e;
    return p;
}

/* q of a coding's parameters (";q=0.5"): 1 when absent. */
static bool q_is_zero(const char *params, const char *end) {
    const char *q = params;
    while (q < end && (q = memchr(q, ';', (size_t)(end - q))) != NULL) {
        q++;
        while (q < end && *q == ' ') q++;
        if (end - q >= 2 && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
            q += 2;
            /* "0", "0.", "0.000": zero; anything with a non-zero digit is not */
            if (q >= end || *q != '0') return false;
            for (q++; q < end && (*q == '.' || *q == '0'); q++) {}
            return q >= end || *q == ' ' || *q == ';';
        }
    }
    return false;
}

bool ci_webui_accepts_gzip(const char *accept_encoding) {
    if (!accept_encoding) return false;
    const char *p = accept_encoding, *s, *e;
    while ((p = next_element(p, &s, &e)) != NULL) {
        const char *name_end = s;
        while (name_end < e && *name_end != ';' && *name_end != ' ') name_end++;
        size_t n = (size_t)(name_end - s);
        bool gzip = (n == 4 && strncasecmp(s, "gzip", 4) == 0) || (n == 6 && strncasecmp(s, "x-gzip", 6) == 0);
        if (gzip || (n == 1 && *s == '*')) return !q_is_zero(name_end, e);
    }
    return false;
}

bool ci_webui_etag_matches(const char *if_none_match, const char *etag) {
    if (!if_none_match) return false;
    const char *p = if_none_match, *s, *e;
    while ((p = next_element(p, &s, &e)) != NULL) {
        if (e - s == 1 && *s == '*') return true;
        if (e - s > 2 && s[0] == 'W' && s[1] == '/') s += 2; /* weak comparison */
        if ((size_t)(e - s) == strlen(etag) && memcmp(s, etag, (size_t)(e - s)) == 0) return true;
    }
    return false;
}

static void common_headers(struct MHD_Response *resp, const ci_webui_asset *a) {
    /* weak: the gzip and the identity encodings share it (RFC 9110 8.8.1) */
    char etag[80];
    snprintf(etag, sizeof etag, "W/%s", a->etag);
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "Vary", "Accept-Encoding");
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

int api_webui(srv_request *r) {
    const ci_webui_asset *a = ci_webui_find(r->url);
    if (r->srv->opt.no_webui || !a)
        return srv_send_errorf(r, 404, NULL, "Invalid URL (GET %s): no such route%s", r->url,
                               r->srv->opt.no_webui ? " (the web UI is off: --no-webui)" : "");
    struct MHD_Response *resp;
    int status = 200;
    if (ci_webui_etag_matches(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match"), a->etag)) {
        status = 304;
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (a->gz && ci_webui_accepts_gzip(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept-Encoding"))) {
        resp = MHD_create_response_from_buffer(a->gz_len, (void *)a->gz, MHD_RESPMEM_PERSISTENT);
        if (resp) MHD_add_response_header(resp, "Content-Encoding", "gzip");
    } else {
        resp = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    if (status == 200) MHD_add_response_header(resp, "Content-Type", a->content_type);
    common_headers(resp, a);
    return srv_queue(r, status, resp);
}
