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

	var results []scale.Result
	for s := range strings.SplitSeq(*sizes, ",") {
		n, m, ok := strings.Cut(s, ":")
		total, err1 := strconv.Atoi(n)
		active, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "bad size %q (want N:M)\n", s)
			os.Exit(2)
		}
		fmt.Printf("== %d checklists, %d active, %d releases, interval %s\n", total, active, *releases, *interval)
		res, err := scale.Run(context.Background(), scale.Config{
			Checklists: total, Active: active, Releases: *releases,
			Interval: *interval, Rounds: *rounds,
			Log: func(f string, a ...any) { fmt.Printf("   "+f+"\n", a...) },
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		results = append(results, res)
	}
	fmt.Printf("\n| checklists | active | RSS MiB | heap MiB | queries/round | API writes/round |" +
		" reconcile p50/p99 ms | breach→rollback p50/p99 s |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Printf("| %d | %d | %.0f | %.0f | %.1f | %.1f | %.1f / %.1f | %.1f / %.1f |\n",
			r.Checklists, r.Active, r.RSSMiB, r.HeapMiB, r.QueriesPerRound, r.WritesPerRound,
			r.ReconcileP50Ms, r.ReconcileP99Ms, r.BreachToRollbackP50s, r.BreachToRollbackP99s)
	}
	raw, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(*out, raw, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("\nwritten to %s\n", *out)
}
