/* fuzz.h - entry points of the fuzz harnesses (tests/fuzz/fuzz_<target>.c).
 *
 * Each harness defines pvlm_fuzz_<target>(data, size): it feeds arbitrary bytes to one parser of
 * untrusted data through its public API and must return 0 without crashing, hanging, leaking or
 * hitting undefined behaviour. Built with clang + -DPVLM_FUZZ=ON, each file also defines
 * LLVMFuzzerTestOneInput (PVLM_LIBFUZZER); with the normal compiler, fuzz_replay.c calls the same
 * entry points on every checked-in reproducer (tests/fuzz/regressions/<target>/), ctest
 * `fuzz_regressions`.
 */
#ifndef PVLM_TESTS_FUZZ_H
#define PVLM_TESTS_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"

int pvlm_fuzz_safetensors(const uint8_t *data, size_t size);
int pvlm_fuzz_imgrec(const uint8_t *data, size_t size);
int pvlm_fuzz_textshard(const uint8_t *data, size_t size);
int pvlm_fuzz_tokfiles(const uint8_t *data, size_t size);
int pvlm_fuzz_tokrt(const uint8_t *data, size_t size);
int pvlm_fuzz_image(const uint8_t *data, size_t size);
int pvlm_fuzz_manifest(const uint8_t *data, size_t size);
int pvlm_fuzz_json(const uint8_t *data, size_t size);
int pvlm_fuzz_args(const uint8_t *data, size_t size);
int pvlm_fuzz_ptb(const uint8_t *data, size_t size);
int pvlm_fuzz_vqa(const uint8_t *data, size_t size);
int pvlm_fuzz_capscore(const uint8_t *data, size_t size);
int pvlm_fuzz_urlsrc(const uint8_t *data, size_t size);
int pvlm_fuzz_checkpoint(const uint8_t *data, size_t size);
int pvlm_fuzz_lmdb(const uint8_t *data, size_t size);
int pvlm_fuzz_coco(const uint8_t *data, size_t size);
int pvlm_fuzz_http(const uint8_t *data, size_t size);
int pvlm_fuzz_ckptdir(const uint8_t *data, size_t size);
/* fuzz_ckptdir's fixed files of a step directory (gen_seeds writes the matching state.json). */
int pvlm_fuzz_ckptdir_files(const char *step_dir, pvlm_err *err);
int pvlm_fuzz_wds(const uint8_t *data, size_t size);
int pvlm_fuzz_loaderstate(const uint8_t *data, size_t size);

/* The bytes as an anonymous in-memory file (memfd): *fd is its descriptor (caller closes),
 * path receives "/proc/self/fd/N" for the path-based APIs. Returns 0, or -1 on failure. */
static inline int pvlm_fuzz_memfile(const uint8_t *data, size_t size, int *fd, char *path, size_t cap) {
    *fd = memfd_create("pvlm-fuzz", 0);
    if (*fd < 0) return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(*fd, data + done, size - done);
        if (w <= 0) {
            close(*fd);
            return -1;
        }
        done += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", *fd);
    return 0;
}

/* Quiet: the parsers log skipped records; at millions of inputs that is only noise. */
static inline void pvlm_fuzz_quiet(void) {
    pvlm_log_set_level(PVLM_LOG_ERROR);
}

#ifdef PVLM_LIBFUZZER
#define PVLM_FUZZ_MAIN(fn)                                                                   \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                            \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                           \
        pvlm_fuzz_quiet();                                                                   \
        return fn(data, size);                                                               \
    }
#else
#define PVLM_FUZZ_MAIN(fn)
#endif

#endif
