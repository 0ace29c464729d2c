/*
 * tok_json_scan.h — streaming reader for the two large values of a
 * tokenizer.json, "model.vocab" and "model.merges" (see tok_json_scan.c).
 */
#ifndef CINFER_TOK_JSON_SCAN_H
#define CINFER_TOK_JSON_SCAN_H

#include "tokenizer/tokenizer_internal.h"

/* Returned for any JSON syntax error (cinfer error codes are negative). */
#define CI_JSON_SCAN_SYNTAX 1

/* Byte range [start, end) of a value in the text; end == 0: not read. */
typedef struct ci_json_span {
    size_t start, end;
} ci_json_span;

typedef struct ci_json_scan_result {
    ci_json_span vocab;  /* model.vocab, when it is an object */
    ci_json_span merges; /* model.merges, when it is an array */
} ci_json_scan_result;

/* Checks the whole text's JSON grammar and adds the entries of model.vocab
 * and model.merges to b, in file order, with the messages tok_json.c uses.
 * Returns 0, CI_JSON_SCAN_SYNTAX (b may then hold part of the entries), or
 * a cinfer error code with err set. Values of other types are left alone
 * (spans unset) for the jansson reader to judge. */
int ci_json_scan_model(ci_tok_builder *b, const char *json, size_t len, ci_json_scan_result *res, cinfer_error *err);

#endif
