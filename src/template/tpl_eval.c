/*
 * tpl_eval.c — tree-walking evaluator with Jinja2's runtime semantics.
 *
 * Scoping follows what Jinja2's compiler produces: every for-loop iteration,
 * for-else body, macro call, call/filter/with/generation block gets a fresh
 * frame whose unset names fall through to the enclosing frames, so `set`
 * inside a loop never leaks out (templates use namespace() for that) and a
 * variable assigned later in a loop body still reads the outer value before
 * the assignment. Lookups end in the render context, then the globals.
 *
 * Attribute and item access implement the sandbox's getattr/getitem
 * fallback order (a dict's methods shadow its keys for `.`, keys win for
 * `[]`; the immutable sandbox turns list.append & co into an undefined that
 * raises SecurityError when called). Undefined is Jinja2's default
 * Undefined: printing and iterating are silent, attribute access, calls and
 * arithmetic raise.
 *
 * Every recursive entry point counts r->depth so that nesting, macro
 * recursion and deep data cannot overflow the C stack.
 */
#include "template/tpl_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { EX_OK, EX_ERR, EX_BREAK, EX_CONTINUE };

/* ----------------------------------------------------------------- errors */

static void fail_v(tpl_render *r, int code, const char *fmt, va_list ap) {
    if (!r || r->failed) return;
    r->failed = true;
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (r->current)
        ci_error(r->err, code, "template:%d:%d: %s", r->current->line, r->current->col, msg);
    else
        ci_error(r->err, code, "template: %s", msg);
}

void *tpl_fail(tpl_render *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_v(r, CINFER_ERR_TEMPLATE, fmt, ap);
    va_end(ap);
    return NULL;
}

void *tpl_fail_limit(tpl_render *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_v(r, CINFER_ERR_LIMIT, fmt, ap);
    va_end(ap);
    return NULL;
}

void *tpl_fail_undefined(tpl_render *r, const tv *undef) {
    if (undef->kind == TV_UNDEFINED && undef->u.undef.hint)
        return tpl_fail(r, "%s%s", undef->unsafe ? "security error: " : "", undef->u.undef.hint);
    return tpl_fail(r, "undefined value");
}

bool tpl_check_string_size(tpl_render *r, size_t len) {
    if (len > r->limits.max_string_bytes) {
        tpl_fail_limit(r, "string exceeds %zu bytes", r->limits.max_string_bytes);
        return false;
    }
    return true;
}

tv *tpl_charge(tpl_render *r, tv *v) {
    if (!v) return NULL;
    size_t bytes = 0;
    switch (v->kind) {
    case TV_STR: bytes = v->u.str.len; break;
    case TV_LIST: case TV_TUPLE: case TV_ITER: bytes = v->u.list.len * sizeof(tv *); break;
    case TV_DICT: case TV_NAMESPACE: bytes = v->u.dict.len * 2 * sizeof(tv *); break;
    default: bytes = sizeof(tv); break;
    }
    bytes += sizeof(tv);
    if (bytes > r->limits.max_built_bytes - r->built) { /* r->built never exceeds the limit */
        tpl_fail_limit(r, "template built more than %zu bytes of values", r->limits.max_built_bytes);
        tv_release(v);
        return NULL;
    }
    r->built += bytes;
    return v;
}

/* ----------------------------------------------------------------- frames */

static tframe *frame_new(tframe *parent) {
    tframe *f = ci_calloc(1, sizeof *f);
    f->refs = 1;
    f->parent = parent;
    if (parent) parent->refs++;
    return f;
}

static void frame_clear(tframe *f) {
    for (size_t i = 0; i < f->n; i++) tv_release(f->vars[i].val);
    f->n = 0;
}

void tpl_frame_release(tframe *f) {
    while (f && --f->refs == 0) {
        tframe *parent = f->parent;
        frame_clear(f);
        free(f->vars);
        free(f);
        f = parent;
    }
}

static void frame_set(tframe *f, const char *name, size_t len, tv *val) {
    for (size_t i = 0; i < f->n; i++)
        if (f->vars[i].len == len && memcmp(f->vars[i].name, name, len) == 0) {
            tv_release(f->vars[i].val);
            f->vars[i].val = val;
            return;
        }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->vars = ci_realloc_array(f->vars, f->cap, sizeof *f->vars);
    }
    f->vars[f->n++] = (tvar){name, len, val};
}

static void frame_set_cstr(tframe *f, const char *name, tv *val) { frame_set(f, name, strlen(name), val); }

static tv *lookup(tpl_render *r, tframe *f, const char *name, size_t len) {
    for (; f; f = f->parent)
        for (size_t i = f->n; i-- > 0;)
            if (f->vars[i].len == len && memcmp(f->vars[i].name, name, len) == 0) return tv_retain(f->vars[i].val);
    const tv *ctx = r->context;
    for (size_t i = 0; i < ctx->u.dict.len; i++) {
        const tv *k = ctx->u.dict.keys[i];
        if (k->kind == TV_STR && k->u.str.len == len && memcmp(k->u.str.s, name, len) == 0)
            return tv_retain(ctx->u.dict.vals[i]);
    }
    tv *g = tpl_find_global(name, len);
    if (g) return g;
    return tv_undefined_hint("'%.*s' is undefined", (int)(len > 80 ? 80 : len), name);
}

static void capture_frame(tpl_render *r, tframe *f) {
    if (f->captured) return;
    f->captured = true;
    f->refs++;
    if (r->n_captured == r->cap_captured) {
        r->cap_captured = r->cap_captured ? r->cap_captured * 2 : 8;
        r->captured = ci_realloc_array(r->captured, r->cap_captured, sizeof *r->captured);
    }
    r->captured[r->n_captured++] = f;
}

void tpl_track_namespace(tpl_render *r, tv *ns) {
    if (r->n_namespaces == r->cap_namespaces) {
        r->cap_namespaces = r->cap_namespaces ? r->cap_namespaces * 2 : 8;
        r->namespaces = ci_realloc_array(r->namespaces, r->cap_namespaces, sizeof *r->namespaces);
    }
    r->namespaces[r->n_namespaces++] = tv_retain(ns);
}

/* ----------------------------------------------------------------- output */

static bool emit(tpl_render *r, const char *s, size_t len) {
    if (r->out.len + len > r->limits.max_output_bytes) {
        tpl_fail_limit(r, "output exceeds %zu bytes", r->limits.max_output_bytes);
        return false;
    }
    ci_buf_append(&r->out, s, len);
    return true;
}

static bool emit_value(tpl_render *r, const tv *v) {
    if (v->kind == TV_STR) return emit(r, v->u.str.s, v->u.str.len);
    ci_buf b = {0};
    bool ok = tv_to_str(r, &b, v) && emit(r, b.data ? b.data : "", b.len);
    ci_buf_free(&b);
    return ok;
}

/* ------------------------------------------------------------ evaluation */

static tv *eval(tpl_render *r, const tnode *n, tframe *f);
static int exec_body(tpl_render *r, const tnode_vec *body, tframe *f);

static bool enter(tpl_render *r) {
    if (++r->depth > r->limits.max_depth) {
        tpl_fail_limit(r, "template recursion too deep (limit %d)", r->limits.max_depth);
        r->depth--;
        return false;
    }
    return true;
}

/* The attribute part of obj.name when obj is a namespace, loop or dict. */
static tv *loop_attr(tpl_render *r, tv *loop, const char *name, size_t len);

tv *tpl_getattr(tpl_render *r, tv *obj, const char *name, size_t len) {
    if (obj->kind == TV_UNDEFINED) return tpl_fail_undefined(r, obj);
    int shown = (int)(len > 80 ? 80 : len);
    if (len >= 1 && name[0] == '_' && len >= 4 && name[1] == '_' && name[len - 1] == '_' && name[len - 2] == '_') {
        tv *u = tv_undefined_hint("access to attribute '%.*s' of '%s' object is unsafe.", shown, name,
                                  tv_type_name(obj));
        u->unsafe = 1;
        return u;
    }
    bool unsafe = false;
    tv *m = tpl_get_method(r, obj, name, len, &unsafe);
    if (m) return m;
    if (r->failed) return NULL;
    if (unsafe) {
        tv *u = tv_undefined_hint("access to attribute '%.*s' of '%s' object is unsafe.", shown, name,
                                  tv_type_name(obj));
        u->unsafe = 1;
        return u;
    }
    if (obj->kind == TV_DICT || obj->kind == TV_NAMESPACE) {
        for (size_t i = 0; i < obj->u.dict.len; i++) {
            const tv *k = obj->u.dict.keys[i];
            if (k->kind == TV_STR && k->u.str.len == len && memcmp(k->u.str.s, name, len) == 0)
                return tv_retain(obj->u.dict.vals[i]);
        }
    }
    if (obj->kind == TV_LOOP) {
        tv *v = loop_attr(r, obj, name, len);
        if (v || r->failed) return v;
    }
    return tv_undefined_hint("'%s object' has no attribute '%.*s'", tv_type_name(obj), shown, name);
}

static bool index_from(const tv *key, int64_t *out) {
    if (key->kind == TV_INT) *out = key->u.i;
    else if (key->kind == TV_BOOL) *out = key->u.b;
    else return false;
    return true;
}

tv *tpl_getitem(tpl_render *r, tv *obj, tv *key) {
    if (obj->kind == TV_UNDEFINED) return tpl_fail_undefined(r, obj);
    switch (obj->kind) {
    case TV_DICT:
        if (tv_hashable(key)) {
            tv *v = tv_dict_get(obj, key);
            if (v) return tv_retain(v);
        }
        break;
    case TV_LIST: case TV_TUPLE: {
        int64_t i;
        if (index_from(key, &i)) {
            int64_t n = (int64_t)obj->u.list.len;
            int64_t asked = i;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return tv_retain(obj->u.list.items[i]);
            return tv_undefined_hint("%s object has no element %lld", tv_type_name(obj), (long long)asked);
        }
        break;
    }
    case TV_STR: {
        int64_t i;
        if (index_from(key, &i)) {
            int64_t n = (int64_t)tv_str_codepoints(obj);
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                size_t at = utf8_offset(obj->u.str.s, obj->u.str.len, (size_t)i), end = at;
                utf8_next(obj->u.str.s, obj->u.str.len, &end);
                return tv_str(obj->u.str.s + at, end - at);
            }
            return tv_undefined_hint("str object has no element %lld", (long long)i);
        }
        break;
    }
    default: break;
    }
    if (key->kind == TV_STR) {
        if (obj->kind == TV_DICT) { /* a missing key may still name a method */
            bool unsafe = false;
            tv *m = tpl_get_method(r, obj, key->u.str.s, key->u.str.len, &unsafe);
            if (m || r->failed) return m;
            if (unsafe) {
                tv *u = tv_undefined_hint("access to attribute '%s' of 'dict' object is unsafe.", key->u.str.s);
                u->unsafe = 1;
                return u;
            }
            return tv_undefined_hint("'dict object' has no attribute '%.80s'", key->u.str.s);
        }
        return tpl_getattr(r, obj, key->u.str.s, key->u.str.len);
    }
    return tv_undefined_hint("'%s object' has no item", tv_type_name(obj));
}

/* Python's PySlice_AdjustIndices. */
static size_t slice_indices(int64_t len, const int64_t *start_in, const int64_t *stop_in, int64_t step,
                            int64_t *start, int64_t *stop) {
    if (!start_in) *start = step < 0 ? len - 1 : 0;
    else {
        *start = *start_in;
        if (*start < 0) {
            *start += len;
            if (*start < 0) *start = step < 0 ? -1 : 0;
        } else if (*start >= len) *start = step < 0 ? len - 1 : len;
    }
    if (!stop_in) *stop = step < 0 ? -1 : len;
    else {
        *stop = *stop_in;
        if (*stop < 0) {
            *stop += len;
            if (*stop < 0) *stop = step < 0 ? -1 : 0;
        } else if (*stop >= len) *stop = step < 0 ? len - 1 : len;
    }
    if (step < 0) return *stop < *start ? (size_t)((*start - *stop - 1) / (-step) + 1) : 0;
    return *start < *stop ? (size_t)((*stop - *start - 1) / step + 1) : 0;
}

static tv *eval_slice(tpl_render *r, tv *obj, const tnode *s, tframe *f) {
    tv *parts[3] = {NULL, NULL, NULL};
    const tnode *nodes[3] = {s->a, s->b, s->c};
    int64_t vals[3];
    bool given[3] = {false, false, false};
    bool ok = true, type_error = false;
    for (int i = 0; i < 3 && ok; i++) {
        if (!nodes[i]) continue;
        parts[i] = eval(r, nodes[i], f);
        if (!parts[i]) ok = false;
        else if (parts[i]->kind == TV_NONE) continue;
        else if (index_from(parts[i], &vals[i])) given[i] = true;
        else type_error = true;
    }
    for (int i = 0; i < 3; i++) tv_release(parts[i]);
    if (!ok) return NULL;
    if (obj->kind == TV_UNDEFINED) return tpl_fail_undefined(r, obj);
    if (type_error || !(obj->kind == TV_LIST || obj->kind == TV_TUPLE || obj->kind == TV_STR))
        return tv_undefined_hint("'%s object' cannot be sliced", tv_type_name(obj));
    int64_t step = given[2] ? vals[2] : 1;
    if (step == 0) return tpl_fail(r, "slice step cannot be zero");
    int64_t start, stop;
    if (obj->kind == TV_STR) {
        bool ascii = tv_str_codepoints(obj) == obj->u.str.len;
        int64_t n = (int64_t)tv_str_codepoints(obj);
        size_t count = slice_indices(n, given[0] ? &vals[0] : NULL, given[1] ? &vals[1] : NULL, step, &start, &stop);
        if (step == 1) {
            size_t a = ascii ? (size_t)start : utf8_offset(obj->u.str.s, obj->u.str.len, (size_t)start);
            size_t b = ascii ? (size_t)start + count
                             : a + utf8_offset(obj->u.str.s + a, obj->u.str.len - a, count);
            return tv_str(obj->u.str.s + a, b - a);
        }
        /* general step: index the code points */
        size_t *offs = ci_malloc(((size_t)n + 1) * sizeof *offs);
        size_t i = 0, k = 0;
        while (i < obj->u.str.len) {
            offs[k++] = i;
            utf8_next(obj->u.str.s, obj->u.str.len, &i);
        }
        offs[k] = obj->u.str.len;
        ci_buf b = {0};
        ci_buf_reserve(&b, obj->u.str.len);
        int64_t idx = start;
        for (size_t c = 0; c < count; c++, idx += step)
            ci_buf_append(&b, obj->u.str.s + offs[idx], offs[idx + 1] - offs[idx]);
        free(offs);
        size_t len;
        char *s2 = ci_buf_take(&b, &len);
        return tv_str_take(s2, len);
    }
    size_t count = slice_indices((int64_t)obj->u.list.len, given[0] ? &vals[0] : NULL, given[1] ? &vals[1] : NULL,
                                 step, &start, &stop);
    tv *out = tv_list_new(obj->kind == TV_TUPLE ? TV_TUPLE : TV_LIST, count);
    int64_t idx = start;
    for (size_t c = 0; c < count; c++, idx += step) tv_list_push(out, tv_retain(obj->u.list.items[idx]));
    return out;
}

tv *tpl_iterate(tpl_render *r, tv *v) {
    switch (v->kind) {
    case TV_UNDEFINED: return tv_list_new(TV_LIST, 0);
    case TV_LIST: case TV_TUPLE: return tv_retain(v);
    case TV_ITER: {
        tv *l = tv_list_new(TV_LIST, v->consumed ? 0 : v->u.list.len);
        if (!v->consumed)
            for (size_t i = 0; i < v->u.list.len; i++) tv_list_push(l, tv_retain(v->u.list.items[i]));
        v->consumed = 1;
        return l;
    }
    case TV_DICT: case TV_NAMESPACE: {
        if (v->kind == TV_NAMESPACE) return tpl_fail(r, "'Namespace' object is not iterable");
        tv *l = tv_list_new(TV_LIST, v->u.dict.len);
        for (size_t i = 0; i < v->u.dict.len; i++) tv_list_push(l, tv_retain(v->u.dict.keys[i]));
        return l;
    }
    case TV_STR: {
        tv *l = tv_list_new(TV_LIST, tv_str_codepoints(v));
        size_t i = 0;
        while (i < v->u.str.len) {
            size_t start = i;
            utf8_next(v->u.str.s, v->u.str.len, &i);
            tv_list_push(l, tv_str(v->u.str.s + start, i - start));
        }
        return l;
    }
    default: return tpl_fail(r, "'%s' object is not iterable", tv_type_name(v));
    }
}

/* ------------------------------------------------------------ arithmetic */

static bool is_intlike(const tv *v) { return v->kind == TV_INT || v->kind == TV_BOOL; }
static int64_t as_int(const tv *v) { return v->kind == TV_INT ? v->u.i : v->u.b; }
static double as_double(const tv *v) { return v->kind == TV_FLOAT ? v->u.f : (double)as_int(v); }

static const char *OP_SYMBOLS[] = {"+", "-", "*", "/", "//", "%", "**"};

static tv *repeat_seq(tpl_render *r, tv *seq, int64_t times) {
    if (times < 0) times = 0;
    if (seq->kind == TV_STR) {
        size_t total;
        if (ci_mul_overflow(seq->u.str.len, (size_t)times, &total) || !tpl_check_string_size(r, total)) {
            if (!r->failed) tpl_check_string_size(r, SIZE_MAX);
            return NULL;
        }
        char *s = ci_malloc(total + 1);
        for (int64_t i = 0; i < times; i++) memcpy(s + (size_t)i * seq->u.str.len, seq->u.str.s, seq->u.str.len);
        s[total] = '\0';
        return tv_str_take(s, total);
    }
    size_t total;
    if (ci_mul_overflow(seq->u.list.len, (size_t)times, &total) || total > r->limits.max_string_bytes / 8)
        return tpl_fail_limit(r, "list repetition too large");
    tv *out = tv_list_new(seq->kind, total);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq->u.list.len; k++) tv_list_push(out, tv_retain(seq->u.list.items[k]));
    return out;
}

/* Python's float floor division / modulo (float_divmod). */
static void float_divmod(double vx, double wx, double *div_out, double *mod_out) {
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod) {
        if ((wx < 0) != (mod < 0)) {
            mod += wx;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, wx);
    }
    double floordiv;
    if (div) {
        floordiv = floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, vx / wx);
    }
    *div_out = floordiv;
    *mod_out = mod;
}

static tv *string_format(tpl_render *r, tv *fmt, tv *args);

tv *tpl_binop(tpl_render *r, int op, tv *a, tv *b) {
    if (a->kind == TV_UNDEFINED) return tpl_fail_undefined(r, a);
    if (b->kind == TV_UNDEFINED) return tpl_fail_undefined(r, b);
    bool num = tv_is_number(a) && tv_is_number(b);
    bool ints = is_intlike(a) && is_intlike(b);
    switch (op) {
    case OP_ADD:
        if (ints) {
            int64_t out;
            if (__builtin_add_overflow(as_int(a), as_int(b), &out)) return tpl_fail(r, "integer overflow");
            return tv_int(out);
        }
        if (num) return tv_float(as_double(a) + as_double(b));
        if (a->kind == TV_STR && b->kind == TV_STR) {
            size_t total = a->u.str.len + b->u.str.len;
            if (!tpl_check_string_size(r, total)) return NULL;
            char *s = ci_malloc(total + 1);
            memcpy(s, a->u.str.s, a->u.str.len);
            memcpy(s + a->u.str.len, b->u.str.s, b->u.str.len);
            s[total] = '\0';
            tv *v = tv_str_take(s, total);
            /* Markup + str escapes the str; kept simple: the result stays markup */
            v->markup = a->markup || b->markup;
            return v;
        }
        if ((a->kind == TV_LIST || a->kind == TV_TUPLE) && a->kind == b->kind) {
            if (a->u.list.len + b->u.list.len > r->limits.max_string_bytes / 8) return tpl_fail_limit(r, "list too large");
            tv *out = tv_list_new(a->kind, a->u.list.len + b->u.list.len);
            for (size_t i = 0; i < a->u.list.len; i++) tv_list_push(out, tv_retain(a->u.list.items[i]));
            for (size_t i = 0; i < b->u.list.len; i++) tv_list_push(out, tv_retain(b->u.list.items[i]));
            return out;
        }
        break;
    case OP_SUB:
        if (ints) {
            int64_t out;
            if (__builtin_sub_overflow(as_int(a), as_int(b), &out)) return tpl_fail(r, "integer overflow");
            return tv_int(out);
        }
        if (num) return tv_float(as_double(a) - as_double(b));
        break;
    case OP_MUL:
        if (ints) {
            int64_t out;
            if (__builtin_mul_overflow(as_int(a), as_int(b), &out)) return tpl_fail(r, "integer overflow");
            return tv_int(out);
        }
        if (num) return tv_float(as_double(a) * as_double(b));
        if ((a->kind == TV_STR || tv_is_seq(a)) && is_intlike(b)) return repeat_seq(r, a, as_int(b));
        if ((b->kind == TV_STR || tv_is_seq(b)) && is_intlike(a)) return repeat_seq(r, b, as_int(a));
        break;
    case OP_DIV:
        if (num) {
            if (as_double(b) == 0.0) return tpl_fail(r, "division by zero");
            return tv_float(as_double(a) / as_double(b));
        }
        break;
    case OP_FLOORDIV: case OP_MOD:
        if (ints) {
            int64_t x = as_int(a), y = as_int(b);
            if (y == 0) return tpl_fail(r, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) return tpl_fail(r, "integer overflow");
            int64_t q = x / y, m = x % y;
            if (m && ((m < 0) != (y < 0))) {
                m += y;
                q -= 1;
            }
            return tv_int(op == OP_FLOORDIV ? q : m);
        }
        if (num) {
            if (as_double(b) == 0.0) return tpl_fail(r, "float division by zero");
            double d, m;
            float_divmod(as_double(a), as_double(b), &d, &m);
            return tv_float(op == OP_FLOORDIV ? d : m);
        }
        if (op == OP_MOD && a->kind == TV_STR) return string_format(r, a, b);
        break;
    case OP_POW:
        if (ints && as_int(b) >= 0) {
            int64_t base = as_int(a), e = as_int(b), out = 1;
            while (e > 0) {
                if (e & 1) {
                    if (__builtin_mul_overflow(out, base, &out)) return tpl_fail(r, "integer overflow");
                }
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base)) return tpl_fail(r, "integer overflow");
            }
            return tv_int(out);
        }
        if (num) {
            double x = as_double(a), y = as_double(b);
            if (x == 0.0 && y < 0) return tpl_fail(r, "0.0 cannot be raised to a negative power");
            if (x < 0 && y != floor(y)) return tpl_fail(r, "complex results are not supported");
            return tv_float(pow(x, y));
        }
        break;
    }
    return tpl_fail(r, "unsupported operand type(s) for %s: '%s' and '%s'", OP_SYMBOLS[op], tv_type_name(a),
                    tv_type_name(b));
}

/* Minimal printf-style `str % args` (%s %r %d %i %f %%), enough for the
 * rare template that uses it; anything else fails loudly. */
static tv *string_format(tpl_render *r, tv *fmt, tv *args) {
    size_t argi = 0, nargs = args->kind == TV_TUPLE ? args->u.list.len : 1;
    ci_buf b = {0};
    const char *s = fmt->u.str.s;
    size_t len = fmt->u.str.len;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            ci_buf_putc(&b, s[i]);
            continue;
        }
        if (++i >= len) goto bad;
        char c = s[i];
        if (c == '%') {
            ci_buf_putc(&b, '%');
            continue;
        }
        if (argi >= nargs) {
            ci_buf_free(&b);
            return tpl_fail(r, "not enough arguments for format string");
        }
        tv *arg = args->kind == TV_TUPLE ? args->u.list.items[argi] : args;
        argi++;
        if (c == 's') {
            if (!tv_to_str(r, &b, arg)) goto fail;
        } else if (c == 'r') {
            if (!tv_repr(r, &b, arg)) goto fail;
        } else if ((c == 'd' || c == 'i') && tv_is_number(arg)) {
            ci_buf_printf(&b, "%lld", arg->kind == TV_FLOAT ? (long long)arg->u.f : (long long)as_int(arg));
        } else if (c == 'f' && tv_is_number(arg)) {
            ci_buf_printf(&b, "%f", as_double(arg));
        } else goto bad;
    }
    if (argi < nargs) {
        ci_buf_free(&b);
        return tpl_fail(r, "not all arguments converted during string formatting");
    }
    size_t n;
    char *out = ci_buf_take(&b, &n);
    return tv_str_take(out, n);
bad:
    ci_buf_free(&b);
    return tpl_fail(r, "unsupported format string");
fail:
    ci_buf_free(&b);
    return NULL;
}

int tpl_contains(tpl_render *r, tv *container, tv *item) {
    switch (container->kind) {
    case TV_UNDEFINED: return 0;
    case TV_STR:
        if (item->kind == TV_UNDEFINED) {
            tpl_fail_undefined(r, item);
            return -1;
        }
        if (item->kind != TV_STR) {
            tpl_fail(r, "'in <string>' requires string as left operand, not %s", tv_type_name(item));
            return -1;
        }
        if (!item->u.str.len) return 1;
        return memmem(container->u.str.s, container->u.str.len, item->u.str.s, item->u.str.len) != NULL;
    case TV_LIST: case TV_TUPLE:
        for (size_t i = 0; i < container->u.list.len; i++)
            if (container->u.list.items[i] == item || tv_equal(container->u.list.items[i], item)) return 1;
        return 0;
    case TV_DICT:
        if (!tv_hashable(item)) {
            tpl_fail(r, "unhashable type: '%s'", tv_type_name(item));
            return -1;
        }
        return tv_dict_get(container, item) != NULL;
    case TV_ITER: {
        if (container->consumed) return 0;
        /* `in` consumes a generator up to the match */
        for (size_t i = 0; i < container->u.list.len; i++)
            if (tv_equal(container->u.list.items[i], item)) {
                /* drop the consumed prefix */
                for (size_t k = 0; k <= i; k++) tv_release(container->u.list.items[k]);
                memmove(container->u.list.items, container->u.list.items + i + 1,
                        (container->u.list.len - i - 1) * sizeof(tv *));
                container->u.list.len -= i + 1;
                return 1;
            }
        container->consumed = 1;
        return 0;
    }
    default:
        tpl_fail(r, "argument of type '%s' is not iterable", tv_type_name(container));
        return -1;
    }
}

static tv *compare(tpl_render *r, int op, tv *a, tv *b) {
    switch (op) {
    case OP_EQ: return tv_bool(tv_equal(a, b));
    case OP_NE: return tv_bool(!tv_equal(a, b));
    case OP_IN: case OP_NOTIN: {
        int c = tpl_contains(r, b, a);
        if (c < 0) return NULL;
        return tv_bool(op == OP_IN ? c : !c);
    }
    default: {
        int c;
        if (!tv_compare(r, a, b, &c)) return NULL;
        if (c == 2) return tv_bool(false); /* NaN */
        bool res = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
        return tv_bool(res);
    }
    }
}

/* -------------------------------------------------------------- the loop */

static tv *loop_cycle(tpl_render *r, tv *self, tv_args *a) {
    if (!a->npos) return tpl_fail(r, "no items for cycling given");
    return tv_retain(a->pos[self->u.loop.index0 % a->npos]);
}

static tv *loop_changed(tpl_render *r, tv *self, tv_args *a) {
    tv *val = tv_list_new(TV_TUPLE, a->npos);
    for (size_t i = 0; i < a->npos; i++) tv_list_push(val, tv_retain(a->pos[i]));
    if (self->u.loop.last_changed && tv_equal(self->u.loop.last_changed, val)) {
        tv_release(val);
        return tv_bool(false);
    }
    tv_release(self->u.loop.last_changed);
    self->u.loop.last_changed = val;
    return tv_bool(true);
}

static tv *loop_attr(tpl_render *r, tv *loop, const char *name, size_t len) {
    size_t n = loop->u.loop.items->u.list.len, i0 = loop->u.loop.index0;
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
    if (IS("index")) return tv_int((int64_t)i0 + 1);
    if (IS("index0")) return tv_int((int64_t)i0);
    if (IS("revindex")) return tv_int((int64_t)(n - i0));
    if (IS("revindex0")) return tv_int((int64_t)(n - i0 - 1));
    if (IS("first")) return tv_bool(i0 == 0);
    if (IS("last")) return tv_bool(i0 + 1 == n);
    if (IS("length")) return tv_int((int64_t)n);
    if (IS("depth")) return tv_int(1);
    if (IS("depth0")) return tv_int(0);
    if (IS("previtem"))
        return i0 ? tv_retain(loop->u.loop.items->u.list.items[i0 - 1]) : tv_undefined_hint("there is no previous item");
    if (IS("nextitem"))
        return i0 + 1 < n ? tv_retain(loop->u.loop.items->u.list.items[i0 + 1]) : tv_undefined_hint("there is no next item");
    if (IS("cycle")) return tv_func(loop_cycle, loop, "cycle");
    if (IS("changed")) return tv_func(loop_changed, loop, "changed");
#undef IS
    (void)r;
    return NULL;
}

/* ------------------------------------------------------------- assignment */

static bool assign(tpl_render *r, const tnode *target, tv *value, tframe *f) {
    if (target->kind == N_NAME) {
        frame_set(f, target->name, target->name_len, tv_retain(value));
        return true;
    }
    if (target->kind == N_NSREF) {
        tv *ns = lookup(r, f, target->name, target->name_len);
        if (ns->kind != TV_NAMESPACE) {
            tv_release(ns);
            tpl_fail(r, "cannot assign attribute on non-namespace object");
            return false;
        }
        tv_dict_set(ns, tv_retain(target->cval), tv_retain(value));
        tv_release(ns);
        return true;
    }
    /* tuple unpacking */
    tv *items = tpl_iterate(r, value);
    if (!items) return false;
    size_t want = target->items.n;
    if (items->u.list.len != want) {
        tpl_fail(r, items->u.list.len > want ? "too many values to unpack (expected %zu)"
                                             : "not enough values to unpack (expected %zu)",
                 want);
        tv_release(items);
        return false;
    }
    for (size_t i = 0; i < want; i++) {
        const tnode *t = target->items.v[i];
        frame_set(f, t->name, t->name_len, tv_retain(items->u.list.items[i]));
    }
    tv_release(items);
    return true;
}

/* ------------------------------------------------------------------ calls */

static void args_free(tv_args *a) {
    for (size_t i = 0; i < a->npos; i++) tv_release(a->pos[i]);
    for (size_t i = 0; i < a->nkw; i++) tv_release(a->kwvals[i]);
    for (size_t i = 0; i < a->nowned; i++) free(a->owned[i]);
    free(a->owned);
    free(a->pos);
    free(a->kwvals);
    free(a->kwnames);
    memset(a, 0, sizeof *a);
}

static void args_push_pos(tv_args *a, tv *v) {
    a->pos = ci_realloc_array(a->pos, a->npos + 1, sizeof *a->pos);
    a->pos[a->npos++] = v;
}

static void args_push_kw(tv_args *a, const char *name, tv *v) {
    a->kwnames = ci_realloc_array(a->kwnames, a->nkw + 1, sizeof *a->kwnames);
    a->kwvals = ci_realloc_array(a->kwvals, a->nkw + 1, sizeof *a->kwvals);
    a->kwnames[a->nkw] = name;
    a->kwvals[a->nkw++] = v;
}

static const char *own_name(tv_args *a, const char *name, size_t len) {
    a->owned = ci_realloc_array(a->owned, a->nowned + 1, sizeof *a->owned);
    return a->owned[a->nowned++] = ci_strndup(name, len);
}

static bool eval_args(tpl_render *r, const tnode *n, tframe *f, tv_args *a) {
    for (size_t i = 0; i < n->items.n; i++) {
        tv *v = eval(r, n->items.v[i], f);
        if (!v) return false;
        args_push_pos(a, v);
    }
    if (n->dyn_args) {
        tv *d = eval(r, n->dyn_args, f);
        if (!d) return false;
        tv *items = tpl_iterate(r, d);
        tv_release(d);
        if (!items) return false;
        for (size_t i = 0; i < items->u.list.len; i++) args_push_pos(a, tv_retain(items->u.list.items[i]));
        tv_release(items);
    }
    for (size_t i = 0; i < n->kwargs.n; i++) {
        const tnode *kw = n->kwargs.v[i];
        tv *v = eval(r, kw->a, f);
        if (!v) return false;
        args_push_kw(a, own_name(a, kw->name, kw->name_len), v);
    }
    if (n->dyn_kwargs) {
        tv *d = eval(r, n->dyn_kwargs, f);
        if (!d) return false;
        if (d->kind != TV_DICT) {
            tv_release(d);
            tpl_fail(r, "argument after ** must be a mapping");
            return false;
        }
        for (size_t i = 0; i < d->u.dict.len; i++) {
            tv *k = d->u.dict.keys[i];
            if (k->kind != TV_STR) {
                tv_release(d);
                tpl_fail(r, "keywords must be strings");
                return false;
            }
            args_push_kw(a, own_name(a, k->u.str.s, k->u.str.len), tv_retain(d->u.dict.vals[i]));
        }
        tv_release(d);
    }
    return true;
}

static tv *call_macro(tpl_render *r, tv *macro, tv_args *a) {
    const tnode *m = macro->u.macro.node;
    if (r->macro_depth >= r->limits.max_macro_depth)
        return tpl_fail_limit(r, "macro calls nested too deeply (limit %d)", r->limits.max_macro_depth);
    tframe *f = frame_new(macro->u.macro.closure);
    size_t nparams = m->items.n, first_default = nparams - m->defaults.n;
    int macro_name_len = m->kind == N_MACRO ? (int)m->name_len : 6;
    const char *macro_name = m->kind == N_MACRO ? m->name : "caller";
    tv *result = NULL;
    bool *bound = ci_calloc(nparams + 1, sizeof *bound);
    if (a->npos > nparams && !m->uses_varargs) {
        tpl_fail(r, "macro '%.*s' takes not more than %zu argument(s)", macro_name_len, macro_name, nparams);
        goto done;
    }
    for (size_t i = 0; i < nparams && i < a->npos; i++) {
        const tnode *p = m->items.v[i];
        frame_set(f, p->name, p->name_len, tv_retain(a->pos[i]));
        bound[i] = true;
    }
    tv *extra_kwargs = tv_dict_new(TV_DICT);
    bool caller_given = false;
    for (size_t k = 0; k < a->nkw; k++) {
        const char *kn = a->kwnames[k];
        size_t kl = strlen(kn);
        size_t i;
        for (i = 0; i < nparams; i++)
            if (m->items.v[i]->name_len == kl && memcmp(m->items.v[i]->name, kn, kl) == 0) break;
        if (i < nparams) {
            if (bound[i]) {
                tv_release(extra_kwargs);
                tpl_fail(r, "macro '%.*s' got multiple values for argument '%s'", macro_name_len, macro_name, kn);
                goto done;
            }
            frame_set(f, m->items.v[i]->name, m->items.v[i]->name_len, tv_retain(a->kwvals[k]));
            bound[i] = true;
        } else if (strcmp(kn, "caller") == 0 && m->uses_caller) {
            frame_set_cstr(f, "caller", tv_retain(a->kwvals[k]));
            caller_given = true;
        } else if (m->uses_kwargs) {
            tv_dict_set(extra_kwargs, tv_cstr(kn), tv_retain(a->kwvals[k]));
        } else {
            tv_release(extra_kwargs);
            tpl_fail(r, "macro '%.*s' takes no keyword argument '%s'", macro_name_len, macro_name, kn);
            goto done;
        }
    }
    if (m->uses_caller && !caller_given) {
        bool is_param = false;
        for (size_t i = 0; i < nparams; i++)
            if (m->items.v[i]->name_len == 6 && memcmp(m->items.v[i]->name, "caller", 6) == 0) is_param = true;
        if (!is_param) frame_set_cstr(f, "caller", tv_undefined_hint("No caller defined"));
    }
    if (m->uses_kwargs) frame_set_cstr(f, "kwargs", extra_kwargs);
    else tv_release(extra_kwargs);
    if (m->uses_varargs) {
        tv *va = tv_list_new(TV_TUPLE, 0);
        for (size_t i = nparams; i < a->npos; i++) tv_list_push(va, tv_retain(a->pos[i]));
        frame_set_cstr(f, "varargs", va);
    }
    for (size_t i = 0; i < nparams; i++) {
        if (bound[i]) continue;
        const tnode *p = m->items.v[i];
        tv *v;
        if (i >= first_default) {
            v = eval(r, m->defaults.v[i - first_default], f);
            if (!v) goto done;
        } else {
            v = tv_undefined_hint("parameter '%.*s' was not provided", (int)p->name_len, p->name);
        }
        frame_set(f, p->name, p->name_len, v);
    }
    {
        ci_buf saved = r->out;
        r->out = (ci_buf){0};
        r->macro_depth++;
        int rc = exec_body(r, &m->body, f);
        r->macro_depth--;
        ci_buf captured = r->out;
        r->out = saved;
        if (rc == EX_ERR) {
            ci_buf_free(&captured);
            goto done;
        }
        size_t len;
        char *s = ci_buf_take(&captured, &len);
        result = tv_str_take(s, len);
    }
done:
    free(bound);
    tpl_frame_release(f);
    return result;
}

tv *tpl_call(tpl_render *r, tv *fn, tv_args *a) {
    switch (fn->kind) {
    case TV_FUNC: return tpl_charge(r, fn->u.func.fn(r, fn->u.func.self, a));
    case TV_MACRO: return tpl_charge(r, call_macro(r, fn, a));
    case TV_UNDEFINED: return tpl_fail_undefined(r, fn);
    default: return tpl_fail(r, "'%s' object is not callable", tv_type_name(fn));
    }
}

static tv *eval_call(tpl_render *r, const tnode *n, tframe *f, tv *extra_caller) {
    tv *fn = eval(r, n->a, f);
    if (!fn) return NULL;
    tv_args a = {0};
    tv *result = NULL;
    if (eval_args(r, n, f, &a)) {
        if (extra_caller) args_push_kw(&a, "caller", tv_retain(extra_caller));
        result = tpl_call(r, fn, &a);
    }
    args_free(&a);
    tv_release(fn);
    return result;
}

/* Applies one filter node to `value` (consumed). */
static tv *apply_filter(tpl_render *r, const tnode *n, tframe *f, tv *value) {
    const tnode *saved = r->current;
    r->current = n;
    tv *result = NULL;
    if (!n->filter_fn) {
        tpl_fail(r, "No filter named '%.*s'.", (int)n->name_len, n->name);
    } else {
        tv_args a = {0};
        if (eval_args(r, n, f, &a)) result = tpl_charge(r, n->filter_fn(r, value, &a));
        args_free(&a);
    }
    tv_release(value);
    if (result) r->current = saved;
    return result;
}

/* Applies a chain of filter nodes (`x|a|b|c` parses as c(b(a(x)))); `input`
 * replaces the innermost missing operand (filter blocks and set blocks).
 * The chain is walked with a loop, not recursion: its length is bounded
 * only by the source size. */
static tv *eval_filter(tpl_render *r, const tnode *n, tframe *f, tv *input) {
    const tnode *local[32], **chain = local;
    size_t len = 0, cap = 32;
    for (const tnode *c = n; c && c->kind == N_FILTER; c = c->a) {
        if (len == cap) {
            cap *= 2;
            const tnode **grown = ci_realloc_array(chain == local ? NULL : chain, cap, sizeof *chain);
            if (chain == local) memcpy(grown, local, sizeof local);
            chain = grown;
        }
        chain[len++] = c;
    }
    const tnode *inner = chain[len - 1]->a;
    tv *value = inner ? eval(r, inner, f) : tv_retain(input);
    for (size_t i = len; value && i-- > 0;) value = apply_filter(r, chain[i], f, value);
    if (chain != local) free(chain);
    return value;
}

static tv *eval_test(tpl_render *r, const tnode *n, tframe *f) {
    tv *value = eval(r, n->a, f);
    if (!value) return NULL;
    if (!n->test_fn) {
        tv_release(value);
        return tpl_fail(r, "No test named '%.*s'.", (int)n->name_len, n->name);
    }
    tv_args a = {0};
    tv *result = NULL;
    if (eval_args(r, n, f, &a)) {
        int t = n->test_fn(r, value, &a);
        if (t >= 0) result = tv_bool(t);
    }
    args_free(&a);
    tv_release(value);
    return result;
}

static tv *eval_inner(tpl_render *r, const tnode *n, tframe *f) {
    switch (n->kind) {
    case N_CONST: return tv_retain(n->cval);
    case N_NAME: return lookup(r, f, n->name, n->name_len);
    case N_GETATTR: {
        tv *obj = eval(r, n->a, f);
        if (!obj) return NULL;
        tv *v = tpl_getattr(r, obj, n->name, n->name_len);
        tv_release(obj);
        return v;
    }
    case N_GETITEM: {
        tv *obj = eval(r, n->a, f);
        if (!obj) return NULL;
        tv *v;
        if (n->b->kind == N_SLICE) {
            v = tpl_charge(r, eval_slice(r, obj, n->b, f));
        } else {
            tv *key = eval(r, n->b, f);
            v = key ? tpl_getitem(r, obj, key) : NULL;
            tv_release(key);
        }
        tv_release(obj);
        return v;
    }
    case N_SLICE: return tpl_fail(r, "slice outside of a subscript");
    case N_CALL: return eval_call(r, n, f, NULL);
    case N_FILTER: return eval_filter(r, n, f, NULL);
    case N_TEST: return eval_test(r, n, f);
    case N_NOT: {
        tv *v = eval(r, n->a, f);
        if (!v) return NULL;
        bool t = tv_truthy(v);
        tv_release(v);
        return tv_bool(!t);
    }
    case N_NEG: case N_POS: {
        tv *v = eval(r, n->a, f);
        if (!v) return NULL;
        tv *out = NULL;
        if (v->kind == TV_UNDEFINED) tpl_fail_undefined(r, v);
        else if (is_intlike(v)) {
            if (n->kind == N_NEG && as_int(v) == INT64_MIN) tpl_fail(r, "integer overflow");
            else out = tv_int(n->kind == N_NEG ? -as_int(v) : as_int(v));
        } else if (v->kind == TV_FLOAT) out = tv_float(n->kind == N_NEG ? -v->u.f : v->u.f);
        else tpl_fail(r, "bad operand type for unary %s: '%s'", n->kind == N_NEG ? "-" : "+", tv_type_name(v));
        tv_release(v);
        return out;
    }
    case N_BINOP: {
        tv *a = eval(r, n->a, f);
        if (!a) return NULL;
        tv *b = eval(r, n->b, f);
        if (!b) {
            tv_release(a);
            return NULL;
        }
        tv *out = tpl_binop(r, n->op, a, b);
        tv_release(a);
        tv_release(b);
        return tpl_charge(r, out);
    }
    case N_CONCAT: {
        ci_buf b = {0};
        for (size_t i = 0; i < n->items.n; i++) {
            tv *v = eval(r, n->items.v[i], f);
            if (!v || !tv_to_str(r, &b, v) || !tpl_check_string_size(r, b.len)) {
                tv_release(v);
                ci_buf_free(&b);
                return NULL;
            }
            tv_release(v);
        }
        size_t len;
        char *s = ci_buf_take(&b, &len);
        return tpl_charge(r, tv_str_take(s, len));
    }
    case N_COMPARE: {
        tv *left = eval(r, n->a, f);
        if (!left) return NULL;
        tv *result = NULL;
        for (size_t i = 0; i < n->items.n; i++) {
            const tnode *operand = n->items.v[i];
            tv *right = eval(r, operand->a, f);
            if (!right) {
                tv_release(left);
                tv_release(result);
                return NULL;
            }
            tv_release(result);
            result = compare(r, operand->op, left, right);
            tv_release(left);
            left = right;
            if (!result) {
                tv_release(left);
                return NULL;
            }
            if (!tv_truthy(result)) break;
        }
        tv_release(left);
        return result;
    }
    case N_AND: case N_OR: {
        tv *a = eval(r, n->a, f);
        if (!a) return NULL;
        bool t = tv_truthy(a);
        if ((n->kind == N_AND) != t) return a;
        tv_release(a);
        return eval(r, n->b, f);
    }
    case N_CONDEXPR: {
        tv *t = eval(r, n->a, f);
        if (!t) return NULL;
        bool truth = tv_truthy(t);
        tv_release(t);
        if (truth) return eval(r, n->b, f);
        if (n->c) return eval(r, n->c, f);
        return tv_undefined_hint("the inline if-expression on line %d evaluated to false and no else section was "
                                 "defined.",
                                 n->line);
    }
    case N_LIST: case N_TUPLE: {
        tv *l = tv_list_new(n->kind == N_LIST ? TV_LIST : TV_TUPLE, n->items.n);
        for (size_t i = 0; i < n->items.n; i++) {
            tv *v = eval(r, n->items.v[i], f);
            if (!v) {
                tv_release(l);
                return NULL;
            }
            tv_list_push(l, v);
        }
        return tpl_charge(r, l);
    }
    case N_DICT: {
        tv *d = tv_dict_new(TV_DICT);
        for (size_t i = 0; i < n->items.n; i++) {
            tv *k = eval(r, n->items.v[i], f);
            if (!k) {
                tv_release(d);
                return NULL;
            }
            if (!tv_hashable(k)) {
                tpl_fail(r, "unhashable type: '%s'", tv_type_name(k));
                tv_release(k);
                tv_release(d);
                return NULL;
            }
            tv *v = eval(r, n->kwargs.v[i], f);
            if (!v) {
                tv_release(k);
                tv_release(d);
                return NULL;
            }
            tv_dict_set(d, k, v);
        }
        return tpl_charge(r, d);
    }
    default: return tpl_fail(r, "invalid expression");
    }
}

static tv *eval(tpl_render *r, const tnode *n, tframe *f) {
    if (!enter(r)) return NULL;
    const tnode *saved = r->current;
    r->current = n;
    tv *v = eval_inner(r, n, f);
    if (v) r->current = saved;
    r->depth--;
    return v;
}

/* ------------------------------------------------------------- statements */

static int exec_stmt(tpl_render *r, const tnode *n, tframe *f);

static int exec_body(tpl_render *r, const tnode_vec *body, tframe *f) {
    for (size_t i = 0; i < body->n; i++) {
        int rc = exec_stmt(r, body->v[i], f);
        if (rc != EX_OK) return rc;
    }
    return EX_OK;
}

/* Runs `body` capturing its output as a string value. */
static tv *capture(tpl_render *r, const tnode_vec *body, tframe *f) {
    ci_buf saved = r->out;
    r->out = (ci_buf){0};
    int rc = exec_body(r, body, f);
    ci_buf captured = r->out;
    r->out = saved;
    if (rc == EX_ERR) {
        ci_buf_free(&captured);
        return NULL;
    }
    size_t len;
    char *s = ci_buf_take(&captured, &len);
    return tpl_charge(r, tv_str_take(s, len));
}

static int exec_for(tpl_render *r, const tnode *n, tframe *f) {
    tv *iterable = eval(r, n->b, f);
    if (!iterable) return EX_ERR;
    tv *items = tpl_iterate(r, iterable);
    tv_release(iterable);
    if (!items) return EX_ERR;
    if (n->c) { /* `for x in y if cond`: filter first so loop.length/index count kept items */
        tv *kept = tv_list_new(TV_LIST, items->u.list.len);
        for (size_t i = 0; i < items->u.list.len; i++) {
            tframe *tmp = frame_new(f);
            bool ok = assign(r, n->a, items->u.list.items[i], tmp);
            tv *t = ok ? eval(r, n->c, tmp) : NULL;
            tpl_frame_release(tmp);
            if (!t) {
                tv_release(kept);
                tv_release(items);
                return EX_ERR;
            }
            if (tv_truthy(t)) tv_list_push(kept, tv_retain(items->u.list.items[i]));
            tv_release(t);
        }
        tv_release(items);
        items = kept;
    }
    int rc = EX_OK;
    if (items->u.list.len == 0) {
        tv_release(items);
        if (!n->else_body.n) return EX_OK;
        tframe *ef = frame_new(f);
        rc = exec_body(r, &n->else_body, ef);
        tpl_frame_release(ef);
        return rc;
    }
    tv *loop = ci_calloc(1, sizeof *loop);
    loop->refs = 1;
    loop->kind = TV_LOOP;
    loop->u.loop.items = items; /* takes the reference */
    for (size_t i = 0; i < items->u.list.len; i++) {
        if (++r->iterations > r->limits.max_iterations) {
            tpl_fail_limit(r, "too many loop iterations (limit %llu)", (unsigned long long)r->limits.max_iterations);
            rc = EX_ERR;
            break;
        }
        loop->u.loop.index0 = i;
        tframe *it = frame_new(f);
        frame_set_cstr(it, "loop", tv_retain(loop));
        if (!assign(r, n->a, items->u.list.items[i], it)) {
            tpl_frame_release(it);
            rc = EX_ERR;
            break;
        }
        rc = exec_body(r, &n->body, it);
        tpl_frame_release(it);
        if (rc == EX_CONTINUE) rc = EX_OK;
        if (rc == EX_BREAK) {
            rc = EX_OK;
            break;
        }
        if (rc == EX_ERR) break;
    }
    tv_release(loop);
    return rc;
}

static tv *make_macro(tpl_render *r, const tnode *n, tframe *f) {
    tv *m = ci_calloc(1, sizeof *m);
    m->refs = 1;
    m->kind = TV_MACRO;
    m->u.macro.node = n;
    m->u.macro.closure = f;
    f->refs++;
    capture_frame(r, f);
    return m;
}

static int exec_stmt(tpl_render *r, const tnode *n, tframe *f) {
    if (r->failed) return EX_ERR;
    if (!enter(r)) return EX_ERR;
    const tnode *saved = r->current;
    r->current = n;
    int rc = EX_OK;
    switch (n->kind) {
    case N_DATA:
        if (!emit(r, n->name, n->name_len)) rc = EX_ERR;
        break;
    case N_OUTPUT:
        for (size_t i = 0; i < n->items.n && rc == EX_OK; i++) {
            tv *v = eval(r, n->items.v[i], f);
            if (!v || !emit_value(r, v)) rc = EX_ERR;
            tv_release(v);
        }
        break;
    case N_IF: {
        tv *t = eval(r, n->a, f);
        if (!t) {
            rc = EX_ERR;
            break;
        }
        bool truth = tv_truthy(t);
        tv_release(t);
        rc = exec_body(r, truth ? &n->body : &n->else_body, f);
        break;
    }
    case N_FOR: rc = exec_for(r, n, f); break;
    case N_SET: {
        tv *v = eval(r, n->b, f);
        if (!v || !assign(r, n->a, v, f)) rc = EX_ERR;
        tv_release(v);
        break;
    }
    case N_SET_BLOCK: {
        tv *v = capture(r, &n->body, f);
        if (v && n->b) {
            tv *filtered = eval_filter(r, n->b, f, v);
            tv_release(v);
            v = filtered;
        }
        if (!v || !assign(r, n->a, v, f)) rc = EX_ERR;
        tv_release(v);
        break;
    }
    case N_MACRO: frame_set(f, n->name, n->name_len, make_macro(r, n, f)); break;
    case N_CALL_BLOCK: {
        tv *caller = make_macro(r, n, f);
        tv *v = eval_call(r, n->a, f, caller);
        tv_release(caller);
        if (!v || !emit_value(r, v)) rc = EX_ERR;
        tv_release(v);
        break;
    }
    case N_FILTER_BLOCK: {
        tframe *bf = frame_new(f);
        tv *body = capture(r, &n->body, bf);
        tpl_frame_release(bf);
        tv *v = body ? eval_filter(r, n->a, f, body) : NULL;
        tv_release(body);
        if (!v || !emit_value(r, v)) rc = EX_ERR;
        tv_release(v);
        break;
    }
    case N_BREAK: rc = EX_BREAK; break;
    case N_CONTINUE: rc = EX_CONTINUE; break;
    case N_WITH: {
        tframe *wf = frame_new(f);
        for (size_t i = 0; i < n->items.n && rc == EX_OK; i++) {
            tv *v = eval(r, n->kwargs.v[i], f);
            if (!v || !assign(r, n->items.v[i], v, wf)) rc = EX_ERR;
            tv_release(v);
        }
        if (rc == EX_OK) rc = exec_body(r, &n->body, wf);
        tpl_frame_release(wf);
        break;
    }
    case N_SCOPE_BODY: {
        tframe *bf = frame_new(f);
        rc = exec_body(r, &n->body, bf);
        tpl_frame_release(bf);
        break;
    }
    case N_UNSUPPORTED:
        tpl_fail(r, "'%.*s' is not supported: chat templates have no template loader", (int)n->name_len, n->name);
        rc = EX_ERR;
        break;
    default:
        tpl_fail(r, "invalid statement");
        rc = EX_ERR;
    }
    if (rc != EX_ERR) r->current = saved;
    r->depth--;
    return r->failed ? EX_ERR : rc;
}

/* ----------------------------------------------------------------- render */

char *tpl_render_jansson(const cinfer_template *tpl, const json_t *context, const tpl_limits *limits,
                         size_t *len_out, cinfer_error *err) {
    if (!tpl) {
        ci_error(err, CINFER_ERR_INVALID, "template is NULL");
        return NULL;
    }
    if (!context || !json_is_object(context)) {
        ci_error(err, CINFER_ERR_INVALID, "template context must be a JSON object");
        return NULL;
    }
    tpl_render r = {.tpl = tpl, .err = err};
    if (limits) r.limits = *limits;
    else tpl_limits_default(&r.limits);
    r.context = tv_from_json(context, 0);
    r.root = frame_new(NULL);
    int rc = exec_body(&r, &tpl->root, r.root);
    /* break reference cycles (namespaces and frames captured by macros) */
    for (size_t i = 0; i < r.n_namespaces; i++) {
        tv *ns = r.namespaces[i];
        for (size_t k = 0; k < ns->u.dict.len; k++) {
            tv_release(ns->u.dict.keys[k]);
            tv_release(ns->u.dict.vals[k]);
        }
        ns->u.dict.len = 0;
    }
    for (size_t i = 0; i < r.n_captured; i++) frame_clear(r.captured[i]);
    frame_clear(r.root);
    for (size_t i = 0; i < r.n_namespaces; i++) tv_release(r.namespaces[i]);
    for (size_t i = 0; i < r.n_captured; i++) tpl_frame_release(r.captured[i]);
    free(r.namespaces);
    free(r.captured);
    tpl_frame_release(r.root);
    tv_release(r.context);
    if (rc == EX_ERR || r.failed) {
        if (!r.failed) ci_error(err, CINFER_ERR_TEMPLATE, "template: render failed");
        ci_buf_free(&r.out);
        return NULL;
    }
    return ci_buf_take(&r.out, len_out);
}
