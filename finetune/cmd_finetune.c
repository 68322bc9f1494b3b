/* cmd_finetune.c - `pvlm finetune`: full finetuning and prompt tuning (CoOp, VPT, CPT).
 *
 * Methods, adapted to the generative PrefixLM model (docs/finetune.md):
 *   full  - all parameters, or a group (decoder only, top-k layers of each stack);
 *   coop  - M learned context vectors replace the hand-written prompt's embeddings (model n_ctx);
 *           unified or class-specific; initialised N(0, 0.02) or from a phrase's token embeddings;
 *   vpt   - p learned visual prompt tokens between image and text tokens, shallow or deep, initialised
 *           uniform(-v, v) with v = sqrt(6 / (3 P^2 + d)) (VPT arXiv 2203.12119, section 3.2), plus
 *           optionally the decoder's final LayerNorm as the head;
 *   cpt   - colour-block prompts for grounding: zero-shot, or few-shot prompt-based finetuning of the
 *           colour word (the trained parameters are the --groups selection);
 *   probe - the linear-probe baseline: logistic regression on the frozen encoder's mean image-token
 *           output (finetune/probe.h), its L2 weight from --weight-decay.
 * Classification and grounding use the few-shot protocol: for every K in --shots and every seed, a
 * K-shot training subset is drawn, the trainable tensors are reset, trained for --steps and scored on
 * the test split; mean +- std over seeds is reported beside the zero-shot score. The base model stays
 * frozen (checked bit for bit after every run) and each run's trained tensors are saved as a finetune
 * checkpoint holding only those tensors plus the base's path and hash.
 * Training runs on mpi/dp.h, the same data-parallel step as pretraining.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/args.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "finetune/ftckpt.h"
#include "finetune/fttask.h"
#include "finetune/paint.h"
#include "finetune/probe.h"
#include "finetune/regionft.h"
#include "model/checkpoint.h"
#include "model/decode.h"
#include "model/load.h"
#include "mpi/comm.h"
#include "mpi/dp.h"

int pvlm_cmd_finetune(int argc, char **argv);

typedef struct ft_opts {
    const char *base, *tokdir, *task, *data, *annotations, *images, *method, *out, *prompt, *target_template;
    const char *class_position, *ctx_init, *ctx_phrase, *groups, *cpt_mode, *query_suffix, *shots, *schedule;
    const char *precision, *recompute;
    int n_ctx, class_specific, n_prompt, deep, train_head, top_k, steps, batch, seeds, threads, length_norm;
    int zero_shot_only, eval_batch, val_every, warmup;
    int64_t seed;
    double lr, weight_decay, grad_clip;
} ft_opts;

/* ---- trainable selection and prompt initialisation ---- */

static int starts_with(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* Layer index of "enc.3.xxx" / "dec.3.xxx", or -1. */
static int layer_of(const char *name, const char *stack) {
    size_t n = strlen(stack);
    if (strncmp(name, stack, n) || name[n] != '.' || name[n + 1] < '0' || name[n + 1] > '9') return -1;
    return atoi(name + n + 1);
}

static void select_trainable(const pvlm_model *m, const ft_opts *o, uint8_t *tr) {
    const pvlm_model_config *c = &m->cfg;
    for (int i = 0; i < m->n_views; i++) {
        const char *n = m->views[i].name;
        int t = 0;
        if (!strcmp(o->method, "probe")) t = 0; /* the probe's weights live outside the model */
        else if (!strcmp(o->method, "coop")) t = !strcmp(n, "coop.ctx");
        else if (!strcmp(o->method, "vpt")) t = !strcmp(n, "vpt.prompts") || (o->train_head && starts_with(n, "dec.ln_f."));
        else if (!strcmp(o->method, "regionft")) t = !starts_with(n, "dec.") && strcmp(n, "dec_pos"); /* what the encoder reads */
        else if (!strcmp(o->groups, "all")) t = 1;
        else if (!strcmp(o->groups, "decoder")) t = starts_with(n, "dec.");
        else { /* top-k: the last k layers of each stack plus the final LayerNorms */
            int le = layer_of(n, "enc"), ld = layer_of(n, "dec");
            t = (le >= 0 && le >= c->n_enc_layers - o->top_k) || (ld >= 0 && ld >= c->n_dec_layers - o->top_k) ||
                starts_with(n, "enc.ln_f.") || starts_with(n, "dec.ln_f.");
        }
        tr[i] = (uint8_t)t;
    }
}

static int init_prompts(pvlm_model *m, const ft_opts *o, const pvlm_tokenizer *tok, uint64_t seed, pvlm_err *err) {
    pvlm_rng rng;
    pvlm_rng_seed(&rng, seed, 0x9e7);
    const pvlm_model_config *c = &m->cfg;
    const pvlm_view *v = pvlm_model_view(m, "vpt.prompts");
    if (v) {
        double a = sqrt(6.0 / (3.0 * c->patch_size * c->patch_size + c->d_model));
        for (size_t i = 0; i < v->numel; i++) m->params[v->offset + i] = (float)((2 * pvlm_rng_uniform(&rng) - 1) * a);
    }
    v = pvlm_model_view(m, "coop.ctx");
    if (v) {
        for (size_t i = 0; i < v->numel; i++) m->params[v->offset + i] = (float)(0.02 * pvlm_rng_normal(&rng));
        if (!strcmp(o->ctx_init, "phrase")) {
            int32_t ids[64];
            int64_t n = pvlm_tokenizer_encode(tok, NULL, o->ctx_phrase, strlen(o->ctx_phrase), ids, 64, err);
            if (n < 0) return -1;
            const pvlm_view *te = pvlm_model_view(m, "tok_embed");
            int d = c->d_model, nn = (int)(n < c->n_ctx ? n : c->n_ctx);
            /* the phrase fills the first context slots of every set (CoOp section 3.2, "a photo of a") */
            for (int s = 0; s < c->n_ctx_sets; s++)
                for (int j = 0; j < nn; j++)
                    memcpy(m->params + v->offset + ((size_t)s * c->n_ctx + j) * d, m->params + te->offset + (size_t)ids[j] * d,
                           sizeof(float) * (size_t)d);
        }
    }
    return 0;
}

/* ---- evaluation ---- */

typedef struct eval_ctx {
    const pvlm_comm *comm;
    const pvlm_ft_data *d;
    const pvlm_ft_rowspec *rs;
    int eval_batch, length_norm;
} eval_ctx;

/* Accuracy (groups) or mean token CE (LM tasks) on the test split, over all ranks. */
static int evaluate(const eval_ctx *e, pvlm_model *m, double *score, pvlm_err *err) {
    const pvlm_ft_data *d = e->d;
    int n = d->n_test, rank = e->comm->rank, world = e->comm->size;
    int lo = (int)((int64_t)n * rank / world), hi = (int)((int64_t)n * (rank + 1) / world);
    int lm = d->task == PVLM_FT_CAPTION || d->task == PVLM_FT_VQA;
    int per = pvlm_ft_max_group_rows(d);
    int B = e->eval_batch * per;
    pvlm_batch b;
    if (pvlm_batch_alloc(&b, B, d->S, m->cfg.max_prefix_len, m->cfg.max_suffix_len, err)) return -1;
    double *logp = malloc((size_t)B * sizeof *logp);
    int32_t *ntok = malloc((size_t)B * sizeof *ntok);
    int *row0 = malloc((size_t)(e->eval_batch + 1) * sizeof *row0);
    double acc[2] = {0, 0}; /* correct or CE sum, count */
    int rc = logp && ntok && row0 ? 0 : pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    for (int i = lo; i < hi && rc == 0; i += e->eval_batch) {
        int ng = hi - i < e->eval_batch ? hi - i : e->eval_batch, r = 0;
        b.B = B;
        pvlm_batch_clear(&b, m->cfg.pad_id);
        for (int g = 0; g < ng && rc == 0; g++) {
            row0[g] = r;
            int k = pvlm_ft_fill_group(d, &d->test[i + g], e->rs, &b, r, err);
            if (k < 0) rc = -1;
            else r += k;
        }
        row0[ng] = r;
        b.B = r;
        if (rc == 0) rc = pvlm_model_score(m, &b, logp, ntok, err);
        for (int g = 0; g < ng && rc == 0; g++) {
            const pvlm_ft_item *it = &d->test[i + g];
            if (lm) {
                acc[0] += -logp[row0[g]], acc[1] += ntok[row0[g]];
                continue;
            }
            int best = pvlm_ft_argmax(logp + row0[g], ntok + row0[g], row0[g + 1] - row0[g], e->length_norm);
            int ok = d->task == PVLM_FT_CLASSIFY ? best == it->label
                                                 : pvlm_cpt_iou(it->boxes[best], it->boxes[it->label]) > 0.5;
            acc[0] += ok, acc[1] += 1;
        }
    }
    b.B = B;
    free(logp), free(ntok), free(row0);
    pvlm_batch_free(&b);
    int any = rc != 0;
    if (pvlm_comm_or(e->comm, rc != 0, &any, err)) return -1;
    if (any) return rc ? -1 : pvlm_err_set(err, PVLM_EMPI, "evaluation failed on another rank");
    if (pvlm_comm_sum_f64(e->comm, acc, 2, err)) return -1;
    *score = acc[1] > 0 ? acc[0] / acc[1] : NAN;
    return 0;
}

/* ---- one training run ---- */

typedef struct run_ctx {
    const pvlm_comm *comm;
    const pvlm_ft_data *d;
    const pvlm_ft_rowspec *rs;
    const ft_opts *o;
    const uint8_t *trainable;
} run_ctx;

static void optim_config(const ft_opts *o, pvlm_optim_config *oc) {
    pvlm_optim_config_default(oc);
    oc->lr = o->lr, oc->weight_decay = o->weight_decay, oc->grad_clip = o->grad_clip;
    oc->warmup_steps = o->warmup, oc->total_steps = o->steps;
    snprintf(oc->schedule, sizeof oc->schedule, "%s", o->schedule);
}

/* Train m on the subset idx[0..n) of the training items; returns 0 or -1. */
static int train(const run_ctx *rc_, pvlm_model *m, const int *idx, int n, uint64_t seed, double *last_loss,
                 pvlm_err *err) {
    const pvlm_ft_data *d = rc_->d;
    const ft_opts *o = rc_->o;
    int world = rc_->comm->size, rank = rc_->comm->rank;
    int lm = d->task == PVLM_FT_CAPTION || d->task == PVLM_FT_VQA;
    int per = pvlm_ft_max_group_rows(d);
    int G = o->batch, Gglob = G * world;
    pvlm_optim_config oc;
    optim_config(o, &oc);
    pvlm_dp_config dc;
    pvlm_dp_config_default(&dc);
    pvlm_dp dp;
    if (pvlm_dp_init(&dp, rc_->comm, m, &oc, &dc, rc_->trainable, err)) return -1;
    pvlm_ft_objective obj = {0};
    int *row0 = malloc((size_t)(G + 1) * sizeof *row0), *label = malloc((size_t)G * sizeof *label);
    int *order = malloc((size_t)n * sizeof *order);
    pvlm_batch b;
    int rc = pvlm_batch_alloc(&b, G * per, d->S, m->cfg.max_prefix_len, m->cfg.max_suffix_len, err);
    if (rc == 0 && (!row0 || !label || !order)) rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    if (!lm) {
        obj.group_row0 = row0, obj.label = label, obj.length_norm = o->length_norm, obj.groups_global = Gglob;
        pvlm_dp_set_objective(&dp, pvlm_ft_objective_fn, &obj);
    }
    /* The global batch of step t is positions [t*Gglob, (t+1)*Gglob) of an endless sequence of
     * seeded permutations of the subset; rank r takes its G consecutive positions. */
    pvlm_rng rng;
    pvlm_rng_seed(&rng, seed, 0xf1e);
    int64_t pos = 0, epoch_pos = n;
    for (int i = 0; i < n; i++) order[i] = idx[i];
    for (int step = 0; step < o->steps && rc == 0; step++) {
        int r = 0;
        b.B = G * per;
        pvlm_batch_clear(&b, m->cfg.pad_id);
        for (int gg = 0; gg < Gglob && rc == 0; gg++, pos++) {
            if (epoch_pos == n) { /* reshuffle at every epoch start */
                pvlm_rng_shuffle(&rng, order, (size_t)n, sizeof *order);
                epoch_pos = 0;
            }
            int item = order[epoch_pos++];
            if (gg / G != rank) continue;
            int g = gg % G;
            row0[g] = r;
            label[g] = d->train[item].label;
            int k = pvlm_ft_fill_group(d, &d->train[item], rc_->rs, &b, r, err);
            if (k < 0) rc = -1;
            else r += k;
        }
        row0[G] = r;
        obj.n_groups = G;
        b.B = r;
        pvlm_batch *mb = &b;
        pvlm_dp_result res;
        if (rc == 0) rc = pvlm_dp_step(&dp, &mb, 1, pvlm_comm_stop_local(), &res, err);
        if (rc == 0) {
            *last_loss = res.loss;
            if (rank == 0 && (step % 10 == 0 || step == o->steps - 1))
                pvlm_info("  step %d/%d loss %.4f lr %.2e grad-norm %.3f", step + 1, o->steps, res.loss, res.lr, res.grad_norm);
            if (res.stop) rc = pvlm_err_set(err, PVLM_ESTOP, "stopped by a signal at step %d", step + 1);
        }
    }
    b.B = G * per;
    pvlm_batch_free(&b);
    free(row0), free(label), free(order);
    pvlm_dp_free(&dp);
    return rc;
}

/* K-shot subset: K per class (classification) or K items (other tasks), drawn with seed. */
static int draw_shots(const pvlm_ft_data *d, int K, uint64_t seed, int *idx) {
    pvlm_rng rng;
    pvlm_rng_seed(&rng, seed, 0x5407);
    int n = d->n_train, *perm = malloc((size_t)n * sizeof *perm), m = 0;
    if (!perm) return -1;
    for (int i = 0; i < n; i++) perm[i] = i;
    pvlm_rng_shuffle(&rng, perm, (size_t)n, sizeof *perm);
    if (K <= 0) {
        memcpy(idx, perm, (size_t)n * sizeof *idx);
        m = n;
    } else if (d->task == PVLM_FT_CLASSIFY) {
        int *taken = calloc((size_t)d->n_classes, sizeof *taken);
        for (int i = 0; taken && i < n; i++)
            if (taken[d->train[perm[i]].label] < K) taken[d->train[perm[i]].label]++, idx[m++] = perm[i];
        free(taken);
    } else {
        for (int i = 0; i < n && m < K; i++) idx[m++] = perm[i];
    }
    free(perm);
    return m;
}

static double mean_of(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : NAN;
}

/* Sample standard deviation (n - 1 in the denominator; 0 for a single seed). */
static double std_of(const double *v, int n) {
    if (n < 2) return 0.0;
    double mu = mean_of(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - mu) * (v[i] - mu);
    return sqrt(s / (n - 1));
}

static int parse_shots(const char *s, int *out, int cap) {
    int n = 0;
    const char *p = s;
    while (*p && n < cap) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 1000000) return -1;
        out[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

/* ---- the linear probe (finetune/probe.h): features once, then one fit per K and seed ---- */

/* Fit on the K-shot subset idx[0..n) and score the test split; W [K, dim], b [K] receive the probe. */
static int probe_run(const pvlm_ft_data *d, const float *feat, int dim, const int *idx, int n, double l2, float *W,
                     float *b, double *acc, pvlm_err *err) {
    float *X = malloc(sizeof(float) * (size_t)n * dim);
    int *y = malloc(sizeof(int) * (size_t)n);
    int rc = X && y ? 0 : pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    for (int i = 0; i < n && rc == 0; i++) {
        memcpy(X + (size_t)i * dim, feat + (size_t)d->train[idx[i]].image * dim, sizeof(float) * (size_t)dim);
        y[i] = d->train[idx[i]].label;
    }
    if (rc == 0) rc = pvlm_probe_fit(X, y, n, dim, d->n_classes, l2, PVLM_PROBE_ITERS, W, b, err);
    int ok = 0;
    for (int i = 0; i < d->n_test && rc == 0; i++)
        ok += pvlm_probe_predict(W, b, dim, d->n_classes, feat + (size_t)d->test[i].image * dim) == d->test[i].label;
    *acc = d->n_test ? (double)ok / d->n_test : NAN;
    free(X), free(y);
    return rc;
}

/* ---- the command ---- */

typedef struct ft_state { /* what one invocation loads and owns (ft_free) */
    pvlm_comm comm;
    int task, lm, probe, regionft;
    char base_path[4096];
    uint64_t base_hash;
    pvlm_model_config cfg;
    pvlm_tokenizer *tok;
    pvlm_model base, m;
    pvlm_ft_data d;
    uint8_t *trainable;
    int64_t n_trained; /* parameters the method trains (report.json "trained_params") */
    float *init0, *feat, *probe_w, *probe_b, *head;
    pvlm_ft_rowspec rs, rs0; /* rows of the tuned model; zero-shot: the base model with the hand-written prompt */
    json_t *runs;
    int frozen_ok;
} ft_state;

static void ft_free(ft_state *s) {
    json_decref(s->runs);
    free(s->trainable), free(s->init0), free(s->feat), free(s->probe_w), free(s->probe_b), free(s->head);
    pvlm_ft_data_free(&s->d);
    pvlm_model_free(&s->m), pvlm_model_free(&s->base);
    pvlm_tokenizer_free(s->tok);
}

/* Flag combinations and defaults that depend on other flags; 0, or 2 (usage error, printed). */
static int check_opts(ft_opts *o, int *task, int *shots, int *nshots) {
    *task = !strcmp(o->task, "classify") ? PVLM_FT_CLASSIFY : !strcmp(o->task, "ground") ? PVLM_FT_GROUND
          : !strcmp(o->task, "caption") ? PVLM_FT_CAPTION : PVLM_FT_VQA;
    int lm = *task == PVLM_FT_CAPTION || *task == PVLM_FT_VQA;
    if ((*task == PVLM_FT_GROUND) != (!strcmp(o->method, "cpt") || !strcmp(o->method, "regionft"))) {
        fprintf(stderr, "pvlm finetune: --method cpt and regionft go with --task ground (and only they)\n");
        return 2;
    }
    if (!strcmp(o->method, "probe") && *task != PVLM_FT_CLASSIFY) {
        fprintf(stderr, "pvlm finetune: --method probe goes with --task classify\n");
        return 2;
    }
    if (lm && strcmp(o->method, "full") && strcmp(o->method, "vpt")) {
        fprintf(stderr, "pvlm finetune: --task %s trains with --method full or vpt\n", o->task);
        return 2;
    }
    *nshots = parse_shots(o->shots, shots, 32);
    if (*nshots <= 0) {
        fprintf(stderr, "pvlm finetune: --shots must be a comma-separated list of integers >= 0\n");
        return 2;
    }
    if (lm) shots[0] = 0, *nshots = 1;
    if (!o->prompt) o->prompt = !strcmp(o->method, "coop") ? "" : *task == PVLM_FT_CAPTION ? "a picture of" : "a picture of a";
    if (!o->target_template) o->target_template = !strcmp(o->class_position, "middle") ? "{class} shape in the picture" : "{class}";
    return 0;
}

/* The base, its tokenizer, the data, the model being tuned (the base config plus the method's prompt
 * tensors) with its trainable selection, and the method's own buffers. */
static int ft_load(ft_state *s, const ft_opts *o, pvlm_err *err) {
    int rc = pvlm_load_resolve_ckpt(o->base, s->base_path, sizeof s->base_path, err);
    if (rc == 0) rc = pvlm_load_tokenizer(s->base_path, o->tokdir, &s->cfg, &s->tok, err);
    if (rc == 0) rc = pvlm_hash_file(s->base_path, &s->base_hash, err);
    if (rc == 0) rc = pvlm_model_load(&s->base, s->base_path, err);
    if (rc == 0) rc = pvlm_mkdir_p(o->out, err);
    if (rc == 0) rc = pvlm_ft_data_load(&s->d, s->task, o->data, o->annotations, o->images, s->cfg.image_size, o->prompt, o->val_every, err);
    pvlm_model_config ec = s->cfg;
    if (!strcmp(o->method, "coop")) ec.n_ctx = o->n_ctx, ec.n_ctx_sets = o->class_specific ? s->d.n_classes : 1;
    if (!strcmp(o->method, "vpt")) ec.n_vpt = o->n_prompt, ec.vpt_deep = o->deep;
    if (rc == 0) rc = pvlm_model_create(&s->m, &ec, err);
    if (rc == 0) rc = pvlm_model_set_precision_name(&s->m, o->precision, err);
    if (rc == 0) rc = pvlm_model_set_recompute(&s->m, o->recompute, err);
    if (rc == 0) rc = pvlm_model_load_params(&s->m, s->base_path, PVLM_LOAD_ALLOW_MISSING, NULL, err);
    if (rc) return rc;
    pvlm_model *m = &s->m;
    int dim = s->cfg.d_model;
    s->trainable = calloc((size_t)m->n_views, 1);
    s->init0 = malloc(m->n_params * sizeof *s->init0);
    s->head = malloc(sizeof(float) * (size_t)dim);
    if (!s->trainable || !s->init0 || !s->head) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    select_trainable(m, o, s->trainable);
    memcpy(s->init0, m->params, m->n_params * sizeof *s->init0);
    for (int v = 0; v < m->n_views; v++) s->n_trained += s->trainable[v] ? (int64_t)m->views[v].numel : 0;
    if (s->regionft) s->n_trained += dim; /* the head */
    if (s->probe && !o->zero_shot_only) { /* every rank computes the same features and fits */
        s->n_trained = (int64_t)s->d.n_classes * (dim + 1);
        s->feat = malloc(sizeof(float) * (size_t)s->d.n_images * dim);
        s->probe_w = malloc(sizeof(float) * (size_t)s->d.n_classes * dim);
        s->probe_b = malloc(sizeof(float) * (size_t)s->d.n_classes);
        rc = s->feat && s->probe_w && s->probe_b ? pvlm_probe_features(&s->base, &s->d, 32, s->feat, err)
                                                 : pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    }
    s->rs = (pvlm_ft_rowspec){s->tok, &m->cfg, o->prompt, o->query_suffix, o->class_specific, o->target_template,
                              strcmp(o->cpt_mode, "single") ? PVLM_CPT_MULTI : PVLM_CPT_SINGLE};
    s->rs0 = s->rs;
    s->rs0.mc = &s->base.cfg, s->rs0.class_specific = 0;
    if (!strcmp(o->method, "coop") && !*o->prompt) s->rs0.prompt = "a picture of a";
    return rc;
}

/* Every non-trained view of the tuned model must equal the base bit for bit; logs each that does not. */
static void check_frozen(ft_state *s) {
    for (int v = 0; v < s->m.n_views; v++) {
        if (s->trainable[v]) continue;
        const pvlm_view *bv = pvlm_model_view(&s->base, s->m.views[v].name);
        if (bv && memcmp(s->m.params + s->m.views[v].offset, s->base.params + bv->offset, bv->numel * sizeof(float))) {
            s->frozen_ok = 0;
            pvlm_error("frozen tensor %s changed during finetuning", s->m.views[v].name);
        }
    }
}

/* The region head as finetune-checkpoint metadata: "region_head" = its d floats, "%.9g" (exact for floats). */
static json_t *head_info(const float *head, int d) {
    char *buf = malloc((size_t)d * 18 + 3);
    if (!buf) return NULL;
    size_t n = 0;
    buf[n++] = '[';
    for (int k = 0; k < d; k++) n += (size_t)sprintf(buf + n, "%s%.9g", k ? "," : "", (double)head[k]);
    buf[n++] = ']', buf[n] = 0;
    json_t *j = json_pack("{s:s}", "region_head", buf);
    free(buf);
    return j;
}

/* Rank 0 saves what run (K, seed) trained: a probe file or a finetune checkpoint (regionft: with its head). */
static int save_run(ft_state *s, const ft_opts *o, const char *name, pvlm_err *err) {
    char path[4200];
    if (pvlm_path_join(path, sizeof path, o->out, name, err)) return -1;
    if (s->probe)
        return pvlm_probe_save(path, s->probe_w, s->probe_b, s->d.n_classes, s->cfg.d_model, s->base_path, s->base_hash, err);
    json_t *info = s->regionft ? head_info(s->head, s->cfg.d_model) : NULL;
    if (s->regionft && !info) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    int rc = pvlm_ftckpt_save(&s->m, s->trainable, path, s->base_path, s->base_hash, o->method, info, err);
    json_decref(info);
    return rc;
}

/* One few-shot run: reset, draw K shots with seed, train and score by the method, check the frozen base,
 * save and log. *acc receives the test score. */
static int one_run(ft_state *s, const ft_opts *o, int K, uint64_t seed, int *idx, double *acc, pvlm_err *err) {
    pvlm_model *m = &s->m;
    eval_ctx ev = {&s->comm, &s->d, &s->rs, o->eval_batch, o->length_norm};
    pvlm_optim_config oc;
    optim_config(o, &oc);
    pvlm_regionft_run rr = {&s->comm, &s->d, &s->rs, s->trainable, &oc, o->steps, o->batch};
    memcpy(m->params, s->init0, m->n_params * sizeof *s->init0);
    int rc = init_prompts(m, o, s->tok, seed, err);
    int n = rc == 0 ? draw_shots(&s->d, K, seed, idx) : -1;
    if (rc == 0 && n <= 0) rc = pvlm_err_set(err, PVLM_EINVAL, "no training items for K=%d", K);
    double loss = NAN, t0 = pvlm_now();
    *acc = NAN;
    if (rc == 0 && s->probe) rc = probe_run(&s->d, s->feat, s->cfg.d_model, idx, n, o->weight_decay, s->probe_w, s->probe_b, acc, err);
    if (rc == 0 && s->regionft) {
        pvlm_regionft_init_head(s->head, s->cfg.d_model, seed);
        rc = pvlm_regionft_train(&rr, m, s->head, idx, n, seed, &loss, err);
        if (rc == 0) rc = pvlm_regionft_evaluate(&rr, m, s->head, o->eval_batch, acc, err);
    } else if (rc == 0 && !s->probe) {
        rc = train(&(run_ctx){&s->comm, &s->d, &s->rs, o, s->trainable}, m, idx, n, seed, &loss, err);
        if (rc == 0) rc = evaluate(&ev, m, acc, err);
    }
    if (rc == 0) check_frozen(s);
    char name[128];
    snprintf(name, sizeof name, "%s-%s-k%d-s%llu.safetensors", o->method, o->task, K, (unsigned long long)seed);
    if (rc == 0 && s->comm.rank == 0) rc = save_run(s, o, name, err);
    int any = rc != 0;
    if (pvlm_comm_or(&s->comm, rc != 0, &any, err) || any) rc = rc ? rc : pvlm_err_set(err, PVLM_EIO, "a rank failed");
    if (rc == 0 && s->comm.rank == 0) {
        pvlm_info("K=%d seed %llu: %s %.4f (train items %d, final loss %.4f, %.1fs) -> %s/%s", K, (unsigned long long)seed,
                  s->lm ? "validation CE" : "accuracy", *acc, n, loss, pvlm_now() - t0, o->out, name);
        /* the probe has no model loss: final_loss is null there (JSON has no NaN) */
        json_array_append_new(s->runs, json_pack("{s:i, s:I, s:f, s:o, s:i, s:s}", "shots", K, "seed", (json_int_t)seed,
                                                 "score", *acc, "final_loss", isfinite(loss) ? json_real(loss) : json_null(),
                                                 "train_items", n, "checkpoint", name));
    }
    return rc;
}

/* Rank 0: the summary on stdout and report.json. */
static int write_report(ft_state *s, const ft_opts *o, const pvlm_cmd *cmd, const int *shots, int nshots,
                        double accs[][100], double zero, pvlm_err *err) {
    int lm = s->lm;
    const char *metric = lm ? "validation CE" : "accuracy";
    printf("\n%s / %s on %s: %d test items, %s, %d seed(s)\n", o->method, o->task, o->data, s->d.n_test, metric, o->seeds);
    printf("  trained parameters: %lld (base model: %zu)\n", (long long)s->n_trained, s->base.n_params);
    printf("  %-10s %.2f%s\n", "zero-shot", lm ? zero : 100 * zero, lm ? "" : " %");
    json_t *report = json_object(), *summary = json_array();
    for (int k = 0; !o->zero_shot_only && k < nshots; k++) {
        double mu = mean_of(accs[k], o->seeds), sd = std_of(accs[k], o->seeds);
        char kname[32];
        snprintf(kname, sizeof kname, shots[k] ? "K=%d" : "all", shots[k]);
        printf("  %-10s %.2f +- %.2f%s   (zero-shot %.2f)\n", kname, lm ? mu : 100 * mu, lm ? sd : 100 * sd,
               lm ? "" : " %", lm ? zero : 100 * zero);
        json_array_append_new(summary, json_pack("{s:i, s:f, s:f}", "shots", shots[k], "mean", mu, "std", sd));
    }
    json_object_set_new(report, "zero_shot", json_real(zero));
    json_object_set_new(report, "method", json_string(o->method));
    json_object_set_new(report, "task", json_string(o->task));
    json_object_set_new(report, "metric", json_string(metric));
    json_object_set_new(report, "summary", summary);
    json_object_set(report, "runs", s->runs);
    json_object_set_new(report, "frozen_bit_identical", json_boolean(s->frozen_ok));
    json_object_set_new(report, "trained_params", json_integer((json_int_t)s->n_trained));
    json_object_set_new(report, "base_params", json_integer((json_int_t)s->base.n_params));
    json_object_set_new(report, "settings", pvlm_args_to_json(cmd));
    char path[4200];
    int rc = pvlm_path_join(path, sizeof path, o->out, "report.json", err);
    if (rc == 0) rc = pvlm_json_save_results(report, path, err);
    json_decref(report);
    return rc;
}

/* Zero-shot, then every K and seed, then the report. */
static int ft_main(ft_state *s, const ft_opts *o, const pvlm_cmd *cmd, const int *shots, int nshots, pvlm_err *err) {
    int rc = ft_load(s, o, err);
    double zero = NAN;
    if (rc == 0) {
        if (s->comm.rank == 0)
            pvlm_info("finetune %s on %s: %d train / %d test items%s, base %s", o->method, o->task, s->d.n_train,
                      s->d.n_test, s->task == PVLM_FT_CLASSIFY ? " (classes from the data)" : "", s->base_path);
        eval_ctx ev0 = {&s->comm, &s->d, &s->rs0, o->eval_batch, o->length_norm};
        rc = evaluate(&ev0, &s->base, &zero, err);
        if (rc == 0 && s->comm.rank == 0)
            pvlm_info("zero-shot %s: %.4f (prompt \"%s\")", s->lm ? "validation CE" : "accuracy", zero, s->rs0.prompt);
    }
    int *idx = rc == 0 ? malloc((size_t)s->d.n_train * sizeof *idx) : NULL;
    if (rc == 0 && !idx) rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    double accs[32][100];
    for (int k = 0; rc == 0 && !o->zero_shot_only && k < nshots; k++)
        for (int sd = 0; rc == 0 && sd < o->seeds; sd++)
            rc = one_run(s, o, shots[k], (uint64_t)o->seed + (uint64_t)sd, idx, &accs[k][sd], err);
    free(idx);
    if (rc == 0 && s->comm.rank == 0) rc = write_report(s, o, cmd, shots, nshots, accs, zero, err);
    if (rc == 0 && !s->frozen_ok) rc = pvlm_err_set(err, PVLM_EINVAL, "frozen base tensors changed (see errors above)");
    return rc;
}

int pvlm_cmd_finetune(int argc, char **argv) {
    ft_opts o = {
        .task = "classify", .method = "coop", .prompt = NULL, .target_template = NULL, .class_position = "end",
        .ctx_init = "random", .ctx_phrase = "a photo of a", .groups = "all", .cpt_mode = "multi",
        .query_suffix = " is in", .shots = "1,2,4,8,16", .schedule = "cosine", .precision = "fp32",
        .recompute = "none",
        .n_ctx = 4, .n_prompt = 8, .top_k = 1, .steps = 60, .batch = 4, .seeds = 3, .eval_batch = 8, .val_every = 10,
        .seed = 1, .lr = 2e-3, .weight_decay = 0.0, .grad_clip = 1.0,
    };
    const pvlm_opt opts[] = {
        {"base", PVLM_ARG_STR, &o.base, "pretrained checkpoint (.safetensors, step dir or run dir)", NULL, 0, 0, 1},
        {"tokenizer", PVLM_ARG_STR, &o.tokdir, "tokenizer folder (default: the checkpoint's metadata)", NULL, 0, 0, 0},
        {"task", PVLM_ARG_CHOICE, &o.task, "task", "classify|ground|caption|vqa", 0, 0, 0},
        {"data", PVLM_ARG_STR, &o.data, "classification.json, grounding.json, COCO captions or VQA questions", NULL, 0, 0, 1},
        {"annotations", PVLM_ARG_STR, &o.annotations, "VQA annotations (with an \"images\" list) for --task vqa", NULL, 0, 0, 0},
        {"images", PVLM_ARG_STR, &o.images, "image folder (default: the folder of --data)", NULL, 0, 0, 0},
        {"method", PVLM_ARG_CHOICE, &o.method, "what to train (probe: linear probe on the frozen encoder; regionft: encoder + a head over candidate regions, grounding)", "full|coop|vpt|cpt|probe|regionft", 0, 0, 0},
        {"out", PVLM_ARG_STR, &o.out, "output folder (finetune checkpoints, report.json)", NULL, 0, 0, 1},
        {"prompt", PVLM_ARG_STR, &o.prompt, "hand-written prompt (default \"a picture of a\"; captions \"a picture of\"; CoOp: none)", NULL, 0, 0, 0},
        {"class-position", PVLM_ARG_CHOICE, &o.class_position, "class name at the end of the target or in the middle", "end|middle", 0, 0, 0},
        {"target-template", PVLM_ARG_STR, &o.target_template, "decoder target with {class} (default {class}; middle: \"{class} shape in the picture\")", NULL, 0, 0, 0},
        {"n-ctx", PVLM_ARG_INT, &o.n_ctx, "CoOp: context vectors M (4, 8, 16 in the paper)", NULL, 1, 64, 0},
        {"class-specific", PVLM_ARG_FLAG, &o.class_specific, "CoOp: one context per class instead of a unified one", NULL, 0, 0, 0},
        {"ctx-init", PVLM_ARG_CHOICE, &o.ctx_init, "CoOp: context initialisation", "random|phrase", 0, 0, 0},
        {"ctx-phrase", PVLM_ARG_STR, &o.ctx_phrase, "CoOp: phrase whose token embeddings initialise the context", NULL, 0, 0, 0},
        {"n-prompt", PVLM_ARG_INT, &o.n_prompt, "VPT: visual prompt tokens p", NULL, 1, 256, 0},
        {"deep", PVLM_ARG_FLAG, &o.deep, "VPT: a fresh prompt set per encoder layer (VPT-deep)", NULL, 0, 0, 0},
        {"train-head", PVLM_ARG_FLAG, &o.train_head, "VPT: also train the decoder's final LayerNorm", NULL, 0, 0, 0},
        {"groups", PVLM_ARG_CHOICE, &o.groups, "full/cpt: parameters to train", "all|decoder|top-k", 0, 0, 0},
        {"top-k", PVLM_ARG_INT, &o.top_k, "full/cpt with --groups top-k: layers per stack", NULL, 1, 1000, 0},
        {"cpt-mode", PVLM_ARG_CHOICE, &o.cpt_mode, "CPT: k boxes in k colours in one image, or each box alone in red", "multi|single", 0, 0, 0},
        {"query-suffix", PVLM_ARG_STR, &o.query_suffix, "CPT: text after the referring expression", NULL, 0, 0, 0},
        {"zero-shot-only", PVLM_ARG_FLAG, &o.zero_shot_only, "evaluate the prompt without training", NULL, 0, 0, 0},
        {"shots", PVLM_ARG_STR, &o.shots, "comma-separated K values (0 = the whole training split)", NULL, 0, 0, 0},
        {"seeds", PVLM_ARG_INT, &o.seeds, "seeds per K", NULL, 1, 100, 0},
        {"seed", PVLM_ARG_I64, &o.seed, "first seed", NULL, 0, 0, 0},
        {"steps", PVLM_ARG_INT, &o.steps, "optimizer steps per run", NULL, 0, 10000000, 0},
        {"batch-size", PVLM_ARG_INT, &o.batch, "groups (or items) per rank per step", NULL, 1, 4096, 0},
        {"lr", PVLM_ARG_DOUBLE, &o.lr, "AdamW learning rate", NULL, 0, 10, 0},
        {"weight-decay", PVLM_ARG_DOUBLE, &o.weight_decay, "AdamW weight decay (matrices only); probe: the L2 weight", NULL, 0, 10, 0},
        {"warmup", PVLM_ARG_INT, &o.warmup, "LR warmup steps", NULL, 0, 10000000, 0},
        {"schedule", PVLM_ARG_CHOICE, &o.schedule, "LR decay", "cosine|linear|const", 0, 0, 0},
        {"grad-clip", PVLM_ARG_DOUBLE, &o.grad_clip, "global gradient-norm clip (0 = off)", NULL, 0, 1e9, 0},
        {"length-norm", PVLM_ARG_FLAG, &o.length_norm, "score candidates by mean token log-prob", NULL, 0, 0, 0},
        {"eval-batch", PVLM_ARG_INT, &o.eval_batch, "test groups per evaluation batch", NULL, 1, 4096, 0},
        {"val-every", PVLM_ARG_INT, &o.val_every, "caption/vqa: every N-th item is held out for validation", NULL, 0, 1000000, 0},
        {"threads", PVLM_ARG_INT, &o.threads, "threads per rank (0 = cores / local ranks)", NULL, 0, 1024, 0},
        PVLM_PRECISION_OPT(&o.precision),
        PVLM_RECOMPUTE_OPT(&o.recompute),
    };
    pvlm_cmd cmd = {"pvlm finetune", "Finetune or prompt-tune a pvlm checkpoint (full, CoOp, VPT, CPT) with the few-shot protocol.",
                    "", opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int prc = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (prc) return prc == PVLM_ARGS_HELP ? 0 : 2;
    ft_state s;
    memset(&s, 0, sizeof s);
    int shots[32], nshots;
    if (check_opts(&o, &s.task, shots, &nshots)) return 2;
    s.lm = s.task == PVLM_FT_CAPTION || s.task == PVLM_FT_VQA;
    s.probe = !strcmp(o.method, "probe"), s.regionft = !strcmp(o.method, "regionft");
    s.frozen_ok = 1;
    s.runs = json_array();
    pvlm_err err;
    if (pvlm_comm_start(&s.comm, &argc, &argv, o.threads, &err)) {
        fprintf(stderr, "pvlm finetune: %s\n", err.msg);
        json_decref(s.runs);
        return 1;
    }
    int rc = ft_main(&s, &o, &cmd, shots, nshots, &err);
    if (rc) fprintf(stderr, "pvlm finetune: %s\n", err.msg);
    ft_free(&s);
    pvlm_comm_finalize(&s.comm);
    return rc ? 1 : 0;
}
