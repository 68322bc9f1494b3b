/* load.c - see load.h. */
#include "model/load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "io/ckptdir.h"
#include "io/trainstate.h"
#include "model/checkpoint.h"

int pvlm_load_resolve_ckpt(const char *ckpt, char *buf, size_t cap, pvlm_err *err) {
    if (!pvlm_is_dir(ckpt)) {
        if (!pvlm_file_exists(ckpt)) return pvlm_err_set(err, PVLM_ENOTFOUND, "--ckpt %s: no such file or directory", ckpt);
        return pvlm_path_join(buf, cap, "", ckpt, err);
    }
    char path[4096];
    if (pvlm_path_join(path, sizeof path, ckpt, "model.safetensors", err)) return -1;
    if (pvlm_file_exists(path)) return pvlm_path_join(buf, cap, "", path, err);
    pvlm_ckptdir_resume r;
    if (pvlm_trainstate_find_resume(ckpt, &r, err)) return -1; /* files it loads: inside the step dir, checksummed */
    for (int i = 0; i < r.n_skipped; i++)
        pvlm_warn("checkpoint step %lld skipped: %s", (long long)r.skipped[i].step, r.skipped[i].reason);
    int found = r.found;
    int rc = found ? pvlm_path_join(buf, cap, r.path, "model.safetensors", err) : 0;
    pvlm_ckptdir_resume_free(&r);
    if (!found)
        return pvlm_err_set(err, PVLM_ENOTFOUND, "--ckpt %s: no model.safetensors and no verified checkpoint inside", ckpt);
    return rc;
}

/* The vocabulary must fit the model and agree on the special ids; frees *tok otherwise. */
static int check_tokenizer(const char *model_path, const char *what, const pvlm_model_config *cfg,
                           pvlm_tokenizer **tok, pvlm_err *err) {
    const pvlm_tokenizer *t = *tok;
    if (pvlm_tokenizer_vocab_size(t) <= cfg->vocab_size && pvlm_tokenizer_eos_id(t) == cfg->eos_id &&
        pvlm_tokenizer_bos_id(t) == cfg->bos_id && pvlm_tokenizer_pad_id(t) == cfg->pad_id)
        return 0;
    pvlm_err_set(err, PVLM_EINVAL,
                 "%s: tokenizer %s does not match the model (vocab %d vs %d, pad/bos/eos %d/%d/%d vs %d/%d/%d)",
                 model_path, what, pvlm_tokenizer_vocab_size(t), cfg->vocab_size, pvlm_tokenizer_pad_id(t),
                 pvlm_tokenizer_bos_id(t), pvlm_tokenizer_eos_id(t), cfg->pad_id, cfg->bos_id, cfg->eos_id);
    pvlm_tokenizer_free(*tok);
    *tok = NULL;
    return -1;
}

int pvlm_load_tokenizer(const char *model_path, const char *tokenizer_dir, pvlm_model_config *cfg,
                        pvlm_tokenizer **tok, pvlm_err *err) {
    *tok = NULL;
    json_t *meta = NULL;
    if (pvlm_model_read_config(model_path, cfg, &meta, err)) return -1;
    /* Where the vocabulary is, in order: the flag; tokenizer-encoder.json + tokenizer-vocab.bpe beside the
     * model file (pretrain copies them into every checkpoint, so a checkpoint is self-contained); the
     * file's "tokenizer" metadata (the absolute path at training time). */
    char beside[4096], dir[4096], merges[4200];
    const char *tdir = tokenizer_dir;
    pvlm_dirname(model_path, dir, sizeof dir);
    if (pvlm_path_join(beside, sizeof beside, dir, "tokenizer-encoder.json", err) ||
        pvlm_path_join(merges, sizeof merges, dir, "tokenizer-vocab.bpe", err)) {
        json_decref(meta);
        return -1;
    }
    if (!tdir && pvlm_file_exists(beside) && pvlm_file_exists(merges)) {
        int rc = pvlm_tokenizer_load_files(beside, merges, PVLM_TOK_PAIRS_AUTO, tok, err);
        if (rc) pvlm_err_prefix(err, "tokenizer of %s", model_path);
        else rc = check_tokenizer(model_path, beside, cfg, tok, err);
        json_decref(meta);
        return rc;
    }
    if (!tdir) tdir = json_string_value(json_object_get(meta, "tokenizer"));
    if (!tdir) {
        json_decref(meta);
        return pvlm_err_set(err, PVLM_EINVAL,
                            "%s: no tokenizer folder beside it and no \"tokenizer\" metadata; pass --tokenizer DIR",
                            model_path);
    }
    int rc = pvlm_tokenizer_load(tdir, tok, err);
    if (rc) pvlm_err_prefix(err, "tokenizer of %s", model_path);
    else rc = check_tokenizer(model_path, tdir, cfg, tok, err);
    json_decref(meta);
    return rc;
}

int pvlm_load_model(const char *ckpt, const char *tokenizer_dir, pvlm_model *m, pvlm_tokenizer **tok,
                    pvlm_err *err) {
    char path[4096];
    pvlm_model_config cfg;
    *tok = NULL;
    if (pvlm_load_resolve_ckpt(ckpt, path, sizeof path, err)) return -1;
    if (pvlm_load_tokenizer(path, tokenizer_dir, &cfg, tok, err)) return -1;
    if (pvlm_model_load(m, path, err)) {
        pvlm_tokenizer_free(*tok);
        *tok = NULL;
        return -1;
    }
    return 0;
}
