/* ftckpt.h - finetune checkpoints: only the trained tensors, tied to their base checkpoint.
 *
 * A finetune file is safetensors with the trained views of the model (e.g. coop.ctx, vpt.prompts,
 * dec.ln_f.*, or every view for full finetuning) and __metadata__: "format" = "pvlm-finetune",
 * "version" = "1", "pvlm_config" (the model config including the prompt fields), "method",
 * "base_path" and "base_xxh3" (XXH3-64 of the whole base file). Loading rebuilds the model from the
 * base file and refuses a base whose hash differs (docs/checkpoint.md).
 * Ownership: pvlm_ftckpt_load creates *m (free with pvlm_model_free).
 */
#ifndef PVLM_FINETUNE_FTCKPT_H
#define PVLM_FINETUNE_FTCKPT_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "io/tokenizer.h"
#include "model/model.h"

/* trainable: per view (m->n_views), the views to store. info (may be NULL): extra metadata (strings). */
int pvlm_ftckpt_save(const pvlm_model *m, const uint8_t *trainable, const char *path, const char *base_path,
                     uint64_t base_hash, const char *method, const json_t *info, pvlm_err *err);
/* Load a finetune file: base from base_override or the stored base_path; its hash must match. */
int pvlm_ftckpt_load(pvlm_model *m, const char *path, const char *base_override, pvlm_err *err);
/* 1 if path is a finetune file (its metadata format is "pvlm-finetune"), 0 if not, -1 on error. */
int pvlm_ftckpt_is_finetune(const char *path, pvlm_err *err);
/* What `pvlm caption` / `pvlm vqa --ckpt` name: a finetune file (the model rebuilt on its base; the
 * vocabulary from tokenizer_dir or found beside / named by the base, as for a base checkpoint), or
 * anything pvlm_load_model takes. *m and *tok as pvlm_load_model. */
int pvlm_ftckpt_load_any(const char *ckpt, const char *tokenizer_dir, pvlm_model *m, pvlm_tokenizer **tok,
                         pvlm_err *err);

#endif
