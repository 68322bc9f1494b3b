/* fuzz_capscore.c - score/capscore.h: pvlm_caprefs_from_json and pvlm_capres_from_json on arbitrary
 * JSON; when both load from the same document, every result image is looked up in the refs. */
#include <stdlib.h>

#include "score/capscore.h"
#include "fuzz.h"

int pvlm_fuzz_capscore(const uint8_t *data, size_t size) {
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (!j) return 0;
    pvlm_caprefs refs;
    pvlm_capres res;
    pvlm_err err = {0};
    memset(&refs, 0, sizeof refs);
    memset(&res, 0, sizeof res);
    int rok = pvlm_caprefs_from_json(&refs, j, "fuzz refs", &err) == 0;
    int sok = pvlm_capres_from_json(&res, j, "fuzz results", &err) == 0;
    /* results are usually a list and refs an object: also try the list under "annotations" */
    json_t *ann = json_is_object(j) ? json_object_get(j, "annotations") : NULL;
    if (!sok && ann && pvlm_capres_from_json(&res, ann, "fuzz results", &err) == 0) sok = 1;
    if (rok) {
        for (int32_t i = 0; i < refs.n_img; i++)
            if (pvlm_caprefs_find(&refs, refs.image_id[i]) < 0) abort();
        if (sok)
            for (int32_t i = 0; i < res.n; i++) pvlm_caprefs_find(&refs, res.image_id[i]);
        pvlm_caprefs_free(&refs);
    }
    if (sok) pvlm_capres_free(&res);
    json_decref(j);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_capscore)
