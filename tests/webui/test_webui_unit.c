/* test_webui_unit.c — the header parsing of src/server/webui.c
 * (Accept-Encoding, If-None-Match) and the embedded asset table. */
#include "server/webui.h"
#include "test.h"

#include <zlib.h>

static void test_accepts_gzip(void) {
    CHECK(ci_webui_accepts_gzip("gzip"));
    CHECK(ci_webui_accepts_gzip("gzip, deflate, br"));
    CHECK(ci_webui_accepts_gzip("br;q=1.0, GZIP;q=0.5"));
    CHECK(ci_webui_accepts_gzip("x-gzip"));
    CHECK(ci_webui_accepts_gzip("*"));
    CHECK(ci_webui_accepts_gzip("deflate , gzip ;q=0.001"));
    CHECK(!ci_webui_accepts_gzip(NULL));
    CHECK(!ci_webui_accepts_gzip(""));
    CHECK(!ci_webui_accepts_gzip("identity"));
    CHECK(!ci_webui_accepts_gzip("deflate, br"));
    CHECK(!ci_webui_accepts_gzip("gzip;q=0"));
    CHECK(!ci_webui_accepts_gzip("gzip; q=0.000, identity"));
    CHECK(!ci_webui_accepts_gzip("*;q=0"));
    CHECK(!ci_webui_accepts_gzip("gzipx, xgzip"));
}

static void test_etag(void) {
    const char *tag = "\"abc123\"";
    CHECK(ci_webui_etag_matches("\"abc123\"", tag));
    CHECK(ci_webui_etag_matches("W/\"abc123\"", tag));
    CHECK(ci_webui_etag_matches("\"zzz\", W/\"abc123\"", tag));
    CHECK(ci_webui_etag_matches("*", tag));
    CHECK(!ci_webui_etag_matches(NULL, tag));
    CHECK(!ci_webui_etag_matches("", tag));
    CHECK(!ci_webui_etag_matches("\"abc12\"", tag));
    CHECK(!ci_webui_etag_matches("\"abc1234\"", tag));
    CHECK(!ci_webui_etag_matches("abc123", tag));
}

/* Each asset's gzip bytes inflate (zlib, independent of the build script) to
 * its identity bytes; "/" is HTML and there is no asset twice. */
static void test_assets(void) {
    CHECK(ci_webui_find("/") != NULL);
    CHECK(ci_webui_find("/nope") == NULL);
    for (int i = 0; i < ci_webui_n_assets; i++) {
        const ci_webui_asset *a = &ci_webui_assets[i];
        CHECK(ci_webui_find(a->path) == a);
        CHECK(a->etag[0] == '"' && a->etag[strlen(a->etag) - 1] == '"');
        if (!a->gz) continue;
        static unsigned char out[4 << 20];
        z_stream z = {0};
        CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
        z.next_in = (unsigned char *)a->gz;
        z.avail_in = (unsigned)a->gz_len;
        z.next_out = out;
        z.avail_out = sizeof out;
        CHECK_MSG(inflate(&z, Z_FINISH) == Z_STREAM_END, "%s", a->path);
        CHECK_MSG(z.total_out == a->len && memcmp(out, a->data, a->len) == 0, "%s: gzip differs", a->path);
        inflateEnd(&z);
    }
    printf("web UI %s, %d assets\n", ci_webui_built ? "built" : "NOT built (placeholder)", ci_webui_n_assets);
}

int main(void) {
    test_accepts_gzip();
    test_etag();
    test_assets();
    TEST_MAIN_END();
}
