/* test_download_retry.c - failures file + retry-failed round trip through the downloader.
 *
 * A CC3M-style TSV (caption<TAB>url, no header) is streamed from shard/urlsrc through the
 * downloader with no retries; every failure is written to a failures file. Then the
 * failures file is read back as a source: it must yield exactly the failed rows (original
 * index, url and caption; opt-outs excluded by default), and downloading them again
 * recovers the row that only failed transiently, with its original index and caption.
 */
#include "core/fsutil.h"
#include "harness.h"
#include "shard/download.h"
#include "shard/urlsrc.h"
#include "test_download_server.h"

#define NROWS 9

typedef struct outcome {
    int seen;
    pvlm_dl_reason reason;
    long status;
    char caption[128];
} outcome;

typedef struct ctx {
    outcome o[NROWS];
    pvlm_urlfail *uf;
} ctx;

static int on_done(void *p, pvlm_dl_result *r) {
    ctx *c = p;
    CHECK(r->index >= 0 && r->index < NROWS);
    if (r->index < 0 || r->index >= NROWS) return 1;
    outcome *o = &c->o[r->index];
    o->seen++;
    o->reason = r->reason;
    o->status = r->http_status;
    snprintf(o->caption, sizeof o->caption, "%s", r->caption ? r->caption : "");
    if (r->reason != PVLM_DL_OK) {
        pvlm_err err = {0};
        CHECK_MSG(pvlm_urlfail_write_result(c->uf, r, &err) == 0, "%s", err.msg);
    }
    return 0;
}

/* Stream src through a downloader, writing failures to fail_path. */
static int download(pvlm_urlsrc *src, const char *fail_path, ctx *c) {
    pvlm_err err = {0};
    pvlm_dl_config cfg;
    pvlm_dl_config_default(&cfg);
    cfg.retries = 0;       /* the flaky row must fail in the first build */
    cfg.block_private = 0; /* the test server is on 127.0.0.1 */
    cfg.max_total = 4;
    cfg.max_per_host = 2;
    cfg.max_queued = 2; /* exercise the bounded waiting room with a streaming source */
    cfg.connect_timeout_ms = 2000;
    cfg.timeout_ms = 5000;
    memset(c, 0, sizeof *c);
    c->uf = pvlm_urlfail_open(fail_path, 0, &err);
    CHECK_MSG(c->uf != NULL, "%s", err.msg);
    pvlm_dl *d = pvlm_dl_create(&cfg, &err);
    CHECK_MSG(d != NULL, "%s", err.msg);
    if (!d || !c->uf) return -1;
    int rc = pvlm_dl_run(d, pvlm_urlsrc_dl_next, src, on_done, c, &err);
    CHECK_MSG(rc == 0, "run: %s", err.msg);
    CHECK(pvlm_urlfail_close(c->uf, &err) == 0);
    pvlm_dl_free(d);
    return rc;
}

int main(void) {
    test_server ts;
    int started = test_server_start(&ts, 60) == 0;
    CHECK_MSG(started, "could not start the test HTTP server");
    if (!started) return pvlm_test_done("shard_download_retry_failed");

    /* rows: 0 ok, 1 404, 2 flaky (500 once), 3 html, 4 noai, 5 empty caption (skipped by the
     * reader), 6 one column (bad row), 7 png ok, 8 ftp (bad_scheme) */
    char list[1200], fail1[1200], fail2[1200];
    snprintf(list, sizeof list, "%s/cc3m.tsv", ts.dir);
    snprintf(fail1, sizeof fail1, "%s/failures1.jsonl", ts.dir);
    snprintf(fail2, sizeof fail2, "%s/failures2.jsonl", ts.dir);
    FILE *f = fopen(list, "w");
    CHECK(f != NULL);
    if (!f) return pvlm_test_done("shard_download_retry_failed");
    fprintf(f, "a good jpeg\t%s/img.jpg\n", ts.base);
    fprintf(f, "a missing file\t%s/status/404\n", ts.base);
    fprintf(f, "flaky \"quoted\" caption\t%s/flaky/rt%d/1\n", ts.base, (int)getpid());
    fprintf(f, "a web page\t%s/html\n", ts.base);
    fprintf(f, "opted out\t%s/robots?tag=noai\n", ts.base);
    fprintf(f, " \t%s/img.jpg\n", ts.base);
    fprintf(f, "just one column\n");
    fprintf(f, "a good png\t%s/img.png\n", ts.base);
    fprintf(f, "not http\tftp://127.0.0.1/x.jpg\n");
    fclose(f);

    /* build 1 */
    pvlm_err err = {0};
    pvlm_urlsrc *src = pvlm_urlsrc_open(list, NULL, &err);
    CHECK_MSG(src != NULL, "%s", err.msg);
    if (!src) return pvlm_test_done("shard_download_retry_failed");
    ctx c1;
    download(src, fail1, &c1);
    pvlm_urlsrc_counts cnt;
    pvlm_urlsrc_get_counts(src, &cnt);
    CHECK(cnt.rows == 9 && cnt.items == 7 && cnt.empty_caption == 1 && cnt.bad_rows == 1);
    pvlm_urlsrc_close(src);
    const pvlm_dl_reason want1[NROWS] = {
        PVLM_DL_OK, PVLM_DL_HTTP_4XX, PVLM_DL_HTTP_5XX,  PVLM_DL_NOT_IMAGE, PVLM_DL_ROBOTS_OPTOUT, 0,
        0,          PVLM_DL_OK,       PVLM_DL_BAD_SCHEME};
    const int expect_seen[NROWS] = {1, 1, 1, 1, 1, 0, 0, 1, 1};
    for (int i = 0; i < NROWS; i++) {
        CHECK_MSG(c1.o[i].seen == expect_seen[i], "row %d seen %d times", i, c1.o[i].seen);
        if (expect_seen[i])
            CHECK_MSG(c1.o[i].reason == want1[i], "row %d: %s, want %s", i, pvlm_dl_reason_name(c1.o[i].reason),
                      pvlm_dl_reason_name(want1[i]));
    }
    CHECK(c1.o[1].status == 404 && c1.o[2].status == 500);
    CHECK(!strcmp(c1.o[2].caption, "flaky \"quoted\" caption"));

    /* the failures file holds exactly rows 1, 2, 3, 4, 8 */
    src = pvlm_urlsrc_open_failures(fail1, "all", &err);
    CHECK_MSG(src != NULL, "%s", err.msg);
    int got[NROWS] = {0};
    pvlm_url_item it;
    while (src && pvlm_urlsrc_next(src, &it, &err) == 1) {
        CHECK(it.index >= 0 && it.index < NROWS);
        if (it.index >= 0 && it.index < NROWS) got[it.index]++;
        if (it.index == 2) {
            CHECK(strstr(it.url, "/flaky/") != NULL);
            CHECK(!strcmp(it.caption, "flaky \"quoted\" caption"));
        }
    }
    pvlm_urlsrc_close(src);
    for (int i = 0; i < NROWS; i++)
        CHECK_MSG(got[i] == (i == 1 || i == 2 || i == 3 || i == 4 || i == 8), "row %d in failures file %d times", i,
                  got[i]);

    /* build 2: re-run only the failed rows (default: not the opt-out, not the bad scheme) */
    src = pvlm_urlsrc_open_failures(fail1, NULL, &err);
    CHECK_MSG(src != NULL, "%s", err.msg);
    if (!src) return pvlm_test_done("shard_download_retry_failed");
    ctx c2;
    download(src, fail2, &c2);
    pvlm_urlsrc_get_counts(src, &cnt);
    CHECK(cnt.items == 3 && cnt.filtered == 2);
    pvlm_urlsrc_close(src);
    for (int i = 0; i < NROWS; i++) CHECK_MSG(c2.o[i].seen == (i == 1 || i == 2 || i == 3), "retry: row %d", i);
    CHECK(c2.o[2].reason == PVLM_DL_OK && !strcmp(c2.o[2].caption, "flaky \"quoted\" caption"));
    CHECK(c2.o[1].reason == PVLM_DL_HTTP_4XX && c2.o[3].reason == PVLM_DL_NOT_IMAGE);

    /* build 3 from build 2's failures: the two permanent failures remain */
    src = pvlm_urlsrc_open_failures(fail2, NULL, &err);
    int n3 = 0;
    while (src && pvlm_urlsrc_next(src, &it, &err) == 1) {
        CHECK(it.index == 1 || it.index == 3);
        n3++;
    }
    CHECK(n3 == 2);
    pvlm_urlsrc_close(src);

    test_server_stop(&ts);
    return pvlm_test_done("shard_download_retry_failed");
}
