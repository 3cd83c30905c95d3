// Command random prints random bytes from crypto/rand and math/rand/v2.
package main

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
)

func main() {
	b := make([]byte, 16)
	rand.Read(b)
	fmt.Printf("%x %d\n", b, mrand.Int64())
}
