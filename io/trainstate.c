/* trainstate.c - see trainstate.h. */
#include "io/trainstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/json.h"

void pvlm_trainstate_free(pvlm_trainstate *s) {
    if (!s) return;
    json_decref(s->config);
    json_decref(s->model_config);
    json_decref(s->dp);
    json_decref(s->loader);
    json_decref(s->optim_files);
    memset(s, 0, sizeof *s);
}

json_t *pvlm_trainstate_to_json(const pvlm_trainstate *s, pvlm_err *err) {
    const char *missing = !s->config         ? "config"
                          : !s->model_config ? "model_config"
                          : !s->dp           ? "dp"
                          : !s->loader       ? "loader"
                          : !s->optim_files  ? "optim_files"
                                             : NULL;
    if (missing) {
        pvlm_err_set(err, PVLM_EINVAL, "state.json: the training state has no \"%s\"", missing);
        return NULL;
    }
    /* "O" takes new references: s keeps its own. */
    json_t *j =
        json_pack("{s:I, s:I, s:I, s:i, s:s, s:O, s:O, s:O, s:O, s:O, s:{s:I, s:I}}", "step", (json_int_t)s->step,
                  "samples_seen", (json_int_t)s->samples_seen, "tokens_seen", (json_int_t)s->tokens_seen, "world_size",
                  s->world_size, "reason", s->reason, "config", s->config, "model_config", s->model_config, "dp", s->dp,
                  "loader", s->loader, "optim_files", s->optim_files, "rng", "init_seed", (json_int_t)s->init_seed,
                  "data_seed", (json_int_t)s->data_seed);
    if (!j) pvlm_err_set(err, PVLM_ENOMEM, "state.json: out of memory building the training state");
    return j;
}

/* The trust rule of trainstate.h for one file the checkpoint loads. */
static int check_file(const json_t *files, const char *name, const char *what, const char *key, pvlm_err *err) {
    if (!*name || strchr(name, '/') || name[0] == '.' || strlen(name) > 255)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: %s \"%.64s\" is not a plain file name inside the checkpoint directory", what, key,
                            name);
    if (!json_is_object(json_object_get(files, name)))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: %s \"%.64s\" is not listed in \"files\" (not covered by checksums)",
                            what, key, name);
    return 0;
}

/* A non-negative integer member. */
static int get_count(const json_t *j, const char *key, int64_t *out, const char *what, pvlm_err *err) {
    if (pvlm_json_get_int(j, key, out, what, err)) return -1;
    if (*out < 0) return pvlm_err_set(err, PVLM_EFORMAT, "%s: \"%s\" is negative", what, key);
    return 0;
}

/* A member of the given jansson type, as a new reference into *out. */
static int get_typed(const json_t *j, const char *key, json_type type, json_t **out, const char *what, pvlm_err *err) {
    json_t *v = json_object_get(j, key);
    if (!v || json_typeof(v) != type)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: \"%s\" is missing or not an %s", what, key,
                            type == JSON_ARRAY ? "array" : "object");
    *out = json_incref(v);
    return 0;
}

static int parse_counters(pvlm_trainstate *s, const json_t *j, const char *what, pvlm_err *err) {
    int64_t ws;
    const json_t *rng = json_object_get(j, "rng");
    if (get_count(j, "step", &s->step, what, err) || get_count(j, "samples_seen", &s->samples_seen, what, err) ||
        get_count(j, "tokens_seen", &s->tokens_seen, what, err) || get_count(j, "world_size", &ws, what, err))
        return -1;
    if (ws < 1 || ws > (1 << 24))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: world_size %lld is out of range", what, (long long)ws);
    s->world_size = (int)ws;
    if (!json_is_object(rng) || pvlm_json_get_int(rng, "init_seed", &s->init_seed, what, err) ||
        pvlm_json_get_int(rng, "data_seed", &s->data_seed, what, err))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: \"rng\" must hold init_seed and data_seed", what);
    const char *reason = json_string_value(json_object_get(j, "reason"));
    snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "");
    return 0;
}

static int parse_members(pvlm_trainstate *s, const json_t *j, const char *what, pvlm_err *err) {
    if (get_typed(j, "config", JSON_OBJECT, &s->config, what, err) ||
        get_typed(j, "model_config", JSON_OBJECT, &s->model_config, what, err) ||
        get_typed(j, "dp", JSON_OBJECT, &s->dp, what, err) ||
        get_typed(j, "loader", JSON_ARRAY, &s->loader, what, err) ||
        get_typed(j, "optim_files", JSON_ARRAY, &s->optim_files, what, err))
        return -1;
    if ((int64_t)json_array_size(s->loader) != s->world_size)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: %zu loader states for world_size %d", what,
                            json_array_size(s->loader), s->world_size);
    size_t i;
    json_t *v;
    json_array_foreach(s->loader, i, v) {
        if (!json_is_object(v))
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: loader state %zu is not an object", what, i);
    }
    return 0;
}

/* The files the checkpoint loads: the model and every optimizer file, each under the trust rule. */
static int check_files(const pvlm_trainstate *s, const json_t *j, const char *what, pvlm_err *err) {
    const json_t *files = json_object_get(j, "files");
    if (!json_is_object(files))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: \"files\" is missing or not an object", what);
    if (check_file(files, PVLM_TRAINSTATE_MODEL, what, "the model file", err)) return -1;
    if (json_array_size(s->optim_files) == 0) return pvlm_err_set(err, PVLM_EFORMAT, "%s: optim_files is empty", what);
    size_t i;
    json_t *v;
    json_array_foreach(s->optim_files, i, v) {
        if (!json_is_string(v)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: optim_files[%zu] is not a string", what, i);
        if (check_file(files, json_string_value(v), what, "optim_files entry", err)) return -1;
    }
    return 0;
}

int pvlm_trainstate_from_json(pvlm_trainstate *s, const json_t *j, const char *what, pvlm_err *err) {
    memset(s, 0, sizeof *s);
    if (!json_is_object(j)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: not a JSON object", what);
    if (parse_counters(s, j, what, err) || parse_members(s, j, what, err) || check_files(s, j, what, err)) {
        pvlm_trainstate_free(s);
        return -1;
    }
    return 0;
}

int pvlm_trainstate_load(const char *step_dir, pvlm_trainstate *s, json_t **raw, pvlm_err *err) {
    memset(s, 0, sizeof *s);
    if (raw) *raw = NULL;
    char what[4200];
    json_t *j = NULL;
    if (pvlm_path_join(what, sizeof what, step_dir, PVLM_CKPTDIR_STATE, err) || pvlm_ckptdir_verify(step_dir, &j, err))
        return -1;
    int rc = pvlm_trainstate_from_json(s, j, what, err);
    if (!rc && raw)
        *raw = j;
    else
        json_decref(j);
    return rc;
}

int pvlm_trainstate_path(const char *step_dir, const char *name, char *buf, size_t cap, pvlm_err *err) {
    if (!*name || strchr(name, '/') || name[0] == '.')
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: \"%.64s\" is not a plain file name", step_dir, name);
    return pvlm_path_join(buf, cap, step_dir, name, err);
}

void pvlm_trainstate_paths_free(char **paths, int n) {
    if (!paths) return;
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int pvlm_trainstate_optim_paths(const pvlm_trainstate *s, const char *step_dir, char ***paths, int *n, pvlm_err *err) {
    *paths = NULL;
    *n = 0;
    size_t cnt = json_array_size(s->optim_files), cap = strlen(step_dir) + 258;
    char **p = calloc(cnt ? cnt : 1, sizeof *p);
    if (!p) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory for optimizer paths", step_dir);
    for (size_t i = 0; i < cnt; i++) { /* p is calloc'd: freeing all cnt entries is safe at any point */
        const char *name = json_string_value(json_array_get(s->optim_files, i));
        int rc = !name ? pvlm_err_set(err, PVLM_EFORMAT, "%s: optim_files[%zu] is not a string", step_dir, i)
                 : !(p[i] = malloc(cap))
                     ? pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory for optimizer paths", step_dir)
                     : pvlm_trainstate_path(step_dir, name, p[i], cap, err);
        if (rc) {
            pvlm_trainstate_paths_free(p, (int)cnt);
            return -1;
        }
    }
    *paths = p;
    *n = (int)cnt;
    return 0;
}

static int check_state(const char *step_dir, const json_t *state, void *ctx, pvlm_err *err) {
    (void)ctx;
    char what[4200];
    if (pvlm_path_join(what, sizeof what, step_dir, PVLM_CKPTDIR_STATE, err)) return -1;
    pvlm_trainstate s;
    if (pvlm_trainstate_from_json(&s, state, what, err)) return -1;
    pvlm_trainstate_free(&s);
    return 0;
}

int pvlm_trainstate_find_resume(const char *dir, pvlm_ckptdir_resume *r, pvlm_err *err) {
    return pvlm_ckptdir_find_resume_checked(dir, check_state, NULL, r, err);
}
