package manifests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tminus-dev/tminus/test/testbed"
)

// loadChart loads charts/tminus with Helm's own loader.
func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(filepath.Join(root, "charts", "tminus"))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// renderChart renders the chart as `helm install tminus --namespace tminus-system` would
// with values: its CRDs first, then its templates, as objects.
func renderChart(t *testing.T, ch *chartv2.Chart, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	vals, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: "tminus", Namespace: "tminus-system",
		IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, crd := range ch.CRDObjects() {
		docs = append(docs, string(crd.File.Data))
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasSuffix(name, ".yaml") {
			docs = append(docs, files[name])
		}
	}
	return decode(t, []byte(strings.Join(docs, "\n---\n")))
}

// comparable drops what differs by design between the chart's and the kustomize
// install: who manages it (Helm or kustomize), and empty lists and maps.
func comparable(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy()
	labels := c.GetLabels()
	delete(labels, "app.kubernetes.io/managed-by")
	c.SetLabels(labels)
	return prune(c.Object).(map[string]any)
}

func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if p := prune(e); p != nil {
				out[k] = p
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, 0, len(x))
		for _, e := range x {
			out = append(out, prune(e))
		}
		return out
	}
	return v
}

func byID(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()+"/"+o.GetName()] = o
	}
	return out
}

func args(g Gomega, objs []*unstructured.Unstructured) (any, []string) {
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			replicas, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas")
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			a, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
			return replicas, a
		}
	}
	g.Expect("a Deployment").To(BeEmpty())
	return nil, nil
}

func TestTheChartsDefaultRenderingIsDistInstallYAML(t *testing.T) {
	g := NewWithT(t)
	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	raw, err := os.ReadFile(filepath.Join(root, "dist", "install.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	want := byID(decode(t, raw))
	delete(want, "Namespace/tminus-system") // helm install --create-namespace
	got := byID(renderChart(t, loadChart(t), nil))

	wantIDs := make([]string, 0, len(want))
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	gotIDs := make([]string, 0, len(got))
	for id := range got {
		gotIDs = append(gotIDs, id)
	}
	g.Expect(gotIDs).To(ConsistOf(wantIDs), "the same objects")
	for id, o := range got {
		g.Expect(comparable(o)).To(Equal(comparable(want[id])), "%s: the chart renders it as dist/install.yaml has it "+
			"(run make chart build-installer)", id)
		g.Expect(o.GetLabels()).To(Or(BeNil(), HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm")), id)
	}
}

func TestAValueOfTheWrongShapeIsRefusedNamingIt(t *testing.T) {
	g := NewWithT(t)
	ch := loadChart(t)
	for _, tc := range []struct {
		values map[string]any
		want   string
	}{
		{map[string]any{"replicas": "two"}, "replicas"},
		{map[string]any{"replicas": 0}, "replicas"},
		{map[string]any{"webhooks": map[string]any{"enable": false}}, "enable"},
		{map[string]any{"extraArgs": []any{"shards=4"}}, "extraArgs"},
		{map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "pullPolicy"},
	} {
		_, err := util.ToRenderValuesWithSchemaValidation(ch, tc.values, common.ReleaseOptions{Name: "tminus",
			Namespace: "tminus-system", IsInstall: true}, nil, false)
		g.Expect(err).To(MatchError(ContainSubstring(tc.want)), "%v", tc.values)
	}
}

func TestEveryChartRenderingIsAcceptedByARealAPIServer(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ch := loadChart(t)
	for _, tc := range []struct {
		name   string
		values map[string]any
		check  func(g Gomega, objs []*unstructured.Unstructured)
	}{
		{"defaults", nil, func(g Gomega, objs []*unstructured.Unstructured) {
			_, a := args(g, objs)
			g.Expect(a).To(ContainElements("--leader-elect", "--webhook-configuration=tminus-admission"))
		}},
		{"webhooks off", map[string]any{"webhooks": map[string]any{"enabled": false}},
			func(g Gomega, objs []*unstructured.Unstructured) {
				_, a := args(g, objs)
				g.Expect(a).To(ContainElement("--webhooks=false"))
				ids := byID(objs)
				g.Expect(ids).NotTo(HaveKey("MutatingWebhookConfiguration/tminus-admission"))
				g.Expect(ids).NotTo(HaveKey("Service/tminus-webhook-service"))
				g.Expect(ids).NotTo(HaveKey("Role/tminus-webhook-certificate"))
			}},
		{"two replicas in eight shards", map[string]any{"replicas": 2, "shards": 8},
			func(g Gomega, objs []*unstructured.Unstructured) {
				replicas, a := args(g, objs)
				g.Expect(replicas).To(BeNumerically("==", 2))
				g.Expect(a).To(ContainElement("--shards=8"))
				g.Expect(a).NotTo(ContainElement("--leader-elect"))
			}},
		{"hosts, writers, image, resources, extra args", map[string]any{
			"allowedHosts":           []any{"prometheus.monitoring.svc", "10.0.0.0/8"},
			"trustedApprovalWriters": []any{"system:serviceaccount:ci:deployer"},
			"image":                  map[string]any{"repository": "registry.example.com/tminus", "tag": "v0.2.1", "pullPolicy": "Always"},
			"resources":              map[string]any{"limits": map[string]any{"memory": "512Mi"}},
			"extraArgs":              []any{"--circuit-failures=5"},
			"leaderElection":         map[string]any{"enabled": false},
			"nodeSelector":           map[string]any{"kubernetes.io/os": "linux"},
		}, func(g Gomega, objs []*unstructured.Unstructured) {
			_, a := args(g, objs)
			g.Expect(a).To(ContainElements("--allowed-hosts=prometheus.monitoring.svc,10.0.0.0/8",
				"--trusted-approval-writers=system:serviceaccount:ci:deployer", "--circuit-failures=5"))
			g.Expect(a).NotTo(ContainElement("--leader-elect"))
			for _, o := range objs {
				if o.GetKind() == "Deployment" {
					containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
					g.Expect(containers[0].(map[string]any)["image"]).To(Equal("registry.example.com/tminus:v0.2.1"))
					g.Expect(containers[0].(map[string]any)["imagePullPolicy"]).To(Equal("Always"))
				}
			}
		}},
		{"monitoring on", map[string]any{"monitoring": map[string]any{"serviceMonitor": map[string]any{"enabled": true},
			"prometheusRule": map[string]any{"enabled": true}, "dashboard": map[string]any{"enabled": true}}},
			func(g Gomega, objs []*unstructured.Unstructured) {
				ids := byID(objs)
				g.Expect(ids).To(HaveKey("ServiceMonitor/tminus-controller-manager-metrics-monitor"))
				g.Expect(ids).To(HaveKey("ConfigMap/tminus-dashboard"))
				rule := ids["PrometheusRule/tminus-alerts"]
				g.Expect(rule).NotTo(BeNil())
				// Alert texts keep Prometheus's own template actions.
				groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
				rules, _, _ := unstructured.NestedSlice(groups[0].(map[string]any), "rules")
				summary, _, _ := unstructured.NestedString(rules[0].(map[string]any), "annotations", "summary")
				g.Expect(summary).To(ContainSubstring("{{ $labels.reason }}"))
				dash := ids["ConfigMap/tminus-dashboard"]
				data, _, _ := unstructured.NestedString(dash.Object, "data", "tminus-dashboard.json")
				g.Expect(data).To(ContainSubstring(`"title"`))
				g.Expect(dash.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			objs := renderChart(t, ch, tc.values)
			tc.check(g, objs)
			// The chart installs into an existing namespace (--create-namespace).
			ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
				"metadata": map[string]any{"name": "tminus-system"}}}
			_, skipped := dryRun(t, bed, append([]*unstructured.Unstructured{ns}, objs...))
			for _, s := range skipped {
				g.Expect(s).To(Or(HavePrefix("ServiceMonitor/"), HavePrefix("PrometheusRule/")),
					"only the Prometheus operator's kinds may be missing")
			}
		})
	}
}
