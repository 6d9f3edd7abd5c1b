// Command gendec writes pkg/hubblejson/codec_gen.go (run by go generate).
package main

import (
	"log"
	"os"

	"github.com/flowaudit/flowaudit/pkg/hubblejson/internal/gendec"
)

func main() {
	src, err := gendec.Source()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("codec_gen.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
