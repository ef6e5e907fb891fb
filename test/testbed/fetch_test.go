package testbed_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/tminus-dev/tminus/test/testbed"
)

// These tests run hack/build-testbins.sh's fetch path against a local server serving
// release files the test makes: a pinned file is fetched and checked, anything else is
// refused and falls back to building (switched off here with TESTBINS_BUILD=0, so the
// fallback shows as a refusal to build rather than a 20-minute compile).

const fakeVersion = "v0.0.0-fetchtest"

// fakeBinary is a program that says where it came from.
func fakeBinary(name string) []byte {
	return []byte("#!/bin/sh\necho " + name + " from the release file\n")
}

// tarGz makes a release archive holding body at member.
func tarGz(t *testing.T, member string, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: member, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// buildTestbins runs the script for targets with a pin file of lines, building nothing,
// and returns its log and whether it succeeded.
func buildTestbins(t *testing.T, bin string, lines []string, targets ...string) (string, bool) {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	sums := filepath.Join(t.TempDir(), "sums")
	if err := os.WriteFile(sums, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "hack", "build-testbins.sh")}, targets...)...)
	cmd.Env = append(os.Environ(), "TMINUS_BIN="+bin, "TESTBINS_SUMS="+sums, "TESTBINS_BUILD=0",
		"PROMETHEUS_VERSION="+fakeVersion, "ETCD_VERSION="+fakeVersion)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func platform() string { return runtime.GOOS + "/" + runtime.GOARCH }

func TestAPinnedReleaseArchiveIsFetchedCheckedAndUnpackedInsteadOfBuilt(t *testing.T) {
	g := NewWithT(t)
	member := "prometheus-0.0.0.test/prometheus"
	archive := tarGz(t, member, fakeBinary("prometheus"))
	etcd := fakeBinary("etcd")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/prometheus.tar.gz":
			_, _ = w.Write(archive)
		case "/etcd":
			_, _ = w.Write(etcd)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	bin := t.TempDir()
	log, ok := buildTestbins(t, bin, []string{
		"# a comment, and a pin for another platform that must not be taken",
		"prometheus " + fakeVersion + " plan9/mips " + sha([]byte("other")) + " " + srv.URL + "/other.tar.gz x",
		"prometheus " + fakeVersion + " " + platform() + " " + sha(archive) + " " + srv.URL + "/prometheus.tar.gz " + member,
		"etcd " + fakeVersion + " " + platform() + " " + sha(etcd) + " " + srv.URL + "/etcd",
	}, "prometheus", "etcd")
	g.Expect(ok).To(BeTrue(), log)
	g.Expect(log).To(ContainSubstring("fetched prometheus " + fakeVersion))
	g.Expect(log).To(ContainSubstring("fetched etcd " + fakeVersion))
	g.Expect(log).To(ContainSubstring("sha256 checked"))

	for name, path := range map[string]string{
		"prometheus": filepath.Join(bin, "prometheus-"+fakeVersion+"-k8ssd", "prometheus"),
		"etcd":       filepath.Join(bin, "etcd-"+fakeVersion, "etcd"),
	} {
		out, err := exec.Command(path).CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), "%s is an executable", path)
		g.Expect(string(out)).To(Equal(name+" from the release file\n"), "the file the pin names, unpacked")
	}

	// A second run finds them and fetches nothing.
	srv.Close()
	log, ok = buildTestbins(t, bin, nil, "prometheus", "etcd")
	g.Expect(ok).To(BeTrue(), log)
	g.Expect(log).NotTo(ContainSubstring("fetch"))
}

func TestAReleaseFileWhoseChecksumDiffersIsRefusedAndFallsBackToBuilding(t *testing.T) {
	g := NewWithT(t)
	tampered := tarGz(t, "prometheus", fakeBinary("a tampered prometheus"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(tampered) }))
	defer srv.Close()

	bin := t.TempDir()
	pinned := sha(tarGz(t, "prometheus", fakeBinary("prometheus")))
	log, ok := buildTestbins(t, bin, []string{
		"prometheus " + fakeVersion + " " + platform() + " " + pinned + " " + srv.URL + "/prometheus.tar.gz prometheus",
	}, "prometheus")
	g.Expect(ok).To(BeFalse(), "nothing was built, nothing may be used")
	g.Expect(log).To(ContainSubstring("REFUSED " + srv.URL + "/prometheus.tar.gz: its sha256 is " + sha(tampered) +
		", the pin says " + pinned))
	g.Expect(log).To(ContainSubstring("building it instead"))
	g.Expect(log).To(ContainSubstring("TESTBINS_BUILD=0: not building prometheus"))
	g.Expect(filepath.Join(bin, "prometheus-"+fakeVersion+"-k8ssd", "prometheus")).NotTo(BeAnExistingFile())
}

func TestAnUnreachableOrUnpinnedReleaseFileFallsBackToBuildingSayingSoInOneLine(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more

	log, ok := buildTestbins(t, t.TempDir(), []string{
		"etcd " + fakeVersion + " " + platform() + " " + sha([]byte("x")) + " " + url + "/etcd",
	}, "etcd", "prometheus")
	g.Expect(ok).To(BeFalse())
	g.Expect(log).To(ContainSubstring("could not fetch " + url + "/etcd"))
	g.Expect(log).To(ContainSubstring("TESTBINS_BUILD=0: not building etcd"))

	log, ok = buildTestbins(t, t.TempDir(), nil, "prometheus")
	g.Expect(ok).To(BeFalse())
	g.Expect(log).To(ContainSubstring("prometheus " + fakeVersion + ": no pinned release file for " + platform()))
}

func TestAReleaseFilePublishedUnderAnotherNameIsInstalledUnderTheNamePinnedForIt(t *testing.T) {
	g := NewWithT(t)
	// kwok publishes its binary as kwok-<os>-<arch>, not inside an archive: the pin says
	// "-" for no member and the name the test bed runs it by.
	etcd := fakeBinary("etcd")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/etcd-release-linux" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(etcd)
	}))
	defer srv.Close()

	bin := t.TempDir()
	log, ok := buildTestbins(t, bin, []string{
		"etcd " + fakeVersion + " " + platform() + " " + sha(etcd) + " " + srv.URL + "/etcd-release-linux - etcd",
	}, "etcd")
	g.Expect(ok).To(BeTrue(), log)
	path := filepath.Join(bin, "etcd-"+fakeVersion, "etcd")
	out, err := exec.Command(path).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s is an executable", path)
	g.Expect(string(out)).To(Equal("etcd from the release file\n"))
	g.Expect(filepath.Join(bin, "etcd-"+fakeVersion, "etcd-release-linux")).NotTo(BeAnExistingFile())
}
