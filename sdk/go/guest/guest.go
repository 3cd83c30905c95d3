// Package guest is the Go SDK for dsbx WebAssembly jobs: the small amount of
// glue a Go program needs to be a guest of the platform's Wasm sandbox
// (package sandbox/wasm), as the ABI in sandbox/wasm/ABI.md defines it.
//
// # The ABI in brief
//
// A job is a WASI preview 1 command, built with
//
//	GOOS=wasip1 GOARCH=wasm go build -o job.wasm ./myjob
//
// Its stdin is the allowed view of one dataset as an Arrow IPC stream
// (schema, record batches, end-of-stream marker), holding exactly the fields
// the module declares, in declared order. Its result is the Arrow IPC stream
// it writes to stdout; it counts only if the program exits with status 0.
// Stderr is a free-form log. Two optional host functions, dsbx.log and
// dsbx.progress, append a log line and report progress. The guest has no
// files, no network, a fixed wall clock and seeded randomness.
//
// The module must carry a dsbx.fields custom section naming the fields it
// reads (and may carry a dsbx.output section declaring an aggregate result).
// Go's linker cannot emit custom sections, so add them after building:
//
//	dsbx wasm declare job.wasm --fields region,income --group-by region
//
// or, from Go, with wasm.DeclareFields and wasm.DeclareOutput.
//
// # Using the package
//
// Read the input one record batch at a time, so a large view never has to
// fit in the guest's memory, and write the result with a Writer:
//
//	func main() {
//		guest.Main(func() error {
//			var n int64
//			err := guest.Each(func(b arrow.RecordBatch) error {
//				n += b.NumRows()
//				return nil
//			})
//			if err != nil {
//				return err
//			}
//			schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
//			out := guest.Output(schema)
//			// ... build a batch with n, out.Write(batch) ...
//			return out.Close()
//		})
//	}
//
// Every function that touches stdin or stdout has a variant taking an
// io.Reader or io.Writer (Read, NewWriter), so a job's logic can be unit
// tested natively, without Wasm. Outside wasip1, Log and Progress write to
// stderr instead of calling the host.
//
// See sdk/go/examples for complete jobs.
package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// bufSize is the read buffer in front of stdin and the write buffer in
// front of stdout: it turns the IPC reader's many small reads into few
// fd_read host calls.
const bufSize = 256 << 10

// Input returns a reader of the job's input, the Arrow IPC stream on stdin.
// Call Next and RecordBatch on it batch by batch; each batch is valid until
// the next call to Next. Check Err after the last Next: a cut or corrupt
// stream is an error there, not a short input.
func Input() (*ipc.Reader, error) { return NewReader(os.Stdin) }

// NewReader returns a reader of the Arrow IPC stream r (buffered). It is
// Input for a stream other than stdin, e.g. in a native test.
func NewReader(r io.Reader) (*ipc.Reader, error) {
	rd, err := ipc.NewReader(bufio.NewReaderSize(r, bufSize))
	if err != nil {
		return nil, fmt.Errorf("read the input Arrow IPC stream: %w", err)
	}
	return rd, nil
}

// Each calls fn for every record batch of the input on stdin, in order, and
// returns fn's first error or the stream's. A batch is valid only during its
// call: Retain it to keep it longer.
func Each(fn func(arrow.RecordBatch) error) error { return Read(os.Stdin, fn) }

// Read is Each over the Arrow IPC stream r.
func Read(r io.Reader, fn func(arrow.RecordBatch) error) error {
	rd, err := NewReader(r)
	if err != nil {
		return err
	}
	defer rd.Release()
	for rd.Next() {
		if err := fn(rd.RecordBatch()); err != nil {
			return err
		}
	}
	if err := rd.Err(); err != nil {
		return fmt.Errorf("read the input Arrow IPC stream: %w", err)
	}
	return nil
}

// Writer writes the job's result as an Arrow IPC stream. Close it to write
// the end-of-stream marker and flush: a result is complete only after Close
// returned nil.
type Writer struct {
	*ipc.Writer
	buf *bufio.Writer
}

// Output returns a Writer of the result on stdout, with the given schema.
// Every batch written must have this schema.
func Output(schema *arrow.Schema) *Writer { return NewWriter(os.Stdout, schema) }

// NewWriter is Output writing to w instead of stdout.
func NewWriter(w io.Writer, schema *arrow.Schema) *Writer {
	buf := bufio.NewWriterSize(w, bufSize)
	return &Writer{Writer: ipc.NewWriter(buf, ipc.WithSchema(schema)), buf: buf}
}

// Close ends the stream and flushes it.
func (w *Writer) Close() error {
	err := w.Writer.Close()
	if ferr := w.buf.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("write the output Arrow IPC stream: %w", err)
	}
	return nil
}

// Log appends one line to the job's log (fmt.Sprintf of format and args; a
// trailing newline is dropped). In the sandbox the line goes through the
// dsbx.log host function; natively, to stderr. The host cuts a line at 4096
// bytes and keeps the log up to its cap (64 KiB by default).
func Log(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	hostLog(msg)
}

// Progress reports that done of total units (e.g. rows) are processed;
// total 0 means unknown. The host keeps the last report and shows it while
// the job runs. It is cheap but a host call: report per batch, not per row.
func Progress(done, total int64) { hostProgress(done, total) }

// Fail writes err to stderr as the job's last log line and exits with
// status 1, so the run fails and its output is discarded. The host shows
// the last log line as the reason.
func Fail(err error) {
	if err == nil {
		err = errors.New("failed")
	}
	fmt.Fprintf(os.Stderr, "error: %v\n", err)
	os.Exit(1)
}

// Main runs fn and Fails if it returns an error (or panics, which exits
// non-zero anyway, with the panic as the log's reason).
func Main(fn func() error) {
	if err := fn(); err != nil {
		Fail(err)
	}
}
