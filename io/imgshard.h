/* imgshard.h - LMDB image-text shards: one record per image, read by index.
 *
 * A shard is one LMDB environment in a single file (MDB_NOSUBDIR), named by the
 * builder like "images-00003-of-00016.lmdb". It holds N records under keys
 * 0..N-1 and one meta entry; full byte layout in docs/format-image-shards.md.
 *
 * Keys: 8-byte big-endian record index, so append order is sorted order and the
 * writer can use MDB_APPEND (no page splits in the middle, densely packed pages).
 * The meta entry lives under key 0xFFFFFFFFFFFFFFFF (sorts last, written last):
 * a JSON object {"format":"pvlm-imgshard","version":1,"records":N,
 * "records_hash":"<16 hex>", "settings":{...}}. A shard without it is incomplete.
 *
 * Record value (all integers little-endian), PVLM_IMGREC_HEADER = 56 bytes:
 *   0  u32 magic "PVIR"          4  u16 version (1)     6  u8 encoding (1 jpeg, 2 raw RGB)
 *   7  u8  channels (3)          8  u32 orig_w         12  u32 orig_h
 *  16  u32 stored_w             20  u32 stored_h       24  u32 ncaptions
 *  28  u32 id_len               32  u32 text_bytes     36  u32 reserved (0)
 *  40  u64 image_len            48  u64 checksum: XXH3-64 of the whole value with
 *                                                   these 8 bytes read as zero
 *  56  id bytes, NUL; then per caption: u32 len, bytes, NUL   (text_bytes in all)
 *  56+text_bytes  image bytes (JPEG file, or stored_h*stored_w*3 RGB HWC)
 * Strings are stored NUL-terminated so readers can point straight at them.
 *
 * Writer: writes "<path>.tmp" with large transactions (commit every txn_records
 * records), a large map (sparse), MDB_APPEND; finish() commits, writes the meta
 * entry, makes a compacting copy (mdb_env_copy2 + MDB_CP_COMPACT) to
 * "<path>.compact.tmp", fsyncs it, renames it to <path>, fsyncs the directory and
 * removes the temp file. So <path> exists only for a complete shard; a crash
 * leaves "*.tmp" files, which the builder deletes and rebuilds. The builder
 * records the shard's size and XXH3 file checksum in the manifest only after this.
 *
 * Reader: MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD (random access: no kernel
 * read-ahead of pages we will not use) | MDB_NOSUBDIR; optional MDB_NOLOCK for
 * read-only filesystems (safe: a finished shard is never written again).
 * pvlm_imgshard_get is thread-safe: each call runs its own short read
 * transaction (MDB_NOTLS allows several per thread) and copies the record into
 * the caller's pvlm_imgrec. MDB_MAP_RESIZED is handled by mdb_env_set_mapsize(0)
 * and a retry; stale reader slots of dead processes are cleared with
 * mdb_reader_check at open and when the reader table is full.
 * NEVER use a reader across fork(): LMDB forbids an environment opened before
 * fork from being used in the child (its locks and map belong to the parent).
 * Open readers after forking (e.g. in each loader process), and open a given
 * shard at most once per process (LMDB's rule; share the reader between threads).
 */
#ifndef PVLM_IO_IMGSHARD_H
#define PVLM_IO_IMGSHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define PVLM_IMGREC_MAGIC 0x52495650u /* "PVIR" as little-endian bytes */
#define PVLM_IMGREC_VERSION 1
#define PVLM_IMGREC_HEADER 56
#define PVLM_IMGSHARD_META_KEY UINT64_MAX

enum { PVLM_IMG_ENC_JPEG = 1, PVLM_IMG_ENC_RAW = 2 };

/* One record, used both as writer input (caller fills the pointers; nothing is
 * owned) and as reader output (pointers into rec's own storage, valid until the
 * next get into the same rec or pvlm_imgrec_free). Zero-initialise before first use. */
typedef struct pvlm_imgrec {
    const char *id;        /* source id: COCO image id, file stem, URL... (NUL-terminated) */
    int ncaptions;         /* >= 0 */
    const char **captions; /* [ncaptions] NUL-terminated UTF-8 */
    int orig_w, orig_h;    /* size of the source image before any resize */
    int stored_w, stored_h;
    int encoding;         /* PVLM_IMG_ENC_JPEG or PVLM_IMG_ENC_RAW */
    const uint8_t *image; /* JPEG bytes, or stored_h*stored_w*3 RGB (HWC) */
    uint64_t image_len;
    /* reader-owned storage (private) */
    uint8_t *buf_;
    size_t cap_;
    const char **capv_;
    int capv_cap_;
} pvlm_imgrec;

/* Serialise rec into a malloc'd value (*out, caller frees) of *n bytes. */
int pvlm_imgrec_encode(const pvlm_imgrec *rec, uint8_t **out, size_t *n, pvlm_err *err);
/* Parse and verify (magic, version, sizes, checksum) a value; copies it into rec's
 * storage. `what` names it in errors ("shard x.lmdb record 17"). */
int pvlm_imgrec_decode(const void *data, size_t n, pvlm_imgrec *rec, const char *what, pvlm_err *err);
void pvlm_imgrec_free(pvlm_imgrec *rec);

/* ---- reader ---- */
typedef struct pvlm_imgshard_reader pvlm_imgshard_reader;

enum { PVLM_IMGSHARD_NOLOCK = 1 };

/* Open a finished shard read-only; flags: 0 or PVLM_IMGSHARD_NOLOCK. Returns NULL
 * with err on failure (missing file, not LMDB, no/invalid meta entry). Close with
 * pvlm_imgshard_close. */
pvlm_imgshard_reader *pvlm_imgshard_open(const char *path, int flags, pvlm_err *err);
/* The same, when the file's size is known (a manifest's "bytes"; 0: unknown): a file
 * of any other size is refused as damaged before LMDB maps it. Either way the pages
 * LMDB's meta page claims must lie inside the file, and every value read must too,
 * so a truncated or damaged shard is an error naming the file, never a SIGBUS. */
pvlm_imgshard_reader *pvlm_imgshard_open_sized(const char *path, int flags, uint64_t bytes, pvlm_err *err);
int64_t pvlm_imgshard_count(const pvlm_imgshard_reader *r);
/* The meta JSON text (borrowed, valid until close). */
const char *pvlm_imgshard_meta(const pvlm_imgshard_reader *r);
const char *pvlm_imgshard_path(const pvlm_imgshard_reader *r);
/* Record `index` (0..count-1) into rec. Thread-safe. Errors name shard and index;
 * a corrupt record gives PVLM_EFORMAT (callers skip + count it). */
int pvlm_imgshard_get(pvlm_imgshard_reader *r, int64_t index, pvlm_imgrec *rec, pvlm_err *err);
void pvlm_imgshard_close(pvlm_imgshard_reader *r);

/* ---- writer ---- */
typedef struct pvlm_imgshard_writer pvlm_imgshard_writer;

typedef struct pvlm_imgshard_wopts {
    int64_t txn_records;       /* commit every this many records (0: 1024) */
    uint64_t map_size;         /* LMDB map size in bytes (0: 1 TiB; sparse, only reserves address space) */
    const char *settings_json; /* JSON object stored in the meta entry's "settings" (NULL: {}) */
} pvlm_imgshard_wopts;

typedef struct pvlm_imgshard_info {
    int64_t records;
    uint64_t bytes;    /* size of the final file */
    uint64_t checksum; /* XXH3-64 of the final file (what the manifest records) */
} pvlm_imgshard_info;

/* Start writing the shard that will be `path`. Removes stale "<path>.tmp" and
 * "<path>.compact.tmp" first. opts may be NULL. NULL + err on failure. */
pvlm_imgshard_writer *pvlm_imgshard_writer_open(const char *path, const pvlm_imgshard_wopts *opts, pvlm_err *err);
/* Append the next record (index = number added so far). */
int pvlm_imgshard_writer_add(pvlm_imgshard_writer *w, const pvlm_imgrec *rec, pvlm_err *err);
/* Append an already-encoded value (from pvlm_imgrec_encode; it is verified). */
int pvlm_imgshard_writer_add_encoded(pvlm_imgshard_writer *w, const void *val, size_t n, pvlm_err *err);
int64_t pvlm_imgshard_writer_count(const pvlm_imgshard_writer *w);
/* Commit, write meta, compact-copy, fsync, rename to path, checksum. Always frees
 * w (on failure temp files are removed). info may be NULL. */
int pvlm_imgshard_writer_finish(pvlm_imgshard_writer *w, pvlm_imgshard_info *info, pvlm_err *err);
/* Give up: free w and remove its temp files; <path> is not touched. NULL is a no-op. */
void pvlm_imgshard_writer_abort(pvlm_imgshard_writer *w);

#endif
