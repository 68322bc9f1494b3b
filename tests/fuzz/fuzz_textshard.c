/* fuzz_textshard.c - pvlm_textshard_open on an arbitrary file, then read every frame and touch
 * every document (the loader's access pattern), plus doc -> frame lookups. Each input is tried
 * three ways: as it is; with every checksum (frames, index, header) recomputed, so mutations reach
 * the field checks behind them; and, when it starts with '!', as the decompressed content of the
 * single frame of an otherwise valid shard (input[1] = n_docs), so the document-length table is
 * fuzzed behind the zstd layer. */
#include <stdlib.h>
#include <zstd.h>

#include "core/hash.h"
#include "core/le.h"
#include "fuzz.h"
#include "io/textshard.h"

static void try_file(const uint8_t *data, size_t size) {
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data, size, &fd, path, sizeof path)) return;
    pvlm_err err = {0};
    pvlm_textshard *s = pvlm_textshard_open(path, &err);
    if (s) {
        pvlm_textframe fr = {0};
        fr.frame = -1;
        int64_t nf = pvlm_textshard_nframes(s), nd = pvlm_textshard_ndocs(s);
        for (int64_t i = 0; i < nf && i < 4096; i++) {
            if (!pvlm_textshard_frame(s, i)) abort();
            if (pvlm_textshard_read_frame(s, i, &fr, &err) != 0) continue;
            volatile size_t sum = 0;
            for (uint32_t d = 0; d < fr.n_docs; d++) {
                size_t n;
                const char *doc = pvlm_textframe_doc(&fr, d, &n);
                if (n) sum += (unsigned char)doc[0] + (unsigned char)doc[n - 1];
            }
            (void)sum;
        }
        if (nd > 0 && pvlm_textshard_frame_of(s, nd - 1) != nf - 1) abort();
        if (pvlm_textshard_frame_of(s, -1) != -1 || pvlm_textshard_frame_of(s, nd) != -1) abort();
        pvlm_textshard_frame_of(s, nd / 2);
        pvlm_textframe_free(&fr);
        pvlm_textshard_close(s);
    }
    close(fd);
}

/* Recompute the checksums of whatever parts of v lie inside the file. */
static void fix_checksums(uint8_t *v, size_t size) {
    if (size < PVLM_TEXTSHARD_HEADER) return;
    uint64_t nf = pvlm_le_get64(v + 24), ioff = pvlm_le_get64(v + 32);
    if (ioff <= size && nf <= (size - ioff) / PVLM_TEXTSHARD_INDEX_ENTRY) {
        for (uint64_t i = 0; i < nf; i++) {
            uint8_t *e = v + ioff + i * PVLM_TEXTSHARD_INDEX_ENTRY;
            uint64_t off = pvlm_le_get64(e), cs = pvlm_le_get64(e + 8);
            if (off <= size && cs <= size - off) pvlm_le_put64(e + 32, pvlm_hash64(v + off, cs));
        }
        size_t isz = (size_t)nf * PVLM_TEXTSHARD_INDEX_ENTRY;
        pvlm_le_put64(v + 48, pvlm_hash64(isz ? v + ioff : (const uint8_t *)"", isz));
    }
    pvlm_le_put64(v + 56, pvlm_hash64(v, 56));
}

/* A valid one-frame shard whose frame decompresses to raw[0..n) and claims n_docs documents. */
static void try_frame(const uint8_t *raw, size_t n, uint32_t n_docs) {
    size_t bound = ZSTD_compressBound(n);
    size_t total = PVLM_TEXTSHARD_HEADER + bound + PVLM_TEXTSHARD_INDEX_ENTRY;
    uint8_t *v = calloc(1, total);
    if (!v) return;
    size_t c = ZSTD_compress(v + PVLM_TEXTSHARD_HEADER, bound, raw, n, 1);
    if (!ZSTD_isError(c)) {
        uint8_t *e = v + PVLM_TEXTSHARD_HEADER + c;
        memcpy(v, PVLM_TEXTSHARD_MAGIC, 8);
        pvlm_le_put32(v + 8, PVLM_TEXTSHARD_VERSION);
        pvlm_le_put32(v + 12, PVLM_TEXTSHARD_HEADER);
        pvlm_le_put64(v + 16, n_docs);
        pvlm_le_put64(v + 24, 1);
        pvlm_le_put64(v + 32, PVLM_TEXTSHARD_HEADER + c);
        pvlm_le_put64(v + 40, n);
        pvlm_le_put64(e, PVLM_TEXTSHARD_HEADER);
        pvlm_le_put64(e + 8, c);
        pvlm_le_put64(e + 16, 0);
        pvlm_le_put32(e + 24, n_docs);
        pvlm_le_put32(e + 28, (uint32_t)n);
        size_t fsize = PVLM_TEXTSHARD_HEADER + c + PVLM_TEXTSHARD_INDEX_ENTRY;
        fix_checksums(v, fsize);
        try_file(v, fsize);
    }
    free(v);
}

int pvlm_fuzz_textshard(const uint8_t *data, size_t size) {
    try_file(data, size);
    uint8_t *v = malloc(size ? size : 1);
    if (v) {
        memcpy(v, data, size);
        fix_checksums(v, size);
        try_file(v, size);
        free(v);
    }
    if (size >= 2 && data[0] == '!') try_frame(data + 2, size - 2, data[1]);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_textshard)
