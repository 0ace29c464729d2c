/*
 * tok_regex.c — pre-tokenizer regexes: Oniguruma syntax in, PCRE2 out.
 *
 * HF tokenizers compiles Split patterns with Oniguruma (Ruby syntax, UTF-8).
 * We run them with PCRE2 (UTF + UCP, JIT) and translate the few constructs
 * whose meaning differs, so that the same pattern text splits the same way:
 *
 *   \s  Oniguruma: Unicode White_Space (includes U+0085; excludes U+180E,
 *       U+FEFF). PCRE2 10.42 with UCP also matches U+180E, so \s and \S are
 *       rewritten to the explicit White_Space class.
 *   \h  Oniguruma (Ruby): a hexadecimal digit. PCRE2: horizontal space.
 *   \uHHHH  Ruby escape; PCRE2 spells it \x{HHHH}.
 * \p{L}, \p{N}, (?i:...) mean the same in both (general categories; Unicode
 * simple case folding, so (?i:'s) also matches "'ſ" in both).
 * Known approximation: \S inside a character class keeps PCRE2's meaning
 * (no tokenizer we know writes it); \w keeps PCRE2's UCP meaning.
 */
#include "tokenizer/tokenizer_internal.h"

#include <string.h>

/* Unicode White_Space, as class members (no brackets). */
#define WHITE_SPACE_MEMBERS \
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

char *ci_tok_translate_regex(const char *pat, size_t len, bool native_space, cinfer_error *err) {
    if (len > CI_TOK_MAX_REGEX_BYTES) {
        ci_error(err, CINFER_ERR_LIMIT, "pre-tokenizer regex is %zu bytes (limit %d)", len, CI_TOK_MAX_REGEX_BYTES);
        return NULL;
    }
    ci_buf out = {0};
    bool in_class = false;
    size_t class_body_start = 0; /* index where a ']' would still be literal */
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\') {
            if (i + 1 >= len) {
                ci_buf_free(&out);
                ci_error(err, CINFER_ERR_FORMAT, "pre-tokenizer regex ends with a lone backslash");
                return NULL;
            }
            char e = pat[++i];
            switch (e) {
            case 's':
                if (native_space) ci_buf_puts(&out, "\\s");
                else ci_buf_puts(&out, in_class ? WHITE_SPACE_MEMBERS : "[" WHITE_SPACE_MEMBERS "]");
                break;
            case 'S':
                ci_buf_puts(&out, in_class || native_space ? "\\S" : "[^" WHITE_SPACE_MEMBERS "]");
                break;
            case 'h':
                ci_buf_puts(&out, in_class ? "0-9a-fA-F" : "[0-9a-fA-F]");
                break;
            case 'H':
                if (in_class) {
                    ci_buf_free(&out);
                    ci_error(err, CINFER_ERR_FORMAT, "pre-tokenizer regex: \\H inside a character class is not supported");
                    return NULL;
                }
                ci_buf_puts(&out, "[^0-9a-fA-F]");
                break;
            case 'u':
                if (i + 4 < len && is_hex(pat[i + 1]) && is_hex(pat[i + 2]) && is_hex(pat[i + 3]) &&
                    is_hex(pat[i + 4])) {
                    ci_buf_printf(&out, "\\x{%.4s}", pat + i + 1);
                    i += 4;
                } else {
                    ci_buf_puts(&out, "\\u");
                }
                break;
            default:
                ci_buf_putc(&out, '\\');
                ci_buf_putc(&out, e);
                break;
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            ci_buf_putc(&out, c);
            if (i + 1 < len && pat[i + 1] == '^') ci_buf_putc(&out, pat[++i]);
            class_body_start = i + 1;
            continue;
        }
        if (in_class && c == '[') {
            if (i + 1 < len && pat[i + 1] == ':') { /* POSIX class [:alpha:] */
                const char *end = NULL;
                for (size_t j = i + 2; j + 1 < len; j++)
                    if (pat[j] == ':' && pat[j + 1] == ']') {
                        end = pat + j + 2;
                        break;
                    }
                if (!end) {
                    ci_buf_free(&out);
                    ci_error(err, CINFER_ERR_FORMAT, "pre-tokenizer regex: unterminated [: class");
                    return NULL;
                }
                ci_buf_append(&out, pat + i, (size_t)(end - (pat + i)));
                i = (size_t)(end - pat) - 1;
                continue;
            }
            ci_buf_free(&out);
            ci_error(err, CINFER_ERR_FORMAT, "pre-tokenizer regex: nested character classes are not supported");
            return NULL;
        }
        if (in_class && c == ']' && i != class_body_start) in_class = false;
        ci_buf_putc(&out, c);
    }
    if (!out.data) ci_buf_puts(&out, "");
    return ci_buf_take(&out, NULL);
}

static pcre2_code *compile_one(const char *onig, size_t len, bool native_space, bool *jit, cinfer_error *err) {
    char *pcre_text = ci_tok_translate_regex(onig, len, native_space, err);
    if (!pcre_text) return NULL;
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pcre_text, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &offset,
                                   NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        ci_error(err, CINFER_ERR_FORMAT, "pre-tokenizer regex does not compile (%s at offset %zu of \"%.200s\")",
                 (const char *)msg, (size_t)offset, pcre_text);
        free(pcre_text);
        return NULL;
    }
    free(pcre_text);
    /* JIT is an accelerator only: without it the interpreter gives the same matches. */
    size_t jit_size = 0;
    *jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0 &&
           pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &jit_size) == 0 && jit_size > 0;
    return re;
}

int ci_tok_compile_regex(const char *onig, size_t len, ci_regex *out, cinfer_error *err) {
    memset(out, 0, sizeof *out);
    out->exact = compile_one(onig, len, false, &out->exact_jit, err);
    if (!out->exact) return err ? err->code : CINFER_ERR_FORMAT;
    bool has_space_class = false;
    for (size_t i = 0; i + 1 < len; i++)
        if (onig[i] == '\\') {
            if (onig[i + 1] == 's' || onig[i + 1] == 'S') has_space_class = true;
            i++;
        }
    if (has_space_class) out->fast = compile_one(onig, len, true, &out->fast_jit, NULL);
    return 0;
}

void ci_tok_regex_free(ci_regex *re) {
    pcre2_code_free(re->exact);
    pcre2_code_free(re->fast);
    memset(re, 0, sizeof *re);
}

/* The regexes behind GGUF tokenizer.ggml.pre names: the exact pattern text of
 * the model family's tokenizer.json. */
static const struct {
    const char *pre;
    const char *regex;
} GGUF_PRE_REGEXES[] = {
    {"qwen2",
     "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+"},
    {"llama-bpe",
     "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+"},
    {"gpt-2", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
};

const char *ci_tok_pretokenizer_regex_for_gguf_pre(const char *pre_name) {
    if (!pre_name) return NULL;
    for (size_t i = 0; i < sizeof GGUF_PRE_REGEXES / sizeof GGUF_PRE_REGEXES[0]; i++)
        if (strcmp(pre_name, GGUF_PRE_REGEXES[i].pre) == 0) return GGUF_PRE_REGEXES[i].regex;
    return NULL;
}
