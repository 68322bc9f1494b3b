/* fuzz_image.c - pvlm_image_decode (JPEG and PNG) on arbitrary bytes, full size and DCT-scaled,
 * then pvlm_image_fit to a small square in both modes. */
#include <stdlib.h>

#include "fuzz.h"
#include "io/image.h"

static pvlm_image_codec *g_codec; /* one per process, as a loader thread keeps one */

int pvlm_fuzz_image(const uint8_t *data, size_t size) {
    pvlm_err err = {0};
    if (!g_codec) g_codec = pvlm_image_codec_new(&err);
    pvlm_image_sniff(data, size);
    for (int pass = 0; pass < 2; pass++) {
        pvlm_image img = {0};
        int ow = 0, oh = 0;
        int ms = pass ? 8 : 0;
        if (pvlm_image_decode(pass ? NULL : g_codec, data, size, ms, ms, &img, &ow, &oh, "fuzz", &err) != 0) continue;
        if (img.w <= 0 || img.h <= 0 || !img.rgb) abort();
        if ((int64_t)img.w * img.h <= 1 << 20) {
            for (int mode = 0; mode < 2; mode++) {
                pvlm_image out = {0};
                if (pvlm_image_fit(&img, 7, mode, &out, &err) == 0) pvlm_image_free(&out);
            }
        }
        pvlm_image_free(&img);
    }
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_image)
