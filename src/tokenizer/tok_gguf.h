/*
 * tok_gguf.h — builds a tokenizer from a GGUF file's tokenizer.ggml.*
 * metadata (what llama.cpp's converter writes), through the same builder and
 * checks as tokenizer.json.
 */
#ifndef CINFER_TOK_GGUF_H
#define CINFER_TOK_GGUF_H

#include "cinfer.h"
#include "format/gguf.h"

/* `name` is the file name used in error messages. */
cinfer_tokenizer *ci_tok_load_gguf(const ci_gguf_file *f, const char *name, cinfer_error *err);

#endif
