/*
 * sampler.c — see sampler.h for the semantics. The vocabulary is large
 * (151,936 for Qwen3), so nothing sorts it whole unless it must: top_k uses a
 * bounded heap, top_p first tries the few hundred most likely tokens.
 */
#include "engine/sampler.h"
#include "util/util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

ci_sampling_params ci_sampling_defaults(void) {
    return (ci_sampling_params){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                                .repetition_penalty = 1.0f};
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ci_rng_seed(ci_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(ci_rng *r) {
    uint64_t result = rotl(r->s[1] * 5, 7) * 9;
    uint64_t t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

double ci_rng_uniform(ci_rng *rng) { return (double)(xoshiro_next(rng) >> 11) * 0x1.0p-53; }

void ci_sampler_scratch_init(ci_sampler_scratch *sc, int vocab) {
    sc->vocab = vocab;
    sc->logits = ci_malloc((size_t)vocab * sizeof(float));
    sc->ids = ci_malloc((size_t)vocab * sizeof(int32_t));
    sc->probs = ci_malloc((size_t)vocab * sizeof(float));
    sc->stamp = ci_calloc((size_t)vocab, sizeof(uint32_t));
    sc->count = ci_calloc((size_t)vocab, sizeof(int32_t));
    sc->round = 0;
}

void ci_sampler_scratch_free(ci_sampler_scratch *sc) {
    free(sc->logits);
    free(sc->ids);
    free(sc->probs);
    free(sc->stamp);
    free(sc->count);
    *sc = (ci_sampler_scratch){0};
}

static void next_round(ci_sampler_scratch *sc) {
    if (++sc->round == 0) { /* wrapped: clear stamps so old marks cannot alias */
        memset(sc->stamp, 0, (size_t)sc->vocab * sizeof(uint32_t));
        sc->round = 1;
    }
}

static void apply_penalties(ci_sampler_scratch *sc, const ci_sampling_params *p, float *logits, const int32_t *prompt,
                            int n_prompt, const int32_t *output, int n_output) {
    int V = sc->vocab;
    if (p->repetition_penalty != 1.0f && p->repetition_penalty > 0.0f) {
        next_round(sc);
        const int32_t *lists[2] = {prompt, output};
        int lens[2] = {n_prompt, n_output};
        for (int l = 0; l < 2; l++)
            for (int i = 0; i < lens[l]; i++) {
                int32_t t = lists[l][i];
                if (t < 0 || t >= V || sc->stamp[t] == sc->round) continue;
                sc->stamp[t] = sc->round;
                logits[t] = logits[t] < 0 ? logits[t] * p->repetition_penalty : logits[t] / p->repetition_penalty;
            }
    }
    if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f) {
        next_round(sc);
        for (int i = 0; i < n_output; i++) {
            int32_t t = output[i];
            if (t < 0 || t >= V) continue;
            if (sc->stamp[t] != sc->round) sc->stamp[t] = sc->round, sc->count[t] = 0;
            sc->count[t]++;
        }
        for (int i = 0; i < n_output; i++) {
            int32_t t = output[i];
            if (t < 0 || t >= V || sc->count[t] == 0) continue;
            logits[t] -= p->presence_penalty + p->frequency_penalty * (float)sc->count[t];
            sc->count[t] = 0; /* apply once per distinct token */
        }
    }
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Min-heap on logit keyed by ids; keeps the k largest. Ties prefer lower id. */
static bool heap_less(const float *logits, int32_t a, int32_t b) {
    return logits[a] < logits[b] || (logits[a] == logits[b] && a > b);
}

static void heap_sift_down(int32_t *h, int n, int i, const float *logits) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_less(logits, h[l], h[m])) m = l;
        if (r < n && heap_less(logits, h[r], h[m])) m = r;
        if (m == i) return;
        int32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Writes the k largest ids into out[0..k) sorted by descending logit. */
static int top_k_ids(const float *logits, int V, int k, int32_t *out) {
    if (k > V) k = V;
    for (int i = 0; i < k; i++) out[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--) heap_sift_down(out, k, i, logits);
    for (int i = k; i < V; i++)
        if (heap_less(logits, out[0], i)) {
            out[0] = i;
            heap_sift_down(out, k, 0, logits);
        }
    /* Heap-sort ascending by "less" → pop min to the end gives descending order. */
    for (int n = k; n > 1; n--) {
        int32_t t = out[0];
        out[0] = out[n - 1];
        out[n - 1] = t;
        heap_sift_down(out, n - 1, 0, logits);
    }
    return k;
}

static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *logits = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float fx = logits[x], fy = logits[y];
    if (fx != fy) return fx > fy ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Steps 1 and 2 (see sampler.h); returns the number of allowed tokens. */
static int apply_controls(const ci_logit_controls *ctl, float *logits, int V) {
    if (!ctl) return V;
    for (int i = 0; i < ctl->n_bias; i++)
        if (ctl->bias[i].id >= 0 && ctl->bias[i].id < V) logits[ctl->bias[i].id] += ctl->bias[i].bias;
    if (!ctl->mask) return V;
    int allowed = 0;
    for (int w = 0; w < (V + 31) / 32; w++) {
        uint32_t bits = ctl->mask[w];
        if (bits == 0xffffffffu && (w + 1) * 32 <= V) {
            allowed += 32;
            continue;
        }
        for (int b = 0; b < 32 && w * 32 + b < V; b++) {
            if (bits >> b & 1) allowed++;
            else logits[w * 32 + b] = -INFINITY;
        }
    }
    return allowed;
}

/* Candidates in descending order of logit for top_k / top_p, else every
 * token that is not masked (order does not matter: min_p is a threshold).
 * Returns their count. */
static int candidates(ci_sampler_scratch *sc, const ci_sampling_params *p, float *logits) {
    int V = sc->vocab, n;
    int32_t *ids = sc->ids;
    if (p->top_k > 0 && p->top_k < V) {
        n = top_k_ids(logits, V, p->top_k, ids);
        while (n > 1 && logits[ids[n - 1]] == -INFINITY) n--; /* fewer allowed than k */
        /* transformers keeps every token equal to the k-th value. */
        float kth = logits[ids[n - 1]];
        int n_top = n;
        for (int i = 0; i < V && kth != -INFINITY; i++)
            if (logits[i] == kth) {
                bool present = false;
                for (int j = n_top - 1; j >= 0 && logits[ids[j]] == kth; j--)
                    if (ids[j] == i) present = true;
                if (!present) ids[n++] = i;
            }
    } else if (p->top_p < 1.0f) {
        /* Try the 256 most likely first; sort everything only if their
         * mass does not reach top_p. */
        float maxl = logits[argmax(logits, V)];
        double z = 0;
        for (int i = 0; i < V; i++) z += exp((double)(logits[i] - maxl));
        int k = V < 256 ? V : 256;
        n = top_k_ids(logits, V, k, ids);
        double mass = 0;
        for (int i = 0; i < n; i++) mass += exp((double)(logits[ids[i]] - maxl)) / z;
        if (mass < p->top_p && n < V) {
            for (int i = 0; i < V; i++) ids[i] = i;
            qsort_r(ids, (size_t)V, sizeof *ids, cmp_desc, logits);
            n = V;
        }
    } else {
        n = 0;
        for (int i = 0; i < V; i++)
            if (logits[i] != -INFINITY) ids[n++] = i;
    }
    return n;
}

/* The row transformation (sampler.h's order) into sc->ids / sc->probs: the
 * candidates, with probabilities summing to *total (not renormalised after
 * top_p / min_p: the draw scales by the total). 0: nothing allowed; -1:
 * greedy, sc->ids[0] is the token. */
static int distribution(ci_sampler_scratch *sc, const ci_sampling_params *p, const ci_logit_controls *ctl,
                        const float *logits_in, const int32_t *prompt, int n_prompt, const int32_t *output,
                        int n_output, double *total_out) {
    int V = sc->vocab;
    float *logits = sc->logits;
    int32_t *ids = sc->ids;
    float *probs = sc->probs;
    memcpy(logits, logits_in, (size_t)V * sizeof(float));
    if (apply_controls(ctl, logits, V) == 0) return 0;
    apply_penalties(sc, p, logits, prompt, n_prompt, output, n_output);
    if (p->temperature <= 0.0f || p->top_k == 1) {
        ids[0] = argmax(logits, V);
        probs[0] = 1.0f;
        *total_out = 1;
        return -1;
    }
    float inv_t = 1.0f / p->temperature;
    for (int i = 0; i < V; i++) logits[i] *= inv_t;
    int n = candidates(sc, p, logits);

    /* Softmax over the candidates (tokens outside are at -inf). */
    float maxl = -FLT_MAX;
    for (int i = 0; i < n; i++) maxl = fmaxf(maxl, logits[ids[i]]);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (probs[i] = expf(logits[ids[i]] - maxl));
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);

    if (p->top_p < 1.0f) { /* candidates are in descending order here */
        double before = 0;
        int keep = 0;
        while (keep < n && (keep == 0 || before < p->top_p)) before += probs[keep++];
        n = keep;
    }
    if (p->min_p > 0.0f) {
        float top = 0;
        for (int i = 0; i < n; i++) top = fmaxf(top, probs[i]);
        float threshold = p->min_p * top;
        int w = 0;
        for (int i = 0; i < n; i++)
            if (probs[i] >= threshold) ids[w] = ids[i], probs[w++] = probs[i];
        n = w;
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += probs[i];
    *total_out = total;
    return n;
}

int ci_sample_dist(ci_sampler_scratch *sc, const ci_sampling_params *p, const ci_logit_controls *ctl,
                   const float *logits, const int32_t *prompt, int n_prompt, const int32_t *output, int n_output,
                   const int32_t **ids, const float **probs) {
    double total;
    int n = distribution(sc, p, ctl, logits, prompt, n_prompt, output, n_output, &total);
    *ids = sc->ids;
    *probs = sc->probs;
    if (n < 0) return 1;
    for (int i = 0; i < n; i++) sc->probs[i] = (float)(sc->probs[i] / total);
    return n;
}

int32_t ci_sample(ci_sampler_scratch *sc, const ci_sampling_params *p, const ci_logit_controls *ctl, ci_rng *rng,
                  const float *logits, const int32_t *prompt, int n_prompt, const int32_t *output, int n_output) {
    double total;
    int n = distribution(sc, p, ctl, logits, prompt, n_prompt, output, n_output, &total);
    if (n < 0) return sc->ids[0];
    if (n == 0) return -1;
    const int32_t *ids = sc->ids;
    const float *probs = sc->probs;
    double r = ci_rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += probs[i];
        if (r < acc) return ids[i];
    }
    while (n > 1 && probs[n - 1] == 0) n--; /* rounding: never a masked token */
    return ids[n - 1];
}

float ci_logprob_of(const float *logits, int vocab, int32_t id) {
    float maxl = logits[argmax(logits, vocab)];
    double z = 0;
    for (int i = 0; i < vocab; i++) z += exp((double)(logits[i] - maxl));
    return (float)((double)(logits[id] - maxl) - log(z));
}

int ci_top_logprobs(const float *logits, int vocab, int k, int32_t *ids, float *logprobs) {
    if (k <= 0) return 0;
    if (k > vocab) k = vocab;
    float maxl = logits[argmax(logits, vocab)];
    double z = 0;
    for (int i = 0; i < vocab; i++) z += exp((double)(logits[i] - maxl));
    double logz = log(z);
    top_k_ids(logits, vocab, k, ids);
    for (int i = 0; i < k; i++) logprobs[i] = (float)((double)(logits[ids[i]] - maxl) - logz);
    return k;
}
