/* test_shard_text.c - `pvlm shard text` and io/textshard: round trips from .json, .json.gz and
 * .json.zst inputs (every document read back byte-exactly, in order), skip counts for bad JSON
 * lines / invalid UTF-8 / missing or empty text / truncated compressed inputs, corrupt frames and
 * truncated shard files detected by the reader, and resume (a second run keeps complete shards).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "core/fsutil.h"
#include "core/utf8.h"
#include "harness.h"
#include "io/manifest.h"
#include "io/textshard.h"
#include "shard/shard_text.h"

#define NDOC 400

static char *docs[NDOC];

static void make_docs(void) {
    /* Varied lengths (some > frame size), quotes, escapes, non-ASCII, an embedded NUL via \u0000. */
    const char *words[] = {"the", "café", "naïve", "日本語", "quote\"d", "tab\there", "new\nline", "emoji 😀", "a"};
    unsigned x = 12345;
    for (int i = 0; i < NDOC; i++) {
        int nw = 1 + (int)((x = x * 1103515245u + 12345u) >> 16) % (i % 50 == 0 ? 3000 : 60);
        size_t cap = (size_t)nw * 16 + 32, n = 0;
        docs[i] = malloc(cap);
        n += (size_t)snprintf(docs[i], cap, "doc %d:", i);
        for (int w = 0; w < nw; w++) {
            const char *s = words[((x = x * 1103515245u + 12345u) >> 16) % 9];
            n += (size_t)snprintf(docs[i] + n, cap - n, " %s", s);
        }
    }
}

/* JSON line for doc i, C4 style. */
static char *line_of(int i) {
    json_t *j = json_pack("{s:s, s:s, s:s}", "text", docs[i], "timestamp", "2019-04-25T12:57:54Z", "url",
                          "https://example.com/x");
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* Input text: docs [lo, hi) plus the bad lines after every 97th doc. Returns malloc'd bytes. */
static char *make_input(int lo, int hi, size_t *n, int *nbad) {
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    *nbad = 0;
    for (int i = lo; i < hi; i++) {
        char *l = line_of(i);
        size_t ln = strlen(l);
        while (len + ln + 200 > cap) buf = realloc(buf, cap *= 2);
        memcpy(buf + len, l, ln), len += ln;
        buf[len++] = '\n';
        free(l);
        if (i % 97 == 5) {
            const char *bad[] = {"{\"text\": \"unterminated\n",
                                 "{\"text\": \"bad \xff\xfe utf8\"}\n",
                                 "{\"url\": \"no text field\"}\n",
                                 "{\"text\": \"\"}\n",
                                 "[1,2,3]\n",
                                 "\n"};
            for (int b = 0; b < 6; b++) {
                memcpy(buf + len, bad[b], strlen(bad[b])), len += strlen(bad[b]);
                *nbad += b < 5;
            }
        }
    }
    *n = len;
    return buf;
}

static void write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(d, 1, n, f);
    fclose(f);
}

static int run_shard(const char *out, char **inputs, int n, const char *frame) {
    char *argv[16];
    int argc = 0;
    argv[argc++] = "text";
    argv[argc++] = "--out";
    argv[argc++] = (char *)out;
    argv[argc++] = "--frame-bytes";
    argv[argc++] = (char *)frame;
    argv[argc++] = "--threads";
    argv[argc++] = "2";
    for (int i = 0; i < n; i++) argv[argc++] = inputs[i];
    argv[argc] = NULL;
    return pvlm_shard_text_main(argc, argv);
}

/* Read every document of a shard in order and compare with docs[lo..hi). */
static void check_shard(const char *path, int lo, int hi) {
    pvlm_err err = {0};
    pvlm_textshard *s = pvlm_textshard_open(path, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (!s) return;
    CHECK(pvlm_textshard_ndocs(s) == hi - lo);
    CHECK(pvlm_textshard_nframes(s) > 1);
    pvlm_textframe f = {0};
    f.frame = -1;
    int64_t d = 0;
    for (int64_t fr = 0; fr < pvlm_textshard_nframes(s); fr++) {
        CHECK_OK(pvlm_textshard_read_frame(s, fr, &f, &err), &err);
        for (uint32_t i = 0; i < f.n_docs; i++, d++) {
            size_t n;
            const char *t = pvlm_textframe_doc(&f, i, &n);
            CHECK_MSG(n == strlen(docs[lo + d]) && !memcmp(t, docs[lo + d], n), "doc %lld differs", (long long)d);
        }
    }
    CHECK(d == hi - lo);
    /* random access: frame_of */
    for (int64_t q = 0; q < hi - lo; q += 37) {
        int64_t fr = pvlm_textshard_frame_of(s, q);
        CHECK(fr >= 0);
        CHECK_OK(pvlm_textshard_read_frame(s, fr, &f, &err), &err);
        size_t n;
        const char *t = pvlm_textframe_doc(&f, (uint32_t)(q - f.first_doc), &n);
        CHECK(n == strlen(docs[lo + q]) && !memcmp(t, docs[lo + q], n));
    }
    CHECK(pvlm_textshard_frame_of(s, hi - lo) == -1);
    pvlm_textframe_free(&f);
    pvlm_textshard_close(s);
}

static void test_utf8(void) {
    CHECK(pvlm_utf8_valid("abc", 3));
    CHECK(pvlm_utf8_valid("caf\xc3\xa9", 5));
    CHECK(pvlm_utf8_valid("\xf0\x9f\x98\x80", 4));
    CHECK(!pvlm_utf8_valid("\xc3", 1));             /* truncated */
    CHECK(!pvlm_utf8_valid("\xc0\xaf", 2));         /* overlong */
    CHECK(!pvlm_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!pvlm_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!pvlm_utf8_valid("\xff", 1));
}

int main(void) {
    char dir[4096], out[4200], p[6][4300];
    pvlm_err err = {0};
    if (pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm_test_shard_text", NULL, 1)) return 1;
    {
        char indir[4200];
        snprintf(indir, sizeof indir, "%s/in", dir);
        CHECK_OK(pvlm_mkdir_p(indir, &err), &err);
    }
    snprintf(out, sizeof out, "%s/out", dir);
    make_docs();
    test_utf8();

    /* Three inputs of the three formats, C4 names. */
    int ranges[3][2] = {{0, 150}, {150, 280}, {280, NDOC}}, nbad[3];
    snprintf(p[0], sizeof p[0], "%s/in/c4-train.00000-of-00003.json", dir);
    snprintf(p[1], sizeof p[1], "%s/in/c4-train.00001-of-00003.json.gz", dir);
    snprintf(p[2], sizeof p[2], "%s/in/c4-train.00002-of-00003.json.zst", dir);
    size_t n0, n1, n2;
    char *in0 = make_input(ranges[0][0], ranges[0][1], &n0, &nbad[0]);
    char *in1 = make_input(ranges[1][0], ranges[1][1], &n1, &nbad[1]);
    char *in2 = make_input(ranges[2][0], ranges[2][1], &n2, &nbad[2]);
    write_file(p[0], in0, n0);
    gzFile gz = gzopen(p[1], "wb");
    gzwrite(gz, in1, (unsigned)n1);
    gzclose(gz);
    /* Two concatenated zstd frames (split at a line end), as multi-frame .zst files have. */
    size_t half = n2 / 2;
    while (in2[half - 1] != '\n') half++;
    size_t zc = ZSTD_compressBound(n2) * 2;
    char *z = malloc(zc);
    size_t z1 = ZSTD_compress(z, zc, in2, half, 3);
    size_t z2 = ZSTD_compress(z + z1, zc - z1, in2 + half, n2 - half, 3);
    zc = z1 + z2;
    write_file(p[2], z, zc);

    char *inputs[3] = {p[0], p[1], p[2]};
    {
        /* first build from a directory (--input DIR: its files sorted by name) */
        char indir[4200];
        snprintf(indir, sizeof indir, "%s/in", dir);
        char *argv[] = {"text", "--input", indir, "--out", out, "--frame-bytes", "4096", NULL};
        CHECK(pvlm_shard_text_main(7, argv) == 0);
    }
    char mp[4300];
    snprintf(mp, sizeof mp, "%s/manifest.json", out);
    pvlm_manifest m;
    CHECK_OK(pvlm_manifest_load(mp, &m, &err), &err);
    CHECK(!strcmp(m.kind, "text"));
    CHECK(m.nshards == 3);
    CHECK(pvlm_manifest_records(&m) == NDOC);
    for (int i = 0; i < m.nshards && i < 3; i++) {
        CHECK(m.shards[i].records == ranges[i][1] - ranges[i][0]);
        CHECK_OK(pvlm_manifest_verify_shard(&m, i, out, 1, &err), &err);
        char sp[4400];
        pvlm_manifest_shard_path(&m, i, out, sp, sizeof sp);
        check_shard(sp, ranges[i][0], ranges[i][1]);
    }
    int tb = nbad[0] + nbad[1] + nbad[2];
    CHECK(tb > 0);
    int64_t f_json = json_integer_value(json_object_get(m.failures, "bad_json"));
    int64_t f_utf8 = json_integer_value(json_object_get(m.failures, "bad_utf8"));
    int64_t f_notext = json_integer_value(json_object_get(m.failures, "no_text"));
    int64_t f_empty = json_integer_value(json_object_get(m.failures, "empty"));
    CHECK_MSG(f_json == 2 * tb / 5 && f_utf8 == tb / 5 && f_notext == tb / 5 && f_empty == tb / 5,
              "json %lld utf8 %lld notext %lld empty %lld of %d", (long long)f_json, (long long)f_utf8,
              (long long)f_notext, (long long)f_empty, tb);
    pvlm_manifest_free(&m);

    /* Resume: a second run skips complete shards (their files are not rewritten). */
    char s0[4400];
    snprintf(s0, sizeof s0, "%s/text-00000.pvt", out);
    struct stat st0, st1;
    stat(s0, &st0);
    char *mj0 = NULL, *mj1 = NULL;
    size_t ml0, ml1;
    pvlm_read_file(mp, &mj0, &ml0, &err);
    CHECK(run_shard(out, inputs, 3, "4096") == 0);
    stat(s0, &st1);
    CHECK(st0.st_ino == st1.st_ino && st0.st_mtime == st1.st_mtime);
    pvlm_read_file(mp, &mj1, &ml1, &err);
    CHECK(mj0 && mj1 && ml0 == ml1 && !memcmp(mj0, mj1, ml0));
    free(mj0), free(mj1);

    /* Truncated compressed inputs: documents before the damage are kept, the damage counted. */
    char out2[4300];
    snprintf(out2, sizeof out2, "%s/out2", dir);
    snprintf(p[3], sizeof p[3], "%s/trunc.json.zst", dir);
    write_file(p[3], z, z1 + z2 / 2); /* cut inside the second frame */
    snprintf(p[4], sizeof p[4], "%s/trunc.json.gz", dir);
    {
        char *gzbytes = NULL;
        size_t gn;
        pvlm_read_file(p[1], &gzbytes, &gn, &err);
        write_file(p[4], gzbytes, gn / 2);
        free(gzbytes);
    }
    char *inputs2[2] = {p[3], p[4]};
    CHECK(run_shard(out2, inputs2, 2, "4096") == 0);
    snprintf(mp, sizeof mp, "%s/manifest.json", out2);
    CHECK_OK(pvlm_manifest_load(mp, &m, &err), &err);
    CHECK(json_integer_value(json_object_get(m.failures, "truncated_input")) == 2);
    CHECK(m.nshards == 2 && m.shards[0].records > 0 && m.shards[0].records < ranges[2][1] - ranges[2][0]);
    if (m.nshards == 2) {
        char sp[4400];
        pvlm_manifest_shard_path(&m, 0, out2, sp, sizeof sp);
        check_shard(sp, ranges[2][0], ranges[2][0] + (int)m.shards[0].records);
        pvlm_manifest_shard_path(&m, 1, out2, sp, sizeof sp);
        check_shard(sp, ranges[1][0], ranges[1][0] + (int)m.shards[1].records);
    }
    pvlm_manifest_free(&m);

    /* Corrupt shard files: a flipped byte inside frame 1 fails that frame only; a truncated
     * file or a damaged header/index fails at open; neither crashes. */
    {
        char *data = NULL;
        size_t dn;
        CHECK_OK(pvlm_read_file(s0, &data, &dn, &err), &err);
        pvlm_textshard *s = pvlm_textshard_open(s0, &err);
        pvlm_textshard_frame_entry fe1 = *pvlm_textshard_frame(s, 1), *fe = &fe1;
        char bad[4400];
        snprintf(bad, sizeof bad, "%s/bad.pvt", dir);
        data[fe->offset + fe->comp_size / 2] ^= 0x5a;
        write_file(bad, data, dn);
        pvlm_textshard_close(s);
        s = pvlm_textshard_open(bad, &err);
        CHECK(s != NULL);
        pvlm_textframe f = {0};
        f.frame = -1;
        CHECK(pvlm_textshard_read_frame(s, 1, &f, &err) == -1 && err.code == PVLM_EFORMAT);
        CHECK(strstr(err.msg, "frame 1") != NULL);
        CHECK_OK(pvlm_textshard_read_frame(s, 0, &f, &err), &err);
        CHECK_OK(pvlm_textshard_read_frame(s, 2, &f, &err), &err);
        /* cut inside the last frame after the shard was opened (a file shortened under a running job):
         * that frame's read fails, naming the frame and the offset where the file ended */
        int64_t last = pvlm_textshard_nframes(s) - 1;
        CHECK(truncate(bad, (off_t)pvlm_textshard_frame(s, last)->offset + 1) == 0);
        CHECK(pvlm_textshard_read_frame(s, last, &f, &err) == -1 && err.code == PVLM_EFORMAT);
        char want[64];
        snprintf(want, sizeof want, "textshard frame %lld", (long long)last);
        CHECK_MSG(strstr(err.msg, want) && strstr(err.msg, "truncated"), "%s", err.msg);
        pvlm_textframe_free(&f);
        pvlm_textshard_close(s);
        data[fe->offset + fe->comp_size / 2] ^= 0x5a;
        write_file(bad, data, dn - 7); /* truncated */
        CHECK(pvlm_textshard_open(bad, &err) == NULL && err.code == PVLM_EFORMAT);
        write_file(bad, data, 40); /* shorter than a header */
        CHECK(pvlm_textshard_open(bad, &err) == NULL);
        data[20] ^= 1; /* header field */
        write_file(bad, data, dn);
        CHECK(pvlm_textshard_open(bad, &err) == NULL && strstr(err.msg, "header checksum"));
        data[20] ^= 1;
        data[dn - 3] ^= 1; /* index */
        write_file(bad, data, dn);
        CHECK(pvlm_textshard_open(bad, &err) == NULL && strstr(err.msg, "index checksum"));
        free(data);
    }
    /* Bad flags exit 2; missing input fails with 1. */
    {
        char *argv[] = {"text", "--bogus", NULL};
        CHECK(pvlm_shard_text_main(2, argv) == 2);
        char *argv2[] = {"text", "--out", out2, "/nonexistent/x.json", NULL};
        CHECK(pvlm_shard_text_main(4, argv2) == 1);
        char *argv3[] = {"text", "--out", out2, NULL};
        CHECK(pvlm_shard_text_main(3, argv3) == 2);
        char empty[4200];
        snprintf(empty, sizeof empty, "%s/empty", dir);
        pvlm_mkdir_p(empty, &err);
        char *argv4[] = {"text", "--out", out2, "--input", empty, NULL}; /* no input files */
        CHECK(pvlm_shard_text_main(5, argv4) == 1);
    }
    /* Paths that do not fit are refused naming the path, never truncated: the shard writer, a
     * manifest's shard under a long folder. */
    {
        char *longp = malloc(5001);
        memset(longp, 'd', 5000);
        longp[5000] = 0;
        CHECK(pvlm_textshard_writer_open(longp, 0, 3, &err) == NULL && err.code == PVLM_EINVAL &&
              strstr(err.msg, "path too long"));
        pvlm_manifest lm;
        CHECK_OK(pvlm_manifest_init(&lm, "text", &err), &err);
        CHECK_OK(pvlm_manifest_add_shard(&lm, "text-00000.pvt", 1, 1, 0, NULL, &err), &err);
        char sp[4096];
        CHECK(pvlm_manifest_shard_path(&lm, 0, longp, sp, sizeof sp) == -1 && sp[0] == '\0');
        CHECK(pvlm_manifest_verify_shard(&lm, 0, longp, 0, &err) == -1 && err.code == PVLM_EINVAL &&
              strstr(err.msg, "path too long") && strstr(err.msg, "shard 0"));
        pvlm_manifest_free(&lm);
        free(longp);
    }
    free(in0), free(in1), free(in2), free(z);
    for (int i = 0; i < NDOC; i++) free(docs[i]);
    return pvlm_test_done("shard_text");
}
