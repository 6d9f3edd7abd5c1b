package archive

import (
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// FlowBuilder turns flow rows back into the Flow messages they were made
// from (fillRow's inverse): a column that is NULL is a field the flow did not
// have, or that the field mask removed. A field that held its zero value is
// NULL too, so a message present with only zero fields (`"ethernet":{}`)
// comes back absent, as the exporter's JSON of it would read.
//
// The messages Flow fills are owned by the builder and reused by its next
// call: a Flow is valid until then (gRPC's Send marshals before it returns).
// A FlowBuilder is not safe for concurrent use.
type FlowBuilder struct {
	time                    timestamppb.Timestamp
	isReply                 wrapperspb.BoolValue
	ethernet                flowpb.Ethernet
	ip                      flowpb.IP
	l4                      flowpb.Layer4
	tcp                     flowpb.TCP
	tcpFlags                flowpb.TCPFlags
	udp                     flowpb.UDP
	sctp                    flowpb.SCTP
	icmp4                   flowpb.ICMPv4
	icmp6                   flowpb.ICMPv6
	l4TCP                   flowpb.Layer4_TCP
	l4UDP                   flowpb.Layer4_UDP
	l4SCTP                  flowpb.Layer4_SCTP
	l4ICMP4                 flowpb.Layer4_ICMPv4
	l4ICMP6                 flowpb.Layer4_ICMPv6
	tunnel                  flowpb.Tunnel
	tunnelIP                flowpb.IP
	tunnelL4                flowpb.Layer4
	src, dst                flowpb.Endpoint
	l7                      flowpb.Layer7
	dns                     flowpb.DNS
	http                    flowpb.HTTP
	kafka                   flowpb.Kafka
	l7DNS                   flowpb.Layer7_Dns
	l7HTTP                  flowpb.Layer7_Http
	l7Kafka                 flowpb.Layer7_Kafka
	eventType               flowpb.CiliumEventType
	srcSvc, dstSvc          flowpb.Service
	file                    flowpb.FileInfo
	iface                   flowpb.NetworkInterface
	traceCtx                flowpb.TraceContext
	traceParent             flowpb.TraceParent
	extensions              anypb.Any
	srcWork, dstWork        []*flowpb.Workload
	works                   []flowpb.Workload
	headerPtrs              []*flowpb.HTTPHeader
	headers                 []flowpb.HTTPHeader
	eAllow, iAllow, eDeny   []*flowpb.Policy
	iDeny                   []*flowpb.Policy
	policies                []flowpb.Policy
	nWorks, nHeaders, nPols int
}

// Flow sets f (reset first) to the flow of r. The error is a JSON column
// (tunnel_l4, extensions) that no longer parses as its message.
func (b *FlowBuilder) Flow(r *FlowRow, f *flowpb.Flow) error {
	f.Reset()
	b.nWorks, b.nHeaders, b.nPols = 0, 0, 0
	b.time.Seconds, b.time.Nanos = floorDiv(r.TimeNs, 1e9), int32(floorMod(r.TimeNs, 1e9))
	f.Time = &b.time
	f.Uuid = deref(r.UUID)
	f.Verdict = flowpb.Verdict(enumValue(flowpb.Verdict_value, r.Verdict))
	f.DropReason = deref(r.DropReason)
	f.DropReasonDesc = flowpb.DropReason(enumValue(flowpb.DropReason_value, r.DropReasonDesc))
	f.AuthType = flowpb.AuthType(enumValue(flowpb.AuthType_value, r.AuthType))
	f.Type = flowpb.FlowType(enumValue(flowpb.FlowType_value, r.Type))
	f.NodeName = deref(r.NodeName)
	f.NodeLabels, f.SourceNames, f.DestinationNames = r.NodeLabels, r.SourceNames, r.DestinationNames
	f.TrafficDirection = flowpb.TrafficDirection(enumValue(flowpb.TrafficDirection_value, r.TrafficDirection))
	f.PolicyMatchType = deref(r.PolicyMatchType)
	f.TraceObservationPoint = flowpb.TraceObservationPoint(enumValue(flowpb.TraceObservationPoint_value, r.TraceObservationPoint))
	f.TraceReason = flowpb.TraceReason(enumValue(flowpb.TraceReason_value, r.TraceReason))
	f.DebugCapturePoint = flowpb.DebugCapturePoint(enumValue(flowpb.DebugCapturePoint_value, r.DebugCapturePoint))
	f.ProxyPort = deref(r.ProxyPort)
	f.SockXlatePoint = flowpb.SocketTranslationPoint(enumValue(flowpb.SocketTranslationPoint_value, r.SockXlatePoint))
	f.SocketCookie, f.CgroupId = deref(r.SocketCookie), deref(r.CgroupID)
	f.Summary = deref(r.Summary)
	f.PolicyLog = r.PolicyLog
	f.EgressAllowedBy = b.policyList(&b.eAllow, r.EgressAllowedBy)
	f.IngressAllowedBy = b.policyList(&b.iAllow, r.IngressAllowedBy)
	f.EgressDeniedBy = b.policyList(&b.eDeny, r.EgressDeniedBy)
	f.IngressDeniedBy = b.policyList(&b.iDeny, r.IngressDeniedBy)
	if r.Reply != nil {
		f.Reply = *r.Reply
	}
	if r.IsReply != nil {
		b.isReply.Reset()
		b.isReply.Value = *r.IsReply
		f.IsReply = &b.isReply
	}
	if r.TraceID != nil {
		b.traceCtx.Reset()
		b.traceParent.Reset()
		b.traceParent.TraceId = *r.TraceID
		b.traceCtx.Parent = &b.traceParent
		f.TraceContext = &b.traceCtx
	}
	if r.EthernetSource != nil || r.EthernetDestination != nil {
		b.ethernet.Reset()
		b.ethernet.Source, b.ethernet.Destination = deref(r.EthernetSource), deref(r.EthernetDestination)
		f.Ethernet = &b.ethernet
	}
	if r.IPSource != nil || r.IPSourceXlated != nil || r.IPDestination != nil || r.IPVersion != nil || r.IPEncrypted != nil {
		b.ip.Reset()
		b.ip.Source, b.ip.SourceXlated, b.ip.Destination = deref(r.IPSource), deref(r.IPSourceXlated), deref(r.IPDestination)
		b.ip.IpVersion = flowpb.IPVersion(enumValue(flowpb.IPVersion_value, r.IPVersion))
		b.ip.Encrypted = deref(r.IPEncrypted)
		f.IP = &b.ip
	}
	if r.L4Protocol != nil {
		f.L4 = b.layer4(r)
	}
	if r.TunnelProtocol != nil || r.TunnelIPSource != nil || r.TunnelIPDest != nil || r.TunnelL4 != nil {
		b.tunnel.Reset()
		b.tunnel.Protocol = flowpb.Tunnel_Protocol(enumValue(flowpb.Tunnel_Protocol_value, r.TunnelProtocol))
		if r.TunnelIPSource != nil || r.TunnelIPDest != nil {
			b.tunnelIP.Reset()
			b.tunnelIP.Source, b.tunnelIP.Destination = deref(r.TunnelIPSource), deref(r.TunnelIPDest)
			b.tunnel.IP = &b.tunnelIP
		}
		if r.TunnelL4 != nil {
			b.tunnelL4.Reset()
			if err := protojson.Unmarshal([]byte(*r.TunnelL4), &b.tunnelL4); err != nil {
				return fmt.Errorf("archive: tunnel_l4 %q: %w", *r.TunnelL4, err)
			}
			b.tunnel.L4 = &b.tunnelL4
		}
		f.Tunnel = &b.tunnel
	}
	f.Source = b.endpoint(&b.src, &b.srcWork, r.SourceID, r.SourceIdentity, r.SourceCluster, r.SourceNamespace, r.SourcePod, r.SourceLabels, r.SourceWorkloads)
	f.Destination = b.endpoint(&b.dst, &b.dstWork, r.DestID, r.DestIdentity, r.DestCluster, r.DestNamespace, r.DestPod, r.DestLabels, r.DestWorkloads)
	if l7 := b.layer7(r); l7 != nil {
		f.L7 = l7
	}
	if r.EventTypeType != nil || r.EventTypeSubType != nil {
		b.eventType.Reset()
		b.eventType.Type, b.eventType.SubType = deref(r.EventTypeType), deref(r.EventTypeSubType)
		f.EventType = &b.eventType
	}
	if r.SourceServiceName != nil || r.SourceServiceNs != nil {
		b.srcSvc.Reset()
		b.srcSvc.Name, b.srcSvc.Namespace = deref(r.SourceServiceName), deref(r.SourceServiceNs)
		f.SourceService = &b.srcSvc
	}
	if r.DestServiceName != nil || r.DestServiceNs != nil {
		b.dstSvc.Reset()
		b.dstSvc.Name, b.dstSvc.Namespace = deref(r.DestServiceName), deref(r.DestServiceNs)
		f.DestinationService = &b.dstSvc
	}
	if r.FileName != nil || r.FileLine != nil {
		b.file.Reset()
		b.file.Name, b.file.Line = deref(r.FileName), deref(r.FileLine)
		f.File = &b.file
	}
	if r.InterfaceIndex != nil || r.InterfaceName != nil {
		b.iface.Reset()
		b.iface.Index, b.iface.Name = deref(r.InterfaceIndex), deref(r.InterfaceName)
		f.Interface = &b.iface
	}
	if r.Extensions != nil {
		b.extensions.Reset()
		if err := protojson.Unmarshal([]byte(*r.Extensions), &b.extensions); err != nil {
			return fmt.Errorf("archive: extensions %q: %w", *r.Extensions, err)
		}
		f.Extensions = &b.extensions
	}
	return nil
}

func (b *FlowBuilder) layer4(r *FlowRow) *flowpb.Layer4 {
	b.l4.Reset()
	sp, dp := deref(r.L4SourcePort), deref(r.L4DestPort)
	switch *r.L4Protocol {
	case "TCP":
		b.tcp.Reset()
		b.tcp.SourcePort, b.tcp.DestinationPort = sp, dp
		if r.L4TCPFlags != nil {
			b.tcpFlags.Reset()
			for name := range strings.SplitSeq(*r.L4TCPFlags, ",") {
				setTCPFlag(&b.tcpFlags, name)
			}
			b.tcp.Flags = &b.tcpFlags
		}
		b.l4TCP.TCP = &b.tcp
		b.l4.Protocol = &b.l4TCP
	case "UDP":
		b.udp.Reset()
		b.udp.SourcePort, b.udp.DestinationPort = sp, dp
		b.l4UDP.UDP = &b.udp
		b.l4.Protocol = &b.l4UDP
	case "SCTP":
		b.sctp.Reset()
		b.sctp.SourcePort, b.sctp.DestinationPort = sp, dp
		b.l4SCTP.SCTP = &b.sctp
		b.l4.Protocol = &b.l4SCTP
	case "ICMPv4":
		b.icmp4.Reset()
		b.icmp4.Type, b.icmp4.Code = deref(r.L4ICMPType), deref(r.L4ICMPCode)
		b.l4ICMP4.ICMPv4 = &b.icmp4
		b.l4.Protocol = &b.l4ICMP4
	case "ICMPv6":
		b.icmp6.Reset()
		b.icmp6.Type, b.icmp6.Code = deref(r.L4ICMPType), deref(r.L4ICMPCode)
		b.l4ICMP6.ICMPv6 = &b.icmp6
		b.l4.Protocol = &b.l4ICMP6
	}
	return &b.l4
}

func setTCPFlag(f *flowpb.TCPFlags, name string) {
	switch name {
	case "FIN":
		f.FIN = true
	case "SYN":
		f.SYN = true
	case "RST":
		f.RST = true
	case "PSH":
		f.PSH = true
	case "ACK":
		f.ACK = true
	case "URG":
		f.URG = true
	case "ECE":
		f.ECE = true
	case "CWR":
		f.CWR = true
	case "NS":
		f.NS = true
	}
}

func (b *FlowBuilder) endpoint(ep *flowpb.Endpoint, works *[]*flowpb.Workload, id, identity *uint32, cluster, ns, pod *string, labels []string, ws []Workload) *flowpb.Endpoint {
	if id == nil && identity == nil && cluster == nil && ns == nil && pod == nil && labels == nil && ws == nil {
		return nil
	}
	ep.Reset()
	ep.ID, ep.Identity = deref(id), deref(identity)
	ep.ClusterName, ep.Namespace, ep.PodName = deref(cluster), deref(ns), deref(pod)
	ep.Labels = labels
	if len(ws) > 0 {
		*works = (*works)[:0]
		for _, w := range ws {
			m := b.workload()
			m.Name, m.Kind = w.Name, w.Kind
			*works = append(*works, m)
		}
		ep.Workloads = *works
	}
	return ep
}

func (b *FlowBuilder) workload() *flowpb.Workload {
	if b.nWorks == len(b.works) {
		// Grown, not appended to: the messages handed out must not move.
		b.works = make([]flowpb.Workload, max(8, 2*len(b.works)))
		b.nWorks = 0
	}
	m := &b.works[b.nWorks]
	b.nWorks++
	m.Reset()
	return m
}

func (b *FlowBuilder) policyList(dst *[]*flowpb.Policy, ps []Policy) []*flowpb.Policy {
	if len(ps) == 0 {
		return nil
	}
	*dst = (*dst)[:0]
	for i := range ps {
		if b.nPols == len(b.policies) {
			b.policies = make([]flowpb.Policy, max(8, 2*len(b.policies)))
			b.nPols = 0
		}
		m := &b.policies[b.nPols]
		b.nPols++
		m.Reset()
		m.Name, m.Namespace, m.Labels, m.Revision, m.Kind = ps[i].Name, ps[i].Namespace, ps[i].Labels, ps[i].Revision, ps[i].Kind
		*dst = append(*dst, m)
	}
	return *dst
}

func (b *FlowBuilder) layer7(r *FlowRow) *flowpb.Layer7 {
	dns := r.L7DNSQuery != nil || r.L7DNSIPs != nil || r.L7DNSTTL != nil || r.L7DNSCnames != nil || r.L7DNSObsSource != nil || r.L7DNSRcode != nil || r.L7DNSQtypes != nil || r.L7DNSRrtypes != nil
	http := r.L7HTTPCode != nil || r.L7HTTPMethod != nil || r.L7HTTPURL != nil || r.L7HTTPProtocol != nil || r.L7HTTPHeaders != nil
	kafka := r.L7KafkaErrorCode != nil || r.L7KafkaAPIVersion != nil || r.L7KafkaAPIKey != nil || r.L7KafkaCorrelation != nil || r.L7KafkaTopic != nil
	if r.L7Type == nil && r.L7LatencyNs == nil && !dns && !http && !kafka {
		return nil
	}
	b.l7.Reset()
	b.l7.Type = flowpb.L7FlowType(enumValue(flowpb.L7FlowType_value, r.L7Type))
	b.l7.LatencyNs = deref(r.L7LatencyNs)
	switch {
	case dns:
		b.dns.Reset()
		b.dns.Query, b.dns.Ips, b.dns.Ttl, b.dns.Cnames = deref(r.L7DNSQuery), r.L7DNSIPs, deref(r.L7DNSTTL), r.L7DNSCnames
		b.dns.ObservationSource, b.dns.Rcode, b.dns.Qtypes, b.dns.Rrtypes = deref(r.L7DNSObsSource), deref(r.L7DNSRcode), r.L7DNSQtypes, r.L7DNSRrtypes
		b.l7DNS.Dns = &b.dns
		b.l7.Record = &b.l7DNS
	case http:
		b.http.Reset()
		b.http.Code, b.http.Method, b.http.Url, b.http.Protocol = deref(r.L7HTTPCode), deref(r.L7HTTPMethod), deref(r.L7HTTPURL), deref(r.L7HTTPProtocol)
		if len(r.L7HTTPHeaders) > 0 {
			if len(b.headers) < len(r.L7HTTPHeaders) {
				b.headers = make([]flowpb.HTTPHeader, len(r.L7HTTPHeaders))
			}
			b.headerPtrs = b.headerPtrs[:0]
			for i, h := range r.L7HTTPHeaders {
				m := &b.headers[i]
				m.Reset()
				m.Key, m.Value = h.Key, h.Value
				b.headerPtrs = append(b.headerPtrs, m)
			}
			b.http.Headers = b.headerPtrs
		}
		b.l7HTTP.Http = &b.http
		b.l7.Record = &b.l7HTTP
	case kafka:
		b.kafka.Reset()
		b.kafka.ErrorCode, b.kafka.ApiVersion, b.kafka.ApiKey = deref(r.L7KafkaErrorCode), deref(r.L7KafkaAPIVersion), deref(r.L7KafkaAPIKey)
		b.kafka.CorrelationId, b.kafka.Topic = deref(r.L7KafkaCorrelation), deref(r.L7KafkaTopic)
		b.l7Kafka.Kafka = &b.kafka
		b.l7.Record = &b.l7Kafka
	}
	return &b.l7
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// enumValue is the number of an enum stored by its name, 0 for NULL.
func enumValue(values map[string]int32, name *string) int32 {
	if name == nil {
		return 0
	}
	return values[*name]
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
