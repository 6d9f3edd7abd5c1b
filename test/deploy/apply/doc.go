// Package apply applies the kustomizations of deploy/daemonset to a real
// kube-apiserver, twice, and requires the second apply to change nothing:
// a GitOps controller (Argo CD, Flux) that re-applies them would otherwise
// report them out of sync forever.
//
// The server is k8s.io/kubernetes' own kube-apiserver (the test server of
// cmd/kube-apiserver/app/testing) on an embedded etcd, both on loopback, with
// prometheus-operator's ServiceMonitor and PrometheusRule CRDs taken from the
// Go module cache. The apply is kubectl's own code (k8s.io/kubectl's apply
// command with -k and --validate=strict), once client-side, where the
// last-applied annotation is compared with the live object the server has
// defaulted, and once server-side.
//
// It is a package of its own, and its test is built only with the apiserver
// build tag (`make test-deploy-apply`), so that the kube-apiserver is
// compiled and linked for this test alone, not for the other deploy tests.
package apply
