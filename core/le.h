/* le.h - little-endian integers in byte buffers, for the binary formats (shards, safetensors).
 *
 * Every pvlm binary format stores its integers little-endian at fixed offsets, whatever the host; these
 * read and write them byte by byte, so that neither the alignment nor the byte order of the host
 * matters. Header-only and inline; nothing is allocated.
 */
#ifndef PVLM_LE_H
#define PVLM_LE_H

#include <stdint.h>

static inline void pvlm_le_put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void pvlm_le_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void pvlm_le_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t pvlm_le_get16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t pvlm_le_get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t pvlm_le_get64(const uint8_t *p) {
    return (uint64_t)pvlm_le_get32(p) | (uint64_t)pvlm_le_get32(p + 4) << 32;
}

#endif
