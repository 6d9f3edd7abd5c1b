package hubblejson_test

import (
	"fmt"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// BenchmarkEagerVsLazy decodes generated lines with a filter on verdict
// (and time, node_name: the pipeline's) and the docs-example mask or none
// (every field kept), keeping
// a share of the flows (Finish called for them), with the decoder pinned
// to two passes (lazy: the filter's fields, then the kept ones for kept
// flows) or one (eager: the kept fields of every flow). Where eager gets
// cheaper is the share above which Decoder chooses it (eagerAbove).
func BenchmarkEagerVsLazy(b *testing.B) {
	lines := genLines(b, 4096, 3)
	for _, mask := range []struct {
		name string
		keep flow.FieldSet
	}{{"docs", flow.Fields(fieldmask.ParsePaths(fieldmask.DocsExample)...)}, {"all", flow.AllFields()}} {
		plan := hubblejson.NewPlan(flow.Fields("verdict", "time", "node_name"), mask.keep)
		benchModes(b, lines, mask.name, plan)
	}
}

func benchModes(b *testing.B, lines [][]byte, mask string, plan *hubblejson.Plan) {
	for _, pct := range []int{2, 10, 20, 33, 50, 100} {
		for _, eager := range []bool{false, true} {
			mode := "lazy"
			if eager {
				mode = "eager"
			}
			b.Run(fmt.Sprintf("%s/kept=%d%%/%s", mask, pct, mode), func(b *testing.B) {
				d := hubblejson.NewDecoder(plan)
				var arena flow.Arena
				d.SetArena(&arena)
				f := &flowpb.Flow{}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i%len(lines) == 0 {
						arena.Reset()
					}
					d.PinEager(eager)
					if _, err := d.Decode(lines[i%len(lines)], f); err != nil {
						continue // a non-flow line
					}
					if i*37%100 < pct {
						if err := d.Finish(f); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
