/*
 * roundtrip — copies its input to its output, batch by batch, through the
 * dsbx.h reader and writer (every supported type). Used by sdk_test.go.
 *
 * Build: clang-14 --target=wasm32-wasi -O2 -I sdk/c -o roundtrip.wasm sdk/c/examples/roundtrip.c
 */
#define DSBX_IMPLEMENTATION
#include "dsbx.h"

DSBX_FIELDS("[\"i8\",\"i16\",\"i32\",\"i64\",\"u8\",\"u16\",\"u32\",\"u64\",\"f32\",\"f64\","
            "\"b\",\"s\",\"bin\",\"ls\",\"lbin\",\"d32\",\"d64\",\"ts\",\"tsz\"]");

int main(void) {
    dsbx_reader *in = dsbx_open_input();
    if (!in) dsbx_die("reading input: %s", dsbx_error());
    int nf = dsbx_num_fields(in);
    dsbx_field fields[64];
    if (nf > 64) dsbx_die("too many fields");
    for (int i = 0; i < nf; i++) fields[i] = *dsbx_input_field(in, i);
    dsbx_writer *out = dsbx_open_output(fields, nf);
    if (!out) dsbx_die("writing output: %s", dsbx_error());
    dsbx_batch *b;
    int rc;
    while ((rc = dsbx_next_batch(in, &b)) > 0) {
        int64_t n = dsbx_batch_length(b);
        for (int c = 0; c < nf; c++) {
            const dsbx_column *col = dsbx_batch_column(b, c);
            for (int64_t i = 0; i < n; i++) {
                int ok = dsbx_is_valid(col, i);
                switch (dsbx_column_type(col)) {
                case DSBX_FLOAT32: case DSBX_FLOAT64:
                    dsbx_append_double(out, c, dsbx_get_double(col, i), ok);
                    break;
                case DSBX_BOOL:
                    dsbx_append_bool(out, c, (int)dsbx_get_int64(col, i), ok);
                    break;
                case DSBX_UTF8: case DSBX_BINARY: case DSBX_LARGE_UTF8: case DSBX_LARGE_BINARY: {
                    size_t len;
                    const char *p = dsbx_get_utf8(col, i, &len);
                    dsbx_append_utf8(out, c, p, len, ok);
                    break;
                }
                case DSBX_UINT64:
                    dsbx_append_uint64(out, c, dsbx_get_uint64(col, i), ok);
                    break;
                default:
                    dsbx_append_int64(out, c, dsbx_get_int64(col, i), ok);
                }
            }
        }
        if (dsbx_flush_batch(out) < 0) dsbx_die("writing output: %s", dsbx_error());
    }
    if (rc < 0) dsbx_die("reading input: %s", dsbx_error());
    if (dsbx_close_output(out) < 0) dsbx_die("writing output: %s", dsbx_error());
    dsbx_log("roundtrip: %lld rows", (long long)dsbx_rows_read(in));
    dsbx_close_input(in);
    return 0;
}
