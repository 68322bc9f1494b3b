/* test_shard_images_codec.c - io/image: resize correctness, crop/border geometry, JPEG DCT
 * scaling, JPEG/PNG round trips, PNG alpha on white, gray/16-bit/palette PNGs, and corrupt
 * inputs (truncated, garbage, empty, random bit flips) that must fail cleanly, never crash. */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "harness.h"
#include "io/image.h"

static void fill_gradient(pvlm_image *im) {
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (im->w - 1));
            p[1] = (uint8_t)(y * 255 / (im->h - 1));
            p[2] = (uint8_t)((x + y) * 127 / (im->w + im->h));
        }
}

static double psnr(const pvlm_image *a, const pvlm_image *b) {
    double se = 0;
    size_t n = (size_t)a->w * a->h * 3;
    for (size_t i = 0; i < n; i++) se += (double)(a->rgb[i] - b->rgb[i]) * (a->rgb[i] - b->rgb[i]);
    if (se == 0) return 99;
    return 10 * log10(255.0 * 255.0 / (se / n));
}

static int write_png_fmt(const void *px, int w, int h, png_uint_32 fmt, uint8_t **out, size_t *n) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)w;
    pi.height = (png_uint_32)h;
    pi.format = fmt;
    png_alloc_size_t sz = 0;
    if (!png_image_write_to_memory(&pi, NULL, &sz, 0, px, 0, NULL)) return -1;
    *out = malloc(sz);
    if (!png_image_write_to_memory(&pi, *out, &sz, 0, px, 0, NULL)) return -1;
    *n = sz;
    return 0;
}

int main(void) {
    pvlm_err err = {0};
    pvlm_image_codec *codec = pvlm_image_codec_new(&err);
    CHECK(codec != NULL);

    /* constant colour stays exactly constant, up- and downscaling, both fit modes */
    {
        pvlm_image c, o;
        CHECK_OK(pvlm_image_alloc(&c, 37, 53, &err), &err);
        for (int i = 0; i < 37 * 53; i++) {
            c.rgb[3 * i] = 200;
            c.rgb[3 * i + 1] = 17;
            c.rgb[3 * i + 2] = 255;
        }
        int sizes[] = {16, 37, 100};
        for (int s = 0; s < 3; s++) {
            CHECK_OK(pvlm_image_fit(&c, sizes[s], PVLM_RESIZE_CROP, &o, &err), &err);
            int bad = 0;
            for (int i = 0; i < o.w * o.h; i++)
                bad += o.rgb[3 * i] != 200 || o.rgb[3 * i + 1] != 17 || o.rgb[3 * i + 2] != 255;
            CHECK_MSG(bad == 0 && o.w == sizes[s] && o.h == sizes[s], "size %d: %d pixels changed", sizes[s], bad);
            pvlm_image_free(&o);
        }
        /* border: 37x53 -> 32: content 22x32 centred ((32-22)/2 = 5 columns of pad each side) */
        CHECK_OK(pvlm_image_fit(&c, 32, PVLM_RESIZE_BORDER, &o, &err), &err);
        const uint8_t *l = o.rgb + (10 * 32 + 4) * 3, *in = o.rgb + (10 * 32 + 5) * 3, *r = o.rgb + (10 * 32 + 27) * 3;
        CHECK(l[0] == PVLM_IMAGE_PAD_R && l[1] == PVLM_IMAGE_PAD_G && l[2] == PVLM_IMAGE_PAD_B);
        CHECK(in[0] == 200 && in[1] == 17 && in[2] == 255);
        CHECK(r[0] == PVLM_IMAGE_PAD_R);
        CHECK(o.rgb[(10 * 32 + 26) * 3] == 200);
        pvlm_image_free(&o);
        pvlm_image_free(&c);
    }
    /* a 2x downscale of a 1-pixel checkerboard averages to mid-grey (no aliasing) */
    {
        pvlm_image c, o;
        CHECK_OK(pvlm_image_alloc(&c, 64, 48, &err), &err);
        for (int y = 0; y < 48; y++)
            for (int x = 0; x < 64; x++) memset(c.rgb + ((size_t)y * 64 + x) * 3, ((x + y) & 1) ? 255 : 0, 3);
        CHECK_OK(pvlm_image_resize(&c, 32, 24, &o, &err), &err);
        int bad = 0; /* interior exact; at the edges the clipped, renormalised kernel is off a little */
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 32; x++) {
                int edge = x == 0 || y == 0 || x == 31 || y == 23, lo = edge ? 112 : 127, hi = edge ? 143 : 128;
                for (int ch = 0; ch < 3; ch++)
                    bad += o.rgb[(y * 32 + x) * 3 + ch] < lo || o.rgb[(y * 32 + x) * 3 + ch] > hi;
            }
        CHECK_MSG(bad == 0, "%d values off mid-grey", bad);
        pvlm_image_free(&o);
        /* 4x too, with a non-integer factor (64 -> 15) */
        CHECK_OK(pvlm_image_resize(&c, 15, 11, &o, &err), &err);
        bad = 0;
        for (int i = 0; i < 15 * 11 * 3; i++) bad += o.rgb[i] < 120 || o.rgb[i] > 135;
        CHECK_MSG(bad == 0, "%d values far from mid-grey at 64->15", bad);
        pvlm_image_free(&o);
        /* crop takes the centre: left half black, right half white, 80x40 -> 20: centre square
         * x in [20,60) is half black half white */
        pvlm_image h;
        CHECK_OK(pvlm_image_alloc(&h, 80, 40, &err), &err);
        for (int y = 0; y < 40; y++) memset(h.rgb + (size_t)y * 80 * 3 + 40 * 3, 255, 40 * 3);
        CHECK_OK(pvlm_image_fit(&h, 20, PVLM_RESIZE_CROP, &o, &err), &err);
        CHECK(o.rgb[(5 * 20 + 2) * 3] == 0 && o.rgb[(5 * 20 + 17) * 3] == 255);
        CHECK(o.rgb[(5 * 20 + 9) * 3] < 128 && o.rgb[(5 * 20 + 10) * 3] > 127);
        pvlm_image_free(&o);
        pvlm_image_free(&h);
        pvlm_image_free(&c);
    }
    /* JPEG round trip and DCT-scaled decode */
    {
        pvlm_image g, d;
        CHECK_OK(pvlm_image_alloc(&g, 800, 600, &err), &err);
        fill_gradient(&g);
        uint8_t *jpg;
        size_t jn;
        CHECK_OK(pvlm_image_encode_jpeg(codec, &g, 95, &jpg, &jn, &err), &err);
        CHECK(pvlm_image_sniff(jpg, jn) == PVLM_IMG_FMT_JPEG);
        int ow = 0, oh = 0;
        CHECK_OK(pvlm_image_decode(codec, jpg, jn, 0, 0, &d, &ow, &oh, "gradient.jpg", &err), &err);
        CHECK(d.w == 800 && d.h == 600 && ow == 800 && oh == 600);
        CHECK_MSG(psnr(&g, &d) > 35, "psnr %.1f", psnr(&g, &d));
        pvlm_image_free(&d);
        /* shorter side >= 100: 1/8 gives 75, 1/4 gives 150 (the smallest that fits) */
        CHECK_OK(pvlm_image_decode(NULL, jpg, jn, 100, 0, &d, &ow, &oh, "gradient.jpg", &err), &err);
        CHECK_MSG(d.w == 200 && d.h == 150 && ow == 800, "decoded %dx%d", d.w, d.h);
        pvlm_image_free(&d);
        /* longer side >= 100 (border mode): 1/8 gives 100x75 */
        CHECK_OK(pvlm_image_decode(codec, jpg, jn, 0, 100, &d, NULL, NULL, "gradient.jpg", &err), &err);
        CHECK_MSG(d.w == 100 && d.h == 75, "decoded %dx%d", d.w, d.h);
        pvlm_image_free(&d);
        /* truncated JPEG: error, not a grey-filled image */
        CHECK(pvlm_image_decode(codec, jpg, jn / 2, 0, 0, &d, NULL, NULL, "trunc.jpg", &err) != 0);
        CHECK(err.code == PVLM_EFORMAT && strstr(err.msg, "trunc.jpg"));
        CHECK(pvlm_image_decode(codec, jpg, 10, 0, 0, &d, NULL, NULL, "tiny.jpg", &err) != 0);
        /* the same codec decodes a good file right after failures (TurboJPEG handle reset) */
        for (size_t cut = 200; cut < 2000; cut += 450) {
            CHECK(pvlm_image_decode(codec, jpg, cut, 64, 0, &d, NULL, NULL, "cut.jpg", &err) != 0);
            CHECK_OK(pvlm_image_decode(codec, jpg, jn, 64, 0, &d, NULL, NULL, "gradient.jpg", &err), &err);
            CHECK(d.w == 100 && d.h == 75);
            pvlm_image_free(&d);
        }
        /* random corruption never crashes (ASan build checks memory safety) */
        pvlm_rng rng;
        pvlm_rng_seed(&rng, 7, 0);
        uint8_t *mut = malloc(jn);
        int ok = 0;
        for (int t = 0; t < 60; t++) {
            memcpy(mut, jpg, jn);
            for (int k = 0; k < 1 + t % 8; k++)
                mut[pvlm_rng_below(&rng, jn)] ^= (uint8_t)(1u << pvlm_rng_below(&rng, 8));
            if (pvlm_image_decode(codec, mut, jn, 64, 0, &d, NULL, NULL, "mutated.jpg", &err) == 0) {
                ok++;
                CHECK(d.w > 0 && d.h > 0 && d.rgb);
                pvlm_image_free(&d);
            }
        }
        printf("mutated JPEGs decoded: %d/60\n", ok);
        free(mut);
        free(jpg);
        pvlm_image_free(&g);
    }
    /* PNG: RGB round trip is exact; alpha on white; gray; 16-bit; garbage */
    {
        pvlm_image g, d;
        CHECK_OK(pvlm_image_alloc(&g, 33, 21, &err), &err);
        fill_gradient(&g);
        uint8_t *png;
        size_t pn;
        CHECK_OK(pvlm_image_encode_png(&g, &png, &pn, &err), &err);
        CHECK(pvlm_image_sniff(png, pn) == PVLM_IMG_FMT_PNG);
        CHECK_OK(pvlm_image_decode(codec, png, pn, 16, 0, &d, NULL, NULL, "g.png", &err), &err);
        CHECK(d.w == 33 && d.h == 21 && !memcmp(d.rgb, g.rgb, 33 * 21 * 3));
        pvlm_image_free(&d);
        /* corrupt PNG: garbage after the signature, truncated, bit flips */
        uint8_t *bad = malloc(pn);
        memcpy(bad, png, pn);
        memset(bad + 8, 0x5A, pn - 8);
        CHECK(pvlm_image_decode(codec, bad, pn, 0, 0, &d, NULL, NULL, "garbage.png", &err) != 0);
        CHECK(strstr(err.msg, "garbage.png") != NULL);
        CHECK(pvlm_image_decode(codec, png, pn - 20, 0, 0, &d, NULL, NULL, "trunc.png", &err) != 0);
        pvlm_rng rng;
        pvlm_rng_seed(&rng, 9, 0);
        for (int t = 0; t < 60; t++) {
            memcpy(bad, png, pn);
            bad[8 + pvlm_rng_below(&rng, pn - 8)] ^= (uint8_t)(1u << pvlm_rng_below(&rng, 8));
            if (pvlm_image_decode(codec, bad, pn, 0, 0, &d, NULL, NULL, "mutated.png", &err) == 0) pvlm_image_free(&d);
        }
        free(bad);
        free(png);
        pvlm_image_free(&g);

        /* RGBA: alpha 0 -> white, alpha 255 -> the colour, alpha 128 black -> 127 */
        uint8_t rgba[4 * 4] = {10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128, 200, 100, 50, 255};
        CHECK(write_png_fmt(rgba, 2, 2, PNG_FORMAT_RGBA, &png, &pn) == 0);
        CHECK_OK(pvlm_image_decode(codec, png, pn, 0, 0, &d, NULL, NULL, "alpha.png", &err), &err);
        CHECK(d.w == 2 && d.h == 2);
        if (d.rgb) {
            CHECK(d.rgb[0] == 10 && d.rgb[1] == 20 && d.rgb[2] == 30);
            CHECK(d.rgb[3] == 255 && d.rgb[4] == 255 && d.rgb[5] == 255);
            CHECK(d.rgb[6] == 127 && d.rgb[7] == 127 && d.rgb[8] == 127);
            CHECK(d.rgb[9] == 200 && d.rgb[10] == 100 && d.rgb[11] == 50);
        }
        pvlm_image_free(&d);
        free(png);
        /* gray 8-bit -> R=G=B */
        uint8_t gray[6] = {0, 50, 100, 150, 200, 255};
        CHECK(write_png_fmt(gray, 3, 2, PNG_FORMAT_GRAY, &png, &pn) == 0);
        CHECK_OK(pvlm_image_decode(codec, png, pn, 0, 0, &d, NULL, NULL, "gray.png", &err), &err);
        if (d.rgb)
            for (int i = 0; i < 6; i++)
                CHECK(d.rgb[3 * i] == gray[i] && d.rgb[3 * i + 1] == gray[i] && d.rgb[3 * i + 2] == gray[i]);
        pvlm_image_free(&d);
        free(png);
        /* gray + alpha */
        uint8_t ga[4] = {0, 0, 0, 255};
        CHECK(write_png_fmt(ga, 2, 1, PNG_FORMAT_GA, &png, &pn) == 0);
        CHECK_OK(pvlm_image_decode(codec, png, pn, 0, 0, &d, NULL, NULL, "ga.png", &err), &err);
        if (d.rgb) CHECK(d.rgb[0] == 255 && d.rgb[3] == 0);
        pvlm_image_free(&d);
        free(png);
        /* empty input */
        CHECK(pvlm_image_decode(codec, "", 0, 0, 0, &d, NULL, NULL, "empty.jpg", &err) != 0);
        CHECK(pvlm_image_decode(codec, "GIF89a....", 10, 0, 0, &d, NULL, NULL, "x.gif", &err) != 0);
    }
    pvlm_image_codec_free(codec);
    return pvlm_test_done("shard_images_codec");
}
