package filter

import (
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// protocolFilter: the flow's L4 or L7 protocol is one of protocol.
func protocolFilter(ff *flowpb.FlowFilter) ([]check, error) {
	ps := ff.GetProtocol()
	if ps == nil {
		return nil, nil
	}
	t, err := protocolPred(ps)
	if err != nil {
		return nil, fmt.Errorf("protocol: invalid protocol filter: %w", err)
	}
	return cheap(t, "l4", "l7.dns", "l7.http", "l7.kafka"), nil
}

func protocolPred(protocols []string) (pred, error) {
	var tcp, udp, sctp, icmp4, icmp6, dns, http, kafka bool
	for _, p := range protocols {
		switch strings.ToLower(p) {
		case "icmp":
			icmp4, icmp6 = true, true
		case "icmpv4":
			icmp4 = true
		case "icmpv6":
			icmp6 = true
		case "tcp":
			tcp = true
		case "udp":
			udp = true
		case "sctp":
			sctp = true
		case "dns":
			dns = true
		case "http":
			http = true
		case "kafka":
			kafka = true
		default:
			return nil, fmt.Errorf("unknown protocol: %q", p)
		}
	}
	return func(f *flowpb.Flow) bool {
		l4 := f.GetL4()
		if (tcp && l4.GetTCP() != nil) || (udp && l4.GetUDP() != nil) || (sctp && l4.GetSCTP() != nil) ||
			(icmp4 && l4.GetICMPv4() != nil) || (icmp6 && l4.GetICMPv6() != nil) {
			return true
		}
		l7 := f.GetL7()
		return (dns && l7.GetDns() != nil) || (http && l7.GetHttp() != nil) || (kafka && l7.GetKafka() != nil)
	}, nil
}
