/* fsutil.c - see fsutil.h. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pvlm_mkdir_p(const char *path, pvlm_err *err) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return pvlm_err_set(err, PVLM_EINVAL, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return pvlm_err_errno(err, "%s: cannot create directory", buf);
            buf[i] = c;
        }
    }
    if (!pvlm_is_dir(path)) return pvlm_err_set(err, PVLM_EIO, "%s: exists and is not a directory", path);
    return 0;
}

int pvlm_fsync_dir(const char *dir, pvlm_err *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return pvlm_err_errno(err, "%s: cannot open directory to fsync", dir);
    int rc = fsync(fd);
    close(fd);
    if (rc != 0) return pvlm_err_errno(err, "%s: fsync of directory failed", dir);
    return 0;
}

int pvlm_fsync_file(FILE *f, const char *path, pvlm_err *err) {
    if (fflush(f) != 0) return pvlm_err_errno(err, "%s: write failed", path);
    if (fsync(fileno(f)) != 0) return pvlm_err_errno(err, "%s: fsync failed", path);
    return 0;
}

int pvlm_path_join(char *buf, size_t cap, const char *a, const char *b, pvlm_err *err) {
    int n = *a ? snprintf(buf, cap, "%s/%s", a, b) : snprintf(buf, cap, "%s", b);
    if (n >= 0 && (size_t)n < cap) return 0;
    if (cap) buf[0] = '\0'; /* never leave a truncated path behind for a caller that ignores the error */
    return pvlm_err_set(err, PVLM_EINVAL, "path too long (%d bytes, the limit is %zu): %.200s/%.200s", n,
                        cap ? cap - 1 : 0, a, b);
}

void pvlm_dirname(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, cap, ".");
    } else if (slash == path) {
        snprintf(buf, cap, "/");
    } else {
        snprintf(buf, cap, "%.*s", (int)(slash - path), path);
    }
}

FILE *pvlm_durable_open(const char *path, char *tmp, size_t cap, pvlm_err *err) {
    int n = snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= cap) {
        pvlm_err_set(err, PVLM_EINVAL, "%s: path too long", path);
        return NULL;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) pvlm_err_errno(err, "%s: cannot create", tmp);
    return f;
}

void pvlm_durable_abort(FILE *f, const char *tmp) {
    if (f) fclose(f);
    unlink(tmp);
}

int pvlm_durable_commit(FILE *f, const char *tmp, const char *path, pvlm_err *err) {
    char dir[PATH_MAX];
    if (pvlm_fsync_file(f, tmp, err)) {
        pvlm_durable_abort(f, tmp);
        return -1;
    }
    if (fclose(f) != 0) {
        pvlm_err_errno(err, "%s: close failed", tmp);
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        pvlm_err_errno(err, "%s: rename to %s failed", tmp, path);
        unlink(tmp);
        return -1;
    }
    pvlm_dirname(path, dir, sizeof dir);
    return pvlm_fsync_dir(dir, err);
}

int pvlm_write_file_atomic(const char *path, const void *data, size_t n, pvlm_err *err) {
    char tmp[PATH_MAX + 32];
    FILE *f = pvlm_durable_open(path, tmp, sizeof tmp, err);
    if (!f) return -1;
    if (n && fwrite(data, 1, n, f) != n) {
        pvlm_err_errno(err, "%s: write failed", tmp);
        pvlm_durable_abort(f, tmp);
        return -1;
    }
    return pvlm_durable_commit(f, tmp, path, err);
}

static int not_regular(const char *path, const struct stat *st, pvlm_err *err) {
    return pvlm_err_set(err, PVLM_EINVAL, "%s: %s, not a regular file", path,
                        S_ISDIR(st->st_mode) ? "is a directory" : "is a special file (FIFO, device or socket)");
}

int pvlm_read_file(const char *path, char **out, size_t *n, pvlm_err *err) {
    /* Only a regular file has a size to read: a directory opens and "seeks" to an end of
     * 2^63-1 bytes, and a FIFO or device has no end at all (opening a FIFO even blocks).
     * Checked before opening, and again on the opened file (it may have been replaced). */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) return not_regular(path, &st, err);
    FILE *f = fopen(path, "rb");
    if (!f) return pvlm_err_errno(err, "%s: cannot open", path);
    if (fstat(fileno(f), &st) != 0) {
        int rc = pvlm_err_errno(err, "%s: cannot stat", path);
        fclose(f);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return not_regular(path, &st, err);
    }
    if (fseeko(f, 0, SEEK_END) != 0) {
        fclose(f);
        return pvlm_err_errno(err, "%s: cannot seek", path);
    }
    off_t size = ftello(f);
    if (size < 0 || fseeko(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return pvlm_err_errno(err, "%s: cannot seek", path);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory reading %lld bytes", path, (long long)size);
    }
    if ((size_t)size && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        return pvlm_err_set(err, PVLM_EIO, "%s: short read", path);
    }
    fclose(f);
    buf[size] = '\0';
    *out = buf;
    if (n) *n = (size_t)size;
    return 0;
}

int pvlm_pread_full(int fd, void *dst, size_t n, uint64_t off, const char *path, pvlm_err *err) {
    char *p = dst;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return pvlm_err_errno(err, "%s: read of %zu bytes at offset %llu failed", path, n, (unsigned long long)off);
        }
        if (r == 0)
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: unexpected end of file at offset %llu (file truncated?)", path,
                                (unsigned long long)off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int pvlm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int pvlm_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void pvlm_dir_names_free(char **names, size_t n) {
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

int pvlm_dir_names(const char *dir, int (*keep)(const char *name), char ***names, size_t *n, pvlm_err *err) {
    *names = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d) return pvlm_err_errno(err, "%s: cannot read directory", dir);
    char **v = NULL;
    size_t k = 0, cap = 0;
    int oom = 0;
    struct dirent *e;
    while (!oom && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (keep && !keep(e->d_name))) continue;
        if (k == cap) {
            size_t nc = cap ? 2 * cap : 64;
            char **nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                oom = 1;
                break;
            }
            v = nv, cap = nc;
        }
        if (!(v[k] = strdup(e->d_name)))
            oom = 1;
        else
            k++;
    }
    closedir(d);
    if (oom) {
        pvlm_dir_names_free(v, k);
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory listing the directory", dir);
    }
    if (k) qsort(v, k, sizeof *v, cmp_name);
    *names = v, *n = k;
    return 0;
}

int pvlm_rm_rf(const char *path, pvlm_err *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : pvlm_err_errno(err, "%s: stat failed", path);
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return pvlm_err_errno(err, "%s: cannot open directory", path);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[PATH_MAX];
            if (pvlm_path_join(sub, sizeof sub, path, e->d_name, err) != 0 || pvlm_rm_rf(sub, err)) {
                closedir(d);
                return -1;
            }
        }
        closedir(d);
        if (rmdir(path) != 0) return pvlm_err_errno(err, "%s: rmdir failed", path);
    } else if (unlink(path) != 0) {
        return pvlm_err_errno(err, "%s: unlink failed", path);
    }
    return 0;
}
