/* model.h - the SimVLM-style PrefixLM encoder-decoder.
 *
 * Owns: the flat parameter and gradient buffers (one allocation each) with a
 * table of named views (checkpoint names, each with a kind), typed per-layer
 * pointers into both (pvlm_weights: model code uses these, never names), and private activation / scratch
 * buffers grown on demand for the batch size. pvlm_model_create allocates
 * everything, pvlm_model_free releases it; the caller owns the pvlm_model
 * struct itself (usually on its stack).
 *
 * Buffer order (the grad-ready hook relies on it): embeddings / stem / prompts,
 * then enc.0 .. enc.{L-1}, enc.ln_f, then dec.0 .. dec.{L-1}, dec.ln_f. Backward
 * finishes the decoder layers last-to-first, then the encoder, then the
 * embeddings, and reports each finished contiguous range through the hook.
 * Architecture, views, conv stem and FLOP count: docs/model.md.
 */
#ifndef PVLM_MODEL_H
#define PVLM_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/batch.h"
#include "model/matmul.h"

typedef struct pvlm_model_config {
    int image_size, patch_size; /* S, P; S % P == 0 */
    char stem[8];               /* "patch" | "conv" */
    int d_model, n_heads, d_ff, n_enc_layers, n_dec_layers;
    int vocab_size, max_prefix_len, max_suffix_len; /* V, Lp, Ls */
    int pad_id, bos_id, eos_id;
    float ln_eps; /* 1e-5 */
    /* conv stem only (docs/model.md): channels C of the reduced-resolution trunk, number of residual
     * 3x3 blocks, GroupNorm groups (C % groups == 0). Ignored by the patch stem. */
    int conv_channels, conv_blocks, conv_groups;
    /* prompt tuning (0 in pretraining; finetune/ sets them): */
    int n_vpt;      /* VPT visual prompt tokens inserted between image tokens and prefix text */
    int vpt_deep;   /* 1: a fresh prompt set per encoder layer */
    int n_ctx;      /* CoOp: the first n_ctx prefix-text embeddings are replaced by learned vectors */
    int n_ctx_sets; /* 1 = unified context, K = class-specific (batch->ctx_set picks the set) */
} pvlm_model_config;

/* Defaults: the bench config of docs/model.md (S=64, P=8, patch stem, d=512, h=8, d_ff=2048, 6+6 layers,
 * V=8192, Lp=16, Ls=48), pad 0, bos 1, eos 2, ln_eps 1e-5, conv stem C=32, 2 blocks, 8 groups,
 * no prompts (n_ctx_sets 1). */
void pvlm_model_config_default(pvlm_model_config *c);
json_t *pvlm_model_config_to_json(const pvlm_model_config *c); /* new ref */
/* Fields missing from j keep the defaults; a wrong-typed field is an error. Validates. */
int pvlm_model_config_from_json(pvlm_model_config *c, const json_t *j, pvlm_err *err);
int pvlm_model_config_validate(const pvlm_model_config *c, pvlm_err *err);

/* What a view is, set where it is registered; it decides initialisation and weight decay:
 * MATRIX    linear / conv weights and the token table (it is also the tied output projection):
 *           N(0, 0.02), AdamW weight decay;
 * BIAS      zero init, no decay;
 * NORM      LayerNorm / GroupNorm weights: init 1, no decay (their biases are BIAS);
 * EMBEDDING learned tables added to tokens (positional tables, VPT prompts, CoOp context): N(0, 0.02),
 *           no decay. */
typedef enum pvlm_view_kind { PVLM_VIEW_MATRIX, PVLM_VIEW_BIAS, PVLM_VIEW_NORM, PVLM_VIEW_EMBEDDING } pvlm_view_kind;

typedef struct pvlm_view { /* a named tensor inside the flat parameter buffer */
    char name[64];         /* checkpoint name, e.g. "enc.0.attn.qkv.weight" */
    size_t offset, numel;  /* in floats, into params/grads */
    int ndim;
    int64_t shape[4];
    pvlm_view_kind kind;
    int resid; /* 1: a residual output projection, initialised with sd 0.02/sqrt(2*(n_enc+n_dec)) */
} pvlm_view;

/* AdamW weight decay applies to matrices only. */
static inline int pvlm_view_decays(const pvlm_view *v) { return v->kind == PVLM_VIEW_MATRIX; }

/* Typed per-layer tensors (llm.c's ParameterTensors): pointers into the flat params or grads buffer.
 * Shapes in PyTorch Linear layout [out, in]; d = d_model, F = d_ff, C = conv_channels. */
typedef struct pvlm_enc_layer {
    float *ln1_w, *ln1_b;   /* [d] */
    float *qkv_w, *qkv_b;   /* [3d, d], [3d] */
    float *out_w, *out_b;   /* [d, d], [d] */
    float *ln2_w, *ln2_b;   /* [d] */
    float *fc1_w, *fc1_b;   /* [F, d], [F] */
    float *fc2_w, *fc2_b;   /* [d, F], [d] */
} pvlm_enc_layer;

typedef struct pvlm_dec_layer {
    float *ln1_w, *ln1_b;   /* [d] */
    float *qkv_w, *qkv_b;   /* causal self-attention [3d, d] */
    float *out_w, *out_b;   /* [d, d] */
    float *lnc_w, *lnc_b;   /* LayerNorm before cross-attention */
    float *cq_w, *cq_b;     /* cross-attention query [d, d] */
    float *ckv_w, *ckv_b;   /* cross-attention key/value from the encoder output [2d, d] */
    float *cout_w, *cout_b; /* [d, d] */
    float *ln2_w, *ln2_b;
    float *fc1_w, *fc1_b;   /* [F, d] */
    float *fc2_w, *fc2_b;   /* [d, F] */
} pvlm_dec_layer;

typedef struct pvlm_stem_block { /* conv stem residual block: x + conv3x3(gelu(groupnorm(x))) */
    float *gn_w, *gn_b;     /* [C] */
    float *conv_w, *conv_b; /* [C, C, 3, 3], [C] */
} pvlm_stem_block;

typedef struct pvlm_weights {
    float *tok_embed;                 /* [V, d], tied output projection */
    float *enc_pos, *dec_pos;         /* [Lp, d], [Ls, d] */
    float *conv_in_w, *conv_in_b;     /* conv stem only: [C, 3, 2, 2], [C] */
    pvlm_stem_block *stem;            /* [conv_blocks] (conv stem only) */
    float *gn_f_w, *gn_f_b;           /* conv stem only: [C] */
    float *patch_w, *patch_b;         /* [d, K], [d] */
    float *img_pos;                   /* [Np, d] */
    float *vpt;                       /* [vpt_deep ? Le : 1, n_vpt, d] or NULL */
    float *coop;                      /* [n_ctx_sets, n_ctx, d] or NULL */
    pvlm_enc_layer *enc;              /* [n_enc_layers] */
    float *enc_lnf_w, *enc_lnf_b;     /* [d] */
    pvlm_dec_layer *dec;              /* [n_dec_layers] */
    float *dec_lnf_w, *dec_lnf_b;     /* [d] */
} pvlm_weights;

typedef struct pvlm_model {
    pvlm_model_config cfg;
    float *params, *grads; /* [n_params] each, one allocation each, owned */
    size_t n_params;
    pvlm_view *views; /* owned; in buffer order */
    int n_views;
    /* typed access to the same memory (params and grads); the layer arrays are owned by the model */
    pvlm_weights w, g;
    pvlm_matmul *mm; /* the matrix-product backend (owned); NULL = fp32, see pvlm_model_set_precision */
    /* activations and scratch: private, owned, grown on demand for the batch size */
    void *priv;
} pvlm_model;

int pvlm_model_create(pvlm_model *m, const pvlm_model_config *cfg, pvlm_err *err); /* params/grads zeroed */
/* Only the view table and n_params of cfg's model (params and grads stay NULL; free with
 * pvlm_model_free): what a file must hold, checked before the buffers are allocated. */
int pvlm_model_layout(pvlm_model *m, const pvlm_model_config *cfg, pvlm_err *err);
/* N(0,0.02) matrices/embeddings/positional tables/prompts, zero biases, LN/GN weight 1,
 * residual output projections (attn.out, self.out, cross.out, mlp.fc2, conv block output conv) scaled by
 * 1/sqrt(2*(n_enc_layers+n_dec_layers)). Deterministic in seed. */
void pvlm_model_init_weights(pvlm_model *m, uint64_t seed);
void pvlm_model_free(pvlm_model *m);
/* Matrix products in fp32 (the default after create) or bf16 (model/matmul.h); weights, gradients and
 * everything outside the products stay fp32, except the activations only products read (LayerNorm, attention
 * and GELU outputs), which bf16 keeps as their bf16 rounding (docs/model.md). Fails with the reason when bf16 is
 * unavailable. */
int pvlm_model_set_precision(pvlm_model *m, pvlm_precision p, pvlm_err *err);
/* The same from a --precision value ("fp32" | "bf16"). */
int pvlm_model_set_precision_name(pvlm_model *m, const char *name, pvlm_err *err);

/* Activation recomputation (--recompute): "none" keeps every activation backward needs; "attention"
 * keeps all but the attention probabilities, recomputed per layer from q, k, v; "block" keeps only each
 * layer's input (the previous layer's output) and recomputes the layer during backward. Gradients are
 * bit-identical in every mode (the same ops on the same inputs). Takes effect at the next forward. */
enum { PVLM_RECOMPUTE_NONE, PVLM_RECOMPUTE_ATTENTION, PVLM_RECOMPUTE_BLOCK };
#define PVLM_RECOMPUTE_OPT(dst)                                                                                  \
    {"recompute", PVLM_ARG_CHOICE, (dst),                                                                        \
     "activation recomputation: keep all / recompute attention probabilities / keep only each layer's input "   \
     "and recompute it in backward (less memory, more time; docs/model.md)",                                     \
     "none|attention|block", 0, 0, 0}
int pvlm_model_set_recompute(pvlm_model *m, const char *name, pvlm_err *err);
/* Bytes of the activation arena (activations kept for backward and backward scratch) for the largest batch
 * seen so far. */
size_t pvlm_model_activation_bytes(const pvlm_model *m);
/* *bytes = the activation arena a batch of B samples with T encoder tokens and Ls suffix positions needs
 * under the current recompute mode and precision prec (bf16 keeps the LayerNorm, attention and GELU outputs,
 * which only products read, in bf16), without allocating it (works on a pvlm_model_layout model too: memory
 * planning for configs that are not built). Leaves the current batch's activations usable. */
int pvlm_model_plan_activations(pvlm_model *m, int B, int T, int Ls, pvlm_precision prec, size_t *bytes, pvlm_err *err);
const pvlm_view *pvlm_model_view(const pvlm_model *m, const char *name); /* NULL if absent */
int pvlm_model_view_index(const pvlm_model *m, const char *name);        /* -1 if absent */
void pvlm_model_zero_grad(pvlm_model *m);
/* Number of encoder tokens T = Np + n_vpt + Lp. */
int pvlm_model_enc_len(const pvlm_model_config *c);

typedef struct pvlm_loss_stats { /* split for progress lines */
    double loss_sum_img, loss_sum_txt; /* sum of token CE over image-text / text-only samples */
    int64_t ntok_img, ntok_txt;
} pvlm_loss_stats;

/* Forward over a batch; *loss = sum of CE over non-ignored targets / n_targets_global.
 * Keeps the activations needed by backward. sample_ce (may be NULL) receives per-sample CE sums [B].
 * stats (may be NULL) is overwritten with this batch's sums. The batch's S/Lp/Ls must match the config
 * (b->Lp <= Lp and b->Ls <= Ls are accepted: shorter batches are padded internally). */
int pvlm_model_forward(pvlm_model *m, const pvlm_batch *b, double n_targets_global, float *loss,
                       pvlm_loss_stats *stats, double *sample_ce, pvlm_err *err);

/* Backward of the last forward: grads += d(loss)/d(params).
 * sample_scale (may be NULL): d(objective)/d(sample CE sum) per sample [B]; NULL means 1/n_targets_global
 * for every sample (the pretraining loss). Used by CoOp/CPT classification losses.
 * hook (may be NULL) is called as soon as a contiguous range of grads is final for this micro-batch
 * (decoder layers, then encoder layers, then embeddings), so mpi/ can start all-reducing it.
 * The ranges reported by one backward are disjoint and cover [0, n_params). */
typedef void (*pvlm_grad_ready_fn)(void *ctx, size_t offset, size_t count);
int pvlm_model_backward(pvlm_model *m, const pvlm_batch *b, const double *sample_scale,
                        pvlm_grad_ready_fn hook, void *hook_ctx, pvlm_err *err);

/* Run only the stem and the encoder on b (for decoding): *E [B*T, d] is the final-LN encoder output,
 * *kmask [B*T] the key mask (1 = visible), *T the encoder length Np + n_vpt + b->Lp. Both pointers
 * are borrowed from the model's activations and valid until its next forward/encode. */
int pvlm_model_encode(pvlm_model *m, const pvlm_batch *b, const float **E, const uint8_t **kmask, int *T,
                      pvlm_err *err);

/* Backward of the last pvlm_model_encode on the same batch b: grads += d(loss)/d(params) for the stem,
 * embeddings (image and prefix positions, prefix token rows of tok_embed), prompts and encoder layers, given
 * dE [B*T, d] = d(loss)/d(E) in encode's padded layout (rows of hidden tokens are ignored). Decoder
 * gradients are untouched. For objectives on the encoder's outputs (a head over region features). */
int pvlm_model_encode_backward(pvlm_model *m, const pvlm_batch *b, const float *dE, pvlm_err *err);

/* Analytic FLOPs of forward+backward for one batch (for MFU); documented in docs/model.md. */
double pvlm_model_flops(const pvlm_model *m, const pvlm_batch *b);

/* Per-layer-type wall time (seconds) accumulated by forward+backward since the last reset, for
 * bench/bench_train_step. Index by PVLM_TIME_*. */
enum { PVLM_TIME_STEM, PVLM_TIME_ENC, PVLM_TIME_DEC, PVLM_TIME_HEAD, PVLM_TIME_N };
void pvlm_model_times(const pvlm_model *m, double out[PVLM_TIME_N]);
void pvlm_model_times_reset(pvlm_model *m);

#endif
