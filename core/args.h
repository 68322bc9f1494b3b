/* args.h - the one flag parser every pvlm subcommand uses.
 *
 * A command describes its flags in a static table of pvlm_opt; the parser
 * writes values straight into the caller's variables (dst), whose values at
 * parse time are the defaults shown by --help. Accepted: "--name value",
 * "--name=value", bare "--name" for flags, "--" ends flags. Unknown flags,
 * missing values, bad numbers, out-of-range values and bad choices are
 * rejected with one line on stderr; the caller then exits 2.
 * If the table has a "config" string option, "--config FILE" (a JSON object
 * {"flag-name": value, ...}) is applied first and the command line overrides it.
 */
#ifndef PVLM_ARGS_H
#define PVLM_ARGS_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

typedef enum {
    PVLM_ARG_STR,    /* dst: const char **  (points into argv or the config JSON; do not free) */
    PVLM_ARG_INT,    /* dst: int * */
    PVLM_ARG_I64,    /* dst: int64_t * */
    PVLM_ARG_DOUBLE, /* dst: double * */
    PVLM_ARG_FLAG,   /* dst: int *, set to 1 by "--name", or "--name=0|1" */
    PVLM_ARG_CHOICE, /* dst: const char **, one of `choices` ("greedy|beam") */
} pvlm_argtype;

typedef struct pvlm_opt {
    const char *name; /* without dashes: "batch-size" */
    pvlm_argtype type;
    void *dst;
    const char *help;
    const char *choices; /* PVLM_ARG_CHOICE only */
    double min, max;     /* numeric range, checked when min < max */
    int required;        /* a STR that must be given */
} pvlm_opt;

typedef struct pvlm_cmd {
    const char *name;    /* as the user types it: "pvlm score captions" */
    const char *summary; /* one line for --help */
    const char *usage;   /* positional part, e.g. "CKPT" ("" for none) */
    const pvlm_opt *opts;
    int nopts;
    int min_pos, max_pos; /* how many positional arguments are allowed */
} pvlm_cmd;

enum { PVLM_ARGS_OK = 0, PVLM_ARGS_HELP = 1, PVLM_ARGS_ERROR = 2 };

/* Parse argv[1..argc-1] (argv[0] is the command word). Positional arguments
 * are returned in pos (caller's array of max_pos entries, pointers into argv).
 * Returns PVLM_ARGS_OK, PVLM_ARGS_HELP (help printed on stdout: exit 0) or
 * PVLM_ARGS_ERROR (one line printed on stderr: exit 2). */
int pvlm_args_parse(const pvlm_cmd *cmd, int argc, char **argv, char **pos, int *npos);
void pvlm_args_help(const pvlm_cmd *cmd, FILE *out);
/* Apply a JSON object of flag values (as --config does). */
int pvlm_args_apply_json(const pvlm_cmd *cmd, const json_t *obj, pvlm_err *err);
/* Every resolved setting as a JSON object (new reference), for logs and checkpoints. */
json_t *pvlm_args_to_json(const pvlm_cmd *cmd);

/* Second-level dispatch ("pvlm shard images ..."): argv[0] is the parent word,
 * argv[1] the subcommand. Each fn gets (argc-1, argv+1) and returns the exit code.
 * Prints the list on --help / no subcommand; unknown subcommand exits 2. */
typedef struct pvlm_subcmd {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
} pvlm_subcmd;
int pvlm_subcmd_run(const char *parent, const pvlm_subcmd *subs, int nsubs, int argc, char **argv);

#endif
