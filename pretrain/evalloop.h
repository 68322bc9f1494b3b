/* evalloop.h - held-out evaluation during pretraining (`pvlm pretrain --eval-every`) and offline
 * (`pvlm eval-loss`): validation loss per stream over a fixed sample set, and zero-shot captioning of
 * held-out images scored with CIDEr-D and BLEU-4.
 *
 * Fixed sample set: the first min(samples, N) positions of epoch 0 of the loader's seeded order over
 * the held-out manifest (io/loader.h), one stream at a time (image-text, text-only), with the PrefixLM
 * split drawn from the same counters. The set depends on (manifest, seed, samples) only: not on the
 * step, the number of ranks or the micro-batch. Rank r of W takes positions [M*r/W, M*(r+1)/W) through
 * its own loader (world 1, state moved to its first position), so every sample is scored exactly once.
 * Per-sample CE sums are added as fixed-point integers (2^-28 nats) and the sums and token counts of
 * both streams travel in one int64 all-reduce: the result is exact and independent of the rank count and
 * summation order, so `pvlm eval-loss` on one process reproduces what a W-rank training run logged.
 *
 * Captioning: the first K records (manifest order) of the held-out image shards that carry at least
 * one caption; every caption of a record is a reference. Generation runs through eval/gen.h on all
 * ranks (greedy, the `pvlm caption` defaults), scoring through eval/capscore.h on rank 0.
 *
 * Training is not disturbed: the evaluation opens its own loaders and shard readers (and closes them
 * before returning, so no LMDB file is open twice), runs forward passes only (no gradients, no optimizer
 * state), and draws no random numbers; the training loader, RNG streams and parameters are untouched.
 *
 * Ownership: the config's strings and the model/tokenizer are borrowed; results are plain values.
 */
#ifndef PVLM_PRETRAIN_EVALLOOP_H
#define PVLM_PRETRAIN_EVALLOOP_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "io/tokenizer.h"
#include "model/model.h"
#include "mpi/comm.h"

enum { PVLM_EVAL_IMAGE = 0, PVLM_EVAL_TEXT = 1 };

typedef struct pvlm_evalloop_config {
    const char *images;  /* held-out image-text manifest.json (NULL: no image-text loss, no captions) */
    const char *text;    /* held-out text manifest.json (NULL: no text-only loss) */
    int64_t samples;     /* per stream: first min(samples, N) positions of the seeded order */
    uint64_t seed;       /* seed of that order and of the PrefixLM splits */
    int micro_batch;     /* samples per forward pass */
    int captions;        /* K: held-out images captioned and scored (0: no captioning) */
    const char *prompt;  /* encoder text after the image ("a picture of", as `pvlm caption`) */
    int max_len;         /* caption tokens at most (capped at the model's Ls) */
} pvlm_evalloop_config;

/* samples 256, seed 0, micro_batch 32, captions 0, prompt "a picture of", max_len 20. */
void pvlm_evalloop_config_default(pvlm_evalloop_config *c);

typedef struct pvlm_evalloop_result {
    double loss[2];         /* mean token CE per stream (PVLM_EVAL_IMAGE, PVLM_EVAL_TEXT); NaN if absent */
    int64_t ntok[2];        /* target tokens scored per stream (all ranks) */
    int64_t nsamples[2];    /* samples scored per stream (all ranks) */
    int captioned;          /* 1: the caption fields below are set */
    int64_t n_captioned;    /* images captioned (with references) */
    double cider, bleu4;    /* corpus CIDEr-D and BLEU-4, pycocoevalcap's scale (1.0 = 100) */
    double seconds;         /* wall time of the evaluation */
} pvlm_evalloop_result;

/* Validation loss of every configured stream. Collective (every rank of c calls it with the same
 * config). Uses the model's activations (forward only). Fills r->loss/ntok/nsamples on every rank. */
int pvlm_evalloop_loss(const pvlm_comm *c, pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg,
                       pvlm_evalloop_result *r, pvlm_err *err);

/* Zero-shot captioning of the first cfg->captions held-out images, scored. Collective. Sets the caption
 * fields of r on every rank (scores computed on rank 0 and broadcast). No-op when captions is 0 or
 * there are no held-out images. */
int pvlm_evalloop_captions(const pvlm_comm *c, pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg,
                           pvlm_evalloop_result *r, pvlm_err *err);

/* The result as a JSON object (new reference): val_loss_image, val_loss_text (when the stream was
 * scored), val_tokens_*, val_samples_*, cider, bleu4, n_captioned (when captioned), eval_s. */
json_t *pvlm_evalloop_result_json(const pvlm_evalloop_result *r);

/* Value of a metric of the result by its JSON name ("val_loss_image", "cider", ...); NaN when the
 * result does not have it. */
double pvlm_evalloop_metric(const pvlm_evalloop_result *r, const char *name);

/* Parse "NAME[:min|max]" of a result metric (val_loss_image, val_loss_text, cider, bleu4) into name
 * (cap >= 32); without a mode, losses are minimised and caption scores maximised. */
int pvlm_evalloop_parse_metric(const char *spec, char *name, size_t cap, int *maximize, pvlm_err *err);

/* ---- during pretraining ---- */
typedef struct pvlm_evalloop_sched {
    int64_t every;         /* evaluate when the finished step count is a multiple of this (0: never) */
    int64_t caption_every; /* ... and caption when it is a multiple of this (0: at every evaluation) */
    double train_s;        /* step time since the previous evaluation (the caller adds each step's) */
    double train_total_s, eval_total_s;
    int64_t last_step;          /* finished steps at the last evaluation, -1 before the first */
    pvlm_evalloop_result last;  /* its result */
} pvlm_evalloop_sched;

void pvlm_evalloop_sched_init(pvlm_evalloop_sched *s, int64_t every, int64_t caption_every);
/* 1 when an evaluation is due after `step` finished steps of `total`: every `every` steps and after the
 * last one. */
int pvlm_evalloop_due(const pvlm_evalloop_sched *s, int64_t step, int64_t total);
/* Run the due evaluation after `step` finished steps (collective): loss, and captions when their turn
 * comes; rank 0 logs one line (values, cost as a share of the step time since the previous evaluation)
 * and appends {"kind": "eval", "step": step, ...result, "eval_share": ...} to metrics (may be NULL). */
int pvlm_evalloop_run(pvlm_evalloop_sched *s, const pvlm_evalloop_config *cfg, const pvlm_comm *c, pvlm_model *m,
                      pvlm_tokenizer *tok, int64_t step, FILE *metrics, pvlm_err *err);
/* Short text of the last result for the progress line ("val img 3.210 txt 4.001 CIDEr-D 0.123"), or "". */
void pvlm_evalloop_brief(const pvlm_evalloop_sched *s, char *buf, size_t cap);

/* `pvlm eval-loss`: the same validation loss (and optionally captioning) offline from a checkpoint. */
int pvlm_cmd_eval_loss(int argc, char **argv);

#endif
