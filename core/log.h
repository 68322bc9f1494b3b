/* log.h - leveled logging to stderr with an "[rank N]" prefix.
 *
 * Process-wide settings (level, rank) are set once at start by the program;
 * the library only reads them. Level from PVLM_LOG_LEVEL (error|warn|info|debug)
 * unless set explicitly. Each line is written with one fprintf so lines from
 * threads do not interleave mid-line.
 */
#ifndef PVLM_LOG_H
#define PVLM_LOG_H

enum { PVLM_LOG_ERROR = 0, PVLM_LOG_WARN = 1, PVLM_LOG_INFO = 2, PVLM_LOG_DEBUG = 3 };

void pvlm_log_set_rank(int rank);   /* -1: no rank prefix (single-process tools) */
void pvlm_log_set_level(int level);
int pvlm_log_get_level(void);
int pvlm_log_get_rank(void);
void pvlm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pvlm_error(...) pvlm_log(PVLM_LOG_ERROR, __VA_ARGS__)
#define pvlm_warn(...) pvlm_log(PVLM_LOG_WARN, __VA_ARGS__)
#define pvlm_info(...) pvlm_log(PVLM_LOG_INFO, __VA_ARGS__)
#define pvlm_debug(...) pvlm_log(PVLM_LOG_DEBUG, __VA_ARGS__)

#endif
