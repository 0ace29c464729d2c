/* tokenizer.c — placeholder until the tokenizer lands (issue 2). */
#include "util/util.h"
cinfer_tokenizer *cinfer_tokenizer_load(const char *path, cinfer_error *err) {
    ci_error(err, CINFER_ERR_INVALID, "%s: tokenizer not implemented yet", path);
    return NULL;
}
void cinfer_tokenizer_free(cinfer_tokenizer *tok) { (void)tok; }
long cinfer_tokenize(const cinfer_tokenizer *tok, const char *text, size_t len, unsigned flags, int32_t **ids_out, cinfer_error *err) {
    return ci_error(err, CINFER_ERR_INVALID, "not implemented");
}
