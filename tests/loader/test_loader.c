/* test_loader.c - io/loader tests; argv[1] picks the case (one ctest name each, `ctest -R loader_`):
 *   permutation  pvlm_loader_permute is a bijection for many (n, block) and differs per epoch
 *   partition    2 and 3 ranks cover every sample of an epoch exactly once with equal batch counts;
 *                with N % W != 0 no sample repeats and exactly N % W are left out
 *   resume       stop at batch k, save (through JSON text), reopen, restore: the next batches equal an
 *                uninterrupted run byte for byte, for prefetch threads 0, 1, 3; world-size change
 *   resize       world size changed on resume inside an epoch (2->3, 3->2, 2->1, two changes, a same-world
 *                resume between): every sample of the epoch drawn exactly once except the counted remainder
 *                (< new world), the next epoch normally partitioned; same-world resume stays byte-exact
 *   mix          every batch holds round(ratio*B) text-only rows, the rest image-text
 *   prefixlm     every row is a valid PrefixLM example of its source sample (ids, split, eos, pads, image)
 *   corrupt      corrupt zstd frame (flipped byte), truncated zstd frame (checksums recomputed, zstd
 *                detects it), corrupt LMDB record, bad JPEG, invalid UTF-8 caption and document,
 *                one-token document: skipped, counted by reason, substituted deterministically, never a
 *                crash; wrong manifest kind / bad rank fail open with a message
 *   resample     with-replacement mode: ids in range, deterministic, resumable
 *   tokenizer    with a real byte-level BPE (trained here): decode(prefix ++ suffix) is the source text
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "fixtures.h"
#include "harness.h"
#include "io/batch.h"
#include "io/loader.h"
#include "io/bpe_train.h"
#include "io/tokenizer.h"

static char dir[4096], img_m[4300], txt_m[4300];
static pvlm_tokenizer *tok_; /* fx_tokenizer: a real BPE trained on the fixture texts */
static int32_t pad_, bos_, eos_;
#define S_ 8
#define LP 16
#define LS 48
#define NIMG 120 /* 70 + 50 */
#define NTXT 240 /* 150 + 90 */

static void setup(int jpeg_every) {
    const char *tmp = getenv("PVLM_TMP");
    snprintf(dir, sizeof dir, "%s", tmp ? tmp : "/tmp/pvlm_test_loader");
    pvlm_err err = {0};
    pvlm_rm_rf(dir, &err);
    char d1[4200], d2[4200];
    snprintf(d1, sizeof d1, "%s/img", dir);
    snprintf(d2, sizeof d2, "%s/txt", dir);
    CHECK_OK(pvlm_mkdir_p(d1, &err), &err);
    CHECK_OK(pvlm_mkdir_p(d2, &err), &err);
    int64_t ic[2] = {70, 50}, tc[2] = {150, 90};
    CHECK_OK(fx_images(d1, ic, 2, S_, jpeg_every, &err), &err);
    CHECK_OK(fx_text(d2, tc, 2, 2048, &err), &err);
    snprintf(img_m, sizeof img_m, "%s/manifest.json", d1);
    snprintf(txt_m, sizeof txt_m, "%s/manifest.json", d2);
}

static void config(pvlm_loader_config *c, int B, double ratio, int rank, int world, int threads) {
    pvlm_loader_config_default(c);
    c->image_manifest = ratio < 1 ? img_m : NULL;
    c->text_manifest = ratio > 0 ? txt_m : NULL;
    c->tokenizer = tok_;
    c->rank = rank, c->world = world;
    c->B = B, c->S = S_, c->Lp = LP, c->Ls = LS;
    c->text_ratio = ratio;
    c->seed = 1234;
    c->threads = threads;
    c->shuffle_block = 64;
    c->pad_id = pad_, c->bos_id = bos_, c->eos_id = eos_;
}

static pvlm_loader *open_l(const pvlm_loader_config *c) {
    pvlm_err err = {0};
    pvlm_loader *L = pvlm_loader_open(c, &err);
    CHECK_MSG(L != NULL, "%s", err.msg);
    return L;
}

/* Bytes of every array of a batch, concatenated (for byte-identical comparison). */
static size_t batch_bytes(const pvlm_batch *b) {
    size_t B = (size_t)b->B;
    return B * (size_t)b->S * b->S * 3 + B + B * (size_t)(b->Lp + 2 * b->Ls + 3) * 4 + B * 8;
}
static int batch_equal(const pvlm_batch *a, const pvlm_batch *b) {
    /* the arrays are one contiguous block in batch.c's layout: compare the whole block */
    return !memcmp(a->block, b->block, batch_bytes(a));
}

/* ---------------------------------------------------------------- cases */

static void t_permutation(void) {
    int64_t ns[] = {1, 2, 3, 5, 17, 64, 100, 241, 1000, 4097};
    int64_t blocks[] = {1, 7, 64, 1 << 30};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t bl = 0; bl < 4; bl++) {
            int64_t n = ns[a];
            char *seen = calloc((size_t)n, 1);
            int ok = 1, same_as_e1 = 1;
            for (int64_t p = 0; p < n; p++) {
                int64_t v = pvlm_loader_permute(9, 1, 0, n, blocks[bl], p);
                if (v < 0 || v >= n || seen[v])
                    ok = 0;
                else
                    seen[v] = 1;
                if (v != pvlm_loader_permute(9, 1, 1, n, blocks[bl], p)) same_as_e1 = 0;
            }
            CHECK_MSG(ok, "not a bijection: n=%lld block=%lld", (long long)n, (long long)blocks[bl]);
            if (n >= 17) CHECK_MSG(!same_as_e1, "epochs 0 and 1 equal: n=%lld", (long long)n);
            free(seen);
        }
    /* block structure: positions inside one full block map into one block of samples */
    int64_t n = 1000, K = 100;
    int blk[10] = {0}, nblk = 0;
    for (int64_t p = 0; p < K; p++) {
        int64_t v = pvlm_loader_permute(5, 1, 3, n, K, p);
        nblk += !blk[v / K]++;
    }
    CHECK(nblk <= 2); /* the per-epoch rotation can straddle two blocks, never more */
}

/* Collect the sample ids of stream rows over `nb` batches of rank r. */
static void collect(const pvlm_loader_config *c, int nb, int64_t *ids_img, int64_t *ids_txt, int *ni, int *nt) {
    *ni = *nt = 0;
    pvlm_loader *L = open_l(c);
    if (!L) return;
    pvlm_batch b;
    pvlm_err err = {0};
    pvlm_batch_alloc(&b, c->B, c->S, c->Lp, c->Ls, &err);
    for (int k = 0; k < nb; k++) {
        if (pvlm_loader_next(L, &b, &err)) {
            CHECK_MSG(0, "next: %s", err.msg);
            break;
        }
        for (int i = 0; i < b.B; i++) {
            if (b.has_image[i])
                ids_img[(*ni)++] = b.sample_id[i];
            else
                ids_txt[(*nt)++] = b.sample_id[i] - NIMG;
        }
    }
    pvlm_batch_free(&b);
    pvlm_loader_close(L);
}

static void t_partition(void) {
    for (int W = 2; W <= 3; W++) {
        /* B = 6, half text: 3 + 3 per batch. One epoch of the image stream: q_img / 3 batches. */
        int qi = NIMG / W, qt = NTXT / W;
        int nb = (qt + 2) / 3; /* covers the text epoch (the longer one) and >= 1 image epoch */
        int *cnt_i = calloc(NIMG, sizeof(int)), *cnt_t = calloc(NTXT, sizeof(int));
        int64_t *ii = malloc(sizeof(int64_t) * 4096), *it = malloc(sizeof(int64_t) * 4096);
        int64_t batches[3];
        for (int r = 0; r < W; r++) {
            pvlm_loader_config c;
            config(&c, 6, 0.5, r, W, 2);
            pvlm_loader *L = open_l(&c);
            if (!L) break;
            batches[r] = pvlm_loader_epoch_batches(L, 1);
            CHECK(pvlm_loader_epoch_samples(L, 0) == qi && pvlm_loader_epoch_samples(L, 1) == qt);
            pvlm_loader_close(L);
            int ni, nt;
            collect(&c, nb, ii, it, &ni, &nt);
            CHECK(ni == 3 * nb && nt == 3 * nb);
            for (int j = 0; j < qi && j < ni; j++) cnt_i[ii[j]]++; /* first image epoch */
            for (int j = 0; j < qt && j < nt; j++) cnt_t[it[j]]++;
            /* the second image epoch is another permutation of the same slice size */
            int same = 1;
            for (int j = 0; j < qi && qi + j < ni; j++) same &= ii[j] == ii[qi + j];
            CHECK(!same);
        }
        for (int r = 1; r < W; r++) CHECK(batches[r] == batches[0]);
        int bad = 0;
        for (int g = 0; g < NIMG; g++) bad += cnt_i[g] != 1;
        for (int g = 0; g < NTXT; g++) bad += cnt_t[g] != 1;
        CHECK_MSG(bad == 0, "W=%d: %d samples not seen exactly once in the epoch", W, bad);
        free(cnt_i), free(cnt_t), free(ii), free(it);
    }
    /* N not divisible by W: 241 docs, W = 2 -> each rank 120, one left out, no repeats. */
    char d3[4300], m3[4400];
    snprintf(d3, sizeof d3, "%s/txt241", dir);
    pvlm_err err = {0};
    pvlm_mkdir_p(d3, &err);
    int64_t tc[1] = {241};
    CHECK_OK(fx_text(d3, tc, 1, 2048, &err), &err);
    snprintf(m3, sizeof m3, "%s/manifest.json", d3);
    int cnt[241] = {0};
    int64_t *ii = malloc(sizeof(int64_t) * 4096), *it = malloc(sizeof(int64_t) * 4096);
    for (int r = 0; r < 2; r++) {
        pvlm_loader_config c;
        config(&c, 4, 1.0, r, 2, 1);
        c.text_manifest = m3;
        int ni, nt;
        collect(&c, 30, ii, it, &ni, &nt);
        CHECK(nt == 120);
        for (int j = 0; j < nt; j++) cnt[it[j] + NIMG]++; /* no image stream: ids are raw doc ids */
    }
    int zeros = 0, over = 0;
    for (int g = 0; g < 241; g++) zeros += cnt[g] == 0, over += cnt[g] > 1;
    CHECK_MSG(zeros == 1 && over == 0, "zeros %d over %d", zeros, over);
    free(ii), free(it);
}

/* Uninterrupted run of n batches with `threads`; returns malloc'd array of batches. */
static pvlm_batch *run_n(const pvlm_loader_config *c, int n) {
    pvlm_batch *bs = calloc((size_t)n, sizeof *bs);
    pvlm_loader *L = open_l(c);
    pvlm_err err = {0};
    for (int k = 0; k < n; k++) {
        pvlm_batch_alloc(&bs[k], c->B, c->S, c->Lp, c->Ls, &err);
        if (L) CHECK_OK(pvlm_loader_next(L, &bs[k], &err), &err);
    }
    pvlm_loader_close(L);
    return bs;
}

static void free_n(pvlm_batch *bs, int n) {
    for (int k = 0; k < n; k++) pvlm_batch_free(&bs[k]);
    free(bs);
}

static void t_resume(void) {
    const int N = 50, K = 17;
    pvlm_loader_config c;
    config(&c, 6, 0.5, 1, 2, 2);
    pvlm_batch *ref = run_n(&c, N);
    /* thread count does not change the batches */
    for (int th = 0; th <= 3; th += 3) {
        config(&c, 6, 0.5, 1, 2, th);
        pvlm_batch *o = run_n(&c, N);
        int same = 1;
        for (int k = 0; k < N; k++) same &= batch_equal(&ref[k], &o[k]);
        CHECK_MSG(same, "threads=%d gives different batches", th);
        free_n(o, N);
    }
    /* stop at K with 3 threads, save as JSON text, resume with 0, 1, 3 threads */
    config(&c, 6, 0.5, 1, 2, 3);
    pvlm_loader *L = open_l(&c);
    pvlm_batch b;
    pvlm_err err = {0};
    pvlm_batch_alloc(&b, 6, S_, LP, LS, &err);
    for (int k = 0; k < K && L; k++) CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
    json_t *st = L ? pvlm_loader_state_save(L) : NULL;
    char *text = json_dumps(st, JSON_COMPACT);
    CHECK(text && strlen(text) < 2048); /* small */
    pvlm_loader_stats s0;
    if (L) pvlm_loader_stats_get(L, &s0);
    pvlm_loader_close(L);
    json_decref(st);
    for (int th = 0; th <= 3; th++) {
        if (th == 2) continue;
        config(&c, 6, 0.5, 1, 2, th);
        L = open_l(&c);
        if (!L) break;
        json_error_t je;
        json_t *j = json_loads(text, 0, &je);
        CHECK_OK(pvlm_loader_state_restore(L, j, &err), &err);
        json_decref(j);
        int same = 1;
        for (int k = K; k < N; k++) {
            CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
            same &= batch_equal(&b, &ref[k]);
        }
        CHECK_MSG(same, "resumed run (threads=%d) differs", th);
        pvlm_loader_stats s1;
        pvlm_loader_stats_get(L, &s1);
        CHECK(s1.batches == N && s1.samples_text == s0.samples_text + 3 * (N - K));
        pvlm_loader_close(L);
    }
    /* restoring mid-stream on an open loader that already prefetched */
    config(&c, 6, 0.5, 1, 2, 2);
    L = open_l(&c);
    for (int k = 0; k < 5 && L; k++) CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
    if (L) {
        json_error_t je;
        json_t *j = json_loads(text, 0, &je);
        CHECK_OK(pvlm_loader_state_restore(L, j, &err), &err);
        CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
        CHECK(batch_equal(&b, &ref[K]));
        /* a wrong seed is refused */
        pvlm_loader_config c2;
        config(&c2, 6, 0.5, 1, 2, 0);
        c2.seed = 99;
        pvlm_loader *L2 = open_l(&c2);
        if (L2) CHECK(pvlm_loader_state_restore(L2, j, &err) == -1 && err.code == PVLM_EINVAL);
        pvlm_loader_close(L2);
        /* world size change 2 -> 3: accepted, continues the same epochs, ids stay in range */
        config(&c2, 6, 0.5, 0, 3, 1);
        L2 = open_l(&c2);
        if (L2) {
            CHECK_OK(pvlm_loader_state_restore(L2, j, &err), &err);
            CHECK_OK(pvlm_loader_next(L2, &b, &err), &err);
            pvlm_loader_stats s2;
            pvlm_loader_stats_get(L2, &s2);
            CHECK(s2.epoch_text == 0);
            for (int i = 0; i < b.B; i++) CHECK(b.sample_id[i] >= 0 && b.sample_id[i] < NIMG + NTXT);
        }
        pvlm_loader_close(L2);
        json_decref(j);
    }
    pvlm_loader_close(L);
    free(text);
    pvlm_batch_free(&b);
    free_n(ref, N);
}

static void t_mix(void) {
    double ratios[] = {0.0, 0.25, 0.5, 0.9, 1.0};
    for (int a = 0; a < 5; a++) {
        pvlm_loader_config c;
        config(&c, 8, ratios[a], 0, 1, 1);
        pvlm_loader *L = open_l(&c);
        if (!L) continue;
        pvlm_batch b;
        pvlm_err err = {0};
        pvlm_batch_alloc(&b, 8, S_, LP, LS, &err);
        int want_txt = (int)(ratios[a] * 8 + 0.5), ok = 1;
        for (int k = 0; k < 40; k++) {
            CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
            int nt = 0;
            for (int i = 0; i < 8; i++) nt += !b.has_image[i];
            ok &= nt == want_txt;
        }
        CHECK_MSG(ok, "ratio %g: wrong text count per batch", ratios[a]);
        pvlm_loader_stats s;
        pvlm_loader_stats_get(L, &s);
        CHECK(s.samples_text == 40 * want_txt && s.samples_image == 40 * (8 - want_txt));
        CHECK(s.wait_s >= 0 && s.batches == 40);
        pvlm_batch_free(&b);
        pvlm_loader_close(L);
    }
}

/* Row i against ref[0..n), the tokenizer's encoding of the row's whole source text. */
static int row_matches(const pvlm_batch *b, int i, const int32_t *ref, int n, int *hist_k) {
    int pl = b->prefix_len[i], sl = b->suffix_len[i];
    const int32_t *pre = b->prefix + (size_t)i * LP, *din = b->dec_in + (size_t)i * LS,
                  *tg = b->targets + (size_t)i * LS;
    int fits = n <= LP + LS - 1;
    for (int j = 0; j < pl; j++)
        if (j >= n || pre[j] != ref[j]) return 0;
    for (int j = pl; j < LP; j++)
        if (pre[j] != pad_) return 0;
    int ns = fits ? sl - 1 : sl;
    if (fits && pl + ns != n) return 0; /* whole text used */
    if (!fits && sl != LS) return 0;    /* long texts fill the decoder, no eos */
    for (int j = 0; j < ns; j++)
        if (pl + j >= n || tg[j] != ref[pl + j]) return 0;
    if (fits && tg[sl - 1] != eos_) return 0;
    if (din[0] != bos_) return 0;
    for (int j = 1; j < sl; j++)
        if (din[j] != tg[j - 1]) return 0;
    for (int j = sl; j < LS; j++)
        if (din[j] != pad_ || tg[j] != -1) return 0;
    if (hist_k && pl <= LP) hist_k[pl]++;
    return 1;
}

/* Check row i against its source sample. Returns 1 if valid. */
static int check_row(const pvlm_batch *b, int i, int *hist_k, int jpeg_every) {
    int64_t sid = b->sample_id[i];
    int pl = b->prefix_len[i], sl = b->suffix_len[i];
    if (pl < 0 || pl > LP || sl < 1 || sl > LS) return 0;
    int64_t g;
    int len, off;
    if (b->has_image[i]) {
        g = sid, len = fx_cap_len(g), off = 500;
        if (jpeg_every == 0) {
            uint8_t want[S_ * S_ * 3];
            fx_pixels(g, S_, want);
            if (memcmp(want, b->images + (size_t)i * S_ * S_ * 3, sizeof want)) return 0;
        }
    } else {
        g = sid - NIMG, len = fx_doc_len(g), off = 0;
        if (pl < 1) return 0;
        for (int j = 0; j < S_ * S_ * 3; j++)
            if (b->images[(size_t)i * S_ * S_ * 3 + j]) return 0;
    }
    char *src = fx_words(g, len, off);
    int32_t *ref = NULL;
    size_t n = 0;
    pvlm_err err = {0};
    int ok = !pvlm_tokenizer_encode_alloc(tok_, NULL, src, strlen(src), &ref, &n, &err) &&
             row_matches(b, i, ref, (int)n, hist_k);
    free(src), free(ref);
    return ok;
}

static void t_prefixlm(void) {
    pvlm_loader_config c;
    config(&c, 8, 0.5, 0, 1, 2);
    pvlm_loader *L = open_l(&c);
    if (!L) return;
    pvlm_batch b;
    pvlm_err err = {0};
    pvlm_batch_alloc(&b, 8, S_, LP, LS, &err);
    int bad = 0, hist_img[LP + 1] = {0}, hist_txt[LP + 1] = {0};
    for (int k = 0; k < 120; k++) {
        CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
        for (int i = 0; i < 8; i++) {
            int ok = check_row(&b, i, b.has_image[i] ? hist_img : hist_txt, 0);
            if (!ok && bad < 5)
                fprintf(stderr, "bad row: batch %d row %d sample %lld pl %d sl %d\n", k, i, (long long)b.sample_id[i],
                        b.prefix_len[i], b.suffix_len[i]);
            bad += !ok;
        }
    }
    CHECK_MSG(bad == 0, "%d invalid rows", bad);
    CHECK(hist_img[0] > 0);  /* image-text prefix may be empty */
    CHECK(hist_txt[0] == 0); /* text-only prefix never is */
    CHECK(hist_txt[1] > 0 && hist_txt[LP] > 0);
    int64_t want = 0;
    (void)want;
    pvlm_loader_stats s;
    pvlm_loader_stats_get(L, &s);
    for (int r = 0; r < PVLM_SKIP_NREASONS; r++) CHECK(s.skipped[r] == 0);
    CHECK(s.tokens > 0);
    pvlm_batch_free(&b);
    pvlm_loader_close(L);
    /* JPEG records are decoded and resized to S x S */
    setup(3);
    config(&c, 8, 0.0, 0, 1, 1);
    L = open_l(&c);
    if (!L) return;
    pvlm_batch_alloc(&b, 8, S_, LP, LS, &err);
    bad = 0;
    for (int k = 0; k < 20; k++) {
        CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
        for (int i = 0; i < 8; i++) {
            bad += !check_row(&b, i, NULL, 3);
            /* a 2S JPEG of a constant-R image: red channel stays close to g & 255 */
            int64_t g = b.sample_id[i];
            int d = (int)b.images[(size_t)i * S_ * S_ * 3 + (S_ / 2 * S_ + S_ / 2) * 3] - (int)(g & 255);
            if (g % 3 != 0)
                bad += d != 0;
            else
                bad += d > 12 || d < -12;
        }
    }
    CHECK_MSG(bad == 0, "%d bad rows with JPEG records", bad);
    pvlm_loader_stats_get(L, &s);
    CHECK(s.skipped[PVLM_SKIP_IMAGE_DECODE] == 0);
    pvlm_batch_free(&b);
    pvlm_loader_close(L);
}

/* Flip a byte at the first occurrence of needle in file path. */
static int corrupt_at(const char *path, const char *needle, size_t nlen, int delta) {
    char *d = NULL;
    size_t n;
    pvlm_err err;
    if (pvlm_read_file(path, &d, &n, &err)) return -1;
    for (size_t i = 0; i + nlen <= n; i++)
        if (!memcmp(d + i, needle, nlen)) {
            d[i + (size_t)delta] ^= 0x55;
            FILE *f = fopen(path, "r+b");
            fseek(f, (long)(i + (size_t)delta), SEEK_SET);
            fputc((unsigned char)d[i + (size_t)delta], f);
            fclose(f);
            free(d);
            return 0;
        }
    free(d);
    return -1;
}

static void t_corrupt(void) {
    pvlm_err err = {0};
    /* extra image shard with a bad JPEG and an invalid-UTF-8 caption, plus an LMDB record whose
     * bytes are flipped on disk (checksum mismatch) */
    char d[4300], path[4400];
    snprintf(d, sizeof d, "%s/img", dir);
    snprintf(path, sizeof path, "%s/images-00001-of-00002.lmdb", d);
    pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(path, NULL, &err);
    CHECK(w != NULL);
    uint8_t rgb[S_ * S_ * 3];
    for (int64_t g = 70; g < 120 && w; g++) {
        char id[32];
        snprintf(id, sizeof id, "img%lld", (long long)g);
        char *cap = fx_words(g, fx_cap_len(g), 500);
        if (g == 75) cap[0] = (char)0xff; /* invalid UTF-8 */
        const char *caps[1] = {cap};
        pvlm_imgrec r;
        memset(&r, 0, sizeof r);
        r.id = id, r.ncaptions = 1, r.captions = caps, r.orig_w = r.orig_h = S_, r.stored_w = r.stored_h = S_;
        fx_pixels(g, S_, rgb);
        static const uint8_t junk[64] = {0xff, 0xd8, 0xff, 0xe0, 1, 2, 3};
        if (g == 80)
            r.encoding = PVLM_IMG_ENC_JPEG, r.image = junk, r.image_len = sizeof junk;
        else
            r.encoding = PVLM_IMG_ENC_RAW, r.image = rgb, r.image_len = sizeof rgb;
        if (g == 90) snprintf(id, sizeof id, "CORRUPTME");
        CHECK_OK(pvlm_imgshard_writer_add(w, &r, &err), &err);
        free(cap);
    }
    CHECK_OK(pvlm_imgshard_writer_finish(w, NULL, &err), &err);
    CHECK(corrupt_at(path, "CORRUPTME", 9, 2) == 0);
    /* text: corrupt frame 1 of shard 0 */
    snprintf(path, sizeof path, "%s/txt/text-00000.pvt", dir);
    pvlm_textshard *ts = pvlm_textshard_open(path, &err);
    CHECK(ts != NULL);
    int64_t f1_first = 0, f1_n = 0;
    if (ts) {
        const pvlm_textshard_frame_entry *fe = pvlm_textshard_frame(ts, 1);
        f1_first = fe->first_doc, f1_n = fe->n_docs;
        char *dd = NULL;
        size_t n;
        pvlm_read_file(path, &dd, &n, &err);
        FILE *f = fopen(path, "r+b");
        fseek(f, (long)(fe->offset + fe->comp_size / 2), SEEK_SET);
        fputc(dd[fe->offset + fe->comp_size / 2] ^ 0x33, f);
        fclose(f);
        free(dd);
        pvlm_textshard_close(ts);
    }
    /* text: truncate frame 2 of shard 1 (checksums recomputed: only zstd can tell) */
    snprintf(path, sizeof path, "%s/txt/text-00001.pvt", dir);
    int64_t f2_first = 0, f2_n = 0;
    ts = pvlm_textshard_open(path, &err);
    CHECK(ts != NULL);
    if (ts) {
        const pvlm_textshard_frame_entry *fe = pvlm_textshard_frame(ts, 2);
        f2_first = 150 + fe->first_doc, f2_n = fe->n_docs;
        pvlm_textshard_close(ts);
        CHECK(fx_truncate_frame(path, 2, 9) == 0);
        ts = pvlm_textshard_open(path, &err);
        CHECK_MSG(ts != NULL, "%s", err.msg);
        pvlm_textframe tf = {0};
        tf.frame = -1;
        if (ts) {
            CHECK(pvlm_textshard_read_frame(ts, 2, &tf, &err) == -1 && strstr(err.msg, "zstd"));
            CHECK_OK(pvlm_textshard_read_frame(ts, 3, &tf, &err), &err);
        }
        pvlm_textframe_free(&tf);
        pvlm_textshard_close(ts);
    }
    /* note: manifests still list the old checksums; the loader does not re-hash whole shards */
    pvlm_loader_config c;
    config(&c, 8, 0.5, 0, 1, 2);
    pvlm_loader *L = open_l(&c);
    if (!L) return;
    pvlm_batch b;
    pvlm_batch_alloc(&b, 8, S_, LP, LS, &err);
    int bad = 0, hit_bad = 0;
    int nb = 2 * NTXT / 4; /* two text epochs, four image epochs */
    pvlm_batch *keep = calloc((size_t)nb, sizeof *keep);
    for (int k = 0; k < nb; k++) {
        if (pvlm_loader_next(L, &b, &err)) {
            CHECK_MSG(0, "next failed: %s", err.msg);
            break;
        }
        pvlm_batch_alloc(&keep[k], 8, S_, LP, LS, &err);
        memcpy(keep[k].block, b.block, batch_bytes(&b));
        for (int i = 0; i < 8; i++) {
            int64_t s = b.sample_id[i];
            if (s == 75 || s == 80 || s == 90) hit_bad++;
            if (!b.has_image[i] && s - NIMG >= f1_first && s - NIMG < f1_first + f1_n) hit_bad++;
            if (!b.has_image[i] && s - NIMG >= f2_first && s - NIMG < f2_first + f2_n) hit_bad++;
            bad += !check_row(&b, i, NULL, 0);
        }
    }
    CHECK_MSG(hit_bad == 0, "%d corrupt samples reached a batch", hit_bad);
    CHECK_MSG(bad == 0, "%d invalid rows", bad);
    pvlm_loader_stats s;
    pvlm_loader_stats_get(L, &s);
    CHECK_MSG(s.skipped[PVLM_SKIP_IMAGE_READ] >= 4 && s.skipped[PVLM_SKIP_IMAGE_DECODE] >= 4 &&
                  s.skipped[PVLM_SKIP_BAD_UTF8] >= 4 && s.skipped[PVLM_SKIP_TEXT_FRAME] >= 2 * (f1_n + f2_n),
              "skips read %lld decode %lld utf8 %lld frame %lld (frame docs %lld)",
              (long long)s.skipped[PVLM_SKIP_IMAGE_READ], (long long)s.skipped[PVLM_SKIP_IMAGE_DECODE],
              (long long)s.skipped[PVLM_SKIP_BAD_UTF8], (long long)s.skipped[PVLM_SKIP_TEXT_FRAME], (long long)f1_n);
    pvlm_loader_close(L);
    /* substitutes are deterministic: same batches with another thread count */
    config(&c, 8, 0.5, 0, 1, 0);
    L = open_l(&c);
    int same = 1;
    for (int k = 0; k < nb && L; k++) {
        CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
        same &= batch_equal(&b, &keep[k]);
    }
    CHECK(same);
    pvlm_loader_close(L);
    for (int k = 0; k < nb; k++) pvlm_batch_free(&keep[k]);
    free(keep);
    pvlm_batch_free(&b);
    /* text-only: one-token documents (too_short) and an invalid-UTF-8 document */
    {
        char td[4300], tp[4400], mpath[4400];
        snprintf(td, sizeof td, "%s/txtshort", dir);
        pvlm_mkdir_p(td, &err);
        snprintf(tp, sizeof tp, "%s/text-00000.pvt", td);
        pvlm_textshard_writer *tw = pvlm_textshard_writer_open(tp, 256, 3, &err);
        for (int64_t g = 0; g < 20 && tw; g++) {
            /* "x": one byte, so one token in any byte-level BPE */
            char *t = g == 3 || g == 11 ? strdup("x") : fx_words(g, fx_doc_len(g), 0);
            if (g == 5) t[1] = (char)0xff;
            CHECK_OK(pvlm_textshard_writer_add(tw, t, strlen(t), &err), &err);
            free(t);
        }
        CHECK_OK(pvlm_textshard_writer_close(tw, NULL, &err), &err);
        pvlm_manifest tm;
        pvlm_manifest_init(&tm, "text", &err);
        CHECK_OK(fx_add_shard(&tm, td, "text-00000.pvt", 20, &err), &err);
        snprintf(mpath, sizeof mpath, "%s/manifest.json", td);
        CHECK_OK(pvlm_manifest_save(&tm, mpath, &err), &err);
        pvlm_manifest_free(&tm);
        config(&c, 4, 1.0, 0, 1, 1);
        c.text_manifest = mpath;
        L = open_l(&c);
        pvlm_batch_alloc(&b, 4, S_, LP, LS, &err);
        int seen_bad = 0;
        for (int k = 0; k < 10 && L; k++) {
            CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
            for (int i = 0; i < 4; i++) {
                int64_t g = b.sample_id[i];
                seen_bad += g == 3 || g == 5 || g == 11;
                CHECK(b.prefix_len[i] >= 1 && b.suffix_len[i] >= 1 && !b.has_image[i]);
            }
        }
        CHECK(seen_bad == 0);
        if (L) {
            pvlm_loader_stats_get(L, &s);
            CHECK_MSG(s.skipped[PVLM_SKIP_TOO_SHORT] >= 4 && s.skipped[PVLM_SKIP_BAD_UTF8] >= 2,
                      "too_short %lld bad_utf8 %lld", (long long)s.skipped[PVLM_SKIP_TOO_SHORT],
                      (long long)s.skipped[PVLM_SKIP_BAD_UTF8]);
        }
        pvlm_loader_close(L);
        pvlm_batch_free(&b);
    }
    /* a missing shard file / bad manifest fails open with a message, no crash */
    config(&c, 8, 0.5, 0, 1, 0);
    c.text_manifest = img_m; /* wrong kind */
    CHECK(pvlm_loader_open(&c, &err) == NULL && strstr(err.msg, "kind"));
    config(&c, 8, 0.5, 5, 2, 0);
    CHECK(pvlm_loader_open(&c, &err) == NULL);
    {
        char md[4300], mpath[4400];
        snprintf(md, sizeof md, "%s/missing", dir);
        pvlm_mkdir_p(md, &err);
        pvlm_manifest mm;
        pvlm_manifest_init(&mm, "text", &err);
        pvlm_manifest_add_shard(&mm, "nope.pvt", 10, 100, 0, NULL, &err);
        snprintf(mpath, sizeof mpath, "%s/manifest.json", md);
        CHECK_OK(pvlm_manifest_save(&mm, mpath, &err), &err);
        pvlm_manifest_free(&mm);
        config(&c, 8, 0.5, 0, 1, 0);
        c.text_manifest = mpath;
        CHECK(pvlm_loader_open(&c, &err) == NULL && strstr(err.msg, "nope.pvt"));
    }
    /* a truncated image shard fails open with a message naming it (no SIGBUS), whether the
     * manifest's size gives it away or a manifest was rewritten to match the cut file */
    {
        char td[4300], tp[4400], sp[4400], mpath[4400];
        snprintf(td, sizeof td, "%s/trunc", dir);
        snprintf(tp, sizeof tp, "%s/images-00000-of-00001.lmdb", td);
        snprintf(sp, sizeof sp, "%s/img/images-00001-of-00002.lmdb", dir);
        snprintf(mpath, sizeof mpath, "%s/manifest.json", td);
        pvlm_mkdir_p(td, &err);
        char *data = NULL;
        size_t n = 0;
        CHECK_OK(pvlm_read_file(sp, &data, &n, &err), &err);
        for (int pass = 0; pass < 2 && data; pass++) {
            size_t cut = n / 2;
            CHECK_OK(pvlm_write_file_atomic(tp, data, cut, &err), &err);
            pvlm_manifest mm;
            pvlm_manifest_init(&mm, "images", &err);
            pvlm_manifest_add_shard(&mm, "images-00000-of-00001.lmdb", 50, pass ? cut : n, 0, NULL, &err);
            CHECK_OK(pvlm_manifest_save(&mm, mpath, &err), &err);
            pvlm_manifest_free(&mm);
            config(&c, 8, 0, 0, 1, 0);
            c.image_manifest = mpath;
            CHECK_MSG(pvlm_loader_open(&c, &err) == NULL && strstr(err.msg, tp) && strstr(err.msg, "damaged"),
                      "pass %d: %s", pass, err.msg);
        }
        free(data);
    }
}

static void t_resample(void) {
    pvlm_loader_config c;
    config(&c, 8, 0.5, 1, 3, 1);
    c.mode = PVLM_LOADER_RESAMPLE;
    pvlm_batch *a = run_n(&c, 30);
    c.threads = 0;
    pvlm_batch *b = run_n(&c, 30);
    int same = 1, inrange = 1, bad = 0;
    int *cnt = calloc(NTXT, sizeof(int));
    for (int k = 0; k < 30; k++) {
        same &= batch_equal(&a[k], &b[k]);
        for (int i = 0; i < 8; i++) {
            int64_t s = a[k].sample_id[i];
            inrange &= a[k].has_image[i] ? (s >= 0 && s < NIMG) : (s >= NIMG && s < NIMG + NTXT);
            if (!a[k].has_image[i]) cnt[s - NIMG]++;
            bad += !check_row(&a[k], i, NULL, 0);
        }
    }
    int dup = 0;
    for (int g = 0; g < NTXT; g++) dup += cnt[g] > 1;
    CHECK(same && inrange && bad == 0);
    CHECK(dup > 0); /* 120 draws from 240 with replacement: repeats are all but certain */
    free(cnt);
    /* resume in resample mode */
    pvlm_loader *L = open_l(&c);
    pvlm_batch x;
    pvlm_err err = {0};
    pvlm_batch_alloc(&x, 8, S_, LP, LS, &err);
    for (int k = 0; k < 11 && L; k++) CHECK_OK(pvlm_loader_next(L, &x, &err), &err);
    json_t *st = L ? pvlm_loader_state_save(L) : NULL;
    pvlm_loader_close(L);
    c.threads = 2;
    L = open_l(&c);
    if (L && st) {
        CHECK_OK(pvlm_loader_state_restore(L, st, &err), &err);
        same = 1;
        for (int k = 11; k < 30; k++) {
            CHECK_OK(pvlm_loader_next(L, &x, &err), &err);
            same &= batch_equal(&x, &a[k]);
        }
        CHECK(same);
    }
    json_decref(st);
    pvlm_loader_close(L);
    pvlm_batch_free(&x);
    free_n(a, 30), free_n(b, 30);
}

/* Real tokenizer (io/tokenizer.h, trained on the fixture text): every row decodes back to its source. */
static void t_tokenizer(void) {
    pvlm_err err = {0};
    pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(&err);
    CHECK(tr != NULL);
    if (!tr) return;
    for (int64_t g = 0; g < NTXT; g++) {
        char *t = fx_words(g, fx_doc_len(g), 0);
        pvlm_bpe_trainer_add(tr, t, strlen(t), &err);
        free(t);
    }
    char tdir[4300];
    snprintf(tdir, sizeof tdir, "%s/bpe", dir);
    CHECK_OK(pvlm_bpe_trainer_run(tr, 400, 2, &err), &err);
    CHECK_OK(pvlm_bpe_trainer_save(tr, tdir, &err), &err);
    pvlm_bpe_trainer_free(tr);
    pvlm_tokenizer *tok = NULL;
    CHECK_OK(pvlm_tokenizer_load(tdir, &tok, &err), &err);
    if (!tok) return;
    pvlm_loader_config c;
    config(&c, 8, 0.5, 0, 1, 2);
    c.tokenizer = tok;
    c.pad_id = pvlm_tokenizer_pad_id(tok), c.bos_id = pvlm_tokenizer_bos_id(tok), c.eos_id = pvlm_tokenizer_eos_id(tok);
    pvlm_loader *L = open_l(&c);
    pvlm_batch b;
    pvlm_batch_alloc(&b, 8, S_, LP, LS, &err);
    int bad = 0, whole = 0, part = 0;
    for (int k = 0; k < 60 && L; k++) {
        CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
        for (int i = 0; i < 8; i++) {
            int32_t ids[LP + LS];
            int n = 0, pl = b.prefix_len[i], sl = b.suffix_len[i];
            for (int j = 0; j < pl; j++) ids[n++] = b.prefix[(size_t)i * LP + j];
            int eos = sl > 0 && b.targets[(size_t)i * LS + sl - 1] == c.eos_id;
            for (int j = 0; j < sl - eos; j++) ids[n++] = b.targets[(size_t)i * LS + j];
            char *out = NULL;
            size_t on = 0;
            CHECK_OK(pvlm_tokenizer_decode_alloc(tok, ids, (size_t)n, 0, &out, &on, &err), &err);
            int64_t g = b.has_image[i] ? b.sample_id[i] : b.sample_id[i] - NIMG;
            char *src = b.has_image[i] ? fx_words(g, fx_cap_len(g), 500) : fx_words(g, fx_doc_len(g), 0);
            size_t sn = strlen(src);
            if (eos)
                bad += on != sn || memcmp(out, src, sn), whole++;
            else
                bad += on >= sn || memcmp(out, src, on) || sl != LS, part++;
            bad += (!b.has_image[i] && pl < 1) || sl < 1;
            free(out), free(src);
        }
    }
    CHECK_MSG(bad == 0, "%d rows do not decode to their source", bad);
    CHECK(whole > 0 && part > 0);
    pvlm_batch_free(&b);
    pvlm_loader_close(L);
    pvlm_tokenizer_free(tok);
}

/* ---------------------------------------------------------------- resize */

/* A resume under another world size inside an epoch (docs/loader.md, "Changing the number of
 * ranks"). Phases run one after another, each resuming (through JSON text) the state the previous
 * one saved; nb = 0 in the last phase: enough batches to finish the interrupted epoch and the next. */
typedef struct rz_phase {
    int W, nb;
} rz_phase;
#define RZ_B 4 /* 2 image + 2 text samples per batch */

/* Samples left of the interrupted epoch of a stream of N after the phases before the last. */
static int64_t rz_left(const rz_phase *ph, int np, int64_t N) {
    int64_t M = N;
    for (int p = 0; p + 1 < np; p++) M -= (int64_t)ph[p].W * ph[p].nb * (RZ_B / 2);
    return M;
}

/* Run phase ph with state *text (NULL: fresh); append ids to ids[r][sid] (count n[r][sid]); replace
 * *text with the state the phase ends in (the same on every rank). */
static void rz_run(const rz_phase *ph, char **text, int64_t *ids[3][2], int n[3][2], pvlm_loader_stats *st0) {
    pvlm_err err = {0};
    pvlm_batch b;
    pvlm_batch_alloc(&b, RZ_B, S_, LP, LS, &err);
    char *next = NULL, *pos0 = NULL;
    for (int r = 0; r < ph->W; r++) {
        pvlm_loader_config c;
        config(&c, RZ_B, 0.5, r, ph->W, r % 2 ? 2 : 0);
        pvlm_loader *L = open_l(&c);
        if (!L) break;
        if (*text) {
            json_error_t je;
            json_t *j = json_loads(*text, 0, &je);
            CHECK_OK(pvlm_loader_state_restore(L, j, &err), &err);
            json_decref(j);
        }
        n[r][0] = n[r][1] = 0;
        for (int k = 0; k < ph->nb; k++) {
            CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
            for (int i = 0; i < RZ_B; i++) {
                int sid = !b.has_image[i];
                ids[r][sid][n[r][sid]++] = b.sample_id[i] - (sid ? NIMG : 0);
            }
        }
        json_t *st = pvlm_loader_state_save(L);
        char *t = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
        json_object_del(st, "stats"); /* tokens and skips are per rank; the positions are not */
        char *pos = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(st);
        if (r == 0) {
            next = t, pos0 = pos;
            pvlm_loader_stats_get(L, st0);
        } else {
            CHECK_MSG(pos0 && pos && !strcmp(pos0, pos), "rank %d saved other positions than rank 0", r);
            free(t), free(pos);
        }
        pvlm_loader_close(L);
    }
    free(*text), free(pos0);
    *text = next;
    pvlm_batch_free(&b);
}

static void rz_case(rz_phase *ph, int np) {
    const int64_t Ns[2] = {NIMG, NTXT};
    int64_t q_last[2], R[2];
    int Wl = ph[np - 1].W, need = 0;
    for (int sid = 0; sid < 2; sid++) {
        int64_t M = rz_left(ph, np, Ns[sid]);
        q_last[sid] = M / Wl, R[sid] = M % Wl;
        int64_t m = (q_last[sid] + Ns[sid] / Wl + 1) / (RZ_B / 2);
        if (m > need) need = (int)m;
    }
    ph[np - 1].nb = need;
    char *text = NULL;
    int *cnt[2] = {calloc(NIMG, sizeof(int)), calloc(NTXT, sizeof(int))};
    int64_t *ids[3][2];
    int n[3][2];
    for (int r = 0; r < 3; r++)
        for (int sid = 0; sid < 2; sid++) ids[r][sid] = malloc(sizeof(int64_t) * 4096);
    pvlm_loader_stats st0;
    char what[128];
    int w = snprintf(what, sizeof what, "W");
    for (int p = 0; p < np; p++) {
        w += snprintf(what + w, sizeof what - (size_t)w, " %d(%d)", ph[p].W, ph[p].nb);
        rz_run(&ph[p], &text, ids, n, &st0);
        for (int sid = 0; sid < 2; sid++)
            for (int r = 0; r < ph[p].W; r++) {
                int take = p + 1 < np ? n[r][sid] : (int)q_last[sid];
                for (int j = 0; j < take && j < n[r][sid]; j++) cnt[sid][ids[r][sid][j]]++;
            }
    }
    for (int sid = 0; sid < 2; sid++) {
        int once = 0, over = 0;
        for (int64_t g = 0; g < Ns[sid]; g++) once += cnt[sid][g] == 1, over += cnt[sid][g] > 1;
        CHECK_MSG(over == 0 && once == Ns[sid] - R[sid] && st0.resize_dropped[sid] == R[sid],
                  "%s, %s stream: %d drawn once, %d more than once, want %lld once and %lld dropped (counted %lld)",
                  what, sid ? "text" : "image", once, over, (long long)(Ns[sid] - R[sid]), (long long)R[sid],
                  (long long)st0.resize_dropped[sid]);
        /* the next epoch: the normal partition of the last world size, no sample twice */
        int64_t q = Ns[sid] / Wl;
        memset(cnt[sid], 0, sizeof(int) * (size_t)Ns[sid]);
        for (int r = 0; r < Wl; r++)
            for (int64_t j = q_last[sid]; j < q_last[sid] + q; j++) cnt[sid][ids[r][sid][j]]++;
        over = 0;
        for (int64_t g = 0; g < Ns[sid]; g++) over += cnt[sid][g] > 1;
        CHECK_MSG(over == 0, "%s, %s stream: %d samples twice in the epoch after", what, sid ? "text" : "image", over);
    }
    CHECK_MSG(st0.epoch_image >= 1 && st0.epoch_text >= 1, "%s: epochs %lld %lld", what, (long long)st0.epoch_image,
              (long long)st0.epoch_text);
    for (int r = 0; r < 3; r++)
        for (int sid = 0; sid < 2; sid++) free(ids[r][sid]);
    free(cnt[0]), free(cnt[1]), free(text);
}

/* From `text`, rank `rank` of W: nb batches straight equal nb/2 + save/restore + the rest. */
static void rz_same_world(const char *text, int rank, int W, int nb) {
    pvlm_loader_config c;
    config(&c, RZ_B, 0.5, rank, W, 1);
    pvlm_err err = {0};
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    pvlm_batch *ref = calloc((size_t)nb, sizeof *ref), b;
    pvlm_batch_alloc(&b, RZ_B, S_, LP, LS, &err);
    pvlm_loader *L = open_l(&c);
    if (L) CHECK_OK(pvlm_loader_state_restore(L, j, &err), &err);
    for (int k = 0; k < nb && L; k++) {
        pvlm_batch_alloc(&ref[k], RZ_B, S_, LP, LS, &err);
        CHECK_OK(pvlm_loader_next(L, &ref[k], &err), &err);
    }
    pvlm_loader_close(L);
    L = open_l(&c);
    if (L) CHECK_OK(pvlm_loader_state_restore(L, j, &err), &err);
    for (int k = 0; k < nb / 2 && L; k++) CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
    json_t *mid = L ? pvlm_loader_state_save(L) : NULL;
    pvlm_loader_close(L);
    L = open_l(&c);
    if (L && mid) CHECK_OK(pvlm_loader_state_restore(L, mid, &err), &err);
    int same = 1;
    for (int k = nb / 2; k < nb && L; k++) {
        CHECK_OK(pvlm_loader_next(L, &b, &err), &err);
        same &= batch_equal(&b, &ref[k]);
    }
    CHECK_MSG(same, "same-world resume inside a continued epoch is not exact");
    pvlm_loader_close(L);
    json_decref(mid), json_decref(j);
    free_n(ref, nb);
    pvlm_batch_free(&b);
}

static void t_resize(void) {
    rz_phase a[] = {{2, 5}, {3, 0}}; /* 100 images left: 33 per rank, 1 dropped */
    rz_case(a, 2);
    rz_phase b[] = {{3, 7}, {2, 0}};
    rz_case(b, 2);
    rz_phase c[] = {{2, 5}, {1, 0}};
    rz_case(c, 2);
    rz_phase d[] = {{2, 5}, {3, 4}, {2, 0}}; /* two changes in one epoch */
    rz_case(d, 3);
    rz_phase e[] = {{2, 3}, {3, 4}, {3, 3}, {1, 4}, {2, 0}}; /* a same-world resume between them */
    rz_case(e, 5);
    /* a same-world resume inside the continued epoch is byte-identical to not stopping */
    rz_phase f[] = {{2, 5}, {3, 4}};
    char *text = NULL;
    int64_t *ids[3][2];
    int n[3][2];
    for (int r = 0; r < 3; r++)
        for (int sid = 0; sid < 2; sid++) ids[r][sid] = malloc(sizeof(int64_t) * 4096);
    pvlm_loader_stats st0;
    rz_run(&f[0], &text, ids, n, &st0);
    rz_run(&f[1], &text, ids, n, &st0);
    CHECK(text && strstr(text, "\"version\":2") && strstr(text, "levels"));
    if (text) rz_same_world(text, 1, 3, 12);
    /* a damaged resize object is refused with a message, never a crash */
    pvlm_loader_config cf;
    config(&cf, RZ_B, 0.5, 0, 3, 0);
    pvlm_loader *L = open_l(&cf);
    json_error_t je;
    json_t *j = text ? json_loads(text, 0, &je) : NULL;
    json_t *lv = json_object_get(json_object_get(json_object_get(j, "image"), "resize"), "levels");
    if (L && lv) {
        pvlm_err err = {0};
        json_array_set_new(json_array_get(lv, 0), 1, json_integer(1000));
        CHECK(pvlm_loader_state_restore(L, j, &err) == -1 && strstr(err.msg, "resize"));
    }
    json_decref(j);
    pvlm_loader_close(L);
    for (int r = 0; r < 3; r++)
        for (int sid = 0; sid < 2; sid++) free(ids[r][sid]);
    free(text);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    pvlm_log_set_level(PVLM_LOG_WARN);
    setup(0);
    pvlm_err err = {0};
    tok_ = fx_tokenizer(NTXT, NIMG, 400, &err);
    CHECK_MSG(tok_ != NULL, "fixture tokenizer: %s", err.msg);
    if (!tok_) return pvlm_test_done(which);
    pad_ = pvlm_tokenizer_pad_id(tok_), bos_ = pvlm_tokenizer_bos_id(tok_), eos_ = pvlm_tokenizer_eos_id(tok_);
    int all = !strcmp(which, "all");
    if (all || !strcmp(which, "permutation")) t_permutation();
    if (all || !strcmp(which, "partition")) t_partition();
    if (all || !strcmp(which, "resume")) t_resume();
    if (all || !strcmp(which, "resize")) t_resize();
    if (all || !strcmp(which, "mix")) t_mix();
    if (all || !strcmp(which, "resample")) t_resample();
    if (all || !strcmp(which, "corrupt")) t_corrupt();
    if (all || !strcmp(which, "tokenizer")) t_tokenizer();
    if (all || !strcmp(which, "prefixlm")) t_prefixlm();
    pvlm_tokenizer_free(tok_);
    return pvlm_test_done(which);
}
