/* main.c - the `pvlm` executable: dispatches to the subcommands in commands.def.
 *
 * Each entry function gets argv starting at its own word and returns the
 * process exit code (0 ok, 1 failure, 2 usage error). MPI-using subcommands
 * initialise MPI themselves, after installing their signal handlers.
 */
#include <stdio.h>
#include <string.h>

#include "core/timer.h"

#define PVLM_CMD(word, summary, fn) int fn(int argc, char **argv);
#include "cli/commands.def"
#undef PVLM_CMD

typedef struct {
    const char *word, *summary;
    int (*fn)(int, char **);
} command;

static const command commands[] = {
#define PVLM_CMD(word, summary, fn) {#word, summary, fn},
#include "cli/commands.def"
#undef PVLM_CMD
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: pvlm <command> [flags]\n\n"
            "pvlm: distributed SimVLM-style PrefixLM pretraining, evaluation and finetuning.\n\ncommands:\n");
    for (const command *c = commands; c->word; c++) fprintf(out, "  %-10s %s\n", c->word, c->summary);
    fprintf(out, "\nRun 'pvlm <command> --help' for a command's flags. Docs: docs/commands.md\n");
}

int main(int argc, char **argv) {
    pvlm_uptime(); /* log timestamps count from program start */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("pvlm %s\n", PVLM_VERSION);
        return 0;
    }
    for (const command *c = commands; c->word; c++)
        if (!strcmp(argv[1], c->word)) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "pvlm: unknown command '%s' (see pvlm --help)\n", argv[1]);
    return 2;
}
