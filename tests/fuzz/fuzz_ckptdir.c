/* fuzz_ckptdir.c - a checkpoint directory's state.json and file list, through io/ckptdir's verification
 * and io/trainstate (the training-state module): pvlm_trainstate_load of a step directory and
 * pvlm_trainstate_find_resume of its root.
 *
 * Input: byte 0 holds flags, the rest is state.json. Flag bit 0 seals the JSON first (when it parses as
 * an object) with the state_xxh3 io/ckptdir expects, so mutations get past the checksum into the file
 * list and the training-state rules, as a forger's would. The step directory step_00000002 holds fixed
 * files (pvlm_fuzz_ckptdir_files: a model, an optimizer file, a subdirectory); beside it lie
 * step_00000001 with its own optimizer file and a file "secret", targets for "../" names.
 *
 * Invariants (abort when broken): a state that loads names only plain files inside its step directory,
 * each listed in "files"; it survives pvlm_trainstate_to_json -> pvlm_trainstate_from_json unchanged;
 * a checkpoint --resume auto picks is one that pvlm_trainstate_load accepts.
 * regressions/ckptdir/: a valid sealed state (the invariants run) and an optimizer file in another step. */
#include <stdlib.h>
#include <sys/stat.h>

#include "core/fsutil.h"
#include "fuzz.h"
#include "io/ckptdir.h"
#include "io/trainstate.h"

int pvlm_fuzz_ckptdir_files(const char *step_dir, pvlm_err *err) {
    static const char *const files[][2] = {{"model.safetensors", "model bytes"},
                                           {"optim.safetensors", "optimizer"},
                                           {"tokenizer-vocab.bpe", "#version: 0.2\n"}};
    char p[4200];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (pvlm_path_join(p, sizeof p, step_dir, files[i][0], err) ||
            pvlm_write_file_atomic(p, files[i][1], strlen(files[i][1]), err))
            return -1;
    return pvlm_path_join(p, sizeof p, step_dir, "sub", err) || pvlm_mkdir_p(p, err);
}

static char g_root[4096]; /* the scratch root of this process, removed at exit */

static void cleanup(void) {
    if (g_root[0]) pvlm_rm_rf(g_root, NULL);
}

/* Once per process: the scratch root with both step directories. */
static int setup(char *root, size_t cap, char *step, size_t scap) {
    const char *tmp = getenv("TMPDIR");
    snprintf(root, cap, "%s/pvlm-fuzz-ckptdir-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) return -1;
    snprintf(g_root, sizeof g_root, "%s", root);
    atexit(cleanup);
    pvlm_err err = {0};
    char old[4200], p[4300];
    if (pvlm_ckptdir_step_path(root, 2, step, scap, &err) || pvlm_ckptdir_step_path(root, 1, old, sizeof old, &err) ||
        pvlm_mkdir_p(step, &err) || pvlm_mkdir_p(old, &err) || pvlm_fuzz_ckptdir_files(step, &err))
        return -1;
    if (pvlm_path_join(p, sizeof p, old, "optim.safetensors", &err) || pvlm_write_file_atomic(p, "old", 3, &err))
        return -1;
    if (pvlm_path_join(p, sizeof p, root, "secret", &err) || pvlm_write_file_atomic(p, "secret", 6, &err)) return -1;
    return 0;
}

/* Plain write without fsync: the harness rewrites state.json at every input, durability is not tested here. */
static int put(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) != 0 || w != n ? -1 : 0;
}

/* state.json from the input: sealed when asked and possible, else the bytes as they are. */
static int write_state(const char *step, const uint8_t *data, size_t size, pvlm_err *err) {
    char sp[4200];
    if (pvlm_path_join(sp, sizeof sp, step, PVLM_CKPTDIR_STATE, err)) return -1;
    json_t *j = (data[0] & 1) ? json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return put(sp, data + 1, size - 1);
    }
    pvlm_ckptdir_seal(j, NULL); /* out of memory: written unsealed, which verification refuses */
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    int rc = s ? put(sp, s, strlen(s)) : 0;
    free(s);
    return rc;
}

static void require(int cond, const char *what) {
    if (cond) return;
    fprintf(stderr, "fuzz_ckptdir: invariant broken: %s\n", what);
    abort();
}

/* The invariants of a state that loaded. */
static void check_loaded(const char *step, const pvlm_trainstate *ts, const json_t *raw) {
    const json_t *files = json_object_get(raw, "files");
    require(json_is_object(json_object_get(files, PVLM_TRAINSTATE_MODEL)), "model file not listed");
    char **paths = NULL;
    int n = 0;
    pvlm_err err = {0};
    require(pvlm_trainstate_optim_paths(ts, step, &paths, &n, &err) == 0 && n > 0, "optimizer paths");
    size_t len = strlen(step);
    for (int i = 0; i < n; i++) {
        const char *name = paths[i] + len + 1;
        require(!strncmp(paths[i], step, len) && paths[i][len] == '/', "optimizer path outside the step directory");
        require(!strchr(name, '/') && name[0] != '.', "optimizer file name is not plain");
        require(json_is_object(json_object_get(files, name)), "optimizer file not listed in files");
    }
    pvlm_trainstate_paths_free(paths, n);
    /* round trip: what to_json writes, from_json reads back the same */
    json_t *j = pvlm_trainstate_to_json(ts, &err);
    require(j != NULL, "to_json of a loaded state");
    json_object_set(j, "files", (json_t *)files);
    pvlm_trainstate back;
    require(pvlm_trainstate_from_json(&back, j, "round trip", &err) == 0, "from_json of to_json");
    require(back.step == ts->step && back.samples_seen == ts->samples_seen && back.world_size == ts->world_size &&
                json_equal(back.optim_files, ts->optim_files) && json_equal(back.loader, ts->loader),
            "round trip changed the state");
    pvlm_trainstate_free(&back);
    json_decref(j);
}

int pvlm_fuzz_ckptdir(const uint8_t *data, size_t size) {
    static char root[4096], step[4200];
    static int ready;
    if (!ready) {
        if (setup(root, sizeof root, step, sizeof step)) return 0;
        ready = 1;
    }
    if (size < 1) return 0;
    pvlm_err err = {0};
    if (write_state(step, data, size, &err)) return 0;
    pvlm_trainstate ts;
    json_t *raw = NULL;
    int loaded = pvlm_trainstate_load(step, &ts, &raw, &err) == 0;
    if (loaded) {
        check_loaded(step, &ts, raw);
        pvlm_trainstate_free(&ts);
        json_decref(raw);
    }
    pvlm_ckptdir_resume r;
    if (pvlm_trainstate_find_resume(root, &r, &err) == 0) {
        require(r.found == loaded && (!r.found || r.step == 2), "resume disagrees with trainstate_load");
        pvlm_ckptdir_resume_free(&r);
    }
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_ckptdir)
