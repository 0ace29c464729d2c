/*
 * sampler.h — turns one row of logits into the next token.
 *
 * The row is transformed in one place (ci_sample_dist), in this order:
 *  1. logit_bias (OpenAI semantics): bias[id] added to the raw logit;
 *  2. the allowed mask (a constraint's mask, allowed_token_ids, banned
 *     stop ids before min_tokens, bad words): disallowed → -inf, so every
 *     later step renormalises over the allowed set;
 * then, following the libraries users compare against:
 *  - repetition_penalty as transformers (every distinct token of prompt and
 *    output: positive logits divided, negative multiplied);
 *  - presence_penalty / frequency_penalty as OpenAI and vLLM (output tokens
 *    only: logit -= presence·[count>0] + frequency·count);
 *  - then temperature, top_k (ties with the k-th value kept), top_p (keep the
 *    most likely tokens while the mass before them is < top_p), min_p
 *    (drop tokens below min_p × the top probability), in transformers' order;
 *  - temperature 0 or top_k 1 is greedy (argmax, lowest id on ties).
 * A seeded sampler draws from its own xoshiro256** stream, so a seeded
 * request gives the same tokens however it is batched.
 */
#ifndef CINFER_SAMPLER_H
#define CINFER_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ci_sampling_params {
    float temperature;        /* 0 = greedy */
    int top_k;                /* <= 0: off */
    float top_p;              /* >= 1: off */
    float min_p;              /* <= 0: off */
    float repetition_penalty; /* 1: off */
    float presence_penalty;   /* 0: off */
    float frequency_penalty;  /* 0: off */
    bool has_seed;
    uint64_t seed;
} ci_sampling_params;

/* Neutral parameters: greedy, no penalties. */
ci_sampling_params ci_sampling_defaults(void);

typedef struct ci_rng {
    uint64_t s[4];
} ci_rng;

void ci_rng_seed(ci_rng *rng, uint64_t seed);
/* Uniform in [0, 1). */
double ci_rng_uniform(ci_rng *rng);

/* Scratch shared by all samplers of one scheduler thread (vocab-sized). */
typedef struct ci_sampler_scratch {
    int vocab;
    float *logits;
    int32_t *ids;
    float *probs;
    uint32_t *stamp;      /* per token: last round it was seen */
    int32_t *count;       /* per token: occurrences in the output this round */
    uint32_t round;
} ci_sampler_scratch;

void ci_sampler_scratch_init(ci_sampler_scratch *sc, int vocab);
void ci_sampler_scratch_free(ci_sampler_scratch *sc);

typedef struct ci_logit_bias {
    int32_t id;
    float bias;
} ci_logit_bias;

/* Per-step restrictions of one sequence (steps 1 and 2 above); every field
 * is optional. */
typedef struct ci_logit_controls {
    const ci_logit_bias *bias;
    int n_bias;
    const uint32_t *mask;     /* bit (id & 31) of word id >> 5: allowed; NULL: all */
} ci_logit_controls;

/* The distribution ci_sample draws from: writes the candidate ids and their
 * probabilities (summing to 1 up to rounding) into the scratch and returns
 * their count; 0 when the mask allows nothing; greedy gives one candidate
 * with probability 1. Valid until the scratch is used again. */
int ci_sample_dist(ci_sampler_scratch *sc, const ci_sampling_params *p, const ci_logit_controls *ctl,
                   const float *logits, const int32_t *prompt, int n_prompt, const int32_t *output, int n_output,
                   const int32_t **ids, const float **probs);

/* Picks the next token (one draw from ci_sample_dist); -1 when the mask
 * allows nothing. `logits` is not modified. prompt/output are the
 * sequence's tokens so far (penalties read them). `ctl` may be NULL. */
int32_t ci_sample(ci_sampler_scratch *sc, const ci_sampling_params *p, const ci_logit_controls *ctl, ci_rng *rng,
                  const float *logits, const int32_t *prompt, int n_prompt, const int32_t *output, int n_output);

/* log-softmax of raw logits at `id`, and the k most likely (id, logprob)
 * pairs, most likely first; returns how many were written (<= k). */
float ci_logprob_of(const float *logits, int vocab, int32_t id);
int ci_top_logprobs(const float *logits, int vocab, int k, int32_t *ids, float *logprobs);

#endif
