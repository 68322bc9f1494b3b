/* imgprep.h - the one image preparation of training and evaluation: an image (JPEG/PNG bytes, a raw
 * RGB buffer, or a shard record holding either) -> S x S RGB bytes, the model's input.
 *
 * Encoded images are decoded at the smallest JPEG DCT scale whose sides are >= S (io/image.h), then
 * fit to S x S: PVLM_RESIZE_CROP (shorter side to S, centred square; what pretraining uses) or
 * PVLM_RESIZE_BORDER (longer side to S on a pad colour). An image that is already S x S is copied
 * unchanged (the resampling at scale 1 is the identity; checked by the loader_imgprep test). The
 * loader (training), eval/gen.c (pvlm caption / vqa) and finetune/fttask.c call only this, so training
 * and evaluation see identical tensors unless a flag (`--resize border`) asks otherwise.
 *
 * Ownership: a pvlm_imgprep holds a decoder handle and scratch images reused across calls (one per
 * thread); pvlm_imgprep_free releases them. dst is caller-owned, S * S * 3 bytes (HWC).
 */
#ifndef PVLM_IO_IMGPREP_H
#define PVLM_IO_IMGPREP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/image.h"
#include "io/imgshard.h"

typedef struct pvlm_imgprep {
    pvlm_image_codec *codec;
    pvlm_image dec, fit; /* scratch */
} pvlm_imgprep;

/* Zero *p and create its decoder handle. */
int pvlm_imgprep_init(pvlm_imgprep *p, pvlm_err *err);
void pvlm_imgprep_free(pvlm_imgprep *p);

/* Encoded JPEG/PNG bytes -> dst. orig_w/orig_h (may be NULL) receive the image's stored size.
 * `what` names the image in errors (a file, "shard x record 17"). */
int pvlm_imgprep_encoded(pvlm_imgprep *p, const void *data, size_t n, int S, int mode, uint8_t *dst, int *orig_w,
                         int *orig_h, const char *what, pvlm_err *err);
/* Raw RGB (w x h, HWC) -> dst. */
int pvlm_imgprep_raw(pvlm_imgprep *p, const uint8_t *rgb, int w, int h, int S, int mode, uint8_t *dst,
                     pvlm_err *err);
/* A shard record (JPEG or raw; a raw record's size must match its byte count) -> dst. */
int pvlm_imgprep_record(pvlm_imgprep *p, const pvlm_imgrec *rec, int S, int mode, uint8_t *dst, const char *what,
                        pvlm_err *err);

#endif
