/*
 * cors.c — Cross-Origin Resource Sharing for browser clients.
 *
 * --allowed-origins lists the origins whose pages may call the server
 * ("*": any; default: none, so a page on another site cannot read answers
 * even when the server listens on localhost). An allowed Origin gets
 * Access-Control-Allow-Origin on every response — JSON, errors and streams
 * alike (srv_queue adds it) — with `Vary: Origin` so caches keep answers
 * per origin. Preflights (OPTIONS) are answered before authentication,
 * since browsers send them without credentials; the real request is then
 * authenticated as usual.
 */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ORIGINS 64

static void add_origin(server *s, const char *o, size_t n) {
    while (n && (*o == ' ' || *o == '\t')) o++, n--;
    while (n && (o[n - 1] == ' ' || o[n - 1] == '\t' || o[n - 1] == '/')) n--;
    if (!n || s->n_origins == MAX_ORIGINS) return;
    if (!s->origins) s->origins = ci_calloc(MAX_ORIGINS, sizeof *s->origins);
    s->origins[s->n_origins++] = ci_strndup(o, n);
}

void srv_cors_init(server *s, const char *spec) {
    if (!spec || !*spec) return;
    /* vLLM's form is a JSON list ('["*"]'); a comma list is accepted too */
    json_t *list = spec[0] == '[' ? json_loads(spec, 0, NULL) : NULL;
    if (json_is_array(list)) {
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
            if (json_is_string(v)) add_origin(s, json_string_value(v), json_string_length(v));
        json_decref(list);
        return;
    }
    json_decref(list);
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        add_origin(s, p, n);
        p += n + (comma != NULL);
    }
}

void srv_cors_free(server *s) {
    for (int i = 0; i < s->n_origins; i++) free(s->origins[i]);
    free(s->origins);
    s->origins = NULL;
    s->n_origins = 0;
}

/* The value of Access-Control-Allow-Origin for this request, or NULL. */
static const char *allowed_origin(const srv_request *r) {
    if (!r->conn || r->srv->n_origins == 0) return NULL;
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (!origin) return NULL;
    for (int i = 0; i < r->srv->n_origins; i++) {
        const char *o = r->srv->origins[i];
        if (strcmp(o, "*") == 0) return "*";
        if (strcasecmp(o, origin) == 0) return origin;
    }
    return NULL;
}

void srv_cors_headers(const srv_request *r, struct MHD_Response *resp) {
    if (r->srv->n_origins == 0) return;
    /* the answer depends on Origin whenever origins are configured */
    MHD_add_response_header(resp, "Vary", "Origin");
    const char *o = allowed_origin(r);
    if (o) MHD_add_response_header(resp, "Access-Control-Allow-Origin", o);
}

int srv_cors_preflight(srv_request *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    if (allowed_origin(r)) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        /* the headers the SDKs send, and whatever else this page asks for:
         * the origin is trusted, its headers change nothing server-side */
        const char *asked = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
        ci_buf h = {0};
        ci_buf_puts(&h, "authorization, content-type, x-api-key, anthropic-version, anthropic-beta, "
                                "anthropic-dangerous-direct-browser-access, openai-beta, openai-organization, "
                                "openai-project, x-stainless-arch, x-stainless-lang, x-stainless-os, "
                                "x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, "
                                "x-stainless-runtime-version, x-stainless-timeout, x-stainless-helper-method, "
                                "x-stainless-async, x-stainless-raw-response, x-stainless-poll-helper, x-request-id");
        if (asked && strlen(asked) < 2048) ci_buf_printf(&h, ", %s", asked);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", h.data);
        ci_buf_free(&h);
        MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
    }
    return srv_queue(r, 204, resp);
}
