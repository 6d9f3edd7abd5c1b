package hubblejson

import (
	"math/rand/v2"
	"testing"
)

func scanPlainRef(b []byte, j int) int {
	for j < len(b) && plainByte[b[j]] {
		j++
	}
	return j
}

// TestScanPlain compares scanPlain with a byte-by-byte scan at every start
// offset, with the stop byte at every position of the 16- and 8-byte blocks
// and past the end.
func TestScanPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	stops := []byte{'"', '\\', 0, 0x1f, 0x7f + 1, 0xff, 0xc3}
	for n := 0; n < 80; n++ {
		for trial := 0; trial < 30; trial++ {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(0x20 + r.IntN(0x7f-0x20)) // plain ASCII, '"' and '\\' included
				if b[i] == '"' || b[i] == '\\' {
					b[i] = 'a'
				}
			}
			if n > 0 && trial > 0 {
				b[r.IntN(n)] = stops[r.IntN(len(stops))]
			}
			for j := 0; j <= n; j++ {
				if got, want := scanPlain(b, j), scanPlainRef(b, j); got != want {
					t.Fatalf("scanPlain(%q, %d) = %d, want %d", b, j, got, want)
				}
			}
		}
	}
	// 0x7f (DEL) is plain in JSON; every other byte value as the stop.
	for c := 0; c < 256; c++ {
		b := []byte("0123456789abcdef0123456789abcdef")
		b[21] = byte(c)
		if got, want := scanPlain(b, 0), scanPlainRef(b, 0); got != want {
			t.Fatalf("byte %#x: %d, want %d", c, got, want)
		}
	}
}

func FuzzScanPlain(f *testing.F) {
	f.Add([]byte(`{"source":{"labels":["k8s:app=x"]}}`), 3)
	f.Add([]byte("0123456789abcdef\x00"), 0)
	f.Fuzz(func(t *testing.T, b []byte, j int) {
		if j < 0 || j > len(b) {
			return
		}
		if got, want := scanPlain(b, j), scanPlainRef(b, j); got != want {
			t.Fatalf("scanPlain(%q, %d) = %d, want %d", b, j, got, want)
		}
	})
}

func BenchmarkScanPlain(b *testing.B) {
	for _, n := range []int{8, 24, 64, 256} {
		buf := make([]byte, n+1)
		for i := range buf {
			buf[i] = 'a' + byte(i%26)
		}
		buf[n] = '"'
		b.Run(string(rune('0'+n/100))+string(rune('0'+n/10%10))+string(rune('0'+n%10)), func(b *testing.B) {
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				if scanPlain(buf, 0) != n {
					b.Fatal("wrong")
				}
			}
		})
	}
}
