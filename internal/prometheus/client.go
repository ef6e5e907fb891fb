package prometheus

import (
	"context"
	"fmt"
	"net/http"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// HTTPClient is the client p would query spec's Prometheus with for a checklist of
// namespace ns: the credentials its Secrets name, read through p.Secrets, dialed
// through p.Guard, no redirects followed. The dashboard builds a Provider whose
// Secrets reader is the user's client, so a plot needs the user's right to read them.
func (p *Provider) HTTPClient(ctx context.Context, ns string, spec *deployv1alpha1.PrometheusSpec) (*http.Client, error) {
	if spec == nil {
		return nil, fmt.Errorf("spec.prometheus is not set")
	}
	creds, err := p.credentials(ctx, ns, spec, secretMaxAge(0))
	if err != nil {
		return nil, fmt.Errorf("cannot read the credentials: %w", err)
	}
	return p.httpClient(spec, creds)
}
