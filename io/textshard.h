/* textshard.h - zstd-compressed text shards: writer and random-access reader.
 *
 * A text shard holds raw UTF-8 documents (not token ids: the shards then do not depend on a
 * vocabulary, a retrained tokenizer needs no re-sharding, and the loader's prefetch threads
 * tokenize only the part of a document a PrefixLM example uses; docs/format-text-shards.md).
 * Documents are packed into independent zstd frames of about `frame_bytes` (1 MiB) of text, so
 * each frame compresses like a large file (small records alone compress poorly; measured against
 * a trained zstd dictionary in docs/format-text-shards.md) and a reader can seek to one frame.
 *
 * File layout (all integers little-endian, offsets 64-bit):
 *   header  64 bytes: magic "PVLMTXT\0", u32 version (1), u32 header size (64), u64 n_docs,
 *           u64 n_frames, u64 index_offset, u64 raw_bytes, u64 index_checksum (XXH3-64 of the
 *           index bytes), u64 header_checksum (XXH3-64 of the first 56 header bytes)
 *   frames  n_frames zstd frames, back to back; a frame decompresses to
 *           u32 len[n] (the document byte lengths) followed by the n documents' bytes
 *   index   n_frames entries of 40 bytes: u64 offset, u64 comp_size, u64 first_doc,
 *           u32 n_docs, u32 raw_size (decompressed frame size), u64 checksum (XXH3-64 of the
 *           compressed frame bytes)
 * The writer writes "<path>.tmp.<pid>", then fsyncs and renames, so a shard either exists
 * complete or not at all.
 *
 * Ownership: the writer and reader are opaque handles created by *_open and freed by
 * *_close / *_abort. A reader is safe to share between threads (reads use pread); a
 * pvlm_textframe is per-thread scratch the caller owns (zero-init, reuse, free).
 */
#ifndef PVLM_IO_TEXTSHARD_H
#define PVLM_IO_TEXTSHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define PVLM_TEXTSHARD_MAGIC "PVLMTXT"
#define PVLM_TEXTSHARD_VERSION 1
#define PVLM_TEXTSHARD_HEADER 64
#define PVLM_TEXTSHARD_INDEX_ENTRY 40
/* Documents longer than this are rejected by the writer (frames store u32 sizes). */
#define PVLM_TEXTSHARD_MAX_DOC (64u << 20)

typedef struct pvlm_textshard_info {
    int64_t n_docs, n_frames;
    int64_t raw_bytes;  /* sum of document bytes */
    int64_t file_bytes; /* size of the shard file */
    uint64_t checksum;  /* XXH3-64 of the whole file */
} pvlm_textshard_info;

typedef struct pvlm_textshard_writer pvlm_textshard_writer;

/* Create a shard at path (written to a temporary name until close). frame_bytes: target text
 * bytes per frame (a frame is closed once it holds at least this much); level: zstd level. */
pvlm_textshard_writer *pvlm_textshard_writer_open(const char *path, size_t frame_bytes, int level, pvlm_err *err);
/* Append one document (any bytes; the shard builder only passes valid UTF-8). */
int pvlm_textshard_writer_add(pvlm_textshard_writer *w, const char *text, size_t n, pvlm_err *err);
/* Flush, write index and header, fsync, rename into place, free w. info may be NULL. */
int pvlm_textshard_writer_close(pvlm_textshard_writer *w, pvlm_textshard_info *info, pvlm_err *err);
/* Discard: remove the temporary file and free w. */
void pvlm_textshard_writer_abort(pvlm_textshard_writer *w);

typedef struct pvlm_textshard pvlm_textshard;

typedef struct pvlm_textshard_frame_entry {
    int64_t offset, comp_size, first_doc;
    uint32_t n_docs, raw_size;
    uint64_t checksum;
} pvlm_textshard_frame_entry;

/* Open a shard: reads and verifies the header and index (magic, version, sizes, checksums). */
pvlm_textshard *pvlm_textshard_open(const char *path, pvlm_err *err);
void pvlm_textshard_close(pvlm_textshard *s);
int64_t pvlm_textshard_ndocs(const pvlm_textshard *s);
int64_t pvlm_textshard_nframes(const pvlm_textshard *s);
const char *pvlm_textshard_path(const pvlm_textshard *s);
const pvlm_textshard_frame_entry *pvlm_textshard_frame(const pvlm_textshard *s, int64_t frame);
/* Index of the frame holding document doc (binary search), or -1 if out of range. */
int64_t pvlm_textshard_frame_of(const pvlm_textshard *s, int64_t doc);

/* A decompressed frame (caller-owned scratch; zero-initialise, reuse across reads, free). */
typedef struct pvlm_textframe {
    int64_t frame;     /* which frame is loaded, -1 none */
    int64_t first_doc; /* shard doc index of document 0 */
    uint32_t n_docs;
    char *buf; /* decompressed frame */
    size_t cap;
    uint64_t *off; /* [n_docs + 1] byte offsets of the documents inside buf */
    size_t off_cap;
} pvlm_textframe;

/* Read, checksum-verify and decompress frame `frame` into f. A truncated or corrupt frame gives
 * -1 with PVLM_EFORMAT naming the shard and frame (the shard stays usable for other frames). */
int pvlm_textshard_read_frame(const pvlm_textshard *s, int64_t frame, pvlm_textframe *f, pvlm_err *err);
/* Document i of a loaded frame (0 <= i < f->n_docs); not NUL-terminated. */
const char *pvlm_textframe_doc(const pvlm_textframe *f, uint32_t i, size_t *n);
void pvlm_textframe_free(pvlm_textframe *f);

#endif
