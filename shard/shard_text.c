/* shard_text.c - see shard_text.h.
 *
 * Input: JSON lines with a "text" field (C4 release format: text, url, timestamp), read from
 * .json (plain), .json.gz (zlib's gz reader) or .json.zst (zstd streaming decoder). A line that is
 * not a JSON object, has no string "text", holds invalid UTF-8 or empty text is skipped and
 * counted by reason; a truncated/corrupt compressed input keeps the documents read before the
 * damage and is counted as "truncated_input" (logged with the file name).
 */
#include "shard_text.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "core/args.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "core/threads.h"
#include "core/timer.h"
#include "core/utf8.h"
#include "io/manifest.h"
#include "io/textshard.h"

enum { SK_BAD_JSON, SK_NO_TEXT, SK_BAD_UTF8, SK_EMPTY, SK_TOO_LONG, SK_TRUNCATED, SK_N };
static const char *const sk_names[SK_N] = {"bad_json", "no_text", "bad_utf8", "empty", "too_long", "truncated_input"};

/* ---------------------------------------------------------------- line reader over 3 formats */

typedef struct reader {
    const char *path;
    int kind; /* 0 plain, 1 gz, 2 zst */
    FILE *f;
    gzFile gz;
    ZSTD_DStream *zd;
    uint8_t *zin;
    size_t zin_cap, zin_pos, zin_len;
    size_t zlast; /* last ZSTD_decompressStream return: 0 at a frame end */
    int eof, error;
    char *buf; /* pending decompressed bytes */
    size_t cap, start, len;
} reader;

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int reader_open(reader *r, const char *path, pvlm_err *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->kind = ends_with(path, ".gz") ? 1 : ends_with(path, ".zst") ? 2 : 0;
    if (r->kind == 1) {
        r->gz = gzopen(path, "rb");
        if (!r->gz) return pvlm_err_errno(err, "shard text: cannot open %s", path);
        gzbuffer(r->gz, 1 << 17);
    } else {
        r->f = fopen(path, "rb");
        if (!r->f) return pvlm_err_errno(err, "shard text: cannot open %s", path);
        if (r->kind == 2) {
            r->zd = ZSTD_createDStream();
            r->zin_cap = ZSTD_DStreamInSize();
            r->zin = malloc(r->zin_cap);
            if (!r->zd || !r->zin) return pvlm_err_set(err, PVLM_ENOMEM, "shard text: out of memory");
            ZSTD_initDStream(r->zd);
        }
    }
    r->cap = 1 << 20;
    r->buf = malloc(r->cap);
    if (!r->buf) return pvlm_err_set(err, PVLM_ENOMEM, "shard text: out of memory");
    return 0;
}

static void reader_close(reader *r) {
    if (r->f) fclose(r->f);
    if (r->gz) gzclose(r->gz);
    ZSTD_freeDStream(r->zd);
    free(r->zin), free(r->buf);
    memset(r, 0, sizeof *r);
}

/* Append up to `room` decompressed bytes at dst; returns bytes produced, 0 at end or error. */
static size_t reader_fill(reader *r, char *dst, size_t room) {
    if (r->kind == 0) {
        size_t n = fread(dst, 1, room, r->f);
        if (n == 0 && ferror(r->f)) r->error = 1;
        return n;
    }
    if (r->kind == 1) {
        int n = gzread(r->gz, dst, (unsigned)(room > (1u << 30) ? (1u << 30) : room));
        if (n < 0) {
            r->error = 1;
            return 0;
        }
        if (n == 0) {
            int e;
            gzerror(r->gz, &e);
            if (e != Z_OK) r->error = 1;
        }
        return (size_t)n;
    }
    ZSTD_outBuffer out = {dst, room, 0};
    while (out.pos == 0) {
        if (r->zin_pos == r->zin_len) {
            r->zin_len = fread(r->zin, 1, r->zin_cap, r->f);
            r->zin_pos = 0;
            if (r->zin_len == 0) {
                if (ferror(r->f) || r->zlast != 0) r->error = 1; /* ended inside a frame */
                return 0;
            }
        }
        ZSTD_inBuffer in = {r->zin, r->zin_len, r->zin_pos};
        size_t rc = ZSTD_decompressStream(r->zd, &out, &in);
        r->zin_pos = in.pos;
        if (ZSTD_isError(rc)) {
            r->error = 1;
            return 0;
        }
        r->zlast = rc;
    }
    return out.pos;
}

/* Next line (without the newline) into line, n; returns 1, or 0 at the end of input. */
static int reader_line(reader *r, char **line, size_t *n) {
    for (;;) {
        char *s = r->buf + r->start;
        char *nl = r->len ? memchr(s, '\n', r->len) : NULL;
        if (nl) {
            *line = s, *n = (size_t)(nl - s);
            r->start += *n + 1, r->len -= *n + 1;
            return 1;
        }
        if (r->eof) {
            if (r->len == 0) return 0;
            *line = s, *n = r->len; /* last line without newline */
            r->start += r->len, r->len = 0;
            return 1;
        }
        if (r->start) memmove(r->buf, r->buf + r->start, r->len), r->start = 0;
        if (r->cap - r->len < (1 << 16)) {
            char *b = realloc(r->buf, r->cap * 2);
            if (!b) {
                r->error = 1, r->eof = 1;
                continue;
            }
            r->buf = b, r->cap *= 2;
        }
        size_t got = reader_fill(r, r->buf + r->len, r->cap - r->len);
        if (got == 0) r->eof = 1;
        r->len += got;
    }
}

/* ---------------------------------------------------------------- one shard */

typedef struct job {
    char **inputs;
    int ninputs;
    const char *out_dir;
    size_t frame_bytes;
    int level, force;
    atomic_int next;
    atomic_int failed;
    pthread_mutex_t mu;
    json_t **results; /* [ninputs] per-shard JSON (the sidecar contents) */
    pvlm_err err;
} job;

static void shard_name(char *buf, size_t cap, int i) {
    snprintf(buf, cap, "text-%05d.pvt", i);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Resume: a shard whose sidecar names this input and whose file opens is complete (the sidecar is
 * written only after the shard was renamed into place); returns its sidecar, or NULL to rebuild. */
static json_t *complete_shard(const job *J, int i, const char *name, const char *path, const char *side) {
    if (J->force || !pvlm_file_exists(path) || !pvlm_file_exists(side)) return NULL;
    pvlm_err e2;
    json_t *j = pvlm_json_load_file(side, &e2);
    const char *src = NULL;
    if (j && !pvlm_json_get_str(j, "source", &src, side, &e2) && !strcmp(src, base_name(J->inputs[i]))) {
        pvlm_textshard *s = pvlm_textshard_open(path, &e2);
        if (s) {
            pvlm_textshard_close(s);
            pvlm_info("shard text: %s already complete, skipping", name);
            return j;
        }
    }
    json_decref(j);
    return NULL;
}

/* Why line (n bytes) is not a document (an SK_ reason; j gets the parsed object, caller decrefs),
 * or -1 with its text in *text, *tn. */
static int classify_line(const char *line, size_t n, json_t **j, const char **text, size_t *tn) {
    *j = NULL;
    if (!pvlm_utf8_valid(line, n)) return SK_BAD_UTF8;
    json_error_t je;
    *j = json_loadb(line, n, JSON_ALLOW_NUL, &je);
    if (!*j || !json_is_object(*j)) return SK_BAD_JSON;
    json_t *t = json_object_get(*j, "text");
    if (!json_is_string(t)) return SK_NO_TEXT;
    *text = json_string_value(t), *tn = json_string_length(t);
    if (*tn == 0) return SK_EMPTY;
    if (*tn > PVLM_TEXTSHARD_MAX_DOC) return SK_TOO_LONG;
    return -1;
}

/* Every document of input i into w; skipped lines counted by reason (the first of each logged). */
static int copy_docs(const job *J, int i, reader *rd, pvlm_textshard_writer *w, int64_t skipped[SK_N], pvlm_err *err) {
    int64_t lineno = 0;
    int logged[SK_N] = {0};
    char *line;
    size_t n;
    while (reader_line(rd, &line, &n)) {
        lineno++;
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
        if (n == 0) continue; /* blank lines are not records */
        json_t *j;
        const char *text = NULL;
        size_t tn = 0;
        int why = classify_line(line, n, &j, &text, &tn);
        if (why >= 0) {
            skipped[why]++;
            if (!logged[why]++)
                pvlm_warn("shard text: %s line %lld: skipped (%s); further ones are only counted", J->inputs[i],
                          (long long)lineno, sk_names[why]);
        } else if (pvlm_textshard_writer_add(w, text, tn, err)) {
            json_decref(j);
            return -1;
        }
        json_decref(j);
    }
    if (rd->error) {
        skipped[SK_TRUNCATED]++;
        pvlm_warn(
            "shard text: %s: truncated or corrupt compressed input after line %lld; kept the %lld lines before it",
            J->inputs[i], (long long)lineno, (long long)lineno);
    }
    return 0;
}

static json_t *build_shard(job *J, int i, pvlm_err *err) {
    char name[64], path[4096], side[4200];
    shard_name(name, sizeof name, i);
    if (pvlm_path_join(path, sizeof path, J->out_dir, name, err) != 0) return NULL;
    snprintf(side, sizeof side, "%s.json", path); /* fits: side has room for path and the suffix */
    json_t *done = complete_shard(J, i, name, path, side);
    if (done) return done;
    reader rd;
    if (reader_open(&rd, J->inputs[i], err)) {
        reader_close(&rd);
        return NULL;
    }
    pvlm_textshard_writer *w = pvlm_textshard_writer_open(path, J->frame_bytes, J->level, err);
    if (!w) {
        reader_close(&rd);
        return NULL;
    }
    int64_t skipped[SK_N] = {0};
    int rc = copy_docs(J, i, &rd, w, skipped, err);
    reader_close(&rd);
    if (rc != 0) {
        pvlm_textshard_writer_abort(w);
        return NULL;
    }
    pvlm_textshard_info info;
    if (pvlm_textshard_writer_close(w, &info, err)) return NULL;
    char hex[17];
    pvlm_hash_hex(info.checksum, hex);
    json_t *sk = json_object();
    for (int k = 0; k < SK_N; k++) json_object_set_new(sk, sk_names[k], json_integer(skipped[k]));
    json_t *r =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:o}", "path", name, "source", base_name(J->inputs[i]), "docs",
                  (json_int_t)info.n_docs, "frames", (json_int_t)info.n_frames, "text_bytes",
                  (json_int_t)info.raw_bytes, "bytes", (json_int_t)info.file_bytes, "checksum", hex, "skipped", sk);
    if (!r || pvlm_json_save_atomic(r, side, err)) {
        json_decref(r);
        return NULL;
    }
    pvlm_info("shard text: %s <- %s: %lld docs, %lld frames, %lld -> %lld bytes", name, J->inputs[i],
              (long long)info.n_docs, (long long)info.n_frames, (long long)info.raw_bytes, (long long)info.file_bytes);
    return r;
}

static void *worker(void *arg) {
    job *J = arg;
    for (;;) {
        int i = atomic_fetch_add(&J->next, 1);
        if (i >= J->ninputs || atomic_load(&J->failed)) break;
        pvlm_err err = {0};
        json_t *r = build_shard(J, i, &err);
        if (!r) {
            pthread_mutex_lock(&J->mu);
            if (!atomic_load(&J->failed)) J->err = err;
            atomic_store(&J->failed, 1);
            pthread_mutex_unlock(&J->mu);
            break;
        }
        J->results[i] = r;
    }
    return NULL;
}

static int is_input_name(const char *n) {
    const char *suf[] = {".json", ".jsonl", ".json.gz", ".jsonl.gz", ".json.zst", ".jsonl.zst"};
    for (size_t i = 0; i < sizeof suf / sizeof suf[0]; i++)
        if (ends_with(n, suf[i])) return 1;
    return 0;
}

/* Append a copy of path to the list *v (n entries, cap slots). */
static int push_input(char ***v, int *n, int *cap, const char *path, pvlm_err *err) {
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        char **q = realloc(*v, sizeof(char *) * (size_t)nc);
        if (!q) return pvlm_err_set(err, PVLM_ENOMEM, "shard text: out of memory");
        *v = q, *cap = nc;
    }
    if (!((*v)[*n] = strdup(path))) return pvlm_err_set(err, PVLM_ENOMEM, "shard text: out of memory");
    (*n)++;
    return 0;
}

/* Input files of a directory (JSON lines by suffix), sorted by name so shard i is always the
 * i-th file (c4-train.00000-of-01024 ...). Appends malloc'd paths to *v. */
static int list_inputs(const char *dir, char ***v, int *n, int *cap, pvlm_err *err) {
    char **names, path[4096];
    size_t k;
    if (pvlm_dir_names(dir, is_input_name, &names, &k, err)) return pvlm_err_prefix(err, "shard text");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < k; i++)
        rc = pvlm_path_join(path, sizeof path, dir, names[i], err) || push_input(v, n, cap, path, err) ? -1 : 0;
    pvlm_dir_names_free(names, k);
    if (rc == 0 && k == 0)
        rc = pvlm_err_set(err, PVLM_EINVAL, "shard text: no .json/.json.gz/.json.zst files in %s", dir);
    return rc;
}

/* The inputs in shard order: --input (a file, or a directory's files sorted by name) first, then the
 * positional files. Fills a malloc'd list of malloc'd paths (*files, *nfiles; the caller frees both,
 * also after a failure). */
static int collect_inputs(const char *input, char **pos, int npos, char ***files, int *nfiles, pvlm_err *err) {
    int cap = 0;
    *files = NULL, *nfiles = 0;
    if (input && pvlm_is_dir(input)) {
        if (list_inputs(input, files, nfiles, &cap, err) != 0) return -1;
    } else if (input && push_input(files, nfiles, &cap, input, err) != 0) {
        return -1;
    }
    for (int i = 0; i < npos; i++)
        if (push_input(files, nfiles, &cap, pos[i], err) != 0) return -1;
    return 0;
}

/* Build every shard: the calling thread and up to threads-1 more take inputs from J->next. */
static void run_workers(job *J, int threads) {
    int nt = pvlm_threads_resolve(threads);
    if (nt > J->ninputs) nt = J->ninputs;
    if (nt < 1) nt = 1;
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    int started = 0;
    for (int t = 1; th && t < nt; t++)
        if (!pthread_create(&th[t], NULL, worker, J)) started = t;
    worker(J);
    for (int t = 1; t <= started; t++) pthread_join(th[t], NULL);
    free(th);
}

/* manifest.json from the shards' results (J->results, in input order); logs the totals. */
static int write_text_manifest(const job *J, int64_t frame_bytes, int level, double t0, pvlm_err *err) {
    pvlm_manifest m;
    if (pvlm_manifest_init(&m, "text", err)) return -1;
    int rc = 0;
    int64_t docs = 0, tb = 0, bytes = 0;
    for (int i = 0; rc == 0 && i < J->ninputs; i++) {
        json_t *r = J->results[i];
        int64_t d = json_integer_value(json_object_get(r, "docs"));
        int64_t b = json_integer_value(json_object_get(r, "bytes"));
        int64_t t = json_integer_value(json_object_get(r, "text_bytes"));
        uint64_t ck = 0;
        pvlm_hash_parse(json_string_value(json_object_get(r, "checksum")), &ck);
        json_t *extra = json_pack("{s:O, s:O, s:O}", "frames", json_object_get(r, "frames"), "text_bytes",
                                  json_object_get(r, "text_bytes"), "source", json_object_get(r, "source"));
        rc = pvlm_manifest_add_shard(&m, json_string_value(json_object_get(r, "path")), d, (uint64_t)b, ck, extra, err);
        if (rc != 0) break;
        json_t *sk = json_object_get(r, "skipped");
        for (int k = 0; k < SK_N; k++)
            pvlm_manifest_add_failures(&m, sk_names[k], json_integer_value(json_object_get(sk, sk_names[k])));
        pvlm_manifest_add_total(&m, "text_bytes", t);
        docs += d, tb += t, bytes += b;
    }
    pvlm_manifest_set_settings(
        &m, json_pack("{s:s, s:I, s:i}", "content", "utf8", "frame_bytes", (json_int_t)frame_bytes, "level", level));
    char mpath[4096];
    if (rc == 0) rc = pvlm_path_join(mpath, sizeof mpath, J->out_dir, "manifest.json", err);
    if (rc == 0 && pvlm_manifest_save(&m, mpath, err) != 0) {
        pvlm_err_prefix(err, "writing %s", mpath);
        rc = -1;
    } else if (rc == 0) {
        double dt = pvlm_now() - t0;
        pvlm_info("shard text: %d shards, %lld docs, %lld text bytes -> %lld bytes (%.2fx) in %.1f s (%.1f MB/s)",
                  J->ninputs, (long long)docs, (long long)tb, (long long)bytes,
                  bytes ? (double)tb / (double)bytes : 0.0, dt, dt > 0 ? (double)tb / dt / 1e6 : 0.0);
    }
    pvlm_manifest_free(&m);
    return rc;
}

static void free_inputs(char **files, int n) {
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);
}

int pvlm_shard_text_main(int argc, char **argv) {
    const char *out = NULL, *config = NULL, *input = NULL;
    int64_t frame_bytes = 1 << 20;
    int level = 3, threads = 0, force = 0;
    const pvlm_opt opts[] = {
        {"input", PVLM_ARG_STR, &input, "an input file, or a directory of them (sorted by name), before INPUT...", NULL,
         0, 0, 0},
        {"out", PVLM_ARG_STR, &out, "output directory (shards text-NNNNN.pvt + manifest.json)", NULL, 0, 0, 1},
        {"frame-bytes", PVLM_ARG_I64, &frame_bytes, "text bytes per zstd frame (seek unit)", NULL, 4096, 1 << 30, 0},
        {"level", PVLM_ARG_INT, &level, "zstd compression level", NULL, 1, 19, 0},
        {"threads", PVLM_ARG_INT, &threads, "input files processed concurrently (0: core/threads.h default)", NULL, 0,
         1024, 0},
        {"force", PVLM_ARG_FLAG, &force, "rebuild shards that are already complete", NULL, 0, 0, 0},
        {"config", PVLM_ARG_STR, &config, "JSON file of flag values", NULL, 0, 0, 0},
    };
    const pvlm_cmd cmd = {"pvlm shard text",
                          "build zstd text shards from JSON lines (.json, .json.gz, .json.zst; C4 format)",
                          "[INPUT...]",
                          opts,
                          (int)(sizeof opts / sizeof opts[0]),
                          0,
                          1 << 20};
    char **pos = malloc(sizeof(char *) * (size_t)(argc + 1));
    int npos = 0;
    if (!pos) return 1;
    int rc = pvlm_args_parse(&cmd, argc, argv, pos, &npos);
    if (rc != PVLM_ARGS_OK) {
        free(pos);
        return rc == PVLM_ARGS_HELP ? 0 : 2;
    }
    pvlm_err err = {0};
    char **files;
    int nfiles;
    rc = collect_inputs(input, pos, npos, &files, &nfiles, &err);
    free(pos);
    if (rc == 0 && nfiles == 0) {
        fprintf(stderr, "pvlm shard text: no input (give --input or INPUT files)\n");
        free_inputs(files, nfiles);
        return 2;
    }
    if (rc != 0 || pvlm_mkdir_p(out, &err) != 0) {
        pvlm_error("%s", err.msg);
        free_inputs(files, nfiles);
        return 1;
    }
    double t0 = pvlm_now();
    job J;
    memset(&J, 0, sizeof J);
    J.inputs = files, J.ninputs = nfiles, J.out_dir = out, J.frame_bytes = (size_t)frame_bytes, J.level = level;
    J.force = force;
    atomic_init(&J.next, 0);
    atomic_init(&J.failed, 0);
    pthread_mutex_init(&J.mu, NULL);
    J.results = calloc((size_t)nfiles, sizeof(json_t *));
    if (!J.results) {
        pvlm_err_set(&J.err, PVLM_ENOMEM, "shard text: out of memory");
        atomic_store(&J.failed, 1);
    } else {
        run_workers(&J, threads);
    }
    rc = 0;
    if (atomic_load(&J.failed)) {
        pvlm_error("%s", J.err.msg);
        rc = 1;
    } else if (write_text_manifest(&J, frame_bytes, level, t0, &err) != 0) {
        pvlm_error("shard text: %s", err.msg);
        rc = 1;
    }
    for (int i = 0; J.results && i < nfiles; i++) json_decref(J.results[i]);
    free(J.results);
    pthread_mutex_destroy(&J.mu);
    free_inputs(files, nfiles);
    return rc;
}
