/* test_ckptdir.c - io/ckptdir checkpoint directories. Modes:
 *   commit     atomic commit, state.json fields, latest pointer, replace, abort, refusals
 *   retention  keep last K, every M-th, latest protected
 *   best       the `best` pointer follows the best value of a metric (min and max), ignores NaN and other
 *              metrics' records, and retention never deletes the checkpoint it names
 *   corrupt    verify detects a flipped byte, a truncated file, a missing file, an edited state.json,
 *              a missing state.json; find_resume skips corrupt newest checkpoints
 *   crash      a leftover tmp dir never becomes latest; SIGKILL at random points of repeated commits
 *              never leaves `latest` naming a checkpoint that does not verify
 *   enospc DIR DIR is a tiny file system (the script mounts a 1 MiB tmpfs): a checkpoint that does not
 *              fit fails with a clear error and the older checkpoint and `latest` survive
 *   fsize      the same with RLIMIT_FSIZE (EFBIG) where mounting is not permitted */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/json.h"
#include "core/rng.h"
#include "harness.h"
#include "io/ckptdir.h"
#include "io/safetensors.h"

static char base[4096];

static void fresh(char *dir, size_t cap, const char *name) {
    snprintf(dir, cap, "%s/%s", base, name);
    pvlm_err e;
    pvlm_rm_rf(dir, &e);
    pvlm_mkdir_p(dir, &e);
}

/* Write one file of n pseudo-random bytes (seeded) into d/name, durably. */
static int put_file(const char *d, const char *name, size_t n, uint64_t seed, pvlm_err *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", d, name);
    unsigned char *b = malloc(n ? n : 1);
    pvlm_rng r;
    pvlm_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)pvlm_rng_u32(&r);
    int rc = pvlm_write_file_atomic(p, b, n, err);
    free(b);
    return rc;
}

/* A complete checkpoint of `step` with a model-like safetensors file and an optimizer shard. */
static int make_ckpt(const char *dir, int64_t step, size_t nfloat, const pvlm_ckptdir_retention *keep, pvlm_err *err) {
    char tmp[4200];
    if (pvlm_ckptdir_begin(dir, step, tmp, sizeof tmp, err)) return -1;
    float *w = calloc(nfloat ? nfloat : 1, sizeof *w);
    for (size_t i = 0; i < nfloat; i++) w[i] = (float)(step * 1000 + (int64_t)i);
    int64_t sh[1] = {(int64_t)nfloat};
    pvlm_st_writer sw;
    pvlm_st_writer_init(&sw, err);
    pvlm_st_writer_add(&sw, "w", PVLM_ST_F32, 1, sh, w, err);
    char p[4300];
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    int rc = pvlm_st_writer_write(&sw, p, err);
    pvlm_st_writer_free(&sw);
    free(w);
    if (!rc) rc = put_file(tmp, "optim.rank00001.safetensors", 100, (uint64_t)step, err);
    if (rc) {
        pvlm_err e2;
        pvlm_ckptdir_abort(dir, step, &e2);
        return -1;
    }
    json_t *st = json_pack("{s:I, s:I, s:{s:i}}", "samples_seen", (json_int_t)(step * 8), "world_size", (json_int_t)2,
                           "config", "d_model", 8);
    rc = pvlm_ckptdir_commit(dir, step, st, keep, NULL, 0, err);
    json_decref(st);
    if (rc) {
        pvlm_err e2;
        pvlm_ckptdir_abort(dir, step, &e2);
    }
    return rc;
}

static int64_t latest_of(const char *dir) {
    int64_t s = -1;
    pvlm_err e;
    if (pvlm_ckptdir_read_latest(dir, &s, &e)) return -1;
    return s;
}

static void test_commit(void) {
    char dir[4200], p[4300];
    pvlm_err err = {0};
    fresh(dir, sizeof dir, "commit");
    char name[64];
    pvlm_ckptdir_step_name(123, name, sizeof name);
    CHECK(!strcmp(name, "step_00000123"));
    int64_t s;
    CHECK(pvlm_ckptdir_parse_step("step_00000123", &s) == 0 && s == 123);
    CHECK(pvlm_ckptdir_parse_step("step_123456789012", &s) == 0 && s == 123456789012LL);
    CHECK(pvlm_ckptdir_parse_step("step_", &s) == -1 && pvlm_ckptdir_parse_step("step_12x", &s) == -1 &&
          pvlm_ckptdir_parse_step(".tmp.step_1", &s) == -1);

    CHECK(latest_of(dir) == -1);
    CHECK(pvlm_ckptdir_read_latest(dir, &s, &err) == -1 && err.code == PVLM_ENOTFOUND);
    /* Commit without begin is refused. */
    CHECK(pvlm_ckptdir_commit(dir, 5, NULL, NULL, NULL, 0, &err) == -1 && err.code == PVLM_ENOTFOUND);

    CHECK_OK(make_ckpt(dir, 10, 64, NULL, &err), &err);
    CHECK(latest_of(dir) == 10);
    snprintf(p, sizeof p, "%s/.tmp.step_00000010", dir);
    CHECK(!pvlm_file_exists(p)); /* renamed away */
    snprintf(p, sizeof p, "%s/step_00000010", dir);
    json_t *st = NULL;
    CHECK_OK(pvlm_ckptdir_verify(p, &st, &err), &err);
    if (st) {
        int64_t v;
        const char *f;
        CHECK(pvlm_json_get_int(st, "step", &v, "state", &err) == 0 && v == 10);
        CHECK(pvlm_json_get_int(st, "version", &v, "state", &err) == 0 && v == 1);
        CHECK(pvlm_json_get_str(st, "format", &f, "state", &err) == 0 && !strcmp(f, "pvlm-ckpt"));
        CHECK(pvlm_json_get_int(st, "samples_seen", &v, "state", &err) == 0 && v == 80);
        json_t *files = json_object_get(st, "files");
        CHECK(json_object_size(files) == 2);
        json_t *o = json_object_get(files, "optim.rank00001.safetensors");
        CHECK(pvlm_json_get_int(o, "size", &v, "state", &err) == 0 && v == 100);
        CHECK(json_object_get(files, "state.json") == NULL);
        json_decref(st);
    }
    /* latest holds exactly one line. */
    char *buf;
    size_t n;
    snprintf(p, sizeof p, "%s/latest", dir);
    CHECK_OK(pvlm_read_file(p, &buf, &n, &err), &err);
    CHECK(n == 14 && !strcmp(buf, "step_00000010\n"));
    free(buf);

    CHECK_OK(make_ckpt(dir, 20, 64, NULL, &err), &err);
    CHECK(latest_of(dir) == 20);
    int64_t *steps;
    int ns;
    CHECK_OK(pvlm_ckptdir_list(dir, &steps, &ns, &err), &err);
    CHECK(ns == 2 && steps[0] == 10 && steps[1] == 20);
    free(steps);

    /* Re-committing an existing step (training re-ran it after resuming from an older one) replaces it. */
    CHECK_OK(make_ckpt(dir, 10, 32, NULL, &err), &err);
    snprintf(p, sizeof p, "%s/step_00000010", dir);
    CHECK_OK(pvlm_ckptdir_verify(p, NULL, &err), &err);
    snprintf(p, sizeof p, "%s/step_00000010/model.safetensors", dir);
    pvlm_st_file f;
    CHECK_OK(pvlm_st_open(&f, p, &err), &err);
    if (f.fd >= 0) {
        CHECK(f.n_tensors == 1 && f.tensors[0].numel == 32);
        pvlm_st_close(&f);
    }
    CHECK(latest_of(dir) == 10); /* latest follows the last commit */

    /* Abort removes the tmp dir and touches nothing else. */
    char tmp[4200];
    CHECK_OK(pvlm_ckptdir_begin(dir, 30, tmp, sizeof tmp, &err), &err);
    CHECK(pvlm_is_dir(tmp));
    put_file(tmp, "model.safetensors", 10, 1, &err);
    CHECK_OK(pvlm_ckptdir_abort(dir, 30, &err), &err);
    CHECK(!pvlm_file_exists(tmp));
    CHECK(latest_of(dir) == 10);

    /* A partial file of an unfinished write (a writer's "<name>.tmp.<pid>") blocks the commit. */
    CHECK_OK(pvlm_ckptdir_begin(dir, 40, tmp, sizeof tmp, &err), &err);
    put_file(tmp, "model.safetensors", 10, 1, &err);
    put_file(tmp, "optim.rank00001.safetensors.tmp.999", 10, 1, &err);
    CHECK(pvlm_ckptdir_commit(dir, 40, NULL, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "unfinished"));
    snprintf(p, sizeof p, "%s/step_00000040", dir);
    CHECK(!pvlm_file_exists(p));
    CHECK(latest_of(dir) == 10);
    /* A subdirectory is refused too. */
    pvlm_ckptdir_abort(dir, 40, &err);
    CHECK_OK(pvlm_ckptdir_begin(dir, 40, tmp, sizeof tmp, &err), &err);
    snprintf(p, sizeof p, "%s/sub", tmp);
    mkdir(p, 0755);
    CHECK(pvlm_ckptdir_commit(dir, 40, NULL, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "regular"));
    /* begin of another step cleans leftovers (the failed step 40 tmp dir). */
    CHECK_OK(pvlm_ckptdir_begin(dir, 41, tmp, sizeof tmp, &err), &err);
    snprintf(p, sizeof p, "%s/.tmp.step_00000040", dir);
    CHECK(!pvlm_file_exists(p));
    pvlm_ckptdir_abort(dir, 41, &err);
    /* A state that is not an object is refused. */
    CHECK_OK(pvlm_ckptdir_begin(dir, 42, tmp, sizeof tmp, &err), &err);
    json_t *arr = json_array();
    CHECK(pvlm_ckptdir_commit(dir, 42, arr, NULL, NULL, 0, &err) == -1);
    json_decref(arr);
    /* ...and an empty checkpoint (only state.json) is fine. */
    char fin[4200];
    CHECK_OK(pvlm_ckptdir_commit(dir, 42, NULL, NULL, fin, sizeof fin, &err), &err);
    CHECK(strstr(fin, "step_00000042") != NULL);
    CHECK_OK(pvlm_ckptdir_verify(fin, NULL, &err), &err);
    /* A missing directory lists as empty and has nothing to resume. */
    snprintf(p, sizeof p, "%s/nonexistent", dir);
    CHECK_OK(pvlm_ckptdir_list(p, &steps, &ns, &err), &err);
    CHECK(ns == 0 && steps == NULL);
    pvlm_ckptdir_resume r;
    CHECK_OK(pvlm_ckptdir_find_resume(p, &r, &err), &err);
    CHECK(r.found == 0 && r.n_skipped == 0 && r.latest == -1);
    pvlm_ckptdir_resume_free(&r);
}

static int has_step(const char *dir, int64_t s) {
    char p[4300];
    pvlm_err e;
    pvlm_ckptdir_step_path(dir, s, p, sizeof p, &e);
    return pvlm_is_dir(p);
}

static void test_retention(void) {
    char dir[4200];
    pvlm_err err = {0};
    fresh(dir, sizeof dir, "retention");
    pvlm_ckptdir_retention keep = {.keep_last = 2, .keep_every = 0};
    for (int64_t s = 1; s <= 6; s++) CHECK_OK(make_ckpt(dir, s * 10, 16, &keep, &err), &err);
    int64_t *steps;
    int n;
    CHECK_OK(pvlm_ckptdir_list(dir, &steps, &n, &err), &err);
    CHECK(n == 2 && steps[0] == 50 && steps[1] == 60);
    free(steps);

    fresh(dir, sizeof dir, "retention_m");
    keep = (pvlm_ckptdir_retention){.keep_last = 2, .keep_every = 30};
    for (int64_t s = 1; s <= 10; s++) CHECK_OK(make_ckpt(dir, s * 10, 16, &keep, &err), &err);
    CHECK_OK(pvlm_ckptdir_list(dir, &steps, &n, &err), &err);
    /* multiples of 30 forever (30, 60, 90) plus the last two (90, 100) */
    CHECK_MSG(n == 4 && steps[0] == 30 && steps[1] == 60 && steps[2] == 90 && steps[3] == 100, "n=%d", n);
    free(steps);
    /* No .trash leftovers. */
    char p[4300];
    snprintf(p, sizeof p, "%s/.trash.step_00000010.%ld", dir, (long)getpid());
    CHECK(!pvlm_file_exists(p));

    /* keep_last 0 keeps everything. */
    fresh(dir, sizeof dir, "retention_all");
    keep = (pvlm_ckptdir_retention){.keep_last = 0, .keep_every = 0};
    for (int64_t s = 1; s <= 4; s++) CHECK_OK(make_ckpt(dir, s, 16, &keep, &err), &err);
    CHECK(has_step(dir, 1) && has_step(dir, 4));

    /* The checkpoint `latest` names survives pruning even when it is not among the newest K
     * (e.g. newer ones were written by a run that then re-committed an older step). */
    fresh(dir, sizeof dir, "retention_latest");
    for (int64_t s = 1; s <= 4; s++) CHECK_OK(make_ckpt(dir, s, 16, NULL, &err), &err);
    CHECK_OK(make_ckpt(dir, 2, 16, NULL, &err), &err); /* latest = 2 */
    keep = (pvlm_ckptdir_retention){.keep_last = 1, .keep_every = 0};
    CHECK_OK(pvlm_ckptdir_prune(dir, &keep, -1, &err), &err);
    CHECK(has_step(dir, 2) && has_step(dir, 4) && !has_step(dir, 1) && !has_step(dir, 3));
}

/* A run that evaluates at every checkpoint: the value of step s is vals[i]; keep the newest 2. */
static void test_best(void) {
    char dir[4200];
    pvlm_err err = {0};
    fresh(dir, sizeof dir, "best");
    pvlm_ckptdir_retention keep = {.keep_last = 2, .keep_every = 0};
    const double vals[6] = {5.0, 3.0, 4.0, NAN, 3.5, 6.0}; /* best (min) is step 20 */
    int64_t s = -1;
    double v = 0;
    CHECK(pvlm_ckptdir_read_best(dir, &s, &v, &err) == -1 && err.code == PVLM_ENOTFOUND);
    for (int i = 0; i < 6; i++) {
        int64_t step = (i + 1) * 10;
        int is_best = -1;
        CHECK_OK(make_ckpt(dir, step, 16, &keep, &err), &err);
        CHECK_OK(pvlm_ckptdir_offer_best(dir, step, "val_loss_image", 0, vals[i], &is_best, &err), &err);
        CHECK_MSG(is_best == (i <= 1), "step %lld is_best %d", (long long)step, is_best);
    }
    CHECK_OK(pvlm_ckptdir_read_best(dir, &s, &v, &err), &err);
    CHECK_MSG(s == 20 && v == 3.0, "best %lld %g", (long long)s, v);
    /* retention kept the newest two, the best one, and nothing else */
    int64_t *steps;
    int n;
    CHECK_OK(pvlm_ckptdir_list(dir, &steps, &n, &err), &err);
    CHECK_MSG(n == 3 && steps[0] == 20 && steps[1] == 50 && steps[2] == 60, "n=%d", n);
    free(steps);
    CHECK(latest_of(dir) == 60); /* resume still takes the newest */
    pvlm_ckptdir_resume r;
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(r.found && r.step == 60);
    pvlm_ckptdir_resume_free(&r);

    /* a new best moves the pointer; the old best is then an ordinary checkpoint and is pruned */
    int is_best = 0;
    CHECK_OK(make_ckpt(dir, 70, 16, &keep, &err), &err);
    CHECK_OK(pvlm_ckptdir_offer_best(dir, 70, "val_loss_image", 0, 2.5, &is_best, &err), &err);
    CHECK(is_best == 1);
    CHECK_OK(make_ckpt(dir, 80, 16, &keep, &err), &err);
    CHECK(has_step(dir, 70) && has_step(dir, 80) && !has_step(dir, 20) && !has_step(dir, 60));

    /* another metric or mode replaces the record; max mode keeps the highest */
    CHECK_OK(pvlm_ckptdir_offer_best(dir, 80, "cider", 1, 0.25, &is_best, &err), &err);
    CHECK(is_best == 1);
    CHECK_OK(make_ckpt(dir, 90, 16, &keep, &err), &err);
    CHECK_OK(pvlm_ckptdir_offer_best(dir, 90, "cider", 1, 0.20, &is_best, &err), &err);
    CHECK(is_best == 0);
    CHECK_OK(make_ckpt(dir, 100, 16, &keep, &err), &err);
    CHECK_OK(pvlm_ckptdir_read_best(dir, &s, &v, &err), &err);
    CHECK(s == 80 && v == 0.25 && has_step(dir, 80) && has_step(dir, 90) && !has_step(dir, 70));

    /* a garbled record is reported and then replaced by the next offer */
    char p[4300];
    snprintf(p, sizeof p, "%s/best", dir);
    CHECK_OK(pvlm_write_file_atomic(p, "{\"step\": \"x\"}", 13, &err), &err);
    CHECK(pvlm_ckptdir_read_best(dir, &s, &v, &err) == -1 && strstr(err.msg, "best"));
    CHECK_OK(pvlm_ckptdir_offer_best(dir, 100, "cider", 1, 0.1, &is_best, &err), &err);
    CHECK(is_best == 1);
}

/* Flip one byte of a file in place. */
static void flip(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    fseek(f, off, off < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x01, f);
    fclose(f);
}

static void expect_bad(const char *what, const char *stepdir, const char *needle) {
    pvlm_err err = {0};
    int rc = pvlm_ckptdir_verify(stepdir, NULL, &err);
    CHECK_MSG(rc == -1, "%s: verified", what);
    CHECK_MSG(rc == 0 || strstr(err.msg, needle), "%s: message lacks '%s': %s", what, needle, err.msg);
}

static void test_corrupt(void) {
    char dir[4200], sd[4300], p[4400];
    pvlm_err err = {0};
    fresh(dir, sizeof dir, "corrupt");
    for (int64_t s = 1; s <= 6; s++) CHECK_OK(make_ckpt(dir, s, 256, NULL, &err), &err);

    /* step 6: a flipped byte in the model data */
    pvlm_ckptdir_step_path(dir, 6, sd, sizeof sd, &err);
    snprintf(p, sizeof p, "%s/model.safetensors", sd);
    CHECK_OK(pvlm_ckptdir_verify(sd, NULL, &err), &err);
    flip(p, -5);
    expect_bad("flipped byte", sd, "model.safetensors");
    /* step 5: a missing file */
    pvlm_ckptdir_step_path(dir, 5, sd, sizeof sd, &err);
    snprintf(p, sizeof p, "%s/optim.rank00001.safetensors", sd);
    unlink(p);
    expect_bad("missing file", sd, "optim.rank00001.safetensors");
    /* step 4: a truncated file */
    pvlm_ckptdir_step_path(dir, 4, sd, sizeof sd, &err);
    snprintf(p, sizeof p, "%s/model.safetensors", sd);
    CHECK(truncate(p, 100) == 0);
    expect_bad("truncated file", sd, "size");
    /* step 3: an edited state.json (a value changed, still valid JSON) */
    pvlm_ckptdir_step_path(dir, 3, sd, sizeof sd, &err);
    snprintf(p, sizeof p, "%s/state.json", sd);
    json_t *j = pvlm_json_load_file(p, &err);
    json_object_set_new(j, "samples_seen", json_integer(999));
    pvlm_json_save_atomic(j, p, &err);
    json_decref(j);
    expect_bad("edited state.json", sd, "state.json");
    /* step 2 (not the newest corrupt one yet): state.json removed -> incomplete */
    pvlm_ckptdir_step_path(dir, 2, sd, sizeof sd, &err);
    pvlm_ckptdir_step_path(dir, 1, p, sizeof p, &err);
    CHECK_OK(pvlm_ckptdir_verify(p, NULL, &err), &err);

    pvlm_ckptdir_resume r;
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(r.found && r.step == 2 && r.n_skipped == 4 && r.latest == 6);
    CHECK(r.n_skipped == 4 && r.skipped[0].step == 6 && r.skipped[3].step == 3);
    CHECK(r.n_skipped == 4 && strstr(r.skipped[1].reason, "missing"));
    CHECK(r.state && json_integer_value(json_object_get(r.state, "samples_seen")) == 16);
    CHECK(strstr(r.path, "step_00000002") != NULL);
    pvlm_ckptdir_resume_free(&r);

    snprintf(p, sizeof p, "%s/state.json", sd);
    unlink(p);
    expect_bad("missing state.json", sd, "state.json");
    /* garbage state.json */
    pvlm_write_file_atomic(p, "{\"step\": ", 9, &err);
    expect_bad("garbled state.json", sd, "state.json");
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(r.found && r.step == 1 && r.n_skipped == 5);
    pvlm_ckptdir_resume_free(&r);
    /* a state.json copied into the wrong step dir */
    pvlm_ckptdir_step_path(dir, 1, p, sizeof p, &err);
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s/state.json' '%s/state.json'", p, sd);
    CHECK(system(cmd) == 0);
    expect_bad("state.json of another step", sd, "records step 1");
    /* all corrupt: nothing to resume */
    snprintf(cmd, sizeof cmd, "%s/state.json", p);
    flip(cmd, 20);
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(!r.found && r.n_skipped == 6);
    pvlm_ckptdir_resume_free(&r);
    /* a garbled latest pointer is reported as such */
    snprintf(p, sizeof p, "%s/latest", dir);
    pvlm_write_file_atomic(p, "xyz\n", 4, &err);
    int64_t s;
    CHECK(pvlm_ckptdir_read_latest(dir, &s, &err) == -1 && err.code == PVLM_EFORMAT);
}

/* Child of the crash test: commit steps forever with files of a few hundred KB. */
static void crash_child(const char *dir, int64_t first) {
    pvlm_err err;
    pvlm_ckptdir_retention keep = {.keep_last = 3, .keep_every = 0};
    for (int64_t s = first;; s++)
        if (make_ckpt(dir, s, 50000 + (size_t)(s % 7) * 10000, &keep, &err)) _exit(3);
}

static void test_crash(void) {
    char dir[4200], tmp[4300];
    pvlm_err err = {0};
    fresh(dir, sizeof dir, "crash");
    CHECK_OK(make_ckpt(dir, 1, 64, NULL, &err), &err);
    /* A crash mid-write: a tmp dir with a half-written file and no state.json. */
    CHECK_OK(pvlm_ckptdir_begin(dir, 2, tmp, sizeof tmp, &err), &err);
    put_file(tmp, "model.safetensors", 1000, 7, &err);
    pvlm_ckptdir_resume r;
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(r.found && r.step == 1 && r.n_skipped == 0 && r.latest == 1);
    pvlm_ckptdir_resume_free(&r);
    /* A step dir without state.json (someone renamed a tmp dir by hand) is skipped as incomplete. */
    char sd[4300];
    pvlm_ckptdir_step_path(dir, 2, sd, sizeof sd, &err);
    CHECK(rename(tmp, sd) == 0);
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(r.found && r.step == 1 && r.n_skipped == 1 && r.skipped[0].step == 2);
    CHECK(r.n_skipped == 1 && strstr(r.skipped[0].reason, "incomplete"));
    pvlm_ckptdir_resume_free(&r);
    pvlm_rm_rf(sd, &err);
    /* The next begin removes the leftover. */
    CHECK_OK(pvlm_ckptdir_begin(dir, 2, tmp, sizeof tmp, &err), &err);
    CHECK_OK(pvlm_ckptdir_commit(dir, 2, NULL, NULL, NULL, 0, &err), &err);
    CHECK(latest_of(dir) == 2);

    /* SIGKILL at random moments of continuous checkpointing: after every kill, `latest` names a
     * checkpoint that verifies, and find_resume returns exactly that one (newer dirs never exist
     * half-written under a step name). */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pvlm_rng rng;
    pvlm_rng_seed(&rng, 777, 0);
    int64_t next = 3;
    int kills = 0;
    for (int it = 0; it < 25; it++) {
        pid_t pid = fork();
        if (pid == 0) crash_child(dir, next);
        if (it % 5 == 4) {
            /* Every 5th round, wait until the child has committed something (up to 10 s on a loaded
             * machine), so the loop makes progress and kills land in every phase of the protocol. */
            int64_t before = latest_of(dir);
            for (int k = 0; k < 1000 && latest_of(dir) == before; k++) {
                struct timespec d = {0, 10000000};
                nanosleep(&d, NULL);
            }
        }
        struct timespec d = {0, (long)(1000000 + pvlm_rng_below(&rng, 30000000))};
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) kills++;
        CHECK_MSG(!(WIFEXITED(status) && WEXITSTATUS(status) == 3), "child failed to checkpoint");
        int64_t l = latest_of(dir);
        CHECK(l >= 2);
        char p[4300];
        pvlm_ckptdir_step_path(dir, l, p, sizeof p, &err);
        CHECK_MSG(pvlm_ckptdir_verify(p, NULL, &err) == 0, "iteration %d: latest step %lld does not verify: %s", it,
                  (long long)l, err.msg);
        CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
        /* A crash after the rename but before `latest` is replaced leaves a newer complete checkpoint
         * (possibly several in a row across kills); whatever exists under a step name verifies. */
        CHECK_MSG(r.found && r.step >= l && r.n_skipped == 0, "iteration %d: resume %lld, latest %lld, skipped %d", it,
                  (long long)r.step, (long long)l, r.n_skipped);
        next = (r.found ? r.step : l) + 1;
        pvlm_ckptdir_resume_free(&r);
    }
    printf("crash: %d kills, reached step %lld\n", kills, (long long)next);
    CHECK(next > 7); /* at least the 5 waited-for commits */
}

/* Write the old checkpoint (small), then one that does not fit: clear error, old one intact. */
static void test_nospace(const char *dir, const char *expect_errno_text) {
    pvlm_err err = {0};
    pvlm_ckptdir_retention keep = {.keep_last = 1, .keep_every = 0};
    CHECK_OK(make_ckpt(dir, 1, 1000, &keep, &err), &err);
    CHECK(latest_of(dir) == 1);
    /* 4 MB of floats: more than the 1 MiB tmpfs / the 512 KB file size limit. */
    int rc = make_ckpt(dir, 2, 1000000, &keep, &err);
    CHECK(rc == -1);
    printf("expected failure: %s\n", err.msg);
    CHECK_MSG(rc == 0 || strstr(err.msg, expect_errno_text), "message lacks '%s': %s", expect_errno_text, err.msg);
    CHECK_MSG(rc == 0 || strstr(err.msg, "model.safetensors"), "message does not name the file: %s", err.msg);
    CHECK(latest_of(dir) == 1);
    char p[4300];
    pvlm_ckptdir_step_path(dir, 1, p, sizeof p, &err);
    CHECK_OK(pvlm_ckptdir_verify(p, NULL, &err), &err);
    pvlm_ckptdir_step_path(dir, 2, p, sizeof p, &err);
    CHECK(!pvlm_file_exists(p));
    pvlm_ckptdir_tmp_path(dir, 2, p, sizeof p, &err);
    CHECK(!pvlm_file_exists(p)); /* aborted */
    pvlm_ckptdir_resume r;
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(r.found && r.step == 1 && r.n_skipped == 0);
    pvlm_ckptdir_resume_free(&r);
    /* After space is freed (here: a smaller checkpoint) checkpointing works again. */
    CHECK_OK(make_ckpt(dir, 3, 1000, &keep, &err), &err);
    CHECK(latest_of(dir) == 3 && !has_step(dir, 1));
}

/* On a real small file system: the data files fit, then the disk fills up before the commit writes
 * state.json. The commit fails cleanly and step 3 stays the checkpoint to resume from. */
static void test_nospace_at_commit(const char *dir) {
    pvlm_err err = {0};
    char tmp[4200], filler[4300];
    CHECK_OK(pvlm_ckptdir_begin(dir, 4, tmp, sizeof tmp, &err), &err);
    CHECK_OK(put_file(tmp, "model.safetensors", 5000, 4, &err), &err);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    FILE *f = fopen(filler, "wb");
    static char block[4096];
    size_t total = 0;
    while (f && fwrite(block, 1, sizeof block, f) == sizeof block && fflush(f) == 0) total += sizeof block;
    if (f) fclose(f);
    int rc = pvlm_ckptdir_commit(dir, 4, NULL, NULL, NULL, 0, &err);
    CHECK(rc == -1);
    printf("expected failure at commit (after filling %zu bytes): %s\n", total, err.msg);
    CHECK_MSG(rc == 0 || strstr(err.msg, "state.json"), "message does not name state.json: %s", err.msg);
    CHECK_OK(pvlm_ckptdir_abort(dir, 4, &err), &err);
    CHECK(latest_of(dir) == 3 && !has_step(dir, 4));
    unlink(filler);
    pvlm_ckptdir_resume r;
    CHECK_OK(pvlm_ckptdir_find_resume(dir, &r, &err), &err);
    CHECK(r.found && r.step == 3 && r.n_skipped == 0);
    pvlm_ckptdir_resume_free(&r);
}

int main(int argc, char **argv) {
    if (pvlm_test_scratch(base, sizeof base, "/tmp/pvlm_test_ckptdir", NULL, 0)) return 1;
    const char *mode = argc > 1 ? argv[1] : "all";
    int all = !strcmp(mode, "all");
    if (all || !strcmp(mode, "commit")) test_commit();
    if (all || !strcmp(mode, "retention")) test_retention();
    if (all || !strcmp(mode, "best")) test_best();
    if (all || !strcmp(mode, "corrupt")) test_corrupt();
    if (all || !strcmp(mode, "crash")) test_crash();
    if (!strcmp(mode, "enospc")) {
        if (argc < 3) return 2;
        test_nospace(argv[2], "No space left");
        test_nospace_at_commit(argv[2]);
    }
    if (!strcmp(mode, "fsize")) {
        /* Without a small file system: cap the file size so the big write fails with EFBIG. */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {512 * 1024, 512 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        char dir[4200];
        fresh(dir, sizeof dir, "fsize");
        test_nospace(dir, "too large");
    }
    return pvlm_test_done(mode);
}
