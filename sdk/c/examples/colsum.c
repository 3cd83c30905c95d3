/*
 * colsum — example DataSandbox guest in C, and the C side of dsbx-bench's
 * Wasm figure: the same column aggregate as sdk/go/examples/colsum. Reads
 * one int64 field, amount, and writes one row:
 *
 *   rows  int64, all rows read
 *   sum   int64, the sum of the non-NULL amounts (wrapping at 64 bits)
 *   min   int64, the least non-NULL amount
 *   max   int64, the greatest non-NULL amount
 *
 * sum, min and max are NULL when there is no non-NULL amount.
 *
 * Build: clang-14 --target=wasm32-wasi -O2 -I sdk/c -o colsum.wasm sdk/c/examples/colsum.c
 */
#define DSBX_IMPLEMENTATION
#include "dsbx.h"

DSBX_FIELDS("[\"amount\"]");
DSBX_OUTPUT("{\"kind\":\"aggregate\"}");

int main(void) {
    dsbx_reader *in = dsbx_open_input();
    if (!in) dsbx_die("reading input: %s", dsbx_error());
    int ai = dsbx_field_index(in, "amount");
    if (ai < 0) dsbx_die("input lacks the amount field (declare it)");
    if (dsbx_input_field(in, ai)->type != DSBX_INT64)
        dsbx_die("amount is %s, want int64", dsbx_type_name(dsbx_input_field(in, ai)->type));

    uint64_t sum = 0; /* wraps like Go's int64 */
    int64_t min = INT64_MAX, max = INT64_MIN, values = 0;
    dsbx_batch *b;
    int rc;
    while ((rc = dsbx_next_batch(in, &b)) > 0) {
        const dsbx_column *amount = dsbx_batch_column(b, ai);
        const int64_t *v = dsbx_column_values(amount);
        int64_t n = dsbx_batch_length(b);
        if (dsbx_column_null_count(amount) == 0) {
            for (int64_t i = 0; i < n; i++) {
                sum += (uint64_t)v[i];
                if (v[i] < min) min = v[i];
                if (v[i] > max) max = v[i];
            }
            values += n;
        } else {
            for (int64_t i = 0; i < n; i++) {
                if (!dsbx_is_valid(amount, i)) continue;
                sum += (uint64_t)v[i];
                if (v[i] < min) min = v[i];
                if (v[i] > max) max = v[i];
                values++;
            }
        }
        dsbx_progress(dsbx_rows_read(in), 0);
    }
    if (rc < 0) dsbx_die("reading input: %s", dsbx_error());
    int64_t rows = dsbx_rows_read(in);
    dsbx_close_input(in);

    dsbx_field out_fields[] = {
        {.name = "rows", .type = DSBX_INT64, .nullable = 0},
        {.name = "sum", .type = DSBX_INT64, .nullable = 1},
        {.name = "min", .type = DSBX_INT64, .nullable = 1},
        {.name = "max", .type = DSBX_INT64, .nullable = 1},
    };
    dsbx_writer *out = dsbx_open_output(out_fields, 4);
    if (!out) dsbx_die("writing output: %s", dsbx_error());
    int any = values > 0;
    dsbx_append_int64(out, 0, rows, 1);
    dsbx_append_int64(out, 1, (int64_t)sum, any);
    dsbx_append_int64(out, 2, min, any);
    dsbx_append_int64(out, 3, max, any);
    if (dsbx_close_output(out) < 0) dsbx_die("writing output: %s", dsbx_error());
    dsbx_log("colsum: %lld rows", (long long)rows);
    return 0;
}
