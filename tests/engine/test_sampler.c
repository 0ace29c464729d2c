/*
 * test_sampler.c — the sampler against the definitions it implements,
 * computed independently here in double precision: greedy = argmax,
 * top_k = 1 = greedy, seeded reproducibility, empirical frequencies match
 * the filtered softmax (chi-square), top_p / min_p / top_k keep exactly the
 * expected sets, penalties change exactly the expected logits.
 */
#include "test.h"
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>

#define V 50

static void fill_logits(float *l, unsigned seed) {
    srand(seed);
    for (int i = 0; i < V; i++) l[i] = (float)(rand() % 1000) / 250.0f - 2.0f;
}

/* Expected distribution after temperature, top_k, top_p, min_p (transformers order). */
static void expected_probs(const float *logits, const ci_sampling_params *p, double *probs) {
    double l[V];
    for (int i = 0; i < V; i++) l[i] = logits[i] / p->temperature;
    bool keep[V];
    for (int i = 0; i < V; i++) keep[i] = true;
    if (p->top_k > 0) {
        for (int i = 0; i < V; i++) {
            int greater = 0;
            for (int j = 0; j < V; j++) greater += l[j] > l[i];
            if (greater >= p->top_k) keep[i] = false;
        }
    }
    double mx = -1e300, z = 0;
    for (int i = 0; i < V; i++) if (keep[i] && l[i] > mx) mx = l[i];
    for (int i = 0; i < V; i++) z += keep[i] ? exp(l[i] - mx) : 0;
    double pr[V];
    for (int i = 0; i < V; i++) pr[i] = keep[i] ? exp(l[i] - mx) / z : 0;
    if (p->top_p < 1.0f) {
        /* keep i iff the mass of strictly more likely tokens is < top_p */
        for (int i = 0; i < V; i++) {
            if (!keep[i]) continue;
            double before = 0;
            for (int j = 0; j < V; j++) if (keep[j] && (pr[j] > pr[i] || (pr[j] == pr[i] && j < i))) before += pr[j];
            if (before >= p->top_p) keep[i] = false;
        }
    }
    if (p->min_p > 0) {
        double top = 0;
        for (int i = 0; i < V; i++) if (keep[i] && pr[i] > top) top = pr[i];
        for (int i = 0; i < V; i++) if (keep[i] && pr[i] < p->min_p * top) keep[i] = false;
    }
    double s = 0;
    for (int i = 0; i < V; i++) s += keep[i] ? pr[i] : 0;
    for (int i = 0; i < V; i++) probs[i] = keep[i] ? pr[i] / s : 0;
}

static void check_distribution(const char *name, ci_sampling_params p, unsigned seed) {
    ci_sampler_scratch sc;
    ci_sampler_scratch_init(&sc, V);
    float logits[V];
    fill_logits(logits, seed);
    double want[V];
    expected_probs(logits, &p, want);
    ci_rng rng;
    ci_rng_seed(&rng, seed);
    enum { N = 200000 };
    int counts[V] = {0};
    for (int i = 0; i < N; i++) counts[ci_sample(&sc, &p, NULL, &rng, logits, NULL, 0, NULL, 0)]++;
    double chi2 = 0;
    int dof = -1, outside = 0;
    for (int i = 0; i < V; i++) {
        if (want[i] == 0) { outside += counts[i]; continue; }
        double e = want[i] * N;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        dof++;
    }
    CHECK_MSG(outside == 0, "%s: %d samples outside the allowed set", name, outside);
    /* 99.99% quantile of chi2 is below dof + 6*sqrt(2*dof) + 10 for these sizes. */
    double limit = dof + 6.0 * sqrt(2.0 * (dof > 0 ? dof : 1)) + 10.0;
    CHECK_MSG(chi2 < limit, "%s: chi2 %.1f over %d dof (limit %.1f)", name, chi2, dof, limit);
    ci_sampler_scratch_free(&sc);
}

static void test_greedy_and_seed(void) {
    ci_sampler_scratch sc;
    ci_sampler_scratch_init(&sc, V);
    float logits[V];
    fill_logits(logits, 7);
    int best = 0;
    for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    ci_sampling_params p = ci_sampling_defaults();
    ci_rng rng;
    ci_rng_seed(&rng, 1);
    CHECK(ci_sample(&sc, &p, NULL, &rng, logits, NULL, 0, NULL, 0) == best);
    p.temperature = 0.8f;
    p.top_k = 1;
    CHECK(ci_sample(&sc, &p, NULL, &rng, logits, NULL, 0, NULL, 0) == best);
    /* ties: lowest id */
    float flat[V];
    for (int i = 0; i < V; i++) flat[i] = 1.0f;
    p = ci_sampling_defaults();
    CHECK(ci_sample(&sc, &p, NULL, &rng, flat, NULL, 0, NULL, 0) == 0);

    p.temperature = 1.0f;
    p.top_k = 0;
    ci_rng a, b;
    ci_rng_seed(&a, 42);
    ci_rng_seed(&b, 42);
    bool same = true, differs_from_other_seed = false;
    ci_rng c;
    ci_rng_seed(&c, 43);
    for (int i = 0; i < 200; i++) {
        int x = ci_sample(&sc, &p, NULL, &a, logits, NULL, 0, NULL, 0);
        int y = ci_sample(&sc, &p, NULL, &b, logits, NULL, 0, NULL, 0);
        int z = ci_sample(&sc, &p, NULL, &c, logits, NULL, 0, NULL, 0);
        same &= x == y;
        differs_from_other_seed |= x != z;
    }
    CHECK(same);
    CHECK(differs_from_other_seed);
    ci_sampler_scratch_free(&sc);
}

static void test_penalties(void) {
    ci_sampler_scratch sc;
    ci_sampler_scratch_init(&sc, V);
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = 0.0f;
    logits[3] = 2.0f;   /* positive: divided by the penalty */
    logits[4] = 1.9f;
    logits[5] = -1.0f;  /* negative: multiplied */
    ci_rng rng;
    ci_rng_seed(&rng, 3);
    ci_sampling_params p = ci_sampling_defaults();
    p.repetition_penalty = 1.2f;
    int32_t prompt[] = {3, 3, 5};
    /* 2.0/1.2 = 1.667 < 1.9, so token 4 wins */
    CHECK(ci_sample(&sc, &p, NULL, &rng, logits, prompt, 3, NULL, 0) == 4);
    /* presence penalty counts output tokens only: token 3 in the prompt is not penalised */
    p = ci_sampling_defaults();
    p.presence_penalty = 0.5f;
    CHECK(ci_sample(&sc, &p, NULL, &rng, logits, prompt, 3, NULL, 0) == 3);
    int32_t out[] = {3};
    CHECK(ci_sample(&sc, &p, NULL, &rng, logits, prompt, 3, out, 1) == 4);
    /* frequency: 3 occurrences × 0.05 = 0.15 > 0.1 gap */
    p = ci_sampling_defaults();
    p.frequency_penalty = 0.05f;
    int32_t out3[] = {3, 3, 3};
    CHECK(ci_sample(&sc, &p, NULL, &rng, logits, prompt, 3, out3, 1) == 3);
    CHECK(ci_sample(&sc, &p, NULL, &rng, logits, prompt, 3, out3, 3) == 4);
    ci_sampler_scratch_free(&sc);
}

static void test_logprobs(void) {
    float logits[V];
    fill_logits(logits, 11);
    double mx = -1e300, z = 0;
    for (int i = 0; i < V; i++) if (logits[i] > mx) mx = logits[i];
    for (int i = 0; i < V; i++) z += exp(logits[i] - mx);
    for (int i = 0; i < V; i += 7) {
        double want = logits[i] - mx - log(z);
        CHECK(fabs(ci_logprob_of(logits, V, i) - want) < 1e-5);
    }
    int32_t ids[5];
    float lp[5];
    CHECK(ci_top_logprobs(logits, V, 5, ids, lp) == 5);
    for (int k = 0; k < 5; k++) {
        int greater = 0;
        for (int j = 0; j < V; j++) greater += logits[j] > logits[ids[k]];
        CHECK(greater <= k);
        if (k) CHECK(lp[k] <= lp[k - 1]);
    }
}

int main(void) {
    test_greedy_and_seed();
    test_penalties();
    test_logprobs();
    ci_sampling_params p = ci_sampling_defaults();
    p.temperature = 1.0f;
    check_distribution("temperature 1", p, 1);
    p.temperature = 0.6f;
    check_distribution("temperature 0.6", p, 2);
    p.top_k = 5;
    check_distribution("top_k 5", p, 3);
    p.top_k = 0;
    p.top_p = 0.7f;
    check_distribution("top_p 0.7", p, 4);
    p.top_k = 20;
    p.top_p = 0.95f;
    check_distribution("qwen3 defaults (T .6, k 20, p .95)", p, 5);
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.2f;
    check_distribution("min_p 0.2", p, 6);
    TEST_MAIN_END();
}
