/* ptblex.h - the lexer of the Stanford PTB tokenizer (CoreNLP 3.4.1, PTBLexer.flex) with the options
 * pycocoevalcap runs it with (PTB3 escaping, -preserveLines, so newlines end lines), reimplemented.
 *
 * The Java lexer is a JFlex scanner over UTF-16 code units: at each position it takes the longest
 * match over its rules (a rule "A/B" counts B in the length and returns only A, split at the last
 * point where A and B both match), the earlier rule on ties; the rule's action may normalise the text
 * (quotes, brackets, dashes, ellipses, currency, fractions, &amp;, soft hyphens, spaces -> U+00A0) or
 * push characters back. This module works on the same code units, so characters outside the Basic
 * Multilingual Plane behave as their two surrogates do in Java. Tokens are returned as they come out
 * of the action, not yet lower-cased (ptb.c does that as -lowerCase does).
 *
 * Nothing is kept between calls; the lexer allocates its scratch memory itself and frees it.
 */
#ifndef PVLM_SCORE_PTBLEX_H
#define PVLM_SCORE_PTBLEX_H

#include <stddef.h>
#include <stdint.h>

/* What the lexer learns while it runs: which rules fail as soon as they see a given first code unit.
 * One memo shared by the lines of an evaluation saves relearning that per line (it is correct for any
 * text). Owned by the caller; not for two threads at once. */
typedef struct pvlm_ptblex_memo pvlm_ptblex_memo;
pvlm_ptblex_memo *pvlm_ptblex_memo_new(void); /* NULL when out of memory */
void pvlm_ptblex_memo_free(pvlm_ptblex_memo *m);

/* Called once per token: u[0..n) are UTF-16 code units (valid until the callback returns).
 * Returns 0 to go on, non-zero to stop (out of memory). */
typedef int (*pvlm_ptblex_emit)(void *ctx, const uint16_t *u, size_t n);

/* Tokenize the line u[0..n) (UTF-16; the lexer sees it followed by a newline, then next[0..next_n),
 * the following line of the same tokenizer input, or the end of input when next is NULL: a few rules
 * look past the end of a line). Characters that end lines inside u (\r, \n, U+2028, U+2029, U+000B,
 * U+000C, U+0085) are treated as spaces. memo may be NULL (this line learns alone). Returns 0, -1 when
 * out of memory or emit stopped. */
int pvlm_ptblex_line(const uint16_t *u, size_t n, const uint16_t *next, size_t next_n, pvlm_ptblex_memo *memo,
                     pvlm_ptblex_emit emit, void *ctx);

#endif
