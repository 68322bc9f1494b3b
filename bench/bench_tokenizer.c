/* bench_tokenizer.c - GPT-2 BPE encoding speed on English text, one thread.
 *
 * usage: bench_tokenizer [GPT2_DIR] [RUNS]
 * GPT2_DIR: encoder.json + vocab.bpe (+ Encoder.js for the peer), default
 * $PVLM_BUILD_DIR/gpt2-bpe or build/gpt2-bpe (scripts/fetch-gpt2-bpe.sh DIR fills it).
 * Text: the glosses of Debian's WordNet (the English after "| " on each line of
 * /usr/share/wordnet/data.{noun,verb,adj,adv}, one per line), ~ 8 MB.
 * Reports MB/s (1e6 bytes/s) per CPU second of the encoding thread (and per wall second) as the
 * median of RUNS (default 5) runs for: pvlm with a fresh
 * word cache per run, pvlm without a cache, pre-tokenization alone; then the peer, the
 * reference encoder gpt-3-encoder (node, Encoder.js, warm: one untimed pass first) on the
 * first ~2 MB of the same text in the same run (pvlm is timed on that prefix too), one
 * line per call (its output array grows quadratically
 * with the number of pieces per call, so calls on the whole text are not practical).
 * Checks that pvlm's ids equal the peer's on the first 2000 lines.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/fsutil.h"
#include "core/timer.h"
#include "io/tokenizer.h"

static int count_piece(const char *s, size_t n, void *arg) {
    (void)s;
    *(size_t *)arg += n;
    return 0;
}

/* The English text: the glosses of WordNet's data files, one per line, into a malloc'd *text. */
static int load_glosses(char **text, size_t *len, pvlm_err *err) {
    static const char *const files[] = {"/usr/share/wordnet/data.noun", "/usr/share/wordnet/data.verb",
                                        "/usr/share/wordnet/data.adj", "/usr/share/wordnet/data.adv"};
    size_t cap = 16 << 20, n_text = 0;
    char *out = malloc(cap);
    if (!out) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for the text");
    for (int f = 0; f < 4; f++) {
        char *buf;
        size_t n;
        if (pvlm_read_file(files[f], &buf, &n, err)) {
            free(out);
            return -1;
        }
        for (char *line = buf; line < buf + n;) {
            char *nl = memchr(line, '\n', (size_t)(buf + n - line));
            if (!nl) nl = buf + n;
            char *bar = memchr(line, '|', (size_t)(nl - line));
            if (line[0] != ' ' && bar && bar + 2 < nl) {
                char *g = bar + 2, *e = nl;
                while (e > g && e[-1] == ' ') e--;
                if (n_text + (size_t)(e - g) + 1 < cap) {
                    memcpy(out + n_text, g, (size_t)(e - g));
                    n_text += (size_t)(e - g);
                    out[n_text++] = '\n';
                }
            }
            line = nl + 1;
        }
        free(buf);
    }
    *text = out;
    *len = n_text;
    return 0;
}

/* Replace the contents of path with the first len bytes of text. */
static int write_text(const char *path, int fd, const char *text, size_t len) {
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        fprintf(stderr, "bench_tokenizer: cannot write %s\n", path);
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* runs encodings of text[0..len) (a fresh word cache per run when cached), MB/s per CPU second of this
 * thread into v and per wall second into w; the id count of the last run. */
static int64_t time_encode(const pvlm_tokenizer *t, int cached, const char *text, size_t len, int32_t *ids,
                           size_t cap_ids, int runs, double *v, double *w) {
    pvlm_err err = {0};
    int64_t nids = 0;
    for (int r = 0; r < runs; r++) {
        pvlm_tok_cache *c = cached ? pvlm_tok_cache_new(0, &err) : NULL;
        double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
        nids = pvlm_tokenizer_encode(t, c, text, len, ids, cap_ids, &err);
        v[r] = len / 1e6 / (bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - c0);
        w[r] = len / 1e6 / (pvlm_now() - t0);
        pvlm_tok_cache_free(c);
    }
    return nids;
}

static void time_pretokenize(const char *text, size_t len, int runs, double *v, double *w) {
    for (int r = 0; r < runs; r++) {
        size_t total = 0;
        double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
        pvlm_tokenizer_pretokenize(text, len, count_piece, &total);
        v[r] = len / 1e6 / (bench_cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - c0);
        w[r] = len / 1e6 / (pvlm_now() - t0);
        if (total != len) printf("pretokenize lost bytes!\n");
    }
}

/* pvlm's ids for the first 2000 lines against the peer's (ref: space-separated ids). */
static void check_parity(const pvlm_tokenizer *t, const char *text, size_t len, const char *ref, int32_t *ids,
                         size_t cap_ids) {
    pvlm_err err = {0};
    size_t nl = 0, end = 0;
    while (end < len && nl < 2000)
        if (text[end++] == '\n') nl++;
    int64_t n = pvlm_tokenizer_encode(t, NULL, text, end, ids, cap_ids, &err);
    const char *p = ref;
    int64_t same = 0, k = 0;
    for (; k < n; k++) {
        char *q;
        long x = strtol(p, &q, 10);
        if (q == p) break;
        p = q;
        same += x == ids[k];
    }
    printf("parity with the peer on the first 2000 lines: %s (%lld of %lld ids)\n",
           same == n && k == n ? "identical" : "DIFFERENT", (long long)same, (long long)n);
}

/* The peer, gpt-3-encoder under node, on the text in tpath (warm, one call per line), printing its rate
 * and writing its ids of the first 2000 lines for check_parity. */
static void run_peer(const char *enc_js, const char *tpath, int runs, const pvlm_tokenizer *t, const char *text,
                     size_t len, int32_t *ids, size_t cap_ids) {
    char ipath[] = "/tmp/bench_tokenizer_ids_XXXXXX";
    int ifd = mkstemp(ipath);
    close(ifd);
    char cmd[16384];
    snprintf(
        cmd, sizeof cmd,
        "node -e \"const e=require(require('path').resolve(process.argv[1])),fs=require('fs');"
        "const L=fs.readFileSync(process.argv[2],'utf-8').split(/(?<=\\n)/);const B=Buffer.byteLength(L.join(''));"
        "for(const l of L)e.encode(l);const v=[];"
        "const w=[];const med=a=>{a.sort((x,y)=>x-y);return "
        "a.length%%2?a[(a.length-1)/2]:(a[a.length/2-1]+a[a.length/2])/2;};"
        "for(let r=0;r<%d;r++){const t0=process.hrtime.bigint(),c0=process.cpuUsage();for(const l of L)e.encode(l);"
        "const c=process.cpuUsage(c0);v.push(B/1e6/((c.user+c.system)/1e6));"
        "w.push(B/1e6/(Number(process.hrtime.bigint()-t0)/1e9));}"
        "console.log('peer gpt-3-encoder (node '+process.version+', warm), same prefix "
        "'+med(v).toFixed(2).padStart(8)+"
        "' MB/s cpu '+med(w).toFixed(2).padStart(8)+' MB/s wall');"
        "fs.writeFileSync(process.argv[3],L.slice(0,2000).map(l=>e.encode(l).join(' ')).join(' '));\" "
        "'%s' '%s' '%s'",
        runs, enc_js, tpath, ipath);
    fflush(stdout);
    int peer_ok = system(cmd) == 0;
    if (!peer_ok) printf("peer: node run failed\n");
    char *ref;
    size_t rn;
    pvlm_err err = {0};
    if (peer_ok && !pvlm_read_file(ipath, &ref, &rn, &err)) {
        check_parity(t, text, len, ref, ids, cap_ids);
        free(ref);
    }
    unlink(ipath);
}

int main(int argc, char **argv) {
    char gdir[4096];
    pvlm_err err = {0};
    const char *build = getenv("PVLM_BUILD_DIR") ? getenv("PVLM_BUILD_DIR") : "build";
    if (argc > 1 ? pvlm_path_join(gdir, sizeof gdir, "", argv[1], &err)
                 : pvlm_path_join(gdir, sizeof gdir, build, "gpt2-bpe", &err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 1) runs = 1;
    pvlm_tokenizer *t;
    if (pvlm_tokenizer_load(gdir, &t, &err)) {
        fprintf(stderr, "bench_tokenizer: %s (run scripts/fetch-gpt2-bpe.sh %s)\n", err.msg, gdir);
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    if (load_glosses(&text, &len, &err)) {
        fprintf(stderr, "bench_tokenizer: %s (apt-get install wordnet-base)\n", err.msg);
        return 1;
    }
    char tpath[] = "/tmp/bench_tokenizer_XXXXXX";
    if (write_text(tpath, mkstemp(tpath), text, len)) return 1;
    printf("text: WordNet glosses, %.2f MB, %d runs, 1 thread\n", len / 1e6, runs);

    size_t cap_ids = len / 2 + 16;
    int32_t *ids = malloc(cap_ids * sizeof *ids);
    double *v = malloc((size_t)runs * sizeof *v), *w = malloc((size_t)runs * sizeof *w);
    if (!ids || !v || !w) {
        fprintf(stderr, "bench_tokenizer: out of memory\n");
        return 1;
    }
    int64_t nids = time_encode(t, 1, text, len, ids, cap_ids, runs, v, w);
    double cached = bench_median(v, runs);
    printf("pvlm encode, word cache (fresh per run)   %8.2f MB/s cpu %8.2f MB/s wall  (%lld ids, %.2f bytes/id)\n",
           cached, bench_median(w, runs), (long long)nids, (double)len / (double)nids);
    time_encode(t, 0, text, len, ids, cap_ids, runs, v, w);
    printf("pvlm encode, no cache                     %8.2f MB/s cpu %8.2f MB/s wall\n", bench_median(v, runs),
           bench_median(w, runs));
    time_pretokenize(text, len, runs, v, w);
    printf("pvlm pre-tokenization only                %8.2f MB/s cpu %8.2f MB/s wall\n", bench_median(v, runs),
           bench_median(w, runs));

    /* peer: the reference encoder under node, on the first ~2 MB (whole lines): it runs at
     * well under 1 MB/s, so the whole text would take minutes per run; pvlm is timed on
     * the same prefix too */
    size_t plen = len < 2000000 ? len : 2000000;
    while (plen < len && text[plen - 1] != '\n') plen++;
    time_encode(t, 1, text, plen, ids, cap_ids, runs, v, w);
    printf("pvlm encode, word cache, first %.2f MB    %8.2f MB/s cpu %8.2f MB/s wall\n", plen / 1e6,
           bench_median(v, runs), bench_median(w, runs));
    if (write_text(tpath, open(tpath, O_WRONLY | O_TRUNC), text, plen)) return 1;
    char enc_js[4200];
    if (pvlm_path_join(enc_js, sizeof enc_js, gdir, "Encoder.js", &err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    if (!pvlm_file_exists(enc_js) || system("node --version >/dev/null 2>&1") != 0)
        printf("peer: node or %s missing: not measured\n", enc_js);
    else
        run_peer(enc_js, tpath, runs, t, text, len, ids, cap_ids);
    unlink(tpath);
    free(v);
    free(w);
    free(ids);
    free(text);
    pvlm_tokenizer_free(t);
    return 0;
}
