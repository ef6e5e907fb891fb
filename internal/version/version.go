// Package version is what the manager and the kubectl plugin say they are. It is set
// at build time: go build -ldflags "-X github.com/tminus-dev/tminus/internal/version.Version=v0.2.0"
// (make build and make plugin set it from git describe).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version of this build; "dev" when built without make.
var Version = "dev"

// String is the version line --version prints: the version, the commit when the Go
// toolchain recorded one, and the Go version and platform.
func String(program string) string {
	commit := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				commit = " (" + s.Value[:12] + ")"
			}
		}
	}
	return fmt.Sprintf("%s %s%s %s %s/%s", program, Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
