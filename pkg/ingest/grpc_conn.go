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
	// readEvery is how long a read that emptied the agent's unix socket is
	// followed by no other (pacedConn).
	readEvery = 10 * time.Millisecond
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
			return &pacedConn{Conn: c, every: readEvery}, nil
		}))
	}
	return opts
}

// pacedConn is the agent's unix socket, read in bursts: after a read that
// emptied the socket (it returned less than asked), the next waits until
// every has passed. Read as they come, the agent's messages wake the
// process for each flow (the read, gRPC's transport goroutine, the
// stream's); meanwhile they gather in the socket's buffer and are read in
// one go. When the agent sends faster than the socket's buffer empties in
// every, its writes wait (and its ring holds the flows): reads then
// return full buffers and are not paced. A message waits at most every
// longer, far less than a batch's FlushEvery.
type pacedConn struct {
	net.Conn
	every time.Duration
	next  time.Time // no read before (zero: none pending)
}

func (c *pacedConn) Read(p []byte) (int, error) {
	if !c.next.IsZero() {
		if d := time.Until(c.next); d > 0 {
			time.Sleep(d)
		}
	}
	n, err := c.Conn.Read(p)
	if n < len(p) {
		c.next = time.Now().Add(c.every)
	} else {
		c.next = time.Time{}
	}
	return n, err
}
