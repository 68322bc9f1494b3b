/* mem.h - aligned allocation for numeric buffers.
 *
 * pvlm_alloc returns 64-byte aligned, zero-filled memory (cache line and
 * AVX-512 width) or NULL with err set; release it with pvlm_free. Size 0
 * returns a valid unique pointer. The caller owns what it gets.
 */
#ifndef PVLM_MEM_H
#define PVLM_MEM_H

#include <stddef.h>

#include "error.h"

#define PVLM_ALIGN 64

void *pvlm_alloc(size_t bytes, pvlm_err *err);
void pvlm_free(void *p);
/* Peak resident set size of this process in bytes (from getrusage). */
size_t pvlm_peak_rss(void);

#endif
