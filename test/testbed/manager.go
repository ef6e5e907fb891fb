package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildManager builds the manager binary (cmd/) into dir once under each name and
// returns their paths: the name is the process's user agent, so the API server's audit
// log tells the writes of several replicas apart.
func BuildManager(dir string, names ...string) ([]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	first := filepath.Join(dir, names[0])
	build := exec.Command("go", "build", "-o", first, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	raw, err := os.ReadFile(first)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(names))
	paths = append(paths, first)
	for _, n := range names[1:] {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, raw, 0o755); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
