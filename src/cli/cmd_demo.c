/* cmd_demo.c — placeholder. */
#include "commands.h"
int cmd_demo(int argc, char **argv) { fprintf(stderr, "not implemented\n"); return 1; }
