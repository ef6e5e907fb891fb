// kubectl-checklist is the kubectl plugin for tminus checklists:
//
//	kubectl checklist approve NAME --role deployment-lead
//	kubectl checklist revoke NAME --role deployment-lead
//	kubectl checklist status NAME
//	kubectl checklist why NAME
//	kubectl checklist rollback NAME --reason "CVE-2026-1234 in the new image"
//	kubectl checklist abort NAME --reason "wrong build"
//	kubectl checklist retry NAME
//	kubectl checklist dashboard [-A] [--port 3100]
//
// Install it with `go install ./cmd/kubectl-checklist` (or `make plugin`) into a
// directory on PATH; --namespace, --context and --kubeconfig behave as in kubectl.
package main

import (
	"fmt"
	"os"

	"github.com/tminus-dev/tminus/internal/plugin"
)

func main() {
	if err := plugin.NewCommand(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
