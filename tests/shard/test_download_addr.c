/* test_download_addr.c - shard/download's address policy (pvlm_dl_addr_blocked): every
 * non-public IPv4 range and IPv6 form that reaches one is refused; public addresses pass. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "shard/download.h"

static int blocked(const char *text) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &a4->sin_addr) == 1)
        a4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1)
        a6->sin6_family = AF_INET6;
    else
        return -1;
    return pvlm_dl_addr_blocked((const struct sockaddr *)&ss);
}

int main(void) {
    static const char *const refused[] = {
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "198.18.0.1",
        "198.19.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        /* IPv6 */
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        /* IPv6 forms carrying a private IPv4 address */
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::10.1.2.3",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2002:c0a8:101::",
    };
    static const char *const allowed[] = {
        "8.8.8.8",          "1.1.1.1",
        "172.15.255.255",   "172.32.0.1",
        "192.167.255.255",  "192.169.0.1",
        "100.63.255.255",   "100.128.0.1",
        "169.253.255.255",  "198.17.255.255",
        "198.20.0.1",       "223.255.255.255",
        "11.0.0.1",         "2001:4860:4860::8888",
        "2606:4700::1111",  "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8", "2002:808:808::1",
        "fe7f::1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        CHECK_MSG(blocked(refused[i]) == 1, "%s must be refused", refused[i]);
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        CHECK_MSG(blocked(allowed[i]) == 0, "%s must be allowed", allowed[i]);
    struct sockaddr other = {.sa_family = AF_UNIX};
    CHECK(pvlm_dl_addr_blocked(&other) == 1);
    pvlm_dl_config c;
    pvlm_dl_config_default(&c);
    CHECK(c.block_private == 1);
    return pvlm_test_done("download_addr");
}
