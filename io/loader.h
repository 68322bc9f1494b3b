/* loader.h - streaming, rank-partitioned, shuffling, prefetching PrefixLM batch loader.
 *
 * Produces pvlm_batch (io/batch.h) micro-batches that mix image-text samples (LMDB image shards,
 * io/imgshard.h) and text-only samples (zstd text shards, io/textshard.h) at a fixed count per
 * batch, and forms SimVLM PrefixLM examples (Wang et al. 2021, "SimVLM", section 3.1):
 *   image-text: the whole image + the first k caption tokens as prefix, k uniform in [0, m]
 *               (possibly 0), the rest of the caption + eos as suffix;
 *   text-only:  a split point k uniform over the positions leaving >= 1 token on each side.
 * docs/loader.md gives the exact rules (truncation to Lp/Ls, eos, caption choice).
 *
 * Determinism: batch k is a pure function of (config, k): every sample's identity and every
 * random choice are derived from counters, not from a running RNG. So prefetch threads may fill
 * batches in any order and the result does not depend on thread count or timing, and the resume
 * state is tiny: a batch counter and two per-stream sample counters (pvlm_loader_state_save), plus
 * a few numbers per stream after a resume under another world size (the interrupted epoch's
 * remaining positions are split evenly over the new ranks: docs/loader.md).
 *
 * Partitioning (per stream, images and text independently): each epoch is a seeded permutation
 * of the N samples listed in the manifests (N = sum of per-shard record counts); rank r of W
 * takes the contiguous slice [r*q, (r+1)*q) of that permutation, q = floor(N / W), so every rank
 * draws the same number of samples per epoch and no sample appears twice in an epoch; the N - W*q
 * (< W) positions left over land on different samples every epoch (the permutation is rotated by a
 * per-epoch offset). The permutation is a two-level bijection computed lazily (no tables): shuffle
 * blocks of `shuffle_block` consecutive samples, then samples within each block, each with a
 * cycle-walking Feistel network. Text uses blocks (~a few zstd frames) so a rank decompresses each
 * frame once per epoch instead of once per document; images use one block (full shuffle) because
 * LMDB reads are random-access anyway. Mode PVLM_LOADER_RESAMPLE draws every sample uniformly with
 * replacement instead.
 *
 * Corrupt samples (bad JPEG/PNG, LMDB errors, bad record, truncated/corrupt zstd frame, invalid
 * UTF-8, text too short) are skipped, counted by reason, logged once with shard and key, and
 * replaced by a deterministic substitute drawn from the same stream.
 *
 * Ownership: pvlm_loader_open allocates the loader (shard readers, prefetch threads, batch ring);
 * pvlm_loader_close frees everything. The caller owns the pvlm_batch passed to next (allocated with
 * pvlm_batch_alloc(B, S, Lp, Ls)); next copies a finished batch into it. The tokenizer (borrowed, must
 * outlive the loader) is used from the prefetch threads concurrently (pvlm_tokenizer_encode is
 * thread-safe); each thread keeps its own word cache. A loader is used by one consumer thread.
 */
#ifndef PVLM_IO_LOADER_H
#define PVLM_IO_LOADER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/batch.h"
#include "io/tokenizer.h"

enum { PVLM_LOADER_EPOCH = 0, PVLM_LOADER_RESAMPLE = 1 };

/* Skip reasons counted in pvlm_loader_stats.skipped[]. */
enum {
    PVLM_SKIP_IMAGE_READ = 0, /* LMDB error or corrupt record (checksum, layout) */
    PVLM_SKIP_IMAGE_DECODE,   /* bad JPEG/PNG/raw image */
    PVLM_SKIP_TEXT_FRAME,     /* truncated/corrupt zstd frame (every document in it) */
    PVLM_SKIP_BAD_UTF8,       /* caption or document is not valid UTF-8 */
    PVLM_SKIP_TOKENIZE,       /* tokenizer error */
    PVLM_SKIP_TOO_SHORT,      /* text-only sample with < 2 tokens, or no caption */
    PVLM_SKIP_NREASONS
};
extern const char *const pvlm_loader_skip_names[PVLM_SKIP_NREASONS]; /* "image_read", ... */

typedef struct pvlm_loader_config {
    const char *image_manifest; /* manifest.json of image shards (NULL: text-only) */
    const char *text_manifest;  /* manifest.json of text shards (NULL: image-text only) */
    const pvlm_tokenizer *tokenizer; /* the vocabulary (required; one path, with a per-thread word cache) */
    int rank, world;
    int B, S, Lp, Ls;  /* micro-batch and shapes (io/batch.h) */
    double text_ratio; /* text-only fraction of each batch: round(text_ratio*B) samples */
    uint64_t seed;
    int mode;              /* PVLM_LOADER_EPOCH | PVLM_LOADER_RESAMPLE */
    int threads;           /* prefetch threads; 0 = fill batches synchronously in next() */
    int depth;             /* batches prefetched ahead (ring size); 0 = 2*threads+1 */
    int64_t shuffle_block; /* text shuffle block in documents (0: 8192) */
    int cache_frames;      /* decompressed text frames cached per thread (0: enough for one shuffle block) */
    int32_t pad_id, bos_id, eos_id;
} pvlm_loader_config;

/* Defaults: world 1, B 32, S 64, Lp 16, Ls 48, text_ratio 0.5, seed 0, epoch mode, threads 2. */
void pvlm_loader_config_default(pvlm_loader_config *c);

typedef struct pvlm_loader_stats {
    int64_t batches; /* batches returned by next */
    int64_t samples_image, samples_text;
    int64_t skipped[PVLM_SKIP_NREASONS];
    int64_t epoch_image, epoch_text; /* current epoch of each stream (0-based) */
    int64_t tokens;                  /* prefix + suffix tokens placed in returned batches */
    int64_t frames_read;             /* zstd text frames decompressed for the returned batches (cache misses;
                                        depends on thread count, unlike everything else here) */
    double wait_s;                   /* time next() spent waiting for a prefetched batch */
    double produce_s;                /* worker time spent producing the returned batches */
    int64_t resize_dropped[2];       /* per stream: positions of an interrupted epoch left out because
                                        the rest did not split evenly over a new world size */
} pvlm_loader_stats;

typedef struct pvlm_loader pvlm_loader;

/* Open shards named by the manifests, validate the config, start nothing yet (threads start at the
 * first next). NULL + err on failure. */
pvlm_loader *pvlm_loader_open(const pvlm_loader_config *c, pvlm_err *err);
/* Fill b (allocated by the caller with the config's B, S, Lp, Ls) with the next batch. Blocks until
 * it is ready. Returns 0, or -1 with err (e.g. every substitute of a sample was corrupt). */
int pvlm_loader_next(pvlm_loader *L, pvlm_batch *b, pvlm_err *err);
void pvlm_loader_close(pvlm_loader *L);

/* Exact resume state of the next batch to be returned (new JSON reference, caller decrefs). */
json_t *pvlm_loader_state_save(const pvlm_loader *L);
/* Restore a saved state: the next batch returned is the one the saving run would have returned
 * next. A state saved under another world size, micro-batch or text ratio is accepted: under
 * another world size the rest of the interrupted epoch (exactly the positions no saving rank had
 * drawn) is split evenly over the new ranks, the remainder (< world) dropped and counted in
 * stats.resize_dropped; then the normal partition (docs/loader.md). Discards prefetched batches. */
int pvlm_loader_state_restore(pvlm_loader *L, const json_t *state, pvlm_err *err);

void pvlm_loader_stats_get(const pvlm_loader *L, pvlm_loader_stats *s);
/* Samples per epoch and per rank of a stream (0 images, 1 text), and the epoch length in batches
 * (0 when the stream is not used). */
int64_t pvlm_loader_epoch_samples(const pvlm_loader *L, int stream);
int64_t pvlm_loader_epoch_batches(const pvlm_loader *L, int stream);
/* Total samples N of a stream (sum of manifest counts); sample_id of text samples is offset by
 * the image total: text doc g has sample_id = N_images + g. */
int64_t pvlm_loader_total_samples(const pvlm_loader *L, int stream);

/* The permutation the loader uses, exposed for tests: position p (0 <= p < n) of epoch `epoch`
 * of stream `stream` under seed, block size `block` (>= n means one block). */
int64_t pvlm_loader_permute(uint64_t seed, int stream, int64_t epoch, int64_t n, int64_t block, int64_t p);

#endif
