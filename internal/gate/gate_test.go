package gate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

func tmpl(image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "checkout"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func TestTemplateHashIgnoresThePodTemplateHashLabelAndTheRestartAnnotation(t *testing.T) {
	g := NewWithT(t)
	base := tmpl("checkout:v1")
	fromRS := base.DeepCopy()
	fromRS.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "5d8f7c"
	restarted := base.DeepCopy()
	restarted.Annotations = map[string]string{RestartedAtAnnotation: "2026-11-26T20:00:00Z"}
	g.Expect(TemplateHash(fromRS)).To(Equal(TemplateHash(base)))
	g.Expect(TemplateHash(restarted)).To(Equal(TemplateHash(base)))
	g.Expect(TemplateHash(tmpl("checkout:v2"))).NotTo(Equal(TemplateHash(base)))
	g.Expect(Images(tmpl("checkout:v2"))).To(Equal([]string{"checkout:v2"}))
}

// deployment is checkout with a ReplicaSet per (hash, pods) pair, all created before t0.
func deployment(hash string, paused bool, rss ...ReplicaSet) *Deployment {
	return &Deployment{Namespace: "shop", Name: "checkout", TemplateHash: hash, Images: []string{"checkout:" + hash},
		Paused: paused, ReplicaSets: rss}
}

// labelled is d labelled deploy.tminus.dev/gated=true by its owner.
func labelled(d *Deployment) *Deployment {
	d.GateLabel = deployv1alpha1.GatedByUser
	return d
}

func rs(hash string, pods int32) ReplicaSet {
	return ReplicaSet{Hash: hash, Created: t0.Add(-time.Hour), Replicas: pods}
}

func TestAdmitHoldsWhatNoChecklistReleasedAndLetsEverythingElseThrough(t *testing.T) {
	serving := []ReplicaSet{rs("v0", 0), rs("v1", 3)}
	holding := Checklist{Name: "checkout-v2", Created: t0, Phase: deployv1alpha1.PhaseRunning, Captured: true, PreDeployHash: "v1"}
	awaiting := Checklist{Name: "checkout-v2", Created: t0, Phase: deployv1alpha1.PhaseHolding, Captured: true, PreDeployHash: "v1", T0: true}
	verifying := Checklist{Name: "checkout-v2", Created: t0, Phase: deployv1alpha1.PhaseVerifying, Captured: true, PreDeployHash: "v1",
		T0: true, CandidateHash: "v2", ReleasedHash: "v2", ReleasedImages: []string{"checkout:v2"}}
	rolledBack := Checklist{Name: "checkout-v2", Created: t0, Phase: deployv1alpha1.PhaseRolledBack, Captured: true, PreDeployHash: "v1",
		ReleasedHash: "v2", RolledBackHash: "v2", RolledBackAt: t0, RollbackMessage: "rollback trigger errors fired: 0.07 > 0.05"}
	// The frontend of a release of two: the backend was released at T-0, the frontend
	// had no new template then and was not released.
	unchangedAtT0 := awaiting
	unchangedAtT0.Phase = deployv1alpha1.PhaseVerifying
	observe := holding
	observe.Observe = true
	// What a replica's cache may still show of the checklist that has just rolled v2
	// back, and the Deployment as the rollback left it (v1 restored, marked).
	verifyingAsCached := verifying
	verifyingAsCached.UID = "uid-2"
	restored := deployment("v1", false, rs("v1", 3), rs("v2", 0))
	restored.RolledBack = RolledBack{Checklist: "checkout-v2", UID: "uid-2", Hash: "v2"}
	recreated := verifyingAsCached
	recreated.UID = "uid-3"
	restoring := rolledBack
	restoring.RestoreHash = "v1"

	cases := []struct {
		name       string
		old, cur   *Deployment
		checklists []Checklist
		hold, deny string // substrings; both empty: admitted untouched
	}{
		{"a new template with no checklist is held in the same write",
			deployment("v1", false, serving...), deployment("v2", false, serving...), nil, "released by no checklist", ""},
		{"a new Deployment with no checklist is held",
			nil, deployment("v1", false), nil, "released by no checklist", ""},
		{"a new template while two versions serve is refused, not frozen",
			deployment("v1", false, rs("v0", 1), rs("v1", 2)), deployment("v2", false, rs("v0", 1), rs("v1", 2)), nil, "", "is rolling out"},
		{"going back to a template the Deployment ran (rollout undo) passes",
			deployment("v1", false, serving...), deployment("v0", false, serving...), nil, "", ""},
		{"rollout undo passes even mid-rollout",
			deployment("v1", false, rs("v0", 1), rs("v1", 2)), deployment("v0", false, rs("v0", 1), rs("v1", 2)), nil, "", ""},
		{"a restart or a scale (same template) passes",
			deployment("v1", false, serving...), deployment("v1", false, serving...), nil, "", ""},
		{"before T-0 the held Deployment takes a new template, still paused",
			deployment("v2", true, serving...), deployment("v3", true, serving...), []Checklist{holding}, "", ""},
		{"before T-0 a resume is turned back into a pause",
			deployment("v2", true, serving...), deployment("v2", false, serving...), []Checklist{holding}, "until T-0", ""},
		{"past T-0 waiting for a template, the new one is released at once",
			deployment("v1", false, serving...), deployment("v2", false, serving...), []Checklist{awaiting}, "", ""},
		{"a target that did not change at T-0 holds a template arriving after its release's T-0 (Together)",
			deployment("v1", false, serving...), deployment("v2", false, serving...), []Checklist{unchangedAtT0},
			"released by no checklist", ""},
		{"the release of the released template passes",
			deployment("v2", true, serving...), deployment("v2", false, serving...), []Checklist{verifying}, "", ""},
		{"a change during verification is held, naming the checklist",
			deployment("v2", false, rs("v1", 0), rs("v2", 3)), deployment("v3", false, rs("v1", 0), rs("v2", 3)), []Checklist{verifying},
			"while checklist checkout-v2 verifies its release (checkout:v2)", ""},
		{"a resume of a held change is turned back into a pause",
			deployment("v3", true, serving...), deployment("v3", false, serving...), nil, "released by no checklist", ""},
		{"a rolled-back template is refused, naming the checklist and the way forward",
			deployment("v1", false, rs("v1", 3), rs("v2", 0)), deployment("v2", false, rs("v1", 3), rs("v2", 0)), []Checklist{rolledBack},
			"", "rolled back by checklist checkout-v2"},
		{"the template the Deployment is marked as rolled back is refused while the cache still shows the checklist verifying",
			restored, deployment("v2", false, rs("v1", 3), rs("v2", 0)), []Checklist{verifyingAsCached},
			"", "rolled back by checklist checkout-v2"},
		{"the mark of a checklist that no longer exists refuses nothing",
			restored, deployment("v2", false, rs("v1", 3), rs("v2", 0)), []Checklist{recreated}, "", ""},
		{"gate Observe holds nothing",
			deployment("v1", false, serving...), deployment("v2", false, serving...), []Checklist{observe}, "", ""},
		{"gate Observe does not switch off the gate of a Deployment its owner labelled gated=true",
			labelled(deployment("v1", false, serving...)), labelled(deployment("v2", false, serving...)), []Checklist{observe},
			"released by no checklist", ""},
		{"gate Observe does not resume a held change",
			deployment("v3", true, serving...), deployment("v3", false, serving...), []Checklist{observe}, "released by no checklist", ""},
		{"gate Observe does not let a new template out of a held Deployment in the same write",
			deployment("v3", true, serving...), deployment("v4", false, serving...), []Checklist{observe}, "released by no checklist", ""},
		{"the restore of a rolled-back checklist's pre-deploy template passes, its ReplicaSet cleaned up",
			deployment("v2", false, rs("v2", 3)), deployment("v1", false, rs("v2", 3)), []Checklist{restoring}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			v := Admit(tc.old, tc.cur, tc.checklists)
			if tc.hold == "" {
				g.Expect(v.Hold).To(BeEmpty())
			} else {
				g.Expect(v.Hold).To(ContainSubstring(tc.hold))
				g.Expect(v.HeldBy).NotTo(BeEmpty())
			}
			if tc.deny == "" {
				g.Expect(v.Deny).To(BeEmpty())
			} else {
				g.Expect(v.Deny).To(ContainSubstring(tc.deny))
			}
		})
	}
}

func TestARefusalSaysHowToGoOn(t *testing.T) {
	g := NewWithT(t)
	rb := Checklist{Name: "checkout-v2", Phase: deployv1alpha1.PhaseRolledBack, RolledBackHash: "v2", RolledBackAt: t0,
		RollbackMessage: "rollback trigger errors fired: 0.07 > 0.05"}
	v := Admit(deployment("v1", false, rs("v2", 0)), deployment("v2", false, rs("v2", 0)), []Checklist{rb})
	for _, s := range []string{"shop/checkout", "checkout:v2", "2026-11-26T20:00:00Z", "0.07 > 0.05",
		"commit a new revision", "the verb unrefuse", "deletes the checklist that rolled it back"} {
		g.Expect(v.Deny).To(ContainSubstring(s))
	}
}

func TestATemplateListedAsRefusedIsRefusedWithoutItsChecklist(t *testing.T) {
	g := NewWithT(t)
	refused := []Refusal{{Hash: "v2", Checklist: "checkout-v2", UID: "u1", At: t0}}
	stored := deployment("v1", false, rs("v1", 3))
	stored.Refused = refused
	write := deployment("v2", false, rs("v1", 3))
	write.Refused = refused
	v := Admit(stored, write, nil)
	for _, s := range []string{"checkout:v2", "checkout-v2", "2026-11-26T20:00:00Z", deployv1alpha1.RefusedTemplatesAnnotation, "the verb unrefuse"} {
		g.Expect(v.Deny).To(ContainSubstring(s))
	}
	// A write dropping the list in the same write is judged on the stored one.
	write.Refused = nil
	g.Expect(Admit(stored, write, nil).Deny).To(ContainSubstring("checkout-v2"))
	// Another template is not refused by it.
	other := deployment("v3", false, rs("v1", 3))
	other.Refused = refused
	g.Expect(Admit(stored, other, nil).Deny).To(BeEmpty())
}

func TestTheRefusedTemplatesAreBoundedNewestFirstAndWrittenOnce(t *testing.T) {
	g := NewWithT(t)
	var rs []Refusal
	for i := range deployv1alpha1.MaxRefusedTemplates + 3 {
		rs = AddRefusal(rs, Refusal{Hash: fmt.Sprintf("h%02d", i), Checklist: "c", At: t0.Add(time.Duration(i) * time.Minute)})
	}
	g.Expect(rs).To(HaveLen(deployv1alpha1.MaxRefusedTemplates))
	g.Expect(rs[0].Hash).To(Equal(fmt.Sprintf("h%02d", deployv1alpha1.MaxRefusedTemplates+2)))
	g.Expect(RefusedIn(rs, "h00")).To(BeNil())
	again := AddRefusal(rs, Refusal{Hash: rs[3].Hash, Checklist: "other", At: t0.Add(time.Hour)})
	g.Expect(again).To(Equal(rs))
	g.Expect(ParseRefusals(FormatRefusals(rs))).To(Equal(rs))
	g.Expect(ParseRefusals("not json")).To(BeEmpty())
	g.Expect(Dropped(rs, rs[1:])).To(Equal(rs[:1]))
}

func TestTheActiveChecklistIsTheReleasingOneThenTheOldest(t *testing.T) {
	g := NewWithT(t)
	older := Checklist{Name: "b", Created: t0, Phase: deployv1alpha1.PhaseRunning}
	newer := Checklist{Name: "a", Created: t0.Add(time.Second), Phase: ""}
	done := Checklist{Name: "c", Created: t0.Add(-time.Hour), Phase: deployv1alpha1.PhaseSucceeded}
	g.Expect(Active([]Checklist{newer, done, older}).Name).To(Equal("b"))
	g.Expect(Blocker([]Checklist{newer, done, older}, "a")).To(Equal("b"))
	g.Expect(Blocker([]Checklist{newer, done, older}, "b")).To(BeEmpty())
	// A checklist past T-0 comes first whatever its age: it is releasing.
	releasing := Checklist{Name: "z", Created: t0.Add(time.Hour), Phase: deployv1alpha1.PhaseVerifying}
	g.Expect(Blocker([]Checklist{older, releasing}, "b")).To(Equal("z"))
	// Same creation second: by name.
	twin := Checklist{Name: "a", Created: t0, Phase: deployv1alpha1.PhaseRunning}
	g.Expect(Active([]Checklist{older, twin}).Name).To(Equal("a"))
	g.Expect(Active([]Checklist{done})).To(BeNil())
}

func TestTheMarkStaysWhileAChecklistIsLiveOrGuardsARollback(t *testing.T) {
	g := NewWithT(t)
	g.Expect(WantsMark(nil)).To(BeFalse())
	g.Expect(WantsMark([]Checklist{{Phase: deployv1alpha1.PhaseRunning}})).To(BeTrue())
	g.Expect(WantsMark([]Checklist{{Phase: deployv1alpha1.PhaseRunning, Observe: true}})).To(BeFalse())
	g.Expect(WantsMark([]Checklist{{Phase: deployv1alpha1.PhaseSucceeded}})).To(BeFalse())
	g.Expect(WantsMark([]Checklist{{Phase: deployv1alpha1.PhaseRolledBack, RolledBackHash: "v2"}})).To(BeTrue())
}

func TestTminusTakesItsPauseOffOnlyWhenNothingHoldsIt(t *testing.T) {
	g := NewWithT(t)
	held := func(hash, by string, rss ...ReplicaSet) *Deployment {
		d := deployment(hash, true, rss...)
		d.HeldBy = by
		return d
	}
	live := Checklist{Name: "x", Phase: deployv1alpha1.PhaseRunning, Captured: true}
	g.Expect(ShouldResume(held("v1", "checklist/x", rs("v1", 3)), nil)).To(BeTrue(), "the checklist is gone, v1 ran")
	g.Expect(ShouldResume(held("v2", "checklist/x", rs("v1", 3)), nil)).To(BeFalse(), "v2 was released by nothing")
	g.Expect(ShouldResume(held("v1", "checklist/x", rs("v1", 3)), []Checklist{live})).To(BeFalse(), "a live checklist decides")
	g.Expect(ShouldResume(held("v1", "", rs("v1", 3)), nil)).To(BeFalse(), "someone else's pause")
	g.Expect(ShouldResume(held("v1", "admission", rs("v1", 3)), nil)).To(BeTrue(), "reverted in Git to what ran")
}

func TestHoldReasonsFitAnAnnotationAndNameTheImages(t *testing.T) {
	g := NewWithT(t)
	v := Admit(deployment("v1", false, rs("v1", 3)), deployment("v2", false, rs("v1", 3)), nil)
	g.Expect(v.Hold).To(ContainSubstring("checkout:v2"))
	g.Expect(strings.Contains(v.Hold, "\n")).To(BeFalse())
}

// TestTheResolvedGateIsDecodedOncePerChecklistVersion: every admission reads every
// checklist of the Deployment; the gate of a templated one is read from its resolved
// body once per resourceVersion, not once per admission.
func TestTheResolvedGateIsDecodedOncePerChecklistVersion(t *testing.T) {
	g := NewWithT(t)
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: "shop", UID: "uid-decoded-once", ResourceVersion: "7"},
		Spec:       deployv1alpha1.DeploymentChecklistSpec{TemplateRef: &deployv1alpha1.TemplateRef{Name: "standard"}},
	}
	dcl.Status.Resolved = &runtime.RawExtension{Raw: []byte(`{"gate":"Observe","phases":[]}`)}
	g.Expect(FromChecklist(dcl).Observe).To(BeTrue())
	// The same version read again is not decoded again (a stored version never changes;
	// the body is changed here only to see whether it is read).
	dcl.Status.Resolved.Raw = []byte(`{"gate":"Pause"}`)
	g.Expect(FromChecklist(dcl).Observe).To(BeTrue())
	// A new version is.
	dcl.ResourceVersion = "8"
	g.Expect(FromChecklist(dcl).Observe).To(BeFalse())
}

func TestATemplateIsIdentifiedByTheWholeDigest(t *testing.T) {
	g := NewWithT(t)
	h := TemplateHash(tmpl("checkout:v1"))
	g.Expect(h).To(MatchRegexp(`^[0-9a-f]{64}$`), "SHA-256, all of it")
}

// TestAHashStoredBeforeTheUpgradeStillNamesItsTemplate: a release in flight across the
// upgrade stored 16 hex digits (the digest's first 8 bytes); they still name the
// template, and nothing else.
func TestAHashStoredBeforeTheUpgradeStillNamesItsTemplate(t *testing.T) {
	g := NewWithT(t)
	v1, v2 := TemplateHash(tmpl("checkout:v1")), TemplateHash(tmpl("checkout:v2"))
	legacy := v2[:16]
	g.Expect(SameTemplate(legacy, v2)).To(BeTrue())
	g.Expect(SameTemplate(v2, legacy)).To(BeTrue())
	g.Expect(SameTemplate(legacy, v1)).To(BeFalse())
	g.Expect(SameTemplate("", v1)).To(BeFalse(), "empty names nothing")
	g.Expect(SameTemplate(v2[:8], v2)).To(BeFalse(), "only the length earlier versions stored")

	// A template rolled back before the upgrade stays refused...
	rb := Checklist{Name: "checkout-v2", Phase: deployv1alpha1.PhaseRolledBack, RolledBackHash: legacy, RolledBackAt: t0}
	g.Expect(Admit(deployment(v1, false, rs(v1, 3)), deployment(v2, false, rs(v1, 3)), []Checklist{rb}).Deny).To(ContainSubstring("rolled back"))
	// ...and a change held before it stays held (it had started to roll: without the
	// admission gate, tminus holds after the fact).
	held := deployment(v2, true, rs(v1, 3), rs(v2, 1))
	held.HeldBy, held.HeldTemplate = deployv1alpha1.HeldByAdmission, legacy
	g.Expect(ShouldResume(held, nil)).To(BeFalse())
}

// TestATargetWaitingItsTurnInASequentialReleaseIsStoredPaused: the backend of a
// Sequential release rolls out; the frontend, after it in spec.targets, waits. A new
// template written on the frontend, or a resume of it, is stored paused; once the
// checklist released the frontend, its resume goes through.
func TestATargetWaitingItsTurnInASequentialReleaseIsStoredPaused(t *testing.T) {
	g := NewWithT(t)
	dcl := sequentialShop()
	now := metav1.NewTime(t0)
	dcl.Status.Phase = deployv1alpha1.PhaseDeploying
	dcl.Status.Releasing = "backend"
	dcl.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{
		{Kind: "Deployment", Name: "backend", TargetStatus: deployv1alpha1.TargetStatus{CapturedAt: &now, T0At: &now,
			PreDeployTemplateHash: "b1", CandidateTemplateHash: "b2", ReleasedTemplateHash: "b2", ReleasedAt: &now}},
		{Kind: "Deployment", Name: "checkout", TargetStatus: deployv1alpha1.TargetStatus{CapturedAt: &now, T0At: &now,
			PreDeployTemplateHash: "v1"}},
	}
	waiting := FromChecklistFor(dcl, "checkout")
	g.Expect(waiting.WaitingTurn).To(BeTrue())
	g.Expect(FromChecklistFor(dcl, "backend").WaitingTurn).To(BeFalse(), "the backend is releasing")
	serving := []ReplicaSet{rs("v1", 3)}

	v := Admit(deployment("v1", true, serving...), deployment("v2", false, serving...), []Checklist{waiting})
	g.Expect(v.Deny).To(BeEmpty())
	g.Expect(v.Hold).To(ContainSubstring("until its turn"), "a new template arriving while it waits")
	g.Expect(v.HeldBy).To(Equal(deployv1alpha1.HeldByChecklist("shop-v2")))
	v = Admit(deployment("v2", true, serving...), deployment("v2", false, serving...), []Checklist{waiting})
	g.Expect(v.Hold).NotTo(BeEmpty(), "a resume of the held template")

	// Its turn: the checklist released the frontend's candidate.
	dcl.Status.Releasing = "checkout"
	dcl.Status.Targets[1].CandidateTemplateHash, dcl.Status.Targets[1].ReleasedTemplateHash = "v2", "v2"
	released := FromChecklistFor(dcl, "checkout")
	g.Expect(released.WaitingTurn).To(BeFalse())
	g.Expect(Admit(deployment("v2", true, serving...), deployment("v2", false, serving...), []Checklist{released})).To(Equal(Verdict{}))

	// A third target passed over at its turn (no new template then) holds a template
	// that arrives afterwards: the release did not take it.
	dcl.Spec.Targets = append(dcl.Spec.Targets, deployv1alpha1.TargetRef{Kind: "Deployment", Name: "search"})
	dcl.Status.Targets = append(dcl.Status.Targets, deployv1alpha1.ReleaseTargetStatus{Kind: "Deployment", Name: "search",
		TargetStatus: deployv1alpha1.TargetStatus{CapturedAt: &now, T0At: &now, PreDeployTemplateHash: "s1"}})
	dcl.Status.Releasing = ""
	passedOver := FromChecklistFor(dcl, "search")
	g.Expect(passedOver.WaitingTurn).To(BeFalse())
	searchServing := []ReplicaSet{rs("s1", 2)}
	v = Admit(deployment("s1", false, searchServing...), deployment("s2", false, searchServing...), []Checklist{passedOver})
	g.Expect(v.Deny).To(BeEmpty())
	g.Expect(v.Hold).To(ContainSubstring("released by no checklist"))
}

// TestPastT0WithNothingReleasedOnlyTheFirstTargetOfASequentialReleaseTakesAnArrivingTemplate:
// a Sequential release (backend, then checkout) whose sign-offs came first is past T-0,
// waiting for its templates. One GitOps sync brings both images: the backend's is its
// release, admitted as it arrives; the frontend's is stored paused until its turn, so it
// cannot roll beside the backend's and be left running by a backend breach.
func TestPastT0WithNothingReleasedOnlyTheFirstTargetOfASequentialReleaseTakesAnArrivingTemplate(t *testing.T) {
	g := NewWithT(t)
	dcl := sequentialShop()
	now := metav1.NewTime(t0)
	dcl.Status.Phase = deployv1alpha1.PhaseHolding
	dcl.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{
		{Kind: "Deployment", Name: "backend", TargetStatus: deployv1alpha1.TargetStatus{CapturedAt: &now, T0At: &now, PreDeployTemplateHash: "b1"}},
		{Kind: "Deployment", Name: "checkout", TargetStatus: deployv1alpha1.TargetStatus{CapturedAt: &now, T0At: &now, PreDeployTemplateHash: "v1"}},
	}
	backend, frontend := FromChecklistFor(dcl, "backend"), FromChecklistFor(dcl, "checkout")
	g.Expect(AwaitsTemplate([]Checklist{backend})).To(BeTrue())
	g.Expect(Admit(deployment("b1", false, rs("b1", 3)), deployment("b2", false, rs("b1", 3)), []Checklist{backend})).To(Equal(Verdict{}),
		"the first target's template is its release")
	v := Admit(deployment("v1", false, rs("v1", 3)), deployment("v2", false, rs("v1", 3)), []Checklist{frontend})
	g.Expect(v.Hold).To(ContainSubstring("until its turn"))
	g.Expect(v.HeldBy).To(Equal(deployv1alpha1.HeldByChecklist("shop-v2")))

	// Together, both are the release.
	dcl.Spec.Release = nil
	g.Expect(Admit(deployment("v1", false, rs("v1", 3)), deployment("v2", false, rs("v1", 3)),
		[]Checklist{FromChecklistFor(dcl, "checkout")})).To(Equal(Verdict{}))
}

// sequentialShop is release shop-v2 of the backend, then checkout (release order
// Sequential), with no status yet.
func sequentialShop() *deployv1alpha1.DeploymentChecklist {
	dcl := &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Name: "shop-v2", Namespace: "shop"}}
	dcl.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "backend"}, {Kind: "Deployment", Name: "checkout"}}
	dcl.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: deployv1alpha1.ReleaseSequential}
	return dcl
}
