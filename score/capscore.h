/* capscore.h - the COCO caption evaluation: loading references and results,
 * the evaluated set, tokenization, BLEU/ROUGE-L/CIDEr-D, per-image scores,
 * NoCaps per-domain scores, and METEOR/SPICE through the official jars.
 *
 * Reference file: COCO captions format {"images": [{"id", "file_name",
 * "domain"?}], "annotations": [{"image_id", "caption"}]}. Results file:
 * [{"image_id": int, "caption": str}] (what `pvlm caption` writes). The
 * evaluated set is the images of the results file, in the order of the
 * reference file's "images" list (pycocotools' loadRes order); an image id of
 * the results that the references lack, a duplicate image id, a missing or
 * non-string caption is an error naming the file and record.
 *
 * Ownership: pvlm_caprefs / pvlm_capres / pvlm_capscore own their strings and
 * arrays; free with the matching _free. Nothing global.
 */
#ifndef PVLM_SCORE_CAPSCORE_H
#define PVLM_SCORE_CAPSCORE_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "score/bleu.h"

typedef struct pvlm_caprefs {
    int32_t n_img;
    int64_t *image_id;  /* [n_img], reference-file order */
    char **file_name;   /* [n_img], NULL when absent */
    char **domain;      /* [n_img], NULL when absent (NoCaps: in-domain / near-domain / out-domain) */
    int32_t *ref_begin; /* [n_img+1] captions of image i: caption[ref_begin[i] .. ref_begin[i+1]-1] */
    char **caption;     /* raw reference captions, file order within each image */
    int any_domain;     /* some image carries a domain field */
    int64_t *sorted_id; /* [n_img] image ids ascending, and */
    int32_t *sorted_ix; /* [n_img] their indices (pvlm_caprefs_find) */
} pvlm_caprefs;

typedef struct pvlm_capres {
    int32_t n;
    int64_t *image_id;
    char **caption;
} pvlm_capres;

/* Load a COCO captions reference file. An image in "images" without captions
 * is kept (it fails only if a result names it); annotations for ids missing
 * from "images" are an error. Returns 0 or -1 (err names the file/record). */
int pvlm_caprefs_load(pvlm_caprefs *r, const char *path, pvlm_err *err);
int pvlm_caprefs_from_json(pvlm_caprefs *r, const json_t *root, const char *what, pvlm_err *err);
void pvlm_caprefs_free(pvlm_caprefs *r);
/* Index of image_id in r (binary search), or -1. */
int32_t pvlm_caprefs_find(const pvlm_caprefs *r, int64_t image_id);

/* Load a COCO results file ([{"image_id", "caption"}]); duplicates are an error. */
int pvlm_capres_load(pvlm_capres *res, const char *path, pvlm_err *err);
int pvlm_capres_from_json(pvlm_capres *res, const json_t *root, const char *what, pvlm_err *err);
void pvlm_capres_free(pvlm_capres *res);

enum {
    PVLM_CAP_BLEU1,
    PVLM_CAP_BLEU2,
    PVLM_CAP_BLEU3,
    PVLM_CAP_BLEU4,
    PVLM_CAP_ROUGE_L,
    PVLM_CAP_CIDER,
    PVLM_CAP_METEOR,
    PVLM_CAP_SPICE,
    PVLM_CAP_NMETRICS
};
/* "Bleu_1" ... "CIDEr", "METEOR", "SPICE" (pycocoevalcap's keys) */
extern const char *const pvlm_cap_metric_names[PVLM_CAP_NMETRICS];

typedef struct pvlm_capsplit {
    char *name; /* "overall", or the domain */
    int32_t n_img;
    double score[PVLM_CAP_NMETRICS]; /* METEOR/SPICE NaN when not computed */
    pvlm_bleu_stats bleu_stats;
} pvlm_capsplit;

typedef struct pvlm_capscore_opts {
    const char *meteor_jar; /* NULL: METEOR not computed */
    const char *spice_jar;  /* NULL: SPICE not computed */
    const char *java;       /* java executable (NULL: "java") */
    const char *tmp_dir;    /* for SPICE's input/output files (NULL: $TMPDIR or /tmp) */
} pvlm_capscore_opts;

typedef struct pvlm_capscore {
    int32_t n_img;
    int64_t *image_id;    /* [n_img] evaluated images, reference-file order */
    int32_t *ref_index;   /* [n_img] index into the pvlm_caprefs */
    char **cand_tok;      /* [n_img] tokenized candidates */
    double *per_image;    /* [n_img * PVLM_CAP_NMETRICS], from the overall split */
    int n_split;          /* 1 + number of domains */
    pvlm_capsplit *split; /* split[0] = overall, then domains in first-seen order */
    double t_tokenize, t_ngrams, t_bleu, t_rouge,
        t_cider; /* wall seconds: PTB tokenization, word/n-gram ids, metrics */
    double c_tokenize, c_ngrams, c_bleu, c_rouge, c_cider; /* the same phases in CPU seconds of the calling thread */
} pvlm_capscore;

/* Score results against references. opts may be NULL. Returns 0 or -1. */
int pvlm_capscore_run(pvlm_capscore *out, const pvlm_caprefs *refs, const pvlm_capres *res,
                      const pvlm_capscore_opts *opts, pvlm_err *err);
void pvlm_capscore_free(pvlm_capscore *s);

/* The scores as a JSON object: the overall metrics (Bleu_1..4, ROUGE_L, CIDEr,
 * METEOR/SPICE when computed), n_images, "unavailable": [...], and with
 * NoCaps domains a "domains" object of the same per domain. New reference. */
json_t *pvlm_capscore_to_json(const pvlm_capscore *s);
/* Per-image scores, keyed by file_name (image id when absent) like
 * golden_per_image files: {"corpus": {...}, "per_image": {name: {"Bleu": [4],
 * "ROUGE_L", "CIDEr"}}}. New reference. */
json_t *pvlm_capscore_per_image_json(const pvlm_capscore *s, const pvlm_caprefs *refs);

/* NoCaps: the evaluation server's result for one split (val or test), as the nocaps EvalAI challenge
 * returns it: [{"in-domain": M}, {"near-domain": M}, {"out-domain": M}, {"entire": M}] where M has
 * "B1".."B4", "METEOR", "ROUGE-L", "CIDEr", "SPICE" (the values pycocoevalcap computes on that
 * domain's images alone; null for METEOR/SPICE when not computed). Every scored image must carry one
 * of the three domains. New reference, or NULL with err set. */
json_t *pvlm_capscore_nocaps_json(const pvlm_capscore *s, pvlm_err *err);
/* The submission file the evaluation server takes for the split the references describe: one
 * {"image_id": int, "caption": str} per image of the references, in their order. An image without a
 * result is an error (the server rejects incomplete submissions). New reference, or NULL with err. */
json_t *pvlm_capres_submission_json(const pvlm_capres *res, const pvlm_caprefs *refs, pvlm_err *err);

/* Print a JSON value with every real as %.17g (round-trip) to f. */
int pvlm_capscore_print_json(const json_t *j, FILE *f);

#endif
