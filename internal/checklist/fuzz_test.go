package checklist

import (
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// FuzzParseThreshold: a threshold either parses to the finite number strconv reads, or
// is refused; it never panics.
func FuzzParseThreshold(f *testing.F) {
	for _, s := range []string{"0.01", "5", "-1e-3", "1e309", "NaN", "+Inf", "0x1p-2", "", " 1", "1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseThreshold(s)
		if err != nil {
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("%q parsed to a non-finite %v", s, v)
		}
		if w, err := strconv.ParseFloat(s, 64); err != nil || w != v {
			t.Fatalf("%q parsed to %v, strconv says %v (%v)", s, v, w, err)
		}
	})
}

// FuzzPlanDurations: whatever strings reach `at`, `timeout`, `interval`, `window` and
// `for` (objects stored before a validation rule, or a rule's gap), planning never
// panics, and a plan it accepts has positive durations.
func FuzzPlanDurations(f *testing.F) {
	f.Add("-60m", "10m", "30s", "30m", "2m")
	f.Add("0", "", "", "", "")
	f.Add("+5m", "-1s", "0s", "1h", "-2m")
	f.Add("9223372036854775807ns", "1.5h", "1e3s", "µs", "1h1h1h")
	f.Fuzz(func(t *testing.T, at, timeout, interval, window, forDur string) {
		c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].At, c.Spec.Phases[0].Timeout = at, timeout
			c.Spec.Interval, c.Spec.Window = interval, window
			c.Spec.RollbackTriggers[0].For = forDur
		})
		p, err := parsePlan(&c.Spec)
		if err != nil {
			// Decide must report it, not panic.
			d := Decide(mustWhole(c), Observations{Targets: []TargetState{heldTarget()}}, t0)
			if d.Status.Conditions == nil || len(d.Actions) != 0 {
				t.Fatalf("invalid spec %v: decided %+v", err, d)
			}
			return
		}
		if p.interval <= 0 || p.window <= 0 {
			t.Fatalf("accepted non-positive durations: %+v", p)
		}
		for _, d := range p.triggerFor {
			if d <= 0 {
				t.Fatalf("accepted non-positive for %v", d)
			}
		}
		NeedsFor(c, t0)
		Decide(mustWhole(c), Observations{Targets: []TargetState{heldTarget()}}, t0)
	})
}

// FuzzDecide drives a checklist through a sequence of observations chosen by the fuzzer
// and checks the engine's invariants at every step: it never panics; it never releases
// before every T-minus phase passed; it never rolls back twice nor restores after the
// restore was seen; and a measurement error never passes a check.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
	f.Add([]byte{3, 0, 3, 0, 200, 17, 44, 1, 7, 7, 7, 2, 2, 5, 5})
	f.Fuzz(func(t *testing.T, steps []byte) {
		if len(steps) > 64 {
			steps = steps[:64]
		}
		c := newChecklist(withJobCheck(0), withTriggerFor("1m"))
		now := t0
		var firedAt *time.Time
		restoredSeen := false
		for i, b := range steps {
			obs := fuzzObservations(b, c.Status.Phase)
			before := c.Status.DeepCopy()
			d := run(c, obs, now)
			now = now.Add(time.Duration(1+int(b)) * 7 * time.Second)

			if c.Status.Phase == deployv1alpha1.PhaseDeploying && before.Phase != deployv1alpha1.PhaseDeploying {
				for _, ph := range c.Status.Phases[:1] {
					if ph.State != deployv1alpha1.PhaseStatePassed {
						t.Fatalf("step %d: released while %s is %s", i, ph.Name, ph.State)
					}
				}
			}
			if rb := c.Status.Rollback; rb != nil {
				if firedAt != nil && !rb.FiredAt.Time.Equal(*firedAt) {
					t.Fatalf("step %d: a second rollback fired at %v after %v", i, rb.FiredAt, *firedAt)
				}
				ft := rb.FiredAt.Time
				firedAt = &ft
			}
			for _, a := range d.Actions {
				if a.Kind == ActionRestore && restoredSeen {
					t.Fatalf("step %d: restore after the restore was seen done", i)
				}
			}
			if len(c.Status.Targets) > 0 && c.Status.Targets[0].RestoredAt != nil {
				restoredSeen = true
			}
			checkReleaseInvariants(t, i, c, obs, d)
			if obs.Metrics["error-rate"].Kind == ResultError {
				for _, ph := range c.Status.Phases {
					for _, ch := range ph.Checks {
						if ch.Kind == KindMetric && ch.LastEvaluated != nil && ch.LastEvaluated.Time.Equal(now.Add(-time.Duration(1+int(b))*7*time.Second).Truncate(time.Second)) &&
							ch.Outcome == deployv1alpha1.OutcomePass {
							t.Fatalf("step %d: %s/%s passed on a measurement error", i, ph.Name, ch.Name)
						}
					}
				}
			}
		}
	})
}

// checkReleaseInvariants: a checklist never deploys, verifies or succeeds on a template
// it did not release (nor on the pre-deploy one); it ends Succeeded only while its
// release serves; and once ended it never holds the target for itself and always takes
// its own pause off, unless the pause holds a change nothing released.
func checkReleaseInvariants(t *testing.T, step int, c *deployv1alpha1.DeploymentChecklist, obs Observations, d Decision) {
	t.Helper()
	st := c.Status
	stt := c.TargetStatusOf(c.Spec.ShardTarget())
	if released(st.Phase) {
		if stt == nil || stt.ReleasedTemplateHash == "" || stt.ReleasedTemplateHash == stt.PreDeployTemplateHash {
			t.Fatalf("step %d: %s without a released template of its own: %+v", step, st.Phase, stt)
		}
	}
	if st.Phase == deployv1alpha1.PhaseSucceeded && obs.Targets[0].Found && obs.Targets[0].ServingHash != stt.ReleasedTemplateHash &&
		d.Events != nil && slices.Contains(reasons(d.Events), ReasonSucceeded) {
		t.Fatalf("step %d: Succeeded while %s serves, not the release %s", step, obs.Targets[0].ServingHash, stt.ReleasedTemplateHash)
	}
	if !terminal(st.Phase) {
		return
	}
	tgt := obs.Targets[0]
	mine := tgt.Paused && tgt.HeldBy == "checklist/"+c.Name
	for _, a := range d.Actions {
		if a.Kind == ActionHold && a.HeldBy != deployv1alpha1.HeldByAdmission {
			t.Fatalf("step %d: ended %s but holds the target for itself", step, st.Phase)
		}
	}
	restoring := st.Phase == deployv1alpha1.PhaseRolledBack && st.Rollback != nil && !st.Rollback.DryRun
	unreleased := (tgt.TemplateFirstRan.IsZero() || tgt.TemplateHash == stt.HeldTemplateHash) &&
		tgt.TemplateHash != stt.ReleasedTemplateHash && tgt.TemplateHash != stt.PreDeployTemplateHash
	if mine && !restoring {
		want := ActionResume
		if unreleased {
			want = ActionHold
		}
		if !slices.Contains(kinds(d.Actions), want) {
			t.Fatalf("step %d: ended %s with tminus's pause on (template %s, unreleased %v) and no %s", step, st.Phase,
				tgt.TemplateHash, unreleased, want)
		}
	}
}

// fuzzObservations turns one fuzzer byte into what a reconcile could observe: the error
// rate (good, breaching, erroring, no data), the sign-off, the Job, and the target in
// the states GitOps leaves it in.
func fuzzObservations(b byte, phase deployv1alpha1.ChecklistPhase) Observations {
	obs := Observations{Targets: []TargetState{heldTarget()}, Jobs: map[string]JobState{}}
	switch b % 4 {
	case 0:
		obs.Metrics = errorRate(0.001, "0.001")
	case 1:
		obs.Metrics = errorRate(0.07, "0.07")
	case 2:
		obs.Metrics = promDown
	case 3:
		obs.Metrics = noData
	}
	if b&4 != 0 {
		obs.Approvals = approved("deployment-lead")
	}
	switch (b >> 3) % 4 {
	case 1:
		obs.Jobs["T-10m/smoke"] = JobState{Exists: true}
	case 2:
		obs.Jobs["T-10m/smoke"] = JobState{Exists: true, Succeeded: true}
	case 3:
		obs.Jobs["T-10m/smoke"] = JobState{Exists: true, Failed: true, Message: "BackoffLimitExceeded"}
	}
	v3 := func(t TargetState, heldBy string, ran bool) TargetState {
		t.Template, t.TemplateHash, t.TemplateImages = template("checkout:v3"), "hash-v3", []string{"checkout:v3"}
		t.Paused, t.HeldBy, t.TemplateFirstRan = heldBy != "", heldBy, time.Time{}
		if ran {
			t.TemplateFirstRan = t0.Add(time.Hour)
		}
		return t
	}
	mine := "checklist/checkout-v2"
	if released(phase) || terminal(phase) {
		switch (b >> 5) % 6 {
		case 0:
			obs.Targets = []TargetState{rolledOutTarget()}
		case 1:
			obs.Targets = []TargetState{restoredTarget()}
		case 2:
			obs.Targets = []TargetState{{}}
		case 3:
			obs.Targets = []TargetState{v3(rolledOutTarget(), deployv1alpha1.HeldByAdmission, false)}
		case 4:
			obs.Targets = []TargetState{v3(rolledOutTarget(), "", true)}
		case 5:
			obs.Targets = []TargetState{v3(rolledOutTarget(), mine, b&1 != 0)}
		}
		return obs
	}
	switch (b >> 5) % 4 {
	case 1:
		obs.Targets = []TargetState{servingV1()}
	case 2:
		obs.Targets = []TargetState{servingV1()}
		obs.Targets[0].Paused, obs.Targets[0].HeldBy = true, mine
	case 3:
		obs.Targets = []TargetState{v3(heldTarget(), mine, false)}
	}
	return obs
}
