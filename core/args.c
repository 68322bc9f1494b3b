/* args.c - see args.h. */
#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const pvlm_opt *find_opt(const pvlm_cmd *cmd, const char *name, size_t len) {
    for (int i = 0; i < cmd->nopts; i++)
        if (strlen(cmd->opts[i].name) == len && !strncmp(cmd->opts[i].name, name, len)) return &cmd->opts[i];
    return NULL;
}

static int choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

static int range_ok(const pvlm_opt *o, double v) { return !(o->min < o->max) || (v >= o->min && v <= o->max); }

/* Store one textual value into o->dst. */
static int set_value(const pvlm_cmd *cmd, const pvlm_opt *o, const char *v, pvlm_err *err) {
    char *end;
    errno = 0;
    switch (o->type) {
    case PVLM_ARG_STR:
        *(const char **)o->dst = v;
        return 0;
    case PVLM_ARG_CHOICE:
        if (!choice_ok(o->choices, v))
            return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s must be one of %s, got '%s'", cmd->name, o->name, o->choices, v);
        *(const char **)o->dst = v;
        return 0;
    case PVLM_ARG_INT:
    case PVLM_ARG_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s expects an integer, got '%s'", cmd->name, o->name, v);
        if (o->type == PVLM_ARG_INT && (x < -2147483647LL || x > 2147483647LL))
            return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s value %s is out of range", cmd->name, o->name, v);
        if (!range_ok(o, (double)x))
            return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s must be in [%g, %g], got %s", cmd->name, o->name, o->min, o->max, v);
        if (o->type == PVLM_ARG_INT) *(int *)o->dst = (int)x;
        else *(int64_t *)o->dst = (int64_t)x;
        return 0;
    }
    case PVLM_ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s expects a number, got '%s'", cmd->name, o->name, v);
        if (!range_ok(o, x))
            return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s must be in [%g, %g], got %s", cmd->name, o->name, o->min, o->max, v);
        *(double *)o->dst = x;
        return 0;
    }
    case PVLM_ARG_FLAG:
        if (!strcmp(v, "1") || !strcmp(v, "true")) *(int *)o->dst = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false")) *(int *)o->dst = 0;
        else return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s takes no value or 0/1, got '%s'", cmd->name, o->name, v);
        return 0;
    }
    return pvlm_err_set(err, PVLM_EINVAL, "%s: --%s has an unknown type", cmd->name, o->name);
}

int pvlm_args_apply_json(const pvlm_cmd *cmd, const json_t *obj, pvlm_err *err) {
    if (!json_is_object(obj)) return pvlm_err_set(err, PVLM_EINVAL, "%s: config must be a JSON object", cmd->name);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        const pvlm_opt *o = find_opt(cmd, key, strlen(key));
        if (!o || !strcmp(key, "config"))
            return pvlm_err_set(err, PVLM_EINVAL, "%s: config key '%s' is not a flag of this command", cmd->name, key);
        char buf[64];
        const char *v;
        if (json_is_string(val)) v = json_string_value(val);
        else if (json_is_integer(val)) { snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(val)); v = buf; }
        else if (json_is_real(val)) { snprintf(buf, sizeof buf, "%.17g", json_real_value(val)); v = buf; }
        else if (json_is_boolean(val)) v = json_is_true(val) ? "1" : "0";
        else return pvlm_err_set(err, PVLM_EINVAL, "%s: config key '%s' has an unsupported value type", cmd->name, key);
        if (o->type == PVLM_ARG_STR || o->type == PVLM_ARG_CHOICE) {
            if (!json_is_string(val))
                return pvlm_err_set(err, PVLM_EINVAL, "%s: config key '%s' must be a string", cmd->name, key);
        }
        if (set_value(cmd, o, v, err)) return -1;
    }
    return 0;
}

/* --config is applied before everything else; the json is kept alive for
 * string values until exit (one small object per process). */
static int apply_config_first(const pvlm_cmd *cmd, int argc, char **argv, pvlm_err *err) {
    const pvlm_opt *o = find_opt(cmd, "config", 6);
    if (!o || o->type != PVLM_ARG_STR) return 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--config") && i + 1 < argc) path = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9)) path = argv[i] + 9;
    }
    if (!path) return 0;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return pvlm_err_set(err, PVLM_EINVAL, "%s: --config %s:%d:%d: %s", cmd->name, path, je.line, je.column, je.text);
    return pvlm_args_apply_json(cmd, j, err); /* j intentionally kept: STR dsts point into it */
}

int pvlm_args_parse(const pvlm_cmd *cmd, int argc, char **argv, char **pos, int *npos) {
    pvlm_err err;
    int np = 0, only_pos = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            pvlm_args_help(cmd, stdout);
            return PVLM_ARGS_HELP;
        } else if (!strcmp(argv[i], "--")) {
            break;
        }
    if (apply_config_first(cmd, argc, argv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return PVLM_ARGS_ERROR;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) { only_pos = 1; continue; }
        if (only_pos || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (np >= cmd->max_pos) {
                fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd->name, a);
                return PVLM_ARGS_ERROR;
            }
            pos[np++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const pvlm_opt *o = find_opt(cmd, name, len);
        if (!o) {
            fprintf(stderr, "%s: unknown flag --%.*s (see --help)\n", cmd->name, (int)len, name);
            return PVLM_ARGS_ERROR;
        }
        const char *v;
        if (eq) v = eq + 1;
        else if (o->type == PVLM_ARG_FLAG) v = "1";
        else if (i + 1 < argc) v = argv[++i];
        else {
            fprintf(stderr, "%s: --%s needs a value (see --help)\n", cmd->name, o->name);
            return PVLM_ARGS_ERROR;
        }
        if (set_value(cmd, o, v, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return PVLM_ARGS_ERROR;
        }
    }
    for (int k = 0; k < cmd->nopts; k++) {
        const pvlm_opt *o = &cmd->opts[k];
        if (o->required && (o->type == PVLM_ARG_STR || o->type == PVLM_ARG_CHOICE) && !*(const char **)o->dst) {
            fprintf(stderr, "%s: --%s is required (see --help)\n", cmd->name, o->name);
            return PVLM_ARGS_ERROR;
        }
    }
    if (np < cmd->min_pos) {
        fprintf(stderr, "%s: expected %s (see --help)\n", cmd->name, cmd->usage && *cmd->usage ? cmd->usage : "more arguments");
        return PVLM_ARGS_ERROR;
    }
    if (npos) *npos = np;
    return PVLM_ARGS_OK;
}

static void format_value(const pvlm_opt *o, char *buf, size_t cap) {
    switch (o->type) {
    case PVLM_ARG_STR:
    case PVLM_ARG_CHOICE: {
        const char *s = *(const char **)o->dst;
        snprintf(buf, cap, "%s", s ? s : "(none)");
        break;
    }
    case PVLM_ARG_INT: snprintf(buf, cap, "%d", *(int *)o->dst); break;
    case PVLM_ARG_I64: snprintf(buf, cap, "%" PRId64, *(int64_t *)o->dst); break;
    case PVLM_ARG_DOUBLE: snprintf(buf, cap, "%g", *(double *)o->dst); break;
    case PVLM_ARG_FLAG: snprintf(buf, cap, "%s", *(int *)o->dst ? "on" : "off"); break;
    }
}

void pvlm_args_help(const pvlm_cmd *cmd, FILE *out) {
    fprintf(out, "usage: %s [flags]%s%s\n\n%s\n\nflags:\n", cmd->name, cmd->usage && *cmd->usage ? " " : "",
            cmd->usage ? cmd->usage : "", cmd->summary);
    for (int i = 0; i < cmd->nopts; i++) {
        const pvlm_opt *o = &cmd->opts[i];
        char def[256], left[96];
        format_value(o, def, sizeof def);
        const char *meta = o->type == PVLM_ARG_FLAG ? "" : o->type == PVLM_ARG_CHOICE ? " CHOICE" :
                           o->type == PVLM_ARG_STR ? " STR" : o->type == PVLM_ARG_DOUBLE ? " NUM" : " INT";
        snprintf(left, sizeof left, "--%s%s", o->name, meta);
        fprintf(out, "  %-26s %s", left, o->help ? o->help : "");
        if (o->type == PVLM_ARG_CHOICE) fprintf(out, " {%s}", o->choices);
        if (o->required) fprintf(out, " (required)");
        else fprintf(out, " [default: %s]", def);
        fprintf(out, "\n");
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help and exit");
}

json_t *pvlm_args_to_json(const pvlm_cmd *cmd) {
    json_t *j = json_object();
    for (int i = 0; i < cmd->nopts; i++) {
        const pvlm_opt *o = &cmd->opts[i];
        json_t *v = NULL;
        switch (o->type) {
        case PVLM_ARG_STR:
        case PVLM_ARG_CHOICE: {
            const char *s = *(const char **)o->dst;
            v = s ? json_string(s) : json_null();
            break;
        }
        case PVLM_ARG_INT: v = json_integer(*(int *)o->dst); break;
        case PVLM_ARG_I64: v = json_integer((json_int_t) * (int64_t *)o->dst); break;
        case PVLM_ARG_DOUBLE: v = json_real(*(double *)o->dst); break;
        case PVLM_ARG_FLAG: v = json_boolean(*(int *)o->dst); break;
        }
        json_object_set_new(j, o->name, v);
    }
    return j;
}

int pvlm_subcmd_run(const char *parent, const pvlm_subcmd *subs, int nsubs, int argc, char **argv) {
    int want_help = argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
    if (!want_help) {
        for (int i = 0; i < nsubs; i++)
            if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(argc - 1, argv + 1);
    }
    FILE *out = want_help ? stdout : stderr;
    if (!want_help) fprintf(stderr, "%s: unknown subcommand '%s'\n", parent, argv[1]);
    fprintf(out, "usage: %s <subcommand> [flags]\n\nsubcommands:\n", parent);
    for (int i = 0; i < nsubs; i++) fprintf(out, "  %-12s %s\n", subs[i].name, subs[i].summary);
    fprintf(out, "\nRun '%s <subcommand> --help' for its flags.\n", parent);
    return want_help && argc >= 2 ? 0 : 2;
}
