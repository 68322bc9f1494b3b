/* gen.c - see gen.h. */
#include "gen.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/utf8.h"
#include "io/batch.h"
#include "io/imgprep.h"

void pvlm_gen_config_default(pvlm_gen_config *c, const pvlm_model_config *mc) {
    memset(c, 0, sizeof *c);
    pvlm_decode_config_default(&c->dec, mc);
    c->batch_size = 16;
    c->resize_mode = PVLM_RESIZE_CROP;
    c->progress_every = 10.0;
}

void pvlm_gen_texts_free(char **texts, size_t n) {
    if (!texts) return;
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
}

size_t pvlm_gen_report_missing(char *const *texts, const pvlm_gen_item *items, size_t n, const char *what) {
    char ids[256] = "";
    size_t missing = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        if (texts[i]) continue;
        if (missing++ < 10 && w < sizeof ids)
            w += (size_t)snprintf(ids + w, sizeof ids - w, "%s%lld", w ? ", " : "", (long long)items[i].id);
    }
    if (missing)
        pvlm_warn("%zu of %zu items have no result because their image could not be read (%s %s%s)", missing, n, what,
                  ids, missing > 10 ? ", ..." : "");
    return missing;
}

void pvlm_gen_clean_text(char *s) {
    size_t w = 0;
    int space = 1; /* drop leading space */
    for (size_t r = 0; s[r]; r++) {
        unsigned char ch = (unsigned char)s[r];
        if (isspace(ch) || ch < 0x20) {
            if (!space) s[w++] = ' ';
            space = 1;
        } else {
            s[w++] = (char)ch;
            space = 0;
        }
    }
    while (w > 0 && s[w - 1] == ' ') w--;
    s[w] = '\0';
}

int pvlm_gen_load_image(const pvlm_gen_item *it, pvlm_imgshard_reader *shard, pvlm_imgprep *prep, pvlm_imgrec *rec,
                        int S, int resize_mode, uint8_t *dst, pvlm_err *err) {
    char what[600];
    int rc;
    if (it->image_path) {
        snprintf(what, sizeof what, "%s", it->image_path);
        char *file = NULL;
        size_t n = 0;
        rc = pvlm_read_file(it->image_path, &file, &n, err);
        if (rc == 0) rc = pvlm_imgprep_encoded(prep, file, n, S, resize_mode, dst, NULL, NULL, what, err);
        free(file);
        return rc;
    }
    if (!shard) return pvlm_err_set(err, PVLM_EINVAL, "item %lld has neither an image file nor a shard", (long long)it->id);
    snprintf(what, sizeof what, "%s record %lld", pvlm_imgshard_path(shard), (long long)it->shard_index);
    rc = pvlm_imgshard_get(shard, it->shard_index, rec, err);
    return rc ? rc : pvlm_imgprep_record(prep, rec, S, resize_mode, dst, what, err);
}

/* Item i's image into batch row `row`; a failure is logged (the first 10), counted, and leaves the
 * row blank with has_image = 0. */
static void load_row_image(const pvlm_gen_item *it, pvlm_imgshard_reader *shard, pvlm_imgprep *prep, pvlm_imgrec *rec,
                           pvlm_batch *b, int row, int resize_mode, int64_t *errors) {
    pvlm_err err;
    uint8_t *dst = b->images + (size_t)row * (size_t)b->S * (size_t)b->S * 3;
    if (pvlm_gen_load_image(it, shard, prep, rec, b->S, resize_mode, dst, &err) == 0) {
        b->has_image[row] = 1;
        return;
    }
    if (*errors < 10) pvlm_warn("item %lld has no result: its image cannot be read: %s", (long long)it->id, err.msg);
    (*errors)++;
}

/* Tokenize `text` into at most cap ids; returns the count (truncated to the last cap tokens' head). */
static int encode_into(const pvlm_tokenizer *tok, pvlm_tok_cache *cache, const char *text, int32_t *ids, int cap,
                       pvlm_err *err) {
    int64_t n = pvlm_tokenizer_encode(tok, cache, text, strlen(text), ids, (size_t)cap, err);
    if (n < 0) return -1;
    return n > cap ? cap : (int)n;
}

/* The closed-set candidates, tokenized once per run: ids [k * stride, k * stride + len[k]). */
typedef struct cand_ids {
    int32_t *ids;
    int *len;
    int stride;
} cand_ids;

static void cand_ids_free(cand_ids *c) {
    free(c->ids), free(c->len);
    c->ids = NULL, c->len = NULL;
}

/* Each candidate with a leading space, as it follows the prefix in the training captions
 * ("... answer: <answer>"), truncated to stride tokens (room for eos in the suffix). */
static int cand_ids_encode(cand_ids *c, const pvlm_tokenizer *tok, pvlm_tok_cache *cache, const pvlm_gen_config *cfg,
                           int stride, pvlm_err *err) {
    c->stride = stride;
    c->ids = malloc((size_t)cfg->n_candidates * (size_t)stride * sizeof *c->ids);
    c->len = malloc((size_t)cfg->n_candidates * sizeof *c->len);
    if (!c->ids || !c->len) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for %d candidates", cfg->n_candidates);
    for (int k = 0; k < cfg->n_candidates; k++) {
        size_t tl = strlen(cfg->candidates[k]);
        char *text = malloc(tl + 2);
        if (!text) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
        text[0] = ' ';
        memcpy(text + 1, cfg->candidates[k], tl + 1);
        c->len[k] = encode_into(tok, cache, text, c->ids + (size_t)k * (size_t)stride, stride, err);
        free(text);
        if (c->len[k] < 0) return -1;
    }
    return 0;
}

/* Pick the candidate with the highest (optionally length-normalised) log-likelihood for each row. */
static int score_candidates(pvlm_model *m, const cand_ids *cands, pvlm_batch *b, int rows, const pvlm_gen_config *cfg,
                            int *best, pvlm_err *err) {
    const pvlm_model_config *mc = &m->cfg;
    double *bestv = malloc((size_t)rows * sizeof *bestv), *logp = malloc((size_t)b->B * sizeof *logp);
    int32_t *ntok = malloc((size_t)b->B * sizeof *ntok);
    if (!bestv || !logp || !ntok) {
        free(bestv), free(logp), free(ntok);
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory scoring candidates");
    }
    for (int r = 0; r < rows; r++) best[r] = 0, bestv[r] = -1e300;
    int rc = 0;
    for (int k = 0; k < cfg->n_candidates && rc == 0; k++) {
        const int32_t *ids = cands->ids + (size_t)k * (size_t)cands->stride;
        int n = cands->len[k];
        for (int r = 0; r < b->B; r++) {
            int32_t *din = b->dec_in + (size_t)r * (size_t)b->Ls, *tg = b->targets + (size_t)r * (size_t)b->Ls;
            for (int t = 0; t < b->Ls; t++) din[t] = mc->pad_id, tg[t] = PVLM_IGNORE;
            din[0] = mc->bos_id;
            for (int t = 0; t < n; t++) din[t + 1] = ids[t], tg[t] = ids[t];
            tg[n] = mc->eos_id;
            b->suffix_len[r] = n + 1;
        }
        if (pvlm_model_score(m, b, logp, ntok, err)) { rc = -1; break; }
        for (int r = 0; r < rows; r++) {
            double v = cfg->length_norm ? logp[r] / (ntok[r] > 0 ? ntok[r] : 1) : logp[r];
            if (v > bestv[r]) bestv[r] = v, best[r] = k;
        }
    }
    free(bestv), free(logp), free(ntok);
    return rc;
}

/* Generate texts for items[lo, hi) on this rank into out[0..hi-lo). */
static int run_local(pvlm_model *m, const pvlm_tokenizer *tok, pvlm_imgshard_reader *shard, const pvlm_gen_item *items,
                     size_t lo, size_t hi, const pvlm_gen_config *cfg, char **out, int64_t *img_errors, int is_root,
                     size_t total, int world, pvlm_err *err) {
    const pvlm_model_config *mc = &m->cfg;
    int B = cfg->batch_size > 0 ? cfg->batch_size : 1;
    pvlm_batch b;
    if (pvlm_batch_alloc(&b, B, mc->image_size, mc->max_prefix_len, mc->max_suffix_len, err)) return -1;
    pvlm_imgprep prep;
    int prep_ok = pvlm_imgprep_init(&prep, err) == 0;
    pvlm_tok_cache *cache = pvlm_tok_cache_new(0, err);
    int max_len = cfg->dec.max_len > 0 ? cfg->dec.max_len : mc->max_suffix_len;
    int32_t *ids = malloc((size_t)B * (size_t)max_len * sizeof *ids), *lens = malloc((size_t)B * sizeof *lens);
    int *best = malloc((size_t)B * sizeof *best);
    pvlm_imgrec rec;
    memset(&rec, 0, sizeof rec);
    cand_ids cands = {NULL, NULL, 0};
    int rc = 0;
    if (!prep_ok || !cache || !ids || !lens || !best) {
        rc = prep_ok && cache ? pvlm_err_set(err, PVLM_ENOMEM, "out of memory in generation") : -1;
        goto done;
    }
    if (cfg->n_candidates > 0 && (rc = cand_ids_encode(&cands, tok, cache, cfg, b.Ls - 1, err))) goto done;
    double t0 = pvlm_now(), last = t0;
    for (size_t start = lo; start < hi && rc == 0; start += (size_t)B) {
        int rows = (int)(hi - start < (size_t)B ? hi - start : (size_t)B);
        pvlm_batch_clear(&b, mc->pad_id);
        for (int r = 0; r < B; r++) {
            const pvlm_gen_item *it = &items[start + (size_t)(r < rows ? r : 0)];
            if (r < rows) load_row_image(it, shard, &prep, &rec, &b, r, cfg->resize_mode, img_errors);
            /* padding rows repeat row 0's prefix so every row is a valid sample */
            int n = encode_into(tok, cache, it->prefix, b.prefix + (size_t)r * (size_t)b.Lp, b.Lp, err);
            if (n < 0) { rc = -1; break; }
            if (n == 0 && !b.has_image[r]) { /* a text-only sample needs a prefix token */
                b.prefix[(size_t)r * (size_t)b.Lp] = mc->bos_id;
                n = 1;
            }
            b.prefix_len[r] = n;
            b.sample_id[r] = it->id;
        }
        if (rc) break;
        /* a row whose image could not be read is still computed (the batch keeps its shape) but gets
         * no text: an answer from the prefix alone is not an answer about the image */
        if (cfg->n_candidates > 0) {
            if ((rc = score_candidates(m, &cands, &b, rows, cfg, best, err))) break;
            for (int r = 0; r < rows; r++) {
                if (!b.has_image[r]) continue;
                out[start - lo + (size_t)r] = strdup(cfg->candidates[best[r]]);
                if (!out[start - lo + (size_t)r]) rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
            }
        } else {
            if ((rc = pvlm_decode(m, &b, &cfg->dec, ids, lens, NULL, err))) break;
            for (int r = 0; r < rows && rc == 0; r++) {
                if (!b.has_image[r]) continue;
                char *text = NULL;
                size_t len = 0;
                rc = pvlm_tokenizer_decode_alloc(tok, ids + (size_t)r * (size_t)max_len, (size_t)lens[r],
                                                 PVLM_TOK_SKIP_SPECIAL, &text, &len, err);
                if (rc == 0) {
                    /* byte-level BPE can emit a partial UTF-8 sequence; results are JSON text */
                    char *clean = pvlm_utf8_sanitize(text, len, NULL);
                    free(text);
                    if (!clean) rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
                    else pvlm_gen_clean_text(clean);
                    out[start - lo + (size_t)r] = clean;
                }
            }
        }
        double now = pvlm_now();
        if (is_root && cfg->progress_every > 0 && now - last >= cfg->progress_every) {
            size_t done_local = start + (size_t)rows - lo;
            double rate = (double)done_local / (now - t0) * world;
            pvlm_info("generated %zu/%zu items on rank 0 (about %.1f items/s over %d ranks, ETA %.0fs)", done_local,
                      hi - lo, rate, world, rate > 0 ? (double)(total - done_local * (size_t)world) / rate : 0.0);
            last = now;
        }
    }
done:
    cand_ids_free(&cands);
    pvlm_imgrec_free(&rec);
    free(ids), free(lens), free(best);
    pvlm_tok_cache_free(cache);
    pvlm_imgprep_free(&prep);
    pvlm_batch_free(&b);
    return rc;
}

int pvlm_gen_run(const pvlm_comm *comm, pvlm_model *m, const pvlm_tokenizer *tok, pvlm_imgshard_reader *shard,
                 const pvlm_gen_item *items, size_t n, const pvlm_gen_config *cfg, char ***texts,
                 pvlm_gen_stats *stats, pvlm_err *err) {
    *texts = NULL;
    int rank = comm ? comm->rank : 0, world = comm ? comm->size : 1;
    size_t lo = n * (size_t)rank / (size_t)world, hi = n * (size_t)(rank + 1) / (size_t)world;
    char **mine = calloc(hi - lo + 1, sizeof *mine);
    if (!mine) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for %zu results", hi - lo);
    int64_t img_errors = 0;
    double t0 = pvlm_now();
    int rc = run_local(m, tok, shard, items, lo, hi, cfg, mine, &img_errors, rank == 0, n, world, err);
    double secs = pvlm_now() - t0;
    /* Build this rank's JSON part (null: no result), then agree on failure before the collective
     * gather, so one failing rank cannot leave the others waiting in it. */
    json_t *arr = json_array(), *all = NULL;
    for (size_t i = 0; rc == 0 && i < hi - lo; i++)
        if (json_array_append_new(arr, mine[i] ? json_string(mine[i]) : json_null()))
            rc = pvlm_err_set(err, PVLM_EINVAL, "result of item %zu is not valid UTF-8", lo + i);
    int any_fail = rc != 0;
    if (comm && pvlm_comm_or(comm, rc != 0, &any_fail, err)) rc = -1;
    if (any_fail && rc == 0) rc = pvlm_err_set(err, PVLM_EMPI, "generation failed on another rank");
    if (rc == 0) {
        if (comm) rc = pvlm_comm_gather_json(comm, arr, &all, 0, err);
        else all = json_pack("[O]", arr);
        if (rc == 0 && rank == 0) {
            char **outv = calloc(n + 1, sizeof *outv);
            size_t k = 0;
            if (!outv) rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory gathering results");
            for (size_t r = 0; rc == 0 && r < json_array_size(all); r++) {
                json_t *part = json_array_get(all, r), *s;
                size_t idx;
                json_array_foreach(part, idx, s) {
                    if (k >= n) break;
                    if (json_is_string(s) && !(outv[k] = strdup(json_string_value(s))))
                        rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory gathering results");
                    k++;
                }
            }
            if (rc == 0 && k != n) rc = pvlm_err_set(err, PVLM_EMPI, "gathered %zu results for %zu items", k, n);
            if (rc == 0) *texts = outv;
            else pvlm_gen_texts_free(outv, n);
        }
    }
    json_decref(arr);
    json_decref(all);
    if (stats) {
        double v[3] = {(double)(hi - lo), (double)img_errors, secs};
        if (comm) {
            pvlm_comm_sum_f64(comm, v, 2, NULL);
            pvlm_comm_max_f64(comm, v + 2, 1, NULL);
        }
        stats->items = (int64_t)v[0], stats->image_errors = (int64_t)v[1], stats->seconds = v[2];
    }
    pvlm_gen_texts_free(mine, hi - lo);
    return rc;
}
