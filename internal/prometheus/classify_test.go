package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/breaker"
	"github.com/tminus-dev/tminus/internal/checklist"
)

func vector(values ...float64) model.Vector {
	v := make(model.Vector, 0, len(values))
	for i, f := range values {
		v = append(v, &model.Sample{
			Metric: model.Metric{"pod": model.LabelValue("checkout-" + string(rune('a'+i)))},
			Value:  model.SampleValue(f),
		})
	}
	return v
}

func TestClassifyGivesEachAnswerExactlyOneOutcome(t *testing.T) {
	cases := []struct {
		name    string
		value   model.Value
		kind    checklist.ResultKind
		display string
		message string
	}{
		{"scalar", &model.Scalar{Value: 0.25}, checklist.ResultValue, "0.25", ""},
		{"one sample", vector(0.0042), checklist.ResultValue, "0.0042", ""},
		{"empty vector", vector(), checklist.ResultNoData, "", "empty result"},
		{"NaN from 0/0 without traffic", vector(math.NaN()), checklist.ResultNoData, "NaN", "returned NaN"},
		{"+Inf", vector(math.Inf(1)), checklist.ResultNoData, "+Inf", "returned +Inf"},
		{"NaN scalar", &model.Scalar{Value: model.SampleValue(math.NaN())}, checklist.ResultNoData, "NaN", ""},
		{"two series", vector(0.1, 0.2), checklist.ResultError, "", `expected 1 series, got 2: {pod="checkout-a"}`},
		{"matrix", model.Matrix{}, checklist.ResultError, "", "expected a scalar or a vector, got a matrix"},
		{"string", &model.String{Value: "x"}, checklist.ResultError, "", "got a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := Classify("q", tc.value)
			g.Expect(m.Kind).To(Equal(tc.kind))
			g.Expect(m.Display).To(Equal(tc.display))
			g.Expect(m.Message).To(ContainSubstring(tc.message))
			g.Expect(m.Query).To(Equal("q"))
		})
	}
}

type fakeQuerier struct {
	value model.Value
	err   error
}

func (f fakeQuerier) Query(context.Context, string, time.Time, ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	return f.value, nil, nil, f.err
}

func TestMeasureBoundsErrorMessagesAndNeverPassesThem(t *testing.T) {
	g := NewWithT(t)
	huge := errors.New("server error: " + strings.Repeat("<html>body</html>\n", 500))
	p := &Provider{NewQuerier: func(string, *http.Client) (Querier, error) { return fakeQuerier{err: huge}, nil }}
	m := p.Measure(context.Background(), Request{Spec: &deployv1alpha1.PrometheusSpec{Address: "http://prom:9090"}, Query: "up", At: time.Now()})
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(len(m.Message)).To(BeNumerically("<=", maxMessage))
	g.Expect(m.Message).NotTo(ContainSubstring("\n"))
	g.Expect(m.Message).To(HavePrefix("prometheus http://prom:9090: server error"))
}

func TestAnUnsetTimeoutIsNeverLongerThanTheInterval(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Timeout(&deployv1alpha1.PrometheusSpec{}, 30*time.Second)).To(Equal(10 * time.Second))
	g.Expect(Timeout(&deployv1alpha1.PrometheusSpec{}, 5*time.Second)).To(Equal(5 * time.Second))
	g.Expect(Timeout(&deployv1alpha1.PrometheusSpec{Timeout: "2s"}, 5*time.Second)).To(Equal(2 * time.Second))
}

func TestAQueryPrometheusGaveUpOnLeavesTheCircuitClosed(t *testing.T) {
	g := NewWithT(t)
	calls := 0
	set := &breaker.Set{Threshold: 2}
	p := &Provider{Breakers: set, NewQuerier: func(string, *http.Client) (Querier, error) {
		calls++
		return fakeQuerier{err: &promv1.Error{Type: promv1.ErrTimeout, Msg: "query timed out in expression evaluation"}}, nil
	}}
	for i := range 5 {
		m := p.Measure(context.Background(), Request{Spec: &deployv1alpha1.PrometheusSpec{Address: "http://prom:9090"},
			Query: fmt.Sprintf("expensive%d", i), At: time.Now()})
		g.Expect(m.Kind).To(Equal(checklist.ResultError))
	}
	g.Expect(calls).To(Equal(5), "every query was sent: Prometheus answers, the query is too slow")
	g.Expect(set.State("http://prom:9090")).To(Equal(breaker.Closed))
}
