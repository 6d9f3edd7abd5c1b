package ingest

import (
	"context"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// How the stream's connection is read. Hubble sends one GetFlowsResponse
// per flow, as the flow comes; what the stream costs the collector beyond
// decoding and archiving is paid per message received and per wake-up.
const (
	// streamWindow is the HTTP/2 flow-control window of the stream and of
	// the connection, fixed. gRPC's default starts at 64 KiB and grows it
	// from a bandwidth estimate, for which it sends a ping (and a window
	// update) on the first data after each ping's answer: with messages
	// that trickle in, nearly one per message. A fixed window sends a
	// window update per 256 KiB read, and bounds what gRPC holds received
	// and not yet read.
	streamWindow = 1 << 20
	// readEvery is the longest a read that emptied the agent's unix socket
	// is followed by no other, and readBudget the most bytes such a pause
	// lets gather at the rate the socket was last read at (pacedConn): a
	// quarter of Linux's default socket buffer (net.core.wmem_default,
	// 208 KiB), which the agent's writes then never fill.
	readEvery  = 10 * time.Millisecond
	readBudget = 52 << 10
)

// msgPool holds the buffers gRPC receives messages in, which the ring then
// holds until their batch is written: sized closer to a flow's message
// (1-2 KiB with every field, 100-300 bytes masked) than gRPC's default
// tiers (256 bytes, then 4 KiB), which would hold 2-3 times the bytes.
var msgPool = mem.NewTieredBufferPool(256, 512, 1<<10, 2<<10, 4<<10, 8<<10, 16<<10, 32<<10, 1<<20)

// dialOptions are the options of the stream's connection.
func (s *GRPCSource) dialOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(streamWindow),
		experimental.WithBufferPool(msgPool),
	}
	if path, ok := strings.CutPrefix(s.target, "unix://"); ok {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, err
			}
			return &pacedConn{Conn: c, every: readEvery, budget: readBudget}, nil
		}))
	}
	return opts
}

// pacedConn is the agent's unix socket, read in bursts: after a read that
// emptied the socket (it returned less than asked), the next waits for
// a pause. Read as they come, the agent's messages wake the process for
// each flow (the read, gRPC's transport goroutine, the stream's);
// meanwhile they gather in the socket's buffer and are read in one go.
// The pause is every, or less: as long as budget bytes take to arrive at
// the rate of the last burst (its bytes over the time since the previous
// one), so that the socket's buffer does not fill and the agent's writes
// never wait for it (a paused reader must not slow the agent: its ring
// would overrun). A message waits at most every longer, far less than a
// batch's FlushEvery.
type pacedConn struct {
	net.Conn
	every  time.Duration
	budget int
	next   time.Time // no read before (zero: none pending)
	last   time.Time // when the socket was last emptied
	burst  int       // bytes read since
}

func (c *pacedConn) Read(p []byte) (int, error) {
	if !c.next.IsZero() {
		if d := time.Until(c.next); d > 0 {
			time.Sleep(d)
		}
	}
	n, err := c.Conn.Read(p)
	c.burst += n
	if n == len(p) {
		c.next = time.Time{}
		return n, err
	}
	now := time.Now()
	pause := c.every
	if !c.last.IsZero() {
		pause = pauseFor(c.every, c.budget, c.burst, now.Sub(c.last))
	}
	c.last, c.burst, c.next = now, 0, now.Add(pause)
	return n, err
}

// pauseFor is the pause after a burst of burst bytes that arrived in
// elapsed: how long budget bytes take at that rate, at most every.
func pauseFor(every time.Duration, budget, burst int, elapsed time.Duration) time.Duration {
	if burst <= 0 {
		return every
	}
	return min(every, time.Duration(float64(elapsed)*float64(budget)/float64(burst)))
}
