/* cmd_template.c — placeholder. */
#include "commands.h"
int cmd_template(int argc, char **argv) { fprintf(stderr, "not implemented\n"); return 1; }
