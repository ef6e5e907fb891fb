package testbed

import (
	"context"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// APIRequests sums the API server's own apiserver_request_total over the series whose
// label set (the text between the braces) keep accepts.
func (b *Bed) APIRequests(ctx context.Context, keep func(labels string) bool) (float64, error) {
	cs, err := kubernetes.NewForConfig(b.Config)
	if err != nil {
		return 0, err
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	total := 0.0
	for line := range strings.SplitSeq(string(raw), "\n") {
		labels, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(labels, "} ")
		if !ok || !keep(labels) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			total += v
		}
	}
	return total, nil
}
