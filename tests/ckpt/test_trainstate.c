/* test_trainstate.c - io/trainstate: the training state in state.json.
 *   round trip   pvlm_trainstate_to_json -> pvlm_ckptdir_commit -> pvlm_trainstate_load gives back every
 *                field; the paths it names are inside the step directory
 *   forged       state.json files re-sealed with a valid state_xxh3 (so io/ckptdir's checksum passes) but
 *                breaking the trust rule: optim_files with "../step_X/...", an absolute path, a hidden
 *                name, a name not listed in "files", a model file left out of "files"; and malformed
 *                members (loader count, negative counters, wrong types). Each is rejected with a message
 *                naming the problem, and --resume auto (pvlm_trainstate_find_resume) skips it and falls
 *                back to the older, honest checkpoint.
 *   to_json      a state without a required member is an error, not a partial state.json */
#include <stdint.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "harness.h"
#include "io/ckptdir.h"
#include "io/trainstate.h"

static char root[4096];

static void fill(pvlm_trainstate *ts, int64_t step) {
    memset(ts, 0, sizeof *ts);
    ts->step = step;
    ts->samples_seen = step * 8;
    ts->tokens_seen = step * 80;
    ts->world_size = 2;
    ts->init_seed = 7;
    ts->data_seed = 9;
    snprintf(ts->reason, sizeof ts->reason, "periodic");
    ts->config = json_pack("{s:i}", "micro_batch", 4);
    ts->model_config = json_pack("{s:i}", "d_model", 8);
    ts->dp = json_pack("{s:I}", "step", (json_int_t)step);
    ts->loader = json_pack("[{s:i}, {s:i}]", "pos", 1, "pos", 2);
    ts->optim_files = json_pack("[s, s]", "optim.rank00000.safetensors", "optim.rank00001.safetensors");
}

static int put(const char *dir, const char *name, const char *text, pvlm_err *err) {
    char p[4300];
    if (pvlm_path_join(p, sizeof p, dir, name, err)) return -1;
    return pvlm_write_file_atomic(p, text, strlen(text), err);
}

/* A checkpoint of step under root, as pvlm pretrain writes one. */
static int make(int64_t step, pvlm_err *err) {
    char tmp[4200];
    if (pvlm_ckptdir_begin(root, step, tmp, sizeof tmp, err)) return -1;
    if (put(tmp, "model.safetensors", "model", err) || put(tmp, "optim.rank00000.safetensors", "o0", err) ||
        put(tmp, "optim.rank00001.safetensors", "o1", err))
        return -1;
    pvlm_trainstate ts;
    fill(&ts, step);
    json_t *j = pvlm_trainstate_to_json(&ts, err);
    pvlm_trainstate_free(&ts);
    int rc = j ? pvlm_ckptdir_commit(root, step, j, NULL, NULL, 0, err) : -1;
    json_decref(j);
    return rc;
}

/* Rewrite step's state.json with edit applied, sealed again the way io/ckptdir seals it (XXH3 of the
 * compact, key-sorted JSON without state_xxh3): only the trust rules can catch the forgery. */
typedef void (*edit_fn)(json_t *state);
static int forge(int64_t step, edit_fn edit, pvlm_err *err) {
    char dir[4200], sp[4300];
    if (pvlm_ckptdir_step_path(root, step, dir, sizeof dir, err) ||
        pvlm_path_join(sp, sizeof sp, dir, PVLM_CKPTDIR_STATE, err))
        return -1;
    json_t *j = pvlm_json_load_file(sp, err);
    if (!j) return -1;
    edit(j);
    int rc = pvlm_ckptdir_seal(j, err) ? -1 : pvlm_json_save_atomic(j, sp, err);
    json_decref(j);
    return rc;
}

static void up_dir(json_t *j) {
    json_array_set_new(json_object_get(j, "optim_files"), 1,
                       json_string("../step_00000010/optim.rank00001.safetensors"));
}
static void absolute(json_t *j) {
    json_array_set_new(json_object_get(j, "optim_files"), 0, json_string("/etc/passwd"));
}
static void dotdot(json_t *j) {
    json_array_set_new(json_object_get(j, "optim_files"), 0, json_string(".."));
}
static void hidden(json_t *j) {
    json_array_set_new(json_object_get(j, "optim_files"), 0, json_string(".tmp.x"));
}
static void unlisted(json_t *j) {
    json_array_set_new(json_object_get(j, "optim_files"), 0, json_string("extra.bin"));
}
static void no_model(json_t *j) {
    json_object_del(json_object_get(j, "files"), "model.safetensors");
}
static void empty_optim(json_t *j) {
    json_object_set_new(j, "optim_files", json_array());
}
static void optim_number(json_t *j) {
    json_array_set_new(json_object_get(j, "optim_files"), 0, json_integer(3));
}
static void loader_count(json_t *j) {
    json_array_remove(json_object_get(j, "loader"), 1);
}
static void neg_samples(json_t *j) {
    json_object_set_new(j, "samples_seen", json_integer(-5));
}
static void dp_string(json_t *j) {
    json_object_set_new(j, "dp", json_string("x"));
}
static void no_rng(json_t *j) {
    json_object_del(j, "rng");
}
static void zero_world(json_t *j) {
    json_object_set_new(j, "world_size", json_integer(0));
}

static void test_roundtrip(void) {
    pvlm_err err = {0};
    CHECK_OK(make(10, &err), &err);
    char dir[4200];
    CHECK_OK(pvlm_ckptdir_step_path(root, 10, dir, sizeof dir, &err), &err);
    pvlm_trainstate ts;
    json_t *raw = NULL;
    CHECK_OK(pvlm_trainstate_load(dir, &ts, &raw, &err), &err);
    CHECK(ts.step == 10 && ts.samples_seen == 80 && ts.tokens_seen == 800 && ts.world_size == 2);
    CHECK(ts.init_seed == 7 && ts.data_seed == 9 && !strcmp(ts.reason, "periodic"));
    CHECK(json_integer_value(json_object_get(ts.model_config, "d_model")) == 8 && json_array_size(ts.loader) == 2);
    CHECK(raw && json_is_object(json_object_get(raw, "files")));
    char **paths = NULL;
    int n = 0;
    CHECK_OK(pvlm_trainstate_optim_paths(&ts, dir, &paths, &n, &err), &err);
    CHECK(n == 2 && paths && strstr(paths[1], "step_00000010/optim.rank00001.safetensors"));
    pvlm_trainstate_paths_free(paths, n);
    char p[64];
    CHECK(pvlm_trainstate_path(dir, "../x", p, sizeof p, &err) == -1);
    CHECK(pvlm_trainstate_path(dir, "model.safetensors", p, 8, &err) == -1 && strstr(err.msg, "too long"));
    pvlm_trainstate_free(&ts);
    json_decref(raw);
}

static void test_forged(void) {
    struct {
        edit_fn edit;
        const char *expect;
    } cases[] = {
        {up_dir, "not a plain file name"},
        {absolute, "not a plain file name"},
        {dotdot, "not a plain file name"},
        {hidden, "not a plain file name"},
        {unlisted, "not listed in \"files\""},
        {no_model, "model file"},
        {empty_optim, "optim_files is empty"},
        {optim_number, "not a string"},
        {loader_count, "loader states"},
        {neg_samples, "negative"},
        {dp_string, "\"dp\""},
        {no_rng, "rng"},
        {zero_world, "world_size"},
    };
    pvlm_err err = {0};
    char dir[4200];
    CHECK_OK(pvlm_ckptdir_step_path(root, 20, dir, sizeof dir, &err), &err);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_OK(make(20, &err), &err); /* replaces the previous forgery */
        CHECK_OK(forge(20, cases[i].edit, &err), &err);
        json_t *plain = NULL;
        CHECK_MSG(pvlm_ckptdir_verify(dir, &plain, &err) == 0, "case %zu: the forgery must pass the checksum: %s", i,
                  err.msg);
        json_decref(plain);
        pvlm_trainstate ts;
        int rc = pvlm_trainstate_load(dir, &ts, NULL, &err);
        CHECK_MSG(rc == -1 && strstr(err.msg, cases[i].expect) && strstr(err.msg, "state.json"),
                  "case %zu: rc %d, message \"%s\", expected \"%s\"", i, rc, err.msg, cases[i].expect);
        if (!rc) pvlm_trainstate_free(&ts);
        pvlm_ckptdir_resume r;
        CHECK_OK(pvlm_trainstate_find_resume(root, &r, &err), &err);
        CHECK_MSG(r.found && r.step == 10 && r.n_skipped == 1 && r.skipped[0].step == 20 &&
                      strstr(r.skipped[0].reason, cases[i].expect),
                  "case %zu: resume found %d step %lld skipped %d", i, r.found, (long long)r.step, r.n_skipped);
        pvlm_ckptdir_resume_free(&r);
    }
}

static void test_to_json(void) {
    pvlm_err err = {0};
    pvlm_trainstate ts;
    fill(&ts, 3);
    json_decref(ts.optim_files);
    ts.optim_files = NULL;
    json_t *j = pvlm_trainstate_to_json(&ts, &err);
    CHECK(!j && strstr(err.msg, "optim_files"));
    pvlm_trainstate_free(&ts);
}

int main(void) {
    if (pvlm_test_scratch(root, sizeof root, "/tmp/pvlm-test-trainstate", "ckpt", 1)) return 1;
    test_roundtrip();
    test_forged();
    test_to_json();
    return pvlm_test_done("ckpt_trainstate");
}
