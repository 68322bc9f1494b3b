/* lmdbcheck.c - see lmdbcheck.h. */
#include "lmdbcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* LMDB 0.9 constants (mdb.c): page and node flags, header sizes, cursor depth */
enum { P_BRANCH = 0x01, P_LEAF = 0x02, P_OVERFLOW = 0x04, P_META = 0x08, P_LEAF2 = 0x20, P_SUBP = 0x40 };
enum { F_BIGDATA = 0x01 };
enum { PAGEHDR = 16, NODEHDR = 8, MAX_DEPTH = 32, MAX_KEY = 511, P_INVALID_ROOT = -1 };
enum { META_MAGIC = 0xBEEFC0DE, META_VERSION = 1, MDB_FIXEDMAP_FLAG = 0x01 };

static uint16_t u16at(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t u32at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t u64at(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

typedef struct walk {
    int fd;
    const char *path;
    uint32_t psize;
    uint64_t npages; /* last_pg + 1, all inside the file */
    uint64_t file_bytes;
    uint8_t *page;   /* one page buffer */
    uint8_t *seen;   /* bitmap over npages */
    uint64_t *stack; /* (pgno << 6 | depth) of pages still to check, next in key order on top */
    size_t nstack, capstack;
    uint8_t prev[MAX_KEY]; /* the last leaf key seen, in key order */
    int prevlen;           /* -1 before the first */
} walk;

static int bad(const walk *w, uint64_t pg, const char *what, pvlm_err *err) {
    return pvlm_err_set(err, PVLM_EFORMAT, "%s: damaged or truncated LMDB file: page %" PRIu64 ": %s (rebuild it)",
                        w->path, pg, what);
}

static int read_page(walk *w, uint64_t pg, pvlm_err *err) {
    ssize_t got = pread(w->fd, w->page, w->psize, (off_t)(pg * w->psize));
    if (got < 0) return pvlm_err_errno(err, "%s: reading LMDB page %" PRIu64, w->path, pg);
    if ((size_t)got != w->psize) return bad(w, pg, "past the end of the file", err);
    return 0;
}

static int push(walk *w, uint64_t pg, unsigned depth, pvlm_err *err) {
    if (pg < 2 || pg >= w->npages) return bad(w, pg, "child page number outside the file", err);
    if (depth >= MAX_DEPTH) return bad(w, pg, "tree deeper than LMDB's 32 levels", err);
    if (w->seen[pg >> 3] & (1u << (pg & 7))) return bad(w, pg, "page reached twice (a cycle)", err);
    w->seen[pg >> 3] |= (uint8_t)(1u << (pg & 7));
    if (w->nstack == w->capstack) {
        size_t cap = w->capstack ? 2 * w->capstack : 256;
        uint64_t *s = realloc(w->stack, cap * sizeof *s);
        if (!s) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory checking LMDB pages", w->path);
        w->stack = s;
        w->capstack = cap;
    }
    w->stack[w->nstack++] = pg << 6 | depth;
    return 0;
}

/* One node of a checked page: inside the page, and what it points to inside the file. */
static int check_node(walk *w, uint64_t pg, int branch, unsigned depth, uint16_t off, pvlm_err *err) {
    const uint8_t *n = w->page + off;
    uint32_t ksize = u16at(n + 6), flags = u16at(n + 4);
    if ((uint32_t)off + NODEHDR + ksize > w->psize) return bad(w, pg, "node key runs past the page", err);
    if (branch) return push(w, u16at(n) | (uint64_t)u16at(n + 2) << 16 | (uint64_t)flags << 32, depth + 1, err);
    /* leaves are visited in key order: their keys must rise strictly (LMDB's default
     * order, memcmp then length), or a damaged key could answer a lookup with another
     * key's value */
    if (ksize > MAX_KEY) return bad(w, pg, "key longer than LMDB's 511 bytes", err);
    if (w->prevlen >= 0) {
        size_t common = ksize < (uint32_t)w->prevlen ? ksize : (size_t)w->prevlen;
        int c = memcmp(w->prev, n + NODEHDR, common);
        if (c > 0 || (c == 0 && (uint32_t)w->prevlen >= ksize)) return bad(w, pg, "keys out of order", err);
    }
    memcpy(w->prev, n + NODEHDR, ksize);
    w->prevlen = (int)ksize;
    uint64_t dsize = u16at(n) | (uint64_t)u16at(n + 2) << 16, at = (uint64_t)off + NODEHDR + ksize;
    if (flags & ~(uint32_t)F_BIGDATA) return bad(w, pg, "node flags of a sub-database (not written here)", err);
    if (!(flags & F_BIGDATA)) return at + dsize > w->psize ? bad(w, pg, "value runs past the page", err) : 0;
    if (at + 8 > w->psize) return bad(w, pg, "overflow page number runs past the page", err);
    uint64_t opg = u64at(w->page + at);
    if (opg < 2 || opg >= w->npages || (w->npages - opg) * w->psize < PAGEHDR + dsize)
        return bad(w, pg, "big value runs past the end of the file", err);
    return 0;
}

static int check_page(walk *w, uint64_t pg, unsigned depth, pvlm_err *err) {
    if (read_page(w, pg, err)) return -1;
    uint16_t flags = u16at(w->page + 10), lower = u16at(w->page + 12), upper = u16at(w->page + 14);
    int kind = flags & (P_BRANCH | P_LEAF | P_OVERFLOW | P_META | P_LEAF2 | P_SUBP);
    if (kind != P_BRANCH && kind != P_LEAF) return bad(w, pg, "not a plain branch or leaf page", err);
    if (lower < PAGEHDR || lower > upper || upper > w->psize || (lower - PAGEHDR) % 2)
        return bad(w, pg, "page header bounds out of range", err);
    unsigned nkeys = (lower - PAGEHDR) / 2u;
    if (nkeys < (kind == P_BRANCH ? 2u : 1u)) return bad(w, pg, "too few nodes", err);
    for (unsigned k = 0; k < nkeys; k++) {
        unsigned i = kind == P_BRANCH ? nkeys - 1 - k : k; /* children pushed last-first: popped in key order */
        uint16_t off = u16at(w->page + PAGEHDR + 2 * i);
        if (off < upper || (uint32_t)off + NODEHDR > w->psize) return bad(w, pg, "node offset out of range", err);
        if (check_node(w, pg, kind == P_BRANCH, depth, off, err)) return -1;
    }
    return 0;
}

/* Meta page i (0 or 1; its first 160 bytes) into m. */
static int read_meta(walk *w, int i, uint8_t m[160], pvlm_err *err) {
    ssize_t got = pread(w->fd, m, 160, (off_t)i * w->psize);
    if (got != 160) return bad(w, (uint64_t)i, "meta page cut short", err);
    if (!(u16at(m + 10) & P_META) || u32at(m + PAGEHDR) != META_MAGIC)
        return bad(w, (uint64_t)i, "not a meta page", err);
    return 0;
}

/* What mdb_env_open takes from a meta page without checking it: the page size (it divides by
 * it), the last page (it maps that far), the environment flags (MDB_FIXEDMAP would map at the
 * address the file names) and the main database's flags (we read plain databases only). */
static int meta_sane(walk *w, int i, const uint8_t *m, pvlm_err *err) {
    uint32_t psize = u32at(m + 40);
    uint64_t last = u64at(m + 136), root = u64at(m + 128), npages = w->file_bytes / w->psize;
    if (u32at(m + PAGEHDR + 4) != META_VERSION) return bad(w, (uint64_t)i, "unknown LMDB data version", err);
    if (psize != w->psize) return bad(w, (uint64_t)i, "page size differs from meta page 0", err);
    if (last < 1 || last >= npages) return bad(w, (uint64_t)i, "last page lies past the end of the file", err);
    if (u16at(m + 44) & MDB_FIXEDMAP_FLAG) return bad(w, (uint64_t)i, "fixed-address map requested", err);
    if (u16at(m + 92) != 0) return bad(w, (uint64_t)i, "main database is not a plain database", err);
    if (root != (uint64_t)P_INVALID_ROOT && (root < 2 || root > last))
        return bad(w, (uint64_t)i, "root page out of range", err);
    return 0;
}

int pvlm_lmdbcheck_file(const char *path, uint64_t file_bytes, pvlm_err *err) {
    walk w = {.fd = open(path, O_RDONLY | O_CLOEXEC), .path = path, .file_bytes = file_bytes};
    if (w.fd < 0) return pvlm_err_errno(err, "%s: cannot open", path);
    uint8_t m0[160], m1[160];
    int rc = -1;
    w.psize = 160; /* only page 0 is read at offset 0: the size does not matter yet */
    if (read_meta(&w, 0, m0, err)) goto out;
    w.psize = u32at(m0 + 40);
    if (w.psize < 512 || w.psize > 65536 || (w.psize & (w.psize - 1))) {
        bad(&w, 0, "page size not a power of two between 512 and 65536", err);
        goto out;
    }
    if (file_bytes < 2ull * w.psize) {
        bad(&w, 1, "file shorter than its two meta pages", err);
        goto out;
    }
    if (read_meta(&w, 1, m1, err) || meta_sane(&w, 0, m0, err) || meta_sane(&w, 1, m1, err)) goto out;
    rc = 0;
out:
    close(w.fd);
    return rc;
}

int pvlm_lmdbcheck_env(MDB_env *env, const char *path, uint64_t file_bytes, pvlm_err *err) {
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    if (mdb_env_info(env, &info) || mdb_env_stat(env, &st) || mdb_env_get_fd(env, &fd))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: damaged LMDB file: no environment info", path);
    walk w = {.fd = fd, .path = path, .psize = st.ms_psize, .prevlen = -1};
    uint64_t npages = (uint64_t)info.me_last_pgno + 1;
    if (w.psize < 256 || w.psize > 65536 || npages > file_bytes / w.psize)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: damaged or truncated LMDB file: its pages need %" PRIu64
                            " x %u bytes, the file has %" PRIu64 " (rebuild it)",
                            path, npages, w.psize, file_bytes);
    w.npages = npages;
    uint8_t m0[160], m1[160];
    if (read_meta(&w, 0, m0, err) || read_meta(&w, 1, m1, err)) return -1;
    /* the meta LMDB picks: the one with the larger transaction id (mdb_env_pick_meta) */
    const uint8_t *m = u64at(m0 + 144) < u64at(m1 + 144) ? m1 : m0;
    uint64_t root = u64at(m + 128), last = u64at(m + 136), entries = u64at(m + 120);
    if (last + 1 != npages || entries != st.ms_entries)
        return bad(&w, m == m0 ? 0 : 1, "meta page disagrees with the one LMDB picked", err);
    if (root == (uint64_t)P_INVALID_ROOT) return 0; /* empty database: LMDB reads no page */
    int rc = -1;
    w.page = malloc(w.psize);
    w.seen = calloc((size_t)(npages / 8 + 1), 1);
    if (!w.page || !w.seen) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory checking LMDB pages", path);
        goto out;
    }
    if (push(&w, root, 0, err)) goto out;
    while (w.nstack) {
        uint64_t e = w.stack[--w.nstack];
        if (check_page(&w, e >> 6, (unsigned)(e & 63), err)) goto out;
    }
    rc = 0;
out:
    free(w.page);
    free(w.seen);
    free(w.stack);
    return rc;
}
