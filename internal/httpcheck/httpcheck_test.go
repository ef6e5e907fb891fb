package httpcheck

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

func TestProbeOutcomes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/health", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A port nothing listens on: the app is down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String() + "/health"
	_ = l.Close()

	cases := []struct {
		name    string
		spec    deployv1alpha1.HTTPCheck
		kind    checklist.ResultKind
		ok      bool
		display string
		message string
	}{
		{"expected status passes", deployv1alpha1.HTTPCheck{URL: srv.URL + "/health"}, checklist.ResultValue, true, "200", ""},
		{"body match passes", deployv1alpha1.HTTPCheck{URL: srv.URL + "/health", BodyMatch: `"status":"ok"`}, checklist.ResultValue, true, "200", ""},
		{"body mismatch fails", deployv1alpha1.HTTPCheck{URL: srv.URL + "/health", BodyMatch: "degraded"}, checklist.ResultValue, false, "200", "body does not match"},
		{"wrong status fails", deployv1alpha1.HTTPCheck{URL: srv.URL + "/broken"}, checklist.ResultValue, false, "503", "status 503, want 200"},
		{"another expected status", deployv1alpha1.HTTPCheck{URL: srv.URL + "/broken", ExpectStatus: 503}, checklist.ResultValue, true, "503", ""},
		{"redirects are not followed", deployv1alpha1.HTTPCheck{URL: srv.URL + "/moved"}, checklist.ResultValue, false, "302", "status 302, want 200"},
		{"no answer in time fails", deployv1alpha1.HTTPCheck{URL: srv.URL + "/slow", Timeout: "200ms"}, checklist.ResultValue, false, "no response", "no response within 200ms"},
		{"a refused connection fails", deployv1alpha1.HTTPCheck{URL: down}, checklist.ResultValue, false, "no response", "connection refused"},
		{"a bad pattern is an error", deployv1alpha1.HTTPCheck{URL: srv.URL + "/health", BodyMatch: "("}, checklist.ResultError, false, "", "not a valid RE2 pattern"},
	}
	p := &Prober{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := p.Probe(context.Background(), tc.spec)
			g.Expect(m.Kind).To(Equal(tc.kind))
			g.Expect(m.OK).To(Equal(tc.ok))
			g.Expect(m.Display).To(Equal(tc.display))
			g.Expect(m.Message).To(ContainSubstring(tc.message))
		})
	}
}
