/* regionft.c - see regionft.h. */
#include "finetune/regionft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"

void pvlm_regionft_weights(int S, int P, int orig_w, int orig_h, const float box[4], float *w) {
    int g = S / P, r[4];
    pvlm_cpt_box_pixels(S, orig_w, orig_h, box, r);
    memset(w, 0, sizeof(float) * (size_t)g * g);
    if (r[2] <= r[0] || r[3] <= r[1]) { /* nothing inside the image: the patch nearest the box's centre */
        int cx = (r[0] + r[2]) / 2, cy = (r[1] + r[3]) / 2;
        cx = cx < 0 ? 0 : cx >= S ? S - 1 : cx, cy = cy < 0 ? 0 : cy >= S ? S - 1 : cy;
        w[(cy / P) * g + cx / P] = 1.0f;
        return;
    }
    double area = (double)(r[2] - r[0]) * (r[3] - r[1]);
    for (int py = 0; py < g; py++)
        for (int px = 0; px < g; px++) {
            int ox = (r[2] < (px + 1) * P ? r[2] : (px + 1) * P) - (r[0] > px * P ? r[0] : px * P);
            int oy = (r[3] < (py + 1) * P ? r[3] : (py + 1) * P) - (r[1] > py * P ? r[1] : py * P);
            if (ox > 0 && oy > 0) w[py * g + px] = (float)(ox * (double)oy / area);
        }
}

int pvlm_regionft_fill(const pvlm_ft_data *d, const pvlm_ft_item *it, const pvlm_ft_rowspec *rs, pvlm_batch *b,
                       int r, float *w, pvlm_err *err) {
    if (pvlm_ft_fill_query(d, it, rs, b, r, err)) return -1;
    int S = d->S, P = rs->mc->patch_size, Np = (S / P) * (S / P), nc = pvlm_ft_group_rows(d, it);
    for (int j = 0; j < nc; j++)
        pvlm_regionft_weights(S, P, d->orig_w[it->image], d->orig_h[it->image], it->boxes[j], w + (size_t)j * Np);
    return nc;
}

/* Candidate scores of group bi: f [nc, d] the region features, s [nc] = head . f_j. */
static void score_group(const float *Eb, const float *w, int nc, int Np, int d, const float *head, float *f, double *s) {
    for (int j = 0; j < nc; j++) {
        float *fj = f + (size_t)j * d;
        memset(fj, 0, sizeof(float) * (size_t)d);
        for (int t = 0; t < Np; t++) {
            float wt = w[(size_t)j * Np + t];
            if (wt != 0.0f)
                for (int k = 0; k < d; k++) fj[k] += wt * Eb[(size_t)t * d + k];
        }
        double a = 0;
        for (int k = 0; k < d; k++) a += (double)head[k] * fj[k];
        s[j] = a;
    }
}

int pvlm_regionft_objective(pvlm_model *m, const pvlm_batch *b, const float *w, const int *ncand, const int *label,
                            const float *head, double groups_global, double *loss, int *pred, float *head_grad,
                            pvlm_err *err) {
    const float *E;
    const uint8_t *kmask;
    int T, d = m->cfg.d_model, g = m->cfg.image_size / m->cfg.patch_size, Np = g * g, M = PVLM_REGIONFT_MAX_CAND;
    if (pvlm_model_encode(m, b, &E, &kmask, &T, err)) return -1;
    float *f = malloc(sizeof(float) * (size_t)M * d);
    float *dE = head_grad ? calloc((size_t)b->B * T * d, sizeof(float)) : NULL;
    if (!f || (head_grad && !dE)) {
        free(f), free(dE);
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    }
    double total = 0;
    for (int bi = 0; bi < b->B; bi++) {
        int nc = ncand[bi] < M ? ncand[bi] : M, best = 0;
        const float *wb = w + (size_t)bi * M * Np;
        double s[PVLM_REGIONFT_MAX_CAND], mx = -INFINITY, z = 0;
        score_group(E + (size_t)bi * T * d, wb, nc, Np, d, head, f, s); /* image tokens: rows 0..Np-1 */
        for (int j = 0; j < nc; j++) {
            if (s[j] > s[best]) best = j;
            mx = fmax(mx, s[j]);
        }
        if (pred) pred[bi] = best;
        if (!label || label[bi] < 0 || label[bi] >= nc) continue; /* no gold among the candidates: no loss */
        for (int j = 0; j < nc; j++) z += exp(s[j] - mx);
        total += -(s[label[bi]] - mx - log(z));
        for (int j = 0; head_grad && j < nc; j++) {
            /* d(CE)/d(s_j) = p_j - [j == gold]; s_j = head . f_j, f_j = sum_t w_jt E_t */
            float ds = (float)((exp(s[j] - mx) / z - (j == label[bi])) / groups_global);
            for (int k = 0; k < d; k++) head_grad[k] += ds * f[(size_t)j * d + k];
            for (int t = 0; t < Np; t++) {
                float c = ds * wb[(size_t)j * Np + t];
                float *row = dE + ((size_t)bi * T + t) * d;
                for (int k = 0; c != 0.0f && k < d; k++) row[k] += c * head[k];
            }
        }
    }
    if (loss) *loss = total / groups_global;
    int rc = head_grad ? pvlm_model_encode_backward(m, b, dE, err) : 0;
    free(f), free(dE);
    return rc;
}

void pvlm_regionft_init_head(float *head, int d, uint64_t seed) {
    pvlm_rng rng;
    pvlm_rng_seed(&rng, seed, 0x4ead);
    for (int k = 0; k < d; k++) head[k] = (float)(0.02 * pvlm_rng_normal(&rng));
}

/* Sum m's gradients and head_grad over the ranks (in double, through one buffer). */
static int allreduce_grads(const pvlm_comm *comm, pvlm_model *m, float *head_grad, int d, double *buf, double *loss,
                           pvlm_err *err) {
    size_t n = m->n_params;
    for (size_t i = 0; i < n; i++) buf[i] = m->grads[i];
    for (int k = 0; k < d; k++) buf[n + k] = head_grad[k];
    buf[n + d] = *loss;
    if (pvlm_comm_sum_f64(comm, buf, (int)(n + d + 1), err)) return -1;
    for (size_t i = 0; i < n; i++) m->grads[i] = (float)buf[i];
    for (int k = 0; k < d; k++) head_grad[k] = (float)buf[n + k];
    *loss = buf[n + d];
    return 0;
}

typedef struct train_state { /* the buffers of one run */
    pvlm_batch b;
    float *w, *head_grad, *m1, *m2, *hm1, *hm2;
    int *ncand, *label, *order;
    double *red;
} train_state;

static void state_free(train_state *s) {
    pvlm_batch_free(&s->b);
    free(s->w), free(s->head_grad), free(s->m1), free(s->m2), free(s->hm1), free(s->hm2);
    free(s->ncand), free(s->label), free(s->order), free(s->red);
}

static int state_alloc(train_state *s, const pvlm_regionft_run *run, const pvlm_model *m, int n, pvlm_err *err) {
    memset(s, 0, sizeof *s);
    int G = run->groups, d = m->cfg.d_model, g = m->cfg.image_size / m->cfg.patch_size;
    if (pvlm_batch_alloc(&s->b, G, run->d->S, m->cfg.max_prefix_len, m->cfg.max_suffix_len, err)) return -1;
    s->w = malloc(sizeof(float) * (size_t)G * PVLM_REGIONFT_MAX_CAND * g * g);
    s->head_grad = malloc(sizeof(float) * (size_t)d);
    s->m1 = calloc(m->n_params, sizeof(float)), s->m2 = calloc(m->n_params, sizeof(float));
    s->hm1 = calloc((size_t)d, sizeof(float)), s->hm2 = calloc((size_t)d, sizeof(float));
    s->ncand = malloc(sizeof(int) * (size_t)G), s->label = malloc(sizeof(int) * (size_t)G);
    s->order = malloc(sizeof(int) * (size_t)n);
    if (run->comm->size > 1) s->red = malloc(sizeof(double) * (m->n_params + (size_t)d + 1));
    if (!s->w || !s->head_grad || !s->m1 || !s->m2 || !s->hm1 || !s->hm2 || !s->ncand || !s->label || !s->order ||
        (run->comm->size > 1 && !s->red))
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    return 0;
}

/* AdamW on the trainable views and on the head (a one-view table, so the head decays like a weight matrix),
 * after global-norm clipping over both. */
static void update(const pvlm_regionft_run *run, pvlm_model *m, float *head, train_state *s, int step) {
    int d = m->cfg.d_model;
    double sq = pvlm_optim_sqnorm(s->head_grad, (size_t)d);
    for (int v = 0; v < m->n_views; v++)
        if (run->trainable[v]) sq += pvlm_optim_sqnorm(m->grads + m->views[v].offset, m->views[v].numel);
    double scale = pvlm_optim_clip_scale(sqrt(sq), run->oc->grad_clip), lr = pvlm_optim_lr(run->oc, step);
    pvlm_optim_adamw(m, m->params, m->grads, s->m1, s->m2, 0, m->n_params, run->trainable, lr, scale, step + 1, run->oc);
    pvlm_view hv = {.name = "regionft.head", .offset = 0, .numel = (size_t)d, .ndim = 1, .shape = {d},
                    .kind = PVLM_VIEW_MATRIX};
    pvlm_model hm = {.views = &hv, .n_views = 1, .n_params = (size_t)d};
    pvlm_optim_adamw(&hm, head, s->head_grad, s->hm1, s->hm2, 0, (size_t)d, NULL, lr, scale, step + 1, run->oc);
}

int pvlm_regionft_train(const pvlm_regionft_run *run, pvlm_model *m, float *head, const int *idx, int n,
                        uint64_t seed, double *last_loss, pvlm_err *err) {
    const pvlm_ft_data *d = run->d;
    int world = run->comm->size, rank = run->comm->rank, G = run->groups, Gglob = G * world;
    int dm = m->cfg.d_model, Np = (d->S / m->cfg.patch_size) * (d->S / m->cfg.patch_size);
    train_state s;
    int rc = state_alloc(&s, run, m, n, err);
    /* the global batch of step t is positions [t*Gglob, (t+1)*Gglob) of an endless sequence of seeded
     * permutations of the subset (as the other methods' training); rank r takes its G consecutive positions */
    pvlm_rng rng;
    pvlm_rng_seed(&rng, seed, 0xf1e);
    int epoch_pos = n, no_gold = 0; /* groups whose gold box is not among the candidates: no loss, counted */
    for (int i = 0; rc == 0 && i < n; i++) s.order[i] = idx[i];
    for (int step = 0; step < run->steps && rc == 0; step++) {
        s.b.B = G;
        pvlm_batch_clear(&s.b, m->cfg.pad_id);
        for (int gg = 0; gg < Gglob && rc == 0; gg++) {
            if (epoch_pos == n) pvlm_rng_shuffle(&rng, s.order, (size_t)n, sizeof *s.order), epoch_pos = 0;
            const pvlm_ft_item *it = &d->train[s.order[epoch_pos++]];
            if (gg / G != rank) continue;
            int r = gg % G;
            s.label[r] = it->label;
            s.ncand[r] = pvlm_regionft_fill(d, it, run->rs, &s.b, r, s.w + (size_t)r * PVLM_REGIONFT_MAX_CAND * Np, err);
            if (s.ncand[r] < 0) rc = -1;
            else no_gold += it->label < 0 || it->label >= s.ncand[r];
        }
        double loss = 0;
        pvlm_model_zero_grad(m);
        memset(s.head_grad, 0, sizeof(float) * (size_t)dm);
        if (rc == 0)
            rc = pvlm_regionft_objective(m, &s.b, s.w, s.ncand, s.label, head, Gglob, &loss, NULL, s.head_grad, err);
        int any = rc != 0;
        if (pvlm_comm_or(run->comm, rc != 0, &any, err) || any) {
            rc = rc ? rc : pvlm_err_set(err, PVLM_EMPI, "region fine-tuning failed on another rank");
            break;
        }
        if (world > 1 && allreduce_grads(run->comm, m, s.head_grad, dm, s.red, &loss, err)) rc = -1;
        if (rc == 0) update(run, m, head, &s, step);
        *last_loss = loss;
        if (rc == 0 && rank == 0 && (step % 10 == 0 || step == run->steps - 1))
            pvlm_info("  step %d/%d loss %.4f", step + 1, run->steps, loss);
        if (rc == 0 && pvlm_comm_stop_local())
            rc = pvlm_err_set(err, PVLM_ESTOP, "stopped by a signal at step %d", step + 1);
    }
    if (rc == 0 && no_gold)
        pvlm_warn("region fine-tuning: %d of the groups this rank trained on had their gold box beyond the first %d "
                  "candidates and added no loss", no_gold, PVLM_REGIONFT_MAX_CAND);
    s.b.B = G;
    state_free(&s);
    return rc;
}

int pvlm_regionft_evaluate(const pvlm_regionft_run *run, pvlm_model *m, const float *head, int eval_batch,
                           double *acc, pvlm_err *err) {
    const pvlm_ft_data *d = run->d;
    int n = d->n_test, rank = run->comm->rank, world = run->comm->size;
    int lo = (int)((int64_t)n * rank / world), hi = (int)((int64_t)n * (rank + 1) / world);
    int Np = (d->S / m->cfg.patch_size) * (d->S / m->cfg.patch_size), M = PVLM_REGIONFT_MAX_CAND;
    pvlm_batch b;
    if (pvlm_batch_alloc(&b, eval_batch, d->S, m->cfg.max_prefix_len, m->cfg.max_suffix_len, err)) return -1;
    float *w = malloc(sizeof(float) * (size_t)eval_batch * M * Np);
    int *ncand = malloc(sizeof(int) * (size_t)eval_batch), *pred = malloc(sizeof(int) * (size_t)eval_batch);
    double sums[2] = {0, 0}; /* correct, count */
    int rc = w && ncand && pred ? 0 : pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    for (int i = lo; i < hi && rc == 0; i += eval_batch) {
        int ng = hi - i < eval_batch ? hi - i : eval_batch;
        b.B = eval_batch;
        pvlm_batch_clear(&b, m->cfg.pad_id);
        b.B = ng;
        for (int g = 0; g < ng && rc == 0; g++)
            if ((ncand[g] = pvlm_regionft_fill(d, &d->test[i + g], run->rs, &b, g, w + (size_t)g * M * Np, err)) < 0) rc = -1;
        if (rc == 0) rc = pvlm_regionft_objective(m, &b, w, ncand, NULL, head, 1.0, NULL, pred, NULL, err);
        for (int g = 0; g < ng && rc == 0; g++) {
            const pvlm_ft_item *it = &d->test[i + g];
            sums[0] += pvlm_cpt_iou(it->boxes[pred[g]], it->boxes[it->label]) > 0.5, sums[1] += 1;
        }
    }
    b.B = eval_batch;
    pvlm_batch_free(&b);
    free(w), free(ncand), free(pred);
    int any = rc != 0;
    if (pvlm_comm_or(run->comm, rc != 0, &any, err)) return -1;
    if (any) return rc ? -1 : pvlm_err_set(err, PVLM_EMPI, "evaluation failed on another rank");
    if (pvlm_comm_sum_f64(run->comm, sums, 2, err)) return -1;
    *acc = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    return 0;
}
