/* imgshard.c - see imgshard.h. */
#include "imgshard.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/le.h"
#include "io/lmdbcheck.h"

static void key_be(uint8_t k[8], uint64_t v) {
    for (int i = 0; i < 8; i++) k[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Checksum of a value with its checksum field (bytes 48..55) taken as zero. */
static uint64_t rec_checksum(const uint8_t *v, size_t n) {
    static const uint8_t zeros[8] = {0};
    pvlm_hasher h;
    if (pvlm_hasher_init(&h, NULL) != 0) return 0;
    pvlm_hasher_update(&h, v, 48);
    pvlm_hasher_update(&h, zeros, 8);
    pvlm_hasher_update(&h, v + PVLM_IMGREC_HEADER, n - PVLM_IMGREC_HEADER);
    uint64_t d = pvlm_hasher_digest(&h);
    pvlm_hasher_free(&h);
    return d;
}

int pvlm_imgrec_encode(const pvlm_imgrec *rec, uint8_t **out, size_t *n, pvlm_err *err) {
    *out = NULL;
    *n = 0;
    if (!rec->id) return pvlm_err_set(err, PVLM_EINVAL, "image record: no source id");
    if (rec->encoding != PVLM_IMG_ENC_JPEG && rec->encoding != PVLM_IMG_ENC_RAW)
        return pvlm_err_set(err, PVLM_EINVAL, "image record '%s': bad encoding %d", rec->id, rec->encoding);
    if (rec->ncaptions < 0 || (rec->ncaptions > 0 && !rec->captions))
        return pvlm_err_set(err, PVLM_EINVAL, "image record '%s': bad caption list", rec->id);
    if (rec->orig_w < 0 || rec->orig_h < 0 || rec->stored_w <= 0 || rec->stored_h <= 0)
        return pvlm_err_set(err, PVLM_EINVAL, "image record '%s': bad sizes", rec->id);
    if (rec->encoding == PVLM_IMG_ENC_RAW && rec->image_len != (uint64_t)rec->stored_w * rec->stored_h * 3)
        return pvlm_err_set(err, PVLM_EINVAL, "image record '%s': raw image is %" PRIu64 " bytes, want %dx%dx3",
                            rec->id, rec->image_len, rec->stored_w, rec->stored_h);
    size_t idl = strlen(rec->id);
    uint64_t text = idl + 1;
    for (int i = 0; i < rec->ncaptions; i++) {
        if (!rec->captions[i])
            return pvlm_err_set(err, PVLM_EINVAL, "image record '%s': caption %d is NULL", rec->id, i);
        text += 4 + strlen(rec->captions[i]) + 1;
    }
    if (text > UINT32_MAX || idl > UINT32_MAX)
        return pvlm_err_set(err, PVLM_EINVAL, "image record '%s': captions too long", rec->id);
    size_t total = PVLM_IMGREC_HEADER + (size_t)text + (size_t)rec->image_len;
    uint8_t *v = malloc(total);
    if (!v) return pvlm_err_set(err, PVLM_ENOMEM, "image record '%s': cannot allocate %zu bytes", rec->id, total);
    memset(v, 0, PVLM_IMGREC_HEADER);
    pvlm_le_put32(v + 0, PVLM_IMGREC_MAGIC);
    pvlm_le_put16(v + 4, PVLM_IMGREC_VERSION);
    v[6] = (uint8_t)rec->encoding;
    v[7] = 3;
    pvlm_le_put32(v + 8, (uint32_t)rec->orig_w);
    pvlm_le_put32(v + 12, (uint32_t)rec->orig_h);
    pvlm_le_put32(v + 16, (uint32_t)rec->stored_w);
    pvlm_le_put32(v + 20, (uint32_t)rec->stored_h);
    pvlm_le_put32(v + 24, (uint32_t)rec->ncaptions);
    pvlm_le_put32(v + 28, (uint32_t)idl);
    pvlm_le_put32(v + 32, (uint32_t)text);
    pvlm_le_put64(v + 40, rec->image_len);
    uint8_t *p = v + PVLM_IMGREC_HEADER;
    memcpy(p, rec->id, idl + 1);
    p += idl + 1;
    for (int i = 0; i < rec->ncaptions; i++) {
        size_t l = strlen(rec->captions[i]);
        pvlm_le_put32(p, (uint32_t)l);
        memcpy(p + 4, rec->captions[i], l + 1);
        p += 4 + l + 1;
    }
    if (rec->image_len) memcpy(p, rec->image, (size_t)rec->image_len);
    pvlm_le_put64(v + 48, rec_checksum(v, total));
    *out = v;
    *n = total;
    return 0;
}

/* Validate a value in place without copying; on success fills the fixed fields of
 * hdr-only info. Used by decode and by the writer's add_encoded. */
static int rec_check(const uint8_t *v, size_t n, const char *what, pvlm_err *err) {
    if (n < PVLM_IMGREC_HEADER)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: record is %zu bytes, shorter than its %d-byte header", what, n,
                            PVLM_IMGREC_HEADER);
    if (pvlm_le_get32(v) != PVLM_IMGREC_MAGIC) return pvlm_err_set(err, PVLM_EFORMAT, "%s: bad record magic", what);
    if (pvlm_le_get16(v + 4) != PVLM_IMGREC_VERSION)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: record version %u, this build reads %d", what, pvlm_le_get16(v + 4),
                            PVLM_IMGREC_VERSION);
    uint64_t text = pvlm_le_get32(v + 32), img = pvlm_le_get64(v + 40);
    if (img > n || PVLM_IMGREC_HEADER + text + img != n)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: record sizes (text %" PRIu64 ", image %" PRIu64 ") do not add up to %zu", what, text,
                            img, n);
    if (pvlm_le_get64(v + 48) != rec_checksum(v, n))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: record checksum mismatch", what);
    int enc = v[6];
    if (enc != PVLM_IMG_ENC_JPEG && enc != PVLM_IMG_ENC_RAW)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: unknown image encoding %d", what, enc);
    /* the sizes the writer accepts (stored 1..INT_MAX, orig 0..INT_MAX): they become ints in pvlm_imgrec,
     * and with both below 2^31 the raw size below cannot wrap */
    uint32_t sw = pvlm_le_get32(v + 16), sh = pvlm_le_get32(v + 20);
    if (sw == 0 || sh == 0 || sw > INT32_MAX || sh > INT32_MAX || pvlm_le_get32(v + 8) > INT32_MAX ||
        pvlm_le_get32(v + 12) > INT32_MAX)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: bad image size (stored %ux%u, original %ux%u)", what, sw, sh,
                            pvlm_le_get32(v + 8), pvlm_le_get32(v + 12));
    if (enc == PVLM_IMG_ENC_RAW && img != (uint64_t)sw * sh * 3)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: raw image size %" PRIu64 " != %ux%ux3", what, img, sw, sh);
    return 0;
}

int pvlm_imgrec_decode(const void *data, size_t n, pvlm_imgrec *rec, const char *what, pvlm_err *err) {
    const uint8_t *src = data;
    if (rec_check(src, n, what, err) != 0) return -1;
    if (rec->cap_ < n) {
        size_t cap = n + n / 4 + 64;
        uint8_t *b = realloc(rec->buf_, cap);
        if (!b) return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot allocate %zu bytes", what, cap);
        rec->buf_ = b;
        rec->cap_ = cap;
    }
    memcpy(rec->buf_, src, n);
    const uint8_t *v = rec->buf_;
    uint32_t ncap = pvlm_le_get32(v + 24), idl = pvlm_le_get32(v + 28), text = pvlm_le_get32(v + 32);
    const uint8_t *p = v + PVLM_IMGREC_HEADER, *end = p + text;
    /* strings must be exactly their recorded length: a NUL inside would silently cut them short */
    if ((uint64_t)idl + 1 > text || p[idl] != 0 || memchr(p, 0, idl))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: bad source id field", what);
    if (ncap > text / 5)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: %u captions cannot fit in %u bytes", what, ncap, text);
    if ((int)ncap > rec->capv_cap_) {
        const char **cv = realloc(rec->capv_, (ncap + 4) * sizeof(*cv));
        if (!cv) return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot allocate caption list", what);
        rec->capv_ = cv;
        rec->capv_cap_ = (int)ncap + 4;
    }
    rec->id = (const char *)p;
    p += idl + 1;
    for (uint32_t i = 0; i < ncap; i++) {
        if (end - p < 5) return pvlm_err_set(err, PVLM_EFORMAT, "%s: caption %u runs past the text block", what, i);
        uint32_t l = pvlm_le_get32(p);
        if ((uint64_t)l + 5 > (uint64_t)(end - p) || p[4 + l] != 0 || memchr(p + 4, 0, l))
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: caption %u has a bad length", what, i);
        rec->capv_[i] = (const char *)(p + 4);
        p += 4 + l + 1;
    }
    if (p != end) return pvlm_err_set(err, PVLM_EFORMAT, "%s: %td stray bytes after the captions", what, end - p);
    rec->ncaptions = (int)ncap;
    rec->captions = rec->capv_;
    rec->encoding = v[6];
    rec->orig_w = (int)pvlm_le_get32(v + 8);
    rec->orig_h = (int)pvlm_le_get32(v + 12);
    rec->stored_w = (int)pvlm_le_get32(v + 16);
    rec->stored_h = (int)pvlm_le_get32(v + 20);
    rec->image_len = pvlm_le_get64(v + 40);
    rec->image = end;
    return 0;
}

void pvlm_imgrec_free(pvlm_imgrec *rec) {
    if (!rec) return;
    free(rec->buf_);
    free(rec->capv_);
    memset(rec, 0, sizeof(*rec));
}

/* ---- reader ---- */
struct pvlm_imgshard_reader {
    MDB_env *env;
    MDB_dbi dbi;
    int64_t count;
    char *meta;
    char *path;
    uint64_t file_bytes;
    pthread_rwlock_t lock; /* readers share, mapsize changes exclusive (LMDB: no txn may be active) */
};

/* LMDB's codes for a file that is not a sound database: the data is bad, not the disk. */
static int mdb_damaged(int rc) {
    return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
           rc == MDB_BAD_VALSIZE || rc == MDB_INCOMPATIBLE;
}

static int mdb_fail(pvlm_err *err, int rc, const char *path, const char *op) {
    if (mdb_damaged(rc))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: damaged image shard: %s: %s", path, op, mdb_strerror(rc));
    return pvlm_err_set(err, rc == ENOENT ? PVLM_ENOTFOUND : PVLM_EIO, "%s: %s: %s", path, op, mdb_strerror(rc));
}

/* Begin a read txn, handling MDB_MAP_RESIZED (another process grew the map:
 * adopt its size with set_mapsize(0), then retry) and MDB_READERS_FULL (clear
 * slots of dead processes, then retry). Called with r->lock held for reading;
 * may drop and re-take it. */
static int begin_read(pvlm_imgshard_reader *r, MDB_txn **txn, pvlm_err *err) {
    for (int attempt = 0;; attempt++) {
        int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, txn);
        if (rc == 0) return 0;
        if (attempt >= 3) return mdb_fail(err, rc, r->path, "mdb_txn_begin");
        if (rc == MDB_MAP_RESIZED) {
            pthread_rwlock_unlock(&r->lock);
            pthread_rwlock_wrlock(&r->lock);
            int rc2 = mdb_env_set_mapsize(r->env, 0);
            pthread_rwlock_unlock(&r->lock);
            pthread_rwlock_rdlock(&r->lock);
            if (rc2 != 0) return mdb_fail(err, rc2, r->path, "mdb_env_set_mapsize after MDB_MAP_RESIZED");
        } else if (rc == MDB_READERS_FULL) {
            int dead = 0;
            mdb_reader_check(r->env, &dead);
            if (!dead) return mdb_fail(err, rc, r->path, "mdb_txn_begin");
        } else {
            return mdb_fail(err, rc, r->path, "mdb_txn_begin");
        }
    }
}

pvlm_imgshard_reader *pvlm_imgshard_open(const char *path, int flags, pvlm_err *err) {
    return pvlm_imgshard_open_sized(path, flags, 0, err);
}

/* The shard is a regular file of the manifest's size (bytes; 0: not checked); *size gets its size. */
static int stat_shard(const char *path, uint64_t bytes, uint64_t *size, pvlm_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        pvlm_err_errno(err, "%s: cannot open image shard", path);
        if (err && errno == ENOENT) err->code = PVLM_ENOTFOUND;
        return -1;
    }
    if (!S_ISREG(st.st_mode))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: not a regular file, cannot be an image shard", path);
    if (bytes && (uint64_t)st.st_size != bytes)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: damaged or truncated image shard: %lld bytes, the manifest says %" PRIu64
                            " (rebuild it)",
                            path, (long long)st.st_size, bytes);
    *size = (uint64_t)st.st_size;
    return 0;
}

/* The read-only LMDB environment over the shard, its pages checked before anything reads them. */
static int open_env(pvlm_imgshard_reader *r, const char *path, int flags, pvlm_err *err) {
    int rc = mdb_env_create(&r->env);
    if (rc != 0) {
        r->env = NULL;
        return mdb_fail(err, rc, path, "mdb_env_create");
    }
    /* Map only what the file holds (LMDB raises it to the data size): thousands of
     * shards open at once must not each reserve the writer's 1 TiB map. */
    mdb_env_set_mapsize(r->env, r->file_bytes > 65536 ? (size_t)r->file_bytes : 65536);
    mdb_env_set_maxreaders(r->env, 1024);
    unsigned int eflags = MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSUBDIR;
    if (flags & PVLM_IMGSHARD_NOLOCK) eflags |= MDB_NOLOCK;
    /* LMDB trusts its meta pages (a page size of 0 divides by zero inside mdb_env_open) */
    if (pvlm_lmdbcheck_file(path, r->file_bytes, err) != 0) return -1;
    rc = mdb_env_open(r->env, path, eflags, 0644);
    if (rc != 0) return mdb_fail(err, rc, path, "opening LMDB read-only");
    /* before anything reads through the map: LMDB trusts its pages, and a damaged or
     * truncated file would fault inside mdb_get instead of returning an error */
    if (pvlm_lmdbcheck_env(r->env, path, r->file_bytes, err) != 0) return -1;
    if (!(flags & PVLM_IMGSHARD_NOLOCK)) {
        int dead = 0;
        mdb_reader_check(r->env, &dead); /* clear reader slots left by crashed processes */
    }
    return 0;
}

/* The meta entry (r->meta, NUL-terminated) and the number of entries in the database. */
static int read_meta(pvlm_imgshard_reader *r, const char *path, size_t *entries, pvlm_err *err) {
    MDB_txn *txn;
    pthread_rwlock_rdlock(&r->lock);
    if (begin_read(r, &txn, err) != 0) {
        pthread_rwlock_unlock(&r->lock);
        return -1;
    }
    int rc = mdb_dbi_open(txn, NULL, 0, &r->dbi);
    if (rc != 0) {
        mdb_txn_abort(txn);
        pthread_rwlock_unlock(&r->lock);
        return mdb_fail(err, rc, path, "mdb_dbi_open");
    }
    uint8_t kb[8];
    key_be(kb, PVLM_IMGSHARD_META_KEY);
    MDB_val k = {8, kb}, v;
    rc = mdb_get(txn, r->dbi, &k, &v);
    MDB_stat ms;
    int rc2 = mdb_stat(txn, r->dbi, &ms);
    if (rc == 0 && (r->meta = malloc(v.mv_size + 1))) {
        memcpy(r->meta, v.mv_data, v.mv_size);
        r->meta[v.mv_size] = 0;
    }
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&r->lock);
    if (rc == MDB_NOTFOUND)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: no meta entry: the shard is incomplete (rebuild it)", path);
    if (rc != 0 || rc2 != 0) return mdb_fail(err, rc ? rc : rc2, path, "reading meta entry");
    if (!r->meta) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
    *entries = (size_t)ms.ms_entries;
    return 0;
}

/* The meta entry is a pvlm-imgshard object whose record count matches the database (records + meta). */
static int check_meta(pvlm_imgshard_reader *r, const char *path, size_t entries, pvlm_err *err) {
    json_error_t je;
    json_t *mj = json_loads(r->meta, 0, &je);
    json_t *jr = mj ? json_object_get(mj, "records") : NULL;
    const char *fmt = mj ? json_string_value(json_object_get(mj, "format")) : NULL;
    if (!mj || !json_is_integer(jr) || !fmt || strcmp(fmt, "pvlm-imgshard") != 0) {
        json_decref(mj);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: meta entry is not a pvlm-imgshard JSON object", path);
    }
    r->count = (int64_t)json_integer_value(jr);
    json_decref(mj);
    if (r->count < 0 || (uint64_t)r->count + 1 != (uint64_t)entries)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: meta says %" PRId64 " records but the database holds %zu entries",
                            path, r->count, entries);
    return 0;
}

pvlm_imgshard_reader *pvlm_imgshard_open_sized(const char *path, int flags, uint64_t bytes, pvlm_err *err) {
    uint64_t size = 0;
    if (stat_shard(path, bytes, &size, err) != 0) return NULL;
    pvlm_imgshard_reader *r = calloc(1, sizeof(*r));
    if (!r) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    r->path = strdup(path);
    r->file_bytes = size;
    pthread_rwlock_init(&r->lock, NULL);
    size_t entries = 0;
    if (open_env(r, path, flags, err) != 0 || read_meta(r, path, &entries, err) != 0 ||
        check_meta(r, path, entries, err) != 0) {
        pvlm_imgshard_close(r);
        return NULL;
    }
    return r;
}

int64_t pvlm_imgshard_count(const pvlm_imgshard_reader *r) {
    return r->count;
}
const char *pvlm_imgshard_meta(const pvlm_imgshard_reader *r) {
    return r->meta;
}
const char *pvlm_imgshard_path(const pvlm_imgshard_reader *r) {
    return r->path;
}

int pvlm_imgshard_get(pvlm_imgshard_reader *r, int64_t index, pvlm_imgrec *rec, pvlm_err *err) {
    if (index < 0 || index >= r->count)
        return pvlm_err_set(err, PVLM_EINVAL, "%s: record %" PRId64 " out of range (0..%" PRId64 ")", r->path, index,
                            r->count - 1);
    pthread_rwlock_rdlock(&r->lock);
    MDB_txn *txn;
    if (begin_read(r, &txn, err) != 0) {
        pthread_rwlock_unlock(&r->lock);
        return -1;
    }
    uint8_t kb[8];
    key_be(kb, (uint64_t)index);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, r->dbi, &k, &v), ret;
    if (rc != 0) {
        ret = pvlm_err_set(err, rc == MDB_NOTFOUND || mdb_damaged(rc) ? PVLM_EFORMAT : PVLM_EIO,
                           "%s: record %" PRId64 ": %s", r->path, index, mdb_strerror(rc));
    } else {
        char what[600];
        snprintf(what, sizeof what, "%s record %" PRId64, r->path, index);
        ret = pvlm_imgrec_decode(v.mv_data, v.mv_size, rec, what, err);
    }
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&r->lock);
    return ret;
}

void pvlm_imgshard_close(pvlm_imgshard_reader *r) {
    if (!r) return;
    if (r->env) mdb_env_close(r->env);
    pthread_rwlock_destroy(&r->lock);
    free(r->meta);
    free(r->path);
    free(r);
}

/* ---- writer ---- */
struct pvlm_imgshard_writer {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    int64_t count, in_txn, txn_records;
    pvlm_hasher rh; /* hash over the record checksums, in order */
    char *settings;
    char *path, *tmp, *ctmp;
};

static char *cat2(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

static void rm_quiet(const char *p) {
    if (unlink(p) != 0 && errno != ENOENT) {
        /* nothing more to do: the builder reports leftovers when it reopens */
    }
}

static void writer_free(pvlm_imgshard_writer *w, int remove_tmp) {
    if (w->txn) mdb_txn_abort(w->txn);
    if (w->env) mdb_env_close(w->env);
    if (w->rh.state) pvlm_hasher_free(&w->rh);
    if (remove_tmp) {
        if (w->tmp) rm_quiet(w->tmp);
        if (w->ctmp) rm_quiet(w->ctmp);
    }
    free(w->settings);
    free(w->path);
    free(w->tmp);
    free(w->ctmp);
    free(w);
}

pvlm_imgshard_writer *pvlm_imgshard_writer_open(const char *path, const pvlm_imgshard_wopts *opts, pvlm_err *err) {
    pvlm_imgshard_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    w->txn_records = opts && opts->txn_records > 0 ? opts->txn_records : 1024;
    uint64_t map = opts && opts->map_size ? opts->map_size : ((uint64_t)1 << 40);
    w->path = strdup(path);
    w->tmp = cat2(path, ".tmp");
    w->ctmp = cat2(path, ".compact.tmp");
    w->settings = strdup(opts && opts->settings_json ? opts->settings_json : "{}");
    if (!w->path || !w->tmp || !w->ctmp || !w->settings) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (pvlm_hasher_init(&w->rh, err) != 0) goto fail;
    rm_quiet(w->tmp);
    rm_quiet(w->ctmp);
    int rc = mdb_env_create(&w->env);
    if (rc != 0) {
        w->env = NULL;
        mdb_fail(err, rc, w->tmp, "mdb_env_create");
        goto fail;
    }
    mdb_env_set_mapsize(w->env, (size_t)map);
    /* One writer owns the temp file (NOLOCK: no lock file left behind); durability
     * comes from the fsync'd compact copy, so the temp env need not sync (NOSYNC). */
    rc = mdb_env_open(w->env, w->tmp, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC | MDB_NOMETASYNC, 0644);
    if (rc != 0) {
        mdb_fail(err, rc, w->tmp, "creating LMDB shard");
        goto fail;
    }
    rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
    if (rc == 0) rc = mdb_dbi_open(w->txn, NULL, 0, &w->dbi);
    if (rc != 0) {
        mdb_fail(err, rc, w->tmp, "mdb_txn_begin");
        goto fail;
    }
    return w;
fail:
    writer_free(w, 1);
    return NULL;
}

static int put_append(pvlm_imgshard_writer *w, uint64_t key, const void *val, size_t n, pvlm_err *err) {
    uint8_t kb[8];
    key_be(kb, key);
    MDB_val k = {8, kb}, v = {n, (void *)val};
    int rc = mdb_put(w->txn, w->dbi, &k, &v, MDB_APPEND);
    if (rc != 0)
        return pvlm_err_set(err, PVLM_EIO, "%s: writing record %" PRIu64 ": %s", w->tmp, key, mdb_strerror(rc));
    return 0;
}

static int commit_reopen(pvlm_imgshard_writer *w, int reopen, pvlm_err *err) {
    int rc = mdb_txn_commit(w->txn);
    w->txn = NULL;
    if (rc != 0) return pvlm_err_set(err, PVLM_EIO, "%s: commit: %s", w->tmp, mdb_strerror(rc));
    w->in_txn = 0;
    if (reopen) {
        rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
        if (rc != 0) return pvlm_err_set(err, PVLM_EIO, "%s: mdb_txn_begin: %s", w->tmp, mdb_strerror(rc));
    }
    return 0;
}

int pvlm_imgshard_writer_add_encoded(pvlm_imgshard_writer *w, const void *val, size_t n, pvlm_err *err) {
    char what[600];
    snprintf(what, sizeof what, "%s record %" PRId64, w->path, w->count);
    if (rec_check(val, n, what, err) != 0) return -1;
    if (put_append(w, (uint64_t)w->count, val, n, err) != 0) return -1;
    pvlm_hasher_update(&w->rh, (const uint8_t *)val + 48, 8);
    w->count++;
    if (++w->in_txn >= w->txn_records) return commit_reopen(w, 1, err);
    return 0;
}

int pvlm_imgshard_writer_add(pvlm_imgshard_writer *w, const pvlm_imgrec *rec, pvlm_err *err) {
    uint8_t *v;
    size_t n;
    if (pvlm_imgrec_encode(rec, &v, &n, err) != 0) return -1;
    int rc = pvlm_imgshard_writer_add_encoded(w, v, n, err);
    free(v);
    return rc;
}

int64_t pvlm_imgshard_writer_count(const pvlm_imgshard_writer *w) {
    return w->count;
}

int pvlm_imgshard_writer_finish(pvlm_imgshard_writer *w, pvlm_imgshard_info *info, pvlm_err *err) {
    json_error_t je;
    json_t *settings = json_loads(w->settings, 0, &je);
    if (!settings || !json_is_object(settings)) {
        json_decref(settings);
        pvlm_err_set(err, PVLM_EINVAL, "%s: settings JSON is not an object", w->path);
        writer_free(w, 1);
        return -1;
    }
    char hex[17];
    pvlm_hash_hex(pvlm_hasher_digest(&w->rh), hex);
    json_t *meta = json_pack("{s:s,s:i,s:I,s:s,s:o}", "format", "pvlm-imgshard", "version", 1, "records",
                             (json_int_t)w->count, "records_hash", hex, "settings", settings);
    char *ms = meta ? json_dumps(meta, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(meta);
    if (!ms) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot build meta entry", w->path);
        writer_free(w, 1);
        return -1;
    }
    int rc = put_append(w, PVLM_IMGSHARD_META_KEY, ms, strlen(ms), err);
    free(ms);
    if (rc != 0 || commit_reopen(w, 0, err) != 0) {
        writer_free(w, 1);
        return -1;
    }
    /* Compacting copy: rewrites the B-tree without free pages, and is the file we keep. */
    rc = mdb_env_copy2(w->env, w->ctmp, MDB_CP_COMPACT);
    if (rc != 0) {
        pvlm_err_set(err, PVLM_EIO, "%s: compacting copy to %s: %s", w->path, w->ctmp, mdb_strerror(rc));
        writer_free(w, 1);
        return -1;
    }
    mdb_env_close(w->env);
    w->env = NULL;
    FILE *f = fopen(w->ctmp, "r+b");
    if (!f) {
        pvlm_err_errno(err, "%s: reopening compact copy", w->ctmp);
        writer_free(w, 1);
        return -1;
    }
    int frc = pvlm_fsync_file(f, w->ctmp, err);
    fclose(f);
    if (frc != 0) {
        writer_free(w, 1);
        return -1;
    }
    if (rename(w->ctmp, w->path) != 0) {
        pvlm_err_errno(err, "%s: renaming %s into place", w->path, w->ctmp);
        writer_free(w, 1);
        return -1;
    }
    char dir[4096];
    pvlm_dirname(w->path, dir, sizeof dir);
    if (pvlm_fsync_dir(dir, err) != 0) {
        writer_free(w, 1);
        return -1;
    }
    rm_quiet(w->tmp);
    if (info) {
        struct stat st;
        info->records = w->count;
        info->bytes = stat(w->path, &st) == 0 ? (uint64_t)st.st_size : 0;
        if (pvlm_hash_file(w->path, &info->checksum, err) != 0) {
            writer_free(w, 1);
            return -1;
        }
    }
    writer_free(w, 1);
    return 0;
}

void pvlm_imgshard_writer_abort(pvlm_imgshard_writer *w) {
    if (w) writer_free(w, 1);
}
