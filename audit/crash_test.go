package audit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// crashDirEnv tells a re-executed test binary to run TestCrashHelper on the
// log in the named directory.
const crashDirEnv = "AUDIT_CRASH_HELPER_DIR"

// TestCrashHelper is the child process of TestCrashDuringAppend: it appends
// from 8 goroutines until it is killed, printing the seq of every
// acknowledged append (after Append returned) on its own line.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashDuringAppend")
	}
	l, err := Open(dir, testOrigin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				e, err := l.Append(context.Background(), Event{
					Kind:    "crash.test",
					Subject: fmt.Sprintf("worker/%d", w),
					Data:    map[string]any{"i": i, "pad": "some bytes to make a record span a little more of the page"},
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				os.Stdout.WriteString(strconv.FormatInt(e.Seq, 10) + "\n")
				mu.Unlock()
			}
		}()
	}
	// The parent kills us long before this; do not outlive a dead parent.
	time.Sleep(30 * time.Second)
	os.Exit(4)
}

func TestCrashDuringAppend(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("crash test runs on Linux only")
	}
	dir := t.TempDir()
	acked := map[int64]int{} // seq -> round
	var size int64
	for round := range 5 {
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 200 + rand.IntN(400)
		acks, killed := 0, false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			seq, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err != nil {
				continue // test framework output
			}
			if r, dup := acked[seq]; dup {
				t.Errorf("round %d: seq %d acknowledged again (first in round %d)", round, seq, r)
			}
			acked[seq] = round
			acks++
			if acks == killAt {
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			cmd.Process.Kill()
			t.Fatalf("round %d: helper exited after %d acks: %v\n%s", round, acks, err, stderr.Bytes())
		}

		// What the kill left behind, before Open repairs it.
		raw, err := os.ReadFile(filepath.Join(dir, entriesFile))
		if err != nil {
			t.Fatal(err)
		}
		torn := len(raw) > 0 && raw[len(raw)-1] != '\n'
		lines := int64(bytes.Count(raw, []byte("\n")))
		hst, err := os.Stat(filepath.Join(dir, hashesFile))
		if err != nil {
			t.Fatal(err)
		}
		hashesBehind := hst.Size() < tlog.StoredHashCount(lines)*tlog.HashSize

		l := openLog(t, dir)
		n := l.Size()
		t.Logf("round %d: killed after %d acks; %d complete lines, torn line %v, hashes behind %v; size %d after recovery",
			round, acks, lines, torn, hashesBehind, n)
		if n < size {
			t.Fatalf("round %d: size %d after recovery, was %d", round, n, size)
		}
		size = n
		for seq := range acked {
			if seq >= n {
				t.Errorf("round %d: acknowledged seq %d lost (size %d)", round, seq, n)
			}
		}
		records, err := l.Records(0, n)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := l.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		if r := mustVerify(t, records, cp, l.VerifierKey()); r.Size != n {
			t.Fatalf("round %d: verified size %d, want %d", round, r.Size, n)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err = os.ReadFile(filepath.Join(dir, entriesFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			t.Fatalf("round %d: torn line left after recovery", round)
		}
		if got := int64(bytes.Count(raw, []byte("\n"))); got != n {
			t.Fatalf("round %d: %d lines in %s after recovery, want %d", round, got, entriesFile, n)
		}
		if t.Failed() {
			return
		}
	}
}
