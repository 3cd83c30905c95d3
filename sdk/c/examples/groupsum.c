/*
 * groupsum — example DataSandbox guest in C.
 *
 * Reads region (utf8) and income (integer) and writes one row per distinct
 * region: region, n (count of all rows), total (sum of the non-null incomes,
 * NULL if there are none), sorted by region bytewise with the NULL region
 * last. Equivalent to DuckDB's
 *
 *   SELECT region, count(*) AS n, CAST(sum(income) AS BIGINT) AS total
 *   FROM t GROUP BY region ORDER BY region
 *
 * Build: clang-14 --target=wasm32-wasi -O2 -I sdk/c -o groupsum.wasm sdk/c/examples/groupsum.c
 */
#define DSBX_IMPLEMENTATION
#include "dsbx.h"

#include <stdlib.h>
#include <string.h>

DSBX_FIELDS("[\"region\",\"income\"]");
DSBX_OUTPUT("{\"kind\":\"aggregate\",\"group_by\":[\"region\"]}");

typedef struct {
    uint64_t hash;
    size_t key_off, key_len; /* into the key arena */
    int64_t n;
    __int128 total;
    int has_total;
} group;

static group *groups;      /* dense, in first-seen order */
static size_t ngroups, groups_cap;
static uint32_t *slots;    /* open addressing: index+1 into groups, 0 = empty */
static size_t nslots;      /* power of two */
static char *arena;        /* region bytes of every group */
static size_t arena_len, arena_cap;
static group null_group;   /* the NULL region */

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    h ^= h >> 29; /* mix the high bits down for masking */
    return h;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) dsbx_die("out of memory (%zu bytes)", n);
    return p;
}

static void grow_slots(void) {
    size_t n = nslots ? nslots * 2 : 1024;
    free(slots);
    slots = calloc(n, sizeof *slots);
    if (!slots) dsbx_die("out of memory");
    nslots = n;
    for (size_t g = 0; g < ngroups; g++) {
        size_t i = groups[g].hash & (n - 1);
        while (slots[i]) i = (i + 1) & (n - 1);
        slots[i] = (uint32_t)(g + 1);
    }
}

static group *lookup(const char *p, size_t len) {
    uint64_t h = hash_bytes(p, len);
    size_t i = h & (nslots - 1);
    for (;;) {
        uint32_t s = slots[i];
        if (!s) break;
        group *g = &groups[s - 1];
        if (g->hash == h && g->key_len == len && memcmp(arena + g->key_off, p, len) == 0) return g;
        i = (i + 1) & (nslots - 1);
    }
    if ((ngroups + 1) * 2 > nslots) { /* keep the load factor under 1/2 */
        grow_slots();
        return lookup(p, len);
    }
    if (ngroups == groups_cap) {
        groups_cap = groups_cap ? groups_cap * 2 : 256;
        groups = xrealloc(groups, groups_cap * sizeof *groups);
    }
    if (arena_cap - arena_len < len) {
        while (arena_cap - arena_len < len) arena_cap = arena_cap ? arena_cap * 2 : 4096;
        arena = xrealloc(arena, arena_cap);
    }
    memcpy(arena + arena_len, p, len);
    group *g = &groups[ngroups];
    memset(g, 0, sizeof *g);
    g->hash = h;
    g->key_off = arena_len;
    g->key_len = len;
    arena_len += len;
    slots[i] = (uint32_t)(++ngroups);
    return g;
}

static int cmp_groups(const void *a, const void *b) {
    const group *x = *(group *const *)a, *y = *(group *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(arena + x->key_off, arena + y->key_off, n);
    if (c) return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int is_string(dsbx_type t) { return t == DSBX_UTF8 || t == DSBX_LARGE_UTF8; }
static int is_integer(dsbx_type t) { return t >= DSBX_INT8 && t <= DSBX_UINT64; }

int main(void) {
    dsbx_reader *in = dsbx_open_input();
    if (!in) dsbx_die("reading input: %s", dsbx_error());
    int ri = dsbx_field_index(in, "region"), ii = dsbx_field_index(in, "income");
    if (ri < 0 || ii < 0) dsbx_die("input lacks the region or income field");
    dsbx_type rtype = dsbx_input_field(in, ri)->type, itype = dsbx_input_field(in, ii)->type;
    if (!is_string(rtype)) dsbx_die("region is %s, want utf8", dsbx_type_name(rtype));
    if (!is_integer(itype)) dsbx_die("income is %s, want an integer", dsbx_type_name(itype));
    int unsigned64 = itype == DSBX_UINT64;
    grow_slots();

    dsbx_batch *b;
    int rc;
    while ((rc = dsbx_next_batch(in, &b)) > 0) {
        const dsbx_column *region = dsbx_batch_column(b, ri), *income = dsbx_batch_column(b, ii);
        int64_t n = dsbx_batch_length(b);
        for (int64_t i = 0; i < n; i++) {
            group *g;
            if (dsbx_is_valid(region, i)) {
                size_t len;
                const char *p = dsbx_get_utf8(region, i, &len);
                g = lookup(p, len);
            } else {
                g = &null_group;
            }
            g->n++;
            if (dsbx_is_valid(income, i)) {
                g->total += unsigned64 ? (__int128)dsbx_get_uint64(income, i) : (__int128)dsbx_get_int64(income, i);
                g->has_total = 1;
            }
        }
        dsbx_progress(dsbx_rows_read(in), 0);
    }
    if (rc < 0) dsbx_die("reading input: %s", dsbx_error());
    int64_t rows = dsbx_rows_read(in);
    dsbx_close_input(in);

    group **order = malloc((ngroups + 1) * sizeof *order);
    if (!order) dsbx_die("out of memory");
    for (size_t g = 0; g < ngroups; g++) order[g] = &groups[g];
    qsort(order, ngroups, sizeof *order, cmp_groups);
    size_t nout = ngroups;
    if (null_group.n) order[nout++] = &null_group;

    dsbx_field out_fields[] = {
        {.name = "region", .type = rtype, .nullable = 1},
        {.name = "n", .type = DSBX_INT64, .nullable = 0},
        {.name = "total", .type = DSBX_INT64, .nullable = 1},
    };
    dsbx_writer *out = dsbx_open_output(out_fields, 3);
    if (!out) dsbx_die("writing output: %s", dsbx_error());
    for (size_t k = 0; k < nout; k++) {
        group *g = order[k];
        int is_null = g == &null_group;
        dsbx_append_utf8(out, 0, is_null ? NULL : arena + g->key_off, g->key_len, !is_null);
        dsbx_append_int64(out, 1, g->n, 1);
        if (g->has_total && (g->total > INT64_MAX || g->total < INT64_MIN))
            dsbx_die("sum of income for region %.*s overflows int64", is_null ? 4 : (int)g->key_len,
                     is_null ? "NULL" : arena + g->key_off);
        dsbx_append_int64(out, 2, (int64_t)g->total, g->has_total);
    }
    if (dsbx_close_output(out) < 0) dsbx_die("writing output: %s", dsbx_error());
    dsbx_log("groupsum: %lld rows, %zu groups", (long long)rows, nout);
    return 0;
}
