/* decode.h - generation and continuation scoring with a trained pvlm_model.
 *
 * The encoder runs once per sample; the decoder runs one token at a time with a per-layer key/value
 * cache (self-attention K,V appended each step; cross-attention K,V computed once from the encoder
 * output). Greedy (beam_size 1) and beam search, batched over samples. Scratch buffers are allocated
 * per call and freed before returning; output arrays are caller-owned.
 */
#ifndef PVLM_DECODE_H
#define PVLM_DECODE_H

#include <stdint.h>

#include "core/error.h"
#include "io/batch.h"
#include "model/model.h"

typedef struct pvlm_decode_config {
    int beam_size;          /* 1 = greedy */
    int max_len;            /* new tokens, <= Ls */
    int min_len;            /* eos is forbidden before this many tokens */
    double length_penalty;  /* final beam score = sum logp / len^alpha (len counts eos); 0 = raw sum */
    int no_repeat_ngram;    /* 0 = off; a token completing an n-gram already generated is forbidden */
} pvlm_decode_config;

/* beam 1, max_len = Ls, min_len 0, length_penalty 0, no_repeat_ngram 0. */
void pvlm_decode_config_default(pvlm_decode_config *c, const pvlm_model_config *mc);

/* Uses b->images, has_image, prefix, prefix_len, ctx_set. Encoder runs once per sample, decoder with a
 * KV cache. out_ids [B, max_len], out_len [B] (eos not included), out_logp [B] (may be NULL: sum of token
 * log-probabilities of the returned sequence including eos when emitted). Unused out_ids are pad_id. */
int pvlm_decode(pvlm_model *m, const pvlm_batch *b, const pvlm_decode_config *c, int32_t *out_ids,
                int32_t *out_len, float *out_logp, pvlm_err *err);
/* Log-likelihood of the suffixes in b (dec_in/targets): logp[B] = sum of log p(target), ntok[B].
 * Runs a forward pass (it overwrites the activations kept for backward). */
int pvlm_model_score(pvlm_model *m, const pvlm_batch *b, double *logp, int32_t *ntok, pvlm_err *err);

#endif
