/* gen_seeds.c - writes small valid inputs for every fuzz target into OUT/<target>/ (run.sh makes
 * the starting corpora with it): safetensors and model files, image records, a text shard, trained
 * tokenizer files, JPEG/PNG images, a manifest, caption JSON, URL lists, argv vectors.
 *   gen_seeds OUT */
#include <stdlib.h>
#include <sys/stat.h>

#include "core/fsutil.h"
#include "core/json.h"
#include "score/capscore.h"
#include "fuzz.h"
#include "io/ckptdir.h"
#include "io/image.h"
#include "io/imgshard.h"
#include "io/manifest.h"
#include "io/safetensors.h"
#include "io/textshard.h"
#include "io/bpe_train.h"
#include "io/tokenizer.h"
#include "io/trainstate.h"
#include "model/checkpoint.h"

static char g_out[4096];

static void die(const char *what, const pvlm_err *err) {
    fprintf(stderr, "gen_seeds: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t n) {
    char dir[4200], path[4400];
    pvlm_err err = {0};
    snprintf(dir, sizeof dir, "%s/%s", g_out, target);
    if (pvlm_mkdir_p(dir, &err)) die(dir, &err);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (pvlm_write_file_atomic(path, data, n, &err)) die(path, &err);
}

static void put_str(const char *target, const char *name, const char *s) { put(target, name, s, strlen(s)); }

#define PUT_LIT(t, n, lit) put(t, n, lit, sizeof(lit) - 1)

static void put_file(const char *target, const char *name, const char *src) {
    char *buf;
    size_t n;
    pvlm_err err = {0};
    if (pvlm_read_file(src, &buf, &n, &err)) die(src, &err);
    put(target, name, buf, n);
    free(buf);
}

/* ckptdir: the state.json pvlm pretrain would write for fuzz_ckptdir's fixed files (sealed, flag byte 1,
 * and as raw bytes, flag 0), plus one whose optimizer file points into another step. */
static void ckptdir_seeds(const char *tmp) {
    pvlm_err err = {0};
    char root[4300], step[4400], sp[4500];
    snprintf(root, sizeof root, "%s/ck", tmp);
    if (pvlm_ckptdir_begin(root, 2, step, sizeof step, &err) || pvlm_fuzz_ckptdir_files(step, &err))
        die("ckptdir", &err);
    if (pvlm_path_join(sp, sizeof sp, step, "sub", &err) || pvlm_rm_rf(sp, &err)) die("ckptdir", &err);
    pvlm_trainstate ts = {.step = 2,
                          .samples_seen = 16,
                          .tokens_seen = 160,
                          .world_size = 2,
                          .init_seed = 1,
                          .data_seed = 2,
                          .config = json_pack("{s:i, s:s}", "micro-batch", 4, "resume", "auto"),
                          .model_config = json_pack("{s:i, s:i}", "d_model", 8, "vocab_size", 16),
                          .dp = json_pack("{s:i, s:i}", "step", 2, "adam_t", 2),
                          .loader = json_pack("[{s:i}, {s:i}]", "epoch", 0, "epoch", 1),
                          .optim_files = json_pack("[s]", "optim.safetensors")};
    snprintf(ts.reason, sizeof ts.reason, "periodic");
    json_t *j = pvlm_trainstate_to_json(&ts, &err);
    pvlm_trainstate_free(&ts);
    if (!j || pvlm_ckptdir_commit(root, 2, j, NULL, NULL, 0, &err)) die("ckptdir commit", &err);
    json_decref(j);
    if (pvlm_ckptdir_step_path(root, 2, step, sizeof step, &err) ||
        pvlm_path_join(sp, sizeof sp, step, PVLM_CKPTDIR_STATE, &err))
        die("ckptdir", &err);
    char *buf, *seed;
    size_t n;
    if (pvlm_read_file(sp, &buf, &n, &err)) die(sp, &err);
    seed = malloc(n + 1);
    memcpy(seed + 1, buf, n);
    seed[0] = 1;
    put("ckptdir", "seed-sealed", seed, n + 1);
    seed[0] = 0;
    put("ckptdir", "seed-raw", seed, n + 1);
    free(seed);
    free(buf);
    put_str("ckptdir", "seed-updir",
            "\x01{\"format\": \"pvlm-ckpt\", \"version\": 1, \"step\": 2, \"files\": "
            "{\"model.safetensors\": {\"size\": 11, \"xxh3\": \"0000000000000000\"}}, "
            "\"optim_files\": [\"../step_00000001/optim.safetensors\"]}");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds OUT\n");
        return 2;
    }
    snprintf(g_out, sizeof g_out, "%s", argv[1]);
    pvlm_err err = {0};
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.tmp", g_out);
    if (pvlm_mkdir_p(tmp, &err)) die(tmp, &err);
    char path[4400];

    /* safetensors: F32 matrix, F16 vector, I64 scalar, empty tensor */
    {
        pvlm_st_writer w;
        float f[6] = {1, 2, 3, 4, 5, 6};
        uint16_t h[3] = {0x3c00, 0x7c00, 0};
        int64_t i = 42;
        int64_t s2[2] = {2, 3}, s1[1] = {3}, s0[1] = {0};
        if (pvlm_st_writer_init(&w, &err) || pvlm_st_writer_add(&w, "a.weight", PVLM_ST_F32, 2, s2, f, &err) ||
            pvlm_st_writer_add(&w, "b", PVLM_ST_F16, 1, s1, h, &err) ||
            pvlm_st_writer_add(&w, "c", PVLM_ST_I64, 0, NULL, &i, &err) ||
            pvlm_st_writer_add(&w, "empty", PVLM_ST_BF16, 1, s0, NULL, &err) ||
            pvlm_st_writer_meta(&w, "format", "pt", &err))
            die("safetensors", &err);
        snprintf(path, sizeof path, "%s/a.safetensors", tmp);
        if (pvlm_st_writer_write(&w, path, &err)) die("safetensors", &err);
        pvlm_st_writer_free(&w);
        put_file("safetensors", "seed-small", path);
    }
    /* tiny model checkpoint */
    {
        pvlm_model_config c;
        pvlm_model_config_default(&c);
        c.image_size = 8, c.patch_size = 4, c.d_model = 8, c.n_heads = 2, c.d_ff = 16;
        c.n_enc_layers = 1, c.n_dec_layers = 1, c.vocab_size = 16, c.max_prefix_len = 4, c.max_suffix_len = 4;
        pvlm_model m;
        if (pvlm_model_create(&m, &c, &err)) die("model", &err);
        pvlm_model_init_weights(&m, 1);
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        if (pvlm_model_save(&m, path, NULL, &err)) die("model save", &err);
        pvlm_model_free(&m);
        put_file("checkpoint", "seed-tiny", path);
        put_file("safetensors", "seed-model", path);
    }
    /* images: an 9x7 gradient as JPEG and PNG */
    uint8_t *jpg = NULL, *png = NULL;
    size_t njpg = 0, npng = 0;
    {
        pvlm_image img = {0};
        if (pvlm_image_alloc(&img, 9, 7, &err)) die("image", &err);
        for (int k = 0; k < 9 * 7 * 3; k++) img.rgb[k] = (uint8_t)(k * 5);
        if (pvlm_image_encode_jpeg(NULL, &img, 80, &jpg, &njpg, &err)) die("jpeg", &err);
        if (pvlm_image_encode_png(&img, &png, &npng, &err)) die("png", &err);
        put("image", "seed.jpg", jpg, njpg);
        put("image", "seed.png", png, npng);
        /* image records: raw and JPEG */
        const char *caps[2] = {"a cat on a mat", "two dogs"};
        pvlm_imgrec rec = {0};
        rec.id = "123";
        rec.ncaptions = 2;
        rec.captions = caps;
        rec.orig_w = 9, rec.orig_h = 7, rec.stored_w = 9, rec.stored_h = 7;
        rec.encoding = PVLM_IMG_ENC_RAW;
        rec.image = img.rgb;
        rec.image_len = 9 * 7 * 3;
        uint8_t *v;
        size_t n;
        if (pvlm_imgrec_encode(&rec, &v, &n, &err)) die("imgrec", &err);
        put("imgrec", "seed-raw", v, n);
        free(v);
        rec.encoding = PVLM_IMG_ENC_JPEG;
        rec.image = jpg;
        rec.image_len = njpg;
        rec.ncaptions = 0;
        if (pvlm_imgrec_encode(&rec, &v, &n, &err)) die("imgrec", &err);
        put("imgrec", "seed-jpeg", v, n);
        free(v);
        /* an LMDB image shard of three records (raw, JPEG, no caption) */
        snprintf(path, sizeof path, "%s/s.lmdb", tmp);
        pvlm_imgshard_writer *w = pvlm_imgshard_writer_open(path, NULL, &err);
        if (!w || pvlm_imgshard_writer_add(w, &rec, &err)) die("lmdb", &err);
        rec.encoding = PVLM_IMG_ENC_RAW, rec.image = img.rgb, rec.image_len = 9 * 7 * 3, rec.ncaptions = 2;
        if (pvlm_imgshard_writer_add(w, &rec, &err) || pvlm_imgshard_writer_add(w, &rec, &err)) die("lmdb", &err);
        if (pvlm_imgshard_writer_finish(w, NULL, &err)) die("lmdb", &err);
        put_file("lmdb", "seed-3", path);
        /* HTTP replies for the downloader */
        put_str("http", "seed-ok", "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\nabcd");
        put_str("http", "seed-chunked", "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       "3\r\nabc\r\n0\r\n\r\n");
        put_str("http", "seed-robots", "HTTP/1.1 200 OK\r\nX-Robots-Tag: otherbot: noindex, pvlm: noai\r\n"
                                      "Content-Type: image/jpeg\r\n\r\nxyz");
        put_str("http", "seed-503", "HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n");
        put_str("http", "seed-redirect", "HTTP/1.0 302 Found\r\nLocation: /y.jpg\r\n\r\n");
        put_str("http", "seed-html", "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html>");
        put_str("http", "seed-bad-status", "HTTP/1.1 2x0 OK\r\n\r\n");
        put_str("http", "seed-too-big", "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 99999\r\n\r\n");
        pvlm_image_free(&img);
    }
    free(jpg);
    free(png);
    /* text shard: 3 small frames */
    {
        snprintf(path, sizeof path, "%s/t.txtshard", tmp);
        pvlm_textshard_writer *w = pvlm_textshard_writer_open(path, 32, 1, &err);
        if (!w) die("textshard", &err);
        static const char *docs[] = {"hello world", "", "a somewhat longer document of text", "x", "caf\xc3\xa9"};
        for (int k = 0; k < 5; k++)
            if (pvlm_textshard_writer_add(w, docs[k], strlen(docs[k]), &err)) die("textshard", &err);
        if (pvlm_textshard_writer_close(w, NULL, &err)) die("textshard", &err);
        put_file("textshard", "seed", path);
        /* the harness's frame mode: "!", n_docs, then the decompressed frame (u32 lengths, bytes) */
        PUT_LIT("textshard", "seed-frame", "!\x02\x03\0\0\0\x02\0\0\0abcde");
    }
    /* tokenizer files: encoder.json NUL vocab.bpe */
    {
        static const char corpus[] = "the cat sat on the mat, the dog's bone 123 123 !! \xc3\xa9t\xc3\xa9";
        pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(&err);
        if (!tr || pvlm_bpe_trainer_add(tr, corpus, sizeof corpus - 1, &err) ||
            pvlm_bpe_trainer_run(tr, 270, 1, &err))
            die("bpe", &err);
        snprintf(path, sizeof path, "%s/tok", tmp);
        if (pvlm_bpe_trainer_save(tr, path, &err)) die("bpe save", &err);
        pvlm_bpe_trainer_free(tr);
        char *a, *b;
        size_t na, nb;
        char p2[4500];
        snprintf(p2, sizeof p2, "%s/encoder.json", path);
        if (pvlm_read_file(p2, &a, &na, &err)) die(p2, &err);
        snprintf(p2, sizeof p2, "%s/vocab.bpe", path);
        if (pvlm_read_file(p2, &b, &nb, &err)) die(p2, &err);
        char *cat = malloc(na + nb + 1);
        memcpy(cat, a, na);
        cat[na] = 0;
        memcpy(cat + na + 1, b, nb);
        put("tokfiles", "seed-trained", cat, na + nb + 1);
        free(cat);
        free(a);
        free(b);
        put_str("tokrt", "seed-1", corpus);
        put_str("tokrt", "seed-2", "  hello\n\n world's   \xff\xfe 12345 \xe6\x97\xa5\xe6\x9c\xac");
    }
    /* manifest */
    {
        pvlm_manifest m;
        if (pvlm_manifest_init(&m, "images", &err) ||
            pvlm_manifest_add_shard(&m, "images-00000-of-00002.lmdb", 10, 1000, 0x1234, NULL, &err) ||
            pvlm_manifest_add_shard(&m, "images-00001-of-00002.lmdb", 5, 500, 0x5678, json_pack("{s:I}", "tokens", (json_int_t)7), &err))
            die("manifest", &err);
        pvlm_manifest_add_failures(&m, "decode_error", 3);
        pvlm_manifest_set_settings(&m, json_pack("{s:i}", "image_size", 224));
        snprintf(path, sizeof path, "%s/manifest.json", tmp);
        if (pvlm_manifest_save(&m, path, &err)) die("manifest", &err);
        pvlm_manifest_free(&m);
        put_file("manifest", "seed", path);
        put_file("json", "seed-manifest", path);
    }
    put_str("json", "seed-obj", "{\"a\": 1, \"b\": 2.5, \"c\": \"s\", \"d\": [1, {\"e\": null}], \"f\": 99999999999999999999}");
    PUT_LIT("args", "seed-1", "--name\0abc\0--batch-size=8\0--lr\0" "0.1\0--verbose\0--out\0o\0pos1\0--\0--pos2");
    put_str("args", "seed-json", "{\"name\": \"x\", \"batch-size\": 3, \"lr\": 0.25, \"verbose\": true, \"mode\": \"beam\"}");
    put_str("ptb", "seed-1", "A man's \"dog\" (can't) run... $5.50 -- don't gonna U.S. 1/2 & <b>caf\xc3\xa9</b> {x} [y]!?");
    put_str("ptb", "seed-2", "\xc2\xa0\xe2\x80\x9cQuoted\xe2\x80\x9d \xe2\x80\xa6 \xe2\x80\x94 \xc3\x84\xc3\x96 \xce\xa3 'tis");
    PUT_LIT("vqa", "seed-1", "Two dogs.\0two\0 2 \0two dogs\0none\0the dog's\0dont\0yes\0\"a,b\"\0" "3.5\0x");
    put_str("capscore", "seed-refs",
            "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}, {\"id\": 2, \"domain\": \"in-domain\"}], "
            "\"annotations\": [{\"image_id\": 1, \"id\": 10, \"caption\": \"a cat\"}, "
            "{\"image_id\": 2, \"id\": 11, \"caption\": \"a dog\"}]}");
    put_str("capscore", "seed-res", "[{\"image_id\": 1, \"caption\": \"a cat\"}, {\"image_id\": 2, \"caption\": \"dog\"}]");
    put_str("urlsrc", "seed-tsv", "\x01" "a cat on a mat\thttp://example.com/a.jpg\nsecond one\thttps://x.org/b.png\n\n\tempty\n");
    put_str("urlsrc", "seed-csv", "\x12" "url,caption\n\"http://a/b.jpg\",\"quoted, \"\"comma\"\"\"\nhttp://c/d,\"multi\nline\"\r\n");
    put_str("urlsrc", "seed-jsonl", "\x03{\"url\": \"http://a/b\", \"caption\": \"x\"}\n{\"url\": 5}\nnot json\n{\"url\":\"u\",\"caption\":\"\"}\n");
    put_str("urlsrc", "seed-fail", "\x0c{\"index\": 3, \"url\": \"http://a\", \"caption\": \"c\", \"reason\": \"timeout\", "
                                   "\"http_status\": 0, \"attempts\": 2, \"detail\": \"d\"}\n{\"index\": 3}\n");
    /* COCO / NoCaps / Karpathy caption files; the first byte picks the split filter */
    PUT_LIT("coco", "seed-coco", "\x00{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}, {\"id\": \"x2\", "
                                 "\"file_name\": \"b.png\"}], \"annotations\": [{\"image_id\": 1, \"caption\": \"a cat\"}, "
                                 "{\"image_id\": \"x2\", \"caption\": \"  \"}, {\"image_id\": 9, \"caption\": \"lost\"}]}");
    PUT_LIT("coco", "seed-nocaps", "\x00{\"images\": [{\"id\": 0, \"file_name\": \"0013ea2087020901.jpg\", "
                                   "\"domain\": \"in-domain\"}], \"annotations\": [{\"image_id\": 0, \"id\": 0, "
                                   "\"caption\": \"caf\u00e9 \xc3\xa9\"}]}");
    PUT_LIT("coco", "seed-karpathy", "\x01{\"images\": [{\"filepath\": \"train2014\", \"filename\": \"c.jpg\", "
                                     "\"cocoid\": 7, \"split\": \"train\", \"sentences\": [{\"raw\": \"A dog.\"}]}, "
                                     "{\"filename\": \"d.jpg\", \"imgid\": 8, \"split\": \"test\", \"sentences\": []}]}");
    ckptdir_seeds(tmp);
    pvlm_rm_rf(tmp, &err);
    printf("gen_seeds: seeds in %s\n", g_out);
    return 0;
}
