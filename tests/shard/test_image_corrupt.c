/* test_image_corrupt.c - io/image rejects damaged JPEG data instead of filling it in with
 * grey: every cut inside the scan data, a cut with an EOI marker appended (libjpeg's
 * lower-case "Corrupt JPEG data: premature end of data segment" warning), a forged
 * 65500x65500 header; a header-metadata warning (unknown JFIF revision) still decodes to
 * the same pixels. The codec says why (corrupt_image / decode_error / too_large). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/image.h"

static size_t find_marker(const uint8_t *p, size_t n, uint8_t m) {
    for (size_t i = 2; i + 1 < n; i++)
        if (p[i] == 0xFF && p[i + 1] == m) return i;
    return 0;
}

int main(void) {
    pvlm_err err = {0};
    pvlm_image_codec *codec = pvlm_image_codec_new(&err);
    CHECK(codec != NULL);
    pvlm_image g, d;
    CHECK_OK(pvlm_image_alloc(&g, 96, 64, &err), &err);
    for (int i = 0; i < 96 * 64 * 3; i++) g.rgb[i] = (uint8_t)((i * 37) ^ (i / 7));
    uint8_t *jpg = NULL;
    size_t jn = 0;
    CHECK_OK(pvlm_image_encode_jpeg(codec, &g, 90, &jpg, &jn, &err), &err);
    if (!jpg) return pvlm_test_done("image_corrupt");
    size_t sos = find_marker(jpg, jn, 0xDA), sof = find_marker(jpg, jn, 0xC0), app0 = find_marker(jpg, jn, 0xE0);
    CHECK(sos > 0 && sof > 0 && app0 > 0);
    pvlm_image ref = {0};
    CHECK_OK(pvlm_image_decode(codec, jpg, jn, 0, 0, &ref, NULL, NULL, "good.jpg", &err), &err);
    CHECK(pvlm_image_codec_reject(codec) == PVLM_IMG_REJECT_NONE);

    /* every cut inside the scan data, with and without an EOI marker after it */
    uint8_t *buf = malloc(jn + 2);
    int cuts = 0;
    for (size_t cut = sos + 16; cut + 2 < jn; cut += 13) {
        for (int eoi = 0; eoi < 2; eoi++) {
            memcpy(buf, jpg, cut);
            size_t n = cut;
            if (eoi) buf[n++] = 0xFF, buf[n++] = 0xD9;
            int rc = pvlm_image_decode(codec, buf, n, 0, 0, &d, NULL, NULL, "cut.jpg", &err);
            CHECK_MSG(rc != 0, "a JPEG cut at %zu of %zu bytes (eoi %d) decoded", cut, jn, eoi);
            if (rc == 0) pvlm_image_free(&d);
            CHECK_MSG(pvlm_image_codec_reject(codec) == PVLM_IMG_REJECT_CORRUPT && strstr(err.msg, "cut.jpg") &&
                          strstr(err.msg, "corrupt JPEG data"),
                      "cut %zu eoi %d: reject %d: %s", cut, eoi, pvlm_image_codec_reject(codec), err.msg);
            cuts++;
        }
    }
    printf("%d cut JPEGs rejected as corrupt_image\n", cuts);
    /* the codec still decodes a good file exactly after all that */
    CHECK_OK(pvlm_image_decode(codec, jpg, jn, 0, 0, &d, NULL, NULL, "good.jpg", &err), &err);
    CHECK(d.w == ref.w && d.h == ref.h && !memcmp(d.rgb, ref.rgb, (size_t)d.w * d.h * 3));
    pvlm_image_free(&d);

    /* a forged header: SOF0 claims 65500x65500 over the data of a 96x64 image */
    memcpy(buf, jpg, jn);
    buf[sof + 5] = 0xFF, buf[sof + 6] = 0xDC; /* height */
    buf[sof + 7] = 0xFF, buf[sof + 8] = 0xDC; /* width */
    for (int scaled = 0; scaled < 2; scaled++) {
        int rc = pvlm_image_decode(codec, buf, jn, scaled ? 224 : 0, 0, &d, NULL, NULL, "forged.jpg", &err);
        CHECK_MSG(rc != 0, "forged header decoded (scaled %d)", scaled);
        if (rc == 0) pvlm_image_free(&d);
        int want = scaled ? PVLM_IMG_REJECT_CORRUPT : PVLM_IMG_REJECT_TOO_LARGE; /* full size is over 2^27 pixels */
        CHECK_MSG(pvlm_image_codec_reject(codec) == want, "forged, scaled %d: reject %d: %s", scaled,
                  pvlm_image_codec_reject(codec), err.msg);
    }
    CHECK(!strcmp(pvlm_image_reject_name(PVLM_IMG_REJECT_CORRUPT), "corrupt_image"));
    CHECK(!strcmp(pvlm_image_reject_name(PVLM_IMG_REJECT_TOO_LARGE), "too_large"));
    CHECK(!strcmp(pvlm_image_reject_name(PVLM_IMG_REJECT_DECODE), "decode_error"));

    /* a metadata-only warning: JFIF version 9.01 ("unknown JFIF revision number") decodes the same pixels */
    memcpy(buf, jpg, jn);
    CHECK(!memcmp(buf + app0 + 4, "JFIF", 5));
    buf[app0 + 9] = 9;
    CHECK_OK(pvlm_image_decode(codec, buf, jn, 0, 0, &d, NULL, NULL, "jfif9.jpg", &err), &err);
    CHECK(d.w == ref.w && d.h == ref.h && d.rgb && !memcmp(d.rgb, ref.rgb, (size_t)d.w * d.h * 3));
    pvlm_image_free(&d);
    /* not an image at all */
    CHECK(pvlm_image_decode(codec, "hello", 5, 0, 0, &d, NULL, NULL, "x.txt", &err) != 0);
    CHECK(pvlm_image_codec_reject(codec) == PVLM_IMG_REJECT_DECODE);

    free(buf);
    free(jpg);
    pvlm_image_free(&ref);
    pvlm_image_free(&g);
    pvlm_image_codec_free(codec);
    return pvlm_test_done("image_corrupt");
}
