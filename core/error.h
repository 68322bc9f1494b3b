/* error.h - error values for library code.
 *
 * Library functions never exit or abort: they return 0 on success and -1 on
 * failure, after filling a caller-owned pvlm_err with a code and a message
 * that names the file, record or flag and the reason. The caller owns the
 * struct (usually on its stack); nothing here allocates. A NULL err is
 * allowed everywhere and simply drops the message.
 */
#ifndef PVLM_ERROR_H
#define PVLM_ERROR_H

#include <stddef.h>

enum {
    PVLM_OK = 0,
    PVLM_EINVAL,  /* bad argument or configuration */
    PVLM_EIO,     /* read/write/open failed (errno text in the message) */
    PVLM_EFORMAT, /* a file or record is malformed, truncated or inconsistent */
    PVLM_ENOMEM,  /* allocation failed */
    PVLM_ENET,    /* network / transfer failure */
    PVLM_EMPI,    /* an MPI call failed or ranks disagree */
    PVLM_ESTOP,   /* stopped on request (signal) */
    PVLM_ENOTFOUND,
};

typedef struct pvlm_err {
    int code;
    char msg[1024];
} pvlm_err;

/* Set err (if non-NULL) and return -1, so callers can `return pvlm_err_set(...)`. */
int pvlm_err_set(pvlm_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like pvlm_err_set, with ": <strerror(errno)>" appended; code PVLM_EIO. */
int pvlm_err_errno(pvlm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepend context to an existing message, separated by ": " (write the context without a trailing
 * separator: pvlm_err_prefix(err, "reading shard %d", 3) gives "reading shard 3: <msg>"; a trailing
 * ':' or space is trimmed, so the separator is never doubled). Returns -1. */
int pvlm_err_prefix(pvlm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pvlm_err_clear(pvlm_err *err);
/* Name of an error code, e.g. "format". */
const char *pvlm_err_name(int code);

#endif
