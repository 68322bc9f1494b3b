/* manifest.c - see manifest.h. */
#include "manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"

int pvlm_manifest_init(pvlm_manifest *m, const char *kind, pvlm_err *err) {
    memset(m, 0, sizeof(*m));
    m->version = PVLM_MANIFEST_VERSION;
    snprintf(m->kind, sizeof m->kind, "%s", kind ? kind : "");
    m->settings = json_object();
    m->failures = json_object();
    m->totals = json_object();
    if (!m->settings || !m->failures || !m->totals) return pvlm_err_set(err, PVLM_ENOMEM, "manifest: out of memory");
    return 0;
}

void pvlm_manifest_free(pvlm_manifest *m) {
    if (!m) return;
    for (int i = 0; i < m->nshards; i++) {
        free(m->shards[i].file);
        json_decref(m->shards[i].extra);
    }
    free(m->shards);
    json_decref(m->settings);
    json_decref(m->failures);
    json_decref(m->totals);
    memset(m, 0, sizeof(*m));
}

int pvlm_manifest_add_shard(pvlm_manifest *m, const char *file, int64_t records, uint64_t bytes, uint64_t checksum,
                            json_t *extra, pvlm_err *err) {
    if (extra && !json_is_object(extra)) {
        json_decref(extra);
        return pvlm_err_set(err, PVLM_EINVAL, "manifest: extra fields of shard %s are not an object", file);
    }
    if (m->nshards == m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        pvlm_manifest_shard *s = realloc(m->shards, (size_t)cap * sizeof(*s));
        if (!s) {
            json_decref(extra);
            return pvlm_err_set(err, PVLM_ENOMEM, "manifest: out of memory");
        }
        m->shards = s;
        m->cap = cap;
    }
    pvlm_manifest_shard *s = &m->shards[m->nshards];
    s->file = strdup(file);
    s->records = records;
    s->bytes = bytes;
    s->checksum = checksum;
    s->extra = extra ? extra : json_object();
    if (!s->file || !s->extra) {
        free(s->file);
        json_decref(s->extra);
        return pvlm_err_set(err, PVLM_ENOMEM, "manifest: out of memory");
    }
    m->nshards++;
    return 0;
}

void pvlm_manifest_set_settings(pvlm_manifest *m, json_t *settings) {
    json_decref(m->settings);
    m->settings = settings ? settings : json_object();
}

static void obj_add(json_t *o, const char *key, int64_t n) {
    json_t *v = json_object_get(o, key);
    int64_t cur = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
    json_object_set_new(o, key, json_integer((json_int_t)(cur + n)));
}

void pvlm_manifest_add_failures(pvlm_manifest *m, const char *reason, int64_t n) {
    obj_add(m->failures, reason, n);
}
void pvlm_manifest_add_total(pvlm_manifest *m, const char *name, int64_t n) {
    obj_add(m->totals, name, n);
}

int64_t pvlm_manifest_records(const pvlm_manifest *m) {
    int64_t s = 0;
    for (int i = 0; i < m->nshards; i++) s += m->shards[i].records;
    return s;
}

uint64_t pvlm_manifest_bytes(const pvlm_manifest *m) {
    uint64_t s = 0;
    for (int i = 0; i < m->nshards; i++) s += m->shards[i].bytes;
    return s;
}

int64_t pvlm_manifest_failed(const pvlm_manifest *m) {
    int64_t s = 0;
    const char *k;
    json_t *v;
    json_object_foreach(m->failures, k, v) {
        if (json_is_integer(v)) s += (int64_t)json_integer_value(v);
    }
    return s;
}

json_t *pvlm_manifest_to_json(const pvlm_manifest *m) {
    json_t *shards = json_array();
    for (int i = 0; i < m->nshards && shards; i++) {
        const pvlm_manifest_shard *s = &m->shards[i];
        json_t *e = json_deep_copy(s->extra);
        char hex[17];
        pvlm_hash_hex(s->checksum, hex);
        json_object_set_new(e, "file", json_string(s->file));
        json_object_set_new(e, "records", json_integer((json_int_t)s->records));
        json_object_set_new(e, "bytes", json_integer((json_int_t)s->bytes));
        json_object_set_new(e, "checksum", json_string(hex));
        json_array_append_new(shards, e);
    }
    json_t *totals = json_deep_copy(m->totals);
    json_object_set_new(totals, "records", json_integer((json_int_t)pvlm_manifest_records(m)));
    json_object_set_new(totals, "bytes", json_integer((json_int_t)pvlm_manifest_bytes(m)));
    json_object_set_new(totals, "shards", json_integer(m->nshards));
    json_object_set_new(totals, "failed", json_integer((json_int_t)pvlm_manifest_failed(m)));
    return json_pack("{s:s,s:i,s:s,s:o,s:O,s:O,s:o}", "format", "pvlm-manifest", "version", m->version, "kind", m->kind,
                     "shards", shards, "settings", m->settings, "failures", m->failures, "totals", totals);
}

int pvlm_manifest_save(const pvlm_manifest *m, const char *path, pvlm_err *err) {
    json_t *j = pvlm_manifest_to_json(m);
    if (!j) return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot build manifest JSON", path);
    int rc = pvlm_json_save_atomic(j, path, err);
    json_decref(j);
    return rc;
}

static int get_u64_nonneg(const json_t *o, const char *key, int64_t *out, const char *what, pvlm_err *err) {
    if (pvlm_json_get_int(o, key, out, what, err) != 0) return -1;
    if (*out < 0) return pvlm_err_set(err, PVLM_EFORMAT, "%s: field '%s' is negative", what, key);
    return 0;
}

/* One entry of "shards": checked (fields, no overflow of the record total, a plain file name) and added. */
static int load_shard(pvlm_manifest *m, const json_t *e, const char *what, int64_t *total_rec, pvlm_err *err) {
    const char *file, *ck;
    int64_t rec, bytes;
    uint64_t sum;
    if (!json_is_object(e)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: not an object", what);
    if (pvlm_json_get_str(e, "file", &file, what, err) != 0 || get_u64_nonneg(e, "records", &rec, what, err) != 0 ||
        get_u64_nonneg(e, "bytes", &bytes, what, err) != 0 || pvlm_json_get_str(e, "checksum", &ck, what, err) != 0)
        return -1;
    if (rec > INT64_MAX - *total_rec)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: %" PRId64 " records overflow the manifest's total", what, rec);
    *total_rec += rec;
    if (pvlm_hash_parse(ck, &sum) != 0)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: checksum '%s' is not 16 hex digits", what, ck);
    if (strstr(file, "..") || file[0] == '/')
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: file '%s' must be a plain name inside the manifest folder", what,
                            file);
    json_t *extra = json_deep_copy(e);
    json_object_del(extra, "file");
    json_object_del(extra, "records");
    json_object_del(extra, "bytes");
    json_object_del(extra, "checksum");
    return pvlm_manifest_add_shard(m, file, rec, (uint64_t)bytes, sum, extra, err);
}

static int load_shards(pvlm_manifest *m, const json_t *j, const char *path, pvlm_err *err) {
    const json_t *shards = json_object_get(j, "shards");
    if (!json_is_array(shards)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: 'shards' missing or not an array", path);
    size_t i;
    const json_t *e;
    int64_t total_rec = 0; /* kept below INT64_MAX, so the sums over the records cannot overflow */
    json_array_foreach(shards, i, e) {
        char what[512];
        snprintf(what, sizeof what, "%s shard %zu", path, i);
        if (load_shard(m, e, what, &total_rec, err) != 0) return -1;
    }
    return 0;
}

/* "failures": counts by reason, each a non-negative integer whose sum stays below INT64_MAX. */
static int load_failures(pvlm_manifest *m, const json_t *o, const char *path, pvlm_err *err) {
    int64_t total_failed = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT64_MAX - total_failed)
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: failures['%s'] is not a count (or overflows the total)", path,
                                k);
        total_failed += (int64_t)json_integer_value(v);
        pvlm_manifest_add_failures(m, k, (int64_t)json_integer_value(v));
    }
    return 0;
}

/* "totals": records must match the shards; records/bytes/shards/failed are derived, the rest kept. */
static int load_totals(pvlm_manifest *m, const json_t *o, const char *path, pvlm_err *err) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (!json_is_integer(v)) continue;
        int64_t n = (int64_t)json_integer_value(v);
        if (!strcmp(k, "records") && n != pvlm_manifest_records(m))
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: totals.records %" PRId64 " != sum over shards %" PRId64, path,
                                n, pvlm_manifest_records(m));
        if (!strcmp(k, "records") || !strcmp(k, "bytes") || !strcmp(k, "shards") || !strcmp(k, "failed")) continue;
        pvlm_manifest_add_total(m, k, n);
    }
    return 0;
}

int pvlm_manifest_load(const char *path, pvlm_manifest *m, pvlm_err *err) {
    memset(m, 0, sizeof(*m));
    json_t *j = pvlm_json_load_file(path, err);
    if (!j) {
        pvlm_manifest_init(m, "", NULL);
        return -1;
    }
    int rc = -1;
    const char *fmt = NULL, *kind = NULL;
    int64_t ver = 0;
    if (pvlm_json_get_str(j, "format", &fmt, path, err) != 0 || pvlm_json_get_int(j, "version", &ver, path, err) != 0 ||
        pvlm_json_get_str(j, "kind", &kind, path, err) != 0) {
        pvlm_manifest_init(m, "", NULL);
        goto out;
    }
    pvlm_manifest_init(m, kind, NULL);
    if (strcmp(fmt, "pvlm-manifest") != 0) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: format is '%s', not pvlm-manifest", path, fmt);
        goto out;
    }
    if (ver < 1 || ver > PVLM_MANIFEST_VERSION) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: manifest version %" PRId64 ", this build reads 1..%d", path, ver,
                     PVLM_MANIFEST_VERSION);
        goto out;
    }
    m->version = (int)ver;
    if (load_shards(m, j, path, err) != 0) goto out;
    json_t *o;
    if ((o = json_object_get(j, "settings")) && json_is_object(o)) pvlm_manifest_set_settings(m, json_deep_copy(o));
    if ((o = json_object_get(j, "failures")) && json_is_object(o) && load_failures(m, o, path, err) != 0) goto out;
    if ((o = json_object_get(j, "totals")) && json_is_object(o) && load_totals(m, o, path, err) != 0) goto out;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

int pvlm_manifest_shard_path(const pvlm_manifest *m, int i, const char *dir, char *buf, size_t cap) {
    return pvlm_path_join(buf, cap, dir && *dir ? dir : ".", m->shards[i].file, NULL);
}

int pvlm_manifest_verify_shard(const pvlm_manifest *m, int i, const char *dir, int full, pvlm_err *err) {
    if (i < 0 || i >= m->nshards) return pvlm_err_set(err, PVLM_EINVAL, "manifest: no shard %d", i);
    char p[4096];
    if (pvlm_manifest_shard_path(m, i, dir, p, sizeof p) != 0)
        return pvlm_err_set(err, PVLM_EINVAL, "manifest: shard %d: path too long: %.200s/%.200s", i, dir ? dir : ".",
                            m->shards[i].file);
    struct stat st;
    if (stat(p, &st) != 0) {
        pvlm_err_errno(err, "%s: shard listed in the manifest", p);
        if (err && errno == ENOENT) err->code = PVLM_ENOTFOUND;
        return -1;
    }
    if ((uint64_t)st.st_size != m->shards[i].bytes)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: %" PRIu64 " bytes on disk, manifest says %" PRIu64, p,
                            (uint64_t)st.st_size, m->shards[i].bytes);
    if (full) {
        uint64_t h;
        if (pvlm_hash_file(p, &h, err) != 0) return -1;
        if (h != m->shards[i].checksum) {
            char a[17], b[17];
            pvlm_hash_hex(h, a);
            pvlm_hash_hex(m->shards[i].checksum, b);
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: checksum %s, manifest says %s", p, a, b);
        }
    }
    return 0;
}
