/* fuzz_vqa.c - score/vqa_eval.h normalisation on arbitrary strings (the input, NUL-terminated) and
 * the accuracy of a question whose prediction and answers come from the input's NUL-split parts (with
 * answer ids, and without: whole-dict comparison). */
#include <stdlib.h>

#include "score/vqa_eval.h"
#include "fuzz.h"

int pvlm_fuzz_vqa(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char *p = pvlm_vqa_process_punctuation(s);
    char *d = pvlm_vqa_process_digit_article(s);
    char *c = pvlm_vqa_clean(s);
    if (!p || !d || !c) abort();
    char *pd = pvlm_vqa_process_digit_article(p);
    free(pd);
    free(p);
    free(d);
    free(c);
    pvlm_vqa_item it = {0};
    it.question_id = 1;
    it.pred = s;
    it.question_type = "what";
    it.answer_type = "other";
    const char *q = s + strlen(s);
    while (q < s + size && it.n_gt < 10) {
        q++;
        it.gt[it.n_gt++] = q;
        q += strlen(q);
    }
    if (it.n_gt == 0) it.gt[it.n_gt++] = s;
    for (int v = 0; v < 2; v++) {
        double acc = pvlm_vqa_question_acc(&it, (pvlm_vqa_version)v);
        if (!(acc >= 0 && acc <= 1)) abort();
    }
    /* answers without ids (whole-dict comparison: equal answers are left out together) */
    for (int k = 0; k < it.n_gt; k++) it.gt_rest[k] = "{}";
    double acc = pvlm_vqa_question_acc(&it, PVLM_VQA_2021);
    if (!(acc >= 0 && acc <= 1)) abort();
    pvlm_vqa_result r;
    pvlm_err err = {0};
    if (pvlm_vqa_evaluate(&it, 1, PVLM_VQA_2021, &r, &err) == 0) pvlm_vqa_result_free(&r);
    free(s);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_vqa)
