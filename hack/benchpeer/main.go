// benchpeer measures the resident memory of tminus's manager and of a peer's controller
// gating the same number of releases with two metrics each (make bench-peer): each
// alone on a fresh test bed with the same Prometheus series. The peer is a binary the
// caller built (this project downloads and builds no other project's code): Argo
// Rollouts' rollouts-controller, given with its CRDs. It prints a table and writes the
// figures as JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tminus-dev/tminus/test/scale"
)

func main() {
	gates := flag.Int("gates", 1000, "releases gated, each measuring two metrics of its own")
	interval := flag.Duration("interval", 10*time.Second, "measurement interval")
	rounds := flag.Int("rounds", 6, "intervals measured after every gate has measured once")
	argo := flag.String("argo-rollouts", os.Getenv("ARGO_ROLLOUTS"), "path of Argo Rollouts' rollouts-controller binary")
	argoCRDs := flag.String("argo-crds", os.Getenv("ARGO_ROLLOUTS_CRDS"),
		"directory of Argo Rollouts' CRDs (manifests/crds)")
	out := flag.String("out", "bench-peer.json", "where to write the JSON results")
	flag.Parse()
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if (*argo == "") != (*argoCRDs == "") {
		fmt.Fprintln(os.Stderr, "benchpeer: --argo-rollouts and --argo-crds go together")
		os.Exit(2)
	}
	res, err := scale.RunPeers(context.Background(), scale.PeerConfig{Gates: *gates, Interval: *interval,
		Rounds: *rounds, ArgoRollouts: *argo, ArgoCRDs: *argoCRDs,
		Log: func(f string, a ...any) { fmt.Printf("   "+f+"\n", a...) }})
	fmt.Println("| controller | gates | RSS max MiB | RSS last MiB | queries/round | every gate measured after s |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range res {
		fmt.Printf("| %s | %d | %.0f | %.0f | %.0f | %.0f |\n", r.Contender, r.Gates, r.RSSMaxMiB, r.RSSLastMiB,
			r.QueriesPerRound, r.SettledS)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchpeer:", err)
		os.Exit(1)
	}
	raw, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(*out, append(raw, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "benchpeer:", err)
		os.Exit(1)
	}
}
