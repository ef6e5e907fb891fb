// Package release checks what a release ships, built as `make image` and `make
// plugin-archives` build it: the manager's OCI layout and the kubectl plugin's archives
// with their krew manifest.
package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/tminus-dev/tminus/internal/release"
	"github.com/tminus-dev/tminus/test/testbed"
)

const version = "v9.9.9-test"

func root(t *testing.T) string {
	t.Helper()
	r, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// platforms reads the platforms to build from the variable env (a comma-separated list
// such as "linux/amd64,linux/arm64"), or def when it is unset. `make test` builds for
// this machine only; `make release-check` sets the variables to the whole matrix
// (IMAGE_PLATFORMS and PLUGIN_PLATFORMS), since a cold cross-compile of every platform
// costs minutes that the everyday suite need not pay.
func platforms(t *testing.T, env, def string) []release.Platform {
	t.Helper()
	list := os.Getenv(env)
	if list == "" {
		list = def
	}
	out, err := release.ParsePlatforms(list)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return out
}

func names(ps []release.Platform) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.OS+"/"+p.Arch)
	}
	return out
}

// runs says whether a binary built for goos/arch runs here.
func runs(goos, arch string) bool { return goos == runtime.GOOS && arch == runtime.GOARCH }

// versionOf runs the binary body with --version.
func versionOf(t *testing.T, body []byte) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, body, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	return strings.TrimSpace(string(out))
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// staticELF checks a Linux binary: its machine, and that it needs no dynamic loader
// nor shared library (it runs on an empty base).
func staticELF(g Gomega, body []byte, arch string) {
	f, err := elf.NewFile(bytes.NewReader(body))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.Machine).To(Equal(elfMachine[arch]))
	for _, p := range f.Progs {
		g.Expect(p.Type).NotTo(Equal(elf.PT_INTERP), "a dynamically linked binary")
	}
	libs, err := f.ImportedLibraries()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(libs).To(BeEmpty())
}

func TestTheImageLayoutHoldsAStaticNonRootManagerForEachArchitecture(t *testing.T) {
	g := NewWithT(t)
	out := filepath.Join(t.TempDir(), "image")
	ref := "ghcr.io/tminus-dev/tminus:" + version
	want := platforms(t, "TMINUS_IMAGE_PLATFORMS", "linux/"+runtime.GOARCH)
	g.Expect(release.BuildImage(context.Background(), release.ImageOptions{Root: root(t), Version: version, Ref: ref,
		Platforms: want, Out: out})).To(Succeed())

	top, err := layout.ImageIndexFromPath(out)
	g.Expect(err).NotTo(HaveOccurred())
	topManifest, err := top.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(topManifest.Manifests).To(HaveLen(1))
	g.Expect(topManifest.Manifests[0].Annotations).To(HaveKeyWithValue(release.RefNameAnnotation, ref))
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	g.Expect(err).NotTo(HaveOccurred())
	im, err := idx.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	built := make([]string, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		built = append(built, d.Platform.OS+"/"+d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		g.Expect(err).NotTo(HaveOccurred())
		cfg, err := img.ConfigFile()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.OS + "/" + cfg.Architecture).To(Equal(built[len(built)-1]))
		g.Expect(cfg.Config.Entrypoint).To(Equal([]string{"/manager"}))
		g.Expect(cfg.Config.User).To(Equal("65532:65532"), "non-root")
		g.Expect(cfg.Config.Labels).To(HaveKeyWithValue("org.opencontainers.image.version", version))
		files := imageFiles(g, img)
		g.Expect(files).To(HaveKey("etc/passwd"))
		g.Expect(string(files["etc/passwd"])).To(ContainSubstring("nonroot:x:65532:65532"))
		manager := files["manager"]
		staticELF(g, manager, d.Platform.Architecture)
		if runs(d.Platform.OS, d.Platform.Architecture) {
			g.Expect(versionOf(t, manager)).To(HavePrefix("tminus " + version + " "))
		}
	}
	g.Expect(built).To(ConsistOf(names(want)))
}

// imageFiles reads the image's flattened filesystem.
func imageFiles(g Gomega, img v1.Image) map[string][]byte {
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	raw, err := io.ReadAll(rc)
	g.Expect(err).NotTo(HaveOccurred())
	files, err := release.ReadTar(bytes.NewReader(raw))
	g.Expect(err).NotTo(HaveOccurred())
	return files
}

func TestEveryPluginArchiveHoldsTheBinaryItsKrewManifestNamesWithAMatchingChecksum(t *testing.T) {
	g := NewWithT(t)
	out := t.TempDir()
	want := platforms(t, "TMINUS_PLUGIN_PLATFORMS", runtime.GOOS+"/"+runtime.GOARCH)
	_, err := release.BuildPluginArchives(context.Background(), release.PluginOptions{Root: root(t), Version: version,
		Platforms: want, Out: out, URLBase: "https://example.com/releases/" + version})
	g.Expect(err).NotTo(HaveOccurred())

	// Read back what was written, as krew would.
	raw, err := os.ReadFile(filepath.Join(out, "checklist.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var m release.KrewManifest
	g.Expect(yaml.UnmarshalStrict(raw, &m)).To(Succeed())
	g.Expect(m.Kind).To(Equal("Plugin"))
	g.Expect(m.Metadata.Name).To(Equal("checklist"))
	g.Expect(m.Spec.Version).To(Equal(version))
	g.Expect(m.Spec.Platforms).To(HaveLen(len(want)))
	listed := make([]string, 0, len(m.Spec.Platforms))
	for _, p := range m.Spec.Platforms {
		goos, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		listed = append(listed, goos+"/"+arch)
		archive := filepath.Join(out, filepath.Base(p.URI))
		body, err := os.ReadFile(archive)
		g.Expect(err).NotTo(HaveOccurred(), "%s/%s: the archive its uri names", goos, arch)
		sum := sha256.Sum256(body)
		g.Expect(hex.EncodeToString(sum[:])).To(Equal(p.Sha256), "%s", archive)
		files, err := release.ReadTarGz(archive)
		g.Expect(err).NotTo(HaveOccurred())
		for _, f := range p.Files {
			g.Expect(files).To(HaveKey(f.From), "%s holds %s", archive, f.From)
		}
		bin := files[p.Bin]
		g.Expect(bin).NotTo(BeEmpty(), "%s holds its bin %s", archive, p.Bin)
		switch goos {
		case "linux":
			staticELF(g, bin, arch)
		case "darwin":
			f, err := macho.NewFile(bytes.NewReader(bin))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(f.Cpu).To(Equal(map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[arch]))
		case "windows":
			g.Expect(p.Bin).To(HaveSuffix(".exe"))
			f, err := pe.NewFile(bytes.NewReader(bin))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(f.Machine).To(Equal(map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64,
				"arm64": pe.IMAGE_FILE_MACHINE_ARM64}[arch]))
		}
		if runs(goos, arch) {
			g.Expect(versionOf(t, bin)).To(HavePrefix("kubectl-checklist " + version + " "))
		}
	}
	g.Expect(listed).To(ConsistOf(names(want)))
}
