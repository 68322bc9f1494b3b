/* cmd_inspect.c - `pvlm inspect CKPT`: what a checkpoint holds, and whether it is intact.
 *
 * CKPT may be
 *   - a safetensors file (model, optimizer state, or any other writer's): header facts, metadata, the
 *     model config, the tensor table (name, dtype, shape, numel, optional XXH3 of each tensor's bytes),
 *     parameter count, data checksum status, and for a pvlm model whether every tensor matches the config;
 *   - a checkpoint step directory (holds state.json): the verification result, a state.json summary
 *     (step, samples seen, world size, files with sizes and checksums), then its model.safetensors;
 *   - a checkpoint root (holds step_* directories): every checkpoint with its verification status, the
 *     `latest` pointer, and which one `--resume auto` would take.
 * --json prints one JSON object instead. Exit status: 0 intact, 1 invalid/corrupt or unreadable, 2 usage.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/args.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "io/ckptdir.h"
#include "io/safetensors.h"
#include "io/trainstate.h"
#include "model/checkpoint.h"
#include "model/model.h"

int pvlm_cmd_inspect(int argc, char **argv);

typedef struct {
    int json, checksums;
} opts;

static void shape_str(const pvlm_st_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < t->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", t->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* XXH3 of one tensor's bytes (streamed through a bounded buffer). */
static int tensor_hash(const pvlm_st_file *f, const pvlm_st_tensor *t, uint64_t *out, pvlm_err *err) {
    pvlm_hasher h;
    if (pvlm_hasher_init(&h, err)) return -1;
    size_t chunk = 1u << 20;
    char *buf = malloc(chunk);
    if (!buf) {
        pvlm_hasher_free(&h);
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    }
    uint64_t len = t->end - t->begin, off = 0;
    int rc = 0;
    while (off < len) {
        size_t n = len - off < chunk ? (size_t)(len - off) : chunk;
        if ((rc = pvlm_st_read_bytes(f, t, off, n, buf, err))) break;
        pvlm_hasher_update(&h, buf, n);
        off += n;
    }
    *out = pvlm_hasher_digest(&h);
    pvlm_hasher_free(&h);
    free(buf);
    return rc;
}

/* Does every view of the config's model exist in the file with the right shape (and nothing else)?
 * Returns 1 yes, 0 no (reason in err), -1 not a pvlm model file / config invalid (reason in err). */
static int model_matches(const pvlm_st_file *f, pvlm_model_config *cfg, pvlm_err *err) {
    if (pvlm_model_read_config(f->path, cfg, NULL, err)) return -1;
    pvlm_model m; /* the view table only: a forged config must not make inspect allocate its parameters */
    if (pvlm_model_layout(&m, cfg, err)) return -1;
    int ok = 1;
    for (int i = 0; ok && i < m.n_views; i++) {
        const pvlm_view *v = &m.views[i];
        const pvlm_st_tensor *t = pvlm_st_find(f, v->name);
        if (!t) {
            pvlm_err_set(err, PVLM_EFORMAT, "tensor '%s' is missing", v->name);
            ok = 0;
            break;
        }
        int same = t->dtype == PVLM_ST_F32 && t->ndim == v->ndim;
        for (int k = 0; same && k < v->ndim; k++) same = t->shape[k] == v->shape[k];
        if (!same) {
            pvlm_err_set(err, PVLM_EFORMAT, "tensor '%s' has the wrong dtype or shape for the config", v->name);
            ok = 0;
        }
    }
    for (int i = 0; ok && i < f->n_tensors; i++)
        if (pvlm_model_view_index(&m, f->tensors[i].name) < 0) {
            pvlm_err_set(err, PVLM_EFORMAT, "unexpected tensor '%s'", f->tensors[i].name);
            ok = 0;
        }
    pvlm_model_free(&m);
    return ok;
}

/* Inspect one safetensors file; into `out` when JSON is wanted, else printed. Returns 0 intact, 1 not. */
/* What inspect_file found out about one safetensors file, for either output. */
typedef struct file_facts {
    const char *fmt;  /* "format" metadata, or NULL */
    const char *csum; /* "absent", "ok" or "MISMATCH" */
    int crc;          /* checksum mismatch: cerr says how */
    pvlm_err cerr;
    int match; /* model_matches (1 yes, 0 no, -1 bad config: merr), -2 not a model file */
    pvlm_err merr;
    uint64_t nparams;
} file_facts;

static int file_facts_get(const pvlm_st_file *f, file_facts *x) {
    memset(x, 0, sizeof *x);
    int present = 0, bad = 0;
    x->crc = pvlm_st_verify_checksum(f, &present, &x->cerr);
    x->csum = !present ? "absent" : x->crc ? "MISMATCH" : "ok";
    if (x->crc) bad = 1;
    x->fmt = pvlm_st_meta(f, "format");
    pvlm_model_config cfg;
    int is_model = x->fmt && !strcmp(x->fmt, "pvlm-model");
    x->match = is_model ? model_matches(f, &cfg, &x->merr) : -2;
    if (x->match == 0 || x->match == -1) bad = 1;
    uint64_t total_numel = 0, f32_numel = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        total_numel += f->tensors[i].numel;
        if (f->tensors[i].dtype == PVLM_ST_F32) f32_numel += f->tensors[i].numel;
    }
    /* The parameter count of a model file is the number of F32 elements; for other files, all elements. */
    x->nparams = is_model ? f32_numel : total_numel;
    return bad;
}

/* The tensor table as JSON (with each tensor's xxh3 under --checksums). */
static json_t *tensors_json(const pvlm_st_file *f, const opts *o) {
    json_t *ts = json_array();
    for (int i = 0; i < f->n_tensors; i++) {
        const pvlm_st_tensor *t = &f->tensors[i];
        json_t *sh = json_array();
        for (int k = 0; k < t->ndim; k++) json_array_append_new(sh, json_integer(t->shape[k]));
        json_t *e = json_pack("{s:s, s:s, s:o, s:I, s:[I,I]}", "name", t->name, "dtype", pvlm_st_dtype_name(t->dtype),
                              "shape", sh, "numel", (json_int_t)t->numel, "data_offsets", (json_int_t)t->begin,
                              (json_int_t)t->end);
        if (o->checksums) {
            uint64_t h;
            char hex[17];
            pvlm_err err = {0};
            if (tensor_hash(f, t, &h, &err) == 0) {
                pvlm_hash_hex(h, hex);
                json_object_set_new(e, "xxh3", json_string(hex));
            }
        }
        json_array_append_new(ts, e);
    }
    return ts;
}

static void file_json(const char *path, const pvlm_st_file *f, const file_facts *x, int bad, const opts *o,
                      json_t *out) {
    json_object_set_new(out, "path", json_string(path));
    json_object_set_new(out, "valid", json_boolean(!bad));
    json_object_set_new(out, "file_size", json_integer((json_int_t)f->file_size));
    json_object_set_new(out, "header_size", json_integer((json_int_t)f->header_len));
    json_object_set_new(out, "data_checksum", json_string(x->csum));
    if (x->crc) json_object_set_new(out, "error", json_string(x->cerr.msg));
    json_t *meta = json_deep_copy(f->metadata);
    const char *cs = pvlm_st_meta(f, "pvlm_config");
    if (cs) {
        json_t *cj = json_loads(cs, 0, NULL);
        if (cj) json_object_set_new(out, "config", cj);
        json_object_del(meta, "pvlm_config");
    }
    json_object_set_new(out, "metadata", meta);
    if (x->match >= 0) json_object_set_new(out, "matches_config", json_boolean(x->match == 1));
    if (x->match == 0 || x->match == -1) json_object_set_new(out, "error", json_string(x->merr.msg));
    json_object_set_new(out, "tensors", tensors_json(f, o));
    json_object_set_new(out, "n_tensors", json_integer(f->n_tensors));
    json_object_set_new(out, "n_params", json_integer((json_int_t)x->nparams));
}

/* The metadata other than the fields printed elsewhere, and the model config one key a line. */
static void print_metadata(const pvlm_st_file *f) {
    const char *k;
    json_t *v;
    int nmeta = 0;
    json_object_foreach(f->metadata, k, v) {
        if (!strcmp(k, "pvlm_config") || !strcmp(k, "format") || !strcmp(k, "version") || !strcmp(k, "pvlm_data_xxh3"))
            continue;
        if (!nmeta++) printf("metadata:\n");
        const char *s = json_string_value(v);
        printf("  %-22s %.*s%s\n", k, 200, s, strlen(s) > 200 ? "..." : "");
    }
    const char *cs = pvlm_st_meta(f, "pvlm_config");
    if (!cs) return;
    json_t *cj = json_loads(cs, 0, NULL);
    printf("config:\n");
    if (!cj) {
        printf("  (not valid JSON)\n");
        return;
    }
    json_object_foreach(cj, k, v) {
        char *vs = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        printf("  %-22s %s\n", k, vs ? vs : "?");
        free(vs);
    }
    json_decref(cj);
}

/* The tensor table, names padded to the longest. */
static void print_tensors(const pvlm_st_file *f, const opts *o) {
    printf("tensors:     %d\n", f->n_tensors);
    int wname = 4;
    for (int i = 0; i < f->n_tensors; i++) {
        int l = (int)strlen(f->tensors[i].name);
        if (l > wname) wname = l;
    }
    printf("  %-*s  %-5s  %-22s  %12s%s\n", wname, "name", "dtype", "shape", "numel", o->checksums ? "  xxh3" : "");
    for (int i = 0; i < f->n_tensors; i++) {
        const pvlm_st_tensor *t = &f->tensors[i];
        char sh[160], hex[17] = "";
        shape_str(t, sh, sizeof sh);
        if (o->checksums) {
            uint64_t h;
            pvlm_err err = {0};
            if (tensor_hash(f, t, &h, &err) == 0)
                pvlm_hash_hex(h, hex);
            else
                snprintf(hex, sizeof hex, "read-error");
        }
        printf("  %-*s  %-5s  %-22s  %12" PRIu64 "%s%s\n", wname, t->name, pvlm_st_dtype_name(t->dtype), sh, t->numel,
               o->checksums ? "  " : "", hex);
    }
}

static void print_file(const char *path, const pvlm_st_file *f, const file_facts *x, const opts *o) {
    printf("file:        %s\n", path);
    printf("size:        %" PRIu64 " bytes (header %" PRIu64 ", data %" PRIu64 ")\n", f->file_size, f->header_len,
           f->file_size - f->data_start);
    printf("format:      %s version %s\n", x->fmt ? x->fmt : "(none: not written by pvlm)",
           pvlm_st_meta(f, "version") ? pvlm_st_meta(f, "version") : "-");
    printf("checksum:    %s%s%s\n", x->csum, x->crc ? ": " : "", x->crc ? x->cerr.msg : "");
    print_metadata(f);
    if (x->match == 1) printf("tensors match the config: yes\n");
    if (x->match == 0 || x->match == -1) printf("tensors match the config: NO: %s\n", x->merr.msg);
    print_tensors(f, o);
    printf("parameters:  %" PRIu64 " (%.2f M)\n", x->nparams, (double)x->nparams / 1e6);
}

static int inspect_file(const char *path, const opts *o, json_t *out) {
    pvlm_err err = {0};
    pvlm_st_file f;
    if (pvlm_st_open(&f, path, &err)) {
        if (out) {
            json_object_set_new(out, "path", json_string(path));
            json_object_set_new(out, "valid", json_false());
            json_object_set_new(out, "error", json_string(err.msg));
        } else {
            printf("file:        %s\nINVALID:     %s\n", path, err.msg);
        }
        return 1;
    }
    file_facts x;
    int bad = file_facts_get(&f, &x);
    if (out) file_json(path, &f, &x, bad, o, out);
    else print_file(path, &f, &x, o);
    pvlm_st_close(&f);
    return bad;
}

static void print_state(const json_t *st) {
    const char *k;
    json_t *v;
    printf("state.json:\n");
    json_object_foreach((json_t *)st, k, v) {
        if (!strcmp(k, "files")) continue;
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
        size_t n = s ? strlen(s) : 0;
        printf("  %-22s %.*s%s\n", k, 160, s ? s : "?", n > 160 ? "..." : "");
        free(s);
    }
    json_t *files = json_object_get(st, "files");
    printf("files:\n");
    json_object_foreach(files, k, v) {
        printf("  %-36s %12" JSON_INTEGER_FORMAT " bytes  xxh3 %s\n", k, json_integer_value(json_object_get(v, "size")),
               json_string_value(json_object_get(v, "xxh3")));
    }
}

/* A checkpoint step directory: verified by io/ckptdir, its training state validated by io/trainstate. */
static int inspect_step(const char *dir, const opts *o, json_t *out) {
    pvlm_err err = {0};
    json_t *st = NULL;
    pvlm_trainstate ts;
    int rc = pvlm_trainstate_load(dir, &ts, &st, &err);
    if (!rc) pvlm_trainstate_free(&ts);
    char mp[PATH_MAX];
    int has_model = !pvlm_trainstate_path(dir, PVLM_TRAINSTATE_MODEL, mp, sizeof mp, NULL) && pvlm_file_exists(mp);
    if (out) {
        json_object_set_new(out, "path", json_string(dir));
        json_object_set_new(out, "kind", json_string("checkpoint"));
        json_object_set_new(out, "verified", json_boolean(rc == 0));
        if (rc) json_object_set_new(out, "error", json_string(err.msg));
        if (st) json_object_set_new(out, "state", st);
    } else {
        printf("checkpoint:  %s\n", dir);
        printf("verified:    %s%s%s\n",
               rc ? "NO" : "yes (state.json checksum and training state, every file's size and XXH3)", rc ? ": " : "",
               rc ? err.msg : "");
        if (st) {
            print_state(st);
            json_decref(st);
        }
    }
    int bad = rc != 0;
    if (has_model) {
        if (out) {
            json_t *mj = json_object();
            bad |= inspect_file(mp, o, mj);
            json_object_set_new(out, "model", mj);
        } else {
            printf("\n");
            bad |= inspect_file(mp, o, NULL);
        }
    }
    return bad;
}

/* A checkpoint root: list every checkpoint with its status. */
static int inspect_root(const char *dir, const opts *o, json_t *out) {
    pvlm_err err = {0};
    int64_t *steps;
    int n;
    if (pvlm_ckptdir_list(dir, &steps, &n, &err)) {
        fprintf(stderr, "pvlm inspect: %s\n", err.msg);
        return 1;
    }
    int64_t latest = -1;
    pvlm_err lerr = {0};
    int lrc = pvlm_ckptdir_read_latest(dir, &latest, &lerr);
    pvlm_ckptdir_resume r;
    if (pvlm_trainstate_find_resume(dir, &r, &err)) {
        free(steps);
        fprintf(stderr, "pvlm inspect: %s\n", err.msg);
        return 1;
    }
    json_t *arr = out ? json_array() : NULL;
    if (!out) {
        printf("checkpoint root: %s\n", dir);
        if (lrc)
            printf("latest:      none (%s)\n", lerr.msg);
        else
            printf("latest:      step %" PRId64 "\n", latest);
        printf("checkpoints: %d\n", n);
    }
    int n_bad = 0;
    for (int i = n - 1; i >= 0; i--) {
        char p[PATH_MAX];
        pvlm_err verr = {0};
        pvlm_trainstate ts;
        int rc = pvlm_ckptdir_step_path(dir, steps[i], p, sizeof p, &verr) || pvlm_trainstate_load(p, &ts, NULL, &verr);
        n_bad += rc != 0;
        if (out) {
            json_t *e = json_pack("{s:I, s:s, s:b}", "step", (json_int_t)steps[i], "path", p, "verified", rc == 0);
            if (rc) json_object_set_new(e, "error", json_string(verr.msg));
            else
                json_object_set_new(e, "samples_seen", json_integer(ts.samples_seen));
            json_array_append_new(arr, e);
        } else {
            printf("  step %-10" PRId64 " %s%s\n", steps[i], rc ? "CORRUPT: " : "ok", rc ? verr.msg : "");
        }
        if (!rc) pvlm_trainstate_free(&ts);
    }
    if (out) {
        json_object_set_new(out, "path", json_string(dir));
        json_object_set_new(out, "kind", json_string("checkpoint_root"));
        json_object_set_new(out, "latest", lrc ? json_null() : json_integer(latest));
        json_object_set_new(out, "checkpoints", arr);
        json_object_set_new(out, "resume_step", r.found ? json_integer(r.step) : json_null());
    } else {
        if (r.found)
            printf("--resume auto would take step %" PRId64 " (%s)\n", r.step, r.path);
        else
            printf("--resume auto would find no valid checkpoint\n");
    }
    /* Any checkpoint that fails makes the root invalid (exit 1), even when an older one would resume. */
    int bad = !r.found || n_bad > 0;
    pvlm_ckptdir_resume_free(&r);
    free(steps);
    (void)o;
    return bad;
}

int pvlm_cmd_inspect(int argc, char **argv) {
    int json = 0, checksums = 0;
    pvlm_opt optv[] = {
        {"json", PVLM_ARG_FLAG, &json, "print one JSON object instead of text", NULL, 0, 0, 0},
        {"checksums", PVLM_ARG_FLAG, &checksums, "also print the XXH3-64 of every tensor's bytes", NULL, 0, 0, 0},
    };
    pvlm_cmd cmd = {"pvlm inspect",
                    "Print a checkpoint's config, tensor table (name, dtype, shape, numel) and parameter count, and "
                    "check its integrity. CKPT is a safetensors file, a checkpoint step directory (with state.json) "
                    "or a checkpoint root (with step_* directories). Exit 1 if anything is invalid or corrupt.",
                    "CKPT",
                    optv,
                    (int)(sizeof optv / sizeof *optv),
                    1,
                    1};
    char *pos[1];
    int np = 0;
    int a = pvlm_args_parse(&cmd, argc, argv, pos, &np);
    if (a == PVLM_ARGS_HELP) return 0;
    if (a != PVLM_ARGS_OK) return 2;
    opts o = {json, checksums};
    pvlm_err err = {0};
    const char *path = pos[0];
    json_t *out = json ? json_object() : NULL;
    int bad;
    char sp[PATH_MAX];
    if (pvlm_path_join(sp, sizeof sp, path, PVLM_CKPTDIR_STATE, &err)) {
        fprintf(stderr, "pvlm inspect: %s\n", err.msg);
        if (out) json_decref(out);
        return 1;
    }
    if (!pvlm_file_exists(path)) {
        fprintf(stderr, "pvlm inspect: %s: no such file or directory\n", path);
        if (out) json_decref(out);
        return 1;
    }
    if (pvlm_is_dir(path)) {
        if (pvlm_file_exists(sp))
            bad = inspect_step(path, &o, out);
        else
            bad = inspect_root(path, &o, out);
    } else {
        if (out) json_object_set_new(out, "kind", json_string("safetensors"));
        bad = inspect_file(path, &o, out);
    }
    if (out) {
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(out);
    }
    return bad ? 1 : 0;
}
