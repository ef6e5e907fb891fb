package testbed

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PrometheusOptions configure a Prometheus server.
type PrometheusOptions struct {
	// Dir holds the configuration and the TSDB; a fresh temporary directory by default.
	// Restarting with the same Dir keeps the samples scraped so far.
	Dir string
	// Port to listen on, on 127.0.0.1; a free port by default. Restart on the same port
	// to make a "Prometheus came back" case.
	Port int
	// ScrapeInterval for every target; 1s by default.
	ScrapeInterval time.Duration
	// Targets are host:port addresses scraped at /metrics as job "app".
	Targets []string
	// ScrapeConfigs, when set, is the YAML list under scrape_configs and replaces Targets.
	ScrapeConfigs string
	// WebConfig, when set, is written to --web.config.file (basic auth, TLS).
	WebConfig string
	// BasicAuth is a user and password WebConfig accepts: readiness is asked with them
	// (without, a server behind basic auth answers 401 whether it is ready or not).
	BasicAuth [2]string
	// TLS says the web config serves https.
	TLS bool
	// RuleFiles are rule files (recording and alerting rules) Prometheus loads; it
	// refuses to start when one is invalid.
	RuleFiles []string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	// URL of the HTTP API, e.g. http://127.0.0.1:39091.
	URL  string
	Port int
	Dir  string

	opts    PrometheusOptions
	proc    *process
	ownsDir bool
}

// StartPrometheus starts Prometheus and waits until it is ready to serve queries.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	bin, err := PrometheusBinary()
	if err != nil {
		return nil, err
	}
	p := &Prometheus{opts: opts}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "tminus-prometheus-"); err != nil {
			return nil, err
		}
		p.ownsDir = true
	}
	if opts.Port == 0 {
		if opts.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = time.Second
	}
	p.opts, p.Dir, p.Port = opts, opts.Dir, opts.Port
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	p.URL = fmt.Sprintf("%s://%s", scheme, hostPort(opts.Port))

	configFile := filepath.Join(opts.Dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(prometheusConfig(opts)), 0o600); err != nil {
		return nil, err
	}
	args := []string{
		"--config.file=" + configFile,
		"--storage.tsdb.path=" + filepath.Join(opts.Dir, "data"),
		"--storage.tsdb.retention.time=2h",
		"--web.listen-address=" + hostPort(opts.Port),
		"--log.level=warn",
	}
	if opts.WebConfig != "" {
		webFile := filepath.Join(opts.Dir, "web.yml")
		if err := os.WriteFile(webFile, []byte(opts.WebConfig), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--web.config.file="+webFile)
	}
	args = append(args, opts.ExtraArgs...)
	proc, err := startProcess(opts.Dir, "prometheus", bin, args...)
	if err != nil {
		return nil, err
	}
	p.proc = proc
	if err := p.waitReady(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func prometheusConfig(opts PrometheusOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n",
		opts.ScrapeInterval, opts.ScrapeInterval)
	if len(opts.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range opts.RuleFiles {
			fmt.Fprintf(&b, "- %q\n", f)
		}
	}
	b.WriteString("scrape_configs:\n")
	if opts.ScrapeConfigs != "" {
		b.WriteString(opts.ScrapeConfigs)
		return b.String()
	}
	b.WriteString("- job_name: app\n  static_configs:\n  - targets: [")
	for i, t := range opts.Targets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", t)
	}
	b.WriteString("]\n")
	return b.String()
}

// waitReady polls /-/ready until it answers 200 (with Options.BasicAuth when set).
func (p *Prometheus) waitReady(ctx context.Context) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		// A readiness probe of a local test server, whose certificate is self-signed.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec
	}
	for {
		if ended, err := p.proc.exited(); ended {
			return fmt.Errorf("prometheus exited (%v) before it was ready:\n%s", err, p.proc.logTail())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/-/ready", nil)
		if err != nil {
			return err
		}
		if u := p.opts.BasicAuth; u[0] != "" {
			req.SetBasicAuth(u[0], u[1])
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("prometheus not ready at %s: %w\n%s", p.URL, ctx.Err(), p.proc.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the server. Its directory is kept until Close, so Restart finds its data.
func (p *Prometheus) Stop() {
	if p.proc != nil {
		p.proc.stop()
		p.proc = nil
	}
}

// Restart starts the server again on the same port with the same data.
func (p *Prometheus) Restart(ctx context.Context) error {
	p.Stop()
	q, err := StartPrometheus(ctx, p.opts)
	if err != nil {
		return err
	}
	p.proc = q.proc
	return nil
}

// Close stops the server and removes the directory it created.
func (p *Prometheus) Close() {
	p.Stop()
	if p.ownsDir {
		_ = os.RemoveAll(p.Dir)
	}
}

// Query returns the value of query's single sample now, as Prometheus spells it, or an
// error (Prometheus unreachable, a failed query, no sample or several).
func (p *Prometheus) Query(ctx context.Context, query string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if body.Status != "success" || len(body.Data.Result) != 1 {
		return "", fmt.Errorf("status %q with %d series", body.Status, len(body.Data.Result))
	}
	return fmt.Sprint(body.Data.Result[0].Value[1]), nil
}

// ScrapeAddressAnnotation names, on a pod template, the address of the process that
// serves that template's metrics: kwok's pods run no process, so the test bed points
// each version's pods at an instrumented process of its own.
const ScrapeAddressAnnotation = "test.tminus.dev/scrape-address"

// PodScrapeConfig is a scrape job discovering the pods of namespace (every namespace
// when it is "") through the Kubernetes API (kubernetes_sd_configs, role pod, with the
// kubeconfig given) and labelling their series namespace, pod, app and
// pod_template_hash: the relabelling docs/prometheus.md shows users, plus the address
// from ScrapeAddressAnnotation.
func PodScrapeConfig(kubeconfig, namespace string) string {
	namespaces := ""
	if namespace != "" {
		namespaces = fmt.Sprintf("\n    namespaces: {names: [%q]}", namespace)
	}
	return fmt.Sprintf(`- job_name: pods
  kubernetes_sd_configs:
  - role: pod
    kubeconfig_file: %q%s
  relabel_configs:
  - source_labels: [__meta_kubernetes_pod_annotation_test_tminus_dev_scrape_address]
    regex: (.+)
    action: keep
  - source_labels: [__meta_kubernetes_pod_annotation_test_tminus_dev_scrape_address]
    target_label: __address__
  - source_labels: [__meta_kubernetes_namespace]
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    target_label: pod
  - source_labels: [__meta_kubernetes_pod_label_app]
    target_label: app
  - source_labels: [__meta_kubernetes_pod_label_pod_template_hash]
    target_label: pod_template_hash
`, kubeconfig, namespaces)
}
