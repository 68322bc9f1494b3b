/* i64map.c - see i64map.h. */
#include "i64map.h"

#include <stdlib.h>

#include "rng.h"

static size_t slot(const pvlm_i64map *m, int64_t key) {
    size_t i = (size_t)pvlm_mix64((uint64_t)key) & (m->cap - 1);
    while (m->val[i] >= 0 && m->key[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

static int alloc_table(pvlm_i64map *m, size_t cap) {
    m->key = malloc(cap * sizeof *m->key);
    m->val = malloc(cap * sizeof *m->val);
    if (!m->key || !m->val) {
        free(m->key), free(m->val);
        m->key = m->val = NULL;
        return -1;
    }
    for (size_t i = 0; i < cap; i++) m->val[i] = -1;
    m->cap = cap;
    return 0;
}

int pvlm_i64map_init(pvlm_i64map *m, size_t expect) {
    size_t cap = 64;
    while (cap < 2 * expect + 2) cap *= 2;
    m->n = 0;
    return alloc_table(m, cap);
}

void pvlm_i64map_free(pvlm_i64map *m) {
    free(m->key);
    free(m->val);
    m->key = m->val = NULL;
    m->cap = m->n = 0;
}

int64_t pvlm_i64map_get(const pvlm_i64map *m, int64_t key) {
    return m->cap ? m->val[slot(m, key)] : -1;
}

static int grow(pvlm_i64map *m) {
    pvlm_i64map g = {0};
    if (alloc_table(&g, m->cap ? 2 * m->cap : 64)) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->val[i] < 0) continue;
        size_t s = slot(&g, m->key[i]);
        g.key[s] = m->key[i];
        g.val[s] = m->val[i];
    }
    g.n = m->n;
    pvlm_i64map_free(m);
    *m = g;
    return 0;
}

int pvlm_i64map_add(pvlm_i64map *m, int64_t key, int64_t val, int64_t *old) {
    if (2 * (m->n + 1) > m->cap && grow(m)) return -1;
    size_t s = slot(m, key);
    if (m->val[s] >= 0) {
        if (old) *old = m->val[s];
        return 0;
    }
    m->key[s] = key;
    m->val[s] = val;
    m->n++;
    return 1;
}
