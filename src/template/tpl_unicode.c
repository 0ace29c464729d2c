/*
 * tpl_unicode.c — the few Unicode facts Python's str methods depend on.
 *
 * Templates index and slice strings by code point and strip "whitespace" as
 * Python's str.isspace() defines it, so these helpers follow CPython rather
 * than C's <ctype.h>. Categories and simple case mappings come from
 * utf8proc; the full-case-mapping exceptions that matter in practice (ß, İ)
 * are special-cased. Invalid UTF-8 never reaches here from templates or JSON
 * (both are validated), but decoding is still total: a stray byte decodes as
 * itself so no input can make these functions read out of bounds.
 */
#include "template/tpl_internal.h"

#include <utf8proc.h>

uint32_t utf8_next(const char *s, size_t len, size_t *i) {
    const unsigned char *p = (const unsigned char *)s;
    size_t k = *i;
    unsigned c = p[k];
    int n = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
    if (n <= 0 || k + (size_t)n >= len) {
        *i = k + 1;
        return c;
    }
    uint32_t cp = c & (0x3Fu >> n);
    for (int j = 1; j <= n; j++) {
        unsigned cc = p[k + (size_t)j];
        if ((cc & 0xC0) != 0x80) {
            *i = k + 1;
            return c;
        }
        cp = (cp << 6) | (cc & 0x3F);
    }
    *i = k + (size_t)n + 1;
    return cp;
}

void utf8_put(ci_buf *b, uint32_t cp) {
    char t[4];
    if (cp < 0x80) {
        ci_buf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        ci_buf_append(b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        ci_buf_append(b, t, 3);
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        ci_buf_append(b, t, 4);
    }
}

bool utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07, min = 0x10000;
        else return false;
        if (i + (size_t)n >= len) return false;
        for (int j = 1; j <= n; j++) {
            unsigned cc = p[i + (size_t)j];
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += (size_t)n + 1;
    }
    return true;
}

size_t utf8_offset(const char *s, size_t len, size_t cp_index) {
    size_t i = 0, k = 0;
    while (i < len && k < cp_index) {
        utf8_next(s, len, &i);
        k++;
    }
    return i;
}

bool uni_isspace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool uni_isprintable(uint32_t cp) {
    if (cp < 0x80) return cp >= 0x20 && cp < 0x7F;
    if (cp > 0x10FFFF) return false;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

static int category(uint32_t cp) { return cp > 0x10FFFF ? 0 : (int)utf8proc_category((utf8proc_int32_t)cp); }

bool uni_isalpha(uint32_t cp) {
    if (cp < 0x80) return (cp | 32) >= 'a' && (cp | 32) <= 'z';
    int c = category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

bool uni_isdigit(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return category(cp) == UTF8PROC_CATEGORY_ND;
}

bool uni_isalnum(uint32_t cp) {
    if (cp < 0x80) return uni_isalpha(cp) || uni_isdigit(cp);
    int c = category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

bool uni_isword(uint32_t cp) { return cp == '_' || uni_isalnum(cp); }

bool uni_isupper(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z';
    int c = category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT;
}

bool uni_islower(uint32_t cp) {
    if (cp < 0x80) return cp >= 'a' && cp <= 'z';
    return category(cp) == UTF8PROC_CATEGORY_LL;
}

void uni_upper(ci_buf *b, uint32_t cp) {
    if (cp < 0x80) {
        ci_buf_putc(b, (char)(cp >= 'a' && cp <= 'z' ? cp - 32 : cp));
        return;
    }
    if (cp == 0xDF) { /* ß -> SS (Python uses the full case mapping) */
        ci_buf_append(b, "SS", 2);
        return;
    }
    utf8_put(b, cp > 0x10FFFF ? cp : (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp));
}

void uni_lower(ci_buf *b, uint32_t cp) {
    if (cp < 0x80) {
        ci_buf_putc(b, (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
        return;
    }
    if (cp == 0x130) { /* İ -> i + combining dot above */
        ci_buf_append(b, "i\xCC\x87", 3);
        return;
    }
    utf8_put(b, cp > 0x10FFFF ? cp : (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
}

void uni_title(ci_buf *b, uint32_t cp) {
    if (cp < 0x80) {
        uni_upper(b, cp);
        return;
    }
    if (cp == 0xDF) {
        ci_buf_append(b, "Ss", 2);
        return;
    }
    utf8_put(b, cp > 0x10FFFF ? cp : (uint32_t)utf8proc_totitle((utf8proc_int32_t)cp));
}
