package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/server"
)

// mainEnv, when set, makes the test binary run dsbx itself with the
// arguments it holds (separated by \x1f): tests start a real `dsbx serve`
// process this way, and can kill it.
const mainEnv = "DSBX_TEST_MAIN"

func TestMain(m *testing.M) {
	if args := os.Getenv(mainEnv); args != "" {
		os.Args = append([]string{"dsbx"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A server killed with SIGKILL while many requests are being recorded
// restarts with a log that verifies and holds every change it acknowledged.
func TestServeSurvivesSIGKILL(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIGKILL of a child process")
	}
	if testing.Short() {
		t.Skip("starts and kills servers")
	}
	data := t.TempDir()
	ctx := context.Background()
	var acked []string
	for round := 0; round < 3; round++ {
		srv := startServe(t, data, nil)
		base := srv.base
		tok, err := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		admin := client.New(base, strings.TrimSpace(string(tok)))
		checkRestart(ctx, t, admin, acked)

		// Eight writers add principals until the server dies under them;
		// a 201 means the principal.added entry was durable.
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					if _, _, err := admin.AddPrincipal(ctx, operators.NewPrincipal{Name: name, Roles: []string{operators.RoleResearcher}}); err != nil {
						return // the server is gone
					}
					mu.Lock()
					acked = append(acked, name)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(300+100*round) * time.Millisecond)
		srv.cmd.Process.Signal(syscall.SIGKILL)
		<-srv.exited
		close(stop)
		wg.Wait()
	}
	base := startServe(t, data, nil).base
	tok, _ := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
	checkRestart(ctx, t, client.New(base, strings.TrimSpace(string(tok))), acked)
	if len(acked) < 20 {
		t.Fatalf("only %d changes acknowledged before the kills; the test proved little", len(acked))
	}
	t.Logf("%d changes acknowledged across 3 kills, every one found after restart", len(acked))
}

// checkRestart verifies the restarted server's log and finds every
// acknowledged principal in it and in the directory.
func checkRestart(ctx context.Context, t *testing.T, admin *client.Client, acked []string) {
	t.Helper()
	records, checkpoint, key, err := fetchLog(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(records, checkpoint, key); err != nil {
		t.Fatalf("after a SIGKILL the log does not verify: %v", err)
	}
	added := map[string]bool{}
	for _, rec := range records {
		var e audit.Entry
		if err := json.Unmarshal(rec, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == "principal.added" {
			added[strings.TrimPrefix(e.Subject, "principal/")] = true
		}
	}
	for _, name := range acked {
		if !added[name] {
			t.Fatalf("principal %s was acknowledged but its entry is not in the log", name)
		}
		if _, err := admin.Principal(ctx, name); err != nil {
			t.Fatalf("principal %s was acknowledged but is not in the directory: %v", name, err)
		}
	}
}
