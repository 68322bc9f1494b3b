/* fuzz_imgrec.c - pvlm_imgrec_decode on arbitrary bytes (an LMDB value read from a shard). The
 * input is decoded as it is, and again with its checksum field recomputed, so mutations reach the
 * field parsing behind the checksum. A decoded record must be consistent (strings inside the
 * value, a raw image of stored_w*stored_h*3 bytes, sizes the writer accepts) and re-encode to the
 * same bytes. The same pvlm_imgrec is reused across decodes, as the loader does. */
#include <stdlib.h>

#include "core/hash.h"
#include "fuzz.h"
#include "io/imgshard.h"

static void check(const uint8_t *data, size_t size, pvlm_imgrec *rec) {
    pvlm_err err = {0};
    if (pvlm_imgrec_decode(data, size, rec, "fuzz record", &err) != 0) return;
    volatile size_t sum = strlen(rec->id);
    for (int i = 0; i < rec->ncaptions; i++) sum += strlen(rec->captions[i]);
    if (rec->image_len) sum += rec->image[0] + rec->image[rec->image_len - 1];
    (void)sum;
    if (rec->stored_w <= 0 || rec->stored_h <= 0 || rec->orig_w < 0 || rec->orig_h < 0) abort();
    if (rec->encoding == PVLM_IMG_ENC_RAW &&
        (uint64_t)rec->stored_w * (uint64_t)rec->stored_h * 3u != rec->image_len)
        abort();
    uint8_t *out = NULL;
    size_t n = 0;
    if (pvlm_imgrec_encode(rec, &out, &n, &err) != 0) abort();
    /* byte-identical except the reserved word and channel count, which the reader ignores */
    if (n != size || memcmp(out + 56, data + 56, n - 56) != 0 || memcmp(out + 8, data + 8, 28) != 0) abort();
    free(out);
}

int pvlm_fuzz_imgrec(const uint8_t *data, size_t size) {
    pvlm_imgrec rec = {0};
    check(data, size, &rec);
    if (size >= PVLM_IMGREC_HEADER) {
        uint8_t *v = malloc(size);
        if (v) {
            memcpy(v, data, size);
            memset(v + 48, 0, 8);
            uint64_t h = pvlm_hash64(v, size); /* the checksum: whole value, checksum field zero */
            memcpy(v + 48, &h, 8);
            check(v, size, &rec);
            free(v);
        }
    }
    pvlm_imgrec_free(&rec);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_imgrec)
