package sql

import (
	"testing"
)

func TestLockdownApplied(t *testing.T) {
	db := openPlain(t)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dir := t.TempDir()
	if err := lockdown(ctx(t), conn, lockSettings{threads: 2, memory: "100MB", tempDir: dir, tempSize: "50MB"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"threads":                      "2",
		"autoinstall_known_extensions": "false",
		"autoload_known_extensions":    "false",
		"allow_community_extensions":   "false",
		"allow_unsigned_extensions":    "false",
		"allow_persistent_secrets":     "false",
		"produce_arrow_string_view":    "false",
		"arrow_large_buffer_size":      "false",
		"enable_external_access":       "false",
		"lock_configuration":           "true",
		"temp_directory":               dir,
	}
	for name, v := range want {
		var got string
		if err := conn.QueryRowContext(ctx(t), "SELECT current_setting(?)::VARCHAR", name).Scan(&got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	var mem string
	if err := conn.QueryRowContext(ctx(t), "SELECT current_setting('memory_limit')::VARCHAR").Scan(&mem); err != nil || mem != "95.3 MiB" {
		t.Errorf("memory_limit = %q (%v)", mem, err)
	}
	for _, stmt := range []string{"SET threads = 8", "SET memory_limit = '8GB'", "RESET enable_external_access", "SET GLOBAL lock_configuration = false"} {
		if _, err := conn.ExecContext(ctx(t), stmt); err == nil {
			t.Errorf("%s succeeded after lockdown", stmt)
		}
	}
}
