package filter

import (
	"fmt"
	"regexp"
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// fqdnFilter: source_fqdn and destination_fqdn, patterns over the
// endpoints' DNS names.
func fqdnFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	if pats := ff.GetSourceFqdn(); pats != nil {
		re, err := compileFQDNPattern(pats)
		if err != nil {
			return nil, fmt.Errorf("source_fqdn: %w", err)
		}
		out = append(out, costly(func(f *flowpb.Flow) bool { return slices.ContainsFunc(f.GetSourceNames(), re.MatchString) }, "source_names")...)
	}
	if pats := ff.GetDestinationFqdn(); pats != nil {
		re, err := compileFQDNPattern(pats)
		if err != nil {
			return nil, fmt.Errorf("destination_fqdn: %w", err)
		}
		out = append(out, costly(func(f *flowpb.Flow) bool { return slices.ContainsFunc(f.GetDestinationNames(), re.MatchString) }, "destination_names")...)
	}
	return out, nil
}

// dnsQueryFilter: the DNS query of an L7 DNS flow matches one of the
// dns_query regexps.
func dnsQueryFilter(ff *flowpb.FlowFilter) ([]check, error) {
	qs := ff.GetDnsQuery()
	if qs == nil {
		return nil, nil
	}
	res := make([]*regexp.Regexp, 0, len(qs))
	for _, q := range qs {
		re, err := regexp.Compile(q)
		if err != nil {
			return nil, fmt.Errorf("dns_query: invalid DNS query filter: failed to compile regexp: %w", err)
		}
		res = append(res, re)
	}
	return costly(func(f *flowpb.Flow) bool {
		dns := f.GetL7().GetDns()
		if dns == nil {
			return false
		}
		for _, re := range res {
			if re.MatchString(dns.Query) {
				return true
			}
		}
		return false
	}, "l7.dns.query"), nil
}
