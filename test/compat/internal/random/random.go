// Package random makes random inputs for the compatibility tests: flow
// filters over every FlowFilter field with values seen in generated flows,
// and field masks over every Flow path.
package random

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Source returns a random source seeded from the environment variable env,
// or from the clock (logged, so that a failure can be repeated).
func Source(t testing.TB, env string, stream uint64) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (%s to repeat)", seed, env)
	return rand.New(rand.NewPCG(seed, stream))
}

// pick returns a random element of the values seen in flows, or a miss.
func pick[T any](r *rand.Rand, vals []T, miss T) T {
	if len(vals) == 0 || r.IntN(8) == 0 {
		return miss
	}
	return vals[r.IntN(len(vals))]
}

// Pool holds values seen in flows, for filters that match some of them.
type Pool struct {
	uuids, ips, pods, nss, svcs, labels, names, nodes, clusters, urls, methods, queries []string
	identities                                                                          []uint32
	ports                                                                               []string
}

// NewPool collects the values filters pick from (every 37th flow).
func NewPool(flows []*flowpb.Flow) *Pool {
	p := &Pool{}
	for i, f := range flows {
		if i%37 != 0 {
			continue
		}
		p.uuids = append(p.uuids, f.GetUuid())
		p.ips = append(p.ips, f.GetIP().GetSource(), f.GetIP().GetDestination())
		for _, ep := range []*flowpb.Endpoint{f.GetSource(), f.GetDestination()} {
			p.pods = append(p.pods, ep.GetPodName())
			p.nss = append(p.nss, ep.GetNamespace())
			p.labels = append(p.labels, ep.GetLabels()...)
			p.identities = append(p.identities, ep.GetIdentity())
			p.clusters = append(p.clusters, ep.GetClusterName())
		}
		p.svcs = append(p.svcs, f.GetDestinationService().GetName())
		p.names = append(p.names, f.GetDestinationNames()...)
		p.nodes = append(p.nodes, f.GetNodeName())
		if h := f.GetL7().GetHttp(); h != nil {
			p.urls = append(p.urls, h.GetUrl())
			p.methods = append(p.methods, h.GetMethod())
		}
		if d := f.GetL7().GetDns(); d != nil {
			p.queries = append(p.queries, d.GetQuery())
		}
		if tcp := f.GetL4().GetTCP(); tcp != nil {
			p.ports = append(p.ports, strconv.Itoa(int(tcp.GetDestinationPort())), strconv.Itoa(int(tcp.GetSourcePort())))
		}
	}
	return p
}

// Filter builds a FlowFilter with one to three random fields.
func Filter(r *rand.Rand, p *Pool) *flowpb.FlowFilter {
	ff := &flowpb.FlowFilter{}
	for n := 1 + r.IntN(3); n > 0; n-- {
		switch r.IntN(34) {
		case 0:
			ff.Uuid = append(ff.Uuid, pick(r, p.uuids, "nope"))
		case 1:
			ff.SourceIp = append(ff.SourceIp, pick(r, p.ips, "10.0.0.0/8"))
		case 2:
			ff.DestinationIp = append(ff.DestinationIp, pick(r, []string{"10.100.0.0/16", "0.0.0.0/0", "fd00::/8"}, pick(r, p.ips, "1.1.1.1")))
		case 3:
			ff.SourcePod = append(ff.SourcePod, pick(r, p.nss, "kube-system")+"/"+pick(r, []string{"", "pay", "core"}, ""))
		case 4:
			pod := pick(r, p.pods, "xwing")
			if pod == "" {
				pod = "x"
			}
			ff.DestinationPod = append(ff.DestinationPod, pod, "/"+pod[:1])
		case 5:
			ff.Verdict = append(ff.Verdict, flowpb.Verdict(r.IntN(8)))
		case 6:
			ff.EventType = append(ff.EventType, &flowpb.EventTypeFilter{Type: []int32{0, 1, 2, 4, 5, 129, 130}[r.IntN(7)], MatchSubType: r.IntN(2) == 0, SubType: int32(r.IntN(4))})
		case 7:
			ff.HttpStatusCode = append(ff.HttpStatusCode, pick(r, []string{"200", "404", "5+", "40+", "2+", "1+"}, "503"))
		case 8:
			ff.Protocol = append(ff.Protocol, pick(r, []string{"tcp", "UDP", "icmp", "icmpv6", "dns", "http", "kafka", "sctp", "icmpv4"}, "tcp"))
		case 9:
			ff.SourcePort = append(ff.SourcePort, pick(r, p.ports, "80"))
		case 10:
			ff.DestinationPort = append(ff.DestinationPort, pick(r, p.ports, "0443"))
		case 11:
			ff.Reply = append(ff.Reply, r.IntN(2) == 0)
		case 12:
			ff.DnsQuery = append(ff.DnsQuery, pick(r, []string{`svc\.cluster\.local\.$`, "^api", "amazonaws"}, "x"))
		case 13:
			ff.SourceIdentity = append(ff.SourceIdentity, pick(r, p.identities, 2))
		case 14:
			ff.DestinationIdentity = append(ff.DestinationIdentity, pick(r, []uint32{2, 9, 1, 7}, pick(r, p.identities, 3)))
		case 15:
			ff.HttpMethod = append(ff.HttpMethod, pick(r, []string{"get", "POST", "Delete"}, pick(r, p.methods, "PUT")))
		case 16:
			ff.HttpPath = append(ff.HttpPath, pick(r, []string{"^/api/v1/", "healthz$", "transfers"}, "/"))
		case 17:
			ff.SourceFqdn = append(ff.SourceFqdn, pick(r, []string{"*.amazonaws.com", "api.*", "*"}, pick(r, p.names, "x.com")))
		case 18:
			ff.DestinationFqdn = append(ff.DestinationFqdn, pick(r, []string{"*.amazonaws.com", "api.github.com.", "*.b.example.com", "*.or.kr"}, pick(r, p.names, "x.com")))
		case 19:
			ff.SourceLabel = append(ff.SourceLabel, pick(r, []string{"k8s:tier=backend", "tier in (data,frontend)", "!k8s:version", "app", "tier!=data", "container:app=y", "k8s:compliance.bank.example/pci", "any:tier notin (backend)"}, pick(r, p.labels, "k8s:app=x")))
		case 20:
			ff.DestinationLabel = append(ff.DestinationLabel, pick(r, []string{"reserved:world", "k8s:k8s-app=kube-dns", "tier=data,k8s:app.kubernetes.io/managed-by=argocd"}, pick(r, p.labels, "app=x")))
		case 21:
			ff.NodeLabels = append(ff.NodeLabels, pick(r, []string{"kubernetes.io/os=linux", "topology.kubernetes.io/zone in (ap-northeast-2a)", "!node-role"}, "x=y"))
		case 22:
			ff.SourceService = append(ff.SourceService, pick(r, p.nss, "default")+"/")
		case 23:
			ff.DestinationService = append(ff.DestinationService, pick(r, p.svcs, "svc"))
		case 24:
			ff.TcpFlags = append(ff.TcpFlags, &flowpb.TCPFlags{SYN: r.IntN(2) == 0, ACK: r.IntN(2) == 0, FIN: r.IntN(4) == 0})
		case 25:
			ff.NodeName = append(ff.NodeName, pick(r, []string{"prod-kr1/node-0*", "node-01", "*/node-02", "default/kind-worker", "kind-*"}, pick(r, p.nodes, "a/b")))
		case 26:
			ff.IpVersion = append(ff.IpVersion, flowpb.IPVersion(r.IntN(3)))
		case 27:
			ff.TraceId = append(ff.TraceId, pick(r, []string{"", "abc"}, "x"))
		case 28:
			ff.TrafficDirection = append(ff.TrafficDirection, flowpb.TrafficDirection(r.IntN(3)))
		case 29:
			ff.SourceWorkload = append(ff.SourceWorkload, &flowpb.Workload{Name: pick(r, []string{"", "core-api"}, "x"), Kind: pick(r, []string{"", "Deployment", "StatefulSet"}, "")})
		case 30:
			ff.DestinationClusterName = append(ff.DestinationClusterName, pick(r, p.clusters, "other"))
		case 31:
			ff.DropReasonDesc = append(ff.DropReasonDesc, flowpb.DropReason([]int32{133, 155, 151, 0}[r.IntN(4)]))
		case 32:
			ff.Interface = append(ff.Interface, &flowpb.NetworkInterface{Index: uint32(r.IntN(4)), Name: pick(r, []string{"", "eth0"}, "")})
		case 33:
			ff.HttpUrl = append(ff.HttpUrl, pick(r, []string{`\?page=`, "svc.cluster.local/api", "<created>"}, "."))
		}
	}
	return ff
}

// AllPaths lists every valid field-mask path of flow.Flow down to depth 4:
// descent through singular messages only, repeated/map fields as leaves.
func AllPaths() []string {
	var out []string
	var walk func(md protoreflect.MessageDescriptor, prefix string, depth int)
	walk = func(md protoreflect.MessageDescriptor, prefix string, depth int) {
		fds := md.Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			p := prefix + string(fd.Name())
			out = append(out, p)
			if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && depth < 4 {
				walk(fd.Message(), p+".", depth+1)
			}
		}
	}
	walk((&flowpb.Flow{}).ProtoReflect().Descriptor(), "", 1)
	return out
}

// CrossesOneof reports whether the normalised paths go nested into two
// different members of one oneof (the case Cilium 1.18 gets wrong).
func CrossesOneof(paths []string) bool {
	fm := &fieldmaskpb.FieldMask{Paths: append([]string(nil), paths...)}
	fm.Normalize()
	md := (&flowpb.Flow{}).ProtoReflect().Descriptor()
	members := map[string]map[string]bool{} // parent path + oneof name -> members with nested paths
	for _, p := range fm.GetPaths() {
		parts := strings.Split(p, ".")
		cur := md
		for i, part := range parts {
			fd := cur.Fields().ByName(protoreflect.Name(part))
			if oo := fd.ContainingOneof(); oo != nil && !oo.IsSynthetic() {
				k := strings.Join(parts[:i], ".") + "/" + string(oo.Name())
				if members[k] == nil {
					members[k] = map[string]bool{}
				}
				members[k][part] = true
			}
			if i < len(parts)-1 {
				cur = fd.Message()
			}
		}
	}
	for _, m := range members {
		if len(m) > 1 {
			return true
		}
	}
	return false
}

// Mask picks one to twelve of paths (repeats possible).
func Mask(r *rand.Rand, paths []string) []string {
	n := 1 + r.IntN(12)
	out := make([]string, n)
	for i := range out {
		out[i] = paths[r.IntN(len(paths))]
	}
	return out
}
