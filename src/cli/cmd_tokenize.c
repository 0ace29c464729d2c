/* cmd_tokenize.c — placeholder. */
#include "commands.h"
int cmd_tokenize(int argc, char **argv) { fprintf(stderr, "not implemented\n"); return 1; }
int cmd_detokenize(int argc, char **argv) { fprintf(stderr, "not implemented\n"); return 1; }
