/* imgprep.c - see imgprep.h. */
#include "imgprep.h"

#include <string.h>

int pvlm_imgprep_init(pvlm_imgprep *p, pvlm_err *err) {
    memset(p, 0, sizeof *p);
    p->codec = pvlm_image_codec_new(err);
    return p->codec ? 0 : -1;
}

void pvlm_imgprep_free(pvlm_imgprep *p) {
    pvlm_image_codec_free(p->codec);
    pvlm_image_free(&p->dec);
    pvlm_image_free(&p->fit);
    memset(p, 0, sizeof *p);
}

/* in (any size) -> dst, S x S. */
static int fit_into(pvlm_imgprep *p, const pvlm_image *in, int S, int mode, uint8_t *dst, pvlm_err *err) {
    size_t bytes = (size_t)S * (size_t)S * 3;
    if (in->w == S && in->h == S) {
        memcpy(dst, in->rgb, bytes);
        return 0;
    }
    pvlm_image_free(&p->fit);
    if (pvlm_image_fit(in, S, mode, &p->fit, err)) return -1;
    memcpy(dst, p->fit.rgb, bytes);
    return 0;
}

int pvlm_imgprep_encoded(pvlm_imgprep *p, const void *data, size_t n, int S, int mode, uint8_t *dst, int *orig_w,
                         int *orig_h, const char *what, pvlm_err *err) {
    pvlm_image_free(&p->dec);
    if (pvlm_image_decode(p->codec, data, n, S, S, &p->dec, orig_w, orig_h, what, err)) return -1;
    return fit_into(p, &p->dec, S, mode, dst, err);
}

int pvlm_imgprep_raw(pvlm_imgprep *p, const uint8_t *rgb, int w, int h, int S, int mode, uint8_t *dst,
                     pvlm_err *err) {
    pvlm_image in = {w, h, (uint8_t *)rgb};
    return fit_into(p, &in, S, mode, dst, err);
}

int pvlm_imgprep_record(pvlm_imgprep *p, const pvlm_imgrec *rec, int S, int mode, uint8_t *dst, const char *what,
                        pvlm_err *err) {
    if (rec->encoding != PVLM_IMG_ENC_RAW)
        return pvlm_imgprep_encoded(p, rec->image, (size_t)rec->image_len, S, mode, dst, NULL, NULL, what, err);
    if (rec->stored_w < 1 || rec->stored_h < 1 || rec->image_len != (uint64_t)rec->stored_w * (uint64_t)rec->stored_h * 3)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: raw image size mismatch", what);
    return pvlm_imgprep_raw(p, rec->image, rec->stored_w, rec->stored_h, S, mode, dst, err);
}
