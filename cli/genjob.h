/* genjob.h - the shape `pvlm caption` and `pvlm vqa` share: MPI and threads up, a checkpoint opened at
 * a precision, generation over a list of items split across the ranks (eval/gen.h), and rank 0 writing
 * the results JSON [{id_key, text_key}] in input order, without the items whose image could not be read.
 *
 * Ownership: a pvlm_genjob owns its model, tokenizer and the texts of its run (pvlm_genjob_close frees
 * them and finalizes MPI). A pvlm_genjob_items owns its item array and the path and prefix strings it
 * points to (pvlm_genjob_items_free); items whose prefix is not owned leave prefixes[i] NULL.
 */
#ifndef PVLM_CLI_GENJOB_H
#define PVLM_CLI_GENJOB_H

#include <stddef.h>

#include "core/error.h"
#include "eval/gen.h"
#include "io/imgshard.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "mpi/comm.h"

typedef struct pvlm_genjob_items {
    pvlm_gen_item *items;
    char **paths;    /* owned image paths (NULL for shard records) */
    char **prefixes; /* owned prefix texts (NULL where the prefix is borrowed) */
    size_t n;
} pvlm_genjob_items;

/* n zeroed items (and one spare, so n may be 0); the error names `what` ("images", "questions"). */
int pvlm_genjob_items_alloc(pvlm_genjob_items *l, size_t n, const char *what, pvlm_err *err);
/* Item i's image is path (copied). */
int pvlm_genjob_items_set_path(pvlm_genjob_items *l, size_t i, const char *path, pvlm_err *err);
void pvlm_genjob_items_free(pvlm_genjob_items *l);

typedef struct pvlm_genjob {
    pvlm_comm comm;
    pvlm_model model;
    pvlm_tokenizer *tok;
    char **texts; /* rank 0 after a run: one per item, NULL for an unreadable image */
    size_t n;     /* items of the run */
    pvlm_gen_stats st;
} pvlm_genjob;

/* Signals, MPI and threads per rank (pvlm_comm_start; threads 0: cores / local ranks). On failure
 * nothing is held; on success pvlm_genjob_close ends the job. */
int pvlm_genjob_start(pvlm_genjob *j, int *argc, char ***argv, int threads, pvlm_err *err);
/* The model and vocabulary of ckpt (any of pvlm_ftckpt_load_any's kinds) at precision. */
int pvlm_genjob_load(pvlm_genjob *j, const char *ckpt, const char *tokdir, const char *precision, pvlm_err *err);
/* gc: the model's defaults with the shared decoding flags (max_len capped by max_suffix_len). */
void pvlm_genjob_config(const pvlm_genjob *j, pvlm_gen_config *gc, int beam, int max_len, int batch);
/* Generation over the first n items (collective); the texts land in j on rank 0. */
int pvlm_genjob_run(pvlm_genjob *j, pvlm_imgshard_reader *shard, const pvlm_genjob_items *l, size_t n,
                    const pvlm_gen_config *gc, pvlm_err *err);

/* What rank 0 writes and the words of its summary lines, so each command keeps its own wording:
 * "wrote N <results> to PATH: R <unit>/s, M <missing>" and, when no image could be read,
 * "none of the <none_of>N <unit> could be read; no results written". */
typedef struct pvlm_genjob_output {
    const char *path;              /* --out */
    const char *id_key, *text_key; /* "image_id", "caption" */
    const char *lead;              /* prepended with a space to every text (NULL: none) */
    const char *results, *unit, *missing, *none_of;
} pvlm_genjob_output;

/* Rank 0 (others return 0): the results JSON of the last run, the unreadable items reported. It is an
 * error when items were asked for and none could be read (nothing is written then). */
int pvlm_genjob_write(const pvlm_genjob *j, const pvlm_genjob_items *l, const pvlm_genjob_output *o, pvlm_err *err);
void pvlm_genjob_close(pvlm_genjob *j);

#endif
