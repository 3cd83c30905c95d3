// Command escape tries to reach the host filesystem and network.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	f, err := os.Open("/etc/passwd")
	if err == nil {
		b := make([]byte, 64)
		n, _ := f.Read(b)
		fmt.Printf("open: OK %q\n", b[:n])
	} else {
		fmt.Printf("open: %v\n", err)
	}
	_, err = os.ReadFile("passwd")
	fmt.Printf("readfile: %v\n", err)
	_, err = os.ReadDir("/")
	fmt.Printf("readdir: %v\n", err)
	c, err := net.Dial("tcp", "127.0.0.1:80")
	if err == nil {
		c.Close()
		fmt.Println("dial: OK")
	} else {
		fmt.Printf("dial: %v\n", err)
	}
}
