// Command flowaudit archives Hubble flows as Parquet evidence and reports on them.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "flowaudit:", err)
		os.Exit(exitCode(err))
	}
}
