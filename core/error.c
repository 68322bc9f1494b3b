/* error.c - see error.h. */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int pvlm_err_set(pvlm_err *err, int code, const char *fmt, ...) {
    if (!err) return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int pvlm_err_errno(pvlm_err *err, const char *fmt, ...) {
    int saved = errno;
    if (!err) return -1;
    err->code = PVLM_EIO;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(saved));
    return -1;
}

int pvlm_err_prefix(pvlm_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char head[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    /* One rule for the separator: the context is written without one ("dp step 3") and this adds
     * ": "; a context that ends with its own ":" or spaces anyway is trimmed first, so a message
     * never reads "dp step 3: : boom". An empty context adds nothing. */
    size_t n = strlen(head);
    while (n && (head[n - 1] == ' ' || head[n - 1] == ':')) head[--n] = '\0';
    if (!n) return -1;
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
    return -1;
}

void pvlm_err_clear(pvlm_err *err) {
    if (!err) return;
    err->code = PVLM_OK;
    err->msg[0] = '\0';
}

const char *pvlm_err_name(int code) {
    switch (code) {
    case PVLM_OK: return "ok";
    case PVLM_EINVAL: return "invalid";
    case PVLM_EIO: return "io";
    case PVLM_EFORMAT: return "format";
    case PVLM_ENOMEM: return "nomem";
    case PVLM_ENET: return "net";
    case PVLM_EMPI: return "mpi";
    case PVLM_ESTOP: return "stopped";
    case PVLM_ENOTFOUND: return "notfound";
    default: return "unknown";
    }
}
