/* test_download.c - the downloader against tests/shard/http_test_server.py.
 *
 * Every endpoint of the server must end with the expected failure reason (or success with
 * the exact bytes), within a bounded wall time: stalled and trickling transfers are cut by
 * the low-speed and whole-transfer timeouts, retries happen only for transient failures,
 * per-host and global concurrency limits hold, and stopping returns promptly.
 */
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/fsutil.h"
#include "core/timer.h"
#include "harness.h"
#include "shard/download.h"
#include "test_download_server.h"

typedef struct expect {
    const char *path; /* appended to the server base when it starts with '/' */
    pvlm_dl_reason reason;
    long status;      /* expected HTTP status, -1: any */
    int attempts;     /* expected attempts, 0: any */
    const char *file; /* expected body = this file in the server dir */
    long body_len;    /* expected body length, -1: any */
    int alt;          /* alternative acceptable reason (+1), 0: none */
} expect;

typedef struct run_ctx {
    const expect *ex;
    int n;
    int *seen;
    const char *dir;
    int stop_after; /* return nonzero after this many callbacks (0: never) */
    int calls;
} run_ctx;

static int on_done(void *ctx, pvlm_dl_result *r) {
    run_ctx *c = ctx;
    c->calls++;
    CHECK_MSG(r->index >= 0 && r->index < c->n, "index %lld", (long long)r->index);
    if (r->index < 0 || r->index >= c->n) return 1;
    const expect *e = &c->ex[r->index];
    c->seen[r->index]++;
    CHECK_MSG(c->seen[r->index] == 1, "%s reported %d times", e->path, c->seen[r->index]);
    int reason_ok = r->reason == e->reason || (e->alt && (int)r->reason == e->alt - 1);
    CHECK_MSG(reason_ok, "%s: reason %s (status %ld, %s), expected %s", e->path, pvlm_dl_reason_name(r->reason),
              r->http_status, r->detail, pvlm_dl_reason_name(e->reason));
    if (e->status >= 0)
        CHECK_MSG(r->http_status == e->status, "%s: status %ld, expected %ld", e->path, r->http_status, e->status);
    if (e->attempts)
        CHECK_MSG(r->attempts == e->attempts, "%s: %d attempts, expected %d", e->path, r->attempts, e->attempts);
    if (r->reason == PVLM_DL_OK) {
        CHECK_MSG(r->body && r->body_len > 0, "%s: no body", e->path);
        CHECK(r->detail && r->detail[0] == '\0');
    } else {
        CHECK_MSG(r->body == NULL && r->body_len == 0, "%s: failure with a body", e->path);
        CHECK_MSG(r->detail && r->detail[0], "%s: failure without detail", e->path);
    }
    if (!strncmp(e->path, "/flaky/backoff", 14)) /* two backoffs: >= 50 ms + 100 ms (equal jitter of 100, 200) */
        CHECK_MSG(r->seconds >= 0.15 && r->seconds < 5.0, "%s: %.3f s", e->path, r->seconds);
    if (e->body_len >= 0) CHECK_MSG((long)r->body_len == e->body_len, "%s: %zu bytes", e->path, r->body_len);
    if (e->file && r->reason == PVLM_DL_OK) {
        char path[2048], *data = NULL;
        size_t n = 0;
        snprintf(path, sizeof path, "%s/%s", c->dir, e->file);
        CHECK(pvlm_read_file(path, &data, &n, NULL) == 0);
        CHECK_MSG(data && n == r->body_len && !memcmp(data, r->body, n), "%s: body differs from %s", e->path, path);
        free(data);
    }
    if (r->index == 0 && r->reason == PVLM_DL_OK) { /* ownership transfer: caller frees */
        size_t n = 0;
        unsigned char *b = pvlm_dl_take_body(r, &n);
        CHECK(b != NULL && n > 0 && r->body == NULL);
        free(b);
    }
    return c->stop_after && c->calls >= c->stop_after;
}

/* Build items for the expectations and run them; returns the run's rc, *secs its wall time. */
static int run_cases(const test_server *ts, const pvlm_dl_config *cfg, const expect *ex, int n, double *secs,
                     int stop_after, int *calls) {
    pvlm_err err = {0};
    pvlm_dl *d = pvlm_dl_create(cfg, &err);
    CHECK_MSG(d != NULL, "create: %s", err.msg);
    if (!d) return -1;
    pvlm_dl_item *items = calloc((size_t)n, sizeof *items);
    char(*urls)[512] = calloc((size_t)n, sizeof *urls);
    int *seen = calloc((size_t)n, sizeof *seen);
    for (int i = 0; i < n; i++) {
        const char *p = ex[i].path;
        if (p[0] != '/')
            snprintf(urls[i], sizeof urls[i], "%s", p);
        else
            snprintf(urls[i], sizeof urls[i], "%s%s", ts->base, p);
        items[i].index = i;
        items[i].url = urls[i];
        items[i].caption = "a caption";
    }
    run_ctx c = {ex, n, seen, ts->dir, stop_after, 0};
    double t0 = pvlm_now();
    int rc = pvlm_dl_run_items(d, items, (size_t)n, on_done, &c, &err);
    *secs = pvlm_now() - t0;
    CHECK_MSG(rc >= 0, "run: %s", err.msg);
    if (rc == 0)
        for (int i = 0; i < n; i++) CHECK_MSG(seen[i] == 1, "%s reported %d times", ex[i].path, seen[i]);
    if (calls) *calls = c.calls;
    pvlm_dl_stats st;
    pvlm_dl_get_stats(d, &st);
    CHECK(st.items == c.calls);
    pvlm_dl_free(d);
    free(items);
    free(urls);
    free(seen);
    return rc;
}

/* A port with nothing listening: bind, read the port, close. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) return 1;
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A listener whose accept queue is full (backlog 0, never accepting, filled by our own
 * pending connects): the kernel drops further SYNs, so a connect never completes. Returns
 * the port; *fds receives the sockets to close afterwards. */
static int full_listener(int fds[4]) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 0) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        return -1;
    fds[0] = l;
    for (int i = 1; i < 4; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fds[i] >= 0) (void)!connect(fds[i], (struct sockaddr *)&a, sizeof a);
    }
    struct timespec t = {0, 200 * 1000 * 1000};
    nanosleep(&t, NULL);
    return ntohs(a.sin_port);
}

static long server_stat_max(const test_server *ts, const char *key) {
    char url[256];
    snprintf(url, sizeof url, "%s/stats/%s", ts->base, key);
    CURL *e = curl_easy_init();
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(e);
    fclose(mem);
    curl_easy_cleanup(e);
    long mx = -1;
    const char *p = buf ? strstr(buf, "\"max\":") : NULL;
    if (rc == CURLE_OK && p) mx = strtol(p + 6, NULL, 10);
    free(buf);
    return mx;
}

static void test_config(void) {
    pvlm_dl_config c;
    pvlm_dl_config_default(&c);
    CHECK(c.max_total == 64 && c.max_per_host == 4 && c.max_redirects == 5 && c.retries == 2);
    CHECK(c.block_private == 1); /* private and loopback addresses are refused unless allowed */
    CHECK(pvlm_dl_reason_retryable(PVLM_DL_PROTOCOL_ERROR, 0) && !pvlm_dl_reason_retryable(PVLM_DL_BAD_SCHEME, 0));
    CHECK(!strncmp(c.user_agent, "pvlm/", 5));
    pvlm_err err = {0};
    c.max_per_host = 0;
    CHECK(pvlm_dl_create(&c, &err) == NULL && err.code == PVLM_EINVAL);
    for (int r = 0; r < PVLM_DL_NREASONS; r++) CHECK(pvlm_dl_reason_parse(pvlm_dl_reason_name(r)) == r);
    CHECK(pvlm_dl_reason_parse("nope") == -1);
    CHECK(pvlm_dl_reason_retryable(PVLM_DL_HTTP_5XX, 500));
    CHECK(pvlm_dl_reason_retryable(PVLM_DL_HTTP_4XX, 429));
    CHECK(!pvlm_dl_reason_retryable(PVLM_DL_HTTP_4XX, 404));
    CHECK(!pvlm_dl_reason_retryable(PVLM_DL_ROBOTS_OPTOUT, 200));
    CHECK(pvlm_dl_reason_retryable(PVLM_DL_TIMEOUT, 0));
}

static pvlm_dl_config fast_config(void) {
    pvlm_dl_config c;
    pvlm_dl_config_default(&c);
    c.max_total = 32;
    c.max_per_host = 32; /* everything is 127.0.0.1 here */
    c.block_private = 0; /* ... which the default refuses (test_block_private) */
    c.connect_timeout_ms = 2000;
    c.timeout_ms = 3000;
    c.low_speed_bytes = 1000;
    c.low_speed_time_s = 1;
    c.max_bytes = 1 << 20;
    c.max_redirects = 3;
    c.retries = 2;
    c.backoff_ms = 100;
    c.backoff_max_ms = 1500;
    c.seed = 7;
    return c;
}

static void test_reasons(const test_server *ts) {
    char refused[128];
    snprintf(refused, sizeof refused, "http://127.0.0.1:%d/img.jpg", closed_port());
    const expect ex[] = {
        {"/img.jpg", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/img.png", PVLM_DL_OK, 200, 1, "img.png", -1, 0},
        {"/octet.jpg", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/noctype.jpg", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/ua", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/html", PVLM_DL_NOT_IMAGE, 200, 1, NULL, -1, 0},
        {"/json", PVLM_DL_NOT_IMAGE, 200, 1, NULL, -1, 0},
        {"/status/404", PVLM_DL_HTTP_4XX, 404, 1, NULL, -1, 0},
        {"/status/403", PVLM_DL_HTTP_4XX, 403, 1, NULL, -1, 0},
        {"/status/410", PVLM_DL_HTTP_4XX, 410, 1, NULL, -1, 0},
        {"/status/500", PVLM_DL_HTTP_5XX, 500, 3, NULL, -1, 0},
        {"/bigerror/502", PVLM_DL_HTTP_5XX, 502, 3, NULL, -1, 0},
        {"/flaky/k1/1", PVLM_DL_OK, 200, 2, "img.jpg", -1, 0},
        {"/flaky/k2/9", PVLM_DL_HTTP_5XX, 500, 3, NULL, -1, 0},
        {"/flaky/backoff/2", PVLM_DL_OK, 200, 3, "img.jpg", -1, 0},
        {"/ratelimit/k3", PVLM_DL_OK, 200, 2, "img.jpg", -1, 0},
        {"/big-chunked/2000000", PVLM_DL_TOO_BIG, 200, 1, NULL, -1, 0},
        {"/big-cl/2000000", PVLM_DL_TOO_BIG, 200, 1, NULL, -1, 0},
        {"/big-chunked/500000", PVLM_DL_OK, 200, 1, NULL, 500000, 0},
        {"/big-cl/1048576", PVLM_DL_OK, 200, 1, NULL, 1048576, 0}, /* exactly the cap */
        {"/big-chunked/1048577", PVLM_DL_TOO_BIG, 200, 1, NULL, -1, 0},
        {"/redirect/2", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/redirect/3", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/redirect/4", PVLM_DL_TOO_MANY_REDIRECTS, -1, 1, NULL, -1, 0},
        {"/redirect-to?u=ftp://127.0.0.1/x.jpg", PVLM_DL_BAD_SCHEME, -1, 1, NULL, -1, 0},
        {"/redirect-to?u=file:///etc/passwd", PVLM_DL_BAD_SCHEME, -1, 1, NULL, -1, 0},
        {"ftp://127.0.0.1/x.jpg", PVLM_DL_BAD_SCHEME, 0, 0, NULL, -1, 0},
        {"file:///etc/passwd", PVLM_DL_BAD_SCHEME, 0, 0, NULL, -1, 0},
        /* a reply that is not HTTP is a retryable protocol error, not a bad scheme */
        {"/badstatus/1", PVLM_DL_PROTOCOL_ERROR, -1, 3, NULL, -1, 0},
        {"/badstatus/2", PVLM_DL_PROTOCOL_ERROR, -1, 3, NULL, -1, 0},
        {"/badstatus/3", PVLM_DL_PROTOCOL_ERROR, -1, 3, NULL, -1, 0},
        {"not a url", PVLM_DL_BAD_URL, 0, 0, NULL, -1, 0},
        {"http://", PVLM_DL_BAD_URL, 0, 0, NULL, -1, 0},
        {"/robots?tag=noai", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=noimageai", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=noindex", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=noimageindex", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=none", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=nofollow,%20NoAI", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=pvlm:%20noai", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=PVLM:%20noimageai", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=otherbot:%20noai", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/robots?tag=otherbot:%20noai&tag=noindex", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=otherbot:%20noindex,%20pvlm:%20noai", PVLM_DL_ROBOTS_OPTOUT, 200, 1, NULL, -1, 0},
        {"/robots?tag=noarchive,%20max-image-preview:%20large", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {"/redirect-noai", PVLM_DL_ROBOTS_OPTOUT, 302, 1, NULL, -1, 0},
        {"/404-noindex", PVLM_DL_HTTP_4XX, 404, 1, NULL, -1, 0},
        {"/empty", PVLM_DL_EMPTY, 200, 1, NULL, -1, 0},
        {refused, PVLM_DL_CONNECT_ERROR, 0, 3, NULL, -1, 0},
        /* .invalid never resolves (RFC 6761); a resolver that cannot be reached times out */
        {"http://pvlm-test.invalid/x.jpg", PVLM_DL_DNS_ERROR, 0, 0, NULL, -1, PVLM_DL_CONNECT_TIMEOUT + 1},
    };
    int n = (int)(sizeof ex / sizeof *ex);
    pvlm_dl_config c = fast_config();
    double secs = 0;
    int rc = run_cases(ts, &c, ex, n, &secs, 0, NULL);
    CHECK(rc == 0);
    /* Retry-After: 1 and two backoff rounds are the longest chains here. */
    CHECK_MSG(secs < 15.0, "reasons run took %.1f s", secs);
    printf("reasons: %d cases in %.2f s\n", n, secs);

    /* with respect_robots off, the opt-out is not applied (for testing/own servers) */
    const expect ex2[] = {{"/robots?tag=noai", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
                          {"/html", PVLM_DL_NOT_IMAGE, 200, 1, NULL, -1, 0}};
    c.respect_robots = 0;
    CHECK(run_cases(ts, &c, ex2, 2, &secs, 0, NULL) == 0);
    c.respect_robots = 1;
    c.require_image = 0;
    const expect ex3[] = {{"/html", PVLM_DL_OK, 200, 1, NULL, -1, 0}};
    CHECK(run_cases(ts, &c, ex3, 1, &secs, 0, NULL) == 0);
}

/* The default config refuses loopback in every spelling (name, IPv6, hex, decimal, octal,
 * IPv4-mapped IPv6, other 127/8), checked on the address connected to. */
static void test_block_private(const test_server *ts) {
    static const char *const hosts[] = {"localhost",  "[::1]",     "0x7f000001",         "2130706433",
                                        "0177.0.0.1", "127.0.0.2", "[::ffff:127.0.0.1]", "127.1"};
    enum { NH = sizeof hosts / sizeof hosts[0] };
    char urls[NH][200];
    expect ex[NH + 1];
    ex[0] = (expect){"/img.jpg", PVLM_DL_BLOCKED_ADDRESS, 0, 1, NULL, -1, 0};
    for (int i = 0; i < NH; i++) {
        snprintf(urls[i], sizeof urls[i], "http://%s:%d/img.jpg", hosts[i], ts->port);
        ex[i + 1] = (expect){urls[i], PVLM_DL_BLOCKED_ADDRESS, 0, 1, NULL, -1, 0};
    }
    pvlm_dl_config c;
    pvlm_dl_config_default(&c); /* blocking is the default */
    c.connect_timeout_ms = 2000;
    double secs = 0;
    CHECK(run_cases(ts, &c, ex, NH + 1, &secs, 0, NULL) == 0);
    CHECK(secs < 5.0);
}

/* Stuck transfers: each attempt is cut by a timeout, retries are bounded. */
static void test_stuck(const test_server *ts) {
    int fds[4] = {-1, -1, -1, -1};
    int port = full_listener(fds);
    CHECK(port > 0);
    char blackhole[128];
    snprintf(blackhole, sizeof blackhole, "http://127.0.0.1:%d/img.jpg", port);
    const expect ex[] = {
        {"/stall-body", PVLM_DL_STALLED, 200, 2, NULL, -1, 0},   {"/stall-headers", PVLM_DL_STALLED, 0, 2, NULL, -1, 0},
        {"/trickle", PVLM_DL_TIMEOUT, 200, 2, NULL, -1, 0},      {"/img.jpg", PVLM_DL_OK, 200, 1, "img.jpg", -1, 0},
        {blackhole, PVLM_DL_CONNECT_TIMEOUT, 0, 2, NULL, -1, 0},
    };
    pvlm_dl_config c = fast_config();
    c.retries = 1;
    double secs = 0;
    CHECK(run_cases(ts, &c, ex, 5, &secs, 0, NULL) == 0);
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0) close(fds[i]);
    /* 2 attempts x 3 s whole-transfer timeout + <= 0.2 s backoff, plus slack for a loaded machine */
    CHECK_MSG(secs >= 5.5 && secs < 12.0, "stuck run took %.1f s", secs);
    printf("stuck: %.2f s\n", secs);
}

/* Per-host and global concurrency limits, seen from the server. */
static void test_limits(const test_server *ts) {
    enum { N = 8 };
    expect ex[2 * N];
    char paths[2 * N][128];
    char lh[160];
    snprintf(lh, sizeof lh, "http://localhost:%d", ts->port);
    for (int i = 0; i < 2 * N; i++) {
        if (i < N)
            snprintf(paths[i], sizeof paths[i], "/conc/hostA");
        else
            snprintf(paths[i], sizeof paths[i], "%s/conc/hostB", lh);
        ex[i] = (expect){paths[i], PVLM_DL_OK, 200, 1, "img.jpg", -1, 0};
    }
    pvlm_dl_config c = fast_config();
    c.max_per_host = 2;
    c.max_total = 16;
    double secs = 0;
    CHECK(run_cases(ts, &c, ex, 2 * N, &secs, 0, NULL) == 0);
    long ma = server_stat_max(ts, "hostA"), mb = server_stat_max(ts, "hostB");
    CHECK_MSG(ma == 2, "127.0.0.1: peak concurrency %ld, limit 2", ma);
    CHECK_MSG(mb >= 1 && mb <= 2, "localhost: peak concurrency %ld, limit 2", mb);
    printf("per-host: peaks %ld %ld in %.2f s\n", ma, mb, secs);

    for (int i = 0; i < N; i++) {
        snprintf(paths[i], sizeof paths[i], "/conc/glob");
        ex[i] = (expect){paths[i], PVLM_DL_OK, 200, 1, "img.jpg", -1, 0};
    }
    c.max_per_host = 8;
    c.max_total = 3;
    CHECK(run_cases(ts, &c, ex, N, &secs, 0, NULL) == 0);
    long mg = server_stat_max(ts, "glob");
    CHECK_MSG(mg == 3, "global peak concurrency %ld, limit 3", mg);

    /* many hosts (127/8 is all loopback; only 127.0.0.1 listens): the host table grows
     * and empties, every item is reported once, good items still succeed */
    enum { M = 700 };
    expect *many = calloc(M, sizeof *many);
    char(*mp)[96] = calloc(M, sizeof *mp);
    for (int i = 0; i < M; i++) {
        if (i % 50 == 0) {
            snprintf(mp[i], sizeof mp[i], "/img.jpg");
            many[i] = (expect){mp[i], PVLM_DL_OK, 200, 1, "img.jpg", -1, 0};
        } else {
            snprintf(mp[i], sizeof mp[i], "http://127.0.%d.%d:%d/x.jpg", 1 + i / 250, 1 + i % 250, ts->port);
            many[i] = (expect){mp[i], PVLM_DL_CONNECT_ERROR, 0, 1, NULL, -1, 0};
        }
    }
    c.max_per_host = 1;
    c.max_total = 32;
    c.retries = 0;
    CHECK(run_cases(ts, &c, many, M, &secs, 0, NULL) == 0);
    CHECK_MSG(secs < 10.0, "%d refused hosts took %.1f s", M, secs);
    free(many);
    free(mp);
    c.retries = 2;

    /* a tiny waiting room still gets every item through */
    for (int i = 0; i < N; i++) {
        snprintf(paths[i], sizeof paths[i], "/flaky/q%d/1", i);
        ex[i] = (expect){paths[i], PVLM_DL_OK, 200, 2, "img.jpg", -1, 0};
    }
    c.max_total = 2;
    c.max_queued = 1;
    CHECK(run_cases(ts, &c, ex, N, &secs, 0, NULL) == 0);
}

/* Stopping: from the callback, from another thread's flag; both return promptly. */
static void test_stop(const test_server *ts) {
    const expect ex[] = {
        {"/img.jpg", PVLM_DL_OK, 200, 1, NULL, -1, 0},
        {"/stall-body", PVLM_DL_STALLED, -1, 0, NULL, -1, 0},
        {"/stall-headers", PVLM_DL_STALLED, -1, 0, NULL, -1, 0},
    };
    pvlm_dl_config c = fast_config();
    c.timeout_ms = 20000;
    c.low_speed_time_s = 20;
    double secs = 0;
    int calls = 0;
    CHECK(run_cases(ts, &c, ex, 3, &secs, 1, &calls) == 1);
    CHECK(calls == 1);
    CHECK_MSG(secs < 3.0, "stop from callback took %.1f s", secs);

    volatile sig_atomic_t flag = 1;
    c.stop_flag = &flag;
    CHECK(run_cases(ts, &c, ex, 3, &secs, 0, &calls) == 1);
    CHECK(calls == 0);
    CHECK(secs < 1.0);
}

int main(void) {
    test_config();
    test_server ts;
    int started = test_server_start(&ts, 90) == 0;
    CHECK_MSG(started, "could not start the test HTTP server");
    if (started) {
        double t0 = pvlm_now();
        test_reasons(&ts);
        test_block_private(&ts);
        test_stuck(&ts);
        test_limits(&ts);
        test_stop(&ts);
        double total = pvlm_now() - t0;
        printf("total %.2f s\n", total);
        CHECK_MSG(total < 45.0, "downloader tests took %.1f s", total);
        test_server_stop(&ts);
    }
    return pvlm_test_done("shard_download_http");
}
