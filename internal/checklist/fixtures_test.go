package checklist

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

type dclOption func(*deployv1alpha1.DeploymentChecklist)

// newChecklist is a small checklist: T-10m needs a deployment-lead sign-off and an
// error rate below 1 %; T+5m needs the error rate below 1 %; an error rate above 5 %
// for 2m rolls back.
func newChecklist(opts ...dclOption) *deployv1alpha1.DeploymentChecklist {
	c := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: "shop", Generation: 1},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Gate:       deployv1alpha1.GatePause,
				Interval:   "30s",
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: "http://prometheus:9090"},
				Metrics: []deployv1alpha1.MetricSpec{
					{Name: "error-rate", Query: "errors", OnNoData: deployv1alpha1.NoDataHold},
				},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead", Count: 1}},
						{Name: "errors", Metric: "error-rate", Below: new("0.01")},
					}},
					{Name: "T+5m", At: "5m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "errors", Metric: "error-rate", Below: new("0.01")},
					}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{
					{Name: "errors-5pct", Metric: "error-rate", Above: new("0.05"), For: "2m"},
				},
				Rollback: deployv1alpha1.RollbackSpec{Action: deployv1alpha1.RollbackUndo},
			},
		},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func withDeployAt(t time.Time, window string) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) {
		mt := metav1.NewTime(t)
		c.Spec.DeployAt = &mt
		c.Spec.Window = window
	}
}

func withTriggerFor(d string) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.RollbackTriggers[0].For = d }
}

func withOnNoData(p deployv1alpha1.NoDataPolicy) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Metrics[0].OnNoData = p }
}

func withGate(g deployv1alpha1.GateMode) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Gate = g }
}

func withRollbackAction(a deployv1alpha1.RollbackAction) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Rollback.Action = a }
}

func withPhaseTimeout(phase int, d string) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Phases[phase].Timeout = d }
}

// withJobCheck adds a job check "smoke" to the given phase.
func withJobCheck(phase int) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Phases[phase].Checks = append(c.Spec.Phases[phase].Checks, deployv1alpha1.CheckSpec{
			Name: "smoke", Job: &deployv1alpha1.JobCheck{},
		})
	}
}

func template(image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "checkout"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

// heldTarget is a Deployment that runs v1 and whose template was already set to v2
// while paused for the checklist.
func heldTarget() TargetState {
	return TargetState{
		Found: true, Paused: true, Generation: 2, ObservedGeneration: 2,
		Replicas: 3, UpdatedReplicas: 0, AvailableReplicas: 3, TotalReplicas: 3, Available: true,
		Template: template("checkout:v2"), TemplateHash: "hash-v2", TemplateImages: []string{"checkout:v2"}, Revision: "1",
		Settled: true, Serving: template("checkout:v1"), ServingHash: "hash-v1", ServingRevision: "1",
		ServingPodTemplateHash: "rs-v1", PodTemplateHashes: map[string]string{"hash-v1": "rs-v1"},
		HeldBy: "checklist/checkout-v2",
	}
}

// servingV1 is the Deployment running v1 with nothing new in its template, not paused.
func servingV1() TargetState {
	t := heldTarget()
	t.Paused, t.HeldBy = false, ""
	t.Template, t.TemplateHash, t.TemplateImages = template("checkout:v1"), "hash-v1", []string{"checkout:v1"}
	t.UpdatedReplicas = 3
	t.TemplateFirstRan = t0.Add(-24 * time.Hour)
	return t
}

// rolledOutTarget is the same Deployment after v2 rolled out (its ReplicaSet was
// created at the release, a minute before t0).
func rolledOutTarget() TargetState {
	t := heldTarget()
	t.Paused, t.HeldBy, t.Generation, t.ObservedGeneration = false, "", 3, 3
	t.UpdatedReplicas, t.Revision = 3, "2"
	t.Serving, t.ServingHash, t.ServingRevision = template("checkout:v2"), "hash-v2", "2"
	t.ServingPodTemplateHash = "rs-v2"
	t.PodTemplateHashes = map[string]string{"hash-v1": "rs-v1", "hash-v2": "rs-v2"}
	t.TemplateFirstRan = t0.Add(-time.Minute)
	t.ReleasedRevisions = []string{"v2"}
	return t
}

// restoredTarget is the Deployment after a rollback to v1.
func restoredTarget() TargetState {
	t := rolledOutTarget()
	t.Template, t.TemplateHash, t.TemplateImages = template("checkout:v1"), "hash-v1", []string{"checkout:v1"}
	t.Serving, t.ServingHash, t.ServingRevision, t.Revision = template("checkout:v1"), "hash-v1", "3", "3"
	t.TemplateFirstRan = t0.Add(-24 * time.Hour)
	return t
}

func approved(roles ...string) map[string][]Approval {
	m := map[string][]Approval{}
	for _, r := range roles {
		m[r] = append(m[r], Approval{Role: r, Approver: "alice", Revision: "v2"})
	}
	return m
}

func value(v float64, display string) Measurement {
	return Measurement{Kind: ResultValue, Value: v, Display: display, Query: "errors"}
}

func errorRate(v float64, display string) map[string]Measurement {
	return map[string]Measurement{"error-rate": value(v, display)}
}

var (
	noData   = map[string]Measurement{"error-rate": {Kind: ResultNoData, Display: "NaN", Query: "errors"}}
	promDown = map[string]Measurement{"error-rate": {Kind: ResultError, Message: "dial tcp 127.0.0.1:9090: connect: connection refused"}}
)

// run applies one Decide to c, as the reconciler would by patching the status.
func run(c *deployv1alpha1.DeploymentChecklist, obs Observations, now time.Time) Decision {
	d := Decide(mustWhole(c), obs, now)
	c.Status = d.Status
	return d
}

// releasedChecklist walks newChecklist to Verifying with availability at t0.
func releasedChecklist(opts ...dclOption) *deployv1alpha1.DeploymentChecklist {
	c := newChecklist(opts...)
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead")}, t0)
	return c
}

func kinds(actions []Action) []ActionKind {
	out := make([]ActionKind, 0, len(actions))
	for _, a := range actions {
		out = append(out, a.Kind)
	}
	return out
}

func reasons(events []Event) []string {
	out := make([]string, 0, len(events))
	for _, e := range events {
		out = append(out, e.Reason)
	}
	return out
}
