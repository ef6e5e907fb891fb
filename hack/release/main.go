// Command release builds what a tminus release ships, offline and without Docker:
//
//	go run ./hack/release image   --version v0.2.0 --ref ghcr.io/tminus-dev/tminus:v0.2.0 --out dist/image
//	go run ./hack/release plugins --version v0.2.0 --out dist/plugin
//
// image writes a multi-arch OCI layout (push it with `crane push dist/image REF` or
// `skopeo copy oci:dist/image docker://REF`); plugins writes the kubectl plugin's
// archives and their krew manifest.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tminus-dev/tminus/internal/release"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: release image|plugins [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	version := fs.String("version", "dev", "version stamped into the binaries")
	out := fs.String("out", "", "output directory")
	ref := fs.String("ref", "", "image reference the layout names (image)")
	platforms := fs.String("platforms", "", "comma-separated os/arch list")
	urlBase := fs.String("url-base", "", "where the archives are published (plugins; default: the release's download URL)")
	_ = fs.Parse(os.Args[2:])
	root, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "image":
		ps, err := release.ParsePlatforms(or(*platforms, "linux/amd64,linux/arm64"))
		if err != nil {
			fail(err)
		}
		err = release.BuildImage(ctx, release.ImageOptions{Root: root, Version: *version,
			Ref: or(*ref, "ghcr.io/tminus-dev/tminus:"+*version), Platforms: ps, Out: or(*out, "dist/image")})
		if err != nil {
			fail(err)
		}
		fmt.Printf("OCI layout of %d platforms in %s\n", len(ps), or(*out, "dist/image"))
	case "plugins":
		ps, err := release.ParsePlatforms(or(*platforms,
			"linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64,windows/arm64"))
		if err != nil {
			fail(err)
		}
		dir := or(*out, "dist/plugin")
		m, err := release.BuildPluginArchives(ctx, release.PluginOptions{Root: root, Version: *version, Platforms: ps,
			Out: dir, URLBase: or(*urlBase, "https://"+release.Module+"/releases/download/"+*version)})
		if err != nil {
			fail(err)
		}
		fmt.Printf("%d plugin archives and the krew manifest %s/%s.yaml\n", len(m.Spec.Platforms), dir, release.PluginName)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: want image or plugins\n", os.Args[1])
		os.Exit(2)
	}
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
