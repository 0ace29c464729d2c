/*
 * metrics.c — the numbers behind GET /metrics, in Prometheus text format.
 *
 * HTTP threads count requests by status; the scheduler thread observes
 * time-to-first-token and inter-token latency; scheduler gauges (running,
 * waiting, KV blocks, prefix cache) are read as one snapshot at scrape time.
 * One mutex: updates are a few additions, far cheaper than a token.
 */
#include "engine/scheduler.h"
#include "server/server_internal.h"

#include <string.h>

static const double BUCKETS[CI_HIST_BUCKETS] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08,
                                                0.1,   0.25,  0.5,  1.0,  2.5,  5.0,  10.0};

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
    ci_histogram ttft = m->ttft, itl = m->itl, e2e = m->e2e;
    pthread_mutex_unlock(&m->lock);

    ci_buf_printf(out, "# HELP cinfer_prompt_tokens_total Prompt tokens admitted.\n# TYPE cinfer_prompt_tokens_total counter\n"
                       "cinfer_prompt_tokens_total{%s} %llu\n", label, (unsigned long long)st->prompt_tokens);
    ci_buf_printf(out, "# HELP cinfer_generation_tokens_total Tokens generated.\n# TYPE cinfer_generation_tokens_total counter\n"
                       "cinfer_generation_tokens_total{%s} %llu\n", label, (unsigned long long)st->generated_tokens);
    ci_buf_printf(out, "# HELP cinfer_num_requests_running Sequences in the running batch.\n# TYPE cinfer_num_requests_running gauge\n"
                       "cinfer_num_requests_running{%s} %d\n", label, st->running);
    ci_buf_printf(out, "# HELP cinfer_num_requests_waiting Sequences waiting for admission.\n# TYPE cinfer_num_requests_waiting gauge\n"
                       "cinfer_num_requests_waiting{%s} %d\n", label, st->waiting);
    ci_buf_printf(out, "# HELP cinfer_kv_blocks_total KV cache blocks.\n# TYPE cinfer_kv_blocks_total gauge\n"
                       "cinfer_kv_blocks_total{%s} %d\n", label, st->kv_blocks_total);
    ci_buf_printf(out, "# HELP cinfer_kv_blocks_used KV cache blocks held by sequences.\n# TYPE cinfer_kv_blocks_used gauge\n"
                       "cinfer_kv_blocks_used{%s} %d\n", label, st->kv_blocks_total - st->kv_blocks_free);
    ci_buf_printf(out, "# HELP cinfer_kv_blocks_free KV cache blocks free or holding evictable cached prefixes.\n# TYPE cinfer_kv_blocks_free gauge\n"
                       "cinfer_kv_blocks_free{%s} %d\n", label, st->kv_blocks_free);
    ci_buf_printf(out, "# HELP cinfer_kv_cache_usage_perc Fraction of KV blocks in use.\n# TYPE cinfer_kv_cache_usage_perc gauge\n"
                       "cinfer_kv_cache_usage_perc{%s} %.6f\n", label,
                  st->kv_blocks_total ? (double)(st->kv_blocks_total - st->kv_blocks_free) / st->kv_blocks_total : 0.0);
    ci_buf_printf(out, "# HELP cinfer_prefix_cache_queries_total Prompt tokens looked up in the prefix cache.\n# TYPE cinfer_prefix_cache_queries_total counter\n"
                       "cinfer_prefix_cache_queries_total{%s} %llu\n", label, (unsigned long long)st->prefix_query_tokens);
    ci_buf_printf(out, "# HELP cinfer_prefix_cache_hits_total Prompt tokens served from the prefix cache.\n# TYPE cinfer_prefix_cache_hits_total counter\n"
                       "cinfer_prefix_cache_hits_total{%s} %llu\n", label, (unsigned long long)st->prefix_hit_tokens);
    ci_buf_printf(out, "# HELP cinfer_prefix_cache_hit_rate Hits / queries since start.\n# TYPE cinfer_prefix_cache_hit_rate gauge\n"
                       "cinfer_prefix_cache_hit_rate{%s} %.6f\n", label,
                  st->prefix_query_tokens ? (double)st->prefix_hit_tokens / (double)st->prefix_query_tokens : 0.0);
    ci_buf_printf(out, "# HELP cinfer_num_preemptions_total Sequences preempted for KV space.\n# TYPE cinfer_num_preemptions_total counter\n"
                       "cinfer_num_preemptions_total{%s} %llu\n", label, (unsigned long long)st->preemptions);
    render_hist(out, "cinfer_time_to_first_token_seconds", "Request arrival to first generated token.", &ttft, label);
    render_hist(out, "cinfer_inter_token_latency_seconds", "Time between consecutive generated tokens.", &itl, label);
    render_hist(out, "cinfer_e2e_request_latency_seconds", "Request arrival to its last token.", &e2e, label);
}
