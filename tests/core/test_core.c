/* test_core.c - unit tests of core/: args, rng, hash, fsutil, error, json. */
#include <fcntl.h>
#include <stdint.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/args.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/threads.h"
#include "harness.h"

static int parse(const pvlm_cmd *cmd, int argc, const char **argv, char **pos, int *np) {
    return pvlm_args_parse(cmd, argc, (char **)argv, pos, np);
}

static void test_args(void) {
    int batch = 8, flag = 0;
    double lr = 1e-3;
    int64_t steps = 100;
    const char *mode = "greedy", *out = NULL;
    pvlm_opt opts[] = {
        {"batch", PVLM_ARG_INT, &batch, "batch size", NULL, 1, 1024, 0},
        {"lr", PVLM_ARG_DOUBLE, &lr, "learning rate", NULL, 0, 0, 0},
        {"steps", PVLM_ARG_I64, &steps, "steps", NULL, 0, 0, 0},
        {"mode", PVLM_ARG_CHOICE, &mode, "decoding", "greedy|beam", 0, 0, 0},
        {"out", PVLM_ARG_STR, &out, "output", NULL, 0, 0, 1},
        {"verbose", PVLM_ARG_FLAG, &flag, "talk", NULL, 0, 0, 0},
    };
    pvlm_cmd cmd = {"pvlm test", "a test command", "FILE", opts, 6, 1, 1};
    char *pos[1];
    int np = 0;
    const char *a1[] = {"test", "--batch", "32", "--lr=0.5", "--mode", "beam", "--out", "x.json", "--verbose", "in.txt"};
    CHECK(parse(&cmd, 10, a1, pos, &np) == PVLM_ARGS_OK);
    CHECK(batch == 32 && lr == 0.5 && !strcmp(mode, "beam") && !strcmp(out, "x.json") && flag == 1);
    CHECK(np == 1 && !strcmp(pos[0], "in.txt"));
    const char *a2[] = {"test", "--bogus", "1", "--out", "y", "f"};
    CHECK(parse(&cmd, 6, a2, pos, &np) == PVLM_ARGS_ERROR);
    const char *a3[] = {"test", "--batch", "0", "--out", "y", "f"};
    CHECK(parse(&cmd, 6, a3, pos, &np) == PVLM_ARGS_ERROR); /* out of range */
    const char *a4[] = {"test", "--batch", "3x", "--out", "y", "f"};
    CHECK(parse(&cmd, 6, a4, pos, &np) == PVLM_ARGS_ERROR); /* not a number */
    const char *a5[] = {"test", "--mode", "sample", "--out", "y", "f"};
    CHECK(parse(&cmd, 6, a5, pos, &np) == PVLM_ARGS_ERROR); /* bad choice */
    out = NULL;
    const char *a6[] = {"test", "f"};
    CHECK(parse(&cmd, 2, a6, pos, &np) == PVLM_ARGS_ERROR); /* required missing */
    const char *a7[] = {"test", "--out", "y"};
    CHECK(parse(&cmd, 3, a7, pos, &np) == PVLM_ARGS_ERROR); /* positional missing */
    const char *a8[] = {"test", "--out", "y", "a", "b"};
    CHECK(parse(&cmd, 5, a8, pos, &np) == PVLM_ARGS_ERROR); /* too many positionals */
    const char *a9[] = {"test", "--lr"};
    CHECK(parse(&cmd, 2, a9, pos, &np) == PVLM_ARGS_ERROR); /* missing value */

    json_t *j = pvlm_args_to_json(&cmd);
    CHECK(json_integer_value(json_object_get(j, "batch")) == 32);
    json_t *cfg = json_pack("{s:i, s:s}", "batch", 64, "mode", "greedy");
    pvlm_err err;
    CHECK_OK(pvlm_args_apply_json(&cmd, cfg, &err), &err);
    CHECK(batch == 64 && !strcmp(mode, "greedy"));
    json_t *badcfg = json_pack("{s:i}", "nope", 1);
    CHECK(pvlm_args_apply_json(&cmd, badcfg, &err) == -1 && strstr(err.msg, "nope"));
    json_decref(j);
    json_decref(cfg);
    json_decref(badcfg);
}

static void test_rng(void) {
    pvlm_rng a, b, c;
    pvlm_rng_seed(&a, 42, 0);
    pvlm_rng_seed(&b, 42, 0);
    pvlm_rng_seed(&c, 42, 1);
    int same = 1, diff = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = pvlm_rng_u64(&a), y = pvlm_rng_u64(&b), z = pvlm_rng_u64(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same);
    CHECK(diff > 990);
    /* below(n) is uniform: chi-square-ish bound on 10 buckets */
    int hist[10] = {0};
    for (int i = 0; i < 100000; i++) hist[pvlm_rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++) CHECK(hist[i] > 9500 && hist[i] < 10500);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double x = pvlm_rng_normal(&a);
        s += x;
        s2 += x * x;
    }
    CHECK(fabs(s / 100000) < 0.02);
    CHECK(fabs(s2 / 100000 - 1.0) < 0.03);
}

static void test_hash_fs(void) {
    char dir[512], path[600];
    pvlm_err err;
    CHECK(pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm-test-core", "core", 1) == 0);
    snprintf(path, sizeof path, "%s/a.bin", dir);
    const char data[] = "hello pvlm";
    CHECK_OK(pvlm_write_file_atomic(path, data, sizeof data, &err), &err);
    char *back = NULL;
    size_t n = 0;
    CHECK_OK(pvlm_read_file(path, &back, &n, &err), &err);
    CHECK(n == sizeof data && back && !memcmp(back, data, n));
    uint64_t h1 = 0;
    CHECK_OK(pvlm_hash_file(path, &h1, &err), &err);
    CHECK(h1 == pvlm_hash64(data, sizeof data));
    char hex[17];
    uint64_t parsed = 0;
    pvlm_hash_hex(h1, hex);
    CHECK(pvlm_hash_parse(hex, &parsed) == 0 && parsed == h1);
    CHECK(pvlm_hash_parse("xyz", &parsed) == -1);
    free(back);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    CHECK(pvlm_read_file(missing, &back, &n, &err) == -1 && strstr(err.msg, "missing"));
    /* a directory, or a folder named like an image, or a FIFO is "not a regular file", at once */
    CHECK(pvlm_read_file(dir, &back, &n, &err) == -1 && strstr(err.msg, "is a directory, not a regular file") &&
          strstr(err.msg, dir));
    snprintf(missing, sizeof missing, "%s/x.jpg", dir);
    CHECK(pvlm_mkdir_p(missing, &err) == 0);
    CHECK(pvlm_read_file(missing, &back, &n, &err) == -1 && strstr(err.msg, "x.jpg: is a directory"));
    snprintf(missing, sizeof missing, "%s/fifo", dir);
    CHECK(mkfifo(missing, 0600) == 0);
    CHECK(pvlm_read_file(missing, &back, &n, &err) == -1 && strstr(err.msg, "special file"));
    /* JSON load error names file, line and column */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    CHECK_OK(pvlm_write_file_atomic(path, "{\n \"a\": [1,\n", 12, &err), &err);
    json_t *j = pvlm_json_load_file(path, &err);
    CHECK(j == NULL && strstr(err.msg, "bad.json:"));
    CHECK_OK(pvlm_rm_rf(dir, &err), &err);
    CHECK(!pvlm_file_exists(dir));
    void *p = pvlm_alloc(1000, &err);
    CHECK(p && ((uintptr_t)p % PVLM_ALIGN) == 0);
    pvlm_free(p);
}

/* pvlm_dir_names: filtered, hidden names left out, sorted; a missing folder fails naming it. pvlm_pread_full:
 * bytes at an offset, and a file ending early is "truncated" with the offset named. */
static int keep_jpg(const char *name) {
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".jpg");
}

static void test_dir_names_pread(void) {
    char dir[512], path[700];
    pvlm_err err;
    CHECK(pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm-test-core", "names", 1) == 0);
    const char *files[] = {"b.jpg", "a.JPG", ".hidden.jpg", "._b.jpg", "c.txt", "10.jpg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        CHECK_OK(pvlm_write_file_atomic(path, "0123456789", 10, &err), &err);
    }
    snprintf(path, sizeof path, "%s/sub.jpg", dir);
    CHECK(pvlm_mkdir_p(path, &err) == 0);
    char **names;
    size_t n;
    CHECK_OK(pvlm_dir_names(dir, keep_jpg, &names, &n, &err), &err);
    const char *want[] = {"10.jpg", "a.JPG", "b.jpg", "sub.jpg"}; /* strcmp order: '1' < 'a' < 'b' < 's' */
    CHECK_MSG(n == 4, "%zu names", n);
    for (size_t i = 0; i < n && i < 4; i++) CHECK_MSG(!strcmp(names[i], want[i]), "%zu: %s", i, names[i]);
    pvlm_dir_names_free(names, n);
    CHECK_OK(pvlm_dir_names(dir, NULL, &names, &n, &err), &err);
    CHECK_MSG(n == 5 && !strcmp(names[3], "c.txt"), "%zu names", n); /* every visible name, folders too */
    pvlm_dir_names_free(names, n);
    snprintf(path, sizeof path, "%s/nope", dir);
    CHECK(pvlm_dir_names(path, NULL, &names, &n, &err) == -1 && err.code == PVLM_EIO && strstr(err.msg, "nope") &&
          names == NULL && n == 0);
    snprintf(path, sizeof path, "%s/b.jpg", dir);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    char buf[8] = {0};
    CHECK_OK(pvlm_pread_full(fd, buf, 4, 3, path, &err), &err);
    CHECK(!memcmp(buf, "3456", 4));
    CHECK(pvlm_pread_full(fd, buf, 8, 5, path, &err) == -1 && err.code == PVLM_EFORMAT && strstr(err.msg, "b.jpg") &&
          strstr(err.msg, "offset 10") && strstr(err.msg, "truncated"));
    close(fd);
    CHECK_OK(pvlm_rm_rf(dir, &err), &err);
}

static void test_err(void) {
    pvlm_err err;
    CHECK(pvlm_err_set(&err, PVLM_EFORMAT, "record %d bad", 7) == -1);
    pvlm_err_prefix(&err, "shard %s", "s0");
    CHECK(!strcmp(err.msg, "shard s0: record 7 bad") && err.code == PVLM_EFORMAT);
    CHECK(pvlm_err_set(NULL, PVLM_EIO, "x") == -1);
    /* the separator is added once, whatever the caller's context ends with */
    const char *ctx[] = {"dp step 3", "dp step 3: ", "dp step 3:", "dp step 3 :  "};
    for (size_t i = 0; i < sizeof ctx / sizeof *ctx; i++) {
        pvlm_err_set(&err, PVLM_EIO, "boom");
        pvlm_err_prefix(&err, "%s", ctx[i]);
        CHECK_MSG(!strcmp(err.msg, "dp step 3: boom"), "context \"%s\" gave \"%s\"", ctx[i], err.msg);
        pvlm_err_prefix(&err, "checkpoint %d: ", 8);
        CHECK_MSG(!strcmp(err.msg, "checkpoint 8: dp step 3: boom") && !strstr(err.msg, ": :") &&
                      !strstr(err.msg, "::"),
                  "nested prefix gave \"%s\"", err.msg);
    }
    pvlm_err_set(&err, PVLM_EIO, "boom");
    pvlm_err_prefix(&err, "%s", "");
    CHECK(!strcmp(err.msg, "boom"));
}

static void test_path_join(void) {
    pvlm_err err;
    char buf[16];
    CHECK_OK(pvlm_path_join(buf, sizeof buf, "ck", "step_1", &err), &err);
    CHECK(!strcmp(buf, "ck/step_1"));
    CHECK_OK(pvlm_path_join(buf, sizeof buf, "", "state.json", &err), &err);
    CHECK(!strcmp(buf, "state.json"));
    CHECK_OK(pvlm_path_join(buf, sizeof buf, "0123456", "89abcde", &err), &err); /* 15 bytes + NUL: fits */
    CHECK(pvlm_path_join(buf, sizeof buf, "0123456", "89abcdef", &err) == -1 && err.code == PVLM_EINVAL &&
          strstr(err.msg, "path too long") && strstr(err.msg, "89abcdef") && buf[0] == '\0');
}

/* The default thread count follows the affinity mask (taskset, Slurm, mpirun binding), not the online
 * CPU count, and splits a shared mask over the ranks that share it. */
static void test_threads(void) {
    unsetenv("PVLM_THREADS");
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    unsetenv("SLURM_NTASKS_PER_NODE");
    cpu_set_t all, one;
    int n = pvlm_threads_cpus(&all);
    CHECK(n >= 1 && n == CPU_COUNT(&all));
    CHECK(pvlm_threads_resolve(3) == 3);
    CHECK(pvlm_threads_resolve(0) == n);
    CHECK(pvlm_threads_default(1 << 20, 1) == n); /* never more than this process may use */
    CHECK(pvlm_threads_default(n, 2) == (n / 2 > 0 ? n / 2 : 1));
    CHECK(pvlm_threads_default(1, 8) == 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    CHECK(pvlm_threads_resolve(0) == (n / 2 > 0 ? n / 2 : 1));
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    setenv("PVLM_THREADS", "5", 1);
    CHECK(pvlm_threads_resolve(0) == 5);
    unsetenv("PVLM_THREADS");
    /* bound to one CPU (as taskset -c or a one-core Slurm task): one thread */
    int first = 0;
    while (!CPU_ISSET(first, &all)) first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
    CHECK(pvlm_threads_cpus(&one) == 1 && pvlm_threads_resolve(0) == 1);
    CHECK(sched_setaffinity(0, sizeof all, &all) == 0);
    /* column-sum tiles: whole 64-byte lines at most the width asked covering every column; row groups covering
     * every row, none empty, of at least the rows asked unless there is one; partials within the budget; and
     * the same tiles at every thread count (the sums' order must not depend on it) */
    int cols[] = {1, 15, 16, 33, 512, 1000, 1024, 1025, 2048, 3000, 8192, 20000};
    int rows[] = {0, 1, 63, 64, 200, 779, 1865, 100000};
    pvlm_col_tiles first_t[12][8];
    for (int t = 1; t <= 3; t++) {
        pvlm_threads_set(t);
        for (int i = 0; i < (int)(sizeof cols / sizeof *cols); i++)
            for (int j = 0; j < (int)(sizeof rows / sizeof *rows); j++) {
                int C = cols[i], R = rows[j];
                pvlm_col_tiles x = pvlm_threads_col_tiles(R, C, 1024, 16384, 64);
                CHECK(x.nblk >= 1 && x.width % 16 == 0 && x.width >= 16 && x.width <= 1024);
                CHECK((long)x.nblk * x.width >= C && (long)(x.nblk - 1) * x.width < C);
                CHECK(x.ngrp >= 1 && x.rows >= 1 && (long)x.ngrp * x.rows >= R);
                CHECK(R == 0 ? x.ngrp == 1 : (long)(x.ngrp - 1) * x.rows < R);
                CHECK(x.ngrp == 1 || ((long)x.ngrp * C <= 16384 && x.rows >= 64));
                if (t == 1) first_t[i][j] = x;
                CHECK(!memcmp(&x, &first_t[i][j], sizeof x));
            }
    }
    /* the tiles cover every element once, and put + add give each column's sum (small integers: exact) */
    int shapes[][2] = {{200, 96}, {130, 2100}, {1000, 40}, {5, 33}, {0, 16}};
    for (int s = 0; s < 5; s++) {
        int R = shapes[s][0], C = shapes[s][1], bad = 0;
        pvlm_col_tiles x = pvlm_threads_col_tiles(R, C, 1024, 16384, 64);
        unsigned char *seen = calloc((size_t)R * C + 1, 1);
        float *part = malloc(sizeof(float) * 16384), *sum = calloc((size_t)C, sizeof(float)), acc[1024];
        for (int i = 0; i < x.nblk * x.ngrp; i++) {
            pvlm_col_tile k = pvlm_threads_col_tile(&x, i);
            if (k.w <= 0) continue;
            for (int c = 0; c < k.w; c++) acc[c] = 0.0f;
            for (int r = k.r0; r < k.r1; r++)
                for (int c = 0; c < k.w; c++)
                    seen[(size_t)r * C + k.c0 + c]++, acc[c] += (float)(r % 7 + (k.c0 + c) % 5);
            pvlm_threads_col_tile_put(&x, &k, acc, sum, part);
        }
        pvlm_threads_col_tiles_add(&x, sum, part);
        for (size_t e = 0; e < (size_t)R * C; e++) bad += seen[e] != 1;
        for (int c = 0; c < C; c++) {
            long want = 0;
            for (int r = 0; r < R; r++) want += r % 7 + c % 5;
            bad += sum[c] != (float)want;
        }
        CHECK_MSG(!bad, "column tiles %d x %d: %d elements not covered once or sums wrong", R, C, bad);
        free(seen), free(part), free(sum);
    }
    pvlm_threads_set(1);
}

int main(void) {
    test_args();
    test_rng();
    test_hash_fs();
    test_dir_names_pread();
    test_err();
    test_path_join();
    test_threads();
    return pvlm_test_done("core_unit");
}
