package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// PluginName is the plugin's name in krew: kubectl checklist.
const PluginName = "checklist"

// PluginOptions say what to build.
type PluginOptions struct {
	Root, Version string
	Platforms     []Platform
	// Out receives the archives and the krew manifest (checklist.yaml).
	Out string
	// URLBase is where the archives are published: the manifest's uri is
	// URLBase/<archive>.
	URLBase string
}

// KrewManifest is krew's Plugin (krew.googlecontainertools.github.com/v1alpha2), as
// much of it as tminus fills in.
type KrewManifest struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   KrewMetadata `json:"metadata"`
	Spec       KrewSpec     `json:"spec"`
}

// KrewMetadata names the plugin.
type KrewMetadata struct {
	Name string `json:"name"`
}

// KrewSpec is the plugin's spec.
type KrewSpec struct {
	Version          string         `json:"version"`
	Homepage         string         `json:"homepage"`
	ShortDescription string         `json:"shortDescription"`
	Description      string         `json:"description"`
	Platforms        []KrewPlatform `json:"platforms"`
}

// KrewPlatform is one archive of the plugin.
type KrewPlatform struct {
	Selector KrewSelector `json:"selector"`
	URI      string       `json:"uri"`
	Sha256   string       `json:"sha256"`
	Files    []KrewFile   `json:"files"`
	Bin      string       `json:"bin"`
}

// KrewSelector picks the platform.
type KrewSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// KrewFile is copied from the archive into the plugin's directory.
type KrewFile struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ArchiveName is the archive of the plugin for p.
func ArchiveName(p Platform) string {
	return fmt.Sprintf("kubectl-checklist_%s_%s.tar.gz", p.OS, p.Arch)
}

// BuildPluginArchives builds kubectl-checklist for each platform into a tar.gz with the
// LICENSE, and writes the krew manifest naming each archive and its sha256.
func BuildPluginArchives(ctx context.Context, o PluginOptions) (*KrewManifest, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	license, err := os.ReadFile(filepath.Join(o.Root, "LICENSE"))
	if err != nil {
		return nil, err
	}
	m := &KrewManifest{APIVersion: "krew.googlecontainertools.github.com/v1alpha2", Kind: "Plugin",
		Metadata: KrewMetadata{Name: PluginName},
		Spec: KrewSpec{Version: o.Version, Homepage: "https://" + Module,
			ShortDescription: "Approve, inspect and explain tminus DeploymentChecklists",
			Description: "Sign off a release's roles (verified by tminus's webhook), show a checklist's timeline and " +
				"why it waits or rolled back, start a release from a template, print the release record for a " +
				"change ticket, and list the change freezes in force."}}
	for _, p := range o.Platforms {
		bin := "kubectl-checklist"
		if p.OS == "windows" {
			bin += ".exe"
		}
		built := filepath.Join(o.Out, "build", p.OS+"-"+p.Arch, bin)
		if err := goBuild(ctx, o.Root, "./cmd/kubectl-checklist", built, o.Version, p); err != nil {
			return nil, err
		}
		body, err := os.ReadFile(built)
		if err != nil {
			return nil, err
		}
		var archive bytes.Buffer
		if err := tarGz(&archive, []file{{name: bin, mode: 0o755, body: body},
			{name: "LICENSE", mode: 0o644, body: license}}); err != nil {
			return nil, err
		}
		name := ArchiveName(p)
		if err := os.WriteFile(filepath.Join(o.Out, name), archive.Bytes(), 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(archive.Bytes())
		m.Spec.Platforms = append(m.Spec.Platforms, KrewPlatform{
			Selector: KrewSelector{MatchLabels: map[string]string{"os": p.OS, "arch": p.Arch}},
			URI:      o.URLBase + "/" + name, Sha256: hex.EncodeToString(sum[:]),
			Files: []KrewFile{{From: bin, To: "."}, {From: "LICENSE", To: "."}}, Bin: bin,
		})
	}
	if err := os.RemoveAll(filepath.Join(o.Out, "build")); err != nil {
		return nil, err
	}
	raw, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return m, os.WriteFile(filepath.Join(o.Out, PluginName+".yaml"), raw, 0o644)
}
