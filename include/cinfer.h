/*
 * cinfer.h — public C API of libcinfer.
 *
 * cinfer is a runtime for Qwen3-family language models: a client for
 * OpenAI-compatible endpoints, a local engine that loads real checkpoints,
 * and an OpenAI-compatible server. This header is the only one a program
 * embedding cinfer needs.
 *
 * Conventions:
 *  - Every object is opaque and created/freed by a prefixed pair of calls.
 *  - Fallible calls take a `cinfer_error *` (may be NULL) and report failure
 *    through their return value (NULL or a negative int); the error carries
 *    a human-readable message naming what was wrong and where.
 *  - Strings are UTF-8 with explicit lengths where binary-safe matters.
 *  - Memory returned to the caller is released with cinfer_free().
 */
#ifndef CINFER_H
#define CINFER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CINFER_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

typedef struct cinfer_error {
    int code;            /* 0 = no error; otherwise one of cinfer_status */
    char message[512];   /* NUL-terminated, human readable */
} cinfer_error;

typedef enum cinfer_status {
    CINFER_OK = 0,
    CINFER_ERR_IO = -1,        /* file missing / unreadable */
    CINFER_ERR_FORMAT = -2,    /* corrupt, truncated or unsupported input */
    CINFER_ERR_LIMIT = -3,     /* input exceeds a configured bound */
    CINFER_ERR_NOMEM = -4,
    CINFER_ERR_INVALID = -5,   /* bad argument from the caller */
    CINFER_ERR_TEMPLATE = -6,  /* template syntax or runtime error, raise_exception */
    CINFER_ERR_NETWORK = -7,
    CINFER_ERR_KV_TOO_SMALL = -8, /* the KV cache cannot hold one sequence of max_model_len
                                     (cinfer_model_load: raise kv_cache_gib or lower max_model_len) */
} cinfer_status;

/* Releases memory that a cinfer_* call returned to the caller. */
void cinfer_free(void *ptr);

/* ------------------------------------------------------------- tokenizer */

typedef struct cinfer_tokenizer cinfer_tokenizer;

/* Loads a Hugging Face tokenizer. `path` is a model folder (tokenizer.json +
 * optional tokenizer_config.json) or a tokenizer.json file.
 * Supported: byte-level BPE (Qwen2/Qwen3, Llama-3, GPT-2 style files):
 * normalizer NFC / Sequence of NFC / null, pre-tokenizer Split (any
 * behaviour) and ByteLevel, BPE with merges in either JSON form. Anything
 * else, and any corrupt, truncated or inconsistent file (duplicate ids,
 * merges naming unknown tokens, files over 512 MiB, ...) fails with an error
 * naming the problem. Encoding matches Hugging Face `tokenizers` exactly. */
cinfer_tokenizer *cinfer_tokenizer_load(const char *path, cinfer_error *err);
/* The same from a tokenizer.json held in memory (`json`, `len` bytes; no
 * terminating NUL needed), with the same checks; the path loader reads the
 * files and calls this. _with_config also takes tokenizer_config.json's
 * text (NULL: none), for the bos/eos strings. */
cinfer_tokenizer *cinfer_tokenizer_load_json(const char *json, size_t len, cinfer_error *err);
cinfer_tokenizer *cinfer_tokenizer_load_json_with_config(const char *json, size_t len, const char *config_json,
                                                         size_t config_len, cinfer_error *err);
void cinfer_tokenizer_free(cinfer_tokenizer *tok);

enum {
    /* Text of special added tokens (e.g. "<|im_end|>") inside the input is
     * NOT matched: it is encoded as ordinary text. Use on untrusted content. */
    CINFER_TOKENIZE_SPLIT_SPECIAL = 1 << 0,
};

/* Encodes `len` bytes of UTF-8 `text`. On success returns the number of ids
 * and stores a cinfer_free()-able array in *ids_out (NULL when 0 ids).
 * Invalid UTF-8 is replaced by U+FFFD before encoding (as HF does when it
 * receives a Python str built with errors="replace": one U+FFFD per maximal
 * invalid subsequence). Returns < 0 on error.
 * Semantics are HF's encode(text, add_special_tokens=False): no BOS/EOS or
 * other post-processor tokens are ever added (see
 * cinfer_tokenizer_post_processor_bos_id); special-token text in `text` IS
 * recognised unless CINFER_TOKENIZE_SPLIT_SPECIAL is given.
 * Thread-safe: one tokenizer may encode on many threads at once (each thread
 * keeps a small word cache). */
long cinfer_tokenize(const cinfer_tokenizer *tok, const char *text, size_t len,
                     unsigned flags, int32_t **ids_out, cinfer_error *err);

/* Decodes ids to UTF-8 (invalid byte sequences become U+FFFD, as HF's
 * decode with errors="replace"). Returns a NUL-terminated cinfer_free()-able
 * string, its byte length in *len_out when non-NULL. skip_special leaves out
 * added tokens marked special (for Qwen3 <think> and the tool tags are not
 * special and stay). Ids that name no token decode to nothing, as in HF. */
char *cinfer_detokenize(const cinfer_tokenizer *tok, const int32_t *ids, size_t n,
                        bool skip_special, size_t *len_out, cinfer_error *err);

/* Incremental detokenizer for streaming: feed ids one at a time; each call
 * returns the bytes that became complete UTF-8. The concatenation of all
 * pieces plus cinfer_detok_stream_flush() equals cinfer_detokenize(). */
typedef struct cinfer_detok_stream cinfer_detok_stream;
cinfer_detok_stream *cinfer_detok_stream_new(const cinfer_tokenizer *tok, bool skip_special);
/* Returns a pointer valid until the next call on the stream; *len_out gets its length. */
const char *cinfer_detok_stream_push(cinfer_detok_stream *s, int32_t id, size_t *len_out);
const char *cinfer_detok_stream_flush(cinfer_detok_stream *s, size_t *len_out);
void cinfer_detok_stream_free(cinfer_detok_stream *s);

/* Vocabulary queries. Ids are in [0, cinfer_tokenizer_vocab_size()). */
size_t cinfer_tokenizer_vocab_size(const cinfer_tokenizer *tok);
/* Id of a token given by its exact text (added tokens and vocab), or -1. */
int32_t cinfer_tokenizer_token_id(const cinfer_tokenizer *tok, const char *token_text);
/* The decoded bytes of one token (NOT NUL-terminated in general; length in *len_out). */
const char *cinfer_tokenizer_token_bytes(const cinfer_tokenizer *tok, int32_t id, size_t *len_out);
bool cinfer_tokenizer_is_special(const cinfer_tokenizer *tok, int32_t id);
/* Text of the bos / eos tokens from tokenizer_config.json; NULL when absent. */
const char *cinfer_tokenizer_bos_token(const cinfer_tokenizer *tok);
const char *cinfer_tokenizer_eos_token(const cinfer_tokenizer *tok);
/* The id a TemplateProcessing post-processor would put in front of a single
 * sequence (e.g. Llama-3's <|begin_of_text|>), or -1 (Qwen3: none).
 * cinfer_tokenize never adds it; a caller that wants HF's
 * add_special_tokens=True behaviour prepends it. */
int32_t cinfer_tokenizer_post_processor_bos_id(const cinfer_tokenizer *tok);
/* Ids of the reasoning markers "<think>" and "</think>" (Qwen3), looked up
 * once at load as cinfer_tokenizer_token_id would; each is -1 when the
 * tokenizer lacks it. Returns 0 when both exist, -1 otherwise. The one
 * definition of these ids: engine, server and tests read them here. */
int cinfer_tokenizer_thinking_ids(const cinfer_tokenizer *tok, int32_t *start, int32_t *end);

/* ---------------------------------------------------------- chat template */

typedef struct cinfer_template cinfer_template;

/* Parses a Jinja2 chat template. Syntax errors report line and column. */
cinfer_template *cinfer_template_parse(const char *source, size_t len, cinfer_error *err);
void cinfer_template_free(cinfer_template *tpl);

/* Finds a model's own chat template: `path` is a model folder
 * (chat_template.jinja, else tokenizer_config.json "chat_template", a string
 * or a list of {name, template} where "default" wins) or a
 * tokenizer_config.json file. Also returns the bos/eos token strings the
 * template context needs (NULL when absent). Free with cinfer_chat_template_source_free. */
typedef struct cinfer_chat_template_source {
    char *template_text;
    char *bos_token;
    char *eos_token;
} cinfer_chat_template_source;
int cinfer_chat_template_source_load(const char *path, cinfer_chat_template_source *out, cinfer_error *err);
/* The same from bytes already in memory (what the path form reads): the
 * contents of tokenizer_config.json and/or chat_template.jinja, NULL for a
 * file that is absent (at least one is needed). The .jinja text wins for
 * the template; the config gives bos/eos. `name` labels errors (NULL: the
 * file name). */
int cinfer_chat_template_source_from_memory(const char *config_json, size_t config_len, const char *jinja,
                                            size_t jinja_len, const char *name, cinfer_chat_template_source *out,
                                            cinfer_error *err);
void cinfer_chat_template_source_free(cinfer_chat_template_source *src);

/* Renders with a context given as a JSON object text (messages, tools,
 * add_generation_prompt, enable_thinking, bos_token, ... any extra keys).
 * Returns a NUL-terminated cinfer_free()-able string; byte length in *len_out. */
char *cinfer_template_render_json(const cinfer_template *tpl, const char *context_json,
                                  size_t context_len, size_t *len_out, cinfer_error *err);


/* ------------------------------------------------------------ local model */

/* A loaded checkpoint with its tokenizer, chat template, generation defaults
 * and a scheduler. `path` is a Hugging Face folder as downloaded
 * (config.json, safetensors, tokenizer files) or a GGUF file. */
typedef struct cinfer_model cinfer_model;

typedef struct cinfer_model_options {
    int n_threads;          /* 0: all online CPUs */
    int max_model_len;      /* positions per sequence; 0: min(model maximum, CINFER_DEFAULTS.model.max_model_len) */
    int max_num_seqs;       /* concurrent sequences; 0: CINFER_DEFAULTS.model.max_num_seqs */
    double kv_cache_gib;    /* KV pool size; 0: max_num_seqs full-length sequences */
    bool show_progress;     /* progress bar on stderr while loading, if it is a terminal */
} cinfer_model_options;

void cinfer_model_options_init(cinfer_model_options *o);
cinfer_model *cinfer_model_load(const char *path, const cinfer_model_options *o, cinfer_error *err);
void cinfer_model_free(cinfer_model *m);
const cinfer_tokenizer *cinfer_model_tokenizer(const cinfer_model *m);
/* Short description: architecture, sizes, weight type. */
const char *cinfer_model_describe(const cinfer_model *m);

typedef struct cinfer_message {
    const char *role;              /* "system", "user", "assistant", "tool" */
    const char *content;
    const char *reasoning_content; /* assistant thinking, may be NULL */
} cinfer_message;

/* Streaming: called with each new piece of thinking or content text (never a
 * broken UTF-8 sequence). Return false to stop generating (Ctrl-C). */
typedef bool (*cinfer_delta_fn)(void *user, const char *thinking, size_t thinking_len, const char *content,
                                size_t content_len);

/* Structured output: what the answer (after any thinking) must be
 * (docs/STRUCTURED_OUTPUT.md). */
typedef enum cinfer_constraint_kind {
    CINFER_CONSTRAINT_NONE = 0,
    CINFER_CONSTRAINT_JSON_SCHEMA, /* source: a JSON Schema document */
    CINFER_CONSTRAINT_JSON_OBJECT, /* any JSON object; source ignored */
    CINFER_CONSTRAINT_REGEX,       /* source: a JavaScript regex, full match */
    CINFER_CONSTRAINT_CHOICE,      /* source: a JSON array of strings */
    CINFER_CONSTRAINT_GBNF,        /* source: a llama.cpp GBNF grammar (start rule root) */
} cinfer_constraint_kind;

/* Generation options. cinfer_gen_options_init() sets "unset" markers; unset
 * sampling values come from the model's generation_config.json (greedy when
 * it has none). */
typedef struct cinfer_gen_options {
    float temperature;        /* < 0: default; 0: greedy */
    float top_p;              /* < 0: default */
    int top_k;                /* < 0: default; 0: off */
    float min_p;              /* < 0: default */
    float repetition_penalty; /* <= 0: default */
    float presence_penalty;
    float frequency_penalty;
    int max_new_tokens;       /* <= 0: until a stop token or the context is full */
    bool has_seed;
    uint64_t seed;
    int enable_thinking;      /* -1: template default, 0: off, 1: on */
    const char *const *stop;  /* stop strings, not included in the output */
    int n_stop;
    int top_logprobs;         /* 0..20: record the most likely tokens per step */
    bool raw;                 /* cinfer_generate only: the prompt is used without the chat template */
    /* Local models only (a remote model refuses them): */
    cinfer_constraint_kind constraint; /* with thinking, the constraint starts after </think> */
    const char *constraint_source;
    size_t constraint_len;             /* 0: strlen(constraint_source) */
    const int32_t *logit_bias_ids;     /* OpenAI logit_bias: bias[i] (-100..100) added to */
    const float *logit_bias;           /* the logit of logit_bias_ids[i] before sampling */
    int n_logit_bias;
    const int32_t *stop_token_ids;     /* more ids that end generation (the id is not text) */
    int n_stop_token_ids;
    int min_tokens;                    /* end ids and stop_token_ids banned before this many tokens */
    bool ignore_eos;                   /* the model's end ids do not stop generation */
    const int32_t *bad_words;          /* banned token sequences, concatenated, */
    const int32_t *bad_word_lens;      /* each bad_word_lens[i] >= 1 long */
    int n_bad_words;
    const int32_t *allowed_token_ids;  /* n > 0: only these are sampled */
    int n_allowed_token_ids;
    /* Remote models only (a local model ignores them): */
    const char *tools_json;   /* OpenAI "tools" array as JSON text, or NULL */
    const char *extra_json;   /* JSON object text merged into the request body as is
                                 (e.g. {"chat_template_kwargs":{...}}); an object value is
                                 merged into an object the request already has, a null
                                 value removes the field; NULL: none */
    cinfer_delta_fn on_delta;
    void *user;
} cinfer_gen_options;

void cinfer_gen_options_init(cinfer_gen_options *o);

typedef struct cinfer_top_logprob {
    int32_t id;
    float logprob;
} cinfer_top_logprob;

typedef struct cinfer_result {
    char *thinking;            /* NUL-terminated; "" when the model did not think */
    char *content;
    const char *finish_reason; /* "stop", "length", "cancelled" */
    int prompt_tokens;
    int completion_tokens;
    int32_t *tokens;           /* generated ids */
    int n_tokens;
    int n_top_logprobs;        /* per token: this many entries in top_logprobs */
    cinfer_top_logprob *top_logprobs; /* [n_tokens * n_top_logprobs] */
    double prefill_seconds;    /* submit → first token (prompt processing) */
    double decode_seconds;     /* first token → last token */
    char *tool_calls_json;     /* remote: the answer's tool calls, an OpenAI JSON array text; NULL when none */
} cinfer_result;

void cinfer_result_free(cinfer_result *r);

/* One chat turn, the C form of the tutorial's chat_with_local_model(): the
 * system prompt (if any and if history has none), the history, then the user
 * input go through the model's chat template; the answer is split into
 * thinking and content. */
int cinfer_chat(cinfer_model *m, const cinfer_message *history, size_t n_history, const char *system_prompt,
                const char *user_input, const cinfer_gen_options *o, cinfer_result *out, cinfer_error *err);

/* ----------------------------------------------------------- remote model */

/* An OpenAI-compatible endpoint behind the same cinfer_model handle, so a
 * program switches between a local checkpoint and a remote service by
 * changing how it opens the model; cinfer_chat works on both. */
typedef struct cinfer_remote_options {
    const char *base_url;   /* NULL: $OPENAI_BASE_URL, else CINFER_DEFAULTS.remote.base_url */
    const char *api_key;    /* NULL: $OPENAI_API_KEY (never printed or logged) */
    const char *model;      /* model name sent with each request */
    const char *ca_bundle;  /* extra CA certificates (PEM file), NULL: system store */
    /* 0 (max_retries < 0): the value in CINFER_DEFAULTS.remote */
    double connect_timeout; /* seconds */
    double timeout;         /* whole request, seconds */
    double idle_timeout;    /* between streamed events, seconds */
    int max_retries;        /* on 429, 5xx and connection errors */
    bool verbose;           /* request/response summary on stderr, key masked */
    /* Polled every 50 ms while a request runs (and while it waits to retry):
     * nonzero cancels it, and cinfer_chat returns what arrived so far with
     * finish_reason "cancelled". Set it from a SIGINT handler; clear it
     * before the next turn. NULL: none. (Streaming callers can also cancel
     * by returning false from on_delta.) */
    const volatile sig_atomic_t *cancel;
} cinfer_remote_options;

/* Environment, as the official OpenAI SDKs: base_url from $OPENAI_BASE_URL,
 * api_key from $OPENAI_API_KEY (else $CINFER_API_KEY); a field set in the
 * options wins. An empty key sends no Authorization header (local servers).
 * When `model` is NULL, the first model the endpoint lists is used.
 * Thinking: enable_thinking is sent both as chat_template_kwargs.enable_thinking
 * (vLLM, SGLang, llama.cpp) and as a top-level field (SiliconFlow, DashScope).
 * Reasoning that arrives as reasoning_content / reasoning, or inside <think>
 * tags at the start of the content, becomes cinfer_result.thinking. Not
 * available remotely: tokens, top_logprobs, raw prompts. */
void cinfer_remote_options_init(cinfer_remote_options *o);
cinfer_model *cinfer_model_open_remote(const cinfer_remote_options *o, cinfer_error *err);

/* GET {base_url}/models: the endpoint's "data" array as JSON text
 * (cinfer_free()-able), e.g. [{"id":"Qwen/Qwen3-8B","object":"model",...}]. */
char *cinfer_remote_list_models(const cinfer_remote_options *o, cinfer_error *err);

/* Generation from a prompt: with o->raw the text is tokenized as is,
 * otherwise it is the user message of a one-turn chat. */
int cinfer_generate(cinfer_model *m, const char *prompt, const cinfer_gen_options *o, cinfer_result *out,
                    cinfer_error *err);

/* ----------------------------------------------------------------- tools */

/* What the `cinfer` subcommands bench, quantize and make-test-model do, for
 * any program. Defaults: CINFER_DEFAULTS.bench / .test_model. */

/* Benchmark: llama-bench-style throughput of the forward pass alone (no
 * tokenizer, sampler or scheduler) on pseudo-random token ids fixed by seed,
 * like llama-bench's:
 *   pp: one forward of n_prompt tokens (positions 0..n_prompt-1, logits for
 *       the last only); tokens/s = n_prompt / time.
 *   tg: n_gen single-token decode steps from an empty cache (logits every
 *       step); with n_seqs > 1 the sequences decode together (one forward of
 *       n_seqs tokens per step, logits for all), tokens/s = n_seqs * n_gen /
 *       time, the aggregate (llama-batched-bench's S_TG).
 * Each test runs `repetitions` times after one untimed warm-up. */
typedef struct cinfer_bench_options {
    int n_prompt;    /* 0 skips pp */
    int n_gen;       /* 0 skips tg */
    int n_seqs;      /* 1..CINFER_BENCH_MAX_SEQS */
    int repetitions; /* >= 1 */
    int n_threads;   /* 0: $CINFER_THREADS, else all online CPUs */
} cinfer_bench_options;
#define CINFER_BENCH_MAX_SEQS 256

void cinfer_bench_options_init(cinfer_bench_options *o);

typedef struct cinfer_bench cinfer_bench;

/* Loads the checkpoint (HF folder or GGUF) and allocates for the tests. */
cinfer_bench *cinfer_bench_open(const char *path, const cinfer_bench_options *o, cinfer_error *err);
void cinfer_bench_free(cinfer_bench *b);

typedef struct cinfer_bench_info {
    const char *weight_type; /* of the layers' matrices, e.g. "q8_0" */
    const char *kernels;     /* the kernel variant chosen for this CPU */
    int n_threads, n_layers, hidden;
    double load_seconds;
} cinfer_bench_info;
void cinfer_bench_get_info(const cinfer_bench *b, cinfer_bench_info *out);

/* Tokens per second over the timed runs. */
typedef struct cinfer_bench_stat {
    double median, min, max;
} cinfer_bench_stat;
int cinfer_bench_run_pp(cinfer_bench *b, cinfer_bench_stat *out, cinfer_error *err);
int cinfer_bench_run_tg(cinfer_bench *b, cinfer_bench_stat *out, cinfer_error *err);

/* Quantization of a Qwen3 checkpoint (HF folder / .safetensors, or GGUF)
 * into a GGUF file with llama.cpp's llama-quantize choices per tensor
 * (src/model/quantize.h states the rules). `type`: "q8_0", "q4_0", "q4_k",
 * "q6_k", "q4_k_m" (case-insensitive). `out` is created or truncated, and
 * deleted again on failure. */
typedef struct cinfer_quantize_stats {
    size_t n_tensors;
    size_t n_copied;   /* vectors, and tensors copied as stored */
    size_t n_fallback; /* matrices whose row length forced another type */
    uint64_t in_bytes, out_bytes; /* tensor data */
    int n_types;       /* per_type entries: matrices written per weight type */
    struct {
        const char *type; /* "q4_k", ... */
        size_t count;
    } per_type[16];
} cinfer_quantize_stats;

/* progress(user, tensor name, the type it gets, bytes written, total bytes) */
typedef void (*cinfer_quantize_progress_fn)(void *user, const char *tensor, const char *type, uint64_t done,
                                            uint64_t total);

/* The canonical name of a scheme, or NULL when `type` names none. */
const char *cinfer_quantize_scheme_name(const char *type);
int cinfer_quantize(const char *in, const char *out, const char *type, cinfer_quantize_progress_fn progress,
                    void *user, cinfer_quantize_stats *stats, cinfer_error *err);

/* Test models: a deterministic random-weight Qwen3 with the exact tensor
 * layout of the real checkpoints and a real tokenizer; the weights depend
 * only on the seed (src/format/test_model.h has the generator). */
typedef struct cinfer_test_model_options {
    const char *shape;          /* "tiny", "small", "0.6b", "4b" (the real configs) */
    const char *dtype;          /* "f32", "bf16", "f16", "q8_0" (gguf only) */
    const char *format;         /* "hf": a folder (config, tokenizer files, safetensors); "gguf": one file */
    unsigned shards;            /* hf: safetensors files, 1..99 */
    bool untied;                /* independent lm_head, tie_word_embeddings false */
    bool no_lm_head;            /* hf, tied: do not store lm_head.weight (like the 4B files) */
    uint64_t seed;
    const char *tokenizer_dir;  /* folder with tokenizer.json + tokenizer_config.json */
    bool show_progress;         /* progress lines on stderr */
} cinfer_test_model_options;

void cinfer_test_model_options_init(cinfer_test_model_options *o);
/* Checks names and combinations: CINFER_ERR_INVALID naming the problem. */
int cinfer_test_model_check(const cinfer_test_model_options *o, cinfer_error *err);
/* Writes the model to `out` (a folder for hf, a file for gguf). */
int cinfer_make_test_model(const char *out, const cinfer_test_model_options *o, cinfer_error *err);
/* The tensors it would write, one per line "NAME\t[d0, d1]\tTYPE\n" in the
 * format's own names and dimension order; cinfer_free()-able. */
char *cinfer_test_model_tensor_list(const cinfer_test_model_options *o, cinfer_error *err);

/* -------------------------------------------------------------- defaults */

/* Every default of cinfer in one place: what an option left at 0 (or unset)
 * means in cinfer_model_options, cinfer_remote_options, the server's options
 * and the tools below, and what each `cinfer COMMAND --help` prints. The one
 * instance is CINFER_DEFAULTS (src/engine/defaults.c, which says why each
 * value was chosen); no other file spells these numbers. */
typedef struct cinfer_defaults {
    struct {
        int max_model_len;        /* cap of max_model_len 0: min(model maximum, this) */
        int max_num_seqs;         /* max_num_seqs 0 */
        int max_batch_tokens;     /* tokens in one forward pass: the prefill chunk */
        int kv_block_size;        /* positions per paged-KV block */
    } model;
    struct {                      /* `cinfer serve` */
        const char *host;
        int port;
        int max_num_seqs;
        double kv_cache_gib;
        int max_connections;         /* open HTTP connections in all */
        int max_connections_per_ip;  /* ... from one client address */
        int max_waiting;             /* queued requests beyond the running ones (then 503) */
        int max_pending;             /* connections still sending their request head (gate.c: no thread each) */
        int max_pending_per_ip;      /* ... from one client address */
        unsigned max_header_bytes;   /* request line + headers (431 beyond) */
        int header_timeout_s;        /* a connection must complete its request head within this time from accept */
        int idle_timeout_s;          /* idle time allowed once the headers are in (keep-alive, slow readers) */
        double shutdown_timeout_s;   /* SIGTERM: running requests get this long to finish */
        unsigned max_body_bytes;     /* request body cap (413 beyond it, before the body is read) */
    } server;
    struct {                      /* cinfer_remote_options */
        const char *base_url;     /* when neither the option nor $OPENAI_BASE_URL is set */
        double connect_timeout_s;
        double timeout_s;         /* whole request */
        double idle_timeout_s;    /* between streamed events */
        int max_retries;
        double backoff_initial_s, backoff_max_s; /* retry delay: doubles from initial up to max */
    } remote;
    struct {                      /* cinfer_bench_options */
        int n_prompt, n_gen, repetitions, n_seqs;
    } bench;
    struct {                      /* cinfer_test_model_options */
        const char *shape, *dtype, *format;
        unsigned shards;
    } test_model;
} cinfer_defaults;

extern const cinfer_defaults CINFER_DEFAULTS;


/* ---------------------------------------------------------------------------
 * Models by name (src/hub, docs/HUB.md): `cinfer pull`, the Hugging Face
 * cache ($HF_HOME/hub, shared with huggingface_hub) and ModelScope's cache
 * ($MODELSCOPE_CACHE). A model name is "ORG/NAME", "ORG/NAME:QUANT" (a GGUF
 * quant such as Q4_K_M), optionally prefixed "hf:" or "modelscope:".
 * Environment: HF_ENDPOINT, HF_TOKEN (or $HF_HOME/token), HF_HOME,
 * HF_HUB_CACHE, HF_HUB_OFFLINE, MODELSCOPE_CACHE, MODELSCOPE_DOMAIN.
 * ------------------------------------------------------------------------- */

typedef enum cinfer_hub_event {
    CINFER_HUB_PLAN,       /* the file list is known: files_total, total */
    CINFER_HUB_BYTES,      /* bytes arrived for `file` */
    CINFER_HUB_FILE_DONE,  /* `file` verified and placed (or already cached) */
    CINFER_HUB_RETRY,      /* `file` failed and is retried after `wait_s`; note says why */
} cinfer_hub_event;

typedef struct cinfer_hub_progress {
    cinfer_hub_event event;
    const char *file;              /* repo-relative name; NULL for PLAN */
    uint64_t file_done, file_total;
    uint64_t done, total;          /* bytes over all files (cached ones count as done) */
    int files_done, files_total;
    double wait_s;                 /* RETRY: the delay before the next try */
    const char *note;              /* RETRY: the failure (never holds a token) */
} cinfer_hub_progress;

/* Called from download threads, one call at a time. */
typedef void (*cinfer_hub_progress_fn)(const cinfer_hub_progress *p, void *user);

typedef struct cinfer_hub_options {
    const char *revision;          /* NULL: "main" (Hugging Face) / "master" (ModelScope) */
    const char *source;            /* NULL: from the name's prefix (default hf); "hf" or "modelscope" */
    const char *const *include;    /* globs over repo file names; replace the default selection */
    size_t n_include;
    const char *const *exclude;    /* globs removed from the selection */
    size_t n_exclude;
    int connections;               /* files fetched in parallel */
    int max_retries;               /* per file, after the first try */
    double stall_timeout_s;        /* a transfer slower than 1 byte/s for this long fails */
    double max_wait_s;             /* cap on one backoff / Retry-After delay */
    cinfer_hub_progress_fn progress;
    void *progress_user;
    const volatile sig_atomic_t *cancel; /* non-zero: stop; partial files stay for a resume */
} cinfer_hub_options;

void cinfer_hub_options_init(cinfer_hub_options *o);

/* Downloads NAME into the cache (files already there are not fetched again)
 * and returns in *path_out (cinfer_free) what cinfer_model_load takes: the
 * snapshot folder, or the GGUF file for a quant. Returns 0 or a negative
 * cinfer_status. */
int cinfer_hub_pull(const char *name, const cinfer_hub_options *o, char **path_out, cinfer_error *err);

/* What a command does with its MODEL argument: an existing path comes back
 * unchanged; a model name is looked up in the caches (never the network).
 * Returns NULL with an error naming the `cinfer pull` command when NAME is not
 * cached. Free with cinfer_free. */
char *cinfer_resolve_model(const char *name_or_path, cinfer_error *err);
/* true when `s` is not an existing path but parses as a model name. */
bool cinfer_hub_is_model_name(const char *s);

typedef struct cinfer_hub_entry {
    char name[256];                /* "ORG/NAME" or "modelscope:ORG/NAME" */
    char revision[160];            /* "main @ 1a2b3c4" (ref @ commit) or a ModelScope revision */
    char format[16];               /* "safetensors", "gguf" or "other" */
    uint64_t bytes;                /* the snapshot's files */
    char path[1024];               /* the snapshot folder */
} cinfer_hub_entry;

/* Every cached model snapshot of both caches; free *out with cinfer_free. */
int cinfer_hub_list(cinfer_hub_entry **out, size_t *n, cinfer_error *err);

/* Removes NAME's snapshot for `revision` (NULL: every snapshot of NAME) and
 * the blobs no remaining snapshot links to. *freed gets the bytes released. */
int cinfer_hub_remove(const char *name, const char *revision, uint64_t *freed, cinfer_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CINFER_H */
