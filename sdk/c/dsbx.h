/*
 * dsbx.h — DataSandbox C guest SDK (ABI version 1, see sandbox/wasm/ABI.md).
 *
 * A single-header, dependency-free (wasi-libc only) library for writing
 * DataSandbox WebAssembly jobs in C:
 *
 *   - a streaming Arrow IPC stream reader for stdin (one record batch in
 *     memory at a time; buffers are reused between batches),
 *   - an Arrow IPC stream writer for stdout (column builders, batches, EOS),
 *   - the optional host functions dsbx.log and dsbx.progress,
 *   - macros that emit the dsbx.fields / dsbx.output custom sections.
 *
 * Usage (stb style): in exactly one C file
 *
 *     #define DSBX_IMPLEMENTATION
 *     #include "dsbx.h"
 *
 * and build with
 *
 *     clang-14 --target=wasm32-wasi -O2 -I sdk/c -o job.wasm job.c
 *
 * Supported Arrow types (reader and writer), see dsbx_type:
 *   Int (8/16/32/64 bit, signed and unsigned), FloatingPoint (single,
 *   double), Bool, Utf8, Binary, LargeUtf8, LargeBinary, Date (day,
 *   millisecond), Timestamp (s/ms/us/ns, optional timezone).
 * Not supported (the reader fails with a clear dsbx_error()): half floats,
 * nested types (List, Struct, Map, ...), Decimal, Time, Interval, Duration,
 * view types, dictionary-encoded fields and dictionary batches, compressed
 * record batches, big-endian streams, metadata versions before V4.
 *
 * Every offset and length in the input is bounds-checked against the message
 * it came from; malformed input makes the reader return an error, never read
 * out of bounds. Writer misuse (wrong column type, NULL in a non-nullable
 * column, value out of the column's range) and out-of-memory are fatal:
 * the guest prints "dsbx: <reason>" on stderr and exits with code 1.
 *
 * This header is C (C99 or later), not C++.
 */
#ifndef DSBX_H
#define DSBX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------
 * Custom sections. Use each macro at most once per module, at file scope,
 * with ONE C string literal holding the JSON. The section payload is exactly
 * the JSON bytes (no trailing NUL).
 *
 *   DSBX_FIELDS("[\"region\",\"income\"]");
 *   DSBX_OUTPUT("{\"kind\":\"aggregate\",\"group_by\":[\"region\"]}");
 *
 * clang 14 drops C data placed in a ".custom_section.*" section, so the
 * section is emitted with file-scope assembly: stringizing the literal
 * yields a correctly escaped assembler string; wasm-ld turns an object's
 * ".custom_section.NAME" section into the custom section NAME.
 * ------------------------------------------------------------------- */
#define DSBX__STRINGIZE(x) #x
#define DSBX_CUSTOM_SECTION(name, json)                                        \
    __asm__(".section .custom_section." name ",\"\",@\n"                      \
            ".ascii " DSBX__STRINGIZE(json) "\n"                               \
            ".text\n")
#define DSBX_FIELDS(json) DSBX_CUSTOM_SECTION("dsbx.fields", json)
#define DSBX_OUTPUT(json) DSBX_CUSTOM_SECTION("dsbx.output", json)

/* ---------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------- */
typedef enum dsbx_type {
    DSBX_INT8 = 1, DSBX_INT16, DSBX_INT32, DSBX_INT64,
    DSBX_UINT8, DSBX_UINT16, DSBX_UINT32, DSBX_UINT64,
    DSBX_FLOAT32, DSBX_FLOAT64,
    DSBX_BOOL,
    DSBX_UTF8,         /* int32 offsets */
    DSBX_BINARY,       /* int32 offsets */
    DSBX_LARGE_UTF8,   /* int64 offsets */
    DSBX_LARGE_BINARY, /* int64 offsets */
    DSBX_DATE32,       /* Date(DAY): int32 days since 1970-01-01 */
    DSBX_DATE64,       /* Date(MILLISECOND): int64 ms since the epoch */
    DSBX_TIMESTAMP_S, DSBX_TIMESTAMP_MS, DSBX_TIMESTAMP_US, DSBX_TIMESTAMP_NS /* int64 */
} dsbx_type;

/* A field of the input or output schema. */
typedef struct dsbx_field {
    const char *name;
    dsbx_type type;
    int nullable;
    const char *timezone; /* timestamps only; NULL: none */
} dsbx_field;

const char *dsbx_type_name(dsbx_type t);

/* The last reader/writer error (static storage, overwritten). */
const char *dsbx_error(void);

/* Prints "dsbx: <message>" on stderr and exits with code 1. */
void dsbx_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---------------------------------------------------------------------
 * Host functions
 * ------------------------------------------------------------------- */
/* One line (at most 4096 bytes; longer lines are cut by the host) to the job log. */
void dsbx_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Progress, e.g. rows read of rows expected (total 0: unknown). */
__attribute__((import_module("dsbx"), import_name("progress")))
void dsbx_progress(int64_t done, int64_t total);

/* ---------------------------------------------------------------------
 * Reader (stdin)
 * ------------------------------------------------------------------- */
typedef struct dsbx_reader dsbx_reader;
typedef struct dsbx_batch dsbx_batch;
typedef struct dsbx_column dsbx_column;

/* Reads the schema message from stdin. NULL on error (see dsbx_error()). */
dsbx_reader *dsbx_open_input(void);
int dsbx_num_fields(const dsbx_reader *r);
const dsbx_field *dsbx_input_field(const dsbx_reader *r, int i); /* NULL if out of range */
int dsbx_field_index(const dsbx_reader *r, const char *name);    /* -1 if absent */
/* Reads the next record batch: 1 = *out holds a batch (valid until the next
 * call), 0 = end of stream, <0 = error (see dsbx_error()). A stream that ends
 * without the end-of-stream marker is an error (truncated input). */
int dsbx_next_batch(dsbx_reader *r, dsbx_batch **out);
int64_t dsbx_rows_read(const dsbx_reader *r);
void dsbx_close_input(dsbx_reader *r);

int64_t dsbx_batch_length(const dsbx_batch *b);
int dsbx_batch_num_columns(const dsbx_batch *b);
const dsbx_column *dsbx_batch_column(const dsbx_batch *b, int i);                /* NULL if out of range */
const dsbx_column *dsbx_batch_column_by_name(const dsbx_batch *b, const char *name); /* NULL if absent */

dsbx_type dsbx_column_type(const dsbx_column *c);
int64_t dsbx_column_length(const dsbx_column *c);
int64_t dsbx_column_null_count(const dsbx_column *c);
/* 1 if row i is valid (non-null); 0 if null or out of range. */
int dsbx_is_valid(const dsbx_column *c, int64_t i);
/* Value of row i; 0 (NULL for bytes) when null, out of range or of another
 * type class. dsbx_get_int64: integer, bool, date and timestamp columns
 * (uint64 values above INT64_MAX wrap; use dsbx_get_uint64). dsbx_get_double:
 * float and integer columns. dsbx_get_utf8: utf8/binary columns, the bytes
 * (not NUL-terminated) and their length. */
int64_t dsbx_get_int64(const dsbx_column *c, int64_t i);
uint64_t dsbx_get_uint64(const dsbx_column *c, int64_t i);
int32_t dsbx_get_int32(const dsbx_column *c, int64_t i);
double dsbx_get_double(const dsbx_column *c, int64_t i);
const char *dsbx_get_utf8(const dsbx_column *c, int64_t i, size_t *len);
/* Raw buffers (aligned to the element width). validity: NULL = no nulls,
 * else bit i (LSB first) set = valid. values: fixed-width values, or the
 * bit-packed values of a bool column. offsets: length+1 int32 (utf8/binary)
 * or int64 (large) offsets into data. */
const uint8_t *dsbx_column_validity(const dsbx_column *c);
const void *dsbx_column_values(const dsbx_column *c);
const void *dsbx_column_offsets(const dsbx_column *c);
const uint8_t *dsbx_column_data(const dsbx_column *c, size_t *len);

/* ---------------------------------------------------------------------
 * Writer (stdout)
 * ------------------------------------------------------------------- */
typedef struct dsbx_writer dsbx_writer;

/* Writes the schema message. Names and timezones are copied. NULL on error. */
dsbx_writer *dsbx_open_output(const dsbx_field *fields, int n);
/* Appends one value to column col; valid = 0 appends a NULL (the value is
 * ignored). dsbx_append_int64: integer, date and timestamp columns (range
 * checked); dsbx_append_double: float columns; dsbx_append_bool: bool;
 * dsbx_append_utf8: utf8/binary columns (utf8 is not validated). */
void dsbx_append_int64(dsbx_writer *w, int col, int64_t v, int valid);
void dsbx_append_uint64(dsbx_writer *w, int col, uint64_t v, int valid);
void dsbx_append_double(dsbx_writer *w, int col, double v, int valid);
void dsbx_append_bool(dsbx_writer *w, int col, int v, int valid);
void dsbx_append_utf8(dsbx_writer *w, int col, const char *p, size_t len, int valid);
void dsbx_append_null(dsbx_writer *w, int col);
/* Rows appended since the last flush (of column 0). */
int64_t dsbx_pending_rows(const dsbx_writer *w);
/* Writes the appended rows as one record batch (nothing if there are none).
 * Every column must have the same number of values. 0 ok, <0 error. */
int dsbx_flush_batch(dsbx_writer *w);
/* Flushes pending rows, writes the end-of-stream marker, frees w. 0 ok, <0 error. */
int dsbx_close_output(dsbx_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* DSBX_H */

/* =====================================================================
 * Implementation
 * =================================================================== */
#ifdef DSBX_IMPLEMENTATION
#ifndef DSBX_IMPLEMENTATION_DONE
#define DSBX_IMPLEMENTATION_DONE

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DSBX_MAX_METADATA
#define DSBX_MAX_METADATA (64u << 20) /* bytes of one message's flatbuffer */
#endif
#ifndef DSBX_MAX_BODY
#define DSBX_MAX_BODY ((int64_t)INT32_MAX) /* bytes of one message body */
#endif

/* wasi-libc's stdio (printf, snprintf, fprintf: anything that links
 * vfprintf) makes the exit path close stderr through __stdio_seek -> __lseek,
 * which imports wasi_snapshot_preview1.fd_seek; ABI v1 refuses that import.
 * A guest's only fds (0-2) are pipes, where seeking fails with ESPIPE anyway,
 * so define lseek here and libc's lseek.o (and fd_seek) is never linked.
 * Define DSBX_NO_LSEEK_STUB to opt out. */
#ifndef DSBX_NO_LSEEK_STUB
#include <errno.h>
off_t __lseek(int fd, off_t offset, int whence) {
    (void)fd; (void)offset; (void)whence;
    errno = ESPIPE;
    return -1;
}
off_t (lseek)(int fd, off_t offset, int whence) { return __lseek(fd, offset, whence); }
#endif

static char dsbx__err[512];

const char *dsbx_error(void) { return dsbx__err; }

static int dsbx__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int dsbx__fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dsbx__err, sizeof dsbx__err, fmt, ap);
    va_end(ap);
    return -1;
}

void dsbx_die(const char *fmt, ...) {
    /* No stdio streams: they would import fd_seek, which the ABI refuses. */
    char buf[1024];
    memcpy(buf, "dsbx: ", 6);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + 6, sizeof buf - 7, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n > sizeof buf - 8) n = (int)(sizeof buf - 8);
    buf[6 + n] = '\n';
    size_t len = 7 + (size_t)n, done = 0;
    while (done < len) {
        ssize_t k = write(2, buf + done, len - done);
        if (k <= 0) break;
        done += (size_t)k;
    }
    exit(1);
}

__attribute__((import_module("dsbx"), import_name("log")))
void dsbx__host_log(const char *p, size_t n);

void dsbx_log(const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    dsbx__host_log(buf, (size_t)n);
}

const char *dsbx_type_name(dsbx_type t) {
    static const char *const names[] = {
        "invalid", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float32", "float64", "bool", "utf8", "binary", "large_utf8", "large_binary",
        "date32", "date64", "timestamp[s]", "timestamp[ms]", "timestamp[us]", "timestamp[ns]"};
    if ((int)t < 0 || (size_t)t >= sizeof names / sizeof names[0]) return "invalid";
    return names[t];
}

/* Physical layout of a type. */
enum { DSBX__FIXED, DSBX__BITMAP, DSBX__VAR32, DSBX__VAR64 };
static int dsbx__layout(dsbx_type t, int *width) {
    switch (t) {
    case DSBX_INT8: case DSBX_UINT8: *width = 1; return DSBX__FIXED;
    case DSBX_INT16: case DSBX_UINT16: *width = 2; return DSBX__FIXED;
    case DSBX_INT32: case DSBX_UINT32: case DSBX_FLOAT32: case DSBX_DATE32: *width = 4; return DSBX__FIXED;
    case DSBX_INT64: case DSBX_UINT64: case DSBX_FLOAT64: case DSBX_DATE64:
    case DSBX_TIMESTAMP_S: case DSBX_TIMESTAMP_MS: case DSBX_TIMESTAMP_US: case DSBX_TIMESTAMP_NS:
        *width = 8; return DSBX__FIXED;
    case DSBX_BOOL: *width = 0; return DSBX__BITMAP;
    case DSBX_UTF8: case DSBX_BINARY: *width = 4; return DSBX__VAR32;
    case DSBX_LARGE_UTF8: case DSBX_LARGE_BINARY: *width = 8; return DSBX__VAR64;
    }
    *width = 0;
    return -1;
}

static uint16_t dsbx__ld16(const uint8_t *p) { uint16_t x; memcpy(&x, p, 2); return x; }
static uint32_t dsbx__ld32(const uint8_t *p) { uint32_t x; memcpy(&x, p, 4); return x; }
static uint64_t dsbx__ld64(const uint8_t *p) { uint64_t x; memcpy(&x, p, 8); return x; }

/* ---------------------------------------------------------------------
 * I/O
 * ------------------------------------------------------------------- */
/* Reads exactly n bytes: n on success, 0 on EOF before any byte, -1 on a
 * short read (EOF mid-way) or an error. */
static int64_t dsbx__read_full(void *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(0, (uint8_t *)dst + got, n - got);
        if (k < 0) return -1;
        if (k == 0) return got == 0 ? 0 : -1;
        got += (size_t)k;
    }
    return (int64_t)n;
}

static int dsbx__write_full(const void *src, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(1, (const uint8_t *)src + done, n - done);
        if (k <= 0) return -1;
        done += (size_t)k;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Flatbuffer reading (bounds-checked; errors set f->bad)
 * ------------------------------------------------------------------- */
typedef struct { const uint8_t *b; uint32_t n; int bad; } dsbx__fb;
typedef struct { uint32_t t, v, vlen, tlen; } dsbx__tab;

static int dsbx__fb_table_at(dsbx__fb *f, uint64_t pos, dsbx__tab *t) {
    if (pos + 4 > f->n) { f->bad = 1; return 0; }
    int64_t v = (int64_t)pos - (int32_t)dsbx__ld32(f->b + pos);
    if (v < 0 || v + 4 > (int64_t)f->n) { f->bad = 1; return 0; }
    uint32_t vlen = dsbx__ld16(f->b + v), tlen = dsbx__ld16(f->b + v + 2);
    if (vlen < 4 || (vlen & 1) || v + vlen > (int64_t)f->n || tlen < 4 || pos + tlen > f->n) {
        f->bad = 1;
        return 0;
    }
    t->t = (uint32_t)pos; t->v = (uint32_t)v; t->vlen = vlen; t->tlen = tlen;
    return 1;
}

/* Absolute position of field id of size bytes; 0 if absent or invalid. */
static uint32_t dsbx__fb_field(dsbx__fb *f, const dsbx__tab *t, int id, uint32_t size) {
    uint32_t slot = 4 + 2 * (uint32_t)id;
    if (f->bad || slot + 2 > t->vlen) return 0;
    uint32_t off = dsbx__ld16(f->b + t->v + slot);
    if (off == 0) return 0;
    if (off < 4 || off + size > t->tlen) { f->bad = 1; return 0; }
    return t->t + off;
}

static int64_t dsbx__fb_int(dsbx__fb *f, const dsbx__tab *t, int id, int size, int64_t def) {
    uint32_t p = dsbx__fb_field(f, t, id, (uint32_t)size);
    if (!p) return def;
    switch (size) {
    case 1: return (int8_t)f->b[p];
    case 2: return (int16_t)dsbx__ld16(f->b + p);
    case 4: return (int32_t)dsbx__ld32(f->b + p);
    default: return (int64_t)dsbx__ld64(f->b + p);
    }
}

/* Target of the offset field id; 0 if absent or invalid. */
static uint32_t dsbx__fb_ref(dsbx__fb *f, const dsbx__tab *t, int id) {
    uint32_t p = dsbx__fb_field(f, t, id, 4);
    if (!p) return 0;
    uint64_t tgt = (uint64_t)p + dsbx__ld32(f->b + p);
    if (tgt == p || tgt + 4 > f->n) { f->bad = 1; return 0; }
    return (uint32_t)tgt;
}

static int dsbx__fb_subtable(dsbx__fb *f, const dsbx__tab *t, int id, dsbx__tab *out) {
    uint32_t p = dsbx__fb_ref(f, t, id);
    if (!p) return 0;
    return dsbx__fb_table_at(f, p, out);
}

/* Vector field id with elements of elem bytes: position of the first
 * element, *count elements; 0 and *count = 0 if absent or invalid. */
static uint32_t dsbx__fb_vec(dsbx__fb *f, const dsbx__tab *t, int id, uint32_t elem, uint32_t *count) {
    *count = 0;
    uint32_t p = dsbx__fb_ref(f, t, id);
    if (!p) return 0;
    uint32_t n = dsbx__ld32(f->b + p);
    if ((uint64_t)p + 4 + (uint64_t)n * elem > f->n) { f->bad = 1; return 0; }
    *count = n;
    return p + 4;
}

static const char *dsbx__fb_str(dsbx__fb *f, const dsbx__tab *t, int id, uint32_t *len) {
    uint32_t n;
    uint32_t p = dsbx__fb_vec(f, t, id, 1, &n);
    *len = n;
    return p ? (const char *)f->b + p : NULL;
}

static int dsbx__fb_vec_table(dsbx__fb *f, uint32_t elems, uint32_t i, dsbx__tab *out) {
    uint64_t at = (uint64_t)elems + 4ull * i;
    if (at + 4 > f->n) { f->bad = 1; return 0; }
    uint32_t rel = dsbx__ld32(f->b + at);
    if (rel == 0) { f->bad = 1; return 0; }
    return dsbx__fb_table_at(f, at + rel, out);
}

/* ---------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------- */
struct dsbx_column {
    dsbx_type type;
    int layout, width;
    int64_t length, null_count;
    const uint8_t *validity; /* NULL: all valid */
    const uint8_t *values;   /* fixed-width values / bool bits / offsets */
    const uint8_t *data;     /* var-width bytes */
    size_t data_len;
    const char *name;
};

struct dsbx_batch {
    int64_t length;
    int ncols;
    dsbx_column *cols;
};

struct dsbx_reader {
    dsbx_field *fields;
    int nfields, nbuffers, state; /* state: 0 reading, 1 ended, -1 failed */
    uint8_t *meta; size_t meta_cap;
    uint8_t *body; size_t body_cap;
    int64_t body_len, rows, batches;
    dsbx_batch batch;
};

enum { DSBX__MSG_SCHEMA = 1, DSBX__MSG_DICTIONARY = 2, DSBX__MSG_RECORDBATCH = 3 };

static const char *dsbx__arrow_type_name(int64_t id) {
    static const char *const n[] = {
        "NONE", "Null", "Int", "FloatingPoint", "Binary", "Utf8", "Bool", "Decimal", "Date",
        "Time", "Timestamp", "Interval", "List", "Struct", "Union", "FixedSizeBinary",
        "FixedSizeList", "Map", "Duration", "LargeBinary", "LargeUtf8", "LargeList",
        "RunEndEncoded", "BinaryView", "Utf8View", "ListView", "LargeListView"};
    if (id < 0 || id >= (int64_t)(sizeof n / sizeof n[0])) return "unknown";
    return n[id];
}

/* Reads one message: its flatbuffer into r->meta and its body into r->body.
 * 1 = message (f, root table and header type set), 0 = EOS, <0 error. */
static int dsbx__read_message(dsbx_reader *r, dsbx__fb *f, dsbx__tab *hdr, int *htype) {
    uint8_t pre[4];
    int64_t k = dsbx__read_full(pre, 4);
    if (k == 0) return dsbx__fail("input stream ended without the end-of-stream marker (truncated input?)");
    if (k < 0) return dsbx__fail("input stream truncated in a message prefix");
    uint32_t len = dsbx__ld32(pre);
    if (len == 0xFFFFFFFFu) {
        if (dsbx__read_full(pre, 4) != 4) return dsbx__fail("input stream truncated in a message prefix");
        len = dsbx__ld32(pre);
    }
    if (len == 0) return 0;
    if (len > DSBX_MAX_METADATA) return dsbx__fail("message metadata of %u bytes is invalid or too large", len);
    if (len > r->meta_cap) {
        uint8_t *m = realloc(r->meta, len);
        if (!m) return dsbx__fail("out of memory for %u bytes of message metadata", len);
        r->meta = m; r->meta_cap = len;
    }
    if (dsbx__read_full(r->meta, len) != (int64_t)len) return dsbx__fail("input stream truncated in message metadata");
    f->b = r->meta; f->n = len; f->bad = 0;
    dsbx__tab msg;
    if (len < 4) return dsbx__fail("malformed message metadata (%u bytes)", len);
    dsbx__fb_table_at(f, dsbx__ld32(r->meta), &msg);
    if (f->bad) return dsbx__fail("malformed message flatbuffer");
    int64_t version = dsbx__fb_int(f, &msg, 0, 2, 0);
    *htype = (int)dsbx__fb_int(f, &msg, 1, 1, 0);
    int has_hdr = dsbx__fb_subtable(f, &msg, 2, hdr);
    int64_t body_len = dsbx__fb_int(f, &msg, 3, 8, 0);
    if (f->bad) return dsbx__fail("malformed message flatbuffer");
    if (version < 3) return dsbx__fail("Arrow metadata version V%d is not supported (need V4 or V5)", (int)version + 1);
    if (!has_hdr) return dsbx__fail("message without a header");
    if (body_len < 0 || body_len > DSBX_MAX_BODY) return dsbx__fail("message body length %lld is invalid or too large", (long long)body_len);
    if ((uint64_t)body_len > r->body_cap) {
        uint8_t *b = realloc(r->body, (size_t)body_len);
        if (!b) return dsbx__fail("out of memory for a message body of %lld bytes", (long long)body_len);
        r->body = b; r->body_cap = (size_t)body_len;
    }
    if (body_len > 0 && dsbx__read_full(r->body, (size_t)body_len) != body_len)
        return dsbx__fail("input stream truncated in a message body");
    r->body_len = body_len;
    return 1;
}

static int dsbx__parse_schema(dsbx_reader *r, dsbx__fb *f, const dsbx__tab *s) {
    if (dsbx__fb_int(f, s, 0, 2, 0) != 0) return dsbx__fail("big-endian input is not supported");
    uint32_t nf;
    uint32_t fv = dsbx__fb_vec(f, s, 1, 4, &nf);
    if (f->bad) return dsbx__fail("malformed schema flatbuffer");
    (void)fv;
    if (nf > 1u << 16) return dsbx__fail("schema with %u fields is too large", nf);
    r->fields = calloc(nf ? nf : 1, sizeof *r->fields);
    r->batch.cols = calloc(nf ? nf : 1, sizeof *r->batch.cols);
    if (!r->fields || !r->batch.cols) return dsbx__fail("out of memory");
    r->nfields = (int)nf;
    r->batch.ncols = (int)nf;
    r->nbuffers = 0;
    for (uint32_t i = 0; i < nf; i++) {
        dsbx__tab fld, typ;
        if (!dsbx__fb_vec_table(f, fv, i, &fld)) return dsbx__fail("malformed schema field %u", i);
        uint32_t nlen;
        const char *name = dsbx__fb_str(f, &fld, 0, &nlen);
        char *copy = malloc((size_t)nlen + 1);
        if (!copy) return dsbx__fail("out of memory");
        if (nlen) memcpy(copy, name, nlen);
        copy[nlen] = 0;
        r->fields[i].name = copy;
        r->fields[i].nullable = dsbx__fb_int(f, &fld, 1, 1, 0) != 0;
        int64_t tt = dsbx__fb_int(f, &fld, 2, 1, 0);
        int has_type = dsbx__fb_subtable(f, &fld, 3, &typ);
        int has_dict = dsbx__fb_field(f, &fld, 4, 4) != 0;
        uint32_t nchildren;
        dsbx__fb_vec(f, &fld, 5, 4, &nchildren);
        if (f->bad) return dsbx__fail("malformed schema field %u", i);
        if (has_dict) return dsbx__fail("field \"%s\": dictionary-encoded fields are not supported", copy);
        if (nchildren) return dsbx__fail("field \"%s\": nested types are not supported", copy);
        if (!has_type) return dsbx__fail("field \"%s\" has no type", copy);
        dsbx_type t = 0;
        switch (tt) {
        case 2: { /* Int */
            int64_t bw = dsbx__fb_int(f, &typ, 0, 4, 0);
            int sg = dsbx__fb_int(f, &typ, 1, 1, 0) != 0;
            if (bw == 8) t = sg ? DSBX_INT8 : DSBX_UINT8;
            else if (bw == 16) t = sg ? DSBX_INT16 : DSBX_UINT16;
            else if (bw == 32) t = sg ? DSBX_INT32 : DSBX_UINT32;
            else if (bw == 64) t = sg ? DSBX_INT64 : DSBX_UINT64;
            else return dsbx__fail("field \"%s\": Int of bit width %lld is not supported", copy, (long long)bw);
            break;
        }
        case 3: { /* FloatingPoint */
            int64_t p = dsbx__fb_int(f, &typ, 0, 2, 0);
            if (p == 1) t = DSBX_FLOAT32;
            else if (p == 2) t = DSBX_FLOAT64;
            else return dsbx__fail("field \"%s\": half-precision floats are not supported", copy);
            break;
        }
        case 4: t = DSBX_BINARY; break;
        case 5: t = DSBX_UTF8; break;
        case 6: t = DSBX_BOOL; break;
        case 19: t = DSBX_LARGE_BINARY; break;
        case 20: t = DSBX_LARGE_UTF8; break;
        case 8: { /* Date; unit defaults to MILLISECOND */
            int64_t u = dsbx__fb_int(f, &typ, 0, 2, 1);
            if (u == 0) t = DSBX_DATE32;
            else if (u == 1) t = DSBX_DATE64;
            else return dsbx__fail("field \"%s\": unknown date unit %lld", copy, (long long)u);
            break;
        }
        case 10: { /* Timestamp */
            int64_t u = dsbx__fb_int(f, &typ, 0, 2, 0);
            if (u < 0 || u > 3) return dsbx__fail("field \"%s\": unknown time unit %lld", copy, (long long)u);
            t = (dsbx_type)(DSBX_TIMESTAMP_S + u);
            uint32_t zl;
            const char *z = dsbx__fb_str(f, &typ, 1, &zl);
            if (z) {
                char *zc = malloc((size_t)zl + 1);
                if (!zc) return dsbx__fail("out of memory");
                memcpy(zc, z, zl);
                zc[zl] = 0;
                r->fields[i].timezone = zc;
            }
            break;
        }
        default:
            return dsbx__fail("field \"%s\": Arrow type %s is not supported by dsbx.h", copy, dsbx__arrow_type_name(tt));
        }
        if (f->bad) return dsbx__fail("malformed type of field \"%s\"", copy);
        r->fields[i].type = t;
        int w, lay = dsbx__layout(t, &w);
        r->batch.cols[i].type = t;
        r->batch.cols[i].layout = lay;
        r->batch.cols[i].width = w;
        r->batch.cols[i].name = copy;
        r->nbuffers += (lay == DSBX__VAR32 || lay == DSBX__VAR64) ? 3 : 2;
    }
    return 0;
}

void dsbx_close_input(dsbx_reader *r) {
    if (!r) return;
    for (int i = 0; i < r->nfields; i++) {
        free((void *)r->fields[i].name);
        free((void *)r->fields[i].timezone);
    }
    free(r->fields);
    free(r->batch.cols);
    free(r->meta);
    free(r->body);
    free(r);
}

dsbx_reader *dsbx_open_input(void) {
    dsbx_reader *r = calloc(1, sizeof *r);
    if (!r) { dsbx__fail("out of memory"); return NULL; }
    dsbx__fb f;
    dsbx__tab hdr;
    int ht;
    int rc = dsbx__read_message(r, &f, &hdr, &ht);
    if (rc == 0) dsbx__fail("input stream has no schema message");
    if (rc > 0 && ht != DSBX__MSG_SCHEMA) { dsbx__fail("input stream does not start with a schema message"); rc = -1; }
    if (rc > 0 && r->body_len != 0) { dsbx__fail("schema message with a body"); rc = -1; }
    if (rc > 0 && dsbx__parse_schema(r, &f, &hdr) < 0) rc = -1;
    if (rc <= 0) { dsbx_close_input(r); return NULL; }
    return r;
}

int dsbx_num_fields(const dsbx_reader *r) { return r->nfields; }
const dsbx_field *dsbx_input_field(const dsbx_reader *r, int i) {
    return i >= 0 && i < r->nfields ? &r->fields[i] : NULL;
}
int dsbx_field_index(const dsbx_reader *r, const char *name) {
    for (int i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i].name, name) == 0) return i;
    return -1;
}
int64_t dsbx_rows_read(const dsbx_reader *r) { return r->rows; }

/* Buffer i of a record batch: pointer into the body, bounds-checked. */
static int dsbx__buffer(dsbx_reader *r, dsbx__fb *f, uint32_t bufs, uint32_t i, int align, const uint8_t **p, int64_t *len) {
    const uint8_t *e = f->b + bufs + 16u * i;
    int64_t off = (int64_t)dsbx__ld64(e), n = (int64_t)dsbx__ld64(e + 8);
    if (off < 0 || n < 0 || off > r->body_len || n > r->body_len - off)
        return dsbx__fail("record batch buffer %u (offset %lld, length %lld) lies outside the %lld-byte body",
                          i, (long long)off, (long long)n, (long long)r->body_len);
    if (n > 0 && align > 1 && off % align != 0)
        return dsbx__fail("record batch buffer %u at offset %lld is not %d-byte aligned", i, (long long)off, align);
    *p = r->body + off;
    *len = n;
    return 0;
}

static int dsbx__parse_batch(dsbx_reader *r, dsbx__fb *f, const dsbx__tab *rb) {
    int64_t length = dsbx__fb_int(f, rb, 0, 8, 0);
    uint32_t nn, nb, nv;
    uint32_t nodes = dsbx__fb_vec(f, rb, 1, 16, &nn);
    uint32_t bufs = dsbx__fb_vec(f, rb, 2, 16, &nb);
    int compressed = dsbx__fb_field(f, rb, 3, 4) != 0;
    dsbx__fb_vec(f, rb, 4, 8, &nv);
    if (f->bad) return dsbx__fail("malformed record batch flatbuffer");
    if (compressed) return dsbx__fail("compressed record batches are not supported");
    if (nv) return dsbx__fail("variadic buffers (view types) are not supported");
    if (length < 0 || length > INT32_MAX) return dsbx__fail("record batch length %lld is invalid", (long long)length);
    if (nn != (uint32_t)r->nfields) return dsbx__fail("record batch has %u field nodes, the schema %d fields", nn, r->nfields);
    if (nb != (uint32_t)r->nbuffers) return dsbx__fail("record batch has %u buffers, the schema needs %d", nb, r->nbuffers);
    uint32_t bi = 0;
    for (int i = 0; i < r->nfields; i++) {
        dsbx_column *c = &r->batch.cols[i];
        const uint8_t *node = f->b + nodes + 16u * (uint32_t)i;
        int64_t n = (int64_t)dsbx__ld64(node), nulls = (int64_t)dsbx__ld64(node + 8);
        if (n != length) return dsbx__fail("column \"%s\" has %lld rows in a batch of %lld", c->name, (long long)n, (long long)length);
        if (nulls < 0 || nulls > n) return dsbx__fail("column \"%s\": invalid null count %lld", c->name, (long long)nulls);
        c->length = n;
        c->null_count = nulls;
        c->data = NULL;
        c->data_len = 0;
        const uint8_t *p;
        int64_t plen;
        int64_t bitbytes = (n + 7) / 8;
        if (dsbx__buffer(r, f, bufs, bi++, 1, &p, &plen) < 0) return -1;
        if (nulls > 0 && plen < bitbytes) return dsbx__fail("column \"%s\": validity buffer too short", c->name);
        c->validity = nulls > 0 ? p : NULL;
        switch (c->layout) {
        case DSBX__FIXED:
            if (dsbx__buffer(r, f, bufs, bi++, c->width, &p, &plen) < 0) return -1;
            if (plen < n * c->width) return dsbx__fail("column \"%s\": value buffer too short", c->name);
            c->values = p;
            break;
        case DSBX__BITMAP:
            if (dsbx__buffer(r, f, bufs, bi++, 1, &p, &plen) < 0) return -1;
            if (plen < bitbytes) return dsbx__fail("column \"%s\": value buffer too short", c->name);
            c->values = p;
            break;
        default: {
            int w = c->width;
            if (dsbx__buffer(r, f, bufs, bi++, w, &p, &plen) < 0) return -1;
            if (n > 0 && plen < (n + 1) * w) return dsbx__fail("column \"%s\": offset buffer too short", c->name);
            c->values = p;
            const uint8_t *d;
            int64_t dlen;
            if (dsbx__buffer(r, f, bufs, bi++, 1, &d, &dlen) < 0) return -1;
            c->data = d;
            c->data_len = (size_t)dlen;
            int64_t prev = 0;
            for (int64_t j = 0; n > 0 && j <= n; j++) {
                int64_t o = w == 4 ? (int64_t)(int32_t)dsbx__ld32(p + 4 * j) : (int64_t)dsbx__ld64(p + 8 * j);
                if (o < prev || o > dlen)
                    return dsbx__fail("column \"%s\": offset %lld of row %lld out of range", c->name, (long long)o, (long long)j);
                prev = o;
            }
        }
        }
    }
    r->batch.length = length;
    return 0;
}

int dsbx_next_batch(dsbx_reader *r, dsbx_batch **out) {
    *out = NULL;
    if (r->state == 1) return 0;
    if (r->state < 0) return -1;
    for (;;) {
        dsbx__fb f;
        dsbx__tab hdr;
        int ht;
        int rc = dsbx__read_message(r, &f, &hdr, &ht);
        if (rc == 0) { r->state = 1; return 0; }
        if (rc < 0) { r->state = -1; return -1; }
        if (ht == DSBX__MSG_RECORDBATCH) {
            if (dsbx__parse_batch(r, &f, &hdr) < 0) { r->state = -1; return -1; }
            r->rows += r->batch.length;
            r->batches++;
            *out = &r->batch;
            return 1;
        }
        r->state = -1;
        if (ht == DSBX__MSG_DICTIONARY) return dsbx__fail("dictionary batches are not supported");
        if (ht == DSBX__MSG_SCHEMA) return dsbx__fail("unexpected second schema message");
        return dsbx__fail("unsupported message type %d", ht);
    }
}

int64_t dsbx_batch_length(const dsbx_batch *b) { return b->length; }
int dsbx_batch_num_columns(const dsbx_batch *b) { return b->ncols; }
const dsbx_column *dsbx_batch_column(const dsbx_batch *b, int i) {
    return i >= 0 && i < b->ncols ? &b->cols[i] : NULL;
}
const dsbx_column *dsbx_batch_column_by_name(const dsbx_batch *b, const char *name) {
    for (int i = 0; i < b->ncols; i++)
        if (strcmp(b->cols[i].name, name) == 0) return &b->cols[i];
    return NULL;
}

dsbx_type dsbx_column_type(const dsbx_column *c) { return c->type; }
int64_t dsbx_column_length(const dsbx_column *c) { return c->length; }
int64_t dsbx_column_null_count(const dsbx_column *c) { return c->null_count; }
const uint8_t *dsbx_column_validity(const dsbx_column *c) { return c->validity; }
const void *dsbx_column_values(const dsbx_column *c) {
    return c->layout == DSBX__FIXED || c->layout == DSBX__BITMAP ? c->values : NULL;
}
const void *dsbx_column_offsets(const dsbx_column *c) {
    return c->layout == DSBX__VAR32 || c->layout == DSBX__VAR64 ? c->values : NULL;
}
const uint8_t *dsbx_column_data(const dsbx_column *c, size_t *len) {
    if (len) *len = c->data_len;
    return c->data;
}

int dsbx_is_valid(const dsbx_column *c, int64_t i) {
    if (i < 0 || i >= c->length) return 0;
    return !c->validity || ((c->validity[i >> 3] >> (i & 7)) & 1);
}

static uint64_t dsbx__raw(const dsbx_column *c, int64_t i, int *ok) {
    *ok = 0;
    if (!dsbx_is_valid(c, i)) return 0;
    const uint8_t *p = c->values + i * c->width;
    *ok = 1;
    switch (c->type) {
    case DSBX_INT8: return (uint64_t)(int64_t)(int8_t)p[0];
    case DSBX_UINT8: return p[0];
    case DSBX_INT16: return (uint64_t)(int64_t)(int16_t)dsbx__ld16(p);
    case DSBX_UINT16: return dsbx__ld16(p);
    case DSBX_INT32: case DSBX_DATE32: return (uint64_t)(int64_t)(int32_t)dsbx__ld32(p);
    case DSBX_UINT32: return dsbx__ld32(p);
    case DSBX_INT64: case DSBX_UINT64: case DSBX_DATE64:
    case DSBX_TIMESTAMP_S: case DSBX_TIMESTAMP_MS: case DSBX_TIMESTAMP_US: case DSBX_TIMESTAMP_NS:
        return dsbx__ld64(p);
    case DSBX_BOOL: return (c->values[i >> 3] >> (i & 7)) & 1;
    default: *ok = 0; return 0;
    }
}

int64_t dsbx_get_int64(const dsbx_column *c, int64_t i) { int ok; return (int64_t)dsbx__raw(c, i, &ok); }
uint64_t dsbx_get_uint64(const dsbx_column *c, int64_t i) { int ok; return dsbx__raw(c, i, &ok); }
int32_t dsbx_get_int32(const dsbx_column *c, int64_t i) { int ok; return (int32_t)dsbx__raw(c, i, &ok); }

double dsbx_get_double(const dsbx_column *c, int64_t i) {
    if (!dsbx_is_valid(c, i)) return 0;
    if (c->type == DSBX_FLOAT32) { float v; memcpy(&v, c->values + 4 * i, 4); return v; }
    if (c->type == DSBX_FLOAT64) { double v; memcpy(&v, c->values + 8 * i, 8); return v; }
    int ok;
    uint64_t v = dsbx__raw(c, i, &ok);
    if (c->type == DSBX_UINT64) return (double)v;
    return (double)(int64_t)v;
}

const char *dsbx_get_utf8(const dsbx_column *c, int64_t i, size_t *len) {
    if (len) *len = 0;
    if ((c->layout != DSBX__VAR32 && c->layout != DSBX__VAR64) || !dsbx_is_valid(c, i)) return NULL;
    int64_t a, b;
    if (c->layout == DSBX__VAR32) {
        a = (int32_t)dsbx__ld32(c->values + 4 * i);
        b = (int32_t)dsbx__ld32(c->values + 4 * (i + 1));
    } else {
        a = (int64_t)dsbx__ld64(c->values + 8 * i);
        b = (int64_t)dsbx__ld64(c->values + 8 * (i + 1));
    }
    if (len) *len = (size_t)(b - a); /* validated when the batch was read */
    return (const char *)c->data + a;
}

/* ---------------------------------------------------------------------
 * Growable buffer and flatbuffer building (front to back: every offset
 * points forward, vtables precede their tables)
 * ------------------------------------------------------------------- */
typedef struct { uint8_t *p; size_t len, cap; } dsbx__buf;

static void dsbx__reserve(dsbx__buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t need = b->len + extra, cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) dsbx_die("out of memory");
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) dsbx_die("out of memory (growing a buffer to %zu bytes)", cap);
    b->p = p;
    b->cap = cap;
}
static size_t dsbx__zero(dsbx__buf *b, size_t n) {
    dsbx__reserve(b, n);
    size_t pos = b->len;
    memset(b->p + pos, 0, n);
    b->len += n;
    return pos;
}
static void dsbx__align(dsbx__buf *b, size_t a) { dsbx__zero(b, (a - b->len % a) % a); }
static void dsbx__put(dsbx__buf *b, size_t at, const void *v, size_t n) { memcpy(b->p + at, v, n); }
static void dsbx__put8(dsbx__buf *b, size_t at, uint8_t v) { b->p[at] = v; }
static void dsbx__put16(dsbx__buf *b, size_t at, uint16_t v) { dsbx__put(b, at, &v, 2); }
static void dsbx__put32(dsbx__buf *b, size_t at, uint32_t v) { dsbx__put(b, at, &v, 4); }
static void dsbx__put64(dsbx__buf *b, size_t at, uint64_t v) { dsbx__put(b, at, &v, 8); }
static void dsbx__append(dsbx__buf *b, const void *v, size_t n) {
    dsbx__reserve(b, n);
    if (n) memcpy(b->p + b->len, v, n);
    b->len += n;
}

/* A table with nf fields of the given sizes (0: absent). Returns the table
 * position; fpos[i] is the position of field i. */
static size_t dsbx__fbw_table(dsbx__buf *b, int nf, const uint8_t *sizes, size_t *fpos) {
    dsbx__align(b, 2);
    size_t v = dsbx__zero(b, 4 + 2 * (size_t)nf);
    dsbx__align(b, 8);
    size_t t = dsbx__zero(b, 4);
    dsbx__put32(b, t, (uint32_t)(t - v));
    for (int i = 0; i < nf; i++) {
        fpos[i] = 0;
        if (!sizes[i]) continue;
        dsbx__align(b, sizes[i]);
        fpos[i] = dsbx__zero(b, sizes[i]);
        dsbx__put16(b, v + 4 + 2 * (size_t)i, (uint16_t)(fpos[i] - t));
    }
    dsbx__put16(b, v, (uint16_t)(4 + 2 * nf));
    dsbx__put16(b, v + 2, (uint16_t)(b->len - t));
    return t;
}
static void dsbx__fbw_ref(dsbx__buf *b, size_t at, size_t target) { dsbx__put32(b, at, (uint32_t)(target - at)); }
static size_t dsbx__fbw_string(dsbx__buf *b, const char *s) {
    size_t n = strlen(s);
    dsbx__align(b, 4);
    size_t p = dsbx__zero(b, 4 + n + 1);
    dsbx__put32(b, p, (uint32_t)n);
    dsbx__put(b, p + 4, s, n);
    return p;
}
/* Vector of n elements of elem bytes, elements aligned to min(elem, 8). */
static size_t dsbx__fbw_vector(dsbx__buf *b, uint32_t n, size_t elem) {
    dsbx__align(b, 4);
    if (elem >= 8 && (b->len + 4) % 8) dsbx__zero(b, 4);
    size_t p = dsbx__zero(b, 4 + n * elem);
    dsbx__put32(b, p, n);
    return p;
}

/* ---------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------- */
typedef struct {
    dsbx_type type;
    int nullable, layout, width;
    int64_t n, nulls;
    dsbx__buf validity, values, data;
} dsbx__col;

struct dsbx_writer {
    int ncols, failed;
    dsbx_field *fields;
    dsbx__col *cols;
    dsbx__buf fb;
};

static void dsbx__col_reset(dsbx__col *c) {
    c->n = c->nulls = 0;
    c->validity.len = c->values.len = c->data.len = 0;
    if (c->layout == DSBX__VAR32) dsbx__zero(&c->values, 4);
    if (c->layout == DSBX__VAR64) dsbx__zero(&c->values, 8);
}

/* Writes the message in w->fb (a flatbuffer) with the 8-byte prefix, padded. */
static int dsbx__write_meta(dsbx_writer *w) {
    dsbx__align(&w->fb, 8);
    uint32_t pre[2] = {0xFFFFFFFFu, (uint32_t)w->fb.len};
    if (dsbx__write_full(pre, 8) < 0 || dsbx__write_full(w->fb.p, w->fb.len) < 0)
        return dsbx__fail("writing to stdout failed");
    return 0;
}

/* Message{version V5, header_type, header, bodyLength}: returns the
 * position of the header offset field. */
static size_t dsbx__fbw_message(dsbx__buf *b, uint8_t htype, int64_t body_len) {
    b->len = 0;
    size_t root = dsbx__zero(b, 4);
    static const uint8_t sizes[4] = {2, 1, 4, 8};
    size_t fp[4];
    size_t t = dsbx__fbw_table(b, 4, sizes, fp);
    dsbx__put32(b, root, (uint32_t)t);
    dsbx__put16(b, fp[0], 4); /* MetadataVersion V5 */
    dsbx__put8(b, fp[1], htype);
    dsbx__put64(b, fp[3], (uint64_t)body_len);
    return fp[2];
}

static void dsbx__writer_free(dsbx_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->ncols; i++) {
        free((void *)w->fields[i].name);
        free((void *)w->fields[i].timezone);
        free(w->cols[i].validity.p);
        free(w->cols[i].values.p);
        free(w->cols[i].data.p);
    }
    free(w->fields);
    free(w->cols);
    free(w->fb.p);
    free(w);
}

static char *dsbx__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (!c) dsbx_die("out of memory");
    memcpy(c, s, n);
    return c;
}

dsbx_writer *dsbx_open_output(const dsbx_field *fields, int n) {
    if (n < 0 || n > (1 << 16)) { dsbx__fail("invalid number of output fields %d", n); return NULL; }
    dsbx_writer *w = calloc(1, sizeof *w);
    if (!w) dsbx_die("out of memory");
    w->fields = calloc(n ? n : 1, sizeof *w->fields);
    w->cols = calloc(n ? n : 1, sizeof *w->cols);
    if (!w->fields || !w->cols) dsbx_die("out of memory");
    for (int i = 0; i < n; i++) {
        int width;
        int lay = dsbx__layout(fields[i].type, &width);
        if (lay < 0 || !fields[i].name) {
            dsbx__writer_free(w);
            dsbx__fail("output field %d: invalid name or type %d", i, (int)fields[i].type);
            return NULL;
        }
        w->ncols = i + 1;
        w->fields[i].name = dsbx__strdup(fields[i].name);
        w->fields[i].type = fields[i].type;
        w->fields[i].nullable = fields[i].nullable != 0;
        w->fields[i].timezone = fields[i].timezone ? dsbx__strdup(fields[i].timezone) : NULL;
        w->cols[i].type = fields[i].type;
        w->cols[i].nullable = fields[i].nullable != 0;
        w->cols[i].layout = lay;
        w->cols[i].width = width;
        dsbx__col_reset(&w->cols[i]);
    }
    /* Schema message. */
    dsbx__buf *b = &w->fb;
    size_t hdr = dsbx__fbw_message(b, DSBX__MSG_SCHEMA, 0);
    static const uint8_t ssizes[2] = {0, 4}; /* endianness (default little), fields */
    size_t sfp[2];
    size_t st = dsbx__fbw_table(b, 2, ssizes, sfp);
    dsbx__fbw_ref(b, hdr, st);
    size_t vec = dsbx__fbw_vector(b, (uint32_t)n, 4);
    dsbx__fbw_ref(b, sfp[1], vec);
    for (int i = 0; i < n; i++) {
        const dsbx_field *fd = &w->fields[i];
        /* name, nullable, type_type, type, dictionary, children */
        static const uint8_t fsizes[6] = {4, 1, 1, 4, 0, 4};
        size_t fp[6];
        size_t ft = dsbx__fbw_table(b, 6, fsizes, fp);
        dsbx__fbw_ref(b, vec + 4 + 4 * (size_t)i, ft);
        dsbx__fbw_ref(b, fp[0], dsbx__fbw_string(b, fd->name));
        dsbx__put8(b, fp[1], (uint8_t)fd->nullable);
        uint8_t tt;
        size_t tp[2], tt_pos;
        switch (fd->type) {
        case DSBX_INT8: case DSBX_INT16: case DSBX_INT32: case DSBX_INT64:
        case DSBX_UINT8: case DSBX_UINT16: case DSBX_UINT32: case DSBX_UINT64: {
            static const uint8_t s[2] = {4, 1};
            int bw = 8 * w->cols[i].width;
            tt = 2;
            tt_pos = dsbx__fbw_table(b, 2, s, tp);
            dsbx__put32(b, tp[0], (uint32_t)bw);
            dsbx__put8(b, tp[1], fd->type <= DSBX_INT64);
            break;
        }
        case DSBX_FLOAT32: case DSBX_FLOAT64: {
            static const uint8_t s[1] = {2};
            tt = 3;
            tt_pos = dsbx__fbw_table(b, 1, s, tp);
            dsbx__put16(b, tp[0], fd->type == DSBX_FLOAT32 ? 1 : 2);
            break;
        }
        case DSBX_DATE32: case DSBX_DATE64: {
            static const uint8_t s[1] = {2};
            tt = 8;
            tt_pos = dsbx__fbw_table(b, 1, s, tp);
            dsbx__put16(b, tp[0], fd->type == DSBX_DATE32 ? 0 : 1);
            break;
        }
        case DSBX_TIMESTAMP_S: case DSBX_TIMESTAMP_MS: case DSBX_TIMESTAMP_US: case DSBX_TIMESTAMP_NS: {
            uint8_t s[2] = {2, fd->timezone ? 4 : 0};
            tt = 10;
            tt_pos = dsbx__fbw_table(b, 2, s, tp);
            dsbx__put16(b, tp[0], (uint16_t)(fd->type - DSBX_TIMESTAMP_S));
            if (fd->timezone) dsbx__fbw_ref(b, tp[1], dsbx__fbw_string(b, fd->timezone));
            break;
        }
        default:
            tt = fd->type == DSBX_BOOL ? 6 : fd->type == DSBX_UTF8 ? 5 : fd->type == DSBX_BINARY ? 4
               : fd->type == DSBX_LARGE_UTF8 ? 20 : 19;
            tt_pos = dsbx__fbw_table(b, 0, NULL, tp);
        }
        dsbx__put8(b, fp[2], tt);
        dsbx__fbw_ref(b, fp[3], tt_pos);
        dsbx__fbw_ref(b, fp[5], dsbx__fbw_vector(b, 0, 4));
    }
    if (dsbx__write_meta(w) < 0) { dsbx__writer_free(w); return NULL; }
    return w;
}

static dsbx__col *dsbx__wcol(dsbx_writer *w, int col, int valid, const char *what) {
    if (col < 0 || col >= w->ncols) dsbx_die("%s: no output column %d", what, col);
    dsbx__col *c = &w->cols[col];
    if (!valid && !c->nullable) dsbx_die("%s: NULL in non-nullable output column \"%s\"", what, w->fields[col].name);
    if (c->n >= INT32_MAX) dsbx_die("output column \"%s\": too many rows in one batch; flush more often", w->fields[col].name);
    if (c->n % 8 == 0) dsbx__zero(&c->validity, 1);
    if (valid) c->validity.p[c->n >> 3] |= (uint8_t)(1u << (c->n & 7));
    else c->nulls++;
    return c;
}

__attribute__((noreturn)) static void dsbx__wrong_type(dsbx_writer *w, int col, const char *what) {
    dsbx_die("%s: output column \"%s\" is of type %s", what, w->fields[col].name, dsbx_type_name(w->fields[col].type));
}

static void dsbx__append_fixed(dsbx_writer *w, int col, uint64_t bits, int valid) {
    dsbx__col *c = &w->cols[col];
    dsbx__append(&c->values, &bits, (size_t)c->width); /* little endian: the low bytes */
    c->n++;
    (void)valid;
}

void dsbx_append_int64(dsbx_writer *w, int col, int64_t v, int valid) {
    dsbx__col *c = dsbx__wcol(w, col, valid, "dsbx_append_int64");
    if (!valid) v = 0;
    int64_t lo, hi;
    switch (c->type) {
    case DSBX_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
    case DSBX_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
    case DSBX_INT32: case DSBX_DATE32: lo = INT32_MIN; hi = INT32_MAX; break;
    case DSBX_UINT8: lo = 0; hi = UINT8_MAX; break;
    case DSBX_UINT16: lo = 0; hi = UINT16_MAX; break;
    case DSBX_UINT32: lo = 0; hi = UINT32_MAX; break;
    case DSBX_UINT64: lo = 0; hi = INT64_MAX; break;
    case DSBX_INT64: case DSBX_DATE64:
    case DSBX_TIMESTAMP_S: case DSBX_TIMESTAMP_MS: case DSBX_TIMESTAMP_US: case DSBX_TIMESTAMP_NS:
        lo = INT64_MIN; hi = INT64_MAX; break;
    default: dsbx__wrong_type(w, col, "dsbx_append_int64");
    }
    if (v < lo || v > hi)
        dsbx_die("dsbx_append_int64: %lld out of range for output column \"%s\" (%s)", (long long)v,
                 w->fields[col].name, dsbx_type_name(c->type));
    dsbx__append_fixed(w, col, (uint64_t)v, valid);
}

void dsbx_append_uint64(dsbx_writer *w, int col, uint64_t v, int valid) {
    if (col >= 0 && col < w->ncols && w->cols[col].type == DSBX_UINT64) {
        dsbx__wcol(w, col, valid, "dsbx_append_uint64");
        dsbx__append_fixed(w, col, valid ? v : 0, valid);
        return;
    }
    if (valid && v > INT64_MAX) dsbx_die("dsbx_append_uint64: %llu out of range for output column %d", (unsigned long long)v, col);
    dsbx_append_int64(w, col, (int64_t)v, valid);
}

void dsbx_append_double(dsbx_writer *w, int col, double v, int valid) {
    dsbx__col *c = dsbx__wcol(w, col, valid, "dsbx_append_double");
    if (!valid) v = 0;
    if (c->type == DSBX_FLOAT64) {
        uint64_t bits;
        memcpy(&bits, &v, 8);
        dsbx__append_fixed(w, col, bits, valid);
    } else if (c->type == DSBX_FLOAT32) {
        float f = (float)v;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        dsbx__append_fixed(w, col, bits, valid);
    } else {
        dsbx__wrong_type(w, col, "dsbx_append_double");
    }
}

void dsbx_append_bool(dsbx_writer *w, int col, int v, int valid) {
    dsbx__col *c = dsbx__wcol(w, col, valid, "dsbx_append_bool");
    if (c->type != DSBX_BOOL) dsbx__wrong_type(w, col, "dsbx_append_bool");
    if (c->n % 8 == 0) dsbx__zero(&c->values, 1);
    if (valid && v) c->values.p[c->n >> 3] |= (uint8_t)(1u << (c->n & 7));
    c->n++;
}

void dsbx_append_utf8(dsbx_writer *w, int col, const char *p, size_t len, int valid) {
    dsbx__col *c = dsbx__wcol(w, col, valid, "dsbx_append_utf8");
    if (c->layout != DSBX__VAR32 && c->layout != DSBX__VAR64) dsbx__wrong_type(w, col, "dsbx_append_utf8");
    if (valid && len) dsbx__append(&c->data, p, len);
    if (c->layout == DSBX__VAR32) {
        if (c->data.len > INT32_MAX)
            dsbx_die("output column \"%s\": over 2 GiB of bytes in one batch; flush more often", w->fields[col].name);
        int32_t o = (int32_t)c->data.len;
        dsbx__append(&c->values, &o, 4);
    } else {
        int64_t o = (int64_t)c->data.len;
        dsbx__append(&c->values, &o, 8);
    }
    c->n++;
}

void dsbx_append_null(dsbx_writer *w, int col) {
    if (col < 0 || col >= w->ncols) dsbx_die("dsbx_append_null: no output column %d", col);
    switch (w->cols[col].layout) {
    case DSBX__BITMAP: dsbx_append_bool(w, col, 0, 0); break;
    case DSBX__VAR32: case DSBX__VAR64: dsbx_append_utf8(w, col, NULL, 0, 0); break;
    default:
        if (w->cols[col].type == DSBX_FLOAT32 || w->cols[col].type == DSBX_FLOAT64) dsbx_append_double(w, col, 0, 0);
        else if (w->cols[col].type == DSBX_UINT64) dsbx_append_uint64(w, col, 0, 0);
        else dsbx_append_int64(w, col, 0, 0);
    }
}

int64_t dsbx_pending_rows(const dsbx_writer *w) { return w->ncols ? w->cols[0].n : 0; }

static int64_t dsbx__pad8(int64_t n) { return (n + 7) & ~(int64_t)7; }

int dsbx_flush_batch(dsbx_writer *w) {
    if (w->failed) return dsbx__fail("output writer failed earlier");
    int64_t n = dsbx_pending_rows(w);
    for (int i = 1; i < w->ncols; i++)
        if (w->cols[i].n != n)
            return dsbx__fail("output column \"%s\" has %lld values, column \"%s\" %lld", w->fields[i].name,
                              (long long)w->cols[i].n, w->fields[0].name, (long long)n);
    if (n == 0) return 0;
    /* The buffers, in order: validity, values/offsets, [data]. */
    int nbuf = 0;
    for (int i = 0; i < w->ncols; i++) nbuf += w->cols[i].layout >= DSBX__VAR32 ? 3 : 2;
    const uint8_t **bp = malloc(sizeof *bp * (size_t)nbuf);
    int64_t *bl = malloc(sizeof *bl * (size_t)nbuf);
    if (!bp || !bl) dsbx_die("out of memory");
    int k = 0;
    int64_t body = 0;
    for (int i = 0; i < w->ncols; i++) {
        dsbx__col *c = &w->cols[i];
        bp[k] = c->validity.p; bl[k++] = c->nulls ? (n + 7) / 8 : 0;
        if (c->layout == DSBX__BITMAP) { bp[k] = c->values.p; bl[k++] = (n + 7) / 8; }
        else { bp[k] = c->values.p; bl[k++] = (int64_t)c->values.len; }
        if (c->layout >= DSBX__VAR32) { bp[k] = c->data.p; bl[k++] = (int64_t)c->data.len; }
    }
    for (int j = 0; j < nbuf; j++) body += dsbx__pad8(bl[j]);
    dsbx__buf *b = &w->fb;
    size_t hdr = dsbx__fbw_message(b, DSBX__MSG_RECORDBATCH, body);
    static const uint8_t rsizes[3] = {8, 4, 4}; /* length, nodes, buffers */
    size_t rfp[3];
    size_t rt = dsbx__fbw_table(b, 3, rsizes, rfp);
    dsbx__fbw_ref(b, hdr, rt);
    dsbx__put64(b, rfp[0], (uint64_t)n);
    size_t nodes = dsbx__fbw_vector(b, (uint32_t)w->ncols, 16);
    dsbx__fbw_ref(b, rfp[1], nodes);
    for (int i = 0; i < w->ncols; i++) {
        dsbx__put64(b, nodes + 4 + 16 * (size_t)i, (uint64_t)n);
        dsbx__put64(b, nodes + 12 + 16 * (size_t)i, (uint64_t)w->cols[i].nulls);
    }
    size_t bufs = dsbx__fbw_vector(b, (uint32_t)nbuf, 16);
    dsbx__fbw_ref(b, rfp[2], bufs);
    int64_t off = 0;
    for (int j = 0; j < nbuf; j++) {
        dsbx__put64(b, bufs + 4 + 16 * (size_t)j, (uint64_t)off);
        dsbx__put64(b, bufs + 12 + 16 * (size_t)j, (uint64_t)bl[j]);
        off += dsbx__pad8(bl[j]);
    }
    int rc = dsbx__write_meta(w);
    static const uint8_t zeros[8];
    for (int j = 0; rc == 0 && j < nbuf; j++) {
        if ((bl[j] && dsbx__write_full(bp[j], (size_t)bl[j]) < 0) ||
            dsbx__write_full(zeros, (size_t)(dsbx__pad8(bl[j]) - bl[j])) < 0)
            rc = dsbx__fail("writing to stdout failed");
    }
    free(bp);
    free(bl);
    if (rc < 0) { w->failed = 1; return rc; }
    for (int i = 0; i < w->ncols; i++) dsbx__col_reset(&w->cols[i]);
    return 0;
}

int dsbx_close_output(dsbx_writer *w) {
    int rc = dsbx_flush_batch(w);
    if (rc == 0) {
        static const uint32_t eos[2] = {0xFFFFFFFFu, 0};
        if (dsbx__write_full(eos, 8) < 0) rc = dsbx__fail("writing to stdout failed");
    }
    dsbx__writer_free(w);
    return rc;
}

#endif /* DSBX_IMPLEMENTATION_DONE */
#endif /* DSBX_IMPLEMENTATION */
