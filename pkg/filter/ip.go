package filter

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// ipFilter: source_ip, destination_ip and source_ip_xlated, addresses
// (compared as strings, as Cilium does) or prefixes.
func ipFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	for _, ipf := range []struct {
		name, path string
		vals       []string
		get        func(*flowpb.Flow) string
	}{
		{"source_ip", "IP.source", ff.GetSourceIp(), func(f *flowpb.Flow) string { return f.GetIP().GetSource() }},
		{"destination_ip", "IP.destination", ff.GetDestinationIp(), func(f *flowpb.Flow) string { return f.GetIP().GetDestination() }},
		{"source_ip_xlated", "IP.source_xlated", ff.GetSourceIpXlated(), func(f *flowpb.Flow) string { return f.GetIP().GetSourceXlated() }},
	} {
		if ipf.vals == nil {
			continue
		}
		t, err := ipPred(ipf.vals, ipf.get)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ipf.name, err)
		}
		out = append(out, cheap(t, ipf.path)...)
	}
	return out, nil
}

// ipVersionFilter: the flow's IP version is one of ip_version.
func ipVersionFilter(ff *flowpb.FlowFilter) ([]check, error) {
	vs := ff.GetIpVersion()
	if vs == nil {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool { return f != nil && slices.Contains(vs, f.GetIP().GetIpVersion()) }, "IP.ipVersion"), nil
}

func ipPred(ips []string, get func(*flowpb.Flow) string) (pred, error) {
	var addrs []string
	var prefixes []netip.Prefix
	for _, ip := range ips {
		if strings.Contains(ip, "/") {
			p, err := netip.ParsePrefix(ip)
			if err != nil {
				return nil, fmt.Errorf("invalid IP prefix %q in filter: %w", ip, err)
			}
			prefixes = append(prefixes, p)
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("invalid IP address %q in filter: %w", ip, err)
		}
		addrs = append(addrs, ip)
	}
	return func(f *flowpb.Flow) bool {
		ip := get(f)
		if ip == "" {
			return false
		}
		if slices.Contains(addrs, ip) {
			return true
		}
		if len(prefixes) == 0 {
			return false
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return false
		}
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}, nil
}
