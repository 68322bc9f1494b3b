/* load.h - what `pvlm caption`, `pvlm vqa` and `pvlm finetune` share: resolving a
 * checkpoint argument, loading model + tokenizer, MPI start-up, and writing results JSON.
 *
 * A checkpoint argument may be a model .safetensors file, a checkpoint step directory (holding
 * model.safetensors) or a training run directory (the newest step that verifies is used).
 * The vocabulary comes from --tokenizer, else tokenizer-encoder.json + tokenizer-vocab.bpe beside the
 * model file (pretrain writes them into every checkpoint), else the checkpoint's "tokenizer" metadata.
 */
#ifndef PVLM_EVAL_LOAD_H
#define PVLM_EVAL_LOAD_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"
#include "io/tokenizer.h"
#include "model/model.h"

/* Resolve ckpt into the model file path (buf). */
int pvlm_eval_resolve_ckpt(const char *ckpt, char *buf, size_t cap, pvlm_err *err);
/* Read the config of model_path (a resolved model file) and load its tokenizer (tokenizer_dir, or the
 * file's "tokenizer" metadata), checking vocabulary size and special ids against the config. */
int pvlm_eval_load_tokenizer(const char *model_path, const char *tokenizer_dir, pvlm_model_config *cfg,
                             pvlm_tokenizer **tok, pvlm_err *err);
/* Load the model and tokenizer named by ckpt / tokenizer_dir (NULL: from metadata). The vocabulary must
 * fit the model (vocab_size), and the special ids must agree. *tok is freed with pvlm_tokenizer_free. */
int pvlm_eval_load_model(const char *ckpt, const char *tokenizer_dir, pvlm_model *m, pvlm_tokenizer **tok,
                        pvlm_err *err);
/* Write a JSON value durably with full precision (results files). */
int pvlm_eval_write_json(const json_t *j, const char *path, pvlm_err *err);

#endif
