// Command panicky panics.
package main

func main() {
	panic("guest says boom")
}
