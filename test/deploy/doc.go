// Package deploy checks the Kubernetes manifests in deploy/daemonset against
// the code they deploy: kustomize builds them, every object decodes strictly
// into its Kubernetes type, the default config.yaml loads and validates with
// the daemon's own loader, ports, paths and timeouts agree across the
// DaemonSet, the config and the Dockerfile, the CronJob's report arguments
// run against a real archive laid out as the DaemonSet writes it, and every
// alert and dashboard query parses as PromQL and reads only metrics that
// docs/metrics.md (generated from the daemon's registry) lists.
//
// The test of package apply (build tag apiserver: `make test-deploy-apply`)
// applies the same kustomizations to a real kube-apiserver and requires a
// second apply to change nothing.
//
// It is a separate module so that kustomize, the Kubernetes API types and
// server, and the Prometheus parser stay out of the main module's
// dependencies.
package deploy
