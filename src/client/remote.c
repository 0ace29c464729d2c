/* remote.c — placeholder until the client lands (issue 5). */
#include "client/remote.h"
#include "util/util.h"

void cinfer_remote_options_init(cinfer_remote_options *o) { *o = (cinfer_remote_options){.max_retries = -1}; }

ci_remote *ci_remote_open(const cinfer_remote_options *o, cinfer_error *err) {
    (void)o;
    ci_error(err, CINFER_ERR_INVALID, "remote endpoints are not implemented yet");
    return NULL;
}

void ci_remote_close(ci_remote *r) { (void)r; }

int ci_remote_chat(ci_remote *r, const json_t *messages, const cinfer_gen_options *o, cinfer_result *out,
                   cinfer_error *err) {
    (void)r, (void)messages, (void)o, (void)out;
    return ci_error(err, CINFER_ERR_INVALID, "remote endpoints are not implemented yet");
}
