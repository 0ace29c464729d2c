/*
 * client_probe.c — one chat turn through the public client API, for the
 * end-to-end script (test_client_serve.sh). Prints the result as JSON and
 * exits 0, or prints the error and exits 1.
 * usage: client_probe BASE_URL stream|whole|bad-request
 *   bad-request sends temperature -5 without streaming; it succeeds (exit 0)
 *   when the server's HTTP 400 comes back as an error that carries a message.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cinfer.h"

static bool on_delta(void *user, const char *t, size_t tl, const char *c, size_t cl) {
    (void)t, (void)c;
    *(size_t *)user += tl + cl;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: client_probe BASE_URL stream|whole|bad-request\n");
        return 2;
    }
    const char *mode = argv[2];
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    ro.base_url = argv[1];
    ro.timeout = 60;
    ro.idle_timeout = 30;
    ro.max_retries = 0;
    cinfer_error err = {0};
    cinfer_model *m = cinfer_model_open_remote(&ro, &err);
    if (!m) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    cinfer_gen_options go;
    cinfer_gen_options_init(&go);
    go.max_new_tokens = 12;
    go.temperature = 0;
    size_t streamed = 0;
    if (strcmp(mode, "stream") == 0) go.on_delta = on_delta, go.user = &streamed, go.enable_thinking = 1;
    if (strcmp(mode, "bad-request") == 0) go.temperature = -5, go.extra_json = "{\"temperature\":-5}";
    cinfer_message history[] = {{"user", "Hello", NULL}, {"assistant", "Hi there", NULL}};
    cinfer_result res;
    int rc = cinfer_chat(m, history, 2, "You are terse.", "Count to three.", &go, &res, &err);
    cinfer_model_free(m);
    if (strcmp(mode, "bad-request") == 0) {
        if (rc == 0) {
            cinfer_result_free(&res);
            fprintf(stderr, "bad-request: the server accepted temperature -5\n");
            return 1;
        }
        printf("bad-request error: %s\n", err.message);
        return strstr(err.message, "HTTP 4") ? 0 : 1;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", mode, err.message);
        return 1;
    }
    json_t *out = json_pack("{s:s,s:s,s:s,s:i,s:i,s:I}", "thinking", res.thinking, "content", res.content,
                            "finish_reason", res.finish_reason, "prompt_tokens", res.prompt_tokens,
                            "completion_tokens", res.completion_tokens, "streamed_bytes", (json_int_t)streamed);
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s: %s\n", mode, text);
    free(text);
    json_decref(out);
    bool ok = res.completion_tokens > 0 && (strcmp(res.finish_reason, "length") == 0 || strcmp(res.finish_reason, "stop") == 0);
    if (go.on_delta) ok = ok && streamed == strlen(res.thinking) + strlen(res.content);
    cinfer_result_free(&res);
    return ok ? 0 : 1;
}
