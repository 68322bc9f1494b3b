/* batch.h - one training/eval micro-batch: the contract between io/loader and model/.
 *
 * Shapes use B samples, image size S, max prefix length Lp, max suffix length Ls.
 * Image-text samples have has_image=1 and a full image; text-only samples have
 * has_image=0 (their image rows are zero and the model masks all image tokens)
 * and prefix_len >= 1. Targets hold -1 where there is no target (padding); the
 * loss averages over targets != -1 across the *global* batch (model issue, item 7).
 * pvlm_batch_alloc allocates every array in one owned block; pvlm_batch_free frees it.
 */
#ifndef PVLM_IO_BATCH_H
#define PVLM_IO_BATCH_H

#include <stdint.h>

#include "core/error.h"

#define PVLM_IGNORE (-1) /* target id meaning "no target here" */

typedef struct pvlm_batch {
    int B, S, Lp, Ls;
    uint8_t *images;     /* [B,S,S,3] RGB, row-major HWC, uint8 */
    uint8_t *has_image;  /* [B] 1 = image-text, 0 = text-only */
    int32_t *prefix;     /* [B,Lp] encoder text ids; pad_id after prefix_len[b] */
    int32_t *prefix_len; /* [B] 0..Lp (>= 1 for text-only samples) */
    int32_t *dec_in;     /* [B,Ls] decoder input [bos, s0, ..., s_{n-2}], pad_id after */
    int32_t *targets;    /* [B,Ls] [s0, ..., s_{n-1}] (s_{n-1} = eos), PVLM_IGNORE after */
    int32_t *suffix_len; /* [B] n, 0..Ls */
    int32_t *ctx_set;    /* [B] CoOp context set per sample (0 for unified or unused) */
    int64_t *sample_id;  /* [B] loader's global sample index (for logs, resume checks) */
    void *block;         /* owned storage behind every array above */
} pvlm_batch;

int pvlm_batch_alloc(pvlm_batch *b, int B, int S, int Lp, int Ls, pvlm_err *err);
void pvlm_batch_free(pvlm_batch *b);
/* Number of targets != PVLM_IGNORE (for the global loss denominator). */
int64_t pvlm_batch_count_targets(const pvlm_batch *b);
/* Reset to an empty batch: zero images, pad prefix/dec_in with pad_id, targets = -1. */
void pvlm_batch_clear(pvlm_batch *b, int32_t pad_id);

#endif
