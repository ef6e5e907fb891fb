// benchscale measures tminus at scale (make bench-scale): for each size N:M, N
// checklists of which M actively gate, plus releases whose breach is timed to rollback,
// evaluated every interval. It prints a table and writes the results as JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tminus-dev/tminus/test/scale"
)

func main() {
	sizes := flag.String("sizes", "1000:100,5000:1000,10000:1000", "comma-separated N:M (checklists:active)")
	releases := flag.Int("releases", 10, "releases whose breach-to-rollback is timed")
	interval := flag.Duration("interval", 10*time.Second, "evaluation interval of every checklist")
	rounds := flag.Int("rounds", 3, "intervals measured after the warm-up")
	out := flag.String("out", "bench-scale.json", "where to write the JSON results")
	flag.Parse()
	// The manager's logs would drown the figures.
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	list := strings.Split(*sizes, ",")
	results := make([]scale.Result, 0, len(list))
	for _, s := range list {
		n, m, ok := strings.Cut(s, ":")
		total, err1 := strconv.Atoi(n)
		active, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "bad size %q (want N:M)\n", s)
			os.Exit(2)
		}
		var res scale.Result
		var err error
		if len(list) == 1 {
			fmt.Printf("== %d checklists, %d active, %d releases, interval %s\n", total, active, *releases, *interval)
			res, err = scale.Run(context.Background(), scale.Config{
				Checklists: total, Active: active, Releases: *releases,
				Interval: *interval, Rounds: *rounds,
				Log: func(f string, a ...any) { fmt.Printf("   "+f+"\n", a...) },
			})
		} else {
			// Each size in a process of its own: memory figures and latency
			// histograms must not carry over from the size before.
			res, err = runAlone(s, *releases, *interval, *rounds)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		results = append(results, res)
	}
	fmt.Printf("\n| checklists | active | RSS MiB | heap MiB | queries/round | API writes/round |" +
		" reconcile p50/p99 ms | breach→rollback p50/p99 s | tick→rollback p50/p99 s | breach visible after s |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Printf("| %d | %d | %.0f | %.0f | %.1f | %.1f | %.1f / %.1f | %.1f / %.1f | %.2f / %.2f | %.1f |\n",
			r.Checklists, r.Active, r.RSSMiB, r.HeapMiB, r.QueriesPerRound, r.WritesPerRound,
			r.ReconcileP50Ms, r.ReconcileP99Ms, r.BreachToRollbackP50s, r.BreachToRollbackP99s,
			r.TickToRollbackP50s, r.TickToRollbackP99s, r.BreachVisibleS)
	}
	raw, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(*out, raw, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("\nwritten to %s\n", *out)
}

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
