/* paint.h - CPT's colour-block visual prompts (Yao et al., "CPT: Colorful Prompt Tuning for
 * Pre-trained Vision-Language Models", arXiv 2109.11797, section 3.1).
 *
 * A candidate region is marked by blending a solid colour over it with alpha 0.5, so the model can
 * be asked "{query} is in" -> "<colour> color". The five colours and their RGB values are fixed here
 * and listed in docs/finetune.md. Painting works on an S x S RGB image in place; boxes are given in
 * the original image's pixels (x, y, w, h, as COCO) and scaled to S the way the image was fit.
 */
#ifndef PVLM_FINETUNE_PAINT_H
#define PVLM_FINETUNE_PAINT_H

#include <stdint.h>

#define PVLM_CPT_NCOLOURS 5

typedef struct pvlm_cpt_colour {
    const char *name;
    uint8_t rgb[3];
} pvlm_cpt_colour;

/* red, blue, yellow, purple, green (pure, saturated primaries/secondaries; see docs/finetune.md). */
extern const pvlm_cpt_colour pvlm_cpt_colours[PVLM_CPT_NCOLOURS];

/* Blend colour c over box (x, y, w, h) given in an orig_w x orig_h image that was resized to S x S
 * (crop mode: shorter side scaled to S, centred square kept), alpha 0.5, rounded. */
void pvlm_cpt_paint(uint8_t *rgb, int S, int orig_w, int orig_h, const float box[4], const pvlm_cpt_colour *c);
/* The pixels of box (x, y, w, h) in that S x S image: r = x0, y0, x1, y1 (half-open, clamped to [0, S];
 * empty when x1 <= x0 or y1 <= y0): the rectangle pvlm_cpt_paint blends. */
void pvlm_cpt_box_pixels(int S, int orig_w, int orig_h, const float box[4], int r[4]);
/* Intersection over union of two (x, y, w, h) boxes. */
double pvlm_cpt_iou(const float a[4], const float b[4]);

#endif
