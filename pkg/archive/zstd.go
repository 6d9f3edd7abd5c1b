package archive

import (
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// pageWindow is the zstd window of page compression. Pages are at most the
// page buffer size (4 MiB), so a larger window finds no more matches; it
// only costs memory.
const pageWindow = 4 << 20

// zstdCodec is the parquet page codec of every file the writer creates: one
// process-wide zstd encoder, safe for concurrent use, whose per-goroutine
// states (and their match history) live as long as the process.
//
// parquet-go's zstd.Codec keeps its encoders in a sync.Pool of the codec
// value: a codec per file, or a GC between two files, allocated and zeroed a
// fresh 16 MiB history for every file (most of a commit's CPU and page
// faults when files are small, as they are at low flow rates).
type zstdCodec struct {
	dec pqzstd.Codec // decoding is parquet-go's (readers use their own registry anyway)
}

var (
	pageCodec   = &zstdCodec{}
	pageEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
			// One state: the writer compresses from one goroutine, and
			// EncodeAll takes the states round robin, so every extra state
			// would hold its own 8 MiB of tables and history.
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(pageWindow),
			zstd.WithLowerEncoderMem(true),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			panic("archive: zstd encoder: " + err.Error()) // constant options: cannot fail
		}
		return e
	})
)

var _ compress.Codec = (*zstdCodec)(nil)

func (*zstdCodec) String() string                            { return "ZSTD" }
func (*zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) { return c.encode(dst, src), nil }

func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) { return c.dec.Decode(dst, src) }

// encode compresses src onto dst[:0].
func (*zstdCodec) encode(dst, src []byte) []byte {
	return pageEncoder().EncodeAll(src, dst[:0])
}
