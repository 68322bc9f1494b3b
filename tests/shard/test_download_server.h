/* test_download_server.h - start and stop tests/shard/http_test_server.py for the
 * downloader tests.
 *
 * The server runs under $PVLM_PYTHON (Debian's python3, which has python3-pil for the
 * test JPEG), picks a free port on 127.0.0.1 and writes it to a port file in $PVLM_TMP;
 * it also writes its test images there (img.jpg, img.png) so downloads can be compared
 * byte for byte. It stops by itself after max_seconds even if the test crashes; the test
 * kills it (by its pid) when done.
 */
#ifndef PVLM_TEST_DOWNLOAD_SERVER_H
#define PVLM_TEST_DOWNLOAD_SERVER_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"

typedef struct test_server {
    pid_t pid;
    int port;
    char dir[1024]; /* scratch dir (PVLM_TMP): port file and test images */
    char base[128]; /* "http://127.0.0.1:PORT" */
} test_server;

static inline const char *test_tmpdir(void) {
    const char *t = getenv("PVLM_TMP");
    return t ? t : "/tmp/pvlm-test-download";
}

/* Returns 0 when the server answers on its port within 20 s. */
static inline int test_server_start(test_server *ts, int max_seconds) {
    memset(ts, 0, sizeof *ts);
    snprintf(ts->dir, sizeof ts->dir, "%s", test_tmpdir());
    if (pvlm_mkdir_p(ts->dir, NULL)) return -1;
    const char *py = getenv("PVLM_PYTHON");
    const char *src = getenv("PVLM_SOURCE_DIR");
    if (!py || !*py) py = "/usr/bin/python3";
    char script[1024], portfile[1100], secs[32];
    snprintf(script, sizeof script, "%s/tests/shard/http_test_server.py", src ? src : ".");
    snprintf(portfile, sizeof portfile, "%s/server.port", ts->dir);
    snprintf(secs, sizeof secs, "%d", max_seconds);
    unlink(portfile);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1); /* the port goes to the port file */
        execl(py, py, script, "--port-file", portfile, "--max-seconds", secs, "--image-dir", ts->dir, (char *)NULL);
        _exit(127);
    }
    ts->pid = pid;
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &ts->port) == 1;
            fclose(f);
            if (ok && ts->port > 0) {
                snprintf(ts->base, sizeof ts->base, "http://127.0.0.1:%d", ts->port);
                return 0;
            }
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "test server exited early (status %d)\n", st);
            ts->pid = 0;
            return -1;
        }
        struct timespec ts50 = {0, 50 * 1000 * 1000};
        nanosleep(&ts50, NULL);
    }
    fprintf(stderr, "test server did not write %s within 20 s\n", portfile);
    return -1;
}

static inline void test_server_stop(test_server *ts) {
    if (ts->pid > 0) {
        kill(ts->pid, SIGTERM);
        waitpid(ts->pid, NULL, 0);
        ts->pid = 0;
    }
}

#endif
