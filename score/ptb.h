/* ptb.h - the caption tokenizer of the COCO caption evaluator, and the
 * token-id corpus every caption metric (BLEU, ROUGE-L, CIDEr-D) reads.
 *
 * pvlm_ptb_tokenize() reproduces what pycocoevalcap's tokenizer step yields
 * for one caption: the Stanford CoreNLP 3.4.1 PTBTokenizer run with
 * `-preserveLines -lowerCase` (PTB3 escaping: brackets -> -LRB-..., quotes ->
 * `` '', dashes -> --, ellipses -> ..., currency/fraction/&amp; normalisation,
 * contractions split as "do n't", "it 's", "gon na", abbreviations keep their
 * period), lower-cased, followed by pycocoevalcap's removal of the tokens
 * '' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ; (compared after
 * lower-casing, so -lrb- etc. survive, as in the official pipeline). See
 * docs/scoring.md for the rules and the deliberate differences (line breaks).
 *
 * pvlm_tokset turns tokenized captions (image i: one candidate, K references)
 * into word ids and n-gram ids (n = 1..4, in Python dict insertion order), so
 * the metrics work on integers. The tokset owns all its arrays
 * (pvlm_ptb_tokset_free). Nothing here keeps global state.
 */
#ifndef PVLM_SCORE_PTB_H
#define PVLM_SCORE_PTB_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "score/ptblex.h"

/* Tokenize `len` bytes of UTF-8 `text` (need not be NUL-terminated) as one line of the official
 * tokenizer's input that is the last line (the lexer sees the end of input after it). Invalid UTF-8
 * becomes U+FFFD; characters the Java lexer cannot tokenize are dropped, as its default
 * "untokenizable=firstDelete" does. Returns a new NUL-terminated string of tokens joined by single
 * spaces (caller free()s), or NULL (err set) only when out of memory. */
char *pvlm_ptb_tokenize(const char *text, size_t len, pvlm_err *err);
/* The same for a line that is followed by the line `next` in the tokenizer's input (pycocoevalcap
 * tokenizes all captions of a call as one text, one per line): a few rules of the lexer look past the
 * end of the line ("I." followed by a line starting "A ..." is split). next may be NULL (the last line). memo
 * (may be NULL): what the lexer learnt on earlier lines, shared to save time (ptblex.h). */
char *pvlm_ptb_tokenize_next(const char *text, size_t len, const char *next, size_t next_len, pvlm_ptblex_memo *memo,
                             pvlm_err *err);

/* The same, without pycocoevalcap's punctuation removal (raw PTB tokens,
 * lower-cased): what the Java tokenizer itself would print for the line. */
char *pvlm_ptb_tokenize_raw(const char *text, size_t len, pvlm_err *err);

/* Python's str.isspace() / str.split() white space at s[i] (ASCII, U+001C..U+001F, U+0085, U+00A0,
 * U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000): its UTF-8 length, 0 if none.
 * Both evaluators split on it (pycocoevalcap after tokenizing, the VQA script's answer cleaning). */
size_t pvlm_py_space_len(const char *s, size_t i, size_t n);

#define PVLM_NGRAM_MAX 4

typedef struct pvlm_ngram_entry {
    int32_t gram;  /* n-gram id (dense, 0..n_grams-1) */
    int32_t count; /* occurrences in the caption */
} pvlm_ngram_entry;

typedef struct pvlm_tokset {
    int32_t n_img;
    int32_t n_caps;     /* captions: candidates and references together */
    int32_t *cand;      /* [n_img] caption index of image i's candidate */
    int32_t *ref_begin; /* [n_img+1] image i's references are captions ref_begin[i]..ref_begin[i+1]-1 */
    /* BLEU/CIDEr view: tokens as Python's str.split() (any whitespace, NBSP included) */
    int64_t *tok_begin; /* [n_caps+1] */
    int32_t *tok;       /* word ids */
    /* ROUGE-L view: tokens as Python's str.split(" ") (an empty caption is one empty token) */
    int64_t *rtok_begin; /* [n_caps+1] */
    int32_t *rtok;
    /* n-grams of the split() view: caption c, order n (1..4) has entries
     * ng[ng_begin[c*4+n-1] .. ng_begin[c*4+n]-1], in first-occurrence order */
    int64_t *ng_begin; /* [n_caps*4+1] */
    pvlm_ngram_entry *ng;
    int32_t n_words, n_grams;
    uint8_t *gram_order; /* [n_grams] n of each n-gram (1..4) */
} pvlm_tokset;

/* Build from tokenized strings (outputs of pvlm_ptb_tokenize): image i's
 * candidate is cand[i]; its references are refs[ref_begin[i]..ref_begin[i+1]-1]
 * (ref_begin has n_img+1 entries, ref_begin[0] = 0, each image >= 1 ref).
 * Caption numbering in the tokset: references first (0..n_refs-1, in order),
 * then candidates (n_refs + i). Returns 0, or -1 with err set. */
int pvlm_ptb_tokset_build(pvlm_tokset *ts, int32_t n_img, const char *const *cand, const int32_t *ref_begin,
                          const char *const *refs, pvlm_err *err);
void pvlm_ptb_tokset_free(pvlm_tokset *ts);

/* numpy's pairwise summation (np.add.reduce over a contiguous float64 array:
 * blocks of 128 with 8 accumulators), so means equal np.mean bit for bit. */
double pvlm_ptb_np_sum(const double *a, size_t n);
static inline double pvlm_ptb_np_mean(const double *a, size_t n) {
    return n ? pvlm_ptb_np_sum(a, n) / (double)n : 0.0 / 0.0;
}

#endif
