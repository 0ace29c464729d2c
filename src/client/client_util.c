/* client_util.c — see client_util.h. */
#include "client/client_util.h"

#include <stdio.h>
#include <string.h>

void ci_printable_excerpt(const char *text, size_t len, size_t max_chars, char *out, size_t out_size) {
    if (out_size == 0) return;
    size_t o = 0;
    size_t limit = len < max_chars ? len : max_chars;
    for (size_t i = 0; i < limit && o + 4 < out_size; i++) {
        unsigned char c = (unsigned char)text[i];
        /* Bytes >= 0x80 stay (UTF-8 text); C0 controls and DEL do not. */
        out[o++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
    }
    if ((len > limit || o + 4 >= out_size) && o + 3 < out_size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

void ci_mask_secret(const char *secret, char *out, size_t out_size) {
    size_t n = secret ? strlen(secret) : 0;
    if (n < 16) {
        snprintf(out, out_size, "%s", n ? "****" : "(none)");
        return;
    }
    /* Provider prefixes ("sk-") and the last four characters are what the
     * vendors' dashboards show too; they identify the key, not reveal it. */
    snprintf(out, out_size, "%.3s...%s", secret, secret + n - 4);
}
