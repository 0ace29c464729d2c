/*
 * tpl_value.c — Python-like values for the template interpreter.
 *
 * Chat templates print values with Python's str()/repr() (so `{{ [1.0] }}`
 * is "[1.0]" and `{{ {'a': none} }}` is "{'a': None}") and serialize them
 * with json.dumps; both are reproduced here byte for byte, including
 * CPython's shortest-round-trip float repr.
 *
 * Ownership and threads. Values are reference counted with plain (not
 * atomic) counts, because every value a render creates stays inside that
 * render, on one thread. The only values several renders see are those the
 * template itself holds, and a parsed template is rendered by any number of
 * threads at once (every server connection renders the model's one
 * template). Those are made immortal: refs == 0 means "not counted",
 * tv_retain/tv_release skip it, so a render only ever reads them. Immortal
 * values are the none/true/false/undefined singletons (so the hot paths,
 * tests and comparisons, allocate nothing) and the template's literals,
 * which the parser freezes with tv_make_immortal (a scalar or a string,
 * whose code-point count is computed then, since tv_str_codepoints
 * otherwise caches it lazily in the value) and cinfer_template_free frees
 * with tv_free_immortal. Sharing costs nothing on the hot path: the refs
 * test was already there for the singletons, and no count is atomic.
 */
#include "template/tpl_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tv TV_NONE_VALUE = {.refs = 0, .kind = TV_NONE};
tv TV_TRUE_VALUE = {.refs = 0, .kind = TV_BOOL, .u.b = true};
tv TV_FALSE_VALUE = {.refs = 0, .kind = TV_BOOL, .u.b = false};
tv TV_UNDEFINED_VALUE = {.refs = 0, .kind = TV_UNDEFINED};

static tv *tv_alloc(tv_kind kind) {
    tv *v = ci_calloc(1, sizeof *v);
    v->refs = 1;
    v->kind = (uint8_t)kind;
    return v;
}

tv *tv_retain(tv *v) {
    if (v && v->refs) v->refs++;
    return v;
}

/* Releasing a deep structure recursively could overflow the C stack on a
 * hostile context (a JSON array nested thousands deep), so children whose
 * count drops to zero go on an explicit work list. */
void tv_release(tv *v) {
    if (!v || !v->refs || --v->refs) return;
    tv **stack = NULL;
    size_t n = 0, cap = 0;
    tv *cur = v;
    for (;;) {
#define PUSH_CHILD(c) do { \
        tv *c_ = (c); \
        if (c_ && c_->refs && --c_->refs == 0) { \
            if (n == cap) { cap = cap ? cap * 2 : 16; stack = ci_realloc_array(stack, cap, sizeof *stack); } \
            stack[n++] = c_; \
        } \
    } while (0)
        switch (cur->kind) {
        case TV_STR: free(cur->u.str.s); break;
        case TV_LIST: case TV_TUPLE: case TV_ITER:
            for (size_t i = 0; i < cur->u.list.len; i++) PUSH_CHILD(cur->u.list.items[i]);
            free(cur->u.list.items);
            break;
        case TV_DICT: case TV_NAMESPACE:
            for (size_t i = 0; i < cur->u.dict.len; i++) {
                PUSH_CHILD(cur->u.dict.keys[i]);
                PUSH_CHILD(cur->u.dict.vals[i]);
            }
            free(cur->u.dict.keys);
            free(cur->u.dict.vals);
            break;
        case TV_UNDEFINED: free(cur->u.undef.hint); break;
        case TV_FUNC: PUSH_CHILD(cur->u.func.self); break;
        case TV_MACRO:
            PUSH_CHILD(cur->u.macro.caller);
            if (cur->u.macro.closure) tpl_frame_release(cur->u.macro.closure);
            break;
        case TV_LOOP:
            PUSH_CHILD(cur->u.loop.items);
            PUSH_CHILD(cur->u.loop.last_changed);
            break;
        default: break;
        }
#undef PUSH_CHILD
        free(cur);
        if (!n) break;
        cur = stack[--n];
    }
    free(stack);
}

static bool is_singleton(const tv *v) {
    return v == &TV_NONE_VALUE || v == &TV_TRUE_VALUE || v == &TV_FALSE_VALUE || v == &TV_UNDEFINED_VALUE;
}

tv *tv_make_immortal(tv *v) {
    if (is_singleton(v)) return v;
    /* Only childless kinds (int, float, str) are frozen: tv_free_immortal
     * frees no items. */
    if (v->kind == TV_STR) tv_str_codepoints(v); /* the lazy cache must not be written while shared */
    v->refs = 0;
    return v;
}

void tv_free_immortal(tv *v) {
    if (!v || is_singleton(v)) return;
    if (v->kind == TV_STR) free(v->u.str.s);
    free(v);
}

tv *tv_none(void) { return &TV_NONE_VALUE; }
tv *tv_bool(bool b) { return b ? &TV_TRUE_VALUE : &TV_FALSE_VALUE; }
tv *tv_undefined(void) { return &TV_UNDEFINED_VALUE; }

tv *tv_undefined_hint(const char *fmt, ...) {
    tv *v = tv_alloc(TV_UNDEFINED);
    ci_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    ci_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    v->u.undef.hint = ci_buf_take(&b, NULL);
    return v;
}

tv *tv_int(int64_t i) {
    tv *v = tv_alloc(TV_INT);
    v->u.i = i;
    return v;
}

tv *tv_float(double f) {
    tv *v = tv_alloc(TV_FLOAT);
    v->u.f = f;
    return v;
}

tv *tv_str(const char *s, size_t len) { return tv_str_take(ci_strndup(s, len), len); }
tv *tv_cstr(const char *s) { return tv_str(s, strlen(s)); }

tv *tv_str_take(char *s, size_t len) {
    tv *v = tv_alloc(TV_STR);
    v->u.str.s = s;
    v->u.str.len = len;
    v->u.str.ncp = SIZE_MAX;
    return v;
}

tv *tv_list_new(tv_kind kind, size_t cap) {
    tv *v = tv_alloc(kind);
    if (cap) v->u.list.items = ci_realloc_array(NULL, cap, sizeof(tv *));
    v->u.list.cap = cap;
    return v;
}

void tv_list_push(tv *list, tv *item) {
    if (list->u.list.len == list->u.list.cap) {
        list->u.list.cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        list->u.list.items = ci_realloc_array(list->u.list.items, list->u.list.cap, sizeof(tv *));
    }
    list->u.list.items[list->u.list.len++] = item;
}

tv *tv_dict_new(tv_kind kind) { return tv_alloc(kind); }

static long dict_find(const tv *d, const tv *key) {
    for (size_t i = 0; i < d->u.dict.len; i++)
        if (tv_equal(d->u.dict.keys[i], key)) return (long)i;
    return -1;
}

void tv_dict_set(tv *d, tv *key, tv *val) {
    long at = dict_find(d, key);
    if (at >= 0) { /* Python keeps the first key object and position */
        tv_release(key);
        tv_release(d->u.dict.vals[at]);
        d->u.dict.vals[at] = val;
        return;
    }
    if (d->u.dict.len == d->u.dict.cap) {
        d->u.dict.cap = d->u.dict.cap ? d->u.dict.cap * 2 : 4;
        d->u.dict.keys = ci_realloc_array(d->u.dict.keys, d->u.dict.cap, sizeof(tv *));
        d->u.dict.vals = ci_realloc_array(d->u.dict.vals, d->u.dict.cap, sizeof(tv *));
    }
    d->u.dict.keys[d->u.dict.len] = key;
    d->u.dict.vals[d->u.dict.len] = val;
    d->u.dict.len++;
}

tv *tv_dict_get(const tv *d, const tv *key) {
    long at = dict_find(d, key);
    return at >= 0 ? d->u.dict.vals[at] : NULL;
}

tv *tv_dict_get_cstr(const tv *d, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->u.dict.len; i++) {
        const tv *k = d->u.dict.keys[i];
        if (k->kind == TV_STR && k->u.str.len == n && memcmp(k->u.str.s, key, n) == 0) return d->u.dict.vals[i];
    }
    return NULL;
}

tv *tv_func(tv_builtin fn, tv *self, const char *name) {
    tv *v = tv_alloc(TV_FUNC);
    v->u.func.fn = fn;
    v->u.func.self = tv_retain(self);
    v->u.func.name = name;
    return v;
}

bool tv_is_str(const tv *v) { return v->kind == TV_STR; }
bool tv_is_number(const tv *v) { return v->kind == TV_BOOL || v->kind == TV_INT || v->kind == TV_FLOAT; }
bool tv_is_seq(const tv *v) { return v->kind == TV_LIST || v->kind == TV_TUPLE; }

bool tv_truthy(const tv *v) {
    switch (v->kind) {
    case TV_UNDEFINED: case TV_NONE: return false;
    case TV_BOOL: return v->u.b;
    case TV_INT: return v->u.i != 0;
    case TV_FLOAT: return v->u.f != 0.0;
    case TV_STR: return v->u.str.len != 0;
    case TV_LIST: case TV_TUPLE: return v->u.list.len != 0;
    case TV_DICT: return v->u.dict.len != 0;
    default: return true; /* generators, namespaces, callables are always true */
    }
}

size_t tv_str_codepoints(tv *s) {
    if (s->u.str.ncp == SIZE_MAX) {
        size_t n = 0;
        for (size_t i = 0; i < s->u.str.len; i++)
            if (((unsigned char)s->u.str.s[i] & 0xC0) != 0x80) n++;
        s->u.str.ncp = n;
    }
    return s->u.str.ncp;
}

const char *tv_type_name(const tv *v) {
    switch (v->kind) {
    case TV_UNDEFINED: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST: return "list";
    case TV_TUPLE: return "tuple";
    case TV_DICT: return "dict";
    case TV_ITER: return "generator";
    case TV_NAMESPACE: return "Namespace";
    case TV_MACRO: return "Macro";
    case TV_FUNC: return "builtin_function_or_method";
    case TV_LOOP: return "LoopContext";
    }
    return "object";
}

/* ------------------------------------------------------------ str / repr */

/* CPython float repr: the shortest digit string that round-trips, printed
 * in fixed notation when the decimal exponent is in [-4, 16), else as
 * d.ddde+XX. */
void tv_format_float(ci_buf *out, double f) {
    if (isnan(f)) {
        ci_buf_puts(out, "nan");
        return;
    }
    if (isinf(f)) {
        ci_buf_puts(out, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0.0) {
        ci_buf_puts(out, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d[.ddd]e[+-]XX */
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[32];
    size_t nd = 0;
    while (*p && *p != 'e') {
        if (*p != '.') digits[nd++] = *p;
        p++;
    }
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp10 = atoi(p + 1);
    int decpt = exp10 + 1; /* digits are 0.d1d2.. x 10^decpt */
    if (neg) ci_buf_putc(out, '-');
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            ci_buf_puts(out, "0.");
            for (int i = 0; i < -decpt; i++) ci_buf_putc(out, '0');
            ci_buf_append(out, digits, nd);
        } else if ((size_t)decpt >= nd) {
            ci_buf_append(out, digits, nd);
            for (size_t i = nd; i < (size_t)decpt; i++) ci_buf_putc(out, '0');
            ci_buf_puts(out, ".0");
        } else {
            ci_buf_append(out, digits, (size_t)decpt);
            ci_buf_putc(out, '.');
            ci_buf_append(out, digits + decpt, nd - (size_t)decpt);
        }
    } else {
        ci_buf_putc(out, digits[0]);
        if (nd > 1) {
            ci_buf_putc(out, '.');
            ci_buf_append(out, digits + 1, nd - 1);
        }
        int e = decpt - 1;
        ci_buf_printf(out, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
}

static void repr_string(ci_buf *out, const char *s, size_t len) {
    bool has_single = memchr(s, '\'', len) != NULL, has_double = memchr(s, '"', len) != NULL;
    char quote = (has_single && !has_double) ? '"' : '\'';
    ci_buf_putc(out, quote);
    size_t i = 0;
    while (i < len) {
        uint32_t cp = utf8_next(s, len, &i);
        if (cp == (uint32_t)quote || cp == '\\') {
            ci_buf_putc(out, '\\');
            ci_buf_putc(out, (char)cp);
        } else if (cp == '\n') ci_buf_puts(out, "\\n");
        else if (cp == '\r') ci_buf_puts(out, "\\r");
        else if (cp == '\t') ci_buf_puts(out, "\\t");
        else if (uni_isprintable(cp)) utf8_put(out, cp);
        else if (cp < 0x100) ci_buf_printf(out, "\\x%02x", cp);
        else if (cp < 0x10000) ci_buf_printf(out, "\\u%04x", cp);
        else ci_buf_printf(out, "\\U%08x", cp);
    }
    ci_buf_putc(out, quote);
}

static bool repr_depth(tpl_render *r, ci_buf *out, const tv *v, int depth);

static bool str_depth(tpl_render *r, ci_buf *out, const tv *v, int depth) {
    switch (v->kind) {
    case TV_UNDEFINED: return true;
    case TV_STR: ci_buf_append(out, v->u.str.s, v->u.str.len); return true;
    default: return repr_depth(r, out, v, depth);
    }
}

static bool repr_depth(tpl_render *r, ci_buf *out, const tv *v, int depth) {
    if (depth > 200) {
        if (r) tpl_fail_limit(r, "value nested too deeply to print");
        return false;
    }
    if (r && out->len > r->limits.max_string_bytes) {
        tpl_fail_limit(r, "string exceeds %zu bytes", r->limits.max_string_bytes);
        return false;
    }
    switch (v->kind) {
    case TV_UNDEFINED: ci_buf_puts(out, "Undefined"); return true;
    case TV_NONE: ci_buf_puts(out, "None"); return true;
    case TV_BOOL: ci_buf_puts(out, v->u.b ? "True" : "False"); return true;
    case TV_INT: ci_buf_printf(out, "%lld", (long long)v->u.i); return true;
    case TV_FLOAT: tv_format_float(out, v->u.f); return true;
    case TV_STR:
        if (v->markup) ci_buf_puts(out, "Markup(");
        repr_string(out, v->u.str.s, v->u.str.len);
        if (v->markup) ci_buf_putc(out, ')');
        return true;
    case TV_LIST: case TV_TUPLE: {
        bool tuple = v->kind == TV_TUPLE;
        ci_buf_putc(out, tuple ? '(' : '[');
        for (size_t i = 0; i < v->u.list.len; i++) {
            if (i) ci_buf_puts(out, ", ");
            if (!repr_depth(r, out, v->u.list.items[i], depth + 1)) return false;
        }
        if (tuple && v->u.list.len == 1) ci_buf_putc(out, ',');
        ci_buf_putc(out, tuple ? ')' : ']');
        return true;
    }
    case TV_DICT: case TV_NAMESPACE: {
        if (v->kind == TV_NAMESPACE) ci_buf_puts(out, "<Namespace ");
        ci_buf_putc(out, '{');
        for (size_t i = 0; i < v->u.dict.len; i++) {
            if (i) ci_buf_puts(out, ", ");
            if (!repr_depth(r, out, v->u.dict.keys[i], depth + 1)) return false;
            ci_buf_puts(out, ": ");
            if (!repr_depth(r, out, v->u.dict.vals[i], depth + 1)) return false;
        }
        ci_buf_putc(out, '}');
        if (v->kind == TV_NAMESPACE) ci_buf_putc(out, '>');
        return true;
    }
    case TV_ITER: ci_buf_puts(out, "<generator object>"); return true;
    case TV_MACRO: ci_buf_puts(out, "<Macro>"); return true;
    case TV_FUNC: ci_buf_printf(out, "<built-in method %s>", v->u.func.name); return true;
    case TV_LOOP:
        ci_buf_printf(out, "<LoopContext %zu/%zu>", v->u.loop.index0 + 1, v->u.loop.items->u.list.len);
        return true;
    }
    return true;
}

bool tv_to_str(tpl_render *r, ci_buf *out, const tv *v) { return str_depth(r, out, v, 0); }
bool tv_repr(tpl_render *r, ci_buf *out, const tv *v) { return repr_depth(r, out, v, 0); }

tv *tv_stringify(tpl_render *r, tv *v) {
    if (v->kind == TV_STR && !v->markup) return tv_retain(v);
    if (v->kind == TV_STR) return tv_str(v->u.str.s, v->u.str.len);
    ci_buf b = {0};
    if (!tv_to_str(r, &b, v)) {
        ci_buf_free(&b);
        return NULL;
    }
    size_t len;
    char *s = ci_buf_take(&b, &len);
    return tv_str_take(s, len);
}

/* ---------------------------------------------------- equality / ordering */

static double num_as_double(const tv *v) {
    return v->kind == TV_FLOAT ? v->u.f : v->kind == TV_INT ? (double)v->u.i : (double)v->u.b;
}
static int64_t num_as_int(const tv *v) { return v->kind == TV_INT ? v->u.i : (int64_t)v->u.b; }

/* Exact comparison of numbers (Python compares int and float exactly). */
static int num_cmp(const tv *a, const tv *b) {
    if (a->kind != TV_FLOAT && b->kind != TV_FLOAT) {
        int64_t x = num_as_int(a), y = num_as_int(b);
        return x < y ? -1 : x > y;
    }
    double x = num_as_double(a), y = num_as_double(b);
    if (isnan(x) || isnan(y)) return 2; /* unordered */
    if (a->kind != TV_FLOAT || b->kind != TV_FLOAT) {
        /* int vs float: compare as long double, exact for 64-bit ints on x86 */
        long double lx = a->kind == TV_FLOAT ? (long double)a->u.f : (long double)num_as_int(a);
        long double ly = b->kind == TV_FLOAT ? (long double)b->u.f : (long double)num_as_int(b);
        return lx < ly ? -1 : lx > ly;
    }
    return x < y ? -1 : x > y;
}

/* Value walks (==, <, hashability) must not recurse on the C stack: a
 * template can nest a list a million levels deep (`set ns.x = [ns.x]` in a
 * loop) and a render may run on a small thread stack. Equality and
 * hashability walk with an explicit stack; ordering only ever descends into
 * the first unequal pair, so it is a loop, bounded like Python's recursion
 * limit because every level re-compares the subtree below. */

/* One level of ==: true/false when decided here, else pushes the pairs of
 * children still to compare and returns true. */
static bool equal_shallow(const tv *a, const tv *b, const tv ***stack, size_t *n, size_t *cap) {
    if (a == b) return a->kind != TV_FLOAT || !isnan(a->u.f);
    if (tv_is_number(a) && tv_is_number(b)) return num_cmp(a, b) == 0;
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case TV_UNDEFINED: case TV_NONE: return true;
    case TV_STR: return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case TV_LIST: case TV_TUPLE: case TV_DICT: {
        size_t len = a->kind == TV_DICT ? a->u.dict.len : a->u.list.len;
        if (len != (b->kind == TV_DICT ? b->u.dict.len : b->u.list.len)) return false;
        if (*n + 2 * len > *cap) {
            *cap = (*n + 2 * len) * 2;
            *stack = ci_realloc_array(*stack, *cap, sizeof **stack);
        }
        for (size_t i = 0; i < len; i++) {
            const tv *mine, *other;
            if (a->kind == TV_DICT) { /* keys are hashable (no dicts inside), so the lookup ends */
                mine = a->u.dict.vals[i];
                other = tv_dict_get(b, a->u.dict.keys[i]);
                if (!other) return false;
            } else {
                mine = a->u.list.items[i];
                other = b->u.list.items[i];
            }
            (*stack)[(*n)++] = mine;
            (*stack)[(*n)++] = other;
        }
        return true;
    }
    case TV_FUNC:
        return a->u.func.fn == b->u.func.fn && a->u.func.self == b->u.func.self;
    default: return false; /* identity, handled above */
    }
}

bool tv_equal(const tv *a, const tv *b) {
    const tv **stack = NULL;
    size_t n = 0, cap = 0;
    bool eq = equal_shallow(a, b, &stack, &n, &cap);
    while (eq && n) {
        n -= 2;
        eq = equal_shallow(stack[n], stack[n + 1], &stack, &n, &cap);
    }
    free(stack);
    return eq;
}

enum { COMPARE_MAX_DEPTH = 1000 }; /* CPython's default recursion limit */

bool tv_compare(tpl_render *r, const tv *a, const tv *b, int *cmp) {
    for (int depth = 0;; depth++) {
        if (tv_is_number(a) && tv_is_number(b)) {
            int c = num_cmp(a, b);
            *cmp = c == 2 ? 2 : c;
            return true;
        }
        if (a->kind == TV_STR && b->kind == TV_STR) {
            size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
            int c = memcmp(a->u.str.s, b->u.str.s, n);
            *cmp = c < 0 ? -1 : c > 0 ? 1 : a->u.str.len < b->u.str.len ? -1 : a->u.str.len > b->u.str.len;
            return true;
        }
        if ((a->kind == TV_LIST || a->kind == TV_TUPLE) && a->kind == b->kind) {
            size_t n = a->u.list.len < b->u.list.len ? a->u.list.len : b->u.list.len, i = 0;
            while (i < n && tv_equal(a->u.list.items[i], b->u.list.items[i])) i++;
            if (i == n) {
                *cmp = a->u.list.len < b->u.list.len ? -1 : a->u.list.len > b->u.list.len;
                return true;
            }
            if (depth >= COMPARE_MAX_DEPTH) {
                tpl_fail_limit(r, "maximum recursion depth exceeded in comparison");
                return false;
            }
            a = a->u.list.items[i]; /* the first unequal pair decides */
            b = b->u.list.items[i];
            continue;
        }
        if (a->kind == TV_UNDEFINED || b->kind == TV_UNDEFINED)
            tpl_fail_undefined(r, a->kind == TV_UNDEFINED ? a : b);
        else
            tpl_fail(r, "'<' not supported between instances of '%s' and '%s'", tv_type_name(a), tv_type_name(b));
        return false;
    }
}

bool tv_hashable(const tv *v) {
    if (v->kind == TV_LIST || v->kind == TV_DICT) return false;
    if (v->kind != TV_TUPLE) return true;
    const tv **stack = NULL; /* tuples whose items are still to check */
    size_t n = 0, cap = 0;
    bool ok = true;
    const tv *cur = v;
    for (;;) {
        for (size_t i = 0; i < cur->u.list.len && ok; i++) {
            const tv *item = cur->u.list.items[i];
            if (item->kind == TV_LIST || item->kind == TV_DICT) ok = false;
            else if (item->kind == TV_TUPLE) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    stack = ci_realloc_array(stack, cap, sizeof *stack);
                }
                stack[n++] = item;
            }
        }
        if (!ok || !n) break;
        cur = stack[--n];
    }
    free(stack);
    return ok;
}

/* ------------------------------------------------------------------- JSON */

tv *tv_from_json(const void *jp, int depth) {
    const json_t *j = jp;
    if (depth > 10000) return tv_none(); /* jansson itself stops far earlier */
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        tv *d = tv_dict_new(TV_DICT);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val) {
            /* keys are unique in a jansson object, so append without lookup */
            tv *k = tv_cstr(key);
            tv *x = tv_from_json(val, depth + 1);
            if (d->u.dict.len == d->u.dict.cap) {
                d->u.dict.cap = d->u.dict.cap ? d->u.dict.cap * 2 : 4;
                d->u.dict.keys = ci_realloc_array(d->u.dict.keys, d->u.dict.cap, sizeof(tv *));
                d->u.dict.vals = ci_realloc_array(d->u.dict.vals, d->u.dict.cap, sizeof(tv *));
            }
            d->u.dict.keys[d->u.dict.len] = k;
            d->u.dict.vals[d->u.dict.len++] = x;
        }
        return d;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        tv *l = tv_list_new(TV_LIST, n);
        for (size_t i = 0; i < n; i++) tv_list_push(l, tv_from_json(json_array_get(j, i), depth + 1));
        return l;
    }
    case JSON_STRING: return tv_str(json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return tv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return tv_float(json_real_value(j));
    case JSON_TRUE: return tv_bool(true);
    case JSON_FALSE: return tv_bool(false);
    default: return tv_none();
    }
}

static void dumps_string(ci_buf *out, const char *s, size_t len, bool ensure_ascii) {
    ci_buf_putc(out, '"');
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        uint32_t cp = utf8_next(s, len, &i);
        switch (cp) {
        case '"': ci_buf_puts(out, "\\\""); continue;
        case '\\': ci_buf_puts(out, "\\\\"); continue;
        case '\n': ci_buf_puts(out, "\\n"); continue;
        case '\r': ci_buf_puts(out, "\\r"); continue;
        case '\t': ci_buf_puts(out, "\\t"); continue;
        case '\b': ci_buf_puts(out, "\\b"); continue;
        case '\f': ci_buf_puts(out, "\\f"); continue;
        default: break;
        }
        if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                ci_buf_printf(out, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                ci_buf_printf(out, "\\u%04x", cp);
            }
        } else {
            ci_buf_append(out, s + start, i - start);
        }
    }
    ci_buf_putc(out, '"');
}

static void dumps_float(ci_buf *out, double f) {
    if (isnan(f)) ci_buf_puts(out, "NaN");
    else if (isinf(f)) ci_buf_puts(out, f < 0 ? "-Infinity" : "Infinity");
    else tv_format_float(out, f);
}

static void dumps_newline(ci_buf *out, const char *indent, int level) {
    ci_buf_putc(out, '\n');
    for (int i = 0; i < level; i++) ci_buf_puts(out, indent);
}

/* json key conversion: str as is, numbers/bools/None to their JSON text. */
static bool dumps_key(tpl_render *r, ci_buf *out, const tv *k, bool ensure_ascii) {
    ci_buf tmp = {0};
    switch (k->kind) {
    case TV_STR: dumps_string(out, k->u.str.s, k->u.str.len, ensure_ascii); return true;
    case TV_BOOL: ci_buf_puts(&tmp, k->u.b ? "true" : "false"); break;
    case TV_NONE: ci_buf_puts(&tmp, "null"); break;
    case TV_INT: ci_buf_printf(&tmp, "%lld", (long long)k->u.i); break;
    case TV_FLOAT: dumps_float(&tmp, k->u.f); break;
    default:
        tpl_fail(r, "keys must be str, int, float, bool or None, not %s", tv_type_name(k));
        return false;
    }
    dumps_string(out, tmp.data, tmp.len, ensure_ascii);
    ci_buf_free(&tmp);
    return true;
}

bool tv_dumps(tpl_render *r, ci_buf *out, const tv *v, const char *indent, bool ensure_ascii,
              const char *item_sep, const char *key_sep, bool sort_keys, int depth) {
    if (depth > 500) {
        tpl_fail_limit(r, "value nested too deeply for tojson");
        return false;
    }
    if (r && out->len > r->limits.max_string_bytes) {
        tpl_fail_limit(r, "string exceeds %zu bytes", r->limits.max_string_bytes);
        return false;
    }
    switch (v->kind) {
    case TV_NONE: ci_buf_puts(out, "null"); return true;
    case TV_BOOL: ci_buf_puts(out, v->u.b ? "true" : "false"); return true;
    case TV_INT: ci_buf_printf(out, "%lld", (long long)v->u.i); return true;
    case TV_FLOAT: dumps_float(out, v->u.f); return true;
    case TV_STR: dumps_string(out, v->u.str.s, v->u.str.len, ensure_ascii); return true;
    case TV_LIST: case TV_TUPLE: {
        if (!v->u.list.len) {
            ci_buf_puts(out, "[]");
            return true;
        }
        ci_buf_putc(out, '[');
        for (size_t i = 0; i < v->u.list.len; i++) {
            if (i) ci_buf_puts(out, item_sep);
            if (indent) dumps_newline(out, indent, depth + 1);
            if (!tv_dumps(r, out, v->u.list.items[i], indent, ensure_ascii, item_sep, key_sep, sort_keys, depth + 1))
                return false;
        }
        if (indent) dumps_newline(out, indent, depth);
        ci_buf_putc(out, ']');
        return true;
    }
    case TV_DICT: {
        if (!v->u.dict.len) {
            ci_buf_puts(out, "{}");
            return true;
        }
        size_t n = v->u.dict.len;
        size_t *order = ci_malloc(n * sizeof *order);
        for (size_t i = 0; i < n; i++) order[i] = i;
        if (sort_keys) { /* insertion sort: stable, and dicts are small */
            for (size_t i = 1; i < n; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    int c;
                    if (!tv_compare(r, v->u.dict.keys[x], v->u.dict.keys[order[j - 1]], &c)) {
                        free(order);
                        return false;
                    }
                    if (c >= 0) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        ci_buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i) ci_buf_puts(out, item_sep);
            if (indent) dumps_newline(out, indent, depth + 1);
            if (!dumps_key(r, out, v->u.dict.keys[order[i]], ensure_ascii)) {
                free(order);
                return false;
            }
            ci_buf_puts(out, key_sep);
            if (!tv_dumps(r, out, v->u.dict.vals[order[i]], indent, ensure_ascii, item_sep, key_sep, sort_keys,
                          depth + 1)) {
                free(order);
                return false;
            }
        }
        free(order);
        if (indent) dumps_newline(out, indent, depth);
        ci_buf_putc(out, '}');
        return true;
    }
    default:
        tpl_fail(r, "Object of type %s is not JSON serializable", tv_type_name(v));
        return false;
    }
}
