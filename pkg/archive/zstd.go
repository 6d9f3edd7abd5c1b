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

// zstdCodec is parquet-go's page codec for the stats files a writer creates
// (flowWriter compresses the flows files' pages with pageLevel.encode):
// one process-wide zstd encoder per level, safe for concurrent use, whose
// state (and its match history) lives as long as the process.
//
// parquet-go's zstd.Codec keeps its encoders in a sync.Pool of the codec
// value: a codec per file, or a GC between two files, allocated and zeroed a
// fresh 16 MiB history for every file (most of a commit's CPU and page
// faults when files are small, as they are at low flow rates).
type zstdCodec struct {
	level pageLevel
	dec   pqzstd.Codec // decoding is parquet-go's (readers use their own registry anyway)
}

// pageLevel is how hard the pages of a flows file are compressed.
type pageLevel uint8

const (
	// pagesBetter: zstd's "better compression", for files that stay as
	// written: imports, compaction's output, a daemon without compaction.
	pagesBetter pageLevel = iota
	// pagesDefault: zstd's default level, for the files a daemon commits
	// when compaction rewrites closed days at pagesBetter anyway
	// (Config.ProvisionalPages): less compression time, for slightly more
	// bytes on a busy node's small files (~8k rows, a commit every other
	// rotation; bench/README.md).
	pagesDefault
)

var (
	// pageCodecs are the stats table's codecs (parquet-go's writer), by
	// level: a writer's stats files take its flows files' level, so that a
	// daemon with compaction makes one encoder only.
	pageCodecs   = [...]*zstdCodec{pagesBetter: {level: pagesBetter}, pagesDefault: {level: pagesDefault}}
	pageEncoders = [...]func() *zstd.Encoder{
		pagesBetter:  newPageEncoder(zstd.SpeedBetterCompression),
		pagesDefault: newPageEncoder(zstd.SpeedDefault),
	}
)

// newPageEncoder returns the process-wide page encoder of one level, made
// at its first use (a daemon with compaction makes the better one only
// when it compacts).
func newPageEncoder(level zstd.EncoderLevel) func() *zstd.Encoder {
	return sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(level),
			// One state: the writer compresses from one goroutine, and
			// EncodeAll takes the states round robin, so every extra state
			// would hold its own tables and history.
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
}

// encode compresses src onto dst[:0] at level l.
func (l pageLevel) encode(dst, src []byte) []byte {
	return pageEncoders[l]().EncodeAll(src, dst[:0])
}

var _ compress.Codec = (*zstdCodec)(nil)

func (*zstdCodec) String() string                            { return "ZSTD" }
func (*zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) { return c.level.encode(dst, src), nil }

func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) { return c.dec.Decode(dst, src) }
