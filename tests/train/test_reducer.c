/* test_reducer.c - mpi/reducer and mpi/comm on plain float buffers, under mpirun -np 2 and 3.
 *
 * Every rank fills its "gradient" with small dyadic values, so sums are exact in float whatever
 * the order of summation; the reduced buffer must then equal the exact sum bit for bit. Ranks
 * report ready ranges in different (rank-dependent, shuffled) orders to check that launch order
 * does not depend on the hook order. ZeRO-1: the slice must hold the sum of the rank's slice, and
 * the all-gather must give every rank every other rank's updated slice. Also: stop-flag OR,
 * JSON broadcast/gather, and the even split.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "harness.h"
#include "mpi/comm.h"
#include "mpi/reducer.h"

static float val(int rank, size_t i) { return (float)((int)((i * 7 + (size_t)rank * 13) % 64) - 32) * 0.125f; }

/* one round with the given segments; checks the result. merge: floats per blocking call after
 * backward and per all-gather chunk (0: the default) */
static void round_trip(const pvlm_comm *c, size_t n, const size_t *so, const size_t *sn, int nseg, size_t bucket,
                       int zero1, int use_hook, uint64_t seed, int thread, size_t merge) {
    pvlm_err err = {0};
    float *g = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) g[i] = val(c->rank, i);
    pvlm_reducer r;
    pvlm_reducer_config cfg = {.bucket_elems = bucket, .zero1 = zero1, .progress_thread = thread, .merge_elems = merge};
    CHECK_OK(pvlm_reducer_init(&r, c, g, n, so, sn, nseg, &cfg, &err), &err);
    for (int rep = 0; rep < 2; rep++) {
        for (size_t i = 0; i < n; i++) g[i] = val(c->rank, i) * (float)(rep + 1);
        CHECK_OK(pvlm_reducer_begin(&r, &err), &err);
        if (use_hook) {
            /* report the buffer in 1..97-float chunks in a rank-dependent shuffled order */
            size_t nch = (n + 96) / 97;
            size_t *order = malloc(nch * sizeof *order);
            for (size_t k = 0; k < nch; k++) order[k] = nch - 1 - k;
            pvlm_rng rng;
            pvlm_rng_seed(&rng, seed, (uint64_t)c->rank + 1);
            for (size_t k = nch; k > 1; k--) {
                size_t j = (size_t)pvlm_rng_below(&rng, k);
                size_t t = order[k - 1];
                order[k - 1] = order[j];
                order[j] = t;
            }
            for (size_t k = 0; k < nch; k++) {
                size_t off = order[k] * 97, cnt = off + 97 <= n ? 97 : n - off;
                pvlm_reducer_hook(&r, off, cnt);
                if (thread && k % 7 == 0) {
                    struct timespec ts = {0, 300000}; /* "compute": give the progress thread time */
                    nanosleep(&ts, NULL);
                }
            }
            free(order);
        }
        CHECK_OK(pvlm_reducer_finish(&r, &err), &err);
        int bad = 0;
        for (int s = 0; s < (nseg ? nseg : 1); s++) {
            size_t a = nseg ? so[s] : 0, e = nseg ? so[s] + sn[s] : n;
            for (size_t i = a; i < e; i++) {
                float want = 0;
                for (int q = 0; q < c->size; q++) want += val(q, i) * (float)(rep + 1);
                float got = zero1 ? ((i >= r.shard_off && i < r.shard_off + r.shard_n) ? r.slice[i - r.shard_off] : want)
                                  : g[i];
                if (got != want) bad++;
            }
        }
        CHECK_MSG(bad == 0, "n=%zu bucket=%zu zero1=%d hook=%d: %d wrong sums", n, bucket, zero1, use_hook, bad);
        if (zero1) {
            /* "optimizer": params slice := rank id + index; all-gather; check every element */
            float *p = calloc(n, sizeof(float));
            for (size_t i = r.shard_off; i < r.shard_off + r.shard_n; i++) p[i] = (float)c->rank * 1000.0f + (float)i;
            CHECK_OK(pvlm_reducer_allgather(&r, p, &err), &err);
            int badp = 0;
            for (int q = 0; q < c->size; q++) {
                size_t o, k;
                pvlm_comm_split(n, c->size, q, &o, &k);
                for (size_t i = o; i < o + k; i++)
                    if (p[i] != (float)q * 1000.0f + (float)i) badp++;
            }
            CHECK_MSG(badp == 0, "allgather: %d wrong params", badp);
            free(p);
        }
    }
    CHECK(r.rounds == 2);
    CHECK(r.bytes > 0);
    pvlm_reducer_free(&r);
    free(g);
}

int main(int argc, char **argv) {
    pvlm_err err = {0};
    CHECK_OK(pvlm_comm_install_signals(&err), &err);
    pvlm_comm c;
    if (pvlm_comm_init(&c, &argc, &argv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* even split covers [0,n) exactly */
    for (size_t n = 0; n < 20; n++)
        for (int P = 1; P <= 5; P++) {
            size_t next = 0;
            for (int q = 0; q < P; q++) {
                size_t o, k;
                pvlm_comm_split(n, P, q, &o, &k);
                CHECK(o == next);
                next = o + k;
            }
            CHECK(next == n);
        }
    size_t sizes[] = {1, 5, 1000, 4099};
    size_t buckets[] = {1, 37, 1024, 0};
    uint64_t seed = 1;
    for (int zi = 0; zi < 2; zi++)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
            for (size_t bi = 0; bi < sizeof buckets / sizeof *buckets; bi++)
                for (int hook = 0; hook < 2; hook++) round_trip(&c, sizes[si], NULL, NULL, 0, buckets[bi], zi, hook, seed++, 0, 0);
    /* the same with a progress thread polling the buckets */
    for (int zi = 0; zi < 2; zi++)
        for (size_t bi = 0; bi < sizeof buckets / sizeof *buckets; bi++) round_trip(&c, 4099, NULL, NULL, 0, buckets[bi], zi, 1, seed++, 1, 0);
    /* segments (trainable ranges) */
    size_t so[] = {3, 100, 900}, sn[] = {10, 250, 99};
    for (int zi = 0; zi < 2; zi++) round_trip(&c, 1000, so, sn, 3, 64, zi, 1, seed++, zi, 0);
    /* small merge limits: several blocking calls after backward (merged buckets that stop at the
     * limit and at segment gaps) and a chunked ZeRO-1 all-gather */
    for (int zi = 0; zi < 2; zi++)
        for (int hook = 0; hook < 2; hook++) {
            round_trip(&c, 4099, NULL, NULL, 0, 37, zi, hook, seed++, 0, 100);
            round_trip(&c, 1000, so, sn, 3, 16, zi, hook, seed++, 0, 50);
        }
    /* bad segments are rejected */
    {
        pvlm_reducer r;
        size_t bo[] = {10, 5}, bn[] = {10, 1};
        float g[32];
        CHECK(pvlm_reducer_init(&r, &c, g, 32, bo, bn, 2, NULL, &err) == -1);
    }

    /* stop flag: only the last rank "receives" a signal; everyone must agree */
    int stop = -1;
    CHECK_OK(pvlm_comm_or(&c, 0, &stop, &err), &err);
    CHECK(stop == 0);
    if (c.rank == c.size - 1) raise(SIGUSR1);
    CHECK(pvlm_comm_stop_local() == (c.rank == c.size - 1 ? SIGUSR1 : 0));
    CHECK_OK(pvlm_comm_or(&c, pvlm_comm_stop_local() != 0, &stop, &err), &err);
    CHECK(stop == 1);

    /* JSON broadcast and gather */
    json_t *j = NULL;
    if (c.rank == 0) j = json_pack("{s:s, s:i}", "resume", "ckpt/step-00000010", "step", 10);
    CHECK_OK(pvlm_comm_bcast_json(&c, &j, 0, &err), &err);
    CHECK(j && json_integer_value(json_object_get(j, "step")) == 10);
    json_decref(j);
    json_t *mine = json_pack("{s:i}", "rank", c.rank), *all = NULL;
    CHECK_OK(pvlm_comm_gather_json(&c, mine, &all, 0, &err), &err);
    if (c.rank == 0) {
        CHECK(json_array_size(all) == (size_t)c.size);
        for (int q = 0; q < c.size; q++) CHECK(json_integer_value(json_object_get(json_array_get(all, (size_t)q), "rank")) == q);
    } else {
        CHECK(all == NULL);
    }
    json_decref(all);
    json_decref(mine);
    char *s = c.rank == 0 ? "hello" : NULL;
    CHECK_OK(pvlm_comm_bcast_str(&c, &s, 0, &err), &err);
    CHECK(s && !strcmp(s, "hello"));
    if (c.rank) free(s);

    int fails = pvlm_test_failures;
    int any = 0;
    MPI_Allreduce(&fails, &any, 1, MPI_INT, MPI_SUM, c.comm);
    pvlm_comm_finalize(&c);
    if (any && !fails) return 1;
    return pvlm_test_done("reducer");
}
