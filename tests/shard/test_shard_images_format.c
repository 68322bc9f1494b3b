/* test_shard_images_format.c - io/imgshard and io/manifest: record encode/decode,
 * writer -> reader round trip, corrupt and incomplete shards, writer determinism,
 * manifest save/load/verify. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "harness.h"
#include "io/imgshard.h"
#include "io/manifest.h"

static void make_rec(int i, pvlm_imgrec *r, char *id, const char **caps, uint8_t *img) {
    memset(r, 0, sizeof(*r));
    sprintf(id, "img-%d", i);
    r->id = id;
    r->ncaptions = i % 3; /* 0, 1 or 2 captions */
    r->captions = caps;
    r->orig_w = 100 + i;
    r->orig_h = 50 + i;
    r->stored_w = 4;
    r->stored_h = 3;
    r->encoding = PVLM_IMG_ENC_RAW;
    for (int k = 0; k < 36; k++) img[k] = (uint8_t)(i * 7 + k);
    r->image = img;
    r->image_len = 36;
}

static int build(const char *path, int n, pvlm_imgshard_info *info, pvlm_err *err) {
    pvlm_imgshard_wopts o = {.txn_records = 7, .settings_json = "{\"image_size\":4}"};
    pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(path, &o, err);
    if (!w) return -1;
    for (int i = 0; i < n; i++) {
        pvlm_imgrec r;
        char id[32];
        uint8_t img[36];
        const char *caps[2] = {"a caption", "second caption \xc3\xa9"};
        make_rec(i, &r, id, caps, img);
        if (pvlm_imgshard_writer_add(w, &r, err) != 0) {
            pvlm_imgshard_writer_abort(w);
            return -1;
        }
    }
    return pvlm_imgshard_writer_finish(w, info, err);
}

/* Several threads share one reader (what the loader's prefetch threads do). */
typedef struct reader_job {
    pvlm_imgshard_reader *r;
    int seed, bad;
} reader_job;

static void *reader_thread(void *a) {
    reader_job *j = a;
    pvlm_imgrec d = {0};
    pvlm_err err = {0};
    uint32_t x = (uint32_t)j->seed * 2654435761u + 1;
    for (int t = 0; t < 300; t++) {
        x = x * 1664525u + 1013904223u;
        int i = (int)((x >> 8) % 50);
        char id[32];
        sprintf(id, "img-%d", i);
        if (pvlm_imgshard_get(j->r, i, &d, &err) != 0 || strcmp(d.id, id) != 0 || d.orig_w != 100 + i ||
            d.image[7] != (uint8_t)(i * 7 + 7))
            j->bad++;
    }
    pvlm_imgrec_free(&d);
    return NULL;
}

int main(void) {
    char dir[1024], p1[1200], p2[1200], p3[1200];
    pvlm_err err = {0};
    if (pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm-test-shard-images-format", "format", 1)) return 1;
    snprintf(p1, sizeof p1, "%s/a.lmdb", dir);
    snprintf(p2, sizeof p2, "%s/b.lmdb", dir);
    snprintf(p3, sizeof p3, "%s/empty.lmdb", dir);

    /* record encode/decode and corruption detection */
    {
        pvlm_imgrec r, d = {0};
        char id[32];
        uint8_t img[36];
        const char *caps[2] = {"x", ""};
        make_rec(2, &r, id, caps, img);
        uint8_t *v;
        size_t n;
        CHECK_OK(pvlm_imgrec_encode(&r, &v, &n, &err), &err);
        CHECK(n == PVLM_IMGREC_HEADER + strlen("img-2") + 1 + (4 + 2) + (4 + 1) + 36);
        CHECK_OK(pvlm_imgrec_decode(v, n, &d, "rec", &err), &err);
        CHECK(!strcmp(d.id, "img-2") && d.ncaptions == 2 && !strcmp(d.captions[0], "x") && !strcmp(d.captions[1], ""));
        CHECK(d.orig_w == 102 && d.orig_h == 52 && d.stored_w == 4 && d.stored_h == 3 && d.image_len == 36);
        CHECK(!memcmp(d.image, img, 36));
        for (size_t k = 0; k < n; k += 5) { /* every flipped byte is caught */
            v[k] ^= 0x41;
            CHECK_MSG(pvlm_imgrec_decode(v, n, &d, "rec", &err) != 0, "flip at %zu", k);
            v[k] ^= 0x41;
        }
        for (size_t cut = 0; cut < n; cut += 7) CHECK(pvlm_imgrec_decode(v, cut, &d, "rec", &err) != 0);
        CHECK(err.code == PVLM_EFORMAT);
        free(v);
        r.image_len = 35; /* raw size must match */
        CHECK(pvlm_imgrec_encode(&r, &v, &n, &err) != 0);
        pvlm_imgrec_free(&d);
    }

    /* round trip through LMDB */
    pvlm_imgshard_info i1, i2, i3;
    CHECK_OK(build(p1, 50, &i1, &err), &err);
    CHECK(i1.records == 50);
    struct stat st;
    CHECK(stat(p1, &st) == 0 && (uint64_t)st.st_size == i1.bytes);
    char t1[1300];
    snprintf(t1, sizeof t1, "%s.tmp", p1);
    CHECK(!pvlm_file_exists(t1));
    uint64_t h;
    CHECK_OK(pvlm_hash_file(p1, &h, &err), &err);
    CHECK(h == i1.checksum);
    for (int flags = 0; flags <= PVLM_IMGSHARD_NOLOCK; flags++) {
        pvlm_imgshard_reader *r = pvlm_imgshard_open(p1, flags, &err);
        CHECK_MSG(r != NULL, "%s", err.msg);
        if (!r) continue;
        CHECK(pvlm_imgshard_count(r) == 50);
        CHECK(strstr(pvlm_imgshard_meta(r), "\"image_size\":4") != NULL);
        pvlm_imgrec d = {0};
        for (int i = 49; i >= 0; i -= 3) {
            CHECK_OK(pvlm_imgshard_get(r, i, &d, &err), &err);
            char id[32];
            sprintf(id, "img-%d", i);
            CHECK(!strcmp(d.id, id));
            CHECK(d.ncaptions == i % 3);
            if (d.ncaptions > 1) CHECK(!strcmp(d.captions[1], "second caption \xc3\xa9"));
            CHECK(d.orig_w == 100 + i && d.orig_h == 50 + i && d.encoding == PVLM_IMG_ENC_RAW);
            CHECK(d.image_len == 36 && d.image[5] == (uint8_t)(i * 7 + 5));
        }
        CHECK(pvlm_imgshard_get(r, 50, &d, &err) != 0);
        CHECK(pvlm_imgshard_get(r, -1, &d, &err) != 0);
        pvlm_imgrec_free(&d);
        pvlm_imgshard_close(r);
    }
    /* concurrent gets through one shared reader */
    {
        pvlm_imgshard_reader *r = pvlm_imgshard_open(p1, 0, &err);
        CHECK(r != NULL);
        pthread_t th[4];
        reader_job jobs[4];
        for (int t = 0; r && t < 4; t++) {
            jobs[t] = (reader_job){r, t + 1, 0};
            pthread_create(&th[t], NULL, reader_thread, &jobs[t]);
        }
        for (int t = 0; r && t < 4; t++) {
            pthread_join(th[t], NULL);
            CHECK_MSG(jobs[t].bad == 0, "thread %d: %d bad reads", t, jobs[t].bad);
        }
        pvlm_imgshard_close(r);
    }
    /* determinism: the same records give a byte-identical file */
    CHECK_OK(build(p2, 50, &i2, &err), &err);
    CHECK(i2.bytes == i1.bytes && i2.checksum == i1.checksum);
    /* empty shard is valid */
    CHECK_OK(build(p3, 0, &i3, &err), &err);
    {
        pvlm_imgshard_reader *r = pvlm_imgshard_open(p3, 0, &err);
        CHECK(r && pvlm_imgshard_count(r) == 0);
        pvlm_imgshard_close(r);
    }
    /* an aborted writer leaves nothing; a missing file and a non-LMDB file are errors */
    {
        char p4[1200];
        snprintf(p4, sizeof p4, "%s/aborted.lmdb", dir);
        pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(p4, NULL, &err);
        CHECK(w != NULL);
        pvlm_imgshard_writer_abort(w);
        char t4[1300];
        snprintf(t4, sizeof t4, "%s.tmp", p4);
        CHECK(!pvlm_file_exists(p4) && !pvlm_file_exists(t4));
        CHECK(pvlm_imgshard_open(p4, 0, &err) == NULL && err.code == PVLM_ENOTFOUND);
        CHECK_OK(pvlm_write_file_atomic(p4, "garbage garbage garbage", 23, &err), &err);
        CHECK(pvlm_imgshard_open(p4, 0, &err) == NULL);
    }

    /* manifest */
    {
        pvlm_manifest m;
        CHECK_OK(pvlm_manifest_init(&m, "images", &err), &err);
        CHECK_OK(pvlm_manifest_add_shard(&m, "a.lmdb", i1.records, i1.bytes, i1.checksum, NULL, &err), &err);
        CHECK_OK(pvlm_manifest_add_shard(&m, "b.lmdb", i2.records, i2.bytes, i2.checksum,
                                         json_pack("{s:i}", "tokens", 7), &err),
                 &err);
        pvlm_manifest_set_settings(&m, json_pack("{s:i,s:s}", "image_size", 4, "resize_mode", "crop"));
        pvlm_manifest_add_failures(&m, "decode_error", 3);
        pvlm_manifest_add_failures(&m, "decode_error", 2);
        pvlm_manifest_add_failures(&m, "empty_caption", 1);
        pvlm_manifest_add_total(&m, "captions", 9);
        char mp[1200];
        snprintf(mp, sizeof mp, "%s/manifest.json", dir);
        CHECK_OK(pvlm_manifest_save(&m, mp, &err), &err);
        pvlm_manifest l;
        CHECK_OK(pvlm_manifest_load(mp, &l, &err), &err);
        CHECK(!strcmp(l.kind, "images") && l.nshards == 2 && pvlm_manifest_records(&l) == 100);
        CHECK(pvlm_manifest_failed(&l) == 6 && l.shards[1].checksum == i2.checksum);
        CHECK(json_integer_value(json_object_get(l.shards[1].extra, "tokens")) == 7);
        CHECK(json_integer_value(json_object_get(l.totals, "captions")) == 9);
        CHECK(!strcmp(json_string_value(json_object_get(l.settings, "resize_mode")), "crop"));
        CHECK_OK(pvlm_manifest_verify_shard(&l, 0, dir, 1, &err), &err);
        CHECK_OK(pvlm_manifest_verify_shard(&l, 1, dir, 1, &err), &err);
        /* a changed byte in a shard is caught by the checksum */
        FILE *f = fopen(p2, "r+b");
        CHECK(f != NULL);
        if (f) {
            fseeko(f, (off_t)i2.bytes / 2, SEEK_SET);
            int c = fgetc(f);
            fseeko(f, (off_t)i2.bytes / 2, SEEK_SET);
            fputc(c ^ 1, f);
            fclose(f);
        }
        CHECK(pvlm_manifest_verify_shard(&l, 1, dir, 1, &err) != 0 && err.code == PVLM_EFORMAT);
        pvlm_manifest_free(&l);
        /* inconsistent totals are rejected */
        json_t *j = pvlm_manifest_to_json(&m);
        json_object_set_new(json_object_get(j, "totals"), "records", json_integer(5));
        char bp[1200];
        snprintf(bp, sizeof bp, "%s/bad.json", dir);
        json_dump_file(j, bp, 0);
        json_decref(j);
        CHECK(pvlm_manifest_load(bp, &l, &err) != 0);
        pvlm_manifest_free(&l);
        pvlm_manifest_free(&m);
    }
    return pvlm_test_done("shard_images_format");
}
