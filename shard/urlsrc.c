/* urlsrc.c - see urlsrc.h. */
#include "urlsrc.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/fsutil.h"
#include "core/i64map.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/utf8.h"

#define MAX_RECORD (1u << 20) /* a longer row is a broken file (e.g. an unclosed CSV quote) */

enum { FMT_TSV, FMT_CSV, FMT_JSONL };

void pvlm_urlsrc_opts_default(pvlm_urlsrc_opts *o) {
    o->format = "auto";
    o->url_col = "url";
    o->caption_col = "caption";
    o->header = -1;
    o->keep_empty_caption = 0;
}

struct pvlm_urlsrc {
    char *path;
    gzFile gz;
    unsigned char buf[1 << 16];
    size_t pos, len;
    int eof;
    int fmt;
    /* TSV/CSV columns */
    int url_i, cap_i;
    /* JSONL keys (also the failures file) */
    char *url_key, *cap_key;
    /* the current record: NUL-separated fields in rec */
    char *rec;
    size_t rec_len, rec_cap;
    int too_long;
    int nul; /* the record holds a NUL byte: it would cut a field short, so the row is bad */
    size_t *fields;
    int nfields, fields_cap;
    int64_t line;      /* lines consumed so far */
    int64_t rec_line;  /* first line of the current record */
    int first_pending; /* the first record was read while resolving columns and is data */
    json_t *json;      /* current JSONL object (item strings borrow from it) */
    char *url_trim;    /* trimmed copies handed out */
    size_t url_trim_cap;
    /* failures mode */
    int keep_empty_caption;
    int failures;
    char **reasons; /* NULL: default exclusions */
    int nreasons, all_reasons;
    pvlm_i64map seen; /* indices already yielded (failures files can repeat a row) */
    pvlm_urlsrc_counts counts;
    int logged_bad, logged_empty_url, logged_empty_caption;
};

/* ---------------------------------------------------------------- buffered reading */

static int fill(pvlm_urlsrc *s, pvlm_err *err) {
    if (s->eof) return 0;
    int n = gzread(s->gz, s->buf, sizeof s->buf);
    if (n < 0) {
        int e;
        const char *m = gzerror(s->gz, &e);
        return pvlm_err_set(err, PVLM_EIO, "%s: line %lld: read failed: %s", s->path, (long long)s->line + 1,
                            e == Z_ERRNO ? strerror(errno) : m);
    }
    s->pos = 0;
    s->len = (size_t)n;
    if (n == 0) s->eof = 1;
    return n > 0;
}

/* Next byte, -1 at the end, -2 on a read error. */
static inline int getb(pvlm_urlsrc *s, pvlm_err *err) {
    if (s->pos == s->len) {
        int r = fill(s, err);
        if (r < 0) return -2;
        if (r == 0) return -1;
    }
    int c = s->buf[s->pos++];
    if (c == 0) s->nul = 1;
    return c;
}

static inline int peekb(pvlm_urlsrc *s, pvlm_err *err) {
    int c = getb(s, err);
    if (c >= 0) s->pos--;
    return c;
}

static int rec_put(pvlm_urlsrc *s, char c) {
    if (s->rec_len >= MAX_RECORD) {
        s->too_long = 1;
        return 0;
    }
    if (s->rec_len + 1 >= s->rec_cap) {
        size_t nc = s->rec_cap ? s->rec_cap * 2 : 4096;
        char *nr = realloc(s->rec, nc);
        if (!nr) return -1;
        s->rec = nr;
        s->rec_cap = nc;
    }
    s->rec[s->rec_len++] = c;
    return 0;
}

static int field_start(pvlm_urlsrc *s) {
    if (s->nfields == s->fields_cap) {
        int nc = s->fields_cap ? s->fields_cap * 2 : 16;
        size_t *nf = realloc(s->fields, (size_t)nc * sizeof *nf);
        if (!nf) return -1;
        s->fields = nf;
        s->fields_cap = nc;
    }
    s->fields[s->nfields++] = s->rec_len;
    return 0;
}

static void rec_reset(pvlm_urlsrc *s) {
    s->rec_len = 0;
    s->nfields = 0;
    s->too_long = 0;
    s->nul = 0;
}

static int oom(pvlm_urlsrc *s, pvlm_err *err) {
    return pvlm_err_set(err, PVLM_ENOMEM, "%s: line %lld: out of memory", s->path, (long long)s->rec_line);
}

/* NUL-terminate the record (a too-long one is emptied; it is reported as bad). Returns 1. */
static int rec_finish(pvlm_urlsrc *s, pvlm_err *err) {
    if (s->too_long) {
        s->rec_len = 0;
        s->nfields = 0;
    }
    if (!s->rec_cap) {
        if (!(s->rec = malloc(4096))) return oom(s, err);
        s->rec_cap = 4096;
    }
    s->rec[s->rec_len] = '\0'; /* rec_put keeps rec_len < rec_cap */
    return 1;
}

/* One line into rec (without the line break; a CR before LF is dropped). sep >= 0 splits
 * fields at that byte (TSV). Returns 1 a line, 0 at the end of input, -1 on error. */
static int read_line(pvlm_urlsrc *s, int sep, pvlm_err *err) {
    rec_reset(s);
    s->rec_line = s->line + 1;
    if (field_start(s)) return oom(s, err);
    int c, any = 0;
    while ((c = getb(s, err)) >= 0) {
        any = 1;
        if (c == '\n') break;
        if (c == sep) {
            if (rec_put(s, '\0') || (!s->too_long && field_start(s))) return oom(s, err);
            continue;
        }
        if (rec_put(s, (char)c)) return oom(s, err);
    }
    if (c == -2) return -1;
    if (!any) return 0;
    s->line++;
    if (s->rec_len && s->rec[s->rec_len - 1] == '\r' && !s->too_long) s->rec_len--;
    return rec_finish(s, err);
}

/* One RFC 4180 record into rec. Lenient where the RFC is strict, like most readers: a
 * quote inside an unquoted field is a literal character, and text after a closing quote
 * is appended to the field. */
static int read_csv(pvlm_urlsrc *s, pvlm_err *err) {
    rec_reset(s);
    s->rec_line = s->line + 1;
    if (field_start(s)) return oom(s, err);
    int c, any = 0, quoted = 0, at_start = 1;
    for (;;) {
        c = getb(s, err);
        if (c < 0) break;
        any = 1;
        if (quoted) {
            if (c == '"') {
                int n = peekb(s, err);
                if (n == -2) return -1;
                if (n == '"') {
                    getb(s, err);
                    if (rec_put(s, '"')) return oom(s, err);
                } else {
                    quoted = 0;
                }
            } else {
                if (c == '\n') s->line++;
                if (rec_put(s, (char)c)) return oom(s, err);
            }
            continue;
        }
        if (c == '\n') break;
        if (c == '"' && at_start) {
            quoted = 1;
            at_start = 0;
        } else if (c == ',') {
            if (rec_put(s, '\0') || (!s->too_long && field_start(s))) return oom(s, err);
            at_start = 1;
        } else if (c == '\r') {
            int n = peekb(s, err);
            if (n == -2) return -1;
            if (n != '\n') { /* a lone CR is data; CRLF ends the record at the LF */
                if (rec_put(s, '\r')) return oom(s, err);
                at_start = 0;
            }
        } else {
            if (rec_put(s, (char)c)) return oom(s, err);
            at_start = 0;
        }
        if (s->too_long) { /* resynchronise at the next line break */
            while ((c = getb(s, err)) >= 0 && c != '\n') {
            }
            break;
        }
    }
    if (c == -2) return -1;
    if (!any) return 0;
    s->line++;
    return rec_finish(s, err);
}

static int read_record(pvlm_urlsrc *s, pvlm_err *err) {
    return s->fmt == FMT_CSV ? read_csv(s, err) : read_line(s, s->fmt == FMT_TSV ? '\t' : -1, err);
}

static const char *field(const pvlm_urlsrc *s, int i) {
    return s->rec + s->fields[i];
}

static int blank_record(const pvlm_urlsrc *s) {
    if (s->too_long || s->nul) return 0;
    for (size_t i = 0; i < s->rec_len; i++)
        if (s->rec[i] && !isspace((unsigned char)s->rec[i])) return 0;
    return 1;
}

/* ---------------------------------------------------------------- columns */

static int parse_index(const char *col) {
    if (!col || !*col) return -1;
    long v = 0;
    for (const char *p = col; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 100000) return -1;
        v = v * 10 + (*p - '0');
    }
    return (int)v;
}

static int looks_like_url(const char *f) {
    while (isspace((unsigned char)*f)) f++;
    const char *p = strstr(f, "://");
    if (!p || p == f) return 0;
    for (const char *q = f; q < p; q++)
        if (!isalnum((unsigned char)*q) && *q != '+' && *q != '-' && *q != '.') return 0;
    return 1;
}

static int find_name(const pvlm_urlsrc *s, const char *name) {
    for (int i = 0; i < s->nfields; i++) {
        const char *f = field(s, i);
        while (isspace((unsigned char)*f)) f++;
        size_t n = strlen(f);
        while (n && isspace((unsigned char)f[n - 1])) n--;
        if (n == strlen(name) && !strncasecmp(f, name, n)) return i;
    }
    return -1;
}

static void columns_list(const pvlm_urlsrc *s, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->nfields && k + 1 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d='%.40s'", i ? ", " : "", i, field(s, i));
}

/* Decide the header row and the column indices from the first record. */
static int resolve_columns(pvlm_urlsrc *s, const pvlm_urlsrc_opts *o, pvlm_err *err) {
    int r;
    do {
        r = read_record(s, err);
        if (r < 0) return -1;
    } while (r == 1 && blank_record(s));
    if (r == 0) { /* empty file: nothing to yield */
        s->url_i = 0;
        s->cap_i = 1;
        return 0;
    }
    const char *uname = o->url_col ? o->url_col : "url";
    const char *cname = o->caption_col ? o->caption_col : "caption";
    int ui = parse_index(uname), ci = parse_index(cname);
    int hu = ui < 0 ? find_name(s, uname) : -1, hc = ci < 0 ? find_name(s, cname) : -1;
    char cols[512];
    int header;
    if (o->header >= 0) {
        header = o->header;
    } else if (hu >= 0 || hc >= 0) {
        header = 1;
    } else if (ui >= 0) {
        header = !(ui < s->nfields && looks_like_url(field(s, ui)));
    } else {
        header = 0;
    }
    if (header) {
        if (ui < 0) ui = hu;
        if (ci < 0) ci = hc;
        if (ui < 0 || ci < 0) {
            columns_list(s, cols, sizeof cols);
            return pvlm_err_set(err, PVLM_EINVAL, "%s: header row has no column '%s' (--%s); columns: %s", s->path,
                                ui < 0 ? uname : cname, ui < 0 ? "url-col" : "caption-col", cols);
        }
    } else {
        /* No header: names cannot match, so find the URL column by content. */
        if (ui < 0) {
            for (int i = 0; i < s->nfields; i++)
                if (looks_like_url(field(s, i))) {
                    ui = i;
                    break;
                }
        }
        if (ci < 0 && ui >= 0 && s->nfields == 2) ci = 1 - ui;
        if (ui < 0 || ci < 0) {
            columns_list(s, cols, sizeof cols);
            return pvlm_err_set(err, PVLM_EINVAL,
                                "%s: no header row naming '%s'/'%s' and the columns cannot be guessed from "
                                "the first row (%s): give --url-col and --caption-col as 0-based indices",
                                s->path, uname, cname, cols);
        }
        pvlm_info("%s: no header row; using column %d as url and column %d as caption", s->path, ui, ci);
        s->first_pending = 1;
    }
    if (ui == ci) return pvlm_err_set(err, PVLM_EINVAL, "%s: url and caption are the same column (%d)", s->path, ui);
    s->url_i = ui;
    s->cap_i = ci;
    return 0;
}

/* ---------------------------------------------------------------- open / close */

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcasecmp(s + n - m, suf);
}

static int detect_format(pvlm_urlsrc *s, const char *fmt, pvlm_err *err) {
    if (fmt && strcmp(fmt, "auto") && fmt[0]) {
        if (!strcmp(fmt, "tsv")) return FMT_TSV;
        if (!strcmp(fmt, "csv")) return FMT_CSV;
        if (!strcmp(fmt, "jsonl")) return FMT_JSONL;
        return pvlm_err_set(err, PVLM_EINVAL, "--url-format '%s': expected auto, tsv, csv or jsonl", fmt);
    }
    char base[4096];
    snprintf(base, sizeof base, "%s", s->path);
    if (has_suffix(base, ".gz")) base[strlen(base) - 3] = '\0';
    if (has_suffix(base, ".tsv") || has_suffix(base, ".tab")) return FMT_TSV;
    if (has_suffix(base, ".csv")) return FMT_CSV;
    if (has_suffix(base, ".jsonl") || has_suffix(base, ".json") || has_suffix(base, ".ndjson")) return FMT_JSONL;
    /* By content: a JSON object, else a tab in the first line means TSV, else CSV. */
    if (s->pos == s->len && fill(s, err) < 0) return -1;
    size_t i = 0;
    while (i < s->len && isspace(s->buf[i])) i++;
    if (i < s->len && s->buf[i] == '{') return FMT_JSONL;
    for (i = 0; i < s->len && s->buf[i] != '\n'; i++)
        if (s->buf[i] == '\t') return FMT_TSV;
    return FMT_CSV;
}

static pvlm_urlsrc *src_new(const char *path, pvlm_err *err) {
    pvlm_urlsrc *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    s->gz = gzopen(path, "rb"); /* plain files are read as they are */
    if (!s->gz) {
        pvlm_err_errno(err, "%s: cannot open URL list", path);
        free(s->path);
        free(s);
        return NULL;
    }
    gzbuffer(s->gz, 1 << 17);
    if (fill(s, err) < 0) {
        gzclose(s->gz);
        free(s->path);
        free(s);
        return NULL;
    }
    if (s->len >= 3 && !memcmp(s->buf, "\xEF\xBB\xBF", 3)) s->pos = 3; /* UTF-8 byte order mark */
    return s;
}

pvlm_urlsrc *pvlm_urlsrc_open(const char *path, const pvlm_urlsrc_opts *o, pvlm_err *err) {
    pvlm_urlsrc_opts def;
    if (!o) {
        pvlm_urlsrc_opts_default(&def);
        o = &def;
    }
    pvlm_urlsrc *s = src_new(path, err);
    if (!s) return NULL;
    s->keep_empty_caption = o->keep_empty_caption;
    s->fmt = detect_format(s, o->format, err);
    if (s->fmt < 0) goto fail;
    if (s->fmt == FMT_JSONL) {
        const char *u = o->url_col ? o->url_col : "url", *c = o->caption_col ? o->caption_col : "caption";
        if (parse_index(u) >= 0 || parse_index(c) >= 0) {
            pvlm_err_set(err, PVLM_EINVAL, "%s: JSON lines need key names for --url-col/--caption-col, not indices",
                         path);
            goto fail;
        }
        s->url_key = strdup(u);
        s->cap_key = strdup(c);
        if (!s->url_key || !s->cap_key) {
            pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
    } else if (resolve_columns(s, o, err)) {
        goto fail;
    }
    return s;
fail:
    pvlm_urlsrc_close(s);
    return NULL;
}

pvlm_urlsrc *pvlm_urlsrc_open_failures(const char *path, const char *reasons, pvlm_err *err) {
    pvlm_urlsrc *s = src_new(path, err);
    if (!s) return NULL;
    s->fmt = FMT_JSONL;
    s->failures = 1;
    s->url_key = strdup("url");
    s->cap_key = strdup("caption");
    if (!s->url_key || !s->cap_key) goto nomem;
    if (reasons && !strcmp(reasons, "all")) {
        s->all_reasons = 1;
    } else if (reasons && reasons[0]) {
        const char *p = reasons;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n) {
                char **nr = realloc(s->reasons, (size_t)(s->nreasons + 1) * sizeof *nr);
                if (!nr) goto nomem;
                s->reasons = nr;
                if (!(s->reasons[s->nreasons] = strndup(p, n))) goto nomem;
                s->nreasons++;
            }
            p += n + (e ? 1 : 0);
        }
    }
    return s;
nomem:
    pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
    pvlm_urlsrc_close(s);
    return NULL;
}

void pvlm_urlsrc_close(pvlm_urlsrc *s) {
    if (!s) return;
    if (s->gz) gzclose(s->gz);
    if (s->json) json_decref(s->json);
    for (int i = 0; i < s->nreasons; i++) free(s->reasons[i]);
    free(s->reasons);
    pvlm_i64map_free(&s->seen);
    free(s->url_trim);
    free(s->rec);
    free(s->fields);
    free(s->url_key);
    free(s->cap_key);
    free(s->path);
    free(s);
}

void pvlm_urlsrc_get_counts(const pvlm_urlsrc *s, pvlm_urlsrc_counts *out) {
    *out = s->counts;
}

/* ---------------------------------------------------------------- rows */

static void bad_row(pvlm_urlsrc *s, const char *why) {
    s->counts.bad_rows++;
    if (!s->logged_bad++)
        pvlm_warn("%s:%lld: %s; row skipped (further bad rows are counted, not logged)", s->path,
                  (long long)s->rec_line, why);
}

/* Trim url into its own buffer (captions are trimmed in place only for the emptiness
 * test: they are stored as written). */
static const char *trimmed(pvlm_urlsrc *s, const char *u, pvlm_err *err) {
    while (isspace((unsigned char)*u)) u++;
    size_t n = strlen(u);
    while (n && isspace((unsigned char)u[n - 1])) n--;
    if (n + 1 > s->url_trim_cap) {
        char *nb = realloc(s->url_trim, n + 1);
        if (!nb) {
            oom(s, err);
            return NULL;
        }
        s->url_trim = nb;
        s->url_trim_cap = n + 1;
    }
    memcpy(s->url_trim, u, n);
    s->url_trim[n] = '\0';
    return s->url_trim;
}

static int all_space(const char *c) {
    for (; *c; c++)
        if (!isspace((unsigned char)*c)) return 0;
    return 1;
}

static int reason_selected(const pvlm_urlsrc *s, const char *reason) {
    if (s->all_reasons) return 1;
    if (!s->reasons) /* a retry cannot change these */
        return strcmp(reason, "robots_optout") && strcmp(reason, "bad_scheme") && strcmp(reason, "bad_url");
    for (int i = 0; i < s->nreasons; i++)
        if (!strcmp(reason, s->reasons[i])) return 1;
    return 0;
}

/* A JSONL row into *it. Returns 1 ok, 0 skipped (counted), -1 error. */
static int json_row(pvlm_urlsrc *s, pvlm_url_item *it, pvlm_err *err) {
    if (s->json) {
        json_decref(s->json);
        s->json = NULL;
    }
    if (s->too_long) {
        bad_row(s, "line longer than 1 MiB");
        return 0;
    }
    json_error_t je;
    s->json = json_loadb(s->rec, s->rec_len, 0, &je);
    if (!s->json || !json_is_object(s->json)) {
        char why[256];
        snprintf(why, sizeof why, "not a JSON object (%s)", s->json ? "other JSON value" : je.text);
        bad_row(s, why);
        return 0;
    }
    json_t *u = json_object_get(s->json, s->url_key), *c = json_object_get(s->json, s->cap_key);
    if (s->failures) {
        json_t *ix = json_object_get(s->json, "index"), *rs = json_object_get(s->json, "reason");
        if (!json_is_integer(ix) || json_integer_value(ix) < 0 || !json_is_string(rs)) {
            bad_row(s, "failures line without an integer \"index\" or a string \"reason\"");
            return 0;
        }
        it->index = json_integer_value(ix);
        if (!reason_selected(s, json_string_value(rs))) {
            s->counts.filtered++;
            return 0;
        }
        int fresh = pvlm_i64map_add(&s->seen, it->index, 0, NULL);
        if (fresh < 0) return oom(s, err);
        if (!fresh) {
            s->counts.filtered++;
            return 0;
        }
    }
    if (!json_is_string(u)) {
        char why[160];
        snprintf(why, sizeof why, "no string field \"%s\" (--url-col)", s->url_key);
        bad_row(s, why);
        return 0;
    }
    if (c && !json_is_string(c) && !json_is_null(c)) {
        char why[160];
        snprintf(why, sizeof why, "field \"%s\" (--caption-col) is not a string", s->cap_key);
        bad_row(s, why);
        return 0;
    }
    if (!(it->url = trimmed(s, json_string_value(u), err))) return -1;
    it->caption = json_is_string(c) ? json_string_value(c) : "";
    return 1;
}

int pvlm_urlsrc_next(pvlm_urlsrc *s, pvlm_url_item *it, pvlm_err *err) {
    for (;;) {
        int r;
        if (s->first_pending) {
            s->first_pending = 0;
            r = 1;
        } else {
            r = read_record(s, err);
        }
        if (r < 0) return -1;
        if (r == 0) return 0;
        if (blank_record(s)) continue;
        memset(it, 0, sizeof *it);
        it->line = s->rec_line;
        if (!s->failures) it->index = s->counts.rows;
        s->counts.rows++;
        if (s->nul && !s->too_long) {
            bad_row(s, "a NUL byte in the row");
            continue;
        }
        if (s->fmt == FMT_JSONL) {
            r = json_row(s, it, err);
            if (r < 0) return -1;
            if (r == 0) continue;
        } else {
            if (s->too_long) {
                bad_row(s, "row longer than 1 MiB");
                continue;
            }
            int need = (s->url_i > s->cap_i ? s->url_i : s->cap_i) + 1;
            if (s->nfields < need) {
                char why[128];
                snprintf(why, sizeof why, "%d column(s), need at least %d", s->nfields, need);
                bad_row(s, why);
                continue;
            }
            if (!(it->url = trimmed(s, field(s, s->url_i), err))) return -1;
            it->caption = field(s, s->cap_i);
        }
        if (!it->url[0]) {
            s->counts.empty_url++;
            if (!s->logged_empty_url++)
                pvlm_warn("%s:%lld: empty url; row skipped (further ones are counted, not logged)", s->path,
                          (long long)s->rec_line);
            continue;
        }
        if (all_space(it->caption) && !s->keep_empty_caption) {
            s->counts.empty_caption++;
            if (!s->logged_empty_caption++)
                pvlm_warn("%s:%lld: empty caption; row skipped (further ones are counted, not logged)", s->path,
                          (long long)s->rec_line);
            continue;
        }
        s->counts.items++;
        return 1;
    }
}

int pvlm_urlsrc_dl_next(void *ctx, pvlm_dl_item *item, pvlm_err *err) {
    pvlm_url_item it;
    int r = pvlm_urlsrc_next(ctx, &it, err);
    if (r != 1) return r;
    item->index = it.index;
    item->url = it.url;
    item->caption = it.caption;
    item->user = NULL;
    return 1;
}

/* ---------------------------------------------------------------- failures file */

struct pvlm_urlfail {
    char *path;
    FILE *f;
    int failed; /* a write failed */
    int64_t count;
};

pvlm_urlfail *pvlm_urlfail_open(const char *path, int append, pvlm_err *err) {
    pvlm_urlfail *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    w->f = fopen(path, append ? "ab" : "wb");
    if (!w->f) {
        pvlm_err_errno(err, "%s: cannot create failures file", path);
        free(w->path);
        free(w);
        return NULL;
    }
    return w;
}

static void put_json_string(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20) {
            if (c == '\n')
                fputs("\\n", f);
            else if (c == '\t')
                fputs("\\t", f);
            else if (c == '\r')
                fputs("\\r", f);
            else
                fprintf(f, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else {
            uint32_t cp;
            size_t k = (size_t)pvlm_utf8_decode(p + i, n - i, &cp);
            if (k) {
                fwrite(p + i, 1, k, f);
                i += k;
            } else {
                fputs("\\ufffd", f);
                i++;
            }
        }
    }
    fputc('"', f);
}

int pvlm_urlfail_write(pvlm_urlfail *w, int64_t index, const char *url, const char *caption, const char *reason,
                       long http_status, int attempts, const char *detail, pvlm_err *err) {
    FILE *f = w->f;
    fprintf(f, "{\"index\":%lld,\"url\":", (long long)index);
    put_json_string(f, url);
    fputs(",\"caption\":", f);
    put_json_string(f, caption);
    fputs(",\"reason\":", f);
    put_json_string(f, reason);
    fprintf(f, ",\"http_status\":%ld,\"attempts\":%d,\"detail\":", http_status, attempts);
    put_json_string(f, detail);
    fputs("}\n", f);
    if (ferror(f)) {
        w->failed = 1;
        return pvlm_err_errno(err, "%s: write failed", w->path);
    }
    w->count++;
    return 0;
}

int pvlm_urlfail_write_result(pvlm_urlfail *w, const pvlm_dl_result *r, pvlm_err *err) {
    return pvlm_urlfail_write(w, r->index, r->url, r->caption, pvlm_dl_reason_name(r->reason), r->http_status,
                              r->attempts, r->detail, err);
}

int pvlm_urlfail_flush(pvlm_urlfail *w, pvlm_err *err) {
    if (w->failed) return pvlm_err_set(err, PVLM_EIO, "%s: an earlier write failed", w->path);
    return pvlm_fsync_file(w->f, w->path, err);
}

int pvlm_urlfail_close(pvlm_urlfail *w, pvlm_err *err) {
    if (!w) return 0;
    int rc = pvlm_urlfail_flush(w, err);
    if (fclose(w->f) != 0 && rc == 0) rc = pvlm_err_errno(err, "%s: close failed", w->path);
    free(w->path);
    free(w);
    return rc;
}

int64_t pvlm_urlfail_count(const pvlm_urlfail *w) {
    return w->count;
}
