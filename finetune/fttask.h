/* fttask.h - finetuning data and the group-scoring objective shared by CoOp, VPT and CPT.
 *
 * Every classification-like task is a list of *groups*: one image, one prefix, C candidate
 * continuations, and the index of the correct one. Classification: candidates are the class names;
 * grounding (CPT): candidates are colour phrases ("red color") for boxes painted in those colours.
 * A group becomes C batch rows (one per candidate); a group's score for candidate c is the sum (or
 * mean) of the candidate's token log-probabilities, and training minimises the cross-entropy over the
 * C scores (CoOp arXiv 2109.01134 section 3.2, with our decoder's likelihood in place of CLIP's
 * cosine logits). Caption and VQA finetuning use plain PrefixLM items (image, prefix, target text).
 *
 * Ownership: pvlm_ft_data owns every array and string it holds (pvlm_ft_data_free). Images are kept
 * decoded and fit to S x S in memory (finetuning sets are small; a note in docs/finetune.md).
 */
#ifndef PVLM_FINETUNE_FTTASK_H
#define PVLM_FINETUNE_FTTASK_H

#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "io/batch.h"
#include "io/tokenizer.h"
#include "model/model.h"

enum { PVLM_FT_CLASSIFY = 0, PVLM_FT_GROUND = 1, PVLM_FT_CAPTION = 2, PVLM_FT_VQA = 3 };
enum { PVLM_CPT_MULTI = 0, PVLM_CPT_SINGLE = 1 };

typedef struct pvlm_ft_item {
    int image;          /* index into pixels */
    int label;          /* classify: class; ground: gold box; LM tasks: unused */
    char *prefix;       /* ground: the referring expression; LM tasks: the prefix text; classify: NULL */
    char *target;       /* LM tasks: the target text */
    int nboxes;         /* ground: candidate boxes */
    float (*boxes)[4];  /* [nboxes] (x, y, w, h) in original pixels */
} pvlm_ft_item;

typedef struct pvlm_ft_data {
    int task, S;
    int n_images;
    uint8_t *pixels;    /* [n_images, S, S, 3] */
    int *orig_w, *orig_h;
    char **classes;     /* classify: [n_classes] */
    int n_classes;
    pvlm_ft_item *train, *test;
    int n_train, n_test;
} pvlm_ft_data;

/* classification.json / grounding.json (scripts/make_finetune_data.py formats, docs/finetune.md),
 * COCO caption JSON, or VQA v2 questions (path) + annotations (path2). Image files are relative to
 * image_dir. LM tasks hold out every val_every-th item as the test split (0: none). */
int pvlm_ft_data_load(pvlm_ft_data *d, int task, const char *path, const char *path2, const char *image_dir, int S,
                      const char *prompt, int val_every, pvlm_err *err);
void pvlm_ft_data_free(pvlm_ft_data *d);

/* How groups become rows. */
typedef struct pvlm_ft_rowspec {
    const pvlm_tokenizer *tok;
    const pvlm_model_config *mc;
    const char *prompt;   /* classify: hand-written prompt text after the context ("" for none) */
    const char *query_suffix; /* ground: appended to the expression (" is in") */
    int class_specific;   /* classify + CoOp: candidate c uses context set c */
    const char *target_template; /* classify: "{class}" (end) or e.g. "a {class} in the picture" (middle) */
    int cpt_mode;         /* PVLM_CPT_MULTI or PVLM_CPT_SINGLE */
} pvlm_ft_rowspec;

/* Number of rows group `it` needs. */
int pvlm_ft_group_rows(const pvlm_ft_data *d, const pvlm_ft_item *it);
/* The most rows any group (or LM item) of d needs: batch rows per group when sizing batches. */
int pvlm_ft_max_group_rows(const pvlm_ft_data *d);
/* Fill rows [r0, r0 + rows) of b with group `it` (an LM item is one row: image + prefix -> target);
 * returns the number of rows written or -1. */
int pvlm_ft_fill_group(const pvlm_ft_data *d, const pvlm_ft_item *it, const pvlm_ft_rowspec *rs, pvlm_batch *b,
                       int r0, pvlm_err *err);

/* Row r of b: item it's image as it is (no paint) with its prefix (ground: the expression, without
 * query_suffix) and an empty target: one encoder input per group (finetune/regionft.h). */
int pvlm_ft_fill_query(const pvlm_ft_data *d, const pvlm_ft_item *it, const pvlm_ft_rowspec *rs, pvlm_batch *b, int r,
                       pvlm_err *err);

/* The group cross-entropy objective (mpi/dp.h objective hook). */
typedef struct pvlm_ft_objective {
    int n_groups;          /* groups in the current micro-batch */
    const int *group_row0; /* [n_groups + 1] first row of each group; last = rows */
    const int *label;      /* [n_groups] correct candidate */
    int length_norm;       /* score = mean token log-prob */
    double groups_global;  /* groups in the global batch (normalisation) */
} pvlm_ft_objective;
int pvlm_ft_objective_fn(void *ctx, const pvlm_batch *b, const double *sample_ce, double n_targets_global,
                         double *sample_scale, double *obj, pvlm_err *err);

/* Index of the best-scoring candidate given per-row log-likelihoods. */
int pvlm_ft_argmax(const double *logp, const int32_t *ntok, int rows, int length_norm);

#endif
