package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/protobuf/types/known/timestamppb"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/flowaudit/flowaudit/internal/daemon"
	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/serve"
)

const root = "../.."

// objects is one kustomize build, decoded strictly (an unknown or misspelt
// field is an error) into the Kubernetes types.
type objects struct {
	daemonSet      *appsv1.DaemonSet
	deployment     *appsv1.Deployment // a collector's
	serve          *appsv1.Deployment // flowaudit serve's
	configMaps     map[string]*corev1.ConfigMap
	services       []*corev1.Service
	priority       []*schedulingv1.PriorityClass
	serviceAccount []*corev1.ServiceAccount
	pvcs           []*corev1.PersistentVolumeClaim
	cronJobs       []*batchv1.CronJob
	serviceMonitor []*monitoringv1.ServiceMonitor
	rules          []*monitoringv1.PrometheusRule
}

func build(t *testing.T, dir string) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	o := &objects{configMaps: map[string]*corev1.ConfigMap{}}
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		decode := func(into any) {
			t.Helper()
			if err := yaml.UnmarshalStrict(y, into); err != nil {
				t.Fatalf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
			}
		}
		if ns := r.GetNamespace(); ns != "kube-system" && r.GetKind() != "PriorityClass" {
			t.Errorf("%s: %s %s in namespace %q, want kube-system", dir, r.GetKind(), r.GetName(), ns)
		}
		switch r.GetKind() {
		case "DaemonSet":
			o.daemonSet = &appsv1.DaemonSet{}
			decode(o.daemonSet)
		case "Deployment":
			d := &appsv1.Deployment{}
			decode(d)
			if d.Name == "flowaudit-serve" {
				o.serve = d
			} else {
				o.deployment = d
			}
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			decode(cm)
			o.configMaps[cm.Name] = cm
		case "Service":
			s := &corev1.Service{}
			decode(s)
			o.services = append(o.services, s)
		case "PriorityClass":
			p := &schedulingv1.PriorityClass{}
			decode(p)
			o.priority = append(o.priority, p)
		case "ServiceAccount":
			s := &corev1.ServiceAccount{}
			decode(s)
			o.serviceAccount = append(o.serviceAccount, s)
		case "PersistentVolumeClaim":
			p := &corev1.PersistentVolumeClaim{}
			decode(p)
			o.pvcs = append(o.pvcs, p)
		case "CronJob":
			c := &batchv1.CronJob{}
			decode(c)
			o.cronJobs = append(o.cronJobs, c)
		case "ServiceMonitor":
			s := &monitoringv1.ServiceMonitor{}
			decode(s)
			o.serviceMonitor = append(o.serviceMonitor, s)
		case "PrometheusRule":
			p := &monitoringv1.PrometheusRule{}
			decode(p)
			o.rules = append(o.rules, p)
		default:
			t.Errorf("%s: unexpected %s %s", dir, r.GetKind(), r.GetName())
		}
	}
	if (o.daemonSet == nil) == (o.deployment == nil) {
		t.Fatalf("%s: want a DaemonSet or a Deployment, not both or neither", dir)
	}
	return o
}

// daemonConfig loads the ConfigMap's config.yaml with the daemon's own strict
// loader, with the mounted cilium-config simulated by a directory holding
// Cilium's default hubble-export-file-path.
func daemonConfig(t *testing.T, o *objects) daemon.Config {
	t.Helper()
	cm, ok := o.configMaps["flowaudit-config"]
	if !ok {
		t.Fatal("no flowaudit-config ConfigMap")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cm.Data["config.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := daemon.Load(path)
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	return cfg
}

func container(t *testing.T, ds *appsv1.DaemonSet) *corev1.Container {
	t.Helper()
	for i := range ds.Spec.Template.Spec.Containers {
		if ds.Spec.Template.Spec.Containers[i].Name == "flowaudit" {
			return &ds.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatal("no flowaudit container")
	return nil
}

func mountOf(c *corev1.Container, path string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if (path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/")) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func TestBaseDaemonSet(t *testing.T) {
	o := build(t, "deploy/daemonset")
	ds := o.daemonSet
	spec := &ds.Spec.Template.Spec
	c := container(t, ds)
	cfg := daemonConfig(t, o)

	// The configuration is valid as the DaemonSet runs it: node from
	// NODE_NAME, sources from the mounted cilium-config.
	cilium := t.TempDir()
	if err := os.WriteFile(filepath.Join(cilium, "hubble-export-file-path"), []byte("/var/run/cilium/hubble/events.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if mountOf(c, cfg.CiliumConfigDir) == nil {
		t.Errorf("ciliumConfigDir %s is not mounted", cfg.CiliumConfigDir)
	}
	run := cfg
	run.Node, run.CiliumConfigDir = "node-1", ""
	srcs, _, err := daemon.CiliumSources(cilium)
	if err != nil {
		t.Fatal(err)
	}
	run.Sources = append(run.Sources, srcs...)
	run.Archive.Dir = t.TempDir()
	if err := run.Validate(); err != nil {
		t.Errorf("config.yaml with a cilium-config does not validate: %v", err)
	}
	for _, s := range srcs {
		m := mountOf(c, s.File)
		if m == nil || !m.ReadOnly {
			t.Errorf("source %s: not mounted read-only (%+v)", s.File, m)
		}
	}

	// Arguments, ports, probes.
	if !slices.Equal(c.Args, []string{"run", "--config", "/etc/flowaudit/config.yaml"}) {
		t.Errorf("args %v", c.Args)
	}
	if m := mountOf(c, "/etc/flowaudit/config.yaml"); m == nil || volume(spec, m.Name).ConfigMap == nil || volume(spec, m.Name).ConfigMap.Name != "flowaudit-config" || m.SubPath != "" {
		t.Errorf("config.yaml is not mounted from flowaudit-config as a directory (a subPath mount never sees updates): %+v", m)
	}
	_, port, _ := strings.Cut(cfg.Listen, ":")
	if len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != port || c.Ports[0].Name != "metrics" {
		t.Errorf("container ports %+v, config listens on %s", c.Ports, cfg.Listen)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		// A standby (an upgrade's new pod waiting for the old one's
		// archive lock) must be ready, or maxSurge never deletes the old.
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz?standby"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port != intstr.FromString("metrics") {
			t.Errorf("%s probe %+v, want GET %s on the metrics port", name, p, want)
		}
	}
	if len(o.services) != 1 || o.services[0].Spec.Ports[0].TargetPort != intstr.FromString("metrics") {
		t.Errorf("services %+v", o.services)
	}
	for k, v := range o.services[0].Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s; the pods are labelled %v", k, v, ds.Spec.Template.Labels)
		}
	}

	// Upgrades: the new pod starts beside the old one and takes the
	// archive over when the old one has committed (docs/architecture.md,
	// "Upgrades"), no node ever without a collector.
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
		u.RollingUpdate.MaxSurge == nil || *u.RollingUpdate.MaxSurge != intstr.FromInt32(1) ||
		u.RollingUpdate.MaxUnavailable == nil || *u.RollingUpdate.MaxUnavailable != intstr.FromInt32(0) {
		t.Errorf("updateStrategy %+v, want RollingUpdate with maxSurge 1 and maxUnavailable 0", u)
	}
	for _, p := range c.Ports {
		if p.HostPort != 0 {
			t.Errorf("port %s has hostPort %d: a surge pod could not start beside the old one", p.Name, p.HostPort)
		}
	}
	if spec.HostNetwork {
		t.Error("hostNetwork: a surge pod could not listen beside the old one")
	}

	// Shutdown: the grace period covers the drain.
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < time.Duration(cfg.Shutdown.DrainTimeout)+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v is not above shutdown.drainTimeout %s (+10s to commit)", g, cfg.Shutdown.DrainTimeout)
	}

	// Scheduling: every node, with a priority class that the build creates.
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
		t.Errorf("tolerations %+v: want one that tolerates every taint", spec.Tolerations)
	}
	if len(o.priority) != 1 || spec.PriorityClassName != o.priority[0].Name {
		t.Errorf("priorityClassName %q, classes built %v", spec.PriorityClassName, o.priority)
	}

	// Environment: NODE_NAME from the downward API; GOMEMLIMIT below the limit.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME %+v", e)
	}
	if e := env["CLUSTER_NAME"]; e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil || e.ValueFrom.ConfigMapKeyRef.Key != "cluster-name" {
		t.Errorf("CLUSTER_NAME %+v", e)
	}
	limit := c.Resources.Limits.Memory()
	var gml daemon.Size
	if err := gml.Set(strings.TrimSuffix(env["GOMEMLIMIT"].Value, "B")); err != nil || limit.IsZero() || int64(gml) >= limit.Value() || int64(gml) < limit.Value()*3/4 {
		t.Errorf("GOMEMLIMIT %q (%v) is not between 75%% and 100%% of the memory limit %s", env["GOMEMLIMIT"].Value, err, limit)
	}
	if int64(cfg.Queue.MaxBytes)*2 > limit.Value()/2 {
		t.Errorf("queue.maxBytes %s leaves too little of the memory limit %s", cfg.Queue.MaxBytes, limit)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("requests %v", c.Resources.Requests)
	}

	// Security: no capabilities, no escalation, read-only root; Hubble's
	// directory read-only; the archive writable, on the node.
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 || sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container securityContext %+v", sc)
	}
	if spec.HostNetwork || spec.HostPID {
		t.Error("host network or PID namespace: not needed")
	}
	am := mountOf(c, cfg.Archive.Dir)
	if am == nil || am.ReadOnly {
		t.Fatalf("archive.dir %s: mount %+v", cfg.Archive.Dir, am)
	}
	if v := volume(spec, am.Name); v.HostPath == nil || v.HostPath.Path != "/var/lib/flowaudit" {
		t.Errorf("archive volume %+v: want hostPath /var/lib/flowaudit", v)
	}
	// The agent's run directory, at its path: events.log under hubble/ and
	// the Hubble socket, read-only.
	if v := volume(spec, "cilium-run"); v == nil || v.HostPath == nil || v.HostPath.Path != "/var/run/cilium" {
		t.Errorf("cilium-run volume %+v", v)
	}
	if m := mountOf(c, "/var/run/cilium/hubble.sock"); m == nil || !m.ReadOnly || m.MountPath != "/var/run/cilium" {
		t.Errorf("the agent's socket is not mounted read-only at its path: %+v", m)
	}
	// Every volume is mounted and every mount has a volume.
	for _, m := range c.VolumeMounts {
		if volume(spec, m.Name) == nil {
			t.Errorf("mount %s: no volume", m.Name)
		}
	}
	for _, v := range spec.Volumes {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == v.Name }) {
			t.Errorf("volume %s is not mounted", v.Name)
		}
	}
	if len(o.serviceAccount) != 1 || spec.ServiceAccountName != o.serviceAccount[0].Name || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("service account %q (automount %v): the daemon calls no API", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
	}
}

// TestDockerfileMatchesMakefile: the image is built with the flags of
// `make build`, and runs the command the DaemonSet gives it by default.
func TestDockerfileMatchesMakefile(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "buildinfo.Version=", "buildinfo.Commit="} {
		if !bytes.Contains(df, []byte(want)) || !bytes.Contains(mk, []byte(want)) {
			t.Errorf("%q: not in both the Dockerfile and the Makefile", want)
		}
	}
	if !bytes.Contains(df, []byte(`CMD ["run", "--config", "/etc/flowaudit/config.yaml"]`)) {
		t.Error("the Dockerfile's CMD is not the DaemonSet's command")
	}
}

func TestProductionOverlay(t *testing.T) {
	o := build(t, "deploy/daemonset/overlays/production")
	ds := o.daemonSet
	spec := &ds.Spec.Template.Spec
	c := container(t, ds)
	cfg := daemonConfig(t, o)

	// The archive is on the shared volume, one root per node.
	am := mountOf(c, cfg.Archive.Dir)
	v := volume(spec, am.Name)
	if v.HostPath != nil || v.PersistentVolumeClaim == nil || len(o.pvcs) != 1 || v.PersistentVolumeClaim.ClaimName != o.pvcs[0].Name {
		t.Fatalf("archive volume %+v: want the PVC alone", v)
	}
	if !slices.Contains(o.pvcs[0].Spec.AccessModes, corev1.ReadWriteMany) {
		t.Errorf("PVC access modes %v: every node writes", o.pvcs[0].Spec.AccessModes)
	}
	if am.SubPathExpr != "nodes/$(NODE_NAME)" {
		t.Errorf("archive subPathExpr %q", am.SubPathExpr)
	}
	if len(spec.Volumes) != len(build(t, "deploy/daemonset").daemonSet.Spec.Template.Spec.Volumes) {
		t.Error("the patch added or removed volumes")
	}

	// The CronJob: previous month on the 1st in KST, reading every node's
	// root as the DaemonSet lays them out on the same claim.
	if len(o.cronJobs) != 1 {
		t.Fatalf("cronjobs %d", len(o.cronJobs))
	}
	cj := o.cronJobs[0]
	if cj.Spec.Schedule != "0 6 1 * *" || cj.Spec.TimeZone == nil || *cj.Spec.TimeZone != "Asia/Seoul" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("cronjob schedule %q tz %v policy %s", cj.Spec.Schedule, cj.Spec.TimeZone, cj.Spec.ConcurrencyPolicy)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	jobs := append(slices.Clone(pod.InitContainers), pod.Containers...)
	if len(jobs) != 2 {
		t.Fatalf("%d report containers", len(jobs))
	}
	for _, jc := range jobs {
		if jc.Image != c.Image || !strings.Contains(c.Image, "/") {
			t.Errorf("%s runs image %q, the DaemonSet %q: both must be the published image", jc.Name, jc.Image, c.Image)
		}
	}

	// Lay out an archive as the DaemonSet writes it (claim/nodes/<node>/
	// + archive.dir under the mount) and run each container's arguments
	// with the real binary, with the claim's mount paths mapped into a
	// temporary directory.
	claim := t.TempDir()
	rel, err := filepath.Rel(am.MountPath, cfg.Archive.Dir)
	if err != nil {
		t.Fatal(err)
	}
	prev := time.Now().In(mustTZ(t, "Asia/Seoul")).AddDate(0, -1, 0)
	month := time.Date(prev.Year(), prev.Month(), 15, 12, 0, 0, 0, time.UTC)
	var want int
	for i, node := range []string{"node-a", "node-b"} {
		dir := filepath.Join(claim, strings.ReplaceAll(am.SubPathExpr, "$(NODE_NAME)", node), rel)
		want += writeArchive(t, dir, node, month, 10*(i+1))
	}
	bin := filepath.Join(t.TempDir(), "flowaudit")
	// Built in the main module, with its own dependency versions.
	gb := exec.Command("go", "build", "-o", bin, "./cmd/flowaudit")
	gb.Dir = root
	if out, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, jc := range jobs {
		args := slices.Clone(jc.Args)
		for i, a := range args {
			for _, m := range jc.VolumeMounts {
				if m.Name != "archive" {
					continue
				}
				host := filepath.Join(claim, m.SubPath)
				if err := os.MkdirAll(host, 0o755); err != nil {
					t.Fatal(err)
				}
				if k, v, ok := strings.Cut(a, "="); ok && (v == m.MountPath || strings.HasPrefix(v, m.MountPath+"/")) {
					args[i] = k + "=" + host + strings.TrimPrefix(v, m.MountPath)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: flowaudit %v: %v\n%s", jc.Name, args, err, out)
		}
	}
	name := "flowaudit-" + prev.Format("2006-01")
	b, err := os.ReadFile(filepath.Join(claim, "reports", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Total int64    `json:"total_flows"`
		Nodes []string `json:"nodes"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Total != int64(want) || len(doc.Nodes) != 2 {
		t.Errorf("the CronJob's report counted %d flows on %v; the archives hold %d on 2 nodes", doc.Total, doc.Nodes, want)
	}
	if html, err := os.ReadFile(filepath.Join(claim, "reports", name+".html")); err != nil || !bytes.Contains(html, []byte("<html")) {
		t.Errorf("html report: %v", err)
	}
}

func mustTZ(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// writeArchive commits n flows of node at t into an archive at dir.
func writeArchive(t *testing.T, dir, node string, at time.Time, n int) int {
	t.Helper()
	w, err := archive.Open(archive.Config{Root: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	for i := 0; i < n; i++ {
		f := b.Next()
		f.Reset()
		f.Time = timestamppb.New(at.Add(time.Duration(i) * time.Second))
		f.NodeName = node
		f.Verdict = flowpb.Verdict_FORWARDED
		f.Uuid = fmt.Sprintf("%s-%d", node, i)
	}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// metricNames are the metrics docs/metrics.md lists (generated from the
// daemon's registry and checked by its tests), with the series a histogram
// adds, and the exporter's standard series.
func metricNames(t *testing.T) map[string]bool {
	b, err := os.ReadFile(filepath.Join(root, "docs/metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"up": true}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_:]+)` \\| (\\w+)").FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
		if m[2] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+s] = true
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("docs/metrics.md lists %d metrics", len(names))
	}
	return names
}

// checkPromQL parses expr and reports the metrics it reads that the daemon
// does not export (process_* and go_* come from client_golang's collectors,
// which docs/metrics.md does not list).
func checkPromQL(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return
	}
	n := 0
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			n++
			if !known[vs.Name] && !strings.HasPrefix(vs.Name, "process_") && !strings.HasPrefix(vs.Name, "go_") {
				t.Errorf("%s: %q reads %s, which flowaudit does not export (docs/metrics.md)", where, expr, vs.Name)
			}
		}
		return nil
	})
	if n == 0 {
		t.Errorf("%s: %q reads no metric", where, expr)
	}
}

func TestAlertsAndDashboard(t *testing.T) {
	o := build(t, "deploy/daemonset/overlays/production")
	known := metricNames(t)
	if len(o.rules) != 1 || len(o.serviceMonitor) != 1 {
		t.Fatalf("%d rules, %d service monitors", len(o.rules), len(o.serviceMonitor))
	}
	sm := o.serviceMonitor[0]
	for k, v := range sm.Spec.Selector.MatchLabels {
		if o.services[0].Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s; the Service is labelled %v", k, v, o.services[0].Labels)
		}
	}
	if sm.Spec.Endpoints[0].Port != o.services[0].Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor port %q, Service port %q", sm.Spec.Endpoints[0].Port, o.services[0].Spec.Ports[0].Name)
	}
	var alerts []string
	for _, g := range o.rules[0].Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkPromQL(t, "alert "+r.Alert, r.Expr.String(), known)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no severity or summary", r.Alert)
			}
		}
	}
	// The conditions the issue names: collector down, lag, lost events,
	// disk nearly full, verify failures.
	for _, want := range []string{"FlowauditCollectorDown", "FlowauditLagging", "FlowauditLostEventsRising", "FlowauditDiskNearlyFull", "FlowauditVerifyFailed"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
	cm, ok := o.configMaps["flowaudit-grafana-dashboard"]
	if !ok || cm.Labels["grafana_dashboard"] != "1" {
		t.Fatalf("dashboard ConfigMap %+v", cm)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["flowaudit.json"]), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Errorf("dashboard uid %q, %d panels", dash.UID, len(dash.Panels))
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$node", ".*")
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkPromQL(t, "panel "+p.Title, vars.Replace(tg.Expr), known)
		}
	}
}

// TestDockerBuildContext builds the binary the way the Dockerfile's build
// stage does, from the build context its .dockerignore leaves (matched
// with moby/patternmatcher, Docker's own matcher), with the Dockerfile's
// own go build command: the image builds without a Docker engine being
// needed to find out, and the context holds no local binaries or tools.
func TestDockerBuildContext(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	var ctxBytes int64
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if excluded {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctxDir, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			ctxBytes += int64(len(b))
			return os.WriteFile(dst, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctxBytes > 32<<20 {
		t.Errorf("the build context is %d MiB: .dockerignore lets local builds or data in", ctxBytes>>20)
	}
	// The build stage's go build, continuation lines joined.
	var run string
	lines := strings.Split(string(df), "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "RUN ") || !strings.Contains(lines[i], "go build") {
			continue
		}
		cmd := lines[i]
		for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(lines[i])
		}
		run = strings.TrimPrefix(cmd, "RUN ")
	}
	if run == "" || !strings.Contains(run, "-o /out/flowaudit") {
		t.Fatalf("no go build into /out/flowaudit in the Dockerfile: %q", run)
	}
	bin := filepath.Join(t.TempDir(), "flowaudit")
	for _, c := range []*exec.Cmd{
		exec.Command("go", "mod", "download"),
		exec.Command("sh", "-c", strings.Replace(run, "/out/flowaudit", bin, 1)),
		exec.Command(bin, "version"),
	} {
		c.Dir = ctxDir
		c.Env = append(os.Environ(), "VERSION=v0.0.0-docker-test", "COMMIT=0123abc")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		if c.Path == bin && !bytes.Contains(out, []byte("v0.0.0-docker-test (commit 0123abc")) {
			t.Errorf("the image's binary reports %q: the version flags were not applied", out)
		}
	}
}

// TestRelayOverlay: one collector reads Hubble Relay instead of one per
// node: no DaemonSet, a single-replica Deployment that replaces itself
// (one writer per archive), its archive on a claim, Relay's client
// certificates mounted where config.yaml's commented tls points, and a
// configuration the daemon accepts.
func TestRelayOverlay(t *testing.T) {
	o := build(t, "deploy/daemonset/overlays/relay")
	d := o.deployment
	if d == nil || o.daemonSet != nil {
		t.Fatal("want the Relay Deployment and no DaemonSet")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %v strategy %s: one writer per archive", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	spec := &d.Spec.Template.Spec
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "flowaudit" {
			c = &spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatal("no flowaudit container")
	}
	cm, ok := o.configMaps["flowaudit-config"]
	if !ok {
		t.Fatal("no flowaudit-config")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cm.Data["config.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := daemon.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node = "node-1"
	cfg.Archive.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if len(cfg.Sources) != 1 || !strings.HasPrefix(cfg.Sources[0].Address, "relay://hubble-relay.kube-system.svc:") {
		t.Errorf("sources %+v: want Relay's Service", cfg.Sources)
	}
	if m := mountOf(c, "/var/lib/flowaudit/archive"); m == nil || m.ReadOnly {
		t.Errorf("archive mount %+v", m)
	} else if v := volume(spec, m.Name); v.PersistentVolumeClaim == nil || len(o.pvcs) != 1 || v.PersistentVolumeClaim.ClaimName != o.pvcs[0].Name {
		t.Errorf("archive volume %+v: want the overlay's claim", v)
	}
	if m := mountOf(c, "/var/lib/hubble-relay/tls/ca.crt"); m == nil || !m.ReadOnly {
		t.Errorf("Relay's client certificates are not mounted read-only: %+v", m)
	}
	if len(o.services) != 1 {
		t.Fatalf("services %v", o.services)
	}
	for k, v := range o.services[0].Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the metrics Service selects %s=%s, the pod has %q", k, v, d.Spec.Template.Labels[k])
		}
	}
}

// TestServeOverlay: flowaudit serve reads every node's root of the shared
// archive through a read-only mount, listens on the pod's loopback, and its
// Service reaches the metrics port it serves.
func TestServeOverlay(t *testing.T) {
	o := build(t, "deploy/daemonset/overlays/serve")
	d := o.serve
	if d == nil || o.daemonSet == nil {
		t.Fatal("want the DaemonSet and flowaudit-serve")
	}
	spec := &d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := &spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %q", c.Args)
	}
	flags := map[string]string{}
	for _, a := range c.Args[1:] {
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") {
			t.Fatalf("argument %q: want --flag=value", a)
		}
		flags[k] = v
	}
	if loop, err := serve.IsLoopback(flags["listen"]); err != nil || !loop {
		t.Errorf("--listen=%s: want a loopback address without mTLS (%v)", flags["listen"], err)
	}
	if flags["tls-client-ca"] != "" || flags["insecure-listen-any"] != "" {
		t.Errorf("args %q", c.Args)
	}
	m := mountOf(c, flags["archive"])
	if m == nil || !m.ReadOnly {
		t.Fatalf("--archive=%s: mount %+v, want a read-only one", flags["archive"], m)
	}
	if !strings.HasPrefix(flags["archive"], m.MountPath+"/nodes/") {
		t.Errorf("--archive=%s: want the nodes' roots under %s/nodes", flags["archive"], m.MountPath)
	}
	v := volume(spec, m.Name)
	if v.PersistentVolumeClaim == nil || !v.PersistentVolumeClaim.ReadOnly || len(o.pvcs) != 1 || v.PersistentVolumeClaim.ClaimName != o.pvcs[0].Name {
		t.Errorf("archive volume %+v: want the shared archive's claim, read-only", v)
	}
	ds := container(t, o.daemonSet)
	if dm := mountOf(ds, "/var/lib/flowaudit/archive"); dm == nil || !strings.HasPrefix(dm.SubPathExpr, "nodes/") {
		t.Errorf("the collectors' archive mount %+v: want nodes/<node> on the shared volume", dm)
	}
	_, port, _ := strings.Cut(flags["metrics-listen"], ":")
	var svc *corev1.Service
	for _, s := range o.services {
		if s.Name == "flowaudit-serve" {
			svc = s
		}
	}
	if svc == nil || len(svc.Spec.Ports) != 1 {
		t.Fatalf("no Service flowaudit-serve with one port: %+v", svc)
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v || d.Spec.Selector.MatchLabels[k] != v {
			t.Errorf("the Service selects %s=%s, the pod has %q", k, v, d.Spec.Template.Labels[k])
		}
	}
	if len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != port || svc.Spec.Ports[0].TargetPort.StrVal != c.Ports[0].Name {
		t.Errorf("--metrics-listen=%s, container ports %+v, Service ports %+v", flags["metrics-listen"], c.Ports, svc.Spec.Ports)
	}
	for _, other := range o.services {
		all := other != svc
		for k, v := range other.Spec.Selector {
			all = all && d.Spec.Template.Labels[k] == v
		}
		if all {
			t.Errorf("Service %s selects serve's pods too", other.Name)
		}
	}
}
