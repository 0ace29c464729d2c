/*
 * server.h — shared state of `cinfer serve` between the HTTP layer
 * (server.c) and the endpoint handlers (api.c). Internal to src/server.
 */
#ifndef CINFER_SERVER_SERVER_H
#define CINFER_SERVER_SERVER_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "engine/engine_internal.h"
#include "server/server_internal.h"
#include "server/server_job.h"

typedef struct server {
    cinfer_model *m;
    ci_scheduler *sched;
    char *model_name;
    char *api_key;
    ci_special_set specials;
    ci_metrics metrics;
    int32_t think_start, think_end;
    int32_t *think_close;        /* ids of "\n\n</think>\n\n" (forced at the thinking budget) */
    int n_think_close;
    pthread_t sched_thread;
    atomic_bool shutting_down;   /* set first: waiting handlers cancel their jobs */
    atomic_bool stopping;        /* set once HTTP is down: the scheduler thread exits */
} server;

typedef struct srv_request {
    struct MHD_Connection *conn;
    server *srv;
    const char *body;
    size_t body_len;
    int fd;
} srv_request;

int srv_send(struct MHD_Connection *c, server *s, int status, const char *content_type, const char *body, size_t len);
int srv_send_json(struct MHD_Connection *c, server *s, int status, json_t *body); /* steals body */
int srv_send_error(struct MHD_Connection *c, server *s, int status, const char *param, const char *fmt, ...)
    CI_PRINTF(5, 6);
void srv_append_utf8_lossy(ci_buf *out, const char *s, size_t n);

job *srv_job_new(server *s, int n_choices, bool is_chat);
void srv_job_release(job *j);
void srv_job_cancel_locked(job *j);
bool srv_job_wait_locked(job *j);
bool srv_on_token(void *user, const ci_token_event *ev);
int srv_job_submit(job *j, const int32_t *const *prompts, const int *n_prompts, const ci_request_params *params,
                   const ci_output_options *oo, cinfer_error *err);

int api_models(srv_request *r);
int api_model_one(srv_request *r, const char *name);
int api_chat_completions(srv_request *r);
int api_completions(srv_request *r);
int api_tokenize(srv_request *r);
int api_detokenize(srv_request *r);

#endif
