// Package httpcheck runs the `http` checks and rollback triggers of a checklist: a GET,
// redirects not followed, with a timeout, compared with the expected status and an
// optional body pattern.
package httpcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/breaker"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// maxBody is how much of a response body is read to match bodyMatch.
const maxBody = 64 << 10

// Prober runs HTTP checks. The zero value uses a client that never follows redirects.
type Prober struct {
	// Client sends the requests; its CheckRedirect is overridden so redirects are not
	// followed (a redirect is answered as its own status code).
	Client *http.Client
	// Breakers open a circuit per URL after consecutive requests got no response, so a
	// hanging endpoint costs its checks no wait until the next probe: they report what
	// the last requests found (no response). Nil: no circuits.
	Breakers *breaker.Set
}

// Probe runs one check. A response, whatever its status, is a measurement; no response
// at all (refused, timed out) is a failing check, since that is what a health check
// exists to notice. Only a check that cannot be run (a bad URL or pattern) is an Error.
func (p *Prober) Probe(ctx context.Context, spec deployv1alpha1.HTTPCheck) checklist.Measurement {
	timeout := checklist.DefaultHTTPTimeout
	if spec.Timeout != "" {
		if d, err := time.ParseDuration(spec.Timeout); err == nil && d > 0 {
			timeout = d
		}
	}
	want := int(spec.ExpectStatus)
	if want == 0 {
		want = http.StatusOK
	}
	var re *regexp.Regexp
	if spec.BodyMatch != "" {
		var err error
		if re, err = regexp.Compile(spec.BodyMatch); err != nil {
			return checklist.Measurement{Kind: checklist.ResultError, Message: "bodyMatch is not a valid RE2 pattern: " + err.Error()}
		}
	}
	report := func(bool, string) error { return nil }
	if p.Breakers != nil {
		done, err := p.Breakers.Allow(spec.URL)
		if err != nil {
			return checklist.Measurement{Kind: checklist.ResultValue, OK: false, Display: "no response", Message: bound(err.Error())}
		}
		report = done
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec.URL, nil)
	if err != nil {
		return checklist.Measurement{Kind: checklist.ResultError, Message: "cannot build the request: " + err.Error()}
	}
	req.Header.Set("User-Agent", "tminus-httpcheck")
	resp, err := p.client().Do(req)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("no response within %s", timeout)
		}
		if open := report(false, msg); open != nil {
			msg = open.Error()
		}
		return checklist.Measurement{Kind: checklist.ResultValue, OK: false, Display: "no response", Message: bound(msg)}
	}
	_ = report(true, "")
	defer func() { _ = resp.Body.Close() }()
	m := checklist.Measurement{Kind: checklist.ResultValue, Value: float64(resp.StatusCode), Display: strconv.Itoa(resp.StatusCode)}
	if resp.StatusCode != want {
		m.Message = fmt.Sprintf("status %d, want %d", resp.StatusCode, want)
		return m
	}
	if re != nil {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			m.Message = "reading the body: " + bound(err.Error())
			return m
		}
		if !re.Match(body) {
			m.Message = fmt.Sprintf("body does not match %q", spec.BodyMatch)
			return m
		}
	}
	m.OK = true
	return m
}

func (p *Prober) client() *http.Client {
	c := http.Client{}
	if p.Client != nil {
		c = *p.Client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func bound(s string) string {
	if len(s) > 300 {
		return s[:297] + "..."
	}
	return s
}
