package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Binaries are found through the variables `hack/build-testbins.sh --print-env` prints
// (the Makefile exports them), or else under the repository's bin/ directory.
const (
	envAssets            = "KUBEBUILDER_ASSETS"
	envControllerManager = "TMINUS_KUBE_CONTROLLER_MANAGER"
	envScheduler         = "TMINUS_KUBE_SCHEDULER"
	envKwok              = "TMINUS_KWOK"
	envKwokStages        = "TMINUS_KWOK_STAGES"
	envPrometheus        = "TMINUS_PROMETHEUS"
)

// RepoRoot is the directory holding the project's go.mod, found from the working
// directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no tminus repository above the working directory")
		}
		dir = parent
	}
}

// locate returns the path named by envVar, or the newest match of pattern under bin/.
func locate(envVar, pattern string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", envVar, p, err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	matches, _ := filepath.Glob(filepath.Join(root, "bin", pattern))
	if len(matches) == 0 {
		return "", fmt.Errorf("%s is unset and bin/%s is %w: run hack/build-testbins.sh or make testbins",
			envVar, pattern, errNotBuilt)
	}
	slices.Sort(matches)
	return matches[len(matches)-1], nil
}

func assetsDir() (string, error) { return locate(envAssets, "k8s-*") }

func controllerManagerBinary() (string, error) {
	return locate(envControllerManager, "k8s-*/kube-controller-manager")
}

func schedulerBinary() (string, error) { return locate(envScheduler, "k8s-*/kube-scheduler") }

func kwokBinary() (string, error) { return locate(envKwok, "kwok-*/kwok") }

func kwokStagesDir() (string, error) { return locate(envKwokStages, "kwok-*/stage") }

// PrometheusBinary is the prometheus server the test bed runs.
func PrometheusBinary() (string, error) { return locate(envPrometheus, "prometheus-*/prometheus") }

// KubectlBinary is the kubectl built beside kube-apiserver.
func KubectlBinary() (string, error) {
	dir, err := assetsDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kubectl"), nil
}
