/* test_finetune_paint.c - CPT's colour-block painting and box IoU (finetune/paint.h).
 *
 * Painting: alpha 0.5 with round-half-up, the pixel range floor(x) .. ceil(x + w) of the box mapped
 * through the same crop fit as the image (shorter side scaled to S, centred window), clamping at the
 * window's edges, and nothing painted outside the box. The python pretraining-set writer
 * (tests/finetune/make_pretrain_set.py) paints by the same rule, so the model sees the same blocks in
 * pretraining and in CPT evaluation. IoU: identical, disjoint, touching and partial overlaps.
 */
#include <stdint.h>
#include <string.h>

#include "finetune/paint.h"
#include "harness.h"

enum { S = 8 };

static uint8_t px(const uint8_t *img, int x, int y, int k) { return img[((size_t)y * S + (size_t)x) * 3 + (size_t)k]; }

/* 1 when exactly the pixels in [x0, x1) x [y0, y1) differ from the flat grey `v` image. */
static int painted_exactly(const uint8_t *img, uint8_t v, int x0, int y0, int x1, int y1) {
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int in = x >= x0 && x < x1 && y >= y0 && y < y1, same = 1;
            for (int k = 0; k < 3; k++) same &= px(img, x, y, k) == v;
            if (in == same) return 0;
        }
    return 1;
}

int main(void) {
    uint8_t img[S * S * 3];
    const pvlm_cpt_colour *red = &pvlm_cpt_colours[0], *purple = &pvlm_cpt_colours[3];
    CHECK(!strcmp(red->name, "red") && red->rgb[0] == 255 && red->rgb[1] == 0 && red->rgb[2] == 0);
    CHECK(!strcmp(purple->name, "purple") && purple->rgb[0] == 128 && purple->rgb[2] == 128);

    /* square original: fractional box edges widen to whole pixels, x 2..5, y 3..4 */
    memset(img, 100, sizeof img);
    pvlm_cpt_paint(img, S, S, S, (const float[4]){2.0f, 3.0f, 2.5f, 1.0f}, red);
    CHECK(painted_exactly(img, 100, 2, 3, 5, 4));
    CHECK(px(img, 2, 3, 0) == 178 && px(img, 2, 3, 1) == 50 && px(img, 2, 3, 2) == 50); /* (100+255+1)/2 */

    /* round half up: (101 + 0) / 2 = 50.5 -> 51, (101 + 128) / 2 = 114.5 -> 115 */
    memset(img, 101, sizeof img);
    pvlm_cpt_paint(img, S, S, S, (const float[4]){0, 0, 1, 1}, purple);
    CHECK(px(img, 0, 0, 0) == 115 && px(img, 0, 0, 1) == 51 && px(img, 0, 0, 2) == 115);
    CHECK(painted_exactly(img, 101, 0, 0, 1, 1));

    /* 16 x 8 original, crop fit: scale 1, window x 4..12; box x 4..6 lands at 0..2 */
    memset(img, 100, sizeof img);
    pvlm_cpt_paint(img, S, 16, 8, (const float[4]){4, 0, 2, 2}, red);
    CHECK(painted_exactly(img, 100, 0, 0, 2, 2));
    /* a box left of the window paints nothing; one across the right edge is clamped */
    memset(img, 100, sizeof img);
    pvlm_cpt_paint(img, S, 16, 8, (const float[4]){0, 0, 2, 2}, red);
    CHECK(painted_exactly(img, 100, 0, 0, 0, 0));
    pvlm_cpt_paint(img, S, 16, 8, (const float[4]){10, 6, 6, 6}, red);
    CHECK(painted_exactly(img, 100, 6, 6, 8, 8));

    /* 32 x 32 original scaled down 4x: box (4, 4, 8, 8) -> pixels 1..3 */
    memset(img, 100, sizeof img);
    pvlm_cpt_paint(img, S, 32, 32, (const float[4]){4, 4, 8, 8}, red);
    CHECK(painted_exactly(img, 100, 1, 1, 3, 3));

    const float a[4] = {0, 0, 2, 2};
    CHECK_CLOSE(pvlm_cpt_iou(a, a), 1.0, 0, 1e-12);
    CHECK_CLOSE(pvlm_cpt_iou(a, (const float[4]){1, 0, 2, 2}), 1.0 / 3.0, 0, 1e-12);
    CHECK_CLOSE(pvlm_cpt_iou(a, (const float[4]){1, 1, 2, 2}), 1.0 / 7.0, 0, 1e-12);
    CHECK(pvlm_cpt_iou(a, (const float[4]){2, 0, 2, 2}) == 0.0); /* touching edges */
    CHECK(pvlm_cpt_iou(a, (const float[4]){5, 5, 1, 1}) == 0.0);
    CHECK(pvlm_cpt_iou(a, (const float[4]){0, 0, 0, 0}) == 0.0); /* empty box */
    CHECK_CLOSE(pvlm_cpt_iou((const float[4]){0, 0, 4, 4}, (const float[4]){1, 1, 2, 2}), 0.25, 0, 1e-12);
    return pvlm_test_done("finetune_paint");
}
