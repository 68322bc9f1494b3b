/* wdssrc.h - webdataset input for `pvlm shard images --webdataset PATTERN`: tar files as written by
 * img2dataset (and webdataset's own writers), read through libarchive.
 *
 * PATTERN: brace ranges and lists as webdataset writes them ("dir/{00000..00123}.tar": zero-padded to
 * the width of the bounds; "{a,b}"), each result then expanded with glob(3) (wildcards "*", "?" and
 * "[0-9]" classes; matches sorted). A name that matches no file is counted as missing_tar; no file at
 * all is an error.
 *
 * A sample is the run of consecutive members sharing a key: the member path up to the first '.' of its
 * file name ("00000/000000012.jpg" -> key "00000/000000012", extension "jpg"), webdataset's rule.
 * Members used: jpg|jpeg|png (the image; webp is counted as unsupported_image: pvlm decodes JPEG and
 * PNG), txt (the caption, whitespace-trimmed; an empty one counts as absent) and json (img2dataset's
 * metadata: "url", "original_width", "original_height"). Other extensions are ignored. Problems are
 * counted per reason (pvlm_wds_reason_names), never fatal:
 *   truncated_tar     a tar ends inside a header or member: the sample being read is dropped, the
 *                     samples before it are kept
 *   bad_tar           not a readable uncompressed tar (compressed tars are rejected here: their
 *                     members cannot be read back by offset); the whole file is skipped
 *   missing_tar       a pattern name with no file
 *   no_image          a key with a caption or json but no image member (the sample is dropped)
 *   unsupported_image a webp image (dropped)
 *   duplicate_member  a second image/caption/json for the same key (the first is kept)
 *   bad_json          a json member that does not parse (the sample is kept without url / size)
 * An image without a caption is returned with caption NULL (the builder counts it as empty_caption).
 *
 * Images are not kept in memory: a sample carries the image's byte offset and length in its tar (an
 * uncompressed tar stores members contiguously; the offset is the first block after the member's
 * headers from which all the bytes libarchive returned read back equal, so pax/GNU long-name headers are
 * handled and a member stored otherwise, e.g. GNU sparse, is counted as bad_tar) and the XXH3 of those
 * bytes, and pvlm_wds_read_image reads them back and checks the hash (a tar changed since listing is an
 * error).
 *
 * Ownership: pvlm_wdssrc_open allocates the source, pvlm_wdssrc_close frees it. A sample's strings
 * belong to the source and stay valid until the next pvlm_wdssrc_next (tar paths until close).
 */
#ifndef PVLM_SHARD_WDSSRC_H
#define PVLM_SHARD_WDSSRC_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum {
    PVLM_WDS_TRUNCATED = 0,
    PVLM_WDS_BAD_TAR,
    PVLM_WDS_MISSING_TAR,
    PVLM_WDS_NO_IMAGE,
    PVLM_WDS_UNSUPPORTED_IMAGE,
    PVLM_WDS_DUPLICATE,
    PVLM_WDS_BAD_JSON,
    PVLM_WDS_NREASONS
};
extern const char *const pvlm_wds_reason_names[PVLM_WDS_NREASONS]; /* "truncated_tar", ... */

typedef struct pvlm_wds_sample {
    const char *tar;     /* tar file holding the image */
    const char *key;     /* the sample's key */
    int64_t off, len;    /* image bytes [off, off + len) in tar */
    uint64_t xxh3;       /* XXH3-64 of those bytes */
    const char *caption; /* trimmed caption, NULL when the sample has none */
    size_t caption_len;  /* its bytes (it may hold a NUL: the builder refuses it as bad_caption) */
    const char *url;     /* from the json member, NULL when absent */
    int orig_w, orig_h;  /* original_width/height from the json member, 0 when absent */
} pvlm_wds_sample;

typedef struct pvlm_wds_counts {
    int64_t tars, members, samples; /* tar files opened, regular members read, samples returned */
    int64_t bad[PVLM_WDS_NREASONS];
} pvlm_wds_counts;

typedef struct pvlm_wdssrc pvlm_wdssrc;

/* Expand PATTERN (braces, then glob) into *paths (malloc'd array of malloc'd strings, *n entries,
 * caller frees both with pvlm_wds_paths_free); names matching nothing are kept (counted as missing by
 * the source). Errors: unbalanced or malformed braces, more than a million names. */
int pvlm_wds_expand(const char *pattern, char ***paths, int *n, pvlm_err *err);
void pvlm_wds_paths_free(char **paths, int n);

/* Open the tars PATTERN names; nothing is read yet. -1 when the pattern is malformed or no tar exists. */
pvlm_wdssrc *pvlm_wdssrc_open(const char *pattern, pvlm_err *err);
/* The same over an explicit list of tar files (borrowed strings are copied). */
pvlm_wdssrc *pvlm_wdssrc_open_files(const char *const *paths, int n, pvlm_err *err);
/* Next sample (tars in order, members in tar order): 1 = *s filled, 0 = end, -1 = error (out of
 * memory; damaged input is counted, not an error). */
int pvlm_wdssrc_next(pvlm_wdssrc *src, pvlm_wds_sample *s, pvlm_err *err);
void pvlm_wdssrc_get_counts(const pvlm_wdssrc *src, pvlm_wds_counts *c);
void pvlm_wdssrc_close(pvlm_wdssrc *src);

/* Read the image of a listed sample: len bytes at off of tar into *data (malloc'd, caller frees),
 * checked against xxh3. Errors name the tar and offset (short read, changed bytes). Thread-safe. */
int pvlm_wds_read_image(const char *tar, int64_t off, int64_t len, uint64_t xxh3, char **data, size_t *n,
                        pvlm_err *err);

#endif
