/* matmul.h - the model's one matrix-product entry point, dispatched on precision.
 *
 * C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, row-major, op = transpose when ta / tb.
 *   fp32: OpenBLAS cblas_sgemm, exactly as the ops called it before (bit-identical).
 *   bf16: A and B are rounded to bfloat16 (round to nearest even) into compact row-major scratch, the
 *         product runs in oneDNN's matmul primitive with bf16 inputs and fp32 accumulation and output
 *         (AVX512-BF16 or AMX at oneDNN's choice), a bias row (pvlm_matmul_gemm_bias) added by oneDNN after
 *         the accumulation. One primitive per (alpha, beta, bias or not) with run-time M, N, K,
 *         so varying batch shapes never build new kernels (measured on the bench shapes, oneDNN 2.6's
 *         run-time-shape gemm kernel is as fast as its fixed-shape brgemm one, docs/performance.md).
 *         Hints save roundings: a weight operand (PVLM_MM_B_WEIGHT) is rounded once per generation and
 *         its bf16 copy kept (the forward and input-gradient products of a step share it), and an A operand
 *         repeated from the previous call (PVLM_MM_A_AGAIN: dout in a linear layer's two backward
 *         products) reuses the copy already made. An activation the model keeps in bf16 (LayerNorm,
 *         attention and GELU outputs, which only products read: PVLM_MM_A_BF16 / PVLM_MM_B_BF16) is passed as it is
 *         stored, rounded once by its producer with pvlm_bf16_round_n instead of once per product; a product
 *         whose output only products read (the attention projections) writes it in bf16 (PVLM_MM_C_BF16).
 *         fp32 ignores the weight and repeat hints.
 *   bf16 emulated (a CPU or build without bf16 products, and PVLM_BF16_EMULATE=1 in the environment): the same
 *         operands, rounded by the same code, multiplied in fp32 (each term exact, as in VDPBF16PS): bf16's
 *         numerics to within the order of the fp32 accumulation, at fp32's speed or below. For checking bf16
 *         runs on any machine, and for testing the bf16 path where the CPU lacks it.
 * A later GPU backend is one more case here. Every linear layer's forward and backward (model/ops.h) goes
 * through pvlm_matmul_gemm, attention's per-head products through pvlm_matmul_small (docs/model.md).
 *
 * Owns: the oneDNN engine, stream, primitives, the bf16 scratch (grown on demand) and the bf16 copies of
 * weight matrices (one per distinct weight operand, freed with the context). Not thread-safe:
 * one pvlm_matmul per model, called from the thread that runs the model.
 */
#ifndef PVLM_MODEL_MATMUL_H
#define PVLM_MODEL_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "core/args.h"
#include "core/error.h"

typedef enum pvlm_precision { PVLM_PREC_FP32 = 0, PVLM_PREC_BF16 = 1 } pvlm_precision;

/* The --precision flag, one definition for every command that runs the model (dst: const char **). */
#define PVLM_PRECISION_OPT(dst)                                                                                     \
    {"precision", PVLM_ARG_CHOICE, (dst),                                                                           \
     "matrix products: fp32, or bf16 inputs with fp32 accumulation (weights, optimizer and checkpoints stay fp32; " \
     "needs a CPU with AVX512-BF16, or PVLM_BF16_EMULATE=1 for an emulation)",                                      \
     "fp32|bf16", 0, 0, 0}

/* "fp32" | "bf16" -> *p; anything else is an error naming the value. */
int pvlm_precision_parse(const char *s, pvlm_precision *p, pvlm_err *err);
const char *pvlm_precision_name(pvlm_precision p);

/* 1 when this build has oneDNN and this CPU has bf16 dot products (AVX512-BF16; oneDNN uses AMX too where
 * present) and the environment variable PVLM_HIDE_BF16 is unset or "0" (setting it simulates a CPU without them).
 * why (may be NULL) receives the reason when 0. */
int pvlm_bf16_available(char *why, size_t why_size);

typedef struct pvlm_matmul pvlm_matmul;

/* *out = a new context (caller frees with pvlm_matmul_free). bf16 without support fails with the reason and the
 * ways out, unless PVLM_BF16_EMULATE is set (and not "0"): then it is emulated. */
int pvlm_matmul_create(pvlm_matmul **out, pvlm_precision p, pvlm_err *err);
void pvlm_matmul_free(pvlm_matmul *mm);
/* mm may be NULL everywhere: NULL is fp32. */
pvlm_precision pvlm_matmul_precision(const pvlm_matmul *mm);
/* 1 when mm's bf16 is emulated (see above): its timings are not bf16's. */
int pvlm_matmul_emulated(const pvlm_matmul *mm);

void pvlm_matmul_gemm(pvlm_matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc);

/* Hints for pvlm_matmul_gemm_hint (bits); a wrong hint gives wrong bf16 products, so callers state them
 * only where they hold by construction. */
enum {
    PVLM_MM_B_WEIGHT = 1, /* B is a weight matrix, unchanged since the last pvlm_matmul_weights_changed */
    PVLM_MM_A_AGAIN = 2,  /* A is the same memory, shape and contents as the previous call's A (or X of a
                             pvlm_matmul_colsum just before) */
    PVLM_MM_A_BF16 = 4,   /* A holds bf16 values (uint16_t, from pvlm_bf16_round_n; lda in elements), not
                             floats: bf16 precision only */
    PVLM_MM_B_BF16 = 8,   /* the same for B */
    PVLM_MM_C_BF16 = 16   /* pvlm_matmul_gemm_bias only (pvlm_matmul_gemm_hint refuses it): C receives the result
                             rounded to bf16 (uint16_t, ldc in elements; the bits of pvlm_bf16_round_n of the fp32
                             result): bf16 precision only */
};
/* A and B are floats, or bf16 where the hints say so. */
void pvlm_matmul_gemm_hint(pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, float alpha,
                           const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc);
/* C[M,N] = op(A) @ op(B) + bias, bias [N] added to every row (C's previous contents are ignored; bias may be
 * NULL: beta = 0). fp32: the bias is copied into every row and the product accumulated onto it (beta = 1), the
 * linear op's steps before this entry point existed; bf16: oneDNN's bias argument adds it in fp32 after the
 * accumulation, which saves the copy pass and the slower accumulate-into-dst kernel. */
void pvlm_matmul_gemm_bias(pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, const void *A, int lda,
                           const void *B, int ldb, const float *bias, void *C, int ldc);
/* C[M,N] = alpha * op(A) @ op(B) + beta * C (beta 0: C is not read) for small strided operands, from many
 * threads at once (mm is only read): attention's per-head products, one (sample, head) per iteration of a
 * parallel loop. fp32: cblas_sgemm, the bits as before. bf16: the inputs rounded to bf16 as above, fp32
 * accumulation in pvlm's own AVX512-BF16 kernel (operands packed on the stack, no oneDNN call: its per-call
 * setup cost more than these products take; emulated: a plain loop); the order of the accumulation depends on
 * the shapes only. */
void pvlm_matmul_small(const pvlm_matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc);
/* The same with A and / or B in bf16 where hints say so (PVLM_MM_A_BF16, PVLM_MM_B_BF16; bf16 precision only):
 * the values the float form would have rounded them to give the same bits. */
void pvlm_matmul_small_hint(const pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, float alpha,
                            const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc);
/* db[j] += the sum over the rows of X [R, C] (leading dimension ld) of X[., j]: a linear layer's bias
 * gradient. Each column is summed in row order, so the bits do not depend on the thread count or the
 * precision. In bf16 the same pass rounds X into the kept A copy: a following product whose A is X (either
 * orientation) may pass PVLM_MM_A_AGAIN and skip its own rounding pass. */
void pvlm_matmul_colsum(pvlm_matmul *mm, float *db, const float *X, int R, int C, int ld);
/* A row transform for pvlm_matmul_colsum_map: y[0..n) from x[0..n) and the same columns of aux's row (y may be x). */
typedef void (*pvlm_mm_rowmap)(float *y, const float *x, const float *aux, size_t n);
/* pvlm_matmul_colsum of Y = map(X, aux) [R, C] (aux shaped as X, leading dimension ld), in the same one pass:
 * a transform whose output only this layer's backward reads (GELU's backward before fc1's) costs no pass of
 * its own. fp32: Y is written over X, where the products then read it. bf16: X is left as it was and only Y's
 * rounding is kept, so the products that follow must pass A = X with PVLM_MM_A_AGAIN (they read Y). */
void pvlm_matmul_colsum_map(pvlm_matmul *mm, float *db, float *X, const float *aux, pvlm_mm_rowmap map, int R, int C,
                            int ld);
/* The weights may have changed (an optimizer step, a load): the kept bf16 copies are stale. The model calls
 * it at the start of every forward pass (encode, forward, decode), so one step rounds each weight once. */
void pvlm_matmul_weights_changed(pvlm_matmul *mm);
/* Bytes held by the kept bf16 weight copies (0 in fp32). */
size_t pvlm_matmul_weight_bytes(const pvlm_matmul *mm);
/* A bf16 product can fail (out of memory, a oneDNN error): the first failure is kept in mm and every later
 * call is skipped. Returns -1 with that error (and clears it), 0 if none. */
int pvlm_matmul_check(pvlm_matmul *mm, pvlm_err *err);

/* Is OpenBLAS running a slower kernel set than this CPU supports because OPENBLAS_CORETYPE or
 * OPENBLAS_L2_SIZE is set (module systems and containers export them)? Compares the ISA level of
 * openblas_get_corename() with the CPU's (AVX < AVX2 < AVX-512 < AVX512-BF16 < AMX). Returns 1 and a
 * message naming the variables, the kernel in use and the one the CPU supports; 0 otherwise. */
int pvlm_blas_kernel_check(char *msg, size_t n);

/* The address of element i of x, which holds floats or (bf16) bf16 values: operands and activations that the
 * model keeps in either form. */
static inline const void *pvlm_matmul_elem(const void *x, int bf16, size_t i) {
    return (const char *)x + i * (bf16 ? sizeof(uint16_t) : sizeof(float));
}

/* dst[0..n) = x[0..n) rounded to bf16 exactly as the bf16 products round their fp32 inputs (the CPU's
 * conversion where bf16 runs; the software rounding below in a build or on a CPU without it, where no bf16
 * product can read the result). For producers of activations that the model keeps in bf16. */
void pvlm_bf16_round_n(uint16_t *dst, const float *x, size_t n);

/* Round-to-nearest-even fp32 -> bf16 -> fp32 (tests): the rounding the bf16 path applies to its inputs, except
 * that the path's hardware conversion turns fp32 denormals into zero, which the bf16 products read them as. */
float pvlm_bf16_round(float x);

#endif
