/*
 * tpl_builtins.c — Jinja2's builtin filters and tests, the globals of
 * transformers' chat-template environment, and the Python str/dict/list
 * methods templates call.
 *
 * Each builtin mirrors the Python function it replaces (jinja2/filters.py,
 * jinja2/tests.py, CPython's str methods), including the quirks prompts
 * depend on: trim/strip use str.isspace(), `sort`/`unique`/`dictsort` are
 * case-insensitive by default, map/select/reject/unique/items return
 * one-shot generators (always truthy, no len()), `default` only replaces
 * undefined unless boolean=true, tojson is json.dumps with ensure_ascii off.
 * The immutable sandbox forbids list/dict mutators; they resolve to an
 * undefined that raises SecurityError when called, as in Jinja2.
 */
#include "template/tpl_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --------------------------------------------------------------- arg utils */

tv *targ(tv_args *a, size_t index, const char *name) {
    if (index < a->npos) return a->pos[index];
    for (size_t i = 0; i < a->nkw; i++)
        if (strcmp(a->kwnames[i], name) == 0) return a->kwvals[i];
    return NULL;
}

bool targ_check(tpl_render *r, tv_args *a, const char *fn, const char *const *names) {
    size_t n = 0;
    while (names[n]) n++;
    if (a->npos > n) {
        tpl_fail(r, "%s() takes at most %zu argument(s) (%zu given)", fn, n, a->npos);
        return false;
    }
    for (size_t i = 0; i < a->nkw; i++) {
        size_t k;
        for (k = 0; k < n; k++)
            if (strcmp(a->kwnames[i], names[k]) == 0) break;
        if (k == n) {
            tpl_fail(r, "%s() got an unexpected keyword argument '%s'", fn, a->kwnames[i]);
            return false;
        }
        if (k < a->npos) {
            tpl_fail(r, "%s() got multiple values for argument '%s'", fn, a->kwnames[i]);
            return false;
        }
    }
    return true;
}

#define ARGS(fn, ...)                                                  \
    static const char *const fn##_names[] = {__VA_ARGS__, NULL};       \
    if (!targ_check(r, a, #fn, fn##_names)) return NULL
#define NOARGS(fn)                                                     \
    static const char *const fn##_names[] = {NULL};                    \
    if (!targ_check(r, a, #fn, fn##_names)) return NULL

static tv *str_result(ci_buf *b) {
    size_t len;
    char *s = ci_buf_take(b, &len);
    return tv_str_take(s, len);
}

/* str(v) as a borrowed-or-new string value (soft_str). */
static tv *soft_str(tpl_render *r, tv *v) { return tv_stringify(r, v); }

static bool want_int(tpl_render *r, tv *v, const char *what, int64_t *out) {
    if (v->kind == TV_INT) *out = v->u.i;
    else if (v->kind == TV_BOOL) *out = v->u.b;
    else {
        if (v->kind == TV_UNDEFINED) tpl_fail_undefined(r, v);
        else tpl_fail(r, "%s must be an integer, not '%s'", what, tv_type_name(v));
        return false;
    }
    return true;
}

static bool want_str(tpl_render *r, tv *v, const char *what) {
    if (v->kind == TV_STR) return true;
    if (v->kind == TV_UNDEFINED) tpl_fail_undefined(r, v);
    else tpl_fail(r, "%s must be str, not %s", what, tv_type_name(v));
    return false;
}

static bool arg_bool(tv *v, bool dflt) { return v ? tv_truthy(v) : dflt; }

/* Python str.strip family. mode: 1 left, 2 right, 3 both. chars NULL = whitespace. */
static bool in_chars(uint32_t cp, const tv *chars) {
    if (!chars) return uni_isspace(cp);
    size_t i = 0;
    while (i < chars->u.str.len)
        if (utf8_next(chars->u.str.s, chars->u.str.len, &i) == cp) return true;
    return false;
}

static tv *strip_impl(const char *s, size_t len, const tv *chars, int mode) {
    size_t start = 0, end = len;
    if (mode & 1) {
        while (start < end) {
            size_t j = start;
            if (!in_chars(utf8_next(s, end, &j), chars)) break;
            start = j;
        }
    }
    if (mode & 2) {
        while (end > start) {
            size_t k = end - 1;
            while (k > start && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            size_t j = k;
            if (!in_chars(utf8_next(s, end, &j), chars)) break;
            end = k;
        }
    }
    return tv_str(s + start, end - start);
}

static tv *lower_str(const tv *s) {
    ci_buf b = {0};
    ci_buf_reserve(&b, s->u.str.len);
    size_t i = 0;
    while (i < s->u.str.len) uni_lower(&b, utf8_next(s->u.str.s, s->u.str.len, &i));
    return str_result(&b);
}

static tv *upper_str(const tv *s) {
    ci_buf b = {0};
    ci_buf_reserve(&b, s->u.str.len);
    size_t i = 0;
    while (i < s->u.str.len) uni_upper(&b, utf8_next(s->u.str.s, s->u.str.len, &i));
    return str_result(&b);
}

static tv *capitalize_str(const tv *s) {
    ci_buf b = {0};
    size_t i = 0;
    bool first = true;
    while (i < s->u.str.len) {
        uint32_t cp = utf8_next(s->u.str.s, s->u.str.len, &i);
        if (first) uni_title(&b, cp);
        else uni_lower(&b, cp);
        first = false;
    }
    return str_result(&b);
}

static bool is_cased(uint32_t cp) { return uni_isupper(cp) || uni_islower(cp); }

/* Python str.title(). */
static tv *title_method(const tv *s) {
    ci_buf b = {0};
    size_t i = 0;
    bool prev_cased = false;
    while (i < s->u.str.len) {
        uint32_t cp = utf8_next(s->u.str.s, s->u.str.len, &i);
        if (is_cased(cp)) {
            if (prev_cased) uni_lower(&b, cp);
            else uni_title(&b, cp);
            prev_cased = true;
        } else {
            utf8_put(&b, cp);
            prev_cased = false;
        }
    }
    return str_result(&b);
}

/* Code-point index of a byte offset. */
static int64_t cp_index(const char *s, size_t byte_off) {
    int64_t n = 0;
    for (size_t i = 0; i < byte_off; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

/* Resolves optional start/end code-point arguments to a byte range. */
static bool sub_range(tpl_render *r, tv *s, tv *start_v, tv *end_v, size_t *b0, size_t *b1) {
    int64_t n = (int64_t)tv_str_codepoints(s), st = 0, en = n;
    if (start_v && start_v->kind != TV_NONE && !want_int(r, start_v, "slice index", &st)) return false;
    if (end_v && end_v->kind != TV_NONE && !want_int(r, end_v, "slice index", &en)) return false;
    if (st < 0) st = st + n < 0 ? 0 : st + n;
    if (en < 0) en = en + n < 0 ? 0 : en + n;
    if (st > n) st = n + 1; /* empty range beyond the end */
    if (en > n) en = n;
    if (st > n) {
        *b0 = *b1 = SIZE_MAX;
        return true;
    }
    *b0 = utf8_offset(s->u.str.s, s->u.str.len, (size_t)st);
    *b1 = en < st ? *b0 : utf8_offset(s->u.str.s, s->u.str.len, (size_t)en);
    return true;
}


/* Reverses a list's items in place. */
static void reverse_in_place(tv *list) {
    for (size_t i = 0, j = list->u.list.len; i + 1 < j; i++, j--) {
        tv *t = list->u.list.items[i];
        list->u.list.items[i] = list->u.list.items[j - 1];
        list->u.list.items[j - 1] = t;
    }
}

static tv *split_impl(tpl_render *r, tv *s, tv *sep, int64_t maxsplit, bool from_right) {
    const char *p = s->u.str.s;
    size_t len = s->u.str.len;
    tv *out = tv_list_new(TV_LIST, 0);
    if (maxsplit < 0) maxsplit = INT64_MAX;
    if (!sep || sep->kind == TV_NONE) {
        if (!from_right) {
            size_t i = 0;
            int64_t splits = 0;
            for (;;) {
                while (i < len) { /* skip whitespace */
                    size_t j = i;
                    if (!uni_isspace(utf8_next(p, len, &j))) break;
                    i = j;
                }
                if (i >= len) break;
                if (splits >= maxsplit) {
                    tv_list_push(out, tv_str(p + i, len - i));
                    break;
                }
                size_t start = i;
                while (i < len) {
                    size_t j = i;
                    if (uni_isspace(utf8_next(p, len, &j))) break;
                    i = j;
                }
                tv_list_push(out, tv_str(p + start, i - start));
                splits++;
            }
        } else {
            size_t end = len;
            int64_t splits = 0;
            for (;;) {
                while (end > 0) {
                    size_t k = end - 1;
                    while (k > 0 && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
                    size_t j = k;
                    if (!uni_isspace(utf8_next(p, end, &j))) break;
                    end = k;
                }
                if (end == 0) break;
                if (splits >= maxsplit) {
                    tv_list_push(out, tv_str(p, end));
                    break;
                }
                size_t start = end;
                while (start > 0) {
                    size_t k = start - 1;
                    while (k > 0 && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
                    size_t j = k;
                    if (uni_isspace(utf8_next(p, start, &j))) break;
                    start = k;
                }
                tv_list_push(out, tv_str(p + start, end - start));
                end = start;
                splits++;
            }
            reverse_in_place(out); /* rsplit collected from the right */
        }
        return out;
    }
    if (!want_str(r, sep, "separator")) {
        tv_release(out);
        return NULL;
    }
    if (!sep->u.str.len) {
        tv_release(out);
        return tpl_fail(r, "empty separator");
    }
    const char *q = sep->u.str.s;
    size_t ql = sep->u.str.len;
    if (!from_right) {
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            const char *hit = splits < maxsplit ? memmem(p + i, len - i, q, ql) : NULL;
            if (!hit) {
                tv_list_push(out, tv_str(p + i, len - i));
                break;
            }
            size_t at = (size_t)(hit - p);
            tv_list_push(out, tv_str(p + i, at - i));
            i = at + ql;
            splits++;
        }
        return out;
    }
    size_t end = len;
    int64_t splits = 0;
    for (;;) {
        size_t at = SIZE_MAX;
        if (splits < maxsplit && end >= ql)
            for (size_t k = end - ql + 1; k-- > 0;)
                if (memcmp(p + k, q, ql) == 0) {
                    at = k;
                    break;
                }
        if (at == SIZE_MAX) {
            tv_list_push(out, tv_str(p, end));
            break;
        }
        tv_list_push(out, tv_str(p + at + ql, end - at - ql));
        end = at;
        splits++;
    }
    reverse_in_place(out); /* rsplit collected from the right */
    return out;
}

static tv *replace_impl(tpl_render *r, tv *s, tv *old, tv *new_, int64_t count) {
    ci_buf b = {0};
    const char *p = s->u.str.s;
    size_t len = s->u.str.len, i = 0;
    if (count < 0) count = INT64_MAX;
    int64_t done = 0;
    if (!old->u.str.len) {
        while (done < count) {
            ci_buf_append(&b, new_->u.str.s, new_->u.str.len);
            done++;
            if (i >= len) break;
            size_t j = i;
            utf8_next(p, len, &j);
            ci_buf_append(&b, p + i, j - i);
            i = j;
            if (!tpl_check_string_size(r, b.len)) {
                ci_buf_free(&b);
                return NULL;
            }
        }
        ci_buf_append(&b, p + i, len - i);
        return str_result(&b);
    }
    while (done < count) {
        const char *hit = memmem(p + i, len - i, old->u.str.s, old->u.str.len);
        if (!hit) break;
        size_t at = (size_t)(hit - p);
        ci_buf_append(&b, p + i, at - i);
        ci_buf_append(&b, new_->u.str.s, new_->u.str.len);
        i = at + old->u.str.len;
        done++;
        if (!tpl_check_string_size(r, b.len)) {
            ci_buf_free(&b);
            return NULL;
        }
    }
    ci_buf_append(&b, p + i, len - i);
    return str_result(&b);
}

/* Python str.splitlines(keepends). */
static tv *splitlines_impl(const tv *s, bool keepends) {
    tv *out = tv_list_new(TV_LIST, 0);
    const char *p = s->u.str.s;
    size_t len = s->u.str.len, i = 0, start = 0;
    while (i < len) {
        size_t j = i;
        uint32_t cp = utf8_next(p, len, &j);
        bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
                   cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!brk) {
            i = j;
            continue;
        }
        size_t eol = j;
        if (cp == '\r' && j < len && p[j] == '\n') eol = j + 1;
        tv_list_push(out, tv_str(p + start, (keepends ? eol : i) - start));
        i = start = eol;
    }
    if (start < len) tv_list_push(out, tv_str(p + start, len - start));
    return out;
}

/* ----------------------------------------------------------- str methods */

#define METHOD(name) static tv *m_##name(tpl_render *r, tv *self, tv_args *a)

METHOD(str_upper) { NOARGS(upper); return upper_str(self); }
METHOD(str_lower) { NOARGS(lower); return lower_str(self); }
METHOD(str_title) { NOARGS(title); return title_method(self); }
METHOD(str_capitalize) { NOARGS(capitalize); return capitalize_str(self); }
METHOD(str_swapcase) {
    NOARGS(swapcase);
    ci_buf b = {0};
    size_t i = 0;
    while (i < self->u.str.len) {
        uint32_t cp = utf8_next(self->u.str.s, self->u.str.len, &i);
        if (uni_isupper(cp)) uni_lower(&b, cp);
        else if (uni_islower(cp)) uni_upper(&b, cp);
        else utf8_put(&b, cp);
    }
    return str_result(&b);
}

static tv *strip_method(tpl_render *r, tv *self, tv_args *a, int mode, const char *fn) {
    static const char *const names[] = {"chars", NULL};
    if (!targ_check(r, a, fn, names)) return NULL;
    tv *chars = targ(a, 0, "chars");
    if (chars && chars->kind == TV_NONE) chars = NULL;
    if (chars && !want_str(r, chars, "strip arg")) return NULL;
    return strip_impl(self->u.str.s, self->u.str.len, chars, mode);
}
METHOD(str_strip) { return strip_method(r, self, a, 3, "strip"); }
METHOD(str_lstrip) { return strip_method(r, self, a, 1, "lstrip"); }
METHOD(str_rstrip) { return strip_method(r, self, a, 2, "rstrip"); }

static tv *split_method(tpl_render *r, tv *self, tv_args *a, bool right) {
    static const char *const names[] = {"sep", "maxsplit", NULL};
    if (!targ_check(r, a, right ? "rsplit" : "split", names)) return NULL;
    int64_t maxsplit = -1;
    tv *ms = targ(a, 1, "maxsplit");
    if (ms && !want_int(r, ms, "maxsplit", &maxsplit)) return NULL;
    return split_impl(r, self, targ(a, 0, "sep"), maxsplit, right);
}
METHOD(str_split) { return split_method(r, self, a, false); }
METHOD(str_rsplit) { return split_method(r, self, a, true); }

METHOD(str_splitlines) {
    ARGS(splitlines, "keepends");
    return splitlines_impl(self, arg_bool(targ(a, 0, "keepends"), false));
}

static tv *affix_method(tpl_render *r, tv *self, tv_args *a, bool suffix) {
    static const char *const names[] = {"prefix", "start", "end", NULL};
    if (!targ_check(r, a, suffix ? "endswith" : "startswith", names)) return NULL;
    tv *x = targ(a, 0, "prefix");
    if (!x) return tpl_fail(r, "%s() takes at least 1 argument (0 given)", suffix ? "endswith" : "startswith");
    size_t b0, b1;
    if (!sub_range(r, self, targ(a, 1, "start"), targ(a, 2, "end"), &b0, &b1)) return NULL;
    size_t nopts = x->kind == TV_TUPLE ? x->u.list.len : 1;
    for (size_t k = 0; k < nopts; k++) {
        tv *opt = x->kind == TV_TUPLE ? x->u.list.items[k] : x;
        if (opt->kind != TV_STR)
            return tpl_fail(r, "%s first arg must be str or a tuple of str, not %s", suffix ? "endswith" : "startswith",
                            tv_type_name(opt));
        if (b0 == SIZE_MAX) continue;
        size_t n = opt->u.str.len, avail = b1 - b0;
        if (n > avail) continue;
        const char *at = suffix ? self->u.str.s + b1 - n : self->u.str.s + b0;
        if (memcmp(at, opt->u.str.s, n) == 0) return tv_bool(true);
    }
    return tv_bool(false);
}
METHOD(str_startswith) { return affix_method(r, self, a, false); }
METHOD(str_endswith) { return affix_method(r, self, a, true); }

static tv *find_method(tpl_render *r, tv *self, tv_args *a, bool right, bool raise, const char *fn) {
    static const char *const names[] = {"sub", "start", "end", NULL};
    if (!targ_check(r, a, fn, names)) return NULL;
    tv *sub = targ(a, 0, "sub");
    if (!sub) return tpl_fail(r, "%s() takes at least 1 argument (0 given)", fn);
    if (!want_str(r, sub, "substring")) return NULL;
    size_t b0, b1;
    if (!sub_range(r, self, targ(a, 1, "start"), targ(a, 2, "end"), &b0, &b1)) return NULL;
    int64_t found = -1;
    if (b0 != SIZE_MAX && sub->u.str.len <= b1 - b0) {
        if (!right) {
            const char *hit = memmem(self->u.str.s + b0, b1 - b0, sub->u.str.s, sub->u.str.len);
            if (hit) found = cp_index(self->u.str.s, (size_t)(hit - self->u.str.s));
        } else {
            for (size_t k = b1 - sub->u.str.len + 1; k-- > b0;)
                if (memcmp(self->u.str.s + k, sub->u.str.s, sub->u.str.len) == 0) {
                    found = cp_index(self->u.str.s, k);
                    break;
                }
        }
    }
    if (found < 0 && raise) return tpl_fail(r, "substring not found");
    return tv_int(found);
}
METHOD(str_find) { return find_method(r, self, a, false, false, "find"); }
METHOD(str_rfind) { return find_method(r, self, a, true, false, "rfind"); }
METHOD(str_index) { return find_method(r, self, a, false, true, "index"); }
METHOD(str_rindex) { return find_method(r, self, a, true, true, "rindex"); }

METHOD(str_count) {
    ARGS(count, "sub", "start", "end");
    tv *sub = targ(a, 0, "sub");
    if (!sub) return tpl_fail(r, "count() takes at least 1 argument (0 given)");
    if (!want_str(r, sub, "substring")) return NULL;
    size_t b0, b1;
    if (!sub_range(r, self, targ(a, 1, "start"), targ(a, 2, "end"), &b0, &b1)) return NULL;
    if (b0 == SIZE_MAX) return tv_int(0);
    if (!sub->u.str.len) return tv_int(cp_index(self->u.str.s + b0, b1 - b0) + 1);
    int64_t n = 0;
    size_t i = b0;
    for (;;) {
        const char *hit = memmem(self->u.str.s + i, b1 - i, sub->u.str.s, sub->u.str.len);
        if (!hit) break;
        n++;
        i = (size_t)(hit - self->u.str.s) + sub->u.str.len;
    }
    return tv_int(n);
}

METHOD(str_replace) {
    ARGS(replace, "old", "new", "count");
    tv *old = targ(a, 0, "old"), *new_ = targ(a, 1, "new"), *cnt = targ(a, 2, "count");
    if (!old || !new_) return tpl_fail(r, "replace() takes at least 2 arguments");
    if (!want_str(r, old, "replace() argument 1") || !want_str(r, new_, "replace() argument 2")) return NULL;
    int64_t count = -1;
    if (cnt && !want_int(r, cnt, "count", &count)) return NULL;
    return replace_impl(r, self, old, new_, count);
}

METHOD(str_join) {
    ARGS(join, "iterable");
    tv *it = targ(a, 0, "iterable");
    if (!it) return tpl_fail(r, "join() takes exactly one argument (0 given)");
    tv *items = tpl_iterate(r, it);
    if (!items) return NULL;
    ci_buf b = {0};
    for (size_t i = 0; i < items->u.list.len; i++) {
        tv *x = items->u.list.items[i];
        if (x->kind != TV_STR) {
            ci_buf_free(&b);
            tv_release(items);
            return tpl_fail(r, "sequence item %zu: expected str instance, %s found", i, tv_type_name(x));
        }
        if (i) ci_buf_append(&b, self->u.str.s, self->u.str.len);
        ci_buf_append(&b, x->u.str.s, x->u.str.len);
        if (!tpl_check_string_size(r, b.len)) {
            ci_buf_free(&b);
            tv_release(items);
            return NULL;
        }
    }
    tv_release(items);
    return str_result(&b);
}

static tv *pad_method(tpl_render *r, tv *self, tv_args *a, int where, const char *fn) {
    static const char *const names[] = {"width", "fillchar", NULL};
    if (!targ_check(r, a, fn, names)) return NULL;
    int64_t width;
    tv *w = targ(a, 0, "width"), *fill = targ(a, 1, "fillchar");
    if (!w) return tpl_fail(r, "%s() takes at least 1 argument", fn);
    if (!want_int(r, w, "width", &width)) return NULL;
    const char *fc = " ";
    size_t fcl = 1;
    if (fill) {
        if (!want_str(r, fill, "fillchar")) return NULL;
        if (tv_str_codepoints(fill) != 1) return tpl_fail(r, "The fill character must be exactly one character long");
        fc = fill->u.str.s;
        fcl = fill->u.str.len;
    }
    int64_t n = (int64_t)tv_str_codepoints(self);
    if (width <= n) return tv_retain(self);
    if ((uint64_t)width * fcl > r->limits.max_string_bytes) return tpl_fail_limit(r, "padding too large");
    int64_t marg = width - n, left;
    if (where == 0) left = marg / 2 + (marg & width & 1); /* center, CPython's formula */
    else if (where == 1) left = 0;                        /* ljust */
    else left = marg;                                     /* rjust */
    ci_buf b = {0};
    for (int64_t i = 0; i < left; i++) ci_buf_append(&b, fc, fcl);
    ci_buf_append(&b, self->u.str.s, self->u.str.len);
    for (int64_t i = left; i < marg; i++) ci_buf_append(&b, fc, fcl);
    return str_result(&b);
}
METHOD(str_center) { return pad_method(r, self, a, 0, "center"); }
METHOD(str_ljust) { return pad_method(r, self, a, 1, "ljust"); }
METHOD(str_rjust) { return pad_method(r, self, a, 2, "rjust"); }

METHOD(str_zfill) {
    ARGS(zfill, "width");
    int64_t width;
    tv *w = targ(a, 0, "width");
    if (!w) return tpl_fail(r, "zfill() takes exactly one argument");
    if (!want_int(r, w, "width", &width)) return NULL;
    int64_t n = (int64_t)tv_str_codepoints(self);
    if (width <= n) return tv_retain(self);
    if ((uint64_t)width > r->limits.max_string_bytes) return tpl_fail_limit(r, "padding too large");
    ci_buf b = {0};
    size_t start = 0;
    if (self->u.str.len && (self->u.str.s[0] == '+' || self->u.str.s[0] == '-')) {
        ci_buf_putc(&b, self->u.str.s[0]);
        start = 1;
    }
    for (int64_t i = 0; i < width - n; i++) ci_buf_putc(&b, '0');
    ci_buf_append(&b, self->u.str.s + start, self->u.str.len - start);
    return str_result(&b);
}

static tv *affix_remove(tpl_render *r, tv *self, tv_args *a, bool suffix) {
    static const char *const names[] = {"affix", NULL};
    if (!targ_check(r, a, suffix ? "removesuffix" : "removeprefix", names)) return NULL;
    tv *x = targ(a, 0, "affix");
    if (!x) return tpl_fail(r, "missing argument");
    if (!want_str(r, x, "argument")) return NULL;
    size_t n = x->u.str.len;
    if (n && n <= self->u.str.len) {
        if (!suffix && memcmp(self->u.str.s, x->u.str.s, n) == 0) return tv_str(self->u.str.s + n, self->u.str.len - n);
        if (suffix && memcmp(self->u.str.s + self->u.str.len - n, x->u.str.s, n) == 0)
            return tv_str(self->u.str.s, self->u.str.len - n);
    }
    return tv_retain(self);
}
METHOD(str_removeprefix) { return affix_remove(r, self, a, false); }
METHOD(str_removesuffix) { return affix_remove(r, self, a, true); }

static tv *partition_method(tpl_render *r, tv *self, tv_args *a, bool right) {
    static const char *const names[] = {"sep", NULL};
    if (!targ_check(r, a, right ? "rpartition" : "partition", names)) return NULL;
    tv *sep = targ(a, 0, "sep");
    if (!sep) return tpl_fail(r, "missing argument");
    if (!want_str(r, sep, "separator")) return NULL;
    if (!sep->u.str.len) return tpl_fail(r, "empty separator");
    const char *p = self->u.str.s;
    size_t len = self->u.str.len, n = sep->u.str.len, at = SIZE_MAX;
    if (!right) {
        const char *hit = memmem(p, len, sep->u.str.s, n);
        if (hit) at = (size_t)(hit - p);
    } else if (n <= len) {
        for (size_t k = len - n + 1; k-- > 0;)
            if (memcmp(p + k, sep->u.str.s, n) == 0) {
                at = k;
                break;
            }
    }
    tv *out = tv_list_new(TV_TUPLE, 3);
    if (at == SIZE_MAX) {
        if (right) {
            tv_list_push(out, tv_str("", 0));
            tv_list_push(out, tv_str("", 0));
            tv_list_push(out, tv_retain(self));
        } else {
            tv_list_push(out, tv_retain(self));
            tv_list_push(out, tv_str("", 0));
            tv_list_push(out, tv_str("", 0));
        }
        return out;
    }
    tv_list_push(out, tv_str(p, at));
    tv_list_push(out, tv_retain(sep));
    tv_list_push(out, tv_str(p + at + n, len - at - n));
    return out;
}
METHOD(str_partition) { return partition_method(r, self, a, false); }
METHOD(str_rpartition) { return partition_method(r, self, a, true); }

typedef bool (*cp_pred)(uint32_t);
static tv *is_method(tpl_render *r, tv *self, tv_args *a, cp_pred pred) {
    NOARGS(is);
    if (!self->u.str.len) return tv_bool(false);
    size_t i = 0;
    while (i < self->u.str.len)
        if (!pred(utf8_next(self->u.str.s, self->u.str.len, &i))) return tv_bool(false);
    return tv_bool(true);
}
METHOD(str_isalnum) { return is_method(r, self, a, uni_isalnum); }
METHOD(str_isalpha) { return is_method(r, self, a, uni_isalpha); }
METHOD(str_isdigit) { return is_method(r, self, a, uni_isdigit); }
METHOD(str_isspace) { return is_method(r, self, a, uni_isspace); }

static tv *case_test(tv *s, bool want_upper) {
    bool cased = false;
    size_t i = 0;
    while (i < s->u.str.len) {
        uint32_t cp = utf8_next(s->u.str.s, s->u.str.len, &i);
        if (want_upper ? uni_islower(cp) : uni_isupper(cp)) return tv_bool(false);
        if (is_cased(cp)) cased = true;
    }
    return tv_bool(cased);
}
METHOD(str_islower) { NOARGS(islower); return case_test(self, false); }
METHOD(str_isupper) { NOARGS(isupper); return case_test(self, true); }

METHOD(unsupported) {
    (void)a;
    (void)self;
    return tpl_fail(r, "this method is not supported by cinfer's template engine");
}

/* ------------------------------------------------------ dict/list methods */

METHOD(dict_get) {
    ARGS(get, "key", "default");
    tv *k = targ(a, 0, "key"), *d = targ(a, 1, "default");
    if (!k) return tpl_fail(r, "get expected at least 1 argument, got 0");
    if (!tv_hashable(k)) return tpl_fail(r, "unhashable type: '%s'", tv_type_name(k));
    tv *v = tv_dict_get(self, k);
    return tv_retain(v ? v : d ? d : tv_none());
}

METHOD(dict_items) {
    NOARGS(items);
    tv *out = tv_list_new(TV_LIST, self->u.dict.len);
    for (size_t i = 0; i < self->u.dict.len; i++) {
        tv *pair = tv_list_new(TV_TUPLE, 2);
        tv_list_push(pair, tv_retain(self->u.dict.keys[i]));
        tv_list_push(pair, tv_retain(self->u.dict.vals[i]));
        tv_list_push(out, pair);
    }
    return out;
}

METHOD(dict_keys) {
    NOARGS(keys);
    tv *out = tv_list_new(TV_LIST, self->u.dict.len);
    for (size_t i = 0; i < self->u.dict.len; i++) tv_list_push(out, tv_retain(self->u.dict.keys[i]));
    return out;
}

METHOD(dict_values) {
    NOARGS(values);
    tv *out = tv_list_new(TV_LIST, self->u.dict.len);
    for (size_t i = 0; i < self->u.dict.len; i++) tv_list_push(out, tv_retain(self->u.dict.vals[i]));
    return out;
}

METHOD(dict_copy) {
    NOARGS(copy);
    tv *out = tv_dict_new(TV_DICT);
    for (size_t i = 0; i < self->u.dict.len; i++)
        tv_dict_set(out, tv_retain(self->u.dict.keys[i]), tv_retain(self->u.dict.vals[i]));
    return out;
}

METHOD(list_count) {
    ARGS(count, "value");
    tv *x = targ(a, 0, "value");
    if (!x) return tpl_fail(r, "count() takes exactly one argument (0 given)");
    int64_t n = 0;
    for (size_t i = 0; i < self->u.list.len; i++) n += tv_equal(self->u.list.items[i], x);
    return tv_int(n);
}

METHOD(list_index) {
    ARGS(index, "value");
    tv *x = targ(a, 0, "value");
    if (!x) return tpl_fail(r, "index expected at least 1 argument, got 0");
    for (size_t i = 0; i < self->u.list.len; i++)
        if (tv_equal(self->u.list.items[i], x)) return tv_int((int64_t)i);
    return tpl_fail(r, "value is not in list");
}

METHOD(list_copy) {
    NOARGS(copy);
    tv *out = tv_list_new(TV_LIST, self->u.list.len);
    for (size_t i = 0; i < self->u.list.len; i++) tv_list_push(out, tv_retain(self->u.list.items[i]));
    return out;
}

/* list.pop and list.clear are NOT in jinja2's _mutable_spec, so the
 * immutable sandbox allows them; they mutate the (shared) list in place. */
METHOD(list_pop) {
    ARGS(pop, "index");
    int64_t n = (int64_t)self->u.list.len, i = n - 1;
    tv *iv = targ(a, 0, "index");
    if (iv && !want_int(r, iv, "index", &i)) return NULL;
    if (!n) return tpl_fail(r, "pop from empty list");
    if (i < 0) i += n;
    if (i < 0 || i >= n) return tpl_fail(r, "pop index out of range");
    tv *item = self->u.list.items[i];
    memmove(self->u.list.items + i, self->u.list.items + i + 1, (size_t)(n - i - 1) * sizeof(tv *));
    self->u.list.len--;
    return item;
}

METHOD(list_clear) {
    NOARGS(clear);
    for (size_t i = 0; i < self->u.list.len; i++) tv_release(self->u.list.items[i]);
    self->u.list.len = 0;
    return tv_none();
}

typedef struct method_entry {
    const char *name;
    tv_builtin fn; /* NULL = exists but the immutable sandbox forbids it */
} method_entry;

static const method_entry STR_METHODS[] = {
    {"upper", m_str_upper}, {"lower", m_str_lower}, {"title", m_str_title}, {"capitalize", m_str_capitalize},
    {"swapcase", m_str_swapcase}, {"casefold", m_str_lower}, {"strip", m_str_strip}, {"lstrip", m_str_lstrip},
    {"rstrip", m_str_rstrip}, {"split", m_str_split}, {"rsplit", m_str_rsplit}, {"splitlines", m_str_splitlines},
    {"startswith", m_str_startswith}, {"endswith", m_str_endswith}, {"find", m_str_find}, {"rfind", m_str_rfind},
    {"index", m_str_index}, {"rindex", m_str_rindex}, {"count", m_str_count}, {"replace", m_str_replace},
    {"join", m_str_join}, {"center", m_str_center}, {"ljust", m_str_ljust}, {"rjust", m_str_rjust},
    {"zfill", m_str_zfill}, {"removeprefix", m_str_removeprefix}, {"removesuffix", m_str_removesuffix},
    {"partition", m_str_partition}, {"rpartition", m_str_rpartition}, {"isalnum", m_str_isalnum},
    {"isalpha", m_str_isalpha}, {"isdigit", m_str_isdigit}, {"isdecimal", m_str_isdigit},
    {"isnumeric", m_str_isdigit}, {"isspace", m_str_isspace}, {"islower", m_str_islower},
    {"isupper", m_str_isupper}, {"format", m_unsupported}, {"format_map", m_unsupported},
    {"encode", m_unsupported}, {"expandtabs", m_unsupported}, {"isascii", m_unsupported},
    {"isidentifier", m_unsupported}, {"isprintable", m_unsupported}, {"istitle", m_unsupported},
    {"maketrans", m_unsupported}, {"translate", m_unsupported}, {NULL, NULL}};

static const method_entry DICT_METHODS[] = {
    {"get", m_dict_get}, {"items", m_dict_items}, {"keys", m_dict_keys}, {"values", m_dict_values},
    {"copy", m_dict_copy}, {"fromkeys", m_unsupported}, {"clear", NULL}, {"pop", NULL}, {"popitem", NULL},
    {"setdefault", NULL}, {"update", NULL}, {NULL, NULL}};

static const method_entry LIST_METHODS[] = {
    {"count", m_list_count}, {"index", m_list_index}, {"copy", m_list_copy}, {"pop", m_list_pop},
    {"clear", m_list_clear}, {"append", NULL}, {"extend", NULL}, {"insert", NULL}, {"remove", NULL},
    {"reverse", NULL}, {"sort", NULL},
    {NULL, NULL}};

static const method_entry TUPLE_METHODS[] = {{"count", m_list_count}, {"index", m_list_index}, {NULL, NULL}};

static const method_entry NUMBER_METHODS[] = {
    {"bit_length", m_unsupported}, {"bit_count", m_unsupported}, {"conjugate", m_unsupported},
    {"to_bytes", m_unsupported}, {"from_bytes", m_unsupported}, {"as_integer_ratio", m_unsupported},
    {"is_integer", m_unsupported}, {"hex", m_unsupported}, {"fromhex", m_unsupported}, {NULL, NULL}};

tv *tpl_get_method(tpl_render *r, tv *obj, const char *name, size_t len, bool *unsafe) {
    (void)r;
    const method_entry *table;
    switch (obj->kind) {
    case TV_STR: table = STR_METHODS; break;
    case TV_DICT: table = DICT_METHODS; break;
    case TV_LIST: table = LIST_METHODS; break;
    case TV_TUPLE: table = TUPLE_METHODS; break;
    case TV_FLOAT: /* float.real is the float itself; floats have no numerator */
        if (len == 4 && memcmp(name, "real", 4) == 0) return tv_retain(obj);
        if (len == 4 && memcmp(name, "imag", 4) == 0) return tv_float(0.0);
        table = NUMBER_METHODS;
        break;
    case TV_INT: case TV_BOOL: { /* int attributes (data descriptors, not methods); bool is an int */
        int64_t iv = obj->kind == TV_INT ? obj->u.i : (int64_t)obj->u.b;
        if (len == 4 && memcmp(name, "real", 4) == 0) return tv_int(iv);
        if (len == 4 && memcmp(name, "imag", 4) == 0) return tv_int(0);
        if (len == 9 && memcmp(name, "numerator", 9) == 0) return tv_int(iv);
        if (len == 11 && memcmp(name, "denominator", 11) == 0) return tv_int(1);
        table = NUMBER_METHODS;
        break;
    }
    default: return NULL;
    }
    for (const method_entry *m = table; m->name; m++)
        if (strlen(m->name) == len && memcmp(m->name, name, len) == 0) {
            if (!m->fn) {
                *unsafe = true;
                return NULL;
            }
            return tv_func(m->fn, obj, m->name);
        }
    return NULL;
}

/* ---------------------------------------------------------------- helpers */

/* environment.getitem along a dotted attribute path (make_attrgetter). */
static tv *attr_path(tpl_render *r, tv *item, tv *attribute, tv *dflt) {
    tv *cur = tv_retain(item);
    if (attribute->kind == TV_INT) {
        tv *v = tpl_getitem(r, cur, attribute);
        tv_release(cur);
        if (v && dflt && v->kind == TV_UNDEFINED) {
            tv_release(v);
            v = tv_retain(dflt);
        }
        return v;
    }
    if (attribute->kind != TV_STR) {
        tv_release(cur);
        return tpl_fail(r, "attribute must be a string or an integer");
    }
    const char *s = attribute->u.str.s;
    size_t len = attribute->u.str.len, i = 0;
    for (;;) {
        const char *dot = memchr(s + i, '.', len - i);
        size_t end = dot ? (size_t)(dot - s) : len;
        bool digits = end > i;
        for (size_t k = i; k < end; k++)
            if (s[k] < '0' || s[k] > '9') digits = false;
        tv *key = digits ? tv_int(strtoll(s + i, NULL, 10)) : tv_str(s + i, end - i);
        tv *next = tpl_getitem(r, cur, key);
        tv_release(key);
        tv_release(cur);
        if (!next) return NULL;
        if (dflt && next->kind == TV_UNDEFINED) {
            tv_release(next);
            next = tv_retain(dflt);
        }
        cur = next;
        if (!dot) break;
        i = end + 1;
    }
    return cur;
}

static tv *ignore_case(tv *v) {
    if (v->kind == TV_STR) {
        tv *l = lower_str(v);
        tv_release(v);
        return l;
    }
    return v;
}

/* Stable merge sort of items by precomputed keys; false on a compare error. */
static bool sort_by_keys(tpl_render *r, tv **items, tv **keys, size_t n, bool reverse) {
    if (n < 2) return true;
    tv **tmp_i = ci_malloc(n * sizeof *tmp_i), **tmp_k = ci_malloc(n * sizeof *tmp_k);
    bool ok = true;
    for (size_t width = 1; width < n && ok; width *= 2) {
        for (size_t lo = 0; lo < n && ok; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if (!tv_compare(r, keys[j], keys[i], &c)) {
                    ok = false;
                    break;
                }
                /* take from the right run only when strictly smaller (larger when reversed): stable */
                bool take_right = reverse ? (c > 0 && c != 2) : (c < 0);
                if (take_right) tmp_i[k] = items[j], tmp_k[k++] = keys[j++];
                else tmp_i[k] = items[i], tmp_k[k++] = keys[i++];
            }
            if (!ok) break;
            while (i < mid) tmp_i[k] = items[i], tmp_k[k++] = keys[i++];
            while (j < hi) tmp_i[k] = items[j], tmp_k[k++] = keys[j++];
            memcpy(items + lo, tmp_i + lo, (hi - lo) * sizeof *items);
            memcpy(keys + lo, tmp_k + lo, (hi - lo) * sizeof *keys);
        }
    }
    free(tmp_i);
    free(tmp_k);
    return ok;
}

static tv *make_iter_from_list(tv *list) {
    /* converts a fresh TV_LIST into a one-shot generator in place */
    list->kind = TV_ITER;
    return list;
}

/* ---------------------------------------------------------------- filters */

#define FILTER(name) static tv *f_##name(tpl_render *r, tv *value, tv_args *a)

FILTER(tojson) {
    ARGS(tojson, "ensure_ascii", "indent", "separators", "sort_keys");
    tv *ea = targ(a, 0, "ensure_ascii"), *ind = targ(a, 1, "indent"), *sep = targ(a, 2, "separators"),
       *sk = targ(a, 3, "sort_keys");
    char indent_buf[256];
    const char *indent = NULL;
    tv *indent_str = NULL;
    if (ind && ind->kind != TV_NONE) {
        if (ind->kind == TV_STR) {
            indent_str = ind;
            indent = ind->u.str.s;
        } else if (ind->kind == TV_INT || ind->kind == TV_BOOL) {
            int64_t n = ind->kind == TV_INT ? ind->u.i : ind->u.b;
            if (n > 200) return tpl_fail_limit(r, "tojson indent too large");
            if (n < 0) n = 0;
            memset(indent_buf, ' ', (size_t)n);
            indent_buf[n] = '\0';
            indent = indent_buf;
        } else {
            return tpl_fail(r, "can't multiply sequence by non-int of type '%s'", tv_type_name(ind));
        }
    }
    (void)indent_str;
    const char *item_sep = indent ? "," : ", ", *key_sep = ": ";
    tv *sep_items = NULL;
    if (sep && sep->kind != TV_NONE) {
        sep_items = tpl_iterate(r, sep);
        if (!sep_items) return NULL;
        if (sep_items->u.list.len != 2 || sep_items->u.list.items[0]->kind != TV_STR ||
            sep_items->u.list.items[1]->kind != TV_STR) {
            tv_release(sep_items);
            return tpl_fail(r, "separators must be a pair of strings");
        }
        item_sep = sep_items->u.list.items[0]->u.str.s;
        key_sep = sep_items->u.list.items[1]->u.str.s;
    }
    ci_buf b = {0};
    bool ok = tv_dumps(r, &b, value, indent, arg_bool(ea, false), item_sep, key_sep, arg_bool(sk, false), 0);
    tv_release(sep_items);
    if (!ok) {
        ci_buf_free(&b);
        return NULL;
    }
    return str_result(&b);
}

FILTER(default) {
    ARGS(default, "default_value", "boolean");
    tv *d = targ(a, 0, "default_value");
    bool boolean = arg_bool(targ(a, 1, "boolean"), false);
    if (value->kind == TV_UNDEFINED || (boolean && !tv_truthy(value))) return d ? tv_retain(d) : tv_str("", 0);
    return tv_retain(value);
}

static bool py_len(tpl_render *r, tv *v, int64_t *out) {
    switch (v->kind) {
    case TV_UNDEFINED: *out = 0; return true;
    case TV_STR: *out = (int64_t)tv_str_codepoints(v); return true;
    case TV_LIST: case TV_TUPLE: *out = (int64_t)v->u.list.len; return true;
    case TV_DICT: *out = (int64_t)v->u.dict.len; return true;
    default: tpl_fail(r, "object of type '%s' has no len()", tv_type_name(v)); return false;
    }
}

FILTER(length) {
    NOARGS(length);
    int64_t n;
    return py_len(r, value, &n) ? tv_int(n) : NULL;
}

static tv *str_filter(tpl_render *r, tv *value, tv *(*fn)(const tv *)) {
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    tv *out = fn(s);
    tv_release(s);
    return out;
}
FILTER(upper) { NOARGS(upper); return str_filter(r, value, upper_str); }
FILTER(lower) { NOARGS(lower); return str_filter(r, value, lower_str); }
FILTER(capitalize) { NOARGS(capitalize); return str_filter(r, value, capitalize_str); }

/* jinja2 do_title: split on runs of [-\s({\[<], upper first char, lower rest. */
FILTER(title) {
    NOARGS(title);
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    ci_buf b = {0};
    const char *p = s->u.str.s;
    size_t len = s->u.str.len, i = 0;
    while (i < len) {
        /* an item is either a separator run or a word */
        size_t j = i;
        uint32_t cp = utf8_next(p, len, &j);
        bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || uni_isspace(cp);
        size_t end = j;
        while (end < len) {
            size_t k = end;
            uint32_t c2 = utf8_next(p, len, &k);
            bool s2 = c2 == '-' || c2 == '(' || c2 == '{' || c2 == '[' || c2 == '<' || uni_isspace(c2);
            if (s2 != sep) break;
            end = k;
        }
        uni_upper(&b, cp);
        size_t k = j;
        while (k < end) uni_lower(&b, utf8_next(p, end, &k));
        i = end;
    }
    tv_release(s);
    return str_result(&b);
}

FILTER(trim) {
    ARGS(trim, "chars");
    tv *chars = targ(a, 0, "chars");
    if (chars && chars->kind == TV_NONE) chars = NULL;
    if (chars && !want_str(r, chars, "strip arg")) return NULL;
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    tv *out = strip_impl(s->u.str.s, s->u.str.len, chars, 3);
    tv_release(s);
    return out;
}

FILTER(string) {
    NOARGS(string);
    if (value->kind == TV_STR) return tv_retain(value);
    return soft_str(r, value);
}

FILTER(safe) {
    NOARGS(safe);
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    tv *out = tv_str(s->u.str.s, s->u.str.len);
    tv_release(s);
    out->markup = 1;
    return out;
}

static tv *html_escape(tpl_render *r, tv *value, bool force) {
    if (value->kind == TV_STR && value->markup && !force) return tv_retain(value);
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    ci_buf b = {0};
    for (size_t i = 0; i < s->u.str.len; i++) {
        char c = s->u.str.s[i];
        switch (c) {
        case '&': ci_buf_puts(&b, "&amp;"); break;
        case '<': ci_buf_puts(&b, "&lt;"); break;
        case '>': ci_buf_puts(&b, "&gt;"); break;
        case '"': ci_buf_puts(&b, "&#34;"); break;
        case '\'': ci_buf_puts(&b, "&#39;"); break;
        default: ci_buf_putc(&b, c);
        }
    }
    tv_release(s);
    tv *out = str_result(&b);
    out->markup = 1;
    return out;
}
FILTER(escape) { NOARGS(escape); return html_escape(r, value, false); }
FILTER(forceescape) { NOARGS(forceescape); return html_escape(r, value, true); }

FILTER(replace) {
    ARGS(replace, "old", "new", "count");
    tv *old = targ(a, 0, "old"), *new_ = targ(a, 1, "new"), *cnt = targ(a, 2, "count");
    if (!old || !new_) return tpl_fail(r, "replace filter needs old and new");
    int64_t count = -1;
    if (cnt && cnt->kind != TV_NONE && !want_int(r, cnt, "count", &count)) return NULL;
    tv *s = soft_str(r, value), *o = soft_str(r, old), *n = soft_str(r, new_);
    tv *out = s && o && n ? replace_impl(r, s, o, n, count) : NULL;
    tv_release(s);
    tv_release(o);
    tv_release(n);
    return out;
}

FILTER(join) {
    ARGS(join, "d", "attribute");
    tv *d = targ(a, 0, "d"), *attribute = targ(a, 1, "attribute");
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *sep = d ? soft_str(r, d) : tv_str("", 0);
    if (!sep) {
        tv_release(items);
        return NULL;
    }
    ci_buf b = {0};
    bool ok = true;
    for (size_t i = 0; i < items->u.list.len && ok; i++) {
        tv *x = items->u.list.items[i];
        tv *item = attribute && attribute->kind != TV_NONE ? attr_path(r, x, attribute, NULL) : tv_retain(x);
        if (!item) {
            ok = false;
            break;
        }
        if (i) ci_buf_append(&b, sep->u.str.s, sep->u.str.len);
        ok = tv_to_str(r, &b, item) && tpl_check_string_size(r, b.len);
        tv_release(item);
    }
    tv_release(sep);
    tv_release(items);
    if (!ok) {
        ci_buf_free(&b);
        return NULL;
    }
    return str_result(&b);
}

FILTER(items) {
    NOARGS(items);
    if (value->kind == TV_UNDEFINED) return make_iter_from_list(tv_list_new(TV_LIST, 0));
    if (value->kind != TV_DICT) return tpl_fail(r, "Can only get item pairs from a mapping.");
    tv_args none = {0};
    return make_iter_from_list(m_dict_items(r, value, &none));
}

FILTER(list) {
    NOARGS(list);
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    if (items->kind == TV_LIST && items != value) return items;
    tv *out = tv_list_new(TV_LIST, items->u.list.len);
    for (size_t i = 0; i < items->u.list.len; i++) tv_list_push(out, tv_retain(items->u.list.items[i]));
    tv_release(items);
    return out;
}

FILTER(first) {
    NOARGS(first);
    if (value->kind == TV_DICT || value->kind == TV_LIST || value->kind == TV_TUPLE || value->kind == TV_STR ||
        value->kind == TV_ITER || value->kind == TV_UNDEFINED) {
        tv *items = tpl_iterate(r, value);
        if (!items) return NULL;
        tv *out = items->u.list.len ? tv_retain(items->u.list.items[0])
                                    : tv_undefined_hint("No first item, sequence was empty.");
        tv_release(items);
        return out;
    }
    return tpl_fail(r, "'%s' object is not iterable", tv_type_name(value));
}

FILTER(last) {
    NOARGS(last);
    if (value->kind == TV_ITER) return tpl_fail(r, "'generator' object is not reversible");
    if (value->kind == TV_DICT || value->kind == TV_LIST || value->kind == TV_TUPLE || value->kind == TV_STR ||
        value->kind == TV_UNDEFINED) {
        tv *items = tpl_iterate(r, value);
        if (!items) return NULL;
        tv *out = items->u.list.len ? tv_retain(items->u.list.items[items->u.list.len - 1])
                                    : tv_undefined_hint("No last item, sequence was empty.");
        tv_release(items);
        return out;
    }
    return tpl_fail(r, "'%s' object is not reversible", tv_type_name(value));
}

FILTER(reverse) {
    NOARGS(reverse);
    if (value->kind == TV_STR) {
        ci_buf b = {0};
        size_t end = value->u.str.len;
        while (end > 0) {
            size_t k = end - 1;
            while (k > 0 && ((unsigned char)value->u.str.s[k] & 0xC0) == 0x80) k--;
            ci_buf_append(&b, value->u.str.s + k, end - k);
            end = k;
        }
        return str_result(&b);
    }
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *out = tv_list_new(TV_LIST, items->u.list.len);
    for (size_t i = items->u.list.len; i-- > 0;) tv_list_push(out, tv_retain(items->u.list.items[i]));
    tv_release(items);
    return make_iter_from_list(out);
}

static tv *select_common(tpl_render *r, tv *value, tv_args *a, bool select, bool lookup_attr) {
    if (!tv_truthy(value)) return make_iter_from_list(tv_list_new(TV_LIST, 0));
    size_t off = 0;
    tv *attr = NULL;
    if (lookup_attr) {
        if (a->npos < 1) return tpl_fail(r, "Missing parameter for attribute name");
        attr = a->pos[0];
        off = 1;
    }
    tv_test_fn test = NULL;
    if (a->npos > off) {
        tv *name = a->pos[off];
        if (name->kind != TV_STR) return tpl_fail(r, "test name must be a string");
        test = tpl_find_test(name->u.str.s, name->u.str.len);
        if (!test) return tpl_fail(r, "No test named '%s'.", name->u.str.s);
    }
    /* the test's own arguments follow its name; none at all (`select()`) is
     * an empty list, and a->pos may then be NULL (no pointer arithmetic on it) */
    size_t first = off + 1;
    tv_args sub = {.pos = a->npos > first ? a->pos + first : NULL, .npos = a->npos > first ? a->npos - first : 0,
                   .kwnames = a->kwnames, .kwvals = a->kwvals, .nkw = a->nkw};
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *out = tv_list_new(TV_LIST, 0);
    for (size_t i = 0; i < items->u.list.len; i++) {
        tv *item = items->u.list.items[i];
        tv *x = attr ? attr_path(r, item, attr, NULL) : tv_retain(item);
        if (!x) goto fail;
        int t = test ? test(r, x, &sub) : tv_truthy(x);
        tv_release(x);
        if (t < 0) goto fail;
        if ((t != 0) == select) tv_list_push(out, tv_retain(item));
    }
    tv_release(items);
    return make_iter_from_list(out);
fail:
    tv_release(items);
    tv_release(out);
    return NULL;
}
FILTER(select) { return select_common(r, value, a, true, false); }
FILTER(reject) { return select_common(r, value, a, false, false); }
FILTER(selectattr) { return select_common(r, value, a, true, true); }
FILTER(rejectattr) { return select_common(r, value, a, false, true); }

FILTER(map) {
    tv *attr = NULL, *dflt = NULL;
    tv_filter_fn fn = NULL;
    tv_args sub = {0};
    if (!a->npos && targ(a, 99, "attribute")) {
        attr = targ(a, 99, "attribute");
        dflt = targ(a, 99, "default");
        for (size_t i = 0; i < a->nkw; i++)
            if (strcmp(a->kwnames[i], "attribute") && strcmp(a->kwnames[i], "default"))
                return tpl_fail(r, "Unexpected keyword argument '%s'", a->kwnames[i]);
    } else {
        if (!a->npos) return tpl_fail(r, "map requires a filter argument");
        tv *name = a->pos[0];
        if (name->kind != TV_STR) return tpl_fail(r, "filter name must be a string");
        fn = tpl_find_filter(name->u.str.s, name->u.str.len);
        if (!fn) return tpl_fail(r, "No filter named '%s'.", name->u.str.s);
        sub = (tv_args){.pos = a->pos + 1, .npos = a->npos - 1, .kwnames = a->kwnames, .kwvals = a->kwvals, .nkw = a->nkw};
    }
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *out = tv_list_new(TV_LIST, items->u.list.len);
    for (size_t i = 0; i < items->u.list.len; i++) {
        tv *x = attr ? attr_path(r, items->u.list.items[i], attr, dflt) : fn(r, items->u.list.items[i], &sub);
        if (!x) {
            tv_release(items);
            tv_release(out);
            return NULL;
        }
        tv_list_push(out, x);
    }
    tv_release(items);
    return make_iter_from_list(out);
}

/* Keys for sort/unique/min/max: attribute lookup plus case folding. */
static tv *sort_key(tpl_render *r, tv *item, tv *attribute, bool case_sensitive) {
    tv *k = attribute && attribute->kind != TV_NONE ? attr_path(r, item, attribute, NULL) : tv_retain(item);
    if (!k) return NULL;
    return case_sensitive ? k : ignore_case(k);
}

static tv *sorted_list(tpl_render *r, tv *items, tv *attribute, bool case_sensitive, bool reverse) {
    size_t n = items->u.list.len;
    tv *out = tv_list_new(TV_LIST, n);
    tv **keys = ci_calloc(n + 1, sizeof *keys);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        tv_list_push(out, tv_retain(items->u.list.items[i]));
        keys[i] = sort_key(r, items->u.list.items[i], attribute, case_sensitive);
        if (!keys[i]) ok = false;
    }
    if (ok) ok = sort_by_keys(r, out->u.list.items, keys, n, reverse);
    for (size_t i = 0; i < n; i++) tv_release(keys[i]);
    free(keys);
    if (!ok) {
        tv_release(out);
        return NULL;
    }
    return out;
}

FILTER(sort) {
    ARGS(sort, "reverse", "case_sensitive", "attribute");
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *out = sorted_list(r, items, targ(a, 2, "attribute"), arg_bool(targ(a, 1, "case_sensitive"), false),
                          arg_bool(targ(a, 0, "reverse"), false));
    tv_release(items);
    return out;
}

FILTER(dictsort) {
    ARGS(dictsort, "case_sensitive", "by", "reverse");
    if (value->kind != TV_DICT) return tpl_fail(r, "dictsort requires a mapping");
    tv *by = targ(a, 1, "by");
    int pos = 0;
    if (by && by->kind == TV_STR && strcmp(by->u.str.s, "value") == 0) pos = 1;
    else if (by && !(by->kind == TV_STR && strcmp(by->u.str.s, "key") == 0))
        return tpl_fail(r, "You can only sort by either \"key\" or \"value\"");
    bool cs = arg_bool(targ(a, 0, "case_sensitive"), false);
    tv_args none = {0};
    tv *pairs = m_dict_items(r, value, &none);
    size_t n = pairs->u.list.len;
    tv **keys = ci_calloc(n + 1, sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        tv *k = tv_retain(pairs->u.list.items[i]->u.list.items[pos]);
        keys[i] = cs ? k : ignore_case(k);
    }
    bool ok = sort_by_keys(r, pairs->u.list.items, keys, n, arg_bool(targ(a, 2, "reverse"), false));
    for (size_t i = 0; i < n; i++) tv_release(keys[i]);
    free(keys);
    if (!ok) {
        tv_release(pairs);
        return NULL;
    }
    return pairs;
}

FILTER(unique) {
    ARGS(unique, "case_sensitive", "attribute");
    bool cs = arg_bool(targ(a, 0, "case_sensitive"), false);
    tv *attribute = targ(a, 1, "attribute");
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *out = tv_list_new(TV_LIST, 0), *seen = tv_list_new(TV_LIST, 0);
    for (size_t i = 0; i < items->u.list.len; i++) {
        tv *k = sort_key(r, items->u.list.items[i], attribute, cs);
        if (!k) {
            tv_release(out);
            out = NULL;
            break;
        }
        if (!tv_hashable(k)) {
            tpl_fail(r, "unhashable type: '%s'", tv_type_name(k));
            tv_release(k);
            tv_release(out);
            out = NULL;
            break;
        }
        int c = tpl_contains(r, seen, k);
        if (!c) {
            tv_list_push(seen, k);
            tv_list_push(out, tv_retain(items->u.list.items[i]));
        } else {
            tv_release(k);
        }
    }
    tv_release(seen);
    tv_release(items);
    return out ? make_iter_from_list(out) : NULL;
}

static tv *min_max(tpl_render *r, tv *value, tv_args *a, bool want_max) {
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    if (!targ_check(r, a, want_max ? "max" : "min", names)) return NULL;
    bool cs = arg_bool(targ(a, 0, "case_sensitive"), false);
    tv *attribute = targ(a, 1, "attribute");
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    if (!items->u.list.len) {
        tv_release(items);
        return tv_undefined_hint("No aggregated item, sequence was empty.");
    }
    tv *best = NULL, *best_key = NULL;
    for (size_t i = 0; i < items->u.list.len; i++) {
        tv *k = sort_key(r, items->u.list.items[i], attribute, cs);
        if (!k) goto fail;
        if (best) {
            int c;
            if (!tv_compare(r, k, best_key, &c)) {
                tv_release(k);
                goto fail;
            }
            if (!(want_max ? (c > 0 && c != 2) : (c < 0))) {
                tv_release(k);
                continue;
            }
        }
        tv_release(best_key);
        best_key = k;
        best = items->u.list.items[i];
    }
    tv_retain(best);
    tv_release(best_key);
    tv_release(items);
    return best;
fail:
    tv_release(best_key);
    tv_release(items);
    return NULL;
}
FILTER(min) { return min_max(r, value, a, false); }
FILTER(max) { return min_max(r, value, a, true); }

FILTER(sum) {
    ARGS(sum, "attribute", "start");
    tv *attribute = targ(a, 0, "attribute"), *start = targ(a, 1, "start");
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *acc = start ? tv_retain(start) : tv_int(0);
    for (size_t i = 0; i < items->u.list.len && acc; i++) {
        tv *x = attribute && attribute->kind != TV_NONE ? attr_path(r, items->u.list.items[i], attribute, NULL)
                                                        : tv_retain(items->u.list.items[i]);
        if (!x) {
            tv_release(acc);
            acc = NULL;
            break;
        }
        if (acc->kind == TV_STR) { /* Python's sum() refuses strings */
            tv_release(x);
            tv_release(acc);
            acc = tpl_fail(r, "sum() can't sum strings [use ''.join(seq) instead]");
            break;
        }
        tv *next = tpl_binop(r, OP_ADD, acc, x);
        tv_release(x);
        tv_release(acc);
        acc = next;
    }
    tv_release(items);
    return acc;
}

/* Python int(str, base) including whitespace and underscores. */
static bool parse_int_str(const tv *s, int base, int64_t *out) {
    tv *t = strip_impl(s->u.str.s, s->u.str.len, NULL, 3);
    const char *p = t->u.str.s;
    size_t len = t->u.str.len, i = 0;
    bool neg = false, ok = false;
    if (i < len && (p[i] == '+' || p[i] == '-')) neg = p[i++] == '-';
    if (base == 0) {
        base = 10;
        if (i + 1 < len && p[i] == '0') {
            char x = (char)(p[i + 1] | 32);
            if (x == 'x') base = 16, i += 2;
            else if (x == 'o') base = 8, i += 2;
            else if (x == 'b') base = 2, i += 2;
        }
    } else if (base == 16 && i + 1 < len && p[i] == '0' && (p[i + 1] | 32) == 'x') i += 2;
    uint64_t v = 0;
    bool prev_digit = false;
    for (; i < len; i++) {
        char c = p[i];
        if (c == '_' && prev_digit && i + 1 < len) {
            prev_digit = false;
            continue;
        }
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'z' ? (c | 32) - 'a' + 10 : 99;
        if (d >= base) {
            ok = false;
            goto out;
        }
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) {
            ok = false;
            goto out;
        }
        v = v * (uint64_t)base + (uint64_t)d;
        prev_digit = true;
        ok = true;
    }
    if (ok && !prev_digit) ok = false;
    if (ok && v > (uint64_t)INT64_MAX + neg) ok = false;
    if (ok) *out = neg ? (int64_t)(0 - v) : (int64_t)v;
out:
    tv_release(t);
    return ok;
}

/* Python float(str): strtod with Python's accepted spellings. */
static bool parse_float_str(const tv *s, double *out) {
    tv *t = strip_impl(s->u.str.s, s->u.str.len, NULL, 3);
    char buf[128];
    size_t n = 0;
    bool ok = t->u.str.len > 0 && t->u.str.len < sizeof buf;
    for (size_t i = 0; ok && i < t->u.str.len; i++) {
        char c = t->u.str.s[i];
        if (c == '_') {
            ok = i > 0 && i + 1 < t->u.str.len && t->u.str.s[i - 1] >= '0' && t->u.str.s[i - 1] <= '9' &&
                 t->u.str.s[i + 1] >= '0' && t->u.str.s[i + 1] <= '9';
            continue;
        }
        if (!(c >= '0' && c <= '9') && !strchr("+-.eEinfatyINFATY", c)) ok = false;
        buf[n++] = c;
    }
    buf[n] = '\0';
    if (ok) {
        char *end;
        double d = strtod(buf, &end);
        const char *low = buf + (buf[0] == '+' || buf[0] == '-');
        bool word = strcasecmp(low, "inf") == 0 || strcasecmp(low, "infinity") == 0 || strcasecmp(low, "nan") == 0;
        bool hexy = strchr(buf, 'x') || strchr(buf, 'X');
        ok = *end == '\0' && !hexy && (word || strpbrk(low, "0123456789"));
        if (ok) *out = d;
    }
    tv_release(t);
    return ok;
}

FILTER(int) {
    ARGS(int, "default", "base");
    tv *dflt = targ(a, 0, "default"), *base_v = targ(a, 1, "base");
    int64_t base = 10;
    if (base_v && !want_int(r, base_v, "base", &base)) return NULL;
    int64_t out;
    if (value->kind == TV_STR) {
        if (parse_int_str(value, (int)base, &out)) return tv_int(out);
        double d;
        if (parse_float_str(value, &d)) {
            if (isnan(d) || isinf(d)) return tpl_fail(r, "cannot convert float to integer");
            if (fabs(d) < 9.2e18) return tv_int((int64_t)d);
        }
    } else if (value->kind == TV_INT || value->kind == TV_BOOL) {
        return tv_int(value->kind == TV_INT ? value->u.i : value->u.b);
    } else if (value->kind == TV_FLOAT) {
        if (isnan(value->u.f) || isinf(value->u.f)) return tpl_fail(r, "cannot convert float to integer");
        if (fabs(value->u.f) < 9.2e18) return tv_int((int64_t)value->u.f);
    }
    return dflt ? tv_retain(dflt) : tv_int(0);
}

FILTER(float) {
    ARGS(float, "default");
    tv *dflt = targ(a, 0, "default");
    double d;
    if (value->kind == TV_FLOAT) return tv_retain(value);
    if (value->kind == TV_INT) return tv_float((double)value->u.i);
    if (value->kind == TV_BOOL) return tv_float(value->u.b);
    if (value->kind == TV_STR && parse_float_str(value, &d)) return tv_float(d);
    return dflt ? tv_retain(dflt) : tv_float(0.0);
}

FILTER(abs) {
    NOARGS(abs);
    if (value->kind == TV_INT) {
        if (value->u.i == INT64_MIN) return tpl_fail(r, "integer overflow");
        return tv_int(value->u.i < 0 ? -value->u.i : value->u.i);
    }
    if (value->kind == TV_BOOL) return tv_int(value->u.b);
    if (value->kind == TV_FLOAT) return tv_float(fabs(value->u.f));
    if (value->kind == TV_UNDEFINED) return tpl_fail_undefined(r, value);
    return tpl_fail(r, "bad operand type for abs(): '%s'", tv_type_name(value));
}

FILTER(round) {
    ARGS(round, "precision", "method");
    tv *prec_v = targ(a, 0, "precision"), *method = targ(a, 1, "method");
    int64_t prec = 0;
    if (prec_v && !want_int(r, prec_v, "precision", &prec)) return NULL;
    const char *m = "common";
    if (method) {
        if (method->kind != TV_STR) return tpl_fail(r, "method must be common, ceil or floor");
        m = method->u.str.s;
    }
    bool common = strcmp(m, "common") == 0, ceil_ = strcmp(m, "ceil") == 0, floor_ = strcmp(m, "floor") == 0;
    if (!common && !ceil_ && !floor_) return tpl_fail(r, "method must be common, ceil or floor");
    if (value->kind == TV_UNDEFINED) return tpl_fail_undefined(r, value);
    if (!tv_is_number(value)) return tpl_fail(r, "type %s doesn't define __round__ method", tv_type_name(value));
    if (common && value->kind != TV_FLOAT) return tv_int(value->kind == TV_INT ? value->u.i : value->u.b);
    double x = value->kind == TV_FLOAT ? value->u.f : (double)(value->kind == TV_INT ? value->u.i : value->u.b);
    if (prec > 300 || prec < -300) return tpl_fail(r, "precision out of range");
    if (common) {
        if (isnan(x) || isinf(x)) return tv_float(x);
        if (prec >= 0) { /* correctly rounded, ties to even, as CPython */
            char buf[512];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
            return tv_float(strtod(buf, NULL));
        }
        double p10 = pow(10.0, (double)-prec);
        double y = x / p10, ry = nearbyint(y);
        return tv_float(ry * p10);
    }
    double p10 = pow(10.0, (double)prec);
    return tv_float((ceil_ ? ceil(x * p10) : floor(x * p10)) / p10);
}

FILTER(indent) {
    ARGS(indent, "width", "first", "blank");
    tv *w = targ(a, 0, "width");
    bool first = arg_bool(targ(a, 1, "first"), false), blank = arg_bool(targ(a, 2, "blank"), false);
    ci_buf ind = {0};
    if (w && w->kind == TV_STR) ci_buf_append(&ind, w->u.str.s, w->u.str.len);
    else {
        int64_t n = 4;
        if (w && !want_int(r, w, "width", &n)) return NULL;
        if (n > 1000) return tpl_fail_limit(r, "indent width too large");
        for (int64_t i = 0; i < n; i++) ci_buf_putc(&ind, ' ');
    }
    if (!ind.data) ci_buf_puts(&ind, "");
    tv *s = soft_str(r, value);
    if (!s) {
        ci_buf_free(&ind);
        return NULL;
    }
    ci_buf withnl = {0};
    ci_buf_append(&withnl, s->u.str.s, s->u.str.len);
    ci_buf_putc(&withnl, '\n');
    tv_release(s);
    tv *tmp = tv_str_take(withnl.data, withnl.len);
    tv *lines = splitlines_impl(tmp, false);
    tv_release(tmp);
    ci_buf b = {0};
    size_t n = lines->u.list.len;
    for (size_t i = 0; i < n; i++) {
        tv *line = lines->u.list.items[i];
        if (i) ci_buf_putc(&b, '\n');
        if (i && (blank || line->u.str.len)) ci_buf_append(&b, ind.data, ind.len);
        ci_buf_append(&b, line->u.str.s, line->u.str.len);
        if (!tpl_check_string_size(r, b.len)) break;
    }
    tv_release(lines);
    if (r->failed) {
        ci_buf_free(&b);
        ci_buf_free(&ind);
        return NULL;
    }
    ci_buf out = {0};
    if (first) ci_buf_append(&out, ind.data, ind.len);
    ci_buf_append(&out, b.data ? b.data : "", b.len);
    ci_buf_free(&b);
    ci_buf_free(&ind);
    return str_result(&out);
}

FILTER(center) {
    ARGS(center, "width");
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    tv *w = targ(a, 0, "width");
    tv *width = w ? tv_retain(w) : tv_int(80);
    tv_args sub = {.pos = &width, .npos = 1};
    tv *out = m_str_center(r, s, &sub);
    tv_release(width);
    tv_release(s);
    return out;
}

FILTER(wordcount) {
    NOARGS(wordcount);
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    int64_t n = 0;
    bool in_word = false;
    size_t i = 0;
    while (i < s->u.str.len) {
        bool w = uni_isword(utf8_next(s->u.str.s, s->u.str.len, &i));
        if (w && !in_word) n++;
        in_word = w;
    }
    tv_release(s);
    return tv_int(n);
}

FILTER(attr) {
    ARGS(attr, "name");
    tv *name = targ(a, 0, "name");
    if (!name || name->kind != TV_STR) return tpl_fail(r, "attribute name must be a string");
    /* do_attr uses Python getattr only: no fallback to dict keys */
    if (value->kind == TV_UNDEFINED) return tpl_fail_undefined(r, value);
    if (value->kind == TV_NAMESPACE || value->kind == TV_LOOP || value->kind == TV_INT || value->kind == TV_FLOAT ||
        value->kind == TV_BOOL)
        return tpl_getattr(r, value, name->u.str.s, name->u.str.len);
    bool unsafe = false;
    tv *m = tpl_get_method(r, value, name->u.str.s, name->u.str.len, &unsafe);
    if (m || r->failed) return m;
    tv *u = tv_undefined_hint("'%s object' has no attribute '%.80s'", tv_type_name(value), name->u.str.s);
    u->unsafe = unsafe;
    return u;
}

FILTER(batch) {
    ARGS(batch, "linecount", "fill_with");
    int64_t n;
    tv *lc = targ(a, 0, "linecount"), *fill = targ(a, 1, "fill_with");
    if (!lc) return tpl_fail(r, "batch() missing linecount");
    if (!want_int(r, lc, "linecount", &n)) return NULL;
    if (n <= 0) return tpl_fail(r, "batch size must be positive");
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    tv *out = tv_list_new(TV_LIST, 0), *cur = NULL;
    for (size_t i = 0; i < items->u.list.len; i++) {
        if (!cur) cur = tv_list_new(TV_LIST, (size_t)n);
        tv_list_push(cur, tv_retain(items->u.list.items[i]));
        if ((int64_t)cur->u.list.len == n) {
            tv_list_push(out, cur);
            cur = NULL;
        }
    }
    if (cur) {
        if (fill && fill->kind != TV_NONE)
            while ((int64_t)cur->u.list.len < n) tv_list_push(cur, tv_retain(fill));
        tv_list_push(out, cur);
    }
    tv_release(items);
    return make_iter_from_list(out);
}

FILTER(slice) {
    ARGS(slice, "slices", "fill_with");
    int64_t slices;
    tv *sl = targ(a, 0, "slices"), *fill = targ(a, 1, "fill_with");
    if (!sl) return tpl_fail(r, "slice() missing slices");
    if (!want_int(r, sl, "slices", &slices)) return NULL;
    if (slices <= 0 || slices > 100000) return tpl_fail(r, "invalid number of slices");
    tv *items = tpl_iterate(r, value);
    if (!items) return NULL;
    int64_t length = (int64_t)items->u.list.len, per = length / slices, extra = length % slices, offset = 0;
    tv *out = tv_list_new(TV_LIST, (size_t)slices);
    for (int64_t k = 0; k < slices; k++) {
        int64_t start = offset + k * per;
        if (k < extra) offset++;
        int64_t end = offset + (k + 1) * per;
        tv *part = tv_list_new(TV_LIST, 0);
        for (int64_t i = start; i < end; i++) tv_list_push(part, tv_retain(items->u.list.items[i]));
        if (fill && fill->kind != TV_NONE && k >= extra) tv_list_push(part, tv_retain(fill));
        tv_list_push(out, part);
    }
    tv_release(items);
    return make_iter_from_list(out);
}

FILTER(format) {
    tv *s = soft_str(r, value);
    if (!s) return NULL;
    tv *args = tv_list_new(TV_TUPLE, a->npos);
    for (size_t i = 0; i < a->npos; i++) tv_list_push(args, tv_retain(a->pos[i]));
    tv *out = a->nkw ? tpl_fail(r, "format with keyword arguments is not supported") : tpl_binop(r, OP_MOD, s, args);
    tv_release(args);
    tv_release(s);
    return out;
}

typedef struct filter_entry {
    const char *name;
    tv_filter_fn fn;
} filter_entry;

static const filter_entry FILTERS[] = {
    {"tojson", f_tojson}, {"default", f_default}, {"d", f_default}, {"length", f_length}, {"count", f_length},
    {"upper", f_upper}, {"lower", f_lower}, {"capitalize", f_capitalize}, {"title", f_title}, {"trim", f_trim},
    {"string", f_string}, {"safe", f_safe}, {"escape", f_escape}, {"e", f_escape}, {"forceescape", f_forceescape},
    {"replace", f_replace}, {"join", f_join}, {"items", f_items}, {"list", f_list}, {"first", f_first},
    {"last", f_last}, {"reverse", f_reverse}, {"select", f_select}, {"reject", f_reject},
    {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"map", f_map}, {"sort", f_sort},
    {"dictsort", f_dictsort}, {"unique", f_unique}, {"min", f_min}, {"max", f_max}, {"sum", f_sum},
    {"int", f_int}, {"float", f_float}, {"abs", f_abs}, {"round", f_round}, {"indent", f_indent},
    {"center", f_center}, {"wordcount", f_wordcount}, {"attr", f_attr}, {"batch", f_batch}, {"slice", f_slice},
    {"format", f_format}, {NULL, NULL}};

tv_filter_fn tpl_find_filter(const char *name, size_t len) {
    for (const filter_entry *f = FILTERS; f->name; f++)
        if (strlen(f->name) == len && memcmp(f->name, name, len) == 0) return f->fn;
    return NULL;
}

/* ------------------------------------------------------------------ tests */

#define TEST(name) static int t_##name(tpl_render *r, tv *value, tv_args *a)
#define TNOARGS(fn)                                                    \
    static const char *const fn##_names[] = {NULL};                    \
    if (!targ_check(r, a, #fn, fn##_names)) return -1

TEST(defined) { TNOARGS(defined); return value->kind != TV_UNDEFINED; }
TEST(undefined) { TNOARGS(undefined); return value->kind == TV_UNDEFINED; }
TEST(none) { TNOARGS(none); return value->kind == TV_NONE; }
TEST(boolean) { TNOARGS(boolean); return value->kind == TV_BOOL; }
TEST(true) { TNOARGS(true); return value->kind == TV_BOOL && value->u.b; }
TEST(false) { TNOARGS(false); return value->kind == TV_BOOL && !value->u.b; }
TEST(integer) { TNOARGS(integer); return value->kind == TV_INT; }
TEST(float) { TNOARGS(float); return value->kind == TV_FLOAT; }
TEST(number) { TNOARGS(number); return tv_is_number(value); }
TEST(string) { TNOARGS(string); return value->kind == TV_STR; }
TEST(mapping) { TNOARGS(mapping); return value->kind == TV_DICT; }
TEST(iterable) {
    TNOARGS(iterable);
    switch (value->kind) {
    case TV_STR: case TV_LIST: case TV_TUPLE: case TV_DICT: case TV_ITER: case TV_UNDEFINED: return 1;
    default: return 0;
    }
}
TEST(sequence) {
    TNOARGS(sequence);
    switch (value->kind) {
    case TV_STR: case TV_LIST: case TV_TUPLE: case TV_DICT: case TV_UNDEFINED: return 1;
    default: return 0;
    }
}
TEST(callable) {
    TNOARGS(callable);
    return value->kind == TV_FUNC || value->kind == TV_MACRO || value->kind == TV_UNDEFINED || value->kind == TV_LOOP;
}
TEST(escaped) { TNOARGS(escaped); return value->kind == TV_STR && value->markup; }

static int parity(tpl_render *r, tv *value, int64_t want) {
    tv *two = tv_int(2);
    tv *m = tpl_binop(r, OP_MOD, value, two);
    tv_release(two);
    if (!m) return -1;
    int res = m->kind == TV_FLOAT ? m->u.f == (double)want : m->kind == TV_INT ? m->u.i == want : 0;
    tv_release(m);
    return res;
}
TEST(odd) { TNOARGS(odd); return parity(r, value, 1); }
TEST(even) { TNOARGS(even); return parity(r, value, 0); }

TEST(divisibleby) {
    static const char *const names[] = {"num", NULL};
    if (!targ_check(r, a, "divisibleby", names)) return -1;
    tv *num = targ(a, 0, "num");
    if (!num) {
        tpl_fail(r, "divisibleby() missing argument");
        return -1;
    }
    tv *m = tpl_binop(r, OP_MOD, value, num);
    if (!m) return -1;
    int res = m->kind == TV_FLOAT ? m->u.f == 0.0 : m->kind == TV_INT ? m->u.i == 0 : 0;
    tv_release(m);
    return res;
}

static int cmp_test(tpl_render *r, tv *value, tv_args *a, int op) {
    static const char *const names[] = {"other", NULL};
    if (!targ_check(r, a, "compare", names)) return -1;
    tv *other = targ(a, 0, "other");
    if (!other) {
        tpl_fail(r, "test needs an argument");
        return -1;
    }
    if (op == OP_EQ) return tv_equal(value, other);
    if (op == OP_NE) return !tv_equal(value, other);
    int c;
    if (!tv_compare(r, value, other, &c)) return -1;
    if (c == 2) return 0;
    return op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
}
TEST(eq) { return cmp_test(r, value, a, OP_EQ); }
TEST(ne) { return cmp_test(r, value, a, OP_NE); }
TEST(lt) { return cmp_test(r, value, a, OP_LT); }
TEST(le) { return cmp_test(r, value, a, OP_LE); }
TEST(gt) { return cmp_test(r, value, a, OP_GT); }
TEST(ge) { return cmp_test(r, value, a, OP_GE); }

static int case_str_test(tpl_render *r, tv *value, bool upper) {
    tv *s = soft_str(r, value);
    if (!s) return -1;
    tv *res = case_test(s, upper);
    tv_release(s);
    return res->u.b;
}
TEST(lower) { TNOARGS(lower); return case_str_test(r, value, false); }
TEST(upper) { TNOARGS(upper); return case_str_test(r, value, true); }

TEST(in) {
    static const char *const names[] = {"seq", NULL};
    if (!targ_check(r, a, "in", names)) return -1;
    tv *seq = targ(a, 0, "seq");
    if (!seq) {
        tpl_fail(r, "in test needs an argument");
        return -1;
    }
    return tpl_contains(r, seq, value);
}

TEST(sameas) {
    static const char *const names[] = {"other", NULL};
    if (!targ_check(r, a, "sameas", names)) return -1;
    tv *other = targ(a, 0, "other");
    if (!other) {
        tpl_fail(r, "sameas test needs an argument");
        return -1;
    }
    if (value == other) return 1;
    /* small ints and interned singletons are shared in CPython */
    if (value->kind == other->kind && value->kind == TV_INT) return value->u.i == other->u.i && value->u.i >= -5 && value->u.i <= 256;
    return 0;
}

TEST(filter) {
    TNOARGS(filter);
    return value->kind == TV_STR && tpl_find_filter(value->u.str.s, value->u.str.len) != NULL;
}
TEST(test) {
    TNOARGS(test);
    return value->kind == TV_STR && tpl_find_test(value->u.str.s, value->u.str.len) != NULL;
}

typedef struct test_entry {
    const char *name;
    tv_test_fn fn;
} test_entry;

static const test_entry TESTS[] = {
    {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none}, {"boolean", t_boolean},
    {"true", t_true}, {"false", t_false}, {"integer", t_integer}, {"float", t_float}, {"number", t_number},
    {"string", t_string}, {"mapping", t_mapping}, {"iterable", t_iterable}, {"sequence", t_sequence},
    {"callable", t_callable}, {"escaped", t_escaped}, {"odd", t_odd}, {"even", t_even},
    {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq}, {"ne", t_ne}, {"!=", t_ne},
    {"lt", t_lt}, {"lessthan", t_lt}, {"<", t_lt}, {"le", t_le}, {"<=", t_le}, {"gt", t_gt},
    {"greaterthan", t_gt}, {">", t_gt}, {"ge", t_ge}, {">=", t_ge}, {"lower", t_lower}, {"upper", t_upper},
    {"in", t_in}, {"sameas", t_sameas}, {"filter", t_filter}, {"test", t_test}, {NULL, NULL}};

tv_test_fn tpl_find_test(const char *name, size_t len) {
    for (const test_entry *t = TESTS; t->name; t++)
        if (strlen(t->name) == len && memcmp(t->name, name, len) == 0) return t->fn;
    return NULL;
}

/* ---------------------------------------------------------------- globals */

#define MAX_RANGE 100000 /* jinja2.sandbox.MAX_RANGE */

METHOD(g_range) {
    (void)self;
    if (a->nkw) return tpl_fail(r, "range() takes no keyword arguments");
    if (a->npos < 1 || a->npos > 3) return tpl_fail(r, "range expected 1 to 3 arguments, got %zu", a->npos);
    int64_t v[3] = {0, 0, 0};
    for (size_t i = 0; i < a->npos; i++)
        if (!want_int(r, a->pos[i], "range() argument", &v[i])) return NULL;
    int64_t start = 0, stop, step = 1;
    if (a->npos == 1) stop = v[0];
    else {
        start = v[0];
        stop = v[1];
        if (a->npos == 3) step = v[2];
    }
    if (step == 0) return tpl_fail(r, "range() arg 3 must not be zero");
    long double count_ld = step > 0 ? (stop > start ? ((long double)stop - start - 1) / step + 1 : 0)
                                    : (stop < start ? ((long double)start - stop - 1) / (-(long double)step) + 1 : 0);
    if (count_ld > MAX_RANGE)
        return tpl_fail(r, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
    size_t count = (size_t)count_ld;
    tv *out = tv_list_new(TV_LIST, count);
    for (size_t i = 0; i < count; i++) tv_list_push(out, tv_int(start + (int64_t)i * step));
    return out;
}

static bool dict_from_args(tpl_render *r, tv *d, tv_args *a, const char *fn) {
    if (a->npos > 1) {
        tpl_fail(r, "%s expected at most 1 argument, got %zu", fn, a->npos);
        return false;
    }
    if (a->npos == 1) {
        tv *src = a->pos[0];
        if (src->kind == TV_DICT || src->kind == TV_NAMESPACE) {
            for (size_t i = 0; i < src->u.dict.len; i++)
                tv_dict_set(d, tv_retain(src->u.dict.keys[i]), tv_retain(src->u.dict.vals[i]));
        } else {
            tv *items = tpl_iterate(r, src);
            if (!items) return false;
            for (size_t i = 0; i < items->u.list.len; i++) {
                tv *pair = tpl_iterate(r, items->u.list.items[i]);
                if (!pair) {
                    tv_release(items);
                    return false;
                }
                if (pair->u.list.len != 2 || !tv_hashable(pair->u.list.items[0])) {
                    tv_release(pair);
                    tv_release(items);
                    tpl_fail(r, "dictionary update sequence element #%zu has wrong length or key", i);
                    return false;
                }
                tv_dict_set(d, tv_retain(pair->u.list.items[0]), tv_retain(pair->u.list.items[1]));
                tv_release(pair);
            }
            tv_release(items);
        }
    }
    for (size_t i = 0; i < a->nkw; i++) tv_dict_set(d, tv_cstr(a->kwnames[i]), tv_retain(a->kwvals[i]));
    return true;
}

METHOD(g_dict) {
    (void)self;
    tv *d = tv_dict_new(TV_DICT);
    if (!dict_from_args(r, d, a, "dict")) {
        tv_release(d);
        return NULL;
    }
    return d;
}

METHOD(g_namespace) {
    (void)self;
    tv *d = tv_dict_new(TV_NAMESPACE);
    if (!dict_from_args(r, d, a, "namespace")) {
        tv_release(d);
        return NULL;
    }
    tpl_track_namespace(r, d);
    return d;
}

METHOD(g_raise_exception) {
    (void)self;
    tv *msg = targ(a, 0, "message");
    if (!msg || a->npos + a->nkw != 1) return tpl_fail(r, "raise_exception() takes exactly one argument");
    ci_buf b = {0};
    if (!tv_to_str(r, &b, msg)) {
        ci_buf_free(&b);
        return NULL;
    }
    tpl_fail(r, "%s", b.data ? b.data : "");
    ci_buf_free(&b);
    return NULL;
}

METHOD(g_strftime_now) {
    (void)self;
    tv *fmt = targ(a, 0, "format");
    if (!fmt || a->npos + a->nkw != 1) return tpl_fail(r, "strftime_now() takes exactly one argument");
    if (!want_str(r, fmt, "format")) return NULL;
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    char buf[512];
    size_t n = fmt->u.str.len ? strftime(buf, sizeof buf, fmt->u.str.s, &tmv) : 0;
    return tv_str(buf, n);
}

tv *tpl_find_global(const char *name, size_t len) {
    static const struct {
        const char *name;
        tv_builtin fn;
    } GLOBALS[] = {{"range", m_g_range}, {"dict", m_g_dict}, {"namespace", m_g_namespace},
                   {"raise_exception", m_g_raise_exception}, {"strftime_now", m_g_strftime_now}, {NULL, NULL}};
    for (int i = 0; GLOBALS[i].name; i++)
        if (strlen(GLOBALS[i].name) == len && memcmp(GLOBALS[i].name, name, len) == 0)
            return tv_func(GLOBALS[i].fn, NULL, GLOBALS[i].name);
    return NULL;
}
