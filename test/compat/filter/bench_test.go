package filter_test

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/cilium/cilium/pkg/hubble"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/filters"
	"github.com/cilium/cilium/pkg/hubble/parser/fieldmask"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	ourmask "github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
)

// The benchmark filter sets (bench/README.md): the same filters and the same
// generated flows for Cilium's code and ours.
var benchSets = []struct{ name, allow, deny string }{
	{"verdict", `{"verdict":["DROPPED"]}`, ``},
	{"verdict+kube-system", `{"verdict":["DROPPED"]}`, `{"source_pod":["kube-system/"]}{"destination_pod":["kube-system/"]}`},
	{"heavy", `{"source_label":["k8s:app=payments-api"]}{"destination_label":["k8s:tier=data,k8s:app.kubernetes.io/managed-by=argocd"]}{"destination_port":["5432","6379"]}` +
		`{"http_path":["^/api/v[0-9]+/transfers"],"http_method":["POST"]}{"destination_fqdn":["*.amazonaws.com"]}{"dns_query":["\\.or\\.kr\\.$"]}{"http_status_code":["5+"]}`,
		`{"source_pod":["kube-system/"]}{"destination_pod":["kube-system/"]}{"source_label":["k8s:app=prometheus"]}{"destination_port":["9090"]}{"node_labels":["node-role.kubernetes.io/control-plane"]}`},
}

func BenchmarkFilter(b *testing.B) {
	flows, _ := events(b, 4096)
	for _, s := range benchSets {
		allow, _ := hubble.ParseFlowFilters(s.allow)
		deny, _ := hubble.ParseFlowFilters(s.deny)
		ca, cd, err := cilium(b, allow, deny)
		if err != nil {
			b.Fatal(err)
		}
		prog, err := filter.Compile(allow, deny)
		if err != nil {
			b.Fatal(err)
		}
		evs := make([]*v1.Event, len(flows))
		for i, f := range flows {
			evs[i] = &v1.Event{Event: f}
		}
		b.Run(s.name+"/cilium", func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; i < b.N; i++ {
				if filters.Apply(ca, cd, evs[i%len(evs)]) {
					n++
				}
			}
			_ = n
		})
		for i, f := range flows {
			if prog.MatchFlow(f) != filters.Apply(ca, cd, evs[i]) {
				b.Fatal("decisions differ")
			}
		}
		b.Run(s.name+"/flowaudit", func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; i < b.N; i++ {
				if prog.MatchFlow(flows[i%len(flows)]) {
					n++
				}
			}
			_ = n
		})
	}
}

const docMask = "time,source.namespace,source.pod_name,destination.namespace,destination.pod_name,l4,IP,node_name,is_reply,verdict,drop_reason_desc"

func BenchmarkFieldMaskCopy(b *testing.B) {
	flows, _ := events(b, 4096)
	paths := ourmask.ParsePaths(docMask)
	fm, _ := fieldmaskpb.New(&flowpb.Flow{}, paths...)
	cm, err := fieldmask.New(fm)
	if err != nil {
		b.Fatal(err)
	}
	cdst := &flowpb.Flow{}
	cm.Alloc(cdst.ProtoReflect())
	om, err := ourmask.Compile(paths)
	if err != nil {
		b.Fatal(err)
	}
	odst := &flowpb.Flow{}
	b.Run("cilium", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			cm.Copy(cdst.ProtoReflect(), flows[i%len(flows)].ProtoReflect())
		}
	})
	b.Run("flowaudit", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			om.Copy(odst, flows[i%len(flows)])
		}
	})
}
