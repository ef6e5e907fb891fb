package version

import (
	"strings"
	"testing"
)

func TestTheVersionLineNamesTheProgramAndTheVersionSetAtBuildTime(t *testing.T) {
	defer func(v string) { Version = v }(Version)
	Version = "v1.2.3"
	got := String("tminus")
	if !strings.HasPrefix(got, "tminus v1.2.3 ") || !strings.Contains(got, "go1.") {
		t.Fatalf("String() = %q", got)
	}
}
