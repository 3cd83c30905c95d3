// Command env prints what it can see of its environment.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	t0 := time.Now()
	time.Sleep(time.Millisecond)
	fmt.Printf("args=%q\nenv=%q\nnow=%s\nmonotonic=%v\n", os.Args, os.Environ(), time.Now().UTC().Format(time.RFC3339), time.Since(t0) > 0)
}
