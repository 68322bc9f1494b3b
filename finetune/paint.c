/* paint.c - see paint.h. */
#include "paint.h"

#include <math.h>
#include <stddef.h>

const pvlm_cpt_colour pvlm_cpt_colours[PVLM_CPT_NCOLOURS] = {
    {"red", {255, 0, 0}},
    {"blue", {0, 0, 255}},
    {"yellow", {255, 255, 0}},
    {"purple", {128, 0, 128}},
    {"green", {0, 255, 0}},
};

void pvlm_cpt_box_pixels(int S, int orig_w, int orig_h, const float box[4], int r[4]) {
    /* crop fit: scale = S / shorter side, then the centred S x S window */
    double short_side = orig_w < orig_h ? orig_w : orig_h;
    double scale = short_side > 0 ? S / short_side : 1.0;
    double ox = (orig_w * scale - S) / 2, oy = (orig_h * scale - S) / 2;
    int x0 = (int)floor(box[0] * scale - ox), y0 = (int)floor(box[1] * scale - oy);
    int x1 = (int)ceil((box[0] + box[2]) * scale - ox), y1 = (int)ceil((box[1] + box[3]) * scale - oy);
    r[0] = x0 < 0 ? 0 : x0, r[1] = y0 < 0 ? 0 : y0;
    r[2] = x1 > S ? S : x1, r[3] = y1 > S ? S : y1;
}

void pvlm_cpt_paint(uint8_t *rgb, int S, int orig_w, int orig_h, const float box[4], const pvlm_cpt_colour *c) {
    int r[4];
    pvlm_cpt_box_pixels(S, orig_w, orig_h, box, r);
    int x0 = r[0], y0 = r[1], x1 = r[2], y1 = r[3];
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            for (int k = 0; k < 3; k++) {
                uint8_t *p = rgb + ((size_t)y * (size_t)S + (size_t)x) * 3 + k;
                *p = (uint8_t)((*p + c->rgb[k] + 1) / 2); /* alpha 0.5, round half up */
            }
}

double pvlm_cpt_iou(const float a[4], const float b[4]) {
    double ix = fmin(a[0] + a[2], b[0] + b[2]) - fmax(a[0], b[0]);
    double iy = fmin(a[1] + a[3], b[1] + b[3]) - fmax(a[1], b[1]);
    if (ix <= 0 || iy <= 0) return 0.0;
    double inter = ix * iy, uni = (double)a[2] * a[3] + (double)b[2] * b[3] - inter;
    return uni > 0 ? inter / uni : 0.0;
}
