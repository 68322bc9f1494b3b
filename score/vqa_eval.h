/* vqa_eval.h - the official VQA v2 accuracy (GT-Vision-Lab/VQA, vqaEval.py).
 *
 * Per question: the answer and the 10 human answers are normalised (newlines
 * and tabs -> spaces, strip; processPunctuation: each of ; / [ ] " { } ( ) =
 * + \ _ - > < @ ` , ? ! is deleted when it touches a space or the text has a
 * digit,digit group, else replaced by a space; periods not followed by a digit
 * removed (at most 32, the script passes re.UNICODE as the count);
 * processDigitArticle: lower-case, split, number words zero..ten (and none)
 * -> digits, drop a/an/the, restore apostrophes of contractions ("dont" ->
 * "don't")); then acc = mean over the 10 leave-one-out subsets of
 * min(#matches / 3, 1). Aggregates: 100 * sum / n over all questions, per
 * question type and per answer type, each rounded like Python round(x, 2).
 *
 * Versions: PVLM_VQA_2021 (current script, after the March 2021 fix): when
 * the 10 answers are not all identical, both the answers and the prediction
 * get processPunctuation + processDigitArticle; when they all agree nothing is
 * normalised (so "Yes" against ten "yes" scores 0). PVLM_VQA_PRE2021 (the
 * script many papers used): the prediction always gets both steps; the answers
 * only processPunctuation, and only when they are not all identical (so
 * "none" -> "0" never matches a human "none").
 *
 * Unicode, as the 2021 script runs under Python 3: lower-casing is str.lower (score/ucd.h: SpecialCasing's
 * unconditional mappings and Final_Sigma), \d in commaStrip/periodStrip is any decimal digit (Nd),
 * split()/strip() use Python's white space. The pre-2021 mode uses the same Python 3 semantics (the
 * pre-2021 script itself is Python 2 code: under Python 2, str is bytes and lower()/\d are ASCII-only,
 * so results on non-ASCII answers differ from pvlm's; on ASCII answers they are the same).
 *
 * Ownership: pvlm_vqa_data and pvlm_vqa_result own their arrays (_free).
 */
#ifndef PVLM_SCORE_VQA_EVAL_H
#define PVLM_SCORE_VQA_EVAL_H

#include <stdint.h>

#include "core/error.h"

typedef enum { PVLM_VQA_2021 = 0, PVLM_VQA_PRE2021 = 1 } pvlm_vqa_version;

#define PVLM_VQA_MAX_GT 32

typedef struct pvlm_vqa_item {
    int64_t question_id;
    const char *pred;                /* the model's answer */
    const char *gt[PVLM_VQA_MAX_GT]; /* human answers (10 in VQA v2) */
    int n_gt;
    const char *question_type;
    const char *answer_type;
    /* The other fields of each human answer's dict (answer_id, answer_confidence) as canonical JSON
     * text ("{}" when it has none), or NULL: a dict known to differ from every other (an answer with its
     * own answer_id). The official leave-one-out leaves out every answer dict equal to the current one
     * (whole-dict comparison): with distinct answer_ids that is exactly one answer; answers without ids
     * that agree in text (and confidence) are all left out together. */
    const char *gt_rest[PVLM_VQA_MAX_GT];
} pvlm_vqa_item;

typedef struct pvlm_vqa_result {
    int n;
    int64_t *question_id;
    double *acc;      /* [n] unrounded mean leave-one-out accuracy in [0,1] */
    double *acc_x100; /* [n] round(100 * acc, 2), the script's evalQA */
    double overall;   /* round(100 * sum(acc) / n, 2) */
    int n_qtype, n_atype;
    char **qtype, **atype;         /* names, first-seen order */
    double *qtype_acc, *atype_acc; /* rounded like overall */
    int *qtype_n, *atype_n;
} pvlm_vqa_result;

/* Python's round(x, nd) for a float: the correctly rounded decimal (ties to
 * even on the exact binary value), read back as a double. */
double pvlm_vqa_py_round(double x, int nd);

/* The script's normalisation steps; results are new strings (free()), NULL
 * only when out of memory. */
char *pvlm_vqa_process_punctuation(const char *s);
char *pvlm_vqa_process_digit_article(const char *s);
/* newline/tab -> space, then Python str.strip() */
char *pvlm_vqa_clean(const char *s);

/* Accuracy of one question (unrounded), or -1 when out of memory. */
double pvlm_vqa_question_acc(const pvlm_vqa_item *it, pvlm_vqa_version v);

/* Evaluate items[0..n) in order. Returns 0 or -1 (err). */
int pvlm_vqa_evaluate(const pvlm_vqa_item *items, int n, pvlm_vqa_version v, pvlm_vqa_result *out, pvlm_err *err);
void pvlm_vqa_result_free(pvlm_vqa_result *r);

/* Load official files and evaluate: questions (VQA v2 question JSON,
 * {"questions": [{"question_id", ...}]}), annotations ({"annotations":
 * [{"question_id", "question_type", "answer_type", "answers": [{"answer"}]}]}),
 * results ([{"question_id", "answer"}], one per annotated question, as the
 * official loadRes requires; a missing, duplicate or unknown question id is an
 * error naming the file and record). Questions are evaluated in annotation
 * order. */
int pvlm_vqa_evaluate_files(const char *questions, const char *annotations, const char *results, pvlm_vqa_version v,
                            pvlm_vqa_result *out, pvlm_err *err);

#endif
