package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/report"
	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/testbed"
)

// The two-tier act: the shop's frontend (storefront) and its backend (checkout) are
// released by one checklist made from config/samples' two-tier template, the backend
// first. The backend's new version is healthy; the frontend's fails a quarter of its
// requests, and the breach restores both, the frontend first.
const (
	frontend        = "storefront"
	frontendServing = "v1.0.0"
	frontendBad     = "v1.1.0"
	backendNext     = "v2.10.0"
)

// twoTier runs the act and returns its summary line.
func twoTier(ctx context.Context, bed *testbed.Bed, kubeconfigs map[string]string, promURL string) (string, error) {
	c := bed.Client
	fmt.Printf("\n=== one release, two services: checkout %s and storefront %s, rolled back together ===\n",
		backendNext, frontendBad)
	apps, err := twoTierApps(ctx)
	if err != nil {
		return "", err
	}
	servingBackend, err := imageOf(ctx, c, name)
	if err != nil {
		return "", err
	}
	if err := startFrontend(ctx, c, apps); err != nil {
		return "", err
	}
	say("Deployment shop/storefront runs %s:%s on 2 pods, labelled gated; checkout runs %s",
		frontend, frontendServing, servingBackend)

	tmpl, dcl, err := twoTierSample(promURL)
	if err != nil {
		return "", err
	}
	if err := c.Create(ctx, tmpl); err != nil {
		return "", err
	}
	raw, err := yaml.Marshal(dcl.Spec)
	if err != nil {
		return "", err
	}
	if err := c.Create(ctx, dcl); err != nil {
		return "", err
	}
	say("applied ClusterChecklistTemplate two-tier (config/samples, compressed) and DeploymentChecklist %s:\n%s", dcl.Name,
		"    "+strings.ReplaceAll(strings.TrimSpace(string(raw)), "\n", "\n    "))
	if err := waitFor(ctx, c, dcl, func(d *deployv1alpha1.DeploymentChecklist) bool {
		return d.Status.CurrentPhase != "" && len(d.Status.Targets) == 2 &&
			d.Status.Targets[0].CapturedAt != nil && d.Status.Targets[1].CapturedAt != nil
	}); err != nil {
		return "", err
	}
	if err := pushHeld(ctx, c, apps, name+":"+backendNext, frontend+":"+frontendBad); err != nil {
		return "", err
	}
	say("the pipeline pushes checkout:%s and storefront:%s; both are stored paused, nothing rolls",
		backendNext, frontendBad)
	go watch(ctx, c, dcl)
	if err := signOff(ctx, dcl.Name, kubeconfigs, lead, operator); err != nil {
		return "", err
	}
	done, err := waitEnded(ctx, c, dcl)
	if err != nil {
		return "", err
	}
	if done.Status.Phase != deployv1alpha1.PhaseRolledBack {
		return "", fmt.Errorf("release %s ended %s, expected RolledBack", dcl.Name, done.Status.Phase)
	}
	for deployment, want := range map[string]string{name: servingBackend, frontend: frontend + ":" + frontendServing} {
		if got, err := imageOf(ctx, c, deployment); err != nil {
			return "", err
		} else if got != want {
			return "", fmt.Errorf("after the rollback Deployment %s runs %s, expected %s", deployment, got, want)
		}
	}
	say("both restored: checkout runs %s again, storefront %s:%s", servingBackend, frontend, frontendServing)
	return fmt.Sprintf("%-8s %-10s %s", "2 tiers", done.Status.Phase, report.Why(done, time.Now())), nil
}

// twoTierApps starts the instrumented processes of the act's images (the backend's
// serving one is the demo's), keyed by image.
func twoTierApps(ctx context.Context) (map[string]*app.App, error) {
	apps := map[string]*app.App{}
	for image, errorRate := range map[string]float64{
		frontend + ":" + frontendServing: 0.001,
		frontend + ":" + frontendBad:     0.25,
		name + ":" + backendNext:         0.001,
	} {
		svc, err := app.Start(200)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, svc.Close)
		svc.Set(errorRate, 50*time.Millisecond)
		apps[image] = svc
	}
	return apps, nil
}

// startFrontend creates the storefront, waits for it to roll out and labels it gated.
func startFrontend(ctx context.Context, c client.Client, apps map[string]*app.App) error {
	image := frontend + ":" + frontendServing
	d := testbed.Deployment(ns, frontend, image, 2)
	d.Spec.Template.Annotations = map[string]string{testbed.ScrapeAddressAnnotation: apps[image].Addr}
	if err := c.Create(ctx, d); err != nil {
		return err
	}
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		var cur appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
			return false, err
		}
		return testbed.RolledOut(&cur, image) == nil, nil
	}); err != nil {
		return err
	}
	return labelGated(ctx, c, frontend)
}

// pushHeld sets each image on its Deployment, as a pipeline would, and checks that the
// API server stored each one paused: the gate held it.
func pushHeld(ctx context.Context, c client.Client, apps map[string]*app.App, images ...string) error {
	for _, image := range images {
		if err := setImageOf(ctx, c, image, apps[image].Addr); err != nil {
			return err
		}
		deployment, _, _ := strings.Cut(image, ":")
		var cur appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: deployment}, &cur); err != nil {
			return err
		}
		if !cur.Spec.Paused {
			return fmt.Errorf("deployment %s took %s unpaused: nothing held it", deployment, image)
		}
	}
	return nil
}

// waitEnded waits for the release to end (a rollback once it is complete) and prints
// its timeline.
func waitEnded(ctx context.Context, c client.Client, dcl *deployv1alpha1.DeploymentChecklist) (
	*deployv1alpha1.DeploymentChecklist, error) {
	var done *deployv1alpha1.DeploymentChecklist
	if err := waitFor(ctx, c, dcl, func(d *deployv1alpha1.DeploymentChecklist) bool {
		done = d
		st := d.Status
		return st.Phase == deployv1alpha1.PhaseSucceeded || st.Phase == deployv1alpha1.PhaseFailed ||
			(st.Phase == deployv1alpha1.PhaseRolledBack && st.Rollback != nil && st.Rollback.CompletedAt != nil)
	}); err != nil {
		return nil, err
	}
	fmt.Println()
	return done, report.Timeline(os.Stdout, done, time.Now())
}

// twoTierSample reads config/samples' two-tier template, compressed as the seed one, and
// the shop's release made from it: the backend (checkout) first, then the frontend.
func twoTierSample(promURL string) (
	*deployv1alpha1.ClusterChecklistTemplate, *deployv1alpha1.DeploymentChecklist, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", "deploy_v1alpha1_twotier.yaml"))
	if err != nil {
		return nil, nil, err
	}
	first, _, ok := strings.Cut(string(raw), "\n---\n")
	if !ok {
		return nil, nil, errors.New("config/samples/deploy_v1alpha1_twotier.yaml: want the template, ---, and a release")
	}
	var tmpl deployv1alpha1.ClusterChecklistTemplate
	if err := yaml.UnmarshalStrict([]byte(first), &tmpl); err != nil {
		return nil, nil, err
	}
	compressTemplate(&tmpl, "", promURL)
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-" + strings.ReplaceAll(backendNext, ".", "-"), Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			TemplateRef: &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: tmpl.Name},
			Targets: []deployv1alpha1.TargetRef{{Kind: deployv1alpha1.KindDeployment, Name: name},
				{Kind: deployv1alpha1.KindDeployment, Name: frontend}},
			Release:    &deployv1alpha1.ReleaseSpec{Order: deployv1alpha1.ReleaseSequential},
			Revision:   "shop-" + backendNext,
			Parameters: map[string]string{"backend": name, "frontend": frontend},
		},
	}
	return &tmpl, dcl, nil
}

// imageOf is the image Deployment deployment's template runs.
func imageOf(ctx context.Context, c client.Client, deployment string) (string, error) {
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: deployment}, &d); err != nil {
		return "", err
	}
	return d.Spec.Template.Spec.Containers[0].Image, nil
}

// setImageOf sets image (deployment:version) on its Deployment, its pods scraped at addr.
func setImageOf(ctx context.Context, c client.Client, image, addr string) error {
	deployment, _, _ := strings.Cut(image, ":")
	for range 50 {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: deployment}, &d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		d.Spec.Template.Annotations[testbed.ScrapeAddressAnnotation] = addr
		if err := c.Update(ctx, &d); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("could not set image %s", image)
}
