package hubblepb_test

import (
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblepb"
)

// benchCase is one of the decodings the gRPC source does per message:
// the flows it is given, the plan, and the filter whose decision decides
// whether Finish is called.
type benchCase struct {
	name         string
	filter, mask string // allowlist JSON, field mask
	// rejected: only flows the filter rejects (the filter-only decode).
	rejected bool
}

var benchCases = []benchCase{
	{name: "full"},
	{name: "docs-mask", mask: fieldmask.DocsExample},
	{name: "allow-dropped", filter: `{"verdict":["DROPPED"]}`, mask: fieldmask.DocsExample, rejected: true},
}

// plan builds the case's plan as the pipeline does: the filter's fields
// plus time and node_name (every flow's stats), the mask's plus the same.
func (c benchCase) plan(tb testing.TB) (*hubblepb.Plan, *filter.Program) {
	allow, err := filter.ParseFilters(c.filter)
	if err != nil {
		tb.Fatal(err)
	}
	prog, err := filter.Compile(allow, nil)
	if err != nil {
		tb.Fatal(err)
	}
	keep := flow.AllFields()
	if c.mask != "" {
		keep = flow.Fields(append(fieldmask.ParsePaths(c.mask), "time", "node_name")...)
	}
	filterFields := prog.Fields()
	if !filterFields.IsEmpty() {
		filterFields = filterFields.Union(flow.Fields("time", "node_name"))
	}
	return hubblepb.NewPlan(filterFields, keep), prog
}

// benchMessages are generated flows in wire format (for a rejecting case,
// those its filter rejects).
func (c benchCase) messages(tb testing.TB, prog *filter.Program) ([][]byte, int64) {
	var out [][]byte
	var size int64
	for _, w := range genResponses(tb, 6000, 11) {
		resp := &observerpb.GetFlowsResponse{}
		if err := proto.Unmarshal(w, resp); err != nil || resp.GetFlow() == nil {
			continue
		}
		if c.rejected && prog.MatchFlow(resp.GetFlow()) {
			continue
		}
		out = append(out, w)
		size += int64(len(w))
	}
	return out, size / int64(len(out))
}

// BenchmarkDecode: a GetFlowsResponse from the wire, proto.Unmarshal into a
// fresh message (what a source without this package does) against a
// Decoder into a reused slot (Decode, the filter's decision, Finish for a
// flow it keeps). Each message is first copied into a receive buffer, as
// gRPC reads it from its connection, so that it is decoded from the cache
// as it would be (the copy is in both).
func BenchmarkDecode(b *testing.B) {
	for _, c := range benchCases {
		p, prog := c.plan(b)
		msgs, size := c.messages(b, prog)
		b.Run(c.name+"/unmarshal", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			var buf []byte
			cpu := cpuTime()
			for i := 0; b.Loop(); i++ {
				buf = append(buf[:0], msgs[i%len(msgs)]...)
				resp := &observerpb.GetFlowsResponse{}
				if err := proto.Unmarshal(buf, resp); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
		b.Run(c.name+"/hubblepb", func(b *testing.B) {
			d := hubblepb.NewDecoder(p)
			var arena flow.Arena
			d.SetArena(&arena)
			f := &flowpb.Flow{}
			b.SetBytes(size)
			b.ReportAllocs()
			var buf []byte
			cpu := cpuTime()
			for i := 0; b.Loop(); i++ {
				if i%len(msgs) == 0 {
					arena.Reset()
				}
				buf = append(buf[:0], msgs[i%len(msgs)]...)
				if _, err := d.Decode(buf, f); err != nil {
					b.Fatal(err)
				}
				if prog.MatchFlow(f) {
					if err := d.Finish(f); err != nil {
						b.Fatal(err)
					}
				} else if !c.rejected {
					b.Fatal("rejected")
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// reportCPU reports the process's CPU time per operation since start
// (cpu-ns/op): on a shared machine, ns/op also counts the time the
// benchmark waited for a CPU.
func reportCPU(b *testing.B, start time.Duration) {
	if start > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkEagerVsLazy: the costs a Decoder with a filter chooses between
// (eagerAbove): two passes for a kept flow (Decode with the filter's
// fields, Finish with the kept ones), one for a rejected flow, and one
// pass with the kept fields for any flow (eager). One pass is cheaper when
// the share of flows kept is over (eager - rejected) / (kept - rejected).
func BenchmarkEagerVsLazy(b *testing.B) {
	msgs := genResponses(b, 6000, 13)
	for _, keep := range []struct {
		name string
		fs   flow.FieldSet
	}{
		{"docs-mask", flow.Fields(append(fieldmask.ParsePaths(fieldmask.DocsExample), "time", "node_name")...)},
		{"all", flow.AllFields()},
	} {
		p := hubblepb.NewPlan(flow.Fields("verdict", "time", "node_name"), keep.fs)
		for _, mode := range []string{"kept", "rejected", "eager"} {
			b.Run(keep.name+"/"+mode, func(b *testing.B) {
				d := hubblepb.NewDecoder(p)
				var arena flow.Arena
				d.SetArena(&arena)
				f := &flowpb.Flow{}
				var buf []byte
				cpu := cpuTime()
				for i := 0; b.Loop(); i++ {
					if i%len(msgs) == 0 {
						arena.Reset()
					}
					d.PinEager(mode == "eager")
					buf = append(buf[:0], msgs[i%len(msgs)]...)
					if _, err := d.Decode(buf, f); err != nil {
						b.Fatal(err)
					}
					if mode != "rejected" {
						if err := d.Finish(f); err != nil {
							b.Fatal(err)
						}
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
}
