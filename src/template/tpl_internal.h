/*
 * tpl_internal.h — shared declarations of the Jinja2 interpreter.
 *
 * The interpreter is split the way Jinja2 itself is: a lexer (tpl_lexer.c)
 * that reproduces Jinja2's whitespace rules, a recursive-descent parser
 * (tpl_parser.c) building an AST owned by the template, Python-like values
 * (tpl_value.c), an evaluator (tpl_eval.c) and the builtin filters, tests,
 * globals and methods (tpl_builtins.c). Everything a template or a context
 * controls is bounded by tpl_limits.
 *
 * Values are reference counted: every function returning a `tv *` returns a
 * new reference the caller must tv_release(). The only cycles a template can
 * build go through namespaces (`set ns.a = ns`), so a render keeps a list of
 * its namespaces and clears them at the end.
 *
 * A parsed template is immutable and renders from any number of threads at
 * once: everything a render writes (values, frames, output, counters) lives
 * in its tpl_render; the template's own values (literals) are immortal
 * (refs == 0, see tpl_value.c) and only read. No global or static state is
 * written while rendering.
 */
#ifndef CINFER_TPL_INTERNAL_H
#define CINFER_TPL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "template/template.h"
#include "util/util.h"

/* ------------------------------------------------------------------ values */

typedef enum tv_kind {
    TV_UNDEFINED,
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST,
    TV_TUPLE,
    TV_DICT,
    TV_ITER,      /* one-shot iterator (Python generator from map/select/...) */
    TV_NAMESPACE, /* jinja2 namespace(): a mutable dict with attribute access */
    TV_MACRO,
    TV_FUNC,      /* builtin function or bound method */
    TV_LOOP,      /* the `loop` object of a for loop */
} tv_kind;

typedef struct tv tv;
typedef struct tpl_render tpl_render;
typedef struct tnode tnode;
typedef struct tframe tframe;

/* Arguments of a call: positional values then keyword name/value pairs. */
typedef struct tv_args {
    tv **pos;
    size_t npos;
    const char **kwnames;
    tv **kwvals;
    size_t nkw;
    char **owned; /* keyword-name copies this call owns */
    size_t nowned;
} tv_args;

typedef tv *(*tv_builtin)(tpl_render *r, tv *self, tv_args *args);

struct tv {
    uint32_t refs; /* 0 = immortal (singletons, template literals): never counted, never written */
    uint8_t kind;
    uint8_t markup;   /* TV_STR: a Markup (from |safe / |escape) */
    uint8_t unsafe;   /* TV_UNDEFINED: raised as a sandbox SecurityError */
    uint8_t consumed; /* TV_ITER: already iterated */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *s;
            size_t len;
            size_t ncp; /* code points, SIZE_MAX until computed */
        } str;
        struct { /* LIST, TUPLE, ITER */
            tv **items;
            size_t len, cap;
        } list;
        struct { /* DICT, NAMESPACE */
            tv **keys;
            tv **vals;
            size_t len, cap;
        } dict;
        struct {
            char *hint; /* why it is undefined, for the error message */
        } undef;
        struct {
            const tnode *node; /* MACRO or CALL_BLOCK (caller) node */
            tframe *closure;
            tv *caller; /* macro invoked from a call block gets this as `caller` */
        } macro;
        struct {
            tv_builtin fn;
            tv *self;
            const char *name;
        } func;
        struct {
            tv *items; /* TV_LIST being iterated */
            size_t index0;
            tv *last_changed; /* for loop.changed() */
        } loop;
    } u;
};

extern tv TV_NONE_VALUE, TV_TRUE_VALUE, TV_FALSE_VALUE, TV_UNDEFINED_VALUE;

tv *tv_retain(tv *v);
void tv_release(tv *v);
/* Freezes a parse-time literal (int, float, str or a singleton) so that
 * concurrent renders share it read-only; returns v. The owner (the
 * template) frees it with tv_free_immortal. */
tv *tv_make_immortal(tv *v);
void tv_free_immortal(tv *v);
tv *tv_none(void);
tv *tv_bool(bool b);
tv *tv_undefined(void);
tv *tv_undefined_hint(const char *fmt, ...) CI_PRINTF(1, 2);
tv *tv_int(int64_t i);
tv *tv_float(double f);
tv *tv_str(const char *s, size_t len);
tv *tv_cstr(const char *s);
tv *tv_str_take(char *s, size_t len); /* takes ownership of a malloc'd NUL-terminated buffer */
tv *tv_list_new(tv_kind kind, size_t cap); /* TV_LIST, TV_TUPLE or TV_ITER */
void tv_list_push(tv *list, tv *item);     /* takes the reference */
tv *tv_dict_new(tv_kind kind);             /* TV_DICT or TV_NAMESPACE */
void tv_dict_set(tv *dict, tv *key, tv *val); /* takes both references */
tv *tv_dict_get(const tv *dict, const tv *key); /* borrowed, NULL when missing */
tv *tv_dict_get_cstr(const tv *dict, const char *key); /* borrowed */
tv *tv_func(tv_builtin fn, tv *self, const char *name); /* retains self */

bool tv_is_str(const tv *v);
bool tv_is_number(const tv *v); /* bool, int, float */
bool tv_is_seq(const tv *v);    /* list or tuple */
bool tv_truthy(const tv *v);
size_t tv_str_codepoints(tv *s);

/* Python str()/repr() appended to a buffer. Return false on an error (set in r). */
bool tv_to_str(tpl_render *r, ci_buf *out, const tv *v);
bool tv_repr(tpl_render *r, ci_buf *out, const tv *v);
/* New string value holding str(v) (v itself when already a plain str). */
tv *tv_stringify(tpl_render *r, tv *v);
void tv_format_float(ci_buf *out, double f);

/* Python ==. Never fails. */
bool tv_equal(const tv *a, const tv *b);
/* Python <: returns -1/0/1 in *cmp, false (with error) on unorderable types. */
bool tv_compare(tpl_render *r, const tv *a, const tv *b, int *cmp);
/* Python hashability (dict keys, `in` on a dict). */
bool tv_hashable(const tv *v);
const char *tv_type_name(const tv *v);

/* JSON conversion. */
tv *tv_from_json(const void *json /* json_t */, int depth);
/* json.dumps(v, ensure_ascii, indent, separators, sort_keys) */
bool tv_dumps(tpl_render *r, ci_buf *out, const tv *v, const char *indent, bool ensure_ascii,
              const char *item_sep, const char *key_sep, bool sort_keys, int depth);

/* --------------------------------------------------------------- unicode */

/* Decodes one code point at s[*i] (advancing *i); invalid bytes decode as themselves. */
uint32_t utf8_next(const char *s, size_t len, size_t *i);
void utf8_put(ci_buf *b, uint32_t cp);
bool utf8_valid(const char *s, size_t len);
bool uni_isspace(uint32_t cp); /* Python str.isspace() */
bool uni_isprintable(uint32_t cp);
bool uni_isalnum(uint32_t cp);
bool uni_isalpha(uint32_t cp);
bool uni_isdigit(uint32_t cp);
bool uni_isupper(uint32_t cp);
bool uni_islower(uint32_t cp);
bool uni_isword(uint32_t cp); /* regex \w */
void uni_upper(ci_buf *b, uint32_t cp);
void uni_lower(ci_buf *b, uint32_t cp);
void uni_title(ci_buf *b, uint32_t cp);
/* Byte offset of code point index `cp_index` in s (clamped to len). */
size_t utf8_offset(const char *s, size_t len, size_t cp_index);

/* ------------------------------------------------------------------ lexer */

typedef enum tok_type {
    TK_EOF,
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INTEGER,
    TK_FLOAT,
    TK_OP, /* op holds the operator text */
} tok_type;

typedef struct tok {
    tok_type type;
    int line, col;
    const char *text; /* DATA, NAME: slice of the normalized source */
    size_t len;
    char *str; /* STRING: decoded value (owned by the token array) */
    size_t str_len;
    int64_t ival;
    double fval;
    char op[3];
} tok;

typedef struct tok_list {
    tok *v;
    size_t n, cap;
} tok_list;

/* Tokenizes `src` (already newline-normalized); on failure fills err. */
int tpl_lex(const char *src, size_t len, tok_list *out, cinfer_error *err);
void tpl_tokens_free(tok_list *toks);

/* -------------------------------------------------------------------- AST */

typedef enum tnode_kind {
    /* expressions */
    N_CONST,
    N_NAME,
    N_GETATTR,
    N_GETITEM,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_NOT,
    N_NEG,
    N_POS,
    N_BINOP,
    N_CONCAT,
    N_COMPARE,
    N_AND,
    N_OR,
    N_CONDEXPR,
    N_LIST,
    N_TUPLE,
    N_DICT,
    N_KEYWORD,
    N_NSREF, /* assignment target ns.attr */
    /* statements */
    N_DATA,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SET_BLOCK,
    N_MACRO,
    N_CALL_BLOCK,
    N_FILTER_BLOCK,
    N_BREAK,
    N_CONTINUE,
    N_WITH,
    N_SCOPE_BODY, /* {% block %}, {% generation %}: just renders its body */
    N_UNSUPPORTED, /* extends/include/import: fails when executed */
} tnode_kind;

typedef enum binop {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
} binop;

typedef struct tnode_vec {
    tnode **v;
    size_t n, cap;
} tnode_vec;

typedef tv *(*tv_filter_fn)(tpl_render *r, tv *value, tv_args *args);
typedef int (*tv_test_fn)(tpl_render *r, tv *value, tv_args *args); /* 1, 0, -1 = error */

struct tnode {
    tnode_kind kind;
    int op;
    int line, col;
    const char *name; /* NAME, GETATTR attr, FILTER/TEST name, MACRO name, DATA text */
    size_t name_len;
    tv *cval;        /* CONST value */
    tnode *a, *b, *c; /* children; meaning depends on kind */
    tnode_vec items;  /* args, list items, body, compare operands, tuple targets */
    tnode_vec kwargs; /* KEYWORD nodes; DICT values */
    tnode_vec body;   /* statement bodies */
    tnode_vec else_body;
    tnode_vec defaults; /* MACRO / CALL_BLOCK default expressions (aligned to the last params) */
    tnode *dyn_args, *dyn_kwargs;
    tv_filter_fn filter_fn;
    tv_test_fn test_fn;
    bool uses_caller, uses_varargs, uses_kwargs; /* MACRO/CALL_BLOCK */
};

typedef struct tpl_arena_block tpl_arena_block;

struct cinfer_template {
    tok_list toks;
    char *source; /* normalized source the tokens point into */
    size_t source_len;
    tnode_vec root;
    tnode **all_nodes; /* every node, for freeing */
    size_t n_nodes, cap_nodes;
};

int tpl_parse(cinfer_template *tpl, const tpl_limits *limits, cinfer_error *err);
void tpl_nodes_free(cinfer_template *tpl);

/* Builtin lookup (tpl_builtins.c). */
tv_filter_fn tpl_find_filter(const char *name, size_t len);
tv_test_fn tpl_find_test(const char *name, size_t len);
/* Global functions (range, dict, namespace, raise_exception, ...): new ref or NULL. */
tv *tpl_find_global(const char *name, size_t len);
/* Python attribute of a value (methods); NULL when the type has no such attribute.
 * Sets *unsafe when the attribute exists but the immutable sandbox forbids it. */
tv *tpl_get_method(tpl_render *r, tv *obj, const char *name, size_t len, bool *unsafe);

/* --------------------------------------------------------------- render */

typedef struct tvar {
    const char *name; /* points into the template source or a static string */
    size_t len;
    tv *val;
} tvar;

struct tframe {
    tframe *parent; /* strong reference */
    tvar *vars;
    size_t n, cap;
    uint32_t refs; /* frames captured by macros outlive their block */
    bool captured; /* listed in tpl_render.captured */
};

struct tpl_render {
    const cinfer_template *tpl;
    tpl_limits limits;
    ci_buf out;
    tv *context;  /* TV_DICT of the render variables */
    tframe *root;
    cinfer_error *err;
    bool failed;
    int depth;
    uint64_t iterations;
    tv **namespaces; /* to break reference cycles at the end */
    size_t n_namespaces, cap_namespaces;
    tframe **captured; /* frames referenced by macros, cleared at the end */
    size_t n_captured, cap_captured;
    int macro_depth;
    const tnode *current; /* node being evaluated, for error positions */
    size_t built;         /* bytes of strings and list slots built so far (limits.max_built_bytes) */
};

/* Records an error at the current node; always returns NULL. */
void *tpl_fail(tpl_render *r, const char *fmt, ...) CI_PRINTF(2, 3);
/* Same, but for limit violations (CINFER_ERR_LIMIT). */
void *tpl_fail_limit(tpl_render *r, const char *fmt, ...) CI_PRINTF(2, 3);
/* Failure for operating on an undefined value. */
void *tpl_fail_undefined(tpl_render *r, const tv *undef);

/* Helpers the builtins share with the evaluator. */
tv *tpl_getattr(tpl_render *r, tv *obj, const char *name, size_t len);
tv *tpl_getitem(tpl_render *r, tv *obj, tv *key);
tv *tpl_call(tpl_render *r, tv *fn, tv_args *args);
/* Materializes an iterable as a new TV_LIST/TUPLE ref (dict -> keys, str -> chars). */
tv *tpl_iterate(tpl_render *r, tv *v);
tv *tpl_binop(tpl_render *r, int op, tv *a, tv *b);
int tpl_contains(tpl_render *r, tv *container, tv *item); /* 1/0/-1 */
void tpl_track_namespace(tpl_render *r, tv *ns);
void tpl_frame_release(tframe *f);
bool tpl_check_string_size(tpl_render *r, size_t len);
/* Counts a value the render just built (its own bytes or slots, not its
 * items') against limits.max_built_bytes; on excess fails the render,
 * releases v and returns NULL. Passes NULL through. */
tv *tpl_charge(tpl_render *r, tv *v);

/* Argument helpers for builtins: fetch parameter `index`/`name`, borrowed. */
tv *targ(tv_args *a, size_t index, const char *name);
/* Fails when more than `max_pos` positionals or an unknown keyword is given.
 * `names` is a NULL-terminated list of accepted parameter names. */
bool targ_check(tpl_render *r, tv_args *a, const char *fn, const char *const *names);

#endif
