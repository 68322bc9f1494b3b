/* test_wds_expand.c - shard/wdssrc.h pattern expansion: webdataset's brace ranges (zero-padded to the
 * bounds' width, descending, several groups) and lists, then glob(3) over real files (sorted, a name
 * matching nothing kept for the source to count as missing), and malformed patterns rejected with the
 * pattern in the message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "harness.h"
#include "shard/wdssrc.h"

static char base[4096];

/* Expand p and compare with the n names in want (joined by '|'). */
static void expect(const char *p, const char *want) {
    char **v;
    int n;
    pvlm_err err = {0};
    CHECK_OK(pvlm_wds_expand(p, &v, &n, &err), &err);
    char got[8192] = "";
    for (int i = 0; i < n; i++) {
        const char *s = strncmp(v[i], base, strlen(base)) ? v[i] : v[i] + strlen(base) + 1; /* relative */
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "|" : "", s);
    }
    CHECK_MSG(!strcmp(got, want), "%s -> %s, want %s\n", p, got, want);
    pvlm_wds_paths_free(v, n);
}

static void expect_error(const char *p, const char *needle) {
    char **v;
    int n;
    pvlm_err err = {0};
    CHECK_MSG(pvlm_wds_expand(p, &v, &n, &err) == -1 && strstr(err.msg, needle), "%s: %s\n", p, err.msg);
}

int main(void) {
    if (pvlm_test_scratch(base, sizeof base, "/tmp/pvlm_test_wds_expand", NULL, 0)) return 1;
    expect("d/{00000..00003}.tar", "d/00000.tar|d/00001.tar|d/00002.tar|d/00003.tar");
    expect("d/{8..11}.tar", "d/8.tar|d/9.tar|d/10.tar|d/11.tar");
    expect("d/{3..1}.tar", "d/3.tar|d/2.tar|d/1.tar");
    expect("{a,b}/{0..1}.tar", "a/0.tar|a/1.tar|b/0.tar|b/1.tar");
    expect("d/{x,,y}.tar", "d/x.tar|d/.tar|d/y.tar");
    expect("plain.tar", "plain.tar");
    expect_error("d/{0..3.tar", "unbalanced");
    expect_error("d/0..3}.tar", "unbalanced");
    expect_error("d/{{0..3}}.tar", "nested");
    expect_error("d/{0..99999999}.tar", "more than");
    /* glob over real files: sorted matches; a brace name without a file is kept as it is */
    pvlm_err err = {0};
    char p[4300];
    const char *files[] = {"s/b.tar", "s/a.tar", "s/c.txt"};
    snprintf(p, sizeof p, "%s/s", base);
    CHECK_OK(pvlm_mkdir_p(p, &err), &err);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", base, files[i]);
        CHECK_OK(pvlm_write_file_atomic(p, "x", 1, &err), &err);
    }
    char pat[4300], want[600];
    snprintf(pat, sizeof pat, "%s/s/*.tar", base);
    expect(pat, "s/a.tar|s/b.tar");
    snprintf(pat, sizeof pat, "%s/s/{a,z}.tar", base);
    snprintf(want, sizeof want, "s/a.tar|s/z.tar");
    expect(pat, want);
    return pvlm_test_done("wds_expand");
}
