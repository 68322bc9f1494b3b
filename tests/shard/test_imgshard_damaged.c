/* test_imgshard_damaged.c - io/imgshard on truncated and damaged files: every cut
 * and every flipped byte gives an error naming the file (or, for bytes LMDB never
 * reads, the exact records), never a SIGBUS/SIGSEGV or a wrong record. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "harness.h"
#include "io/imgshard.h"

#define NREC 120
#define IMG 300 /* 10x10 RGB: ~45 KiB of records, so 8-32 KiB cuts land inside the data */

static void make_rec(int i, pvlm_imgrec *r, char *id, const char **caps, uint8_t *img) {
    memset(r, 0, sizeof(*r));
    sprintf(id, "img-%d", i);
    r->id = id;
    r->ncaptions = 1;
    r->captions = caps;
    r->orig_w = r->orig_h = r->stored_w = r->stored_h = 10;
    r->encoding = PVLM_IMG_ENC_RAW;
    for (int k = 0; k < IMG; k++) img[k] = (uint8_t)(i * 13 + k);
    r->image = img;
    r->image_len = IMG;
}

static int build(const char *path, pvlm_imgshard_info *info, pvlm_err *err) {
    pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(path, NULL, err);
    if (!w) return -1;
    for (int i = 0; i < NREC; i++) {
        pvlm_imgrec r;
        char id[32];
        uint8_t img[IMG];
        const char *caps[1] = {"a red square"};
        make_rec(i, &r, id, caps, img);
        if (pvlm_imgshard_writer_add(w, &r, err) != 0) {
            pvlm_imgshard_writer_abort(w);
            return -1;
        }
    }
    return pvlm_imgshard_writer_finish(w, info, err);
}

/* A plain write (no fsync: thousands of damaged copies, nothing to make durable). */
static int put(const char *path, const void *data, size_t n, pvlm_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return pvlm_err_errno(err, "%s", path);
    int bad = n && fwrite(data, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? pvlm_err_errno(err, "%s: write failed", path) : 0;
}

/* Open `path` (sized when bytes != 0) and read every record. Returns the number of
 * records that came back wrong (a successful get must give the exact record); an
 * error anywhere must name the file. */
static int read_all(const char *path, uint64_t bytes, int *opened, int *errors) {
    pvlm_err err = {0};
    pvlm_imgshard_reader *r = pvlm_imgshard_open_sized(path, PVLM_IMGSHARD_NOLOCK, bytes, &err);
    *opened = r != NULL;
    *errors = 0;
    if (!r) {
        CHECK_MSG(strstr(err.msg, path) != NULL && err.code != PVLM_OK, "error does not name the file: %s", err.msg);
        *errors = 1;
        return 0;
    }
    int wrong = 0;
    pvlm_imgrec d = {0};
    for (int64_t i = 0; i < pvlm_imgshard_count(r); i++) {
        if (pvlm_imgshard_get(r, i, &d, &err) != 0) {
            CHECK_MSG(strstr(err.msg, path) != NULL, "error does not name the file: %s", err.msg);
            (*errors)++;
            continue;
        }
        char id[32];
        sprintf(id, "img-%d", (int)i);
        if (strcmp(d.id, id) || d.ncaptions != 1 || strcmp(d.captions[0], "a red square") || d.image_len != IMG ||
            d.image[7] != (uint8_t)(i * 13 + 7))
            wrong++;
    }
    pvlm_imgrec_free(&d);
    pvlm_imgshard_close(r);
    return wrong;
}

int main(void) {
    char dir[1024], good[1200], bad[1200];
    if (pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm-test-imgshard-damaged", NULL, 1)) return 1;
    snprintf(good, sizeof good, "%s/good.lmdb", dir);
    snprintf(bad, sizeof bad, "%s/bad.lmdb", dir);
    pvlm_err err = {0};
    pvlm_imgshard_info info;
    CHECK_OK(build(good, &info, &err), &err);
    char *data;
    size_t n;
    CHECK_OK(pvlm_read_file(good, &data, &n, &err), &err);
    if (pvlm_test_failures) return pvlm_test_done("imgshard_damaged");
    CHECK(n == info.bytes && n > 40 * 1024);
    int opened, errors;
    CHECK(read_all(good, info.bytes, &opened, &errors) == 0 && opened && errors == 0);

    /* truncated: every 1 KiB cut from 0 to the full size (8-32 KiB is where the pages LMDB's
     * meta claims lie past the end), with and without the manifest's size */
    for (size_t cut = 0; cut < n; cut += (cut < 36 * 1024 ? 512 : 4096)) {
        CHECK_OK(put(bad, data, cut, &err), &err);
        CHECK_MSG(read_all(bad, 0, &opened, &errors) == 0, "cut at %zu", cut);
        CHECK_MSG(!opened, "a shard cut to %zu of %zu bytes opened", cut, n);
        CHECK_MSG(read_all(bad, info.bytes, &opened, &errors) == 0 && !opened, "cut at %zu", cut);
        if (cut == 16 * 1024) {
            pvlm_imgshard_reader *r = pvlm_imgshard_open_sized(bad, 0, info.bytes, &err);
            CHECK(!r && err.code == PVLM_EFORMAT && strstr(err.msg, "the manifest says"));
            r = pvlm_imgshard_open(bad, 0, &err);
            CHECK_MSG(!r && err.code == PVLM_EFORMAT && strstr(err.msg, "truncated"), "%s", err.msg);
        }
    }
    /* a longer file than the manifest says is refused too */
    {
        char *longer = calloc(1, n + 4096);
        memcpy(longer, data, n);
        CHECK_OK(put(bad, longer, n + 4096, &err), &err);
        CHECK(read_all(bad, info.bytes, &opened, &errors) == 0 && !opened);
        free(longer);
    }
    /* damaged: flip bytes all over the file; a record that comes back must be exact */
    int flips = 0, refused = 0;
    for (size_t k = 0; k < n; k += 37) {
        for (int x = 0; x < 2; x++) {
            uint8_t mask = x ? 0x80 : (uint8_t)(1u << (k % 7));
            data[k] ^= (char)mask;
            CHECK_OK(put(bad, data, n, &err), &err);
            data[k] ^= (char)mask;
            int wrong = read_all(bad, info.bytes, &opened, &errors);
            CHECK_MSG(wrong == 0, "flip %#x at %zu: %d records wrong", mask, k, wrong);
            flips++;
            refused += errors > 0;
        }
    }
    printf("%d flipped files, %d gave errors naming the file, the rest read back exactly\n", flips, refused);
    CHECK(refused > 0);
    /* a directory is not a shard */
    {
        pvlm_imgshard_reader *r = pvlm_imgshard_open(dir, 0, &err);
        CHECK(!r && strstr(err.msg, "not a regular file"));
    }
    free(data);
    return pvlm_test_done("imgshard_damaged");
}
