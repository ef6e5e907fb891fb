// Package prometheus measures a checklist's metrics with instant PromQL queries and
// turns every answer into exactly one of: a value, no data, or an error.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// maxMessage bounds error messages kept in status and events.
const maxMessage = 300

// Querier is the one method of the Prometheus API this package uses, so tests fake one
// method rather than the whole API.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// Provider measures metrics against the Prometheus a checklist names.
type Provider struct {
	// RoundTripper sends the requests; http.DefaultTransport when nil.
	RoundTripper http.RoundTripper
	// NewQuerier builds the querier for an address; tests replace it.
	NewQuerier func(address string, rt http.RoundTripper) (Querier, error)
}

// Measure runs query at `at` against the checklist's Prometheus.
func (p *Provider) Measure(ctx context.Context, spec *deployv1alpha1.PrometheusSpec, query string, at time.Time) checklist.Measurement {
	if spec == nil {
		return errorf(query, "spec.prometheus is not set")
	}
	timeout := checklist.DefaultPrometheusTimeout
	if spec.Timeout != "" {
		if d, err := time.ParseDuration(spec.Timeout); err == nil && d > 0 {
			timeout = d
		}
	}
	newQuerier := p.NewQuerier
	if newQuerier == nil {
		newQuerier = defaultQuerier
	}
	rt := p.RoundTripper
	if rt == nil {
		rt = http.DefaultTransport
	}
	q, err := newQuerier(spec.Address, rt)
	if err != nil {
		return errorf(query, "prometheus %s: %v", spec.Address, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, _, _, err := q.Query(ctx, query, at, promv1.WithTimeout(timeout))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errorf(query, "prometheus %s: no answer within %s", spec.Address, timeout)
		}
		return errorf(query, "prometheus %s: %v", spec.Address, err)
	}
	return Classify(query, v)
}

func defaultQuerier(address string, rt http.RoundTripper) (Querier, error) {
	c, err := api.NewClient(api.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, err
	}
	return promv1.NewAPI(c), nil
}

// Classify turns a query result into a measurement: a scalar or a vector of exactly one
// sample is a value; an empty vector, NaN or ±Inf is no data; several series, a matrix
// or a string are errors.
func Classify(query string, v model.Value) checklist.Measurement {
	switch r := v.(type) {
	case *model.Scalar:
		return sample(query, float64(r.Value))
	case model.Vector:
		switch len(r) {
		case 0:
			return checklist.Measurement{Kind: checklist.ResultNoData, Query: query, Message: "empty result"}
		case 1:
			return sample(query, float64(r[0].Value))
		default:
			return errorf(query, "expected 1 series, got %d: %s", len(r), r[0].Metric.String())
		}
	case nil:
		return errorf(query, "empty answer")
	default:
		return errorf(query, "expected a scalar or a vector, got a %s", v.Type())
	}
}

func sample(query string, f float64) checklist.Measurement {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return checklist.Measurement{Kind: checklist.ResultNoData, Query: query, Display: strconv.FormatFloat(f, 'g', -1, 64),
			Message: "the query returned " + strconv.FormatFloat(f, 'g', -1, 64)}
	}
	return checklist.Measurement{Kind: checklist.ResultValue, Query: query, Value: f, Display: strconv.FormatFloat(f, 'g', 6, 64)}
}

func errorf(query, format string, args ...any) checklist.Measurement {
	msg := fmt.Sprintf(format, args...)
	msg = strings.ReplaceAll(msg, "\n", " ")
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	return checklist.Measurement{Kind: checklist.ResultError, Query: query, Message: msg}
}
