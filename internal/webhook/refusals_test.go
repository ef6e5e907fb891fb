package webhook_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/testbed"
)

// deploymentWriters gives, in namespace ns, eve the rights of a Deployment editor (and
// of a checklist editor: she may delete checklists) and rita the same and the verb
// unrefuse on deploymentchecklists.
func deploymentWriters(t *testing.T, ns string) (eve, rita client.Client) {
	t.Helper()
	g := NewWithT(t)
	edit := []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "update", "patch"}},
		{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"}, Verbs: []string{"get", "list", "delete"}},
	}
	unrefuse := []rbacv1.PolicyRule{edit[0], edit[1], {APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
		Verbs: []string{deployv1alpha1.UnrefuseVerb}}}
	for _, o := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployment-editor", Namespace: ns}, Rules: edit},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "release-manager", Namespace: ns}, Rules: unrefuse},
		bindingIn(ns, "eve", "deployment-editor", "eve"),
		bindingIn(ns, "rita", "release-manager", "rita"),
	} {
		g.Expect(bed.Client.Create(context.Background(), o)).To(Succeed())
	}
	return as(t, "eve"), as(t, "rita")
}

func bindingIn(ns, name, role string, users ...string) *rbacv1.RoleBinding {
	b := binding(name, role, users...)
	b.Namespace = ns
	return b
}

// refusedOn reads the Deployment's refused templates.
func refusedOn(g Gomega, d *appsv1.Deployment) []gate.Refusal {
	var cur appsv1.Deployment
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(d), &cur)).To(Succeed())
	return gate.ParseRefusals(cur.Annotations[deployv1alpha1.RefusedTemplatesAnnotation])
}

// dropRefusals removes the refused templates annotation as c, with a merge patch; image,
// when set, is written in the same patch.
func dropRefusals(c client.Client, d *appsv1.Deployment, image string) error {
	var cur appsv1.Deployment
	if err := bed.Client.Get(context.Background(), client.ObjectKeyFromObject(d), &cur); err != nil {
		return err
	}
	before := cur.DeepCopy()
	delete(cur.Annotations, deployv1alpha1.RefusedTemplatesAnnotation)
	if image != "" {
		cur.Spec.Template.Spec.Containers[0].Image = image
	}
	return c.Patch(context.Background(), &cur, client.MergeFrom(before))
}

// TestARolledBackTemplateStaysRefusedAfterItsChecklistIsDeletedUntilSomeoneMayAllowIt:
// checkout, gated by tminus only while a checklist needs it (no label in Git), releases
// v2 and tminus rolls it back. The rollback lists v2 among the Deployment's refused
// templates. The checklist is deleted (by hand, or by the history limit); Argo CD's
// self-heal then server-side-applies v2 every 100 ms for 10 s: every write is refused
// and no pod of v2 runs. Eve, who may edit Deployments but not allow a refused template
// again, removes the annotation: it is put back; she removes it and writes v2 in one
// patch: refused. Rita, who has the verb unrefuse, removes it: it stays removed, and
// v2 goes through like any template again.
func TestARolledBackTemplateStaysRefusedAfterItsChecklistIsDeletedUntilSomeoneMayAllowIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	eve, rita := deploymentWriters(t, ns)
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 3)
	g.Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	g.Eventually(func() string { return get(t, d).Labels[deployv1alpha1.GatedLabel] }, time.Minute, 100*time.Millisecond).
		Should(Equal(deployv1alpha1.GatedByChecklist))
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	verifying := waitFor(t, c, deployv1alpha1.PhaseVerifying)
	bad := verifying.Status.Targets[0].ReleasedTemplateHash
	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitRolledOut(t, d, "checkout:v1")
	refused := refusedOn(g, d)
	g.Expect(refused).To(HaveLen(1))
	g.Expect(refused[0].Hash).To(Equal(bad))
	g.Expect(refused[0].Checklist).To(Equal("checkout-v2"))

	g.Expect(eve.Delete(context.Background(), c)).To(Succeed())
	g.Eventually(func() bool {
		err := bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &deployv1alpha1.DeploymentChecklist{})
		return apierrors.IsNotFound(err)
	}, time.Minute, 100*time.Millisecond).Should(BeTrue())

	selfHeal := testbed.Deployment(ns, "checkout", "checkout:v2", 3)
	writes, refusedWrites := 0, 0
	var lastErr string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		writes++
		if err := apply(selfHeal); err != nil {
			refusedWrites++
			lastErr = err.Error()
		}
		g.Expect(podsOf(g, ns, "checkout:v2")).To(BeZero(), "after write %d", writes)
	}
	t.Logf("%d self-heal writes after the checklist was deleted, %d refused", writes, refusedWrites)
	g.Expect(refusedWrites).To(Equal(writes))
	g.Expect(lastErr).To(ContainSubstring("was rolled back by checklist checkout-v2"))
	g.Expect(lastErr).To(ContainSubstring(deployv1alpha1.RefusedTemplatesAnnotation))
	g.Expect(get(t, d).Labels[deployv1alpha1.GatedLabel]).To(Equal(deployv1alpha1.GatedByChecklist))

	// Eve may not allow it again: what she drops is put back, with or without v2.
	g.Expect(dropRefusals(eve, d, "")).To(Succeed())
	g.Expect(refusedOn(g, d)).To(Equal(refused))
	err := dropRefusals(eve, d, "checkout:v2")
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("was rolled back by checklist checkout-v2"))
	g.Expect(refusedOn(g, d)).To(Equal(refused))
	g.Expect(apply(selfHeal)).NotTo(Succeed())

	// Rita may.
	g.Expect(dropRefusals(rita, d, "")).To(Succeed())
	g.Expect(refusedOn(g, d)).To(BeEmpty())
	g.Eventually(func() error { return apply(selfHeal) }, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(get(t, d).Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v2"))
}

// TestAWriterWithoutTheRightCanNeitherDropARefusalNorPushItOutWithEntriesOfItsOwn: the
// stored Deployment refuses v2. A write (by a writer the gate may not judge: no
// authorizer, so nobody holds the verb) replaces the list with twenty entries of its
// own, past the bound: the stored entry is put back first, the writer's fill what is
// left, and v2 stays refused by the list the write stores.
func TestAWriterWithoutTheRightCanNeitherDropARefusalNorPushItOutWithEntriesOfItsOwn(t *testing.T) {
	g := NewWithT(t)
	gateNoRight := &webhook.DeploymentGate{Reader: cached, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	stored := testbed.Deployment("shop", "checkout", "checkout:v1", 3)
	v2 := testbed.Deployment("shop", "checkout", "checkout:v2", 3)
	real := gate.Refusal{Hash: gate.TemplateHash(&v2.Spec.Template), Checklist: "checkout-v2", UID: "u2", At: time.Unix(1_800_000_000, 0).UTC()}
	stored.Annotations = map[string]string{deployv1alpha1.RefusedTemplatesAnnotation: gate.FormatRefusals([]gate.Refusal{real})}
	own := make([]gate.Refusal, 0, deployv1alpha1.MaxRefusedTemplates)
	for i := range deployv1alpha1.MaxRefusedTemplates {
		own = append(own, gate.Refusal{Hash: fmt.Sprintf("%064d", i), Checklist: "mine"})
	}
	write := stored.DeepCopy()
	write.Annotations[deployv1alpha1.RefusedTemplatesAnnotation] = gate.FormatRefusals(own)

	resp := gateNoRight.Handle(context.Background(), updateRequest(t, stored, write))
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Warnings).To(ContainElement(ContainSubstring("may not allow them again")))
	var kept []gate.Refusal
	for _, op := range resp.Patches {
		if strings.HasSuffix(op.Path, "refused-templates") {
			kept = gate.ParseRefusals(op.Value.(string))
		}
	}
	g.Expect(kept).To(HaveLen(deployv1alpha1.MaxRefusedTemplates))
	g.Expect(kept[0].Hash).To(Equal(real.Hash))
	g.Expect(kept[1:]).To(Equal(own[:deployv1alpha1.MaxRefusedTemplates-1]))

	// The same write with v2 in it is refused.
	write.Spec.Template = v2.Spec.Template
	resp = gateNoRight.Handle(context.Background(), updateRequest(t, stored, write))
	g.Expect(resp.Allowed).To(BeFalse())
	g.Expect(resp.Result.Message).To(ContainSubstring("rolled back by checklist checkout-v2"))
}
