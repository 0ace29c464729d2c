/*
 * defaults.c — CINFER_DEFAULTS, the one instance of cinfer_defaults
 * (cinfer.h): the engine, the server, the remote client, the tools and every
 * `--help` text read their defaults here, so a value is changed in one place
 * and the documentation printed by the program follows it.
 */
#include "cinfer.h"

const cinfer_defaults CINFER_DEFAULTS = {
    .model = {
        /* Qwen3's native context; longer (YaRN) contexts are opt-in, as in vLLM. */
        .max_model_len = 32768,
        /* cinfer_chat / cinfer_generate serve one conversation. */
        .max_num_seqs = 1,
        /* One forward pass holds at most this many tokens: long prompts are
         * prefilled in chunks of this size, which bounds the scratch state. */
        .max_batch_tokens = 512,
        /* 16 positions per block, as vLLM: little waste per sequence, and
         * prefix sharing at a fine grain. */
        .kv_block_size = 16,
    },
    .server = {
        /* Loopback: exposing the API is an explicit choice (--host 0.0.0.0). */
        .host = "127.0.0.1",
        .port = 8000, /* vLLM's */
        .max_num_seqs = 32,
        .kv_cache_gib = 4.0,
        /* One thread per connection: the cap bounds threads and memory. */
        .max_connections = 1024,
        /* One address cannot take every connection (slowloris); high enough for
         * a load test or a proxy that sends hundreds of streams from one address. */
        .max_connections_per_ip = 512,
        /* Beyond this many queued requests a new one gets 503 + Retry-After. */
        .max_waiting = 1024,
        /* Connections that have not sent their request head yet wait in the
         * admission gate (src/server/gate.c) at the cost of a descriptor, not
         * a thread: 2,000 slow-header clients fit beside everyone else, and a
         * quarter of the slots for one address leaves the rest to others. */
        .max_pending = 4096,
        .max_pending_per_ip = 1024,
        /* 16 KiB, Node's limit: an OpenAI SDK's head is under 1 KiB. */
        .max_header_bytes = 16u << 10,
        /* Slow-header clients are dropped quickly (a total deadline from
         * accept); once a request is in, long non-streamed generations stay
         * silent until they finish. */
        .header_timeout_s = 10,
        .idle_timeout_s = 600,
        .shutdown_timeout_s = 30.0,
        /* 8 MiB: far above any chat request a context window can hold. */
        .max_body_bytes = 8u << 20,
    },
    .remote = {
        .base_url = "https://api.openai.com/v1", /* the official SDKs' default */
        .connect_timeout_s = 10.0,
        .timeout_s = 600.0, /* the official SDKs' default */
        .idle_timeout_s = 60.0,
        .max_retries = 2,   /* the official SDKs' default */
        .backoff_initial_s = 0.5,
        .backoff_max_s = 8.0,
    },
    /* llama-bench's defaults, so the numbers compare. */
    .bench = {.n_prompt = 512, .n_gen = 128, .repetitions = 5, .n_seqs = 1},
    .test_model = {.shape = "tiny", .dtype = "bf16", .format = "hf", .shards = 1},
};
