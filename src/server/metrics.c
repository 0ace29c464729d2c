/*
 * metrics.c — the numbers behind GET /metrics, in Prometheus text format.
 *
 * HTTP threads count requests by status; the scheduler thread observes
 * time-to-first-token and inter-token latency; scheduler gauges (running,
 * waiting, KV blocks, prefix cache) are read as one snapshot at scrape time.
 * One mutex: updates are a few additions, far cheaper than a token.
 *
 * Names are vLLM's (vllm:*, with a model_name label), so dashboards and
 * autoscaling rules written for vLLM work unchanged. cinfer_* names remain
 * only for what vLLM has no series for: HTTP answers by status and the KV
 * block counts (tools and tests watch blocks return to the pool).
 * vllm:request_queue_time_seconds is not exported: the engine reports no
 * admission time yet.
 */
#include "engine/scheduler.h"
#include "server/server_internal.h"

#include <string.h>

/* seconds: fine steps where token latencies live, coarse ones up to the
 * minutes a long request can take */
static const double BUCKETS[CI_HIST_BUCKETS] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                                1.0,   2.5,   5.0,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};

void ci_metrics_init(ci_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void ci_metrics_destroy(ci_metrics *m) { pthread_mutex_destroy(&m->lock); }

void ci_metrics_count_request(ci_metrics *m, int status) {
    if (status < 100 || status > 599) return;
    pthread_mutex_lock(&m->lock);
    m->requests_by_status[status / 100][status % 100]++;
    pthread_mutex_unlock(&m->lock);
}

void ci_metrics_count_finish(ci_metrics *m, int finish_reason) {
    if (finish_reason < 0 || finish_reason >= 5) return;
    pthread_mutex_lock(&m->lock);
    m->finished[finish_reason]++;
    pthread_mutex_unlock(&m->lock);
}

void ci_metrics_observe(ci_metrics *m, ci_histogram *h, double seconds) {
    pthread_mutex_lock(&m->lock);
    int b = 0;
    while (b < CI_HIST_BUCKETS && seconds > BUCKETS[b]) b++;
    h->counts[b]++;
    h->sum += seconds;
    h->count++;
    pthread_mutex_unlock(&m->lock);
}

static void render_hist(ci_buf *out, const char *name, const char *help, const ci_histogram *h, const char *label) {
    ci_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < CI_HIST_BUCKETS; b++) {
        cum += h->counts[b];
        ci_buf_printf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, label, BUCKETS[b], (unsigned long long)cum);
    }
    cum += h->counts[CI_HIST_BUCKETS];
    ci_buf_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, label, (unsigned long long)cum);
    ci_buf_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, label, h->sum, name, label,
                  (unsigned long long)h->count);
}

static void series(ci_buf *out, const char *name, const char *type, const char *help, const char *label) {
    ci_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s{%s} ", name, help, name, type, name, label);
}

void ci_metrics_render(ci_metrics *m, const ci_sched_stats *st, const char *model_name, ci_buf *out) {
    /* label value escaped as the exposition format wants (\\, \", \n) */
    char label[300];
    size_t o = (size_t)snprintf(label, sizeof label, "model_name=\"");
    for (const char *p = model_name; *p && o + 4 < sizeof label; p++) {
        if (*p == '"' || *p == '\\') label[o++] = '\\', label[o++] = *p;
        else if (*p == '\n') label[o++] = '\\', label[o++] = 'n';
        else label[o++] = *p;
    }
    label[o++] = '"';
    label[o] = '\0';
    pthread_mutex_lock(&m->lock);
    ci_buf_puts(out, "# HELP cinfer_requests_total HTTP requests by response status.\n# TYPE cinfer_requests_total counter\n");
    for (int c = 1; c < 6; c++)
        for (int k = 0; k < 100; k++)
            if (m->requests_by_status[c][k])
                ci_buf_printf(out, "cinfer_requests_total{%s,status=\"%d\"} %llu\n", label, c * 100 + k,
                              (unsigned long long)m->requests_by_status[c][k]);
    uint64_t fin[5];
    memcpy(fin, m->finished, sizeof fin);
    ci_histogram ttft = m->ttft, itl = m->itl, e2e = m->e2e;
    pthread_mutex_unlock(&m->lock);

    /* vLLM's finished_reason values (stop, length, abort; error for an engine failure) */
    static const char *const REASON[5] = {NULL, "stop", "length", "abort", "error"};
    ci_buf_puts(out, "# HELP vllm:request_success_total Finished requests by finish reason.\n"
                     "# TYPE vllm:request_success_total counter\n");
    for (int k = 1; k < 5; k++)
        ci_buf_printf(out, "vllm:request_success_total{%s,finished_reason=\"%s\"} %llu\n", label, REASON[k],
                      (unsigned long long)fin[k]);
    series(out, "vllm:prompt_tokens_total", "counter", "Prompt tokens processed.", label);
    ci_buf_printf(out, "%llu\n", (unsigned long long)st->prompt_tokens);
    series(out, "vllm:generation_tokens_total", "counter", "Tokens generated.", label);
    ci_buf_printf(out, "%llu\n", (unsigned long long)st->generated_tokens);
    series(out, "vllm:num_requests_running", "gauge", "Sequences in the running batch.", label);
    ci_buf_printf(out, "%d\n", st->running);
    series(out, "vllm:num_requests_waiting", "gauge", "Sequences waiting for admission.", label);
    ci_buf_printf(out, "%d\n", st->waiting);
    series(out, "vllm:kv_cache_usage_perc", "gauge", "Fraction of KV cache blocks in use (0..1).", label);
    ci_buf_printf(out, "%.6f\n",
                  st->kv_blocks_total ? (double)(st->kv_blocks_total - st->kv_blocks_free) / st->kv_blocks_total : 0.0);
    series(out, "vllm:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", label);
    ci_buf_printf(out, "%llu\n", (unsigned long long)st->prefix_query_tokens);
    series(out, "vllm:prefix_cache_hits_total", "counter", "Prompt tokens served from the prefix cache.", label);
    ci_buf_printf(out, "%llu\n", (unsigned long long)st->prefix_hit_tokens);
    series(out, "vllm:num_preemptions_total", "counter", "Sequences preempted for KV space.", label);
    ci_buf_printf(out, "%llu\n", (unsigned long long)st->preemptions);
    series(out, "cinfer_kv_blocks_total", "gauge", "KV cache blocks.", label);
    ci_buf_printf(out, "%d\n", st->kv_blocks_total);
    series(out, "cinfer_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", label);
    ci_buf_printf(out, "%d\n", st->kv_blocks_total - st->kv_blocks_free);
    series(out, "cinfer_kv_blocks_free", "gauge", "KV cache blocks free or holding evictable cached prefixes.", label);
    ci_buf_printf(out, "%d\n", st->kv_blocks_free);
    render_hist(out, "vllm:time_to_first_token_seconds", "Request arrival to first generated token.", &ttft, label);
    render_hist(out, "vllm:inter_token_latency_seconds", "Time between consecutive generated tokens.", &itl, label);
    render_hist(out, "vllm:time_per_output_token_seconds",
                "Time between consecutive generated tokens (vLLM's older name of inter_token_latency).", &itl, label);
    render_hist(out, "vllm:e2e_request_latency_seconds", "Request arrival to its last token.", &e2e, label);
}
