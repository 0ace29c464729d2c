/*
 * webui.h — the chat page that `cinfer serve` answers on `/` (webui/).
 *
 * The assets are bundled by scripts/build-webui.mjs at build time into a C
 * source in the build dir (webui_assets.c); without node or node_modules
 * the build embeds a placeholder page instead (webui_placeholder.c.in).
 */
#ifndef CINFER_SERVER_WEBUI_H
#define CINFER_SERVER_WEBUI_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ci_webui_asset {
    const char *path;               /* "/", "/app.js", ... */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const unsigned char *gz;        /* gzip-encoded; NULL: none */
    size_t gz_len;
    const char *etag;               /* quoted hash of the unencoded bytes (sent weak) */
} ci_webui_asset;

extern const ci_webui_asset ci_webui_assets[];
extern const int ci_webui_n_assets;
extern const bool ci_webui_built;   /* false: the placeholder page */

/* The asset served at `path`, or NULL. */
const ci_webui_asset *ci_webui_find(const char *path);

/* Whether an Accept-Encoding header value accepts gzip (a "gzip" or "*"
 * coding whose q is not 0). NULL: no. */
bool ci_webui_accepts_gzip(const char *accept_encoding);

/* Whether an If-None-Match header value (a list of entity tags, or "*")
 * matches `etag` (weak comparison, as RFC 9110 asks for If-None-Match). */
bool ci_webui_etag_matches(const char *if_none_match, const char *etag);

/* GET / and the page's assets (http.c's route table): 404 with --no-webui. */
struct srv_request;
int api_webui(struct srv_request *r);

#endif
