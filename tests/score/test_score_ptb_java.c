/* test_score_ptb_java.c - pvlm_ptb_tokenize against the official caption-evaluation tokenization
 * (Stanford CoreNLP 3.4.1 PTBTokenizer -preserveLines -lowerCase, then pycocoevalcap's punctuation
 * removal) on all 10,000 punctuation-heavy strings of
 * ../shared/data/captions/ptb_tokenizer_cases_java341.json. The official outputs were made from one
 * input with the strings one per line, as pycocoevalcap feeds the tokenizer, so each string is
 * tokenized with the next one as the following line (pvlm_ptb_tokenize_next, one lexer memo for all,
 * as capscore runs it; only the last uses pvlm_ptb_tokenize). Prints the first differing input (and how many differ) and fails.
 * With an argument N, prints up to N differing cases (for study) instead of one.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "score/ptb.h"
#include "harness.h"

int main(int argc, char **argv) {
    long show = argc > 1 ? atol(argv[1]) : 1;
    char path[1024];
    pvlm_err err = {0};
    snprintf(path, sizeof path, "%s/data/captions/ptb_tokenizer_cases_java341.json", pvlm_test_shared());
    json_t *cases = pvlm_json_load_file(path, &err);
    CHECK_MSG(cases != NULL, "%s", err.msg);
    if (!cases) return pvlm_test_done("score_ptb_java");
    CHECK(json_array_size(cases) == 10000);
    size_t bad = 0;
    pvlm_ptblex_memo *memo = pvlm_ptblex_memo_new(); /* shared by the lines, as capscore does */
    CHECK(memo != NULL);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *in = json_string_value(json_object_get(c, "input"));
        const char *exp = json_string_value(json_object_get(c, "output"));
        if (!in || !exp) {
            CHECK_MSG(0, "case %zu: no input/output strings", i);
            continue;
        }
        size_t n = json_string_length(json_object_get(c, "input"));
        json_t *next = json_object_get(json_array_get(cases, i + 1), "input");
        char *got = next ? pvlm_ptb_tokenize_next(in, n, json_string_value(next), json_string_length(next), memo, &err)
                         : pvlm_ptb_tokenize(in, n, &err);
        if (!got || strcmp(got, exp)) {
            if ((long)bad < show)
                fprintf(stderr, "case %zu differs:\n  input    \"%s\"\n  expected \"%s\"\n  got      \"%s\"\n", i, in,
                        exp, got ? got : "(null)");
            bad++;
        }
        free(got);
    }
    CHECK_MSG(bad == 0, "%zu of %zu cases tokenize differently from CoreNLP 3.4.1", bad, json_array_size(cases));
    if (!bad) printf("score_ptb_java: all %zu cases match\n", json_array_size(cases));
    pvlm_ptblex_memo_free(memo);
    json_decref(cases);
    return pvlm_test_done("score_ptb_java");
}
