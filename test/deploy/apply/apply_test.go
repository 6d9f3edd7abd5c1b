//go:build apiserver

// The apiserver tag keeps this test, which compiles k8s.io/kubernetes'
// kube-apiserver, out of `go test ./...` and `go vet ./...` of this module,
// so that `make test-deploy` stays quick; `make test-deploy-apply` runs it,
// and `make test` (what CI runs) includes that target.

package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/storage/etcd3/testserver"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/kubectl/pkg/cmd/apply"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/scheme"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// root is the repository, from this package's directory.
const root = "../../.."

// The prometheus-operator release whose CRDs are installed. The CRD
// manifests are in its main module (example/prometheus-operator-crd), which
// this module does not import: it is fetched into the module cache at test
// time, as any module is (and checked against the Go checksum database).
const (
	promOperator        = "github.com/prometheus-operator/prometheus-operator"
	promOperatorVersion = "v0.85.0"
	promOperatorCRDs    = "example/prometheus-operator-crd"
)

// kustomizations are the ones deploy/daemonset/README.md tells users to apply.
var kustomizations = []string{"deploy/daemonset", "deploy/daemonset/overlays/production"}

// need fails the test under CI (CI=true) and skips it elsewhere when a
// prerequisite that this machine may lack (the module proxy, for a module
// not yet in the cache) cannot be had.
func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v (CI=true: a missing prerequisite fails the test)", what, err)
	}
	t.Skipf("%s: %v (with CI=true this fails)", what, err)
}

// crdDir downloads prometheus-operator's main module into the module cache
// (a no-op when it is there) and returns its directory of CRD manifests.
func crdDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", promOperator+"@"+promOperatorVersion)
	// Outside this module, so that its go.mod and go.sum are left alone.
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); jerr == nil && mod.Error != "" {
		err = fmt.Errorf("%s", mod.Error)
	} else if err == nil && jerr != nil {
		err = fmt.Errorf("go mod download: %w", jerr)
	}
	need(t, "prometheus-operator's CRDs ("+promOperator+"@"+promOperatorVersion+")", err)
	return filepath.Join(mod.Dir, promOperatorCRDs)
}

// cluster is a kube-apiserver on loopback and a kubeconfig for it.
type cluster struct {
	config     *rest.Config
	kubeconfig string
}

// startCluster starts a kube-apiserver storing under its own prefix in etcd,
// installs the CRDs of the given kinds (monitoring.coreos.com) from crds and
// waits until they are served and kube-system exists.
func startCluster(t *testing.T, etcd []string, crds string, kinds []string) *cluster {
	t.Helper()
	storage := storagebackend.NewDefaultConfig(path.Join("/", strings.ReplaceAll(t.Name(), "/", "_"), "registry"), nil)
	storage.Transport.ServerList = etcd
	server := kubeapiservertesting.StartTestServerOrDie(t, nil, nil, storage)
	t.Cleanup(server.TearDownFn)

	c := &cluster{config: server.ClientConfig, kubeconfig: filepath.Join(t.TempDir(), "kubeconfig")}
	writeKubeconfig(t, c)

	ext := apiextensionsclient.NewForConfigOrDie(c.config)
	for _, kind := range kinds {
		// The CRD files are named <group>_<plural>.yaml, and these kinds'
		// plurals are their lower-case names with an s.
		file := filepath.Join(crds, "monitoring.coreos.com_"+strings.ToLower(kind)+"s.yaml")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("CRD of %s: %v", kind, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, crd); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(t.Context(), crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD %s: %v", crd.Name, err)
		}
		err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("CRD %s not established: %v", crd.Name, err)
		}
	}

	// kube-system is created by the server's system-namespaces controller,
	// shortly after it starts serving.
	kube := kubernetes.NewForConfigOrDie(c.config)
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace kube-system: %v", err)
	}
	return c
}

// writeKubeconfig writes a kubeconfig for c's server, as kubectl reads it.
func writeKubeconfig(t *testing.T, c *cluster) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   c.config.Host,
		CertificateAuthorityData: c.config.CAData,
		TLSServerName:            c.config.ServerName,
	}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: c.config.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*kc, c.kubeconfig); err != nil {
		t.Fatal(err)
	}
}

// factory is kubectl's, for this cluster, with a discovery cache of its own
// (kubectl's default, under $HOME, could hold another server's API list).
func (c *cluster) factory(t *testing.T) cmdutil.Factory {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &c.kubeconfig
	cache := t.TempDir()
	flags.CacheDir = &cache
	return cmdutil.NewFactory(cmdutil.NewMatchVersionFlags(flags))
}

// apply runs `kubectl apply` with args and returns what it printed on
// stdout, one line per object, and on stderr.
func (c *cluster) apply(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	flags := apply.NewApplyFlags(streams)
	cmd := &cobra.Command{Use: "apply"}
	flags.AddFlags(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("kubectl apply %v: %v", args, err)
	}
	o, err := flags.ToOptions(c.factory(t), cmd, "kubectl", cmd.Flags().Args())
	if err == nil {
		err = o.Validate()
	}
	if err == nil {
		err = o.Run()
	}
	return out.String(), errOut.String(), err
}

// objects are the objects kubectl builds from a kustomization, by the name
// kubectl prints for them (kind.group/name).
func (c *cluster) objects(t *testing.T, dir string) map[string]*resource.Info {
	t.Helper()
	infos, err := c.factory(t).NewBuilder().Unstructured().
		FilenameParam(false, &resource.FilenameOptions{Kustomize: dir}).
		Flatten().Do().Infos()
	if err != nil {
		t.Fatalf("kubectl's build of %s: %v", dir, err)
	}
	m := map[string]*resource.Info{}
	for _, info := range infos {
		m[printedName(info)] = info
	}
	return m
}

func printedName(info *resource.Info) string {
	gk := info.Object.GetObjectKind().GroupVersionKind().GroupKind()
	if gk.Group == "" {
		return strings.ToLower(gk.Kind) + "/" + info.Name
	}
	return strings.ToLower(gk.Kind) + "." + gk.Group + "/" + info.Name
}

var appliedLine = regexp.MustCompile(`^(\S+/\S+) (created|configured|unchanged|serverside-applied)$`)

// results parses kubectl apply's output: the operation for each object.
func results(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		g := appliedLine.FindStringSubmatch(line)
		if g == nil {
			t.Fatalf("kubectl apply printed %q", line)
		}
		m[g[1]] = g[2]
	}
	return m
}

// fetch gets every object from the server and returns it by name.
func fetch(t *testing.T, objs map[string]*resource.Info) map[string]map[string]any {
	t.Helper()
	m := map[string]map[string]any{}
	for name, info := range objs {
		obj, err := resource.NewHelper(info.Client, info.Mapping).Get(info.Namespace, info.Name)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		var u map[string]any
		if err := json.Unmarshal(b, &u); err != nil {
			t.Fatal(err)
		}
		m[name] = u
	}
	return m
}

func resourceVersion(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	rv, _ := md["resourceVersion"].(string)
	return rv
}

// withoutResourceVersion is obj without metadata.resourceVersion.
func withoutResourceVersion(obj map[string]any) map[string]any {
	md, _ := obj["metadata"].(map[string]any)
	c, m := maps.Clone(obj), maps.Clone(md)
	delete(m, "resourceVersion")
	c["metadata"] = m
	return c
}

// drift lists where the live object differs from what was applied: fields
// the server dropped or changed and, where a list is replaced whole
// (wholeLists: the JSON merge patch kubectl sends for custom resources, not
// the strategic merge patch of built-in kinds, which merges list elements
// by key), fields the server added to the elements of a list. It explains a
// `configured` second apply.
func drift(at string, applied, live any, wholeLists bool) []string {
	switch a := applied.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: applied %v, live %v", at, applied, live)}
		}
		var out []string
		for _, k := range sortedKeys(a) {
			if _, ok := l[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: applied %v, absent from the live object", at, k, a[k]))
				continue
			}
			out = append(out, drift(at+"."+k, a[k], l[k], wholeLists)...)
		}
		return out
	case []any:
		l, ok := live.([]any)
		if !ok || len(l) != len(a) {
			return []string{fmt.Sprintf("%s: applied %v, live %v", at, applied, live)}
		}
		var out []string
		for i := range a {
			el := fmt.Sprintf("%s[%d]", at, i)
			out = append(out, drift(el, a[i], l[i], wholeLists)...)
			am, aok := a[i].(map[string]any)
			lm, lok := l[i].(map[string]any)
			if wholeLists && aok && lok {
				for _, k := range sortedKeys(lm) {
					if _, ok := am[k]; !ok {
						out = append(out, fmt.Sprintf("%s.%s: not applied, set by the server to %v", el, k, lm[k]))
					}
				}
			}
		}
		return out
	default:
		if !reflect.DeepEqual(applied, live) {
			return []string{fmt.Sprintf("%s: applied %v, live %v", at, applied, live)}
		}
		return nil
	}
}

// changes lists the paths at which two versions of an object differ.
func changes(at string, before, after any) []string {
	b, bok := before.(map[string]any)
	a, aok := after.(map[string]any)
	if !bok || !aok {
		if reflect.DeepEqual(before, after) {
			return nil
		}
		return []string{fmt.Sprintf("%s: %v, then %v", at, before, after)}
	}
	var out []string
	for _, k := range sortedKeys(b) {
		out = append(out, changes(at+"."+k, b[k], a[k])...)
	}
	for _, k := range sortedKeys(a) {
		if _, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("%s.%s: absent, then %v", at, k, a[k]))
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestReapplyChangesNothing applies each kustomization to a fresh
// kube-apiserver with strict field validation, client-side and
// server-side, and requires the second apply to change nothing: every object
// `unchanged` client-side (the patch kubectl computes from the last-applied
// annotation, the manifest and the live, defaulted object is empty), and no
// object's content changed either way. A third apply must not even write
// (the resourceVersion stays): the server may rewrite an object once after
// its creation to store what it defaults on reads (a claim's status.phase),
// but an object written on every apply is one that a GitOps controller
// would keep updating.
func TestReapplyChangesNothing(t *testing.T) {
	crds := crdDir(t)
	etcd := testserver.RunEtcd(t, nil)

	for _, dir := range kustomizations {
		for _, mode := range []string{"client-side", "server-side"} {
			t.Run(mode+"/"+dir, func(t *testing.T) {
				c := startCluster(t, etcd.Endpoints(), crds, monitoringKinds(t, dir))
				args := []string{"-k", filepath.Join(root, dir), "--validate=strict"}
				if mode == "server-side" {
					args = append(args, "--server-side")
				}
				objs := c.objects(t, filepath.Join(root, dir))
				names := slices.Sorted(maps.Keys(objs))
				if len(names) == 0 {
					t.Fatalf("%s builds no objects", dir)
				}
				want := map[string][2]string{
					"client-side": {"created", "unchanged"},
					"server-side": {"serverside-applied", "serverside-applied"},
				}[mode]

				var states []map[string]map[string]any
				for i := range 3 {
					out, stderr, err := c.apply(t, args...)
					if err != nil {
						t.Fatalf("kubectl apply %v (apply %d): %v\n%s%s", args, i+1, err, out, stderr)
					}
					ops := results(t, out)
					checkResults(t, i+1, ops, objs, want[min(i, 1)])
					states = append(states, fetch(t, objs))
					if i == 1 {
						for _, name := range names {
							if ops[name] == "configured" {
								explain(t, name, objs[name], states[1][name])
							}
						}
					}
				}
				for _, name := range names {
					if d := changes(name, withoutResourceVersion(states[0][name]), withoutResourceVersion(states[1][name])); len(d) > 0 {
						t.Errorf("%s: changed by the second apply:\n  %s", name, strings.Join(d, "\n  "))
					}
					if rv1, rv2 := resourceVersion(states[1][name]), resourceVersion(states[2][name]); rv1 != rv2 {
						t.Errorf("%s: written again by the third apply (resourceVersion %s, then %s):\n  %s", name, rv1, rv2,
							strings.Join(changes(name, states[1][name], states[2][name]), "\n  "))
					}
				}
			})
		}
	}
}

// explain logs how the live object differs from its last-applied
// configuration, which is what made kubectl send a patch.
func explain(t *testing.T, name string, info *resource.Info, obj map[string]any) {
	t.Helper()
	md, _ := obj["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	var last map[string]any
	if err := json.Unmarshal([]byte(fmt.Sprint(ann[corev1.LastAppliedConfigAnnotation])), &last); err != nil {
		t.Errorf("%s: last-applied annotation: %v", name, err)
		return
	}
	// kubectl sends a strategic merge patch for the kinds its scheme knows,
	// a JSON merge patch for the others.
	_, custom := scheme.Scheme.New(info.Object.GetObjectKind().GroupVersionKind())
	t.Logf("%s: the live object differs from the last-applied configuration:\n  %s", name,
		strings.Join(drift(name, last, obj, custom != nil), "\n  "))
}

// monitoringKinds are the kinds of prometheus-operator's custom resources
// that dir builds: the CRDs to install before applying it.
func monitoringKinds(t *testing.T, dir string) []string {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var kinds []string
	for _, r := range m.Resources() {
		if strings.HasPrefix(r.GetApiVersion(), "monitoring.coreos.com/") && !slices.Contains(kinds, r.GetKind()) {
			kinds = append(kinds, r.GetKind())
		}
	}
	return kinds
}

// checkResults requires apply number n to have reported every object of
// the build, each with the operation want.
func checkResults(t *testing.T, n int, got map[string]string, objs map[string]*resource.Info, want string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(objs)) {
		switch op, ok := got[name]; {
		case !ok:
			t.Errorf("apply %d: %s not reported", n, name)
		case op != want:
			t.Errorf("apply %d: %s %s, want %s", n, name, op, want)
		}
	}
	for name := range got {
		if _, ok := objs[name]; !ok {
			t.Errorf("apply %d: %s reported, not in the build", n, name)
		}
	}
}

// TestApplyIsStrict: the applies above use --validate=strict, so a field
// that the server does not know (a typo, or one a newer API version added)
// fails them instead of being dropped, for built-in kinds and for the custom
// resources alike, client-side and server-side.
func TestApplyIsStrict(t *testing.T) {
	crds := crdDir(t)
	etcd := testserver.RunEtcd(t, nil)
	c := startCluster(t, etcd.Endpoints(), crds, []string{"ServiceMonitor"})
	file := filepath.Join(t.TempDir(), "typos.yaml")
	err := os.WriteFile(file, []byte(`apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: typo
value: 1
globalDefalt: false
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: typo
  namespace: kube-system
spec:
  selector: {}
  endpoints:
    - port: metrics
      relabelings:
        - sourceLabels: [__meta_kubernetes_pod_node_name]
          targetLabel: node
          acton: replace
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--server-side"}} {
		args := append([]string{"-f", file, "--validate=strict"}, extra...)
		out, stderr, err := c.apply(t, args...)
		if err == nil {
			t.Fatalf("kubectl apply %v accepted unknown fields:\n%s%s", args, out, stderr)
		}
		// Client-side: `unknown field "globalDefalt"`; server-side:
		// `.globalDefalt: field not declared in schema`.
		for _, want := range []string{"globalDefalt", "spec.endpoints[0].relabelings[0].acton"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("kubectl apply %v: %v, want %s", args, err, want)
			}
		}
	}
}
