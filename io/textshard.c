/* textshard.c - see textshard.h. */
#include "textshard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/le.h"

/* ---------------------------------------------------------------- writer */

enum { WRITER_PATH_CAP = 4096 }; /* the shard's path; its temp name adds ".tmp.<pid>" */

struct pvlm_textshard_writer {
    char path[WRITER_PATH_CAP], tmp[WRITER_PATH_CAP + 32];
    FILE *f;
    size_t frame_bytes;
    int level;
    ZSTD_CCtx *cctx;
    /* current frame: lengths and bytes */
    uint32_t *lens;
    size_t nlens, lens_cap;
    char *text;
    size_t ntext, text_cap;
    /* assembled raw frame and compressed output */
    uint8_t *raw, *comp;
    size_t raw_cap, comp_cap;
    uint8_t *index;
    size_t nframes, index_cap;
    int64_t n_docs, raw_bytes, pos;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem, pvlm_err *err) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return pvlm_err_set(err, PVLM_ENOMEM, "textshard: out of memory (%zu bytes)", c * elem);
    *p = q, *cap = c;
    return 0;
}

pvlm_textshard_writer *pvlm_textshard_writer_open(const char *path, size_t frame_bytes, int level, pvlm_err *err) {
    if (strlen(path) >= WRITER_PATH_CAP) { /* never write to a truncated name */
        pvlm_err_set(err, PVLM_EINVAL, "textshard: path too long (%zu bytes, the limit is %d): %.200s...", strlen(path),
                     WRITER_PATH_CAP - 1, path);
        return NULL;
    }
    pvlm_textshard_writer *w = calloc(1, sizeof *w);
    if (!w) {
        pvlm_err_set(err, PVLM_ENOMEM, "textshard: out of memory");
        return NULL;
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%d", path, (int)getpid());
    w->frame_bytes = frame_bytes ? frame_bytes : (1u << 20);
    w->level = level;
    w->cctx = ZSTD_createCCtx();
    w->f = fopen(w->tmp, "wb");
    if (!w->f || !w->cctx) {
        if (!w->f)
            pvlm_err_errno(err, "textshard: cannot create %s", w->tmp);
        else
            pvlm_err_set(err, PVLM_ENOMEM, "textshard: ZSTD_createCCtx failed");
        if (w->f) fclose(w->f), unlink(w->tmp);
        ZSTD_freeCCtx(w->cctx);
        free(w);
        return NULL;
    }
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    uint8_t zero[PVLM_TEXTSHARD_HEADER] = {0};
    if (fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) {
        pvlm_err_errno(err, "textshard: write %s", w->tmp);
        pvlm_textshard_writer_abort(w);
        return NULL;
    }
    w->pos = PVLM_TEXTSHARD_HEADER;
    return w;
}

static int flush_frame(pvlm_textshard_writer *w, pvlm_err *err) {
    if (w->nlens == 0) return 0;
    size_t raw_n = 4 * w->nlens + w->ntext;
    if (raw_n > UINT32_MAX) return pvlm_err_set(err, PVLM_EINVAL, "textshard %s: frame too large", w->path);
    if (grow((void **)&w->raw, &w->raw_cap, raw_n, 1, err)) return -1;
    for (size_t i = 0; i < w->nlens; i++) pvlm_le_put32(w->raw + 4 * i, w->lens[i]);
    memcpy(w->raw + 4 * w->nlens, w->text, w->ntext);
    size_t bound = ZSTD_compressBound(raw_n);
    if (grow((void **)&w->comp, &w->comp_cap, bound, 1, err)) return -1;
    size_t c = ZSTD_compress2(w->cctx, w->comp, w->comp_cap, w->raw, raw_n);
    if (ZSTD_isError(c)) return pvlm_err_set(err, PVLM_EIO, "textshard %s: zstd: %s", w->path, ZSTD_getErrorName(c));
    if (fwrite(w->comp, 1, c, w->f) != c) return pvlm_err_errno(err, "textshard: write %s", w->tmp);
    if (grow((void **)&w->index, &w->index_cap, (w->nframes + 1) * PVLM_TEXTSHARD_INDEX_ENTRY, 1, err)) return -1;
    uint8_t *e = w->index + w->nframes * PVLM_TEXTSHARD_INDEX_ENTRY;
    pvlm_le_put64(e, (uint64_t)w->pos);
    pvlm_le_put64(e + 8, c);
    pvlm_le_put64(e + 16, (uint64_t)(w->n_docs - (int64_t)w->nlens));
    pvlm_le_put32(e + 24, (uint32_t)w->nlens);
    pvlm_le_put32(e + 28, (uint32_t)raw_n);
    pvlm_le_put64(e + 32, pvlm_hash64(w->comp, c));
    w->nframes++;
    w->pos += (int64_t)c;
    w->nlens = 0, w->ntext = 0;
    return 0;
}

int pvlm_textshard_writer_add(pvlm_textshard_writer *w, const char *text, size_t n, pvlm_err *err) {
    if (n > PVLM_TEXTSHARD_MAX_DOC)
        return pvlm_err_set(err, PVLM_EINVAL, "textshard %s: document of %zu bytes exceeds %u", w->path, n,
                            PVLM_TEXTSHARD_MAX_DOC);
    if (grow((void **)&w->lens, &w->lens_cap, w->nlens + 1, sizeof(uint32_t), err)) return -1;
    if (grow((void **)&w->text, &w->text_cap, w->ntext + n + 1, 1, err)) return -1;
    memcpy(w->text + w->ntext, text, n);
    w->ntext += n;
    w->lens[w->nlens++] = (uint32_t)n;
    w->n_docs++;
    w->raw_bytes += (int64_t)n;
    if (w->ntext >= w->frame_bytes) return flush_frame(w, err);
    return 0;
}

static void writer_free(pvlm_textshard_writer *w) {
    if (w->f) fclose(w->f);
    ZSTD_freeCCtx(w->cctx);
    free(w->lens), free(w->text), free(w->raw), free(w->comp), free(w->index);
    free(w);
}

void pvlm_textshard_writer_abort(pvlm_textshard_writer *w) {
    if (!w) return;
    unlink(w->tmp);
    writer_free(w);
}

int pvlm_textshard_writer_close(pvlm_textshard_writer *w, pvlm_textshard_info *info, pvlm_err *err) {
    if (flush_frame(w, err)) goto fail;
    size_t isz = w->nframes * PVLM_TEXTSHARD_INDEX_ENTRY;
    if (isz && fwrite(w->index, 1, isz, w->f) != isz) {
        pvlm_err_errno(err, "textshard: write %s", w->tmp);
        goto fail;
    }
    uint8_t h[PVLM_TEXTSHARD_HEADER] = {0};
    memcpy(h, PVLM_TEXTSHARD_MAGIC, 8);
    pvlm_le_put32(h + 8, PVLM_TEXTSHARD_VERSION);
    pvlm_le_put32(h + 12, PVLM_TEXTSHARD_HEADER);
    pvlm_le_put64(h + 16, (uint64_t)w->n_docs);
    pvlm_le_put64(h + 24, w->nframes);
    pvlm_le_put64(h + 32, (uint64_t)w->pos);
    pvlm_le_put64(h + 40, (uint64_t)w->raw_bytes);
    pvlm_le_put64(h + 48, pvlm_hash64(w->index ? w->index : (uint8_t *)"", isz));
    pvlm_le_put64(h + 56, pvlm_hash64(h, 56));
    if (fseeko(w->f, 0, SEEK_SET) || fwrite(h, 1, sizeof h, w->f) != sizeof h) {
        pvlm_err_errno(err, "textshard: write header %s", w->tmp);
        goto fail;
    }
    if (pvlm_fsync_file(w->f, w->tmp, err)) goto fail;
    if (fclose(w->f)) {
        w->f = NULL;
        pvlm_err_errno(err, "textshard: close %s", w->tmp);
        goto fail;
    }
    w->f = NULL;
    if (info) {
        memset(info, 0, sizeof *info);
        info->n_docs = w->n_docs, info->n_frames = (int64_t)w->nframes, info->raw_bytes = w->raw_bytes;
        info->file_bytes = w->pos + (int64_t)isz;
        if (pvlm_hash_file(w->tmp, &info->checksum, err)) goto fail;
    }
    if (rename(w->tmp, w->path)) {
        pvlm_err_errno(err, "textshard: rename %s -> %s", w->tmp, w->path);
        goto fail;
    }
    char dir[4096];
    pvlm_dirname(w->path, dir, sizeof dir);
    int rc = pvlm_fsync_dir(dir, err);
    writer_free(w);
    return rc;
fail:
    pvlm_textshard_writer_abort(w);
    return -1;
}

/* ---------------------------------------------------------------- reader */

struct pvlm_textshard {
    char path[4096];
    int fd;
    int64_t n_docs, n_frames, raw_bytes, file_size;
    pvlm_textshard_frame_entry *frames;
};

pvlm_textshard *pvlm_textshard_open(const char *path, pvlm_err *err) {
    pvlm_textshard *s = calloc(1, sizeof *s);
    uint8_t *idx = NULL;
    if (!s) {
        pvlm_err_set(err, PVLM_ENOMEM, "textshard: out of memory");
        return NULL;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        pvlm_err_errno(err, "textshard: cannot open %s", path);
        free(s);
        return NULL;
    }
    struct stat st;
    uint8_t h[PVLM_TEXTSHARD_HEADER];
    if (fstat(s->fd, &st) || st.st_size < PVLM_TEXTSHARD_HEADER || pvlm_pread_full(s->fd, h, sizeof h, 0, path, NULL)) {
        pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: file too short for a header", path);
        goto fail;
    }
    s->file_size = st.st_size;
    if (memcmp(h, PVLM_TEXTSHARD_MAGIC, 8)) {
        pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: bad magic (not a pvlm text shard)", path);
        goto fail;
    }
    if (pvlm_le_get64(h + 56) != pvlm_hash64(h, 56)) {
        pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: header checksum mismatch", path);
        goto fail;
    }
    if (pvlm_le_get32(h + 8) != PVLM_TEXTSHARD_VERSION || pvlm_le_get32(h + 12) != PVLM_TEXTSHARD_HEADER) {
        pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: unsupported version %u (header %u)", path, pvlm_le_get32(h + 8),
                     pvlm_le_get32(h + 12));
        goto fail;
    }
    s->n_docs = (int64_t)pvlm_le_get64(h + 16);
    s->n_frames = (int64_t)pvlm_le_get64(h + 24);
    int64_t ioff = (int64_t)pvlm_le_get64(h + 32);
    s->raw_bytes = (int64_t)pvlm_le_get64(h + 40);
    if (s->n_frames < 0 || s->n_docs < 0 || ioff < PVLM_TEXTSHARD_HEADER ||
        s->n_frames > (s->file_size - ioff) / PVLM_TEXTSHARD_INDEX_ENTRY ||
        ioff + s->n_frames * PVLM_TEXTSHARD_INDEX_ENTRY != s->file_size) {
        pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: index at %lld with %lld frames does not fit file of %lld bytes",
                     path, (long long)ioff, (long long)s->n_frames, (long long)s->file_size);
        goto fail;
    }
    size_t isz = (size_t)s->n_frames * PVLM_TEXTSHARD_INDEX_ENTRY;
    idx = malloc(isz ? isz : 1);
    s->frames = calloc((size_t)s->n_frames + 1, sizeof *s->frames);
    if (!idx || !s->frames) {
        pvlm_err_set(err, PVLM_ENOMEM, "textshard %s: out of memory for index", path);
        goto fail;
    }
    if (isz && pvlm_pread_full(s->fd, idx, isz, (uint64_t)ioff, path, err)) {
        pvlm_err_prefix(err, "textshard index");
        goto fail;
    }
    if (pvlm_hash64(isz ? idx : (uint8_t *)"", isz) != pvlm_le_get64(h + 48)) {
        pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: index checksum mismatch", path);
        goto fail;
    }
    int64_t doc = 0, pos = PVLM_TEXTSHARD_HEADER;
    for (int64_t i = 0; i < s->n_frames; i++) {
        const uint8_t *e = idx + i * PVLM_TEXTSHARD_INDEX_ENTRY;
        pvlm_textshard_frame_entry *fe = &s->frames[i];
        fe->offset = (int64_t)pvlm_le_get64(e);
        fe->comp_size = (int64_t)pvlm_le_get64(e + 8);
        fe->first_doc = (int64_t)pvlm_le_get64(e + 16);
        fe->n_docs = pvlm_le_get32(e + 24);
        fe->raw_size = pvlm_le_get32(e + 28);
        fe->checksum = pvlm_le_get64(e + 32);
        /* comp_size is bounded by the space left before the index, so pos cannot overflow */
        if (fe->offset != pos || fe->comp_size <= 0 || fe->comp_size > ioff - pos || fe->first_doc != doc ||
            fe->n_docs == 0 || (uint64_t)fe->raw_size < 4ull * fe->n_docs) {
            pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: index entry %lld inconsistent", path, (long long)i);
            goto fail;
        }
        pos += fe->comp_size;
        doc += fe->n_docs;
    }
    if (pos != ioff || doc != s->n_docs) {
        pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: frames cover %lld docs/%lld bytes, header says %lld/%lld", path,
                     (long long)doc, (long long)pos, (long long)s->n_docs, (long long)ioff);
        goto fail;
    }
    free(idx);
    return s;
fail:
    free(idx);
    pvlm_textshard_close(s);
    return NULL;
}

void pvlm_textshard_close(pvlm_textshard *s) {
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->frames);
    free(s);
}

int64_t pvlm_textshard_ndocs(const pvlm_textshard *s) {
    return s->n_docs;
}
int64_t pvlm_textshard_nframes(const pvlm_textshard *s) {
    return s->n_frames;
}
const char *pvlm_textshard_path(const pvlm_textshard *s) {
    return s->path;
}

const pvlm_textshard_frame_entry *pvlm_textshard_frame(const pvlm_textshard *s, int64_t frame) {
    return frame >= 0 && frame < s->n_frames ? &s->frames[frame] : NULL;
}

int64_t pvlm_textshard_frame_of(const pvlm_textshard *s, int64_t doc) {
    if (doc < 0 || doc >= s->n_docs) return -1;
    int64_t lo = 0, hi = s->n_frames - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (s->frames[mid].first_doc <= doc)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int pvlm_textshard_read_frame(const pvlm_textshard *s, int64_t frame, pvlm_textframe *f, pvlm_err *err) {
    const pvlm_textshard_frame_entry *fe = pvlm_textshard_frame(s, frame);
    if (!fe) return pvlm_err_set(err, PVLM_EINVAL, "textshard %s: no frame %lld", s->path, (long long)frame);
    f->frame = -1;
    /* Compressed bytes go at the end of the buffer, decompressed output at its start. They are read
     * first, so that the index's raw_size (up to 4 GiB) is allocated only when the frame's own zstd
     * header (the writer's ZSTD_compress2 always records the content size) agrees with it. */
    size_t need = (size_t)fe->raw_size + (size_t)fe->comp_size;
    if (grow((void **)&f->buf, &f->cap, (size_t)fe->comp_size, 1, err)) return -1;
    if (pvlm_pread_full(s->fd, f->buf, (size_t)fe->comp_size, (uint64_t)fe->offset, s->path, err))
        return pvlm_err_prefix(err, "textshard frame %lld", (long long)frame);
    if (pvlm_hash64(f->buf, (size_t)fe->comp_size) != fe->checksum)
        return pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: frame %lld checksum mismatch", s->path, (long long)frame);
    unsigned long long csize = ZSTD_getFrameContentSize(f->buf, (size_t)fe->comp_size);
    if (csize != fe->raw_size)
        return pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: frame %lld: zstd header gives %lld bytes, index %u",
                            s->path, (long long)frame, csize > INT64_MAX ? -1LL : (long long)csize, fe->raw_size);
    if (grow((void **)&f->buf, &f->cap, need, 1, err)) return -1;
    char *comp = f->buf + fe->raw_size;
    memmove(comp, f->buf, (size_t)fe->comp_size);
    size_t r = ZSTD_decompress(f->buf, fe->raw_size, comp, (size_t)fe->comp_size);
    if (ZSTD_isError(r) || r != fe->raw_size)
        return pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: frame %lld: zstd: %s", s->path, (long long)frame,
                            ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong size");
    if (grow((void **)&f->off, &f->off_cap, (size_t)fe->n_docs + 1, sizeof(uint64_t), err)) return -1;
    uint64_t pos = 4ull * fe->n_docs;
    for (uint32_t i = 0; i < fe->n_docs; i++) {
        f->off[i] = pos;
        pos += pvlm_le_get32((const uint8_t *)f->buf + 4ull * i);
    }
    f->off[fe->n_docs] = pos;
    if (pos != fe->raw_size)
        return pvlm_err_set(err, PVLM_EFORMAT, "textshard %s: frame %lld: document lengths do not sum to frame size",
                            s->path, (long long)frame);
    f->frame = frame, f->first_doc = fe->first_doc, f->n_docs = fe->n_docs;
    return 0;
}

const char *pvlm_textframe_doc(const pvlm_textframe *f, uint32_t i, size_t *n) {
    *n = (size_t)(f->off[i + 1] - f->off[i]);
    return f->buf + f->off[i];
}

void pvlm_textframe_free(pvlm_textframe *f) {
    if (!f) return;
    free(f->buf), free(f->off);
    memset(f, 0, sizeof *f);
    f->frame = -1;
}
