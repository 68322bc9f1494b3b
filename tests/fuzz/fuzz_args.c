/* fuzz_args.c - core/args.h: pvlm_args_parse on arbitrary argv vectors (the input split at NUL
 * bytes) against a table with every option type, and pvlm_args_apply_json on arbitrary JSON (input
 * starting with '{'). Then the resolved settings are serialised. */
#include <stdlib.h>

#include "core/args.h"
#include "fuzz.h"

int pvlm_fuzz_args(const uint8_t *data, size_t size) {
    const char *s = "x";
    const char *choice = "greedy";
    int iv = 4, flag = 0;
    int64_t lv = 7;
    double dv = 0.5;
    const char *req = NULL;
    const pvlm_opt opts[] = {
        {"name", PVLM_ARG_STR, &s, "a string", NULL, 0, 0, 0},
        {"mode", PVLM_ARG_CHOICE, &choice, "a choice", "greedy|beam|", 0, 0, 0},
        {"batch-size", PVLM_ARG_INT, &iv, "an int in [1, 64]", NULL, 1, 64, 0},
        {"steps", PVLM_ARG_I64, &lv, "an i64", NULL, 0, 0, 0},
        {"lr", PVLM_ARG_DOUBLE, &dv, "a double in [0, 1]", NULL, 0, 1, 0},
        {"verbose", PVLM_ARG_FLAG, &flag, "a flag", NULL, 0, 0, 0},
        {"out", PVLM_ARG_STR, &req, "required", NULL, 0, 0, 1},
    };
    const pvlm_cmd cmd = {"pvlm fuzz", "fuzz target", "[A [B]]", opts, (int)(sizeof opts / sizeof opts[0]), 0, 2};
    pvlm_err err = {0};
    if (size && data[0] == '{') {
        json_t *j = json_loadb((const char *)data, size, 0, NULL);
        if (j) pvlm_args_apply_json(&cmd, j, &err);
        json_decref(j);
        return 0;
    }
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    int argc = 1;
    for (size_t i = 0; i < size; i++) argc += buf[i] == 0;
    argc += 1;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (!argv) {
        free(buf);
        return 0;
    }
    argv[0] = (char *)"fuzz";
    int k = 1;
    argv[k++] = buf;
    for (size_t i = 0; i < size; i++)
        if (buf[i] == 0) argv[k++] = buf + i + 1;
    char *pos[2];
    int npos = 0;
    if (pvlm_args_parse(&cmd, argc, argv, pos, &npos) == PVLM_ARGS_OK) {
        if (npos < 0 || npos > 2) abort();
        if (!req) abort(); /* "required" was enforced */
        json_t *j = pvlm_args_to_json(&cmd);
        json_decref(j);
    }
    free(argv);
    free(buf);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_args)
