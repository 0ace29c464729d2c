/*
 * tpl_parser.c — recursive-descent parser mirroring jinja2/parser.py.
 *
 * The grammar (operator precedence, where `if` is allowed, how test
 * arguments without parentheses are read, tuples without parentheses) is
 * Jinja2's, function for function, because chat templates rely on its
 * quirks: `a + b | trim` filters only `b`, `-x|abs` is `(-x)|abs`, `**` is
 * left-associative. Recursion is bounded by limits->max_nesting so a hostile
 * template cannot exhaust the C stack. Unknown filters and tests fail at
 * parse time as in Jinja2, except inside `if` conditions and bodies and
 * conditional expressions, where Jinja2 defers the error to the call.
 */
#include "template/tpl_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    cinfer_template *tpl;
    tok *toks;
    size_t ntoks, pos;
    cinfer_error *err;
    bool failed;
    int depth, max_nesting;
    int soft;       /* > 0 inside if / conditional expressions */
    int loop_depth; /* for break/continue */
    tnode *macro_stack[64];
    int n_macros;
} parser;

static tok *cur(parser *p) { return &p->toks[p->pos]; }
static tok *peek(parser *p, size_t k) {
    size_t i = p->pos + k;
    return &p->toks[i < p->ntoks ? i : p->ntoks - 1];
}
static void advance(parser *p) {
    if (p->pos + 1 < p->ntoks) p->pos++;
}

static void *fail_at(parser *p, const tok *t, const char *fmt, ...) CI_PRINTF(3, 4);
static void *fail_at(parser *p, const tok *t, const char *fmt, ...) {
    if (p->failed) return NULL;
    p->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ci_error(p->err, CINFER_ERR_TEMPLATE, "template:%d:%d: %s", t->line, t->col, msg);
    return NULL;
}

static bool is_name(const tok *t, const char *name) {
    return t->type == TK_NAME && t->len == strlen(name) && memcmp(t->text, name, t->len) == 0;
}
static bool is_op(const tok *t, const char *op) { return t->type == TK_OP && strcmp(t->op, op) == 0; }

static const char *describe(const tok *t, char *buf, size_t n) {
    switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template data";
    case TK_VAR_BEGIN: return "begin of print statement";
    case TK_VAR_END: return "end of print statement";
    case TK_BLOCK_BEGIN: return "begin of statement block";
    case TK_BLOCK_END: return "end of statement block";
    case TK_STRING: return "string";
    case TK_INTEGER: return "integer";
    case TK_FLOAT: return "float";
    case TK_OP: snprintf(buf, n, "%s", t->op); return buf;
    case TK_NAME: snprintf(buf, n, "%.*s", (int)(t->len > 60 ? 60 : t->len), t->text); return buf;
    }
    return "?";
}

static void *fail_unexpected(parser *p, const tok *t) {
    char b[80];
    if (t->type == TK_EOF) return fail_at(p, t, "unexpected end of template");
    return fail_at(p, t, "unexpected '%s'", describe(t, b, sizeof b));
}

static bool expect_op(parser *p, const char *op) {
    if (is_op(cur(p), op)) {
        advance(p);
        return true;
    }
    char b[80];
    if (cur(p)->type == TK_EOF) fail_at(p, cur(p), "unexpected end of template, expected '%s'", op);
    else fail_at(p, cur(p), "expected token '%s', got '%s'", op, describe(cur(p), b, sizeof b));
    return false;
}

static bool expect_type(parser *p, tok_type type, const char *what) {
    if (cur(p)->type == type) {
        advance(p);
        return true;
    }
    char b[80];
    if (cur(p)->type == TK_EOF) fail_at(p, cur(p), "unexpected end of template, expected %s", what);
    else fail_at(p, cur(p), "expected %s, got '%s'", what, describe(cur(p), b, sizeof b));
    return false;
}

static tnode *new_node(parser *p, tnode_kind kind, const tok *t) {
    tnode *n = ci_calloc(1, sizeof *n);
    n->kind = kind;
    n->line = t->line;
    n->col = t->col;
    cinfer_template *tpl = p->tpl;
    if (tpl->n_nodes == tpl->cap_nodes) {
        tpl->cap_nodes = tpl->cap_nodes ? tpl->cap_nodes * 2 : 256;
        tpl->all_nodes = ci_realloc_array(tpl->all_nodes, tpl->cap_nodes, sizeof *tpl->all_nodes);
    }
    tpl->all_nodes[tpl->n_nodes++] = n;
    return n;
}

static void vec_push(tnode_vec *v, tnode *n) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->v = ci_realloc_array(v->v, v->cap, sizeof *v->v);
    }
    v->v[v->n++] = n;
}

static bool enter(parser *p) {
    if (++p->depth > p->max_nesting) {
        fail_at(p, cur(p), "template nested too deeply (limit %d)", p->max_nesting);
        return false;
    }
    return true;
}
static void leave(parser *p) { p->depth--; }

static tnode *parse_expression(parser *p, bool with_condexpr);
static tnode *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                          bool explicit_parens);
static tnode *parse_unary(parser *p, bool with_filter);
static tnode *parse_primary(parser *p);
static tnode *parse_postfix(parser *p, tnode *node);
static tnode *parse_filter_expr(parser *p, tnode *node);
static tnode *parse_filter(parser *p, tnode *node, bool start_inline);
static bool subparse(parser *p, tnode_vec *body, const char *const *end_names);

/* ------------------------------------------------------------ expressions */

static tnode *parse_condexpr(parser *p);
static tnode *parse_or(parser *p);

static tnode *parse_expression(parser *p, bool with_condexpr) {
    if (!enter(p)) return NULL;
    tnode *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    leave(p);
    return n;
}

static tnode *parse_condexpr(parser *p) {
    tnode *expr1 = parse_or(p);
    while (expr1 && is_name(cur(p), "if")) {
        tok *t = cur(p);
        advance(p);
        p->soft++;
        tnode *expr2 = parse_or(p);
        tnode *expr3 = NULL;
        if (expr2 && is_name(cur(p), "else")) {
            advance(p);
            if (!enter(p)) return NULL;
            expr3 = parse_condexpr(p);
            leave(p);
            if (!expr3) return NULL;
        }
        p->soft--;
        if (!expr2) return NULL;
        tnode *n = new_node(p, N_CONDEXPR, t);
        n->a = expr2; /* test */
        n->b = expr1; /* value when true */
        n->c = expr3; /* value when false, may be NULL */
        expr1 = n;
    }
    return expr1;
}

static tnode *parse_and(parser *p);
static tnode *parse_not(parser *p);
static tnode *parse_compare(parser *p);

static tnode *parse_or(parser *p) {
    tnode *left = parse_and(p);
    while (left && is_name(cur(p), "or")) {
        tok *t = cur(p);
        advance(p);
        tnode *right = parse_and(p);
        if (!right) return NULL;
        tnode *n = new_node(p, N_OR, t);
        n->a = left;
        n->b = right;
        left = n;
    }
    return left;
}

static tnode *parse_and(parser *p) {
    tnode *left = parse_not(p);
    while (left && is_name(cur(p), "and")) {
        tok *t = cur(p);
        advance(p);
        tnode *right = parse_not(p);
        if (!right) return NULL;
        tnode *n = new_node(p, N_AND, t);
        n->a = left;
        n->b = right;
        left = n;
    }
    return left;
}

static tnode *parse_not(parser *p) {
    if (is_name(cur(p), "not")) {
        tok *t = cur(p);
        advance(p);
        if (!enter(p)) return NULL;
        tnode *inner = parse_not(p);
        leave(p);
        if (!inner) return NULL;
        tnode *n = new_node(p, N_NOT, t);
        n->a = inner;
        return n;
    }
    return parse_compare(p);
}

static tnode *parse_math1(parser *p);

static tnode *parse_compare(parser *p) {
    tok *start = cur(p);
    tnode *expr = parse_math1(p);
    if (!expr) return NULL;
    tnode *cmp = NULL;
    for (;;) {
        tok *t = cur(p);
        int op = -1;
        if (is_op(t, "==")) op = OP_EQ;
        else if (is_op(t, "!=")) op = OP_NE;
        else if (is_op(t, "<")) op = OP_LT;
        else if (is_op(t, "<=")) op = OP_LE;
        else if (is_op(t, ">")) op = OP_GT;
        else if (is_op(t, ">=")) op = OP_GE;
        else if (is_name(t, "in")) op = OP_IN;
        else if (is_name(t, "not") && is_name(peek(p, 1), "in")) op = OP_NOTIN;
        if (op < 0) break;
        advance(p);
        if (op == OP_NOTIN) advance(p);
        tnode *rhs = parse_math1(p);
        if (!rhs) return NULL;
        if (!cmp) {
            cmp = new_node(p, N_COMPARE, start);
            cmp->a = expr;
        }
        tnode *operand = new_node(p, N_KEYWORD, t);
        operand->op = op;
        operand->a = rhs;
        vec_push(&cmp->items, operand);
    }
    return cmp ? cmp : expr;
}

static tnode *parse_concat(parser *p);

static tnode *binop_node(parser *p, const tok *t, int op, tnode *l, tnode *r) {
    tnode *n = new_node(p, N_BINOP, t);
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static tnode *parse_math1(parser *p) {
    tnode *left = parse_concat(p);
    while (left && (is_op(cur(p), "+") || is_op(cur(p), "-"))) {
        tok *t = cur(p);
        int op = is_op(t, "+") ? OP_ADD : OP_SUB;
        advance(p);
        tnode *right = parse_concat(p);
        if (!right) return NULL;
        left = binop_node(p, t, op, left, right);
    }
    return left;
}

static tnode *parse_math2(parser *p);

static tnode *parse_concat(parser *p) {
    tok *start = cur(p);
    tnode *first = parse_math2(p);
    if (!first || !is_op(cur(p), "~")) return first;
    tnode *n = new_node(p, N_CONCAT, start);
    vec_push(&n->items, first);
    while (is_op(cur(p), "~")) {
        advance(p);
        tnode *x = parse_math2(p);
        if (!x) return NULL;
        vec_push(&n->items, x);
    }
    return n;
}

static tnode *parse_pow(parser *p);

static tnode *parse_math2(parser *p) {
    tnode *left = parse_pow(p);
    for (;;) {
        if (!left) return NULL;
        tok *t = cur(p);
        int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV : is_op(t, "%") ? OP_MOD : -1;
        if (op < 0) return left;
        advance(p);
        tnode *right = parse_pow(p);
        if (!right) return NULL;
        left = binop_node(p, t, op, left, right);
    }
}

static tnode *parse_pow(parser *p) {
    tnode *left = parse_unary(p, true);
    while (left && is_op(cur(p), "**")) {
        tok *t = cur(p);
        advance(p);
        tnode *right = parse_unary(p, true);
        if (!right) return NULL;
        left = binop_node(p, t, OP_POW, left, right);
    }
    return left;
}

static tnode *parse_unary(parser *p, bool with_filter) {
    if (!enter(p)) return NULL;
    tok *t = cur(p);
    tnode *node;
    if (is_op(t, "-") || is_op(t, "+")) {
        advance(p);
        tnode *inner = parse_unary(p, false);
        if (!inner) {
            leave(p);
            return NULL;
        }
        node = new_node(p, is_op(t, "-") ? N_NEG : N_POS, t);
        node->a = inner;
    } else {
        node = parse_primary(p);
    }
    if (node) node = parse_postfix(p, node);
    if (node && with_filter) node = parse_filter_expr(p, node);
    leave(p);
    return node;
}

static tnode *parse_list_literal(parser *p) {
    tnode *n = new_node(p, N_LIST, cur(p));
    advance(p); /* [ */
    while (!is_op(cur(p), "]")) {
        if (n->items.n && !expect_op(p, ",")) return NULL;
        if (is_op(cur(p), "]")) break;
        tnode *x = parse_expression(p, true);
        if (!x) return NULL;
        vec_push(&n->items, x);
    }
    return expect_op(p, "]") ? n : NULL;
}

static tnode *parse_dict_literal(parser *p) {
    tnode *n = new_node(p, N_DICT, cur(p));
    advance(p); /* { */
    while (!is_op(cur(p), "}")) {
        if (n->items.n && !expect_op(p, ",")) return NULL;
        if (is_op(cur(p), "}")) break;
        tnode *k = parse_expression(p, true);
        if (!k || !expect_op(p, ":")) return NULL;
        tnode *v = parse_expression(p, true);
        if (!v) return NULL;
        vec_push(&n->items, k);
        vec_push(&n->kwargs, v);
    }
    return expect_op(p, "}") ? n : NULL;
}

static void note_special_name(parser *p, const tok *t) {
    bool caller = is_name(t, "caller"), varargs = is_name(t, "varargs"), kwargs = is_name(t, "kwargs");
    if (!caller && !varargs && !kwargs) return;
    for (int i = 0; i < p->n_macros; i++) {
        tnode *m = p->macro_stack[i];
        if (caller) m->uses_caller = true;
        if (varargs) m->uses_varargs = true;
        if (kwargs) m->uses_kwargs = true;
    }
}

static tnode *parse_primary(parser *p) {
    tok *t = cur(p);
    tnode *n;
    switch (t->type) {
    case TK_NAME:
        n = new_node(p, N_CONST, t);
        if (is_name(t, "true") || is_name(t, "True")) n->cval = tv_bool(true);
        else if (is_name(t, "false") || is_name(t, "False")) n->cval = tv_bool(false);
        else if (is_name(t, "none") || is_name(t, "None")) n->cval = tv_none();
        else {
            n->kind = N_NAME;
            n->name = t->text;
            n->name_len = t->len;
            note_special_name(p, t);
        }
        advance(p);
        return n;
    case TK_STRING: {
        n = new_node(p, N_CONST, t);
        ci_buf b = {0};
        while (cur(p)->type == TK_STRING) { /* adjacent literals concatenate */
            ci_buf_append(&b, cur(p)->str, cur(p)->str_len);
            advance(p);
        }
        size_t len;
        char *s = ci_buf_take(&b, &len);
        n->cval = tv_make_immortal(tv_str_take(s, len));
        return n;
    }
    case TK_INTEGER:
        n = new_node(p, N_CONST, t);
        n->cval = tv_make_immortal(tv_int(t->ival));
        advance(p);
        return n;
    case TK_FLOAT:
        n = new_node(p, N_CONST, t);
        n->cval = tv_make_immortal(tv_float(t->fval));
        advance(p);
        return n;
    case TK_OP:
        if (is_op(t, "(")) {
            advance(p);
            n = parse_tuple(p, false, true, NULL, true);
            if (!n || !expect_op(p, ")")) return NULL;
            return n;
        }
        if (is_op(t, "[")) return parse_list_literal(p);
        if (is_op(t, "{")) return parse_dict_literal(p);
        /* fallthrough */
    default:
        return fail_unexpected(p, t);
    }
}

static bool is_tuple_end(parser *p, const char *extra_end) {
    tok *t = cur(p);
    if (t->type == TK_VAR_END || t->type == TK_BLOCK_END || is_op(t, ")")) return true;
    return extra_end && is_name(t, extra_end);
}

static tnode *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                          bool explicit_parens) {
    tok *start = cur(p);
    tnode *first = NULL;
    tnode *tuple = NULL;
    for (;;) {
        if (first && !expect_op(p, ",")) return NULL;
        if (is_tuple_end(p, extra_end)) break;
        tnode *x;
        if (simplified) {
            if (!enter(p)) return NULL;
            x = parse_primary(p);
            leave(p);
        } else {
            x = parse_expression(p, with_condexpr);
        }
        if (!x) return NULL;
        if (!first) first = x;
        else {
            if (!tuple) {
                tuple = new_node(p, N_TUPLE, start);
                vec_push(&tuple->items, first);
            }
            vec_push(&tuple->items, x);
        }
        if (is_op(cur(p), ",")) {
            if (!tuple) {
                tuple = new_node(p, N_TUPLE, start);
                vec_push(&tuple->items, first);
            }
        } else {
            break;
        }
    }
    if (tuple) return tuple;
    if (first) return first;
    if (!explicit_parens) {
        char b[80];
        return fail_at(p, cur(p), "expected an expression, got '%s'", describe(cur(p), b, sizeof b));
    }
    return new_node(p, N_TUPLE, start);
}

static bool parse_call_args(parser *p, tnode *n) {
    tok *open = cur(p);
    if (!expect_op(p, "(")) return false;
    bool require_comma = false;
    while (!is_op(cur(p), ")")) {
        if (require_comma) {
            if (!expect_op(p, ",")) return false;
            if (is_op(cur(p), ")")) break;
        }
        if (is_op(cur(p), "*")) {
            if (n->dyn_args || n->dyn_kwargs) goto bad;
            advance(p);
            if (!(n->dyn_args = parse_expression(p, true))) return false;
        } else if (is_op(cur(p), "**")) {
            if (n->dyn_kwargs) goto bad;
            advance(p);
            if (!(n->dyn_kwargs = parse_expression(p, true))) return false;
        } else if (cur(p)->type == TK_NAME && is_op(peek(p, 1), "=")) {
            if (n->dyn_kwargs) goto bad;
            tnode *kw = new_node(p, N_KEYWORD, cur(p));
            kw->name = cur(p)->text;
            kw->name_len = cur(p)->len;
            advance(p);
            advance(p);
            if (!(kw->a = parse_expression(p, true))) return false;
            vec_push(&n->kwargs, kw);
        } else {
            if (n->dyn_args || n->dyn_kwargs || n->kwargs.n) goto bad;
            tnode *x = parse_expression(p, true);
            if (!x) return false;
            vec_push(&n->items, x);
        }
        require_comma = true;
    }
    return expect_op(p, ")");
bad:
    fail_at(p, open, "invalid syntax for function call expression");
    return false;
}

static tnode *parse_subscribed(parser *p) {
    tok *t = cur(p);
    tnode *args[3] = {NULL, NULL, NULL};
    if (is_op(t, ":")) {
        advance(p);
    } else {
        tnode *node = parse_expression(p, true);
        if (!node) return NULL;
        if (!is_op(cur(p), ":")) return node;
        advance(p);
        args[0] = node;
    }
    if (!is_op(cur(p), ":") && !is_op(cur(p), "]") && !is_op(cur(p), ",")) {
        if (!(args[1] = parse_expression(p, true))) return NULL;
    }
    if (is_op(cur(p), ":")) {
        advance(p);
        if (!is_op(cur(p), "]") && !is_op(cur(p), ",")) {
            if (!(args[2] = parse_expression(p, true))) return NULL;
        }
    }
    tnode *s = new_node(p, N_SLICE, t);
    s->a = args[0];
    s->b = args[1];
    s->c = args[2];
    return s;
}

static tnode *parse_postfix(parser *p, tnode *node) {
    for (;;) {
        tok *t = cur(p);
        if (is_op(t, ".")) {
            advance(p);
            tok *attr = cur(p);
            if (attr->type == TK_NAME) {
                tnode *n = new_node(p, N_GETATTR, t);
                n->a = node;
                n->name = attr->text;
                n->name_len = attr->len;
                advance(p);
                node = n;
            } else if (attr->type == TK_INTEGER) {
                tnode *k = new_node(p, N_CONST, attr);
                k->cval = tv_make_immortal(tv_int(attr->ival));
                advance(p);
                tnode *n = new_node(p, N_GETITEM, t);
                n->a = node;
                n->b = k;
                node = n;
            } else {
                return fail_at(p, attr, "expected name or number");
            }
        } else if (is_op(t, "[")) {
            advance(p);
            tnode *n = new_node(p, N_GETITEM, t);
            n->a = node;
            tnode *tuple = NULL, *first = NULL;
            while (!is_op(cur(p), "]")) {
                if (first && !expect_op(p, ",")) return NULL;
                if (is_op(cur(p), "]")) break; /* jinja2 rejects this below anyway */
                tnode *x = parse_subscribed(p);
                if (!x) return NULL;
                if (!first) first = x;
                else {
                    if (!tuple) {
                        tuple = new_node(p, N_TUPLE, t);
                        vec_push(&tuple->items, first);
                    }
                    vec_push(&tuple->items, x);
                }
            }
            if (!expect_op(p, "]")) return NULL;
            if (!first) return fail_at(p, t, "expected subscript expression");
            n->b = tuple ? tuple : first;
            node = n;
        } else if (is_op(t, "(")) {
            tnode *n = new_node(p, N_CALL, t);
            n->a = node;
            n->line = node->line; /* report calls at the callee, not at "(" */
            n->col = node->col;
            if (!parse_call_args(p, n)) return NULL;
            node = n;
        } else {
            return node;
        }
    }
}

static bool read_dotted_name(parser *p, tnode *n) {
    tok *t = cur(p);
    if (t->type != TK_NAME) {
        char b[80];
        fail_at(p, t, "expected name, got '%s'", describe(t, b, sizeof b));
        return false;
    }
    n->name = t->text;
    n->name_len = t->len;
    advance(p);
    while (is_op(cur(p), ".")) { /* dotted names only exist for extensions; keep the text span */
        advance(p);
        if (cur(p)->type != TK_NAME) {
            fail_at(p, cur(p), "expected name");
            return false;
        }
        n->name_len = (size_t)(cur(p)->text + cur(p)->len - n->name);
        advance(p);
    }
    return true;
}

static tnode *parse_filter(parser *p, tnode *node, bool start_inline) {
    while (is_op(cur(p), "|") || start_inline) {
        if (!start_inline) advance(p);
        tok *t = cur(p);
        tnode *f = new_node(p, N_FILTER, t);
        f->a = node;
        if (!read_dotted_name(p, f)) return NULL;
        f->filter_fn = tpl_find_filter(f->name, f->name_len);
        if (!f->filter_fn && !p->soft)
            return fail_at(p, t, "No filter named '%.*s'.", (int)(f->name_len > 60 ? 60 : f->name_len), f->name);
        if (is_op(cur(p), "(") && !parse_call_args(p, f)) return NULL;
        node = f;
        start_inline = false;
    }
    return node;
}

static tnode *parse_test(parser *p, tnode *node) {
    tok *is_tok = cur(p);
    advance(p); /* is */
    bool negated = false;
    if (is_name(cur(p), "not")) {
        advance(p);
        negated = true;
    }
    tok *t = cur(p);
    tnode *test = new_node(p, N_TEST, is_tok);
    test->a = node;
    if (!read_dotted_name(p, test)) return NULL;
    test->test_fn = tpl_find_test(test->name, test->name_len);
    if (!test->test_fn && !p->soft)
        return fail_at(p, t, "No test named '%.*s'.", (int)(test->name_len > 60 ? 60 : test->name_len), test->name);
    tok *c = cur(p);
    if (is_op(c, "(")) {
        if (!parse_call_args(p, test)) return NULL;
    } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INTEGER || c->type == TK_FLOAT ||
                is_op(c, "(") || is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return fail_at(p, c, "You cannot chain multiple tests with is");
        if (!enter(p)) return NULL;
        tnode *arg = parse_primary(p);
        if (arg) arg = parse_postfix(p, arg);
        leave(p);
        if (!arg) return NULL;
        vec_push(&test->items, arg);
    }
    if (negated) {
        tnode *n = new_node(p, N_NOT, is_tok);
        n->a = test;
        return n;
    }
    return test;
}

static tnode *parse_filter_expr(parser *p, tnode *node) {
    for (;;) {
        if (!node) return NULL;
        tok *t = cur(p);
        if (is_op(t, "|")) node = parse_filter(p, node, false);
        else if (is_name(t, "is")) node = parse_test(p, node);
        else if (is_op(t, "(")) {
            tnode *n = new_node(p, N_CALL, t);
            n->a = node;
            n->line = node->line; /* report calls at the callee, not at "(" */
            n->col = node->col;
            if (!parse_call_args(p, n)) return NULL;
            node = n;
        } else return node;
    }
}

/* ------------------------------------------------------------- statements */

static bool check_assign_target(parser *p, tnode *target) {
    if (target->kind == N_NAME) {
        if (target->name_len == 4 && memcmp(target->name, "loop", 4) == 0) {
            /* jinja2 only forbids this in for targets; harmless elsewhere */
        }
        return true;
    }
    if (target->kind == N_TUPLE) {
        for (size_t i = 0; i < target->items.n; i++)
            if (target->items.v[i]->kind != N_NAME) {
                fail_at(p, &(tok){.line = target->items.v[i]->line, .col = target->items.v[i]->col},
                        "can't assign to this expression");
                return false;
            }
        return true;
    }
    fail_at(p, &(tok){.line = target->line, .col = target->col}, "can't assign to this expression");
    return false;
}

static tnode *parse_assign_target(parser *p, const char *extra_end, bool with_namespace, bool name_only) {
    tok *t = cur(p);
    if (with_namespace && t->type == TK_NAME && is_op(peek(p, 1), ".")) {
        tnode *n = new_node(p, N_NSREF, t);
        n->name = t->text;
        n->name_len = t->len;
        advance(p);
        advance(p);
        tok *attr = cur(p);
        if (attr->type != TK_NAME) return fail_at(p, attr, "expected name");
        n->cval = tv_make_immortal(tv_str(attr->text, attr->len));
        advance(p);
        return n;
    }
    if (name_only) {
        if (t->type != TK_NAME) {
            char b[80];
            return fail_at(p, t, "expected name, got '%s'", describe(t, b, sizeof b));
        }
        tnode *n = new_node(p, N_NAME, t);
        n->name = t->text;
        n->name_len = t->len;
        advance(p);
        return n;
    }
    tnode *target = parse_tuple(p, true, true, extra_end, false);
    if (!target || !check_assign_target(p, target)) return NULL;
    return target;
}

static bool parse_statements(parser *p, tnode_vec *body, const char *const *end_names, bool drop_needle) {
    if (is_op(cur(p), ":")) advance(p);
    if (!expect_type(p, TK_BLOCK_END, "end of statement block")) return false;
    if (!subparse(p, body, end_names)) return false;
    if (cur(p)->type == TK_EOF) {
        fail_at(p, cur(p), "unexpected end of template, expected '%s'", end_names[0]);
        return false;
    }
    if (drop_needle) advance(p);
    return true;
}

static bool parse_signature(parser *p, tnode *n) {
    if (!expect_op(p, "(")) return false;
    while (!is_op(cur(p), ")")) {
        if (n->items.n && !expect_op(p, ",")) return false;
        tnode *arg = parse_assign_target(p, NULL, false, true);
        if (!arg) return false;
        if (is_op(cur(p), "=")) {
            advance(p);
            tnode *d = parse_expression(p, true);
            if (!d) return false;
            vec_push(&n->defaults, d);
        } else if (n->defaults.n) {
            fail_at(p, cur(p), "non-default argument follows default argument");
            return false;
        }
        vec_push(&n->items, arg);
    }
    return expect_op(p, ")");
}

static const char *const END_FOR[] = {"endfor", "else", NULL};
static const char *const END_FOR_ONLY[] = {"endfor", NULL};
static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_IF_ONLY[] = {"endif", NULL};

static tnode *parse_for(parser *p, tok *t) {
    tnode *n = new_node(p, N_FOR, t);
    advance(p);
    if (!(n->a = parse_assign_target(p, "in", false, false))) return NULL;
    if (n->a->kind == N_NAME && n->a->name_len == 4 && memcmp(n->a->name, "loop", 4) == 0)
        return fail_at(p, t, "Can't assign to special loop variable in for-loop target");
    if (!is_name(cur(p), "in")) return fail_at(p, cur(p), "expected 'in'");
    advance(p);
    if (!(n->b = parse_tuple(p, false, false, "recursive", false))) return NULL;
    if (is_name(cur(p), "if")) {
        advance(p);
        if (!(n->c = parse_expression(p, true))) return NULL;
    }
    if (is_name(cur(p), "recursive")) return fail_at(p, cur(p), "recursive for loops are not supported");
    p->loop_depth++;
    bool ok = parse_statements(p, &n->body, END_FOR, false);
    p->loop_depth--;
    if (!ok) return NULL;
    bool has_else = is_name(cur(p), "else");
    advance(p);
    if (has_else && !parse_statements(p, &n->else_body, END_FOR_ONLY, true)) return NULL;
    return n;
}

static tnode *parse_if(parser *p, tok *t) {
    tnode *result = new_node(p, N_IF, t);
    tnode *node = result;
    advance(p);
    p->soft++;
    for (;;) {
        if (!(node->a = parse_tuple(p, false, false, NULL, false))) return NULL;
        if (!parse_statements(p, &node->body, END_IF, false)) return NULL;
        tok *e = cur(p);
        advance(p);
        if (is_name(e, "elif")) {
            tnode *next = new_node(p, N_IF, cur(p));
            vec_push(&node->else_body, next);
            node = next;
            continue;
        }
        if (is_name(e, "else") && !parse_statements(p, &node->else_body, END_IF_ONLY, true)) return NULL;
        break;
    }
    p->soft--;
    return result;
}

static bool push_macro(parser *p, tnode *n) {
    if (p->n_macros >= (int)(sizeof p->macro_stack / sizeof p->macro_stack[0])) {
        fail_at(p, cur(p), "macros nested too deeply");
        return false;
    }
    p->macro_stack[p->n_macros++] = n;
    return true;
}

static tnode *parse_macro_like(parser *p, tok *t, bool is_call_block) {
    tnode *n = new_node(p, is_call_block ? N_CALL_BLOCK : N_MACRO, t);
    advance(p);
    if (is_call_block) {
        if (is_op(cur(p), "(") && !parse_signature(p, n)) return NULL;
        tnode *call = parse_expression(p, true);
        if (!call) return NULL;
        if (call->kind != N_CALL) return fail_at(p, t, "expected call");
        n->a = call;
    } else {
        tnode *name = parse_assign_target(p, NULL, false, true);
        if (!name) return NULL;
        n->name = name->name;
        n->name_len = name->name_len;
        if (!parse_signature(p, n)) return NULL;
    }
    static const char *const END_MACRO[] = {"endmacro", NULL};
    static const char *const END_CALL[] = {"endcall", NULL};
    int saved_loops = p->loop_depth;
    p->loop_depth = 0;
    if (!push_macro(p, n)) return NULL;
    bool ok = parse_statements(p, &n->body, is_call_block ? END_CALL : END_MACRO, true);
    p->n_macros--;
    p->loop_depth = saved_loops;
    if (!ok) return NULL;
    /* an explicit `caller` parameter needs a default (jinja2 rule) */
    for (size_t i = 0; i < n->items.n; i++) {
        tnode *a = n->items.v[i];
        if (a->name_len == 6 && memcmp(a->name, "caller", 6) == 0) {
            size_t first_default = n->items.n - n->defaults.n;
            if (i < first_default)
                return fail_at(p, t, "When defining macros or call blocks the special \"caller\" argument must be "
                                     "omitted or be given a default.");
        }
    }
    return n;
}

static tnode *parse_statement(parser *p) {
    tok *t = cur(p);
    if (t->type != TK_NAME) return fail_at(p, t, "tag name expected");
    if (is_name(t, "for")) return parse_for(p, t);
    if (is_name(t, "if")) return parse_if(p, t);
    if (is_name(t, "set")) {
        advance(p);
        tnode *target = parse_assign_target(p, NULL, true, false);
        if (!target) return NULL;
        if (is_op(cur(p), "=")) {
            advance(p);
            tnode *n = new_node(p, N_SET, t);
            n->a = target;
            if (!(n->b = parse_tuple(p, false, true, NULL, false))) return NULL;
            return n;
        }
        tnode *n = new_node(p, N_SET_BLOCK, t);
        n->a = target;
        if (is_op(cur(p), "|") && !(n->b = parse_filter(p, NULL, false))) return NULL;
        static const char *const END_SET[] = {"endset", NULL};
        if (!parse_statements(p, &n->body, END_SET, true)) return NULL;
        return n;
    }
    if (is_name(t, "macro")) return parse_macro_like(p, t, false);
    if (is_name(t, "call")) return parse_macro_like(p, t, true);
    if (is_name(t, "filter")) {
        tnode *n = new_node(p, N_FILTER_BLOCK, t);
        advance(p);
        if (!(n->a = parse_filter(p, NULL, true))) return NULL;
        static const char *const END_FILTER[] = {"endfilter", NULL};
        if (!parse_statements(p, &n->body, END_FILTER, true)) return NULL;
        return n;
    }
    if (is_name(t, "break") || is_name(t, "continue")) {
        /* jinja2 compiles these to Python break/continue; outside a loop that
         * is a syntax error when the template is compiled */
        if (!p->loop_depth) return fail_at(p, t, "'%.*s' outside loop", (int)t->len, t->text);
        tnode *n = new_node(p, is_name(t, "break") ? N_BREAK : N_CONTINUE, t);
        advance(p);
        return n;
    }
    if (is_name(t, "print")) {
        tnode *n = new_node(p, N_OUTPUT, t);
        advance(p);
        tnode *tuple = NULL;
        while (cur(p)->type != TK_BLOCK_END) {
            if (n->items.n && !expect_op(p, ",")) return NULL;
            tnode *x = parse_expression(p, true);
            if (!x) return NULL;
            vec_push(&n->items, x);
        }
        (void)tuple;
        return n;
    }
    if (is_name(t, "with")) {
        tnode *n = new_node(p, N_WITH, t);
        advance(p);
        while (cur(p)->type != TK_BLOCK_END) {
            if (n->items.n && !expect_op(p, ",")) return NULL;
            tnode *target = parse_assign_target(p, NULL, false, false);
            if (!target || !expect_op(p, "=")) return NULL;
            tnode *value = parse_expression(p, true);
            if (!value) return NULL;
            vec_push(&n->items, target);
            vec_push(&n->kwargs, value);
        }
        static const char *const END_WITH[] = {"endwith", NULL};
        if (!parse_statements(p, &n->body, END_WITH, true)) return NULL;
        return n;
    }
    if (is_name(t, "block")) {
        tnode *n = new_node(p, N_SCOPE_BODY, t);
        advance(p);
        tok *name = cur(p);
        if (name->type != TK_NAME) return fail_at(p, name, "expected block name");
        advance(p);
        if (is_name(cur(p), "scoped")) advance(p);
        if (is_name(cur(p), "required")) advance(p);
        static const char *const END_BLOCK[] = {"endblock", NULL};
        if (!parse_statements(p, &n->body, END_BLOCK, true)) return NULL;
        if (cur(p)->type == TK_NAME) advance(p);
        return n;
    }
    if (is_name(t, "generation")) { /* transformers' AssistantTracker extension */
        tnode *n = new_node(p, N_SCOPE_BODY, t);
        advance(p);
        static const char *const END_GEN[] = {"endgeneration", NULL};
        if (!parse_statements(p, &n->body, END_GEN, true)) return NULL;
        return n;
    }
    if (is_name(t, "autoescape")) {
        tnode *n = new_node(p, N_SCOPE_BODY, t);
        advance(p);
        if (!parse_expression(p, true)) return NULL;
        static const char *const END_AE[] = {"endautoescape", NULL};
        if (!parse_statements(p, &n->body, END_AE, true)) return NULL;
        return n;
    }
    if (is_name(t, "extends") || is_name(t, "include") || is_name(t, "import") || is_name(t, "from")) {
        /* Parsed so that an unused branch still renders; executing one fails
         * as in transformers, whose environment has no template loader. */
        tnode *n = new_node(p, N_UNSUPPORTED, t);
        n->name = t->text;
        n->name_len = t->len;
        advance(p);
        while (cur(p)->type != TK_BLOCK_END && cur(p)->type != TK_EOF) advance(p);
        return n;
    }
    char b[80];
    return fail_at(p, t, "unexpected '%s'", describe(t, b, sizeof b));
}

static bool subparse(parser *p, tnode_vec *body, const char *const *end_names) {
    if (!enter(p)) return false;
    for (;;) {
        tok *t = cur(p);
        if (t->type == TK_EOF) break;
        if (t->type == TK_DATA) {
            tnode *n = new_node(p, N_DATA, t);
            n->name = t->text;
            n->name_len = t->len;
            vec_push(body, n);
            advance(p);
        } else if (t->type == TK_VAR_BEGIN) {
            advance(p);
            tnode *n = new_node(p, N_OUTPUT, t);
            tnode *x = parse_tuple(p, false, true, NULL, false);
            if (!x) return false;
            vec_push(&n->items, x);
            if (!expect_type(p, TK_VAR_END, "end of print statement")) return false;
            vec_push(body, n);
        } else if (t->type == TK_BLOCK_BEGIN) {
            advance(p);
            if (end_names && cur(p)->type == TK_NAME)
                for (int i = 0; end_names[i]; i++)
                    if (is_name(cur(p), end_names[i])) {
                        leave(p);
                        return true;
                    }
            tnode *n = parse_statement(p);
            if (!n) return false;
            vec_push(body, n);
            if (!expect_type(p, TK_BLOCK_END, "end of statement block")) return false;
        } else {
            fail_unexpected(p, t);
            return false;
        }
    }
    leave(p);
    return true;
}

int tpl_parse(cinfer_template *tpl, const tpl_limits *limits, cinfer_error *err) {
    parser p = {.tpl = tpl, .toks = tpl->toks.v, .ntoks = tpl->toks.n, .err = err,
                .max_nesting = limits->max_nesting};
    if (!subparse(&p, &tpl->root, NULL) || p.failed) {
        if (!p.failed) ci_error(err, CINFER_ERR_TEMPLATE, "template: parse error");
        return -1;
    }
    return 0;
}

void tpl_nodes_free(cinfer_template *tpl) {
    for (size_t i = 0; i < tpl->n_nodes; i++) {
        tnode *n = tpl->all_nodes[i];
        tv_free_immortal(n->cval);
        free(n->items.v);
        free(n->kwargs.v);
        free(n->body.v);
        free(n->else_body.v);
        free(n->defaults.v);
        free(n);
    }
    free(tpl->all_nodes);
    free(tpl->root.v);
    tpl->all_nodes = NULL;
    tpl->n_nodes = tpl->cap_nodes = 0;
}
