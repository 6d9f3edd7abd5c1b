package archive

import (
	"sync"
)

// fileBufs are a flows file's buffers: its column buffers and the rows it
// holds before shredding them (up to the writer's rowBufRows of ~1 KB each).
type fileBufs struct {
	leaves [shredLeaves]leaf
	rows   []FlowRow
}

// spareBufs keeps the buffers of closed files for the next ones: grown anew
// for every file, the column buffers would be most of an import's
// allocations, and the rows a large part of the CPU of a daemon committing
// every ~8k rows (BenchmarkProcessAndCommit; bench/README.md).
var spareBufs bufPool

type bufPool struct {
	mu    sync.Mutex
	free  []*fileBufs
	limit int // the buffers kept: at least maxSpareBufs (see keep)
}

// maxSpareBufs is the least number of buffers kept: as many as files a
// writer has open at once in the usual case (one node; an import of a few).
const maxSpareBufs = 3

// keep is told, before a commit closes them, how many flows files a writer
// has open: that many buffers are kept (at least maxSpareBufs), since the
// next files of the same partitions take them again. A stream of many
// nodes' flows (an import of a cluster's logs, a Relay) would otherwise
// grow a file's buffers anew for all but three of its partitions at every
// commit (bench/README.md, "Archive", has the import this costs). A commit
// of fewer files lets the extra buffers go.
func (p *bufPool) keep(files int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = max(files, maxSpareBufs)
	if len(p.free) > p.limit {
		clear(p.free[p.limit:])
		p.free = p.free[:p.limit]
	}
}

func (p *bufPool) get() *fileBufs {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		l := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return l
	}
	return new(fileBufs)
}

func (p *bufPool) put(l *fileBufs) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < max(p.limit, maxSpareBufs) {
		p.free = append(p.free, l)
	}
}
