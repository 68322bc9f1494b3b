/* hash.h - 64-bit checksums (XXH3-64 from libxxhash) for every binary format.
 *
 * One-shot: pvlm_hash64. Streaming: pvlm_hasher (caller-owned; init, update,
 * digest). Checksums are written as 16 lowercase hex digits in JSON.
 */
#ifndef PVLM_HASH_H
#define PVLM_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

uint64_t pvlm_hash64(const void *data, size_t n);

typedef struct pvlm_hasher {
    void *state; /* XXH3_state_t*, owned */
} pvlm_hasher;

int pvlm_hasher_init(pvlm_hasher *h, pvlm_err *err);
void pvlm_hasher_update(pvlm_hasher *h, const void *data, size_t n);
uint64_t pvlm_hasher_digest(const pvlm_hasher *h);
void pvlm_hasher_free(pvlm_hasher *h);

/* Hash a whole file by streaming it; returns 0 or -1 with err naming the file. */
int pvlm_hash_file(const char *path, uint64_t *out, pvlm_err *err);
/* Format as 16 hex digits into buf (>= 17 bytes); parse back (0 ok, -1 bad). */
void pvlm_hash_hex(uint64_t h, char buf[17]);
int pvlm_hash_parse(const char *s, uint64_t *out);

#endif
