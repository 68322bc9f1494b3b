/* wdssrc.c - webdataset tars through libarchive (see wdssrc.h). */
#include "shard/wdssrc.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/log.h"
#include "io/image.h"

const char *const pvlm_wds_reason_names[PVLM_WDS_NREASONS] = {
    "truncated_tar", "bad_tar", "missing_tar", "no_image", "unsupported_image", "duplicate_member", "bad_json",
};

#define MAX_NAMES 1000000
#define MAX_IMAGE_BYTES (256LL << 20) /* larger "images" are not images: counted as unsupported_image */
#define MAX_TEXT_BYTES (1LL << 20)    /* caption / json members */
#define MAX_HEADER_BLOCKS 64          /* pax / GNU long-name headers before a member's data, in 512 B blocks */

/* ---------------------------------------------------------------- pattern expansion */

typedef struct strvec {
    char **v;
    int n, cap;
} strvec;

static int sv_push(strvec *s, char *str, pvlm_err *err) {
    if (!str) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory expanding a webdataset pattern");
    if (s->n >= MAX_NAMES) {
        free(str);
        return pvlm_err_set(err, PVLM_EINVAL, "webdataset pattern names more than %d files", MAX_NAMES);
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(str);
            return pvlm_err_set(err, PVLM_ENOMEM, "out of memory expanding a webdataset pattern");
        }
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = str;
    return 0;
}

void pvlm_wds_paths_free(char **paths, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

static char *concat3(const char *a, size_t na, const char *b, size_t nb, const char *c) {
    size_t nc = strlen(c);
    char *s = malloc(na + nb + nc + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    memcpy(s + na + nb, c, nc + 1);
    return s;
}

/* "{a..b}" numeric range: 1 and the bounds when the body is one, 0 otherwise. */
static int parse_range(const char *body, size_t n, long long *lo, long long *hi, int *width) {
    const char *dots = memmem(body, n, "..", 2);
    if (!dots || dots == body || dots + 2 == body + n) return 0;
    for (const char *p = body; p < body + n; p++)
        if (p != dots && p != dots + 1 && !isdigit((unsigned char)*p)) return 0;
    if (dots - body > 18 || body + n - dots - 2 > 18) return 0;
    *lo = strtoll(body, NULL, 10);
    *hi = strtoll(dots + 2, NULL, 10);
    /* zero-padded bounds ("00000..00123") pad every number to their width, as webdataset's braceexpand */
    *width = (body[0] == '0' && dots - body > 1) || (dots[2] == '0' && body + n - dots - 2 > 1) ? (int)(dots - body) : 0;
    return 1;
}

/* Expand the first brace group of s (recursively the rest) into out. */
static int expand_braces(const char *s, strvec *out, pvlm_err *err) {
    const char *open = strchr(s, '{');
    if (!open) return strchr(s, '}') ? pvlm_err_set(err, PVLM_EINVAL, "webdataset pattern '%s': unbalanced '}'", s)
                                     : sv_push(out, strdup(s), err);
    const char *close = strchr(open, '}');
    const char *inner = strchr(open + 1, '{');
    if (!close || (inner && inner < close))
        return pvlm_err_set(err, PVLM_EINVAL, "webdataset pattern '%s': unbalanced or nested '{'", s);
    const char *body = open + 1;
    size_t bn = (size_t)(close - body), pre = (size_t)(open - s);
    long long lo, hi;
    int width;
    if (parse_range(body, bn, &lo, &hi, &width)) {
        long long step = lo <= hi ? 1 : -1;
        for (long long v = lo;; v += step) {
            char num[40];
            int k = snprintf(num, sizeof num, "%0*lld", width, v);
            char *next = concat3(s, pre, num, (size_t)k, close + 1);
            int rc = next ? expand_braces(next, out, err) : pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
            free(next);
            if (rc) return -1;
            if (v == hi) break;
        }
        return 0;
    }
    for (const char *p = body; p <= close;) { /* "{a,b,c}" */
        const char *comma = memchr(p, ',', (size_t)(close - p));
        const char *end = comma ? comma : close;
        char *next = concat3(s, pre, p, (size_t)(end - p), close + 1);
        int rc = next ? expand_braces(next, out, err) : pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
        free(next);
        if (rc) return -1;
        p = end + 1;
    }
    return 0;
}

int pvlm_wds_expand(const char *pattern, char ***paths, int *n, pvlm_err *err) {
    strvec b = {0}, out = {0};
    *paths = NULL, *n = 0;
    int rc = expand_braces(pattern, &b, err);
    for (int i = 0; rc == 0 && i < b.n; i++) {
        glob_t g;
        int gr = glob(b.v[i], 0, NULL, &g);
        if (gr == GLOB_NOMATCH || (gr == 0 && g.gl_pathc == 0)) {
            rc = sv_push(&out, strdup(b.v[i]), err); /* kept: the source counts it as missing */
        } else if (gr != 0) {
            rc = pvlm_err_set(err, PVLM_EIO, "webdataset pattern '%s': glob failed", b.v[i]);
        } else {
            for (size_t k = 0; rc == 0 && k < g.gl_pathc; k++) rc = sv_push(&out, strdup(g.gl_pathv[k]), err);
        }
        if (gr != GLOB_NOMATCH) globfree(&g);
    }
    pvlm_wds_paths_free(b.v, b.n);
    if (rc) {
        pvlm_wds_paths_free(out.v, out.n);
        return -1;
    }
    *paths = out.v, *n = out.n;
    return 0;
}

/* ---------------------------------------------------------------- the source */

typedef struct group { /* the sample being assembled */
    char *key;
    int has_image, bad;  /* bad: dropped (unsupported or truncated image) */
    int64_t off, len;
    uint64_t xxh3;
    char *caption, *url;
    size_t caption_len;
    int orig_w, orig_h;
    int tar; /* index of its tar */
} group;

struct pvlm_wdssrc {
    char **tars;
    int ntars, cur; /* cur: index of the open tar, or of the next one to open */
    struct archive *a;
    int fd;              /* the open tar, for locating member data */
    int64_t tar_members; /* regular members read from it so far */
    group g, out;
    int have_out;
    char *buf;
    size_t cap;
    pvlm_wds_counts counts;
};

static void group_clear(group *g) {
    free(g->key), free(g->caption), free(g->url);
    memset(g, 0, sizeof *g);
}

static void count(pvlm_wdssrc *s, int reason, const char *tar, const char *what) {
    if (s->counts.bad[reason]++ < 5)
        pvlm_warn("webdataset %s: %s (%s)%s", tar, what, pvlm_wds_reason_names[reason],
                  s->counts.bad[reason] == 5 ? "; further ones of this kind are counted silently" : "");
}

/* The finished group becomes the pending output (when it is a sample), or is counted and dropped. */
static void finish_group(pvlm_wdssrc *s) {
    group *g = &s->g;
    if (!g->key) return;
    if (!g->has_image && !g->bad) {
        char what[600];
        snprintf(what, sizeof what, "key '%.500s' has no image member", g->key);
        count(s, PVLM_WDS_NO_IMAGE, s->tars[g->tar], what);
    }
    if (g->has_image && !g->bad) {
        group_clear(&s->out);
        s->out = *g;
        s->have_out = 1;
        memset(g, 0, sizeof *g);
        return;
    }
    group_clear(g);
}

static void close_tar(pvlm_wdssrc *s) {
    if (s->a) archive_read_free(s->a);
    if (s->fd >= 0) close(s->fd);
    s->a = NULL, s->fd = -1;
    s->cur++;
}

/* Open tar s->cur; a missing or unreadable one is counted and skipped (returns 0 with s->a NULL). */
static int open_tar(pvlm_wdssrc *s) {
    const char *p = s->tars[s->cur];
    s->fd = open(p, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        count(s, errno == ENOENT ? PVLM_WDS_MISSING_TAR : PVLM_WDS_BAD_TAR, p, strerror(errno));
        s->cur++;
        return 0;
    }
    s->a = archive_read_new();
    if (!s->a) return -1;
    archive_read_support_format_tar(s->a);
    archive_read_support_format_gnutar(s->a);
    archive_read_support_filter_all(s->a); /* recognised, then rejected with a clear reason */
    if (archive_read_open_filename(s->a, p, 1 << 16) != ARCHIVE_OK) {
        count(s, PVLM_WDS_BAD_TAR, p, archive_error_string(s->a) ? archive_error_string(s->a) : "cannot open");
        close_tar(s);
        return 0;
    }
    s->counts.tars++;
    s->tar_members = 0;
    return 0;
}

/* Read the current member's data (at most max bytes) into s->buf; -1 truncated/unreadable, -2 too big. */
static int64_t read_member(pvlm_wdssrc *s, struct archive_entry *e, int64_t max) {
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    if (size < 0) return -1;
    if (size > max) return -2;
    if ((size_t)size + 1 > s->cap) {
        char *b = realloc(s->buf, (size_t)size + 1);
        if (!b) return -1;
        s->buf = b, s->cap = (size_t)size + 1;
    }
    int64_t got = 0;
    while (got < size) {
        la_ssize_t r = archive_read_data(s->a, s->buf + got, (size_t)(size - got));
        if (r <= 0) return -1;
        got += r;
    }
    s->buf[size] = '\0';
    return size;
}

/* 1 when the file holds exactly s->buf[0..len) at off (compared in chunks). */
static int same_bytes(pvlm_wdssrc *s, int64_t off, int64_t len) {
    char chunk[1 << 16];
    for (int64_t done = 0; done < len;) {
        size_t n = len - done < (int64_t)sizeof chunk ? (size_t)(len - done) : sizeof chunk;
        if (pread(s->fd, chunk, n, (off_t)(off + done)) != (ssize_t)n || memcmp(chunk, s->buf + done, n)) return 0;
        done += (int64_t)n;
    }
    return 1;
}

/* Where the member's bytes start in the file: the first 512-byte block after its header(s) (pax and GNU
 * long-name headers may precede the member's own header) from which all len bytes read back equal to what
 * libarchive returned. -1 when there is none (e.g. a GNU sparse member, whose holes are not stored). */
static int64_t locate(pvlm_wdssrc *s, int64_t header_pos, int64_t len) {
    char probe[64];
    size_t k = len < (int64_t)sizeof probe ? (size_t)len : sizeof probe;
    for (int b = 1; b <= MAX_HEADER_BLOCKS; b++) {
        int64_t off = header_pos + 512LL * b;
        if (pread(s->fd, probe, k, (off_t)off) != (ssize_t)k) return -1;
        if (memcmp(probe, s->buf, k)) continue;
        if (same_bytes(s, off, len)) return off;
    }
    return -1;
}

static void take_json(pvlm_wdssrc *s, size_t n) {
    group *g = &s->g;
    json_t *j = json_loadb(s->buf, n, 0, NULL);
    if (!json_is_object(j)) {
        char what[600];
        snprintf(what, sizeof what, "key '%.500s': json member does not parse", g->key);
        count(s, PVLM_WDS_BAD_JSON, s->tars[s->cur], what);
        json_decref(j);
        return;
    }
    const char *url = json_string_value(json_object_get(j, "url"));
    if (url && *url) g->url = strdup(url);
    json_t *w = json_object_get(j, "original_width"), *h = json_object_get(j, "original_height");
    if (json_is_integer(w) && json_is_integer(h) && json_integer_value(w) > 0 && json_integer_value(h) > 0 &&
        json_integer_value(w) <= 1 << 30 && json_integer_value(h) <= 1 << 30) {
        g->orig_w = (int)json_integer_value(w);
        g->orig_h = (int)json_integer_value(h);
    }
    json_decref(j);
}

static int is_ext(const char *ext, const char *const *list) {
    for (; *list; list++)
        if (!strcasecmp(ext, *list)) return 1;
    return 0;
}

/* Split the member path into key and extension at the first '.' of the file name. */
static int split_name(const char *path, char **key, const char **ext) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strchr(base, '.');
    if (!dot || dot == base) return -1;
    *key = strndup(path, (size_t)(dot - path));
    *ext = dot + 1;
    return *key ? 0 : -1;
}

/* One member of the current tar into the current group. 0 ok (or skipped), 1 truncated, -1 no memory. */
static int take_member(pvlm_wdssrc *s, struct archive_entry *e, int64_t header_pos) {
    static const char *const unsupported[] = {"webp", NULL};
    char *key;
    const char *ext;
    if (split_name(archive_entry_pathname(e) ? archive_entry_pathname(e) : "", &key, &ext)) return 0;
    if (!s->g.key || strcmp(key, s->g.key)) {
        finish_group(s);
        s->g.key = key, s->g.tar = s->cur;
    } else {
        free(key);
    }
    group *g = &s->g;
    const char *tar = s->tars[s->cur];
    char what[600];
    int img = pvlm_image_ext_ok(ext), unsup = is_ext(ext, unsupported), txt = !strcasecmp(ext, "txt"),
        js = !strcasecmp(ext, "json");
    if (!img && !unsup && !txt && !js) return archive_read_data_skip(s->a) == ARCHIVE_OK ? 0 : 1;
    if ((img && g->has_image) || (txt && g->caption) || (js && (g->url || g->orig_w))) {
        snprintf(what, sizeof what, "key '%.500s': second .%.20s member ignored", g->key, ext);
        count(s, PVLM_WDS_DUPLICATE, tar, what);
        return archive_read_data_skip(s->a) == ARCHIVE_OK ? 0 : 1;
    }
    int64_t n = read_member(s, e, img || unsup ? MAX_IMAGE_BYTES : MAX_TEXT_BYTES);
    if (n == -1) return 1;
    if (unsup || n == -2) {
        snprintf(what, sizeof what, "key '%.500s': %s .%.20s image", g->key, n == -2 ? "oversized" : "unsupported", ext);
        count(s, PVLM_WDS_UNSUPPORTED_IMAGE, tar, what);
        g->bad = 1;
        return n == -2 && archive_read_data_skip(s->a) != ARCHIVE_OK ? 1 : 0;
    }
    if (js) {
        take_json(s, (size_t)n);
    } else if (txt) {
        /* The whole member, NUL bytes included: the builder's one UTF-8 rule (core/utf8.h) refuses a
         * caption with a NUL and counts it, instead of a silent cut at the NUL. */
        const char *p = s->buf, *end = s->buf + n;
        while (p < end && isspace((unsigned char)*p)) p++;
        while (end > p && isspace((unsigned char)end[-1])) end--;
        if (end > p) {
            if (!(g->caption = malloc((size_t)(end - p) + 1))) return -1;
            memcpy(g->caption, p, (size_t)(end - p));
            g->caption[end - p] = '\0';
            g->caption_len = (size_t)(end - p);
        }
    } else {
        g->off = locate(s, header_pos, n);
        if (g->off < 0) { /* a sparse member; a compressed tar is rejected earlier */
            snprintf(what, sizeof what, "key '%.500s': image bytes not found at their offset", g->key);
            count(s, PVLM_WDS_BAD_TAR, tar, what);
            g->bad = 1;
            return 0;
        }
        g->has_image = 1, g->len = n, g->xxh3 = pvlm_hash64(s->buf, (size_t)n);
    }
    return 0;
}

/* Advance through the current tar until a sample is pending or the tar ends. */
static int step_tar(pvlm_wdssrc *s) {
    struct archive_entry *e;
    int r = archive_read_next_header(s->a, &e);
    const char *tar = s->tars[s->cur];
    if (r == ARCHIVE_EOF) {
        finish_group(s);
        close_tar(s);
        return 0;
    }
    if (r == ARCHIVE_OK && s->tar_members == 0 && archive_filter_code(s->a, 0) != ARCHIVE_FILTER_NONE) {
        count(s, PVLM_WDS_BAD_TAR, tar, "compressed tar (decompress it: members are read back by offset)");
        group_clear(&s->g);
        close_tar(s);
        return 0;
    }
    if (r < ARCHIVE_WARN) {
        const char *msg = archive_error_string(s->a);
        count(s, s->tar_members == 0 && !s->g.key ? PVLM_WDS_BAD_TAR : PVLM_WDS_TRUNCATED, tar,
              msg ? msg : "unreadable header");
        group_clear(&s->g); /* the sample being read may be incomplete */
        close_tar(s);
        return 0;
    }
    if (archive_entry_filetype(e) != AE_IFREG) return 0;
    s->counts.members++;
    s->tar_members++;
    int rc = take_member(s, e, archive_read_header_position(s->a));
    if (rc < 0) return -1;
    if (rc == 1) {
        char what[600];
        snprintf(what, sizeof what, "member '%.500s' is cut short", archive_entry_pathname(e));
        count(s, PVLM_WDS_TRUNCATED, tar, what);
        group_clear(&s->g);
        close_tar(s);
    }
    return 0;
}

int pvlm_wdssrc_next(pvlm_wdssrc *s, pvlm_wds_sample *out, pvlm_err *err) {
    while (!s->have_out) {
        if (!s->a) {
            if (s->cur >= s->ntars) return 0;
            if (open_tar(s)) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory opening %s", s->tars[s->cur]);
            continue;
        }
        if (step_tar(s)) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory reading %s", s->tars[s->cur]);
    }
    s->have_out = 0;
    const group *g = &s->out;
    *out = (pvlm_wds_sample){.tar = s->tars[g->tar], .key = g->key, .off = g->off, .len = g->len, .xxh3 = g->xxh3,
                             .caption = g->caption, .caption_len = g->caption_len, .url = g->url, .orig_w = g->orig_w, .orig_h = g->orig_h};
    s->counts.samples++;
    return 1;
}

pvlm_wdssrc *pvlm_wdssrc_open_files(const char *const *paths, int n, pvlm_err *err) {
    pvlm_wdssrc *s = calloc(1, sizeof *s);
    if (!s || !(s->tars = calloc((size_t)(n > 0 ? n : 1), sizeof *s->tars))) {
        free(s);
        pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
        return NULL;
    }
    s->fd = -1;
    for (; s->ntars < n; s->ntars++)
        if (!(s->tars[s->ntars] = strdup(paths[s->ntars]))) {
            pvlm_wdssrc_close(s);
            pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
            return NULL;
        }
    return s;
}

pvlm_wdssrc *pvlm_wdssrc_open(const char *pattern, pvlm_err *err) {
    char **paths;
    int n, found = 0;
    if (pvlm_wds_expand(pattern, &paths, &n, err)) return NULL;
    for (int i = 0; i < n && !found; i++) found = pvlm_file_exists(paths[i]);
    pvlm_wdssrc *s = NULL;
    if (!found) pvlm_err_set(err, PVLM_ENOTFOUND, "--webdataset '%s': no tar file matches", pattern);
    else s = pvlm_wdssrc_open_files((const char *const *)paths, n, err);
    pvlm_wds_paths_free(paths, n);
    return s;
}

void pvlm_wdssrc_get_counts(const pvlm_wdssrc *s, pvlm_wds_counts *c) {
    *c = s->counts;
}

void pvlm_wdssrc_close(pvlm_wdssrc *s) {
    if (!s) return;
    if (s->a) archive_read_free(s->a);
    if (s->fd >= 0) close(s->fd);
    group_clear(&s->g);
    group_clear(&s->out);
    pvlm_wds_paths_free(s->tars, s->ntars);
    free(s->buf);
    free(s);
}

int pvlm_wds_read_image(const char *tar, int64_t off, int64_t len, uint64_t xxh3, char **data, size_t *n,
                        pvlm_err *err) {
    *data = NULL, *n = 0;
    if (off < 0 || len < 0 || len > MAX_IMAGE_BYTES)
        return pvlm_err_set(err, PVLM_EINVAL, "%s: bad member range %lld+%lld", tar, (long long)off, (long long)len);
    int fd = open(tar, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pvlm_err_errno(err, "%s", tar);
    char *b = malloc((size_t)len + 1);
    int64_t got = 0;
    while (b && got < len) {
        ssize_t r = pread(fd, b + got, (size_t)(len - got), (off_t)(off + got));
        if (r <= 0) break;
        got += r;
    }
    close(fd);
    if (!b) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", tar);
    if (got != len || pvlm_hash64(b, (size_t)len) != xxh3) {
        free(b);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: the image at offset %lld (%lld bytes) %s since it was listed", tar,
                            (long long)off, (long long)len, got != len ? "is cut short" : "changed");
    }
    *data = b, *n = (size_t)len;
    return 0;
}
