// Command trapmid writes part of its output, then panics.
package main

import (
	"os"
	"strings"
)

func main() {
	os.Stdout.Write([]byte(strings.Repeat("partial ", 1<<16)))
	var m map[string]int
	m["x"] = 1 // assignment to nil map: runtime panic mid-output
}
