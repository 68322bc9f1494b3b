/* regionft.h - region fine-tuning, the baseline of CPT's grounding comparison (Yao et al., "CPT: Colorful
 * Prompt Tuning for Pre-trained Vision-Language Models", arXiv 2109.11797, section 4: the pre-trained model
 * fine-tuned with a classification head over the candidate regions, no colour prompts).
 *
 * CPT's baseline scores each detected region's output token of VinVL's cross-modal transformer with a linear
 * head and takes a softmax over the regions. pvlm's encoder has patch tokens, not region tokens, so a region's
 * feature is the mean, over the candidate box's pixels in the model's S x S input, of the final-LayerNorm
 * encoder output of the patch holding the pixel (an area-weighted mean of the patch outputs the box
 * overlaps). The encoder reads the unpainted image and the referring expression as its prefix, so the image
 * tokens are conditioned on the query as VinVL's region tokens are. Score of candidate j: head . f_j; the
 * loss is the cross-entropy over a group's candidates (the same candidates CPT paints, at most
 * PVLM_CPT_NCOLOURS), mean over the global batch's groups. Gradients reach the encoder, the embeddings it
 * reads and the stem through pvlm_model_encode_backward; the decoder is not used.
 *
 * Ownership: the caller owns every array passed in; nothing is kept between calls.
 */
#ifndef PVLM_FINETUNE_REGIONFT_H
#define PVLM_FINETUNE_REGIONFT_H

#include <stdint.h>

#include "core/error.h"
#include "finetune/fttask.h"
#include "finetune/paint.h"
#include "model/model.h"
#include "model/optim.h"
#include "mpi/comm.h"

#define PVLM_REGIONFT_MAX_CAND PVLM_CPT_NCOLOURS

/* w [Np] (Np = (S/P)^2 patches, row-major): the fraction of box's pixels in the S x S input (crop fit of an
 * orig_w x orig_h image, as pvlm_cpt_paint) that falls in each patch; sums to 1. A box with no pixel inside
 * the image (empty after clamping) gets the patch nearest its centre. */
void pvlm_regionft_weights(int S, int P, int orig_w, int orig_h, const float box[4], float *w);

/* Row r of b: item it's unpainted image with its referring expression as the prefix (and an empty target):
 * the encoder input of one group. Also fills w [PVLM_REGIONFT_MAX_CAND, Np] and returns the number of
 * candidates (pvlm_ft_group_rows), or -1. */
int pvlm_regionft_fill(const pvlm_ft_data *d, const pvlm_ft_item *it, const pvlm_ft_rowspec *rs, pvlm_batch *b,
                       int r, float *w, pvlm_err *err);

/* The objective on one batch whose rows 0..b->B-1 are groups: encodes b, scores every candidate (w as above,
 * ncand [B]), writes the argmax candidate of each group to pred [B] (may be NULL) and, with label != NULL,
 * *loss = sum over groups of the candidates' cross-entropy / groups_global. With head_grad != NULL also
 * backward: m->grads and head_grad [d] accumulate d(*loss)/d(params, head). */
int pvlm_regionft_objective(pvlm_model *m, const pvlm_batch *b, const float *w, const int *ncand, const int *label,
                            const float *head, double groups_global, double *loss, int *pred, float *head_grad,
                            pvlm_err *err);

/* One few-shot run: what to train and with what. */
typedef struct pvlm_regionft_run {
    const pvlm_comm *comm;
    const pvlm_ft_data *d;
    const pvlm_ft_rowspec *rs;   /* tokenizer and model config for the rows */
    const uint8_t *trainable;    /* per view of the model: the views the encoder reads */
    const pvlm_optim_config *oc; /* AdamW, schedule, clipping (the head trains with the same settings) */
    int steps, groups;           /* optimizer steps; groups per rank per step */
} pvlm_regionft_run;

/* head [d] <- N(0, 0.02) from seed (as a linear layer's init, model.h). */
void pvlm_regionft_init_head(float *head, int d, uint64_t seed);

/* Train the model's trainable views and head [d] on the training items idx[0..n), data-parallel over the
 * ranks (each rank takes its `groups` of every global batch; gradients are summed across ranks). */
int pvlm_regionft_train(const pvlm_regionft_run *run, pvlm_model *m, float *head, const int *idx, int n,
                        uint64_t seed, double *last_loss, pvlm_err *err);

/* Accuracy on the test split (a prediction is right when its box has IoU > 0.5 with the gold box), over all
 * ranks, in batches of eval_batch groups. */
int pvlm_regionft_evaluate(const pvlm_regionft_run *run, pvlm_model *m, const float *head, int eval_batch,
                           double *acc, pvlm_err *err);

#endif
