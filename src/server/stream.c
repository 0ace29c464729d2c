/*
 * stream.c — a streamed response: the adapter's events handed to
 * libmicrohttpd as they come, and SSE framing.
 *
 * MHD calls the reader on the connection's thread whenever it can send
 * more. The reader hands out buffered bytes first; with none, it lets the
 * adapter turn the job's new events into bytes (api->stream), ends the
 * stream once every choice's finish was sent (api->stream_end), or, when
 * the job failed, writes the adapter's error ending (api->stream_error).
 * With nothing new it waits on the job. A client that leaves ends the
 * response with an error (MHD closes the connection); MHD's teardown of
 * the response cancels what is still running.
 */
#include "server/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_sse(ci_buf *out, const char *name, json_t *obj) {
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text) return;
    if (name) ci_buf_printf(out, "event: %s\n", name);
    ci_buf_puts(out, "data: ");
    ci_buf_puts(out, text);
    ci_buf_puts(out, "\n\n");
    free(text);
}

void srv_sse_done(ci_buf *out) { ci_buf_puts(out, "data: [DONE]\n\n"); }

static bool all_finish_sent(const job *j) {
    for (int i = 0; i < j->n_choices; i++)
        if (!j->choices[i].finish_sent) return false;
    return true;
}

/* Appends the adapter's bytes for what is new. Caller holds j->lock. */
static void produce_locked(job *j) {
    if (j->stream_ended) return;
    if (j->fail.status) {
        j->api->stream_error(j, &j->fail, &j->out);
        j->stream_ended = true;
        return;
    }
    j->api->stream(j, &j->out);
    if (all_finish_sent(j)) {
        j->api->stream_end(j, &j->out);
        j->stream_ended = true;
    }
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        if (j->out_off < j->out.len) {
            size_t n = j->out.len - j->out_off;
            if (n > max) n = max;
            memcpy(buf, j->out.data + j->out_off, n);
            j->out_off += n;
            if (j->out_off == j->out.len) j->out_off = j->out.len = 0;
            pthread_mutex_unlock(&j->lock);
            return (ssize_t)n;
        }
        if (j->stream_ended || j->client_gone) {
            bool gone = j->client_gone;
            pthread_mutex_unlock(&j->lock);
            return gone ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        }
        produce_locked(j);
        if (j->out.len > j->out_off || j->stream_ended) continue;
        srv_job_wait_locked(j);
    }
}

/* MHD is done with the response (finished, or the client went away). */
static void stream_free(void *cls) {
    job *j = cls;
    pthread_mutex_lock(&j->lock);
    if (j->n_done < j->n_choices) srv_job_cancel_locked(j);
    pthread_mutex_unlock(&j->lock);
    srv_job_release(j);
}

int srv_stream_start(srv_request *r, job *j) {
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
    if (!resp) {
        pthread_mutex_lock(&j->lock);
        srv_job_cancel_locked(j);
        pthread_mutex_unlock(&j->lock);
        srv_job_release(j);
        return srv_send_errorf(r, 500, NULL, "cannot create the stream");
    }
    MHD_add_response_header(resp, "Content-Type", j->api->stream_type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return srv_queue(r, 200, resp);
}
