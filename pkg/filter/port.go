package filter

import (
	"fmt"
	"slices"
	"strconv"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// portFilter: source_port and destination_port, the TCP, UDP or SCTP port.
func portFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	if ps := ff.GetSourcePort(); ps != nil {
		t, err := portPred(ps, sourcePort)
		if err != nil {
			return nil, fmt.Errorf("source_port: invalid source port filter: %w", err)
		}
		out = append(out, cheap(t, "l4")...)
	}
	if ps := ff.GetDestinationPort(); ps != nil {
		t, err := portPred(ps, destinationPort)
		if err != nil {
			return nil, fmt.Errorf("destination_port: invalid destination port filter: %w", err)
		}
		out = append(out, cheap(t, "l4")...)
	}
	return out, nil
}

func sourcePort(f *flowpb.Flow) (uint16, bool) {
	l4 := f.GetL4()
	if t := l4.GetTCP(); t != nil {
		return uint16(t.SourcePort), true
	}
	if u := l4.GetUDP(); u != nil {
		return uint16(u.SourcePort), true
	}
	if s := l4.GetSCTP(); s != nil {
		return uint16(s.SourcePort), true
	}
	return 0, false
}

func destinationPort(f *flowpb.Flow) (uint16, bool) {
	l4 := f.GetL4()
	if t := l4.GetTCP(); t != nil {
		return uint16(t.DestinationPort), true
	}
	if u := l4.GetUDP(); u != nil {
		return uint16(u.DestinationPort), true
	}
	if s := l4.GetSCTP(); s != nil {
		return uint16(s.DestinationPort), true
	}
	return 0, false
}

func portPred(ps []string, get func(*flowpb.Flow) (uint16, bool)) (pred, error) {
	ports := make([]uint16, 0, len(ps))
	for _, p := range ps {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q: %w", p, err)
		}
		ports = append(ports, uint16(n))
	}
	return func(f *flowpb.Flow) bool {
		p, ok := get(f)
		return ok && slices.Contains(ports, p)
	}, nil
}
