/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timer.h"

static int g_rank = -1;
static int g_level = -1; /* -1: not yet resolved from the environment */

static int level_from_env(void) {
    const char *s = getenv("PVLM_LOG_LEVEL");
    if (!s) return PVLM_LOG_INFO;
    if (!strcmp(s, "error")) return PVLM_LOG_ERROR;
    if (!strcmp(s, "warn")) return PVLM_LOG_WARN;
    if (!strcmp(s, "debug")) return PVLM_LOG_DEBUG;
    return PVLM_LOG_INFO;
}

void pvlm_log_set_rank(int rank) { g_rank = rank; }
void pvlm_log_set_level(int level) { g_level = level; }
int pvlm_log_get_rank(void) { return g_rank; }
int pvlm_log_get_level(void) {
    if (g_level < 0) g_level = level_from_env();
    return g_level;
}

void pvlm_log(int level, const char *fmt, ...) {
    if (level > pvlm_log_get_level()) return;
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[4096];
    int n = 0;
    if (g_rank >= 0) n = snprintf(line, sizeof line, "[rank %d] ", g_rank);
    n += snprintf(line + n, sizeof line - (size_t)n, "%8.3fs %-5s ", pvlm_uptime(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
