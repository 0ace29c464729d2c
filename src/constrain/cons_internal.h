/*
 * cons_internal.h — the grammar IR shared by the compilers (cons_regex.c,
 * cons_gbnf.c, cons_schema.c, cons_compile.c) and the matcher (cons_match.c).
 *
 * IR: rules; a rule is a list of alternatives; an alternative is a sequence
 * of elements; an element is either a byte set (256 bits: one byte out of a
 * set) or a reference to a rule. Literals are sequences of one-byte sets;
 * Unicode character classes become rules whose alternatives are the UTF-8
 * byte sequences of the class (cons_ir.c does the range splitting), so the
 * automaton below only ever sees bytes.
 *
 * Compilers build alternatives in a ci_cons_seq (a growable element list)
 * and add them to a rule; nested constructs (groups, repetitions) become
 * fresh anonymous rules, so building never needs recursion in the IR
 * itself. ci_cons_ir_finish() checks the IR (undefined rules, unproductive
 * rules, left recursion — which the matcher's top-down expansion cannot
 * handle) and flattens it into the position array the matcher runs on.
 */
#ifndef CINFER_CONS_INTERNAL_H
#define CINFER_CONS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cinfer.h"
#include "constrain/constrain.h"

/* Bounds (one place). */
#define CI_CONS_MAX_SOURCE     ((size_t)512 << 10) /* bytes of schema / regex / grammar */
#define CI_CONS_MAX_RULES      (1u << 17)
#define CI_CONS_MAX_ELEMS      (1u << 21)          /* positions in the flattened IR */
#define CI_CONS_MAX_REPEAT     4096                /* m, n in {m,n} */
#define CI_CONS_MAX_NEST       200                 /* group / schema nesting while compiling */
#define CI_CONS_MAX_STACK      512                 /* runtime pushdown depth; deeper is not allowed */
#define CI_CONS_MAX_STACKS     1024                /* parallel stacks in one state (ambiguity) */
#define CI_CONS_MAX_STATES     (1u << 18)          /* memoised states per grammar before a reset */
#define CI_CONS_MAX_MASK_BYTES ((size_t)64 << 20)  /* memoised masks per grammar before a reset */

/* Element encoding. */
#define CI_CONS_REF_BIT 0x80000000u
#define CI_CONS_END     0xFFFFFFFFu
static inline bool ci_cons_is_ref(uint32_t e) { return e != CI_CONS_END && (e & CI_CONS_REF_BIT); }
static inline uint32_t ci_cons_ref(uint32_t rule) { return rule | CI_CONS_REF_BIT; }

typedef struct ci_cons_set { uint64_t w[4]; } ci_cons_set;
static inline void ci_cons_set_add(ci_cons_set *s, unsigned b) { s->w[b >> 6] |= 1ull << (b & 63); }
static inline bool ci_cons_set_has(const ci_cons_set *s, unsigned b) { return (s->w[b >> 6] >> (b & 63)) & 1; }
static inline void ci_cons_set_range(ci_cons_set *s, unsigned lo, unsigned hi) {
    for (unsigned b = lo; b <= hi; b++) ci_cons_set_add(s, b);
}

typedef struct ci_cons_seq {
    uint32_t *e;
    size_t n, cap;
} ci_cons_seq;

typedef struct ci_cons_rule_def {
    char *name;        /* for messages */
    uint32_t *alt_off; /* alternatives: offsets into `elems`, n_alts + 1 entries in use */
    size_t n_alts, cap_alts;
    bool defined;
} ci_cons_rule_def;

typedef struct ci_cons_ir {
    ci_cons_rule_def *rules;
    size_t n_rules, cap_rules;
    uint32_t *elems; /* all alternatives' elements, rule by rule as added */
    size_t n_elems, cap_elems;
    ci_cons_set *sets; /* byte sets, deduplicated */
    size_t n_sets, cap_sets;
    bool overflow;     /* a bound was hit; ci_cons_ir_finish reports it */
} ci_cons_ir;

/* A code point range (inclusive). */
typedef struct ci_cons_cp_range { uint32_t lo, hi; } ci_cons_cp_range;

void ci_cons_ir_init(ci_cons_ir *ir);
void ci_cons_ir_free(ci_cons_ir *ir);
/* A new rule (name copied; NULL for an anonymous one "_N"). */
uint32_t ci_cons_ir_rule(ci_cons_ir *ir, const char *name);
/* Index of a named rule or -1. Linear; compilers that need many lookups keep their own map. */
long ci_cons_ir_find(const ci_cons_ir *ir, const char *name);
/* Appends `seq` as one alternative of `rule` (marks the rule defined). */
void ci_cons_ir_add_alt(ci_cons_ir *ir, uint32_t rule, const ci_cons_seq *seq);
/* Element for a byte set. */
uint32_t ci_cons_ir_set(ci_cons_ir *ir, const ci_cons_set *s);
uint32_t ci_cons_ir_byte(ci_cons_ir *ir, uint8_t b);
/* Element matching one UTF-8 encoded code point inside `r` (sorted or not,
 * overlapping allowed), complemented over all scalar values when `negate`;
 * surrogates never match. Returns CI_CONS_END when the class is empty. */
uint32_t ci_cons_ir_cp_class(ci_cons_ir *ir, const ci_cons_cp_range *r, size_t n, bool negate);
/* Element for x{min,max} (max < 0: unbounded). Caller checks the bounds. */
uint32_t ci_cons_ir_repeat(ci_cons_ir *ir, uint32_t x, long min, long max);
/* Element for a rule with the single alternative `seq` (grouping). */
uint32_t ci_cons_ir_group(ci_cons_ir *ir, const ci_cons_seq *seq);

void ci_cons_seq_push(ci_cons_seq *s, uint32_t e);
void ci_cons_seq_lit(ci_cons_ir *ir, ci_cons_seq *s, const char *bytes, size_t n);
void ci_cons_seq_append(ci_cons_seq *s, const ci_cons_seq *t);
void ci_cons_seq_free(ci_cons_seq *s);

/* Sorts and merges ranges in place, returns the new count. */
size_t ci_cons_cp_normalize(ci_cons_cp_range *r, size_t n);
/* Appends the UTF-8 encoding of cp (<= 0x10FFFF) to buf, returns its length. */
size_t ci_cons_utf8_encode(uint32_t cp, char *buf);
/* Decodes one UTF-8 code point from s[0..n); returns bytes used, 0 if invalid. */
size_t ci_cons_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* ------------------------------------------------------- compiled grammar */

typedef struct ci_cons_runtime ci_cons_runtime; /* cons_match.c: memo under a mutex */

struct ci_cons_grammar {
    _Atomic long refs;
    const ci_cons_vocab *vocab;
    uint32_t *pos;          /* flattened elements; each alternative ends with CI_CONS_END */
    size_t n_pos;
    uint32_t *rule_alts;    /* alternative start positions of rule r: [rule_alt_off[r], rule_alt_off[r+1]) */
    uint32_t *rule_alt_off;
    size_t n_rules;
    uint32_t root;
    ci_cons_set *sets;
    size_t n_sets;
    uint8_t byte_class[256]; /* bytes that no set distinguishes share a class */
    uint8_t class_rep[256];  /* one byte per class */
    int n_classes;
    ci_cons_runtime *rt;
};

/* Checks and flattens; on success fills g's IR fields (not refs/vocab/rt). */
int ci_cons_ir_finish(ci_cons_ir *ir, uint32_t root, ci_cons_grammar *g, cinfer_error *err);
void ci_cons_grammar_free_ir(ci_cons_grammar *g);
/* Checks `ir` and wraps it as a grammar (refcount 1); ir stays owned by the caller. */
ci_cons_grammar *ci_cons_grammar_from_ir(ci_cons_ir *ir, uint32_t root, const ci_cons_vocab *v, cinfer_error *err);
ci_cons_runtime *ci_cons_runtime_new(int n_classes);
void ci_cons_runtime_free(ci_cons_runtime *rt);
/* Trie nodes visited by all mask walks so far (a machine-independent cost measure for the bench). */
uint64_t ci_cons_runtime_visits(ci_cons_runtime *rt);

/* Compilers: build IR into `ir` and return the root rule via *root. */
typedef struct ci_cons_regex_opts {
    /* When set, every character the regex can produce is intersected with
     * these code point ranges (JSON string bodies: no '"', '\\', controls). */
    const ci_cons_cp_range *universe;
    size_t n_universe;
    bool search; /* JSON Schema `pattern`: unanchored unless ^ / $ are given */
} ci_cons_regex_opts;
/* Returns an element matching the regex (appending rules to ir). */
int ci_cons_regex_compile(ci_cons_ir *ir, const char *src, size_t len, const ci_cons_regex_opts *o,
                          uint32_t *elem_out, cinfer_error *err);
int ci_cons_gbnf_compile(ci_cons_ir *ir, const char *src, size_t len, uint32_t *root, cinfer_error *err);
int ci_cons_schema_compile(ci_cons_ir *ir, const char *src, size_t len, bool any_object,
                           const ci_cons_options *o, uint32_t *root, cinfer_error *err);

/* Vocabulary trie (cons_vocab.c), pre-order layout. */
typedef struct ci_cons_trie_node {
    uint32_t end;     /* index one past this node's subtree */
    uint32_t tok_lo;  /* tokens of the subtree: order[tok_lo .. nodes[end].tok_lo) */
    uint32_t below;   /* index into below_sets: the bytes used anywhere below */
    uint32_t tok_hi;  /* = nodes[end].tok_lo, kept here so the walk never touches a far node */
    uint16_t n_here;  /* tokens ending exactly here: order[tok_lo .. tok_lo + n_here) */
    uint8_t byte;     /* edge byte into this node */
    uint8_t depth_below; /* longest path below (capped at 255) */
    uint8_t utf8_below;  /* every token below continues with complete, valid UTF-8 from here */
    uint8_t chars_below; /* then: most characters on a path below (capped at 255) */
} ci_cons_trie_node;

struct ci_cons_vocab {
    size_t n_tokens;
    uint8_t *excluded;        /* [n_tokens] 1 = never allowed by a constraint */
    uint8_t *is_eos;          /* [n_tokens] */
    int32_t *eos;
    size_t n_eos;
    uint8_t *bytes;           /* all token bytes */
    uint32_t *off, *len;      /* [n_tokens] */
    ci_cons_trie_node *nodes; /* node 0 = root */
    size_t n_nodes;
    int32_t *order;           /* allowed tokens in trie pre-order (identical bytes adjacent) */
    size_t n_order;
    uint32_t max_len;         /* longest token in the trie */
    ci_cons_set *below_sets;  /* deduplicated, [0] = empty */
    size_t n_below_sets;
    /* Counter cuts: for a node whose subtree is complete UTF-8 (utf8_below)
     * and holds >= CI_CONS_CUT_MIN tokens, cut_off[node] indexes `cut`:
     * chars_below + 1 counts (count[r] = tokens with at most r characters
     * below the node), then the subtree's tokens (those ending below the
     * node, not at it) sorted by that character count. UINT32_MAX: none. */
    uint32_t *cut_off;        /* [n_nodes] */
    uint32_t *cut;
    size_t n_cut;
    /* Subtrees with >= CI_CONS_BITS_MIN tokens below the node also have their
     * tokens as a ready mask (ci_cons_mask_words words), so accepting one is
     * a vectorised OR instead of thousands of scattered bit sets.
     * bits_off[node]: word offset into `bits`, UINT32_MAX: none. */
    uint32_t *bits_off;       /* [n_nodes] */
    uint32_t *bits;
    size_t n_bits_masks;
};
#define CI_CONS_BITS_MIN 1024
#define CI_CONS_BITS_MAX_BYTES ((size_t)16 << 20)
#define CI_CONS_CUT_MIN 16

#endif
