/* test_shard_images_fixtures.c - decoder and builder on the fixture set written by
 * scripts/make-test-images.py (Pillow JPEGs incl. progressive/gray/CMYK/large, hand-made
 * PNGs incl. palette+tRNS, 16-bit, gray+alpha, Adam7 interlaced; corrupt files).
 * Every good fixture is one flat colour, so each decoded and each stored pixel must
 * equal it (within the listed tolerance for JPEG). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "harness.h"
#include "io/image.h"
#include "io/imgshard.h"
#include "io/manifest.h"
#include "shard/shard_images.h"

static int flat(const uint8_t *px, size_t npx, const json_t *rgb, int tol, int *worst) {
    int bad = 0;
    *worst = 0;
    for (size_t i = 0; i < npx; i++)
        for (int c = 0; c < 3; c++) {
            int d = abs((int)px[3 * i + c] - (int)json_integer_value(json_array_get(rgb, (size_t)c)));
            if (d > *worst) *worst = d;
            bad += d > tol;
        }
    return bad;
}

int main(void) {
    pvlm_log_set_level(PVLM_LOG_ERROR);
    const char *tmp = getenv("PVLM_TMP"), *py = getenv("PVLM_PYTHON"), *srcdir = getenv("PVLM_SOURCE_DIR");
    char root[1024], fx[1100], out[1100], cmd[4096];
    snprintf(root, sizeof root, "%s", tmp ? tmp : "/tmp/pvlm-test-shard-images-fixtures");
    pvlm_rm_rf(root, NULL);
    pvlm_mkdir_p(root, NULL);
    snprintf(fx, sizeof fx, "%s/fx", root);
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(cmd, sizeof cmd, "'%s' '%s/scripts/make-test-images.py' '%s'", py ? py : "/usr/bin/python3",
             srcdir ? srcdir : "../..", fx);
    int st = system(cmd);
    CHECK_MSG(st == 0, "fixture script failed: %s", cmd);
    if (st != 0) return pvlm_test_done("shard_images_fixtures");
    char ep[1200];
    snprintf(ep, sizeof ep, "%s/expected.json", fx);
    json_error_t je;
    json_t *exp = json_load_file(ep, 0, &je);
    CHECK(exp != NULL);
    if (!exp) return pvlm_test_done("shard_images_fixtures");

    /* 1. full-size decode of every file */
    pvlm_err err = {0};
    pvlm_image_codec *codec = pvlm_image_codec_new(&err);
    const char *name;
    json_t *e;
    int ngood = 0, ndecode_bad = 0;
    json_object_foreach(exp, name, e) {
        char p[1300];
        snprintf(p, sizeof p, "%s/%s", fx, name);
        char *data;
        size_t n;
        CHECK_OK(pvlm_read_file(p, &data, &n, &err), &err);
        pvlm_image im;
        int ow, oh;
        int rc = pvlm_image_decode(codec, data, n, 0, 0, &im, &ow, &oh, name, &err);
        free(data);
        int ok = json_is_true(json_object_get(e, "ok"));
        const char *reason = json_string_value(json_object_get(e, "reason"));
        if (ok) {
            ngood++;
            CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
            if (rc != 0) continue;
            CHECK_MSG(im.w == json_integer_value(json_object_get(e, "w")) &&
                          im.h == json_integer_value(json_object_get(e, "h")),
                      "%s: %dx%d", name, im.w, im.h);
            int worst, bad = flat(im.rgb, (size_t)im.w * im.h, json_object_get(e, "rgb"),
                                  (int)json_integer_value(json_object_get(e, "tol")), &worst);
            CHECK_MSG(bad == 0, "%s: %d values off (worst %d); first pixel %d,%d,%d", name, bad, worst, im.rgb[0],
                      im.rgb[1], im.rgb[2]);
            pvlm_image_free(&im);
        } else if (!strcmp(reason, "decode_error")) {
            ndecode_bad++;
            CHECK_MSG(rc != 0 && err.code == PVLM_EFORMAT && strstr(err.msg, name), "%s decoded (or bad message: %s)",
                      name, err.msg);
            if (rc == 0) pvlm_image_free(&im);
        } else if (rc == 0) {
            pvlm_image_free(&im);
        }
    }
    pvlm_image_codec_free(codec);

    /* 2. build shards from the folder and compare every stored image */
    pvlm_shard_images_cfg c;
    pvlm_shard_images_defaults(&c);
    c.pairs = fx;
    c.out = out;
    c.shards = 2;
    c.image_size = 16;
    c.store = "raw";
    c.threads = 2;
    c.progress_s = 0;
    pvlm_shard_images_stats stt;
    CHECK_OK(pvlm_shard_images_build(&c, &stt, &err), &err);
    char mp[1200];
    snprintf(mp, sizeof mp, "%s/manifest.json", out);
    pvlm_manifest m;
    CHECK_OK(pvlm_manifest_load(mp, &m, &err), &err);
    CHECK_MSG(pvlm_manifest_records(&m) == ngood, "%" PRId64 " records, %d good fixtures", pvlm_manifest_records(&m),
              ngood);
    json_t *dv = json_object_get(m.failures, "decode_error"), *ev = json_object_get(m.failures, "empty_caption");
    CHECK(dv && json_integer_value(dv) == ndecode_bad);
    CHECK(ev && json_integer_value(ev) == 1);
    int seen = 0;
    for (int i = 0; i < m.nshards; i++) {
        char sp[1300];
        pvlm_manifest_shard_path(&m, i, out, sp, sizeof sp);
        pvlm_imgshard_reader *r = pvlm_imgshard_open(sp, 0, &err);
        CHECK_MSG(r != NULL, "%s", err.msg);
        if (!r) continue;
        pvlm_imgrec rec = {0};
        for (int64_t j = 0; j < pvlm_imgshard_count(r); j++) {
            CHECK_OK(pvlm_imgshard_get(r, j, &rec, &err), &err);
            json_t *x = NULL;
            const char *nm;
            json_t *v;
            json_object_foreach(exp, nm, v) {
                size_t l = strlen(rec.id);
                if (!strncmp(nm, rec.id, l) && nm[l] == '.') x = v;
            }
            CHECK_MSG(x != NULL, "unexpected record %s", rec.id);
            if (!x) continue;
            seen++;
            CHECK(rec.ncaptions == 1 && !strcmp(rec.captions[0], json_string_value(json_object_get(x, "caption"))));
            CHECK(rec.orig_w == json_integer_value(json_object_get(x, "w")) &&
                  rec.orig_h == json_integer_value(json_object_get(x, "h")));
            int worst, bad = flat(rec.image, 16 * 16, json_object_get(x, "rgb"),
                                  (int)json_integer_value(json_object_get(x, "tol")) + 1, &worst);
            CHECK_MSG(bad == 0, "stored %s: %d values off (worst %d)", rec.id, bad, worst);
        }
        pvlm_imgrec_free(&rec);
        pvlm_imgshard_close(r);
    }
    CHECK(seen == ngood);
    pvlm_manifest_free(&m);
    json_decref(exp);
    return pvlm_test_done("shard_images_fixtures");
}
