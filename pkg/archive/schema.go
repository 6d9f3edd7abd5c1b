package archive

import (
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// SchemaVersion is the version of the flow and stats schemas (docs/format.md).
const SchemaVersion = "1"

// Workload is one element of source_workloads / destination_workloads.
type Workload struct {
	Name string `parquet:"name,dict"`
	Kind string `parquet:"kind,dict"`
}

// Header is one element of l7_http_headers.
type Header struct {
	Key   string `parquet:"key,dict"`
	Value string `parquet:"value"`
}

// Policy is one element of the *_allowed_by / *_denied_by lists.
type Policy struct {
	Name      string   `parquet:"name,dict"`
	Namespace string   `parquet:"namespace,dict"`
	Labels    []string `parquet:"labels,list" parquet-element:",dict"`
	Revision  uint64   `parquet:"revision"`
	Kind      string   `parquet:"kind,dict"`
}

// FlowRow is one row of the flows table. Optional scalars are pointers: with
// parquet-go v0.32.0, plain fields tagged optional can store NULL as a
// defined zero value (ARCHITECTURE.md, pitfalls), which would be false
// evidence in an audit archive. A field absent from the flow (or masked away)
// is NULL; lists absent are NULL too.
type FlowRow struct {
	Time   int64   `parquet:"time,timestamp(microsecond:utc)"`
	TimeNs int64   `parquet:"time_ns"` // the full nanosecond timestamp: nothing Hubble wrote is lost
	UUID   *string `parquet:"uuid,optional"`

	Verdict        *string `parquet:"verdict,optional,dict"`
	DropReason     *uint32 `parquet:"drop_reason,optional"`
	DropReasonDesc *string `parquet:"drop_reason_desc,optional,dict"`
	AuthType       *string `parquet:"auth_type,optional,dict"`

	EthernetSource      *string `parquet:"ethernet_source,optional,plain"`
	EthernetDestination *string `parquet:"ethernet_destination,optional,plain"`

	IPSource        *string    `parquet:"ip_source,optional,dict"`
	IPSourceXlated  *string    `parquet:"ip_source_xlated,optional,dict"`
	IPDestination   *string    `parquet:"ip_destination,optional,dict"`
	IPVersion       *string    `parquet:"ip_ipVersion,optional,dict"`
	IPEncrypted     *bool      `parquet:"ip_encrypted,optional"`
	L4Protocol      *string    `parquet:"l4_protocol,optional,dict"`
	L4SourcePort    *uint32    `parquet:"l4_source_port,optional"`
	L4DestPort      *uint32    `parquet:"l4_destination_port,optional"`
	L4TCPFlags      *string    `parquet:"l4_tcp_flags,optional,dict"`
	L4ICMPType      *uint32    `parquet:"l4_icmp_type,optional"`
	L4ICMPCode      *uint32    `parquet:"l4_icmp_code,optional"`
	TunnelProtocol  *string    `parquet:"tunnel_protocol,optional,dict"`
	TunnelIPSource  *string    `parquet:"tunnel_ip_source,optional,dict"`
	TunnelIPDest    *string    `parquet:"tunnel_ip_destination,optional,dict"`
	TunnelL4        *string    `parquet:"tunnel_l4,optional"` // the tunnel's Layer4 as Hubble JSON
	SourceID        *uint32    `parquet:"source_id,optional"`
	SourceIdentity  *uint32    `parquet:"source_identity,optional"`
	SourceCluster   *string    `parquet:"source_cluster_name,optional,dict"`
	SourceNamespace *string    `parquet:"source_namespace,optional,dict"`
	SourcePod       *string    `parquet:"source_pod_name,optional,dict"`
	SourceLabels    []string   `parquet:"source_labels,optional,list" parquet-element:",dict" shred:"lists=SourceIdentity"`
	SourceWorkloads []Workload `parquet:"source_workloads,optional,list"`
	DestID          *uint32    `parquet:"destination_id,optional"`
	DestIdentity    *uint32    `parquet:"destination_identity,optional"`
	DestCluster     *string    `parquet:"destination_cluster_name,optional,dict"`
	DestNamespace   *string    `parquet:"destination_namespace,optional,dict"`
	DestPod         *string    `parquet:"destination_pod_name,optional,dict"`
	DestLabels      []string   `parquet:"destination_labels,optional,list" parquet-element:",dict" shred:"lists=DestIdentity"`
	DestWorkloads   []Workload `parquet:"destination_workloads,optional,list"`

	Type             *string  `parquet:"Type,optional,dict"`
	NodeName         *string  `parquet:"node_name,optional,dict"`
	NodeLabels       []string `parquet:"node_labels,optional,list" parquet-element:",dict" shred:"lists"`
	SourceNames      []string `parquet:"source_names,optional,list" parquet-element:",dict"`
	DestinationNames []string `parquet:"destination_names,optional,list" parquet-element:",dict"`

	L7Type             *string  `parquet:"l7_type,optional,dict"`
	L7LatencyNs        *uint64  `parquet:"l7_latency_ns,optional"`
	L7DNSQuery         *string  `parquet:"l7_dns_query,optional,dict"`
	L7DNSIPs           []string `parquet:"l7_dns_ips,optional,list" parquet-element:",dict"`
	L7DNSTTL           *uint32  `parquet:"l7_dns_ttl,optional"`
	L7DNSCnames        []string `parquet:"l7_dns_cnames,optional,list" parquet-element:",dict"`
	L7DNSObsSource     *string  `parquet:"l7_dns_observation_source,optional,dict"`
	L7DNSRcode         *uint32  `parquet:"l7_dns_rcode,optional"`
	L7DNSQtypes        []string `parquet:"l7_dns_qtypes,optional,list" parquet-element:",dict"`
	L7DNSRrtypes       []string `parquet:"l7_dns_rrtypes,optional,list" parquet-element:",dict"`
	L7HTTPCode         *uint32  `parquet:"l7_http_code,optional"`
	L7HTTPMethod       *string  `parquet:"l7_http_method,optional,dict"`
	L7HTTPURL          *string  `parquet:"l7_http_url,optional"`
	L7HTTPProtocol     *string  `parquet:"l7_http_protocol,optional,dict"`
	L7HTTPHeaders      []Header `parquet:"l7_http_headers,optional,list"`
	L7KafkaErrorCode   *int32   `parquet:"l7_kafka_error_code,optional"`
	L7KafkaAPIVersion  *int32   `parquet:"l7_kafka_api_version,optional"`
	L7KafkaAPIKey      *string  `parquet:"l7_kafka_api_key,optional,dict"`
	L7KafkaCorrelation *int32   `parquet:"l7_kafka_correlation_id,optional"`
	L7KafkaTopic       *string  `parquet:"l7_kafka_topic,optional,dict"`

	Reply                 *bool   `parquet:"reply,optional"`
	EventTypeType         *int32  `parquet:"event_type_type,optional"`
	EventTypeSubType      *int32  `parquet:"event_type_sub_type,optional"`
	SourceServiceName     *string `parquet:"source_service_name,optional,dict"`
	SourceServiceNs       *string `parquet:"source_service_namespace,optional,dict"`
	DestServiceName       *string `parquet:"destination_service_name,optional,dict"`
	DestServiceNs         *string `parquet:"destination_service_namespace,optional,dict"`
	TrafficDirection      *string `parquet:"traffic_direction,optional,dict"`
	PolicyMatchType       *uint32 `parquet:"policy_match_type,optional"`
	TraceObservationPoint *string `parquet:"trace_observation_point,optional,dict"`
	TraceReason           *string `parquet:"trace_reason,optional,dict"`
	FileName              *string `parquet:"file_name,optional,dict"`
	FileLine              *uint32 `parquet:"file_line,optional"`
	IsReply               *bool   `parquet:"is_reply,optional"`
	DebugCapturePoint     *string `parquet:"debug_capture_point,optional,dict"`
	InterfaceIndex        *uint32 `parquet:"interface_index,optional"`
	InterfaceName         *string `parquet:"interface_name,optional,plain"`
	ProxyPort             *uint32 `parquet:"proxy_port,optional"`
	TraceID               *string `parquet:"trace_context_parent_trace_id,optional"`
	SockXlatePoint        *string `parquet:"sock_xlate_point,optional,dict"`
	SocketCookie          *uint64 `parquet:"socket_cookie,optional"`
	CgroupID              *uint64 `parquet:"cgroup_id,optional"`
	Summary               *string `parquet:"Summary,optional,dict"`
	Extensions            *string `parquet:"extensions,optional"` // the Any as Hubble JSON

	EgressAllowedBy  []Policy `parquet:"egress_allowed_by,optional,list"`
	IngressAllowedBy []Policy `parquet:"ingress_allowed_by,optional,list"`
	EgressDeniedBy   []Policy `parquet:"egress_denied_by,optional,list"`
	IngressDeniedBy  []Policy `parquet:"ingress_denied_by,optional,list"`
	PolicyLog        []string `parquet:"policy_log,optional,list" parquet-element:",dict"`
}

// Rows point into the batch's flows, whose strings may live in a buffer
// that is reused after Write returns: Write hands every row to parquet-go
// before it returns, and parquet-go copies what it buffers (plain and
// dictionary columns alike). TestWriteKeepsNoReferenceToTheBatch guards it.
// The values the optional columns point to come from a slab that is reused
// batch after batch for the same reason, so a row costs no allocation.
type rowSlab struct {
	strs      chunks[string]
	u32s      chunks[uint32]
	u64s      chunks[uint64]
	i32s      chunks[int32]
	bools     chunks[bool]
	workloads chunks[Workload]
	policies  chunks[Policy]
	headers   chunks[Header]
	// The JSON text of tunnel.l4 and extensions: encoded into json, kept in
	// text until reset.
	json []byte
	text flow.Arena
}

// reset makes every slot reusable: no row may point into the slab any more.
func (s *rowSlab) reset() {
	s.strs.reset()
	s.u32s.reset()
	s.u64s.reset()
	s.i32s.reset()
	s.bools.reset()
	s.workloads.reset()
	s.policies.reset()
	s.headers.reset()
	s.text.Reset()
}

// jsonOf is m as Hubble JSON (hubblejson.AppendJSON: deterministic), or nil
// if it cannot be encoded.
func (s *rowSlab) jsonOf(m proto.Message) *string {
	b, err := hubblejson.AppendJSON(s.json[:0], m)
	if err != nil {
		return nil
	}
	s.json = b
	return s.str(s.text.String(b))
}

// chunks hands out slots from fixed-size chunks that are kept for reuse
// (a chunk never moves, so the pointers stay valid until reset).
type chunks[T any] struct {
	bufs [][]T
	i    int // index of cur in bufs
	cur  []T
}

const chunkLen = 1024

func (c *chunks[T]) take(n int) []T {
	switch {
	case c.cur == nil:
		c.bufs = append(c.bufs[:0], make([]T, 0, max(chunkLen, n)))
		c.i, c.cur = 0, c.bufs[0]
	case len(c.cur)+n > cap(c.cur):
		c.i++
		if c.i == len(c.bufs) {
			c.bufs = append(c.bufs, make([]T, 0, max(chunkLen, n)))
		} else if cap(c.bufs[c.i]) < n { // a list longer than the chunk
			c.bufs[c.i] = make([]T, 0, n)
		}
		c.cur = c.bufs[c.i][:0]
	}
	k := len(c.cur)
	c.cur = c.cur[:k+n]
	clear(c.cur[k:])
	return c.cur[k : k+n : k+n]
}

func (c *chunks[T]) ptr(v T) *T {
	p := c.take(1)
	p[0] = v
	return &p[0]
}

func (c *chunks[T]) reset() {
	if len(c.bufs) > 0 {
		c.i, c.cur = 0, c.bufs[0][:0]
	}
}

func (s *rowSlab) str(v string) *string {
	if v == "" {
		return nil
	}
	return s.strs.ptr(v)
}

func (s *rowSlab) u32(v uint32) *uint32 {
	if v == 0 {
		return nil
	}
	return s.u32s.ptr(v)
}

func (s *rowSlab) u64(v uint64) *uint64 {
	if v == 0 {
		return nil
	}
	return s.u64s.ptr(v)
}

func (s *rowSlab) i32(v int32) *int32 {
	if v == 0 {
		return nil
	}
	return s.i32s.ptr(v)
}

func (s *rowSlab) boolean(v bool) *bool { return s.bools.ptr(v) }

// enum maps a proto3 enum to its name, NULL for the zero value (which the
// exporter never prints).
func enum[E interface {
	~int32
	String() string
}](s *rowSlab, e E) *string {
	if e == 0 {
		return nil
	}
	return s.strs.ptr(e.String())
}

func strs(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

func (s *rowSlab) workloadList(ws []*flowpb.Workload) []Workload {
	if len(ws) == 0 {
		return nil
	}
	out := s.workloads.take(len(ws))
	for i, w := range ws {
		out[i] = Workload{Name: w.GetName(), Kind: w.GetKind()}
	}
	return out
}

func (s *rowSlab) policyList(ps []*flowpb.Policy) []Policy {
	if len(ps) == 0 {
		return nil
	}
	out := s.policies.take(len(ps))
	for i, p := range ps {
		out[i] = Policy{Name: p.GetName(), Namespace: p.GetNamespace(), Labels: strs(p.GetLabels()), Revision: p.GetRevision(), Kind: p.GetKind()}
	}
	return out
}

// tcpFlagNames holds the value of the l4_tcp_flags column for every
// combination of the nine flags (bit i: tcpFlagOrder[i]), made once so that
// a TCP flow costs no allocation.
var tcpFlagNames = func() (t [1 << len(tcpFlagOrder)]string) {
	for bits := range t {
		var parts []string
		for i, name := range tcpFlagOrder {
			if bits&(1<<i) != 0 {
				parts = append(parts, name)
			}
		}
		t[bits] = strings.Join(parts, ",")
	}
	return t
}()

var tcpFlagOrder = [...]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"}

// tcpFlags is the l4_tcp_flags value: the flags that are set, comma
// separated in tcpFlagOrder ("" when none is).
func (s *rowSlab) tcpFlags(f *flowpb.TCPFlags) *string {
	if f == nil {
		return nil
	}
	bits := 0
	for i, on := range [...]bool{f.FIN, f.SYN, f.RST, f.PSH, f.ACK, f.URG, f.ECE, f.CWR, f.NS} {
		if on {
			bits |= 1 << i
		}
	}
	return s.strs.ptr(tcpFlagNames[bits])
}

// fillRow sets the row of f in r, which must be zeroed (every field of
// v1.18.4's Flow has a column): field by field, in
// place in the batch's row buffer (a composite literal is built in a
// temporary and moved, a kilobyte per flow).
func fillRow(r *FlowRow, f *flowpb.Flow, sl *rowSlab) {
	r.UUID = sl.str(f.GetUuid())
	r.Verdict = enum(sl, f.GetVerdict())
	r.DropReason = sl.u32(f.GetDropReason())
	r.DropReasonDesc = enum(sl, f.GetDropReasonDesc())
	r.AuthType = enum(sl, f.GetAuthType())
	r.Type = enum(sl, f.GetType())
	r.NodeName = sl.str(f.GetNodeName())
	r.NodeLabels = strs(f.GetNodeLabels())
	r.SourceNames = strs(f.GetSourceNames())
	r.DestinationNames = strs(f.GetDestinationNames())
	r.TrafficDirection = enum(sl, f.GetTrafficDirection())
	r.PolicyMatchType = sl.u32(f.GetPolicyMatchType())
	r.TraceObservationPoint = enum(sl, f.GetTraceObservationPoint())
	r.TraceReason = enum(sl, f.GetTraceReason())
	r.DebugCapturePoint = enum(sl, f.GetDebugCapturePoint())
	r.ProxyPort = sl.u32(f.GetProxyPort())
	r.TraceID = sl.str(f.GetTraceContext().GetParent().GetTraceId())
	r.SockXlatePoint = enum(sl, f.GetSockXlatePoint())
	r.SocketCookie = sl.u64(f.GetSocketCookie())
	r.CgroupID = sl.u64(f.GetCgroupId())
	r.Summary = sl.str(f.GetSummary())
	r.EgressAllowedBy = sl.policyList(f.GetEgressAllowedBy())
	r.IngressAllowedBy = sl.policyList(f.GetIngressAllowedBy())
	r.EgressDeniedBy = sl.policyList(f.GetEgressDeniedBy())
	r.IngressDeniedBy = sl.policyList(f.GetIngressDeniedBy())
	r.PolicyLog = strs(f.GetPolicyLog())
	r.TimeNs = flowTimeNs(f) // 0 without a time
	r.Time = r.TimeNs / 1000
	if f.Reply {
		r.Reply = sl.boolean(true)
	}
	if ir := f.GetIsReply(); ir != nil {
		r.IsReply = sl.boolean(ir.GetValue())
	}
	if e := f.GetEthernet(); e != nil {
		r.EthernetSource, r.EthernetDestination = sl.str(e.GetSource()), sl.str(e.GetDestination())
	}
	if ip := f.GetIP(); ip != nil {
		r.IPSource, r.IPSourceXlated, r.IPDestination = sl.str(ip.GetSource()), sl.str(ip.GetSourceXlated()), sl.str(ip.GetDestination())
		r.IPVersion = enum(sl, ip.GetIpVersion())
		if ip.GetEncrypted() {
			r.IPEncrypted = sl.boolean(true)
		}
	}
	if l4 := f.GetL4(); l4 != nil {
		switch {
		case l4.GetTCP() != nil:
			t := l4.GetTCP()
			r.L4Protocol, r.L4SourcePort, r.L4DestPort, r.L4TCPFlags = sl.str("TCP"), sl.u32(t.GetSourcePort()), sl.u32(t.GetDestinationPort()), sl.tcpFlags(t.GetFlags())
		case l4.GetUDP() != nil:
			u := l4.GetUDP()
			r.L4Protocol, r.L4SourcePort, r.L4DestPort = sl.str("UDP"), sl.u32(u.GetSourcePort()), sl.u32(u.GetDestinationPort())
		case l4.GetSCTP() != nil:
			s := l4.GetSCTP()
			r.L4Protocol, r.L4SourcePort, r.L4DestPort = sl.str("SCTP"), sl.u32(s.GetSourcePort()), sl.u32(s.GetDestinationPort())
		case l4.GetICMPv4() != nil:
			i := l4.GetICMPv4()
			r.L4Protocol, r.L4ICMPType, r.L4ICMPCode = sl.str("ICMPv4"), sl.u32s.ptr(i.GetType()), sl.u32s.ptr(i.GetCode())
		case l4.GetICMPv6() != nil:
			i := l4.GetICMPv6()
			r.L4Protocol, r.L4ICMPType, r.L4ICMPCode = sl.str("ICMPv6"), sl.u32s.ptr(i.GetType()), sl.u32s.ptr(i.GetCode())
		}
	}
	if tn := f.GetTunnel(); tn != nil {
		r.TunnelProtocol = enum(sl, tn.GetProtocol())
		r.TunnelIPSource, r.TunnelIPDest = sl.str(tn.GetIP().GetSource()), sl.str(tn.GetIP().GetDestination())
		if tn.GetL4() != nil {
			r.TunnelL4 = sl.jsonOf(tn.GetL4())
		}
	}
	if ep := f.GetSource(); ep != nil {
		r.SourceID, r.SourceIdentity = sl.u32(ep.GetID()), sl.u32(ep.GetIdentity())
		r.SourceCluster, r.SourceNamespace, r.SourcePod = sl.str(ep.GetClusterName()), sl.str(ep.GetNamespace()), sl.str(ep.GetPodName())
		r.SourceLabels, r.SourceWorkloads = strs(ep.GetLabels()), sl.workloadList(ep.GetWorkloads())
	}
	if ep := f.GetDestination(); ep != nil {
		r.DestID, r.DestIdentity = sl.u32(ep.GetID()), sl.u32(ep.GetIdentity())
		r.DestCluster, r.DestNamespace, r.DestPod = sl.str(ep.GetClusterName()), sl.str(ep.GetNamespace()), sl.str(ep.GetPodName())
		r.DestLabels, r.DestWorkloads = strs(ep.GetLabels()), sl.workloadList(ep.GetWorkloads())
	}
	if l7 := f.GetL7(); l7 != nil {
		r.L7Type, r.L7LatencyNs = enum(sl, l7.GetType()), sl.u64(l7.GetLatencyNs())
		if d := l7.GetDns(); d != nil {
			r.L7DNSQuery, r.L7DNSIPs, r.L7DNSTTL, r.L7DNSCnames = sl.str(d.GetQuery()), strs(d.GetIps()), sl.u32(d.GetTtl()), strs(d.GetCnames())
			r.L7DNSObsSource, r.L7DNSQtypes, r.L7DNSRrtypes = sl.str(d.GetObservationSource()), strs(d.GetQtypes()), strs(d.GetRrtypes())
			r.L7DNSRcode = sl.u32s.ptr(d.GetRcode()) // 0 (NOERROR) is meaningful for DNS answers
		}
		if h := l7.GetHttp(); h != nil {
			r.L7HTTPCode, r.L7HTTPMethod, r.L7HTTPURL, r.L7HTTPProtocol = sl.u32(h.GetCode()), sl.str(h.GetMethod()), sl.str(h.GetUrl()), sl.str(h.GetProtocol())
			if hs := h.GetHeaders(); len(hs) > 0 {
				r.L7HTTPHeaders = sl.headers.take(len(hs))
				for i, hd := range hs {
					r.L7HTTPHeaders[i] = Header{Key: hd.GetKey(), Value: hd.GetValue()}
				}
			}
		}
		if k := l7.GetKafka(); k != nil {
			r.L7KafkaErrorCode, r.L7KafkaAPIVersion, r.L7KafkaAPIKey = sl.i32(k.GetErrorCode()), sl.i32(k.GetApiVersion()), sl.str(k.GetApiKey())
			r.L7KafkaCorrelation, r.L7KafkaTopic = sl.i32(k.GetCorrelationId()), sl.str(k.GetTopic())
		}
	}
	if et := f.GetEventType(); et != nil {
		r.EventTypeType, r.EventTypeSubType = sl.i32s.ptr(et.GetType()), sl.i32s.ptr(et.GetSubType())
	}
	if s := f.GetSourceService(); s != nil {
		r.SourceServiceName, r.SourceServiceNs = sl.str(s.GetName()), sl.str(s.GetNamespace())
	}
	if s := f.GetDestinationService(); s != nil {
		r.DestServiceName, r.DestServiceNs = sl.str(s.GetName()), sl.str(s.GetNamespace())
	}
	if fi := f.GetFile(); fi != nil {
		r.FileName, r.FileLine = sl.str(fi.GetName()), sl.u32(fi.GetLine())
	}
	if it := f.GetInterface(); it != nil {
		r.InterfaceIndex, r.InterfaceName = sl.u32(it.GetIndex()), sl.str(it.GetName())
	}
	if x := f.GetExtensions(); x != nil {
		r.Extensions = sl.jsonOf(x)
	}
}

// flowTimeNs is the flow's time in nanoseconds since the epoch (the
// time_ns column), 0 without one.
func flowTimeNs(f *flowpb.Flow) int64 {
	t := f.GetTime()
	if t == nil {
		return 0
	}
	return t.GetSeconds()*1e9 + int64(t.GetNanos())
}

// StatRow is one row of the stats table: the counters of one node for one
// minute from one committed batch group. Several rows can exist for the same
// (node, minute); readers sum them.
type StatRow struct {
	Node             string  `parquet:"node,dict"`
	Minute           int64   `parquet:"minute,timestamp(microsecond:utc)"`
	FlowsSeen        uint64  `parquet:"flows_seen"`
	FlowsKept        uint64  `parquet:"flows_kept"`
	FlowsDenied      uint64  `parquet:"flows_denied"`
	DecodeErrors     uint64  `parquet:"decode_errors"`
	NonFlowEvents    uint64  `parquet:"non_flow_events"`
	LostEvents       uint64  `parquet:"lost_events"`         // Hubble lost_events: events Hubble itself dropped
	LostRotation     uint64  `parquet:"lost_rotation_bytes"` // bytes of backups deleted before they were read
	LostTruncated    uint64  `parquet:"lost_truncated_bytes"`
	LostTooLong      uint64  `parquet:"lost_too_long_lines"`
	LostStreamDown   uint64  `parquet:"lost_stream_down_events"`
	LossDetail       *string `parquet:"loss_detail,optional"` // e.g. "PERF_EVENT_RING_BUFFER=12; events-2026-01-01T00-00-00.000.log"
	Status           string  `parquet:"status,dict"`
	CollectorVersion string  `parquet:"collector_version,dict"`
	ConfigHash       string  `parquet:"config_hash,dict"`
}

// LossRow is one row of the losses table: one gap in a node's evidence,
// as a time range with its cause and, where it can be known, its amount.
// The stats table counts the same losses per minute; this table says which
// flows they are: those with a time between FromTime and ToTime.
type LossRow struct {
	Node string `parquet:"node,dict"`
	// Detected is when the collector found the gap (wall clock), or for a
	// Hubble lost_events line its event time.
	Detected int64 `parquet:"detected,timestamp(microsecond:utc)"`
	// FromTime is the time of the last flow read before the gap, ToTime of
	// the first one after it; NULL when not known (a reader then takes the
	// last evidence before Detected, and Detected).
	FromTime *int64 `parquet:"from_time,optional,timestamp(microsecond:utc)"`
	ToTime   *int64 `parquet:"to_time,optional,timestamp(microsecond:utc)"`
	Reason   string `parquet:"reason,dict"` // flow.Loss* reasons
	// Amount is "exact", "at_least" (more may be lost than LostEvents and
	// LostBytes say) or "unknown" (only the time range is known).
	Amount     string  `parquet:"amount,dict"`
	LostEvents *uint64 `parquet:"lost_events,optional"` // NULL: not known
	LostBytes  *uint64 `parquet:"lost_bytes,optional"`  // NULL: not known
	// EstimatedEvents is an estimate of the events lost from the bytes and
	// the source's mean line size, when only the bytes are known.
	EstimatedEvents  *uint64 `parquet:"estimated_events,optional"`
	Detail           string  `parquet:"detail"`
	Source           string  `parquet:"source,dict"`
	CollectorVersion string  `parquet:"collector_version,dict"`
	ConfigHash       string  `parquet:"config_hash,dict"`
}

// Range returns the times (µs since the epoch) the gap can hold lost flows
// in: FromTime (else from) to ToTime (else Detected).
func (r *LossRow) Range(from int64) (int64, int64) {
	lo, hi := from, r.Detected
	if r.FromTime != nil {
		lo = *r.FromTime
	}
	if r.ToTime != nil {
		hi = *r.ToTime
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// lossRow makes the row of one loss.
func lossRow(l *flow.Loss, collectorVersion, configHash string) LossRow {
	r := LossRow{
		Node: l.Node, Detected: l.Time.UnixMicro(), Reason: l.Reason, Amount: l.Amount.String(),
		Detail: l.Detail, Source: l.Source, CollectorVersion: collectorVersion, ConfigHash: configHash,
	}
	if !l.From.IsZero() {
		t := l.From.UnixMicro()
		r.FromTime = &t
	}
	if !l.To.IsZero() {
		t := l.To.UnixMicro()
		r.ToTime = &t
	}
	if l.Amount != flow.AmountUnknown {
		if l.Events > 0 || l.Bytes == 0 {
			n := l.Events
			r.LostEvents = &n
		}
		if l.Bytes > 0 {
			n := l.Bytes
			r.LostBytes = &n
		}
	}
	if l.Estimated > 0 {
		n := l.Estimated
		r.EstimatedEvents = &n
	}
	return r
}
