/*
 * tok_gguf.c — tokenizer.ggml.* → ci_tok_builder (see tokenizer_internal.h
 * for the mapping). llama.cpp's converter writes, for byte-level BPE models:
 *   tokenizer.ggml.model  "gpt2"
 *   tokenizer.ggml.pre    a pre-tokenizer name ("qwen2", "llama-bpe", ...)
 *   tokenizer.ggml.tokens the vocabulary in the byte-level alphabet, padded
 *                         to the model's vocab_size with "[PADn]" entries
 *   tokenizer.ggml.token_type 1 normal, 3 control (special added tokens),
 *                         4 user-defined (other added tokens), 5 unused (pads)
 *   tokenizer.ggml.merges "a b" strings in rank order
 *   tokenizer.ggml.{bos,eos,padding}_token_id
 * The GGUF has no regex, so the name maps to the pattern the original
 * tokenizer.json carries. Unused pad entries are left out: Hugging Face's
 * tokenizer has no such ids, and decoding them yields nothing there too.
 */
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tokenizer_internal.h"

#include <string.h>

enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5 };

static char *token_text_by_id(const ci_gguf_file *f, const ci_gguf_value *tokens, const char *key) {
    uint32_t id;
    if (!ci_gguf_get_u32(f, key, &id) || id >= tokens->v.arr.count) return NULL;
    const ci_gguf_str *s = &tokens->v.arr.strings[id];
    return ci_strndup(s->ptr, s->len);
}

cinfer_tokenizer *ci_tok_load_gguf(const ci_gguf_file *f, const char *name, cinfer_error *err) {
    char *model = ci_gguf_dup_str(f, "tokenizer.ggml.model");
    if (!model || strcmp(model, "gpt2") != 0) {
        ci_error(err, CINFER_ERR_FORMAT, "%s: tokenizer.ggml.model is \"%s\"; cinfer reads byte-level BPE (\"gpt2\") tokenizers",
                 name, model ? model : "(missing)");
        free(model);
        return NULL;
    }
    free(model);
    const ci_gguf_value *tokens = ci_gguf_get_array(f, "tokenizer.ggml.tokens", CI_GGUF_STRING);
    const ci_gguf_value *merges = ci_gguf_get_array(f, "tokenizer.ggml.merges", CI_GGUF_STRING);
    const ci_gguf_value *types = ci_gguf_find(f, "tokenizer.ggml.token_type");
    if (!tokens || !merges) {
        ci_error(err, CINFER_ERR_FORMAT, "%s: tokenizer.ggml.%s is missing or not a string array", name,
                 !tokens ? "tokens" : "merges");
        return NULL;
    }
    size_t n = tokens->v.arr.count;
    if (types && (types->type != CI_GGUF_ARRAY || types->v.arr.count != n || types->v.arr.elem_type == CI_GGUF_STRING ||
                  types->v.arr.elem_type == CI_GGUF_ARRAY)) {
        ci_error(err, CINFER_ERR_FORMAT, "%s: tokenizer.ggml.token_type must be an integer array of %zu entries", name, n);
        return NULL;
    }
    char *pre = ci_gguf_dup_str(f, "tokenizer.ggml.pre");
    const char *regex = ci_tok_pretokenizer_regex_for_gguf_pre(pre ? pre : "default");
    if (!regex) {
        ci_error(err, CINFER_ERR_FORMAT, "%s: tokenizer.ggml.pre \"%s\" is not a pre-tokenizer cinfer knows", name,
                 pre ? pre : "default");
        free(pre);
        return NULL;
    }

    ci_tok_builder *b = ci_tok_builder_new();
    int rc = CINFER_OK;
    for (size_t i = 0; i < n && rc == CINFER_OK; i++) {
        const ci_gguf_str *s = &tokens->v.arr.strings[i];
        int64_t type = TOKEN_NORMAL;
        if (types && !ci_gguf_array_i64(types, i, &type)) {
            rc = ci_error(err, CINFER_ERR_FORMAT, "tokenizer.ggml.token_type must be an integer array (entry %zu is a %s)",
                          i, ci_gguf_value_type_name(types->v.arr.elem_type));
            break;
        }
        if (type == TOKEN_UNUSED) continue;
        if (type == TOKEN_CONTROL || type == TOKEN_USER_DEFINED) {
            ci_added_token_spec spec = {.content = s->ptr, .content_len = s->len, .id = (int32_t)i,
                                        .special = type == TOKEN_CONTROL};
            rc = ci_tok_builder_add_added(b, &spec, err);
        } else {
            rc = ci_tok_builder_add_vocab(b, s->ptr, s->len, (int32_t)i, err);
        }
    }
    for (size_t r = 0; r < merges->v.arr.count && rc == CINFER_OK; r++)
        rc = ci_tok_builder_add_merge_string(b, merges->v.arr.strings[r].ptr, merges->v.arr.strings[r].len, err);
    /* Qwen2/3's tokenizer.json declares an NFC normalizer; llama.cpp omits it. */
    if (pre && strcmp(pre, "qwen2") == 0) ci_tok_builder_set_normalizer(b, CI_NORMALIZER_NFC);
    if (rc == CINFER_OK) rc = ci_tok_builder_add_split_regex(b, regex, strlen(regex), CI_SPLIT_ISOLATED, false, err);
    if (rc == CINFER_OK) rc = ci_tok_builder_set_byte_level(b, false, false, err);
    free(pre);
    if (rc != CINFER_OK) {
        ci_tok_builder_free(b);
        ci_error_prefix(err, "%s", name);
        return NULL;
    }
    char *bos = token_text_by_id(f, tokens, "tokenizer.ggml.bos_token_id");
    char *eos = token_text_by_id(f, tokens, "tokenizer.ggml.eos_token_id");
    bool add_bos = false;
    ci_tok_builder_set_special_strings(b, ci_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos) && add_bos ? bos : NULL,
                                       eos);
    free(bos);
    free(eos);
    cinfer_tokenizer *t = ci_tok_builder_finish(b, err);
    if (!t) ci_error_prefix(err, "%s", name);
    return t;
}
