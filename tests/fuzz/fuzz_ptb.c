/* fuzz_ptb.c - score/ptb.h on arbitrary bytes: pvlm_ptb_tokenize (with and without the punctuation
 * removal, alone and followed by a next line: the input's second half), core/ucd.h's Python
 * lower-casing (at most 3 output bytes per input byte), and a tokset built from the result. */
#include <stdlib.h>

#include "core/ucd.h"
#include "fuzz.h"
#include "score/ptb.h"

int pvlm_fuzz_ptb(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    pvlm_err err = {0};
    char *a = pvlm_ptb_tokenize(text, size, &err);
    char *b = pvlm_ptb_tokenize_raw(text, size, &err);
    if (!a || !b) abort();
    char *c = pvlm_ptb_tokenize_next(text, size / 2, text + size / 2, size - size / 2, NULL, &err);
    if (!c) abort();
    free(c);
    size_t ln = 0;
    char *low = pvlm_ucd_lower_utf8(text, size, &ln);
    if (!low || ln > 3 * size || low[ln] != 0) abort();
    free(low);
    for (size_t i = 0; i < size; i++) {
        size_t n = pvlm_py_space_len(text, i, size);
        if (n > size - i) abort();
    }
    pvlm_tokset ts;
    const char *cand[1] = {a};
    const char *refs[2] = {b, a};
    const int32_t ref_begin[2] = {0, 2};
    if (pvlm_ptb_tokset_build(&ts, 1, cand, ref_begin, refs, &err) == 0) pvlm_ptb_tokset_free(&ts);
    free(a);
    free(b);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_ptb)
