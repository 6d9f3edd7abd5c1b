package ingest

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestPauseFor(t *testing.T) {
	const every, budget = 10 * time.Millisecond, 52 << 10
	for _, c := range []struct {
		burst   int
		elapsed time.Duration
		want    time.Duration
	}{
		{0, time.Second, every},                                     // nothing read: the longest
		{8 << 10, 10 * time.Millisecond, every},                     // 0.8 MB/s: the budget takes 65 ms
		{208 << 10, 10 * time.Millisecond, 2500 * time.Microsecond}, // 20.8 MB/s: 2.5 ms
		{320 << 10, 10 * time.Millisecond, 1625 * time.Microsecond}, // 32 MB/s (20k flows/s of 1.6 KB)
	} {
		if got := pauseFor(every, budget, c.burst, c.elapsed); got != c.want {
			t.Errorf("pauseFor(%d bytes in %v) = %v, want %v", c.burst, c.elapsed, got, c.want)
		}
	}
}

// countingConn counts the reads that reach the socket.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

// TestPacedConnReadsInBursts: a sender writing 1 KiB every millisecond is
// read in bursts (about one read per pause, not one per write), and every
// byte arrives, in order.
func TestPacedConnReadsInBursts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var sent bytes.Buffer
	const writes = 200
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		msg := make([]byte, 1<<10)
		for i := 0; i < writes; i++ {
			for j := range msg {
				msg[j] = byte(i + j)
			}
			sent.Write(msg)
			if _, err := c.Write(msg); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	raw, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cc := &countingConn{Conn: raw}
	pc := &pacedConn{Conn: cc, every: 10 * time.Millisecond, budget: 52 << 10}
	var got []byte
	buf := make([]byte, 32<<10) // as gRPC's transport reads
	for {
		n, err := pc.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, sent.Bytes()) {
		t.Fatalf("read %d bytes, sent %d: not the same", len(got), sent.Len())
	}
	// 200 ms of writes, a pause of 10 ms after each read that empties the
	// socket: about 20 reads (fewer when the sender is slower).
	if cc.reads > writes/4 {
		t.Fatalf("%d reads for %d writes: not read in bursts", cc.reads, writes)
	}
	t.Logf("%d reads for %d writes", cc.reads, writes)
}
