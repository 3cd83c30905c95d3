// Command bigout writes without end, ignoring errors.
package main

import "os"

func main() {
	b := make([]byte, 64<<10)
	for {
		os.Stdout.Write(b)
	}
}
