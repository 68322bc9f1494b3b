/* test_download_urlsrc.c - URL list reading (TSV/CSV/JSONL, header detection, column
 * selection, bad rows, gzip) and the failures file (escaping round trip, reason filter,
 * repeated indices). No network. */
#include <jansson.h>
#include <zlib.h>

#include "core/fsutil.h"
#include "harness.h"
#include "shard/urlsrc.h"

static char g_dir[1024];

static const char *write_file(const char *name, const char *data) {
    static char path[2][1200];
    static int k;
    char *p = path[k++ & 1];
    snprintf(p, 1200, "%s/%s", g_dir, name);
    CHECK(pvlm_write_file_atomic(p, data, strlen(data), NULL) == 0);
    return p;
}

typedef struct row {
    int64_t index;
    const char *url, *caption;
} row;

/* Read every item and compare with want[0..n). */
static void expect_rows(pvlm_urlsrc *s, const row *want, int n, const char *what) {
    pvlm_err err = {0};
    pvlm_url_item it;
    int i = 0, rc;
    while ((rc = pvlm_urlsrc_next(s, &it, &err)) == 1) {
        CHECK_MSG(i < n, "%s: extra item %lld '%s'", what, (long long)it.index, it.url);
        if (i < n) {
            CHECK_MSG(it.index == want[i].index, "%s: item %d index %lld, want %lld", what, i, (long long)it.index,
                      (long long)want[i].index);
            CHECK_MSG(!strcmp(it.url, want[i].url), "%s: item %d url '%s', want '%s'", what, i, it.url, want[i].url);
            CHECK_MSG(!strcmp(it.caption, want[i].caption), "%s: item %d caption '%s', want '%s'", what, i, it.caption,
                      want[i].caption);
        }
        i++;
    }
    CHECK_MSG(rc == 0, "%s: next failed: %s", what, err.msg);
    CHECK_MSG(i == n, "%s: %d items, want %d", what, i, n);
}

static pvlm_urlsrc *open_with(const char *path, const char *fmt, const char *ucol, const char *ccol, int header,
                              pvlm_err *err) {
    pvlm_urlsrc_opts o;
    pvlm_urlsrc_opts_default(&o);
    if (fmt) o.format = fmt;
    if (ucol) o.url_col = ucol;
    if (ccol) o.caption_col = ccol;
    o.header = header;
    return pvlm_urlsrc_open(path, &o, err);
}

static void test_tsv(void) {
    pvlm_err err = {0};
    /* CC3M: caption<TAB>url, no header; CRLF line ends and a blank line */
    const char *p = write_file("cc3m.tsv", "a dog on a beach\thttp://a.example/1.jpg\r\n"
                                           "two cats\thttps://b.example/2.png?x=1\r\n"
                                           "\r\n"
                                           "only one column\n"
                                           "   \thttp://c.example/empty-caption.jpg\n"
                                           "no url\t  \n"
                                           "last one\thttp://d.example/4.jpg");
    pvlm_urlsrc *s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (!s) return;
    const row want[] = {{0, "http://a.example/1.jpg", "a dog on a beach"},
                        {1, "https://b.example/2.png?x=1", "two cats"},
                        {5, "http://d.example/4.jpg", "last one"}};
    expect_rows(s, want, 3, "cc3m tsv");
    pvlm_urlsrc_counts c;
    pvlm_urlsrc_get_counts(s, &c);
    CHECK(c.rows == 6 && c.items == 3 && c.bad_rows == 1 && c.empty_caption == 1 && c.empty_url == 1);
    pvlm_urlsrc_close(s);

    /* keep_empty_caption (hidden test sets): the empty-caption row is yielded */
    pvlm_urlsrc_opts ko;
    pvlm_urlsrc_opts_default(&ko);
    ko.keep_empty_caption = 1;
    s = pvlm_urlsrc_open(p, &ko, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    const row wantk[] = {{0, "http://a.example/1.jpg", "a dog on a beach"},
                         {1, "https://b.example/2.png?x=1", "two cats"},
                         {3, "http://c.example/empty-caption.jpg", "   "},
                         {5, "http://d.example/4.jpg", "last one"}};
    if (s) expect_rows(s, wantk, 4, "keep empty caption");
    pvlm_urlsrc_close(s);

    /* header with extra columns, different order, names matched case-insensitively */
    p = write_file("hdr.tsv", "id\tURL\tCaption\n7\thttp://x/7.jpg\tseven\n8\thttp://x/8.jpg\teight\n");
    s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    const row want2[] = {{0, "http://x/7.jpg", "seven"}, {1, "http://x/8.jpg", "eight"}};
    if (s) expect_rows(s, want2, 2, "tsv header");
    pvlm_urlsrc_close(s);

    /* columns by index: with a header row (auto-detected: its url field is not a URL) */
    s = open_with(p, NULL, "1", "2", -1, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) expect_rows(s, want2, 2, "tsv index cols, header");
    pvlm_urlsrc_close(s);
    /* and by index on the headerless CC3M file */
    p = write_file("cc3m2.tsv", "cap A\thttp://a/1.jpg\ncap B\thttp://a/2.jpg\n");
    s = open_with(p, "tsv", "1", "0", -1, &err);
    const row want3[] = {{0, "http://a/1.jpg", "cap A"}, {1, "http://a/2.jpg", "cap B"}};
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) expect_rows(s, want3, 2, "tsv index cols, no header");
    pvlm_urlsrc_close(s);
    /* forced header=0 with names: falls back to content detection */
    s = open_with(p, "tsv", NULL, NULL, 0, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) expect_rows(s, want3, 2, "tsv header=0");
    pvlm_urlsrc_close(s);

    /* errors name the flag and the columns */
    p = write_file("hdr2.tsv", "link\ttext\nhttp://x/1.jpg\tone\n");
    s = open_with(p, NULL, "url", "caption", 1, &err);
    CHECK(s == NULL && strstr(err.msg, "--url-col") && strstr(err.msg, "link"));
    s = open_with(p, NULL, "link", "text", -1, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    const row want4[] = {{0, "http://x/1.jpg", "one"}};
    if (s) expect_rows(s, want4, 1, "tsv custom names");
    pvlm_urlsrc_close(s);
    p = write_file("three.tsv", "a\tb\tc\n1\t2\t3\n");
    s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK(s == NULL && strstr(err.msg, "--url-col"));
    s = open_with("/nonexistent/x.tsv", NULL, NULL, NULL, -1, &err);
    CHECK(s == NULL && strstr(err.msg, "/nonexistent/x.tsv"));
    s = open_with(p, "xml", NULL, NULL, -1, &err);
    CHECK(s == NULL && strstr(err.msg, "xml"));
}

static void test_csv(void) {
    pvlm_err err = {0};
    const char *p = write_file("q.csv", "caption,url\r\n"
                                        "\"Hello, \"\"world\"\"\",http://a/1.jpg\r\n"
                                        "\"two\r\nlines\",\"http://a/2.jpg\"\r\n"
                                        "plain,http://a/3.jpg\n"
                                        "\"\",http://a/empty.jpg\n"
                                        "bad\n"
                                        "say \"hi\",http://a/5.jpg\n");
    pvlm_urlsrc *s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    const row want[] = {{0, "http://a/1.jpg", "Hello, \"world\""},
                        {1, "http://a/2.jpg", "two\r\nlines"},
                        {2, "http://a/3.jpg", "plain"},
                        {5, "http://a/5.jpg", "say \"hi\""}};
    if (s) {
        expect_rows(s, want, 4, "csv");
        pvlm_urlsrc_counts c;
        pvlm_urlsrc_get_counts(s, &c);
        CHECK(c.rows == 6 && c.bad_rows == 1 && c.empty_caption == 1);
    }
    pvlm_urlsrc_close(s);

    /* a broken quote swallows at most 1 MiB, is counted, and reading resumes */
    size_t big = (1u << 20) + 100;
    char *data = malloc(big + 200);
    strcpy(data, "url,caption\nhttp://a/0.jpg,zero\nhttp://a/1.jpg,\"");
    size_t k = strlen(data);
    memset(data + k, 'x', big);
    strcpy(data + k + big, "\nhttp://a/2.jpg,two\n");
    p = write_file("long.csv", data);
    free(data);
    s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) {
        const row want2[] = {{0, "http://a/0.jpg", "zero"}};
        expect_rows(s, want2, 1, "csv unclosed quote");
        pvlm_urlsrc_counts c;
        pvlm_urlsrc_get_counts(s, &c);
        CHECK(c.bad_rows == 1);
    }
    pvlm_urlsrc_close(s);

    /* an overlong unquoted TSV line is skipped and the next line is read */
    data = malloc(big + 200);
    strcpy(data, "url\tcaption\n");
    k = strlen(data);
    memset(data + k, 'y', big);
    strcpy(data + k + big, "\nhttp://b/1.jpg\tone\n");
    p = write_file("long.tsv", data);
    free(data);
    s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) {
        const row want3[] = {{1, "http://b/1.jpg", "one"}};
        expect_rows(s, want3, 1, "tsv long line");
    }
    pvlm_urlsrc_close(s);
}

static void test_jsonl(void) {
    pvlm_err err = {0};
    const char *p = write_file("l.jsonl", "{\"URL\": \"http://j/0.jpg\", \"TEXT\": \"zero \\u00e9\"}\n"
                                          "\n"
                                          "{\"URL\": \"http://j/1.jpg\", \"TEXT\": 5}\n"
                                          "not json\n"
                                          "[1, 2]\n"
                                          "{\"URL\": \"  http://j/5.jpg  \", \"TEXT\": \"five\", \"x\": {\"y\": 1}}\n"
                                          "{\"TEXT\": \"no url\"}\n"
                                          "{\"URL\": \"http://j/7.jpg\", \"TEXT\": null}\n");
    pvlm_urlsrc *s = open_with(p, NULL, "URL", "TEXT", -1, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    const row want[] = {{0, "http://j/0.jpg", "zero \xc3\xa9"}, {4, "http://j/5.jpg", "five"}};
    if (s) {
        expect_rows(s, want, 2, "jsonl");
        pvlm_urlsrc_counts c;
        pvlm_urlsrc_get_counts(s, &c);
        CHECK_MSG(c.rows == 7 && c.bad_rows == 4 && c.empty_caption == 1, "rows %lld bad %lld empty %lld",
                  (long long)c.rows, (long long)c.bad_rows, (long long)c.empty_caption);
    }
    pvlm_urlsrc_close(s);
    s = open_with(p, NULL, "0", "1", -1, &err);
    CHECK(s == NULL && strstr(err.msg, "key names"));

    /* format sniffing when the extension says nothing */
    p = write_file("list.txt", "{\"url\": \"http://s/0.jpg\", \"caption\": \"c\"}\n");
    s = pvlm_urlsrc_open(p, NULL, &err);
    const row w1[] = {{0, "http://s/0.jpg", "c"}};
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) expect_rows(s, w1, 1, "sniff jsonl");
    pvlm_urlsrc_close(s);
    p = write_file("list2.txt", "\xEF\xBB\xBFurl\tcaption\nhttp://s/0.jpg\tc\n"); /* with a BOM */
    s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) expect_rows(s, w1, 1, "sniff tsv");
    pvlm_urlsrc_close(s);
    p = write_file("list3.txt", "url,caption\nhttp://s/0.jpg,c\n");
    s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) expect_rows(s, w1, 1, "sniff csv");
    pvlm_urlsrc_close(s);
    p = write_file("empty.tsv", "");
    s = pvlm_urlsrc_open(p, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (s) expect_rows(s, w1, 0, "empty file");
    pvlm_urlsrc_close(s);
}

static void test_gzip(void) {
    char path[1200];
    snprintf(path, sizeof path, "%s/cc.tsv.gz", g_dir);
    gzFile g = gzopen(path, "wb");
    CHECK(g != NULL);
    if (!g) return;
    for (int i = 0; i < 5000; i++) gzprintf(g, "caption %d\thttp://g.example/%d.jpg\n", i, i);
    gzclose(g);
    pvlm_err err = {0};
    pvlm_urlsrc *s = pvlm_urlsrc_open(path, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    if (!s) return;
    pvlm_url_item it;
    int n = 0, ok = 1, rc;
    while ((rc = pvlm_urlsrc_next(s, &it, &err)) == 1) {
        char u[64], c[64];
        snprintf(u, sizeof u, "http://g.example/%d.jpg", n);
        snprintf(c, sizeof c, "caption %d", n);
        if (it.index != n || strcmp(it.url, u) || strcmp(it.caption, c)) ok = 0;
        n++;
    }
    CHECK(rc == 0 && n == 5000 && ok);
    pvlm_urlsrc_close(s);
}

static void test_failures_file(void) {
    pvlm_err err = {0};
    char path[1200];
    snprintf(path, sizeof path, "%s/failures.jsonl", g_dir);
    pvlm_urlfail *w = pvlm_urlfail_open(path, 0, &err);
    CHECK_MSG(w != NULL, "%s", err.msg);
    if (!w) return;
    const char *odd = "quote \" backslash \\ newline \n tab \t ctrl \x01 utf8 \xc3\xa9 bad \xff end";
    CHECK(pvlm_urlfail_write(w, 3, "http://f/3.jpg", odd, "http_4xx", 404, 1, "HTTP 404", &err) == 0);
    CHECK(pvlm_urlfail_write(w, 9, "http://f/9.jpg", "nine", "robots_optout", 200, 1, NULL, &err) == 0);
    CHECK(pvlm_urlfail_write(w, 12, "http://f/12.jpg", "twelve", "timeout", 0, 3, "Operation timed out", &err) == 0);
    pvlm_dl_result r = {.index = 14,
                        .url = "http://f/14.jpg",
                        .caption = "fourteen",
                        .reason = PVLM_DL_HTTP_5XX,
                        .http_status = 503,
                        .detail = "HTTP 503",
                        .attempts = 3};
    CHECK(pvlm_urlfail_write_result(w, &r, &err) == 0);
    CHECK(pvlm_urlfail_count(w) == 4);
    CHECK(pvlm_urlfail_close(w, &err) == 0);
    /* append mode: a repeated row (e.g. a shard rebuilt after a crash) */
    w = pvlm_urlfail_open(path, 1, &err);
    CHECK(w && pvlm_urlfail_write(w, 12, "http://f/12.jpg", "twelve", "timeout", 0, 3, "again", &err) == 0);
    CHECK(pvlm_urlfail_write(w, 20, "http://f/20.jpg", "twenty", "decode_error", 200, 1, "bad JPEG", &err) == 0);
    CHECK(pvlm_urlfail_close(w, &err) == 0);

    /* every line is valid JSON with the documented fields */
    char *data = NULL;
    size_t n = 0;
    CHECK(pvlm_read_file(path, &data, &n, NULL) == 0);
    int lines = 0;
    for (char *l = data, *e; l && *l; l = e + 1) {
        e = strchr(l, '\n');
        if (!e) break;
        json_error_t je;
        json_t *j = json_loadb(l, (size_t)(e - l), 0, &je);
        CHECK_MSG(j && json_is_integer(json_object_get(j, "index")) && json_is_string(json_object_get(j, "url")) &&
                      json_is_string(json_object_get(j, "caption")) && json_is_string(json_object_get(j, "reason")) &&
                      json_is_integer(json_object_get(j, "http_status")) &&
                      json_is_integer(json_object_get(j, "attempts")) && json_is_string(json_object_get(j, "detail")),
                  "line %d: %.*s", lines, (int)(e - l), l);
        json_decref(j);
        lines++;
    }
    CHECK(lines == 6);
    free(data);

    /* default filter: everything a retry can change, each index once */
    pvlm_urlsrc *s = pvlm_urlsrc_open_failures(path, NULL, &err);
    CHECK_MSG(s != NULL, "%s", err.msg);
    const char *odd_back = "quote \" backslash \\ newline \n tab \t ctrl \x01 utf8 \xc3\xa9 bad \xef\xbf\xbd end";
    const row want[] = {{3, "http://f/3.jpg", odd_back},
                        {12, "http://f/12.jpg", "twelve"},
                        {14, "http://f/14.jpg", "fourteen"},
                        {20, "http://f/20.jpg", "twenty"}};
    if (s) {
        expect_rows(s, want, 4, "failures default");
        pvlm_urlsrc_counts c;
        pvlm_urlsrc_get_counts(s, &c);
        CHECK(c.filtered == 2); /* the opt-out and the repeated 12 */
    }
    pvlm_urlsrc_close(s);
    s = pvlm_urlsrc_open_failures(path, "all", &err);
    const row want_all[] = {want[0], {9, "http://f/9.jpg", "nine"}, want[1], want[2], want[3]};
    if (s) expect_rows(s, want_all, 5, "failures all");
    pvlm_urlsrc_close(s);
    s = pvlm_urlsrc_open_failures(path, "timeout,http_5xx", &err);
    if (s) expect_rows(s, want + 1, 2, "failures list");
    pvlm_urlsrc_close(s);
    /* a damaged line is counted, not fatal */
    const char *p =
        write_file("fail2.jsonl", "{\"index\": 1, \"url\": \"http://f/1.jpg\", \"caption\": \"one\", "
                                  "\"reason\": \"timeout\"}\n{\"index\": 2, \"url\": \"http://f/2\n"
                                  "{\"url\": \"http://f/3.jpg\", \"caption\": \"x\", \"reason\": \"timeout\"}\n");
    s = pvlm_urlsrc_open_failures(p, NULL, &err);
    const row w2[] = {{1, "http://f/1.jpg", "one"}};
    if (s) {
        expect_rows(s, w2, 1, "failures damaged");
        pvlm_urlsrc_counts c;
        pvlm_urlsrc_get_counts(s, &c);
        CHECK(c.bad_rows == 2);
    }
    pvlm_urlsrc_close(s);
}

int main(void) {
    if (pvlm_test_scratch(g_dir, sizeof g_dir, "/tmp/pvlm-test-urlsrc", NULL, 0)) return 1;
    test_tsv();
    test_csv();
    test_jsonl();
    test_gzip();
    test_failures_file();
    return pvlm_test_done("shard_download_urlsrc");
}
