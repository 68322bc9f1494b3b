/* dp.h - the data-parallel training step that pretrain/ and finetune/ share.
 *
 * One call of pvlm_dp_step is one optimizer step over a global batch of
 *   ranks x micro-batch size x n_micro (gradient accumulation)
 * samples, made equal to one big batch by normalising the loss by the global number of targets:
 *  1. sum the micro-batches' target counts over ranks (one small blocking allreduce);
 *  2. zero the gradients; forward + backward every micro-batch (backward accumulates with +=);
 *     during the last micro-batch's backward the model's grad-ready hook launches the gradient
 *     buckets (mpi/reducer.h: non-blocking allreduce, or reduce-scatter with ZeRO-1, polled with
 *     MPI_Test because Open MPI 4.1 makes no asynchronous progress);
 *  3. wait for the buckets; one small allreduce carries the loss sums, the partial squared norms
 *     (every rank sums its pvlm_comm_split share of the reduced gradient), the non-finite flag and every rank's stop flag (OR), so all ranks take the same
 *     decisions: skip or update, stop or go on;
 *  4. a non-finite loss or gradient norm skips the update (counted; after max_nonfinite in a row the
 *     step returns an error); otherwise global-norm clipping (as torch.nn.utils.clip_grad_norm_) and
 *     AdamW (model/optim.h) on the whole buffer, or on this rank's ZeRO-1 slice followed by an
 *     all-gather of the parameters.
 * Gradients are summed over ranks (not averaged): the loss is already divided by the global count.
 *
 * Determinism: bucket boundaries and launch order are fixed, so the same world size, batches and
 * threads give bit-identical parameters; exact resume additionally needs the counters below and the
 * moments, which pvlm_dp_save_optim / pvlm_dp_load_optim store and restore (any world size: the
 * moments are read by global range, so a resumed run may change the number of ranks or ZeRO-1).
 *
 * Ownership: pvlm_dp is caller-owned; init allocates the moments (full, or the ZeRO-1 slice) and the
 * reducer, pvlm_dp_free releases them. The model, communicator and trainable flags are borrowed and
 * must outlive it.
 */
#ifndef PVLM_MPI_DP_H
#define PVLM_MPI_DP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/batch.h"
#include "model/model.h"
#include "model/optim.h"
#include "mpi/comm.h"
#include "mpi/reducer.h"

typedef struct pvlm_dp_config {
    int zero1;           /* 1: ZeRO-1 (optimizer state sharded over ranks) */
    size_t bucket_elems; /* floats per gradient bucket; 0 = 1M (4 MiB) */
    int overlap;         /* 1: launch buckets from backward's hook; 0: all after backward (blocking);
                          * -1 (default): 1 only when every node has a core to spare beyond ranks x
                          * threads (polling inside backward otherwise competes with the GEMMs of
                          * the ranks: docs/perf-scaling.md); the same on every rank */
    int max_nonfinite;   /* error after this many non-finite steps in a row; 0 = never */
    int progress_thread; /* 1: a thread polls the gradient buckets (mpi/reducer.h); 0: the hook polls */
} pvlm_dp_config;
void pvlm_dp_config_default(pvlm_dp_config *c); /* zero1 0, bucket 1M floats, overlap -1, max_nonfinite 10, no thread */

/* Optional custom objective (finetune: classification losses). Called after each micro-batch's
 * forward with its per-sample CE sums; must fill sample_scale[B] = d(objective)/d(sample CE sum)
 * and *obj = this micro-batch's contribution to the (globally normalised) objective.
 * NULL: the pretraining loss (sum of CE / global target count). */
typedef int (*pvlm_dp_objective_fn)(void *ctx, const pvlm_batch *b, const double *sample_ce,
                                    double n_targets_global, double *sample_scale, double *obj, pvlm_err *err);

typedef struct pvlm_dp {
    const pvlm_comm *comm;
    pvlm_model *m;
    pvlm_optim_config ocfg;
    pvlm_dp_config cfg;       /* cfg.overlap resolved to 0 or 1 by init */
    char overlap_why[160];    /* how cfg.overlap was decided, for the run's settings log line */
    const uint8_t *trainable; /* per view, borrowed; NULL = all */
    pvlm_reducer red;
    float *m1, *m2;           /* AdamW moments of [opt_off, opt_off + opt_n), owned */
    size_t opt_off, opt_n;    /* whole buffer, or this rank's ZeRO-1 slice */
    size_t *seg_off, *seg_n;  /* trainable ranges (merged views), owned */
    int nseg;
    /* counters (saved in checkpoints) */
    int64_t step;         /* training steps done (0-based index of the next step; drives the LR) */
    int64_t adam_t;       /* AdamW updates applied (bias-correction t of the last update) */
    int64_t n_skipped;    /* non-finite steps skipped in total */
    int64_t nonfinite_run;/* ... in a row, up to now */
    pvlm_dp_objective_fn objective;
    void *objective_ctx;
    double *scratch;      /* per-sample buffers for the objective, owned */
    int scratch_B;
} pvlm_dp;

typedef struct pvlm_dp_result {
    int64_t step;                 /* index of this step (0-based) */
    double loss;                  /* global objective of the step */
    double loss_img, loss_txt;    /* mean token CE over image-text / text-only targets (NaN if none) */
    int64_t ntok, ntok_img, ntok_txt, nsamples; /* global counts */
    double grad_norm;             /* global L2 norm before clipping */
    double clip_scale;            /* factor applied to the gradient (1 = no clipping) */
    double lr;
    int skipped;                  /* 1: non-finite, no update */
    int stop;                     /* 1: some rank asked to stop (agreed by all ranks) */
    double t_compute;             /* forward + backward seconds (this rank) */
    double t_comm;                /* seconds blocked on collectives after backward (exposed comm) */
    double t_optim;               /* clipping + AdamW + all-gather seconds */
    double t_total;
    double flops;                 /* model FLOPs of this rank's micro-batches */
    uint64_t bytes;               /* gradient/parameter payload bytes handed to collectives */
} pvlm_dp_result;

/* Collective. trainable (NULL = all views) is borrowed. Moments start at zero. */
int pvlm_dp_init(pvlm_dp *dp, const pvlm_comm *c, pvlm_model *m, const pvlm_optim_config *ocfg,
                 const pvlm_dp_config *cfg, const uint8_t *trainable, pvlm_err *err);
void pvlm_dp_free(pvlm_dp *dp);
void pvlm_dp_set_objective(pvlm_dp *dp, pvlm_dp_objective_fn fn, void *ctx);

/* One optimizer step over this rank's n_micro micro-batches (same n_micro on every rank; a
 * micro-batch may hold zero targets). local_stop: this rank's stop request (pvlm_comm_stop_local()).
 * Collective. Returns -1 on MPI/model errors and after max_nonfinite non-finite steps in a row. */
int pvlm_dp_step(pvlm_dp *dp, pvlm_batch *const *micro, int n_micro, int local_stop, pvlm_dp_result *res,
                 pvlm_err *err);

/* Checkpointing the optimizer. Files are written into dir (which must exist):
 *   plain: rank 0 writes "optim.safetensors" ("full" layout);
 *   ZeRO-1: every rank writes "optim-rank%05d.safetensors" ("flat" layout, global offsets).
 * *names receives (on every rank) a new JSON array of the file names written by all ranks.
 * Collective. */
int pvlm_dp_save_optim(pvlm_dp *dp, const char *dir, json_t **names, pvlm_err *err);
/* Load this rank's moment range from the files (paths: every optimizer file of the checkpoint, any
 * layout, any old world size) and set adam_t from them. Collective only in that every rank reads. */
int pvlm_dp_load_optim(pvlm_dp *dp, const char *const *paths, int npaths, pvlm_err *err);
/* Counters as JSON {"step","adam_t","n_skipped","nonfinite_run"} (new ref) and back. */
json_t *pvlm_dp_state_to_json(const pvlm_dp *dp);
int pvlm_dp_state_from_json(pvlm_dp *dp, const json_t *j, pvlm_err *err);

#endif
