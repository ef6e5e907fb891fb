// benchscale measures tminus at scale (make bench-scale): for each size
// N:M[:B][:d][:rR][:tT], N checklists of which M actively gate (B of those against a
// Prometheus that never answers; d: every checklist with two queries of its own; rR: R
// replicas of the real manager sharing the checklists by shards; tT: each release gates
// T Deployments, 1 to 16, timed until all T are restored), plus releases whose breach
// is timed to rollback, evaluated every interval. It prints a table and writes the
// results as JSON. Sizes that differ only by B are compared: the releases' tick→rollback
// p99 beside a dead Prometheus, as a ratio of the healthy run's; so are sizes that
// differ only by T: the tick→rollback p99 of releases of T targets, as a ratio of the
// one-target run's. eK spreads the finished checklists K a target, the active ones
// gating those targets (with K above the history limit, 10, the manager trims the
// excess at start and the run times it); qR sets the manager's --checklist-history-qps
// (q0: the client's rate limiter alone).
//
// With --past, it measures instead the admission of held writes through the API server
// to the Deployment gate, on a Deployment with 1 and with that many past checklists
// (make bench-past).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/scale"
)

func main() {
	sizes := flag.String("sizes", "1000:100,5000:1000,10000:1000,1010:1000:0,1010:1000:100,1010:1000:0:d,20010:2000:r2",
		"comma-separated N:M[:B][:d][:rR][:tT] (checklists:active[:blackholed][:d for distinct queries][:r and replicas]"+
			"[:t and targets per release, 1 to 16, default 1][:e and ended checklists per target]"+
			"[:q and the history limit's deletes/s])")
	releases := flag.Int("releases", 10, "releases whose breach-to-rollback is timed")
	interval := flag.Duration("interval", 10*time.Second, "evaluation interval of every checklist")
	rounds := flag.Int("rounds", 3, "intervals measured after the warm-up")
	out := flag.String("out", "bench-scale.json", "where to write the JSON results")
	heapProfile := flag.String("heap-profile", "", "with one size, write the manager's heap profile here when "+
		"memory is measured")
	past := flag.Int("past", 0, "measure held writes' admission with 1 and this many past checklists instead")
	writes := flag.Int("writes", 200, "held writes timed for each past (--past)")
	softLimit := flag.Int64("soft-memory-limit-mib", 0, "with one size, Go's soft memory limit (GOMEMLIMIT) of the "+
		"process, as the manager sets it to 90 % of its container's memory limit; 0 for none")
	flag.Parse()
	if *softLimit > 0 {
		debug.SetMemoryLimit(*softLimit << 20)
		fmt.Printf("== soft memory limit %d MiB (a container limit of %.0f MiB)\n", *softLimit, float64(*softLimit)/0.9)
	}
	// The manager's logs would drown the figures.
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	if *past > 0 {
		if err := benchPast(*past, *writes, *out); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	runSizes(*sizes, *releases, *interval, *rounds, *heapProfile, *out)
}

// runSizes measures each size and prints the table (and writes the JSON to out).
func runSizes(sizes string, releases int, interval time.Duration, rounds int, heapProfile, out string) {
	list := strings.Split(sizes, ",")
	results := make([]scale.Result, 0, len(list))
	for _, s := range list {
		cfg, err := parseSize(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var res scale.Result
		if len(list) == 1 {
			fmt.Printf("== %d checklists, %d active (%d against a dead Prometheus, distinct queries %t), "+
				"%d releases of %d targets, interval %s, %d replicas\n", cfg.Checklists, cfg.Active, cfg.Blackholed,
				cfg.DistinctQueries, releases, max(1, cfg.TargetsPerRelease), interval, max(1, cfg.Replicas))
			cfg.Releases, cfg.Interval, cfg.Rounds, cfg.HeapProfile = releases, interval, rounds, heapProfile
			cfg.Log = func(f string, a ...any) { fmt.Printf("   "+f+"\n", a...) }
			res, err = scale.Run(context.Background(), cfg)
		} else {
			// Each size in a process of its own: memory figures and latency
			// histograms must not carry over from the size before.
			res, err = runAlone(s, releases, interval, rounds)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		results = append(results, res)
	}
	fmt.Printf("\n| checklists | active | dead Prometheus | distinct | replicas | targets/release |" +
		" RSS MiB (per replica) | heap MiB | queries/round | API writes/round |" +
		" reconcile p50/p99 ms | breach→rollback p50/p99 s | tick→rollback p50/p99 s | breach visible after s |" +
		" evaluations/s (expected) | takeover s | restored releases (targets) | first→last target restored p50/p99 s |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		rss := fmt.Sprintf("%.0f", r.RSSMiB)
		if len(r.ReplicaRSSMiB) > 1 {
			rss = fmt.Sprintf("%.0f", r.ReplicaRSSMiB)
		}
		fmt.Printf("| %d | %d | %d | %t | %d | %d | %s | %.0f | %.1f | %.1f |"+
			" %.1f / %.1f | %.1f / %.1f | %.2f / %.2f | %.1f |"+
			" %.0f (%.0f) | %.1f | %d of %d (%d of %d) | %.2f / %.2f |\n",
			r.Checklists, r.Active, r.Blackholed, r.AllDistinct, r.Replicas, targets(r), rss, r.HeapMiB, r.QueriesPerRound,
			r.WritesPerRound, r.ReconcileP50Ms, r.ReconcileP99Ms, r.BreachToRollbackP50s, r.BreachToRollbackP99s,
			r.TickToRollbackP50s, r.TickToRollbackP99s, r.BreachVisibleS, r.EvaluationsPerSecond, r.ExpectedPerSecond,
			r.TakeoverS, r.ReleasesRestored, r.Releases, r.TargetsRestored, r.Releases*targets(r),
			r.RestoreSpreadP50s, r.RestoreSpreadP99s)
	}
	for _, r := range results {
		fmt.Printf("\n%d checklists (%d ended a target, history limit %d, --checklist-history-qps %g): "+
			"created in %.0f s, settled after %.0f s\n", r.Checklists, r.EndedPerTarget, r.HistoryLimit, r.HistoryQPS,
			r.CreateS, r.SettledS)
		if t := r.Trim; t != nil {
			fmt.Printf("  trimmed %d of %d at start in %.0f s: %.1f deletes/s on average, at most %.0f in a second, "+
				"%.1f/s over ten; all writes at most %.1f/s over ten; %d ended left, %d live deleted\n",
				t.Deleted, t.Expected, t.Seconds, t.MeanPerS, t.PeakPerS, t.Peak10sPerS, t.WritesPeak10sPerS,
				t.EndedLeft, t.LiveDeleted)
		}
	}
	for _, dead := range results {
		for _, healthy := range results {
			if dead.Blackholed > 0 && healthy.Blackholed == 0 && dead.Checklists == healthy.Checklists &&
				dead.Active == healthy.Active && dead.AllDistinct == healthy.AllDistinct &&
				dead.Replicas == healthy.Replicas && targets(dead) == targets(healthy) && healthy.TickToRollbackP99s > 0 {
				fmt.Printf("\n%d of %d active against a dead Prometheus: the releases' tick→rollback p99 is "+
					"%.2f× the healthy run's\n", dead.Blackholed, dead.Active, dead.TickToRollbackP99s/healthy.TickToRollbackP99s)
			}
		}
	}
	for _, many := range results {
		for _, one := range results {
			if targets(many) > 1 && targets(one) == 1 && many.Checklists == one.Checklists && many.Active == one.Active &&
				many.Blackholed == one.Blackholed && many.AllDistinct == one.AllDistinct && many.Replicas == one.Replicas &&
				one.TickToRollbackP99s > 0 {
				fmt.Printf("\nreleases of %d targets (%d of %d targets restored): the releases' tick→rollback p99 is "+
					"%.2f× the one-target run's (%.2f s / %.2f s)\n", targets(many), many.TargetsRestored,
					many.Releases*targets(many), many.TickToRollbackP99s/one.TickToRollbackP99s,
					many.TickToRollbackP99s, one.TickToRollbackP99s)
			}
		}
	}
	raw, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(out, raw, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("\nwritten to %s\n", out)
}

// targets is a result's targets per release: 1 in results written before it was
// recorded.
func targets(r scale.Result) int { return max(1, r.TargetsPerRelease) }

// runAlone measures one size in a child process (this program, one size) and reads
// its JSON.
func runAlone(size string, releases int, interval time.Duration, rounds int) (scale.Result, error) {
	out, err := os.CreateTemp("", "bench-scale-*.json")
	if err != nil {
		return scale.Result{}, err
	}
	_ = out.Close()
	defer func() { _ = os.Remove(out.Name()) }()
	cmd := exec.Command(os.Args[0], "--sizes", size, "--releases", strconv.Itoa(releases),
		"--interval", interval.String(), "--rounds", strconv.Itoa(rounds), "--out", out.Name())
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return scale.Result{}, fmt.Errorf("size %s: %w", size, err)
	}
	raw, err := os.ReadFile(out.Name())
	if err != nil {
		return scale.Result{}, err
	}
	var res []scale.Result
	if err := json.Unmarshal(raw, &res); err != nil || len(res) != 1 {
		return scale.Result{}, fmt.Errorf("size %s: reading its results: %v", size, err)
	}
	return res[0], nil
}

// parseSize reads N:M[:B][:d][:rR][:tT]: N checklists, M active, B of them against a
// dead Prometheus, d for distinct queries, R replicas of the real manager with --shards,
// T Deployments gated by each release.
func parseSize(s string) (scale.Config, error) {
	var cfg scale.Config
	bad := fmt.Errorf("bad size %q (want N:M[:B][:d][:rR][:tT][:eK][:qR], T from 1 to %d)", s, deployv1alpha1.MaxTargets)
	var nums []int
	for p := range strings.SplitSeq(s, ":") {
		switch {
		case p == "d":
			cfg.DistinctQueries = true
		case strings.HasPrefix(p, "r"):
			r, err := strconv.Atoi(p[1:])
			if err != nil || r < 1 {
				return cfg, bad
			}
			cfg.Replicas = r
		case strings.HasPrefix(p, "e"):
			e, err := strconv.Atoi(p[1:])
			if err != nil || e < 1 {
				return cfg, bad
			}
			cfg.EndedPerTarget = e
		case strings.HasPrefix(p, "q"):
			q, err := strconv.ParseFloat(p[1:], 64)
			if err != nil || q < 0 {
				return cfg, bad
			}
			cfg.HistoryQPS = &q
		case strings.HasPrefix(p, "t"):
			t, err := strconv.Atoi(p[1:])
			if err != nil || t < 1 || t > deployv1alpha1.MaxTargets {
				return cfg, bad
			}
			cfg.TargetsPerRelease = t
		default:
			n, err := strconv.Atoi(p)
			if err != nil {
				return cfg, bad
			}
			nums = append(nums, n)
		}
	}
	if len(nums) < 2 || len(nums) > 3 {
		return cfg, bad
	}
	cfg.Checklists, cfg.Active = nums[0], nums[1]
	if len(nums) == 3 {
		cfg.Blackholed = nums[2]
	}
	return cfg, nil
}

// benchPast measures held writes' admission with 1 and past ended checklists on the
// Deployment (make bench-past), prints the figures and writes them as JSON.
func benchPast(past, writes int, out string) error {
	fmt.Printf("== held writes through the API server to the Deployment gate: %d each with 1 and %d past checklists\n",
		writes, past)
	res, err := scale.RunPast(context.Background(), []int{1, past}, writes,
		func(f string, a ...any) { fmt.Printf("   "+f+"\n", a...) })
	if err != nil {
		return err
	}
	fmt.Printf("\n| past checklists | writes | each write | held | gate p50 / p99 ms | request p50 / p99 ms |\n" +
		"|---|---|---|---|---|---|\n")
	for _, r := range res {
		each := "right after the last"
		if r.Observed {
			each = "once the last is observed"
		}
		fmt.Printf("| %d | %d | %s | %d | %.2f / %.2f | %.2f / %.2f |\n", r.Past, r.Writes, each, r.Held, r.WebhookP50Ms,
			r.WebhookP99Ms, r.RequestP50Ms, r.RequestP99Ms)
	}
	raw, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(out, raw, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwritten to %s\n", out)
	return nil
}
