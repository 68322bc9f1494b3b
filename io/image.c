/* image.c - see image.h. */
#include "image.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <turbojpeg.h>

struct pvlm_image_codec {
    tjhandle dec, enc;
    int reject; /* PVLM_IMG_REJECT_* of the last decode */
};

const char *pvlm_image_reject_name(int reject) {
    switch (reject) {
    case PVLM_IMG_REJECT_CORRUPT:
        return "corrupt_image";
    case PVLM_IMG_REJECT_TOO_LARGE:
        return "too_large";
    case PVLM_IMG_REJECT_NONE:
        return "ok";
    default:
        return "decode_error";
    }
}

int pvlm_image_codec_reject(const pvlm_image_codec *c) {
    return c ? c->reject : PVLM_IMG_REJECT_NONE;
}

pvlm_image_codec *pvlm_image_codec_new(pvlm_err *err) {
    pvlm_image_codec *c = calloc(1, sizeof(*c));
    if (!c) {
        pvlm_err_set(err, PVLM_ENOMEM, "image codec: out of memory");
        return NULL;
    }
    c->dec = tjInitDecompress();
    c->enc = tjInitCompress();
    if (!c->dec || !c->enc) {
        pvlm_err_set(err, PVLM_ENOMEM, "image codec: cannot create TurboJPEG handles: %s", tjGetErrorStr2(NULL));
        pvlm_image_codec_free(c);
        return NULL;
    }
    return c;
}

void pvlm_image_codec_free(pvlm_image_codec *c) {
    if (!c) return;
    if (c->dec) tjDestroy(c->dec);
    if (c->enc) tjDestroy(c->enc);
    free(c);
}

int pvlm_image_ext_ok(const char *ext) {
    return !strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "png");
}

int pvlm_image_name_ok(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && pvlm_image_ext_ok(dot + 1);
}

int pvlm_image_sniff(const void *data, size_t n) {
    const uint8_t *p = data;
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return PVLM_IMG_FMT_JPEG;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n >= 8 && !memcmp(p, png_sig, 8)) return PVLM_IMG_FMT_PNG;
    return PVLM_IMG_FMT_UNKNOWN;
}

int pvlm_image_alloc(pvlm_image *img, int w, int h, pvlm_err *err) {
    img->w = img->h = 0;
    img->rgb = NULL;
    if (w <= 0 || h <= 0 || (long long)w * h > PVLM_IMAGE_MAX_PIXELS)
        return pvlm_err_set(err, PVLM_EINVAL, "image size %dx%d out of range", w, h);
    img->rgb = calloc((size_t)w * h, 3);
    if (!img->rgb) return pvlm_err_set(err, PVLM_ENOMEM, "cannot allocate a %dx%d image", w, h);
    img->w = w;
    img->h = h;
    return 0;
}

void pvlm_image_free(pvlm_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

/* ---- JPEG ---- */

/* libjpeg warnings about header metadata only (JWRN_JFIF_MAJOR, JWRN_JFIF_BADTHUMBNAILSIZE,
 * JWRN_ADOBE_XFORM in libjpeg's message table): the pixels are whole. Every other warning
 * ("Corrupt JPEG data: ...", "Premature end of JPEG file", "Invalid SOS parameters",
 * "Inconsistent progression sequence", ...) means libjpeg met damaged or missing scan data
 * and filled the rest in (grey), so the image is rejected; that includes "N extraneous
 * bytes before marker", which some cameras write and PIL accepts, because a truncated or
 * spliced file shows the same warning. */
static int jpeg_warning_benign(const char *msg) {
    static const char *const benign[] = {"unknown JFIF revision number", "thumbnail image size does not match",
                                         "Unknown Adobe color transform code"};
    for (size_t i = 0; msg && i < sizeof benign / sizeof benign[0]; i++)
        if (strstr(msg, benign[i])) return 1;
    return 0;
}

/* Decompress into buf; a corrupt-data warning is a failure. The first pass stops at the
 * first warning (TJFLAG_STOPONWARNING: no time spent inventing pixels for a forged
 * 65500x65500 header); only a benign warning earns a second, full pass. */
static int jpeg_pixels(tjhandle h, const uint8_t *data, size_t n, uint8_t *buf, int w, int ht, int pf, int *reject,
                       const char *what, pvlm_err *err) {
    for (int pass = 0; pass < 2; pass++) {
        if (tjDecompress2(h, data, (unsigned long)n, buf, w, 0, ht, pf, pass ? 0 : TJFLAG_STOPONWARNING) == 0) return 0;
        const char *msg = tjGetErrorStr2(h);
        int warning = tjGetErrorCode(h) == TJERR_WARNING;
        if (!warning || !jpeg_warning_benign(msg)) {
            *reject = warning ? PVLM_IMG_REJECT_CORRUPT : PVLM_IMG_REJECT_DECODE;
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: %s: %s", what,
                                warning ? "corrupt JPEG data" : "JPEG decode failed", msg ? msg : "unknown error");
        }
        if (pass == 1) return 0; /* the last warning of a full pass is the benign one */
    }
    return 0;
}

static int decode_jpeg(tjhandle h, const uint8_t *data, size_t n, int min_short, int min_long, pvlm_image *out, int *ow,
                       int *oh, int *reject, const char *what, pvlm_err *err) {
    int w = 0, ht = 0, subsamp = -1, cs = -1; /* not set by TurboJPEG for a tables-only stream */
    *reject = PVLM_IMG_REJECT_DECODE;
    if (tjDecompressHeader3(h, data, (unsigned long)n, &w, &ht, &subsamp, &cs) != 0 &&
        (tjGetErrorCode(h) != TJERR_WARNING || !jpeg_warning_benign(tjGetErrorStr2(h))))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: bad JPEG header: %s", what, tjGetErrorStr2(h));
    if (w <= 0 || ht <= 0) return pvlm_err_set(err, PVLM_EFORMAT, "%s: JPEG has size %dx%d", what, w, ht);
    if (ow) *ow = w;
    if (oh) *oh = ht;
    /* Smallest scaling factor (<= 1) that still meets the requested sizes. */
    int nsf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf);
    int best_w = w, best_h = ht;
    for (int i = 0; sf && (min_short > 0 || min_long > 0) && i < nsf; i++) {
        if (sf[i].num > sf[i].denom) continue;
        int sw = TJSCALED(w, sf[i]), sh = TJSCALED(ht, sf[i]);
        int s = sw < sh ? sw : sh, l = sw < sh ? sh : sw;
        if (s >= min_short && l >= min_long && (long long)sw * sh < (long long)best_w * best_h) {
            best_w = sw;
            best_h = sh;
        }
    }
    if ((long long)best_w * best_h > PVLM_IMAGE_MAX_PIXELS) {
        *reject = PVLM_IMG_REJECT_TOO_LARGE;
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: JPEG %dx%d is over the %lld-pixel limit", what, w, ht,
                            (long long)PVLM_IMAGE_MAX_PIXELS);
    }
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    size_t px = (size_t)best_w * best_h;
    uint8_t *buf = malloc(px * (cmyk ? 4 : 3));
    if (!buf) return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot allocate %dx%d", what, best_w, best_h);
    if (jpeg_pixels(h, data, n, buf, best_w, best_h, cmyk ? TJPF_CMYK : TJPF_RGB, reject, what, err) != 0) {
        free(buf);
        return -1;
    }
    *reject = PVLM_IMG_REJECT_NONE;
    if (cmyk) {
        /* Adobe writes CMYK JPEGs with inverted values (255 = no ink), so the
         * decoded bytes are already (1-C),(1-M),(1-Y),(1-K): R = (1-C)(1-K). */
        for (size_t i = 0; i < px; i++) {
            unsigned k = buf[4 * i + 3];
            for (int c = 0; c < 3; c++) buf[3 * i + c] = (uint8_t)((buf[4 * i + c] * k + 127) / 255);
        }
        uint8_t *shrunk = realloc(buf, px * 3);
        if (shrunk) buf = shrunk;
    }
    out->w = best_w;
    out->h = best_h;
    out->rgb = buf;
    return 0;
}

/* ---- PNG (libpng's full API: its errors longjmp back to our setjmp) ----
 * Not the simplified png_image API: that one treats 16-bit samples as linear light and
 * gamma-encodes them when asked for 8 bits (0x8080 gray became 186, not 128). Here every
 * variant is transformed to 8-bit RGB(A) by libpng itself: palette -> RGB, gray -> RGB,
 * tRNS -> alpha, 1/2/4-bit gray -> 8-bit, 16-bit -> 8-bit by keeping the high byte (what
 * PIL does), Adam7 interlacing undone by png_set_interlace_handling. */
typedef struct png_mem {
    const uint8_t *p;
    size_t n, off;
    char msg[256];
} png_mem;

static void png_read_mem(png_structp png, png_bytep out, size_t len) {
    png_mem *m = png_get_io_ptr(png);
    if (len > m->n - m->off) png_error(png, "file ends early (truncated)");
    memcpy(out, m->p + m->off, len);
    m->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_mem *m = png_get_error_ptr(png);
    snprintf(m->msg, sizeof m->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (bad ancillary chunks, ...) do not stop the decode */
}

static int decode_png(const uint8_t *data, size_t n, pvlm_image *out, int *ow, int *oh, int *reject, const char *what,
                      pvlm_err *err) {
    *reject = PVLM_IMG_REJECT_DECODE;
    png_mem m = {data, n, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &m, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot create a libpng reader", what);
    }
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(buf);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: bad PNG: %s", what, m.msg);
    }
    png_set_read_fn(png, &m, png_read_mem);
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
    if (ow) *ow = (int)w;
    if (oh) *oh = (int)h;
    if (w == 0 || h == 0 || (long long)w * h > PVLM_IMAGE_MAX_PIXELS) {
        if (w && h) *reject = PVLM_IMG_REJECT_TOO_LARGE;
        png_destroy_read_struct(&png, &info, NULL);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: PNG %ux%u is empty or over the %lld-pixel limit", what, w, h,
                            (long long)PVLM_IMAGE_MAX_PIXELS);
    }
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_strip_16(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rb = png_get_rowbytes(png, info);
    if ((ch != 3 && ch != 4) || rb != (size_t)w * ch) png_error(png, "unexpected pixel layout after transforms");
    buf = malloc((size_t)h * rb);
    rows = malloc(sizeof(png_bytep) * h);
    if (!buf || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + (size_t)y * rb;
    png_read_image(png, rows);
    size_t px = (size_t)w * h;
    uint8_t *b = buf;
    if (ch == 4) { /* straight alpha onto white */
        for (size_t i = 0; i < px; i++) {
            unsigned a = b[4 * i + 3];
            for (int c = 0; c < 3; c++) b[3 * i + c] = (uint8_t)((b[4 * i + c] * a + 255 * (255 - a) + 127) / 255);
        }
        uint8_t *shrunk = realloc(b, px * 3);
        if (shrunk) b = shrunk;
    }
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *reject = PVLM_IMG_REJECT_NONE;
    out->w = (int)w;
    out->h = (int)h;
    out->rgb = b;
    return 0;
}

int pvlm_image_decode(pvlm_image_codec *codec, const void *data, size_t n, int min_short, int min_long, pvlm_image *out,
                      int *orig_w, int *orig_h, const char *what, pvlm_err *err) {
    out->w = out->h = 0;
    out->rgb = NULL;
    if (!what) what = "image";
    int reject_local, *reject = codec ? &codec->reject : &reject_local;
    *reject = PVLM_IMG_REJECT_DECODE;
    if (n == 0) return pvlm_err_set(err, PVLM_EFORMAT, "%s: empty file", what);
    int fmt = pvlm_image_sniff(data, n);
    if (fmt == PVLM_IMG_FMT_PNG) return decode_png(data, n, out, orig_w, orig_h, reject, what, err);
    if (fmt != PVLM_IMG_FMT_JPEG) return pvlm_err_set(err, PVLM_EFORMAT, "%s: not a JPEG or PNG file", what);
    if (codec) {
        if (!codec->dec && !(codec->dec = tjInitDecompress()))
            return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot create a TurboJPEG decoder", what);
        int rc = decode_jpeg(codec->dec, data, n, min_short, min_long, out, orig_w, orig_h, reject, what, err);
        if (rc != 0) {
            /* After a longjmp out of libjpeg the handle can keep a half-read state, so the
             * next good file reads as "tables only" (seen with TurboJPEG 2.1): start fresh. */
            tjDestroy(codec->dec);
            codec->dec = tjInitDecompress();
        }
        return rc;
    }
    tjhandle h = tjInitDecompress();
    if (!h) return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot create a TurboJPEG decoder", what);
    int rc = decode_jpeg(h, data, n, min_short, min_long, out, orig_w, orig_h, reject, what, err);
    tjDestroy(h);
    return rc;
}

/* ---- resize ---- */

/* Keys' cubic convolution kernel with a = -0.5 (Catmull-Rom), support 2. */
static double cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

typedef struct {
    int *first, *count; /* per output pixel: first input index and number of taps */
    float *w;           /* [out][maxtaps] */
    int maxtaps;
} taps;

static void taps_free(taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
}

/* Output pixel j covers input [x0 + j*scale, x0 + (j+1)*scale); its centre is
 * x0 + (j+0.5)*scale in continuous coordinates where input pixel k spans [k, k+1). */
static int taps_make(taps *t, int in_n, int out_n, double x0, double scale) {
    double fs = scale > 1.0 ? scale : 1.0; /* widen the kernel when shrinking */
    double support = 2.0 * fs;
    t->maxtaps = (int)ceil(support) * 2 + 2;
    t->first = malloc(sizeof(int) * (size_t)out_n);
    t->count = malloc(sizeof(int) * (size_t)out_n);
    t->w = malloc(sizeof(float) * (size_t)out_n * (size_t)t->maxtaps);
    if (!t->first || !t->count || !t->w) return -1;
    for (int j = 0; j < out_n; j++) {
        double c = x0 + (j + 0.5) * scale;
        int lo = (int)floor(c - support + 0.5), hi = (int)floor(c + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_n) hi = in_n;
        if (hi <= lo) { /* window fully outside (cannot happen for valid windows): nearest pixel */
            lo = c < 0 ? 0 : in_n - 1;
            hi = lo + 1;
        }
        if (hi - lo > t->maxtaps) hi = lo + t->maxtaps;
        double sum = 0, wk[4096];
        int cnt = hi - lo;
        for (int k = 0; k < cnt; k++) {
            wk[k] = cubic((lo + k + 0.5 - c) / fs);
            sum += wk[k];
        }
        if (sum == 0) { /* cannot happen with this kernel; keep the nearest pixel anyway */
            int k = (int)floor(c) - lo;
            wk[k < 0 ? 0 : (k >= cnt ? cnt - 1 : k)] = sum = 1.0;
        }
        t->first[j] = lo;
        t->count[j] = cnt;
        for (int k = 0; k < cnt; k++) t->w[(size_t)j * t->maxtaps + k] = (float)(wk[k] / sum);
    }
    return 0;
}

static uint8_t clamp_round(float v) {
    if (!(v > 0.0f)) return 0; /* also NaN */
    if (v >= 255.0f) return 255;
    return (uint8_t)(v + 0.5f);
}

int pvlm_image_resize_window(const pvlm_image *in, double x0, double y0, double win_w, double win_h, int out_w,
                             int out_h, pvlm_image *out, pvlm_err *err) {
    out->rgb = NULL;
    out->w = out->h = 0;
    if (!in->rgb || in->w <= 0 || in->h <= 0 || out_w <= 0 || out_h <= 0 || !(win_w > 0) || !(win_h > 0))
        return pvlm_err_set(err, PVLM_EINVAL, "resize: bad sizes (in %dx%d, window %gx%g, out %dx%d)", in->w, in->h,
                            win_w, win_h, out_w, out_h);
    double sx = win_w / out_w, sy = win_h / out_h;
    if (sx > 1000 || sy > 1000) /* keeps the tap tables bounded (<= 4002 taps) */
        return pvlm_err_set(err, PVLM_EINVAL, "resize: downscale factor %gx%g too large (max 1000)", sx, sy);
    taps tx = {0}, ty = {0};
    uint8_t *tmp = NULL;
    int rc = -1;
    if (taps_make(&tx, in->w, out_w, x0, sx) != 0 || taps_make(&ty, in->h, out_h, y0, sy) != 0) {
        pvlm_err_set(err, PVLM_ENOMEM, "resize: out of memory");
        goto done;
    }
    /* Only the input rows some output row reads go through the horizontal pass. */
    int r0 = ty.first[0], r1 = ty.first[0] + ty.count[0];
    for (int j = 0; j < out_h; j++) {
        if (ty.first[j] < r0) r0 = ty.first[j];
        if (ty.first[j] + ty.count[j] > r1) r1 = ty.first[j] + ty.count[j];
    }
    size_t rows = (size_t)(r1 - r0);
    /* The intermediate image is rounded and clamped to 8 bits, as Pillow's two-pass
     * resampler does, so results match Pillow's BICUBIC within one level (tested) and the
     * intermediate buffer is a quarter of a float one. */
    tmp = malloc(rows * (size_t)out_w * 3);
    if (!tmp || pvlm_image_alloc(out, out_w, out_h, err) != 0) {
        pvlm_err_set(err, PVLM_ENOMEM, "resize: out of memory");
        goto done;
    }
    for (size_t r = 0; r < rows; r++) { /* horizontal: [rows, in_w, 3] -> [rows, out_w, 3] */
        const uint8_t *src = in->rgb + ((size_t)(r0 + (int)r) * in->w) * 3;
        uint8_t *dst = tmp + r * (size_t)out_w * 3;
        for (int x = 0; x < out_w; x++) {
            const float *w = tx.w + (size_t)x * tx.maxtaps;
            const uint8_t *s = src + (size_t)tx.first[x] * 3;
            float a = 0, b = 0, c = 0;
            for (int k = 0; k < tx.count[x]; k++) {
                a += w[k] * s[3 * k];
                b += w[k] * s[3 * k + 1];
                c += w[k] * s[3 * k + 2];
            }
            dst[3 * x] = clamp_round(a);
            dst[3 * x + 1] = clamp_round(b);
            dst[3 * x + 2] = clamp_round(c);
        }
    }
    for (int y = 0; y < out_h; y++) { /* vertical: [rows, out_w, 3] -> [out_h, out_w, 3] */
        const float *w = ty.w + (size_t)y * ty.maxtaps;
        uint8_t *dst = out->rgb + (size_t)y * out_w * 3;
        float acc[3 * 1024];
        for (int x0c = 0; x0c < out_w * 3; x0c += 3 * 1024) {
            int nc = out_w * 3 - x0c < 3 * 1024 ? out_w * 3 - x0c : 3 * 1024;
            memset(acc, 0, sizeof(float) * (size_t)nc);
            for (int k = 0; k < ty.count[y]; k++) {
                const uint8_t *s = tmp + (size_t)(ty.first[y] + k - r0) * out_w * 3 + x0c;
                float wk = w[k];
                for (int i = 0; i < nc; i++) acc[i] += wk * s[i];
            }
            for (int i = 0; i < nc; i++) dst[x0c + i] = clamp_round(acc[i]);
        }
    }
    rc = 0;
done:
    if (rc != 0) pvlm_image_free(out);
    free(tmp);
    taps_free(&tx);
    taps_free(&ty);
    return rc;
}

int pvlm_image_resize(const pvlm_image *in, int out_w, int out_h, pvlm_image *out, pvlm_err *err) {
    return pvlm_image_resize_window(in, 0, 0, in->w, in->h, out_w, out_h, out, err);
}

int pvlm_image_fit(const pvlm_image *in, int size, int mode, pvlm_image *out, pvlm_err *err) {
    out->rgb = NULL;
    out->w = out->h = 0;
    if (size <= 0 || in->w <= 0 || in->h <= 0) return pvlm_err_set(err, PVLM_EINVAL, "fit: bad size %d", size);
    if (mode == PVLM_RESIZE_CROP) {
        double side = in->w < in->h ? in->w : in->h;
        return pvlm_image_resize_window(in, (in->w - side) / 2.0, (in->h - side) / 2.0, side, side, size, size, out,
                                        err);
    }
    if (mode != PVLM_RESIZE_BORDER) return pvlm_err_set(err, PVLM_EINVAL, "fit: unknown mode %d", mode);
    int cw, ch;
    if (in->w >= in->h) {
        cw = size;
        ch = (int)floor((double)in->h * size / in->w + 0.5);
    } else {
        ch = size;
        cw = (int)floor((double)in->w * size / in->h + 0.5);
    }
    if (cw < 1) cw = 1;
    if (ch < 1) ch = 1;
    pvlm_image content;
    if (pvlm_image_resize(in, cw, ch, &content, err) != 0) return -1;
    if (pvlm_image_alloc(out, size, size, err) != 0) {
        pvlm_image_free(&content);
        return -1;
    }
    for (size_t i = 0; i < (size_t)size * size; i++) {
        out->rgb[3 * i] = PVLM_IMAGE_PAD_R;
        out->rgb[3 * i + 1] = PVLM_IMAGE_PAD_G;
        out->rgb[3 * i + 2] = PVLM_IMAGE_PAD_B;
    }
    int ox = (size - cw) / 2, oy = (size - ch) / 2;
    for (int y = 0; y < ch; y++)
        memcpy(out->rgb + ((size_t)(oy + y) * size + ox) * 3, content.rgb + (size_t)y * cw * 3, (size_t)cw * 3);
    pvlm_image_free(&content);
    return 0;
}

/* ---- encode ---- */
static int encode_jpeg(tjhandle h, const pvlm_image *img, int quality, uint8_t **out, size_t *n, pvlm_err *err) {
    unsigned char *jb = NULL;
    unsigned long jn = 0;
    if (tjCompress2(h, img->rgb, img->w, 0, img->h, TJPF_RGB, &jb, &jn, TJSAMP_420, quality, 0) != 0) {
        pvlm_err_set(err, PVLM_EIO, "JPEG encode of a %dx%d image failed: %s", img->w, img->h, tjGetErrorStr2(h));
        if (jb) tjFree(jb);
        return -1;
    }
    *out = malloc(jn);
    if (!*out) {
        tjFree(jb);
        return pvlm_err_set(err, PVLM_ENOMEM, "JPEG encode: out of memory");
    }
    memcpy(*out, jb, jn);
    *n = jn;
    tjFree(jb);
    return 0;
}

int pvlm_image_encode_jpeg(pvlm_image_codec *codec, const pvlm_image *img, int quality, uint8_t **out, size_t *n,
                           pvlm_err *err) {
    *out = NULL;
    *n = 0;
    if (!img->rgb || img->w <= 0 || img->h <= 0) return pvlm_err_set(err, PVLM_EINVAL, "JPEG encode: empty image");
    if (quality < 1 || quality > 100) return pvlm_err_set(err, PVLM_EINVAL, "JPEG quality %d not in 1..100", quality);
    if (codec) return encode_jpeg(codec->enc, img, quality, out, n, err);
    tjhandle h = tjInitCompress();
    if (!h) return pvlm_err_set(err, PVLM_ENOMEM, "cannot create a TurboJPEG encoder");
    int rc = encode_jpeg(h, img, quality, out, n, err);
    tjDestroy(h);
    return rc;
}

int pvlm_image_encode_png(const pvlm_image *img, uint8_t **out, size_t *n, pvlm_err *err) {
    *out = NULL;
    *n = 0;
    if (!img->rgb || img->w <= 0 || img->h <= 0) return pvlm_err_set(err, PVLM_EINVAL, "PNG encode: empty image");
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)img->w;
    pi.height = (png_uint_32)img->h;
    pi.format = PNG_FORMAT_RGB;
    png_alloc_size_t sz = 0;
    if (!png_image_write_to_memory(&pi, NULL, &sz, 0, img->rgb, 0, NULL))
        return pvlm_err_set(err, PVLM_EIO, "PNG encode (size pass): %s", pi.message);
    *out = malloc(sz);
    if (!*out) return pvlm_err_set(err, PVLM_ENOMEM, "PNG encode: out of memory");
    if (!png_image_write_to_memory(&pi, *out, &sz, 0, img->rgb, 0, NULL)) {
        free(*out);
        *out = NULL;
        return pvlm_err_set(err, PVLM_EIO, "PNG encode: %s", pi.message);
    }
    *n = sz;
    return 0;
}
