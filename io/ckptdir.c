/* ckptdir.c - see ckptdir.h. */
#include "io/ckptdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"

void pvlm_ckptdir_step_name(int64_t step, char *buf, size_t cap) {
    snprintf(buf, cap, "step_%08" PRId64, step);
}

int pvlm_ckptdir_parse_step(const char *name, int64_t *step) {
    if (strncmp(name, "step_", 5)) return -1;
    const char *p = name + 5;
    if (!*p || strlen(p) > 18) return -1;
    int64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    *step = v;
    return 0;
}

int pvlm_ckptdir_step_path(const char *dir, int64_t step, char *buf, size_t cap, pvlm_err *err) {
    if (step < 0) return pvlm_err_set(err, PVLM_EINVAL, "%s: negative checkpoint step %" PRId64, dir, step);
    char name[64];
    pvlm_ckptdir_step_name(step, name, sizeof name);
    return pvlm_path_join(buf, cap, dir, name, err);
}

int pvlm_ckptdir_tmp_path(const char *dir, int64_t step, char *buf, size_t cap, pvlm_err *err) {
    if (step < 0) return pvlm_err_set(err, PVLM_EINVAL, "%s: negative checkpoint step %" PRId64, dir, step);
    char name[80];
    snprintf(name, sizeof name, ".tmp.step_%08" PRId64, step);
    return pvlm_path_join(buf, cap, dir, name, err);
}

/* Remove leftovers of crashed writers: .tmp.* and .trash.* directories (and stray latest.tmp.* files). */
static int clean_leftovers(const char *dir, pvlm_err *err) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : pvlm_err_errno(err, "%s: cannot open checkpoint directory", dir);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp.", 5) && strncmp(e->d_name, ".trash.", 7) &&
            strncmp(e->d_name, PVLM_CKPTDIR_LATEST ".tmp.", sizeof PVLM_CKPTDIR_LATEST + 4))
            continue;
        char p[PATH_MAX];
        if (pvlm_path_join(p, sizeof p, dir, e->d_name, err) || pvlm_rm_rf(p, err)) {
            rc = -1;
            break;
        }
    }
    closedir(d);
    return rc;
}

int pvlm_ckptdir_begin(const char *dir, int64_t step, char *tmp, size_t cap, pvlm_err *err) {
    char t[PATH_MAX];
    if (pvlm_ckptdir_tmp_path(dir, step, t, sizeof t, err)) return -1;
    if (pvlm_mkdir_p(dir, err) || clean_leftovers(dir, err)) return -1;
    if (mkdir(t, 0755) != 0) return pvlm_err_errno(err, "%s: cannot create checkpoint tmp directory", t);
    if (pvlm_fsync_dir(dir, err)) return -1;
    if (tmp) {
        if (strlen(t) >= cap) return pvlm_err_set(err, PVLM_EINVAL, "%s: path does not fit the buffer", t);
        memcpy(tmp, t, strlen(t) + 1);
    }
    return 0;
}

int pvlm_ckptdir_abort(const char *dir, int64_t step, pvlm_err *err) {
    char t[PATH_MAX];
    if (pvlm_ckptdir_tmp_path(dir, step, t, sizeof t, err)) return -1;
    return pvlm_rm_rf(t, err);
}

/* fsync a file by path (a file written by another process or rank is made durable here too). */
static int fsync_path(const char *path, pvlm_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pvlm_err_errno(err, "%s: cannot open to fsync", path);
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return pvlm_err_errno(err, "%s: fsync failed", path);
    return 0;
}

/* The hash that protects state.json itself: XXH3 of the compact, key-sorted JSON without "state_xxh3". */
static int state_hash(const json_t *state, uint64_t *out, pvlm_err *err) {
    json_t *c = json_deep_copy(state);
    if (!c) return pvlm_err_set(err, PVLM_ENOMEM, "state.json: out of memory");
    json_object_del(c, "state_xxh3");
    char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(c);
    if (!s) return pvlm_err_set(err, PVLM_ENOMEM, "state.json: cannot encode");
    *out = pvlm_hash64(s, strlen(s));
    free(s);
    return 0;
}

int pvlm_ckptdir_seal(json_t *state, pvlm_err *err) {
    uint64_t h;
    if (state_hash(state, &h, err)) return -1;
    char hex[17];
    pvlm_hash_hex(h, hex);
    json_object_set_new(state, "state_xxh3", json_string(hex));
    return 0;
}

/* Hash and size of every file of tmp into files (an object); rejects subdirectories and partial files. */
static int describe_files(const char *tmp, json_t *files, pvlm_err *err) {
    DIR *d = opendir(tmp);
    if (!d) return pvlm_err_errno(err, "%s: cannot open checkpoint tmp directory", tmp);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, PVLM_CKPTDIR_STATE)) continue;
        char p[PATH_MAX];
        if (pvlm_path_join(p, sizeof p, tmp, e->d_name, err)) {
            rc = -1;
            break;
        }
        struct stat st;
        if (lstat(p, &st) != 0) {
            rc = pvlm_err_errno(err, "%s: cannot stat", p);
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = pvlm_err_set(err, PVLM_EINVAL, "%s: not a regular file (checkpoints hold plain files only)", p);
            break;
        }
        /* A writer's temporary name left behind means some rank's write did not finish. */
        if (strstr(e->d_name, ".tmp.")) {
            rc = pvlm_err_set(err, PVLM_EIO, "%s: partial file of an unfinished write; not committing", p);
            break;
        }
        uint64_t h;
        if (fsync_path(p, err) || pvlm_hash_file(p, &h, err)) {
            rc = -1;
            break;
        }
        char hex[17];
        pvlm_hash_hex(h, hex);
        json_object_set_new(files, e->d_name, json_pack("{s:I, s:s}", "size", (json_int_t)st.st_size, "xxh3", hex));
    }
    closedir(d);
    return rc;
}

static int write_latest(const char *dir, int64_t step, pvlm_err *err) {
    char p[PATH_MAX], line[64];
    if (pvlm_path_join(p, sizeof p, dir, PVLM_CKPTDIR_LATEST, err)) return -1;
    pvlm_ckptdir_step_name(step, line, sizeof line);
    strcat(line, "\n");
    return pvlm_write_file_atomic(p, line, strlen(line), err);
}

int pvlm_ckptdir_commit(const char *dir, int64_t step, const json_t *state, const pvlm_ckptdir_retention *keep,
                        char *final, size_t cap, pvlm_err *err) {
    char tmp[PATH_MAX], fin[PATH_MAX], sp[PATH_MAX];
    if (pvlm_ckptdir_tmp_path(dir, step, tmp, sizeof tmp, err) ||
        pvlm_ckptdir_step_path(dir, step, fin, sizeof fin, err) ||
        pvlm_path_join(sp, sizeof sp, tmp, PVLM_CKPTDIR_STATE, err))
        return -1;
    if (!pvlm_is_dir(tmp))
        return pvlm_err_set(err, PVLM_ENOTFOUND, "%s: no checkpoint being written (call pvlm_ckptdir_begin first)",
                            tmp);
    if (state && !json_is_object(state))
        return pvlm_err_set(err, PVLM_EINVAL, "%s: checkpoint state must be a JSON object", dir);

    json_t *j = state ? json_deep_copy(state) : json_object();
    json_t *files = json_object();
    if (!j || !files) {
        if (j) json_decref(j);
        if (files) json_decref(files);
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", dir);
    }
    if (describe_files(tmp, files, err)) {
        json_decref(j);
        json_decref(files);
        return -1;
    }
    json_object_set_new(j, "format", json_string("pvlm-ckpt"));
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "step", json_integer(step));
    json_object_set_new(j, "time_unix", json_integer((json_int_t)time(NULL)));
    json_object_set_new(j, "files", files);
    if (pvlm_ckptdir_seal(j, err)) {
        json_decref(j);
        return -1;
    }
    int rc = pvlm_json_save_atomic(j, sp, err);
    json_decref(j);
    if (rc) return pvlm_err_prefix(err, "checkpoint step %" PRId64, step);
    if (pvlm_fsync_dir(tmp, err)) return -1;

    /* Replacing an existing step dir (a re-run after resuming from an older checkpoint): move it aside
     * first; rename() cannot replace a non-empty directory. */
    char trash[PATH_MAX] = "";
    if (pvlm_file_exists(fin)) {
        char name[96];
        snprintf(name, sizeof name, ".trash.step_%08" PRId64 ".%ld", step, (long)getpid());
        if (pvlm_path_join(trash, sizeof trash, dir, name, err)) return -1;
        if (rename(fin, trash) != 0) return pvlm_err_errno(err, "%s: cannot move the old checkpoint aside", fin);
    }
    if (rename(tmp, fin) != 0) {
        pvlm_err_errno(err, "%s: rename to %s failed", tmp, fin);
        if (trash[0]) rename(trash, fin); /* put the old one back */
        return -1;
    }
    if (pvlm_fsync_dir(dir, err)) return -1;
    if (write_latest(dir, step, err))
        return pvlm_err_prefix(err, "checkpoint %s committed but `latest` not updated", fin);
    if (final) snprintf(final, cap, "%s", fin);

    pvlm_err perr;
    if (trash[0] && pvlm_rm_rf(trash, &perr)) pvlm_warn("checkpoint: cannot remove %s: %s", trash, perr.msg);
    if (keep && pvlm_ckptdir_prune(dir, keep, step, &perr)) pvlm_warn("checkpoint retention: %s", perr.msg);
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int pvlm_ckptdir_list(const char *dir, int64_t **steps, int *n, pvlm_err *err) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : pvlm_err_errno(err, "%s: cannot open checkpoint directory", dir);
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (pvlm_ckptdir_parse_step(e->d_name, &s)) continue;
        char p[PATH_MAX];
        if (pvlm_path_join(p, sizeof p, dir, e->d_name, NULL) || !pvlm_is_dir(p)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *ns = realloc(*steps, (size_t)cap * sizeof *ns);
            if (!ns) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                *n = 0;
                return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory listing checkpoints", dir);
            }
            *steps = ns;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (*n) qsort(*steps, (size_t)*n, sizeof **steps, cmp_i64);
    return 0;
}

int pvlm_ckptdir_read_latest(const char *dir, int64_t *step, pvlm_err *err) {
    char p[PATH_MAX];
    if (pvlm_path_join(p, sizeof p, dir, PVLM_CKPTDIR_LATEST, err)) return -1;
    if (!pvlm_file_exists(p)) return pvlm_err_set(err, PVLM_ENOTFOUND, "%s: no latest pointer", p);
    char *buf;
    size_t n;
    if (pvlm_read_file(p, &buf, &n, err)) return -1;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r')) buf[--n] = '\0';
    int rc = pvlm_ckptdir_parse_step(buf, step);
    if (rc) pvlm_err_set(err, PVLM_EFORMAT, "%s: does not name a step directory: \"%.40s\"", p, buf);
    free(buf);
    return rc;
}

/* Index (into the ascending steps) of the oldest checkpoint retention keeps: the keep_last newest that
 * verify (protect_step, just committed and hashed by the commit, counts without being read again). If
 * one of the newer checkpoints read on the way fails to verify, nothing is deleted (index 0): a good
 * older checkpoint is what a resume falls back to while newer ones are damaged. */
static int first_kept(const char *dir, const int64_t *steps, int n, int keep_last, int64_t protect_step) {
    int good = 0, damaged = 0, i = n;
    while (i > 0 && good < keep_last) {
        i--;
        char p[PATH_MAX];
        pvlm_err verr;
        if (steps[i] == protect_step ||
            (!pvlm_ckptdir_step_path(dir, steps[i], p, sizeof p, &verr) && !pvlm_ckptdir_verify(p, NULL, &verr))) {
            good++;
        } else {
            damaged = 1;
            pvlm_warn("checkpoint retention: deleting nothing while step %" PRId64 " does not verify: %s", steps[i],
                      verr.msg);
        }
    }
    return damaged ? 0 : i;
}

int pvlm_ckptdir_prune(const char *dir, const pvlm_ckptdir_retention *keep, int64_t protect_step, pvlm_err *err) {
    if (!keep || keep->keep_last <= 0) return 0;
    int64_t *steps;
    int n;
    if (pvlm_ckptdir_list(dir, &steps, &n, err)) return -1;
    int64_t latest = -1, best = -1;
    if (pvlm_ckptdir_read_latest(dir, &latest, NULL)) latest = -1;
    if (pvlm_ckptdir_read_best(dir, &best, NULL, NULL)) best = -1;
    int rc = 0;
    int first = first_kept(dir, steps, n, keep->keep_last, protect_step);
    for (int i = 0; i < first; i++) { /* ascending: the ones before `first` are the old ones */
        int64_t s = steps[i];
        if (s == protect_step || s == latest || s == best || (keep->keep_every > 0 && s % keep->keep_every == 0))
            continue;
        char p[PATH_MAX], trash[PATH_MAX], name[96];
        snprintf(name, sizeof name, ".trash.step_%08" PRId64 ".%ld", s, (long)getpid());
        if (pvlm_ckptdir_step_path(dir, s, p, sizeof p, err) || pvlm_path_join(trash, sizeof trash, dir, name, err)) {
            rc = -1;
            break;
        }
        if (rename(p, trash) != 0) {
            rc = pvlm_err_errno(err, "%s: cannot move aside for deletion", p);
            break;
        }
        if (pvlm_rm_rf(trash, err)) {
            rc = -1;
            break;
        }
    }
    free(steps);
    if (!rc) rc = pvlm_fsync_dir(dir, err);
    return rc;
}

int pvlm_ckptdir_verify(const char *step_dir, json_t **state, pvlm_err *err) {
    if (state) *state = NULL;
    char sp[PATH_MAX];
    if (pvlm_path_join(sp, sizeof sp, step_dir, PVLM_CKPTDIR_STATE, err)) return -1;
    if (!pvlm_is_dir(step_dir)) return pvlm_err_set(err, PVLM_ENOTFOUND, "%s: no such checkpoint directory", step_dir);
    if (!pvlm_file_exists(sp)) return pvlm_err_set(err, PVLM_ENOTFOUND, "%s: missing (incomplete checkpoint)", sp);
    json_t *j = pvlm_json_load_file(sp, err);
    if (!j) {
        if (err) err->code = PVLM_EFORMAT;
        return -1;
    }
    int rc = -1;
    const char *fmt = NULL, *want_hex = NULL;
    int64_t ver = 0, step = 0;
    if (!json_is_object(j)) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: not a JSON object", sp);
        goto done;
    }
    if (pvlm_json_get_str(j, "format", &fmt, sp, err) || pvlm_json_get_int(j, "version", &ver, sp, err) ||
        pvlm_json_get_int(j, "step", &step, sp, err) || pvlm_json_get_str(j, "state_xxh3", &want_hex, sp, err)) {
        if (err) err->code = PVLM_EFORMAT;
        goto done;
    }
    if (strcmp(fmt, "pvlm-ckpt") || ver != 1) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: format \"%s\" version %" PRId64 ", expected pvlm-ckpt version 1", sp, fmt,
                     ver);
        goto done;
    }
    uint64_t want, got;
    if (pvlm_hash_parse(want_hex, &want)) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: state_xxh3 is not 16 hex digits", sp);
        goto done;
    }
    if (state_hash(j, &got, err)) goto done;
    if (got != want) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: checksum mismatch (state.json was modified or corrupted)", sp);
        goto done;
    }
    /* The directory name, when it is a step name, must agree with the recorded step. */
    const char *base = strrchr(step_dir, '/');
    base = base ? base + 1 : step_dir;
    int64_t dstep;
    if (!pvlm_ckptdir_parse_step(base, &dstep) && dstep != step) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: records step %" PRId64 " but the directory is %s", sp, step, base);
        goto done;
    }
    json_t *files = json_object_get(j, "files");
    if (!json_is_object(files)) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: \"files\" is missing or not an object", sp);
        goto done;
    }
    const char *name;
    json_t *fe;
    json_object_foreach(files, name, fe) {
        int64_t size;
        const char *hex;
        uint64_t h, fh;
        char fp[PATH_MAX];
        if (!*name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, ".")) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: bad file name \"%.64s\"", sp, name);
            goto done;
        }
        if (pvlm_json_get_int(fe, "size", &size, sp, err) || pvlm_json_get_str(fe, "xxh3", &hex, sp, err) ||
            pvlm_hash_parse(hex, &h)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: bad entry for file \"%s\"", sp, name);
            goto done;
        }
        if (pvlm_path_join(fp, sizeof fp, step_dir, name, err)) goto done;
        struct stat st;
        if (stat(fp, &st) != 0) {
            pvlm_err_set(err, PVLM_ENOTFOUND, "%s: missing (listed in state.json)", fp);
            goto done;
        }
        if ((int64_t)st.st_size != size) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: size %lld, state.json says %" PRId64 " (truncated or replaced)", fp,
                         (long long)st.st_size, size);
            goto done;
        }
        if (pvlm_hash_file(fp, &fh, err)) goto done;
        if (fh != h) {
            char g[17];
            pvlm_hash_hex(fh, g);
            pvlm_err_set(err, PVLM_EFORMAT, "%s: checksum %s, state.json says %s (file corrupted)", fp, g, hex);
            goto done;
        }
    }
    rc = 0;
done:
    if (!rc && state)
        *state = j;
    else
        json_decref(j);
    return rc;
}

int pvlm_ckptdir_find_resume(const char *dir, pvlm_ckptdir_resume *r, pvlm_err *err) {
    return pvlm_ckptdir_find_resume_checked(dir, NULL, NULL, r, err);
}

int pvlm_ckptdir_find_resume_checked(const char *dir, pvlm_ckptdir_check_fn check, void *ctx, pvlm_ckptdir_resume *r,
                                     pvlm_err *err) {
    memset(r, 0, sizeof *r);
    r->step = -1;
    if (pvlm_ckptdir_read_latest(dir, &r->latest, NULL)) r->latest = -1;
    int64_t *steps;
    int n;
    if (pvlm_ckptdir_list(dir, &steps, &n, err)) return -1;
    if (n) {
        r->skipped = calloc((size_t)n, sizeof *r->skipped);
        if (!r->skipped) {
            free(steps);
            return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", dir);
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        char p[PATH_MAX];
        pvlm_err verr;
        json_t *st = NULL;
        int ok = !pvlm_ckptdir_step_path(dir, steps[i], p, sizeof p, &verr) && !pvlm_ckptdir_verify(p, &st, &verr) &&
                 (!check || !check(p, st, ctx, &verr));
        if (ok) {
            r->found = 1;
            r->step = steps[i];
            snprintf(r->path, sizeof r->path, "%s", p);
            r->state = st;
            break;
        }
        json_decref(st);
        pvlm_ckptdir_skipped *s = &r->skipped[r->n_skipped++];
        s->step = steps[i];
        snprintf(s->reason, sizeof s->reason, "%s", verr.msg);
    }
    free(steps);
    return 0;
}

void pvlm_ckptdir_resume_free(pvlm_ckptdir_resume *r) {
    if (!r) return;
    if (r->state) json_decref(r->state);
    free(r->skipped);
    r->state = NULL;
    r->skipped = NULL;
    r->n_skipped = 0;
}

/* ---------------------------------------------------------------- best pointer */

/* The parsed `best` record (new reference) or NULL with err. */
static json_t *load_best(const char *dir, pvlm_err *err) {
    char p[PATH_MAX];
    if (pvlm_path_join(p, sizeof p, dir, PVLM_CKPTDIR_BEST, err)) return NULL;
    if (!pvlm_file_exists(p)) {
        pvlm_err_set(err, PVLM_ENOTFOUND, "%s: no best pointer", p);
        return NULL;
    }
    json_t *j = pvlm_json_load_file(p, err);
    int64_t step;
    double v;
    const char *name;
    if (j && (pvlm_json_get_int(j, "step", &step, p, err) || pvlm_json_get_real(j, "value", &v, p, err) ||
              pvlm_json_get_str(j, "metric", &name, p, err) || pvlm_json_get_str(j, "mode", &name, p, err))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int pvlm_ckptdir_read_best(const char *dir, int64_t *step, double *value, pvlm_err *err) {
    json_t *j = load_best(dir, err);
    if (!j) return -1;
    *step = json_integer_value(json_object_get(j, "step"));
    if (value) *value = json_number_value(json_object_get(j, "value"));
    json_decref(j);
    return 0;
}

int pvlm_ckptdir_offer_best(const char *dir, int64_t step, const char *metric, int maximize, double value,
                            int *is_best, pvlm_err *err) {
    const char *mode = maximize ? "max" : "min";
    if (is_best) *is_best = 0;
    if (!(value == value)) return 0; /* NaN */
    json_t *old = load_best(dir, NULL);
    int better = 1;
    if (old && !strcmp(json_string_value(json_object_get(old, "metric")), metric) &&
        !strcmp(json_string_value(json_object_get(old, "mode")), mode)) {
        char p[PATH_MAX];
        int64_t os = json_integer_value(json_object_get(old, "step"));
        double ov = json_number_value(json_object_get(old, "value"));
        int exists = pvlm_ckptdir_step_path(dir, os, p, sizeof p, NULL) == 0 && pvlm_is_dir(p);
        /* the same step re-evaluated (a redone step after a resume) takes the new value */
        if (exists && os != step) better = maximize ? value > ov : value < ov;
    }
    if (old) json_decref(old);
    if (!better) return 0;
    char p[PATH_MAX], name[64];
    if (pvlm_path_join(p, sizeof p, dir, PVLM_CKPTDIR_BEST, err)) return -1;
    pvlm_ckptdir_step_name(step, name, sizeof name);
    json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:f}", "step", (json_int_t)step, "dir", name, "metric", metric, "mode",
                          mode, "value", value);
    if (!j) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", p);
    int rc = pvlm_json_save_atomic(j, p, err);
    json_decref(j);
    if (rc == 0 && is_best) *is_best = 1;
    return rc;
}
