/* test_shard_images_pil.c - io/image resize parity with Pillow's antialiased BICUBIC
 * (Image.resize(size, Image.BICUBIC, box=...), the reference most vision pipelines use).
 * Like Pillow we round to 8 bits between the horizontal and vertical passes; Pillow's
 * weights are fixed-point and ours float, so a value exactly at a rounding tie may differ
 * by 1 level: the test allows max |diff| <= 1 and a mean |diff| below 0.01. Cases: crop windows (the
 * centred square) at several downscale factors, upscaling, full-image non-square resizes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "harness.h"
#include "io/image.h"

typedef struct {
    int iw, ih, ow, oh;
    double x0, y0, x1, y1;
} rcase;

int main(void) {
    const char *tmp = getenv("PVLM_TMP"), *py = getenv("PVLM_PYTHON");
    char root[1024];
    snprintf(root, sizeof root, "%s", tmp ? tmp : "/tmp/pvlm-test-shard-images-pil");
    pvlm_rm_rf(root, NULL);
    pvlm_mkdir_p(root, NULL);
    pvlm_err err = {0};
    const rcase cases[] = {
        {300, 200, 64, 64, 50, 0, 250, 200},   /* crop: centred square 200 -> 64 (3.125x) */
        {640, 480, 224, 224, 80, 0, 560, 480}, /* crop 480 -> 224 */
        {97, 131, 32, 32, 0, 17, 97, 114},     /* crop, odd sizes */
        {64, 48, 32, 24, 0, 0, 64, 48},        /* exact 2x */
        {50, 40, 120, 96, 0, 0, 50, 40},       /* upscale 2.4x */
        {333, 77, 100, 23, 0, 0, 333, 77},     /* non-square */
        {1000, 700, 37, 41, 0, 0, 1000, 700},  /* strong, anisotropic downscale */
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    pvlm_rng r;
    pvlm_rng_seed(&r, 11, 0);
    char cmdfile[1200];
    snprintf(cmdfile, sizeof cmdfile, "%s/cases.txt", root);
    FILE *cf = fopen(cmdfile, "w");
    pvlm_image in[16];
    for (int c = 0; c < nc; c++) {
        const rcase *k = &cases[c];
        pvlm_image_alloc(&in[c], k->iw, k->ih, NULL);
        for (int y = 0; y < k->ih; y++)
            for (int x = 0; x < k->iw; x++)
                for (int ch = 0; ch < 3; ch++) {
                    /* edges, gradients and noise: all frequencies the kernel treats differently */
                    int v = ((x / 7 + y / 5 + ch) & 1) * 120 + (x * 90) / k->iw + (int)pvlm_rng_below(&r, 40);
                    in[c].rgb[((size_t)y * k->iw + x) * 3 + ch] = (uint8_t)(v > 255 ? 255 : v);
                }
        uint8_t *png;
        size_t pn;
        CHECK_OK(pvlm_image_encode_png(&in[c], &png, &pn, &err), &err);
        char p[1200];
        snprintf(p, sizeof p, "%s/in%d.png", root, c);
        pvlm_write_file_atomic(p, png, pn, NULL);
        free(png);
        fprintf(cf, "%s %s/out%d.rgb %d %d %.17g %.17g %.17g %.17g\n", p, root, c, k->ow, k->oh, k->x0, k->y0, k->x1,
                k->y1);
    }
    fclose(cf);
    char script[1200];
    snprintf(script, sizeof script, "%s/pil.py", root);
    const char *pysrc =
        "import sys\n"
        "from PIL import Image\n"
        "for line in open(sys.argv[1]):\n"
        "    src, dst, w, h, x0, y0, x1, y1 = line.split()\n"
        "    im = Image.open(src).convert('RGB')\n"
        "    out = im.resize((int(w), int(h)), Image.BICUBIC, box=(float(x0), float(y0), float(x1), float(y1)))\n"
        "    open(dst, 'wb').write(out.tobytes())\n";
    pvlm_write_file_atomic(script, pysrc, strlen(pysrc), NULL);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", py ? py : "/usr/bin/python3", script, cmdfile);
    int st = system(cmd);
    CHECK_MSG(st == 0, "Pillow reference failed: %s", cmd);
    for (int c = 0; c < nc && st == 0; c++) {
        const rcase *k = &cases[c];
        pvlm_image o;
        CHECK_OK(pvlm_image_resize_window(&in[c], k->x0, k->y0, k->x1 - k->x0, k->y1 - k->y0, k->ow, k->oh, &o, &err),
                 &err);
        char p[1200];
        snprintf(p, sizeof p, "%s/out%d.rgb", root, c);
        char *ref;
        size_t n;
        CHECK_OK(pvlm_read_file(p, &ref, &n, &err), &err);
        CHECK(n == (size_t)k->ow * k->oh * 3);
        int maxd = 0;
        double sum = 0;
        for (size_t i = 0; i < n && o.rgb; i++) {
            int d = abs((int)o.rgb[i] - (int)(uint8_t)ref[i]);
            if (d > maxd) maxd = d;
            sum += d;
        }
        printf("case %d: %dx%d -> %dx%d: max |diff| %d, mean %.4f\n", c, k->iw, k->ih, k->ow, k->oh, maxd, sum / n);
        CHECK_MSG(maxd <= 1 && sum / n < 0.01, "case %d: max %d mean %.4f", c, maxd, sum / n);
        /* pvlm_image_fit(crop) is the centred-square window */
        if (c < 3) {
            pvlm_image f;
            CHECK_OK(pvlm_image_fit(&in[c], k->ow, PVLM_RESIZE_CROP, &f, &err), &err);
            CHECK(f.rgb && o.rgb && !memcmp(f.rgb, o.rgb, n));
            pvlm_image_free(&f);
        }
        free(ref);
        pvlm_image_free(&o);
    }
    for (int c = 0; c < nc; c++) pvlm_image_free(&in[c]);
    return pvlm_test_done("shard_images_pil");
}
