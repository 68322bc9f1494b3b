/* image.h - decode JPEG/PNG to RGB8, antialiased resize, crop/border fit, encode JPEG/PNG.
 *
 * Decoding: JPEG through libjpeg-turbo's TurboJPEG API, at the smallest of its DCT
 * scaling factors (1/8, 1/4, 3/8, 1/2, ... 1) whose output is still at least the
 * size the caller needs, so a 4000x3000 photo headed for 224x224 is decoded at
 * 1/8 scale (8x fewer pixels to inverse-DCT and resize). CMYK/YCCK JPEGs (as written
 * by Adobe tools, with inverted ink values) are converted to RGB. A truncated JPEG
 * ("Premature end of JPEG file") or one with damaged scan data (libjpeg's "Corrupt JPEG
 * data: ..." warnings, in any case) is rejected, not filled in with grey; only warnings
 * about header metadata (JFIF revision, thumbnail size, Adobe transform code) pass.
 * PNG through libpng (errors longjmp back to our setjmp and come back as messages):
 * palette, gray, 1/2/4/16-bit, interlaced and tRNS all become RGB8 (16-bit keeps the high
 * byte, as PIL does; no gamma conversion);
 * alpha is composited onto white with straight (non-premultiplied) sRGB blending,
 * out = (c*a + 255*(255-a)) / 255 rounded - what PIL's paste onto a white canvas does.
 * Images over PVLM_IMAGE_MAX_PIXELS decoded pixels are refused (decompression bombs).
 * No input can crash the decoder: every library error comes back as -1 + pvlm_err
 * naming `what` (the source file/URL/record).
 *
 * Resizing: separable two-pass convolution with the bicubic (Keys, a = -0.5;
 * "Catmull-Rom") kernel whose support is widened by the downscale factor, so a
 * downscale averages all covered pixels instead of aliasing (PIL's antialiased
 * BICUBIC resize works the same way). Weights are normalised per output pixel, so a
 * constant image stays constant; results are clamped to 0..255 and rounded, also between
 * the horizontal and the vertical pass, as Pillow does: output matches Pillow's
 * Image.resize(..., BICUBIC, box=...) to within 1 level at rounding ties (shard_images_pil).
 *
 * Ownership: pvlm_image.rgb is malloc'd by the function that fills the image and
 * freed by pvlm_image_free. Encoded buffers are malloc'd; the caller free()s them.
 * A pvlm_image_codec (TurboJPEG handles) belongs to one thread at a time; pass
 * NULL to use a temporary one per call.
 */
#ifndef PVLM_IO_IMAGE_H
#define PVLM_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define PVLM_IMAGE_MAX_PIXELS (1LL << 27) /* 134M decoded pixels (~400 MB RGB) */

/* Pad colour of PVLM_RESIZE_BORDER: the ImageNet mean RGB (0.485, 0.456, 0.406) x 255,
 * so padding becomes ~0 after the usual mean subtraction. */
#define PVLM_IMAGE_PAD_R 124
#define PVLM_IMAGE_PAD_G 116
#define PVLM_IMAGE_PAD_B 104

typedef struct pvlm_image {
    int w, h;
    uint8_t *rgb; /* [h][w][3], row-major, malloc'd */
} pvlm_image;

enum { PVLM_IMG_FMT_UNKNOWN = 0, PVLM_IMG_FMT_JPEG = 1, PVLM_IMG_FMT_PNG = 2 };
enum { PVLM_RESIZE_CROP = 0, PVLM_RESIZE_BORDER = 1 };

typedef struct pvlm_image_codec pvlm_image_codec;
pvlm_image_codec *pvlm_image_codec_new(pvlm_err *err);
void pvlm_image_codec_free(pvlm_image_codec *c);

/* Why the last pvlm_image_decode through a codec failed (counted by reason by the shard
 * builder): DECODE (not JPEG/PNG, bad header, a library error), CORRUPT (libjpeg warned
 * about damaged or missing scan data: a truncated or forged file), TOO_LARGE (over
 * PVLM_IMAGE_MAX_PIXELS). pvlm_image_reject_name gives "decode_error", "corrupt_image",
 * "too_large" ("ok" for NONE). A NULL codec gives NONE. */
enum { PVLM_IMG_REJECT_NONE = 0, PVLM_IMG_REJECT_DECODE, PVLM_IMG_REJECT_CORRUPT, PVLM_IMG_REJECT_TOO_LARGE };
int pvlm_image_codec_reject(const pvlm_image_codec *c);
const char *pvlm_image_reject_name(int reject);

/* 1 when a file-name extension (ext: what follows the dot, any case) is one pvlm reads images from:
 * jpg, jpeg, png; pvlm_image_name_ok applies it to the part of name after its last dot. The one list
 * of the folder listings (caption --image-dir, shard --pairs) and of webdataset members. */
int pvlm_image_ext_ok(const char *ext);
int pvlm_image_name_ok(const char *name);

/* Format from the magic bytes. */
int pvlm_image_sniff(const void *data, size_t n);

/* Allocate a w x h image (zeroed). */
int pvlm_image_alloc(pvlm_image *img, int w, int h, pvlm_err *err);
void pvlm_image_free(pvlm_image *img);

/* Decode a JPEG or PNG. For JPEG, the decoded size is the smallest DCT-scaled size
 * with shorter side >= min_short and longer side >= min_long (0, 0: full size).
 * orig_w/orig_h (may be NULL) receive the full stored size. codec may be NULL. */
int pvlm_image_decode(pvlm_image_codec *codec, const void *data, size_t n, int min_short, int min_long, pvlm_image *out,
                      int *orig_w, int *orig_h, const char *what, pvlm_err *err);

/* Resize the whole image to out_w x out_h (antialiased bicubic). */
int pvlm_image_resize(const pvlm_image *in, int out_w, int out_h, pvlm_image *out, pvlm_err *err);
/* Resize the input window starting at (x0, y0) (fractional input pixels) of size
 * (win_w, win_h) to out_w x out_h. Pixels outside the image are never read: the
 * kernel window is clipped and renormalised at the borders. */
int pvlm_image_resize_window(const pvlm_image *in, double x0, double y0, double win_w, double win_h, int out_w,
                             int out_h, pvlm_image *out, pvlm_err *err);
/* To size x size: CROP = scale the shorter side to size and take the centred
 * square (computed directly from the centred square window of the input);
 * BORDER = scale the longer side to size, keep the aspect ratio, centre it on a
 * PVLM_IMAGE_PAD_* canvas. */
int pvlm_image_fit(const pvlm_image *in, int size, int mode, pvlm_image *out, pvlm_err *err);

/* JPEG at quality 1..100, 4:2:0 chroma subsampling; *out malloc'd (caller frees). */
int pvlm_image_encode_jpeg(pvlm_image_codec *codec, const pvlm_image *img, int quality, uint8_t **out, size_t *n,
                           pvlm_err *err);
/* 8-bit RGB PNG; *out malloc'd (caller frees). */
int pvlm_image_encode_png(const pvlm_image *img, uint8_t **out, size_t *n, pvlm_err *err);

#endif
