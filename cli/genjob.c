/* genjob.c - see genjob.h. */
#include "cli/genjob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "finetune/ftckpt.h"

int pvlm_genjob_items_alloc(pvlm_genjob_items *l, size_t n, const char *what, pvlm_err *err) {
    l->n = n;
    l->items = calloc(n + 1, sizeof *l->items);
    l->paths = calloc(n + 1, sizeof *l->paths);
    l->prefixes = calloc(n + 1, sizeof *l->prefixes);
    if (!l->items || !l->paths || !l->prefixes)
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for %zu %s", n, what);
    return 0;
}

int pvlm_genjob_items_set_path(pvlm_genjob_items *l, size_t i, const char *path, pvlm_err *err) {
    l->paths[i] = strdup(path);
    if (!l->paths[i]) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for %s", path);
    l->items[i].image_path = l->paths[i];
    return 0;
}

void pvlm_genjob_items_free(pvlm_genjob_items *l) {
    for (size_t i = 0; i < l->n; i++) {
        if (l->paths) free(l->paths[i]);
        if (l->prefixes) free(l->prefixes[i]);
    }
    free(l->paths);
    free(l->prefixes);
    free(l->items);
    memset(l, 0, sizeof *l);
}

int pvlm_genjob_start(pvlm_genjob *j, int *argc, char ***argv, int threads, pvlm_err *err) {
    memset(j, 0, sizeof *j);
    return pvlm_comm_start(&j->comm, argc, argv, threads, err);
}

int pvlm_genjob_load(pvlm_genjob *j, const char *ckpt, const char *tokdir, const char *precision, pvlm_err *err) {
    if (pvlm_ftckpt_load_any(ckpt, tokdir, &j->model, &j->tok, err)) return -1;
    return pvlm_model_set_precision_name(&j->model, precision, err);
}

void pvlm_genjob_config(const pvlm_genjob *j, pvlm_gen_config *gc, int beam, int max_len, int batch) {
    pvlm_gen_config_default(gc, &j->model.cfg);
    gc->dec.beam_size = beam;
    gc->dec.max_len = max_len < j->model.cfg.max_suffix_len ? max_len : j->model.cfg.max_suffix_len;
    gc->batch_size = batch;
}

int pvlm_genjob_run(pvlm_genjob *j, pvlm_imgshard_reader *shard, const pvlm_genjob_items *l, size_t n,
                    const pvlm_gen_config *gc, pvlm_err *err) {
    j->n = n;
    return pvlm_gen_run(&j->comm, &j->model, j->tok, shard, l->items, n, gc, &j->texts, &j->st, err);
}

/* The results array: one object per item with a text, in input order. */
static json_t *results_json(const pvlm_genjob *j, const pvlm_genjob_items *l, const pvlm_genjob_output *o,
                            pvlm_err *err) {
    json_t *res = json_array();
    for (size_t i = 0; res && i < j->n; i++) {
        if (!j->texts[i]) continue; /* unreadable image: no result (reported by the caller) */
        char buf[8192];
        const char *text = j->texts[i];
        if (o->lead) {
            snprintf(buf, sizeof buf, "%s %s", o->lead, j->texts[i]);
            text = buf;
        }
        if (json_array_append_new(res,
                                  json_pack("{s:I, s:s}", o->id_key, (json_int_t)l->items[i].id, o->text_key, text))) {
            json_decref(res);
            res = NULL;
        }
    }
    if (!res) pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory for the results", o->path);
    return res;
}

int pvlm_genjob_write(const pvlm_genjob *j, const pvlm_genjob_items *l, const pvlm_genjob_output *o, pvlm_err *err) {
    if (j->comm.rank != 0) return 0;
    size_t n = j->n, missing = pvlm_gen_report_missing(j->texts, l->items, n, o->id_key);
    if (n > 0 && missing == n)
        return pvlm_err_set(err, PVLM_EINVAL, "none of the %s%zu %s could be read; no results written", o->none_of, n,
                            o->unit);
    json_t *res = results_json(j, l, o, err);
    if (!res) return -1;
    int rc = pvlm_json_save_results(res, o->path, err);
    json_decref(res);
    if (rc == 0)
        pvlm_info("wrote %zu %s to %s: %.1f %s/s, %zu %s", n - missing, o->results, o->path,
                  j->st.seconds > 0 ? (double)j->st.items / j->st.seconds : 0.0, o->unit, missing, o->missing);
    return rc;
}

void pvlm_genjob_close(pvlm_genjob *j) {
    pvlm_gen_texts_free(j->texts, j->n);
    pvlm_tokenizer_free(j->tok);
    pvlm_model_free(&j->model);
    pvlm_comm_finalize(&j->comm);
}
