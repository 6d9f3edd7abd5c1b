package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/internal/daemon"
	"github.com/flowaudit/flowaudit/pkg/archive"
)

func init() { subcommands = append(subcommands, newVerifyCmd) }

func newVerifyCmd() *cobra.Command {
	var from, to, pubFile, format string
	var archiveDirs []string
	cmd := &cobra.Command{
		Use:   "verify --archive DIR",
		Short: "Check that the archive is complete and unmodified",
		Long: `verify recomputes, for every file committed in the date range, its SHA-256, size
and row count, and checks them against the manifests; it checks every node's
manifest hash chain and, with --public-key, every entry's ed25519 signature; and
it lists data files that no manifest knows. Missing, extra, modified or
truncated files and broken chains are reported, and the exit status is 2.
Keep the printed chain heads outside the archive (e.g. in the monthly report):
they prove that no entry was later removed from the end of a chain. In the
text output, a node or file name holding control or bidirectional-formatting
characters (or a quote or backslash) is printed Go-quoted, those characters
escaped.`,
		Example: `  flowaudit verify --archive /var/lib/flowaudit --from 2026-01-01 --to 2026-02-01
  flowaudit verify --archive /var/lib/flowaudit --public-key /etc/flowaudit/sign.pub --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f, t time.Time
			var err error
			if from != "" {
				if f, err = time.Parse("2006-01-02", from); err != nil {
					return fmt.Errorf("--from: %w", err)
				}
			}
			if to != "" {
				if t, err = time.Parse("2006-01-02", to); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
			}
			if !f.IsZero() && !t.IsZero() && !f.Before(t) {
				return fmt.Errorf("--from %s is not before --to %s: the range holds no day (--to is exclusive)", from, to)
			}
			var pub ed25519.PublicKey
			if pubFile != "" {
				if pub, err = daemon.LoadPublicKey(pubFile); err != nil {
					return fmt.Errorf("--public-key: %w", err)
				}
			}
			roots, err := archive.ExpandRoots(archiveDirs)
			if err != nil {
				return err
			}
			rep, err := archive.VerifyAll(roots, f, t, pub)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			case "text":
				fmt.Fprintf(out, "files %d, rows %d, manifest entries %d, files retired by retention %d, files merged by compaction %d, findings %d\n", rep.Files, rep.Rows, rep.Entries, rep.Retired, rep.Compacted, len(rep.Findings))
				for _, node := range slices.Sorted(maps.Keys(rep.ChainHeads)) {
					fmt.Fprintf(out, "chain head %s %s\n", textSafe(node), rep.ChainHeads[node])
				}
				for _, l := range rep.Pending {
					switch {
					case l.Cut:
						fmt.Fprintf(out, "log %s: cut (its rows are in committed files); removed when the writer opens the archive\n", textSafe(l.Name))
					default:
						fmt.Fprintf(out, "log %s: %d rows in %d records, durable, not yet in a closed file\n", textSafe(l.Name), l.Rows, l.Records)
					}
					if l.TornBytes > 0 {
						fmt.Fprintf(out, "log %s: torn tail of %d bytes (a write a crash cut short), cut when the writer opens the archive\n", textSafe(l.Name), l.TornBytes)
					}
				}
				for _, x := range rep.Findings {
					fmt.Fprintf(out, "%s\t%s\t%s\n", strings.ToUpper(x.Kind), textSafe(x.Path), textSafe(x.What))
				}
			default:
				return fmt.Errorf("--format %q: want text or json", format)
			}
			if !rep.OK() {
				return &exitError{code: 2, err: errors.New("verify: the archive has findings")}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&archiveDirs, "archive", nil, "archive root: a directory or s3://BUCKET/PREFIX (read in place with the AWS SDK's credentials); repeatable, or a quoted glob such as '/archive/*' (required)")
	f.StringVar(&from, "from", "", "first date to check (YYYY-MM-DD, UTC); default: all")
	f.StringVar(&to, "to", "", "end date, exclusive (YYYY-MM-DD, UTC), after --from; default: all")
	f.StringVar(&pubFile, "public-key", "", "ed25519 public key file (PEM as openssl pkey -pubout or flowaudit keygen write it, or 32 bytes raw, hex or base64): check every entry's signature")
	f.StringVar(&format, "format", "text", "text or json")
	_ = cmd.MarkFlagRequired("archive")
	return cmd
}

// textSafe returns s as it is, or, when it holds a character that a
// terminal would act on or that would hide or reorder the text around it
// (control characters such as newline, CR and ESC, bidirectional overrides
// such as U+202E, invalid UTF-8), or a quote or backslash, Go-quoted with
// those characters escaped: a node name or a file name in the archive
// cannot forge or disguise a line of verify's output.
func textSafe(s string) string {
	plain := true
	for _, r := range s {
		if r == utf8.RuneError || r == '"' || r == '\\' || !unicode.IsPrint(r) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return strconv.Quote(s)
}
