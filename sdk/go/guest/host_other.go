//go:build !wasip1

package guest

import (
	"fmt"
	"os"
)

// Outside the sandbox, log lines and progress go to stderr.

func hostLog(msg string) { fmt.Fprintln(os.Stderr, msg) }

func hostProgress(done, total int64) {
	fmt.Fprintf(os.Stderr, "progress: %d/%d\n", done, total)
}
