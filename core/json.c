/* json.c - see json.h. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

json_t *pvlm_json_load_file(const char *path, pvlm_err *err) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) pvlm_err_set(err, PVLM_EFORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return j;
}

json_t *pvlm_json_loadb(const char *buf, size_t n, const char *what, pvlm_err *err) {
    json_error_t je;
    json_t *j = json_loadb(buf, n, 0, &je);
    if (!j) pvlm_err_set(err, PVLM_EFORMAT, "%s:%d:%d: %s", what, je.line, je.column, je.text);
    return j;
}

int pvlm_json_save_atomic(const json_t *j, const char *path, pvlm_err *err) {
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (!s) return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot serialise JSON", path);
    size_t n = strlen(s);
    s[n] = '\n';
    int rc = pvlm_write_file_atomic(path, s, n + 1, err);
    free(s);
    return rc;
}

int pvlm_json_save_results(const json_t *j, const char *path, pvlm_err *err) {
    char *s = json_dumps(j, JSON_REAL_PRECISION(17) | JSON_ENSURE_ASCII);
    if (!s) return pvlm_err_set(err, PVLM_ENOMEM, "%s: cannot serialise results", path);
    int rc = pvlm_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return rc;
}

int pvlm_json_get_int(const json_t *obj, const char *key, int64_t *out, const char *what, pvlm_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: field '%s' missing or not an integer", what, key);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int pvlm_json_get_real(const json_t *obj, const char *key, double *out, const char *what, pvlm_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: field '%s' missing or not a number", what, key);
    *out = json_number_value(v);
    return 0;
}

int pvlm_json_get_str(const json_t *obj, const char *key, const char **out, const char *what, pvlm_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: field '%s' missing or not a string", what, key);
    *out = json_string_value(v);
    return 0;
}
