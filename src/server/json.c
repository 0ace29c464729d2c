/*
 * json.c — reading request bodies and writing error objects, shared by
 * every API adapter.
 *
 * Every reader bounds what it accepts and reports a wrong type or range as
 * a 400 naming the field (`param`), so adapters can chain them.
 */
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool srv_fail(srv_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

static const char *error_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static const char *error_code(int status) {
    switch (status) {
    case 401: return "invalid_api_key";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 413: return "request_too_large";
    case 431: return "request_header_fields_too_large";
    case 499: return "client_closed_request";
    case 503: return "service_unavailable";
    default: return NULL;
    }
}

json_t *srv_error_json(const srv_error *e) {
    const char *code = e->code ? e->code : error_code(e->status);
    json_t *err = json_object();
    /* messages quote client text: repair invalid UTF-8 */
    json_object_set_new(err, "message", srv_json_text(e->msg, strlen(e->msg)));
    json_object_set_new(err, "type", json_string(error_type(e->status)));
    json_object_set_new(err, "param", e->param[0] ? srv_json_text(e->param, strlen(e->param)) : json_null());
    json_object_set_new(err, "code", code ? json_string(code) : json_null());
    return json_pack("{s:o}", "error", err);
}

static const char *anthropic_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

json_t *srv_error_json_shaped(const srv_error *e, srv_shape shape) {
    json_t *msg = srv_json_text(e->msg, strlen(e->msg));
    switch (shape) {
    case SRV_SHAPE_ANTHROPIC:
        return json_pack("{s:s,s:{s:s,s:o}}", "type", "error", "error", "type", anthropic_type(e->status), "message", msg);
    case SRV_SHAPE_OLLAMA:
        return json_pack("{s:o}", "error", msg);
    default:
        json_decref(msg);
        return srv_error_json(e);
    }
}

void srv_append_utf8_lossy(ci_buf *out, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = need > 0 && i + need <= n;
        for (size_t k = 1; ok && k < need; k++) ok = (p[i + k] & 0xC0) == 0x80;
        if (ok && need == 2 && c < 0xC2) ok = false;
        if (ok && need == 3) {
            unsigned cp = ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
            if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
        }
        if (ok && need == 4) {
            unsigned cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu);
            if (cp < 0x10000 || cp > 0x10FFFF) ok = false;
        }
        if (ok && c == 0) ok = false; /* NUL would end C strings downstream */
        if (ok) {
            ci_buf_append(out, s + i, need);
            i += need;
        } else {
            ci_buf_append(out, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
}

json_t *srv_json_text(const char *s, size_t n) {
    json_t *v = json_stringn(n ? s : "", n);
    if (v) return v;
    ci_buf b = {0};
    srv_append_utf8_lossy(&b, s, n);
    v = json_stringn(b.data ? b.data : "", b.len);
    ci_buf_free(&b);
    return v;
}

json_t *srv_parse_body(const srv_request *r, srv_error *e) {
    json_error_t jerr;
    json_t *req = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req) {
        srv_fail(e, 400, NULL, "malformed JSON body: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(req)) {
        json_decref(req);
        srv_fail(e, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return req;
}

bool srv_opt_number(json_t *obj, const char *key, double lo, double hi, double *out, bool *set, srv_error *e) {
    if (set) *set = false;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) return srv_fail(e, 400, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return srv_fail(e, 400, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    if (set) *set = true;
    return true;
}

bool srv_opt_int(json_t *obj, const char *key, long long lo, long long hi, long long *out, bool *set, srv_error *e) {
    if (set) *set = false;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) return srv_fail(e, 400, key, "'%s' must be an integer", key);
    long long d = json_integer_value(v);
    if (d < lo || d > hi) return srv_fail(e, 400, key, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, d);
    *out = d;
    if (set) *set = true;
    return true;
}

bool srv_opt_bool(json_t *obj, const char *key, bool *out, srv_error *e) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return srv_fail(e, 400, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return true;
}

bool srv_check_model(const server *s, json_t *req, srv_error *e) {
    json_t *m = json_object_get(req, "model");
    if (!m || json_is_null(m)) return true;
    if (!json_is_string(m)) return srv_fail(e, 400, "model", "'model' must be a string");
    if (strcmp(json_string_value(m), s->model_name) == 0) return true;
    srv_fail(e, 404, "model", "The model `%s` does not exist. This server serves `%s`.", json_string_value(m),
             s->model_name);
    e->code = "model_not_found";
    return false;
}

long srv_read_token_ids(const server *s, json_t *a, const char *param, int32_t **ids, srv_error *e) {
    *ids = NULL;
    if (!json_is_array(a) || json_array_size(a) > SIZE_MAX / 8)
        return srv_fail(e, 400, param, "'%s' must be a list of token ids", param), -1;
    size_t n = json_array_size(a);
    int vocab = s->m->ck.model.hp.vocab;
    int32_t *out = ci_malloc((n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
            free(out);
            return srv_fail(e, 400, param, "%s[%zu] is not a token id in [0, %d)", param, i, vocab), -1;
        }
        out[i] = (int32_t)json_integer_value(v);
    }
    *ids = out;
    return (long)n;
}

bool srv_check_fields(json_t *obj, const char *const *known, const char *where, srv_error *e) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, key) == 0;
        if (ok) continue;
        char param[64];
        if (where) snprintf(param, sizeof param, "%s.%s", where, key);
        else snprintf(param, sizeof param, "%s", key);
        return srv_fail(e, 400, param, "unknown or unsupported field '%s'", param);
    }
    return true;
}
