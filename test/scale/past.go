package scale

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/test/testbed"
)

// pastTarget names target k of the finished checklists spread EndedPerTarget a target.
func pastTarget(k int) string { return "p" + strconv.Itoa(k) }

// ended is how many finished checklists the size has.
func ended(cfg Config) int { return max(0, cfg.Checklists-cfg.Releases-cfg.Active) }

// pastTargets is how many targets the finished checklists are spread over.
func pastTargets(cfg Config) int {
	if cfg.EndedPerTarget <= 0 {
		return ended(cfg)
	}
	return (ended(cfg) + cfg.EndedPerTarget - 1) / cfg.EndedPerTarget
}

// trimmed is how many finished checklists are past the history limit of their target.
func trimmed(cfg Config) int {
	if cfg.EndedPerTarget <= cfg.HistoryLimit {
		return 0
	}
	n := 0
	for left := ended(cfg); left > 0; left -= cfg.EndedPerTarget {
		n += max(0, min(left, cfg.EndedPerTarget)-cfg.HistoryLimit)
	}
	return n
}

// checklistDeletes is the API server's count of DELETE requests on checklists.
func checklistDeletes(ctx context.Context, bed *testbed.Bed) (float64, error) {
	return bed.APIRequests(ctx, func(labels string) bool {
		return strings.Contains(labels, `verb="DELETE"`) && strings.Contains(labels, `resource="deploymentchecklists"`)
	})
}

// measureTrim samples the API server's count of checklist deletes and of all writes
// every second from the manager's start until expected deletes were seen, then checks
// that every live checklist is still there and how many ended ones are left.
func measureTrim(ctx context.Context, bed *testbed.Bed, cfg Config, expected int, deletes0, writes0 float64,
	began time.Time) (*Trim, error) {
	type sample struct {
		at              time.Time
		deletes, writes float64
	}
	samples := []sample{{at: began}}
	deadline := time.Now().Add(30 * time.Minute)
	logged := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		d, err := checklistDeletes(ctx, bed)
		if err != nil {
			return nil, err
		}
		w, err := apiWrites(ctx, bed)
		if err != nil {
			return nil, err
		}
		samples = append(samples, sample{at: time.Now(), deletes: d - deletes0, writes: w - writes0})
		last := samples[len(samples)-1]
		if int(last.deletes) >= expected {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("trimming: %d of %d deletes after 30m", int(last.deletes), expected)
		}
		if time.Since(logged) > 30*time.Second {
			cfg.Log("trimming: %d of %d deleted", int(last.deletes), expected)
			logged = time.Now()
		}
	}
	t := &Trim{Expected: expected}
	last := samples[len(samples)-1]
	t.Deleted = int(last.deletes)
	t.Seconds = last.at.Sub(began).Seconds()
	first := 0
	for i, s := range samples {
		if s.deletes > 0 {
			first = max(0, i-1)
			break
		}
	}
	t.MeanPerS = last.deletes / last.at.Sub(samples[first].at).Seconds()
	for i := 1; i < len(samples); i++ {
		t.PeakPerS = max(t.PeakPerS, (samples[i].deletes-samples[i-1].deletes)/samples[i].at.Sub(samples[i-1].at).Seconds())
		if i >= 10 {
			dt := samples[i].at.Sub(samples[i-10].at).Seconds()
			t.Peak10sPerS = max(t.Peak10sPerS, (samples[i].deletes-samples[i-10].deletes)/dt)
			t.WritesPeak10sPerS = max(t.WritesPeak10sPerS, (samples[i].writes-samples[i-10].writes)/dt)
		}
	}
	if len(samples) <= 10 {
		t.Peak10sPerS = t.MeanPerS
		t.WritesPeak10sPerS = last.writes / t.Seconds
	}
	// What is left, read from the API server.
	var list deployv1alpha1.DeploymentChecklistList
	if err := bed.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, d := range list.Items {
		present[d.Name] = true
		if gate.Terminal(d.Status.Phase) && d.DeletionTimestamp.IsZero() {
			i, err := strconv.Atoi(strings.TrimPrefix(d.Name, "c"))
			if err == nil && i >= cfg.Releases+cfg.Active {
				t.EndedLeft++
			}
		}
	}
	for i := range cfg.Releases + cfg.Active {
		if !present["c"+strconv.Itoa(i)] {
			t.LiveDeleted++
		}
	}
	cfg.Log("trimmed %d ended checklists in %.0f s: %.1f deletes/s on average, %.0f/s at most in a second, "+
		"%.1f/s over ten (all writes: %.1f/s over ten); %d ended left, %d live deleted",
		t.Deleted, t.Seconds, t.MeanPerS, t.PeakPerS, t.Peak10sPerS, t.WritesPeak10sPerS, t.EndedLeft, t.LiveDeleted)
	return t, nil
}

// writeHeapProfile writes a heap profile of this process (after a collection, so
// inuse_space is what is live).
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
