/* ops.h - the numeric ops of the model, forward and backward side by side (llm.c style).
 *
 * Every matrix product goes through the one entry point model/matmul.h (mm: fp32 OpenBLAS or bf16; NULL = fp32):
 * the linear layers' through pvlm_matmul_gemm, attention's per-head products through pvlm_matmul_small (one
 * (sample, head) per iteration of a parallel loop). The elementwise and reduction loops use OpenMP (independent
 * items handed out dynamically), and every reduction runs in a fixed order, so results are bit-identical for the
 * same inputs and thread count. Backward functions accumulate (+=) into parameter gradients and, unless noted,
 * into input gradients. Nothing here allocates: callers pass every buffer. Shapes are in the comments; rows are
 * row-major.
 */
#ifndef PVLM_MODEL_OPS_H
#define PVLM_MODEL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "model/matmul.h"

/* out[N,O] = in[N,In] @ W[O,In]^T + b[O]   (PyTorch Linear layout; b may be NULL). W is a weight: with a
 * bf16 mm its rounded copy is kept and reused until pvlm_matmul_weights_changed(mm) (model/matmul.h).
 * in holds floats, or (in_bf16, bf16 mm only) bf16 values as pvlm_bf16_round_n writes them; out likewise
 * (out_bf16: the fp32 result rounded, for an output that only products read). */
void pvlm_op_linear_fwd(pvlm_matmul *mm, void *out, int out_bf16, const void *in, int in_bf16, const float *W,
                        const float *b, int N, int In, int O);
/* din[N,In] (+)= dout @ W (din may be NULL; din_acc 0 overwrites), dW[O,In] += dout^T @ in,
 * db[O] += column sums of dout (db may be NULL). in as in the forward. */
void pvlm_op_linear_bwd(pvlm_matmul *mm, float *din, int din_acc, float *dW, float *db, const float *dout,
                        const void *in, int in_bf16, const float *W, int N, int In, int O);

/* The backward of gelu(linear(in)) from dgelu [N,O], the gradient of GELU's output (pre [N,O]: the linear's output,
 * GELU's input): pvlm_op_linear_bwd (din overwritten) with dout = gelu'(pre) * dgelu, which is computed in the
 * bias gradient's pass instead of a pass of its own. dgelu is overwritten with it in fp32; in bf16 dgelu is left
 * as it was and the products read the rounding of dout made in that pass. db NULL: no such pass, GELU's backward
 * takes its own and overwrites dgelu in either precision. */
void pvlm_op_linear_gelu_bwd(pvlm_matmul *mm, float *din, float *dW, float *db, float *dgelu, const float *pre,
                             const void *in, int in_bf16, const float *W, int N, int In, int O);

/* LayerNorm over the last dim C: out = (x-mean)*rstd*w + b; mean, rstd [N] saved for backward. out_bf16: out
 * receives the values rounded to bf16 (uint16_t, pvlm_bf16_round_n) instead of floats, for a model that keeps
 * this activation only as a bf16 product input. */
void pvlm_op_layernorm_fwd(void *out, int out_bf16, float *mean, float *rstd, const float *in, const float *w,
                           const float *b, int N, int C, float eps);
/* din[N,C] += ..., dw, db [C] += ... */
void pvlm_op_layernorm_bwd(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const float *mean, const float *rstd, int N, int C);

/* GELU, tanh approximation (Hendrycks & Gimpel 2016; PyTorch approximate="tanh"). n elements. */
/* out_bf16: rounded to bf16 as in pvlm_op_layernorm_fwd. */
void pvlm_op_gelu_fwd(void *out, int out_bf16, const float *in, size_t n);
/* din (+)= gelu'(in) * dout; acc 0 overwrites din. */
void pvlm_op_gelu_bwd(float *din, int acc, const float *in, const float *dout, size_t n);

/* Multi-head scaled dot-product attention on strided head slices.
 * q [B,Tq,(ldq)], k [B,Tk,(ldk)], v [B,Tk,(ldv)]: head h uses columns h*dh..h*dh+dh-1 of each row.
 * kmask [B,Tk] (1 = visible; NULL = all visible), causal: key j visible to query i only if j <= i.
 * att [B,H,Tq,Tk] receives the probabilities (masked entries exactly 0).
 * out [B,Tq,(ldo)] receives head h at columns h*dh.. (heads merged). Scale 1/sqrt(dh).
 * Forward only (decoding); training uses the ragged form below, whose backward the model needs. */
void pvlm_op_attention_fwd(const pvlm_matmul *mm, float *out, int ldo, float *att, const float *q, int ldq,
                           const float *k, int ldk, const float *v, int ldv, const uint8_t *kmask, int causal, int B,
                           int H, int Tq, int Tk, int dh);
/* Ragged ("packed") attention: sample b's queries are rows qoff[b] .. qoff[b]+qlen[b]-1 of q (row stride
 * ldq), its keys/values rows koff[b] .. koff[b]+klen[b]-1 of k/v; kmask (NULL = all visible) is indexed
 * like the key rows (kmask[koff[b] + j]); causal as above. att holds, from attoff[b], sample b's
 * [H, qlen, klen] probabilities. Used for the decoder, whose padded suffix positions are never computed.
 * out_bf16: out receives the outputs rounded to bf16 (as pvlm_op_layernorm_fwd's out_bf16). qkv_bf16 (bf16 mm
 * only): q, k and v hold bf16 values (strides in elements), as pvlm_op_linear_fwd's out_bf16 writes them; the
 * products read them as they would have rounded floats, so the results are the same bits. With a bf16 mm the
 * softmax takes the vectorised exp (as pvlm_op_softmax_ce_fwd's fast): the probabilities are rounded to bf16
 * for the product with v anyway. */
void pvlm_op_attention_ragged_fwd(const pvlm_matmul *mm, void *out, int out_bf16, int ldo, float *att, int qkv_bf16,
                                  const void *q, int ldq, const void *k, int ldk, const void *v, int ldv,
                                  const uint8_t *kmask, int causal, int B, int H, int dh, const int *qoff,
                                  const int *qlen, const int *koff, const int *klen, const size_t *attoff);
/* dq, dk, dv += ...; datt is scratch laid out like att; q, k, v (qkv_bf16) as in the forward. */
void pvlm_op_attention_ragged_bwd(const pvlm_matmul *mm, float *dq, float *dk, float *dv, float *datt,
                                  const float *dout, int ldo, const float *att, int qkv_bf16, const void *q, int ldq,
                                  const void *k, int ldk, const void *v, int ldv, int B, int H, int dh, const int *qoff,
                                  const int *qlen, const int *koff, const int *klen, const size_t *attoff);

/* out[n,:] = table[ids[n],:] + pos[pos_ids[n],:] (pos may be NULL), N rows of width C. */
void pvlm_op_embed_fwd(float *out, const int32_t *ids, const float *table, const int *pos_ids, const float *pos,
                       int N, int C);
/* dtable[ids[n]] += dout[n]; dpos[pos_ids[n]] += dout[n] (either may be NULL). Serial over n: a fixed
 * accumulation order for rows that share an id. */
void pvlm_op_embed_bwd(float *dtable, float *dpos, const int32_t *ids, const int *pos_ids, const float *dout, int N,
                       int C);

/* Softmax cross-entropy over V classes, in place: logits [N,V] become probabilities; loss[n] =
 * -log p[n, target[n]] (0 where target < 0). Log-sum-exp accumulated in double. fast (bf16 precision, where
 * the gradient is rounded to bf16): a vectorised exp and partial sums instead of glibc's expf in order. */
void pvlm_op_softmax_ce_fwd(float *probs, double *loss, const int32_t *targets, int N, int V, int fast);
/* In place: probs [N,V] become dlogits = (p - onehot(target)) * scale[n] (rows with target < 0: 0). */
void pvlm_op_softmax_ce_bwd(float *probs, const int32_t *targets, const float *scale, int N, int V);

/* Image normalisation (docs/model.md): x = (pixel/255 - 0.5)/0.5, uint8 HWC -> float NHWC [n,S,S,3]. */
void pvlm_op_image_norm(float *out, const uint8_t *img, size_t n_pixels_x3);
/* Patchify a float NHWC map in [B,H,W,C] into rows [B*(H/p)*(W/p), C*p*p]; patches in row-major order,
 * each flattened in (c, y, x) order (a PyTorch Conv2d weight [d,C,p,p] reshaped). */
void pvlm_op_patchify_fwd(float *out, const float *in, int B, int H, int W, int C, int p);
/* Inverse scatter: din[B,H,W,C] += dout rows (patchify is a permutation). */
void pvlm_op_patchify_bwd(float *din, const float *dout, int B, int H, int W, int C, int p);

/* im2col for a 3x3, stride-1, zero-pad-1 convolution on NHWC [B,H,W,C]: cols [B*H*W, C*9] in
 * (c, ky, kx) order, so a conv is linear(cols, weight [Cout, C*9]) as PyTorch's [Cout,C,3,3]. */
void pvlm_op_im2col3_fwd(float *cols, const float *in, int B, int H, int W, int C);
/* col2im: din[B,H,W,C] += the scattered dcols. */
void pvlm_op_im2col3_bwd(float *din, const float *dcols, int B, int H, int W, int C);

/* GroupNorm (Wu & He 2018) on NHWC [B,HW,C] with G groups of C/G channels: stats over HW*(C/G)
 * values per (b, g); mean, rstd [B,G] saved. w, b [C]. */
void pvlm_op_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *w,
                           const float *b, int B, int HW, int C, int G, float eps);
/* din += ..., dw, db += ... */
void pvlm_op_groupnorm_bwd(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const float *mean, const float *rstd, int B, int HW, int C, int G);

/* Fast elementwise helpers: y += x; y = a + b; x = 0 (over the threads, for buffers the backward accumulates
 * into). */
void pvlm_op_add_inplace(float *y, const float *x, size_t n);
void pvlm_op_add(float *y, const float *a, const float *b, size_t n);
void pvlm_op_zero(float *x, size_t n);

#endif
