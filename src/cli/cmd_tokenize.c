/*
 * cmd_tokenize.c — `cinfer tokenize` and `cinfer detokenize`.
 *
 * Output contracts (scripts and tests rely on them exactly):
 *   tokenize   prints the ids as one JSON array and a newline: [9707,1879]
 *   detokenize prints the decoded text byte for byte, no newline added.
 * Exit codes: 0 ok, 1 runtime failure (message on stderr), 2 usage error.
 */
#include "commands.h"
#include "cinfer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CLI_MAX_INPUT_BYTES ((size_t)1 << 30)

static void tokenize_help(FILE *out) {
    fprintf(out,
            "usage: cinfer tokenize --tokenizer PATH [--no-special] (TEXT | --file F)\n\n"
            "Encodes TEXT (or the contents of file F) with a Hugging Face tokenizer and prints\n"
            "the token ids as one JSON array, e.g. [9707,1879].\n\n"
            "  --tokenizer PATH  a model folder holding tokenizer.json, or a tokenizer.json file\n"
            "  --no-special      do not recognise special tokens such as <|im_end|> in the text;\n"
            "                    they are encoded as plain text (use for untrusted input)\n"
            "  --file F          read the text from file F instead of the command line\n\n"
            "No special tokens are added (add_special_tokens=False). Invalid UTF-8 becomes U+FFFD.\n");
}

static void detokenize_help(FILE *out) {
    fprintf(out,
            "usage: cinfer detokenize --tokenizer PATH [--skip-special] (IDS_JSON | --file F)\n\n"
            "Decodes a JSON array of token ids (given as an argument or in file F) and prints\n"
            "the text exactly, without adding a newline.\n\n"
            "  --tokenizer PATH  a model folder holding tokenizer.json, or a tokenizer.json file\n"
            "  --skip-special    leave out special tokens (e.g. <|im_end|>); <think> is not special\n"
            "  --file F          read the JSON array from file F\n");
}

typedef struct io_args {
    const char *tokenizer;
    const char *file;
    const char *inline_arg;
    bool flag;
} io_args;

/* Parses the options common to both commands; returns -1 for help, 0 ok, 2 usage error. */
static int parse_args(const char *cmd, const char *flag_name, int argc, char **argv, io_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (cli_is_help(arg)) return -1;
        if (strcmp(arg, "--tokenizer") == 0) {
            if (!(a->tokenizer = cli_option_value(cmd, argc, argv, &i))) return 2;
        } else if (strcmp(arg, "--file") == 0) {
            if (!(a->file = cli_option_value(cmd, argc, argv, &i))) return 2;
        } else if (strcmp(arg, flag_name) == 0) {
            a->flag = true;
        } else if (strcmp(arg, "--") == 0) { /* the next argument is the input even if it starts with -- */
            if (i + 2 != argc || a->inline_arg) return cli_usage_error(cmd, "'--' must be followed by exactly the input");
            a->inline_arg = argv[++i];
        } else if (arg[0] == '-' && arg[1] == '-') {
            return cli_usage_error(cmd, "unknown option %s", arg);
        } else {
            if (a->inline_arg) return cli_usage_error(cmd, "more than one input argument");
            a->inline_arg = arg;
        }
    }
    if (!a->tokenizer) return cli_usage_error(cmd, "--tokenizer PATH is required");
    if (a->file && a->inline_arg) return cli_usage_error(cmd, "give the input as an argument or with --file, not both");
    if (!a->file && !a->inline_arg) return cli_usage_error(cmd, "no input: give it as an argument or with --file");
    return 0;
}

/* Reads the input (argument or file); returns NULL after printing an error. */
static char *read_input(const char *cmd, const io_args *a, size_t *len) {
    if (a->inline_arg) {
        *len = strlen(a->inline_arg);
        char *copy = strdup(a->inline_arg);
        if (!copy) fprintf(stderr, "cinfer %s: out of memory\n", cmd);
        return copy;
    }
    return cli_read_input(cmd, a->file, CLI_MAX_INPUT_BYTES, len);
}

int cmd_tokenize(int argc, char **argv) {
    io_args a;
    int rc = parse_args("tokenize", "--no-special", argc, argv, &a);
    if (rc == -1) {
        tokenize_help(stdout);
        return 0;
    }
    if (rc) return rc;
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(a.tokenizer, &err);
    if (!tok) {
        fprintf(stderr, "cinfer tokenize: %s\n", err.message);
        return 1;
    }
    size_t len;
    char *text = read_input("tokenize", &a, &len);
    if (!text) {
        cinfer_tokenizer_free(tok);
        return 1;
    }
    int32_t *ids = NULL;
    long n = cinfer_tokenize(tok, text, len, a.flag ? CINFER_TOKENIZE_SPLIT_SPECIAL : 0, &ids, &err);
    free(text);
    cinfer_tokenizer_free(tok);
    if (n < 0) {
        fprintf(stderr, "cinfer tokenize: %s\n", err.message);
        return 1;
    }
    putchar('[');
    for (long i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    fputs("]\n", stdout);
    cinfer_free(ids);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "cinfer tokenize: cannot write the output\n");
        return 1;
    }
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    io_args a;
    int rc = parse_args("detokenize", "--skip-special", argc, argv, &a);
    if (rc == -1) {
        detokenize_help(stdout);
        return 0;
    }
    if (rc) return rc;
    size_t len;
    char *input = read_input("detokenize", &a, &len);
    if (!input) return 1;
    json_error_t jerr;
    json_t *arr = json_loadb(input, len, 0, &jerr);
    free(input);
    if (!json_is_array(arr)) {
        json_decref(arr);
        fprintf(stderr, "cinfer detokenize: the input must be a JSON array of token ids%s%s\n", arr ? "" : ": ",
                arr ? "" : jerr.text);
        return 1;
    }
    size_t n = json_array_size(arr);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        json_decref(arr);
        fprintf(stderr, "cinfer detokenize: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            fprintf(stderr, "cinfer detokenize: element %zu of the array is not a token id (a non-negative integer)\n", i);
            free(ids);
            json_decref(arr);
            return 1;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    json_decref(arr);
    cinfer_error err = {0};
    cinfer_tokenizer *tok = cinfer_tokenizer_load(a.tokenizer, &err);
    if (!tok) {
        free(ids);
        fprintf(stderr, "cinfer detokenize: %s\n", err.message);
        return 1;
    }
    size_t out_len;
    char *text = cinfer_detokenize(tok, ids, n, a.flag, &out_len, &err);
    free(ids);
    cinfer_tokenizer_free(tok);
    if (!text) {
        fprintf(stderr, "cinfer detokenize: %s\n", err.message);
        return 1;
    }
    bool ok = fwrite(text, 1, out_len, stdout) == out_len && fflush(stdout) == 0;
    cinfer_free(text);
    if (!ok) {
        fprintf(stderr, "cinfer detokenize: cannot write the output\n");
        return 1;
    }
    return 0;
}
