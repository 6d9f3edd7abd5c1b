package filter

import (
	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// tcpFlagsFilter: the flow's TCP flags include every flag of one of
// tcp_flags.
func tcpFlagsFilter(ff *flowpb.FlowFilter) ([]check, error) {
	flags := ff.GetTcpFlags()
	if flags == nil {
		return nil, nil
	}
	return cheap(tcpFlagsPred(flags), "l4.TCP.flags"), nil
}

func tcpFlagsPred(flags []*flowpb.TCPFlags) pred {
	return func(f *flowpb.Flow) bool {
		ff := f.GetL4().GetTCP().GetFlags()
		if ff == nil {
			return false
		}
		for _, x := range flags {
			if (x.FIN && !ff.FIN) || (x.SYN && !ff.SYN) || (x.RST && !ff.RST) || (x.PSH && !ff.PSH) ||
				(x.ACK && !ff.ACK) || (x.URG && !ff.URG) || (x.ECE && !ff.ECE) || (x.CWR && !ff.CWR) || (x.NS && !ff.NS) {
				continue
			}
			return true
		}
		return false
	}
}
