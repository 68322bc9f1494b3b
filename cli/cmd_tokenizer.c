/* cmd_tokenizer.c - `pvlm tokenizer encode|decode|train|info`: the byte-level BPE of
 * io/tokenizer.h from the command line (docs/tokenizer.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/args.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "io/bpe_train.h"
#include "io/tokenizer.h"

int pvlm_cmd_tokenizer(int argc, char **argv);

/* Read all of path ("-": stdin) into a malloc'd buffer. */
static int read_all(const char *path, char **out, size_t *n, pvlm_err *err) {
    if (strcmp(path, "-")) return pvlm_read_file(path, out, n, err);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return pvlm_err_set(err, PVLM_ENOMEM, "stdin: out of memory");
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) {
            cap *= 2;
            char *b2 = realloc(buf, cap + 1);
            if (!b2) {
                free(buf);
                return pvlm_err_set(err, PVLM_ENOMEM, "stdin: out of memory");
            }
            buf = b2;
        }
    }
    if (ferror(stdin)) {
        free(buf);
        return pvlm_err_errno(err, "reading stdin");
    }
    buf[len] = 0;
    *out = buf;
    *n = len;
    return 0;
}

static FILE *open_out(const char *path, pvlm_err *err) {
    if (!strcmp(path, "-")) return stdout;
    FILE *f = fopen(path, "wb");
    if (!f) pvlm_err_errno(err, "%s: cannot open for writing", path);
    return f;
}

static int close_out(FILE *f, const char *path, pvlm_err *err) {
    if (f == stdout) return fflush(f) ? pvlm_err_errno(err, "writing stdout") : 0;
    int bad = ferror(f);
    if (fclose(f) || bad) return pvlm_err_errno(err, "%s: write failed", path);
    return 0;
}

static int load_tok(const char *dir, const char *pairs, pvlm_tokenizer **t, pvlm_err *err) {
    pvlm_tok_pairs mode = !strcmp(pairs, "js")      ? PVLM_TOK_PAIRS_JS
                          : !strcmp(pairs, "exact") ? PVLM_TOK_PAIRS_EXACT
                                                    : PVLM_TOK_PAIRS_AUTO;
    if (mode == PVLM_TOK_PAIRS_AUTO) return pvlm_tokenizer_load(dir, t, err);
    char vocab[4096], merges[4096];
    if (pvlm_path_join(vocab, sizeof vocab, dir, "encoder.json", err) ||
        (!pvlm_file_exists(vocab) && pvlm_path_join(vocab, sizeof vocab, dir, "vocab.json", err)) ||
        pvlm_path_join(merges, sizeof merges, dir, "vocab.bpe", err) ||
        (!pvlm_file_exists(merges) && pvlm_path_join(merges, sizeof merges, dir, "merges.txt", err)))
        return -1;
    return pvlm_tokenizer_load_files(vocab, merges, mode, t, err);
}

static int cmd_encode(int argc, char **argv) {
    const char *vocab = NULL, *input = "-", *text = NULL, *output = "-", *format = "text", *pairs = "auto";
    int add_bos = 0, add_eos = 0;
    const pvlm_opt opts[] = {
        {"vocab", PVLM_ARG_STR, &vocab, "directory with encoder.json/vocab.json + vocab.bpe/merges.txt", NULL, 0, 0, 1},
        {"input", PVLM_ARG_STR, &input, "file to encode as one text ('-': stdin)", NULL, 0, 0, 0},
        {"text", PVLM_ARG_STR, &text, "encode this string instead of --input", NULL, 0, 0, 0},
        {"output", PVLM_ARG_STR, &output, "where to write the ids ('-': stdout)", NULL, 0, 0, 0},
        {"format", PVLM_ARG_CHOICE, &format,
         "text: ids separated by spaces, one line; json: a JSON array; i32: little-endian int32", "text|json|i32", 0, 0,
         0},
        {"bos", PVLM_ARG_FLAG, &add_bos, "prepend bos_id", NULL, 0, 0, 0},
        {"eos", PVLM_ARG_FLAG, &add_eos, "append eos_id", NULL, 0, 0, 0},
        {"pairs", PVLM_ARG_CHOICE, &pairs, "pair-rank lookup (docs/tokenizer.md)", "auto|exact|js", 0, 0, 0},
    };
    const pvlm_cmd cmd = {
        "pvlm tokenizer encode", "text -> token ids", "", opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int a = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (a != PVLM_ARGS_OK) return a == PVLM_ARGS_HELP ? 0 : 2;
    pvlm_err err = {0};
    pvlm_tokenizer *t = NULL;
    char *buf = NULL;
    size_t n = 0, nids = 0;
    int32_t *ids = NULL;
    FILE *f = NULL;
    int rc = 1;
    if (load_tok(vocab, pairs, &t, &err)) goto fail;
    if (text) {
        n = strlen(text);
        buf = malloc(n + 1);
        if (!buf) goto fail;
        memcpy(buf, text, n + 1);
    } else if (read_all(input, &buf, &n, &err)) {
        goto fail;
    }
    pvlm_tok_cache *cache = pvlm_tok_cache_new(0, &err);
    if (!cache) goto fail;
    int erc = pvlm_tokenizer_encode_alloc(t, cache, buf, n, &ids, &nids, &err);
    pvlm_tok_cache_free(cache);
    if (erc) goto fail;
    if (!(f = open_out(output, &err))) goto fail;
    int32_t bos = pvlm_tokenizer_bos_id(t), eos = pvlm_tokenizer_eos_id(t);
    if (!strcmp(format, "i32")) {
        if (add_bos) fwrite(&bos, 4, 1, f);
        fwrite(ids, 4, nids, f); /* x86-64 / aarch64: little-endian */
        if (add_eos) fwrite(&eos, 4, 1, f);
    } else {
        int js = !strcmp(format, "json");
        const char *sep = js ? ", " : " ";
        size_t k = 0;
        fputs(js ? "[" : "", f);
        if (add_bos) fprintf(f, "%s%d", k++ ? sep : "", bos);
        for (size_t i = 0; i < nids; i++) fprintf(f, "%s%d", k++ ? sep : "", ids[i]);
        if (add_eos) fprintf(f, "%s%d", k++ ? sep : "", eos);
        fputs(js ? "]\n" : "\n", f);
    }
    if (close_out(f, output, &err)) goto fail;
    rc = 0;
    goto done;
fail:
    pvlm_error("tokenizer encode: %s", err.msg[0] ? err.msg : "out of memory");
done:
    free(ids);
    free(buf);
    pvlm_tokenizer_free(t);
    return rc;
}

static int cmd_decode(int argc, char **argv) {
    const char *vocab = NULL, *input = "-", *idstr = NULL, *output = "-";
    int skip = 0;
    const pvlm_opt opts[] = {
        {"vocab", PVLM_ARG_STR, &vocab, "directory with encoder.json/vocab.json + vocab.bpe/merges.txt", NULL, 0, 0, 1},
        {"input", PVLM_ARG_STR, &input, "file of ids separated by spaces, commas, brackets or newlines ('-': stdin)",
         NULL, 0, 0, 0},
        {"ids", PVLM_ARG_STR, &idstr, "decode these ids (\"15496 995\") instead of --input", NULL, 0, 0, 0},
        {"output", PVLM_ARG_STR, &output, "where to write the bytes ('-': stdout)", NULL, 0, 0, 0},
        {"skip-special", PVLM_ARG_FLAG, &skip, "leave out pad/bos/eos and other special tokens", NULL, 0, 0, 0},
    };
    const pvlm_cmd cmd = {
        "pvlm tokenizer decode", "token ids -> text (raw bytes)", "", opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int a = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (a != PVLM_ARGS_OK) return a == PVLM_ARGS_HELP ? 0 : 2;
    pvlm_err err = {0};
    pvlm_tokenizer *t = NULL;
    char *buf = NULL, *out = NULL;
    size_t n = 0, nids = 0, cap = 0, olen = 0;
    int32_t *ids = NULL;
    FILE *f = NULL;
    int rc = 1;
    if (pvlm_tokenizer_load(vocab, &t, &err)) goto fail;
    if (idstr) {
        n = strlen(idstr);
        buf = malloc(n + 1);
        if (!buf) goto fail;
        memcpy(buf, idstr, n + 1);
    } else if (read_all(input, &buf, &n, &err)) {
        goto fail;
    }
    const char *src = idstr ? "--ids" : input;
    for (char *p = buf;;) {
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ',' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX) {
            pvlm_err_set(&err, PVLM_EFORMAT, "%s: id %zu: not an integer near \"%.20s\"", src, nids, p);
            goto fail;
        }
        if (nids == cap) {
            cap = cap ? cap * 2 : 1024;
            int32_t *i2 = realloc(ids, cap * sizeof *i2);
            if (!i2) goto fail;
            ids = i2;
        }
        ids[nids++] = (int32_t)v;
        p = end;
    }
    if (pvlm_tokenizer_decode_alloc(t, ids, nids, skip ? PVLM_TOK_SKIP_SPECIAL : 0, &out, &olen, &err)) {
        pvlm_err_prefix(&err, "%s", src);
        goto fail;
    }
    if (!(f = open_out(output, &err))) goto fail;
    fwrite(out, 1, olen, f);
    if (close_out(f, output, &err)) goto fail;
    rc = 0;
    goto done;
fail:
    pvlm_error("tokenizer decode: %s", err.msg[0] ? err.msg : "out of memory");
done:
    free(out);
    free(ids);
    free(buf);
    pvlm_tokenizer_free(t);
    return rc;
}

/* Feed a file to the trainer in ~4 MiB chunks. A chunk ends just before an ASCII
 * whitespace byte that follows an ASCII non-space byte: a piece always ends there (no
 * alternative of the regex continues from a non-space into whitespace) and one begins,
 * so the pieces are the same whether or not the text is cut there. */
static int train_file(pvlm_bpe_trainer *tr, const char *path, pvlm_err *err) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return pvlm_err_errno(err, "%s: cannot open", path);
    const size_t chunk = (size_t)4 << 20;
    size_t cap = 2 * chunk, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    if (!buf) {
        if (f != stdin) fclose(f);
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        int eof = got == 0 || feof(f);
        if (ferror(f)) {
            rc = pvlm_err_errno(err, "%s: read failed", path);
            break;
        }
        size_t cut = len;
        if (!eof) {
            cut = 0;
            for (size_t i = len - 1; i >= 2 && i > len / 4; i--) {
                unsigned char before = (unsigned char)buf[i - 1], at = (unsigned char)buf[i];
                if ((at == ' ' || (at >= '\t' && at <= '\r')) && before > ' ' && before < 0x7F) {
                    cut = i;
                    break;
                }
            }
            if (!cut && len < cap) continue; /* no cut point yet: read more */
            if (!cut) {                      /* no cut point in a full buffer: grow it */
                char *b2 = realloc(buf, cap * 2);
                if (!b2) {
                    rc = pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
                    break;
                }
                buf = b2;
                cap *= 2;
                continue;
            }
        }
        if (pvlm_bpe_trainer_add(tr, buf, cut, err)) {
            rc = pvlm_err_prefix(err, "%s", path);
            break;
        }
        memmove(buf, buf + cut, len - cut);
        len -= cut;
        if (eof && !len) break;
        if (eof) continue;
    }
    free(buf);
    if (f != stdin) fclose(f);
    return rc;
}

static int cmd_train(int argc, char **argv) {
    const char *inputs = NULL, *out = NULL;
    int vocab_size = 8192;
    int64_t min_freq = 2;
    const pvlm_opt opts[] = {
        {"input", PVLM_ARG_STR, &inputs, "comma-separated text files (more may follow as positional arguments)", NULL,
         0, 0, 0},
        {"vocab-size", PVLM_ARG_INT, &vocab_size, "vocabulary size: 3 specials + 256 bytes + merged tokens", NULL, 259,
         1 << 24, 0},
        {"min-frequency", PVLM_ARG_I64, &min_freq, "stop when the best pair occurs fewer times", NULL, 1, 1e15, 0},
        {"out", PVLM_ARG_STR, &out, "output directory (encoder.json + vocab.bpe)", NULL, 0, 0, 1},
    };
    const pvlm_cmd cmd = {"pvlm tokenizer train",
                          "learn a byte-level BPE vocabulary from text files",
                          "[FILE...]",
                          opts,
                          (int)(sizeof opts / sizeof opts[0]),
                          0,
                          1 << 20};
    char **pos = malloc(sizeof(char *) * (size_t)(argc + 1));
    int npos = 0;
    if (!pos) return 1;
    int a = pvlm_args_parse(&cmd, argc, argv, pos, &npos);
    if (a != PVLM_ARGS_OK) {
        free(pos);
        return a == PVLM_ARGS_HELP ? 0 : 2;
    }
    if (!inputs && !npos) {
        fprintf(stderr, "pvlm tokenizer train: no input: give --input FILES or FILE arguments\n");
        free(pos);
        return 2;
    }
    pvlm_err err = {0};
    int rc = 1;
    char *list = inputs ? strdup(inputs) : NULL;
    pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(&err);
    if (!tr) goto fail;
    for (char *save = NULL, *p = list ? strtok_r(list, ",", &save) : NULL; p; p = strtok_r(NULL, ",", &save))
        if (train_file(tr, p, &err)) goto fail;
    for (int i = 0; i < npos; i++)
        if (train_file(tr, pos[i], &err)) goto fail;
    if (pvlm_bpe_trainer_run(tr, vocab_size, min_freq, &err) || pvlm_bpe_trainer_save(tr, out, &err)) goto fail;
    pvlm_bpe_train_stats st;
    pvlm_bpe_trainer_stats(tr, &st);
    if (st.vocab_size < vocab_size)
        pvlm_warn("tokenizer train: stopped at %d tokens: no pair occurs %lld times any more", st.vocab_size,
                  (long long)min_freq);
    printf("{\"out\": \"%s\", \"bytes\": %lld, \"words\": %lld, \"unique_words\": %lld, \"merges\": %d, "
           "\"vocab_size\": %d, \"train_seconds\": %.3f}\n",
           out, (long long)st.bytes, (long long)st.words, (long long)st.unique_words, st.merges, st.vocab_size,
           st.seconds);
    rc = 0;
    goto done;
fail:
    pvlm_error("tokenizer train: %s", err.msg[0] ? err.msg : "out of memory");
done:
    pvlm_bpe_trainer_free(tr);
    free(list);
    free(pos);
    return rc;
}

static int cmd_info(int argc, char **argv) {
    const char *vocab = NULL, *pairs = "auto";
    const pvlm_opt opts[] = {
        {"vocab", PVLM_ARG_STR, &vocab, "directory with encoder.json/vocab.json + vocab.bpe/merges.txt", NULL, 0, 0, 1},
        {"pairs", PVLM_ARG_CHOICE, &pairs, "pair-rank lookup (docs/tokenizer.md)", "auto|exact|js", 0, 0, 0},
    };
    const pvlm_cmd cmd = {"pvlm tokenizer info",
                          "vocabulary size, special ids and merge count as JSON",
                          "",
                          opts,
                          (int)(sizeof opts / sizeof opts[0]),
                          0,
                          0};
    int a = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (a != PVLM_ARGS_OK) return a == PVLM_ARGS_HELP ? 0 : 2;
    pvlm_err err = {0};
    pvlm_tokenizer *t = NULL;
    if (load_tok(vocab, pairs, &t, &err)) {
        pvlm_error("tokenizer info: %s", err.msg);
        return 1;
    }
    int nspecial = 0;
    for (int32_t id = 0; id < pvlm_tokenizer_vocab_size(t); id++) nspecial += pvlm_tokenizer_is_special(t, id);
    printf("{\"vocab_size\": %d, \"merges\": %d, \"pad_id\": %d, \"bos_id\": %d, \"eos_id\": %d, \"specials\": %d, "
           "\"pairs\": \"%s\"}\n",
           pvlm_tokenizer_vocab_size(t), pvlm_tokenizer_n_merges(t), pvlm_tokenizer_pad_id(t), pvlm_tokenizer_bos_id(t),
           pvlm_tokenizer_eos_id(t), nspecial, pvlm_tokenizer_pairs(t) == PVLM_TOK_PAIRS_JS ? "js" : "exact");
    pvlm_tokenizer_free(t);
    return 0;
}

int pvlm_cmd_tokenizer(int argc, char **argv) {
    static const pvlm_subcmd subs[] = {
        {"encode", "text -> token ids (GPT-2 byte-level BPE)", cmd_encode},
        {"decode", "token ids -> text", cmd_decode},
        {"train", "learn a byte-level BPE vocabulary from text files", cmd_train},
        {"info", "vocabulary size, special ids and merge count", cmd_info},
    };
    return pvlm_subcmd_run("pvlm tokenizer", subs, (int)(sizeof subs / sizeof subs[0]), argc, argv);
}
