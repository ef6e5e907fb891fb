package faults

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// installWebhooks installs config/webhook's configuration as tminus-admission, pointed
// at a manager on this machine (https://localhost:port) and with no CA bundle: the
// manager writes it. The manager's certificate Secret an earlier test's manager left
// (a year's certificate, which a manager started with a shorter validity would serve
// until it nears its end) is deleted before and after: each test's manager makes its own.
func installWebhooks(t *testing.T, port int) {
	t.Helper()
	g := NewWithT(t)
	certSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: leaseNamespace, Name: "tminus-webhook-cert"}}
	g.Expect(client.IgnoreNotFound(bed.Client.Delete(context.Background(), certSecret))).To(Succeed())
	t.Cleanup(func() { _ = bed.Client.Delete(context.Background(), certSecret) })
	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	raw, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	g.Expect(yaml.Unmarshal(raw, &cfg)).To(Succeed())
	cfg.Name = "tminus-admission"
	for i := range cfg.Webhooks {
		svc := cfg.Webhooks[i].ClientConfig.Service
		url := fmt.Sprintf("https://localhost:%d%s", port, *svc.Path)
		cfg.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	}
	g.Expect(bed.Client.Create(context.Background(), &cfg)).To(Succeed())
	t.Cleanup(func() { _ = bed.Client.Delete(context.Background(), &cfg) })
}

func servingSerial(g Gomega) string {
	var s corev1.Secret
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace, Name: "tminus-webhook-cert"}, &s)).To(Succeed())
	b, _ := pem.Decode(s.Data[corev1.TLSCertKey])
	g.Expect(b).NotTo(BeNil())
	c, err := x509.ParseCertificate(b.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	return c.SerialNumber.String()
}

// setImageOf sets checkout's image in ns, again on a conflict (the Deployment
// controller writes the Deployment too), and returns what the API server stored.
func setImageOf(ns, image string) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "checkout"}, &d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		return bed.Client.Update(context.Background(), &d)
	})
	return &d, err
}

func setLabel(ns, value string) error {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"}}
	return bed.Client.Patch(context.Background(), d, client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"`+deployv1alpha1.GatedLabel+`":"`+value+`"}}}`)))
}

// TestTheManagersOwnCertificateGatesDeploymentsAndTheBreakGlassWorksWithTheManagerDown
// (and cleanup of checklists too) runs the real manager binary with nothing prepared but the webhook configuration: it
// makes its CA and serving certificate from nothing, writes the CA bundle, and the API
// server calls it for a gated Deployment; the certificate is renewed (9s validity here)
// and the webhook keeps answering. With the manager killed, the gate fails closed for
// gated Deployments only (a template change is refused, scaling goes through), and the
// break-glass (label the Deployment deploy.tminus.dev/gated=off) lets a fix through.
func TestTheManagersOwnCertificateGatesDeploymentsAndTheBreakGlassWorksWithTheManagerDown(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(client.IgnoreAlreadyExists(bed.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}))).To(Succeed())
	port, err := testbed.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	installWebhooks(t, port)
	bin := buildManager(t, "tminus-webhooks")[0]
	mgr := runManagerWith(t, bin, "--namespace", leaseNamespace, "--webhook-host", "127.0.0.1",
		"--webhook-port", strconv.Itoa(port), "--webhook-dns-names", "localhost",
		"--webhook-cert-validity", "9s", "--webhook-cert-check", "1s")

	// Made from nothing: the Secret and the CA bundle.
	g.Eventually(func(g Gomega) {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		g.Expect(bed.Client.Get(ctx, client.ObjectKey{Name: "tminus-admission"}, &cfg)).To(Succeed())
		for _, w := range cfg.Webhooks {
			g.Expect(w.ClientConfig.CABundle).NotTo(BeEmpty(), w.Name)
		}
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
	first := servingSerial(g)

	ns := newNamespace(t, "certs")
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 2)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, ns, "checkout:v1")
	g.Expect(setLabel(ns, deployv1alpha1.GatedByUser)).To(Succeed())

	// The API server calls the manager over TLS: a new template is held in the write.
	g.Eventually(func(g Gomega) {
		stored, err := setImageOf(ns, "checkout:v2")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(stored.Spec.Paused).To(BeTrue())
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())

	// Renewed (a third of 9s left), and still trusted.
	g.Eventually(func() string { return servingSerial(g) }, 30*time.Second, 200*time.Millisecond).ShouldNot(Equal(first))
	time.Sleep(2 * time.Second) // every replica serves the renewed one at its next check (1s)
	stored, err := setImageOf(ns, "checkout:v3")
	g.Expect(err).NotTo(HaveOccurred(), "the renewed certificate is trusted")
	g.Expect(stored.Annotations[deployv1alpha1.HoldReasonAnnotation]).To(ContainSubstring("checkout:v3"))

	// A checklist that something else keeps a finalizer on (a GitOps tool's, say).
	kept := checklistFor(ns, "http://checkout.invalid/health")
	kept.Name, kept.Spec.Target.Name = "kept", "elsewhere"
	kept.Finalizers = []string{"example.com/keep"}
	g.Expect(bed.Client.Create(ctx, kept)).To(Succeed())

	// The manager goes down: the gate fails closed, for gated Deployments only...
	g.Expect(mgr.Process.Signal(syscall.SIGKILL)).To(Succeed())
	_ = mgr.Wait()
	_, err = setImageOf(ns, "checkout:v4")
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("deployments.deploy.tminus.dev"))
	t.Logf("with the manager down: %v", err)
	ungated := newNamespace(t, "certs")
	g.Expect(bed.Client.Create(ctx, testbed.Deployment(ungated, "checkout", "checkout:v1", 1))).To(Succeed())
	_, err = setImageOf(ungated, "checkout:v2")
	g.Expect(err).NotTo(HaveOccurred(), "an ungated Deployment never waits for tminus")
	// ...and scaling a gated one goes through (the scale subresource, and spec.replicas).
	var cur appsv1.Deployment
	g.Expect(bed.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "checkout"}, &cur)).To(Succeed())
	g.Expect(bed.Client.SubResource("scale").Update(ctx, &cur,
		client.WithSubResourceBody(&autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 3}}))).To(Succeed())

	// Break-glass: a label change reaches no webhook; then the fix rolls out.
	g.Expect(setLabel(ns, "off")).To(Succeed())
	g.Eventually(func() error {
		var d appsv1.Deployment
		if err := bed.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "checkout"}, &d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = "checkout:v4"
		d.Spec.Paused = false
		return bed.Client.Update(ctx, &d)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	waitRolledOut(t, ns, "checkout:v4")

	// The checklist webhook fails closed too, but never blocks cleanup: a checklist can
	// be deleted, and its finalizer removed, with the manager gone; a sign-off cannot be
	// written unverified.
	err = bed.Client.Patch(ctx, kept.DeepCopy(), client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"approve.tminus.dev/deployment-lead":"alice for v2"}}}`)))
	g.Expect(err).To(MatchError(ContainSubstring("checklists.deploy.tminus.dev")))
	g.Expect(bed.Client.Delete(ctx, kept)).To(Succeed())
	g.Expect(bed.Client.Patch(ctx, kept.DeepCopy(), client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(bed.Client.Get(ctx, client.ObjectKeyFromObject(kept), &deployv1alpha1.DeploymentChecklist{}))
	}, 10*time.Second, 100*time.Millisecond).Should(BeTrue())
}
