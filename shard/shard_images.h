/* shard_images.h - `pvlm shard images`: image-text pairs -> N LMDB shards + manifest.json.
 *
 * Inputs (exactly one):
 *   --coco FILE --images DIR   COCO-style caption JSON ("images" + "annotations": COCO,
 *                              NoCaps, BLIP-style Karpathy files) or Karpathy's
 *                              dataset_*.json ("images" with "sentences"; --split filters)
 *   --pairs DIR                a folder of name.jpg|jpeg|png + name.txt (one caption a line)
 *   --urls FILE                TSV/CSV/JSONL with url + caption columns (shard/urlsrc.h),
 *                              fetched with the libcurl multi downloader (shard/download.h);
 *                              failed rows go to failures.jsonl, and --retry-failed FILE
 *                              builds a new set from only the failed rows of an earlier build
 *   --webdataset PATTERN       img2dataset / webdataset tars ("dir/{00000..00123}.tar", globs),
 *                              read through libarchive (shard/wdssrc.h); the record id is the
 *                              sample's url (its key when the json member has none) and the
 *                              original size comes from the json member
 * Items are listed in input order, permuted with --seed (unless --shuffle 0) and cut
 * into N contiguous ranges, one per shard; shard k is built from its range only, so
 * shards are independent (parts of a cluster job build disjoint subsets) and a shard's
 * bytes depend only on the inputs and settings (byte-identical re-builds).
 * Per shard: the main thread feeds items (or, for URLs, the downloader's completions)
 * into a bounded queue; --threads workers decode + resize + re-encode; the main thread
 * appends finished records strictly in item order (deterministic whatever the thread
 * count or download completion order). One builder per (folder, part) at a time (flock).
 * A finished shard gets a sidecar "<shard>.json" (records, bytes, checksum, failures,
 * settings hash) written after the shard's atomic rename; a re-run skips shards whose
 * file and sidecar match the current settings and rebuilds the rest (a crash leaves
 * only *.tmp files, deleted on the next run). manifest.json is assembled from the
 * sidecars once every shard is complete (by the last part to finish, or --merge).
 * See docs/format-image-shards.md.
 */
#ifndef PVLM_SHARD_IMAGES_H
#define PVLM_SHARD_IMAGES_H

#include <signal.h>
#include <stdint.h>

#include "core/error.h"
#include "shard/download.h"

typedef struct pvlm_shard_images_cfg {
    const char *out;                   /* output folder */
    const char *coco;                  /* caption JSON */
    const char *images;                /* image folder for coco */
    const char *split;                 /* Karpathy split filter ("test"; NULL/"" = all) */
    const char *pairs;                 /* folder of image + .txt pairs */
    const char *urls;                  /* URL list */
    const char *url_format;            /* "auto" | "tsv" | "csv" | "jsonl" (shard/urlsrc.h) */
    const char *url_col, *caption_col; /* column names or 0-based indices */
    const char *retry_failed;          /* failures.jsonl of an earlier build: fetch only its URLs */
    const char *retry_reasons;         /* "" = every retryable reason, "all", or "timeout,http_5xx" */
    const char *webdataset;            /* tar pattern (shard/wdssrc.h) */
    int shards;                        /* number of shards (0: from records_per_shard) */
    int64_t records_per_shard;         /* used when shards == 0 */
    int image_size;                    /* S: stored images are S x S */
    const char *resize_mode;           /* "crop" | "border" */
    int jpeg_quality;
    const char *store; /* "jpeg" | "raw" */
    int threads;       /* decode threads (0: core/threads.h default) */
    int64_t seed;
    int shuffle;
    int keep_uncaptioned; /* store images without captions (hidden test sets) */
    int part, parts;      /* this process builds shards k with k % parts == part */
    int merge;            /* only assemble manifest.json from finished shards */
    int64_t limit;        /* use only the first N listed items (0: all) */
    int64_t txn_records;  /* LMDB commit interval */
    double progress_s;    /* seconds between progress lines (0: off) */
    /* the downloader's settings (URL input), pvlm_dl_config_default's values unless changed;
     * seed and stop_flag are taken from this struct's seed and stop */
    pvlm_dl_config dl;
    volatile sig_atomic_t *stop; /* optional: set nonzero to stop soon (items in flight finish) */
} pvlm_shard_images_cfg;

typedef struct pvlm_shard_images_stats {
    int64_t items;   /* items of the shards this process handled (built or skipped) */
    int64_t records; /* records written or found */
    int64_t failed;
    int shards_built, shards_skipped;
    double seconds;
    int manifest_written; /* 1 when manifest.json was (re)written */
} pvlm_shard_images_stats;

void pvlm_shard_images_defaults(pvlm_shard_images_cfg *c);

/* What c's input lists, without reading an image or fetching a URL (the first step of a
 * build; also what tests/fuzz/fuzz_coco drives with arbitrary COCO/NoCaps/Karpathy JSON). */
typedef struct pvlm_shard_images_listing {
    int64_t items, captions;
    int64_t bad_captions;  /* refused by the UTF-8 rule (counted as bad_caption items by a build) */
    int64_t list_failures; /* rows/annotations skipped while listing (bad_annotation, bad_row, ...) */
} pvlm_shard_images_listing;
int pvlm_shard_images_list(const pvlm_shard_images_cfg *c, pvlm_shard_images_listing *out, pvlm_err *err);
/* Build (or resume) the shard set. Returns 0 when every shard of this part is complete
 * (failed items are counted, not errors), -1 with err otherwise. */
int pvlm_shard_images_build(const pvlm_shard_images_cfg *c, pvlm_shard_images_stats *st, pvlm_err *err);
/* The `pvlm shard images` entry point (argv[0] = "images"). */
int pvlm_shard_images_main(int argc, char **argv);

#endif
