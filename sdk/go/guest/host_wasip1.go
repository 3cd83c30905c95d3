//go:build wasip1

package guest

import "unsafe"

//go:wasmimport dsbx log
func dsbxLog(ptr unsafe.Pointer, n uint32)

//go:wasmimport dsbx progress
func dsbxProgress(done, total int64)

func hostLog(msg string) {
	if msg == "" {
		msg = " "
	}
	dsbxLog(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func hostProgress(done, total int64) { dsbxProgress(done, total) }
