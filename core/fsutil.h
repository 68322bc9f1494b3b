/* fsutil.h - file helpers that make writes durable and reads checked.
 *
 * Durable write = write to "<path>.tmp.<pid>", fsync, rename over path, fsync
 * the directory, so a crash leaves either the old file or the new one, never
 * a half one. Reads return malloc'd buffers the caller frees.
 */
#ifndef PVLM_FSUTIL_H
#define PVLM_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

int pvlm_mkdir_p(const char *path, pvlm_err *err);
int pvlm_fsync_dir(const char *dir, pvlm_err *err);
/* fsync an open FILE (fflush + fsync); error names path. */
int pvlm_fsync_file(FILE *f, const char *path, pvlm_err *err);
int pvlm_write_file_atomic(const char *path, const void *data, size_t n, pvlm_err *err);
/* The same protocol around a caller's own writes: pvlm_durable_open creates "<path>.tmp.<pid>" (its
 * name into tmp, cap bytes) for binary writing; pvlm_durable_commit fsyncs and closes f, renames tmp
 * over path and fsyncs the directory, and on any failure closes f and removes tmp; pvlm_durable_abort
 * closes f and removes tmp (after a failed write). commit and abort always consume f. */
FILE *pvlm_durable_open(const char *path, char *tmp, size_t cap, pvlm_err *err);
int pvlm_durable_commit(FILE *f, const char *tmp, const char *path, pvlm_err *err);
void pvlm_durable_abort(FILE *f, const char *tmp);
/* Whole file into *out (NUL-terminated, caller frees), size in *n. A directory, FIFO or
 * device is an error (PVLM_EINVAL, "not a regular file") before anything is read. */
int pvlm_read_file(const char *path, char **out, size_t *n, pvlm_err *err);
/* All n bytes of fd at offset off into dst, retrying interrupted and short reads. A read error
 * (PVLM_EIO) or the end of the file first (PVLM_EFORMAT, "file truncated?") names path and the offset. */
int pvlm_pread_full(int fd, void *dst, size_t n, uint64_t off, const char *path, pvlm_err *err);
int pvlm_file_exists(const char *path);
int pvlm_is_dir(const char *path);
/* The names in directory dir for which keep(name) holds (all when keep is NULL), hidden ones (a leading
 * '.': ".", ".." and editors' or other systems' droppings such as "._x.jpg") left out, sorted by strcmp,
 * since readdir's order is not stable: *names gets a malloc'd array of *n malloc'd strings, freed with
 * pvlm_dir_names_free. A directory that cannot be read (PVLM_EIO) or memory running short (PVLM_ENOMEM)
 * fails naming dir, and then nothing is returned. */
int pvlm_dir_names(const char *dir, int (*keep)(const char *name), char ***names, size_t *n, pvlm_err *err);
void pvlm_dir_names_free(char **names, size_t n);
/* Recursively remove a directory tree (used for pruning old checkpoints). */
int pvlm_rm_rf(const char *path, pvlm_err *err);
/* "a/b" into buf (cap bytes; just b when a is empty). Fails with PVLM_EINVAL naming both parts when the
 * result does not fit, instead of truncating the path silently. */
int pvlm_path_join(char *buf, size_t cap, const char *a, const char *b, pvlm_err *err);
/* Directory part of path into buf ("." when there is none). */
void pvlm_dirname(const char *path, char *buf, size_t cap);

#endif
