/* ckptdir.h - training checkpoint directories: atomic commit, `latest` pointer, retention, verification,
 * resume discovery.
 *
 * Layout of a checkpoint root <dir>:
 *   <dir>/step_00000123/          one committed checkpoint (step zero-padded to 8 digits, more if needed)
 *       model.safetensors, optim*.safetensors, ...   files the trainer writes (any names, flat, no subdirs)
 *       state.json                written by pvlm_ckptdir_commit: the trainer's state object plus
 *                                 "format": "pvlm-ckpt", "version": 1, "step", "time_unix",
 *                                 "files": {name: {"size": bytes, "xxh3": 16 hex digits}} for every other
 *                                 file, and "state_xxh3": XXH3 of the compact, key-sorted JSON of the
 *                                 object without "state_xxh3" (so a flipped byte in state.json is caught)
 *   <dir>/latest                  one line "step_00000123": the last committed checkpoint (a hint; resume
 *                                 scans all step_* directories and takes the newest that verifies)
 *   <dir>/best                    optional JSON {"step", "dir": "step_00000123", "metric", "mode": "min"|"max",
 *                                 "value"}: the checkpoint with the best value of a metric the trainer
 *                                 names (pvlm_ckptdir_offer_best); resume never reads it
 *   <dir>/.tmp.step_00000123/     a checkpoint being written; never read as a checkpoint
 *   <dir>/.trash.*                a directory being deleted (retention, replacement)
 *
 * Protocol for a multi-rank trainer (ranks share the file system):
 *   1. rank 0: pvlm_ckptdir_begin(dir, step) creates a fresh empty tmp dir (and removes leftovers of
 *      crashed runs: other .tmp.* and .trash.* dirs).  -> barrier / broadcast the result.
 *   2. every rank: pvlm_ckptdir_tmp_path(dir, step) and write its own files into it (rank 0 the model and
 *      its optimizer shard, rank r "optim-rank<r>.safetensors"), each durably (io/safetensors.h writes
 *      to a temporary name, fsyncs and renames).  -> all ranks agree whether every write succeeded
 *      (allreduce of an error flag).
 *   3. rank 0: on success pvlm_ckptdir_commit(dir, step, state, keep): fsyncs and checksums every file,
 *      writes state.json, fsyncs the tmp dir, renames it to step_XXXXXXXX, fsyncs <dir>, replaces
 *      `latest` atomically (write + fsync + rename + fsync dir), then applies retention.
 *      On failure anywhere: pvlm_ckptdir_abort(dir, step) removes the tmp dir.
 * A crash at any point leaves either the previous checkpoints untouched plus a .tmp dir (ignored, later
 * removed) or a complete new step dir. Disk full / I/O errors fail the write or the commit with an
 * error naming the file; older checkpoints and `latest` are not touched before the new step dir is
 * complete, and retention runs only after `latest` points to the new one.
 *
 * Retention: keep the newest keep_last checkpoints that verify (0 = keep all), plus, when keep_every > 0,
 * every checkpoint whose step is a multiple of keep_every (forever), plus the one `latest` names, plus
 * the one `best` names. It
 * reads the newest checkpoints back to verify them (the one just committed is not read again), and
 * when one of them fails it deletes nothing: retention never deletes a checkpoint while newer ones
 * are damaged (a resume falls back to the older ones).
 *
 * Ownership: paths are written into caller buffers; pvlm_ckptdir_resume holds a json_t and an array
 * freed by pvlm_ckptdir_resume_free; pvlm_ckptdir_verify's *state is a new reference.
 */
#ifndef PVLM_CKPTDIR_H
#define PVLM_CKPTDIR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define PVLM_CKPTDIR_STATE "state.json"
#define PVLM_CKPTDIR_LATEST "latest"
#define PVLM_CKPTDIR_BEST "best"

/* "step_00000123" into buf. */
void pvlm_ckptdir_step_name(int64_t step, char *buf, size_t cap);
/* Parse "step_<digits>" (exactly); -1 when name is not a step directory name. */
int pvlm_ckptdir_parse_step(const char *name, int64_t *step);
/* "<dir>/step_00000123" and "<dir>/.tmp.step_00000123"; -1 (EINVAL) when the path does not fit. */
int pvlm_ckptdir_step_path(const char *dir, int64_t step, char *buf, size_t cap, pvlm_err *err);
int pvlm_ckptdir_tmp_path(const char *dir, int64_t step, char *buf, size_t cap, pvlm_err *err);

/* Rank 0, step 1: create <dir> if needed, remove leftover .tmp.* / .trash.* dirs, create an empty tmp dir
 * for step (its path into tmp, may be NULL). */
int pvlm_ckptdir_begin(const char *dir, int64_t step, char *tmp, size_t cap, pvlm_err *err);

typedef struct pvlm_ckptdir_retention {
    int keep_last;      /* newest checkpoints to keep; 0 = keep all */
    int64_t keep_every; /* > 0: also keep every step that is a multiple of this, forever */
} pvlm_ckptdir_retention;

/* Rank 0, step 3: seal the tmp dir as <dir>/step_XXXXXXXX (see top). state (borrowed, not modified; may
 * be NULL) is the trainer's object: step, samples seen, config, world size, loader and RNG states...
 * keep may be NULL (keep all). If a step dir of the same step exists already (a re-run after resuming
 * from an older checkpoint), it is replaced. A retention failure after a successful commit is logged
 * as a warning, not returned. final (may be NULL) receives the committed path. */
int pvlm_ckptdir_commit(const char *dir, int64_t step, const json_t *state, const pvlm_ckptdir_retention *keep,
                        char *final, size_t cap, pvlm_err *err);

/* Remove the tmp dir of step (after a failed write). Missing is fine. */
int pvlm_ckptdir_abort(const char *dir, int64_t step, pvlm_err *err);

/* Apply retention now (commit does it). protect_step (>= 0) is never removed. Removed steps are renamed
 * to .trash.* first and then deleted, so a half-deleted directory never looks like a checkpoint. */
int pvlm_ckptdir_prune(const char *dir, const pvlm_ckptdir_retention *keep, int64_t protect_step, pvlm_err *err);

/* Set state's "state_xxh3" to the hash that protects state.json (the commit does this; tests that forge a
 * checkpoint as an attacker would use it too). Returns 0, or -1 with err (out of memory). */
int pvlm_ckptdir_seal(json_t *state, pvlm_err *err);

/* Check a step directory: state.json parses, has format/version, its state_xxh3 matches, its step
 * matches the directory name, and every listed file exists with the listed size and XXH3. The first
 * problem is returned as PVLM_EFORMAT (or PVLM_EIO / PVLM_ENOTFOUND) naming the file. state (may be NULL)
 * receives the parsed state.json (new reference) on success. */
int pvlm_ckptdir_verify(const char *step_dir, json_t **state, pvlm_err *err);

/* Committed step directories under dir (names step_<digits>), ascending; *steps is malloc'd (caller
 * frees; NULL when n = 0). A missing dir gives n = 0. */
int pvlm_ckptdir_list(const char *dir, int64_t **steps, int *n, pvlm_err *err);

/* Step named by <dir>/latest; -1 with PVLM_ENOTFOUND when there is none, PVLM_EFORMAT when garbled. */
int pvlm_ckptdir_read_latest(const char *dir, int64_t *step, pvlm_err *err);

/* Step named by <dir>/best; -1 with PVLM_ENOTFOUND when there is none, PVLM_EFORMAT when garbled.
 * value (may be NULL) receives its metric value. */
int pvlm_ckptdir_read_best(const char *dir, int64_t *step, double *value, pvlm_err *err);
/* Rank 0, after committing step: make `best` name step when value is better than the recorded best
 * (lower with maximize 0, higher with 1), or when there is no usable record yet (none, garbled, another
 * metric or mode, or its step directory is gone). Replaced atomically (write + fsync + rename + fsync
 * dir). A NaN value never becomes best. *is_best (may be NULL) tells whether step is now best. */
int pvlm_ckptdir_offer_best(const char *dir, int64_t step, const char *metric, int maximize, double value,
                            int *is_best, pvlm_err *err);

typedef struct pvlm_ckptdir_skipped {
    int64_t step;
    char reason[1024]; /* the verification error */
} pvlm_ckptdir_skipped;

typedef struct pvlm_ckptdir_resume {
    int found; /* 1: path/step/state name the checkpoint to resume from */
    int64_t step;
    char path[4096];
    json_t *state;                 /* owned: the verified state.json */
    int64_t latest;                /* step named by `latest`, -1 if none or unreadable */
    pvlm_ckptdir_skipped *skipped; /* owned: newer checkpoints that failed verification, newest first */
    int n_skipped;
} pvlm_ckptdir_resume;

/* `--resume auto`: the newest step dir under dir that verifies. Corrupt or incomplete newer ones are
 * listed in r->skipped (the caller reports them); .tmp dirs are never considered. Returns 0 with
 * found = 0 when there is nothing to resume (including a missing dir); -1 only when dir cannot be read.
 * Free r with pvlm_ckptdir_resume_free. */
int pvlm_ckptdir_find_resume(const char *dir, pvlm_ckptdir_resume *r, pvlm_err *err);
void pvlm_ckptdir_resume_free(pvlm_ckptdir_resume *r);

/* An extra check of a checkpoint that verified (a trainer's rules for its state, io/trainstate.h):
 * 0 accepts; -1 with the reason in err rejects it like a corrupt one. */
typedef int (*pvlm_ckptdir_check_fn)(const char *step_dir, const json_t *state, void *ctx, pvlm_err *err);
/* pvlm_ckptdir_find_resume where a checkpoint must also pass check(step_dir, state, ctx) (may be NULL). */
int pvlm_ckptdir_find_resume_checked(const char *dir, pvlm_ckptdir_check_fn check, void *ctx, pvlm_ckptdir_resume *r,
                                     pvlm_err *err);

#endif
