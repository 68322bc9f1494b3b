/* loader.c - see loader.h and docs/loader.md. */
#include "loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/timer.h"
#include "core/utf8.h"
#include "io/image.h"
#include "io/imgprep.h"
#include "io/imgshard.h"
#include "io/manifest.h"
#include "io/textshard.h"
#include "io/tokenizer.h"

const char *const pvlm_loader_skip_names[PVLM_SKIP_NREASONS] = {"image_read", "image_decode", "text_frame",
                                                                "bad_utf8",   "tokenize",     "too_short"};

enum { ST_IMG = 0, ST_TXT = 1 };
#define MAX_SUBSTITUTES 64
#define BADSET_CAP (1 << 16)

/* ---------------------------------------------------------------- permutation */

/* Bijection on [0, n): a 4-round balanced Feistel network on the smallest even number of bits
 * covering n, with cycle walking (re-apply until the value falls inside [0, n)); the domain is at
 * most 4n, so the expected number of walks is < 4. Black & Rogaway, "Ciphers with arbitrary
 * finite domains" (2002), cycle-walking construction. */
static uint64_t feistel(uint64_t n, uint64_t key, uint64_t x) {
    if (n <= 1) return 0;
    int bits = 2;
    while (bits < 64 && (1ull << bits) < n) bits += 2;
    int h = bits / 2;
    uint64_t mask = (1ull << h) - 1;
    do {
        uint64_t L = x >> h, R = x & mask;
        for (uint64_t round = 0; round < 4; round++) {
            uint64_t nl = R;
            R = L ^ (pvlm_mix64(key ^ (round << 56) ^ (R * 0x9E3779B97F4A7C15ull)) & mask);
            L = nl;
        }
        x = (L << h) | R;
    } while (x >= n);
    return x;
}

static uint64_t key3(uint64_t a, uint64_t b, uint64_t c) {
    return pvlm_mix64(pvlm_mix64(pvlm_mix64(a ^ 0x70766c6dull) ^ b) ^ c);
}

int64_t pvlm_loader_permute(uint64_t seed, int stream, int64_t epoch, int64_t n, int64_t block, int64_t p) {
    if (n <= 1) return 0;
    if (block <= 0 || block > n) block = n;
    uint64_t ke = key3(seed, (uint64_t)stream, (uint64_t)epoch);
    /* Rotate by a per-epoch offset so the partial block and the positions left over by the
     * rank split fall on different samples every epoch. */
    uint64_t pr = ((uint64_t)p + pvlm_mix64(ke ^ 0x726f74ull) % (uint64_t)n) % (uint64_t)n;
    uint64_t K = (uint64_t)block, nfull = (uint64_t)n / K;
    if (pr < nfull * K) {
        uint64_t b = feistel(nfull, ke ^ 0x626c6bull, pr / K);
        return (int64_t)(b * K + feistel(K, key3(ke, 0x696e6eull, b), pr % K));
    }
    uint64_t m = (uint64_t)n - nfull * K;
    return (int64_t)(nfull * K + feistel(m, key3(ke, 0x696e6eull, nfull), pr - nfull * K));
}

/* ---------------------------------------------------------------- structures */

/* One earlier partition of an interrupted epoch (docs/loader.md, "Changing the number of ranks"):
 * a list of M positions split over W ranks, q = M / W each, of which the first c of every rank's
 * slice were consumed before the world size changed. */
typedef struct cut_level {
    int64_t M, W, c;
} cut_level;

typedef struct stream {
    int used;
    int64_t N;              /* samples in all shards */
    int64_t q;              /* per rank per epoch */
    int64_t block;          /* shuffle block */
    int n;                  /* samples of this stream per batch */
    int64_t t_base, k_base; /* rank-local sample counter t_base at batch k_base */
    /* Epoch origin: rank-local sample t >= t0 is slice offset (t - t0) % q of epoch e0 + (t - t0) / q.
     * (0, 0) unless a resume changed the world size. */
    int64_t t0, e0;
    /* An interrupted epoch continued under a new world size, for t in [cut_start, t0): the positions
     * of epoch cut_epoch that the ncut levels left (cut_M of them), cut_q per current rank. */
    int ncut;
    cut_level *cut; /* [ncut], owned */
    int64_t cut_epoch, cut_start, cut_M, cut_q;
    int nshards;
    int64_t *start; /* [nshards+1] first global index of each shard */
    pvlm_imgshard_reader **img;
    pvlm_textshard **txt;
} stream;

typedef struct frame_slot {
    pvlm_textframe f;
    int shard;
    uint64_t used;
} frame_slot;

typedef struct wctx { /* per-thread scratch */
    frame_slot *frames;
    int nframes;
    uint64_t tick;
    pvlm_imgrec rec;
    pvlm_imgprep prep;
    pvlm_tok_cache *cache;
    int32_t *tok;
    int tok_cap;
    int64_t frames_read; /* zstd frames decompressed (counted into the batch being produced) */
} wctx;

typedef struct slot {
    int64_t k;  /* batch index held, -1 none */
    int status; /* 0 empty/filling, 1 ready, 2 error */
    pvlm_batch b;
    pvlm_err err;
    int64_t skipped[PVLM_SKIP_NREASONS];
    int64_t tokens, frames_read;
    double produce_s;
} slot;

struct pvlm_loader {
    pvlm_loader_config c;
    stream st[2];
    /* ring */
    int depth;
    slot *slots;
    int64_t next_claim, next_consume;
    int nthreads, running, stop;
    pthread_t *th;
    wctx *w; /* [max(1, threads)] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* log-once set of bad samples */
    pthread_mutex_t bad_mu;
    uint64_t *bad;
    int nbad, bad_full_logged;
    pvlm_loader_stats stats;
    int cache_frames; /* decompressed frames cached per worker */
};

void pvlm_loader_config_default(pvlm_loader_config *c) {
    memset(c, 0, sizeof *c);
    c->world = 1;
    c->B = 32, c->S = 64, c->Lp = 16, c->Ls = 48;
    c->text_ratio = 0.5;
    c->mode = PVLM_LOADER_EPOCH;
    c->threads = 2;
    c->pad_id = 0, c->bos_id = 1, c->eos_id = 2;
}

/* ---------------------------------------------------------------- opening */

static int open_stream(pvlm_loader *L, int which, const char *mpath, pvlm_err *err) {
    stream *s = &L->st[which];
    pvlm_manifest m;
    if (pvlm_manifest_load(mpath, &m, err)) {
        pvlm_manifest_free(&m);
        return pvlm_err_prefix(err, "loader");
    }
    const char *want = which == ST_IMG ? "images" : "text";
    if (strcmp(m.kind, want)) {
        pvlm_err_set(err, PVLM_EINVAL, "loader: %s has kind '%s', expected '%s'", mpath, m.kind, want);
        pvlm_manifest_free(&m);
        return -1;
    }
    char dir[4096], path[8192];
    pvlm_dirname(mpath, dir, sizeof dir);
    s->nshards = m.nshards;
    s->start = calloc((size_t)m.nshards + 1, sizeof(int64_t));
    if (which == ST_IMG)
        s->img = calloc((size_t)m.nshards + 1, sizeof *s->img);
    else
        s->txt = calloc((size_t)m.nshards + 1, sizeof *s->txt);
    if (!s->start || (!s->img && !s->txt)) {
        pvlm_manifest_free(&m);
        return pvlm_err_set(err, PVLM_ENOMEM, "loader: out of memory");
    }
    for (int i = 0; i < m.nshards; i++) {
        if (pvlm_manifest_shard_path(&m, i, dir, path, sizeof path)) {
            pvlm_err_set(err, PVLM_EINVAL, "loader: %s: the path of shard %d does not fit in %zu bytes", mpath, i,
                         sizeof path);
            goto fail;
        }
        int64_t have;
        if (which == ST_IMG) {
            s->img[i] = pvlm_imgshard_open_sized(path, 0, m.shards[i].bytes, err);
            if (!s->img[i]) goto fail;
            have = pvlm_imgshard_count(s->img[i]);
        } else {
            s->txt[i] = pvlm_textshard_open(path, err);
            if (!s->txt[i]) goto fail;
            have = pvlm_textshard_ndocs(s->txt[i]);
        }
        if (have != m.shards[i].records) {
            pvlm_err_set(err, PVLM_EFORMAT, "loader: %s holds %lld records but %s lists %lld", path, (long long)have,
                         mpath, (long long)m.shards[i].records);
            goto fail;
        }
        s->start[i + 1] = s->start[i] + have;
    }
    s->N = s->start[m.nshards];
    pvlm_manifest_free(&m);
    if (s->N < L->c.world)
        return pvlm_err_set(err, PVLM_EINVAL, "loader: %s has %lld samples, fewer than the %d ranks", mpath,
                            (long long)s->N, L->c.world);
    s->q = s->N / L->c.world;
    s->used = 1;
    return 0;
fail:
    pvlm_manifest_free(&m);
    return -1;
}

static void close_stream(stream *s) {
    for (int i = 0; i < s->nshards; i++) {
        if (s->img && s->img[i]) pvlm_imgshard_close(s->img[i]);
        if (s->txt && s->txt[i]) pvlm_textshard_close(s->txt[i]);
    }
    free(s->img), free(s->txt), free(s->start), free(s->cut);
    memset(s, 0, sizeof *s);
}

static int wctx_init(pvlm_loader *L, wctx *w, pvlm_err *err) {
    memset(w, 0, sizeof *w);
    w->nframes = L->cache_frames;
    w->frames = calloc((size_t)w->nframes, sizeof *w->frames);
    w->tok_cap = L->c.Lp + L->c.Ls + 2;
    w->tok = malloc(sizeof(int32_t) * (size_t)w->tok_cap);
    if (!w->frames || !w->tok) return pvlm_err_set(err, PVLM_ENOMEM, "loader: out of memory");
    for (int i = 0; i < w->nframes; i++) w->frames[i].f.frame = -1, w->frames[i].shard = -1;
    if (L->st[ST_IMG].used && pvlm_imgprep_init(&w->prep, err)) return -1;
    w->cache = pvlm_tok_cache_new(8u << 20, err);
    return w->cache ? 0 : -1;
}

static void wctx_free(wctx *w) {
    if (w->frames)
        for (int i = 0; i < w->nframes; i++) pvlm_textframe_free(&w->frames[i].f);
    free(w->frames);
    pvlm_imgrec_free(&w->rec);
    pvlm_imgprep_free(&w->prep);
    if (w->cache) pvlm_tok_cache_free(w->cache);
    free(w->tok);
    memset(w, 0, sizeof *w);
}

pvlm_loader *pvlm_loader_open(const pvlm_loader_config *c, pvlm_err *err) {
    if (c->world < 1 || c->rank < 0 || c->rank >= c->world) {
        pvlm_err_set(err, PVLM_EINVAL, "loader: rank %d of world %d", c->rank, c->world);
        return NULL;
    }
    if (c->B < 1 || c->S < 1 || c->Lp < 0 || c->Ls < 2) {
        pvlm_err_set(err, PVLM_EINVAL, "loader: bad shapes B=%d S=%d Lp=%d Ls=%d (need B,S >= 1, Ls >= 2)", c->B, c->S,
                     c->Lp, c->Ls);
        return NULL;
    }
    if (!(c->text_ratio >= 0 && c->text_ratio <= 1) || (!c->image_manifest && !c->text_manifest)) {
        pvlm_err_set(err, PVLM_EINVAL, "loader: text_ratio %g not in [0,1] or no manifest given", c->text_ratio);
        return NULL;
    }
    if (!c->tokenizer) {
        pvlm_err_set(err, PVLM_EINVAL, "loader: no tokenizer");
        return NULL;
    }
    if (c->mode != PVLM_LOADER_EPOCH && c->mode != PVLM_LOADER_RESAMPLE) {
        pvlm_err_set(err, PVLM_EINVAL, "loader: unknown mode %d", c->mode);
        return NULL;
    }
    pvlm_loader *L = calloc(1, sizeof *L);
    if (!L) {
        pvlm_err_set(err, PVLM_ENOMEM, "loader: out of memory");
        return NULL;
    }
    L->c = *c;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    pthread_mutex_init(&L->bad_mu, NULL);
    L->nthreads = c->threads > 0 ? c->threads : 0;
    L->depth = c->depth > 0 ? c->depth : 2 * L->nthreads + 1;
    if (L->depth < 1) L->depth = 1;
    /* Samples per batch of each stream: text gets round(ratio*B); a missing stream gets none. */
    int n_txt = (int)(c->text_ratio * c->B + 0.5);
    if (!c->text_manifest) n_txt = 0;
    if (!c->image_manifest) n_txt = c->B;
    if (n_txt > 0 && c->Lp < 1) {
        pvlm_err_set(err, PVLM_EINVAL, "loader: text-only samples need Lp >= 1");
        goto fail;
    }
    if (c->image_manifest && c->B - n_txt > 0 && open_stream(L, ST_IMG, c->image_manifest, err)) goto fail;
    if (c->text_manifest && n_txt > 0 && open_stream(L, ST_TXT, c->text_manifest, err)) goto fail;
    L->st[ST_IMG].n = c->B - n_txt;
    L->st[ST_TXT].n = n_txt;
    L->st[ST_IMG].block = L->st[ST_IMG].N; /* LMDB is random access: full shuffle */
    L->st[ST_TXT].block = c->shuffle_block > 0 ? c->shuffle_block : 8192;
    if (L->st[ST_TXT].block > L->st[ST_TXT].N) L->st[ST_TXT].block = L->st[ST_TXT].N;
    /* Frame cache: a worker visits the documents of one shuffle block in random order, so it must
     * hold every frame the block spans (block / mean docs per frame, +2 for the frames cut by the
     * block edges, +1 for the rotation's second block) or it would decompress a frame per document. */
    L->cache_frames = c->cache_frames > 0 ? c->cache_frames : 4;
    if (L->st[ST_TXT].used) {
        int64_t nf = 0;
        for (int i = 0; i < L->st[ST_TXT].nshards; i++) nf += pvlm_textshard_nframes(L->st[ST_TXT].txt[i]);
        double per = nf > 0 ? (double)L->st[ST_TXT].N / (double)nf : 1.0;
        int need = (int)((double)L->st[ST_TXT].block / (per > 1 ? per : 1) + 0.999) + 3;
        if (need > 1024) need = 1024;
        if (c->cache_frames <= 0 && need > L->cache_frames)
            L->cache_frames = need;
        else if (c->cache_frames > 0 && c->cache_frames < need)
            pvlm_warn("loader: cache_frames %d < %d frames per shuffle block of %lld docs: frames will be "
                      "decompressed repeatedly",
                      c->cache_frames, need, (long long)L->st[ST_TXT].block);
    }
    L->slots = calloc((size_t)L->depth, sizeof *L->slots);
    L->bad = calloc(BADSET_CAP, sizeof(uint64_t));
    int nw = L->nthreads > 0 ? L->nthreads : 1;
    L->w = calloc((size_t)nw, sizeof *L->w);
    L->th = calloc((size_t)nw, sizeof *L->th);
    if (!L->slots || !L->bad || !L->w || !L->th) {
        pvlm_err_set(err, PVLM_ENOMEM, "loader: out of memory");
        goto fail;
    }
    for (int i = 0; i < L->depth; i++) {
        L->slots[i].k = -1;
        if (pvlm_batch_alloc(&L->slots[i].b, c->B, c->S, c->Lp, c->Ls, err)) goto fail;
    }
    for (int i = 0; i < nw; i++)
        if (wctx_init(L, &L->w[i], err)) goto fail;
    return L;
fail:
    pvlm_loader_close(L);
    return NULL;
}

/* ---------------------------------------------------------------- producing one batch */

/* Log a bad sample once per process: key names the sample (or, for a corrupt zstd frame, the
 * frame, so one bad frame gives one line rather than one per document). */
static void log_bad(pvlm_loader *L, uint64_t key, int stream_id, int reason, const char *msg) {
    uint64_t h = pvlm_mix64(key + 1);
    int fresh = 0;
    pthread_mutex_lock(&L->bad_mu);
    if (L->nbad < BADSET_CAP / 2) {
        size_t i = h & (BADSET_CAP - 1);
        while (L->bad[i] && L->bad[i] != key + 1) i = (i + 1) & (BADSET_CAP - 1);
        if (!L->bad[i]) L->bad[i] = key + 1, L->nbad++, fresh = 1;
    } else if (!L->bad_full_logged) {
        L->bad_full_logged = 1;
        pvlm_warn("loader: more than %d bad samples; further ones are only counted", BADSET_CAP / 2);
    }
    pthread_mutex_unlock(&L->bad_mu);
    if (fresh)
        pvlm_warn("loader: skipping %s sample (%s): %s", stream_id == ST_IMG ? "image-text" : "text",
                  pvlm_loader_skip_names[reason], msg);
}

static int shard_of(const stream *s, int64_t g) {
    int lo = 0, hi = s->nshards - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (s->start[mid] <= g)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Tokenize text[0..n) into w->tok (at most cap ids). Returns the id count, or -1. The text is
 * first cut to `max_bytes` at a UTF-8 character boundary (*cut = 1 if that dropped bytes). */
static int tokenize(pvlm_loader *L, wctx *w, const char *text, size_t n, size_t max_bytes, int cap, int *cut,
                    pvlm_err *err) {
    *cut = 0;
    if (n > max_bytes) {
        size_t m = max_bytes;
        while (m > 0 && ((uint8_t)text[m] & 0xC0) == 0x80) m--;
        n = m, *cut = 1;
    }
    if (!pvlm_utf8_valid(text, n)) return pvlm_err_set(err, PVLM_EFORMAT, "invalid UTF-8"), -2;
    if (cap > w->tok_cap) cap = w->tok_cap;
    int64_t r = pvlm_tokenizer_encode(L->c.tokenizer, w->cache, text, n, w->tok, (size_t)cap, err);
    if (r < 0) return -1;
    return r > cap ? cap : (int)r;
}

/* Write one PrefixLM example into row i: prefix = ids[0..k), suffix = ids[k..k+ns) (+ eos). */
static int64_t place(const pvlm_loader *L, pvlm_batch *b, int i, const int32_t *ids, int k, int ns, int eos) {
    int Lp = L->c.Lp, Ls = L->c.Ls;
    for (int j = 0; j < k; j++) b->prefix[(size_t)i * Lp + j] = ids[j];
    b->prefix_len[i] = k;
    int n = ns + (eos ? 1 : 0);
    int32_t *din = b->dec_in + (size_t)i * Ls, *tg = b->targets + (size_t)i * Ls;
    for (int j = 0; j < n; j++) {
        int32_t s = j < ns ? ids[k + j] : L->c.eos_id;
        tg[j] = s;
        din[j] = j == 0 ? L->c.bos_id : (j - 1 < ns ? ids[k + j - 1] : L->c.eos_id);
    }
    b->suffix_len[i] = n;
    return k + n;
}

/* Text-only example from document bytes. Returns 0, or a skip reason >= 0 ... encoded as -1-reason. */
static int make_text(pvlm_loader *L, wctx *w, pvlm_rng *r, const char *text, size_t n, pvlm_batch *b, int i,
                     int64_t *tokens, pvlm_err *err) {
    int Lp = L->c.Lp, Ls = L->c.Ls, budget = Lp + Ls;
    int cut;
    /* Bytes cap: a token is >= 1 byte and English GPT-2 tokens average ~4 bytes, so 16 bytes per
     * needed token reaches the budget for any ordinary text without tokenizing whole documents. */
    int A = tokenize(L, w, text, n, (size_t)16 * (size_t)(budget + 1), budget + 1, &cut, err);
    if (A == -2) return -1 - PVLM_SKIP_BAD_UTF8;
    if (A < 0) return -1 - PVLM_SKIP_TOKENIZE;
    if (cut && A > 0 && A <= budget) A--; /* the last token may be a word cut in half */
    if (A < 2) {
        pvlm_err_set(err, PVLM_EFORMAT, "document has %d token(s), need >= 2", A);
        return -1 - PVLM_SKIP_TOO_SHORT;
    }
    int fits = !cut && A <= budget - 1;
    int lo, hi;
    if (fits)
        lo = A + 1 - Ls > 1 ? A + 1 - Ls : 1, hi = Lp < A - 1 ? Lp : A - 1;
    else
        lo = 1, hi = Lp < A - 1 ? Lp : A - 1;
    int k = lo + (int)pvlm_rng_below(r, (uint64_t)(hi - lo + 1));
    int ns = A - k;
    if (fits) {
        *tokens += place(L, b, i, w->tok, k, ns, 1);
    } else {
        if (ns > Ls) ns = Ls;
        *tokens += place(L, b, i, w->tok, k, ns, 0);
    }
    return 0;
}

static int make_caption(pvlm_loader *L, wctx *w, pvlm_rng *r, const pvlm_imgrec *rec, pvlm_batch *b, int i,
                        int64_t *tokens, pvlm_err *err) {
    int Lp = L->c.Lp, Ls = L->c.Ls, budget = Lp + Ls;
    if (rec->ncaptions < 1) {
        pvlm_err_set(err, PVLM_EFORMAT, "record has no caption");
        return -1 - PVLM_SKIP_TOO_SHORT;
    }
    const char *cap = rec->captions[pvlm_rng_below(r, (uint64_t)rec->ncaptions)];
    int cut;
    int m = tokenize(L, w, cap, strlen(cap), (size_t)16 * (size_t)(budget + 1), budget + 1, &cut, err);
    if (m == -2) return -1 - PVLM_SKIP_BAD_UTF8;
    if (m < 0) return -1 - PVLM_SKIP_TOKENIZE;
    if (cut && m > 0 && m <= budget) m--;
    if (m < 1) {
        pvlm_err_set(err, PVLM_EFORMAT, "empty caption");
        return -1 - PVLM_SKIP_TOO_SHORT;
    }
    int fits = !cut && m <= budget - 1;
    int lo = fits ? (m + 1 - Ls > 0 ? m + 1 - Ls : 0) : 0;
    int hi = fits ? (Lp < m ? Lp : m) : (Lp < m - 1 ? Lp : m - 1);
    int k = lo + (int)pvlm_rng_below(r, (uint64_t)(hi - lo + 1));
    int ns = m - k;
    if (!fits && ns > Ls) ns = Ls;
    *tokens += place(L, b, i, w->tok, k, ns, fits);
    return 0;
}

/* Fetch the decompressed frame holding text doc `local` of shard sh (LRU cache). */
static const pvlm_textframe *get_frame(pvlm_loader *L, wctx *w, int sh, int64_t local, pvlm_err *err) {
    pvlm_textshard *ts = L->st[ST_TXT].txt[sh];
    int64_t fr = pvlm_textshard_frame_of(ts, local);
    int victim = 0;
    for (int i = 0; i < w->nframes; i++) {
        frame_slot *f = &w->frames[i];
        if (f->shard == sh && f->f.frame == fr) {
            f->used = ++w->tick;
            return &f->f;
        }
        if (f->used < w->frames[victim].used) victim = i;
    }
    frame_slot *f = &w->frames[victim];
    f->shard = -1;
    w->frames_read++;
    if (pvlm_textshard_read_frame(ts, fr, &f->f, err)) return NULL;
    f->shard = sh, f->used = ++w->tick;
    return &f->f;
}

/* One sample of stream sid with global index g into row i. Returns 0 or -1-reason. */
static int fill_one(pvlm_loader *L, wctx *w, int sid, int64_t g, pvlm_rng *r, pvlm_batch *b, int i, int64_t *tokens,
                    uint64_t *badkey, pvlm_err *err) {
    stream *s = &L->st[sid];
    int sh = shard_of(s, g);
    int64_t local = g - s->start[sh];
    *badkey = ((uint64_t)sid << 63) | (uint64_t)g;
    b->sample_id[i] = sid == ST_IMG ? g : L->st[ST_IMG].N + g;
    b->ctx_set[i] = 0;
    if (sid == ST_TXT) {
        b->has_image[i] = 0;
        const pvlm_textframe *f = get_frame(L, w, sh, local, err);
        if (!f) {
            *badkey = (3ull << 62) | ((uint64_t)sh << 40) | (uint64_t)pvlm_textshard_frame_of(s->txt[sh], local);
            return -1 - PVLM_SKIP_TEXT_FRAME;
        }
        size_t n;
        const char *text = pvlm_textframe_doc(f, (uint32_t)(local - f->first_doc), &n);
        int rc = make_text(L, w, r, text, n, b, i, tokens, err);
        if (rc) pvlm_err_prefix(err, "%s doc %lld", pvlm_textshard_path(s->txt[sh]), (long long)local);
        return rc;
    }
    b->has_image[i] = 1;
    char what[4200];
    snprintf(what, sizeof what, "%s record %lld", pvlm_imgshard_path(s->img[sh]), (long long)local);
    if (pvlm_imgshard_get(s->img[sh], local, &w->rec, err)) return -1 - PVLM_SKIP_IMAGE_READ;
    /* the same preparation as evaluation and finetuning (io/imgprep.h) */
    if (pvlm_imgprep_record(&w->prep, &w->rec, L->c.S, PVLM_RESIZE_CROP, b->images + (size_t)i * L->c.S * L->c.S * 3,
                            what, err))
        return -1 - PVLM_SKIP_IMAGE_DECODE;
    int rc = make_caption(L, w, r, &w->rec, b, i, tokens, err);
    if (rc) pvlm_err_prefix(err, "%s", what);
    return rc;
}

static void clear_row(pvlm_loader *L, pvlm_batch *b, int i) {
    int S = L->c.S, Lp = L->c.Lp, Ls = L->c.Ls;
    memset(b->images + (size_t)i * S * S * 3, 0, (size_t)S * S * 3);
    for (int j = 0; j < Lp; j++) b->prefix[(size_t)i * Lp + j] = L->c.pad_id;
    for (int j = 0; j < Ls; j++)
        b->dec_in[(size_t)i * Ls + j] = L->c.pad_id, b->targets[(size_t)i * Ls + j] = PVLM_IGNORE;
    b->prefix_len[i] = b->suffix_len[i] = 0;
    b->has_image[i] = 0;
}

/* Position in the interrupted epoch's permutation of index x of the list the cut levels left. Each
 * level took, from a list of M, the first c of every rank's slice [r*q, (r+1)*q); what is left, in
 * order, is the rest of each slice and then the tail [W*q, M) that no rank owned. */
static int64_t cut_position(const stream *s, int64_t x) {
    for (int i = s->ncut - 1; i >= 0; i--) {
        const cut_level *l = &s->cut[i];
        int64_t q = l->M / l->W, k = q - l->c;
        x = x < l->W * k ? (x / k) * q + l->c + x % k : l->W * q + (x - l->W * k);
    }
    return x;
}

/* Epoch e and permutation position p of this rank's sample t of stream s (epoch mode). */
static void locate(const pvlm_loader *L, const stream *s, int64_t t, int64_t *e, int64_t *p) {
    if (s->ncut > 0 && t < s->t0) {
        *e = s->cut_epoch;
        *p = cut_position(s, (int64_t)L->c.rank * s->cut_q + (t - s->cut_start));
        return;
    }
    int64_t u = t - s->t0;
    *e = s->e0 + u / s->q;
    *p = (int64_t)L->c.rank * s->q + u % s->q;
}

/* Produce batch k into sl. Every choice is derived from (seed, stream, epoch, position). */
static int produce(pvlm_loader *L, wctx *w, int64_t k, slot *sl) {
    double t0 = pvlm_now();
    pvlm_batch *b = &sl->b;
    pvlm_batch_clear(b, L->c.pad_id);
    memset(sl->skipped, 0, sizeof sl->skipped);
    sl->tokens = 0;
    int64_t fr0 = w->frames_read;
    int row = 0;
    for (int sid = 0; sid < 2; sid++) {
        stream *s = &L->st[sid];
        for (int j = 0; j < s->n; j++, row++) {
            int64_t t = s->t_base + (k - s->k_base) * s->n + j;
            int64_t e, p, g;
            if (L->c.mode == PVLM_LOADER_EPOCH) {
                locate(L, s, t, &e, &p);
                g = pvlm_loader_permute(L->c.seed, sid, e, s->N, s->block, p);
            } else {
                e = 0, p = t * L->c.world + L->c.rank;
                g = (int64_t)(key3(L->c.seed ^ 0x7265736dull, (uint64_t)sid, (uint64_t)p) % (uint64_t)s->N);
            }
            int done = 0;
            for (int a = 0; a <= MAX_SUBSTITUTES && !done; a++) {
                if (a > 0) /* deterministic substitute for a corrupt sample, same stream */
                    g = (int64_t)(key3(key3(L->c.seed, (uint64_t)sid, (uint64_t)e), (uint64_t)p, (uint64_t)a) %
                                  (uint64_t)s->N);
                pvlm_rng r;
                pvlm_rng_seed(
                    &r, key3(L->c.seed ^ 0x73616d70ull, (uint64_t)sid * 0x100000000ull + (uint64_t)e, (uint64_t)p),
                    (uint64_t)a);
                pvlm_err e2 = {0};
                uint64_t badkey = 0;
                int rc = fill_one(L, w, sid, g, &r, b, row, &sl->tokens, &badkey, &e2);
                if (rc == 0)
                    done = 1;
                else {
                    int reason = -1 - rc;
                    sl->skipped[reason]++;
                    log_bad(L, badkey, sid, reason, e2.msg);
                    clear_row(L, b, row);
                }
            }
            if (!done) {
                pvlm_err_set(&sl->err, PVLM_EFORMAT,
                             "loader: batch %lld row %d: %d substitutes in a row were corrupt (see warnings)",
                             (long long)k, row, MAX_SUBSTITUTES + 1);
                sl->produce_s = pvlm_now() - t0;
                return -1;
            }
        }
    }
    sl->produce_s = pvlm_now() - t0;
    sl->frames_read = w->frames_read - fr0;
    return 0;
}

/* ---------------------------------------------------------------- prefetch ring */

typedef struct warg {
    pvlm_loader *L;
    int id;
} warg;

static void *worker_main(void *arg) {
    pvlm_loader *L = ((warg *)arg)->L;
    wctx *w = &L->w[((warg *)arg)->id];
    free(arg);
    pthread_mutex_lock(&L->mu);
    while (!L->stop) {
        if (L->next_claim < L->next_consume + L->depth) {
            int64_t k = L->next_claim++;
            slot *sl = &L->slots[k % L->depth];
            sl->k = k, sl->status = 0;
            pthread_mutex_unlock(&L->mu);
            int rc = produce(L, w, k, sl);
            pthread_mutex_lock(&L->mu);
            sl->status = rc ? 2 : 1;
            pthread_cond_broadcast(&L->cv);
            continue;
        }
        pthread_cond_wait(&L->cv, &L->mu);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void stop_threads(pvlm_loader *L) {
    if (!L->running) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->running; i++) pthread_join(L->th[i], NULL);
    L->running = 0, L->stop = 0;
    for (int i = 0; i < L->depth; i++) L->slots[i].k = -1, L->slots[i].status = 0;
    L->next_claim = L->next_consume;
}

static int start_threads(pvlm_loader *L, pvlm_err *err) {
    L->next_claim = L->next_consume;
    for (int i = 0; i < L->nthreads; i++) {
        warg *a = malloc(sizeof *a);
        if (!a) return pvlm_err_set(err, PVLM_ENOMEM, "loader: out of memory");
        a->L = L, a->id = i;
        if (pthread_create(&L->th[i], NULL, worker_main, a)) {
            free(a);
            return pvlm_err_set(err, PVLM_EIO, "loader: cannot start prefetch thread %d", i);
        }
        L->running = i + 1;
    }
    return 0;
}

static void copy_batch(pvlm_batch *dst, const pvlm_batch *src) {
    size_t B = (size_t)src->B;
    memcpy(dst->images, src->images, B * (size_t)src->S * src->S * 3);
    memcpy(dst->has_image, src->has_image, B);
    memcpy(dst->prefix, src->prefix, B * (size_t)src->Lp * sizeof(int32_t));
    memcpy(dst->prefix_len, src->prefix_len, B * sizeof(int32_t));
    memcpy(dst->dec_in, src->dec_in, B * (size_t)src->Ls * sizeof(int32_t));
    memcpy(dst->targets, src->targets, B * (size_t)src->Ls * sizeof(int32_t));
    memcpy(dst->suffix_len, src->suffix_len, B * sizeof(int32_t));
    memcpy(dst->ctx_set, src->ctx_set, B * sizeof(int32_t));
    memcpy(dst->sample_id, src->sample_id, B * sizeof(int64_t));
}

static void account(pvlm_loader *L, const slot *sl, int64_t k) {
    pvlm_loader_stats *s = &L->stats;
    s->batches++;
    s->samples_image += L->st[ST_IMG].n;
    s->samples_text += L->st[ST_TXT].n;
    for (int i = 0; i < PVLM_SKIP_NREASONS; i++) s->skipped[i] += sl->skipped[i];
    s->tokens += sl->tokens;
    s->frames_read += sl->frames_read;
    s->produce_s += sl->produce_s;
    for (int sid = 0; sid < 2; sid++) {
        const stream *st = &L->st[sid];
        if (!st->used || L->c.mode != PVLM_LOADER_EPOCH) continue;
        int64_t t = st->t_base + (k + 1 - st->k_base) * st->n - 1, e, p;
        locate(L, st, t, &e, &p);
        if (sid == ST_IMG)
            s->epoch_image = e;
        else
            s->epoch_text = e;
    }
}

int pvlm_loader_next(pvlm_loader *L, pvlm_batch *b, pvlm_err *err) {
    if (b->B != L->c.B || b->S != L->c.S || b->Lp != L->c.Lp || b->Ls != L->c.Ls)
        return pvlm_err_set(err, PVLM_EINVAL, "loader: batch shape B=%d S=%d Lp=%d Ls=%d differs from config", b->B,
                            b->S, b->Lp, b->Ls);
    int64_t k = L->next_consume;
    slot *sl = &L->slots[k % L->depth];
    if (L->nthreads == 0) {
        double t0 = pvlm_now();
        int rc = produce(L, &L->w[0], k, sl);
        L->stats.wait_s += pvlm_now() - t0;
        if (rc) {
            if (err) *err = sl->err;
            return -1;
        }
    } else {
        if (!L->running && start_threads(L, err)) {
            stop_threads(L);
            return -1;
        }
        double t0 = pvlm_now();
        pthread_mutex_lock(&L->mu);
        while (!(sl->k == k && sl->status != 0)) pthread_cond_wait(&L->cv, &L->mu);
        pthread_mutex_unlock(&L->mu);
        L->stats.wait_s += pvlm_now() - t0;
        if (sl->status == 2) {
            if (err) *err = sl->err;
            return -1;
        }
    }
    copy_batch(b, &sl->b);
    account(L, sl, k);
    pthread_mutex_lock(&L->mu);
    L->next_consume++;
    sl->status = 0;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

void pvlm_loader_close(pvlm_loader *L) {
    if (!L) return;
    stop_threads(L);
    int nw = L->nthreads > 0 ? L->nthreads : 1;
    if (L->w)
        for (int i = 0; i < nw; i++) wctx_free(&L->w[i]);
    if (L->slots)
        for (int i = 0; i < L->depth; i++) pvlm_batch_free(&L->slots[i].b);
    free(L->w), free(L->th), free(L->slots), free(L->bad);
    close_stream(&L->st[0]), close_stream(&L->st[1]);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    pthread_mutex_destroy(&L->bad_mu);
    free(L);
}

/* ---------------------------------------------------------------- state */

static int64_t stream_t(const stream *s, int64_t k) {
    return s->t_base + (k - s->k_base) * s->n;
}

/* A stream's "resize" object: the continued epoch (while it lasts) or the epoch origin, only when a
 * resume changed the world size; NULL otherwise, so a run that never did saves version 1 as before. */
static json_t *save_resize(const stream *s, int64_t t) {
    if (s->ncut > 0 && t < s->t0) {
        json_t *lv = json_array();
        for (int i = 0; i < s->ncut; i++)
            json_array_append_new(lv, json_pack("[I,I]", (json_int_t)s->cut[i].W, (json_int_t)s->cut[i].c));
        return json_pack("{s:I, s:I, s:o}", "epoch", (json_int_t)s->cut_epoch, "start", (json_int_t)s->cut_start,
                         "levels", lv);
    }
    if (s->t0 == 0 && s->e0 == 0) return NULL;
    return json_pack("{s:I, s:I}", "origin_t", (json_int_t)s->t0, "origin_epoch", (json_int_t)s->e0);
}

json_t *pvlm_loader_state_save(const pvlm_loader *L) {
    int64_t k = L->next_consume;
    char seed[17];
    pvlm_hash_hex(L->c.seed, seed);
    json_t *skipped = json_object();
    for (int i = 0; i < PVLM_SKIP_NREASONS; i++)
        json_object_set_new(skipped, pvlm_loader_skip_names[i], json_integer(L->stats.skipped[i]));
    json_t *j = json_pack("{s:s, s:i, s:I, s:s, s:i, s:s, s:i}", "format", "pvlm-loader-state", "version", 1, "batch",
                          (json_int_t)k, "seed", seed, "world", L->c.world, "mode",
                          L->c.mode == PVLM_LOADER_EPOCH ? "epoch" : "resample", "micro_batch", L->c.B);
    const char *names[2] = {"image", "text"};
    for (int sid = 0; sid < 2; sid++) {
        const stream *s = &L->st[sid];
        json_t *o = json_pack("{s:I, s:I, s:I, s:i, s:I}", "samples", (json_int_t)s->N, "t", (json_int_t)stream_t(s, k),
                              "per_rank_epoch", (json_int_t)s->q, "per_batch", s->n, "block", (json_int_t)s->block);
        json_t *rz = s->used ? save_resize(s, stream_t(s, k)) : NULL;
        if (rz) {
            json_object_set_new(o, "resize", rz);
            json_object_set_new(j, "version", json_integer(2));
        }
        json_object_set_new(j, names[sid], o);
    }
    json_t *stats = json_pack("{s:I, s:I, s:I, s:I, s:o}", "batches", (json_int_t)L->stats.batches, "samples_image",
                              (json_int_t)L->stats.samples_image, "samples_text", (json_int_t)L->stats.samples_text,
                              "tokens", (json_int_t)L->stats.tokens, "skipped", skipped);
    if (L->stats.resize_dropped[0] || L->stats.resize_dropped[1])
        json_object_set_new(stats, "resize_dropped",
                            json_pack("[I,I]", (json_int_t)L->stats.resize_dropped[0],
                                      (json_int_t)L->stats.resize_dropped[1]));
    json_object_set_new(j, "stats", stats);
    return j;
}

/* Counters and epochs in a state stay below 2^53 (exact in any JSON reader), so the arithmetic on
 * them cannot overflow. */
#define STATE_MAX ((int64_t)1 << 53)

/* One stream of a saved state: the counter, the saving run's partition, its resize object. */
typedef struct saved_stream {
    int64_t t, N, q, t0, e0;
    int ncut;
    cut_level *cut; /* owned until moved into a stream */
    int64_t cut_epoch, cut_start, cut_M, cut_q;
} saved_stream;

/* Parse the optional "resize" object of saved stream o (world: the saving run's world size). */
static int parse_resize(const json_t *o, int64_t world, saved_stream *v, const char *name, pvlm_err *err) {
    const json_t *rz = json_object_get(o, "resize");
    const char *what = "loader state resize";
    if (!rz) return 0;
    const json_t *lv = json_object_get(rz, "levels");
    if (!lv) {
        if (pvlm_json_get_int(rz, "origin_t", &v->t0, what, err) ||
            pvlm_json_get_int(rz, "origin_epoch", &v->e0, what, err))
            return -1;
        /* origin_t may be negative: a data change re-bases the epoch to start before t = 0 */
        if (v->t0 < -STATE_MAX || v->e0 < 0 || v->e0 > STATE_MAX || v->t < v->t0)
            return pvlm_err_set(err, PVLM_EFORMAT, "loader state: %s origin %lld/%lld does not fit t %lld", name,
                                (long long)v->t0, (long long)v->e0, (long long)v->t);
        return 0;
    }
    if (pvlm_json_get_int(rz, "epoch", &v->cut_epoch, what, err) ||
        pvlm_json_get_int(rz, "start", &v->cut_start, what, err))
        return -1;
    size_t n = json_array_size(lv);
    if (n < 1 || n > 4096 || !(v->cut = calloc(n, sizeof *v->cut)))
        return pvlm_err_set(err, PVLM_EFORMAT, "loader state: %s resize levels: %zu entries", name, n);
    int64_t M = v->N;
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(lv, i), *w = json_array_get(a, 0), *c = json_array_get(a, 1);
        int64_t W = json_is_integer(w) ? json_integer_value(w) : 0, C = json_is_integer(c) ? json_integer_value(c) : 0;
        if (W < 1 || W > M || C < 1 || C > M / W)
            return pvlm_err_set(err, PVLM_EFORMAT, "loader state: %s resize level %zu [%lld, %lld] does not fit %lld "
                                "positions", name, i, (long long)W, (long long)C, (long long)M);
        v->cut[v->ncut++] = (cut_level){M, W, C};
        M -= W * C;
    }
    v->cut_M = M, v->cut_q = M / world;
    if (v->cut_epoch < 0 || v->cut_epoch > STATE_MAX || v->cut_q < 1 || v->t < v->cut_start ||
        v->t >= v->cut_start + v->cut_q)
        return pvlm_err_set(err, PVLM_EFORMAT, "loader state: %s resize epoch %lld start %lld does not fit t %lld", name,
                            (long long)v->cut_epoch, (long long)v->cut_start, (long long)v->t);
    v->t0 = v->cut_start + v->cut_q, v->e0 = v->cut_epoch + 1;
    return 0;
}

/* The saving run's epoch of sample t, how many samples of it every saving rank had drawn, and the
 * size of the list those draws came from (N, or what earlier levels left). */
static void saved_position(const saved_stream *v, int64_t N, int64_t *e, int64_t *c, int64_t *M) {
    if (v->ncut) {
        *e = v->cut_epoch, *c = v->t - v->cut_start, *M = v->cut_M;
        return;
    }
    int64_t u = v->t - v->t0;
    *M = N;
    if (v->q < 1) { /* the stream was not used by the saving run */
        *e = 0, *c = 0;
        return;
    }
    *e = v->e0 + u / v->q, *c = u % v->q;
}

/* Exact continuation under another world size (same data): the positions the saving ranks drew
 * in the current epoch become one more cut level, the rest of the epoch (including the tail no
 * saving rank owned) is split evenly over the new ranks, and the *rem = M % W_new positions past
 * the last piece are dropped (*dropped: the change in the epoch's dropped count, since a previous
 * change's remainder is back in the list). Takes v's levels. From the next epoch on, the normal partition. */
static int rebase_world(pvlm_loader *L, stream *s, saved_stream *v, int64_t world, int64_t *dropped, int64_t *rem,
                        pvlm_err *err) {
    int64_t e, c, M;
    saved_position(v, s->N, &e, &c, &M);
    /* the remainder a previous change in this epoch counted as dropped is back in the list */
    int64_t back = v->ncut ? v->cut_M % world : 0;
    free(s->cut);
    s->cut = v->cut, s->ncut = v->ncut;
    v->cut = NULL, v->ncut = 0;
    if (c > 0) {
        cut_level *nc = realloc(s->cut, (size_t)(s->ncut + 1) * sizeof *nc);
        if (!nc) return pvlm_err_set(err, PVLM_ENOMEM, "loader: out of memory");
        s->cut = nc;
        s->cut[s->ncut++] = (cut_level){M, world, c};
        M -= world * c;
    }
    *dropped = *rem = 0;
    if (s->ncut == 0) { /* at an epoch boundary: nothing to continue */
        s->t0 = v->t, s->e0 = e;
        return 0;
    }
    int64_t q = M / L->c.world;
    *rem = M - q * L->c.world;
    *dropped = *rem - back;
    if (q == 0) { /* fewer positions left than ranks: all dropped, next epoch */
        free(s->cut);
        s->cut = NULL, s->ncut = 0;
        s->t0 = v->t, s->e0 = e + 1;
        return 0;
    }
    s->cut_epoch = e, s->cut_start = v->t, s->cut_M = M, s->cut_q = q;
    s->t0 = v->t + q, s->e0 = e + 1;
    return 0;
}

/* Another data set (N changed): positions of the old partition mean nothing, so the current epoch
 * continues at the same fraction of the new per-rank slice (docs/loader.md). */
static void rebase_data(stream *s, const saved_stream *v) {
    int64_t e, j, M;
    saved_position(v, s->N, &e, &j, &M);
    int64_t qref = v->ncut ? v->cut_q : v->q;
    int64_t jn = qref > 0 ? (int64_t)((double)j * (double)s->q / (double)qref) : 0;
    free(s->cut);
    s->cut = NULL, s->ncut = 0;
    s->t0 = v->t - jn, s->e0 = e;
}

/* Take the saved stream as it is (same world size and data). */
static void adopt(stream *s, saved_stream *v) {
    free(s->cut);
    s->cut = v->cut, s->ncut = v->ncut;
    v->cut = NULL, v->ncut = 0;
    s->t0 = v->t0, s->e0 = v->e0;
    s->cut_epoch = v->cut_epoch, s->cut_start = v->cut_start, s->cut_M = v->cut_M, s->cut_q = v->cut_q;
}

static void restore_stats(pvlm_loader *L, const json_t *stats) {
    const char *what = "loader state";
    memset(&L->stats, 0, sizeof L->stats);
    if (!stats) return;
    int64_t v;
    if (!pvlm_json_get_int(stats, "batches", &v, what, NULL)) L->stats.batches = v;
    if (!pvlm_json_get_int(stats, "samples_image", &v, what, NULL)) L->stats.samples_image = v;
    if (!pvlm_json_get_int(stats, "samples_text", &v, what, NULL)) L->stats.samples_text = v;
    if (!pvlm_json_get_int(stats, "tokens", &v, what, NULL)) L->stats.tokens = v;
    json_t *sk = json_object_get(stats, "skipped");
    for (int i = 0; i < PVLM_SKIP_NREASONS; i++)
        if (!pvlm_json_get_int(sk, pvlm_loader_skip_names[i], &v, what, NULL)) L->stats.skipped[i] = v;
    json_t *rd = json_object_get(stats, "resize_dropped");
    for (int i = 0; i < 2; i++)
        if (json_is_integer(json_array_get(rd, (size_t)i)))
            L->stats.resize_dropped[i] = json_integer_value(json_array_get(rd, (size_t)i));
}

/* Parse the header and both streams of a state into v (levels owned by v). */
static int parse_state(const pvlm_loader *L, const json_t *st, int64_t *k, int64_t *world, saved_stream v[2],
                       pvlm_err *err) {
    const char *what = "loader state";
    const char *fmt, *seed_s, *mode;
    int64_t version;
    if (pvlm_json_get_str(st, "format", &fmt, what, err) || pvlm_json_get_int(st, "version", &version, what, err) ||
        pvlm_json_get_int(st, "batch", k, what, err) || pvlm_json_get_str(st, "seed", &seed_s, what, err) ||
        pvlm_json_get_int(st, "world", world, what, err) || pvlm_json_get_str(st, "mode", &mode, what, err))
        return -1;
    uint64_t seed;
    if (strcmp(fmt, "pvlm-loader-state") || version < 1 || version > 2 || pvlm_hash_parse(seed_s, &seed) || *k < 0 ||
        *k > STATE_MAX || *world < 1 || *world > (1 << 30))
        return pvlm_err_set(err, PVLM_EFORMAT, "loader state: unsupported format/version or bad fields");
    if (seed != L->c.seed)
        return pvlm_err_set(err, PVLM_EINVAL, "loader state: seed %s differs from the configured seed", seed_s);
    if (strcmp(mode, L->c.mode == PVLM_LOADER_EPOCH ? "epoch" : "resample"))
        return pvlm_err_set(err, PVLM_EINVAL, "loader state: mode '%s' differs from the configured mode", mode);
    const char *names[2] = {"image", "text"};
    for (int sid = 0; sid < 2; sid++) {
        json_t *o = json_object_get(st, names[sid]);
        if (pvlm_json_get_int(o, "t", &v[sid].t, what, err) || pvlm_json_get_int(o, "samples", &v[sid].N, what, err) ||
            pvlm_json_get_int(o, "per_rank_epoch", &v[sid].q, what, err))
            return -1;
        if (v[sid].t < 0 || v[sid].t > STATE_MAX || v[sid].N < 0 || v[sid].N > STATE_MAX || v[sid].q < 0)
            return pvlm_err_set(err, PVLM_EFORMAT, "loader state: %s t %lld or samples %lld out of range", names[sid],
                                (long long)v[sid].t, (long long)v[sid].N);
        if (L->c.mode == PVLM_LOADER_RESAMPLE && v[sid].t > STATE_MAX / *world)
            return pvlm_err_set(err, PVLM_EFORMAT, "loader state: %s t %lld out of range", names[sid],
                                (long long)v[sid].t);
        if (L->st[sid].used && L->c.mode == PVLM_LOADER_EPOCH && parse_resize(o, *world, &v[sid], names[sid], err))
            return -1;
        if (L->st[sid].used && L->c.mode == PVLM_LOADER_EPOCH && v[sid].N == L->st[sid].N && !v[sid].ncut &&
            v[sid].q != L->st[sid].N / *world)
            return pvlm_err_set(err, PVLM_EFORMAT, "loader state: %s per_rank_epoch %lld is not %lld / %lld",
                                names[sid], (long long)v[sid].q, (long long)L->st[sid].N, (long long)*world);
    }
    return 0;
}

int pvlm_loader_state_restore(pvlm_loader *L, const json_t *st, pvlm_err *err) {
    int64_t k, world;
    saved_stream v[2];
    memset(v, 0, sizeof v);
    const char *names[2] = {"image", "text"};
    int rc = parse_state(L, st, &k, &world, v, err);
    if (rc) goto out;
    stop_threads(L);
    restore_stats(L, json_object_get(st, "stats"));
    for (int sid = 0; sid < 2 && !rc; sid++) {
        stream *s = &L->st[sid];
        int64_t t = v[sid].t, dropped = 0;
        if (s->used && L->c.mode == PVLM_LOADER_EPOCH) {
            if (v[sid].N != s->N) {
                rebase_data(s, &v[sid]);
                pvlm_warn("loader: state saved for %lld %s samples, the manifest now lists %lld: the current epoch "
                          "continues at the same fraction",
                          (long long)v[sid].N, names[sid], (long long)s->N);
            } else if (world != L->c.world) {
                int64_t rem = 0;
                rc = rebase_world(L, s, &v[sid], world, &dropped, &rem, err);
                L->stats.resize_dropped[sid] += dropped;
                if (s->ncut)
                    pvlm_info("loader: %s stream: world %lld -> %d in epoch %lld: the rest of the epoch is %lld samples "
                              "per rank, %lld left out",
                              names[sid], (long long)world, L->c.world, (long long)s->cut_epoch, (long long)s->cut_q,
                              (long long)rem);
                else
                    pvlm_info("loader: %s stream: world %lld -> %d: epoch %lld starts with the new partition (%lld "
                              "left out of epoch %lld)",
                              names[sid], (long long)world, L->c.world, (long long)s->e0, (long long)rem,
                              (long long)(s->e0 - (rem > 0)));
            } else {
                adopt(s, &v[sid]);
            }
        } else if (s->used && L->c.mode == PVLM_LOADER_RESAMPLE && world != L->c.world) {
            t = t * world / L->c.world; /* keep the global draw count */
        }
        s->t_base = t, s->k_base = k;
    }
    L->next_consume = L->next_claim = k;
out:
    free(v[0].cut), free(v[1].cut);
    return rc;
}

void pvlm_loader_stats_get(const pvlm_loader *L, pvlm_loader_stats *s) {
    *s = L->stats;
}

int64_t pvlm_loader_epoch_samples(const pvlm_loader *L, int stream_id) {
    if (stream_id < 0 || stream_id > 1 || !L->st[stream_id].used) return 0;
    return L->st[stream_id].q;
}

int64_t pvlm_loader_epoch_batches(const pvlm_loader *L, int stream_id) {
    if (stream_id < 0 || stream_id > 1 || !L->st[stream_id].used || L->st[stream_id].n == 0) return 0;
    return L->st[stream_id].q / L->st[stream_id].n;
}

int64_t pvlm_loader_total_samples(const pvlm_loader *L, int stream_id) {
    if (stream_id < 0 || stream_id > 1) return 0;
    return L->st[stream_id].N;
}
