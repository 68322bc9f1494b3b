/* urlsrc.h - URL lists for `pvlm shard images --urls`: read (url, caption) rows from TSV,
 * CSV or JSONL files, write the failures file of a build, and re-read that failures file
 * to re-run only the failed URLs.
 *
 * Input formats (plain or .gz, read through zlib):
 *   - TSV: tab-separated, no quoting (CC3M ships "caption<TAB>url" without a header row;
 *     CC12M "url<TAB>caption").
 *   - CSV: RFC 4180 (fields in double quotes may hold commas, quotes written "" and line
 *     breaks; CRLF or LF record ends).
 *   - JSONL: one JSON object per line (LAION-style metadata exported as JSON lines).
 * Columns: url_col / caption_col name a header column (case-insensitive) or a JSONL key, or
 * give a 0-based column index ("1"). Header row: auto-detected unless forced. With
 * header=auto, the first row is a header if it contains the url/caption column name, or
 * (for index columns) if its url field does not look like a URL. When the names are not
 * found and the file has no header, the url column is the one whose first-row field looks
 * like a URL ("scheme://") and, in a 2-column file, the caption is the other one - so
 * CC3M's TSV works with no flags at all.
 *
 * Rows and indices: every non-blank data row gets the next index (0-based, header and
 * blank lines excluded), bad rows included, so an index names the same row in every run
 * and in the failures file. Bad rows (missing column, bad JSON, over 1 MiB), rows with an
 * empty url and rows with an empty caption (after trimming white space; unless
 * keep_empty_caption) are skipped, counted (pvlm_urlsrc_get_counts) and logged once per
 * kind with file:line.
 *
 * Failures file: JSON lines {"index", "url", "caption", "reason", "http_status",
 * "attempts", "detail"} (strings escaped as JSON; invalid UTF-8 bytes become U+FFFD).
 * pvlm_urlsrc_open_failures reads it back as a source (a repeated index is yielded once),
 * optionally only the lines whose reason is in a list.
 *
 * Ownership: pvlm_urlsrc_open* allocate a source the caller closes with
 * pvlm_urlsrc_close; the strings of an item are owned by the source and valid until the
 * next pvlm_urlsrc_next call. pvlm_urlfail_open allocates a writer that
 * pvlm_urlfail_close frees. Neither object is thread-safe: use each from one thread (the
 * downloader's callbacks run on the thread that runs it).
 */
#ifndef PVLM_SHARD_URLSRC_H
#define PVLM_SHARD_URLSRC_H

#include <stdint.h>

#include "core/error.h"
#include "shard/download.h"

typedef struct pvlm_urlsrc pvlm_urlsrc;

typedef struct pvlm_urlsrc_opts {
    const char *format;      /* "auto" (default: by extension, else by content), "tsv", "csv", "jsonl" */
    const char *url_col;     /* header name / JSON key, or 0-based index as digits (default "url") */
    const char *caption_col; /* likewise (default "caption") */
    int header;              /* -1 auto (default), 0 no header row, 1 first row is a header */
    int keep_empty_caption;  /* 1: yield rows whose caption is empty (caption ""); default 0 */
} pvlm_urlsrc_opts;

void pvlm_urlsrc_opts_default(pvlm_urlsrc_opts *o);

typedef struct pvlm_url_item {
    int64_t index;       /* row ordinal (see above) or, from a failures file, its "index" */
    const char *url;     /* trimmed, non-empty */
    const char *caption; /* non-empty unless keep_empty_caption */
    int64_t line;        /* 1-based line where the row starts (for messages) */
} pvlm_url_item;

typedef struct pvlm_urlsrc_counts {
    int64_t rows;     /* data rows seen (= next index) */
    int64_t items;    /* rows yielded */
    int64_t bad_rows; /* unparsable / missing column / too long */
    int64_t empty_url;
    int64_t empty_caption;
    int64_t filtered; /* failures mode: lines skipped by the reason filter or repeated */
} pvlm_urlsrc_counts;

/* Open a URL list. NULL + err (naming the file and the flag) when the file cannot be
 * opened or the columns cannot be resolved. */
pvlm_urlsrc *pvlm_urlsrc_open(const char *path, const pvlm_urlsrc_opts *o, pvlm_err *err);

/* Open the failures file of an earlier build as a source of its failed rows. reasons:
 * NULL or "" = every reason except those a retry cannot change (robots_optout,
 * bad_scheme, bad_url); "all" = every line; else a comma list ("timeout,http_5xx"). */
pvlm_urlsrc *pvlm_urlsrc_open_failures(const char *path, const char *reasons, pvlm_err *err);

/* Next item: 1 and *it filled, 0 at the end, -1 on a read error (err names file:line). */
int pvlm_urlsrc_next(pvlm_urlsrc *s, pvlm_url_item *it, pvlm_err *err);

void pvlm_urlsrc_get_counts(const pvlm_urlsrc *s, pvlm_urlsrc_counts *out);
void pvlm_urlsrc_close(pvlm_urlsrc *s);

/* A pvlm_dl_next_fn over a source (ctx = pvlm_urlsrc *): pass it to pvlm_dl_run to stream
 * a URL list through the downloader (item.user is NULL; url/caption are copied by it). */
int pvlm_urlsrc_dl_next(void *ctx, pvlm_dl_item *item, pvlm_err *err);

/* ---------------------------------------------------------------- failures file */

typedef struct pvlm_urlfail pvlm_urlfail;

/* Create (append = 0: truncate) or append to a failures file. */
pvlm_urlfail *pvlm_urlfail_open(const char *path, int append, pvlm_err *err);
/* One line. reason is a pvlm_dl_reason_name or a builder reason ("decode_error");
 * caption/detail may be NULL; http_status 0 = none. */
int pvlm_urlfail_write(pvlm_urlfail *w, int64_t index, const char *url, const char *caption, const char *reason,
                       long http_status, int attempts, const char *detail, pvlm_err *err);
/* One line from a downloader result (reason name, status, attempts and detail from r). */
int pvlm_urlfail_write_result(pvlm_urlfail *w, const pvlm_dl_result *r, pvlm_err *err);
/* Flush (fflush + fsync) without closing, e.g. when a shard is committed. */
int pvlm_urlfail_flush(pvlm_urlfail *w, pvlm_err *err);
/* Flush, fsync and close; returns -1 if any write failed. Frees w (also on error). */
int pvlm_urlfail_close(pvlm_urlfail *w, pvlm_err *err);
int64_t pvlm_urlfail_count(const pvlm_urlfail *w);

#endif
