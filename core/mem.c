/* mem.c - see mem.h. */
#include "mem.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void *pvlm_alloc(size_t bytes, pvlm_err *err) {
    size_t n = (bytes + PVLM_ALIGN - 1) / PVLM_ALIGN * PVLM_ALIGN;
    if (n == 0) n = PVLM_ALIGN;
    void *p = aligned_alloc(PVLM_ALIGN, n);
    if (!p) {
        pvlm_err_set(err, PVLM_ENOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, n);
    return p;
}

void pvlm_free(void *p) { free(p); }

void pvlm_mem_keep_heap(void) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

size_t pvlm_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024u; /* Linux reports KiB */
}
