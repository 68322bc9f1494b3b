/* bleu.h - BLEU-1..4 exactly as pycocoevalcap's bleu_scorer.py computes it.
 *
 * Per image: clipped n-gram matches against the per-n-gram maximum count over
 * the references; effective reference length 'closest' (the reference length
 * nearest the candidate's, the shorter one on ties); corpus BLEU from the
 * summed statistics, brevity penalty e**(1 - r/c) when c < r (computed as
 * pow(M_E, x), which is what Python's `math.e ** x` does), with the scorer's
 * smoothing constants tiny = 1e-15 and small = 1e-9 in every ratio. Per-image
 * BLEU uses the same formula on the image's own statistics.
 */
#ifndef PVLM_SCORE_BLEU_H
#define PVLM_SCORE_BLEU_H

#include <stdint.h>

#include "core/error.h"
#include "score/ptb.h"

typedef struct pvlm_bleu_stats {
    int64_t testlen, reflen;
    int64_t guess[4], correct[4];
    double ratio; /* (testlen + 1e-15) / (reflen + 1e-9) */
} pvlm_bleu_stats;

/* bleu[0..3] = Bleu_1..Bleu_4 over ts; per_image (NULL or [n_img*4]) gets each
 * image's Bleu_1..4; stats (NULL ok) the corpus statistics. Returns 0 or -1. */
int pvlm_bleu_score(const pvlm_tokset *ts, double bleu[4], double *per_image, pvlm_bleu_stats *stats, pvlm_err *err);

/* The statistics line pycocoevalcap prints (verbose=1): Python repr of the dict
 * and "ratio: <repr(float)>", each followed by a newline. Writes into buf
 * (NUL-terminated, truncated to n); returns the full length. */
int pvlm_bleu_stats_format(const pvlm_bleu_stats *st, char *buf, size_t n);

/* Python's repr() of a float (shortest round-trip digits, Python's exponent
 * rules); buf needs 32 bytes. */
void pvlm_bleu_py_repr(double x, char *buf, size_t n);

#endif
