package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/secretref"
)

// DefaultSendTimeout bounds one attempt to a receiver.
const DefaultSendTimeout = 10 * time.Second

// Sender posts messages to receivers.
type Sender struct {
	// HTTP posts; its transport should dial through the manager's netguard.Guard.
	HTTP *http.Client
	// Secrets reads receivers' URLs and keys (an uncached reader).
	Secrets client.Reader
	// Timeout of one attempt; DefaultSendTimeout when zero.
	Timeout time.Duration
	// Now stamps the signature; time.Now when nil.
	Now func() time.Time
}

// PermanentError is a receiver's answer that retrying will not change (a 4xx other
// than 408 and 429: a revoked webhook, a refused payload).
type PermanentError struct{ error }

func (e PermanentError) Unwrap() error { return e.error }

// Kind is a receiver's kind: slack, teams or webhook.
func Kind(r *deployv1alpha1.NotificationReceiver) string {
	switch {
	case r.Slack != nil:
		return "slack"
	case r.Teams != nil:
		return "teams"
	default:
		return "webhook"
	}
}

// Send posts m to receiver r of the policy in namespace ns.
func (s *Sender) Send(ctx context.Context, ns string, r *deployv1alpha1.NotificationReceiver, m Message) error {
	field := "receivers[" + r.Name + "]"
	var (
		url, key string
		body     []byte
		err      error
	)
	switch {
	case r.Slack != nil:
		url, err = secretref.Value(ctx, s.Secrets, ns, &r.Slack.URLSecretRef, field+".slack.urlSecretRef")
		if err == nil {
			body, err = SlackBody(m)
		}
	case r.Teams != nil:
		url, err = secretref.Value(ctx, s.Secrets, ns, &r.Teams.URLSecretRef, field+".teams.urlSecretRef")
		if err == nil {
			body, err = TeamsBody(m)
		}
	case r.Webhook != nil:
		url = r.Webhook.URL
		if ref := r.Webhook.URLSecretRef; ref != nil {
			url, err = secretref.Value(ctx, s.Secrets, ns, ref, field+".webhook.urlSecretRef")
		}
		if ref := r.Webhook.SigningSecretRef; err == nil && ref != nil {
			key, err = secretref.Value(ctx, s.Secrets, ns, ref, field+".webhook.signingSecretRef")
		}
		if err == nil {
			body, err = WebhookBody(m)
		}
	default:
		return PermanentError{fmt.Errorf("%s: no slack, teams or webhook", field)}
	}
	if err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultSendTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		// The URL never appears in errors: for Slack and Teams it is the credential.
		return PermanentError{fmt.Errorf("%s: the URL is not usable", field)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tminus")
	if r.Webhook != nil {
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		ts := strconv.FormatInt(now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderDelivery, m.ID)
		req.Header.Set(HeaderEvent, string(m.Event))
		if key != "" {
			req.Header.Set(HeaderSignature, Sign([]byte(key), ts, body))
		}
	}
	hc := s.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// Not the *url.Error itself: it quotes the URL.
		if ue, ok := errors.AsType[*neturl.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("%s: no answer: %v", field, err)
	}
	defer func() { _ = resp.Body.Close() }()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("%s: HTTP %d %s", field, resp.StatusCode, bytes.TrimSpace(snippet))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return PermanentError{err}
	}
	return err
}
