/* rouge.h - ROUGE-L as pycocoevalcap's rouge.py: per image, the LCS of the
 * candidate with each reference (tokens split on single spaces), precision and
 * recall maxima over the references, F = (1+b^2) P R / (R + b^2 P) with
 * beta = 1.2 (0 when P or R is 0); the corpus score is np.mean of the
 * per-image scores (numpy pairwise summation, pvlm_ptb_np_sum). */
#ifndef PVLM_SCORE_ROUGE_H
#define PVLM_SCORE_ROUGE_H

#include "core/error.h"
#include "score/ptb.h"

/* *mean = corpus ROUGE_L; per_image (NULL or [n_img]). Returns 0 or -1. */
int pvlm_rouge_score(const pvlm_tokset *ts, double *mean, double *per_image, pvlm_err *err);

#endif
