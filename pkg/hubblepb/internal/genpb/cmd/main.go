// Command genpb writes pkg/hubblepb/decode_gen.go (run by go generate).
package main

import (
	"log"
	"os"

	"github.com/flowaudit/flowaudit/pkg/hubblepb/internal/genpb"
)

func main() {
	src, err := genpb.Source()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("decode_gen.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
