/*
 * tok_unicode.c — the Unicode facts the tokenizer needs, in one place.
 *
 * Why hand-written instead of asking a regex engine: HF tokenizers gets its
 * notion of whitespace from Rust (char::is_whitespace, regex \s) and
 * Oniguruma, which both use the Unicode White_Space property. PCRE2 and
 * JavaScript disagree with it on U+0085, U+180E and U+FEFF, so the exact set
 * is spelled out here and reused by the regex translator.
 *
 * UTF-8 repair follows Python's bytes.decode(errors="replace"): one U+FFFD
 * per maximal subpart of an ill-formed sequence (Unicode §3.9, "best
 * practice"), which is also what WHATWG TextDecoder does.
 *
 * NFC: utf8proc does the work; a per-code-point quick check (a bitmap over
 * the BMP, built once) lets already-normalized text skip it entirely.
 */
#include "tokenizer/tokenizer_internal.h"

#include <pthread.h>
#include <string.h>
#include <utf8proc.h>

bool ci_uni_is_white_space(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool ci_uni_is_word_char(uint32_t cp) {
    /* Rust regex's Unicode \w: Alphabetic, Mark, Decimal_Number,
     * Connector_Punctuation, Join_Control. Alphabetic is the letter
     * categories, Nl and Other_Alphabetic; the Other_Alphabetic code points
     * outside the Mark categories are the circled/squared letters below. */
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return true;
    if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
        (cp >= 0x1F170 && cp <= 0x1F189))
        return true;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

/* ------------------------------------------------------------------ UTF-8 */

size_t ci_utf8_decode_valid(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3) return 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4) return 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
              (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

size_t ci_utf8_invalid_prefix_len(const uint8_t *s, size_t n, bool at_end) {
    /* s[0] does not start a valid, complete character. Count the lead byte
     * plus the continuation bytes that are still allowed after it: that is
     * the maximal subpart Python replaces with one U+FFFD. */
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c < 0xE0) need = 1;
    else if (c >= 0xE0 && c < 0xF0) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c < 0xF5) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1; /* 80..C1, F5..FF: never a lead byte */
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) return at_end ? i : 0; /* truncated; more bytes may still come */
        uint8_t b = s[i];
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) return i;
    }
    return i; /* unreachable for a call on an invalid start */
}

bool ci_utf8_is_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = ci_utf8_decode_valid(s + i, n - i, &cp);
        if (!k) return false;
        i += k;
    }
    return true;
}

void ci_utf8_append_lossy(ci_buf *out, const uint8_t *s, size_t n) {
    static const char replacement[] = "\xEF\xBF\xBD";
    size_t i = 0, run = 0;
    if (n == 0) return; /* s may be NULL then (an empty decode) */
    ci_buf_reserve(out, n);
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = ci_utf8_decode_valid(s + i, n - i, &cp);
        if (k) {
            i += k;
            continue;
        }
        ci_buf_append(out, s + run, i - run);
        ci_buf_append(out, replacement, 3);
        i += ci_utf8_invalid_prefix_len(s + i, n - i, true);
        run = i;
    }
    ci_buf_append(out, s + run, n - run);
}

/* -------------------------------------------------------------------- NFC */

static uint8_t nfc_bmp_flags[65536 / 8];
static pthread_once_t nfc_once = PTHREAD_ONCE_INIT;

static bool nfc_flag_compute(uint32_t cp) {
    if (cp < 0x300) return false; /* nothing below U+0300 combines or decomposes unstably */
    if ((cp >= 0x1100 && cp <= 0x11FF)) return true; /* Hangul jamo compose algorithmically */
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->combining_class != 0) return true;
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return true; /* second of a pair */
    if (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) {
        /* Canonical decomposition: stable under NFC unless it is excluded
         * from recomposition, a singleton, or non-starter; check directly. */
        uint8_t buf[4], *out = NULL;
        utf8proc_ssize_t len = utf8proc_encode_char((utf8proc_int32_t)cp, buf);
        utf8proc_ssize_t olen =
            utf8proc_map(buf, len, &out, (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        bool changed = olen != len || (out && memcmp(out, buf, (size_t)len) != 0);
        free(out);
        return changed;
    }
    return false;
}

static void nfc_init(void) {
    for (uint32_t cp = 0x300; cp < 0x10000; cp++)
        if (!(cp >= 0xD800 && cp < 0xE000) && nfc_flag_compute(cp)) nfc_bmp_flags[cp >> 3] |= (uint8_t)(1u << (cp & 7));
}

bool ci_nfc_might_change(const uint8_t *s, size_t n) {
    pthread_once(&nfc_once, nfc_init);
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c < 0xCC) { /* < U+0300 (lead bytes up to CB cover U+02FF) */
            i += c < 0x80 ? 1 : 2;
            continue;
        }
        uint32_t cp;
        size_t k = ci_utf8_decode_valid(s + i, n - i, &cp);
        if (!k) return true; /* not expected: input is sanitized */
        i += k;
        if (cp < 0x10000) {
            if (nfc_bmp_flags[cp >> 3] & (1u << (cp & 7))) return true;
        } else {
            const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
            if (p->combining_class != 0 || (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) ||
                p->decomp_seqindex != UINT16_MAX)
                return true;
        }
    }
    return false;
}

char *ci_nfc(const uint8_t *s, size_t n, size_t *out_len) {
    uint8_t *out = NULL;
    utf8proc_ssize_t len = utf8proc_map(s, (utf8proc_ssize_t)n, &out, (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (len < 0) return NULL;
    *out_len = (size_t)len;
    return (char *)out;
}

/* ------------------------------------------------------------- ByteLevel */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in byte order, so every byte is one visible char. */
static bool byte_is_self_mapped(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint16_t byte_to_char[256];
static int16_t char_to_byte[256 + 68];
static pthread_once_t byte_level_once = PTHREAD_ONCE_INIT;

static void byte_level_init(void) {
    uint32_t next = 256;
    for (unsigned b = 0; b < 256 + 68; b++) char_to_byte[b] = -1;
    for (unsigned b = 0; b < 256; b++) {
        byte_to_char[b] = (uint16_t)(byte_is_self_mapped(b) ? b : next++);
        char_to_byte[byte_to_char[b]] = (int16_t)b;
    }
}

uint32_t ci_byte_level_char(uint8_t byte) {
    pthread_once(&byte_level_once, byte_level_init);
    return byte_to_char[byte];
}

int ci_byte_level_byte(uint32_t cp) {
    pthread_once(&byte_level_once, byte_level_init);
    return cp < 256 + 68 ? char_to_byte[cp] : -1;
}

/* ------------------------------------------------------------------- hash */

uint64_t ci_tok_hash(const void *data, size_t len) {
    /* Multiply-xorshift over 8-byte words: fast for short keys, good enough
     * spread for open addressing. */
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xC2B2AE3D27D4EB4Full);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
    }
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 31);
}
