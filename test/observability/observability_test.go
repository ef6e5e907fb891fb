// Package observability checks what tminus ships for watching itself: the
// PrometheusRule's alerts load and evaluate in a real Prometheus, and every query of the
// Grafana dashboard is valid PromQL there.
package observability

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/tminus-dev/tminus/test/testbed"
)

func repoFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(append([]string{root}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func getJSON(t *testing.T, u string, into any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

func TestTheAlertsLoadAndEvaluateAndTheDashboardQueriesAreValid(t *testing.T) {
	g := NewWithT(t)
	// The PrometheusRule's spec is a Prometheus rule file.
	var rule struct {
		Spec map[string]any `json:"spec"`
	}
	g.Expect(yaml.Unmarshal(repoFile(t, "config", "prometheus", "rules.yaml"), &rule)).To(Succeed())
	ruleFile := filepath.Join(t.TempDir(), "tminus-rules.yaml")
	raw, err := yaml.Marshal(rule.Spec)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(ruleFile, raw, 0o600)).To(Succeed())

	prom, err := testbed.StartPrometheus(context.Background(), testbed.PrometheusOptions{RuleFiles: []string{ruleFile}})
	g.Expect(err).NotTo(HaveOccurred(), "Prometheus refuses invalid rule files")
	defer prom.Close()

	g.Eventually(func(g Gomega) {
		var rules struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name   string `json:"name"`
						Health string `json:"health"`
						Error  string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		getJSON(t, prom.URL+"/api/v1/rules", &rules)
		g.Expect(rules.Data.Groups).To(HaveLen(2))
		var names []string
		for _, group := range rules.Data.Groups {
			for _, r := range group.Rules {
				g.Expect(r.Health).To(Equal("ok"), "%s: %s", r.Name, r.Error)
				names = append(names, r.Name)
			}
		}
		g.Expect(names).To(ConsistOf("TminusRollbackHappened", "TminusPrometheusErrors",
			"TminusChecklistsHoldingTooLong", "TminusChecklistsDegraded", "TminusNotificationsFailing",
			"tminus:releases_out:increase1d", "tminus:change_failure_rate:ratio7d",
			"tminus:lead_time_seconds:p50_7d", "tminus:time_to_restore_seconds:p50_7d"))
	}, 30*time.Second, 250*time.Millisecond).Should(Succeed())

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	g.Expect(json.Unmarshal(repoFile(t, "config", "grafana", "tminus-dashboard.json"), &dash)).To(Succeed())
	g.Expect(dash.Panels).NotTo(BeEmpty())
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			var res struct {
				Status string `json:"status"`
				Error  string `json:"error"`
			}
			getJSON(t, prom.URL+"/api/v1/query?query="+url.QueryEscape(target.Expr), &res)
			g.Expect(res.Status).To(Equal("success"), "panel %q: %s", p.Title, res.Error)
		}
	}
}
