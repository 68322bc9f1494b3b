/* fuzz_replay.c - replays checked-in fuzz reproducers through the harness entry points, with the
 * normal compiler (ctest fuzz_regressions, also under ASan+UBSan in the sanitizer build).
 *
 *   fuzz_replay DIR              every file under DIR/<target>/ through pvlm_fuzz_<target>
 *   fuzz_replay TARGET FILE...   the given files through one target
 * Exit 0 when every input ran (a crash, sanitizer report or failed invariant ends the process). */
#include <dirent.h>
#include <stdlib.h>

#include "core/fsutil.h"
#include "fuzz.h"

typedef struct target {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} target;

static const target k_targets[] = {
    {"safetensors", pvlm_fuzz_safetensors}, {"imgrec", pvlm_fuzz_imgrec},   {"textshard", pvlm_fuzz_textshard},
    {"tokfiles", pvlm_fuzz_tokfiles},       {"tokrt", pvlm_fuzz_tokrt},     {"image", pvlm_fuzz_image},
    {"manifest", pvlm_fuzz_manifest},       {"json", pvlm_fuzz_json},       {"args", pvlm_fuzz_args},
    {"ptb", pvlm_fuzz_ptb},                 {"vqa", pvlm_fuzz_vqa},         {"capscore", pvlm_fuzz_capscore},
    {"urlsrc", pvlm_fuzz_urlsrc},           {"checkpoint", pvlm_fuzz_checkpoint},
    {"lmdb", pvlm_fuzz_lmdb},               {"coco", pvlm_fuzz_coco},       {"http", pvlm_fuzz_http},
    {"ckptdir", pvlm_fuzz_ckptdir},
    {"wds", pvlm_fuzz_wds},
    {"loaderstate", pvlm_fuzz_loaderstate},
};
enum { NTARGETS = (int)(sizeof k_targets / sizeof k_targets[0]) };

static const target *find_target(const char *name) {
    for (int i = 0; i < NTARGETS; i++)
        if (!strcmp(k_targets[i].name, name)) return &k_targets[i];
    return NULL;
}

static int run_file(const target *t, const char *path) {
    char *buf = NULL;
    size_t n = 0;
    pvlm_err err = {0};
    if (pvlm_read_file(path, &buf, &n, &err)) {
        fprintf(stderr, "fuzz_replay: %s\n", err.msg);
        return -1;
    }
    /* an exact-size copy, so ASan sees reads past the input's end */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    t->fn(exact, n);
    free(exact);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    pvlm_fuzz_quiet();
    if (argc >= 3) {
        const target *t = find_target(argv[1]);
        if (!t) {
            fprintf(stderr, "fuzz_replay: unknown target '%s'\n", argv[1]);
            return 2;
        }
        for (int i = 2; i < argc; i++)
            if (run_file(t, argv[i])) return 1;
        printf("fuzz_replay: %d inputs of %s ran clean\n", argc - 2, t->name);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_replay DIR | fuzz_replay TARGET FILE...\n");
        return 2;
    }
    int total = 0;
    for (int ti = 0; ti < NTARGETS; ti++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", argv[1], k_targets[ti].name);
        DIR *d = opendir(dir);
        if (!d) continue;
        char **names = NULL;
        int nn = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            if (nn == cap) {
                cap = cap ? 2 * cap : 16;
                char **nv = realloc(names, (size_t)cap * sizeof *nv);
                if (!nv) return 1;
                names = nv;
            }
            names[nn++] = strdup(e->d_name);
        }
        closedir(d);
        if (nn) qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int i = 0; i < nn; i++) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            printf("%s: %s\n", k_targets[ti].name, names[i]);
            fflush(stdout);
            if (run_file(&k_targets[ti], path)) return 1;
            free(names[i]);
        }
        free(names);
        total += nn;
    }
    printf("fuzz_replay: %d reproducers ran clean\n", total);
    return 0;
}
