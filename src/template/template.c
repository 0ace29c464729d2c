/* template.c — placeholder until the Jinja interpreter lands (issue 2). */
#include "util/util.h"
cinfer_template *cinfer_template_parse(const char *source, size_t len, cinfer_error *err) {
    ci_error(err, CINFER_ERR_INVALID, "template engine not implemented yet");
    return NULL;
}
void cinfer_template_free(cinfer_template *tpl) { (void)tpl; }
char *cinfer_template_render_json(const cinfer_template *tpl, const char *ctx, size_t n, size_t *len_out, cinfer_error *err) {
    ci_error(err, CINFER_ERR_INVALID, "template engine not implemented yet");
    return NULL;
}
