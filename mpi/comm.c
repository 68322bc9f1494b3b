/* comm.c - see comm.h. */
#include "comm.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/threads.h"

/* Set by the handlers; the one process-wide variable of mpi/ (a handler can reach nothing else). */
static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int signo) { g_stop_signal = signo; }

int pvlm_comm_install_signals(pvlm_err *err) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR1, &sa, NULL) != 0) return pvlm_err_errno(err, "sigaction(SIGUSR1)");
    if (sigaction(SIGTERM, &sa, NULL) != 0) return pvlm_err_errno(err, "sigaction(SIGTERM)");
    return 0;
}

int pvlm_comm_stop_local(void) { return (int)g_stop_signal; }

void pvlm_comm_request_stop(int signo) { g_stop_signal = signo ? signo : SIGUSR1; }

int pvlm_comm_mpi_err(int rc, pvlm_err *err, const char *what) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    return pvlm_err_set(err, PVLM_EMPI, "%s: %s", what, s);
}

#define MPI_CHECK(call, what)                                                     \
    do {                                                                          \
        int rc_ = (call);                                                         \
        if (rc_ != MPI_SUCCESS) return pvlm_comm_mpi_err(rc_, err, (what));       \
    } while (0)

int pvlm_comm_init(pvlm_comm *c, int *argc, char ***argv, pvlm_err *err) {
    memset(c, 0, sizeof *c);
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        /* Open MPI 4.1's blocking collectives (coll/tuned: reduce-scatter, ring and recursive-doubling
         * all-reduce) malloc a message-sized temporary on every call. glibc serves allocations above
         * its mmap threshold (dynamic, at most 32 MiB on 64-bit) with a fresh mmap that is unmapped on
         * free, so each call faulted in and zeroed every page again: measured 74-82 ms for one 32 MiB
         * all-reduce against 4-8 ms with the threshold raised (docs/perf-scaling.md), and 265 ms for a
         * 16 MiB reduce-scatter whose receiving rank gets everything. Serving them from the heap and
         * keeping freed heap memory (trim threshold) makes the next call reuse the same pages; the
         * cost is that the process keeps up to the largest temporary resident (core/mem.h). Set before
         * MPI_Init so Open MPI's own start-up allocations follow the same rule. */
        pvlm_mem_keep_heap();
        /* Large messages between ranks of one node: Open MPI's default single-copy mechanism (CMA,
         * process_vm_readv) was measured slower here than copying twice through shared-memory
         * fragments (15.1 MB all-reduce of 2 ranks: 3.6 ms against 2.0 ms; 2-rank step 30.7 against
         * 28.5 ms, docs/perf-scaling.md), and CMA needs ptrace permission between the ranks, which
         * containers often deny. A value the user set (environment or mpirun --mca) wins. */
        setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS) return pvlm_err_set(err, PVLM_EMPI, "MPI_Init_thread failed (code %d)", rc);
        c->thread_level = provided;
        c->inited_here = 1;
    } else {
        MPI_Query_thread(&c->thread_level);
    }
    c->comm = MPI_COMM_WORLD;
    MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(c->comm, &c->rank), "MPI_Comm_rank");
    MPI_CHECK(MPI_Comm_size(c->comm, &c->size), "MPI_Comm_size");
    pvlm_log_set_rank(c->rank);
    if (c->size > 1) {
        /* Which host each rank landed on: on a cluster the first thing to check (the multinode
         * tests check that the ranks of a 3-node job really sit on 3 hosts). */
        char host[256] = "?";
        if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "?");
        host[sizeof host - 1] = 0;
        pvlm_info("rank %d of %d on host %s (pid %ld)", c->rank, c->size, host, (long)getpid());
        const char *sc = getenv("OMPI_MCA_btl_vader_single_copy_mechanism");
        if (c->rank == 0) pvlm_info("shared memory: btl_vader_single_copy_mechanism=%s", sc ? sc : "(Open MPI's default)");
    }
    return 0;
}

void pvlm_comm_finalize(pvlm_comm *c) {
    if (c->inited_here) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Finalize();
    }
    c->inited_here = 0;
}

void pvlm_comm_abort(const pvlm_comm *c, int code) { MPI_Abort(c ? c->comm : MPI_COMM_WORLD, code); }

int pvlm_comm_or(const pvlm_comm *c, int local, int *global, pvlm_err *err) {
    int v = local ? 1 : 0, out = 0;
    MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_LOR, c->comm), "MPI_Allreduce(stop flag)");
    *global = out;
    return 0;
}

int pvlm_comm_sum_i64(const pvlm_comm *c, int64_t *v, int n, pvlm_err *err) {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_SUM, c->comm), "MPI_Allreduce(int64 sum)");
    return 0;
}

int pvlm_comm_sum_f64(const pvlm_comm *c, double *v, int n, pvlm_err *err) {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, c->comm), "MPI_Allreduce(double sum)");
    return 0;
}

int pvlm_comm_max_f64(const pvlm_comm *c, double *v, int n, pvlm_err *err) {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, c->comm), "MPI_Allreduce(double max)");
    return 0;
}

int pvlm_comm_barrier(const pvlm_comm *c, pvlm_err *err) {
    MPI_CHECK(MPI_Barrier(c->comm), "MPI_Barrier");
    return 0;
}

int pvlm_comm_bcast_str(const pvlm_comm *c, char **s, int root, pvlm_err *err) {
    /* length + 1, or 0 for NULL */
    int64_t len = (c->rank == root) ? (*s ? (int64_t)strlen(*s) + 1 : 0) : 0;
    MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT64_T, root, c->comm), "MPI_Bcast(string length)");
    if (len > INT32_MAX) return pvlm_err_set(err, PVLM_EMPI, "broadcast string of %lld bytes is too long", (long long)len);
    if (c->rank != root) {
        *s = NULL;
        if (len == 0) return 0;
        *s = malloc((size_t)len);
        if (!*s) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for a %lld-byte broadcast", (long long)len);
    } else if (len == 0) {
        return 0;
    }
    int rc = MPI_Bcast(*s, (int)len, MPI_CHAR, root, c->comm);
    if (rc != MPI_SUCCESS) {
        if (c->rank != root) {
            free(*s);
            *s = NULL;
        }
        return pvlm_comm_mpi_err(rc, err, "MPI_Bcast(string)");
    }
    return 0;
}

int pvlm_comm_bcast_json(const pvlm_comm *c, json_t **j, int root, pvlm_err *err) {
    char *s = NULL;
    if (c->rank == root && *j) {
        s = json_dumps(*j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s) return pvlm_err_set(err, PVLM_ENOMEM, "cannot serialise JSON for broadcast");
    }
    int rc = pvlm_comm_bcast_str(c, &s, root, err);
    if (c->rank == root) {
        free(s);
        return rc;
    }
    if (rc) return rc;
    *j = NULL;
    if (!s) return 0;
    json_error_t je;
    *j = json_loads(s, JSON_DECODE_ANY, &je);
    free(s);
    if (!*j) return pvlm_err_set(err, PVLM_EMPI, "broadcast JSON does not parse: %s", je.text);
    return 0;
}

int pvlm_comm_gather_json(const pvlm_comm *c, const json_t *mine, json_t **out, int root, pvlm_err *err) {
    if (out) *out = NULL;
    char *s = json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return pvlm_err_set(err, PVLM_ENOMEM, "cannot serialise JSON for gather");
    int len = (int)strlen(s) + 1;
    int *lens = NULL, *displs = NULL;
    char *all = NULL;
    int ret = 0;
    if (c->rank == root) {
        lens = calloc((size_t)c->size, sizeof *lens);
        displs = calloc((size_t)c->size, sizeof *displs);
        if (!lens || !displs) ret = pvlm_err_set(err, PVLM_ENOMEM, "out of memory in gather");
    }
    int rc = MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, root, c->comm);
    if (rc != MPI_SUCCESS && !ret) ret = pvlm_comm_mpi_err(rc, err, "MPI_Gather(lengths)");
    int64_t total = 0;
    if (c->rank == root && !ret) {
        for (int r = 0; r < c->size; r++) {
            displs[r] = (int)total;
            total += lens[r];
        }
        if (total > INT32_MAX) ret = pvlm_err_set(err, PVLM_EMPI, "gathered JSON is too large (%lld bytes)", (long long)total);
        else if (!(all = malloc((size_t)total))) ret = pvlm_err_set(err, PVLM_ENOMEM, "out of memory in gather");
    }
    /* Every rank must take part in the second collective even if root failed above (root would
     * otherwise leave the others waiting): root then receives into nothing and reports. */
    rc = MPI_Gatherv(s, len, MPI_CHAR, all, lens, displs, MPI_CHAR, root, c->comm);
    if (rc != MPI_SUCCESS && !ret) ret = pvlm_comm_mpi_err(rc, err, "MPI_Gatherv(JSON)");
    if (c->rank == root && !ret) {
        json_t *arr = json_array();
        for (int r = 0; r < c->size && !ret; r++) {
            json_error_t je;
            json_t *v = json_loads(all + displs[r], JSON_DECODE_ANY, &je);
            if (!v) ret = pvlm_err_set(err, PVLM_EMPI, "JSON gathered from rank %d does not parse: %s", r, je.text);
            else json_array_append_new(arr, v);
        }
        if (ret) json_decref(arr);
        else if (out) *out = arr;
        else json_decref(arr);
    }
    free(s);
    free(all);
    free(lens);
    free(displs);
    return ret;
}

int pvlm_comm_node_cores(const pvlm_comm *c, int *node_ranks, int *node_cores, pvlm_err *err) {
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    cpu_set_t mask;
    pvlm_threads_cpus(&mask);
    /* the union of the ranks' affinity masks: ranks bound to one core each, or all free to run anywhere */
    int rc = MPI_Allreduce(MPI_IN_PLACE, &mask, (int)sizeof mask, MPI_BYTE, MPI_BOR, node);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, node_ranks);
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) return pvlm_comm_mpi_err(rc, err, "node core count (MPI_Allreduce over the node's ranks)");
    *node_cores = CPU_COUNT(&mask);
    return 0;
}

int pvlm_comm_threads(const pvlm_comm *c, int requested, pvlm_err *err) {
    int ranks = 1, cpus = 1;
    if (requested > 0 || getenv("PVLM_THREADS")) return pvlm_threads_resolve(requested);
    /* collective on every path below, so all ranks agree to take part */
    if (pvlm_comm_node_cores(c, &ranks, &cpus, err)) {
        pvlm_warn("%s; threads from this rank's own CPU mask instead", err->msg);
        return pvlm_threads_resolve(0);
    }
    return pvlm_threads_default(cpus, ranks);
}

void pvlm_comm_split(size_t n, int size, int rank, size_t *off, size_t *cnt) {
    size_t base = n / (size_t)size, rem = n % (size_t)size, r = (size_t)rank;
    *cnt = base + (r < rem ? 1 : 0);
    *off = r * base + (r < rem ? r : rem);
}

int pvlm_comm_start(pvlm_comm *c, int *argc, char ***argv, int threads, pvlm_err *err) {
    if (pvlm_comm_install_signals(err) || pvlm_comm_init(c, argc, argv, err)) return -1;
    pvlm_threads_set(pvlm_comm_threads(c, threads, err));
    return 0;
}
