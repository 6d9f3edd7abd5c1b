package filter

import (
	"errors"
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// k8sNameFilter: source_pod, destination_pod, source_service and
// destination_service, "namespace/name-prefix" each.
func k8sNameFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	for _, nf := range []struct {
		name  string
		paths []string
		vals  []string
		get   func(*flowpb.Flow) (string, string)
	}{
		{"source_pod", []string{"source.namespace", "source.pod_name"}, ff.GetSourcePod(), func(f *flowpb.Flow) (string, string) {
			ep := f.GetSource()
			return ep.GetNamespace(), ep.GetPodName()
		}},
		{"destination_pod", []string{"destination.namespace", "destination.pod_name"}, ff.GetDestinationPod(), func(f *flowpb.Flow) (string, string) {
			ep := f.GetDestination()
			return ep.GetNamespace(), ep.GetPodName()
		}},
		{"source_service", []string{"source_service"}, ff.GetSourceService(), func(f *flowpb.Flow) (string, string) {
			s := f.GetSourceService()
			return s.GetNamespace(), s.GetName()
		}},
		{"destination_service", []string{"destination_service"}, ff.GetDestinationService(), func(f *flowpb.Flow) (string, string) {
			s := f.GetDestinationService()
			return s.GetNamespace(), s.GetName()
		}},
	} {
		if nf.vals == nil {
			continue
		}
		t, err := namespacedNamePred(nf.vals, nf.get)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", nf.name, err)
		}
		out = append(out, cheap(t, nf.paths...)...)
	}
	return out, nil
}

// parseNamespaceName is k8s.ParseNamespaceName of pkg/hubble/k8s.
func parseNamespaceName(s string) (ns, name string) {
	parts := strings.Split(s, "/")
	switch {
	case len(parts) > 1:
		return parts[0], parts[1]
	case parts[0] == "":
		return "", ""
	default:
		return "default", parts[0]
	}
}

func namespacedNamePred(names []string, get func(*flowpb.Flow) (string, string)) (pred, error) {
	type nf struct{ ns, prefix string }
	var fs []nf
	for _, n := range names {
		if n == "" {
			return nil, errors.New("invalid filter, name must not be empty")
		}
		ns, p := parseNamespaceName(n)
		fs = append(fs, nf{ns, p})
	}
	return func(f *flowpb.Flow) bool {
		ns, name := get(f)
		if ns == "" && name == "" {
			return false
		}
		for _, x := range fs {
			if (x.prefix == "" || strings.HasPrefix(name, x.prefix)) && (x.ns == "" || x.ns == ns) {
				return true
			}
		}
		return false
	}, nil
}
