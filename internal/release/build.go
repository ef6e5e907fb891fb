// Package release builds what a tminus release ships, offline and without Docker: the
// manager's multi-arch OCI image as an OCI layout on disk, and the kubectl plugin's
// archives with their krew manifest. hack/release runs it; test/install checks it.
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Module is the Go module whose version package the binaries are stamped through.
const Module = "github.com/tminus-dev/tminus"

// Platform is an OS and an architecture, as GOOS/GOARCH.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// ParsePlatforms reads "linux/amd64,linux/arm64".
func ParsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	for e := range strings.SplitSeq(s, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(e), "/")
		if !ok || goos == "" || arch == "" {
			return nil, fmt.Errorf("platform %q: want os/arch", e)
		}
		out = append(out, Platform{goos, arch})
	}
	return out, nil
}

// goBuild builds pkg (relative to root) for p into out: static, reproducible (no paths,
// no VCS stamp, stripped), with the version stamped in.
func goBuild(ctx context.Context, root, pkg, out, version string, p Platform) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X "+Module+"/internal/version.Version="+version, "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %v\n%s", pkg, p, err, b)
	}
	return nil
}

// file is one entry of an archive or a layer.
type file struct {
	name string
	mode int64
	uid  int
	body []byte
}

// epoch is the time every archive and layer entry carries, so a build is reproducible.
var epoch = time.Unix(0, 0).UTC()

// tarGz writes files as a gzipped tar with fixed times and owners.
func tarGz(w io.Writer, files []file) error {
	gz := gzip.NewWriter(w)
	gz.ModTime = epoch
	tw := tar.NewWriter(gz)
	for _, f := range files {
		typ := byte(tar.TypeReg)
		if strings.HasSuffix(f.name, "/") {
			typ = tar.TypeDir
		}
		hdr := &tar.Header{Typeflag: typ, Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: epoch,
			Uid: f.uid, Gid: f.uid, Format: tar.FormatPAX}
		if typ == tar.TypeDir {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// ReadTar reads every regular file of a tar into memory, by its cleaned path.
func ReadTar(r io.Reader) (map[string][]byte, error) {
	tr := tar.NewReader(r)
	out := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		var b bytes.Buffer
		if _, err := io.Copy(&b, tr); err != nil {
			return nil, err
		}
		out[filepath.Clean(hdr.Name)] = b.Bytes()
	}
}

// ReadTarGz reads every regular file of the gzipped tar at path.
func ReadTarGz(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return ReadTar(gz)
}
