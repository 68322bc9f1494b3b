/* cider.h - CIDEr-D as pycocoevalcap's cider_scorer.py ("CIDEr" in its output).
 *
 * Document frequency df(g) = number of evaluated images whose references
 * contain n-gram g; ref_len = log(number of evaluated images); tf-idf vectors
 * tf * (ref_len - log(max(1, df))) per n = 1..4; per reference the clipped
 * cosine sum(min(h, r) * r) / (|h| |r|) (skipped when a norm is 0) times the
 * Gaussian length penalty e**(-(d^2) / (2 sigma^2)), sigma = 6, where d is the
 * difference of the two captions' bigram counts (the scorer's "length");
 * image score = mean over n of the sum over references / #refs * 10; corpus
 * score = np.mean over images (pairwise summation).
 */
#ifndef PVLM_SCORE_CIDER_H
#define PVLM_SCORE_CIDER_H

#include "core/error.h"
#include "score/ptb.h"

/* *mean = corpus CIDEr-D; per_image (NULL or [n_img]). Returns 0 or -1. */
int pvlm_cider_score(const pvlm_tokset *ts, double *mean, double *per_image, pvlm_err *err);

#endif
