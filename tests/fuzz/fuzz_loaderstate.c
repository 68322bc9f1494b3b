/* fuzz_loaderstate.c - pvlm_loader_state_restore (io/loader.h) on an arbitrary loader state, the JSON a
 * checkpoint's state.json carries for each rank, including the "resize" object of a world-size change.
 *
 * Input: byte 0 picks the restoring loader: bits 0-1 world - 1 (1..4), bit 2 resample mode, bits 3-4
 * rank (mod world); the rest is the state JSON. The loader reads a fixed data set built once per
 * process in a scratch directory: 11 image-text records and 37 text documents (seed 7, B 4, half text).
 *
 * Invariants (abort when broken): after a restore that succeeds, the next batches come back without
 * error and every sample_id is in range; the state saved then restores on a fresh loader and gives the
 * same next batch byte for byte. regressions/loaderstate/: states of a run that changed its world size
 * inside an epoch (continuing and finished) and a version 1 state. */
#include <stdlib.h>
#include <sys/stat.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "fuzz.h"
#include "io/bpe_train.h"
#include "io/imgshard.h"
#include "io/loader.h"
#include "io/manifest.h"
#include "io/textshard.h"
#include "io/tokenizer.h"

#define N_IMG 11
#define N_TXT 37
#define IMG_S 4

static char g_dir[4096];
static char g_img_m[4200], g_txt_m[4200];
static pvlm_tokenizer *g_tok;

static void cleanup(void) {
    if (g_dir[0]) pvlm_rm_rf(g_dir, NULL);
    pvlm_tokenizer_free(g_tok);
}

static int add_shard(pvlm_manifest *m, const char *name, int64_t n, pvlm_err *err) {
    char p[4200];
    uint64_t ck;
    struct stat sb;
    if (pvlm_path_join(p, sizeof p, g_dir, name, err) || pvlm_hash_file(p, &ck, err)) return -1;
    if (stat(p, &sb)) return pvlm_err_errno(err, "%s", p);
    return pvlm_manifest_add_shard(m, name, n, (uint64_t)sb.st_size, ck, NULL, err);
}

static int build_images(pvlm_err *err) {
    char p[4200];
    pvlm_manifest m;
    if (pvlm_manifest_init(&m, "images", err) || pvlm_path_join(p, sizeof p, g_dir, "img.lmdb", err)) return -1;
    pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(p, NULL, err);
    uint8_t rgb[IMG_S * IMG_S * 3];
    int rc = w ? 0 : -1;
    for (int g = 0; g < N_IMG && !rc; g++) {
        char id[16], cap[32];
        snprintf(id, sizeof id, "i%d", g);
        snprintf(cap, sizeof cap, "a picture number %d", g);
        const char *caps[1] = {cap};
        memset(rgb, g * 20, sizeof rgb);
        pvlm_imgrec r;
        memset(&r, 0, sizeof r);
        r.id = id, r.ncaptions = 1, r.captions = caps, r.orig_w = r.orig_h = r.stored_w = r.stored_h = IMG_S;
        r.encoding = PVLM_IMG_ENC_RAW, r.image = rgb, r.image_len = sizeof rgb;
        rc = pvlm_imgshard_writer_add(w, &r, err);
    }
    if (rc && w) pvlm_imgshard_writer_abort(w);
    if (!rc) rc = pvlm_imgshard_writer_finish(w, NULL, err) || add_shard(&m, "img.lmdb", N_IMG, err) ||
                  pvlm_path_join(g_img_m, sizeof g_img_m, g_dir, "img.json", err) ||
                  pvlm_manifest_save(&m, g_img_m, err);
    pvlm_manifest_free(&m);
    return rc ? -1 : 0;
}

static int build_text(pvlm_err *err) {
    char p[4200];
    pvlm_manifest m;
    if (pvlm_manifest_init(&m, "text", err) || pvlm_path_join(p, sizeof p, g_dir, "txt.pvt", err)) return -1;
    pvlm_textshard_writer *w = pvlm_textshard_writer_open(p, 128, 1, err);
    int rc = w ? 0 : -1;
    for (int g = 0; g < N_TXT && !rc; g++) {
        char doc[64];
        int n = snprintf(doc, sizeof doc, "document %d says hello to %d", g, g * 7);
        rc = pvlm_textshard_writer_add(w, doc, (size_t)n, err);
    }
    if (w) rc |= pvlm_textshard_writer_close(w, NULL, err);
    if (!rc) rc = add_shard(&m, "txt.pvt", N_TXT, err) || pvlm_path_join(g_txt_m, sizeof g_txt_m, g_dir, "txt.json", err) ||
                  pvlm_manifest_save(&m, g_txt_m, err);
    pvlm_manifest_free(&m);
    return rc ? -1 : 0;
}

static int setup(void) {
    static int state; /* 0 not yet, 1 ready, -1 failed */
    if (state) return state;
    pvlm_err err = {0};
    snprintf(g_dir, sizeof g_dir, "/tmp/pvlm-fuzz-loaderstate-XXXXXX");
    if (!mkdtemp(g_dir)) {
        g_dir[0] = 0;
        return state = -1;
    }
    atexit(cleanup);
    pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(&err);
    static const char corpus[] = "a picture number document says hello to 0123456789";
    if (!tr || pvlm_bpe_trainer_add(tr, corpus, sizeof corpus - 1, &err) || pvlm_bpe_trainer_run(tr, 270, 1, &err) ||
        pvlm_bpe_trainer_tokenizer(tr, &g_tok, &err) || build_images(&err) || build_text(&err)) {
        fprintf(stderr, "fuzz_loaderstate setup: %s\n", err.msg);
        state = -1;
    } else {
        state = 1;
    }
    pvlm_bpe_trainer_free(tr);
    return state;
}

static pvlm_loader *open_loader(uint8_t flags) {
    pvlm_loader_config c;
    pvlm_loader_config_default(&c);
    c.image_manifest = g_img_m, c.text_manifest = g_txt_m, c.tokenizer = g_tok;
    c.world = 1 + (flags & 3);
    c.rank = ((flags >> 3) & 3) % c.world;
    c.mode = flags & 4 ? PVLM_LOADER_RESAMPLE : PVLM_LOADER_EPOCH;
    c.B = 4, c.S = IMG_S, c.Lp = 4, c.Ls = 6, c.text_ratio = 0.5, c.seed = 7, c.threads = 0;
    c.pad_id = pvlm_tokenizer_pad_id(g_tok), c.bos_id = pvlm_tokenizer_bos_id(g_tok);
    c.eos_id = pvlm_tokenizer_eos_id(g_tok);
    pvlm_err err = {0};
    pvlm_loader *L = pvlm_loader_open(&c, &err);
    if (!L) {
        fprintf(stderr, "fuzz_loaderstate: open: %s\n", err.msg);
        abort();
    }
    return L;
}

static int next_in_range(pvlm_loader *L, pvlm_batch *b) {
    pvlm_err err = {0};
    if (pvlm_loader_next(L, b, &err)) return 0;
    for (int i = 0; i < b->B; i++)
        if (b->sample_id[i] < 0 || b->sample_id[i] >= N_IMG + N_TXT) return 0;
    return 1;
}

int pvlm_fuzz_loaderstate(const uint8_t *data, size_t size) {
    if (size < 1 || setup() != 1) return 0;
    json_error_t je;
    json_t *st = json_loadb((const char *)data + 1, size - 1, 0, &je);
    if (!st) return 0;
    pvlm_loader *L = open_loader(data[0]);
    pvlm_err err = {0};
    pvlm_batch b, b2;
    if (pvlm_batch_alloc(&b, 4, IMG_S, 4, 6, &err) || pvlm_batch_alloc(&b2, 4, IMG_S, 4, 6, &err)) abort();
    if (pvlm_loader_state_restore(L, st, &err) == 0) {
        if (!next_in_range(L, &b)) abort();
        json_t *saved = pvlm_loader_state_save(L);
        if (!next_in_range(L, &b) || !next_in_range(L, &b)) abort();
        pvlm_loader *L2 = open_loader(data[0]);
        if (pvlm_loader_state_restore(L2, saved, &err) || !next_in_range(L2, &b2) || !next_in_range(L2, &b2) ||
            memcmp(b.sample_id, b2.sample_id, sizeof(int64_t) * 4) || memcmp(b.prefix, b2.prefix, sizeof(int32_t) * 16))
            abort();
        pvlm_loader_close(L2);
        json_decref(saved);
    }
    pvlm_batch_free(&b), pvlm_batch_free(&b2);
    pvlm_loader_close(L);
    json_decref(st);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_loaderstate)
