/* fixtures.h - synthetic image and text shard sets for the loader tests and bench.
 *
 * Text doc g (global index over all shards) is the words "g*1000+j" for j < doc_len(g), so every
 * document is different and a batch row (through its sample_id) can be checked exactly against the
 * tokenizer's own encoding of its source; fx_tokenizer trains a real byte-level BPE (io/bpe_train.h)
 * on these texts, the same tokenizer type training uses. Image record g is an S x S raw RGB image
 * with pixel (y, x) = (g & 255, g >> 8, (y*S + x) & 255) (or, when jpeg_every > 0, every
 * jpeg_every-th record a JPEG of that image at 2S x 2S), with caption words "g*1000+j" for
 * j < cap_len(g) + an offset of 500 so captions and documents never collide.
 */
#ifndef PVLM_TEST_LOADER_FIXTURES_H
#define PVLM_TEST_LOADER_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/hash.h"
#include "io/bpe_train.h"
#include "io/image.h"
#include "io/imgshard.h"
#include "io/manifest.h"
#include "io/textshard.h"
#include "io/tokenizer.h"

static inline int fx_doc_len(int64_t g) {
    return g % 13 == 7 ? 300 : 2 + (int)((g * 7) % 90);
}
static inline int fx_cap_len(int64_t g) {
    return 1 + (int)((g * 5) % 23);
}

static inline char *fx_words(int64_t g, int len, int off) {
    size_t cap = (size_t)len * 12 + 1, n = 0;
    char *s = malloc(cap);
    s[0] = 0;
    for (int j = 0; j < len; j++)
        n += (size_t)snprintf(s + n, cap - n, j ? " %lld" : "%lld", (long long)(g * 1000 + off + j));
    return s;
}

static inline int fx_train_on(pvlm_bpe_trainer *tr, int64_t g, int len, int off, pvlm_err *err) {
    char *t = fx_words(g, len, off);
    int rc = pvlm_bpe_trainer_add(tr, t, strlen(t), err);
    free(t);
    return rc;
}

/* A byte-level BPE tokenizer of vocab_size ids trained on documents 0..ndocs-1 and captions
 * 0..ncaps-1 of the fixtures. NULL + err on failure; the caller frees it. */
static inline pvlm_tokenizer *fx_tokenizer(int64_t ndocs, int64_t ncaps, int32_t vocab_size, pvlm_err *err) {
    pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(err);
    if (!tr) return NULL;
    int rc = 0;
    for (int64_t g = 0; g < ndocs && !rc; g++) rc = fx_train_on(tr, g, fx_doc_len(g), 0, err);
    for (int64_t g = 0; g < ncaps && !rc; g++) rc = fx_train_on(tr, g, fx_cap_len(g), 500, err);
    pvlm_tokenizer *tok = NULL;
    if (!rc && !pvlm_bpe_trainer_run(tr, vocab_size, 2, err)) pvlm_bpe_trainer_tokenizer(tr, &tok, err);
    pvlm_bpe_trainer_free(tr);
    return tok;
}

static inline int fx_add_shard(pvlm_manifest *m, const char *dir, const char *name, int64_t records, pvlm_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint64_t ck;
    struct stat st;
    if (pvlm_hash_file(path, &ck, err) || stat(path, &st)) return -1;
    return pvlm_manifest_add_shard(m, name, records, (uint64_t)st.st_size, ck, NULL, err);
}

/* Text shards with counts[0..nshards) docs, frames of frame_bytes; manifest at dir/manifest.json. */
static inline int fx_text(const char *dir, const int64_t *counts, int nshards, size_t frame_bytes, pvlm_err *err) {
    pvlm_manifest m;
    if (pvlm_manifest_init(&m, "text", err)) return -1;
    int64_t g = 0;
    for (int s = 0; s < nshards; s++) {
        char name[64], path[4200];
        snprintf(name, sizeof name, "text-%05d.pvt", s);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        pvlm_textshard_writer *w = pvlm_textshard_writer_open(path, frame_bytes, 3, err);
        if (!w) goto fail;
        for (int64_t i = 0; i < counts[s]; i++, g++) {
            char *t = fx_words(g, fx_doc_len(g), 0);
            int rc = pvlm_textshard_writer_add(w, t, strlen(t), err);
            free(t);
            if (rc) goto fail;
        }
        if (pvlm_textshard_writer_close(w, NULL, err) || fx_add_shard(&m, dir, name, counts[s], err)) goto fail;
    }
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    if (pvlm_manifest_save(&m, mp, err)) goto fail;
    pvlm_manifest_free(&m);
    return 0;
fail:
    pvlm_manifest_free(&m);
    return -1;
}

static inline void fx_pixels(int64_t g, int S, uint8_t *rgb) {
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            uint8_t *p = rgb + ((size_t)y * S + x) * 3;
            p[0] = (uint8_t)(g & 255), p[1] = (uint8_t)(g >> 8), p[2] = (uint8_t)((y * S + x) & 255);
        }
}

/* Image shards; record g gets caption fx_words(g, fx_cap_len(g), 500). */
static inline int fx_images(const char *dir, const int64_t *counts, int nshards, int S, int jpeg_every, pvlm_err *err) {
    pvlm_manifest m;
    if (pvlm_manifest_init(&m, "images", err)) return -1;
    int64_t g = 0;
    uint8_t *rgb = malloc((size_t)S * S * 3), *big = malloc((size_t)4 * S * S * 3);
    for (int s = 0; s < nshards; s++) {
        char name[64], path[4200];
        snprintf(name, sizeof name, "images-%05d-of-%05d.lmdb", s, nshards);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(path, NULL, err);
        if (!w) goto fail;
        for (int64_t i = 0; i < counts[s]; i++, g++) {
            char id[32];
            snprintf(id, sizeof id, "img%lld", (long long)g);
            char *cap = fx_words(g, fx_cap_len(g), 500);
            const char *caps[1] = {cap};
            pvlm_imgrec r;
            memset(&r, 0, sizeof r);
            r.id = id, r.ncaptions = 1, r.captions = caps, r.orig_w = r.orig_h = S;
            uint8_t *jpg = NULL;
            if (jpeg_every > 0 && g % jpeg_every == 0) {
                fx_pixels(g, 2 * S, big);
                pvlm_image im = {2 * S, 2 * S, big};
                size_t jn;
                if (pvlm_image_encode_jpeg(NULL, &im, 90, &jpg, &jn, err)) goto fail;
                r.encoding = PVLM_IMG_ENC_JPEG, r.stored_w = r.stored_h = 2 * S, r.image = jpg, r.image_len = jn;
            } else {
                fx_pixels(g, S, rgb);
                r.encoding = PVLM_IMG_ENC_RAW, r.stored_w = r.stored_h = S, r.image = rgb;
                r.image_len = (uint64_t)S * S * 3;
            }
            int rc = pvlm_imgshard_writer_add(w, &r, err);
            free(cap), free(jpg);
            if (rc) {
                pvlm_imgshard_writer_abort(w);
                goto fail;
            }
        }
        if (pvlm_imgshard_writer_finish(w, NULL, err) || fx_add_shard(&m, dir, name, counts[s], err)) goto fail;
    }
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    if (pvlm_manifest_save(&m, mp, err)) goto fail;
    free(rgb), free(big);
    pvlm_manifest_free(&m);
    return 0;
fail:
    free(rgb), free(big);
    pvlm_manifest_free(&m);
    return -1;
}

static inline uint64_t fx_get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline void fx_put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Rewrite text shard `path` so that frame `fr` loses its last `cut` compressed bytes while the header,
 * index and frame checksums are all recomputed to match: a truncated zstd frame that only zstd itself
 * can detect (docs/format-text-shards.md has the layout). Returns 0 or -1. */
static inline int fx_truncate_frame(const char *path, int64_t fr, size_t cut) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(n);
    if (fread(d, 1, n, f) != n) {
        fclose(f), free(d);
        return -1;
    }
    fclose(f);
    uint64_t nframes = fx_get64(d + 24), ioff = fx_get64(d + 32);
    unsigned char *idx = d + ioff, *e = idx + 40 * fr;
    uint64_t off = fx_get64(e), csz = fx_get64(e + 8);
    if ((uint64_t)fr >= nframes || csz <= cut) {
        free(d);
        return -1;
    }
    /* new file: [0, off+csz-cut) + [off+csz, ioff) + index */
    size_t keep_end = (size_t)(off + csz - cut);
    memmove(d + keep_end, d + off + csz, n - (size_t)(off + csz));
    n -= cut, ioff -= cut, idx = d + ioff;
    fx_put64(idx + 40 * fr + 8, csz - cut);
    fx_put64(idx + 40 * fr + 32, pvlm_hash64(d + off, (size_t)(csz - cut)));
    for (uint64_t i = (uint64_t)fr + 1; i < nframes; i++) fx_put64(idx + 40 * i, fx_get64(idx + 40 * i) - cut);
    fx_put64(d + 32, ioff);
    fx_put64(d + 48, pvlm_hash64(idx, (size_t)(40 * nframes)));
    fx_put64(d + 56, pvlm_hash64(d, 56));
    f = fopen(path, "wb");
    size_t w = fwrite(d, 1, n, f);
    fclose(f);
    free(d);
    return w == n ? 0 : -1;
}

#endif
