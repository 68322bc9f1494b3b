/* download.h - a polite, bounded HTTP(S) image downloader on the libcurl multi interface.
 *
 * What it does: fetches many URLs concurrently from one thread (curl_multi_poll, no busy
 * loop), with
 *   - at most `max_total` transfers in flight and at most `max_per_host` per host name
 *     (our own per-host FIFO queues, round-robin across hosts, plus
 *     CURLMOPT_MAX_HOST_CONNECTIONS as a second fence for redirects to another host);
 *   - connect, whole-transfer and low-speed timeouts, so a stuck tail never hangs a job;
 *   - retries with exponential backoff and jitter for transient failures only (timeouts,
 *     connection errors, HTTP 5xx/429/408), honouring Retry-After up to the backoff cap;
 *   - a byte cap enforced in the write callback (libcurl 7.88's CURLOPT_MAXFILESIZE only
 *     stops transfers whose size is announced; it is set too), a redirect cap
 *     (CURLOPT_MAXREDIRS; unlimited by default in 7.88) and http/https only, for the first
 *     URL and every redirect (CURLOPT_PROTOCOLS_STR / CURLOPT_REDIR_PROTOCOLS_STR);
 *   - an identifiable User-Agent and X-Robots-Tag opt-outs (noai, noimageai, noindex,
 *     noimageindex, none; bare or prefixed with our agent token, e.g. "pvlm: noai"),
 *     checked in the header callback before any body byte is accepted;
 *   - a Content-Type check (text/html and other non-image types are refused);
 *   - one completion callback per submitted item, in completion order (not input order),
 *     with a named failure reason, the HTTP status and the body bytes.
 * See docs/downloader.md for the flags, defaults and the politeness rules.
 *
 * Ownership: pvlm_dl_create allocates a downloader that pvlm_dl_free releases. The
 * downloader copies every submitted url/caption; the caller's strings need only live
 * until the source callback returns (or until pvlm_dl_run_items returns). A result and
 * everything it points to (body, url, caption, content_type, detail) is valid only
 * during the completion callback, except a body taken with pvlm_dl_take_body, which the
 * caller then owns and free()s.
 *
 * Threads: a pvlm_dl is used by one thread at a time (it may run many times: the
 * connection cache is kept between runs); both callbacks run on the thread
 * that called pvlm_dl_run*. Hand the body to decoder threads with pvlm_dl_take_body (no
 * copy). pvlm_dl_stop may be called from any thread. Several downloaders may run in
 * different threads at once. libcurl's global init runs once per process
 * (pvlm_dl_global_init, called by pvlm_dl_create, pthread_once-guarded; libcurl 7.88 is
 * built thread-safe); we never call curl_global_cleanup (process exit releases it).
 */
#ifndef PVLM_SHARD_DOWNLOAD_H
#define PVLM_SHARD_DOWNLOAD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Why a transfer ended. Names (pvlm_dl_reason_name) are the strings written to failures
 * files and manifests; keep them stable. */
typedef struct pvlm_dl pvlm_dl;

typedef enum pvlm_dl_reason {
    PVLM_DL_OK = 0,
    PVLM_DL_HTTP_4XX,           /* final status 400..499 (status in http_status); 408/429 retried */
    PVLM_DL_HTTP_5XX,           /* final status 500..599 (retried) */
    PVLM_DL_HTTP_OTHER,         /* final status 1xx/3xx (e.g. a 3xx without Location) */
    PVLM_DL_TIMEOUT,            /* whole-transfer timeout (retried) */
    PVLM_DL_STALLED,            /* below the low-speed limit for low_speed_time_s (retried) */
    PVLM_DL_CONNECT_TIMEOUT,    /* no connection within connect_timeout_ms (retried) */
    PVLM_DL_CONNECT_ERROR,      /* connection refused / unreachable (retried) */
    PVLM_DL_DNS_ERROR,          /* host name did not resolve */
    PVLM_DL_TLS_ERROR,          /* TLS handshake or certificate failure */
    PVLM_DL_RECV_ERROR,         /* connection dropped, empty reply, partial body (retried) */
    PVLM_DL_TOO_BIG,            /* body (announced or received) over max_bytes */
    PVLM_DL_TOO_MANY_REDIRECTS, /* more than max_redirects redirects */
    PVLM_DL_BAD_SCHEME,         /* URL or a redirect target is not http/https */
    PVLM_DL_PROTOCOL_ERROR,     /* the server's reply is not HTTP (malformed status line; retried) */
    PVLM_DL_BAD_URL,            /* URL does not parse */
    PVLM_DL_ROBOTS_OPTOUT,      /* X-Robots-Tag opt-out (noai, noimageai, noindex, ...) */
    PVLM_DL_NOT_IMAGE,          /* Content-Type is not an image (text/html, ...) */
    PVLM_DL_EMPTY,              /* 2xx with an empty body */
    PVLM_DL_BLOCKED_ADDRESS,    /* block_private: host resolved to a private/loopback address */
    PVLM_DL_OTHER,              /* any other libcurl error (its text in detail) */
    PVLM_DL_NREASONS
} pvlm_dl_reason;

/* Stable lower-case name: "ok", "http_4xx", "http_5xx", "http_other", "timeout", "stalled",
 * "connect_timeout", "connect_error", "dns_error", "tls_error", "recv_error", "too_big",
 * "too_many_redirects", "bad_scheme", "protocol_error", "bad_url", "robots_optout", "not_image", "empty",
 * "blocked_address", "other". */
const char *pvlm_dl_reason_name(pvlm_dl_reason r);
/* Inverse of pvlm_dl_reason_name; -1 for an unknown name. */
int pvlm_dl_reason_parse(const char *name);
/* Whether a failure with this reason and HTTP status is worth retrying later. */
int pvlm_dl_reason_retryable(pvlm_dl_reason r, long http_status);

typedef struct pvlm_dl_config {
    int max_total;            /* concurrent transfers (default 64) */
    int max_per_host;         /* concurrent transfers per host name (default 4) */
    int max_queued;           /* items pulled from the source but not started, bound on memory
                                 (default 0 = 8 * max_total + 256) */
    long connect_timeout_ms;  /* default 10000 */
    long timeout_ms;          /* whole transfer incl. redirects, default 60000 */
    long low_speed_bytes;     /* abort when slower than this many bytes/s ... (default 1024) */
    long low_speed_time_s;    /* ... for this many seconds (default 10) */
    int64_t max_bytes;        /* body byte cap (default 16 MiB) */
    int max_redirects;        /* default 5 */
    int retries;              /* extra attempts after a retryable failure (default 2) */
    long backoff_ms;          /* first retry delay (default 1000); doubles per attempt */
    long backoff_max_ms;      /* cap of a delay, Retry-After included (default 30000) */
    const char *user_agent;   /* default PVLM_DL_USER_AGENT */
    const char *robots_agent; /* our token in "token: noai" X-Robots-Tag values (default "pvlm") */
    int respect_robots;       /* 1 (default): X-Robots-Tag opt-outs refuse the item */
    int require_image;        /* 1 (default): refuse non-image Content-Types */
    /* 1 (default): refuse to connect to loopback, private (RFC 1918, fc00::/7), link-local
     * (cloud metadata at 169.254.169.254), CGNAT, multicast and reserved addresses
     * (pvlm_dl_addr_blocked), checked on the resolved address of every connection libcurl
     * opens (CURLOPT_OPENSOCKETFUNCTION, after DNS), so no host name, numeric spelling
     * (0x7f000001, 2130706433, 0177.0.0.1) or redirect gets around it. URL lists come from
     * the open web and run on cluster nodes beside internal services. 0 allows them (a
     * local mirror, the tests' server on 127.0.0.1: `--allow-private-addresses`). */
    int block_private;
    uint64_t seed; /* jitter random stream (default 0) */
    /* Optional flag polled at least every 250 ms (e.g. set by a SIGINT handler): when it
     * becomes nonzero the run stops as pvlm_dl_stop does. */
    volatile sig_atomic_t *stop_flag;
} pvlm_dl_config;

/* Names the tool and where its behaviour is documented; set --user-agent to add a contact. */
#define PVLM_DL_USER_AGENT "pvlm/0.1 (image-text dataset builder; +docs/downloader.md)"

/* Whether block_private refuses this resolved address (AF_INET or AF_INET6; anything
 * else is refused). */
struct sockaddr;
int pvlm_dl_addr_blocked(const struct sockaddr *sa);

/* Fill c with the defaults listed above. */
void pvlm_dl_config_default(pvlm_dl_config *c);

/* One URL to fetch. index is the caller's key (e.g. the row of the URL list); user is
 * returned untouched in the result. url and caption are copied on submit. */
typedef struct pvlm_dl_item {
    int64_t index;
    const char *url;
    const char *caption; /* may be NULL; carried through to the result */
    void *user;
} pvlm_dl_item;

/* The outcome of one item, passed to the completion callback. */
typedef struct pvlm_dl_result {
    int64_t index;
    const char *url;     /* as submitted */
    const char *caption; /* as submitted (NULL if none) */
    void *user;
    pvlm_dl_reason reason;    /* PVLM_DL_OK on success */
    long http_status;         /* last HTTP status seen, 0 if none */
    const char *content_type; /* final response's Content-Type ("" if none) */
    const char *detail;       /* human-readable cause of a failure ("" on success) */
    unsigned char *body;      /* body bytes (reason OK); NULL after pvlm_dl_take_body */
    size_t body_len;
    int attempts;   /* transfers made for this item (1 + retries used) */
    double seconds; /* wall time from first start to completion, backoff included */
} pvlm_dl_result;

/* Completion callback: called once per item, on the run's thread. Return 0 to go on,
 * nonzero to stop the run (in-flight transfers are abandoned without callbacks). */
typedef int (*pvlm_dl_done_fn)(void *ctx, pvlm_dl_result *r);

/* Source callback for streaming input: fill *item and return 1, return 0 at the end of
 * input, or -1 on an error (fill err; the run stops and returns -1). The strings in item
 * need live only until the callback returns. */
typedef int (*pvlm_dl_next_fn)(void *ctx, pvlm_dl_item *item, pvlm_err *err);

/* Counters over the downloader's life (all runs). */
typedef struct pvlm_dl_stats {
    int64_t items; /* completed items (callbacks made) */
    int64_t ok;
    int64_t by_reason[PVLM_DL_NREASONS]; /* completed items per final reason */
    int64_t attempts;                    /* transfers started, retries included */
    int64_t retries;
    int64_t body_bytes; /* body bytes of successful items */
} pvlm_dl_stats;

/* Call libcurl's global init once per process (idempotent, thread-safe). */
int pvlm_dl_global_init(pvlm_err *err);

/* New downloader (caller frees with pvlm_dl_free). NULL + err on a bad config or when
 * libcurl cannot be initialised. */
pvlm_dl *pvlm_dl_create(const pvlm_dl_config *cfg, pvlm_err *err);
void pvlm_dl_free(pvlm_dl *d);

/* Fetch every item the source yields and report each through done (any order) before
 * returning. Returns 0 when every item was reported, 1 when stopped early (done returned
 * nonzero, pvlm_dl_stop, or *stop_flag), -1 on an error (source failure or libcurl
 * multi error; err filled). Transfer failures are results, not errors. */
int pvlm_dl_run(pvlm_dl *d, pvlm_dl_next_fn next, void *next_ctx, pvlm_dl_done_fn done, void *done_ctx, pvlm_err *err);
/* Same over an array of n items. */
int pvlm_dl_run_items(pvlm_dl *d, const pvlm_dl_item *items, size_t n, pvlm_dl_done_fn done, void *done_ctx,
                      pvlm_err *err);

/* Ask a running pvlm_dl_run to stop soon (thread-safe; wakes curl_multi_poll). It applies
 * to the run in progress: each run starts with the request cleared. */
void pvlm_dl_stop(pvlm_dl *d);

/* Take ownership of r's body (caller free()s it); r->body becomes NULL. NULL if none. */
unsigned char *pvlm_dl_take_body(pvlm_dl_result *r, size_t *len);

void pvlm_dl_get_stats(const pvlm_dl *d, pvlm_dl_stats *out);

#endif
