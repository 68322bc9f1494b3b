/* bench_shard.c - image shard build throughput from local JPEGs.
 *
 * Usage: bench_shard [--pvlm PATH] [--images N] [--width W] [--height H] [--size S]
 *                    [--threads T] [--runs R] [--dir DIR] [--keep 0|1]
 * Writes N photo-like JPEGs (W x H, quality 90) + captions into DIR/pairs, then reports,
 * as medians of R runs:
 *   1. in-process pipeline per core: decode (DCT-scaled) + crop-resize to S + JPEG q95
 *      encode + record encode, one thread: images/s;
 *   2. the peer: the same with a full-size decode (no DCT scaling), to show what the
 *      scaling buys;
 *   3. `pvlm shard images --pairs DIR/pairs --threads T` end to end (listing, decode,
 *      resize, encode, LMDB write, compaction, checksums): images/s.
 * Default PATH of pvlm: ./cli/pvlm (run from the build folder). Numbers go to docs/perf-shard.md.
 */
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "bench/bench_util.h"
#include "core/fsutil.h"
#include "core/rng.h"
#include "core/timer.h"
#include "io/image.h"
#include "io/imgshard.h"

extern char **environ;

/* Smooth shapes + fine noise, so JPEG sizes and decode work resemble photos. */
static void photo(pvlm_image *im, pvlm_rng *r) {
    double cx = pvlm_rng_uniform(r) * im->w, cy = pvlm_rng_uniform(r) * im->h, rad = 50 + pvlm_rng_uniform(r) * 200;
    int base[3] = {(int)pvlm_rng_below(r, 200), (int)pvlm_rng_below(r, 200), (int)pvlm_rng_below(r, 200)};
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            double d = (x - cx) * (x - cx) + (y - cy) * (y - cy);
            int in = d < rad * rad;
            uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
            for (int c = 0; c < 3; c++) {
                int v = base[c] + (in ? 50 : 0) + (x * 40) / im->w + (int)pvlm_rng_below(r, 24);
                p[c] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
}

/* Returns images per CPU-second (robust on a shared, loaded machine); *wall_rate gets images/s. */
static double pipeline(char **files, int n, int S, int scaled, double *wall_rate) {
    pvlm_image_codec *codec = pvlm_image_codec_new(NULL);
    double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n; i++) {
        char *data;
        size_t len;
        if (pvlm_read_file(files[i], &data, &len, NULL) != 0) continue;
        pvlm_image im, fit;
        int ow, oh;
        if (pvlm_image_decode(codec, data, len, scaled ? S : 0, 0, &im, &ow, &oh, files[i], NULL) == 0) {
            pvlm_image_fit(&im, S, PVLM_RESIZE_CROP, &fit, NULL);
            uint8_t *j;
            size_t jn;
            pvlm_image_encode_jpeg(codec, &fit, 95, &j, &jn, NULL);
            const char *cap = "a caption";
            pvlm_imgrec rec = {.id = "x",
                               .ncaptions = 1,
                               .captions = &cap,
                               .orig_w = ow,
                               .orig_h = oh,
                               .stored_w = S,
                               .stored_h = S,
                               .encoding = PVLM_IMG_ENC_JPEG,
                               .image = j,
                               .image_len = jn};
            uint8_t *v;
            size_t vn;
            if (pvlm_imgrec_encode(&rec, &v, &vn, NULL) == 0) free(v);
            free(j);
            pvlm_image_free(&fit);
            pvlm_image_free(&im);
        }
        free(data);
    }
    double dt = pvlm_now() - t0, dc = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    pvlm_image_codec_free(codec);
    *wall_rate = n / dt;
    return n / dc;
}

typedef struct shard_opts {
    const char *pvlm, *dir;
    int n, W, H, S, T, runs, keep;
} shard_opts;

/* The flags (usage in the header comment); 0, or 2 for an unknown flag or a bad count. */
static int parse_args(int argc, char **argv, shard_opts *o) {
    *o = (shard_opts){.pvlm = "./cli/pvlm",
                      .dir = "/tmp/pvlm-bench-shard",
                      .n = 400,
                      .W = 640,
                      .H = 480,
                      .S = 224,
                      .T = 2,
                      .runs = 5};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pvlm"))
            o->pvlm = argv[i + 1];
        else if (!strcmp(argv[i], "--images"))
            o->n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--width"))
            o->W = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--height"))
            o->H = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            o->S = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            o->T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            o->runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            o->dir = argv[i + 1];
        else if (!strcmp(argv[i], "--keep"))
            o->keep = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_shard: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    return o->n < 1 || o->runs < 1 || o->runs > 100 ? 2 : 0;
}

/* n photo-like JPEGs with their caption files into pairs; their paths into files[] (malloc'd), the
 * JPEG bytes into *total. */
static int write_pairs(const shard_opts *o, const char *pairs, char **files, size_t *total, pvlm_err *err) {
    pvlm_rng r;
    pvlm_rng_seed(&r, 1, 0);
    *total = 0;
    for (int i = 0; i < o->n; i++) {
        char name[32], path[1100], tp[1100], cap[64];
        snprintf(name, sizeof name, "img%06d.jpg", i);
        if (pvlm_path_join(path, sizeof path, pairs, name, err)) return -1;
        snprintf(name, sizeof name, "img%06d.txt", i);
        if (pvlm_path_join(tp, sizeof tp, pairs, name, err)) return -1;
        if (!(files[i] = strdup(path))) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for %s", path);
        pvlm_image im;
        pvlm_image_alloc(&im, o->W, o->H, NULL);
        photo(&im, &r);
        uint8_t *j;
        size_t jn;
        pvlm_image_encode_jpeg(NULL, &im, 90, &j, &jn, NULL);
        pvlm_write_file_atomic(files[i], j, jn, NULL);
        snprintf(cap, sizeof cap, "synthetic photo number %d", i);
        pvlm_write_file_atomic(tp, cap, strlen(cap), NULL);
        *total += jn;
        free(j);
        pvlm_image_free(&im);
    }
    return 0;
}

/* Sections 1 and 2: the in-process pipeline with and without DCT scaling, interleaved (scaled, full,
 * scaled, full, ...) so load changes hit both alike. */
static void bench_pipeline(const shard_opts *o, char **files) {
    double *v = calloc((size_t)o->runs, sizeof(double)), *peer = calloc((size_t)o->runs, sizeof(double));
    double *vw = calloc((size_t)o->runs, sizeof(double)), *pw = calloc((size_t)o->runs, sizeof(double));
    for (int k = 0; k < o->runs; k++) {
        v[k] = pipeline(files, o->n, o->S, 1, &vw[k]);
        peer[k] = pipeline(files, o->n, o->S, 0, &pw[k]);
    }
    printf("  %-40s %9s %14s\n", "", "images/s", "images/CPU-s");
    printf("  %-40s %9.1f %14.1f\n", "pipeline 1 thread, DCT-scaled decode", bench_median(vw, o->runs),
           bench_median(v, o->runs));
    printf("  %-40s %9.1f %14.1f\n", "pipeline 1 thread, full-size decode (peer)", bench_median(pw, o->runs),
           bench_median(peer, o->runs));
    free(v), free(peer), free(vw), free(pw);
}

/* Section 3: `pvlm shard images` end to end, images per wall and per CPU second of the child. */
static int bench_e2e(const shard_opts *o, const char *pairs, const char *out) {
    double *v = calloc((size_t)o->runs, sizeof(double)), *vw = calloc((size_t)o->runs, sizeof(double));
    char targ[16], sarg[16];
    snprintf(targ, sizeof targ, "%d", o->T);
    snprintf(sarg, sizeof sarg, "%d", o->S);
    for (int k = 0; k < o->runs; k++) {
        pvlm_rm_rf(out, NULL);
        char *args[] = {
            (char *)o->pvlm, "shard", "images",     "--pairs", (char *)pairs, "--out", (char *)out, "--threads", targ,
            "--image-size",  sarg,    "--progress", "0",       "--shards",    "1",     NULL};
        double t0 = pvlm_now();
        pid_t pid;
        if (posix_spawn(&pid, o->pvlm, NULL, NULL, args, environ) != 0) {
            fprintf(stderr, "bench_shard: cannot run %s (give --pvlm PATH)\n", o->pvlm);
            return 1;
        }
        int st;
        struct rusage ru;
        wait4(pid, &st, 0, &ru);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench_shard: pvlm shard images failed\n");
            return 1;
        }
        vw[k] = o->n / (pvlm_now() - t0);
        v[k] =
            o->n / (ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6);
    }
    char label[64];
    snprintf(label, sizeof label, "pvlm shard images --threads %d (e2e)", o->T);
    printf("  %-40s %9.1f %14.1f\n", label, bench_median(vw, o->runs), bench_median(v, o->runs));
    free(v), free(vw);
    return 0;
}

int main(int argc, char **argv) {
    shard_opts o;
    if (parse_args(argc, argv, &o)) return 2;
    char pairs[1024], out[1024];
    pvlm_err err = {0};
    char **files = calloc((size_t)o.n, sizeof(char *));
    size_t total = 0;
    if (!files || pvlm_path_join(pairs, sizeof pairs, o.dir, "pairs", &err) ||
        pvlm_path_join(out, sizeof out, o.dir, "out", &err)) {
        fprintf(stderr, "bench_shard: %s\n", files ? err.msg : "out of memory");
        return 1;
    }
    pvlm_rm_rf(o.dir, NULL);
    pvlm_mkdir_p(pairs, NULL);
    if (write_pairs(&o, pairs, files, &total, &err)) {
        fprintf(stderr, "bench_shard: %s\n", err.msg);
        return 1;
    }
    printf("bench_shard: %d JPEGs %dx%d (mean %.0f KB), S=%d, %d runs, median images/s\n", o.n, o.W, o.H,
           total / 1024.0 / o.n, o.S, o.runs);
    bench_pipeline(&o, files);
    if (bench_e2e(&o, pairs, out)) return 1;
    for (int i = 0; i < o.n; i++) free(files[i]);
    free(files);
    if (!o.keep) pvlm_rm_rf(o.dir, NULL);
    return 0;
}
