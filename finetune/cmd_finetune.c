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
    pvlm_optim_config_default(&oc);
    oc.lr = o->lr, oc.weight_decay = o->weight_decay, oc.grad_clip = o->grad_clip;
    oc.warmup_steps = o->warmup, oc.total_steps = o->steps;
    snprintf(oc.schedule, sizeof oc.schedule, "%s", o->schedule);
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
        {"method", PVLM_ARG_CHOICE, &o.method, "what to train (probe: linear probe on the frozen encoder)", "full|coop|vpt|cpt|probe", 0, 0, 0},
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
    int task = !strcmp(o.task, "classify") ? PVLM_FT_CLASSIFY : !strcmp(o.task, "ground") ? PVLM_FT_GROUND
             : !strcmp(o.task, "caption") ? PVLM_FT_CAPTION : PVLM_FT_VQA;
    int lm = task == PVLM_FT_CAPTION || task == PVLM_FT_VQA;
    if ((task == PVLM_FT_GROUND) != !strcmp(o.method, "cpt")) {
        fprintf(stderr, "pvlm finetune: --method cpt goes with --task ground (and only it)\n");
        return 2;
    }
    int probe = !strcmp(o.method, "probe");
    if (probe && task != PVLM_FT_CLASSIFY) {
        fprintf(stderr, "pvlm finetune: --method probe goes with --task classify\n");
        return 2;
    }
    if (lm && strcmp(o.method, "full") && strcmp(o.method, "vpt")) {
        fprintf(stderr, "pvlm finetune: --task %s trains with --method full or vpt\n", o.task);
        return 2;
    }
    int shots[32], nshots = parse_shots(o.shots, shots, 32);
    if (nshots <= 0) {
        fprintf(stderr, "pvlm finetune: --shots must be a comma-separated list of integers >= 0\n");
        return 2;
    }
    if (lm) shots[0] = 0, nshots = 1;
    if (!o.prompt) o.prompt = !strcmp(o.method, "coop") ? "" : task == PVLM_FT_CAPTION ? "a picture of" : "a picture of a";
    if (!o.target_template) o.target_template = !strcmp(o.class_position, "middle") ? "{class} shape in the picture" : "{class}";

    pvlm_err err;
    pvlm_comm comm;
    if (pvlm_comm_start(&comm, &argc, &argv, o.threads, &err)) {
        fprintf(stderr, "pvlm finetune: %s\n", err.msg);
        return 1;
    }
    char base_path[4096];
    pvlm_model_config cfg;
    pvlm_tokenizer *tok = NULL;
    pvlm_model base, m;
    memset(&base, 0, sizeof base), memset(&m, 0, sizeof m);
    pvlm_ft_data d;
    memset(&d, 0, sizeof d);
    uint64_t base_hash = 0;
    uint8_t *trainable = NULL;
    int64_t n_trained = 0; /* parameters the method trains (report.json "trained_params") */
    float *init0 = NULL, *feat = NULL, *probe_w = NULL, *probe_b = NULL;
    json_t *report = json_object(), *runs = json_array();
    int rc = pvlm_load_resolve_ckpt(o.base, base_path, sizeof base_path, &err);
    if (rc == 0) rc = pvlm_load_tokenizer(base_path, o.tokdir, &cfg, &tok, &err);
    if (rc == 0) rc = pvlm_hash_file(base_path, &base_hash, &err);
    if (rc == 0) rc = pvlm_model_load(&base, base_path, &err);
    if (rc == 0) rc = pvlm_mkdir_p(o.out, &err);
    if (rc == 0) rc = pvlm_ft_data_load(&d, task, o.data, o.annotations, o.images, cfg.image_size, o.prompt, o.val_every, &err);
    /* the model being tuned: the base config plus the method's prompt tensors */
    pvlm_model_config ec = cfg;
    if (!strcmp(o.method, "coop")) ec.n_ctx = o.n_ctx, ec.n_ctx_sets = o.class_specific ? d.n_classes : 1;
    if (!strcmp(o.method, "vpt")) ec.n_vpt = o.n_prompt, ec.vpt_deep = o.deep;
    if (rc == 0) rc = pvlm_model_create(&m, &ec, &err);
    if (rc == 0) rc = pvlm_model_set_precision_name(&m, o.precision, &err);
    if (rc == 0) rc = pvlm_model_set_recompute(&m, o.recompute, &err);
    if (rc == 0) rc = pvlm_model_load_params(&m, base_path, PVLM_LOAD_ALLOW_MISSING, NULL, &err);
    if (rc == 0) {
        trainable = calloc((size_t)m.n_views, 1);
        init0 = malloc(m.n_params * sizeof *init0);
        if (!trainable || !init0) rc = pvlm_err_set(&err, PVLM_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        select_trainable(&m, &o, trainable);
        memcpy(init0, m.params, m.n_params * sizeof *init0);
        if (!probe) for (int v = 0; v < m.n_views; v++) n_trained += trainable[v] ? (int64_t)m.views[v].numel : 0;
    }
    int dim = cfg.d_model;
    if (rc == 0 && probe && !o.zero_shot_only) { /* every rank computes the same features and fits */
        n_trained = (int64_t)d.n_classes * (dim + 1);
        feat = malloc(sizeof(float) * (size_t)d.n_images * dim);
        probe_w = malloc(sizeof(float) * (size_t)d.n_classes * dim), probe_b = malloc(sizeof(float) * (size_t)d.n_classes);
        rc = feat && probe_w && probe_b ? pvlm_probe_features(&base, &d, 32, feat, &err)
                                        : pvlm_err_set(&err, PVLM_ENOMEM, "out of memory");
    }
    pvlm_ft_rowspec rs = {tok, &m.cfg, o.prompt, o.query_suffix, o.class_specific, o.target_template,
                          strcmp(o.cpt_mode, "single") ? PVLM_CPT_MULTI : PVLM_CPT_SINGLE};
    pvlm_ft_rowspec rs0 = rs; /* zero-shot: the base model with the hand-written prompt */
    rs0.mc = &base.cfg, rs0.class_specific = 0;
    if (!strcmp(o.method, "coop") && !*o.prompt) rs0.prompt = "a picture of a";
    eval_ctx ev = {&comm, &d, &rs0, o.eval_batch, o.length_norm};
    double zero = NAN;
    if (rc == 0) {
        if (comm.rank == 0)
            pvlm_info("finetune %s on %s: %d train / %d test items%s, base %s", o.method, o.task, d.n_train, d.n_test,
                      task == PVLM_FT_CLASSIFY ? " (classes from the data)" : "", base_path);
        rc = evaluate(&ev, &base, &zero, &err);
        if (rc == 0 && comm.rank == 0)
            pvlm_info("zero-shot %s: %.4f (prompt \"%s\")", lm ? "validation CE" : "accuracy", zero, rs0.prompt);
    }
    json_object_set_new(report, "zero_shot", json_real(zero));
    int *idx = d.n_train > 0 ? malloc((size_t)d.n_train * sizeof *idx) : NULL;
    double accs[32][100];
    int frozen_ok = 1;
    ev.rs = &rs;
    for (int k = 0; rc == 0 && !o.zero_shot_only && k < nshots; k++) {
        for (int s = 0; rc == 0 && s < o.seeds; s++) {
            uint64_t seed = (uint64_t)o.seed + (uint64_t)s;
            memcpy(m.params, init0, m.n_params * sizeof *init0);
            rc = init_prompts(&m, &o, tok, seed, &err);
            int n = rc == 0 ? draw_shots(&d, shots[k], seed, idx) : -1;
            if (rc == 0 && n <= 0) rc = pvlm_err_set(&err, PVLM_EINVAL, "no training items for K=%d", shots[k]);
            double loss = NAN, acc = NAN;
            double t0 = pvlm_now();
            if (rc == 0 && probe) rc = probe_run(&d, feat, dim, idx, n, o.weight_decay, probe_w, probe_b, &acc, &err);
            if (rc == 0 && !probe) rc = train(&(run_ctx){&comm, &d, &rs, &o, trainable}, &m, idx, n, seed, &loss, &err);
            if (rc == 0 && !probe) rc = evaluate(&ev, &m, &acc, &err);
            /* the frozen base must be bit-identical: compare every non-trained view with the base model */
            for (int v = 0; rc == 0 && v < m.n_views; v++) {
                if (trainable[v]) continue;
                const pvlm_view *bv = pvlm_model_view(&base, m.views[v].name);
                if (bv && memcmp(m.params + m.views[v].offset, base.params + bv->offset, bv->numel * sizeof(float))) {
                    frozen_ok = 0;
                    pvlm_error("frozen tensor %s changed during finetuning", m.views[v].name);
                }
            }
            accs[k][s] = acc;
            char path[4200], name[128];
            snprintf(name, sizeof name, "%s-%s-k%d-s%llu.safetensors", o.method, o.task, shots[k], (unsigned long long)seed);
            snprintf(path, sizeof path, "%s/%s", o.out, name);
            if (rc == 0 && comm.rank == 0)
                rc = probe ? pvlm_probe_save(path, probe_w, probe_b, d.n_classes, dim, base_path, base_hash, &err)
                           : pvlm_ftckpt_save(&m, trainable, path, base_path, base_hash, o.method, NULL, &err);
            int any = rc != 0;
            if (pvlm_comm_or(&comm, rc != 0, &any, &err) || any) rc = rc ? rc : pvlm_err_set(&err, PVLM_EIO, "a rank failed");
            if (rc == 0 && comm.rank == 0) {
                pvlm_info("K=%d seed %llu: %s %.4f (train items %d, final loss %.4f, %.1fs) -> %s", shots[k],
                          (unsigned long long)seed, lm ? "validation CE" : "accuracy", acc, n, loss, pvlm_now() - t0, path);
                /* the probe has no model loss: final_loss is null there (JSON has no NaN) */
                json_array_append_new(runs, json_pack("{s:i, s:I, s:f, s:o, s:i, s:s}", "shots", shots[k], "seed",
                                                      (json_int_t)seed, "score", acc, "final_loss",
                                                      isfinite(loss) ? json_real(loss) : json_null(), "train_items", n,
                                                      "checkpoint", name));
            }
        }
    }
    free(idx);
    if (rc == 0 && comm.rank == 0) {
        const char *metric = lm ? "validation CE" : "accuracy";
        printf("\n%s / %s on %s: %d test items, %s, %d seed(s)\n", o.method, o.task, o.data, d.n_test, metric, o.seeds);
        printf("  trained parameters: %lld (base model: %zu)\n", (long long)n_trained, base.n_params);
        printf("  %-10s %.2f%s\n", "zero-shot", lm ? zero : 100 * zero, lm ? "" : " %");
        json_t *summary = json_array();
        for (int k = 0; !o.zero_shot_only && k < nshots; k++) {
            double mu = mean_of(accs[k], o.seeds), sd = std_of(accs[k], o.seeds);
            char kname[32];
            snprintf(kname, sizeof kname, shots[k] ? "K=%d" : "all", shots[k]);
            printf("  %-10s %.2f +- %.2f%s   (zero-shot %.2f)\n", kname, lm ? mu : 100 * mu, lm ? sd : 100 * sd,
                   lm ? "" : " %", lm ? zero : 100 * zero);
            json_array_append_new(summary, json_pack("{s:i, s:f, s:f}", "shots", shots[k], "mean", mu, "std", sd));
        }
        json_object_set_new(report, "method", json_string(o.method));
        json_object_set_new(report, "task", json_string(o.task));
        json_object_set_new(report, "metric", json_string(metric));
        json_object_set_new(report, "summary", summary);
        json_object_set(report, "runs", runs);
        json_object_set_new(report, "frozen_bit_identical", json_boolean(frozen_ok));
        json_object_set_new(report, "trained_params", json_integer((json_int_t)n_trained));
        json_object_set_new(report, "base_params", json_integer((json_int_t)base.n_params));
        json_object_set_new(report, "settings", pvlm_args_to_json(&cmd));
        char path[4200];
        snprintf(path, sizeof path, "%s/report.json", o.out);
        rc = pvlm_json_save_results(report, path, &err);
    }
    if (rc == 0 && !frozen_ok) rc = pvlm_err_set(&err, PVLM_EINVAL, "frozen base tensors changed (see errors above)");
    if (rc) fprintf(stderr, "pvlm finetune: %s\n", err.msg);
    json_decref(report), json_decref(runs);
    free(trainable), free(init0), free(feat), free(probe_w), free(probe_b);
    pvlm_ft_data_free(&d);
    pvlm_model_free(&m), pvlm_model_free(&base);
    pvlm_tokenizer_free(tok);
    pvlm_comm_finalize(&comm);
    return rc ? 1 : 0;
}
