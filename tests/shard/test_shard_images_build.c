/* test_shard_images_build.c - `pvlm shard images` end to end through the library entry
 * point: folder-pairs and COCO/Karpathy JSON inputs, exact read-back (ids, captions,
 * sizes, raw pixels equal to decode+fit of the source, JPEG mode decodes), corrupt and
 * caption-less items skipped and counted by reason, byte-identical rebuilds (other
 * thread count too), resume (complete shards skipped, half-written ones rebuilt),
 * cluster parts + manifest. Fixtures are generated here with io/image's encoders. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/log.h"
#include "harness.h"
#include "io/image.h"
#include "io/imgshard.h"
#include "io/manifest.h"
#include "shard/shard_images.h"

static char root[1024];

static void wfile(const char *dir, const char *name, const void *data, size_t n) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    pvlm_err err = {0};
    if (pvlm_write_file_atomic(p, data, n, &err) != 0) fprintf(stderr, "%s\n", err.msg);
}

static void wtext(const char *dir, const char *name, const char *s) {
    wfile(dir, name, s, strlen(s));
}

static void make_image(pvlm_image *im, int w, int h, int seed) {
    pvlm_image_alloc(im, w, h, NULL);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / w + seed * 30);
            p[1] = (uint8_t)(y * 255 / h);
            p[2] = (uint8_t)(((x / 8 + y / 8) & 1) ? 200 : 40 + seed);
        }
}

static void write_jpeg(const char *dir, const char *name, int w, int h, int seed, size_t cut) {
    pvlm_image im;
    make_image(&im, w, h, seed);
    uint8_t *b;
    size_t n;
    pvlm_image_encode_jpeg(NULL, &im, 90, &b, &n, NULL);
    wfile(dir, name, b, cut ? cut : n);
    free(b);
    pvlm_image_free(&im);
}

static void write_png(const char *dir, const char *name, int w, int h, int seed) {
    pvlm_image im;
    make_image(&im, w, h, seed);
    uint8_t *b;
    size_t n;
    pvlm_image_encode_png(&im, &b, &n, NULL);
    wfile(dir, name, b, n);
    free(b);
    pvlm_image_free(&im);
}

/* Fixture folder of pairs: 7 good, 3 corrupt, 2 without captions. */
static void make_pairs(const char *dir) {
    pvlm_mkdir_p(dir, NULL);
    const int sz[7][2] = {{64, 48}, {300, 200}, {50, 90}, {640, 480}, {33, 33}, {120, 40}, {17, 100}};
    for (int i = 0; i < 7; i++) {
        char name[64], cap[256];
        snprintf(name, sizeof name, "good%d.%s", i, i == 2 || i == 5 ? "png" : "jpg");
        if (i == 2 || i == 5)
            write_png(dir, name, sz[i][0], sz[i][1], i);
        else
            write_jpeg(dir, name, sz[i][0], sz[i][1], i, 0);
        snprintf(name, sizeof name, "good%d.txt", i);
        if (i == 3)
            snprintf(cap, sizeof cap, "  first caption of %d \n\nsecond caption of %d\r\n", i, i);
        else
            snprintf(cap, sizeof cap, "a picture number %d", i);
        wtext(dir, name, cap);
    }
    write_jpeg(dir, "trunc.jpg", 200, 150, 1, 300); /* truncated JPEG */
    wtext(dir, "trunc.txt", "truncated");
    wtext(dir, "garbage.png", "\x89PNG\r\n\x1a\ngarbage garbage garbage garbage");
    wtext(dir, "garbage.txt", "garbage");
    wfile(dir, "zero.jpg", "", 0); /* zero-byte */
    wtext(dir, "zero.txt", "zero bytes");
    write_jpeg(dir, "nocap.jpg", 40, 40, 2, 0);
    wtext(dir, "nocap.txt", "  \n \n");         /* only whitespace: empty caption */
    write_jpeg(dir, "notxt.jpg", 40, 40, 3, 0); /* no .txt at all */
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int ok =
        pvlm_read_file(a, &x, &nx, NULL) == 0 && pvlm_read_file(b, &y, &ny, NULL) == 0 && nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return ok;
}

static int same_set(const char *d1, const char *d2, int nshards) {
    int ok = 1;
    for (int k = 0; k < nshards; k++) {
        char a[2048], b[2048];
        snprintf(a, sizeof a, "%s/images-%05d-of-%05d.lmdb", d1, k, nshards);
        snprintf(b, sizeof b, "%s/images-%05d-of-%05d.lmdb", d2, k, nshards);
        if (!same_file(a, b)) {
            fprintf(stderr, "differs: %s %s\n", a, b);
            ok = 0;
        }
    }
    char a[2048], b[2048];
    snprintf(a, sizeof a, "%s/manifest.json", d1);
    snprintf(b, sizeof b, "%s/manifest.json", d2);
    if (!same_file(a, b)) {
        fprintf(stderr, "differs: %s %s\n", a, b);
        ok = 0;
    }
    return ok;
}

static int64_t fail_count(const pvlm_manifest *m, const char *reason) {
    json_t *v = json_object_get(m->failures, reason);
    return v ? (int64_t)json_integer_value(v) : 0;
}

/* Read every record of a built set; check each against its source file. */
static void check_set(const char *out, const char *pairs, int raw, int S, int expect_records) {
    pvlm_err err = {0};
    char mp[2048];
    snprintf(mp, sizeof mp, "%s/manifest.json", out);
    pvlm_manifest m;
    CHECK_OK(pvlm_manifest_load(mp, &m, &err), &err);
    CHECK_MSG(pvlm_manifest_records(&m) == expect_records, "%" PRId64 " records", pvlm_manifest_records(&m));
    int seen = 0;
    for (int i = 0; i < m.nshards; i++) {
        CHECK_OK(pvlm_manifest_verify_shard(&m, i, out, 1, &err), &err);
        char sp[2048];
        pvlm_manifest_shard_path(&m, i, out, sp, sizeof sp);
        pvlm_imgshard_reader *r = pvlm_imgshard_open(sp, PVLM_IMGSHARD_NOLOCK, &err);
        CHECK_MSG(r != NULL, "%s", err.msg);
        if (!r) continue;
        CHECK(pvlm_imgshard_count(r) == m.shards[i].records);
        pvlm_imgrec rec = {0};
        for (int64_t j = 0; j < pvlm_imgshard_count(r); j++) {
            CHECK_OK(pvlm_imgshard_get(r, j, &rec, &err), &err);
            seen++;
            CHECK(!strncmp(rec.id, "good", 4));
            int idx = rec.id[4] - '0';
            CHECK(rec.stored_w == S && rec.stored_h == S);
            CHECK(rec.encoding == (raw ? PVLM_IMG_ENC_RAW : PVLM_IMG_ENC_JPEG));
            char cap[128];
            if (idx == 3) {
                CHECK(rec.ncaptions == 2);
                CHECK(rec.ncaptions == 2 && !strcmp(rec.captions[0], "first caption of 3") &&
                      !strcmp(rec.captions[1], "second caption of 3"));
            } else {
                snprintf(cap, sizeof cap, "a picture number %d", idx);
                CHECK(rec.ncaptions == 1 && !strcmp(rec.captions[0], cap));
            }
            /* pixels: the pipeline applied to the source file */
            char src[2048];
            snprintf(src, sizeof src, "%s/good%d.%s", pairs, idx, idx == 2 || idx == 5 ? "png" : "jpg");
            char *data;
            size_t n;
            pvlm_image im, fit, dec;
            int ow, oh;
            if (pvlm_read_file(src, &data, &n, &err) != 0) continue;
            CHECK_OK(pvlm_image_decode(NULL, data, n, S, 0, &im, &ow, &oh, src, &err), &err);
            free(data);
            CHECK(rec.orig_w == ow && rec.orig_h == oh);
            CHECK_OK(pvlm_image_fit(&im, S, PVLM_RESIZE_CROP, &fit, &err), &err);
            if (raw) {
                CHECK(rec.image_len == (uint64_t)S * S * 3 && !memcmp(rec.image, fit.rgb, rec.image_len));
            } else {
                /* the stored bytes are exactly our encoder's output for the fitted image */
                uint8_t *jb;
                size_t jn;
                CHECK_OK(pvlm_image_encode_jpeg(NULL, &fit, 92, &jb, &jn, &err), &err);
                CHECK(rec.image_len == jn && !memcmp(rec.image, jb, jn));
                free(jb);
                CHECK_OK(pvlm_image_decode(NULL, rec.image, rec.image_len, 0, 0, &dec, NULL, NULL, "stored", &err),
                         &err);
                CHECK(dec.w == S && dec.h == S);
                pvlm_image_free(&dec);
            }
            pvlm_image_free(&im);
            pvlm_image_free(&fit);
        }
        pvlm_imgrec_free(&rec);
        pvlm_imgshard_close(r);
    }
    CHECK(seen == expect_records);
    pvlm_manifest_free(&m);
}

static void cfg_pairs(pvlm_shard_images_cfg *c, const char *pairs, const char *out, int threads) {
    pvlm_shard_images_defaults(c);
    c->pairs = pairs;
    c->out = out;
    c->shards = 3;
    c->image_size = 32;
    c->store = "raw";
    c->threads = threads;
    c->seed = 5;
    c->txn_records = 2;
    c->progress_s = 0;
}

int main(void) {
    pvlm_log_set_level(PVLM_LOG_ERROR);
    if (pvlm_test_scratch(root, sizeof root, "/tmp/pvlm-test-shard-images-build", NULL, 1)) return 1;
    char pairs[1200], o1[1200], o2[1200], o3[1200], o4[1200], o5[1200];
    snprintf(pairs, sizeof pairs, "%s/pairs", root);
    snprintf(o1, sizeof o1, "%s/out-raw", root);
    snprintf(o2, sizeof o2, "%s/out-raw-1thread", root);
    snprintf(o3, sizeof o3, "%s/out-jpeg", root);
    snprintf(o4, sizeof o4, "%s/out-parts", root);
    snprintf(o5, sizeof o5, "%s/out-coco", root);
    make_pairs(pairs);
    pvlm_err err = {0};
    pvlm_shard_images_cfg c;
    pvlm_shard_images_stats st;

    /* folder pairs, raw: round trip, failures by reason */
    cfg_pairs(&c, pairs, o1, 3);
    CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
    CHECK(st.items == 12 && st.records == 7 && st.failed == 5 && st.shards_built == 3 && st.manifest_written);
    {
        char mp[2048];
        snprintf(mp, sizeof mp, "%s/manifest.json", o1);
        pvlm_manifest m;
        CHECK_OK(pvlm_manifest_load(mp, &m, &err), &err);
        CHECK(!strcmp(m.kind, "images") && m.nshards == 3);
        CHECK_MSG(fail_count(&m, "decode_error") == 3, "decode_error %" PRId64, fail_count(&m, "decode_error"));
        CHECK(fail_count(&m, "empty_caption") == 2);
        CHECK(pvlm_manifest_failed(&m) == 5);
        CHECK(json_integer_value(json_object_get(m.settings, "image_size")) == 32);
        CHECK(!strcmp(json_string_value(json_object_get(m.settings, "store")), "raw"));
        pvlm_manifest_free(&m);
    }
    check_set(o1, pairs, 1, 32, 7);

    /* determinism: one thread instead of three, same bytes */
    cfg_pairs(&c, pairs, o2, 1);
    CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
    CHECK(same_set(o1, o2, 3));

    /* resume: nothing to do when complete */
    CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
    CHECK(st.shards_skipped == 3 && st.shards_built == 0 && st.records == 7);
    /* shard 0: crash after the rename but before its sidecar; shard 2: crash mid-build
     * (temp file, no final file); shard 1 stays complete and must be skipped */
    {
        char p[2048];
        snprintf(p, sizeof p, "%s/images-00000-of-00003.lmdb.json", o2);
        unlink(p);
        snprintf(p, sizeof p, "%s/images-00002-of-00003.lmdb", o2);
        char t[2100];
        snprintf(t, sizeof t, "%s.tmp", p);
        rename(p, t);
        truncate(t, 4096);
        snprintf(p, sizeof p, "%s/manifest.json", o2);
        unlink(p);
        struct stat s1a, s1b;
        snprintf(p, sizeof p, "%s/images-00001-of-00003.lmdb", o2);
        stat(p, &s1a);
        CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
        CHECK_MSG(st.shards_skipped == 1 && st.shards_built == 2, "skipped %d built %d", st.shards_skipped,
                  st.shards_built);
        stat(p, &s1b);
        CHECK(s1a.st_ino == s1b.st_ino && s1a.st_mtime == s1b.st_mtime); /* untouched */
        CHECK(!pvlm_file_exists(t));
        CHECK(same_set(o1, o2, 3));
        /* a corrupted sidecar-size mismatch (shard file replaced) is rebuilt too */
        snprintf(p, sizeof p, "%s/images-00001-of-00003.lmdb", o2);
        truncate(p, 100);
        CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
        CHECK(st.shards_built == 1 && st.shards_skipped == 2);
        CHECK(same_set(o1, o2, 3));
        /* changed settings invalidate every shard */
        c.jpeg_quality = 80;
        CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
        CHECK(st.shards_built == 3);
        c.jpeg_quality = 95;
    }
    /* a stop request mid-build leaves no final file for the shard in progress */
    {
        char o6[1300];
        snprintf(o6, sizeof o6, "%s/out-stopped", root);
        volatile sig_atomic_t stop = 1;
        cfg_pairs(&c, pairs, o6, 2);
        c.stop = &stop;
        CHECK(pvlm_shard_images_build(&c, &st, &err) != 0 && err.code == PVLM_ESTOP);
        char p[2048];
        snprintf(p, sizeof p, "%s/images-00000-of-00003.lmdb", o6);
        CHECK(!pvlm_file_exists(p));
        stop = 0;
        CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
        CHECK(same_set(o1, o6, 3));
    }

    /* JPEG store */
    cfg_pairs(&c, pairs, o3, 2);
    c.store = "jpeg";
    c.jpeg_quality = 92;
    CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
    check_set(o3, pairs, 0, 32, 7);

    /* cluster parts: part 0 of 2 leaves the manifest to the last part; result identical */
    cfg_pairs(&c, pairs, o4, 1);
    c.parts = 2;
    c.part = 0;
    CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
    CHECK(st.shards_built == 2 && !st.manifest_written);
    c.merge = 1;
    CHECK(pvlm_shard_images_build(&c, &st, &err) != 0); /* shard 1 missing */
    c.merge = 0;
    c.part = 1;
    CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
    CHECK(st.shards_built == 1 && st.manifest_written);
    CHECK(same_set(o1, o4, 3));
    c.merge = 1;
    CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
    CHECK(same_set(o1, o4, 3));

    /* COCO-format JSON: ids are the COCO image ids, captions from annotations */
    {
        char coco[1300];
        snprintf(coco, sizeof coco, "%s/captions.json", root);
        const char *js =
            "{\"images\":[{\"id\":42,\"file_name\":\"good0.jpg\",\"width\":64,\"height\":48},"
            "{\"id\":7,\"file_name\":\"good2.png\"},{\"id\":9,\"file_name\":\"nocap.jpg\"},"
            "{\"id\":11,\"file_name\":\"missing.jpg\"},{\"id\":12,\"file_name\":\"zero.jpg\"}],"
            "\"annotations\":[{\"image_id\":42,\"id\":1,\"caption\":\"A dog.\"},"
            "{\"image_id\":7,\"id\":2,\"caption\":\"A cat.\"},{\"image_id\":42,\"id\":3,\"caption\":\"  A brown dog. "
            "\"},"
            "{\"image_id\":11,\"id\":4,\"caption\":\"lost\"},{\"image_id\":12,\"id\":5,\"caption\":\"empty file\"},"
            "{\"image_id\":999,\"id\":6,\"caption\":\"orphan\"}]}";
        wtext(root, "captions.json", js);
        pvlm_shard_images_defaults(&c);
        c.coco = coco;
        c.images = pairs;
        c.out = o5;
        c.shards = 2;
        c.image_size = 24;
        c.shuffle = 0;
        c.progress_s = 0;
        CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
        CHECK(st.records == 2 && st.failed == 3);
        char mp[2048];
        snprintf(mp, sizeof mp, "%s/manifest.json", o5);
        pvlm_manifest m;
        CHECK_OK(pvlm_manifest_load(mp, &m, &err), &err);
        CHECK(fail_count(&m, "missing_file") == 1 && fail_count(&m, "empty_caption") == 1 &&
              fail_count(&m, "decode_error") == 1);
        CHECK(fail_count(&m, "bad_annotation") == 1); /* the orphan annotation (image_id 999) */
        /* shuffle 0: input order; shard 0 = items [0, 2) = ids 42, 7 */
        char sp[2048];
        pvlm_manifest_shard_path(&m, 0, o5, sp, sizeof sp);
        pvlm_imgshard_reader *r = pvlm_imgshard_open(sp, 0, &err);
        CHECK(r && pvlm_imgshard_count(r) == 2);
        pvlm_imgrec rec = {0};
        if (r) {
            CHECK_OK(pvlm_imgshard_get(r, 0, &rec, &err), &err);
            CHECK(!strcmp(rec.id, "42") && rec.ncaptions == 2 && !strcmp(rec.captions[0], "A dog.") &&
                  !strcmp(rec.captions[1], "A brown dog."));
            CHECK(rec.orig_w == 64 && rec.orig_h == 48 && rec.stored_w == 24);
            CHECK_OK(pvlm_imgshard_get(r, 1, &rec, &err), &err);
            CHECK(!strcmp(rec.id, "7") && rec.ncaptions == 1);
        }
        pvlm_imgrec_free(&rec);
        pvlm_imgshard_close(r);
        pvlm_manifest_free(&m);
        /* --keep-uncaptioned stores the caption-less image (hidden test sets) */
        c.keep_uncaptioned = 1;
        CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
        CHECK(st.records == 3 && st.shards_built == 2);

        /* Karpathy's dataset_coco.json format with a split filter */
        char sub[1300];
        snprintf(sub, sizeof sub, "%s/val2014", pairs);
        pvlm_mkdir_p(sub, NULL);
        write_jpeg(sub, "COCO_val2014_1.jpg", 80, 60, 4, 0);
        const char *kj =
            "{\"dataset\":\"coco\",\"images\":["
            "{\"filepath\":\"val2014\",\"filename\":\"COCO_val2014_1.jpg\",\"imgid\":0,\"split\":\"test\",\"cocoid\":"
            "391895,"
            "\"sentences\":[{\"raw\":\"A man riding a bike.\",\"tokens\":[]},{\"raw\":\"Someone on a bicycle.\"}]},"
            "{\"filepath\":\"val2014\",\"filename\":\"good4.jpg\",\"imgid\":1,\"split\":\"test\",\"cocoid\":5,"
            "\"sentences\":[{\"raw\":\"fallback path\"}]},"
            "{\"filepath\":\"train2014\",\"filename\":\"x.jpg\",\"imgid\":2,\"split\":\"train\",\"cocoid\":3,"
            "\"sentences\":[{\"raw\":\"not in test\"}]}]}";
        wtext(root, "dataset_coco.json", kj);
        snprintf(coco, sizeof coco, "%s/dataset_coco.json", root);
        pvlm_shard_images_defaults(&c);
        c.coco = coco;
        c.images = pairs;
        c.split = "test";
        snprintf(o5, sizeof o5, "%s/out-karpathy", root);
        c.out = o5;
        c.shards = 1;
        c.image_size = 16;
        c.shuffle = 0;
        c.progress_s = 0;
        CHECK_OK(pvlm_shard_images_build(&c, &st, &err), &err);
        CHECK_MSG(st.items == 2 && st.records == 2, "items %" PRId64 " records %" PRId64, st.items, st.records);
        snprintf(sp, sizeof sp, "%s/images-00000-of-00001.lmdb", o5);
        r = pvlm_imgshard_open(sp, 0, &err);
        if (r) {
            CHECK_OK(pvlm_imgshard_get(r, 0, &rec, &err), &err);
            CHECK(!strcmp(rec.id, "391895") && rec.ncaptions == 2 && !strcmp(rec.captions[1], "Someone on a bicycle."));
            CHECK(rec.orig_w == 80 && rec.orig_h == 60);
        }
        pvlm_imgrec_free(&rec);
        pvlm_imgshard_close(r);
    }
    /* bad configuration is an error, not a crash */
    pvlm_shard_images_defaults(&c);
    c.out = o5;
    CHECK(pvlm_shard_images_build(&c, &st, &err) != 0 && err.code == PVLM_EINVAL);
    return pvlm_test_done("shard_images_build");
}
