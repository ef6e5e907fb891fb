package plugin

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/dashboard"
	"github.com/tminus-dev/tminus/internal/netguard"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/internal/record"
	"github.com/tminus-dev/tminus/internal/templates"
)

// dashboardFlags are the flags of `kubectl checklist dashboard`.
type dashboardFlags struct {
	address       string
	port          int
	allNamespaces bool
	noOpen        bool
	insecureBind  bool
	allowedHosts  []string
}

func (o *options) dashboardCommand() *cobra.Command {
	var f dashboardFlags
	cmd := &cobra.Command{
		Use:   "dashboard [--address 127.0.0.1] [--port 3100] [-A] [--no-open]",
		Short: "Serve a local web page of the releases in view, live, with their T-axis, checks, record and buttons, acting as you",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.dashboard(cmd.Context(), f, nil)
		},
	}
	cmd.Flags().StringVar(&f.address, "address", "127.0.0.1", "the address to listen on (loopback unless --insecure-bind)")
	cmd.Flags().IntVar(&f.port, "port", 3100, "the port to listen on (0: any free port)")
	cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "every namespace you may list checklists of")
	cmd.Flags().BoolVar(&f.noOpen, "no-open", false, "do not open the browser")
	cmd.Flags().BoolVar(&f.insecureBind, "insecure-bind", false,
		"allow a non-loopback --address: whoever reaches it with the URL's token acts as you")
	cmd.Flags().StringSliceVar(&f.allowedHosts, "allowed-hosts", nil,
		"where metric plots may query Prometheus, as the manager's flag of the same name (host names, IPs, CIDRs); "+
			"default: anywhere but link-local, cloud metadata and loopback")
	return cmd
}

// dashboard serves until ctx ends. started, when set, is given the server and its URL
// once it listens (tests).
func (o *options) dashboard(ctx context.Context, f dashboardFlags, started func(*dashboard.Server, string)) error {
	if err := dashboard.CheckAddress(f.address, f.insecureBind); err != nil {
		return err
	}
	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	ns := ""
	if !f.allNamespaces {
		if ns, err = o.namespace(); err != nil {
			return err
		}
	}
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(f.address, strconv.Itoa(f.port)))
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()
	port := l.Addr().(*net.TCPAddr).Port
	hub := dashboard.NewHub(c, ns)
	guard, err := netguard.New(f.allowedHosts)
	if err != nil {
		return fmt.Errorf("--allowed-hosts: %w", err)
	}
	srv, err := dashboard.New(dashboard.Options{Address: f.address, Port: port, InsecureBind: f.insecureBind,
		Namespace: ns, Hub: hub, Actions: &userActions{cfg: cfg},
		// Secrets are read with Gets as the user (c is not cached): the plot needs the
		// user's right to read the checklist's Prometheus credentials.
		Ranger: &userRanger{p: &prometheus.Provider{Secrets: c, Guard: guard}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go hub.Run(ctx)
	url := srv.URL()
	where := "namespace " + ns
	if ns == "" {
		where = "every namespace"
	}
	if _, err := fmt.Fprintf(o.out, "Serving the releases of %s at\n  %s\nacting as you (your kubeconfig). Ctrl-C stops it.\n", where, url); err != nil {
		return err
	}
	if !f.noOpen {
		openBrowser(url)
	}
	if started != nil {
		started(srv, url)
	}
	return srv.Serve(ctx, l)
}

// openBrowser opens url, best effort: the URL is printed anyway.
func openBrowser(url string) {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	_ = cmd.Start()
}

// userActions run the plugin's own commands, as the user, for a checklist of the
// namespace the page shows: the dashboard has no code of its own that writes.
type userActions struct {
	cfg *rest.Config
}

// as is the plugin's options for namespace ns, printing into out.
func (a *userActions) as(ns string, out *bytes.Buffer) *options {
	return &options{cfg: a.cfg, ns: ns, out: out, err: out}
}

func (a *userActions) Approve(ctx context.Context, ns, name, role string) (string, error) {
	var out bytes.Buffer
	err := a.as(ns, &out).approve(ctx, name, role, "")
	return strings.TrimSpace(out.String()), err
}

func (a *userActions) Revoke(ctx context.Context, ns, name, role string) (string, error) {
	var out bytes.Buffer
	err := a.as(ns, &out).revoke(ctx, name, role, "")
	return strings.TrimSpace(out.String()), err
}

func (a *userActions) Rollback(ctx context.Context, ns, name, reason string) (string, error) {
	var out bytes.Buffer
	err := a.as(ns, &out).request(ctx, name, deployv1alpha1.RollbackRequestedAnnotation, "", reason)
	return strings.TrimSpace(out.String()), err
}

func (a *userActions) Abort(ctx context.Context, ns, name, reason string) (string, error) {
	var out bytes.Buffer
	err := a.as(ns, &out).request(ctx, name, deployv1alpha1.AbortRequestedAnnotation, "", reason)
	return strings.TrimSpace(out.String()), err
}

func (a *userActions) Record(ctx context.Context, ns, name string) (string, error) {
	var out bytes.Buffer
	cm, err := a.as(ns, &out).findRecord(ctx, name)
	if err != nil {
		return "", err
	}
	r, err := record.Parse(cm)
	if err != nil {
		return "", err
	}
	return record.Markdown(r), nil
}

// userRanger runs a plot's range query as the manager would send its instant query:
// the checklist's Prometheus, its credentials (read as the user), the address guard.
type userRanger struct {
	p *prometheus.Provider
}

func (r *userRanger) Range(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist, query string,
	start, end time.Time, step time.Duration) ([]dashboard.Sample, error) {
	spec := dcl.Spec.Prometheus
	if e, err := templates.Effective(dcl); err == nil {
		spec = e.Spec.Prometheus
	}
	if spec == nil {
		return nil, fmt.Errorf("the checklist names no Prometheus")
	}
	hc, err := r.p.HTTPClient(ctx, dcl.Namespace, spec)
	if err != nil {
		return nil, err
	}
	ac, err := promapi.NewClient(promapi.Config{Address: spec.Address, Client: hc})
	if err != nil {
		return nil, err
	}
	timeout := prometheus.Timeout(spec, 0)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, _, _, err := promv1.NewAPI(ac).QueryRange(ctx, query, promv1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, fmt.Errorf("cannot query Prometheus at %s: %w", spec.Address, err)
	}
	m, ok := v.(model.Matrix)
	switch {
	case !ok:
		return nil, fmt.Errorf("the answer is a %s, not a range of values", v.Type())
	case len(m) == 0:
		return nil, fmt.Errorf("no data in the release window")
	case len(m) > 1:
		return nil, fmt.Errorf("the query gives %d series, not one", len(m))
	}
	out := make([]dashboard.Sample, 0, len(m[0].Values))
	for _, sp := range m[0].Values {
		if f := float64(sp.Value); f == f {
			out = append(out, dashboard.Sample{T: sp.Timestamp.Time(), V: f})
		}
	}
	return out, nil
}
