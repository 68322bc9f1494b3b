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
/* Large temporaries that a library mallocs and frees on every call (Open MPI's per-collective buffers,
 * oneDNN's per-call packing buffers) are served by glibc above its mmap threshold (dynamic, at most 32 MiB
 * on 64-bit) with fresh mappings, so every call faults in and zeroes their pages again. This raises the mmap
 * and trim thresholds so that they come from, and stay in, the heap: the process keeps up to its largest
 * temporary resident. Call once at start, before other threads (pvlm_comm_init does, before MPI_Init). */
void pvlm_mem_keep_heap(void);
/* Peak resident set size of this process in bytes (from getrusage). */
size_t pvlm_peak_rss(void);

#endif
