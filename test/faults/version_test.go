package faults

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tminus-dev/tminus/test/testbed"
)

func TestTheManagerBinaryReportsTheVersionItWasBuiltWith(t *testing.T) {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "tminus")
	build := exec.Command("go", "build", "-ldflags",
		"-X github.com/tminus-dev/tminus/internal/version.Version=v0.0.0-test", "-o", bin, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("tminus --version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "tminus v0.0.0-test ") {
		t.Fatalf("tminus --version said %q", out)
	}
}
