package ingest

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// envelope is what the gRPC source reads of a GetFlowsResponse itself: the
// kind, and of a flow its node, time and uuid, which resume, deduplication
// and per-node gap accounting need. The pipeline decodes the message again
// on its plan; this reads a few fields and skips the rest by length.
type envelope struct {
	kind   flow.Kind
	node   []byte // the flow's node_name, else the envelope's (aliases the message)
	timeNs int64  // the flow's time, else the envelope's; 0: none
	uuid   []byte // the flow's uuid (aliases the message)
	// node status (Relay): the state and the nodes it names, and its message.
	state    int32
	names    [][]byte
	stateMsg []byte
	// lost events: the source and the count.
	lostSource, lostCount uint64
}

// GetFlowsResponse, Flow, Timestamp and NodeStatusEvent field numbers
// (api/v1/observer/observer.proto, flow/flow.proto, relay/relay.proto).
const (
	respFlow       = 1
	respNodeStatus = 2
	respLostEvents = 3
	respNodeName   = 1000
	respTime       = 1001

	flowTime     = 1
	flowNodeName = 11
	flowUUID     = 34

	tsSeconds = 1
	tsNanos   = 2

	statusState   = 1
	statusNames   = 2
	statusMessage = 3

	lostSource = 1
	lostCount  = 2
	// lostHubbleRing is LostEventSource HUBBLE_RING_BUFFER.
	lostHubbleRing = 3
)

var errWire = errors.New("malformed GetFlowsResponse")

// scanEnvelope reads e from msg, reusing e.names. A message it cannot
// read is left to the pipeline's decoder to count as a decode error.
func scanEnvelope(msg []byte, e *envelope) error {
	*e = envelope{names: e.names[:0]}
	var envNode []byte
	var envTime int64
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return errWire
		}
		msg = msg[n:]
		switch {
		case num == respFlow && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return errWire
			}
			e.kind = flow.KindFlow
			if err := scanFlow(v, e); err != nil {
				return err
			}
			msg = msg[n:]
		case num == respNodeStatus && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return errWire
			}
			e.kind = flow.KindNodeStatus
			if err := scanStatus(v, e); err != nil {
				return err
			}
			msg = msg[n:]
		case num == respLostEvents && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return errWire
			}
			e.kind = flow.KindLostEvents
			if err := scanLost(v, e); err != nil {
				return err
			}
			msg = msg[n:]
		case num == respNodeName && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return errWire
			}
			envNode = v
			msg = msg[n:]
		case num == respTime && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return errWire
			}
			t, err := scanTimestamp(v)
			if err != nil {
				return err
			}
			envTime = t
			msg = msg[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return errWire
			}
			msg = msg[n:]
		}
	}
	if e.node == nil {
		e.node = envNode
	}
	if e.timeNs == 0 {
		e.timeNs = envTime
	}
	return nil
}

func scanFlow(msg []byte, e *envelope) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return errWire
		}
		msg = msg[n:]
		if typ == protowire.BytesType && (num == flowTime || num == flowNodeName || num == flowUUID) {
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return errWire
			}
			switch num {
			case flowTime:
				t, err := scanTimestamp(v)
				if err != nil {
					return err
				}
				e.timeNs = t
			case flowNodeName:
				e.node = v
			case flowUUID:
				e.uuid = v
			}
			msg = msg[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return errWire
		}
		msg = msg[n:]
	}
	return nil
}

func scanStatus(msg []byte, e *envelope) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return errWire
		}
		msg = msg[n:]
		switch {
		case num == statusState && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return errWire
			}
			e.state = int32(v)
			msg = msg[n:]
		case (num == statusNames || num == statusMessage) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return errWire
			}
			if num == statusNames {
				e.names = append(e.names, v)
			} else {
				e.stateMsg = v
			}
			msg = msg[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return errWire
			}
			msg = msg[n:]
		}
	}
	return nil
}

// scanTimestamp reads a google.protobuf.Timestamp as ns since the epoch
// (0 for times that do not fit, which the pipeline's decoder refuses).
func scanTimestamp(msg []byte) (int64, error) {
	var sec, nanos int64
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return 0, errWire
		}
		msg = msg[n:]
		if typ == protowire.VarintType && (num == tsSeconds || num == tsNanos) {
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return 0, errWire
			}
			if num == tsSeconds {
				sec = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			msg = msg[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return 0, errWire
		}
		msg = msg[n:]
	}
	const maxSec, minSec = 9223372035, -9223372035 // int64 ns range, to the second
	if sec > maxSec || sec < minSec {
		return 0, nil
	}
	return sec*1e9 + nanos, nil
}

// scanLost reads a LostEvent's source and count.
func scanLost(msg []byte, e *envelope) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return errWire
		}
		msg = msg[n:]
		if (num == lostSource || num == lostCount) && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return errWire
			}
			if num == lostSource {
				e.lostSource = v
			} else {
				e.lostCount = v
			}
			msg = msg[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return errWire
		}
		msg = msg[n:]
	}
	return nil
}
