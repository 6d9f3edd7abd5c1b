package gen

// The flows themselves: a pod's request and its reply, drops, DNS and HTTP,
// the kubelet's probes.

import (
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// probe is the kubelet of the node whose turn it is probing the next of its
// pods (nil: the node has none), and sets the next probe's time.
func (g *Generator) probe() *flowpb.Flow {
	n, at := g.probeNode, g.nextProbe
	g.probeNode++
	if g.probeNode == len(g.nodes) {
		g.probeNode = 0
		g.nextProbe = g.nextProbe.Add(g.cfg.ProbeEvery)
	}
	var dst *pod
	for i := 0; i < len(g.pods) && dst == nil; i++ {
		p := g.pods[(g.probeTurn[n]+i)%len(g.pods)]
		if p.node == n {
			dst = p
			g.probeTurn[n] = (g.probeTurn[n] + i + 1) % len(g.pods)
		}
	}
	if dst == nil {
		return nil
	}
	if g.now.Before(at) {
		g.now = at
	}
	host := fmt.Sprintf("172.18.0.%d", 2+n)
	f := &flowpb.Flow{
		Time:             timestamppb.New(at),
		Uuid:             g.uuid(),
		Verdict:          flowpb.Verdict_FORWARDED,
		NodeName:         g.cfg.Cluster + "/" + g.nodes[n],
		NodeLabels:       g.nodeLabels(n),
		Source:           &flowpb.Endpoint{Identity: 1, Labels: []string{"reserved:host"}},
		Destination:      g.endpoint(dst),
		Type:             flowpb.FlowType_L3_L4,
		EventType:        &flowpb.CiliumEventType{Type: 4},
		TrafficDirection: flowpb.TrafficDirection_INGRESS,
		IP:               &flowpb.IP{Source: host, Destination: dst.ip, IpVersion: flowpb.IPVersion_IPv4},
		L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{
			SourcePort: uint32(32768 + g.rng.IntN(28000)), DestinationPort: dst.ports[0], Flags: &flowpb.TCPFlags{SYN: true},
		}}},
		TraceObservationPoint: flowpb.TraceObservationPoint_TO_ENDPOINT,
		TraceReason:           flowpb.TraceReason_NEW,
		IsReply:               wrapperspb.Bool(false),
	}
	f.Summary = summary(f)
	return f
}

func (g *Generator) nodeLabels(n int) []string {
	node := g.nodes[n]
	return []string{
		"kubernetes.io/arch=amd64", "kubernetes.io/hostname=" + node, "kubernetes.io/os=linux",
		"node.kubernetes.io/instance-type=m6i.2xlarge", "topology.kubernetes.io/zone=ap-northeast-2" + string(rune('a'+n%3)),
	}
}

func (g *Generator) endpoint(p *pod) *flowpb.Endpoint {
	return &flowpb.Endpoint{
		ID: p.id, Identity: p.identity, ClusterName: g.cfg.Cluster, Namespace: p.ns,
		Labels: p.labels, PodName: p.name, Workloads: []*flowpb.Workload{p.workload},
	}
}

func worldEndpoint(id uint32) *flowpb.Endpoint {
	return &flowpb.Endpoint{Identity: id, Labels: []string{"reserved:world"}}
}

func (g *Generator) mac() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", g.rng.IntN(256)&^1|2, g.rng.IntN(256), g.rng.IntN(256), g.rng.IntN(256), g.rng.IntN(256), g.rng.IntN(256))
}

// flow builds one new flow (and possibly queues its reply).
func (g *Generator) flow() *flowpb.Flow {
	r := g.rng
	src := g.pods[r.IntN(len(g.pods))]
	node := g.nodes[src.node]
	f := &flowpb.Flow{
		Time:             g.tick(),
		Uuid:             g.uuid(),
		Verdict:          flowpb.Verdict_FORWARDED,
		NodeName:         g.cfg.Cluster + "/" + node,
		NodeLabels:       g.nodeLabels(src.node),
		Source:           g.endpoint(src),
		Type:             flowpb.FlowType_L3_L4,
		EventType:        &flowpb.CiliumEventType{Type: 4},
		TrafficDirection: flowpb.TrafficDirection_EGRESS,
		Ethernet:         &flowpb.Ethernet{Source: g.mac(), Destination: g.mac()},
		Interface:        &flowpb.NetworkInterface{Index: uint32(10 + r.IntN(40)), Name: fmt.Sprintf("lxc%08x", r.Uint32())},
	}
	sport := uint32(32768 + r.IntN(28000))
	roll := r.Float64()
	var dst *pod
	var dport uint32
	var l7 string
	switch {
	case roll < 0.12 && len(g.dns) > 0: // DNS lookups
		dst = g.dns[r.IntN(len(g.dns))]
		dport = 53
		if r.IntN(3) == 0 {
			l7 = "dns"
		}
	case roll < 0.22: // egress to the internet
		dport = []uint32{443, 443, 443, 80, 22}[r.IntN(5)]
	case roll < 0.35 && len(g.apis) > 0:
		dst = g.apis[r.IntN(len(g.apis))]
		dport = dst.ports[0]
		if r.IntN(2) == 0 {
			l7 = "http"
		}
	default:
		dst = g.pods[r.IntN(len(g.pods))]
		dport = dst.ports[r.IntN(len(dst.ports))]
		if r.IntN(200) == 0 {
			dport = []uint32{22, 3389, 6443, 3306, 1521}[r.IntN(5)]
		}
	}
	ipv6 := src.ip6 != "" && dst != nil && dst.ip6 != ""
	if dst != nil {
		f.Destination = g.endpoint(dst)
		f.IP = &flowpb.IP{Source: src.ip, Destination: dst.ip, IpVersion: flowpb.IPVersion_IPv4}
		if ipv6 {
			f.IP = &flowpb.IP{Source: src.ip6, Destination: dst.ip6, IpVersion: flowpb.IPVersion_IPv6}
		}
		if r.IntN(4) == 0 {
			f.DestinationService = &flowpb.Service{Name: dst.app, Namespace: dst.ns}
		}
	} else {
		id := []uint32{2, 2, 9}[r.IntN(3)]
		f.Destination = worldEndpoint(id)
		f.DestinationNames = []string{worldNames[r.IntN(len(worldNames))]}
		f.IP = &flowpb.IP{Source: src.ip, Destination: fmt.Sprintf("%d.%d.%d.%d", 3+r.IntN(200), r.IntN(256), r.IntN(256), 1+r.IntN(254)), IpVersion: flowpb.IPVersion_IPv4}
		if r.IntN(20) == 0 {
			f.IP.SourceXlated = fmt.Sprintf("172.18.0.%d", 2+src.node)
		}
	}
	switch {
	case dport == 53:
		f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: sport, DestinationPort: 53}}}
	case r.IntN(60) == 0:
		icmp := &flowpb.ICMPv4{Type: 8}
		f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: icmp}}
		if ipv6 {
			f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: 128}}}
		}
		dport = 0
	default:
		flags := &flowpb.TCPFlags{SYN: true}
		switch r.IntN(5) {
		case 1:
			flags = &flowpb.TCPFlags{ACK: true}
		case 2:
			flags = &flowpb.TCPFlags{PSH: true, ACK: true}
		case 3:
			flags = &flowpb.TCPFlags{FIN: true, ACK: true}
		case 4:
			if r.IntN(10) == 0 {
				flags = &flowpb.TCPFlags{RST: true}
			}
		}
		f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: sport, DestinationPort: dport, Flags: flags}}}
	}
	f.TraceObservationPoint = []flowpb.TraceObservationPoint{flowpb.TraceObservationPoint_TO_ENDPOINT, flowpb.TraceObservationPoint_TO_STACK, flowpb.TraceObservationPoint_FROM_ENDPOINT, flowpb.TraceObservationPoint_TO_OVERLAY}[r.IntN(4)]
	f.TraceReason = flowpb.TraceReason_NEW
	f.IsReply = wrapperspb.Bool(false)
	f.Summary = summary(f)

	v := r.Float64()
	switch {
	case v < g.cfg.DropRatio:
		g.drop(f, dst)
		return f
	case v < g.cfg.DropRatio+g.cfg.AuditRatio:
		f.Verdict = flowpb.Verdict_AUDIT
		f.EventType = &flowpb.CiliumEventType{Type: 5}
		f.TraceObservationPoint = 0
		f.PolicyMatchType = 1
		f.EgressAllowedBy = []*flowpb.Policy{g.policy(src.ns, "audit-egress")}
		return f
	}
	switch l7 {
	case "dns":
		g.dnsFlow(f)
	case "http":
		g.httpFlow(f)
	default:
		if r.IntN(8) == 0 {
			f.EventType = &flowpb.CiliumEventType{Type: 5}
			f.TraceObservationPoint = 0
			f.PolicyMatchType = uint32(1 + r.IntN(3))
			f.IngressAllowedBy = []*flowpb.Policy{g.policy(f.GetDestination().GetNamespace(), "allow-ingress")}
		} else if r.IntN(2) == 0 && f.GetL4().GetTCP() != nil {
			g.queueReply(f)
		}
	}
	return f
}

func (g *Generator) policy(ns, name string) *flowpb.Policy {
	if ns == "" {
		ns = "default"
	}
	return &flowpb.Policy{
		Name: name, Namespace: ns, Kind: "CiliumNetworkPolicy", Revision: uint64(1 + g.rng.IntN(400)),
		Labels: []string{
			"k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
			"k8s:io.cilium.k8s.policy.name=" + name,
			"k8s:io.cilium.k8s.policy.namespace=" + ns,
		},
	}
}

func (g *Generator) drop(f *flowpb.Flow, dst *pod) {
	r := g.rng
	reason := dropReasons[r.IntN(len(dropReasons))]
	f.Verdict = flowpb.Verdict_DROPPED
	f.DropReason = uint32(reason)
	f.DropReasonDesc = reason
	f.EventType = &flowpb.CiliumEventType{Type: 1, SubType: int32(reason)}
	f.TraceObservationPoint = 0
	f.TraceReason = 0
	f.IsReply = nil
	f.File = &flowpb.FileInfo{Name: []string{"bpf_lxc.c", "bpf_host.c", "bpf_overlay.c"}[r.IntN(3)], Line: uint32(1000 + r.IntN(2000))}
	if reason == flowpb.DropReason_POLICY_DENIED {
		if dst == nil {
			f.EgressDeniedBy = []*flowpb.Policy{g.policy(f.GetSource().GetNamespace(), "default-deny-egress")}
		} else {
			f.TrafficDirection = flowpb.TrafficDirection_INGRESS
			f.IngressDeniedBy = []*flowpb.Policy{g.policy(dst.ns, "deny-"+dst.app)}
		}
	}
}

func (g *Generator) queueReply(req *flowpb.Flow) {
	tcp := req.GetL4().GetTCP()
	rep := &flowpb.Flow{
		Verdict:               flowpb.Verdict_FORWARDED,
		NodeName:              req.NodeName,
		NodeLabels:            req.NodeLabels,
		Source:                req.Destination,
		Destination:           req.Source,
		SourceNames:           req.DestinationNames,
		Type:                  flowpb.FlowType_L3_L4,
		EventType:             &flowpb.CiliumEventType{Type: 4},
		TrafficDirection:      req.TrafficDirection,
		TraceObservationPoint: flowpb.TraceObservationPoint_TO_ENDPOINT,
		TraceReason:           flowpb.TraceReason_REPLY,
		IsReply:               wrapperspb.Bool(true),
		Reply:                 true,
		Ethernet:              &flowpb.Ethernet{Source: req.GetEthernet().GetDestination(), Destination: req.GetEthernet().GetSource()},
		Interface:             req.Interface,
		L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{
			SourcePort: tcp.DestinationPort, DestinationPort: tcp.SourcePort, Flags: &flowpb.TCPFlags{SYN: tcp.GetFlags().GetSYN(), ACK: true},
		}}},
	}
	if ip := req.GetIP(); ip != nil {
		rep.IP = &flowpb.IP{Source: ip.Destination, Destination: ip.Source, IpVersion: ip.IpVersion}
	}
	rep.Summary = summary(rep)
	g.pending = rep
}

func (g *Generator) dnsFlow(f *flowpb.Flow) {
	r := g.rng
	f.Type = flowpb.FlowType_L7
	f.EventType = &flowpb.CiliumEventType{Type: 129}
	f.TraceObservationPoint = 0
	f.TraceReason = 0
	name := worldNames[r.IntN(len(worldNames))]
	if r.IntN(2) == 0 {
		p := g.pods[r.IntN(len(g.pods))]
		name = p.app + "." + p.ns + ".svc.cluster.local"
	}
	dns := &flowpb.DNS{Query: name + ".", ObservationSource: "proxy", Qtypes: []string{"A"}, Rrtypes: []string{"A"}}
	l7 := &flowpb.Layer7{Type: flowpb.L7FlowType_REQUEST}
	if r.IntN(2) == 0 {
		l7.Type = flowpb.L7FlowType_RESPONSE
		l7.LatencyNs = uint64(200000 + r.IntN(5000000))
		f.IsReply = wrapperspb.Bool(true)
		f.Reply = true
		if r.IntN(12) == 0 {
			dns.Rcode = 3 // NXDOMAIN
			dns.Rrtypes = nil
		} else {
			dns.Ips = []string{fmt.Sprintf("10.96.%d.%d", r.IntN(256), 1+r.IntN(254))}
			dns.Ttl = uint32(30 * (1 + r.IntN(10)))
		}
	}
	l7.Record = &flowpb.Layer7_Dns{Dns: dns}
	f.L7 = l7
	if dns.Rcode == 0 && len(dns.Ips) > 0 {
		f.Summary = fmt.Sprintf("DNS Answer %q TTL: %d (Proxy %s A)", dns.Ips[0], dns.Ttl, dns.Query)
	} else {
		f.Summary = fmt.Sprintf("DNS Query %s A", dns.Query)
	}
}

var httpPaths = []string{"/api/v1/accounts", "/api/v1/transfers", "/api/v2/payments", "/healthz", "/metrics", "/api/v1/customers/search", "/login", "/api/v1/cards/authorize"}

func (g *Generator) httpFlow(f *flowpb.Flow) {
	r := g.rng
	f.Type = flowpb.FlowType_L7
	f.EventType = &flowpb.CiliumEventType{Type: 129}
	f.TraceObservationPoint = 0
	f.TraceReason = 0
	host := f.GetDestination().GetPodName()
	if s := f.GetDestinationService(); s != nil {
		host = s.Name + "." + s.Namespace + ".svc.cluster.local"
	}
	path := httpPaths[r.IntN(len(httpPaths))]
	url := "http://" + host + path
	if r.IntN(3) == 0 {
		url += fmt.Sprintf("?page=%d&size=%d&sort=<created>", r.IntN(50), 10*(1+r.IntN(10)))
	}
	method := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}[r.IntN(6)]
	h := &flowpb.HTTP{Method: method, Url: url, Protocol: "HTTP/1.1", Headers: []*flowpb.HTTPHeader{
		{Key: ":scheme", Value: "http"}, {Key: "User-Agent", Value: "okhttp/4.12.0"},
		{Key: "X-Request-Id", Value: g.uuid()},
	}}
	l7 := &flowpb.Layer7{Type: flowpb.L7FlowType_REQUEST}
	if r.IntN(2) == 0 {
		l7.Type = flowpb.L7FlowType_RESPONSE
		l7.LatencyNs = uint64(1000000 + r.IntN(80000000))
		h.Code = []uint32{200, 200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 500, 502, 503}[r.IntN(14)]
		f.IsReply = wrapperspb.Bool(true)
		f.Reply = true
	}
	l7.Record = &flowpb.Layer7_Http{Http: h}
	f.L7 = l7
	if r.IntN(10) == 0 {
		f.TraceContext = &flowpb.TraceContext{Parent: &flowpb.TraceParent{TraceId: fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())}}
	}
	if h.Code != 0 {
		f.Summary = fmt.Sprintf("HTTP/1.1 %d %dms (%s %s)", h.Code, l7.LatencyNs/1000000, method, url)
	} else {
		f.Summary = fmt.Sprintf("HTTP/1.1 %s %s", method, url)
	}
}

func summary(f *flowpb.Flow) string {
	if tcp := f.GetL4().GetTCP(); tcp != nil {
		var fl []string
		for _, x := range []struct {
			on   bool
			name string
		}{{tcp.GetFlags().GetSYN(), "SYN"}, {tcp.GetFlags().GetACK(), "ACK"}, {tcp.GetFlags().GetPSH(), "PSH"}, {tcp.GetFlags().GetFIN(), "FIN"}, {tcp.GetFlags().GetRST(), "RST"}} {
			if x.on {
				fl = append(fl, x.name)
			}
		}
		return "TCP Flags: " + strings.Join(fl, ", ")
	}
	if f.GetL4().GetUDP() != nil {
		return "UDP"
	}
	return "ICMP EchoRequest"
}
