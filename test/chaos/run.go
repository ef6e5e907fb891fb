package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/test/testbed"
)

const (
	// approver holds the approve right; nonApprover does not.
	approver, nonApprover = "alice", "mallory"
	noChecklist           = "no checklist"
	deploymentName        = "app"
	// fieldOwner is the GitOps tool's field manager for its server-side applies.
	fieldOwner = "chaos-gitops"
	role       = "deployment-lead"
)

var runCounter atomic.Int64

// action is what the run did for one event, and what the API server answered.
type action struct {
	Index int
	Event Event
	At    time.Time
	// Changes says the event may change what the Deployment serves.
	Err error
	// Note says what the event acted on (the checklist, the image).
	Note string
}

// Result is how one run ended.
type Result struct {
	// Gen is the generation of the generator Events were drawn with.
	Gen    int
	Seed   uint64
	Events []Event
	// Kept are the indexes of Events that were run (all of them, but for a
	// minimization's trial).
	Kept []int
	// Checks counts invariant evaluations.
	Checks    int
	Violation *Violation
	Namespace string
	Elapsed   time.Duration
	// Report, for a failed run: the events, the invariant broken and the objects'
	// history.
	Report string
	// Err is a run that could not be carried out (the harness's own trouble, not an
	// invariant): setup failed.
	Err error
}

// run is one seed's run in its own namespace.
type run struct {
	w      *World
	gen    int
	seed   uint64
	events []Event
	kept   []int
	ns     string
	start  time.Time

	// images pushed so far, the first being what served before the Deployment was gated.
	images []string
	// checklists created, oldest first; deleted ones are left out of "the newest".
	checklists []runChecklist
	// freezes created, oldest first.
	freezes []runFreeze
	// templateEdits counts the edits of the namespace's ChecklistTemplate.
	templateEdits int
	// receiverDown are the times the run's receiver answered 503 (each end as planned).
	receiverDown []outage
	actions      []action
	faults       sync.WaitGroup
	inv          invariantState
}

type runChecklist struct {
	name, revision string
	deleted        bool
	// edits counts the edits made to it.
	edits int
}

// runFreeze is a freeze the run created: its one window, and when it was deleted (the
// moment the delete was sent; zero while it exists).
type runFreeze struct {
	name       string
	start, end time.Time
	deleted    time.Time
}

const (
	// exceptionRole is the freezes' exception role: one sign-off of it, with a
	// reason, breaks the glass.
	exceptionRole = "release-manager"
	// freezeLead is how long before its window opens a freeze is created, so the
	// managers know it when it starts (the window opens on a whole second, as stored).
	freezeLead = 4 * time.Second
)

// errorsMetric is the checklists' one metric: the error rate of what serves.
const errorsMetric = "errors"

// Run runs events (the subset kept, all when kept is nil; drawn from seed by the
// generator's generation gen) in a namespace of its own and checks the invariants
// after every step and at the end. It returns once the run's own faults are over.
func (w *World) Run(ctx context.Context, gen int, seed uint64, events []Event, kept []int) Result {
	if kept == nil {
		for i := range events {
			kept = append(kept, i)
		}
	}
	r := &run{w: w, gen: gen, seed: seed, events: events, kept: kept,
		ns: fmt.Sprintf("%s%d-%d", namespacePrefix, seed, runCounter.Add(1)), start: time.Now()}
	res := Result{Gen: gen, Seed: seed, Events: events, Kept: kept, Namespace: r.ns}
	if err := r.setup(ctx); err != nil {
		res.Err = fmt.Errorf("seed %d: setting up %s: %w", seed, r.ns, err)
		res.Elapsed = time.Since(r.start)
		return res
	}
	for _, i := range kept {
		e := events[i]
		r.apply(ctx, i, e)
		time.Sleep(e.Pause)
		v, _ := r.check()
		res.Checks += checksPerRound
		if v != nil {
			res.Violation = v
			break
		}
	}
	// The end: the run's own faults are over (a failed run too: none of them acts on
	// the world after Run returns); every obligation still open (a restore due, a pause
	// that must come off) gets its deadline.
	r.faults.Wait()
	if res.Violation == nil {
		settled, deadline := time.Now().Add(settleMin), time.Now().Add(settleLimit)
		for {
			v, pending := r.check()
			res.Checks += checksPerRound
			if v != nil {
				res.Violation = v
				break
			}
			if now := time.Now(); now.After(settled) && (pending.IsZero() || now.After(pending)) || now.After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
	}
	res.Elapsed = time.Since(r.start)
	res.Report = r.report(res.Violation)
	if res.Violation != nil {
		return res
	}
	_ = w.Bed.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.ns}})
	w.rec.forget(r.ns)
	return res
}

// setup makes the namespace and the Deployment, lets its first version roll out
// ungated, then gates it (the label a user commits in Git).
func (r *run) setup(ctx context.Context) error {
	c := r.w.Bed.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.ns}}); err != nil {
		return err
	}
	first := r.deployment("app:v0-good", false)
	replicas := int32(2)
	first.Spec.Replicas = &replicas
	if err := c.Create(ctx, first); err != nil {
		return err
	}
	var d appsv1.Deployment
	if err := poll(ctx, 2*time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: deploymentName}, &d); err != nil {
			return err
		}
		return testbed.RolledOut(&d, "app:v0-good")
	}); err != nil {
		return err
	}
	r.images = append(r.images, "app:v0-good")
	// Through the webhooks, which another run's fault may keep unreachable for a while.
	for _, obj := range []client.Object{r.template(false), &deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "chaos"},
		Spec: deployv1alpha1.NotificationPolicySpec{Receivers: []deployv1alpha1.NotificationReceiver{{
			Name: "hook", Webhook: &deployv1alpha1.WebhookReceiver{URL: r.w.Receiver.URL + r.receiverPath()}}}},
	}} {
		if err := poll(ctx, time.Minute, func() error { return client.IgnoreAlreadyExists(c.Create(ctx, obj)) }); err != nil {
			return err
		}
	}
	// As stored, with the API server's defaults: what the ReplicaSets carry.
	r.inv.initialHash = gate.TemplateHash(&d.Spec.Template)
	return c.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: deploymentName}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+deployv1alpha1.GatedLabel+`":"`+
			deployv1alpha1.GatedByUser+`"}}}`)))
}

// deployment is the Deployment as Git holds it with image: gated (but for the very
// first version), its pods' metrics served by the good or the bad process. It leaves
// replicas out, so scaling is not undone by the next apply.
func (r *run) deployment(image string, gated bool) *appsv1.Deployment {
	d := testbed.Deployment(r.ns, deploymentName, image, 0)
	d.Spec.Replicas = nil
	if gated {
		d.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	}
	addr := r.w.Good.Addr
	if strings.Contains(image, "-bad") {
		addr = r.w.Bad.Addr
	}
	d.Spec.Template.Annotations = map[string]string{testbed.ScrapeAddressAnnotation: addr}
	return d
}

// errorRateQuery is the share of the namespace's requests that failed, over every pod
// serving now; with no failure at all there is no 500 series, hence the or.
func errorRateQuery(ns string) string {
	return fmt.Sprintf(`(sum(rate(http_requests_total{namespace=%q,code="500"}[5s])) or vector(0)) / `+
		`sum(rate(http_requests_total{namespace=%q}[5s]))`, ns, ns)
}

// checklist releases one revision: before T-0 the error rate must be low and the
// deployment lead must sign off; after T-0 it must stay low for a phase that opens 3s
// after the release is available (15s to pass); an error rate above 30% for 2s rolls
// back.
func (r *run) checklist(name, revision string) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		TypeMeta:   metav1.TypeMeta{APIVersion: deployv1alpha1.GroupVersion.String(), Kind: "DeploymentChecklist"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: deploymentName},
			Revision: revision,
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Interval:   "1s",
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: r.w.promProxy.URL(), Timeout: "1s"},
				Metrics: []deployv1alpha1.MetricSpec{{Name: errorsMetric, Query: errorRateQuery(r.ns),
					OnNoData: deployv1alpha1.NoDataHold}},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-5s", At: "-5s", Checks: []deployv1alpha1.CheckSpec{
						{Name: "baseline", Metric: errorsMetric, Below: new("0.1")},
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: role}},
					}},
					{Name: "T+3s", At: "3s", Timeout: "15s", Checks: []deployv1alpha1.CheckSpec{
						{Name: errorsMetric, Metric: errorsMetric, Below: new("0.1")},
					}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{
					{Name: errorsMetric, Metric: errorsMetric, Above: new("0.3"), For: "2s"},
				},
			},
		},
	}
}

// newest is the newest checklist the run created and did not delete.
func (r *run) newest() *runChecklist {
	for i := len(r.checklists) - 1; i >= 0; i-- {
		if !r.checklists[i].deleted {
			return &r.checklists[i]
		}
	}
	return nil
}

// templateName is the namespace's ChecklistTemplate: the checklist above, without its
// release.
const templateName = "release"

// template is the namespace's ChecklistTemplate, its T-plus threshold 0.2 when moved.
func (r *run) template(moved bool) *deployv1alpha1.ChecklistTemplate {
	body := r.checklist("", "").Spec.ChecklistBody
	if moved {
		body.Phases[1].Checks[0].Below = new("0.2")
	}
	return &deployv1alpha1.ChecklistTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: templateName},
		Spec: deployv1alpha1.ChecklistTemplateSpec{Template: body}}
}

func (r *run) createChecklist(ctx context.Context) (string, error) {
	n := len(r.checklists) + 1
	name, revision := fmt.Sprintf("rel-%d", n), fmt.Sprintf("r%d", n)
	r.checklists = append(r.checklists, runChecklist{name: name, revision: revision})
	cl := r.checklist(name, revision)
	if r.gen >= 2 && n%2 == 0 {
		// Made from the namespace's template (generation 1 made none: its lists and
		// runs stay as they were).
		cl.Spec.ChecklistBody = deployv1alpha1.ChecklistBody{}
		cl.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ChecklistTemplate", Name: templateName}
		name += " (from the template)"
	}
	if err := r.w.Bed.Client.Create(ctx, cl); err != nil {
		r.checklists[len(r.checklists)-1].deleted = true
		return name, err
	}
	return name, nil
}

func (r *run) applyImage(ctx context.Context, image string) error {
	d := r.deployment(image, true)
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return r.w.Bed.Client.Patch(ctx, d, client.RawPatch(types.ApplyYAMLPatchType, raw), client.FieldOwner(fieldOwner),
		client.ForceOwnership)
}

func (r *run) kubectl(ctx context.Context, args ...string) error {
	_, err := r.w.Bed.Kubectl(ctx, append(args, "-n", r.ns)...)
	return err
}

// apply carries out one event and records what the API server answered: a refusal is
// an outcome, not the harness's failure.
//
//nolint:gocyclo // one switch over the kinds of event
func (r *run) apply(ctx context.Context, i int, e Event) {
	a := action{Index: i, Event: e, At: time.Now()}
	defer func() { r.actions = append(r.actions, a) }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := r.w.Bed.Client
	switch e.Kind {
	case Push:
		image := fmt.Sprintf("app:v%d-good", len(r.images))
		if e.Bad {
			image = fmt.Sprintf("app:v%d-bad", len(r.images))
		}
		r.images = append(r.images, image)
		a.Note = image
		var errs []error
		if e.Checklist && e.ChecklistFirst {
			name, err := r.createChecklist(ctx)
			a.Note += " " + name
			errs = append(errs, err)
		}
		errs = append(errs, r.applyImage(ctx, image))
		if e.Checklist && !e.ChecklistFirst {
			name, err := r.createChecklist(ctx)
			a.Note += " " + name
			errs = append(errs, err)
		}
		a.Err = errors.Join(errs...)
	case CreateChecklist:
		a.Note, a.Err = r.createChecklist(ctx)
	case SignOff, Revoke:
		cl := r.newest()
		if cl == nil {
			a.Note = noChecklist
			return
		}
		a.Note = cl.name
		user := approver
		if e.Kind == SignOff && !e.Right {
			user = nonApprover
		}
		value := `"` + user + ` for ` + cl.revision + `"`
		if e.Kind == Revoke {
			value = "null"
		}
		patch := `{"metadata":{"annotations":{"` + deployv1alpha1.ApprovalAnnotationPrefix + role + `":` + value + `}}}`
		a.Err = r.w.users[user].Patch(ctx, &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{
			Namespace: r.ns, Name: cl.name}}, client.RawPatch(types.MergePatchType, []byte(patch)))
	case DeleteChecklist:
		cl := r.newest()
		if cl == nil {
			a.Note = noChecklist
			return
		}
		a.Note, cl.deleted = cl.name, true
		a.Err = c.Delete(ctx, &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns,
			Name: cl.name}})
	case SelfHeal:
		image := r.images[e.Pick%len(r.images)]
		a.Note = image
		a.Err = r.applyImage(ctx, image)
	case Undo:
		a.Err = r.kubectl(ctx, "rollout", "undo", "deployment/"+deploymentName)
	case Restart:
		a.Err = r.kubectl(ctx, "rollout", "restart", "deployment/"+deploymentName)
	case Resume:
		a.Err = r.kubectl(ctx, "rollout", "resume", "deployment/"+deploymentName)
	case Scale:
		var d appsv1.Deployment
		if a.Err = c.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: deploymentName}, &d); a.Err == nil {
			a.Err = c.SubResource("scale").Update(ctx, &d,
				client.WithSubResourceBody(&autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: e.Replicas}}))
		}
	case PrometheusDown:
		r.faults.Add(1)
		r.w.prometheusDown(e.For, r.faults.Done)
	case PrometheusFault:
		r.faults.Add(1)
		r.w.prometheusFault(e.Fault, e.For, r.faults.Done)
	case WebhookDown:
		r.faults.Add(1)
		r.w.webhookDown(e.For, r.faults.Done)
	case KillManager:
		sig := syscall.SIGKILL
		if e.Term {
			sig = syscall.SIGTERM
		}
		rep := r.w.replicas[e.Replica]
		if !rep.kill(sig, e.For, func(err error) { r.w.log("restarting %s: %v", rep.name, err) }) {
			a.Note = "already down"
		}
		r.faults.Go(func() {
			_ = poll(context.Background(), time.Minute, func() error {
				if !rep.up() {
					return errors.New("down")
				}
				return nil
			})
		})
	case Wait:
		time.Sleep(e.For)
	case StealLease:
		a.Note, a.Err = r.w.stealLease(ctx, e.Shard, e.Pick == 1)
	case Freeze:
		a.Note, a.Err = r.createFreeze(ctx, e.For)
	case EditChecklist:
		a.Note, a.Err = r.editChecklist(ctx, e.Pick == 0)
	case Template:
		t := r.template(r.templateEdits%2 == 0)
		switch e.Pick {
		case 0:
			r.templateEdits++
			raw, err := json.Marshal(map[string]any{"spec": t.Spec})
			if err != nil {
				a.Err = err
				return
			}
			a.Note = "edited: T-plus below " + *t.Spec.Template.Phases[1].Checks[0].Below
			a.Err = c.Patch(ctx, t, client.RawPatch(types.MergePatchType, raw))
		case 1:
			a.Note, a.Err = "deleted", c.Delete(ctx, t)
		default:
			a.Note, a.Err = "created", c.Create(ctx, r.template(r.templateEdits%2 == 1))
		}
	case ReceiverDown:
		path := r.receiverPath()
		start := time.Now()
		r.receiverDown = append(r.receiverDown, outage{Stopped: start, Ready: start.Add(e.For)})
		r.w.Receiver.Answer(path, http.StatusServiceUnavailable)
		r.faults.Go(func() {
			time.Sleep(e.For)
			r.w.Receiver.Answer(path, http.StatusOK)
		})
	case Unfreeze:
		f := r.newestFreeze()
		if f == nil {
			a.Note = "no freeze"
			return
		}
		a.Note = f.name
		sent := time.Now()
		if a.Err = c.Delete(ctx, &deployv1alpha1.ChangeFreeze{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns,
			Name: f.name}}); a.Err == nil {
			f.deleted = sent
		}
	case BreakGlass:
		cl := r.newest()
		if cl == nil {
			a.Note = noChecklist
			return
		}
		a.Note = cl.name
		patch := `{"metadata":{"annotations":{"` + deployv1alpha1.BreakGlassReasonAnnotation +
			`":"chaos: the fix must ship","` + deployv1alpha1.ApprovalAnnotationPrefix + exceptionRole + `":"` + approver +
			` for ` + cl.revision + `"}}}`
		a.Err = r.w.users[approver].Patch(ctx, &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{
			Namespace: r.ns, Name: cl.name}}, client.RawPatch(types.MergePatchType, []byte(patch)))
	}
}

// editChecklist edits the newest checklist as its GitOps tool would: a new revision,
// or the T-plus phase's threshold, 0.1 or 0.2 in turn (a merge patch replaces the
// phases: they are given whole, as Git holds them).
func (r *run) editChecklist(ctx context.Context, revision bool) (string, error) {
	cl := r.newest()
	if cl == nil {
		return noChecklist, nil
	}
	cl.edits++
	var patch []byte
	var note string
	if revision {
		rev := fmt.Sprintf("%s.%d", strings.SplitN(cl.revision, ".", 2)[0], cl.edits)
		patch, note = []byte(`{"spec":{"revision":"`+rev+`"}}`), cl.name+" revision "+rev
		err := r.w.Bed.Client.Patch(ctx, &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{
			Namespace: r.ns, Name: cl.name}}, client.RawPatch(types.MergePatchType, patch))
		if err == nil {
			cl.revision = rev
		}
		return note, err
	}
	body := r.checklist(cl.name, cl.revision).Spec.ChecklistBody
	if cl.edits%2 == 1 {
		body.Phases[1].Checks[0].Below = new("0.2")
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"phases": body.Phases}})
	if err != nil {
		return "", err
	}
	note = cl.name + " T-plus below " + *body.Phases[1].Checks[0].Below
	return note, r.w.Bed.Client.Patch(ctx, &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{
		Namespace: r.ns, Name: cl.name}}, client.RawPatch(types.MergePatchType, patch))
}

// receiverPath is the run's path on the receiver.
func (r *run) receiverPath() string { return "/" + r.ns }

// createFreeze creates a freeze of the namespace's checklists whose window opens
// freezeLead from now (on a whole second) and lasts d.
func (r *run) createFreeze(ctx context.Context, d time.Duration) (string, error) {
	name := fmt.Sprintf("freeze-%d", len(r.freezes)+1)
	start := time.Now().Add(freezeLead).Truncate(time.Second)
	end := start.Add(d)
	err := r.w.Bed.Client.Create(ctx, &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: name},
		Spec: deployv1alpha1.ChangeFreezeSpec{
			Mode: deployv1alpha1.FreezeModeFreeze, Reason: "chaos " + name,
			Windows:       []deployv1alpha1.FreezeWindow{{Start: &metav1.Time{Time: start}, End: &metav1.Time{Time: end}}},
			ExceptionRole: exceptionRole, ExceptionCount: 1,
		},
	})
	if err == nil {
		r.freezes = append(r.freezes, runFreeze{name: name, start: start, end: end})
	}
	return fmt.Sprintf("%s [%s, %s]", name, r.since(start), r.since(end)), err
}

// newestFreeze is the newest freeze the run created and did not delete.
func (r *run) newestFreeze() *runFreeze {
	for i := len(r.freezes) - 1; i >= 0; i-- {
		if r.freezes[i].deleted.IsZero() {
			return &r.freezes[i]
		}
	}
	return nil
}
