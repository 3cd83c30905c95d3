package datasets

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/state/statetest"
)

// bigSpec labels the columns of writeBigCSV.
func bigSpec(name string) Spec {
	return Spec{
		Name: name, Grade: GradeGeneral, Open: OpenUnconditional, Keys: []string{"id"},
		Fields: []Field{
			field("id", "", "public", IdentifierNone),
			field("amount", "金额", "public", IdentifierNone),
			field("day", "日期", "public", IdentifierNone),
			field("district", "区县", "public", IdentifierQuasi),
			field("name", "姓名", "personal", IdentifierDirect),
			field("age", "年龄", "public", IdentifierNone),
		},
	}
}

var (
	bigDistricts = []string{"西湖区", "上城区", "拱墅区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区", "富阳区", "临安区", "桐庐县", "淳安县", "建德市"}
	bigSurnames  = []string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "欧阳"}
	bigGiven     = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "桂英", "建华"}
)

// writeBigCSV writes a header and rows rows of generated data: an integer
// id, a decimal amount, an ISO date, a Chinese district and name and a small
// integer, deterministically. It returns the bytes written.
func writeBigCSV(w io.Writer, rows int) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	n, _ := bw.WriteString("id,金额,日期,区县,姓名,年龄\n")
	total := int64(n)
	var line []byte
	for i := 1; i <= rows; i++ {
		line = line[:0]
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, ',')
		line = strconv.AppendInt(line, rng.Int64N(1_000_000), 10)
		cents := rng.IntN(100)
		line = append(line, '.', byte('0'+cents/10), byte('0'+cents%10), ',')
		line = append(line, "20"...)
		y, m, d := 10+rng.IntN(15), 1+rng.IntN(12), 1+rng.IntN(28)
		line = append(line, byte('0'+y/10), byte('0'+y%10), '-', byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), ',')
		line = append(line, bigDistricts[rng.IntN(len(bigDistricts))]...)
		line = append(line, ',')
		line = append(line, bigSurnames[rng.IntN(len(bigSurnames))]...)
		line = append(line, bigGiven[rng.IntN(len(bigGiven))]...)
		line = append(line, ',')
		line = strconv.AppendInt(line, int64(18+rng.IntN(80)), 10)
		line = append(line, '\n')
		n, err := bw.Write(line)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, bw.Flush()
}

func writeBigCSVFile(t testing.TB, path string, rows int) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := writeBigCSV(f, rows)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const (
	importChildEnv     = "DSBX_IMPORT_CHILD"      // the catalog's state directory
	importChildFileEnv = "DSBX_IMPORT_CHILD_FILE" // the file to import
)

// A process killed in the middle of an import leaves no version, no
// snapshot and no audit entry; the next NewCatalog removes what it staged.
func TestImportKilledLeavesNoVersion(t *testing.T) {
	if root := os.Getenv(importChildEnv); root != "" {
		// The child: import until killed.
		tc := openTestCatalog(t, root)
		_, err := tc.Import(context.Background(), "importer", "big", Source{}, os.Getenv(importChildFileEnv), nil)
		t.Logf("import finished before it was killed: %v", err)
		return
	}
	if testing.Short() {
		t.Skip("writes a large file")
	}
	root := t.TempDir()
	tc := openTestCatalog(t, root)
	tc.mustCreate(t, bigSpec("big"))
	tc.close()
	src := filepath.Join(t.TempDir(), "big.csv")
	writeBigCSVFile(t, src, 2_500_000)

	cmd := exec.Command(os.Args[0], "-test.run=^TestImportKilledLeavesNoVersion$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), importChildEnv+"="+root, importChildFileEnv+"="+src)
	cmd.Env = append(cmd.Env, statetest.ChildEnv(t, root)...)
	out, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	staging := filepath.Join(root, "datasets", ".staging")
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Wait until the child has staged something: its work directory
		// with a file in it.
		dirs, _ := filepath.Glob(filepath.Join(staging, "big-*"))
		if len(dirs) > 0 {
			if in, _ := os.ReadDir(dirs[0]); len(in) > 0 {
				break
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(out.Name())
			t.Fatalf("the child exited (%v) before it staged anything:\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the child staged nothing within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		log, _ := os.ReadFile(out.Name())
		t.Fatalf("the child was not killed mid-import (%v):\n%s", err, log)
	}
	if left, _ := filepath.Glob(filepath.Join(staging, "big-*")); len(left) == 0 {
		t.Fatal("the killed import left nothing in staging; the test proves nothing")
	}

	tc = openTestCatalog(t, root)
	e, err := tc.Get(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Versions) != 0 || slices.ContainsFunc(e.Fields, func(f Field) bool { return f.Type != "" }) {
		t.Errorf("after the kill: versions %v, fields %+v", e.Versions, e.Fields)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("NewCatalog left the staging directory: %v", err)
	}
	if files, _ := os.ReadDir(filepath.Join(root, "datasets", "big")); len(files) != 0 {
		t.Errorf("snapshot files after the kill: %v", files)
	}
	if kinds := tc.auditKinds(t, 0); !slices.Equal(kinds, []string{"dataset.created"}) {
		t.Errorf("audit after the kill: %v", kinds)
	}
	// The catalog works as before.
	tc.mustImport(t, "big", "id,金额,日期,区县,姓名,年龄\n1,2.5,2024-01-01,西湖区,王伟,30\n")
}

// A cancelled import returns the context's error and leaves nothing,
// whichever phase it is in.
func TestImportCancelled(t *testing.T) {
	tc := newTestCatalog(t)
	tc.mustCreate(t, inferSpec())
	small := writeTestFile(t, "infer.csv", []byte(inferCSV(200)))
	before := tc.stateOf(t)
	for _, phase := range []string{"parse", "type", "check", "write", "statistics", "profile", "store"} {
		t.Run(phase, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			seen := false
			_, err := tc.Import(ctx, "importer", "infer", Source{}, small, func(s Step) {
				if s.Phase == phase {
					seen = true
					cancel()
				}
			})
			if !seen {
				t.Fatalf("no %s phase", phase)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			var ie *InputError
			if errors.As(err, &ie) {
				t.Errorf("a cancelled import blames the input: %v", err)
			}
			if after := tc.stateOf(t); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	if testing.Short() {
		return
	}
	// Cancelled while DuckDB parses a larger file.
	tc.mustCreate(t, bigSpec("big"))
	before = tc.stateOf(t)
	big := filepath.Join(t.TempDir(), "big.csv")
	writeBigCSVFile(t, big, 1_000_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled time.Time
	_, err := tc.Import(ctx, "importer", "big", Source{}, big, func(s Step) {
		if s.Phase == "parse" {
			time.AfterFunc(150*time.Millisecond, func() { cancelled = time.Now(); cancel() })
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if cancelled.IsZero() || time.Since(cancelled) > 5*time.Second {
		t.Errorf("the import returned %v after it was cancelled", time.Since(cancelled))
	}
	if after := tc.stateOf(t); after != before {
		t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
	}
}
