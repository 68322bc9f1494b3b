/* bpe_train.h - learn a byte-level BPE vocabulary (GPT-2 format) from text.
 *
 * What it owns: a pvlm_bpe_trainer holds the word counts and, after the run, the learned
 * tokens and merges; pvlm_bpe_trainer_free releases it. The result is written as the
 * encoder.json + vocab.bpe pair io/tokenizer.h loads, or built in memory as a tokenizer.
 *
 * Byte-level BPE on pre-tokenized word counts: add text with pvlm_bpe_trainer_add (any
 * number of calls; pieces never span calls), then pvlm_bpe_trainer_run learns merges until
 * the vocabulary (3 specials + 256 bytes + merged tokens) has vocab_size entries or no pair
 * occurs min_frequency times. Each step merges the most frequent adjacent pair (counted
 * over all words, weighted by word count); ties go to the smaller left token id, then the
 * smaller right token id (byte b has id 3 + b, merged tokens get ids in creation order), so
 * the result is deterministic. A pair whose merged string would equal a special token's
 * name is never merged (encoder.json keys must be unique).
 */
#ifndef PVLM_IO_BPE_TRAIN_H
#define PVLM_IO_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/tokenizer.h"

typedef struct pvlm_bpe_trainer pvlm_bpe_trainer;

typedef struct pvlm_bpe_train_stats {
    int64_t bytes;        /* text bytes added */
    int64_t words;        /* pre-tokenized pieces added */
    int64_t unique_words; /* distinct pieces */
    int32_t merges;       /* merges learned */
    int32_t vocab_size;   /* resulting vocabulary size */
    double seconds;       /* time spent in pvlm_bpe_trainer_run */
} pvlm_bpe_train_stats;

pvlm_bpe_trainer *pvlm_bpe_trainer_new(pvlm_err *err);
void pvlm_bpe_trainer_free(pvlm_bpe_trainer *tr);
int pvlm_bpe_trainer_add(pvlm_bpe_trainer *tr, const char *text, size_t len, pvlm_err *err);
/* vocab_size >= 259; min_frequency >= 1. Can be called once. */
int pvlm_bpe_trainer_run(pvlm_bpe_trainer *tr, int32_t vocab_size, int64_t min_frequency, pvlm_err *err);
/* Write DIR/encoder.json and DIR/vocab.bpe (durably; DIR is created). */
int pvlm_bpe_trainer_save(const pvlm_bpe_trainer *tr, const char *dir, pvlm_err *err);
void pvlm_bpe_trainer_stats(const pvlm_bpe_trainer *tr, pvlm_bpe_train_stats *st);
/* The trained vocabulary as a tokenizer, built in memory (EXACT pairs); the same as saving
 * and loading the files (tested). *out is the caller's (pvlm_tokenizer_free). */
int pvlm_bpe_trainer_tokenizer(const pvlm_bpe_trainer *tr, pvlm_tokenizer **out, pvlm_err *err);

#endif
