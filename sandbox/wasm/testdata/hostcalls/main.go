// hostcalls uses the dsbx host module: it logs a line and reports progress
// twice. Given "oob" on stdin, it asks the host to log memory outside its own.
package main

import (
	"io"
	"os"
	"unsafe"
)

//go:wasmimport dsbx log
func hostLog(ptr unsafe.Pointer, n uint32)

//go:wasmimport dsbx progress
func hostProgress(done, total int64)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	if string(in) == "oob" {
		hostLog(unsafe.Pointer(uintptr(0xFFFFFF00)), 1024)
		return
	}
	msg := []byte("hello from dsbx.log")
	hostLog(unsafe.Pointer(&msg[0]), uint32(len(msg)))
	hostProgress(5, 10)
	hostProgress(10, 10)
	os.Stdout.WriteString("done")
}
