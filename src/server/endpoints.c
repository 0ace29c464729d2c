/*
 * endpoints.c — the endpoints that generate nothing: /health, /metrics,
 * /version, /v1/models, and vLLM's /tokenize and /detokenize.
 */
#include "server/openai.h"

#include <stdlib.h>
#include <string.h>

int api_health(srv_request *r) {
    /* readiness: a draining server tells load balancers to go elsewhere */
    if (atomic_load(&r->srv->draining)) return srv_send_errorf(r, 503, NULL, "the server is shutting down");
    return srv_send(r, 200, "text/plain", "", 0);
}

int api_metrics(srv_request *r) {
    ci_sched_stats stats;
    ci_sched_get_stats(r->srv->sched, &stats);
    ci_buf out = {0};
    ci_metrics_render(&r->srv->metrics, &stats, r->srv->model_name, &out);
    int ret = srv_send(r, 200, "text/plain; version=0.0.4", out.data ? out.data : "", out.len);
    ci_buf_free(&out);
    return ret;
}

int api_version(srv_request *r) { return srv_send_json(r, 200, json_pack("{s:s}", "version", CINFER_VERSION)); }

/* created: when the server loaded the model (as vLLM, whose cards carry
 * their creation time) */
static json_t *model_card(const server *s) {
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:i}", "id", s->model_name, "object", "model", "created", (json_int_t)s->started,
                     "owned_by", "cinfer", "root", s->model_name, "max_model_len", s->m->max_model_len);
}

int api_models(srv_request *r) {
    return srv_send_json(r, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_card(r->srv)));
}

int api_model_one(srv_request *r) {
    const char *name = r->url + strlen("/v1/models/");
    if (strcmp(name, r->srv->model_name) != 0) {
        srv_error e;
        srv_fail(&e, 404, "model", "The model `%s` does not exist.", name);
        e.code = "model_not_found";
        return srv_send_error(r, &e);
    }
    return srv_send_json(r, 200, model_card(r->srv));
}

static long tokenize_request(const server *s, json_t *req, int32_t **ids, srv_error *e) {
    *ids = NULL;
    if (!srv_check_model(s, req, e)) return -1;
    if (json_object_get(req, "messages")) {
        srv_tool_mode mode;
        const char *named;
        return srv_openai_chat_prompt(s, req, &mode, &named, ids, e);
    }
    json_t *p = json_object_get(req, "prompt");
    if (!json_is_string(p)) return srv_fail(e, 400, "prompt", "'prompt' (a string) or 'messages' is required"), -1;
    cinfer_error err = {0};
    long n = cinfer_tokenize(s->m->tok, json_string_value(p), json_string_length(p), 0, ids, &err);
    if (n < 0) srv_fail(e, 400, "prompt", "cannot tokenize: %s", err.message);
    return n;
}

int api_tokenize(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    int32_t *ids = NULL;
    long n = tokenize_request(r->srv, req, &ids, &e);
    json_decref(req);
    if (n < 0) {
        free(ids);
        return srv_send_error(r, &e);
    }
    json_t *tokens = json_array();
    for (long i = 0; i < n; i++) json_array_append_new(tokens, json_integer(ids[i]));
    free(ids);
    return srv_send_json(r, 200, json_pack("{s:I,s:i,s:o}", "count", (json_int_t)n, "max_model_len",
                                           r->srv->m->max_model_len, "tokens", tokens));
}

int api_detokenize(srv_request *r) {
    srv_error e = {0};
    json_t *req = srv_parse_body(r, &e);
    if (!req) return srv_send_error(r, &e);
    int32_t *ids = NULL;
    json_t *t = json_object_get(req, "tokens");
    long n = -1;
    if (srv_check_model(r->srv, req, &e)) {
        if (json_array_size(t) > SRV_MAX_TOKENS_IN_REQUEST) srv_fail(&e, 400, "tokens", "'tokens' has too many ids");
        else n = srv_read_token_ids(r->srv, t, "tokens", &ids, &e);
    }
    json_decref(req);
    if (n < 0) return srv_send_error(r, &e);
    size_t len = 0;
    cinfer_error err = {0};
    char *text = cinfer_detokenize(r->srv->m->tok, ids, (size_t)n, false, &len, &err);
    free(ids);
    if (!text) return srv_send_errorf(r, 400, "tokens", "cannot detokenize: %s", err.message);
    int ret = srv_send_json(r, 200, json_pack("{s:o}", "prompt", srv_json_text(text, len)));
    free(text);
    return ret;
}
