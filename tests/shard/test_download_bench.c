/* test_download_bench.c - downloader throughput against the local test server, with the
 * curl command line's --parallel mode as the peer in the same run. A benchmark, not a
 * test (timings never gate tests): it is built as `bench_download` and run by hand; it
 * lives here because bench/ does not link the shard program's library.
 *
 *   bench_download [N=2000] [CONCURRENCY=64] [REPEATS=5]
 *
 * Needs PVLM_SOURCE_DIR (to find tests/shard/http_test_server.py), PVLM_PYTHON and the
 * curl binary. Prints one line per client per repeat and the medians.
 */
#include <sys/resource.h>

#include "core/timer.h"
#include "shard/download.h"
#include "test_download_server.h"

static int64_t g_ok;

static int on_done(void *c, pvlm_dl_result *r) {
    (void)c;
    if (r->reason == PVLM_DL_OK) g_ok++;
    return 0;
}

static double tv(struct timeval t) {
    return (double)t.tv_sec + 1e-6 * (double)t.tv_usec;
}

static double cpu_of(int who) {
    struct rusage u;
    getrusage(who, &u);
    return tv(u.ru_utime) + tv(u.ru_stime);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000, conc = argc > 2 ? atoi(argv[2]) : 64;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (n < 1 || conc < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: bench_download [N] [CONCURRENCY] [REPEATS<=100]\n");
        return 2;
    }
    test_server ts;
    if (test_server_start(&ts, 900)) return 1;
    char(*urls)[128] = calloc((size_t)n, sizeof *urls);
    pvlm_dl_item *items = calloc((size_t)n, sizeof *items);
    char cfgpath[1200];
    snprintf(cfgpath, sizeof cfgpath, "%s/curl-urls.cfg", ts.dir);
    FILE *f = fopen(cfgpath, "w");
    if (!urls || !items || !f) return 1;
    for (int i = 0; i < n; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/img.jpg?%d", ts.base, i); /* distinct URLs, same bytes */
        items[i].index = i;
        items[i].url = urls[i];
        fprintf(f, "url = \"%s\"\noutput = \"/dev/null\"\n", urls[i]);
    }
    fclose(f);
    double ours_rate[100], ours_cpu[100], peer_rate[100], peer_cpu[100];
    for (int r = 0; r < reps; r++) {
        pvlm_dl_config c;
        pvlm_dl_config_default(&c);
        c.max_total = conc;
        c.max_per_host = conc; /* one host here */
        c.block_private = 0;   /* ... on 127.0.0.1 */
        pvlm_err err = {0};
        pvlm_dl *d = pvlm_dl_create(&c, &err);
        if (!d) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        g_ok = 0;
        double t0 = pvlm_now(), c0 = cpu_of(RUSAGE_SELF);
        pvlm_dl_run_items(d, items, (size_t)n, on_done, NULL, &err);
        double dt = pvlm_now() - t0, dc = cpu_of(RUSAGE_SELF) - c0;
        pvlm_dl_free(d);
        ours_rate[r] = n / dt;
        ours_cpu[r] = 1e6 * dc / n;
        printf("pvlm_dl:          %lld/%d ok in %.3f s = %6.0f items/s, client CPU %.1f us/item\n", (long long)g_ok, n,
               dt, ours_rate[r], ours_cpu[r]);

        char cmd[1400];
        snprintf(cmd, sizeof cmd, "curl -s --parallel --parallel-max %d -K '%s' 2>/dev/null", conc, cfgpath);
        double k0 = cpu_of(RUSAGE_CHILDREN); /* the server child is not reaped yet: curl only */
        t0 = pvlm_now();
        int rc = system(cmd);
        dt = pvlm_now() - t0;
        peer_rate[r] = n / dt;
        peer_cpu[r] = 1e6 * (cpu_of(RUSAGE_CHILDREN) - k0) / n;
        printf("curl --parallel:  rc %d, %d in %.3f s = %6.0f items/s, client CPU %.1f us/item\n", rc, n, dt,
               peer_rate[r], peer_cpu[r]);
        fflush(stdout);
    }
    printf("median of %d: pvlm_dl %.0f items/s %.1f us/item; curl --parallel %.0f items/s %.1f us/item\n", reps,
           median(ours_rate, reps), median(ours_cpu, reps), median(peer_rate, reps), median(peer_cpu, reps));
    test_server_stop(&ts);
    free(urls);
    free(items);
    return 0;
}
