/* tiny.h - tiny model configs and deterministic batches shared by the model tests. */
#ifndef PVLM_TESTS_MODEL_TINY_H
#define PVLM_TESTS_MODEL_TINY_H

#include <string.h>

#include "core/rng.h"
#include "io/batch.h"
#include "model/model.h"

/* S=8, P=4 (4 patches), d=8, h=2, d_ff=16, 2+2 layers, V=13, Lp=4, Ls=5. */
static inline void tiny_config(pvlm_model_config *c) {
    pvlm_model_config_default(c);
    c->image_size = 8, c->patch_size = 4, c->d_model = 8, c->n_heads = 2, c->d_ff = 16;
    c->n_enc_layers = 2, c->n_dec_layers = 2, c->vocab_size = 13, c->max_prefix_len = 4, c->max_suffix_len = 5;
    c->conv_channels = 4, c->conv_blocks = 1, c->conv_groups = 2;
}

/* Fill b (allocated B x S x Lp x Ls) with a mixed batch: sample i % 3 == 1 is text-only; lengths vary,
 * so there is prefix and suffix padding. Ids avoid pad/bos/eos except the final eos. */
static inline void tiny_batch(pvlm_batch *b, const pvlm_model_config *c, uint64_t seed) {
    pvlm_rng r;
    pvlm_rng_seed(&r, seed, 99);
    pvlm_batch_clear(b, c->pad_id);
    int V = c->vocab_size;
    for (int i = 0; i < b->B; i++) {
        int text_only = i % 3 == 1;
        b->has_image[i] = (uint8_t)!text_only;
        if (!text_only)
            for (size_t k = 0; k < (size_t)b->S * b->S * 3; k++)
                b->images[(size_t)i * b->S * b->S * 3 + k] = (uint8_t)pvlm_rng_below(&r, 256);
        int pl = text_only ? 1 + (int)pvlm_rng_below(&r, (uint64_t)b->Lp) : (int)pvlm_rng_below(&r, (uint64_t)b->Lp + 1);
        if (i == 0) pl = b->Lp - 1;
        b->prefix_len[i] = pl;
        for (int j = 0; j < pl; j++) b->prefix[(size_t)i * b->Lp + j] = 3 + (int)pvlm_rng_below(&r, (uint64_t)V - 3);
        int n = 1 + (int)pvlm_rng_below(&r, (uint64_t)b->Ls);
        if (i == 0) n = b->Ls;
        b->suffix_len[i] = n;
        int32_t s[64];
        for (int j = 0; j < n - 1; j++) s[j] = 3 + (int)pvlm_rng_below(&r, (uint64_t)V - 3);
        s[n - 1] = c->eos_id;
        for (int j = 0; j < n; j++) {
            b->dec_in[(size_t)i * b->Ls + j] = j == 0 ? c->bos_id : s[j - 1];
            b->targets[(size_t)i * b->Ls + j] = s[j];
        }
        b->ctx_set[i] = c->n_ctx_sets > 1 ? i % c->n_ctx_sets : 0;
        b->sample_id[i] = i;
    }
}

/* Random weights with a larger scale than init (so finite differences see every path): LN/GN weights
 * 1 + N(0, 0.1^2), everything else N(0, scale^2). */
static inline void tiny_randomize(pvlm_model *m, uint64_t seed, float scale) {
    pvlm_rng r;
    pvlm_rng_seed(&r, seed, 7);
    for (int i = 0; i < m->n_views; i++) {
        const pvlm_view *v = &m->views[i];
        int norm = v->kind == PVLM_VIEW_NORM;
        for (size_t k = 0; k < v->numel; k++)
            m->params[v->offset + k] = norm ? 1.0f + 0.1f * (float)pvlm_rng_normal(&r) : scale * (float)pvlm_rng_normal(&r);
    }
}

/* A tiny model with tiny_randomize(42, 0.3) weights and a 4-sample tiny_batch (seed 5): the common start of
 * the gradient checks. Returns 0, or -1 with err set and *m zeroed (nothing to free). */
static inline int tiny_model_and_batch(pvlm_model *m, pvlm_batch *b, const pvlm_model_config *cfg, pvlm_err *err) {
    if (pvlm_model_create(m, cfg, err)) return -1;
    tiny_randomize(m, 42, 0.3f);
    if (pvlm_batch_alloc(b, 4, cfg->image_size, cfg->max_prefix_len, cfg->max_suffix_len, err)) {
        pvlm_model_free(m);
        memset(m, 0, sizeof *m);
        return -1;
    }
    tiny_batch(b, cfg, 5);
    return 0;
}

#endif
