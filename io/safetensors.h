/* safetensors.h - read and write safetensors files (the Hugging Face tensor container).
 *
 * Layout (the format's specification, github.com/huggingface/safetensors, "Format"):
 *   8 bytes     N, unsigned 64-bit little-endian: size of the JSON header
 *   N bytes     UTF-8 JSON object: {"__metadata__": {str: str, ...},
 *                 "<name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
 *               (the reference writer pads it with spaces to a multiple of 8 bytes)
 *   rest        the byte buffer; tensor data little-endian, row-major, at [begin, end) relative to the
 *               start of the buffer.
 *
 * Reader (pvlm_st_open): validates everything before handing out a tensor, as the reference
 * implementation's `SafeTensors::read_metadata` does, plus a few stricter checks:
 *   header length >= 2 and <= PVLM_ST_MAX_HEADER (100 MB), 8 + N <= file size; the header is a JSON
 *   object with unique keys; "__metadata__" (optional) maps strings to strings; every other key is a
 *   tensor with a known dtype, a shape of non-negative integers (at most PVLM_ST_MAX_DIMS), integer
 *   offsets with begin <= end, numel * dtype size == end - begin; sorted by offset the tensors tile the
 *   data buffer exactly (no overlap, no gap) and the last one ends at the end of the file.
 * Any violation returns -1 with a PVLM_EFORMAT error naming the file and the tensor. Tensor data is
 * read with pread at 64-bit offsets (no mmap: a file truncated by someone else while open gives a
 * short read, reported as an error, not SIGBUS).
 *
 * pvlm's files also carry "__metadata__" keys "pvlm_data_xxh3" (XXH3-64 of the whole data buffer,
 * 16 hex digits) so pvlm_st_verify_checksum can detect flipped bytes; files from other writers
 * simply lack it.
 *
 * Writer (pvlm_st_writer): collects tensors (name, dtype, shape, borrowed data pointer) and string
 * metadata, then pvlm_st_writer_write writes header + data durably: to "<path>.tmp.<pid>", fsync,
 * rename over path, fsync the directory. Tensors are laid out in the order added.
 *
 * Ownership: pvlm_st_file and pvlm_st_writer are caller-owned structs; their internals are freed by
 * pvlm_st_close / pvlm_st_writer_free. Data pointers given to the writer are borrowed until the write.
 * This host must be little-endian (checked at compile time).
 */
#ifndef PVLM_SAFETENSORS_H
#define PVLM_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define PVLM_ST_MAX_HEADER 100000000ull /* 100 MB, the reference implementation's cap */
#define PVLM_ST_MAX_DIMS 8
#define PVLM_ST_MAX_NAME 256

typedef enum pvlm_st_dtype {
    PVLM_ST_BOOL = 0,
    PVLM_ST_U8,
    PVLM_ST_I8,
    PVLM_ST_F8_E5M2,
    PVLM_ST_F8_E4M3,
    PVLM_ST_I16,
    PVLM_ST_U16,
    PVLM_ST_F16,
    PVLM_ST_BF16,
    PVLM_ST_I32,
    PVLM_ST_U32,
    PVLM_ST_F32,
    PVLM_ST_F64,
    PVLM_ST_I64,
    PVLM_ST_U64,
    PVLM_ST_NDTYPES
} pvlm_st_dtype;

/* "F32" -> PVLM_ST_F32; -1 when unknown. */
int pvlm_st_dtype_parse(const char *s);
const char *pvlm_st_dtype_name(int dtype); /* "F32"; "?" when out of range */
size_t pvlm_st_dtype_size(int dtype);      /* bytes per element; 0 when out of range */

typedef struct pvlm_st_tensor {
    char name[PVLM_ST_MAX_NAME];
    int dtype; /* pvlm_st_dtype */
    int ndim;  /* 0 = scalar (numel 1) */
    int64_t shape[PVLM_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* byte offsets relative to the start of the data buffer */
} pvlm_st_tensor;

/* Number of elements of a shape (1 for ndim 0); UINT64_MAX on overflow. */
uint64_t pvlm_st_numel(int ndim, const int64_t *shape);

typedef struct pvlm_st_file {
    char path[4096];
    int fd;
    uint64_t file_size;
    uint64_t header_len;     /* N */
    uint64_t data_start;     /* 8 + N: file offset of the data buffer */
    pvlm_st_tensor *tensors; /* owned; sorted by data offset (= file order) */
    int n_tensors;
    int *by_name;     /* owned; indices into tensors sorted by name (for pvlm_st_find) */
    json_t *metadata; /* owned JSON object of strings (empty object when absent) */
} pvlm_st_file;

/* Open and validate path (see top). On failure f holds nothing to free. */
int pvlm_st_open(pvlm_st_file *f, const char *path, pvlm_err *err);
void pvlm_st_close(pvlm_st_file *f);
/* Tensor by name, NULL if absent (binary search; names are unique). */
const pvlm_st_tensor *pvlm_st_find(const pvlm_st_file *f, const char *name);
/* Metadata value (borrowed, valid until close) or NULL. */
const char *pvlm_st_meta(const pvlm_st_file *f, const char *key);

/* Read a whole tensor into dst (cap bytes, must be >= end - begin). */
int pvlm_st_read(const pvlm_st_file *f, const pvlm_st_tensor *t, void *dst, size_t cap, pvlm_err *err);
/* Read bytes [byte_off, byte_off + n) of a tensor's data into dst (range checked). */
int pvlm_st_read_bytes(const pvlm_st_file *f, const pvlm_st_tensor *t, uint64_t byte_off, size_t n, void *dst,
                       pvlm_err *err);
/* Fail (PVLM_EFORMAT, naming file, tensor and element index) if an F32/F64/F16/BF16 buffer of
 * `numel` elements holds a NaN or an infinity. Other dtypes always pass. */
int pvlm_st_check_finite(const pvlm_st_file *f, const pvlm_st_tensor *t, const void *data, uint64_t numel,
                         pvlm_err *err);
/* Stream the data buffer and compare with the "pvlm_data_xxh3" metadata. Sets *present to whether the
 * key exists (a missing key passes). Mismatch -> PVLM_EFORMAT naming the file. */
int pvlm_st_verify_checksum(const pvlm_st_file *f, int *present, pvlm_err *err);

typedef struct pvlm_st_wentry {
    char name[PVLM_ST_MAX_NAME];
    int dtype, ndim;
    int64_t shape[PVLM_ST_MAX_DIMS];
    const void *data; /* borrowed */
    uint64_t nbytes;
} pvlm_st_wentry;

typedef struct pvlm_st_writer {
    pvlm_st_wentry *entries; /* owned */
    int n, cap;
    json_t *metadata; /* owned object str -> str */
} pvlm_st_writer;

int pvlm_st_writer_init(pvlm_st_writer *w, pvlm_err *err);
/* Add a tensor; data (numel * dtype size bytes) must stay valid until pvlm_st_writer_write.
 * Rejects duplicate or empty names, "__metadata__", bad dtypes and shapes. */
int pvlm_st_writer_add(pvlm_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data,
                       pvlm_err *err);
/* Set a metadata string (copied). */
int pvlm_st_writer_meta(pvlm_st_writer *w, const char *key, const char *value, pvlm_err *err);
/* Write the file durably (tmp + fsync + rename + fsync dir); adds "pvlm_data_xxh3". On error the
 * destination is untouched and the temporary file removed. */
int pvlm_st_writer_write(pvlm_st_writer *w, const char *path, pvlm_err *err);
void pvlm_st_writer_free(pvlm_st_writer *w);

#endif
