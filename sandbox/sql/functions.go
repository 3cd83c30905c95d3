package sql

import "strings"

// forbiddenPrefixes and forbiddenNames are the one place that lists the functions
// a job may not call: they reveal the host, the configuration or the catalog, or read
// files. The lockdown refuses most of these at run time anyway; refusing them at
// analysis gives a clear error and a second line of defence.
var forbiddenPrefixes = []string{
	"duckdb_", "pragma_", "pg_", "read_", "parquet_", "iceberg_", "delta_",
	"sqlite_", "postgres_", "mysql_", "json_execute_", "__internal",
}

var forbiddenNames = map[string]bool{
	"current_setting": true, "getenv": true, "getvariable": true,
	"read_text": true, "read_blob": true, "glob": true, "sniff_csv": true,
	"query": true, "query_table": true,
	"parquet_metadata": true, "parquet_schema": true, "parquet_kv_metadata": true, "parquet_file_metadata": true,
	// histogram_values(source, col) is a table macro over query_table(source):
	// it reads a file named by source.
	"histogram_values": true, "which_secret": true, "load_aws_credentials": true,
	"current_database": true, "current_catalog": true, "current_schema": true, "current_schemas": true,
	"current_user": true, "session_user": true, "user": true, "current_role": true, "current_query": true,
	"version": true, "stats": true, "sql_auto_complete": true,
	"json_serialize_sql": true, "json_deserialize_sql": true, "json_serialize_plan": true,
	"col_description": true, "obj_description": true, "shobj_description": true, "format_type": true,
	"checkpoint": true, "force_checkpoint": true, "test_all_types": true, "test_vector_types": true,
}

// forbidden reports whether a job may not call the function name (lower case).
func forbidden(name string) bool {
	if forbiddenNames[name] {
		return true
	}
	for _, p := range forbiddenPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// reducing lists the aggregates whose result does not, in general, equal one of
// their input values; min, max, first, any_value, arg_*, list, string_agg, mode,
// median and quantiles are deliberately absent.
var reducing = map[string]bool{
	"count": true, "count_star": true, "count_if": true, "countif": true,
	"sum": true, "sum_no_overflow": true, "fsum": true, "sumkahan": true, "kahan_sum": true,
	"avg": true, "mean": true, "favg": true, "product": true,
	"stddev": true, "stddev_pop": true, "stddev_samp": true,
	"var_pop": true, "var_samp": true, "variance": true,
	"approx_count_distinct": true, "entropy": true, "kurtosis": true, "kurtosis_pop": true, "skewness": true,
	"corr": true, "covar_pop": true, "covar_samp": true, "bool_and": true, "bool_or": true,
}

// isReducing reports whether the aggregate name (lower case) is in the reducing set.
func isReducing(name string) bool {
	return reducing[name] || strings.HasPrefix(name, "regr_")
}

// setReturning lists scalar-position functions that turn one row into several,
// which makes a select list no longer a single aggregate row.
var setReturning = map[string]bool{"unnest": true, "unlist": true, "generate_subscripts": true}

// reservedPrefix is the namespace of names the sandbox adds to queries.
const reservedPrefix = "__dsbx"
