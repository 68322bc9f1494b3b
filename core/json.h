/* json.h - thin helpers over jansson (Debian libjansson-dev).
 *
 * Loading reports "file:line:column: reason". Getters fetch typed fields and
 * fail with a message naming the file/record and the key. Returned json_t*
 * are new references the caller json_decref()s, unless noted "borrowed".
 */
#ifndef PVLM_JSON_H
#define PVLM_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"

json_t *pvlm_json_load_file(const char *path, pvlm_err *err);
json_t *pvlm_json_loadb(const char *buf, size_t n, const char *what, pvlm_err *err);
/* Write with sorted keys and 2-space indent, durably (see fsutil.h). */
int pvlm_json_save_atomic(const json_t *j, const char *path, pvlm_err *err);
/* Write compactly in insertion order, ASCII-escaped, doubles with 17 digits, durably: results files
 * (captions, VQA answers, reports) that other tools read back exactly. */
int pvlm_json_save_results(const json_t *j, const char *path, pvlm_err *err);

/* Typed field access; `what` names the object for messages ("manifest.json"). */
int pvlm_json_get_int(const json_t *obj, const char *key, int64_t *out, const char *what, pvlm_err *err);
int pvlm_json_get_real(const json_t *obj, const char *key, double *out, const char *what, pvlm_err *err);
/* Borrowed string, valid while obj lives. */
int pvlm_json_get_str(const json_t *obj, const char *key, const char **out, const char *what, pvlm_err *err);

#endif
