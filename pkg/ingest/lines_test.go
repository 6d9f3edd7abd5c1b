package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readLines reads every line of lr: the lines, "TOO LONG" for an over-long
// one, "DAMAGE@off" for the damage that ends it, each with its number.
func readLines(t testing.TB, lr *LineReader) []string {
	t.Helper()
	var out []string
	for {
		b, err := lr.Next()
		var d *InputDamage
		switch {
		case errors.Is(err, io.EOF):
			return out
		case errors.Is(err, ErrLineTooLong):
			out = append(out, itoa(lr.Line())+" TOO LONG")
		case errors.As(err, &d):
			out = append(out, itoa(lr.Line())+" DAMAGE@"+itoa(d.Offset))
		case err != nil:
			t.Fatal(err)
		default:
			out = append(out, itoa(lr.Line())+" "+string(b))
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestLineReader: lines as the sources cut them: '\r' before the newline
// trimmed, empty lines kept (numbered), a line of exactly max bytes
// delivered and a longer one skipped to its newline, whether it ends the
// input or not, and a last line without its newline delivered as it is.
func TestLineReader(t *testing.T) {
	const max = 8
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"plain", "a\nbb\n", []string{"1 a", "2 bb"}},
		{"crlf", "a\r\nb\r\r\n", []string{"1 a", "2 b\r"}},
		{"empty lines", "\n\na\n\n", []string{"1 ", "2 ", "3 a", "4 "}},
		{"no final newline", "a\nbc\r", []string{"1 a", "2 bc\r"}},
		{"exactly max", "12345678\n123456789\nok\n", []string{"1 12345678", "2 TOO LONG", "3 ok"}},
		{"max with cr", "1234567\r\n12345678\r\n", []string{"1 1234567", "2 TOO LONG"}},
		{"long at the end", "a\n" + strings.Repeat("x", 40), []string{"1 a", "2 TOO LONG"}},
		{"long across reads", strings.Repeat("y", 100) + "\nz\n", []string{"1 TOO LONG", "2 z"}},
		{"nothing", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time: a line split across every read.
			for _, r := range []io.Reader{strings.NewReader(tc.in), &oneByte{strings.NewReader(tc.in)}} {
				lr := newLineReader("in", r, max)
				got := readLines(t, lr)
				lr.Close()
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Errorf("%T: got %q, want %q", r, got, tc.want)
				}
			}
		})
	}
}

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

// TestOpenLinesGzipDamage: a .gz is read whatever its name; one cut short
// gives its complete lines, then the damage, at the line it cut and the
// content byte where reading stopped, and then the end.
func TestOpenLinesGzipDamage(t *testing.T) {
	var content bytes.Buffer
	for range 2000 {
		content.WriteString(`{"flow":{"verdict":"FORWARDED","node_name":"k8s1"}}` + "\n")
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(content.Bytes())
	zw.Close()
	dir := t.TempDir()
	whole, cut := filepath.Join(dir, "events.log"), filepath.Join(dir, "cut.log")
	if err := os.WriteFile(whole, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cut, gz.Bytes()[:gz.Len()/2], 0o600); err != nil {
		t.Fatal(err)
	}
	lr, err := OpenLines(whole)
	if err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, lr); len(got) != 2000 || got[1999] != `2000 {"flow":{"verdict":"FORWARDED","node_name":"k8s1"}}` {
		t.Fatalf("%d lines, last %q", len(got), got[len(got)-1])
	}
	lr.Close()

	lr, err = OpenLines(cut)
	if err != nil {
		t.Fatal(err)
	}
	defer lr.Close()
	got := readLines(t, lr)
	last := got[len(got)-1]
	lines := int64(len(got) - 1)
	if want := itoa(lines+1) + " DAMAGE@"; !strings.HasPrefix(last, want) {
		t.Fatalf("last %q, want %q...", last, want)
	}
	if off := lr.off; off < lines*int64(len(`{"flow":{"verdict":"FORWARDED","node_name":"k8s1"}}`)+1) || lines == 0 || lines >= 2000 {
		t.Fatalf("%d lines, damage at %d", lines, off)
	}
	if _, err := lr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the damage: %v", err)
	}
	if _, err := OpenLines(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file opened")
	}
}

// FuzzLineReader: whatever the input and however it is read, the lines are
// those of a split at '\n' (less a '\r' before it), those over the limit
// reported as too long instead.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\r\nbb\n\nccccccccccccccc\nd"), uint8(1))
	f.Add([]byte("xxxxxxxxxxxxxxxxxxxxxxxxx"), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const max = 8
		var want []string
		parts := bytes.Split(in, []byte{'\n'})
		for i, p := range parts {
			last := i == len(parts)-1
			if last && len(p) == 0 {
				break
			}
			n := itoa(int64(i + 1))
			switch {
			case len(p) > max:
				want = append(want, n+" TOO LONG")
			case last:
				want = append(want, n+" "+string(p))
			default:
				want = append(want, n+" "+string(bytes.TrimSuffix(p, []byte{'\r'})))
			}
		}
		var r io.Reader = bytes.NewReader(in)
		if chunk > 0 {
			r = &chunked{r, int(chunk)}
		}
		lr := newLineReader("in", r, max)
		defer lr.Close()
		got := readLines(t, lr)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(c.n, len(p))]) }
