/*
 * tpl_lexer.c — tokenizer reproducing Jinja2 3.1's lexer (jinja2/lexer.py).
 *
 * Whitespace in chat templates decides the prompt bytes, so this follows the
 * regular expressions of Jinja2's Lexer literally rather than a cleaner
 * design: the root rule finds the earliest "{{", "{%" or "{#"; a "-" after
 * the opener strips all whitespace (Python str.rstrip) before it; otherwise,
 * with lstrip_blocks, spaces between the line start and a block or comment
 * tag are removed (not for "{{", not with "{%+"); a block/comment end eats
 * one following "\n" (trim_blocks) unless written "+%}"; "-%}" eats all
 * following whitespace. `line_starting` mirrors the lexer's flag of the same
 * name (the previous match ended in a newline), which matters for the first
 * line and after trimmed tags. Raw blocks follow their own two rules.
 * The caller has already normalized newlines to "\n" and dropped one trailing
 * newline, as Jinja2 does before lexing.
 */
#include "template/tpl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    const char *s;
    size_t len, pos;
    tok_list *out;
    cinfer_error *err;
    bool line_starting;
    /* position cursor for line/column computation (positions only grow) */
    size_t cur_pos;
    int cur_line, cur_col; /* of cur_pos; the column counts code points from 1 */
    char balance[256];
    int nbalance;
} lexer;

/* Line and column (in code points) of `pos`, kept incrementally so a
 * source that is one long line still lexes in linear time. */
static void linecol(lexer *lx, size_t pos, int *line, int *col) {
    if (pos < lx->cur_pos) { /* rare: restart the scan */
        lx->cur_pos = 0;
        lx->cur_line = 1;
        lx->cur_col = 1;
    }
    while (lx->cur_pos < pos && lx->cur_pos < lx->len) {
        unsigned char c = (unsigned char)lx->s[lx->cur_pos++];
        if (c == '\n') {
            lx->cur_line++;
            lx->cur_col = 1;
        } else if ((c & 0xC0) != 0x80) {
            lx->cur_col++;
        }
    }
    *line = lx->cur_line;
    *col = lx->cur_col;
}

static int lex_fail(lexer *lx, size_t pos, const char *fmt, const char *arg) {
    int line, col;
    linecol(lx, pos, &line, &col);
    char msg[300];
    snprintf(msg, sizeof msg, fmt, arg);
    return ci_error(lx->err, CINFER_ERR_TEMPLATE, "template:%d:%d: %s", line, col, msg);
}

static tok *emit(lexer *lx, tok_type type, size_t pos, size_t len) {
    tok_list *l = lx->out;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = ci_realloc_array(l->v, l->cap, sizeof *l->v);
    }
    tok *t = &l->v[l->n++];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->text = lx->s + pos;
    t->len = len;
    linecol(lx, pos, &t->line, &t->col);
    return t;
}

/* Length of the Python-whitespace run at s[pos]. */
static size_t ws_run(const char *s, size_t len, size_t pos) {
    size_t i = pos;
    while (i < len) {
        size_t j = i;
        if (!uni_isspace(utf8_next(s, len, &j))) break;
        i = j;
    }
    return i - pos;
}

/* Python str.rstrip(): returns the new length of s[start, end). */
static size_t rstrip_end(const char *s, size_t start, size_t end) {
    while (end > start) {
        size_t k = end - 1;
        while (k > start && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        size_t j = k;
        if (!uni_isspace(utf8_next(s, end, &j))) break;
        end = k;
    }
    return end;
}

/* Applies the OptionalLStrip rule to the text s[start, end) that precedes a
 * tag opened with `sign`; returns the kept end. */
static size_t strip_before_tag(lexer *lx, size_t start, size_t end, char sign, bool is_variable) {
    if (sign == '-') return rstrip_end(lx->s, start, end);
    if (sign == '+' || is_variable) return end;
    size_t l_pos = start;
    for (size_t i = end; i > start; i--)
        if (lx->s[i - 1] == '\n') {
            l_pos = i;
            break;
        }
    if (l_pos > start || lx->line_starting) {
        if (end > l_pos && ws_run(lx->s, end, l_pos) == end - l_pos) return l_pos;
    }
    return end;
}

static void emit_data(lexer *lx, size_t start, size_t end) {
    if (end > start) emit(lx, TK_DATA, start, end - start);
}

static bool starts(const lexer *lx, size_t pos, const char *lit) {
    size_t n = strlen(lit);
    return pos + n <= lx->len && memcmp(lx->s + pos, lit, n) == 0;
}

/* Matches `{%[-+]?\s*KEYWORD\s*` at pos followed by an end form; for raw
 * begin the end is `-%}\s*` or `%}`, for raw end also `+%}` and `%}\n?`.
 * Returns the match end or 0. *sign gets the opener's sign. */
static size_t match_raw_tag(lexer *lx, size_t pos, const char *keyword, bool is_end, char *sign) {
    if (!starts(lx, pos, "{%")) return 0;
    size_t p = pos + 2;
    *sign = 0;
    if (p < lx->len && (lx->s[p] == '-' || lx->s[p] == '+')) *sign = lx->s[p++];
    p += ws_run(lx->s, lx->len, p);
    if (!starts(lx, p, keyword)) return 0;
    p += strlen(keyword);
    p += ws_run(lx->s, lx->len, p);
    if (is_end && starts(lx, p, "+%}")) return p + 3;
    if (starts(lx, p, "-%}")) return p + 3 + ws_run(lx->s, lx->len, p + 3);
    if (starts(lx, p, "%}")) {
        p += 2;
        if (is_end && p < lx->len && lx->s[p] == '\n') p++;
        return p;
    }
    return 0;
}

static bool hexval(char c, int *v) {
    if (c >= '0' && c <= '9') *v = c - '0';
    else if ((c | 32) >= 'a' && (c | 32) <= 'f') *v = (c | 32) - 'a' + 10;
    else return false;
    return true;
}

/* Decodes a string literal body as Python's
 * value.encode("ascii", "backslashreplace").decode("unicode-escape"). */
static int decode_string(lexer *lx, size_t pos, const char *s, size_t len, ci_buf *out) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\') {
            size_t start = i;
            utf8_next(s, len, &i);
            ci_buf_append(out, s + start, i - start);
            continue;
        }
        i++;
        if (i >= len) {
            ci_buf_putc(out, '\\');
            break;
        }
        unsigned char e = (unsigned char)s[i];
        if (e >= 0x80) { /* the backslash escapes the '\' of the backslashreplace text */
            uint32_t cp = utf8_next(s, len, &i);
            ci_buf_putc(out, '\\');
            if (cp < 0x100) ci_buf_printf(out, "x%02x", cp);
            else if (cp < 0x10000) ci_buf_printf(out, "u%04x", cp);
            else ci_buf_printf(out, "U%08x", cp);
            continue;
        }
        i++;
        switch (e) {
        case '\n': break;
        case '\\': ci_buf_putc(out, '\\'); break;
        case '\'': ci_buf_putc(out, '\''); break;
        case '"': ci_buf_putc(out, '"'); break;
        case 'a': ci_buf_putc(out, '\a'); break;
        case 'b': ci_buf_putc(out, '\b'); break;
        case 'f': ci_buf_putc(out, '\f'); break;
        case 'n': ci_buf_putc(out, '\n'); break;
        case 'r': ci_buf_putc(out, '\r'); break;
        case 't': ci_buf_putc(out, '\t'); break;
        case 'v': ci_buf_putc(out, '\v'); break;
        case 'x': case 'u': case 'U': {
            int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < n; k++) {
                int v;
                if (i >= len || !hexval(s[i], &v))
                    return lex_fail(lx, pos, "truncated \\%sXX escape", e == 'x' ? "x" : e == 'u' ? "u" : "U");
                cp = cp * 16 + (uint32_t)v;
                i++;
            }
            if (cp > 0x10FFFF) return lex_fail(lx, pos, "%s", "illegal Unicode character");
            utf8_put(out, cp);
            break;
        }
        case 'N': return lex_fail(lx, pos, "%s", "\\N{...} escapes are not supported");
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < len && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[i++] - '0');
                utf8_put(out, cp);
            } else {
                ci_buf_putc(out, '\\');
                ci_buf_putc(out, (char)e);
            }
        }
    }
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* (\d+_)*\d+ at p; returns end or p when no match. */
static size_t digits_us(const char *s, size_t len, size_t p) {
    size_t i = p;
    if (i >= len || !is_digit(s[i])) return p;
    while (i < len) {
        if (is_digit(s[i])) i++;
        else if (s[i] == '_' && i + 1 < len && is_digit(s[i + 1])) i++;
        else break;
    }
    return i;
}

/* float_re; returns the match end or 0. */
static size_t match_float(const lexer *lx, size_t p) {
    const char *s = lx->s;
    size_t len = lx->len;
    if (p > 0 && s[p - 1] == '.') return 0;
    size_t i = digits_us(s, len, p);
    if (i == p) return 0;
    size_t after_int = i;
    /* alternative 1: (\.digits)? e[+-]?digits */
    size_t j = after_int;
    if (j < len && s[j] == '.') {
        size_t k = digits_us(s, len, j + 1);
        if (k > j + 1) j = k;
    }
    if (j < len && (s[j] | 32) == 'e') {
        size_t k = j + 1;
        if (k < len && (s[k] == '+' || s[k] == '-')) k++;
        size_t m = digits_us(s, len, k);
        if (m > k) return m;
    }
    /* alternative 2: \.digits */
    if (after_int < len && s[after_int] == '.') {
        size_t k = digits_us(s, len, after_int + 1);
        if (k > after_int + 1) return k;
    }
    return 0;
}

/* integer_re; returns the match end or 0. */
static size_t match_integer(const lexer *lx, size_t p, int *base) {
    const char *s = lx->s;
    size_t len = lx->len;
    if (p >= len || !is_digit(s[p])) return 0;
    if (s[p] == '0' && p + 1 < len) {
        char x = (char)(s[p + 1] | 32);
        int b = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 0;
        if (b) {
            size_t i = p + 2, end = 0;
            for (;;) {
                size_t k = i;
                if (k < len && s[k] == '_') k++;
                int v;
                if (k < len && hexval(s[k], &v) && v < b) {
                    i = k + 1;
                    end = i;
                } else break;
            }
            if (end) {
                *base = b;
                return end;
            }
        }
    }
    *base = 10;
    if (s[p] == '0') { /* 0(_?0)* */
        size_t i = p + 1;
        for (;;) {
            size_t k = i;
            if (k < len && s[k] == '_') k++;
            if (k < len && s[k] == '0') i = k + 1;
            else break;
        }
        return i;
    }
    return digits_us(s, len, p);
}

static bool name_start(uint32_t cp) { return cp == '_' || uni_isalpha(cp); }
static bool name_char(uint32_t cp) { return cp == '_' || uni_isalnum(cp) || (cp >= 0x300 && cp <= 0x36F); }

static const char *const OPERATORS2[] = {"//", "**", "==", "!=", ">=", "<=", NULL};
static const char OPERATORS1[] = "+-/*%~[](){}><=.:|,;";

/* Lexes the inside of a {{ }} or {% %} tag up to and including its end. */
static int lex_tag(lexer *lx, bool is_block) {
    lx->nbalance = 0;
    for (;;) {
        size_t p = lx->pos;
        if (p >= lx->len) return 0; /* the parser reports the unexpected end */
        if (lx->nbalance == 0) {
            size_t end = 0;
            if (is_block) {
                if (starts(lx, p, "+%}")) end = p + 3;
                else if (starts(lx, p, "-%}")) end = p + 3 + ws_run(lx->s, lx->len, p + 3);
                else if (starts(lx, p, "%}")) end = p + 2 + (p + 2 < lx->len && lx->s[p + 2] == '\n');
            } else {
                if (starts(lx, p, "-}}")) end = p + 3 + ws_run(lx->s, lx->len, p + 3);
                else if (starts(lx, p, "}}")) end = p + 2;
            }
            if (end) {
                emit(lx, is_block ? TK_BLOCK_END : TK_VAR_END, p, end - p);
                lx->line_starting = lx->s[end - 1] == '\n';
                lx->pos = end;
                return 0;
            }
        }
        size_t w = ws_run(lx->s, lx->len, p);
        if (w) {
            lx->pos = p + w;
            lx->line_starting = lx->s[p + w - 1] == '\n';
            continue;
        }
        lx->line_starting = false;
        size_t end = match_float(lx, p);
        if (end) {
            char buf[128];
            size_t n = 0;
            for (size_t i = p; i < end && n < sizeof buf - 1; i++)
                if (lx->s[i] != '_') buf[n++] = lx->s[i];
            buf[n] = '\0';
            tok *t = emit(lx, TK_FLOAT, p, end - p);
            t->fval = strtod(buf, NULL);
            lx->pos = end;
            continue;
        }
        int base;
        end = match_integer(lx, p, &base);
        if (end) {
            uint64_t v = 0;
            bool overflow = false;
            size_t i = p + (base == 10 ? 0 : 2);
            for (; i < end; i++) {
                int d;
                if (lx->s[i] == '_' || !hexval(lx->s[i], &d)) continue;
                if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) overflow = true;
                v = v * (uint64_t)base + (uint64_t)d;
            }
            if (overflow || v > (uint64_t)INT64_MAX) return lex_fail(lx, p, "%s", "integer literal too large");
            tok *t = emit(lx, TK_INTEGER, p, end - p);
            t->ival = (int64_t)v;
            lx->pos = end;
            continue;
        }
        size_t j = p;
        if (name_start(utf8_next(lx->s, lx->len, &j))) {
            size_t k = j;
            while (k < lx->len) {
                size_t m = k;
                if (!name_char(utf8_next(lx->s, lx->len, &m))) break;
                k = m;
            }
            emit(lx, TK_NAME, p, k - p);
            lx->pos = k;
            continue;
        }
        char c = lx->s[p];
        if (c == '\'' || c == '"') {
            size_t i = p + 1;
            bool closed = false;
            while (i < lx->len) {
                if (lx->s[i] == '\\' && i + 1 < lx->len) {
                    i += 2;
                    continue;
                }
                if (lx->s[i] == c) {
                    closed = true;
                    break;
                }
                i++;
            }
            if (closed) {
                ci_buf b = {0};
                if (decode_string(lx, p, lx->s + p + 1, i - p - 1, &b) != 0) {
                    ci_buf_free(&b);
                    return -1;
                }
                tok *t = emit(lx, TK_STRING, p, i + 1 - p);
                size_t n;
                t->str = ci_buf_take(&b, &n);
                t->str_len = n;
                lx->pos = i + 1;
                continue;
            }
        }
        size_t oplen = 0;
        for (int k = 0; OPERATORS2[k]; k++)
            if (starts(lx, p, OPERATORS2[k])) oplen = 2;
        if (!oplen && c && strchr(OPERATORS1, c)) oplen = 1;
        if (!oplen) {
            char shown[8];
            size_t e = p;
            utf8_next(lx->s, lx->len, &e);
            snprintf(shown, sizeof shown, "%.*s", (int)(e - p), lx->s + p);
            return lex_fail(lx, p, "unexpected char '%s'", shown);
        }
        if (oplen == 1 && (c == '(' || c == '[' || c == '{')) {
            if (lx->nbalance >= (int)sizeof lx->balance) return lex_fail(lx, p, "%s", "brackets nested too deeply");
            lx->balance[lx->nbalance++] = c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (oplen == 1 && (c == ')' || c == ']' || c == '}')) {
            char shown[2] = {c, 0};
            if (!lx->nbalance) return lex_fail(lx, p, "unexpected '%s'", shown);
            if (lx->balance[--lx->nbalance] != c) return lex_fail(lx, p, "unexpected '%s'", shown);
        }
        tok *t = emit(lx, TK_OP, p, oplen);
        memcpy(t->op, lx->s + p, oplen);
        lx->pos = p + oplen;
    }
}

int tpl_lex(const char *src, size_t len, tok_list *out, cinfer_error *err) {
    lexer lx = {.s = src, .len = len, .out = out, .err = err, .line_starting = true, .cur_line = 1, .cur_col = 1};
    while (lx.pos < len) {
        /* root rule: earliest "{{", "{%" or "{#" */
        size_t q = lx.pos;
        const char *hit = NULL;
        while (q + 1 < len) {
            const char *brace = memchr(src + q, '{', len - q - 1);
            if (!brace) break;
            q = (size_t)(brace - src);
            char n = src[q + 1];
            if (n == '{' || n == '%' || n == '#') {
                hit = brace;
                break;
            }
            q++;
        }
        if (!hit) {
            emit_data(&lx, lx.pos, len);
            break;
        }
        char kind = src[q + 1];
        char raw_sign = 0;
        size_t raw_end = kind == '%' ? match_raw_tag(&lx, q, "raw", false, &raw_sign) : 0;
        char sign = raw_end ? raw_sign : (q + 2 < len && (src[q + 2] == '-' || src[q + 2] == '+')) ? src[q + 2] : 0;
        size_t keep = strip_before_tag(&lx, lx.pos, q, sign, kind == '{');
        emit_data(&lx, lx.pos, keep);
        lx.line_starting = false;
        if (raw_end) {
            /* raw body: the earliest {%[-+]? endraw %} */
            size_t body = raw_end, r = body, end = 0;
            char end_sign = 0;
            lx.line_starting = src[raw_end - 1] == '\n';
            for (;;) {
                const char *b = r + 1 < len ? memchr(src + r, '{', len - r - 1) : NULL;
                if (!b) break;
                r = (size_t)(b - src);
                end = match_raw_tag(&lx, r, "endraw", true, &end_sign);
                if (end) break;
                r++;
            }
            if (!end) return lex_fail(&lx, q, "%s", "Missing end of raw directive");
            size_t kept = strip_before_tag(&lx, body, r, end_sign, false);
            emit_data(&lx, body, kept);
            lx.line_starting = src[end - 1] == '\n';
            lx.pos = end;
            continue;
        }
        size_t open_end = q + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t c = open_end, close = 0, end = 0;
            for (;;) {
                const char *h = c + 1 < len ? memchr(src + c, '#', len - c - 1) : NULL;
                if (!h) break;
                c = (size_t)(h - src);
                if (src[c + 1] == '}') {
                    close = c;
                    break;
                }
                c++;
            }
            if (!close) return lex_fail(&lx, q, "%s", "Missing end of comment tag");
            if (close > open_end && src[close - 1] == '+') end = close + 2;
            else if (close > open_end && src[close - 1] == '-') end = close + 2 + ws_run(src, len, close + 2);
            else end = close + 2 + (close + 2 < len && src[close + 2] == '\n');
            lx.line_starting = src[end - 1] == '\n';
            lx.pos = end;
            continue;
        }
        emit(&lx, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, q, open_end - q);
        lx.pos = open_end;
        if (lex_tag(&lx, kind == '%') != 0) return -1;
    }
    emit(&lx, TK_EOF, len, 0);
    return 0;
}

void tpl_tokens_free(tok_list *toks) {
    for (size_t i = 0; i < toks->n; i++) free(toks->v[i].str);
    free(toks->v);
    toks->v = NULL;
    toks->n = toks->cap = 0;
}
