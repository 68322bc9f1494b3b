/* bench_ckpt.c - checkpoint save / load time of the bench model against `dd conv=fsync` of the same bytes.
 *
 * Creates the bench config (pvlm_model_config_default: 48.5 M parameters, 194 MB) with seeded weights, then
 * --runs times, interleaved so that the disk's changing load hits all three alike: pvlm_model_save to
 * DIR/bench_ckpt.safetensors (checksum, write, fsync, rename, directory fsync), the peer
 * `dd if=FILE of=DIR/bench_ckpt.dd bs=4M conv=fsync` (copying the same bytes with one fsync: the floor
 * for writing them durably), and pvlm_model_load of the file (checksum pass, model create, read, finite
 * check). Prints the median wall time of each and the ratio save / dd (docs/checkpoint.md, "Measured
 * cost"; docs/performance.md). Both files are removed at the end.
 *
 * Usage: bench_ckpt [--runs 5] [--dir /tmp]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/fsutil.h"
#include "core/timer.h"
#include "model/checkpoint.h"
#include "model/model.h"

#define MAX_RUNS 50

int main(int argc, char **argv) {
    int runs = 5;
    const char *dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_ckpt [--runs 5 (1..%d)] [--dir /tmp]\n", MAX_RUNS);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "bench_ckpt: --runs must be 1..%d\n", MAX_RUNS);
        return 2;
    }
    pvlm_err err;
    char path[4096], ddpath[4096], cmd[9000];
    if (pvlm_path_join(path, sizeof path, dir, "bench_ckpt.safetensors", &err) ||
        pvlm_path_join(ddpath, sizeof ddpath, dir, "bench_ckpt.dd", &err)) {
        fprintf(stderr, "bench_ckpt: %s\n", err.msg);
        return 2;
    }
    snprintf(cmd, sizeof cmd, "dd if='%s' of='%s' bs=4M conv=fsync status=none", path, ddpath);
    pvlm_model_config c;
    pvlm_model_config_default(&c);
    pvlm_model m;
    if (pvlm_model_create(&m, &c, &err)) {
        fprintf(stderr, "bench_ckpt: %s\n", err.msg);
        return 1;
    }
    pvlm_model_init_weights(&m, 1);
    double ts[MAX_RUNS], td[MAX_RUNS], tl[MAX_RUNS];
    int rc = 0;
    for (int r = 0; r < runs && !rc; r++) {
        double t0 = pvlm_now();
        if (pvlm_model_save(&m, path, NULL, &err)) {
            fprintf(stderr, "bench_ckpt: %s\n", err.msg);
            rc = 1;
            break;
        }
        double t1 = pvlm_now();
        if (system(cmd) != 0) {
            fprintf(stderr, "bench_ckpt: '%s' failed\n", cmd);
            rc = 1;
            break;
        }
        double t2 = pvlm_now();
        pvlm_model l;
        if (pvlm_model_load(&l, path, &err)) {
            fprintf(stderr, "bench_ckpt: %s\n", err.msg);
            rc = 1;
            break;
        }
        double t3 = pvlm_now();
        pvlm_model_free(&l);
        ts[r] = t1 - t0, td[r] = t2 - t1, tl[r] = t3 - t2;
    }
    if (!rc) {
        double mb = (double)m.n_params * 4 / 1e6;
        double s = bench_median(ts, runs), d = bench_median(td, runs), l = bench_median(tl, runs);
        printf("checkpoint of the bench model (%zu parameters, %.0f MB) in %s, median of %d:\n", m.n_params, mb, dir,
               runs);
        printf("  pvlm_model_save %.3f s (%.0f MB/s)\n", s, mb / s);
        printf("  peer dd bs=4M conv=fsync %.3f s (%.0f MB/s)\n", d, mb / d);
        printf("  pvlm_model_load %.3f s (%.0f MB/s)\n", l, mb / l);
        printf("  save / dd = %.2fx\n", s / d);
    }
    unlink(path);
    unlink(ddpath);
    pvlm_model_free(&m);
    return rc;
}
