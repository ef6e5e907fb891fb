// Package dashboard serves `kubectl checklist dashboard`: a local web page of the
// releases in view, a release's T-axis, checks and record, and the buttons of the
// plugin (approve, revoke, rollback, abort). Every API call is made with the user's
// kubeconfig, by the same code as the plugin's commands, so RBAC and the approval
// webhook judge a click exactly as they judge `kubectl checklist approve`
// (DESIGN rule 9: the dashboard acts as its user, never as the manager).
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

//go:embed assets templates
var files embed.FS

// Actions are the plugin's commands, run as the user for a checklist of namespace ns.
// Each returns what the command prints, or the error as the API server (or the
// webhook) gave it.
type Actions interface {
	Approve(ctx context.Context, ns, name, role string) (string, error)
	Revoke(ctx context.Context, ns, name, role string) (string, error)
	Rollback(ctx context.Context, ns, name, reason string) (string, error)
	Abort(ctx context.Context, ns, name, reason string) (string, error)
	// Record is the markdown of the release's record.
	Record(ctx context.Context, ns, name string) (string, error)
}

// recordMarkdown renders a release record: its tables are GitHub's. It leaves raw HTML
// out (goldmark's default, never WithUnsafe): a record's text is written by whoever
// wrote the checklist, its annotations and the reasons of requests.
var recordMarkdown = goldmark.New(goldmark.WithExtensions(extension.Table, extension.Strikethrough))

// Options configure a Server.
type Options struct {
	// Address and Port to listen on; Address must pass CheckAddress.
	Address string
	Port    int
	// InsecureBind allows a non-loopback Address.
	InsecureBind bool
	// Namespace in view; "" for all namespaces.
	Namespace string
	Hub       *Hub
	Actions   Actions
	// Ranger draws metric plots; nil: none.
	Ranger Ranger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Server is the dashboard.
type Server struct {
	opts    Options
	tpl     *template.Template
	handler http.Handler
	token   string

	mu      sync.Mutex
	listGen uint64
	list    []byte
}

// New makes the server, with a fresh token for its URL.
func New(o Options) (*Server, error) {
	if err := CheckAddress(o.Address, o.InsecureBind); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tpl, err := template.New("").Funcs(template.FuncMap{
		"mark":    Mark,
		"state":   stateMark,
		"join":    strings.Join,
		"history": HistorySVG,
	}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	token, err := RandomToken()
	if err != nil {
		return nil, err
	}
	session, err := RandomToken()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, tpl: tpl, token: token}
	mux := http.NewServeMux()
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /{$}", s.listPage)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /release/{ns}/{name}", s.releasePage)
	mux.HandleFunc("POST /release/{ns}/{name}", s.act)
	mux.HandleFunc("GET /release/{ns}/{name}/record.md", s.recordMarkdown)
	var extra []string
	if o.InsecureBind {
		extra = reachableNames(o.Address)
	}
	s.handler = &guard{hosts: allowedHosts(o.Address, o.Port, extra...), token: token, session: session, next: mux}
	return s, nil
}

// Handler is the guarded handler.
func (s *Server) Handler() http.Handler { return s.handler }

// URL is the address to open, carrying the token.
func (s *Server) URL() string {
	return "http://" + net.JoinHostPort(s.opts.Address, strconv.Itoa(s.opts.Port)) + "/?token=" + s.token
}

// Serve serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type listView struct {
	AllNamespaces bool
	Namespace     string
	Rows          []Row
	WatchErr      string
}

// RenderList writes the list's rows: rendered once per change and shared by every
// viewer.
func (s *Server) RenderList() ([]byte, error) {
	b, _, err := s.renderList()
	return b, err
}

// renderList writes the list's rows, and the hub's generation they show at least:
// read before the store, so the rows are never older than it.
func (s *Server) renderList() ([]byte, uint64, error) {
	gen, watchErr := s.opts.Hub.Generation()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.list != nil && gen == s.listGen {
		return s.list, gen, nil
	}
	items := s.opts.Hub.List()
	rows := make([]Row, len(items))
	for i, d := range items {
		rows[i] = RowOf(d)
	}
	SortNewestFirst(rows)
	var b bytes.Buffer
	v := listView{AllNamespaces: s.opts.Namespace == "", Namespace: s.opts.Namespace, Rows: rows, WatchErr: watchErr}
	if err := s.tpl.ExecuteTemplate(&b, "rows", v); err != nil {
		return nil, 0, err
	}
	s.list, s.listGen = b.Bytes(), gen
	return s.list, gen, nil
}

func (s *Server) listPage(w http.ResponseWriter, _ *http.Request) {
	rows, gen, err := s.renderList()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.page(w, http.StatusOK, "list", map[string]any{
		"Title": "Releases", "AllNamespaces": s.opts.Namespace == "", "Namespace": s.opts.Namespace, "Since": gen,
		"Rows": template.HTML(rows), //nolint:gosec // rendered by html/template
	})
}

func (s *Server) page(w http.ResponseWriter, code int, name string, data map[string]any) {
	var b bytes.Buffer
	if err := s.tpl.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// renderRelease writes the live part of a release's page.
func (s *Server) renderRelease(ns, name string) ([]byte, error) {
	dcl, err := s.opts.Hub.Get(ns, name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = s.tpl.ExecuteTemplate(&b, "release-live", DetailOf(dcl, s.opts.Now()))
	return b.Bytes(), err
}

func (s *Server) releasePage(w http.ResponseWriter, r *http.Request) {
	s.showRelease(w, r, http.StatusOK, "", "")
}

// showRelease renders a release's page, with the answer to a button (ok or refused).
func (s *Server) showRelease(w http.ResponseWriter, r *http.Request, code int, answer, refusal string) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	gen, _ := s.opts.Hub.Generation() // before the store: the page is never older than it
	dcl, err := s.opts.Hub.Get(ns, name)
	if err != nil {
		if refusal != "" { // a button's answer for a checklist gone meanwhile
			http.Error(w, refusal, code)
			return
		}
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	live, err := s.renderRelease(ns, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := DetailOf(dcl, s.opts.Now())
	data := map[string]any{
		"Title": ns + "/" + name, "D": d, "Answer": answer, "Refusal": refusal, "Since": gen,
		"Live": template.HTML(live), //nolint:gosec // rendered by html/template
	}
	if s.opts.Ranger != nil {
		data["Plots"] = Plots(r.Context(), s.opts.Ranger, dcl, s.opts.Now())
	}
	if d.Ended && d.Record != "" {
		md, err := s.opts.Actions.Record(r.Context(), ns, name)
		if err != nil {
			data["RecordErr"] = err.Error()
		} else {
			var html bytes.Buffer
			if err := recordMarkdown.Convert([]byte(md), &html); err != nil {
				data["RecordErr"] = err.Error()
			}
			data["Record"] = template.HTML(html.String()) //nolint:gosec // goldmark escapes, raw HTML omitted
		}
	}
	s.page(w, code, "release", data)
}

// act runs a button's command as the user and shows the answer, or the refusal
// verbatim.
func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	role, reason := r.PostFormValue("role"), r.PostFormValue("reason")
	var out string
	var err error
	ctx := r.Context()
	switch r.PostFormValue("action") {
	case "approve":
		out, err = s.opts.Actions.Approve(ctx, ns, name, role)
	case "revoke":
		out, err = s.opts.Actions.Revoke(ctx, ns, name, role)
	case "rollback":
		out, err = s.opts.Actions.Rollback(ctx, ns, name, reason)
	case "abort":
		out, err = s.opts.Actions.Abort(ctx, ns, name, reason)
	default:
		http.Error(w, fmt.Sprintf("unknown action %q", r.PostFormValue("action")), http.StatusBadRequest)
		return
	}
	if err != nil {
		s.showRelease(w, r, StatusOf(err), "", err.Error())
		return
	}
	s.showRelease(w, r, http.StatusOK, out, "")
}

func (s *Server) recordMarkdown(w http.ResponseWriter, r *http.Request) {
	md, err := s.opts.Actions.Record(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	_, _ = w.Write([]byte(md))
}

// events pushes the list (or, with ?release=ns/name, a release's live part) as
// server-sent events: now, then at every change the one watch saw. With ?since=N, the
// hub's generation the page was rendered at, the first push is left out while nothing
// changed since: the page holds it already (on 1,000 rows, re-sending and re-rendering
// them all just after the page loaded cost the browser about 200 ms).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	render := s.RenderList
	event := "releases"
	if rel := r.URL.Query().Get("release"); rel != "" {
		ns, name, _ := strings.Cut(rel, "/")
		render = func() ([]byte, error) { return s.renderRelease(ns, name) }
		event = "release"
	}
	w.Header().Set("Content-Type", "text/event-stream")
	changes, cancel := s.opts.Hub.Subscribe()
	defer cancel()
	// changed waits for the next change, and says false when the viewer left first.
	changed := func() bool {
		select {
		case <-r.Context().Done():
			return false
		case <-changes:
			return true
		}
	}
	// Subscribed first: a change after this reading is told on changes.
	if since, err := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64); err == nil {
		if gen, _ := s.opts.Hub.Generation(); gen == since {
			if _, err := io.WriteString(w, ": the page is current\n\n"); err != nil {
				return
			}
			fl.Flush()
			if !changed() {
				return
			}
		}
	}
	for {
		body, err := render()
		if err != nil {
			body = []byte(template.HTMLEscapeString(err.Error()))
		}
		if err := writeEvent(w, event, body); err != nil {
			return
		}
		fl.Flush()
		if !changed() {
			return
		}
	}
}

// writeEvent writes one server-sent event; every line of data gets its own field.
func writeEvent(w http.ResponseWriter, event string, data []byte) error {
	var b bytes.Buffer
	b.WriteString("event: " + event + "\n")
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(bytes.TrimSuffix(line, []byte("\r")))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// reachableNames are the names a browser may use for a dashboard bound to address with
// --insecure-bind: the host's name and, for an unspecified address (0.0.0.0, ::), the
// address of every interface.
func reachableNames(address string) []string {
	var out []string
	if h, err := os.Hostname(); err == nil {
		out = append(out, h)
	}
	if ip := net.ParseIP(address); ip != nil && ip.IsUnspecified() {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				out = append(out, n.IP.String())
			}
		}
	}
	return out
}
