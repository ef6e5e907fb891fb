package release

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image facts every platform's image shares.
const (
	// Entrypoint is the manager binary's path in the image.
	Entrypoint = "/manager"
	// User is the non-root user and group the image runs as (distroless's nonroot).
	User = "65532:65532"
	// RefNameAnnotation names the image in the layout's index.json (OCI image spec).
	RefNameAnnotation = "org.opencontainers.image.ref.name"
)

// ImageOptions say what to build.
type ImageOptions struct {
	// Root is the repository checkout.
	Root string
	// Version is stamped into the binary and the image's labels.
	Version string
	// Ref names the image, e.g. ghcr.io/tminus-dev/tminus:v0.2.0.
	Ref       string
	Platforms []Platform
	// Out is the OCI layout's directory; it is replaced.
	Out string
}

// BuildImage builds the manager for each platform, each into an image on an empty base
// (one layer: the static binary and a passwd entry for the non-root user), and writes
// their index into an OCI layout at o.Out. Nothing is pulled or pushed: `crane push`,
// `skopeo copy oci:...` or `oras` take the layout to a registry.
func BuildImage(ctx context.Context, o ImageOptions) error {
	tmp, err := os.MkdirTemp("", "tminus-image-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		bin := filepath.Join(tmp, "manager-"+p.OS+"-"+p.Arch)
		if err := goBuild(ctx, o.Root, "./cmd", bin, o.Version, p); err != nil {
			return err
		}
		img, err := platformImage(bin, o, p)
		if err != nil {
			return fmt.Errorf("image for %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch}}})
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return err
	}
	lp, err := layout.Write(o.Out, empty.Index)
	if err != nil {
		return err
	}
	return lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{RefNameAnnotation: o.Ref}))
}

func platformImage(bin string, o ImageOptions, p Platform) (v1.Image, error) {
	body, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var layerTar bytes.Buffer
	if err := tarGz(&layerTar, []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "tmp/", mode: 0o1777},
		{name: Entrypoint[1:], mode: 0o755, body: body},
	}); err != nil {
		return nil, err
	}
	raw := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = p.OS, p.Arch
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint = []string{Entrypoint}
	cfg.Config.User = User
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "tminus",
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.source":   "https://" + Module,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	return mutate.ConfigFile(img, cfg)
}
