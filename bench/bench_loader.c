/* bench_loader.c - loader throughput per core vs the trainer's consumption, text tokens/s, and the
 * text-shard compression choice (1 MiB frames vs per-document zstd with and without a trained
 * dictionary). Results go to docs/perf-loader.md.
 *
 * Data (built under --dir, real text where the machine has it):
 *   captions  COCO Karpathy-test captions from ../shared (25k real captions), else synthetic words
 *   documents WordNet glosses (Debian wordnet-base, /usr/share/wordnet/data.noun) packed into
 *             ~2.2 KB documents (C4's mean document size), else the captions
 *   images    synthetic smooth RGB images (gradients + texture + noise) stored as JPEG q90 at
 *             --stored px (the image shard builder stores resized JPEGs)
 *   tokenizer --tokenizer DIR (GPT-2 encoder.json + vocab.bpe), else a BPE vocabulary of
 *             --vocab entries trained here on the documents
 * Measurements (median of --reps runs):
 *   per-core samples/s for image-text only, text-only and the mixed bench batch (threads = 0:
 *   the whole pipeline - LMDB read, JPEG decode, resize, tokenize, PrefixLM formation - on the
 *   calling thread), tokenizer MB/s and tokens/s, and the wait fraction of a simulated trainer that
 *   takes --step-ms per batch with 1 and 2 prefetch threads.
 * Peer: with --model-steps N > 0 (default 2) the trainer's side is measured in the same run: forward +
 * backward of the model's bench config (model/model.h defaults: S=64, d=512, 6+6 layers, V=8192) on a
 * batch from this loader, 1 thread; --step-ms 0 (default) then simulates the trainer with that time.
 * Usage: bench_loader [--dir D] [--reps 5] [--step-ms 0] [--model-steps 2] [--tokenizer DIR] [--batches 40]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zdict.h>
#include <zstd.h>

#include "bench/bench_util.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "io/batch.h"
#include "io/bpe_train.h"
#include "io/image.h"
#include "io/imgshard.h"
#include "io/loader.h"
#include "io/manifest.h"
#include "io/textshard.h"
#include "io/tokenizer.h"
#include "model/model.h"

typedef struct strv {
    char **s;
    size_t n, cap;
} strv;

static void strv_push(strv *v, char *s) {
    if (v->n == v->cap) v->cap = v->cap ? 2 * v->cap : 1024, v->s = realloc(v->s, v->cap * sizeof(char *));
    v->s[v->n++] = s;
}

static void load_captions(strv *caps) {
    const char *sh = getenv("PVLM_SHARED");
    char path[4096];
    pvlm_err err = {0};
    /* a path too long leaves path empty: the load fails and the fallback below is tried */
    pvlm_path_join(path, sizeof path, sh ? sh : "../shared",
                   "data/captions/coco-karpathy-test/captions_karpathy_test.json", &err);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        snprintf(path, sizeof path, "/work/shared/data/captions/coco-karpathy-test/captions_karpathy_test.json");
        j = json_load_file(path, 0, &je);
    }
    json_t *a = json_object_get(j, "annotations");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *c = json_string_value(json_object_get(json_array_get(a, i), "caption"));
        if (c) strv_push(caps, strdup(c));
    }
    json_decref(j);
    if (caps->n == 0) {
        const char *w[] = {"a", "man", "riding", "horse", "on", "the", "beach", "with", "dog", "red", "bus"};
        pvlm_rng r;
        pvlm_rng_seed(&r, 1, 0);
        for (int i = 0; i < 20000; i++) {
            char buf[256];
            size_t n = 0;
            int nw = 6 + (int)pvlm_rng_below(&r, 8);
            for (int k = 0; k < nw; k++)
                n += (size_t)snprintf(buf + n, sizeof buf - n, k ? " %s" : "%s", w[pvlm_rng_below(&r, 11)]);
            strv_push(caps, strdup(buf));
        }
    }
}

static void load_docs(strv *docs, const strv *caps) {
    FILE *f = fopen("/usr/share/wordnet/data.noun", "r");
    char line[65536], doc[8192];
    size_t dn = 0;
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (line[0] == ' ') continue; /* license header */
            char *g = strstr(line, " | ");
            if (!g) continue;
            g += 3;
            size_t n = strcspn(g, "\n");
            while (n && g[n - 1] == ' ') n--;
            if (dn + n + 2 >= sizeof doc) continue;
            if (dn) doc[dn++] = ' ';
            memcpy(doc + dn, g, n), dn += n;
            if (dn >= 2200) doc[dn] = 0, strv_push(docs, strdup(doc)), dn = 0;
        }
        fclose(f);
    }
    if (docs->n < 1000) {
        for (size_t i = 0; i < caps->n; i++) {
            size_t n = strlen(caps->s[i]);
            if (dn + n + 2 >= sizeof doc) continue;
            if (dn) doc[dn++] = ' ';
            memcpy(doc + dn, caps->s[i], n), dn += n;
            if (dn >= 2200) doc[dn] = 0, strv_push(docs, strdup(doc)), dn = 0;
        }
    }
}

static int add_shard(pvlm_manifest *m, const char *dir, const char *name, int64_t records, pvlm_err *err) {
    char path[8400];
    uint64_t ck;
    if (pvlm_path_join(path, sizeof path, dir, name, err) || pvlm_hash_file(path, &ck, err)) return -1;
    FILE *f = fopen(path, "rb");
    fseeko(f, 0, SEEK_END);
    uint64_t sz = (uint64_t)ftello(f);
    fclose(f);
    return pvlm_manifest_add_shard(m, name, records, sz, ck, NULL, err);
}

static int build_text(const char *dir, const strv *docs, pvlm_err *err) {
    pvlm_manifest m;
    pvlm_manifest_init(&m, "text", err);
    char path[8400];
    if (pvlm_path_join(path, sizeof path, dir, "text-00000.pvt", err)) return -1;
    pvlm_textshard_writer *w = pvlm_textshard_writer_open(path, 1 << 20, 3, err);
    if (!w) return -1;
    for (size_t i = 0; i < docs->n; i++)
        if (pvlm_textshard_writer_add(w, docs->s[i], strlen(docs->s[i]), err)) return -1;
    if (pvlm_textshard_writer_close(w, NULL, err) || add_shard(&m, dir, "text-00000.pvt", (int64_t)docs->n, err))
        return -1;
    int rc = pvlm_path_join(path, sizeof path, dir, "manifest.json", err) || pvlm_manifest_save(&m, path, err) ? -1 : 0;
    pvlm_manifest_free(&m);
    return rc;
}

static int build_images(const char *dir, const strv *caps, int n, int stored, pvlm_err *err) {
    pvlm_manifest m;
    pvlm_manifest_init(&m, "images", err);
    char path[8400];
    if (pvlm_path_join(path, sizeof path, dir, "images-00000-of-00001.lmdb", err)) return -1;
    pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(path, NULL, err);
    if (!w) return -1;
    pvlm_image im;
    pvlm_image_alloc(&im, stored, stored, err);
    pvlm_rng r;
    pvlm_rng_seed(&r, 7, 0);
    for (int i = 0; i < n; i++) {
        double fx = pvlm_rng_uniform(&r) * 0.2, fy = pvlm_rng_uniform(&r) * 0.2, ph = pvlm_rng_uniform(&r) * 6;
        int base[3] = {(int)pvlm_rng_below(&r, 200), (int)pvlm_rng_below(&r, 200), (int)pvlm_rng_below(&r, 200)};
        for (int y = 0; y < stored; y++)
            for (int x = 0; x < stored; x++)
                for (int c = 0; c < 3; c++) {
                    double v = base[c] + 40 * ((double)x / stored) + 30 * __builtin_sin(fx * x + fy * y + ph + c) +
                               (double)pvlm_rng_below(&r, 12);
                    im.rgb[((size_t)y * stored + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        uint8_t *jpg = NULL;
        size_t jn;
        if (pvlm_image_encode_jpeg(NULL, &im, 90, &jpg, &jn, err)) return -1;
        char id[32];
        snprintf(id, sizeof id, "%d", i);
        const char *cv[1] = {caps->s[(size_t)i % caps->n]};
        pvlm_imgrec rec;
        memset(&rec, 0, sizeof rec);
        rec.id = id, rec.ncaptions = 1, rec.captions = cv, rec.orig_w = rec.orig_h = stored;
        rec.stored_w = rec.stored_h = stored, rec.encoding = PVLM_IMG_ENC_JPEG, rec.image = jpg, rec.image_len = jn;
        int rc = pvlm_imgshard_writer_add(w, &rec, err);
        free(jpg);
        if (rc) return -1;
    }
    pvlm_image_free(&im);
    if (pvlm_imgshard_writer_finish(w, NULL, err) || add_shard(&m, dir, "images-00000-of-00001.lmdb", n, err))
        return -1;
    int rc = pvlm_path_join(path, sizeof path, dir, "manifest.json", err) || pvlm_manifest_save(&m, path, err) ? -1 : 0;
    pvlm_manifest_free(&m);
    return rc;
}

typedef struct run_result {
    double samples_per_s, tokens_per_s, wait_frac, produce_per_batch, frames_per_text;
} run_result;

/* Run nb batches; step_s > 0 simulates a trainer busy for step_s per batch. */
static int run(pvlm_loader_config *c, int nb, double step_s, int reps, run_result *out) {
    double sps[32], tps[32], wf[32], pb[32], fpt[32];
    pvlm_err err = {0};
    for (int r = 0; r < reps; r++) {
        c->seed = (uint64_t)r + 1;
        pvlm_loader *L = pvlm_loader_open(c, &err);
        if (!L) {
            fprintf(stderr, "loader: %s\n", err.msg);
            return -1;
        }
        pvlm_batch b;
        pvlm_batch_alloc(&b, c->B, c->S, c->Lp, c->Ls, &err);
        /* one warm-up batch (thread start, first frames) */
        if (pvlm_loader_next(L, &b, &err)) return -1;
        pvlm_loader_stats s0, s1;
        pvlm_loader_stats_get(L, &s0);
        double t0 = pvlm_now();
        for (int k = 0; k < nb; k++) {
            if (pvlm_loader_next(L, &b, &err)) {
                fprintf(stderr, "next: %s\n", err.msg);
                return -1;
            }
            if (step_s > 0) {
                double until = pvlm_now() + step_s;
                while (pvlm_now() < until) {
                    struct timespec ts = {0, 200000};
                    nanosleep(&ts, NULL);
                }
            }
        }
        double dt = pvlm_now() - t0;
        pvlm_loader_stats_get(L, &s1);
        sps[r] = (double)nb * c->B / dt;
        tps[r] = (double)(s1.tokens - s0.tokens) / dt;
        wf[r] = (s1.wait_s - s0.wait_s) / dt;
        pb[r] = (s1.produce_s - s0.produce_s) / nb;
        fpt[r] = s1.samples_text > s0.samples_text
                     ? (double)(s1.frames_read - s0.frames_read) / (double)(s1.samples_text - s0.samples_text)
                     : 0;
        pvlm_batch_free(&b);
        pvlm_loader_close(L);
    }
    out->samples_per_s = bench_median(sps, reps), out->tokens_per_s = bench_median(tps, reps);
    out->wait_frac = bench_median(wf, reps), out->produce_per_batch = bench_median(pb, reps);
    out->frames_per_text = bench_median(fpt, reps);
    return 0;
}

static void compression(const strv *docs, int reps) {
    /* Concatenate the first ~8 MiB of documents. */
    size_t total = 0, n = 0;
    while (n < docs->n && total < (8u << 20)) total += strlen(docs->s[n++]);
    size_t *sz = malloc(n * sizeof *sz);
    char *all = malloc(total);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) sz[i] = strlen(docs->s[i]), memcpy(all + pos, docs->s[i], sz[i]), pos += sz[i];
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    size_t cap = ZSTD_compressBound(1 << 20) + (1 << 20);
    char *cbuf = malloc(cap), *dbuf = malloc(1 << 21);
    /* (a) 1 MiB frames */
    size_t comp_frames = 0;
    for (size_t o = 0; o < total; o += 1 << 20) {
        size_t len = total - o < (1u << 20) ? total - o : (1u << 20);
        comp_frames += ZSTD_compressCCtx(cc, cbuf, cap, all + o, len, 3);
    }
    /* random access to one doc = decompress its whole frame */
    double t_frame[32];
    size_t c1 = ZSTD_compressCCtx(cc, cbuf, cap, all, total < (1u << 20) ? total : (1u << 20), 3);
    for (int r = 0; r < reps; r++) {
        double t0 = pvlm_now();
        for (int k = 0; k < 20; k++) ZSTD_decompressDCtx(dc, dbuf, 1 << 21, cbuf, c1);
        t_frame[r] = (pvlm_now() - t0) / 20;
    }
    /* (b) per document, no dictionary */
    size_t comp_doc = 0;
    for (size_t i = 0, o = 0; i < n; o += sz[i], i++) comp_doc += ZSTD_compressCCtx(cc, cbuf, cap, all + o, sz[i], 3);
    /* (c) per document with a 110 KB dictionary trained on the first half (the zstd CLI's default size) */
    size_t half = n / 2, hb = 0;
    for (size_t i = 0; i < half; i++) hb += sz[i];
    size_t dcap = 112640;
    char *dict = malloc(dcap);
    size_t dlen = ZDICT_trainFromBuffer(dict, dcap, all, sz, (unsigned)half);
    size_t comp_dict = 0, raw_test = 0;
    double t_doc[32];
    if (!ZDICT_isError(dlen)) {
        ZSTD_CDict *cd = ZSTD_createCDict(dict, dlen, 3);
        ZSTD_DDict *dd = ZSTD_createDDict(dict, dlen);
        size_t o = hb;
        size_t one = 0, onelen = sz[half];
        for (size_t i = half; i < n; o += sz[i], i++) {
            size_t c = ZSTD_compress_usingCDict(cc, cbuf, cap, all + o, sz[i], cd);
            comp_dict += c, raw_test += sz[i];
            if (i == half) one = c;
        }
        ZSTD_compress_usingCDict(cc, cbuf, cap, all + hb, onelen, cd);
        for (int r = 0; r < reps; r++) {
            double t0 = pvlm_now();
            for (int k = 0; k < 2000; k++) ZSTD_decompress_usingDDict(dc, dbuf, 1 << 21, cbuf, one, dd);
            t_doc[r] = (pvlm_now() - t0) / 2000;
        }
        ZSTD_freeCDict(cd), ZSTD_freeDDict(dd);
    }
    size_t raw_doc_test = 0, comp_doc_test = 0;
    for (size_t i = half, o = hb; i < n; o += sz[i], i++)
        raw_doc_test += sz[i], comp_doc_test += ZSTD_compressCCtx(cc, cbuf, cap, all + o, sz[i], 3);
    printf("compression (zstd -3, %zu docs, %.1f MiB, mean doc %.0f B):\n", n, total / 1048576.0, (double)total / n);
    printf("  1 MiB frames:            ratio %.2f   random doc access = decompress one frame: %.2f ms\n",
           (double)total / comp_frames, bench_median(t_frame, reps) * 1e3);
    printf("  per doc, no dictionary:  ratio %.2f\n", (double)total / comp_doc);
    if (comp_dict)
        printf("  per doc, %zu B dict:     ratio %.2f (on held-out half; no-dict on same half %.2f)   decompress one "
               "doc: %.1f us\n",
               dlen, (double)raw_test / comp_dict, (double)raw_doc_test / comp_doc_test,
               bench_median(t_doc, reps) * 1e6);
    ZSTD_freeCCtx(cc), ZSTD_freeDCtx(dc);
    free(cbuf), free(dbuf), free(dict), free(all), free(sz);
}

typedef struct bench_opts {
    const char *dir, *tokdir;
    int reps, nb, stored, nimg, vocab, model_steps;
    double step_ms;
} bench_opts;

/* The flags (usage in the header comment); 0, or 2 for an unknown flag. */
static int parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.dir = "/tmp/pvlm_bench_loader",
                      .reps = 5,
                      .nb = 40,
                      .stored = 96,
                      .nimg = 2048,
                      .vocab = 4096,
                      .model_steps = 2};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            o->dir = argv[i + 1];
        else if (!strcmp(argv[i], "--reps"))
            o->reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches"))
            o->nb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--step-ms"))
            o->step_ms = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokenizer"))
            o->tokdir = argv[i + 1];
        else if (!strcmp(argv[i], "--stored"))
            o->stored = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--vocab"))
            o->vocab = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model-steps"))
            o->model_steps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_loader: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (o->reps < 1) o->reps = 1;
    if (o->reps > 32) o->reps = 32;
    return 0;
}

/* --tokenizer DIR, else a BPE vocabulary trained on the documents and saved under bdir. */
static int get_tokenizer(const bench_opts *o, const strv *docs, const char *bdir, pvlm_tokenizer **tok, pvlm_err *err) {
    if (o->tokdir) {
        if (pvlm_tokenizer_load(o->tokdir, tok, err)) return -1;
        printf("tokenizer: %s (vocab %d)\n", o->tokdir, pvlm_tokenizer_vocab_size(*tok));
        return 0;
    }
    pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(err);
    for (size_t i = 0; i < docs->n && i < 4000; i++) pvlm_bpe_trainer_add(tr, docs->s[i], strlen(docs->s[i]), err);
    if (pvlm_bpe_trainer_run(tr, o->vocab, 2, err) || pvlm_bpe_trainer_save(tr, bdir, err) ||
        pvlm_tokenizer_load(bdir, tok, err))
        return pvlm_err_prefix(err, "tokenizer");
    pvlm_bpe_trainer_free(tr);
    printf("tokenizer: BPE trained here on the documents (vocab %d)\n", pvlm_tokenizer_vocab_size(*tok));
    return 0;
}

/* The tokenizer alone: whole documents, one thread, with a word cache. */
static void bench_tokenize(const pvlm_tokenizer *tok, const strv *docs, int reps) {
    pvlm_err err = {0};
    pvlm_tok_cache *tc = pvlm_tok_cache_new(0, &err);
    int32_t *ids = malloc(sizeof(int32_t) * 65536);
    double mbs[32], tks[32];
    for (int r = 0; r < reps; r++) {
        size_t bytes = 0;
        int64_t ntok = 0;
        double t0 = pvlm_now();
        for (size_t i = 0; i < docs->n && i < 3000; i++) {
            size_t n = strlen(docs->s[i]);
            ntok += pvlm_tokenizer_encode(tok, tc, docs->s[i], n, ids, 65536, &err);
            bytes += n;
        }
        double dt = pvlm_now() - t0;
        mbs[r] = bytes / dt / 1e6, tks[r] = ntok / dt;
    }
    printf("tokenizer encode (whole docs, 1 core): %.2f MB/s, %.0f tokens/s\n", bench_median(mbs, reps),
           bench_median(tks, reps));
    free(ids);
    pvlm_tok_cache_free(tc);
}

/* Per-core throughput of the three mixes, everything on the calling thread. */
static int bench_per_core(pvlm_loader_config *c, const bench_opts *o) {
    run_result r;
    printf("loader, bench config B=32 S=64 Lp=16 Ls=48, per core (threads=0: everything on the calling thread):\n");
    double ratios[3] = {0.0, 1.0, 0.5};
    const char *names[3] = {"image-text only", "text-only", "mixed 50/50"};
    for (int a = 0; a < 3; a++) {
        c->text_ratio = ratios[a], c->threads = 0;
        if (run(c, o->nb, 0, o->reps, &r)) return -1;
        printf("  %-16s %8.0f samples/s  %9.0f tokens/s  %.2f ms/batch  %.4f frames/text sample\n", names[a],
               r.samples_per_s, r.tokens_per_s, 1e3 * c->B / r.samples_per_s, r.frames_per_text);
    }
    return 0;
}

/* The trainer's consumption: forward+backward of the bench model on one loader batch, 1 thread; the
 * median step time into *step_s. */
static int model_peer(pvlm_loader_config *c, const pvlm_tokenizer *tok, int model_steps, double *step_s,
                      pvlm_err *err) {
    pvlm_threads_set(1);
    pvlm_model_config mc;
    pvlm_model_config_default(&mc);
    mc.pad_id = c->pad_id, mc.bos_id = c->bos_id, mc.eos_id = c->eos_id;
    if (mc.vocab_size < pvlm_tokenizer_vocab_size(tok)) mc.vocab_size = pvlm_tokenizer_vocab_size(tok);
    pvlm_model m;
    if (pvlm_model_create(&m, &mc, err)) return pvlm_err_prefix(err, "model");
    pvlm_model_init_weights(&m, 1);
    c->text_ratio = 0.5, c->threads = 0, c->S = mc.image_size, c->Lp = mc.max_prefix_len, c->Ls = mc.max_suffix_len;
    pvlm_loader *L = pvlm_loader_open(c, err);
    pvlm_batch b;
    pvlm_batch_alloc(&b, c->B, c->S, c->Lp, c->Ls, err);
    if (!L || pvlm_loader_next(L, &b, err)) return -1;
    double ts[32];
    for (int k = 0; k < model_steps && k < 32; k++) {
        double t0 = pvlm_now();
        float loss;
        pvlm_model_zero_grad(&m);
        if (pvlm_model_forward(&m, &b, (double)pvlm_batch_count_targets(&b), &loss, NULL, NULL, err) ||
            pvlm_model_backward(&m, &b, NULL, NULL, NULL, err))
            return pvlm_err_prefix(err, "model step");
        ts[k] = pvlm_now() - t0;
    }
    double st = bench_median(ts, model_steps < 32 ? model_steps : 32);
    printf("trainer peer: forward+backward of the model bench config (%.1fM params) on a loader batch, 1 thread: "
           "%.0f ms/step = %.0f samples/s\n",
           m.n_params / 1e6, st * 1e3, c->B / st);
    *step_s = st;
    pvlm_batch_free(&b);
    pvlm_loader_close(L);
    pvlm_model_free(&m);
    return 0;
}

/* A trainer busy step_ms per batch, fed by 1 and 2 prefetch threads: how long it waits. */
static int bench_prefetch(pvlm_loader_config *c, const bench_opts *o, double step_ms) {
    run_result r;
    printf("simulated trainer at %.0f ms/step, mixed 50/50:\n", step_ms);
    for (int th = 1; th <= 2; th++) {
        c->text_ratio = 0.5, c->threads = th;
        /* a slow simulated step needs only a few batches to show whether the loader keeps up */
        int nsim = step_ms > 500 ? 6 : o->nb, rsim = step_ms > 500 && o->reps > 3 ? 3 : o->reps;
        if (run(c, nsim, step_ms / 1e3, rsim, &r)) return -1;
        printf("  prefetch threads %d: wait %.2f%% of step time, worker %.2f ms/batch\n", th, 100 * r.wait_frac,
               1e3 * r.produce_per_batch);
    }
    return 0;
}

/* The image and text shards under dir (img/, txt/; bpe/ holds a trained vocabulary). */
static int build_data(const bench_opts *o, const strv *caps, const strv *docs, char *idir, char *tdir, char *bdir,
                      size_t cap, pvlm_err *err) {
    if (pvlm_path_join(idir, cap, o->dir, "img", err) || pvlm_path_join(tdir, cap, o->dir, "txt", err) ||
        pvlm_path_join(bdir, cap, o->dir, "bpe", err))
        return -1;
    pvlm_err ignored = {0};
    pvlm_rm_rf(o->dir, &ignored);
    return pvlm_mkdir_p(idir, err) || pvlm_mkdir_p(tdir, err) || build_text(tdir, docs, err) ||
                   build_images(idir, caps, o->nimg, o->stored, err)
               ? -1
               : 0;
}

int main(int argc, char **argv) {
    bench_opts o;
    if (parse_args(argc, argv, &o)) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress visible when redirected */
    pvlm_log_set_level(PVLM_LOG_WARN);
    pvlm_err err = {0};
    strv caps = {0}, docs = {0};
    load_captions(&caps);
    load_docs(&docs, &caps);
    char idir[4200], tdir[4200], bdir[4200];
    if (build_data(&o, &caps, &docs, idir, tdir, bdir, sizeof idir, &err)) {
        fprintf(stderr, "bench_loader: building data: %s\n", err.msg);
        return 1;
    }
    printf("data: %zu captions, %zu documents, %d JPEG images %dx%d\n", caps.n, docs.n, o.nimg, o.stored, o.stored);
    pvlm_tokenizer *tok = NULL;
    if (get_tokenizer(&o, &docs, bdir, &tok, &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return 1;
    }
    bench_tokenize(tok, &docs, o.reps);
    compression(&docs, o.reps);

    char im[4300], tm[4300];
    if (pvlm_path_join(im, sizeof im, idir, "manifest.json", &err) ||
        pvlm_path_join(tm, sizeof tm, tdir, "manifest.json", &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return 1;
    }
    pvlm_loader_config c;
    pvlm_loader_config_default(&c);
    c.image_manifest = im, c.text_manifest = tm;
    c.tokenizer = tok;
    c.pad_id = pvlm_tokenizer_pad_id(tok), c.bos_id = pvlm_tokenizer_bos_id(tok), c.eos_id = pvlm_tokenizer_eos_id(tok);
    c.B = 32, c.S = 64, c.Lp = 16, c.Ls = 48;
    if (bench_per_core(&c, &o)) return 1;
    double step_ms = o.step_ms, st = 0;
    if (o.model_steps > 0) {
        if (model_peer(&c, tok, o.model_steps, &st, &err)) {
            fprintf(stderr, "bench_loader: %s\n", err.msg);
            return 1;
        }
        if (step_ms <= 0) step_ms = st * 1e3;
    }
    if (step_ms <= 0) step_ms = 120;
    if (bench_prefetch(&c, &o, step_ms)) return 1;
    pvlm_tokenizer_free(tok);
    for (size_t i = 0; i < caps.n; i++) free(caps.s[i]);
    for (size_t i = 0; i < docs.n; i++) free(docs.s[i]);
    free(caps.s), free(docs.s);
    return 0;
}
