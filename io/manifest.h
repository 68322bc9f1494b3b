/* manifest.h - manifest.json of a shard set (image shards, text shards, any kind).
 *
 * A shard set is a folder of shard files plus one manifest.json that lists them.
 * Loaders size their rank partitions from the per-shard record counts here, so the
 * manifest is written (atomically, fsync'd) only after every shard it lists is
 * complete. Shape (keys sorted on disk; docs/format-image-shards.md has details):
 *   {
 *     "format": "pvlm-manifest", "version": 1,
 *     "kind": "images" | "text" | ...,
 *     "shards": [ {"file": "images-00000-of-00004.lmdb", "records": 1000,
 *                  "bytes": 123456, "checksum": "<XXH3-64 of the file, 16 hex>",
 *                  ...kind-specific extra fields, e.g. "tokens": 123} ],
 *     "settings": { ...the builder's preprocessing settings, free-form object... },
 *     "failures": { "<reason>": count, ... },        e.g. "decode_error": 3
 *     "totals":   { "records": N, "bytes": B, "shards": S, "failed": F, ...extra }
 *   }
 * "file" is relative to the manifest's folder. "records" is a kind's natural unit
 * (images: image-text pairs; text: documents) - it is what loaders partition.
 *
 * Ownership: a pvlm_manifest owns everything it points to; pvlm_manifest_free
 * releases it. json_t* arguments documented as "stolen" become owned by the manifest.
 */
#ifndef PVLM_IO_MANIFEST_H
#define PVLM_IO_MANIFEST_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"

#define PVLM_MANIFEST_VERSION 1

typedef struct pvlm_manifest_shard {
    char *file; /* relative to the manifest folder */
    int64_t records;
    uint64_t bytes;
    uint64_t checksum; /* XXH3-64 of the whole file */
    json_t *extra;     /* object of kind-specific fields (never NULL once added) */
} pvlm_manifest_shard;

typedef struct pvlm_manifest {
    char kind[32];
    int version;
    pvlm_manifest_shard *shards;
    int nshards, cap;
    json_t *settings; /* object */
    json_t *failures; /* object: reason -> integer count */
    json_t *totals;   /* object: extra totals beyond records/bytes/shards/failed */
} pvlm_manifest;

/* Empty manifest of a kind ("images", "text"). Free with pvlm_manifest_free. */
int pvlm_manifest_init(pvlm_manifest *m, const char *kind, pvlm_err *err);
void pvlm_manifest_free(pvlm_manifest *m);
/* Append a shard entry; extra (may be NULL) is stolen. Keep shards in file order. */
int pvlm_manifest_add_shard(pvlm_manifest *m, const char *file, int64_t records, uint64_t bytes, uint64_t checksum,
                            json_t *extra, pvlm_err *err);
/* Replace the settings object (stolen). */
void pvlm_manifest_set_settings(pvlm_manifest *m, json_t *settings);
/* failures[reason] += n (n may be 0: records that the reason exists). */
void pvlm_manifest_add_failures(pvlm_manifest *m, const char *reason, int64_t n);
/* totals[name] += n, for kind-specific totals ("tokens", "docs"). */
void pvlm_manifest_add_total(pvlm_manifest *m, const char *name, int64_t n);

int64_t pvlm_manifest_records(const pvlm_manifest *m); /* sum over shards */
uint64_t pvlm_manifest_bytes(const pvlm_manifest *m);
int64_t pvlm_manifest_failed(const pvlm_manifest *m); /* sum of failures */

/* Serialise (totals "records","bytes","shards","failed" computed here) as a new object. */
json_t *pvlm_manifest_to_json(const pvlm_manifest *m);
/* Write durably (temp file, fsync, rename, fsync dir). */
int pvlm_manifest_save(const pvlm_manifest *m, const char *path, pvlm_err *err);
/* Load and validate (format, version, shard fields, totals consistent). The manifest
 * must be freed by the caller even on failure (it is left initialised). */
int pvlm_manifest_load(const char *path, pvlm_manifest *m, pvlm_err *err);
/* Check shard i on disk against its entry: size, and the XXH3 checksum when
 * full != 0 (reads the whole file). dir is the manifest's folder. */
int pvlm_manifest_verify_shard(const pvlm_manifest *m, int i, const char *dir, int full, pvlm_err *err);
/* "<dir>/<file>" of shard i into buf (cap bytes; a NULL or empty dir means "."), joined by
 * pvlm_path_join: 0, or -1 with buf emptied when the path does not fit (the caller reports it). */
int pvlm_manifest_shard_path(const pvlm_manifest *m, int i, const char *dir, char *buf, size_t cap);

#endif
