/* checkpoint.c - see checkpoint.h. */
#include "model/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

static const char *const reserved_keys[] = {"format", "version", "pvlm_config", "n_params", "pvlm_data_xxh3"};

static int is_reserved(const char *k) {
    for (size_t i = 0; i < sizeof reserved_keys / sizeof *reserved_keys; i++)
        if (!strcmp(k, reserved_keys[i])) return 1;
    return 0;
}

static int set_meta_u64(pvlm_st_writer *w, const char *key, uint64_t v, pvlm_err *err) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return pvlm_st_writer_meta(w, key, buf, err);
}

/* Parse a decimal metadata value; -1 with an error naming file and key when absent or malformed. */
static int meta_i64(const pvlm_st_file *f, const char *key, int64_t *out, pvlm_err *err) {
    const char *s = pvlm_st_meta(f, key);
    if (!s) return pvlm_err_set(err, PVLM_EFORMAT, "%s: __metadata__ lacks \"%s\"", f->path, key);
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < 0)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: __metadata__ \"%s\" = \"%.32s\" is not a non-negative integer",
                            f->path, key, s);
    *out = v;
    return 0;
}

/* Require __metadata__ format == want and version == "1". */
static int check_format(const pvlm_st_file *f, const char *want, pvlm_err *err) {
    const char *fmt = pvlm_st_meta(f, "format"), *ver = pvlm_st_meta(f, "version");
    if (!fmt || strcmp(fmt, want))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: __metadata__ \"format\" is \"%s\", expected \"%s\"", f->path,
                            fmt ? fmt : "(missing)", want);
    if (!ver || strcmp(ver, "1"))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: unsupported %s version \"%s\" (this build reads version 1)",
                            f->path, want, ver ? ver : "(missing)");
    return 0;
}

/* Does the file tensor match the view (F32, same shape)? */
static int check_tensor(const pvlm_st_file *f, const pvlm_st_tensor *t, const char *name, int ndim,
                        const int64_t *shape, pvlm_err *err) {
    if (t->dtype != PVLM_ST_F32)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s' has dtype %s, expected F32", f->path, name,
                            pvlm_st_dtype_name(t->dtype));
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[128] = "", b[128] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%" PRId64, i ? "," : "", t->shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%" PRId64, i ? "," : "", shape[i]);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s' has shape [%s], the model config needs [%s]", f->path,
                            name, a, b);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Model                                                                                             */

int pvlm_model_save(const pvlm_model *m, const char *path, const json_t *extra_meta, pvlm_err *err) {
    pvlm_st_writer w;
    if (pvlm_st_writer_init(&w, err)) return -1;
    int rc = -1;
    char *cfg = NULL;
    json_t *jc = pvlm_model_config_to_json(&m->cfg);
    if (!jc) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot encode the model config", path);
        goto done;
    }
    cfg = json_dumps(jc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(jc);
    if (!cfg) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot encode the model config", path);
        goto done;
    }
    if (pvlm_st_writer_meta(&w, "format", "pvlm-model", err) || pvlm_st_writer_meta(&w, "version", "1", err) ||
        pvlm_st_writer_meta(&w, "pvlm_config", cfg, err) || set_meta_u64(&w, "n_params", m->n_params, err))
        goto done;
    if (extra_meta) {
        if (!json_is_object(extra_meta)) {
            pvlm_err_set(err, PVLM_EINVAL, "%s: extra metadata must be a JSON object", path);
            goto done;
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)extra_meta, k, v) {
            if (is_reserved(k)) {
                pvlm_err_set(err, PVLM_EINVAL, "%s: extra metadata key \"%s\" is reserved", path, k);
                goto done;
            }
            if (json_is_string(v)) {
                if (pvlm_st_writer_meta(&w, k, json_string_value(v), err)) goto done;
            } else {
                char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
                int r = s ? pvlm_st_writer_meta(&w, k, s, err)
                          : pvlm_err_set(err, PVLM_EINVAL, "%s: cannot encode metadata \"%s\"", path, k);
                free(s);
                if (r) goto done;
            }
        }
    }
    for (int i = 0; i < m->n_views; i++) {
        const pvlm_view *v = &m->views[i];
        if (pvlm_st_writer_add(&w, v->name, PVLM_ST_F32, v->ndim, v->shape, m->params + v->offset, err)) goto done;
    }
    rc = pvlm_st_writer_write(&w, path, err);
done:
    free(cfg);
    pvlm_st_writer_free(&w);
    return rc;
}

/* Config from an open model file. */
static int file_config(const pvlm_st_file *f, pvlm_model_config *cfg, pvlm_err *err) {
    if (check_format(f, "pvlm-model", err)) return -1;
    const char *s = pvlm_st_meta(f, "pvlm_config");
    if (!s) return pvlm_err_set(err, PVLM_EFORMAT, "%s: __metadata__ lacks \"pvlm_config\"", f->path);
    json_error_t je;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        if (j) json_decref(j);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: __metadata__ pvlm_config is not a JSON object", f->path);
    }
    pvlm_model_config_default(cfg);
    int rc = pvlm_model_config_from_json(cfg, j, err);
    json_decref(j);
    if (rc) return pvlm_err_prefix(err, "%s: pvlm_config", f->path);
    return 0;
}

int pvlm_model_read_config(const char *path, pvlm_model_config *cfg, json_t **meta, pvlm_err *err) {
    pvlm_st_file f;
    if (pvlm_st_open(&f, path, err)) return -1;
    int rc = file_config(&f, cfg, err);
    if (!rc && meta) *meta = json_incref(f.metadata);
    pvlm_st_close(&f);
    return rc;
}

/* Load tensors into m from an open, checksum-verified file. */
static int load_views(pvlm_model *m, const pvlm_st_file *f, int flags, int *n_loaded, pvlm_err *err) {
    int loaded = 0;
    for (int i = 0; i < m->n_views; i++) {
        const pvlm_view *v = &m->views[i];
        const pvlm_st_tensor *t = pvlm_st_find(f, v->name);
        if (!t) {
            if (flags & PVLM_LOAD_ALLOW_MISSING) continue;
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s' required by the model config is missing", f->path,
                                v->name);
        }
        if (check_tensor(f, t, v->name, v->ndim, v->shape, err)) return -1;
        float *dst = m->params + v->offset;
        if (pvlm_st_read(f, t, dst, v->numel * sizeof(float), err)) return -1;
        if (pvlm_st_check_finite(f, t, dst, v->numel, err)) return -1;
        loaded++;
    }
    if (!(flags & PVLM_LOAD_ALLOW_UNEXPECTED))
        for (int i = 0; i < f->n_tensors; i++)
            if (pvlm_model_view_index(m, f->tensors[i].name) < 0)
                return pvlm_err_set(err, PVLM_EFORMAT, "%s: unexpected tensor '%s' (not part of the model config)",
                                    f->path, f->tensors[i].name);
    if (n_loaded) *n_loaded = loaded;
    return 0;
}

/* Does the file hold exactly the tensors of cfg's model, each F32 with the view's shape? Checked against
 * the header alone, before the parameter buffers are allocated: a forged config (a huge d_model or
 * vocabulary) is rejected without allocating what it claims. */
static int check_layout(const pvlm_st_file *f, const pvlm_model_config *cfg, pvlm_err *err) {
    pvlm_model lm;
    if (pvlm_model_layout(&lm, cfg, err)) return pvlm_err_prefix(err, "%s", f->path);
    int rc = 0;
    for (int i = 0; !rc && i < lm.n_views; i++) {
        const pvlm_view *v = &lm.views[i];
        const pvlm_st_tensor *t = pvlm_st_find(f, v->name);
        rc = !t ? pvlm_err_set(err, PVLM_EFORMAT, "%s: tensor '%s' required by the model config is missing", f->path,
                               v->name)
                : check_tensor(f, t, v->name, v->ndim, v->shape, err);
    }
    for (int i = 0; !rc && i < f->n_tensors; i++)
        if (pvlm_model_view_index(&lm, f->tensors[i].name) < 0)
            rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: unexpected tensor '%s' (not part of the model config)", f->path,
                              f->tensors[i].name);
    pvlm_model_free(&lm);
    return rc ? -1 : 0;
}

static int open_verified(pvlm_st_file *f, const char *path, pvlm_err *err) {
    if (pvlm_st_open(f, path, err)) return -1;
    if (pvlm_st_verify_checksum(f, NULL, err)) {
        pvlm_st_close(f);
        return -1;
    }
    return 0;
}

int pvlm_model_load(pvlm_model *m, const char *path, pvlm_err *err) {
    memset(m, 0, sizeof *m);
    pvlm_st_file f;
    if (pvlm_st_open(&f, path, err)) return -1;
    pvlm_model_config cfg; /* the header is checked first (cheap), then the data checksum, then allocation */
    if (file_config(&f, &cfg, err) || check_layout(&f, &cfg, err) || pvlm_st_verify_checksum(&f, NULL, err)) {
        pvlm_st_close(&f);
        return -1;
    }
    if (pvlm_model_create(m, &cfg, err)) {
        pvlm_st_close(&f);
        memset(m, 0, sizeof *m);
        return pvlm_err_prefix(err, "%s", path);
    }
    int rc = load_views(m, &f, 0, NULL, err);
    pvlm_st_close(&f);
    if (rc) {
        pvlm_model_free(m);
        memset(m, 0, sizeof *m);
    }
    return rc;
}

int pvlm_model_load_params(pvlm_model *m, const char *path, int flags, int *n_loaded, pvlm_err *err) {
    pvlm_st_file f;
    if (open_verified(&f, path, err)) return -1;
    int rc = load_views(m, &f, flags, n_loaded, err);
    pvlm_st_close(&f);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ */
/* Optimizer state                                                                                   */

static int optim_meta(pvlm_st_writer *w, const pvlm_model *m, const char *layout, size_t begin, size_t end,
                      int64_t step, pvlm_err *err) {
    if (pvlm_st_writer_meta(w, "format", "pvlm-optim", err) || pvlm_st_writer_meta(w, "version", "1", err) ||
        pvlm_st_writer_meta(w, "layout", layout, err) || set_meta_u64(w, "n_params", m->n_params, err) ||
        set_meta_u64(w, "range_begin", begin, err) || set_meta_u64(w, "range_end", end, err) ||
        set_meta_u64(w, "step", (uint64_t)step, err))
        return -1;
    return 0;
}

int pvlm_ckpt_optim_save(const pvlm_model *m, const float *m1, const float *m2, int64_t step, const char *path,
                         pvlm_err *err) {
    if (step < 0) return pvlm_err_set(err, PVLM_EINVAL, "%s: negative optimizer step", path);
    pvlm_st_writer w;
    if (pvlm_st_writer_init(&w, err)) return -1;
    int rc = optim_meta(&w, m, "full", 0, m->n_params, step, err);
    for (int i = 0; !rc && i < m->n_views; i++) {
        const pvlm_view *v = &m->views[i];
        char name[PVLM_ST_MAX_NAME];
        snprintf(name, sizeof name, "%s.m", v->name);
        rc = pvlm_st_writer_add(&w, name, PVLM_ST_F32, v->ndim, v->shape, m1 + v->offset, err);
        snprintf(name, sizeof name, "%s.v", v->name);
        if (!rc) rc = pvlm_st_writer_add(&w, name, PVLM_ST_F32, v->ndim, v->shape, m2 + v->offset, err);
    }
    if (!rc) rc = pvlm_st_writer_write(&w, path, err);
    pvlm_st_writer_free(&w);
    return rc;
}

int pvlm_ckpt_optim_save_shard(const pvlm_model *m, const float *m1, const float *m2, size_t begin, size_t end,
                               int rank, int world_size, int64_t step, const char *path, pvlm_err *err) {
    if (begin > end || end > m->n_params || step < 0 || rank < 0 || world_size < 1 || rank >= world_size)
        return pvlm_err_set(err, PVLM_EINVAL,
                            "%s: bad optimizer shard (range [%zu, %zu) of %zu, rank %d of %d, step %" PRId64 ")", path,
                            begin, end, m->n_params, rank, world_size, step);
    pvlm_st_writer w;
    if (pvlm_st_writer_init(&w, err)) return -1;
    int64_t shape[1] = {(int64_t)(end - begin)};
    int rc = optim_meta(&w, m, "flat", begin, end, step, err);
    if (!rc) rc = set_meta_u64(&w, "rank", (uint64_t)rank, err);
    if (!rc) rc = set_meta_u64(&w, "world_size", (uint64_t)world_size, err);
    if (!rc) rc = pvlm_st_writer_add(&w, "m", PVLM_ST_F32, 1, shape, m1, err);
    if (!rc) rc = pvlm_st_writer_add(&w, "v", PVLM_ST_F32, 1, shape, m2, err);
    if (!rc) rc = pvlm_st_writer_write(&w, path, err);
    pvlm_st_writer_free(&w);
    return rc;
}

typedef struct {
    size_t a, b;
} range;

static int cmp_range(const void *x, const void *y) {
    const range *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

/* Copy elements [a, b) (global) of tensor t, whose first element is global index t0, into dst (global
 * index `begin` at dst[0]), then check they are finite. */
static int read_part(const pvlm_st_file *f, const pvlm_st_tensor *t, size_t t0, size_t a, size_t b, float *dst,
                     size_t begin, pvlm_err *err) {
    if (a >= b) return 0;
    float *d = dst + (a - begin);
    if (pvlm_st_read_bytes(f, t, (uint64_t)(a - t0) * sizeof(float), (b - a) * sizeof(float), d, err)) return -1;
    return pvlm_st_check_finite(f, t, d, b - a, err);
}

/* One file's contribution to [begin, end); appends the covered global range(s) to cov. */
static int load_one(const pvlm_model *m, const char *path, size_t begin, size_t end, float *m1, float *m2,
                    int64_t *step, int *have_step, range *cov, int *ncov, pvlm_err *err) {
    pvlm_st_file f;
    if (open_verified(&f, path, err)) return -1;
    int rc = -1;
    int64_t np = 0, fb = 0, fe = 0, st = 0; /* set by meta_i64 on success; zero keeps -O2 from warning */
    const char *layout = pvlm_st_meta(&f, "layout");
    if (check_format(&f, "pvlm-optim", err) || meta_i64(&f, "n_params", &np, err) ||
        meta_i64(&f, "range_begin", &fb, err) || meta_i64(&f, "range_end", &fe, err) || meta_i64(&f, "step", &st, err))
        goto done;
    if ((uint64_t)np != m->n_params) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: optimizer state for %" PRId64 " parameters, the model has %zu", path, np,
                     m->n_params);
        goto done;
    }
    if (fb > fe || (uint64_t)fe > m->n_params) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: bad range [%" PRId64 ", %" PRId64 ")", path, fb, fe);
        goto done;
    }
    if (*have_step && st != *step) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: optimizer step %" PRId64 " differs from the other files' step %" PRId64,
                     path, st, *step);
        goto done;
    }
    *step = st;
    *have_step = 1;
    size_t a = (size_t)fb > begin ? (size_t)fb : begin, b = (size_t)fe < end ? (size_t)fe : end;
    if (layout && !strcmp(layout, "flat")) {
        const pvlm_st_tensor *tm = pvlm_st_find(&f, "m"), *tv = pvlm_st_find(&f, "v");
        int64_t shape[1] = {fe - fb};
        if (!tm || !tv) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: flat optimizer shard lacks tensor '%s'", path, tm ? "v" : "m");
            goto done;
        }
        if (check_tensor(&f, tm, "m", 1, shape, err) || check_tensor(&f, tv, "v", 1, shape, err)) goto done;
        if (read_part(&f, tm, (size_t)fb, a, b, m1, begin, err) || read_part(&f, tv, (size_t)fb, a, b, m2, begin, err))
            goto done;
    } else if (layout && !strcmp(layout, "full")) {
        if (fb != 0 || (uint64_t)fe != m->n_params) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: a \"full\" optimizer file must cover [0, n_params)", path);
            goto done;
        }
        for (int i = 0; i < m->n_views; i++) {
            const pvlm_view *v = &m->views[i];
            size_t va = v->offset > a ? v->offset : a, vb = v->offset + v->numel < b ? v->offset + v->numel : b;
            char nm[PVLM_ST_MAX_NAME], nv[PVLM_ST_MAX_NAME];
            snprintf(nm, sizeof nm, "%s.m", v->name);
            snprintf(nv, sizeof nv, "%s.v", v->name);
            const pvlm_st_tensor *tm = pvlm_st_find(&f, nm), *tv = pvlm_st_find(&f, nv);
            if (!tm || !tv) {
                pvlm_err_set(err, PVLM_EFORMAT, "%s: optimizer tensor '%s' is missing", path, tm ? nv : nm);
                goto done;
            }
            if (check_tensor(&f, tm, nm, v->ndim, v->shape, err) || check_tensor(&f, tv, nv, v->ndim, v->shape, err))
                goto done;
            if (va < vb && (read_part(&f, tm, v->offset, va, vb, m1, begin, err) ||
                            read_part(&f, tv, v->offset, va, vb, m2, begin, err)))
                goto done;
        }
    } else {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: unknown optimizer layout \"%s\" (expected full or flat)", path,
                     layout ? layout : "(missing)");
        goto done;
    }
    if (a < b) cov[(*ncov)++] = (range){a, b};
    rc = 0;
done:
    pvlm_st_close(&f);
    return rc;
}

int pvlm_ckpt_optim_load_range(const pvlm_model *m, const char *const *paths, int npaths, size_t begin, size_t end,
                               float *m1, float *m2, int64_t *step, pvlm_err *err) {
    if (begin > end || end > m->n_params)
        return pvlm_err_set(err, PVLM_EINVAL, "optimizer load: bad range [%zu, %zu) of %zu", begin, end, m->n_params);
    if (npaths < 1) return pvlm_err_set(err, PVLM_EINVAL, "optimizer load: no files given");
    /* Zero first: elements between views of a "full" file are not stored and stay zero. */
    memset(m1, 0, (end - begin) * sizeof(float));
    memset(m2, 0, (end - begin) * sizeof(float));
    range *cov = calloc((size_t)npaths, sizeof *cov);
    if (!cov) return pvlm_err_set(err, PVLM_ENOMEM, "optimizer load: out of memory");
    int ncov = 0, have_step = 0;
    int64_t st = 0;
    for (int i = 0; i < npaths; i++)
        if (load_one(m, paths[i], begin, end, m1, m2, &st, &have_step, cov, &ncov, err)) {
            free(cov);
            return -1;
        }
    qsort(cov, (size_t)ncov, sizeof *cov, cmp_range);
    size_t reach = begin;
    for (int i = 0; i < ncov && reach < end; i++) {
        if (cov[i].a > reach) break;
        if (cov[i].b > reach) reach = cov[i].b;
    }
    free(cov);
    if (reach < end)
        return pvlm_err_set(err, PVLM_EFORMAT,
                            "optimizer load: the %d file(s) do not cover element %zu (of %zu) in the requested range "
                            "[%zu, %zu) (a rank's shard missing?)",
                            npaths, reach, end, begin, end);
    if (step) *step = st;
    return 0;
}
