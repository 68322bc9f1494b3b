/* fuzz_http.c - the downloader's response handling (shard/download.c: status line, headers
 * incl. Content-Type, Content-Length, X-Robots-Tag and Retry-After, bodies, chunking, early
 * closes) on arbitrary server replies: a server thread on 127.0.0.1 answers every request with
 * the input bytes verbatim and closes; one item is fetched through a fresh downloader (one
 * retry without backoff, no redirects: nothing leaves the machine). Every input must end in
 * exactly one result with a named reason, a body only on success and within the byte cap. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "fuzz.h"
#include "shard/download.h"

typedef struct server {
    int lfd, port;
    pthread_mutex_t mu; /* held while a reply is written: the input is not replaced under it */
    uint8_t *reply;
    size_t len;
} server;

static server g_srv = {.lfd = -1, .port = -1, .mu = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Read the request up to its blank line (or 1 s of silence), then send the reply and close. */
static void serve_one(int c) {
    struct timeval tv = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[8192];
    size_t n = 0;
    while (n < sizeof req - 1) {
        ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    pthread_mutex_lock(&g_srv.mu);
    for (size_t off = 0; off < g_srv.len;) {
        ssize_t w = send(c, g_srv.reply + off, g_srv.len - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&g_srv.mu);
    shutdown(c, SHUT_RDWR);
    close(c);
}

static void *serve(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(g_srv.lfd, NULL, NULL);
        if (c >= 0) serve_one(c);
    }
    return NULL;
}

static void start_server(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    pthread_t th;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &al) || pthread_create(&th, NULL, serve, NULL)) {
        if (fd >= 0) close(fd);
        return;
    }
    pthread_detach(th);
    g_srv.lfd = fd;
    g_srv.port = ntohs(a.sin_port);
}

enum { MAX_BYTES = 4096 };

static int on_done(void *ctx, pvlm_dl_result *r) {
    int *calls = ctx;
    (*calls)++;
    if ((int)r->reason < 0 || r->reason >= PVLM_DL_NREASONS || !r->detail || !r->content_type) abort();
    if ((r->reason == PVLM_DL_OK) != (r->body != NULL) || r->body_len > MAX_BYTES) abort();
    if (r->reason == PVLM_DL_OK && r->body_len == 0) abort();
    return 0;
}

int pvlm_fuzz_http(const uint8_t *data, size_t size) {
    pthread_once(&g_once, start_server);
    if (g_srv.port <= 0) return 0;
    pthread_mutex_lock(&g_srv.mu);
    uint8_t *copy = malloc(size ? size : 1);
    if (copy) {
        memcpy(copy, data, size);
        free(g_srv.reply);
        g_srv.reply = copy;
        g_srv.len = size;
    }
    pthread_mutex_unlock(&g_srv.mu);
    if (!copy) return 0;
    pvlm_dl_config c;
    pvlm_dl_config_default(&c);
    c.block_private = 0; /* the server is on 127.0.0.1 */
    c.max_total = c.max_per_host = 1;
    c.retries = 1;
    c.backoff_ms = c.backoff_max_ms = 0;
    c.max_redirects = 0;
    c.connect_timeout_ms = 2000;
    c.timeout_ms = 3000;
    c.max_bytes = MAX_BYTES;
    pvlm_err err = {0};
    pvlm_dl *d = pvlm_dl_create(&c, &err);
    if (!d) return 0;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x.jpg", g_srv.port);
    pvlm_dl_item it = {.index = 0, .url = url, .caption = "c"};
    int calls = 0;
    if (pvlm_dl_run_items(d, &it, 1, on_done, &calls, &err) != 0 || calls != 1) abort();
    pvlm_dl_free(d);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_http)
