/* gen.h - caption and answer generation from a checkpoint, over MPI ranks.
 *
 * A job is a list of items (an image plus a prefix text: the captioning prompt or a formatted VQA
 * question). Each rank takes a contiguous block of items, builds micro-batches (decode + fit the
 * image to the model's size, tokenize the prefix), and either decodes a continuation (greedy or beam,
 * model/decode.h) or scores a fixed list of candidate continuations and picks the most likely
 * (closed-set VQA). Texts are gathered to rank 0 in input order.
 *
 * An image that cannot be read or decoded (a missing file, a directory, a truncated or corrupt image)
 * is counted and logged (the first 10 per rank), and its item has no result: its text is NULL. It is
 * never answered from the text prefix alone; callers leave it out of their results and report it.
 *
 * Ownership: items and their strings belong to the caller. pvlm_gen_run returns on rank 0 a malloc'd
 * array of n entries, each a malloc'd string or NULL for an unreadable image (free with
 * pvlm_gen_texts_free); other ranks get NULL.
 */
#ifndef PVLM_EVAL_GEN_H
#define PVLM_EVAL_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/imgprep.h"
#include "io/imgshard.h"
#include "io/tokenizer.h"
#include "model/decode.h"
#include "model/model.h"
#include "mpi/comm.h"

typedef struct pvlm_gen_item {
    int64_t id;             /* image_id or question_id (for messages) */
    const char *image_path; /* image file, or NULL to take record shard_index of the job's shard */
    int64_t shard_index;
    const char *prefix;     /* encoder text after the image ("a picture of", "question: ... answer:") */
} pvlm_gen_item;

typedef struct pvlm_gen_config {
    pvlm_decode_config dec;  /* beam size, max/min length, length penalty, no-repeat n-gram */
    int batch_size;          /* items per micro-batch */
    int resize_mode;         /* PVLM_RESIZE_CROP or PVLM_RESIZE_BORDER (io/image.h) */
    const char *const *candidates; /* closed-set mode when n_candidates > 0: score these continuations */
    int n_candidates;
    int length_norm;         /* closed-set: rank by mean token log-prob instead of the sum */
    double progress_every;   /* seconds between progress lines on rank 0 (0: none) */
} pvlm_gen_config;

void pvlm_gen_config_default(pvlm_gen_config *c, const pvlm_model_config *mc);

typedef struct pvlm_gen_stats {
    int64_t items, image_errors; /* image_errors: items without a result (unreadable image) */
    double seconds;          /* wall time of the generation on this rank */
} pvlm_gen_stats;

/* Run the job on every rank of comm (all ranks pass the same items). shard may be NULL when every item
 * has an image_path. stats (may be NULL) receives totals over all ranks (on every rank). */
int pvlm_gen_run(const pvlm_comm *comm, pvlm_model *m, const pvlm_tokenizer *tok, pvlm_imgshard_reader *shard,
                 const pvlm_gen_item *items, size_t n, const pvlm_gen_config *cfg, char ***texts,
                 pvlm_gen_stats *stats, pvlm_err *err);
void pvlm_gen_texts_free(char **texts, size_t n);

/* The image of one item (its file, or record shard_index of shard) as generation feeds it to the model:
 * S x S RGB into dst (S * S * 3 bytes) through io/imgprep.h with resize_mode. rec is scratch for shard
 * records. Returns 0, or -1 with err naming the file or record. */
int pvlm_gen_load_image(const pvlm_gen_item *it, pvlm_imgshard_reader *shard, pvlm_imgprep *prep, pvlm_imgrec *rec,
                        int S, int resize_mode, uint8_t *dst, pvlm_err *err);

/* Rank 0, after pvlm_gen_run: the number of items without a result (NULL texts), logged as one
 * warning that names `what` ("image_id", "question_id") and the first ids. Returns that count. */
size_t pvlm_gen_report_missing(char *const *texts, const pvlm_gen_item *items, size_t n, const char *what);

/* Trim and collapse white space in place (generated texts go into JSON results). */
void pvlm_gen_clean_text(char *s);

#endif
