// Command cilium-export is the baseline of bench/: Cilium v1.18.4's exporter
// code (protojson decode, filters.Apply, fieldmask.Copy, json.Encoder) over
// events.log files, with the flags of `flowaudit filter`.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/flowaudit/flowaudit/test/compat/ciliumexport"
)

func main() {
	var cfg ciliumexport.Config
	var mask, out string
	flag.StringVar(&cfg.Allowlist, "allowlist", "", "hubble-export-allowlist")
	flag.StringVar(&cfg.Denylist, "denylist", "", "hubble-export-denylist")
	flag.StringVar(&mask, "fieldmask", "", "hubble-export-fieldmask (comma-separated)")
	flag.StringVar(&out, "o", "-", "output file")
	flag.Parse()
	if mask != "" {
		cfg.FieldMask = strings.Split(mask, ",")
	}
	var w io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	var r io.Reader = os.Stdin
	if flag.NArg() > 0 {
		var rs []io.Reader
		for _, p := range flag.Args() {
			f, err := os.Open(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			defer f.Close()
			rs = append(rs, f)
		}
		r = io.MultiReader(rs...)
	}
	c, err := ciliumexport.Run(r, w, cfg)
	fmt.Fprintf(os.Stderr, "read %d written %d errors %d\n", c.Read, c.Written, c.Errors)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
