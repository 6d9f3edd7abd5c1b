package report

import "github.com/flowaudit/flowaudit/pkg/archive"

// flowRow is the projection of archive.FlowRow the report reads: the same
// columns (names and tags), a third of them, so the scan reads and decodes
// only those. A field the report starts using must be added here (the
// compiler says so); archive.RowReader reads the columns of its fields
// (TestColumnScanMatchesRowScan compares with parquet-go's row reader).
type flowRow struct {
	Time             int64              `parquet:"time,timestamp(microsecond:utc)"`
	Verdict          *string            `parquet:"verdict,optional,dict"`
	DropReasonDesc   *string            `parquet:"drop_reason_desc,optional,dict"`
	IPSource         *string            `parquet:"ip_source,optional,dict"`
	IPDestination    *string            `parquet:"ip_destination,optional,dict"`
	L4Protocol       *string            `parquet:"l4_protocol,optional,dict"`
	L4DestPort       *uint32            `parquet:"l4_destination_port,optional"`
	SourceIdentity   *uint32            `parquet:"source_identity,optional"`
	SourceNamespace  *string            `parquet:"source_namespace,optional,dict"`
	SourcePod        *string            `parquet:"source_pod_name,optional,dict"`
	SourceLabels     []string           `parquet:"source_labels,optional,list" parquet-element:",dict"`
	SourceWorkloads  []archive.Workload `parquet:"source_workloads,optional,list"`
	DestIdentity     *uint32            `parquet:"destination_identity,optional"`
	DestNamespace    *string            `parquet:"destination_namespace,optional,dict"`
	DestPod          *string            `parquet:"destination_pod_name,optional,dict"`
	DestLabels       []string           `parquet:"destination_labels,optional,list" parquet-element:",dict"`
	DestWorkloads    []archive.Workload `parquet:"destination_workloads,optional,list"`
	NodeName         *string            `parquet:"node_name,optional,dict"`
	SourceNames      []string           `parquet:"source_names,optional,list" parquet-element:",dict"`
	DestinationNames []string           `parquet:"destination_names,optional,list" parquet-element:",dict"`
	L7DNSQuery       *string            `parquet:"l7_dns_query,optional,dict"`
	L7DNSRcode       *uint32            `parquet:"l7_dns_rcode,optional"`
	L7HTTPCode       *uint32            `parquet:"l7_http_code,optional"`
	L7HTTPMethod     *string            `parquet:"l7_http_method,optional,dict"`
	IsReply          *bool              `parquet:"is_reply,optional"`
	EgressDeniedBy   []archive.Policy   `parquet:"egress_denied_by,optional,list"`
	IngressDeniedBy  []archive.Policy   `parquet:"ingress_denied_by,optional,list"`
}
