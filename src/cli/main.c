/*
 * main.c — the `cinfer` program: a table of subcommands.
 * Each subcommand lives in its own cmd_*.c file and owns its --help text.
 */
#include "commands.h"
#include "cinfer.h"

#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"tokenize", cmd_tokenize, "encode text with a model's tokenizer; prints the ids as JSON"},
    {"detokenize", cmd_detokenize, "decode token ids (JSON array) back to text"},
    {"run", cmd_run, "generate an answer with a local model (HF folder or GGUF)"},
    {"serve", cmd_serve, "serve a local model over an OpenAI-compatible HTTP API (like vllm serve)"},
    {"chat", cmd_chat, "interactive multi-turn chat with a local model or a remote endpoint"},
    {"template", cmd_template, "render a Jinja chat template with a JSON context"},
    {"demo", cmd_demo, "render a sample chat with the Qwen3 template and tokenize it"},
    {"bench", cmd_bench, "measure prompt (pp) and generation (tg) tokens/s of a model, like llama-bench"},
    {"models", cmd_models, "list the models of an OpenAI-compatible endpoint (--remote URL)"},
    {"quantize", cmd_quantize, "quantize a model (HF folder or GGUF) to a GGUF: q8_0, q4_0, q4_k, q6_k, q4_k_m"},
    {"pull", cmd_pull, "download a model by name from Hugging Face or ModelScope (ORG/NAME[:QUANT])"},
    {"list", cmd_list, "list the models in the Hugging Face and ModelScope caches"},
    {"rm", cmd_rm, "remove a cached model"},
    {"make-test-model", cmd_make_test_model, "write a random-weight Qwen3 (HF folder or GGUF) with the real layout"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void print_help(FILE *out) {
    fprintf(out,
            "cinfer %s — a C runtime for Qwen3-family language models\n\n"
            "usage: cinfer COMMAND [OPTIONS]\n\ncommands:\n",
            CINFER_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "show this list, or 'cinfer help COMMAND' for one command");
    fprintf(out, "\n'cinfer COMMAND --help' explains each command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || cli_is_help(name)) {
        if (argc >= 3) {
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(argv[2], COMMANDS[i].name) == 0) {
                    char *help_argv[] = {argv[2], "--help", NULL};
                    return COMMANDS[i].run(2, help_argv);
                }
            fprintf(stderr, "cinfer: unknown command '%s'\n", argv[2]);
            return 2;
        }
        print_help(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("cinfer %s\n", CINFER_VERSION);
        return 0;
    }
    /* --pull: commands taking a MODEL download a named model first */
    if (!strcmp(name, "run") || !strcmp(name, "chat") || !strcmp(name, "serve") || !strcmp(name, "bench") ||
        !strcmp(name, "quantize")) {
        int k = 1;
        for (int i = 1; i < argc; i++)
            if (strcmp(argv[i], "--pull") == 0) cli_pull_first = true;
            else argv[k++] = argv[i];
        argc = k;
        argv[argc] = NULL;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cinfer: unknown command '%s' (try 'cinfer help')\n", name);
    return 2;
}
