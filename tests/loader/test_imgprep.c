/* test_imgprep.c - one image preparation for training, evaluation and finetuning (io/imgprep.h).
 *
 * Four images - a 45 x 30 and a 64 x 64 JPEG, a 20 x 13 and an S x S raw record - go into an LMDB
 * shard, and the same images go into files (the JPEG bytes as they are, raw images as PNG, which is
 * lossless). Each of the three callers prepares them: the loader (a training batch), eval/gen
 * (pvlm_gen_load_image, from the shard record and from the file) and finetune/fttask
 * (pvlm_ft_data_load of a classification.json naming the files). Every caller must hand the model the
 * same S x S bytes, equal to pvlm_imgprep_record; and resampling an S x S image to S x S (crop or
 * border) must be the identity, so the shortcut that copies such an image changes no output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "eval/gen.h"
#include "finetune/fttask.h"
#include "harness.h"
#include "io/imgprep.h"
#include "io/loader.h"
#include "loader/fixtures.h"

#define IMG_S 16
#define NREC 4

static const int rec_w[NREC] = {45, 64, 20, IMG_S}, rec_h[NREC] = {30, 64, 13, IMG_S}, rec_jpeg[NREC] = {1, 1, 0, 0};

/* out := dir/name (the test's folder names are short) */
static void in_dir(char out[4200], const char *dir, const char *name) {
    snprintf(out, 4200, "%s/%s", dir, name);
}

static void pattern(uint8_t *rgb, int w, int h, int seed) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 7 + seed * 31), p[1] = (uint8_t)(y * 11 + x * x), p[2] = (uint8_t)((x ^ y) * 5 + seed);
        }
}

/* Record i: JPEG or raw bytes (*bytes malloc'd) and the file that holds the same image. */
static void make_image(int i, const char *dir, uint8_t **bytes, size_t *n, char *file, size_t cap) {
    pvlm_err err = {0};
    uint8_t *rgb = malloc((size_t)rec_w[i] * rec_h[i] * 3), *png = NULL;
    pattern(rgb, rec_w[i], rec_h[i], i);
    pvlm_image im = {rec_w[i], rec_h[i], rgb};
    size_t pn = 0;
    snprintf(file, cap, "%s/img%d.%s", dir, i, rec_jpeg[i] ? "jpg" : "png");
    if (rec_jpeg[i]) {
        CHECK_OK(pvlm_image_encode_jpeg(NULL, &im, 90, bytes, n, &err), &err);
        CHECK_OK(pvlm_write_file_atomic(file, *bytes, *n, &err), &err);
        free(rgb);
    } else {
        CHECK_OK(pvlm_image_encode_png(&im, &png, &pn, &err), &err);
        CHECK_OK(pvlm_write_file_atomic(file, png, pn, &err), &err);
        free(png);
        *bytes = rgb, *n = (size_t)rec_w[i] * rec_h[i] * 3;
    }
}

static void write_shard(const char *dir, char paths[NREC][4200]) {
    pvlm_err err = {0};
    pvlm_manifest m;
    CHECK_OK(pvlm_manifest_init(&m, "images", &err), &err);
    char shard[4200];
    in_dir(shard, dir, "images-00000-of-00001.lmdb");
    pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(shard, NULL, &err);
    CHECK_MSG(w != NULL, "%s", err.msg);
    for (int i = 0; w && i < NREC; i++) {
        uint8_t *bytes = NULL;
        size_t n = 0;
        make_image(i, dir, &bytes, &n, paths[i], sizeof paths[i]);
        const char *caps[1] = {"1 2 3"};
        pvlm_imgrec r;
        memset(&r, 0, sizeof r);
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        r.id = id, r.ncaptions = 1, r.captions = caps, r.orig_w = rec_w[i], r.orig_h = rec_h[i];
        r.stored_w = rec_w[i], r.stored_h = rec_h[i], r.image = bytes, r.image_len = n;
        r.encoding = rec_jpeg[i] ? PVLM_IMG_ENC_JPEG : PVLM_IMG_ENC_RAW;
        CHECK_OK(pvlm_imgshard_writer_add(w, &r, &err), &err);
        free(bytes);
    }
    if (w) CHECK_OK(pvlm_imgshard_writer_finish(w, NULL, &err), &err);
    CHECK_OK(fx_add_shard(&m, dir, "images-00000-of-00001.lmdb", NREC, &err), &err);
    char mp[4200];
    in_dir(mp, dir, "manifest.json");
    CHECK_OK(pvlm_manifest_save(&m, mp, &err), &err);
    pvlm_manifest_free(&m);
}

static void check_loader(const char *dir, uint8_t want[NREC][IMG_S * IMG_S * 3]) {
    pvlm_err err = {0};
    char mp[4200];
    in_dir(mp, dir, "manifest.json");
    pvlm_loader_config c;
    pvlm_loader_config_default(&c);
    c.image_manifest = mp;
    pvlm_tokenizer *tok = fx_tokenizer(0, NREC, 300, &err); /* any real tokenizer: captions are not checked here */
    CHECK_MSG(tok != NULL, "fixture tokenizer: %s", err.msg);
    c.tokenizer = tok;
    c.B = NREC, c.S = IMG_S, c.Lp = 4, c.Ls = 4, c.seed = 7, c.threads = 1, c.shuffle_block = 4;
    if (tok)
        c.pad_id = pvlm_tokenizer_pad_id(tok), c.bos_id = pvlm_tokenizer_bos_id(tok),
        c.eos_id = pvlm_tokenizer_eos_id(tok);
    pvlm_loader *L = tok ? pvlm_loader_open(&c, &err) : NULL;
    CHECK_MSG(L != NULL, "%s", err.msg);
    pvlm_batch b;
    CHECK_OK(pvlm_batch_alloc(&b, NREC, IMG_S, 4, 4, &err), &err);
    int seen = 0;
    if (L && pvlm_loader_next(L, &b, &err) == 0) {
        for (int r = 0; r < NREC; r++) {
            int64_t g = b.sample_id[r];
            CHECK_MSG(g >= 0 && g < NREC && b.has_image[r], "row %d: sample %lld", r, (long long)g);
            if (g < 0 || g >= NREC) continue;
            CHECK_MSG(!memcmp(b.images + (size_t)r * IMG_S * IMG_S * 3, want[g], IMG_S * IMG_S * 3), "loader: record %lld differs",
                      (long long)g);
            seen |= 1 << g;
        }
    } else {
        CHECK_MSG(0, "loader: %s", err.msg);
    }
    CHECK_MSG(seen == (1 << NREC) - 1, "loader batch holds every record once (mask %d)", seen);
    pvlm_batch_free(&b);
    if (L) pvlm_loader_close(L);
    pvlm_tokenizer_free(tok);
}

/* want[i] := what io/imgprep makes of record i (crop); eval/gen must give the same from the shard
 * record and from the file. */
static void reference_and_gen(const char *dir, char paths[NREC][4200], uint8_t want[NREC][IMG_S * IMG_S * 3]) {
    pvlm_err err = {0};
    char shard[4200];
    in_dir(shard, dir, "images-00000-of-00001.lmdb");
    pvlm_imgshard_reader *r = pvlm_imgshard_open(shard, 0, &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    pvlm_imgprep p;
    CHECK_OK(pvlm_imgprep_init(&p, &err), &err);
    pvlm_imgrec rec;
    memset(&rec, 0, sizeof rec);
    uint8_t got[IMG_S * IMG_S * 3];
    for (int i = 0; r && i < NREC; i++) {
        CHECK_OK(pvlm_imgshard_get(r, i, &rec, &err), &err);
        CHECK_OK(pvlm_imgprep_record(&p, &rec, IMG_S, PVLM_RESIZE_CROP, want[i], "record", &err), &err);
        pvlm_gen_item from_shard = {i, NULL, i, ""}, from_file = {i, paths[i], 0, ""};
        CHECK_OK(pvlm_gen_load_image(&from_shard, r, &p, &rec, IMG_S, PVLM_RESIZE_CROP, got, &err), &err);
        CHECK_MSG(!memcmp(got, want[i], sizeof got), "gen (shard record): image %d differs", i);
        CHECK_OK(pvlm_gen_load_image(&from_file, NULL, &p, &rec, IMG_S, PVLM_RESIZE_CROP, got, &err), &err);
        CHECK_MSG(!memcmp(got, want[i], sizeof got), "gen (file %s): image %d differs", paths[i], i);
    }
    pvlm_imgrec_free(&rec);
    pvlm_imgprep_free(&p);
    if (r) pvlm_imgshard_close(r);
}

static void check_finetune(const char *dir, char paths[NREC][4200], uint8_t want[NREC][IMG_S * IMG_S * 3]) {
    pvlm_err err = {0};
    char json[4200];
    in_dir(json, dir, "classification.json");
    FILE *f = fopen(json, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"classes\": [\"a\", \"b\"], \"train\": [");
    for (int i = 0; i < NREC; i++) fprintf(f, "%s{\"file\": \"%s\", \"label\": %d}", i ? ", " : "", strrchr(paths[i], '/') + 1, i % 2);
    fprintf(f, "], \"test\": []}\n");
    fclose(f);
    pvlm_ft_data d;
    CHECK_OK(pvlm_ft_data_load(&d, PVLM_FT_CLASSIFY, json, NULL, NULL, IMG_S, NULL, 0, &err), &err);
    for (int i = 0; i < d.n_train; i++) {
        int im = d.train[i].image;
        CHECK_MSG(!memcmp(d.pixels + (size_t)im * IMG_S * IMG_S * 3, want[i], IMG_S * IMG_S * 3), "finetune: image %d differs", i);
        CHECK_MSG(d.orig_w[im] == rec_w[i] && d.orig_h[im] == rec_h[i], "finetune: original size of image %d", i);
    }
    CHECK(d.n_train == NREC);
    pvlm_ft_data_free(&d);
}

/* Resampling S x S to S x S is the identity in both modes (the copy shortcut changes nothing). */
static void check_identity(void) {
    pvlm_err err = {0};
    uint8_t rgb[IMG_S * IMG_S * 3];
    pattern(rgb, IMG_S, IMG_S, 5);
    pvlm_image in = {IMG_S, IMG_S, rgb};
    for (int mode = PVLM_RESIZE_CROP; mode <= PVLM_RESIZE_BORDER; mode++) {
        pvlm_image out = {0};
        CHECK_OK(pvlm_image_fit(&in, IMG_S, mode, &out, &err), &err);
        CHECK_MSG(out.rgb && !memcmp(out.rgb, rgb, sizeof rgb), "fit of an S x S image (mode %d) is not the identity",
                  mode);
        pvlm_image_free(&out);
    }
}

int main(void) {
    char dir[4096], paths[NREC][4200];
    if (pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm_test_imgprep", NULL, 1)) return 1;
    static uint8_t want[NREC][IMG_S * IMG_S * 3];
    write_shard(dir, paths);
    reference_and_gen(dir, paths, want);
    check_loader(dir, want);
    check_finetune(dir, paths, want);
    check_identity();
    return pvlm_test_done("loader_imgprep");
}
