/* ftckpt.c - see ftckpt.h. */
#include "ftckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "model/load.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"

int pvlm_ftckpt_save(const pvlm_model *m, const uint8_t *trainable, const char *path, const char *base_path,
                     uint64_t base_hash, const char *method, const json_t *info, pvlm_err *err) {
    pvlm_st_writer w;
    if (pvlm_st_writer_init(&w, err)) return -1;
    int rc = 0;
    for (int i = 0; i < m->n_views && rc == 0; i++) {
        if (!trainable[i]) continue;
        const pvlm_view *v = &m->views[i];
        rc = pvlm_st_writer_add(&w, v->name, PVLM_ST_F32, v->ndim, v->shape, m->params + v->offset, err);
    }
    json_t *cfg = pvlm_model_config_to_json(&m->cfg);
    char *cfg_s = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    char hex[17];
    pvlm_hash_hex(base_hash, hex);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "format", "pvlm-finetune", err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "version", "1", err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "pvlm_config", cfg_s ? cfg_s : "{}", err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "method", method, err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "base_path", base_path, err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "base_xxh3", hex, err);
    const char *key;
    json_t *val;
    if (info) json_object_foreach((json_t *)info, key, val) {
        if (rc || !json_is_string(val)) continue;
        rc = pvlm_st_writer_meta(&w, key, json_string_value(val), err);
    }
    if (rc == 0) rc = pvlm_st_writer_write(&w, path, err);
    free(cfg_s);
    json_decref(cfg);
    pvlm_st_writer_free(&w);
    return rc;
}

int pvlm_ftckpt_is_finetune(const char *path, pvlm_err *err) {
    pvlm_st_file f;
    if (pvlm_st_open(&f, path, err)) return -1;
    const char *fmt = pvlm_st_meta(&f, "format");
    int yes = fmt && !strcmp(fmt, "pvlm-finetune");
    pvlm_st_close(&f);
    return yes;
}

int pvlm_ftckpt_load(pvlm_model *m, const char *path, const char *base_override, pvlm_err *err) {
    pvlm_st_file f;
    memset(m, 0, sizeof *m);
    if (pvlm_st_open(&f, path, err)) return -1;
    const char *fmt = pvlm_st_meta(&f, "format"), *cfg_s = pvlm_st_meta(&f, "pvlm_config");
    const char *base = base_override ? base_override : pvlm_st_meta(&f, "base_path");
    const char *want_hex = pvlm_st_meta(&f, "base_xxh3");
    int rc = 0;
    uint64_t want = 0, have = 0;
    pvlm_model_config cfg;
    if (!fmt || strcmp(fmt, "pvlm-finetune"))
        rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: not a pvlm finetune file (metadata format is '%s')", path, fmt ? fmt : "");
    else if (!cfg_s || !base || !want_hex || pvlm_hash_parse(want_hex, &want))
        rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: finetune metadata lacks pvlm_config, base_path or base_xxh3", path);
    if (rc == 0) {
        json_t *j = json_loads(cfg_s, 0, NULL);
        rc = j ? pvlm_model_config_from_json(&cfg, j, err) : pvlm_err_set(err, PVLM_EFORMAT, "%s: bad pvlm_config JSON", path);
        json_decref(j);
    }
    char basecopy[4096];
    snprintf(basecopy, sizeof basecopy, "%s", base ? base : "");
    pvlm_st_close(&f);
    if (rc == 0 && pvlm_hash_file(basecopy, &have, err)) rc = pvlm_err_prefix(err, "base checkpoint of %s", path);
    if (rc == 0 && have != want) {
        char h1[17], h2[17];
        pvlm_hash_hex(have, h1);
        pvlm_hash_hex(want, h2);
        rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: base checkpoint %s has hash %s, but the finetune was trained on %s",
                          path, basecopy, h1, h2);
    }
    if (rc == 0) rc = pvlm_model_create(m, &cfg, err);
    if (rc == 0) rc = pvlm_model_load_params(m, basecopy, PVLM_LOAD_ALLOW_MISSING, NULL, err);
    if (rc == 0) rc = pvlm_model_load_params(m, path, PVLM_LOAD_ALLOW_MISSING, NULL, err);
    if (rc) pvlm_model_free(m);
    return rc;
}

int pvlm_ftckpt_load_any(const char *ckpt, const char *tokenizer_dir, pvlm_model *m, pvlm_tokenizer **tok,
                         pvlm_err *err) {
    char path[4096], base[4096] = "";
    *tok = NULL;
    if (pvlm_load_resolve_ckpt(ckpt, path, sizeof path, err)) return -1;
    int ft = pvlm_ftckpt_is_finetune(path, err);
    if (ft <= 0) return ft < 0 ? -1 : pvlm_load_model(path, tokenizer_dir, m, tok, err);
    pvlm_st_file f;
    if (pvlm_st_open(&f, path, err)) return -1;
    const char *b = pvlm_st_meta(&f, "base_path");
    if (b) snprintf(base, sizeof base, "%s", b);
    pvlm_st_close(&f);
    if (!*base) return pvlm_err_set(err, PVLM_EFORMAT, "%s: finetune metadata lacks base_path", path);
    pvlm_model_config cfg;
    if (pvlm_load_tokenizer(base, tokenizer_dir, &cfg, tok, err)) return -1;
    if (pvlm_ftckpt_load(m, path, NULL, err) == 0) return 0;
    pvlm_tokenizer_free(*tok);
    *tok = NULL;
    return -1;
}
