package hubblepb_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblepb"
)

// filterFor builds a FlowFilter on one to three fields of pkg/filter's,
// with values taken from the flow f (so that it matches some flows) or
// not.
func filterFor(r *rand.Rand, f *flowpb.Flow) *flowpb.FlowFilter {
	ff := &flowpb.FlowFilter{}
	src, dst := f.GetSource(), f.GetDestination()
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	for n := 1 + r.IntN(3); n > 0; n-- {
		switch r.IntN(30) {
		case 0:
			ff.Uuid = append(ff.Uuid, f.GetUuid())
		case 1:
			ff.SourceIp = append(ff.SourceIp, pick(f.GetIP().GetSource(), "10.0.0.0/8", "fd00::/8"))
		case 2:
			ff.DestinationIp = append(ff.DestinationIp, pick(f.GetIP().GetDestination(), "0.0.0.0/0"))
		case 3:
			ff.SourcePod = append(ff.SourcePod, src.GetNamespace()+"/"+pick("", src.GetPodName()))
		case 4:
			ff.DestinationPod = append(ff.DestinationPod, dst.GetNamespace()+"/")
		case 5:
			ff.Verdict = append(ff.Verdict, flowpb.Verdict(r.IntN(8)))
		case 6:
			ff.EventType = append(ff.EventType, &flowpb.EventTypeFilter{Type: f.GetEventType().GetType(), MatchSubType: r.IntN(2) == 0, SubType: f.GetEventType().GetSubType()})
		case 7:
			ff.HttpStatusCode = append(ff.HttpStatusCode, pick("200", "4+", "5+"))
		case 8:
			ff.Protocol = append(ff.Protocol, pick("tcp", "udp", "icmp", "dns", "http", "icmpv6"))
		case 9:
			ff.SourcePort = append(ff.SourcePort, strconv.Itoa(int(f.GetL4().GetTCP().GetSourcePort())))
		case 10:
			ff.DestinationPort = append(ff.DestinationPort, pick(strconv.Itoa(int(f.GetL4().GetTCP().GetDestinationPort())), "53", "443"))
		case 11:
			ff.Reply = append(ff.Reply, r.IntN(2) == 0)
		case 12:
			ff.DnsQuery = append(ff.DnsQuery, pick(`svc\.cluster\.local\.$`, "^api", "amazonaws"))
		case 13:
			ff.SourceIdentity = append(ff.SourceIdentity, src.GetIdentity())
		case 14:
			ff.DestinationIdentity = append(ff.DestinationIdentity, dst.GetIdentity(), 2)
		case 15:
			ff.HttpMethod = append(ff.HttpMethod, pick("GET", "POST"))
		case 16:
			ff.HttpPath = append(ff.HttpPath, pick("^/api/", "healthz$"))
		case 17:
			ff.DestinationFqdn = append(ff.DestinationFqdn, pick("*.amazonaws.com", "*"))
		case 18:
			if l := src.GetLabels(); len(l) > 0 {
				ff.SourceLabel = append(ff.SourceLabel, l[r.IntN(len(l))])
			}
		case 19:
			ff.DestinationLabel = append(ff.DestinationLabel, pick("reserved:world", "k8s:k8s-app=kube-dns", "!k8s:app"))
		case 20:
			if l := f.GetNodeLabels(); len(l) > 0 {
				ff.NodeLabels = append(ff.NodeLabels, l[r.IntN(len(l))])
			}
		case 21:
			ff.DestinationService = append(ff.DestinationService, f.GetDestinationService().GetNamespace()+"/")
		case 22:
			ff.TcpFlags = append(ff.TcpFlags, &flowpb.TCPFlags{SYN: r.IntN(2) == 0, ACK: r.IntN(2) == 0})
		case 23:
			ff.NodeName = append(ff.NodeName, pick(f.GetNodeName(), "prod-kr1/*"))
		case 24:
			ff.IpVersion = append(ff.IpVersion, flowpb.IPVersion(1+r.IntN(2)))
		case 25:
			ff.TrafficDirection = append(ff.TrafficDirection, flowpb.TrafficDirection(r.IntN(3)))
		case 26:
			ff.SourceWorkload = append(ff.SourceWorkload, &flowpb.Workload{Kind: pick("Deployment", "StatefulSet")})
		case 27:
			ff.DestinationClusterName = append(ff.DestinationClusterName, dst.GetClusterName())
		case 28:
			ff.DropReasonDesc = append(ff.DropReasonDesc, f.GetDropReasonDesc())
		case 29:
			ff.SourceService = append(ff.SourceService, src.GetNamespace()+"/")
		}
	}
	return ff
}

// TestFilterDecidesAsOnTheWholeFlow: the filter program decides the same
// on the flow Decode leaves (the filter's fields only) as on the flow
// proto.Unmarshal gives, for filters over every field pkg/filter reads
// (allow and deny lists, with the pipeline's plan: the filter's fields
// and time and node_name, the docs example mask kept).
func TestFilterDecidesAsOnTheWholeFlow(t *testing.T) {
	msgs := genResponses(t, 3000, 8)
	var flows []*flowpb.Flow
	for _, w := range msgs {
		resp := &observerpb.GetFlowsResponse{}
		if err := proto.Unmarshal(w, resp); err != nil {
			t.Fatal(err)
		}
		flows = append(flows, resp.GetFlow())
	}
	r := rand.New(rand.NewPCG(5, 6))
	n := 300
	if testing.Short() || raceEnabled {
		n = 40
	}
	both := 0
	for i := range n {
		var allow, deny []*flowpb.FlowFilter
		for k := r.IntN(3); k >= 0; k-- {
			allow = append(allow, filterFor(r, flows[r.IntN(len(flows))]))
		}
		if i%2 == 0 {
			deny, allow = allow, nil
		}
		prog, err := filter.Compile(allow, deny)
		if err != nil {
			continue // a value the filter refuses (a port of 0)
		}
		fields := prog.Fields().Union(flow.Fields("time", "node_name"))
		d := hubblepb.NewDecoder(hubblepb.NewPlan(fields, flow.Fields(fieldmask.ParsePaths(fieldmask.DocsExample)...)))
		slot := &flowpb.Flow{}
		kept := 0
		for k, w := range msgs {
			if flows[k] == nil {
				continue
			}
			if _, err := d.Decode(w, slot); err != nil {
				t.Fatal(err)
			}
			got, want := prog.MatchFlow(slot), prog.MatchFlow(flows[k])
			if got != want {
				t.Fatalf("filter %v (fields %s): %v on the decoded flow, %v on the whole one\n%v", fmt.Sprint(allow, deny), fields, got, want, flows[k])
			}
			if got {
				kept++
				if err := d.Finish(slot); err != nil {
					t.Fatal(err)
				}
			}
		}
		if kept > 0 && kept < len(flows)-100 {
			both++
		}
	}
	if both < n/4 {
		t.Errorf("only %d of %d filters kept some flows and dropped others", both, n)
	}
}
