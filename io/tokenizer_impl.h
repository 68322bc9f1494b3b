/* tokenizer_impl.h - what io/tokenizer.c shares with io/bpe_train.c, and nobody else:
 * the string -> id map (keys copied into an arena), GPT-2's byte alphabet
 * and building a tokenizer from learned tables. Not part of the io/ interface.
 */
#ifndef PVLM_IO_TOKENIZER_IMPL_H
#define PVLM_IO_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h" /* pvlm_mix64 spreads pair keys over the tables */
#include "io/tokenizer.h"

/* string -> int32 (ids of token strings), keys copied into an arena; the map owns all of it
 * (pvlm_tok_strmap_free). */
typedef struct pvlm_tok_strmap {
    uint64_t *hash;
    int64_t *off; /* -1 = empty */
    int32_t *len, *val;
    size_t cap, n;
    char *arena;
    size_t arena_n, arena_cap;
} pvlm_tok_strmap;

int pvlm_tok_strmap_init(pvlm_tok_strmap *m, size_t expect); /* 0, -1 out of memory */
void pvlm_tok_strmap_free(pvlm_tok_strmap *m);
int32_t pvlm_tok_strmap_get(const pvlm_tok_strmap *m, const char *s, size_t n); /* -1 absent */
/* Insert s -> v unless present; returns the existing value, v if inserted, -2 on ENOMEM. */
int32_t pvlm_tok_strmap_put(pvlm_tok_strmap *m, const char *s, size_t n, int32_t v);

/* Merge rules (left, right) -> result as token ids, in priority order (the trainer's output, the
 * loaded merges file); the list owns its arrays (pvlm_tok_merges_free). */
typedef struct pvlm_tok_merges {
    int32_t *a, *b, *r;
    int32_t n, cap;
} pvlm_tok_merges;
int pvlm_tok_merges_push(pvlm_tok_merges *m, int32_t a, int32_t b, int32_t r); /* 0, -1 out of memory */
void pvlm_tok_merges_free(pvlm_tok_merges *m);

/* GPT-2's bytes_to_unicode: byte -> code point, and code point (< 324) -> byte or -1. */
void pvlm_tok_byte_alphabet(uint32_t cp_of_byte[256], int16_t byte_of_cp[324]);

/* A tokenizer (EXACT pairs; ids 0..2 the specials <pad> <bos> <eos>, 3 + b byte b) from
 * ntok token byte strings (tok_off[ntok + 1] offsets into tok_bytes) and nmerges merges
 * (ma[r], mb[r]) -> mr[r] in priority order. Tables are copied; *out is the caller's. */
int pvlm_tokenizer_from_merges(int32_t ntok, const int64_t *tok_off, const char *tok_bytes, size_t tok_bytes_n,
                               int32_t nmerges, const int32_t *ma, const int32_t *mb, const int32_t *mr,
                               pvlm_tokenizer **out, pvlm_err *err);

#endif
