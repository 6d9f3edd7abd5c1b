package archive

import (
	"fmt"
	"math/bits"
	"reflect"
	"strings"
	"sync"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// The column reader (read_*.go) fills rows of FlowRow, or of a projection of
// it, from the physical columns of a row group. This file maps the row
// type's fields to the physical column paths (the leaves of the flows
// table's Parquet schema, as the writer lays them out) and to the Flow
// fields they hold.

// leafShape is how a leaf column's slots make a row's field.
type leafShape uint8

const (
	shapeScalar     leafShape = iota // one slot a row: a required int64 or an optional pointer
	shapeList                        // an optional list of strings
	shapeStructList                  // one field of an optional list of structs
)

// leafValue is the Go type of a leaf's values.
type leafValue uint8

const (
	valI64  leafValue = iota // int64 (required)
	valStr                   // string
	valU32                   // uint32
	valI32                   // int32
	valU64                   // uint64
	valBool                  // bool
)

// elemType is the element type of a list of structs.
type elemType uint8

const (
	elemNone elemType = iota
	elemWorkload
	elemHeader
	elemPolicy
)

// readLeaf is one leaf column of a row type: its physical path, and where
// and how its values land in a row.
type readLeaf struct {
	path  string // e.g. "source_workloads.list.element.name"
	field string // the row field's column name, e.g. "source_workloads"
	off   uintptr
	shape leafShape
	val   leafValue
	// Lists of structs: the element type, the element field's offset, and
	// whether that field is itself a list of strings (Policy.Labels).
	elem    elemType
	elemOff uintptr
	nested  bool
}

// rowLayout is the leaves of a row type, in field order.
type rowLayout struct {
	leaves []readLeaf
	fields map[string]Columns // column name -> its leaves
}

// Columns is a set of a row type's leaf columns.
type Columns struct{ bits [2]uint64 }

// maxLeaves is how many leaves a Columns can hold.
const maxLeaves = 128

func (c Columns) has(i int) bool { return c.bits[i>>6]&(1<<(i&63)) != 0 }

func (c *Columns) add(i int) { c.bits[i>>6] |= 1 << (i & 63) }

// Union is c ∪ o.
func (c Columns) Union(o Columns) Columns {
	return Columns{[2]uint64{c.bits[0] | o.bits[0], c.bits[1] | o.bits[1]}}
}

// Without is c without o's columns.
func (c Columns) Without(o Columns) Columns {
	return Columns{[2]uint64{c.bits[0] &^ o.bits[0], c.bits[1] &^ o.bits[1]}}
}

// IsEmpty reports whether c holds no column.
func (c Columns) IsEmpty() bool { return c.bits[0]|c.bits[1] == 0 }

// Len is how many columns c holds.
func (c Columns) Len() int { return bits.OnesCount64(c.bits[0]) + bits.OnesCount64(c.bits[1]) }

var layouts sync.Map // reflect.Type -> *rowLayout or error

// layoutOf returns the layout of the row type t: its fields must be fields
// of FlowRow (same name, type and parquet tag).
func layoutOf(t reflect.Type) (*rowLayout, error) {
	if l, ok := layouts.Load(t); ok {
		if err, bad := l.(error); bad {
			return nil, err
		}
		return l.(*rowLayout), nil
	}
	l, err := buildLayout(t)
	if err != nil {
		layouts.Store(t, err)
		return nil, err
	}
	layouts.Store(t, l)
	return l, nil
}

func buildLayout(t reflect.Type) (*rowLayout, error) {
	flowRowT := reflect.TypeFor[FlowRow]()
	l := &rowLayout{fields: map[string]Columns{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		ref, ok := flowRowT.FieldByName(sf.Name)
		if !ok || ref.Type != sf.Type || ref.Tag.Get("parquet") != sf.Tag.Get("parquet") {
			return nil, fmt.Errorf("archive: %v.%s is not a field of FlowRow with its type and tag", t, sf.Name)
		}
		name, _, _ := strings.Cut(sf.Tag.Get("parquet"), ",")
		base := readLeaf{field: name, off: sf.Offset}
		var add []readLeaf
		switch sf.Type {
		case reflect.TypeFor[int64]():
			add = []readLeaf{{shape: shapeScalar, val: valI64}}
		case reflect.TypeFor[*string]():
			add = []readLeaf{{shape: shapeScalar, val: valStr}}
		case reflect.TypeFor[*uint32]():
			add = []readLeaf{{shape: shapeScalar, val: valU32}}
		case reflect.TypeFor[*int32]():
			add = []readLeaf{{shape: shapeScalar, val: valI32}}
		case reflect.TypeFor[*uint64]():
			add = []readLeaf{{shape: shapeScalar, val: valU64}}
		case reflect.TypeFor[*bool]():
			add = []readLeaf{{shape: shapeScalar, val: valBool}}
		case reflect.TypeFor[[]string]():
			add = []readLeaf{{shape: shapeList, val: valStr, path: ".list.element"}}
		case reflect.TypeFor[[]Workload]():
			add = structLeaves(elemWorkload, reflect.TypeFor[Workload]())
		case reflect.TypeFor[[]Header]():
			add = structLeaves(elemHeader, reflect.TypeFor[Header]())
		case reflect.TypeFor[[]Policy]():
			add = structLeaves(elemPolicy, reflect.TypeFor[Policy]())
		default:
			return nil, fmt.Errorf("archive: %v.%s: no column reader for %v", t, sf.Name, sf.Type)
		}
		var set Columns
		for _, a := range add {
			a.field, a.off, a.path = base.field, base.off, name+a.path
			if len(l.leaves) == maxLeaves {
				return nil, fmt.Errorf("archive: %v has more than %d leaf columns", t, maxLeaves)
			}
			set.add(len(l.leaves))
			l.leaves = append(l.leaves, a)
		}
		l.fields[name] = set
	}
	return l, nil
}

// structLeaves are the leaves of a list of structs of type et, with their
// paths below the list's column.
func structLeaves(e elemType, et reflect.Type) []readLeaf {
	var out []readLeaf
	for i := range et.NumField() {
		sf := et.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("parquet"), ",")
		s := readLeaf{shape: shapeStructList, elem: e, elemOff: sf.Offset, path: ".list.element." + name}
		switch sf.Type.Kind() {
		case reflect.String:
			s.val = valStr
		case reflect.Uint64:
			s.val = valU64
		case reflect.Slice: // []string
			s.val, s.nested, s.path = valStr, true, s.path+".list.element"
		default:
			panic("archive: no column reader for " + et.String() + "." + sf.Name)
		}
		out = append(out, s)
	}
	return out
}

// columns returns the leaves of the named columns (top-level names, as in
// the parquet tags: "verdict", "source_labels"); a name the row type does
// not have is an error.
func (l *rowLayout) columns(names ...string) (Columns, error) {
	var c Columns
	for _, n := range names {
		set, ok := l.fields[n]
		if !ok {
			return Columns{}, fmt.Errorf("archive: no column %q in the row type", n)
		}
		c = c.Union(set)
	}
	return c, nil
}

func (l *rowLayout) all() Columns {
	var c Columns
	for i := range l.leaves {
		c.add(i)
	}
	return c
}

// flowFieldOf is the Flow field (its proto name, top level) that a column
// of the flows table holds: the message FlowBuilder makes of the column and
// of the others of that field. A column whose name is the field's is not
// listed.
var flowFieldOf = map[string]string{
	"time_ns":                       "time",
	"ethernet_source":               "ethernet",
	"ethernet_destination":          "ethernet",
	"ip_source":                     "IP",
	"ip_source_xlated":              "IP",
	"ip_destination":                "IP",
	"ip_ipVersion":                  "IP",
	"ip_encrypted":                  "IP",
	"l4_protocol":                   "l4",
	"l4_source_port":                "l4",
	"l4_destination_port":           "l4",
	"l4_tcp_flags":                  "l4",
	"l4_icmp_type":                  "l4",
	"l4_icmp_code":                  "l4",
	"tunnel_protocol":               "tunnel",
	"tunnel_ip_source":              "tunnel",
	"tunnel_ip_destination":         "tunnel",
	"tunnel_l4":                     "tunnel",
	"source_id":                     "source",
	"source_identity":               "source",
	"source_cluster_name":           "source",
	"source_namespace":              "source",
	"source_pod_name":               "source",
	"source_labels":                 "source",
	"source_workloads":              "source",
	"destination_id":                "destination",
	"destination_identity":          "destination",
	"destination_cluster_name":      "destination",
	"destination_namespace":         "destination",
	"destination_pod_name":          "destination",
	"destination_labels":            "destination",
	"destination_workloads":         "destination",
	"l7_type":                       "l7",
	"l7_latency_ns":                 "l7",
	"l7_dns_query":                  "l7",
	"l7_dns_ips":                    "l7",
	"l7_dns_ttl":                    "l7",
	"l7_dns_cnames":                 "l7",
	"l7_dns_observation_source":     "l7",
	"l7_dns_rcode":                  "l7",
	"l7_dns_qtypes":                 "l7",
	"l7_dns_rrtypes":                "l7",
	"l7_http_code":                  "l7",
	"l7_http_method":                "l7",
	"l7_http_url":                   "l7",
	"l7_http_protocol":              "l7",
	"l7_http_headers":               "l7",
	"l7_kafka_error_code":           "l7",
	"l7_kafka_api_version":          "l7",
	"l7_kafka_api_key":              "l7",
	"l7_kafka_correlation_id":       "l7",
	"l7_kafka_topic":                "l7",
	"event_type_type":               "event_type",
	"event_type_sub_type":           "event_type",
	"source_service_name":           "source_service",
	"source_service_namespace":      "source_service",
	"destination_service_name":      "destination_service",
	"destination_service_namespace": "destination_service",
	"file_name":                     "file",
	"file_line":                     "file",
	"interface_index":               "interface",
	"interface_name":                "interface",
	"trace_context_parent_trace_id": "trace_context",
}

// flowField is the top-level Flow field of the column name.
func flowField(column string) string {
	if f, ok := flowFieldOf[column]; ok {
		return f
	}
	return column
}

// columnsOfFlowFields are the leaves of l that hold the Flow fields fs
// touches, whole top-level fields at a time: FlowBuilder decides whether a
// message is present from all of its columns, so a message read in part
// could be absent where the whole row has it.
func (l *rowLayout) columnsOfFlowFields(fs flow.FieldSet) Columns {
	var c Columns
	for i, s := range l.leaves {
		if fs.Touches(flowField(s.field)) {
			c.add(i)
		}
	}
	return c
}

// flowLeafOf is the Flow field that a column alone holds, for the messages
// whose fields FlowBuilder sets one from each column (the endpoints, the IP
// header): a reader of some of those fields needs only their columns.
var flowLeafOf = map[string]string{
	"source_id":                "source.ID",
	"source_identity":          "source.identity",
	"source_cluster_name":      "source.cluster_name",
	"source_namespace":         "source.namespace",
	"source_pod_name":          "source.pod_name",
	"source_labels":            "source.labels",
	"source_workloads":         "source.workloads",
	"destination_id":           "destination.ID",
	"destination_identity":     "destination.identity",
	"destination_cluster_name": "destination.cluster_name",
	"destination_namespace":    "destination.namespace",
	"destination_pod_name":     "destination.pod_name",
	"destination_labels":       "destination.labels",
	"destination_workloads":    "destination.workloads",
	"ip_source":                "IP.source",
	"ip_source_xlated":         "IP.source_xlated",
	"ip_destination":           "IP.destination",
	"ip_ipVersion":             "IP.ipVersion",
	"ip_encrypted":             "IP.encrypted",
}

// Part is a top-level Flow message of which a column set holds some
// columns, not all: FlowBuilder makes the message when one of its columns
// is not NULL, so where every column read of it is NULL (Reader.Null), the
// whole row may still have it (with the fields read empty).
type Part struct {
	Field string // the Flow field: "source", "destination", "IP"
	Cols  Columns
}

// columnsOfFlowLeaves is columnsOfFlowFields, but a column of flowLeafOf is
// in only when fs touches its own field; parts are the messages read in
// part.
func (l *rowLayout) columnsOfFlowLeaves(fs flow.FieldSet) (Columns, []Part) {
	var c Columns
	whole := map[string]Columns{}
	for i, s := range l.leaves {
		top := flowField(s.field)
		w := whole[top]
		w.add(i)
		whole[top] = w
		if leaf, ok := flowLeafOf[s.field]; ok {
			if fs.Touches(leaf) {
				c.add(i)
			}
		} else if fs.Touches(top) {
			c.add(i)
		}
	}
	var parts []Part
	for _, top := range []string{"source", "destination", "IP"} {
		in := whole[top].bitsAnd(c)
		if !in.IsEmpty() && in != whole[top] {
			parts = append(parts, Part{Field: top, Cols: in})
		}
	}
	return c, parts
}

func (c Columns) bitsAnd(o Columns) Columns {
	return Columns{[2]uint64{c.bits[0] & o.bits[0], c.bits[1] & o.bits[1]}}
}
