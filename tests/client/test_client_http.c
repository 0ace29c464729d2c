/*
 * test_client_http.c — the client against the scripted server
 * (scripted_server.c) over real sockets on 127.0.0.1: the public API
 * (cinfer_model_open_remote + cinfer_chat, cinfer_remote_list_models) for
 * each scenario, with short timeouts so a hang shows up as a failure.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cinfer.h"
#include "scripted_server.h"
#include "test.h"
#include "util/util.h"

static scripted_server *server;

typedef struct stream_log {
    ci_buf thinking, content;
    int calls;
    int stop_after;                    /* return false at this call (0: never) */
    volatile sig_atomic_t *raise_flag; /* set this flag at the first call */
} stream_log;

static bool on_delta(void *user, const char *t, size_t tl, const char *c, size_t cl) {
    stream_log *s = user;
    ci_buf_append(&s->thinking, t, tl);
    ci_buf_append(&s->content, c, cl);
    s->calls++;
    if (s->raise_flag) *s->raise_flag = 1;
    return !(s->stop_after && s->calls >= s->stop_after);
}

static cinfer_model *open_scenario(const char *scenario, double idle_timeout, int max_retries,
                                   const volatile sig_atomic_t *cancel) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s/v1/", scripted_server_port(server), scenario);
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    ro.base_url = url;
    ro.api_key = "sk-test-0123456789-secret";
    ro.model = "test-model";
    ro.timeout = 20;
    ro.connect_timeout = 5;
    ro.idle_timeout = idle_timeout;
    ro.max_retries = max_retries;
    ro.cancel = cancel;
    cinfer_error err = {0};
    cinfer_model *m = cinfer_model_open_remote(&ro, &err);
    CHECK_MSG(m != NULL, "%s", err.message);
    return m;
}

/* One chat turn; streams when `log` is given. Returns the rc; *err filled. */
static int chat(const char *scenario, stream_log *log, double idle_timeout, int max_retries, cinfer_result *res,
                cinfer_error *err, double *seconds) {
    cinfer_model *m = open_scenario(scenario, idle_timeout, max_retries, log ? log->raise_flag : NULL);
    if (!m) return -100;
    cinfer_gen_options go;
    cinfer_gen_options_init(&go);
    if (log) go.on_delta = on_delta, go.user = log;
    *err = (cinfer_error){0};
    double t0 = ci_now_seconds();
    int rc = cinfer_chat(m, NULL, 0, "be brief", "hi", &go, res, err);
    if (seconds) *seconds = ci_now_seconds() - t0;
    cinfer_model_free(m);
    return rc;
}

static void test_ok_streaming_and_not(void) {
    stream_log log = {0};
    cinfer_result res;
    cinfer_error err;
    int rc = chat("ok", &log, 5, 0, &res, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK_STREQ(res.thinking, "Thinking hard");
        CHECK_STREQ(res.content, "Hello world");
        CHECK_STREQ(res.finish_reason, "stop");
        CHECK(res.prompt_tokens == 5 && res.completion_tokens == 7);
        CHECK(res.tool_calls_json == NULL);
        CHECK_STREQ(log.thinking.data ? log.thinking.data : "", "Thinking hard");
        CHECK_STREQ(log.content.data ? log.content.data : "", "Hello world");
    }
    cinfer_result_free(&res);
    char *headers = scripted_server_last_headers(server);
    CHECK(strstr(headers, "Authorization: Bearer sk-test-0123456789-secret") != NULL);
    CHECK(strstr(headers, "text/event-stream") != NULL);
    free(headers);

    rc = chat("ok", NULL, 5, 0, &res, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK_STREQ(res.thinking, "hm");
        CHECK_STREQ(res.content, "Hello world");
        CHECK(res.completion_tokens == 7);
    }
    cinfer_result_free(&res);
    ci_buf_free(&log.thinking), ci_buf_free(&log.content);
}

static void test_request_fields(void) {
    cinfer_model *m = open_scenario("ok", 5, 0, NULL);
    if (!m) return;
    cinfer_gen_options go;
    cinfer_gen_options_init(&go);
    go.temperature = 0.7f;
    go.max_new_tokens = 33;
    go.enable_thinking = 0;
    const char *stop[] = {"END"};
    go.stop = stop, go.n_stop = 1;
    go.tools_json = "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]";
    go.extra_json = "{\"chat_template_kwargs\":{\"custom\":1},\"user\":\"u1\",\"stream_options\":null}";
    cinfer_message history[] = {{"user", "earlier", NULL}, {"assistant", "reply", "secret thoughts"}};
    cinfer_result res;
    cinfer_error err = {0};
    int rc = cinfer_chat(m, history, 2, "sys", "now", &go, &res, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    cinfer_result_free(&res);
    char *body = scripted_server_last_body(server);
    CHECK(strstr(body, "\"model\":\"test-model\"") != NULL);
    CHECK(strstr(body, "\"max_tokens\":33") != NULL);
    CHECK(strstr(body, "\"temperature\":0.7,") != NULL);
    CHECK(strstr(body, "\"stop\":[\"END\"]") != NULL);
    CHECK(strstr(body, "\"tools\":[{") != NULL);
    CHECK(strstr(body, "\"user\":\"u1\"") != NULL);
    CHECK(strstr(body, "\"enable_thinking\":false") != NULL);
    CHECK(strstr(body, "\"custom\":1") != NULL);
    CHECK(strstr(body, "\"role\":\"system\",\"content\":\"sys\"") != NULL);
    CHECK(strstr(body, "secret thoughts") == NULL); /* history thinking is not sent */
    CHECK(strstr(body, "top_k") == NULL);           /* unset options are not sent */
    free(body);
    /* Bad tools / extra JSON are the caller's error, reported before any request. */
    go.tools_json = "{not json";
    CHECK(cinfer_chat(m, NULL, 0, NULL, "x", &go, &res, &err) == CINFER_ERR_INVALID);
    go.tools_json = NULL, go.extra_json = "[1]";
    CHECK(cinfer_chat(m, NULL, 0, NULL, "x", &go, &res, &err) == CINFER_ERR_INVALID);
    cinfer_model_free(m);
}

static void test_model_from_list(void) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/v1", scripted_server_port(server));
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    ro.base_url = url;
    ro.api_key = "";
    cinfer_error err = {0};
    char *list = cinfer_remote_list_models(&ro, &err);
    CHECK_MSG(list && strstr(list, "\"scripted-model\""), "%s", err.message);
    cinfer_free(list);
    cinfer_model *m = cinfer_model_open_remote(&ro, &err);
    CHECK(m != NULL);
    cinfer_result res;
    if (m && cinfer_chat(m, NULL, 0, NULL, "hi", NULL, &res, &err) == 0) {
        char *body = scripted_server_last_body(server);
        CHECK(strstr(body, "\"model\":\"scripted-model\"") != NULL);
        free(body);
        char *headers = scripted_server_last_headers(server);
        CHECK(strstr(headers, "Authorization") == NULL); /* empty key: no header */
        free(headers);
        cinfer_result_free(&res);
    } else {
        CHECK_MSG(0, "%s", err.message);
    }
    cinfer_model_free(m);
}

static void test_retries(void) {
    cinfer_result res;
    cinfer_error err;
    double secs;
    stream_log log = {0};
    int rc = chat("r429", &log, 5, 2, &res, &err, &secs);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(scripted_server_count(server, "r429") == 2);
    CHECK_MSG(secs >= 0.9 && secs < 5, "Retry-After: 1 honoured (took %.2f s)", secs);
    if (rc == 0) CHECK_STREQ(res.content, "Hello world");
    cinfer_result_free(&res);

    rc = chat("r500", NULL, 5, 2, &res, &err, &secs);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(scripted_server_count(server, "r500") == 2);
    CHECK_MSG(secs >= 0.3 && secs < 5, "backoff (took %.2f s)", secs);
    cinfer_result_free(&res);

    rc = chat("dropfirst", NULL, 5, 2, &res, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(scripted_server_count(server, "dropfirst") == 2);
    cinfer_result_free(&res);

    rc = chat("r503", NULL, 5, 2, &res, &err, NULL);
    CHECK(rc == CINFER_ERR_NETWORK);
    CHECK(scripted_server_count(server, "r503") == 3);
    CHECK_MSG(strstr(err.message, "HTTP 503") && strstr(err.message, "overloaded") &&
              strstr(err.message, "3 attempts"), "%s", err.message);

    rc = chat("r400", NULL, 5, 2, &res, &err, NULL);
    CHECK(rc == CINFER_ERR_NETWORK);
    CHECK(scripted_server_count(server, "r400") == 1);
    CHECK_MSG(strstr(err.message, "HTTP 400") && strstr(err.message, "The model `nope` does not exist."), "%s",
              err.message);
    CHECK(strstr(err.message, "secret") == NULL);
    ci_buf_free(&log.thinking), ci_buf_free(&log.content);
}

static void test_broken_streams(void) {
    cinfer_result res;
    cinfer_error err;
    double secs;
    stream_log log = {0};
    int rc = chat("badsse", &log, 5, 2, &res, &err, NULL);
    CHECK_MSG(rc == CINFER_ERR_FORMAT && strstr(err.message, "malformed event stream"), "%d %s", rc, err.message);
    CHECK(scripted_server_count(server, "badsse") == 1);

    rc = chat("badjson", &log, 5, 2, &res, &err, NULL);
    CHECK_MSG(rc == CINFER_ERR_FORMAT && strstr(err.message, "not a JSON object"), "%d %s", rc, err.message);

    log.calls = 0;
    rc = chat("stall", &log, 0.5, 2, &res, &err, &secs);
    CHECK_MSG(rc == CINFER_ERR_NETWORK && strstr(err.message, "idle timeout"), "%d %s", rc, err.message);
    CHECK_MSG(secs < 3, "idle timeout fired after %.2f s", secs);
    CHECK(log.calls == 1);
    CHECK(scripted_server_count(server, "stall") == 1); /* output was delivered: no retry */

    rc = chat("drop", &log, 5, 2, &res, &err, &secs);
    CHECK_MSG(rc == CINFER_ERR_NETWORK && strstr(err.message, "after part of the answer"), "%d %s", rc, err.message);
    CHECK(scripted_server_count(server, "drop") == 1);

    rc = chat("miderror", &log, 5, 2, &res, &err, NULL);
    CHECK_MSG(rc == CINFER_ERR_NETWORK && strstr(err.message, "engine overloaded mid-stream"), "%d %s", rc, err.message);

    /* A server that ignores "stream": the whole answer arrives as one delta. */
    ci_buf_free(&log.thinking), ci_buf_free(&log.content);
    rc = chat("nostream", &log, 5, 2, &res, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK_STREQ(res.content, "Hello world");
        CHECK_STREQ(log.content.data ? log.content.data : "", "Hello world");
        CHECK_STREQ(log.thinking.data ? log.thinking.data : "", "hm");
    }
    cinfer_result_free(&res);

    rc = chat("nodone", &log, 5, 2, &res, &err, NULL);
    CHECK_MSG(rc == CINFER_ERR_NETWORK && strstr(err.message, "ended before"), "%d %s", rc, err.message);
    ci_buf_free(&log.thinking), ci_buf_free(&log.content);
}

static void test_think_and_tools(void) {
    cinfer_result res;
    cinfer_error err;
    stream_log log = {0};
    int rc = chat("think", &log, 5, 0, &res, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK_STREQ(res.thinking, "abc");
        CHECK_STREQ(res.content, "Done");
        CHECK_STREQ(log.thinking.data ? log.thinking.data : "", "abc");
        CHECK_STREQ(log.content.data ? log.content.data : "", "Done");
    }
    cinfer_result_free(&res);
    ci_buf_free(&log.thinking), ci_buf_free(&log.content);

    stream_log log2 = {0};
    rc = chat("tools", &log2, 5, 0, &res, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK_STREQ(res.finish_reason, "tool_calls");
        CHECK(res.tool_calls_json != NULL);
        if (res.tool_calls_json)
            CHECK_STREQ(res.tool_calls_json,
                        "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_2\",\"type\":\"function\","
                        "\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]");
    }
    cinfer_result_free(&res);
}

static void test_cancel(void) {
    cinfer_result res;
    cinfer_error err;
    double secs;
    /* on_delta returning false. */
    stream_log log = {.stop_after = 1};
    int rc = chat("ok", &log, 5, 0, &res, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) CHECK_STREQ(res.finish_reason, "cancelled");
    CHECK(log.calls == 1);
    cinfer_result_free(&res);
    ci_buf_free(&log.thinking), ci_buf_free(&log.content);
    /* The cancel flag (as a SIGINT handler would set it) during a stall:
     * the request ends within a poll slice, long before the idle timeout. */
    volatile sig_atomic_t flag = 0;
    stream_log log2 = {.raise_flag = &flag};
    rc = chat("stall", &log2, 30, 2, &res, &err, &secs);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc == 0) {
        CHECK_STREQ(res.finish_reason, "cancelled");
        CHECK_STREQ(res.content, "partial");
    }
    CHECK_MSG(secs < 2, "cancel took %.2f s", secs);
    cinfer_result_free(&res);
    ci_buf_free(&log2.thinking), ci_buf_free(&log2.content);
}

static void test_config(void) {
    /* Environment as the SDKs: OPENAI_BASE_URL and OPENAI_API_KEY, CINFER_API_KEY as a fallback. */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/v1", scripted_server_port(server));
    setenv("OPENAI_BASE_URL", url, 1);
    unsetenv("OPENAI_API_KEY");
    setenv("CINFER_API_KEY", "fallback-key-from-env", 1);
    cinfer_remote_options ro;
    cinfer_remote_options_init(&ro);
    ro.model = "m";
    cinfer_error err = {0};
    cinfer_model *m = cinfer_model_open_remote(&ro, &err);
    cinfer_result res;
    CHECK_MSG(m && cinfer_chat(m, NULL, 0, NULL, "hi", NULL, &res, &err) == 0, "%s", err.message);
    if (m) cinfer_result_free(&res);
    cinfer_model_free(m);
    char *headers = scripted_server_last_headers(server);
    CHECK(strstr(headers, "Bearer fallback-key-from-env") != NULL);
    free(headers);
    unsetenv("OPENAI_BASE_URL");
    unsetenv("CINFER_API_KEY");
    /* Bad URLs and keys are rejected up front, and the key is never echoed. */
    ro.base_url = "ftp://example.com";
    CHECK(cinfer_model_open_remote(&ro, &err) == NULL && err.code == CINFER_ERR_INVALID);
    ro.base_url = url;
    ro.api_key = "sk-abc\r\nX-Injected: 1";
    CHECK(cinfer_model_open_remote(&ro, &err) == NULL && strstr(err.message, "X-Injected") == NULL);
    /* Nothing listening: a connection error, retried, then reported. */
    ro.api_key = NULL;
    ro.base_url = "http://127.0.0.1:1/v1";
    ro.max_retries = 1;
    m = cinfer_model_open_remote(&ro, &err);
    CHECK(m && cinfer_chat(m, NULL, 0, NULL, "hi", NULL, &res, &err) == CINFER_ERR_NETWORK);
    CHECK_MSG(strstr(err.message, "127.0.0.1:1") != NULL, "%s", err.message);
    cinfer_model_free(m);
}

int main(void) {
    /* The client honours proxy variables, as curl and the SDKs do; these
     * tests talk to 127.0.0.1 directly. */
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    server = scripted_server_start();
    test_ok_streaming_and_not();
    test_request_fields();
    test_model_from_list();
    test_retries();
    test_broken_streams();
    test_think_and_tools();
    test_cancel();
    test_config();
    scripted_server_stop(server);
    TEST_MAIN_END();
}
