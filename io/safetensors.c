/* safetensors.c - see safetensors.h. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/le.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; pvlm reads it in place and needs a little-endian host"
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[PVLM_ST_NDTYPES] = {
    [PVLM_ST_BOOL] = {"BOOL", 1},       [PVLM_ST_U8] = {"U8", 1},           [PVLM_ST_I8] = {"I8", 1},
    [PVLM_ST_F8_E5M2] = {"F8_E5M2", 1}, [PVLM_ST_F8_E4M3] = {"F8_E4M3", 1}, [PVLM_ST_I16] = {"I16", 2},
    [PVLM_ST_U16] = {"U16", 2},         [PVLM_ST_F16] = {"F16", 2},         [PVLM_ST_BF16] = {"BF16", 2},
    [PVLM_ST_I32] = {"I32", 4},         [PVLM_ST_U32] = {"U32", 4},         [PVLM_ST_F32] = {"F32", 4},
    [PVLM_ST_F64] = {"F64", 8},         [PVLM_ST_I64] = {"I64", 8},         [PVLM_ST_U64] = {"U64", 8},
};

int pvlm_st_dtype_parse(const char *s) {
    for (int i = 0; i < PVLM_ST_NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) return i;
    return -1;
}

const char *pvlm_st_dtype_name(int dtype) {
    return dtype >= 0 && dtype < PVLM_ST_NDTYPES ? dtypes[dtype].name : "?";
}

size_t pvlm_st_dtype_size(int dtype) {
    return dtype >= 0 && dtype < PVLM_ST_NDTYPES ? dtypes[dtype].size : 0;
}

uint64_t pvlm_st_numel(int ndim, const int64_t *shape) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return UINT64_MAX;
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > UINT64_MAX / d) return UINT64_MAX;
        n *= d;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------------ */
/* Reader                                                                                            */

static int cmp_offset(const void *a, const void *b) {
    const pvlm_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* qsort has no context argument; thread-local so concurrent opens do not race. */
static _Thread_local const pvlm_st_tensor *tl_sort_base;
static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(tl_sort_base[*(const int *)a].name, tl_sort_base[*(const int *)b].name);
}

static int parse_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (uint64_t)x;
    return 0;
}

static int parse_tensor(pvlm_st_tensor *t, const char *path, const char *key, const json_t *v, pvlm_err *err) {
    if (strlen(key) == 0 || strlen(key) >= PVLM_ST_MAX_NAME)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor name '%.64s' is empty or longer than %d bytes", path, key,
                            PVLM_ST_MAX_NAME - 1);
    snprintf(t->name, sizeof t->name, "%s", key);
    if (!json_is_object(v))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': entry is not an object", path, key);
    const json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
                 *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, key);
    t->dtype = pvlm_st_dtype_parse(json_string_value(jd));
    if (t->dtype < 0)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': unknown dtype \"%.32s\"", path, key,
                            json_string_value(jd));
    if (!json_is_array(js))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, key);
    if (json_array_size(js) > PVLM_ST_MAX_DIMS)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': %zu dimensions (at most %d supported)", path, key,
                            json_array_size(js), PVLM_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (parse_u64(json_array_get(js, (size_t)i), &d) || d > (uint64_t)INT64_MAX)
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                                key, i);
        t->shape[i] = (int64_t)d;
    }
    for (int i = t->ndim; i < PVLM_ST_MAX_DIMS; i++) t->shape[i] = 0;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || parse_u64(json_array_get(jo, 0), &t->begin) ||
        parse_u64(json_array_get(jo, 1), &t->end))
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: tensor '%s': \"data_offsets\" must be [begin, end] non-negative integers", path, key);
    if (t->end < t->begin)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': data_offsets end %llu < begin %llu", path, key,
                            (unsigned long long)t->end, (unsigned long long)t->begin);
    t->numel = pvlm_st_numel(t->ndim, t->shape);
    size_t es = pvlm_st_dtype_size(t->dtype);
    if (t->numel == UINT64_MAX || (t->numel && t->numel > UINT64_MAX / es))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': shape overflows", path, key);
    if (t->numel * es != t->end - t->begin)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: tensor '%s': shape gives %llu elements x %zu bytes = %llu bytes but data_offsets "
                            "[%llu, %llu) span %llu bytes",
                            path, key, (unsigned long long)t->numel, es, (unsigned long long)(t->numel * es),
                            (unsigned long long)t->begin, (unsigned long long)t->end,
                            (unsigned long long)(t->end - t->begin));
    return 0;
}

static int open_fail(pvlm_st_file *f, json_t *root) {
    if (root) json_decref(root);
    pvlm_st_close(f);
    return -1;
}

/* Open path as a regular file and check its 8-byte little-endian header length against the limit
 * and the file size (f->fd, file_size, header_len, data_start). */
static int open_checked(pvlm_st_file *f, const char *path, pvlm_err *err) {
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return pvlm_err_errno(err, "%s: cannot open", path);
    struct stat st;
    if (fstat(f->fd, &st) != 0) return pvlm_err_errno(err, "%s: cannot stat", path);
    if (!S_ISREG(st.st_mode)) return pvlm_err_set(err, PVLM_EINVAL, "%s: not a regular file", path);
    f->file_size = (uint64_t)st.st_size;
    if (f->file_size < 8)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: %llu bytes, too short for a safetensors file (8-byte header length)", path,
                            (unsigned long long)f->file_size);
    uint8_t lenb[8];
    if (pvlm_pread_full(f->fd, lenb, 8, 0, path, err)) return -1;
    uint64_t n = pvlm_le_get64(lenb);
    f->header_len = n;
    if (n > PVLM_ST_MAX_HEADER)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "%s: header length %llu exceeds the %llu-byte limit (corrupt or not safetensors)", path,
                            (unsigned long long)n, (unsigned long long)PVLM_ST_MAX_HEADER);
    if (n < 2 || 8 + n > f->file_size)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: header length %llu does not fit the file size %llu (truncated?)",
                            path, (unsigned long long)n, (unsigned long long)f->file_size);
    f->data_start = 8 + n;
    return 0;
}

/* The JSON header (f->header_len bytes after the length) as an object; *root gets it (caller decrefs). */
static int read_header(pvlm_st_file *f, const char *path, json_t **root, pvlm_err *err) {
    uint64_t n = f->header_len;
    char *hdr = malloc(n + 1);
    if (!hdr)
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)n);
    int rc = -1;
    if (pvlm_pread_full(f->fd, hdr, n, 8, path, err)) goto out;
    hdr[n] = '\0';
    if (hdr[0] != '{') {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: header does not start with '{' (not a safetensors file)", path);
        goto out;
    }
    json_error_t je;
    /* Duplicate keys would make a tensor's identity ambiguous: reject them (jansson would keep the last). */
    *root = json_loadb(hdr, n, JSON_REJECT_DUPLICATES, &je);
    if (!*root)
        pvlm_err_set(err, PVLM_EFORMAT, "%s: header JSON invalid at byte %d: %s", path, je.position, je.text);
    else if (!json_is_object(*root))
        pvlm_err_set(err, PVLM_EFORMAT, "%s: header JSON is not an object", path);
    else
        rc = 0;
out:
    free(hdr);
    return rc;
}

/* "__metadata__": absent or null gives an empty object; otherwise an object of strings. */
static int load_metadata(pvlm_st_file *f, const json_t *root, const char *path, pvlm_err *err) {
    json_t *meta = json_object_get(root, "__metadata__");
    if (json_is_null(meta)) meta = NULL; /* the reference reader treats a null metadata as absent */
    if (!meta) {
        f->metadata = json_object();
        return 0;
    }
    if (!json_is_object(meta)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: \"__metadata__\" is not an object", path);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: __metadata__ value of \"%.64s\" is not a string", path, k);
    }
    f->metadata = json_incref(meta);
    return 0;
}

/* Every other key of the header is a tensor entry (f->tensors, n_tensors; f->by_name allocated). */
static int load_tensors(pvlm_st_file *f, json_t *root, const char *path, pvlm_err *err) {
    int has_meta_key = json_object_get(root, "__metadata__") != NULL;
    size_t nt = json_object_size(root) - (has_meta_key ? 1 : 0);
    if (nt > (size_t)INT_MAX / 2) return pvlm_err_set(err, PVLM_EFORMAT, "%s: too many tensors (%zu)", path, nt);
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    f->by_name = calloc(nt ? nt : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name)
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory for %zu tensor entries", path, nt);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) continue;
        if (parse_tensor(&f->tensors[f->n_tensors], path, key, val, err)) return -1;
        f->n_tensors++;
    }
    return 0;
}

/* Sorted by offset, the tensors must tile the data buffer exactly, as the specification's validation
 * requires: each begins where the previous ended (no overlap, no hole) and the last ends at EOF. */
static int check_tiling(pvlm_st_file *f, const char *path, pvlm_err *err) {
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_offset);
    uint64_t data_len = f->file_size - f->data_start, expect = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const pvlm_st_tensor *t = &f->tensors[i];
        if (t->begin < expect)
            return pvlm_err_set(
                err, PVLM_EFORMAT,
                "%s: tensor '%s': data_offsets [%llu, %llu) overlap the previous tensor%s%s (which ends at %llu)", path,
                t->name, (unsigned long long)t->begin, (unsigned long long)t->end, i ? " " : "",
                i ? f->tensors[i - 1].name : "", (unsigned long long)expect);
        if (t->begin > expect)
            return pvlm_err_set(
                err, PVLM_EFORMAT,
                "%s: tensor '%s': data_offsets begin %llu leaves a gap after byte %llu of the data buffer", path,
                t->name, (unsigned long long)t->begin, (unsigned long long)expect);
        if (t->end > data_len)
            return pvlm_err_set(
                err, PVLM_EFORMAT,
                "%s: tensor '%s': data_offsets end %llu is beyond the %llu-byte data buffer (file truncated?)", path,
                t->name, (unsigned long long)t->end, (unsigned long long)data_len);
        expect = t->end;
    }
    if (expect != data_len)
        return pvlm_err_set(
            err, PVLM_EFORMAT,
            "%s: tensors cover %llu bytes but the data buffer has %llu (trailing bytes or wrong header)", path,
            (unsigned long long)expect, (unsigned long long)data_len);
    return 0;
}

int pvlm_st_open(pvlm_st_file *f, const char *path, pvlm_err *err) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s", path);
    json_t *root = NULL;
    if (open_checked(f, path, err) != 0 || read_header(f, path, &root, err) != 0 ||
        load_metadata(f, root, path, err) != 0 || load_tensors(f, root, path, err) != 0)
        return open_fail(f, root);
    json_decref(root);
    if (check_tiling(f, path, err) != 0) return open_fail(f, NULL);
    for (int i = 0; i < f->n_tensors; i++) f->by_name[i] = i;
    tl_sort_base = f->tensors;
    qsort(f->by_name, (size_t)f->n_tensors, sizeof *f->by_name, cmp_name_idx);
    return 0;
}

void pvlm_st_close(pvlm_st_file *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    free(f->tensors);
    free(f->by_name);
    if (f->metadata) json_decref(f->metadata);
    f->fd = -1;
    f->tensors = NULL;
    f->by_name = NULL;
    f->metadata = NULL;
    f->n_tensors = 0;
}

const pvlm_st_tensor *pvlm_st_find(const pvlm_st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const pvlm_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *pvlm_st_meta(const pvlm_st_file *f, const char *key) {
    const json_t *v = f->metadata ? json_object_get(f->metadata, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int pvlm_st_read(const pvlm_st_file *f, const pvlm_st_tensor *t, void *dst, size_t cap, pvlm_err *err) {
    uint64_t n = t->end - t->begin;
    if (n > cap)
        return pvlm_err_set(err, PVLM_EINVAL, "%s: tensor '%s' has %llu bytes, destination holds %zu", f->path, t->name,
                            (unsigned long long)n, cap);
    if (pvlm_pread_full(f->fd, dst, (size_t)n, f->data_start + t->begin, f->path, err))
        return pvlm_err_prefix(err, "tensor '%s'", t->name);
    return 0;
}

int pvlm_st_read_bytes(const pvlm_st_file *f, const pvlm_st_tensor *t, uint64_t byte_off, size_t n, void *dst,
                       pvlm_err *err) {
    uint64_t len = t->end - t->begin;
    if (byte_off > len || n > len - byte_off)
        return pvlm_err_set(err, PVLM_EINVAL, "%s: tensor '%s': byte range [%llu, %llu) outside its %llu bytes",
                            f->path, t->name, (unsigned long long)byte_off, (unsigned long long)(byte_off + n),
                            (unsigned long long)len);
    if (pvlm_pread_full(f->fd, dst, n, f->data_start + t->begin + byte_off, f->path, err))
        return pvlm_err_prefix(err, "tensor '%s'", t->name);
    return 0;
}

int pvlm_st_check_finite(const pvlm_st_file *f, const pvlm_st_tensor *t, const void *data, uint64_t numel,
                         pvlm_err *err) {
    /* Test the exponent bits directly: all ones means Inf or NaN, whatever -ffast-math does to isfinite. */
    uint64_t bad = UINT64_MAX;
    switch (t->dtype) {
    case PVLM_ST_F32: {
        const uint32_t *p = data;
        for (uint64_t i = 0; i < numel; i++)
            if ((p[i] & 0x7f800000u) == 0x7f800000u) {
                bad = i;
                break;
            }
        break;
    }
    case PVLM_ST_F64: {
        const uint64_t *p = data;
        for (uint64_t i = 0; i < numel; i++)
            if ((p[i] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) {
                bad = i;
                break;
            }
        break;
    }
    case PVLM_ST_F16:
    case PVLM_ST_BF16: {
        const uint16_t *p = data;
        uint16_t m = t->dtype == PVLM_ST_F16 ? 0x7c00u : 0x7f80u;
        for (uint64_t i = 0; i < numel; i++)
            if ((p[i] & m) == m) {
                bad = i;
                break;
            }
        break;
    }
    default:
        break;
    }
    if (bad != UINT64_MAX)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s': element %llu is NaN or infinite",
                            f ? f->path : "(memory)", t->name, (unsigned long long)bad);
    return 0;
}

int pvlm_st_verify_checksum(const pvlm_st_file *f, int *present, pvlm_err *err) {
    const char *want = pvlm_st_meta(f, "pvlm_data_xxh3");
    if (present) *present = want != NULL;
    if (!want) return 0;
    uint64_t expect;
    if (pvlm_hash_parse(want, &expect))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: __metadata__ pvlm_data_xxh3 \"%.32s\" is not 16 hex digits",
                            f->path, want);
    pvlm_hasher h;
    if (pvlm_hasher_init(&h, err)) return -1;
    uint64_t dlen = f->file_size - f->data_start;
    size_t chunk = dlen < (4u << 20) ? (size_t)dlen + 1 : (4u << 20);
    char *buf = malloc(chunk);
    if (!buf) {
        pvlm_hasher_free(&h);
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", f->path);
    }
    uint64_t off = f->data_start;
    int rc = 0;
    while (off < f->file_size) {
        size_t n = f->file_size - off < chunk ? (size_t)(f->file_size - off) : chunk;
        if (pvlm_pread_full(f->fd, buf, n, off, f->path, err)) {
            rc = -1;
            break;
        }
        pvlm_hasher_update(&h, buf, n);
        off += n;
    }
    uint64_t got = pvlm_hasher_digest(&h);
    pvlm_hasher_free(&h);
    free(buf);
    if (rc) return -1;
    if (got != expect) {
        char g[17];
        pvlm_hash_hex(got, g);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: data checksum mismatch (XXH3 %s, header says %s): file corrupted",
                            f->path, g, want);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Writer                                                                                            */

int pvlm_st_writer_init(pvlm_st_writer *w, pvlm_err *err) {
    memset(w, 0, sizeof *w);
    w->metadata = json_object();
    if (!w->metadata) return pvlm_err_set(err, PVLM_ENOMEM, "safetensors writer: out of memory");
    return 0;
}

void pvlm_st_writer_free(pvlm_st_writer *w) {
    if (!w) return;
    free(w->entries);
    if (w->metadata) json_decref(w->metadata);
    memset(w, 0, sizeof *w);
}

int pvlm_st_writer_add(pvlm_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data,
                       pvlm_err *err) {
    if (!name || !*name || strlen(name) >= PVLM_ST_MAX_NAME || !strcmp(name, "__metadata__"))
        return pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: bad tensor name '%.64s'", name ? name : "(null)");
    if (pvlm_st_dtype_size(dtype) == 0)
        return pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: tensor '%s': bad dtype %d", name, dtype);
    if (ndim < 0 || ndim > PVLM_ST_MAX_DIMS)
        return pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: tensor '%s': bad ndim %d", name, ndim);
    uint64_t numel = pvlm_st_numel(ndim, shape);
    if (numel == UINT64_MAX) return pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: tensor '%s': bad shape", name);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->entries[i].name, name))
            return pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: duplicate tensor name '%s'", name);
    if (numel && !data) return pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: tensor '%s': NULL data", name);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 64;
        pvlm_st_wentry *e = realloc(w->entries, (size_t)nc * sizeof *e);
        if (!e) return pvlm_err_set(err, PVLM_ENOMEM, "safetensors writer: out of memory");
        w->entries = e;
        w->cap = nc;
    }
    pvlm_st_wentry *e = &w->entries[w->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = numel * pvlm_st_dtype_size(dtype);
    return 0;
}

int pvlm_st_writer_meta(pvlm_st_writer *w, const char *key, const char *value, pvlm_err *err) {
    if (!key || !value || json_object_set_new(w->metadata, key, json_string(value)))
        return pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: bad metadata entry '%.64s' (must be UTF-8 strings)",
                            key ? key : "(null)");
    return 0;
}

/* Build the header JSON: __metadata__ first, then tensors in the order added, contiguous offsets. */
static char *build_header(pvlm_st_writer *w, size_t *len, pvlm_err *err) {
    json_t *root = json_object();
    if (!root) return NULL;
    if (json_object_size(w->metadata)) json_object_set(root, "__metadata__", w->metadata);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const pvlm_st_wentry *e = &w->entries[i];
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer((json_int_t)e->shape[d]));
        json_t *t = json_pack("{s:s, s:o, s:[I,I]}", "dtype", pvlm_st_dtype_name(e->dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + e->nbytes));
        if (!t || json_object_set_new(root, e->name, t)) {
            json_decref(root);
            pvlm_err_set(err, PVLM_EINVAL, "safetensors writer: cannot encode tensor '%s'", e->name);
            return NULL;
        }
        off += e->nbytes;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) {
        pvlm_err_set(err, PVLM_ENOMEM, "safetensors writer: cannot encode header");
        return NULL;
    }
    /* Pad with spaces to a multiple of 8 so the data buffer starts 8-byte aligned in the file, as the
     * reference writer does (spaces are JSON whitespace, so every reader accepts them). */
    size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
    char *p = realloc(s, padded + 1);
    if (!p) {
        free(s);
        pvlm_err_set(err, PVLM_ENOMEM, "safetensors writer: out of memory");
        return NULL;
    }
    memset(p + n, ' ', padded - n);
    p[padded] = '\0';
    *len = padded;
    return p;
}

int pvlm_st_writer_write(pvlm_st_writer *w, const char *path, pvlm_err *err) {
    /* Checksum of the data buffer first, so it can go into the header. */
    pvlm_hasher h;
    if (pvlm_hasher_init(&h, err)) return -1;
    for (int i = 0; i < w->n; i++) pvlm_hasher_update(&h, w->entries[i].data, (size_t)w->entries[i].nbytes);
    char hex[17];
    pvlm_hash_hex(pvlm_hasher_digest(&h), hex);
    pvlm_hasher_free(&h);
    if (pvlm_st_writer_meta(w, "pvlm_data_xxh3", hex, err)) return -1;

    size_t hlen = 0;
    char *hdr = build_header(w, &hlen, err);
    if (!hdr) return -1;
    if (hlen > PVLM_ST_MAX_HEADER) {
        free(hdr);
        return pvlm_err_set(err, PVLM_EINVAL, "%s: header of %zu bytes exceeds the safetensors limit", path, hlen);
    }

    char tmp[PATH_MAX + 64];
    FILE *fp = pvlm_durable_open(path, tmp, sizeof tmp, err);
    if (!fp) {
        free(hdr);
        return -1;
    }
    uint8_t lenb[8];
    pvlm_le_put64(lenb, (uint64_t)hlen);
    int ok = fwrite(lenb, 1, 8, fp) == 8 && fwrite(hdr, 1, hlen, fp) == hlen;
    free(hdr);
    for (int i = 0; ok && i < w->n; i++) {
        /* fwrite in bounded pieces: large tensors, and a clean errno on ENOSPC/EFBIG. */
        const char *p = w->entries[i].data;
        uint64_t left = w->entries[i].nbytes;
        while (ok && left) {
            size_t k = left > (64u << 20) ? (64u << 20) : (size_t)left;
            ok = fwrite(p, 1, k, fp) == k;
            p += k;
            left -= k;
        }
    }
    if (!ok) {
        pvlm_err_errno(err, "%s: write failed", tmp);
        pvlm_durable_abort(fp, tmp);
        return -1;
    }
    return pvlm_durable_commit(fp, tmp, path, err);
}
