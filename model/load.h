/* load.h - opening a checkpoint for inference, as `pvlm caption`, `pvlm vqa` and `pvlm finetune` do:
 * resolving a checkpoint argument and loading model + tokenizer.
 *
 * A checkpoint argument may be a model .safetensors file, a checkpoint step directory (holding
 * model.safetensors) or a training run directory (the newest step that verifies is used).
 * The vocabulary comes from --tokenizer, else tokenizer-encoder.json + tokenizer-vocab.bpe beside the
 * model file (pretrain writes them into every checkpoint), else the checkpoint's "tokenizer" metadata.
 */
#ifndef PVLM_MODEL_LOAD_H
#define PVLM_MODEL_LOAD_H

#include <stddef.h>

#include "core/error.h"
#include "io/tokenizer.h"
#include "model/model.h"

/* Resolve ckpt into the model file path (buf). */
int pvlm_load_resolve_ckpt(const char *ckpt, char *buf, size_t cap, pvlm_err *err);
/* Read the config of model_path (a resolved model file) and load its tokenizer (tokenizer_dir, or the
 * file's "tokenizer" metadata), checking vocabulary size and special ids against the config. */
int pvlm_load_tokenizer(const char *model_path, const char *tokenizer_dir, pvlm_model_config *cfg,
                        pvlm_tokenizer **tok, pvlm_err *err);
/* Load the model and tokenizer named by ckpt / tokenizer_dir (NULL: from metadata). The vocabulary must
 * fit the model (vocab_size), and the special ids must agree. *tok is freed with pvlm_tokenizer_free. */
int pvlm_load_model(const char *ckpt, const char *tokenizer_dir, pvlm_model *m, pvlm_tokenizer **tok,
                    pvlm_err *err);

#endif
