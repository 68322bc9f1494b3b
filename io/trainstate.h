/* trainstate.h - the training state a checkpoint's state.json holds: one module writes, reads and
 * validates its keys (pvlm pretrain saves and resumes with it, pvlm inspect reports it).
 *
 * Keys (docs/checkpoint.md, "state.json"), beside the ones io/ckptdir adds (format, version, step,
 * time_unix, files, state_xxh3):
 *   step, samples_seen, tokens_seen (integers >= 0), world_size (>= 1), reason (string),
 *   config (object: every resolved flag), model_config (object), dp (object: mpi/dp counters),
 *   loader (array of world_size objects: one loader state per rank),
 *   optim_files (non-empty array of file names), rng: {init_seed, data_seed}.
 * The model weights are always PVLM_TRAINSTATE_MODEL.
 *
 * Trust rule: every file a checkpoint loads (the model file and each optim_files entry) is a plain
 * name inside its step directory (no '/', not "." or "..", no leading '.') and is listed in state.json's
 * "files", so io/ckptdir's verification has checked its size and XXH3. A state.json that breaks the
 * rule (a forged "../step_X/optim.safetensors", a model file left out of "files") is rejected like a
 * corrupt one.
 *
 * Ownership: a pvlm_trainstate owns references to its JSON members and is released with
 * pvlm_trainstate_free; pvlm_trainstate_to_json returns a new reference; pvlm_trainstate_from_json
 * takes new references to the parts of j it keeps (j stays the caller's).
 */
#ifndef PVLM_TRAINSTATE_H
#define PVLM_TRAINSTATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/ckptdir.h"

#define PVLM_TRAINSTATE_MODEL "model.safetensors"

typedef struct pvlm_trainstate {
    int64_t step, samples_seen, tokens_seen, init_seed, data_seed;
    int world_size;
    char reason[64];
    json_t *config, *model_config, *dp; /* owned objects */
    json_t *loader;                     /* owned array, world_size loader states */
    json_t *optim_files;                /* owned array of plain file names */
} pvlm_trainstate;

/* The state.json object of s (new reference), for pvlm_ckptdir_commit (which adds "files", the step
 * and the checksum). NULL with PVLM_ENOMEM or PVLM_EINVAL (a missing member) in err. */
json_t *pvlm_trainstate_to_json(const pvlm_trainstate *s, pvlm_err *err);

/* Parse and validate a state.json object (as pvlm_ckptdir_verify returns it, with "files") into *s
 * (zeroed first; on failure *s holds nothing). what names the file in errors. */
int pvlm_trainstate_from_json(pvlm_trainstate *s, const json_t *j, const char *what, pvlm_err *err);

/* Verify the step directory (io/ckptdir: checksums of state.json and every listed file) and parse its
 * state into *s. raw (may be NULL) receives the whole state.json (new reference). */
int pvlm_trainstate_load(const char *step_dir, pvlm_trainstate *s, json_t **raw, pvlm_err *err);

/* "<step_dir>/<name>" of a file the state names (a plain name, see top); -1 when it does not fit. */
int pvlm_trainstate_path(const char *step_dir, const char *name, char *buf, size_t cap, pvlm_err *err);

/* Paths of the optimizer files: *paths is a malloc'd array of *n malloc'd strings (free with
 * pvlm_trainstate_paths_free). */
int pvlm_trainstate_optim_paths(const pvlm_trainstate *s, const char *step_dir, char ***paths, int *n, pvlm_err *err);
void pvlm_trainstate_paths_free(char **paths, int n);

/* `--resume auto` over training checkpoints: pvlm_ckptdir_find_resume, where a checkpoint whose state
 * breaks the rules above is skipped (and listed) like a corrupt one. */
int pvlm_trainstate_find_resume(const char *dir, pvlm_ckptdir_resume *r, pvlm_err *err);

void pvlm_trainstate_free(pvlm_trainstate *s);

#endif
