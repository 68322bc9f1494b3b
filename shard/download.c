/* download.c - see download.h.
 *
 * Structure: every submitted item becomes a `job`. A job waits in its host's FIFO queue;
 * hosts with queued jobs and spare per-host capacity sit in a round-robin `ready` list;
 * the scheduler starts jobs from ready hosts while global slots are free. A finished
 * transfer either completes its job (callback) or, for a transient failure, puts it in a
 * min-heap ordered by the time its backoff ends, from which it returns to its host queue.
 * One thread drives everything through curl_multi_perform / curl_multi_poll.
 */
#include "download.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"

/* An error response body is read (and dropped) up to this size so the connection can be
 * reused; a bigger one aborts the transfer. */
#define DISCARD_MAX (64 * 1024)

static const char *const reason_names[PVLM_DL_NREASONS] = {
    [PVLM_DL_OK] = "ok",
    [PVLM_DL_HTTP_4XX] = "http_4xx",
    [PVLM_DL_HTTP_5XX] = "http_5xx",
    [PVLM_DL_HTTP_OTHER] = "http_other",
    [PVLM_DL_TIMEOUT] = "timeout",
    [PVLM_DL_STALLED] = "stalled",
    [PVLM_DL_CONNECT_TIMEOUT] = "connect_timeout",
    [PVLM_DL_CONNECT_ERROR] = "connect_error",
    [PVLM_DL_DNS_ERROR] = "dns_error",
    [PVLM_DL_TLS_ERROR] = "tls_error",
    [PVLM_DL_RECV_ERROR] = "recv_error",
    [PVLM_DL_TOO_BIG] = "too_big",
    [PVLM_DL_TOO_MANY_REDIRECTS] = "too_many_redirects",
    [PVLM_DL_BAD_SCHEME] = "bad_scheme",
    [PVLM_DL_PROTOCOL_ERROR] = "protocol_error",
    [PVLM_DL_BAD_URL] = "bad_url",
    [PVLM_DL_ROBOTS_OPTOUT] = "robots_optout",
    [PVLM_DL_NOT_IMAGE] = "not_image",
    [PVLM_DL_EMPTY] = "empty",
    [PVLM_DL_BLOCKED_ADDRESS] = "blocked_address",
    [PVLM_DL_OTHER] = "other",
};

const char *pvlm_dl_reason_name(pvlm_dl_reason r) {
    if ((int)r < 0 || r >= PVLM_DL_NREASONS) return "other";
    return reason_names[r];
}

int pvlm_dl_reason_parse(const char *name) {
    for (int i = 0; i < PVLM_DL_NREASONS; i++)
        if (name && !strcmp(name, reason_names[i])) return i;
    return -1;
}

int pvlm_dl_reason_retryable(pvlm_dl_reason r, long http_status) {
    switch (r) {
    case PVLM_DL_TIMEOUT:
    case PVLM_DL_STALLED:
    case PVLM_DL_CONNECT_TIMEOUT:
    case PVLM_DL_CONNECT_ERROR:
    case PVLM_DL_RECV_ERROR:
    case PVLM_DL_PROTOCOL_ERROR:
    case PVLM_DL_HTTP_5XX:
        return 1;
    /* 408 Request Timeout and 429 Too Many Requests are the transient 4xx (RFC 9110 and
     * RFC 6585); every other 4xx (404, 403, 410, ...) will answer the same again. */
    case PVLM_DL_HTTP_4XX:
        return http_status == 408 || http_status == 429;
    default:
        return 0;
    }
}

void pvlm_dl_config_default(pvlm_dl_config *c) {
    memset(c, 0, sizeof *c);
    c->max_total = 64;
    c->max_per_host = 4;
    c->max_queued = 0;
    c->connect_timeout_ms = 10000;
    c->timeout_ms = 60000;
    c->low_speed_bytes = 1024;
    c->low_speed_time_s = 10;
    c->max_bytes = 16 << 20;
    c->max_redirects = 5;
    c->retries = 2;
    c->backoff_ms = 1000;
    c->backoff_max_ms = 30000;
    c->user_agent = PVLM_DL_USER_AGENT;
    c->robots_agent = "pvlm";
    c->respect_robots = 1;
    c->require_image = 1;
    c->block_private = 1;
    c->seed = 0;
    c->stop_flag = NULL;
}

/* ---------------------------------------------------------------- global init */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_OK;
static void global_init_once(void) {
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int pvlm_dl_global_init(pvlm_err *err) {
    pthread_once(&g_once, global_init_once);
    if (g_init_rc != CURLE_OK)
        return pvlm_err_set(err, PVLM_ENET, "libcurl global init failed: %s", curl_easy_strerror(g_init_rc));
    return 0;
}

/* ---------------------------------------------------------------- data structures */

typedef struct host host;

typedef struct job {
    int64_t index;
    char *url;     /* normalised by curl's URL parser */
    char *url_in;  /* as submitted (reported back) */
    char *caption; /* NULL if none */
    void *user;
    host *h;
    int attempts;
    double t_first;  /* first start (or submit time) */
    double ready_at; /* while in the retry heap */
    struct job *next;
} job;

struct host {
    char *name;
    int active; /* transfers running */
    int refs;   /* jobs queued, running or in the retry heap */
    job *qhead, *qtail;
    int in_ready;
    host *chain; /* hash bucket chain */
    host *rnext; /* ready list link */
};

typedef struct slot {
    struct pvlm_dl *d;
    CURL *easy;
    job *j;
    unsigned char *body;
    size_t body_len, body_cap;
    long status;      /* status of the response being read */
    int has_location; /* current response has a Location header */
    int robots;       /* current response carries an opt-out for us */
    int discard;      /* final response is an error: drop its body */
    int blocked;      /* block_private refused a resolved address */
    size_t discarded;
    pvlm_dl_reason abort_reason; /* set when our callbacks abort the transfer */
    char ctype[128];
    char detail[256];
    char errbuf[CURL_ERROR_SIZE];
    struct slot *next_free;
} slot;

struct pvlm_dl {
    pvlm_dl_config cfg;
    char *user_agent, *robots_agent;
    CURLM *multi;
    struct curl_slist *headers;
    slot *slots;
    slot *free_slots;
    int active;
    /* hosts */
    host **buckets;
    size_t nbuckets, nhosts;
    host *ready_head, *ready_tail;
    /* retry heap */
    job **heap;
    size_t nheap, heap_cap;
    size_t queued; /* jobs in host queues + heap */
    pvlm_rng rng;
    atomic_int stop;
    pvlm_dl_stats stats;
};

/* ---------------------------------------------------------------- hosts */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int hosts_grow(pvlm_dl *d) {
    size_t nb = d->nbuckets ? d->nbuckets * 2 : 256;
    host **b = calloc(nb, sizeof *b);
    if (!b) return -1;
    for (size_t i = 0; i < d->nbuckets; i++) {
        host *h = d->buckets[i];
        while (h) {
            host *nx = h->chain;
            size_t k = hash_str(h->name) & (nb - 1);
            h->chain = b[k];
            b[k] = h;
            h = nx;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = nb;
    return 0;
}

static host *host_get(pvlm_dl *d, const char *name) {
    if (d->nhosts >= d->nbuckets && hosts_grow(d)) return NULL;
    size_t k = hash_str(name) & (d->nbuckets - 1);
    for (host *h = d->buckets[k]; h; h = h->chain)
        if (!strcmp(h->name, name)) return h;
    host *h = calloc(1, sizeof *h);
    if (!h || !(h->name = strdup(name))) {
        free(h);
        return NULL;
    }
    h->chain = d->buckets[k];
    d->buckets[k] = h;
    d->nhosts++;
    return h;
}

/* Drop a host nobody refers to (keeps the table small on lists with millions of hosts). */
static void host_release(pvlm_dl *d, host *h) {
    if (h->refs > 0 || h->in_ready) return;
    size_t k = hash_str(h->name) & (d->nbuckets - 1);
    for (host **pp = &d->buckets[k]; *pp; pp = &(*pp)->chain) {
        if (*pp == h) {
            *pp = h->chain;
            break;
        }
    }
    d->nhosts--;
    free(h->name);
    free(h);
}

static void ready_push(pvlm_dl *d, host *h) {
    if (h->in_ready || !h->qhead || h->active >= d->cfg.max_per_host) return;
    h->in_ready = 1;
    h->rnext = NULL;
    if (d->ready_tail)
        d->ready_tail->rnext = h;
    else
        d->ready_head = h;
    d->ready_tail = h;
}

static host *ready_pop(pvlm_dl *d) {
    host *h = d->ready_head;
    if (!h) return NULL;
    d->ready_head = h->rnext;
    if (!d->ready_head) d->ready_tail = NULL;
    h->in_ready = 0;
    h->rnext = NULL;
    return h;
}

static void host_enqueue(pvlm_dl *d, job *j) {
    host *h = j->h;
    j->next = NULL;
    if (h->qtail)
        h->qtail->next = j;
    else
        h->qhead = j;
    h->qtail = j;
    d->queued++;
    ready_push(d, h);
}

/* ---------------------------------------------------------------- retry heap */

static int heap_push(pvlm_dl *d, job *j) {
    if (d->nheap == d->heap_cap) {
        size_t nc = d->heap_cap ? d->heap_cap * 2 : 64;
        job **nh = realloc(d->heap, nc * sizeof *nh);
        if (!nh) return -1;
        d->heap = nh;
        d->heap_cap = nc;
    }
    size_t i = d->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (d->heap[p]->ready_at <= j->ready_at) break;
        d->heap[i] = d->heap[p];
        i = p;
    }
    d->heap[i] = j;
    d->queued++;
    return 0;
}

static job *heap_pop(pvlm_dl *d) {
    job *top = d->heap[0];
    job *last = d->heap[--d->nheap];
    size_t i = 0, n = d->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && d->heap[c + 1]->ready_at < d->heap[c]->ready_at) c++;
        if (last->ready_at <= d->heap[c]->ready_at) break;
        d->heap[i] = d->heap[c];
        i = c;
    }
    if (n) d->heap[i] = last;
    d->queued--;
    return top;
}

/* ---------------------------------------------------------------- jobs */

static void job_free(job *j) {
    if (!j) return;
    free(j->url);
    free(j->url_in);
    free(j->caption);
    free(j);
}

/* Parse and normalise a URL; on failure return the reason (bad_url / bad_scheme) and a
 * message. Spaces and non-ASCII bytes are percent-encoded (CC3M/LAION lists hold such
 * URLs; browsers send them encoded). */
static pvlm_dl_reason parse_url(const char *in, char **url_out, char **host_out, char *msg, size_t cap) {
    *url_out = *host_out = NULL;
    CURLU *u = curl_url();
    if (!u) {
        snprintf(msg, cap, "out of memory");
        return PVLM_DL_OTHER;
    }
    pvlm_dl_reason r = PVLM_DL_OK;
    char *scheme = NULL, *hostname = NULL, *url = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, in, CURLU_NON_SUPPORT_SCHEME | CURLU_ALLOW_SPACE | CURLU_URLENCODE);
    if (rc) {
        snprintf(msg, cap, "cannot parse URL: %s", curl_url_strerror(rc));
        r = PVLM_DL_BAD_URL;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        snprintf(msg, cap, "scheme '%s' is not http or https", scheme ? scheme : "");
        r = PVLM_DL_BAD_SCHEME;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &hostname, 0) || !hostname[0]) {
        snprintf(msg, cap, "URL has no host");
        r = PVLM_DL_BAD_URL;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_URL, &url, 0)) {
        snprintf(msg, cap, "cannot normalise URL");
        r = PVLM_DL_BAD_URL;
        goto out;
    }
    *url_out = strdup(url);
    *host_out = strdup(hostname);
    if (!*url_out || !*host_out) {
        free(*url_out);
        free(*host_out);
        *url_out = *host_out = NULL;
        snprintf(msg, cap, "out of memory");
        r = PVLM_DL_OTHER;
        goto out;
    }
    for (char *p = *host_out; *p; p++) *p = (char)tolower((unsigned char)*p);
out:
    curl_free(scheme);
    curl_free(hostname);
    curl_free(url);
    curl_url_cleanup(u);
    return r;
}

/* ---------------------------------------------------------------- callbacks */

static int ieq_prefix(const char *s, size_t n, const char *p) {
    size_t m = strlen(p);
    return n >= m && !strncasecmp(s, p, m);
}

/* Trim spaces/tabs/CR/LF on both ends of [*s, *s+*n). */
static void trim(const char **s, size_t *n) {
    while (*n && isspace((unsigned char)**s)) (*s)++, (*n)--;
    while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* X-Robots-Tag value: comma-separated directives, optionally led by "agent:" which makes
 * the directives after it (in this header value) apply to that agent only, as in
 * Google's robots meta tag / X-Robots-Tag specification. Directives that take a value
 * themselves (max-image-preview: large, unavailable_after: date) are not agent names.
 * Opt-outs for dataset building: noai and noimageai (the "NoAI" meta tags introduced by
 * DeviantArt, also honoured by img2dataset), and noindex, noimageindex and none
 * (none = noindex, nofollow). */
static int robots_optout(const char *v, size_t n, const char *agent) {
    static const char *const valued[] = {"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after",
                                         "indexifembedded"};
    static const char *const optouts[] = {"noai", "noimageai", "noindex", "noimageindex", "none"};
    int applies = 1; /* no agent given: applies to every crawler */
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ',') j++;
        const char *tok = v + i;
        size_t tn = j - i;
        i = j + 1;
        trim(&tok, &tn);
        const char *colon = memchr(tok, ':', tn);
        if (colon) {
            size_t kn = (size_t)(colon - tok);
            const char *k = tok;
            trim(&k, &kn);
            int is_valued = 0;
            for (size_t q = 0; q < sizeof valued / sizeof *valued; q++)
                if (kn == strlen(valued[q]) && !strncasecmp(k, valued[q], kn)) is_valued = 1;
            if (is_valued) continue;
            applies = (kn == strlen(agent) && !strncasecmp(k, agent, kn)) || (kn == 1 && k[0] == '*');
            tok = colon + 1;
            tn = (size_t)(v + j - tok);
            trim(&tok, &tn);
        }
        if (!applies) continue;
        for (size_t q = 0; q < sizeof optouts / sizeof *optouts; q++)
            if (tn == strlen(optouts[q]) && !strncasecmp(tok, optouts[q], tn)) return 1;
    }
    return 0;
}

/* Accept any image type (image/...) and the generic binary types many CDNs use for images (the decoder then
 * judges the bytes); a missing Content-Type is accepted for the same reason. */
static int ctype_ok(const char *ct) {
    if (!ct[0]) return 1;
    if (!strncasecmp(ct, "image/", 6)) return 1;
    return !strcasecmp(ct, "application/octet-stream") || !strcasecmp(ct, "binary/octet-stream");
}

static size_t abort_with(slot *s, pvlm_dl_reason r, const char *msg) {
    s->abort_reason = r;
    snprintf(s->detail, sizeof s->detail, "%s", msg);
    return 0; /* any count other than the one given aborts the transfer (CURLE_WRITE_ERROR) */
}

/* libcurl calls this once per complete header line of every response (redirects and
 * 1xx included), and with the blank line that ends a response's headers: there we
 * decide, before any body byte arrives, whether the body is wanted. */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud) {
    slot *s = ud;
    pvlm_dl *d = s->d;
    size_t len = size * nitems;
    const char *p = buf;
    size_t n = len;
    if (ieq_prefix(p, n, "HTTP/")) { /* a new response starts */
        s->status = 0;
        s->has_location = 0;
        s->robots = 0;
        s->ctype[0] = '\0';
        const char *sp = memchr(p, ' ', n);
        if (sp && (size_t)(sp - p) + 4 <= n) s->status = strtol(sp + 1, NULL, 10);
        return len;
    }
    trim(&p, &n);
    if (n == 0) { /* end of this response's headers */
        long code = s->status;
        if (!code) curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 100 && code < 200) return len; /* interim response; the real one follows */
        if (code >= 400) {
            /* Error pages often carry "noindex"; the status, not the tag, is the failure
             * (and 5xx/429 stay retryable). */
            s->discard = 1;
            return len;
        }
        if (s->robots && d->cfg.respect_robots)
            return abort_with(s, PVLM_DL_ROBOTS_OPTOUT, "X-Robots-Tag opts out of AI use");
        if (code >= 300 && code < 400 && s->has_location) return len; /* curl follows it */
        if (code >= 200 && code < 300) {
            if (d->cfg.require_image && !ctype_ok(s->ctype)) {
                char msg[192];
                snprintf(msg, sizeof msg, "Content-Type '%s' is not an image", s->ctype);
                return abort_with(s, PVLM_DL_NOT_IMAGE, msg);
            }
            curl_off_t cl = -1;
            curl_easy_getinfo(s->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            if (cl > (curl_off_t)d->cfg.max_bytes) {
                char msg[96];
                snprintf(msg, sizeof msg, "announced Content-Length %lld is over the byte cap", (long long)cl);
                return abort_with(s, PVLM_DL_TOO_BIG, msg);
            }
            if (cl > 0 && (size_t)cl > s->body_cap) { /* one allocation for the whole body */
                unsigned char *nb = realloc(s->body, (size_t)cl);
                if (nb) {
                    s->body = nb;
                    s->body_cap = (size_t)cl;
                }
            }
        }
        return len;
    }
    if (ieq_prefix(p, n, "x-robots-tag:")) {
        const char *v = p + 13;
        size_t vn = n - 13;
        trim(&v, &vn);
        if (robots_optout(v, vn, d->robots_agent)) s->robots = 1;
    } else if (ieq_prefix(p, n, "content-type:")) {
        const char *v = p + 13;
        size_t vn = n - 13;
        trim(&v, &vn);
        const char *semi = memchr(v, ';', vn);
        if (semi) vn = (size_t)(semi - v);
        trim(&v, &vn);
        if (vn >= sizeof s->ctype) vn = sizeof s->ctype - 1;
        memcpy(s->ctype, v, vn);
        s->ctype[vn] = '\0';
    } else if (ieq_prefix(p, n, "location:")) {
        s->has_location = 1;
    }
    return len;
}

/* Body bytes. The byte cap is enforced here because libcurl 7.88 applies
 * CURLOPT_MAXFILESIZE only to sizes announced up front (not to chunked bodies). */
static size_t write_cb(char *buf, size_t size, size_t nmemb, void *ud) {
    slot *s = ud;
    size_t len = size * nmemb;
    if (s->discard) {
        s->discarded += len;
        return s->discarded > DISCARD_MAX ? 0 : len;
    }
    if ((int64_t)(s->body_len + len) > s->d->cfg.max_bytes)
        return abort_with(s, PVLM_DL_TOO_BIG, "body is over the byte cap");
    if (s->body_len + len > s->body_cap) {
        size_t nc = s->body_cap ? s->body_cap : 64 * 1024;
        while (nc < s->body_len + len) nc *= 2;
        if ((int64_t)nc > s->d->cfg.max_bytes) nc = (size_t)s->d->cfg.max_bytes;
        unsigned char *nb = realloc(s->body, nc);
        if (!nb) return abort_with(s, PVLM_DL_OTHER, "out of memory for the body");
        s->body = nb;
        s->body_cap = nc;
    }
    memcpy(s->body + s->body_len, buf, len);
    s->body_len += len;
    return len;
}

/* Addresses that are not the public internet: loopback, RFC 1918 private, CGNAT (RFC 6598),
 * link-local (169.254/16 holds cloud metadata services), "this network", benchmarking
 * (198.18/15), multicast and reserved; IPv6 loopback/unspecified, unique-local fc00::/7,
 * link-local fe80::/10, the deprecated site-local fec0::/10, multicast, and the IPv6 forms
 * that carry an IPv4 address a gateway would connect to: IPv4-mapped ::ffff:0:0/96,
 * IPv4-compatible ::/96, NAT64 64:ff9b::/96 (RFC 6052) and 6to4 2002::/16 (RFC 3056). */
static int v4_private(uint32_t a) {
    return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 22) == (100u << 2 | 1) ||
           (a >> 16) == (169u << 8 | 254) || (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
           (a >> 17) == (198u << 7 | 9) || (a >> 28) >= 14;
}

static uint32_t v4_at(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int pvlm_dl_addr_blocked(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return v4_private(ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const unsigned char compat[12] = {0};
        static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
        if (!memcmp(b, mapped, 12) || !memcmp(b, compat, 12) || !memcmp(b, nat64, 12))
            return v4_private(v4_at(b + 12)); /* ::ffff:a.b.c.d, ::a.b.c.d (:: and ::1 too), 64:ff9b::a.b.c.d */
        if (b[0] == 0x20 && b[1] == 0x02) return v4_private(v4_at(b + 2)); /* 2002:AABB:CCDD::/48 */
        if ((b[0] & 0xfe) == 0xfc) return 1;                               /* fc00::/7 */
        if (b[0] == 0xfe && (b[1] & 0x80) == 0x80) return 1;               /* fe80::/10 and fec0::/10 */
        if (b[0] == 0xff) return 1;                                        /* multicast */
        return 0;
    }
    return 1; /* not IP: never for http(s) */
}

/* libcurl opens every socket through this (redirect targets included), after DNS, so the
 * check sees the address actually connected to. */
static curl_socket_t opensocket_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
    slot *s = ud;
    if (purpose == CURLSOCKTYPE_IPCXN && pvlm_dl_addr_blocked(&a->addr)) {
        s->blocked = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* ---------------------------------------------------------------- create / free */

pvlm_dl *pvlm_dl_create(const pvlm_dl_config *cfg, pvlm_err *err) {
    if (pvlm_dl_global_init(err)) return NULL;
    pvlm_dl_config c = *cfg;
    if (c.max_total < 1 || c.max_per_host < 1 || c.max_queued < 0 || c.connect_timeout_ms < 1 || c.timeout_ms < 1 ||
        c.low_speed_bytes < 0 || c.low_speed_time_s < 0 || c.max_bytes < 1 || c.max_redirects < 0 || c.retries < 0 ||
        c.backoff_ms < 0 || c.backoff_max_ms < c.backoff_ms) {
        pvlm_err_set(err, PVLM_EINVAL,
                     "downloader config: need max_total, max_per_host, timeouts and max_bytes >= 1, "
                     "and non-negative queue, low-speed, redirect, retry and backoff settings "
                     "(backoff_max_ms >= backoff_ms)");
        return NULL;
    }
    if (c.max_queued == 0) c.max_queued = 8 * c.max_total + 256;
    pvlm_dl *d = calloc(1, sizeof *d);
    if (!d) {
        pvlm_err_set(err, PVLM_ENOMEM, "downloader: out of memory");
        return NULL;
    }
    d->cfg = c;
    d->user_agent = strdup(c.user_agent && c.user_agent[0] ? c.user_agent : PVLM_DL_USER_AGENT);
    d->robots_agent = strdup(c.robots_agent && c.robots_agent[0] ? c.robots_agent : "pvlm");
    d->slots = calloc((size_t)c.max_total, sizeof *d->slots);
    d->multi = curl_multi_init();
    /* We decode JPEG and PNG; other image types still arrive for the decoder to count. */
    d->headers = curl_slist_append(NULL, "Accept: image/jpeg,image/png;q=0.9,image/*;q=0.8,*/*;q=0.5");
    if (!d->user_agent || !d->robots_agent || !d->slots || !d->multi || !d->headers || hosts_grow(d)) {
        pvlm_err_set(err, PVLM_ENOMEM, "downloader: out of memory creating libcurl handles");
        pvlm_dl_free(d);
        return NULL;
    }
    for (int i = 0; i < c.max_total; i++) {
        slot *s = &d->slots[i];
        s->d = d;
        s->easy = curl_easy_init();
        if (!s->easy) {
            pvlm_err_set(err, PVLM_ENOMEM, "downloader: curl_easy_init failed");
            pvlm_dl_free(d);
            return NULL;
        }
        s->next_free = d->free_slots;
        d->free_slots = s;
    }
    curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c.max_total);
    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c.max_per_host);
    pvlm_rng_seed(&d->rng, c.seed, 0x646c /* "dl" */);
    atomic_init(&d->stop, 0);
    return d;
}

static void clear_work(pvlm_dl *d);

void pvlm_dl_free(pvlm_dl *d) {
    if (!d) return;
    clear_work(d);
    if (d->slots) {
        for (int i = 0; i < d->cfg.max_total; i++) {
            if (d->slots[i].easy) curl_easy_cleanup(d->slots[i].easy);
            free(d->slots[i].body);
        }
    }
    if (d->multi) curl_multi_cleanup(d->multi);
    curl_slist_free_all(d->headers);
    free(d->slots);
    free(d->buckets);
    free(d->heap);
    free(d->user_agent);
    free(d->robots_agent);
    free(d);
}

void pvlm_dl_stop(pvlm_dl *d) {
    atomic_store(&d->stop, 1);
    curl_multi_wakeup(d->multi);
}

unsigned char *pvlm_dl_take_body(pvlm_dl_result *r, size_t *len) {
    unsigned char *b = r->body;
    if (len) *len = b ? r->body_len : 0;
    r->body = NULL;
    return b;
}

void pvlm_dl_get_stats(const pvlm_dl *d, pvlm_dl_stats *out) {
    *out = d->stats;
}

/* ---------------------------------------------------------------- transfers */

static void slot_reset_state(slot *s) {
    s->j = NULL;
    s->body_len = 0;
    s->status = 0;
    s->has_location = 0;
    s->robots = 0;
    s->discard = 0;
    s->blocked = 0;
    s->discarded = 0;
    s->abort_reason = PVLM_DL_OK;
    s->ctype[0] = '\0';
    s->detail[0] = '\0';
    s->errbuf[0] = '\0';
}

static int start_job(pvlm_dl *d, job *j, pvlm_err *err) {
    slot *s = d->free_slots;
    d->free_slots = s->next_free;
    slot_reset_state(s);
    s->j = j;
    const pvlm_dl_config *c = &d->cfg;
    CURL *e = s->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM-based DNS timeouts */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)c->max_redirects);
    curl_easy_setopt(e, CURLOPT_AUTOREFERER, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_bytes);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_bytes);
    curl_easy_setopt(e, CURLOPT_USERAGENT, d->user_agent);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's CONNECT reply is not the image's */
    if (c->block_private) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, s);
    }
    CURLMcode mc = curl_multi_add_handle(d->multi, e);
    if (mc != CURLM_OK) {
        s->j = NULL;
        s->next_free = d->free_slots;
        d->free_slots = s;
        return pvlm_err_set(err, PVLM_ENET, "downloader: curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    if (j->attempts == 0) j->t_first = pvlm_now();
    j->attempts++;
    j->h->active++;
    d->active++;
    d->stats.attempts++;
    return 0;
}

/* Start queued jobs round-robin over ready hosts while global slots are free. */
static int schedule(pvlm_dl *d, pvlm_err *err) {
    while (d->active < d->cfg.max_total && d->ready_head) {
        host *h = ready_pop(d);
        job *j = h->qhead;
        h->qhead = j->next;
        if (!h->qhead) h->qtail = NULL;
        j->next = NULL;
        d->queued--;
        if (start_job(d, j, err)) return -1;
        ready_push(d, h);
    }
    return 0;
}

static pvlm_dl_reason classify(pvlm_dl *d, slot *s, CURLcode rc, long *status) {
    CURL *e = s->easy;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    *status = code;
    if (s->abort_reason != PVLM_DL_OK) return s->abort_reason;
    if (s->discard) { /* final response was an error status */
        snprintf(s->detail, sizeof s->detail, "HTTP %ld", code);
        return code >= 500 ? PVLM_DL_HTTP_5XX : PVLM_DL_HTTP_4XX;
    }
    if (rc == CURLE_OK) {
        if (code >= 200 && code < 300) {
            if (s->body_len == 0) {
                snprintf(s->detail, sizeof s->detail, "HTTP %ld with an empty body", code);
                return PVLM_DL_EMPTY;
            }
            return PVLM_DL_OK;
        }
        snprintf(s->detail, sizeof s->detail, "final HTTP status %ld", code);
        if (code >= 500) return PVLM_DL_HTTP_5XX;
        if (code >= 400) return PVLM_DL_HTTP_4XX;
        return PVLM_DL_HTTP_OTHER;
    }
    snprintf(s->detail, sizeof s->detail, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
    if (s->blocked && rc == CURLE_COULDNT_CONNECT) { /* every address of the host was refused */
        snprintf(s->detail, sizeof s->detail, "host resolves to a private or loopback address");
        return PVLM_DL_BLOCKED_ADDRESS;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: {
        /* One libcurl code covers the three timeouts: tell them apart by what happened. */
        /* Pretransfer time is set once the request could be sent (also on a reused
         * connection, where the connect time stays 0). */
        curl_off_t pretransfer_us = 0, total_us = 0;
        curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
        curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us);
        if (pretransfer_us == 0 && code == 0) return PVLM_DL_CONNECT_TIMEOUT;
        if (total_us / 1000 + 100 >= (curl_off_t)d->cfg.timeout_ms) return PVLM_DL_TIMEOUT;
        return PVLM_DL_STALLED;
    }
    case CURLE_FILESIZE_EXCEEDED:
        return PVLM_DL_TOO_BIG;
    case CURLE_TOO_MANY_REDIRECTS:
        return PVLM_DL_TOO_MANY_REDIRECTS;
    case CURLE_UNSUPPORTED_PROTOCOL: {
        /* libcurl gives this code both for a refused scheme (a redirect to ftp:// or
         * file://: the URL it stopped at is not http/https) and for a reply that is not
         * HTTP (HTTP/0.9, a garbled status code, an unknown version), which a server may
         * well fix: only the first is permanent. */
        const char *eff = NULL;
        curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &eff);
        if (eff && strncasecmp(eff, "http://", 7) && strncasecmp(eff, "https://", 8)) return PVLM_DL_BAD_SCHEME;
        return PVLM_DL_PROTOCOL_ERROR;
    }
    case CURLE_URL_MALFORMAT:
        return PVLM_DL_BAD_URL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return PVLM_DL_DNS_ERROR;
    case CURLE_COULDNT_CONNECT:
        return PVLM_DL_CONNECT_ERROR;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return PVLM_DL_TLS_ERROR;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        return PVLM_DL_RECV_ERROR;
    default:
        return PVLM_DL_OTHER;
    }
}

/* Report a finished job to the caller and free it. Returns the callback's verdict. */
static int complete(pvlm_dl *d, job *j, pvlm_dl_reason r, long status, const char *ctype, const char *detail,
                    unsigned char **body, size_t body_len, pvlm_dl_done_fn done, void *ctx) {
    pvlm_dl_result res = {
        .index = j->index,
        .url = j->url_in,
        .caption = j->caption,
        .user = j->user,
        .reason = r,
        .http_status = status,
        .content_type = ctype ? ctype : "",
        .detail = detail ? detail : "",
        .body = r == PVLM_DL_OK && body ? *body : NULL,
        .body_len = r == PVLM_DL_OK ? body_len : 0,
        .attempts = j->attempts,
        .seconds = j->attempts ? pvlm_now() - j->t_first : 0.0,
    };
    d->stats.items++;
    d->stats.by_reason[r]++;
    if (r == PVLM_DL_OK) {
        d->stats.ok++;
        d->stats.body_bytes += (int64_t)body_len;
    }
    int stop = done(ctx, &res);
    if (r == PVLM_DL_OK && body && res.body == NULL) *body = NULL; /* taken by the caller */
    job_free(j);
    return stop;
}

/* Delay before attempt k+1 (k >= 1 attempts made): backoff_ms * 2^(k-1), capped, with
 * "equal jitter" (half fixed, half uniform) so retries of one burst spread out; at least
 * Retry-After when the server sent one. */
static double backoff_s(pvlm_dl *d, int attempts, long retry_after_s) {
    double base = (double)d->cfg.backoff_ms;
    for (int i = 1; i < attempts && base < (double)d->cfg.backoff_max_ms; i++) base *= 2;
    if (base > (double)d->cfg.backoff_max_ms) base = (double)d->cfg.backoff_max_ms;
    double ms = base / 2 + pvlm_rng_uniform(&d->rng) * base / 2;
    if (retry_after_s > 0 && (double)retry_after_s * 1000.0 > ms) ms = (double)retry_after_s * 1000.0;
    if (ms > (double)d->cfg.backoff_max_ms) ms = (double)d->cfg.backoff_max_ms;
    return ms / 1000.0;
}

/* Handle every finished transfer. Returns 0, 1 when the callback asked to stop, -1 on error. */
static int reap(pvlm_dl *d, pvlm_dl_done_fn done, void *ctx, pvlm_err *err) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        slot *s = (slot *)(void *)priv;
        long status = 0;
        pvlm_dl_reason r = classify(d, s, rc, &status);
        curl_off_t retry_after = 0;
        curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after);
        curl_multi_remove_handle(d->multi, e);
        job *j = s->j;
        host *h = j->h;
        h->active--;
        d->active--;
        s->j = NULL;
        s->next_free = d->free_slots;
        d->free_slots = s;
        int stop = 0;
        if (r != PVLM_DL_OK && pvlm_dl_reason_retryable(r, status) && j->attempts <= d->cfg.retries) {
            j->ready_at = pvlm_now() + backoff_s(d, j->attempts, (long)retry_after);
            pvlm_debug("download: %s: attempt %d: %s (HTTP %ld, %s); retrying in %.2f s", j->url_in, j->attempts,
                       pvlm_dl_reason_name(r), status, s->detail, j->ready_at - pvlm_now());
            d->stats.retries++;
            if (heap_push(d, j)) {
                pvlm_err_set(err, PVLM_ENOMEM, "downloader: out of memory queueing a retry");
                h->refs--;
                job_free(j);
                host_release(d, h);
                return -1;
            }
        } else {
            h->refs--;
            stop = complete(d, j, r, status, s->ctype, s->detail, &s->body, s->body_len, done, ctx);
            if (!s->body) s->body_cap = 0;
        }
        /* Keep a big body buffer from one transfer pinning memory in an idle slot. */
        if (s->body_cap > (1u << 20)) {
            free(s->body);
            s->body = NULL;
            s->body_cap = 0;
        }
        ready_push(d, h);
        host_release(d, h);
        if (stop) return 1;
    }
    return 0;
}

/* Abandon all work: running transfers, queued jobs, pending retries. */
static void clear_work(pvlm_dl *d) {
    if (d->slots) {
        for (int i = 0; i < d->cfg.max_total; i++) {
            slot *s = &d->slots[i];
            if (!s->j) continue;
            curl_multi_remove_handle(d->multi, s->easy);
            job_free(s->j);
            s->j = NULL;
            s->next_free = d->free_slots;
            d->free_slots = s;
        }
    }
    while (d->nheap) job_free(heap_pop(d));
    for (size_t b = 0; b < d->nbuckets; b++) {
        host *h = d->buckets[b];
        while (h) {
            host *nx = h->chain;
            for (job *j = h->qhead; j;) {
                job *jn = j->next;
                job_free(j);
                j = jn;
            }
            free(h->name);
            free(h);
            h = nx;
        }
        d->buckets[b] = NULL;
    }
    d->nhosts = 0;
    d->ready_head = d->ready_tail = NULL;
    d->queued = 0;
    d->active = 0;
}

/* Take one item from the source: queue it, or complete it at once when its URL is bad.
 * Returns 1 taken, 0 end of input, 2 callback asked to stop, -1 error. */
static int pull_one(pvlm_dl *d, pvlm_dl_next_fn next, void *next_ctx, pvlm_dl_done_fn done, void *done_ctx,
                    pvlm_err *err) {
    pvlm_dl_item it = {0};
    int rc = next(next_ctx, &it, err);
    if (rc <= 0) return rc;
    job *j = calloc(1, sizeof *j);
    if (!j) return pvlm_err_set(err, PVLM_ENOMEM, "downloader: out of memory");
    j->index = it.index;
    j->user = it.user;
    j->url_in = strdup(it.url ? it.url : "");
    j->caption = it.caption ? strdup(it.caption) : NULL;
    if (!j->url_in || (it.caption && !j->caption)) {
        job_free(j);
        return pvlm_err_set(err, PVLM_ENOMEM, "downloader: out of memory");
    }
    char msg[256], *hostname = NULL;
    pvlm_dl_reason r = parse_url(j->url_in, &j->url, &hostname, msg, sizeof msg);
    if (r != PVLM_DL_OK) {
        j->t_first = pvlm_now();
        return complete(d, j, r, 0, "", msg, NULL, 0, done, done_ctx) ? 2 : 1;
    }
    j->h = host_get(d, hostname);
    free(hostname);
    if (!j->h) {
        job_free(j);
        return pvlm_err_set(err, PVLM_ENOMEM, "downloader: out of memory");
    }
    j->h->refs++;
    j->t_first = pvlm_now();
    host_enqueue(d, j);
    return 1;
}

int pvlm_dl_run(pvlm_dl *d, pvlm_dl_next_fn next, void *next_ctx, pvlm_dl_done_fn done, void *done_ctx, pvlm_err *err) {
    atomic_store(&d->stop, 0);
    int eof = 0, result = 0;
    for (;;) {
        if (atomic_load(&d->stop) || (d->cfg.stop_flag && *d->cfg.stop_flag)) {
            result = 1;
            break;
        }
        /* 1. retries whose backoff has ended go back to their host queue */
        double now = pvlm_now();
        while (d->nheap && d->heap[0]->ready_at <= now) {
            job *j = heap_pop(d);
            host_enqueue(d, j);
        }
        /* 2. pull new items while the waiting room has space */
        while (!eof && d->queued < (size_t)d->cfg.max_queued) {
            int rc = pull_one(d, next, next_ctx, done, done_ctx, err);
            if (rc < 0) {
                result = -1;
                goto out;
            }
            if (rc == 2) {
                result = 1;
                goto out;
            }
            if (rc == 0) eof = 1;
            /* start what can start now, so a single-host list does not fill the queue
             * before anything runs */
            if (d->active < d->cfg.max_total && d->ready_head && schedule(d, err)) {
                result = -1;
                goto out;
            }
        }
        /* 3. start transfers */
        if (schedule(d, err)) {
            result = -1;
            goto out;
        }
        if (eof && d->active == 0 && d->queued == 0) break; /* all reported */
        /* 4. drive the transfers */
        int running = 0;
        CURLMcode mc = curl_multi_perform(d->multi, &running);
        if (mc != CURLM_OK) {
            pvlm_err_set(err, PVLM_ENET, "downloader: curl_multi_perform: %s", curl_multi_strerror(mc));
            result = -1;
            goto out;
        }
        int64_t before = d->stats.items + d->stats.retries;
        int rr = reap(d, done, done_ctx, err);
        if (rr) {
            result = rr;
            goto out;
        }
        if (d->stats.items + d->stats.retries != before) continue; /* capacity freed: refill */
        /* 5. wait for socket activity, curl's next timeout, the next retry, or a wakeup */
        long wait_ms = 1000;
        long tmo = -1;
        curl_multi_timeout(d->multi, &tmo);
        if (tmo >= 0 && tmo < wait_ms) wait_ms = tmo;
        if (d->nheap) {
            double dt = (d->heap[0]->ready_at - pvlm_now()) * 1000.0;
            long ms = dt <= 0 ? 0 : (long)dt + 1;
            if (ms < wait_ms) wait_ms = ms;
        }
        if (d->cfg.stop_flag && wait_ms > 250) wait_ms = 250;
        if (wait_ms > 0) {
            mc = curl_multi_poll(d->multi, NULL, 0, (int)wait_ms, NULL);
            if (mc != CURLM_OK) {
                pvlm_err_set(err, PVLM_ENET, "downloader: curl_multi_poll: %s", curl_multi_strerror(mc));
                result = -1;
                goto out;
            }
        }
    }
out:
    if (result != 0) clear_work(d);
    return result;
}

typedef struct {
    const pvlm_dl_item *items;
    size_t n, i;
} array_src;

static int array_next(void *ctx, pvlm_dl_item *item, pvlm_err *err) {
    (void)err;
    array_src *a = ctx;
    if (a->i >= a->n) return 0;
    *item = a->items[a->i++];
    return 1;
}

int pvlm_dl_run_items(pvlm_dl *d, const pvlm_dl_item *items, size_t n, pvlm_dl_done_fn done, void *done_ctx,
                      pvlm_err *err) {
    array_src a = {items, n, 0};
    return pvlm_dl_run(d, array_next, &a, done, done_ctx, err);
}
