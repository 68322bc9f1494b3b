/* checkpoint.h - model weights and AdamW optimizer state as safetensors files.
 *
 * Model file ("format": "pvlm-model", "version": "1"): one F32 tensor per view of the model's table
 * (model.h), under the view's name and shape (PyTorch Linear layout [out, in], row-major), and in
 * __metadata__ "pvlm_config" = the model config as compact JSON (pvlm_model_config_to_json), "n_params",
 * "pvlm_data_xxh3" (data checksum), plus the caller's extra keys. Loading checks the checksum, the
 * config (pvlm_model_config_from_json validates it), every tensor's presence, dtype and shape, rejects
 * unexpected tensors and NaN/Inf values, and names the file and tensor in every error.
 *
 * Optimizer files ("format": "pvlm-optim", "version": "1"), two layouts, both with metadata "layout",
 * "n_params", "range_begin", "range_end", "step" (the AdamW step t, 1-based, of the moments):
 *   "full": tensors "<view>.m" and "<view>.v" with the view's shape (first and second moments).
 *   "flat": a ZeRO-1 per-rank slice: tensors "m" and "v", F32 [range_end - range_begin], holding the
 *           flat-buffer elements [range_begin, range_end); also "rank" and "world_size".
 * pvlm_ckpt_optim_load_range reads any global range [a, b) from any set of such files (full or flat,
 * any old world size), so a run can resume on a different number of ranks or switch ZeRO on or off.
 *
 * All files are written durably (tmp + fsync + rename + fsync dir, see io/safetensors.h).
 * Ownership: callers own every buffer; pvlm_model_load creates the model (free with pvlm_model_free).
 * Format reference: docs/checkpoint.md.
 */
#ifndef PVLM_CHECKPOINT_H
#define PVLM_CHECKPOINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/model.h"

/* Save m's parameters and config to path. extra_meta (may be NULL) is a JSON object whose values go into
 * __metadata__: strings as they are, anything else as compact JSON text. The reserved keys "format",
 * "version", "pvlm_config", "n_params" and "pvlm_data_xxh3" cannot be overridden. */
int pvlm_model_save(const pvlm_model *m, const char *path, const json_t *extra_meta, pvlm_err *err);

/* Create *m from the file's config and load every parameter (see top for the checks). On failure *m
 * holds nothing to free. */
int pvlm_model_load(pvlm_model *m, const char *path, pvlm_err *err);

/* Read only the config of a model file (validated). meta (may be NULL) receives the whole __metadata__
 * object as a new reference (caller json_decref's it). */
int pvlm_model_read_config(const char *path, pvlm_model_config *cfg, json_t **meta, pvlm_err *err);

/* Load parameters by name into an existing model whose config may differ in the prompt fields (e.g.
 * finetuning adds vpt/coop tensors to a pretrained checkpoint). Every tensor present in both must have
 * equal shape. Flags: PVLM_LOAD_ALLOW_MISSING lets views absent from the file keep their current values;
 * PVLM_LOAD_ALLOW_UNEXPECTED ignores file tensors the model lacks. *n_loaded (may be NULL) receives how
 * many views were loaded. */
enum { PVLM_LOAD_ALLOW_MISSING = 1, PVLM_LOAD_ALLOW_UNEXPECTED = 2 };
int pvlm_model_load_params(pvlm_model *m, const char *path, int flags, int *n_loaded, pvlm_err *err);

/* Save full AdamW moments m1, m2 ([n_params] each) in the "full" layout. */
int pvlm_ckpt_optim_save(const pvlm_model *m, const float *m1, const float *m2, int64_t step, const char *path,
                         pvlm_err *err);

/* Save a ZeRO-1 slice in the "flat" layout: m1, m2 point at element `begin` and hold [begin, end). */
int pvlm_ckpt_optim_save_shard(const pvlm_model *m, const float *m1, const float *m2, size_t begin, size_t end,
                               int rank, int world_size, int64_t step, const char *path, pvlm_err *err);

/* Fill m1, m2 (each holding the global range [begin, end), pointing at element `begin`) from the
 * optimizer files paths[0..npaths) (either layout, mixed allowed). Every element of [begin, end) must
 * be covered by some file (elements between views in a "full" file count as covered, zero); all files
 * must agree on n_params (== m->n_params) and step (returned in *step, may be NULL). Values must be
 * finite. Only the needed byte ranges are read. */
int pvlm_ckpt_optim_load_range(const pvlm_model *m, const char *const *paths, int npaths, size_t begin, size_t end,
                               float *m1, float *m2, int64_t *step, pvlm_err *err);

#endif
