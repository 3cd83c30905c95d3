// Package statetest gives tests a state database of the dialect the test
// run asks for, so that one suite runs against both: the embedded SQLite
// file by default, or, when DSBX_TEST_POSTGRES holds the URL of a
// PostgreSQL server (`make test` starts one), a new database on that server
// for each test, dropped when the test ends.
package statetest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/state"
)

// Env names the variable holding the PostgreSQL server's URL (any database
// on it; the tests create their own).
const Env = "DSBX_TEST_POSTGRES"

// childEnv names the variable through which a test's child process is
// given its parent's database (see ChildEnv).
const childEnv = "DSBX_TEST_POSTGRES_DATABASE"

// ChildEnv returns the environment entry that makes a child process of this
// test, which opens the state of data directory dir, open the database the
// test uses for dir; nil with the embedded database, which is in dir.
func ChildEnv(t testing.TB, dir string) []string {
	if u := URL(t, dir); u != "" {
		return []string{childEnv + "=" + u}
	}
	return nil
}

var (
	mu    sync.Mutex
	byDir = map[string]string{} // data directory → its database's URL
)

// URL returns the URL of the PostgreSQL database standing for the data
// directory dir: new and empty the first time dir is asked for, the same
// one after (a test that reopens a platform finds its state again), dropped
// when the test that created it ends. It returns "" when the run uses the
// embedded database.
func URL(t testing.TB, dir string) string {
	t.Helper()
	if u := os.Getenv(childEnv); u != "" {
		return u // a child process: the parent created and drops it
	}
	admin := os.Getenv(Env)
	if admin == "" {
		return ""
	}
	mu.Lock()
	defer mu.Unlock()
	if u, ok := byDir[dir]; ok {
		return u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, drop, err := state.CreateDatabase(ctx, admin, "dsbx_test_")
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	t.Cleanup(func() {
		mu.Lock()
		delete(byDir, dir)
		mu.Unlock()
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	byDir[dir] = u
	return u
}

// Open opens the state database of data directory dir for this test,
// closed when it ends: dir's PostgreSQL database when the run asks for one
// (see URL), else the embedded one in dir.
func Open(t testing.TB, dir string) *state.DB {
	t.Helper()
	db, err := state.Open(context.Background(), dir, URL(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
