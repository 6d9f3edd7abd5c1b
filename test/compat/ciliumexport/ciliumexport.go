// Package ciliumexport runs Cilium v1.18.4's own exporter code over events.log
// lines: protojson decoding, pkg/hubble.ParseFlowFilters, and
// pkg/hubble/exporter (filters.Apply, fieldmask.Copy, the JSON encoder). It is
// the oracle that `flowaudit filter` must match byte for byte, and the
// baseline its speed is measured against.
package ciliumexport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/cilium/cilium/pkg/hubble"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/exporter"
	nodeTypes "github.com/cilium/cilium/pkg/node/types"
	"google.golang.org/protobuf/encoding/protojson"
)

// Config is an exporter configuration in cilium-config's syntax.
type Config struct {
	Allowlist, Denylist string
	FieldMask           []string
}

// Counts are what the exporter read and wrote.
type Counts struct{ Read, Written, Errors int }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// countingWriter counts Write calls: the exporter writes one line per call.
type countingWriter struct {
	w io.Writer
	n *int
}

func (c countingWriter) Write(p []byte) (int, error) { *c.n++; return c.w.Write(p) }

// Run exports every line of r to w as Cilium's exporter would.
func Run(r io.Reader, w io.Writer, cfg Config) (Counts, error) {
	var c Counts
	allow, err := hubble.ParseFlowFilters(cfg.Allowlist)
	if err != nil {
		return c, fmt.Errorf("allowlist: %w", err)
	}
	deny, err := hubble.ParseFlowFilters(cfg.Denylist)
	if err != nil {
		return c, fmt.Errorf("denylist: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	log := slog.New(slog.DiscardHandler)
	opts := []exporter.Option{
		exporter.WithNewWriterFunc(func() (io.WriteCloser, error) { return nopCloser{countingWriter{bw, &c.Written}}, nil }),
		exporter.WithAllowList(log, allow),
		exporter.WithDenyList(log, deny),
	}
	if len(cfg.FieldMask) > 0 {
		opts = append(opts, exporter.WithFieldMask(cfg.FieldMask))
	}
	exp, err := exporter.NewExporter(log, opts...)
	if err != nil {
		return c, err
	}
	defer exp.Stop()
	ctx := context.Background()
	br := bufio.NewReaderSize(r, 1<<20)
	unmarshal := protojson.UnmarshalOptions{DiscardUnknown: true}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			c.Read++
			c.Errors++
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 {
			c.Read++
			var ev observerpb.ExportEvent
			if uerr := unmarshal.Unmarshal(line, &ev); uerr != nil {
				c.Errors++
			} else if e := toEvent(&ev); e != nil {
				if xerr := exp.Export(ctx, e); xerr != nil {
					c.Errors++
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return c, err
		}
	}
	return c, bw.Flush()
}

// toEvent turns a decoded line back into the event the agent had: non-flow
// events carry the agent's own node name, which the exporter writes.
func toEvent(ev *observerpb.ExportEvent) *v1.Event {
	e := &v1.Event{Timestamp: ev.GetTime()}
	switch x := ev.GetResponseTypes().(type) {
	case *observerpb.ExportEvent_Flow:
		e.Event = x.Flow
	case *observerpb.ExportEvent_LostEvents:
		nodeTypes.SetName(ev.GetNodeName())
		e.Event = x.LostEvents
	case *observerpb.ExportEvent_AgentEvent:
		nodeTypes.SetName(ev.GetNodeName())
		e.Event = x.AgentEvent
	case *observerpb.ExportEvent_DebugEvent:
		nodeTypes.SetName(ev.GetNodeName())
		e.Event = x.DebugEvent
	default:
		return nil
	}
	return e
}
