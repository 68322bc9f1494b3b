/* reducer.c - see reducer.h. */
#include "reducer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/timer.h"

#define DEFAULT_BUCKET_ELEMS ((size_t)1 << 20)
/* 4M floats = 16 MiB per blocking call: Open MPI's blocking collectives allocate a temporary as large
 * as the message on every call; the cap bounds it (pvlm_comm_init keeps such temporaries in the heap,
 * which removed the measured drop above 16 MiB: docs/perf-scaling.md). */
#define DEFAULT_MERGE_ELEMS ((size_t)4 << 20)

static int add_bucket(pvlm_reducer *r, int *cap, size_t off, size_t n, pvlm_err *err) {
    if (r->nb == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        pvlm_reducer_bucket *nbk = realloc(r->b, (size_t)nc * sizeof *nbk);
        if (!nbk) return pvlm_err_set(err, PVLM_ENOMEM, "reducer: out of memory for the bucket table");
        r->b = nbk;
        *cap = nc;
    }
    pvlm_reducer_bucket *b = &r->b[r->nb++];
    memset(b, 0, sizeof *b);
    b->off = off;
    b->n = n;
    b->req = MPI_REQUEST_NULL;
    return 0;
}

static void test_outstanding(pvlm_reducer *r, pvlm_err *err);
static int reduce_rest_blocking(pvlm_reducer *r, pvlm_err *err);

/* Progress thread: while a round is active, MPI_Test the launched buckets every ~0.5 ms. */
static void *progress_main(void *arg) {
    pvlm_reducer *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->thread_quit) {
        if (!r->active || r->failed) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        test_outstanding(r, &r->hook_err);
        pthread_mutex_unlock(&r->mu);
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int pvlm_reducer_init(pvlm_reducer *r, const pvlm_comm *c, float *buf, size_t n, const size_t *seg_off,
                      const size_t *seg_n, int nseg, const pvlm_reducer_config *cfg, pvlm_err *err) {
    memset(r, 0, sizeof *r);
    r->comm = c; /* non-NULL comm = mu/cv initialised (pvlm_reducer_free relies on it) */
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->buf = buf;
    r->n = n;
    r->zero1 = cfg && cfg->zero1;
    r->next = -1;
    if (n >= (size_t)INT32_MAX)
        return pvlm_err_set(err, PVLM_EINVAL, "reducer: %zu floats exceed MPI's int counts (< 2^31)", n);
    size_t be = cfg && cfg->bucket_elems ? cfg->bucket_elems : DEFAULT_BUCKET_ELEMS;
    int cap = 0;
    size_t whole_off = 0, whole_n = n;
    if (nseg == 0) {
        seg_off = &whole_off;
        seg_n = &whole_n;
        nseg = 1;
    }
    size_t prev_end = 0;
    for (int s = 0; s < nseg; s++) {
        if (seg_off[s] < prev_end || seg_off[s] + seg_n[s] > n) {
            pvlm_reducer_free(r);
            return pvlm_err_set(err, PVLM_EINVAL, "reducer: segment %d [%zu,+%zu) is unsorted, overlapping or outside [0,%zu)",
                                s, seg_off[s], seg_n[s], n);
        }
        prev_end = seg_off[s] + seg_n[s];
        for (size_t o = 0; o < seg_n[s]; o += be) {
            size_t k = seg_n[s] - o < be ? seg_n[s] - o : be;
            if (add_bucket(r, &cap, seg_off[s] + o, k, err)) {
                pvlm_reducer_free(r);
                return -1;
            }
        }
    }
    int P = c->size;
    r->merge_elems = cfg && cfg->merge_elems ? cfg->merge_elems : DEFAULT_MERGE_ELEMS;
    if (r->merge_elems < be) r->merge_elems = be;
    if (r->zero1) {
        pvlm_comm_split(n, P, c->rank, &r->shard_off, &r->shard_n);
        r->slice = pvlm_alloc(r->shard_n * sizeof(float), err);
        r->ag_counts = calloc((size_t)P, sizeof(int));
        r->ag_displs = calloc((size_t)P, sizeof(int));
        r->rs_counts = calloc((size_t)P, sizeof(int));
        r->ag_chunk_displs = calloc((size_t)P, sizeof(int));
        if (!r->slice || !r->ag_counts || !r->ag_displs || !r->rs_counts || !r->ag_chunk_displs) {
            pvlm_reducer_free(r);
            return pvlm_err_set(err, PVLM_ENOMEM, "reducer: out of memory for the ZeRO-1 slice");
        }
        for (int q = 0; q < P; q++) {
            size_t o, k;
            pvlm_comm_split(n, P, q, &o, &k);
            r->ag_counts[q] = (int)k;
            r->ag_displs[q] = (int)o;
        }
        for (int i = 0; i < r->nb; i++) {
            pvlm_reducer_bucket *b = &r->b[i];
            b->rcounts = calloc((size_t)P, sizeof(int));
            if (!b->rcounts) {
                pvlm_reducer_free(r);
                return pvlm_err_set(err, PVLM_ENOMEM, "reducer: out of memory for bucket counts");
            }
            for (int q = 0; q < P; q++) {
                size_t lo = (size_t)r->ag_displs[q], hi = lo + (size_t)r->ag_counts[q];
                size_t a = b->off > lo ? b->off : lo, e = b->off + b->n < hi ? b->off + b->n : hi;
                b->rcounts[q] = e > a ? (int)(e - a) : 0;
                if (q == c->rank) b->recv_off = e > a ? a : r->shard_off;
            }
        }
    } else {
        r->shard_off = 0;
        r->shard_n = n;
    }
    if (cfg && cfg->progress_thread) {
        if (c->thread_level < MPI_THREAD_MULTIPLE) {
            pvlm_reducer_free(r);
            return pvlm_err_set(err, PVLM_EMPI, "reducer: a progress thread needs MPI_THREAD_MULTIPLE (granted level %d)",
                                c->thread_level);
        }
        int rc = pthread_create(&r->thread, NULL, progress_main, r);
        if (rc) {
            pvlm_reducer_free(r);
            errno = rc;
            return pvlm_err_errno(err, "reducer: pthread_create");
        }
        r->use_thread = 1;
    }
    return 0;
}

void pvlm_reducer_free(pvlm_reducer *r) {
    if (r->use_thread) {
        pthread_mutex_lock(&r->mu);
        r->thread_quit = 1;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        r->use_thread = 0;
    }
    if (r->comm) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
    }
    if (r->b)
        for (int i = 0; i < r->nb; i++) {
            if (r->b[i].req != MPI_REQUEST_NULL) MPI_Request_free(&r->b[i].req);
            free(r->b[i].rcounts);
        }
    free(r->b);
    pvlm_free(r->slice);
    free(r->ag_counts);
    free(r->ag_displs);
    free(r->rs_counts);
    free(r->ag_chunk_displs);
    memset(r, 0, sizeof *r);
}

void pvlm_reducer_stats_reset(pvlm_reducer *r) {
    r->wait_s = r->hook_s = r->gather_s = 0;
    r->bytes = 0;
    r->rounds = 0;
    r->hook_launches = r->launches = 0;
    r->thread_tests = 0;
}

int pvlm_reducer_begin(pvlm_reducer *r, pvlm_err *err) {
    if (r->active) return pvlm_err_set(err, PVLM_EINVAL, "reducer: begin called twice without finish");
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nb; i++) {
        r->b[i].ready = 0;
        r->b[i].launched = r->b[i].done = 0;
        r->b[i].req = MPI_REQUEST_NULL;
    }
    if (r->zero1 && r->shard_n) memset(r->slice, 0, r->shard_n * sizeof(float));
    r->next = r->nb - 1;
    r->failed = 0;
    pvlm_err_clear(&r->hook_err);
    r->active = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int launch(pvlm_reducer *r, pvlm_reducer_bucket *b, pvlm_err *err) {
    int rc;
    if (r->zero1) {
        float *recv = r->slice + (b->recv_off - r->shard_off);
        rc = MPI_Ireduce_scatter(r->buf + b->off, recv, b->rcounts, MPI_FLOAT, MPI_SUM, r->comm->comm, &b->req);
    } else {
        rc = MPI_Iallreduce(MPI_IN_PLACE, r->buf + b->off, (int)b->n, MPI_FLOAT, MPI_SUM, r->comm->comm, &b->req);
    }
    if (rc != MPI_SUCCESS) return pvlm_comm_mpi_err(rc, err, r->zero1 ? "MPI_Ireduce_scatter(gradients)" : "MPI_Iallreduce(gradients)");
    b->launched = 1;
    r->launches++;
    r->bytes += (uint64_t)b->n * sizeof(float);
    return 0;
}

/* Launch, in order, every bucket from `next` down that is fully ready. */
static int launch_ready(pvlm_reducer *r, pvlm_err *err) {
    while (r->next >= 0 && r->b[r->next].ready >= r->b[r->next].n) {
        if (launch(r, &r->b[r->next], err)) return -1;
        r->hook_launches++;
        r->next--;
    }
    return 0;
}

/* MPI_Test the launched, unfinished buckets in launch order; caller holds mu. */
static void test_outstanding(pvlm_reducer *r, pvlm_err *err) {
    if (!r->active || r->failed) return;
    for (int i = r->nb - 1; i > r->next; i--) {
        pvlm_reducer_bucket *b = &r->b[i];
        if (!b->launched || b->done) continue;
        int flag = 0;
        int rc = MPI_Test(&b->req, &flag, MPI_STATUS_IGNORE);
        if (r->use_thread) r->thread_tests++;
        if (rc != MPI_SUCCESS) {
            r->failed = 1;
            pvlm_comm_mpi_err(rc, err, "MPI_Test(gradient bucket)");
            return;
        }
        if (flag) b->done = 1;
        else break; /* later buckets were launched after this one; they are unlikely to be done */
    }
}

void pvlm_reducer_poll(pvlm_reducer *r) {
    if (r->use_thread) return; /* the progress thread polls */
    test_outstanding(r, &r->hook_err);
}

void pvlm_reducer_hook(void *ctx, size_t off, size_t count) {
    pvlm_reducer *r = ctx;
    if (!r || !r->active || r->failed || count == 0) return;
    double t0 = pvlm_now();
    pthread_mutex_lock(&r->mu);
    size_t end = off + count;
    /* first bucket whose end is past off (buckets sorted by offset) */
    int lo = 0, hi = r->nb;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (r->b[mid].off + r->b[mid].n <= off) lo = mid + 1;
        else hi = mid;
    }
    for (int i = lo; i < r->nb && r->b[i].off < end; i++) {
        pvlm_reducer_bucket *b = &r->b[i];
        size_t a = b->off > off ? b->off : off, e = b->off + b->n < end ? b->off + b->n : end;
        if (e > a) b->ready += e - a;
    }
    if (launch_ready(r, &r->hook_err)) r->failed = 1;
    if (!r->use_thread) test_outstanding(r, &r->hook_err);
    pthread_mutex_unlock(&r->mu);
    r->hook_s += pvlm_now() - t0;
}

/* One blocking collective over buckets lo..hi (contiguous in the buffer). Plain: MPI_Allreduce in
 * place. ZeRO-1: MPI_Reduce_scatter whose per-rank counts are the sums of the buckets' counts (the
 * range's overlap with each rank's slice) into this rank's part of the slice. */
static int reduce_range_blocking(pvlm_reducer *r, int lo, int hi, pvlm_err *err) {
    size_t a = r->b[lo].off, e = r->b[hi].off + r->b[hi].n;
    int rc;
    if (r->zero1) {
        int P = r->comm->size;
        for (int q = 0; q < P; q++) {
            long long c = 0;
            for (int i = lo; i <= hi; i++) c += r->b[i].rcounts[q];
            r->rs_counts[q] = (int)c;
        }
        size_t s0 = a > r->shard_off ? a : r->shard_off;
        float *recv = s0 < r->shard_off + r->shard_n ? r->slice + (s0 - r->shard_off) : r->slice;
        rc = MPI_Reduce_scatter(r->buf + a, recv, r->rs_counts, MPI_FLOAT, MPI_SUM, r->comm->comm);
    } else {
        rc = MPI_Allreduce(MPI_IN_PLACE, r->buf + a, (int)(e - a), MPI_FLOAT, MPI_SUM, r->comm->comm);
    }
    if (rc != MPI_SUCCESS) return pvlm_comm_mpi_err(rc, err, r->zero1 ? "MPI_Reduce_scatter(gradients)" : "MPI_Allreduce(gradients)");
    for (int i = lo; i <= hi; i++) {
        r->b[i].launched = r->b[i].done = 1;
        r->launches++;
        r->bytes += (uint64_t)r->b[i].n * sizeof(float);
    }
    return 0;
}

/* Buckets next..0 were not launched during backward. Open MPI 4.1 makes no asynchronous progress,
 * so a non-blocking collective that is waited on at once gains nothing and costs libnbc's
 * algorithm: MPI_Iallreduce on an in-place buffer or fewer than 4 ranks is a binomial reduce +
 * broadcast (every byte through rank 0, not the bandwidth-optimal ring), allocates a temporary as
 * large as the message on every call and advances one round per progress call (Open MPI 4.1
 * coll/libnbc, nbc_iallreduce.c). Blocking collectives use coll/tuned's decision rules instead.
 * Adjacent buckets are merged up to merge_elems floats per call (fewer calls, fewer latencies),
 * from the highest offset down like the launches, so every rank issues the same calls. */
static int reduce_rest_blocking(pvlm_reducer *r, pvlm_err *err) {
    int hi = r->next;
    while (hi >= 0) {
        int lo = hi;
        size_t n = r->b[hi].n;
        while (lo > 0 && r->b[lo - 1].off + r->b[lo - 1].n == r->b[lo].off && n + r->b[lo - 1].n <= r->merge_elems) {
            lo--;
            n += r->b[lo].n;
        }
        if (reduce_range_blocking(r, lo, hi, err)) return -1;
        hi = lo - 1;
    }
    return 0;
}

int pvlm_reducer_finish(pvlm_reducer *r, pvlm_err *err) {
    if (!r->active) return pvlm_err_set(err, PVLM_EINVAL, "reducer: finish without begin");
    int ret = 0;
    double t0 = pvlm_now();
    pthread_mutex_lock(&r->mu);
    r->active = 0; /* the progress thread stops touching the requests once it sees this */
    if (r->failed) {
        if (err) *err = r->hook_err;
        ret = -1;
    }
    /* Whatever the hook did not launch (overlap off, a model without hooks, the last buckets of
     * backward): blocking collectives over merged ranges, not non-blocking ones waited on at once. */
    if (!ret && r->next >= 0 && reduce_rest_blocking(r, err)) ret = -1;
    r->next = -1;
    for (int i = r->nb - 1; i >= 0; i--) {
        pvlm_reducer_bucket *b = &r->b[i];
        if (!b->launched || b->done) continue;
        int rc = MPI_Wait(&b->req, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS && !ret) ret = pvlm_comm_mpi_err(rc, err, "MPI_Wait(gradient bucket)");
        b->done = 1;
    }
    pthread_mutex_unlock(&r->mu);
    r->wait_s += pvlm_now() - t0;
    r->rounds++;
    return ret;
}

/* The all-gather in chunks of at most merge_elems floats (like the blocking reductions, which bounds
 * Open MPI's per-call temporaries): chunk [a, e) gathers
 * from every rank the part of its slice inside the chunk, in place. */
int pvlm_reducer_allgather(pvlm_reducer *r, float *params, pvlm_err *err) {
    if (!r->zero1 || r->comm->size == 1) return 0;
    double t0 = pvlm_now();
    int P = r->comm->size, rc = MPI_SUCCESS;
    for (size_t a = 0; a < r->n && rc == MPI_SUCCESS; a += r->merge_elems) {
        size_t e = r->n - a < r->merge_elems ? r->n : a + r->merge_elems;
        for (int q = 0; q < P; q++) {
            size_t lo = (size_t)r->ag_displs[q], hi = lo + (size_t)r->ag_counts[q];
            size_t s0 = lo > a ? lo : a, s1 = hi < e ? hi : e;
            r->rs_counts[q] = s1 > s0 ? (int)(s1 - s0) : 0;
            r->ag_chunk_displs[q] = s1 > s0 ? (int)(s0 - a) : 0;
        }
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params + a, r->rs_counts, r->ag_chunk_displs,
                            MPI_FLOAT, r->comm->comm);
    }
    r->gather_s += pvlm_now() - t0;
    if (rc != MPI_SUCCESS) return pvlm_comm_mpi_err(rc, err, "MPI_Allgatherv(parameters)");
    r->bytes += (uint64_t)r->n * sizeof(float);
    return 0;
}
