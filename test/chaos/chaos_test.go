// Package chaos runs the real manager binary (two replicas taking shards by Lease,
// serving the admission webhooks the API server calls) on the test bed through random
// orders of user and fault events drawn from a seed, and checks the gate's invariants
// after every step and at the end. docs/reliability.md says what it generates, what it
// checks and what it cannot produce.
package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tminus-dev/tminus/test/testbed"
)

var (
	seedsFlag    = flag.Int("chaos.seeds", 0, "run this many random seeds (from -chaos.from) instead of the fixed set")
	fromFlag     = flag.Uint64("chaos.from", 1, "the first seed of -chaos.seeds")
	lengthFlag   = flag.Int("chaos.length", 30, "events per seed, with -chaos.seeds or -chaos.seed")
	parallelFlag = flag.Int("chaos.parallel", 4, "seeds run at once, each in its own namespace")
	seedFlag     = flag.Uint64("chaos.seed", 0, "replay this one seed")
	keepFlag     = flag.String("chaos.events", "",
		"with -chaos.seed: run only these events (indexes, comma-separated), as a failure prints them")
	minimizeFlag = flag.Bool("chaos.minimize", false, "shrink each failing seed's event list (reruns it many times)")
	verboseFlag  = flag.Bool("chaos.verbose", false, "print every run's events and history, not only a failed one's")
)

// fixedSeeds run in `make test`: seeds whose orders once mattered, kept so CI runs them
// every time. Each passes on the code as it is (docs/reliability.md lists the seeds
// that find open bugs).
var fixedSeeds = []uint64{1, 2, 3, 5}

// fixedLength is the number of events of each fixed seed.
const fixedLength = 20

var world *World

func TestMain(m *testing.M) {
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	code := testbed.Main(m, testbed.Options{Cluster: true, Audit: true}, func(b *testbed.Bed) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		w, err := StartWorld(ctx, b, func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		})
		world = w
		return err
	})
	if world != nil {
		world.Close()
	}
	os.Exit(code)
}

type seedRun struct {
	seed   uint64
	events []Event
	kept   []int
}

// TestSeeds runs seeds, many at once on the one test bed, and fails with each broken
// invariant's report. Without flags: the fixed set; `make chaos SEEDS=N PARALLEL=M`
// runs N random ones.
func TestSeeds(t *testing.T) {
	var runs []seedRun
	switch {
	case *seedFlag != 0:
		sr := seedRun{seed: *seedFlag, events: Generate(*seedFlag, *lengthFlag)}
		if *keepFlag != "" {
			for f := range strings.SplitSeq(*keepFlag, ",") {
				i, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || i < 0 || i >= len(sr.events) {
					t.Fatalf("-chaos.events: %q is not an index of the seed's %d events", f, len(sr.events))
				}
				sr.kept = append(sr.kept, i)
			}
		}
		runs = append(runs, sr)
	case *seedsFlag > 0:
		for s := range uint64(*seedsFlag) {
			runs = append(runs, seedRun{seed: *fromFlag + s, events: Generate(*fromFlag+s, *lengthFlag)})
		}
	default:
		for _, s := range fixedSeeds {
			runs = append(runs, seedRun{seed: s, events: Generate(s, fixedLength)})
		}
	}

	start := time.Now()
	results := make([]Result, len(runs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(1, *parallelFlag) {
		wg.Go(func() {
			for i := range work {
				results[i] = world.Run(context.Background(), runs[i].seed, runs[i].events, runs[i].kept)
				res := results[i]
				status := "passed"
				switch {
				case res.Err != nil:
					status = "could not run: " + res.Err.Error()
				case res.Violation != nil:
					status = "FAILED: " + res.Violation.Error()
				}
				t.Logf("seed %d: %d events, %d checks, %s: %s", res.Seed, len(res.Kept), res.Checks,
					res.Elapsed.Round(time.Second), status)
				if *verboseFlag && res.Violation == nil {
					t.Log(res.Report)
				}
			}
		})
	}
	for i := range runs {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)

	var events, checks, passed int
	var failed []Result
	for _, res := range results {
		events += len(res.Kept)
		checks += res.Checks
		switch {
		case res.Err != nil:
			t.Errorf("seed %d could not run: %v", res.Seed, res.Err)
		case res.Violation != nil:
			failed = append(failed, res)
		default:
			passed++
		}
	}
	t.Logf("%d of %d seeds passed; %d events in %s (%.2f events/s), %d invariant checks (%.1f checks/s), %d at once",
		passed, len(runs), events, elapsed.Round(time.Second), float64(events)/elapsed.Seconds(), checks,
		float64(checks)/elapsed.Seconds(), *parallelFlag)
	for _, res := range failed {
		t.Errorf("%s", res.Report)
		if *minimizeFlag {
			min := world.Minimize(context.Background(), res, t.Logf)
			t.Errorf("seed %d minimized to %d events:\n%s", res.Seed, len(min.Kept), min.Report)
		}
	}
}

func TestTheSameSeedGivesTheSameEvents(t *testing.T) {
	a, b := Generate(42, 50), Generate(42, 50)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("seed 42 gave two lists:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(Generate(43, 50)) {
		t.Fatal("seeds 42 and 43 gave the same list")
	}
	seen := map[Kind]bool{}
	for s := range uint64(20) {
		for _, e := range Generate(s, 30) {
			seen[e.Kind] = true
		}
	}
	for k := range kinds {
		if !seen[k] {
			t.Errorf("20 seeds of 30 events never drew %s", k)
		}
	}
}
