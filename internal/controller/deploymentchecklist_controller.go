/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package controller holds the thin DeploymentChecklist reconciler: fetch, observe,
// decide (internal/checklist), patch status, act, emit events, requeue.
package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/notify"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/internal/request"
	"github.com/tminus-dev/tminus/internal/retention"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/internal/slim"
	"github.com/tminus-dev/tminus/internal/target"
)

// Finalizer is the finalizer earlier versions put on checklists; it is only removed now.
const Finalizer = deployv1alpha1.ReleaseGuardFinalizer

// A reconcile whose write lost a race to another writer reads the checklist again from
// the API server and decides again, up to conflictAttempts times in all; then it runs
// again after conflictRetry.
const (
	conflictAttempts = 4
	conflictRetry    = 200 * time.Millisecond
)

// MetricSource measures one PromQL query for a checklist. internal/prometheus
// implements it.
type MetricSource interface {
	Measure(ctx context.Context, req prometheus.Request) checklist.Measurement
}

// HTTPProber runs one HTTP check. internal/httpcheck implements it.
type HTTPProber interface {
	Probe(ctx context.Context, spec deployv1alpha1.HTTPCheck) checklist.Measurement
}

// Notifier is told of a checklist whose status holds messages to send.
type Notifier interface {
	Notify(key types.NamespacedName)
}

// EventRecorder is the part of the events API the reconciler uses.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// DeploymentChecklistReconciler reconciles a DeploymentChecklist object.
type DeploymentChecklistReconciler struct {
	client.Client
	// APIReader reads from the API server, bypassing the cache, after a write conflict
	// (the manager's GetAPIReader); the cached Client when nil.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  EventRecorder
	Clock     clock.PassiveClock
	Metrics   MetricSource
	HTTP      HTTPProber
	// MaxConcurrentReconciles bounds how many checklists are reconciled at once.
	MaxConcurrentReconciles int
	// VerifiedApprovals says the approval webhook is installed, so its verification
	// records on approvals can be believed.
	VerifiedApprovals bool
	// RequireVerifiedApprovals is the default of spec.requireVerifiedApprovals: only
	// sign-offs the webhook verified count.
	RequireVerifiedApprovals bool
	// StatusRefresh is how often at most a change of values alone (no outcome changed)
	// is written to status; DefaultStatusRefresh when zero.
	StatusRefresh time.Duration
	// AdmissionGate says whether the Deployment admission webhook is installed and
	// served, so a gated Deployment's template changes are held in the write that
	// makes them. Without it (nil, or false) tminus holds them after the fact and the
	// checklists say so (AdmissionGate=False).
	AdmissionGate func() bool
	// Shards, when set, is this replica's part of the shards: it reconciles only the
	// checklists of the shards it holds (by their target's namespace/name).
	Shards *shard.Set
	// Notifier sends the messages notification policies owe (internal/notify's
	// Dispatcher); none are planned when nil.
	Notifier Notifier
	// Ledger, when set (--record-retention), keeps the UID of every record this
	// manager creates, so that retention deletes only those (internal/retention).
	Ledger *retention.Ledger

	unwritten unwrittenStatuses
	refusals  jobRefusals
	jobs      createdJobs
	records   createdRecords
}

// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=deploymentchecklists,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=deploymentchecklists/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=deploymentchecklists/finalizers,verbs=update
// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=notificationpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile fetches the checklist, observes what is due, lets the engine decide, writes
// the decision's status first and then its actions, so a crash between the two leaves
// the intent recorded and the next reconcile completes it.
func (r *DeploymentChecklistReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var dcl deployv1alpha1.DeploymentChecklist
	if err := r.Get(ctx, req.NamespacedName, &dcl); err != nil {
		if apierrors.IsNotFound(err) {
			r.unwritten.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	done, ours := begin(r.Shards, dcl.Namespace, dcl.Spec.ShardTarget())
	if !ours {
		// Another replica's shard: it reconciles this checklist.
		return ctrl.Result{}, nil
	}
	defer done()
	if slim.Stripped(&dcl) {
		// The cache keeps an ended checklist stripped once it owes nothing it shows by
		// itself (slim.Owed; --strip-ended-checklists): only a workload still held in
		// its name is left to see to, and then the engine decides on the whole
		// checklist, read from the API server. Any other is left as it is: no read.
		held, err := r.heldInItsName(ctx, &dcl)
		if err != nil || !held {
			return ctrl.Result{}, err
		}
		dcl = deployv1alpha1.DeploymentChecklist{}
		if err := r.fresh().Get(ctx, req.NamespacedName, &dcl); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	now := r.Clock.Now()
	var obs *checklist.Observations
	for attempt := 1; ; attempt++ {
		res, err := r.reconcile(ctx, &dcl, &obs, now)
		if !apierrors.IsConflict(err) {
			return res, err
		}
		if attempt == conflictAttempts {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		// Someone wrote the checklist or its target since they were read (a GitOps
		// sync, an approval): read the checklist from the API server rather than the
		// cache, which may lag, and decide again with the same measurements.
		if err := r.fresh().Get(ctx, req.NamespacedName, &dcl); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
}

// fresh reads from the API server, not the cache.
func (r *DeploymentChecklistReconciler) fresh() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// reconcile is one attempt of Reconcile on dcl as read. Measurements are taken once
// per Reconcile (*obs is nil until then) and reused by a retry after a conflict; a
// conflict is returned as is.
func (r *DeploymentChecklistReconciler) reconcile(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	obs **checklist.Observations, now time.Time) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	key := client.ObjectKeyFromObject(dcl)
	if !dcl.DeletionTimestamp.IsZero() {
		r.unwritten.forget(key)
		return ctrl.Result{}, r.finalize(ctx, dcl)
	}
	// Earlier versions put a finalizer on checklists; nothing needs it now (the gate
	// controller cleans up after a deleted checklist), so it comes off.
	if controllerutil.ContainsFinalizer(dcl, Finalizer) {
		before := dcl.DeepCopy()
		controllerutil.RemoveFinalizer(dcl, Finalizer)
		if err := r.Patch(ctx, dcl, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Decide from the latest status this manager decided, which may not have been
	// written (see writeNeeded); the stored one is what the patch is computed against.
	stored := dcl.DeepCopy()
	if latest, ok := r.unwritten.take(dcl); ok {
		dcl.Status = *latest
	}
	// The checklist tminus walks: made from its template (resolved once, kept in
	// status), or its own.
	eff, stalled, err := r.resolve(ctx, dcl, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	if stalled {
		return r.writeStalled(ctx, dcl, stored)
	}
	if *obs == nil {
		o, err := r.observe(ctx, eff, checklist.NeedsFor(eff, now), now)
		if err != nil {
			return ctrl.Result{}, err
		}
		*obs = &o
	}
	// Sign-offs are read from the checklist as read in this attempt.
	(*obs).Approvals, (*obs).ApprovalProblems = approval.Parse(dcl.Annotations, approval.Revision(dcl), r.VerifiedApprovals)
	// So are a person's requests (rollback, abort): acted on only when verified.
	(*obs).Requests, (*obs).RequestProblems = request.Read(dcl.Annotations, r.VerifiedApprovals)
	input := eff.Status
	whole, err := checklist.WholeOf(eff)
	if err != nil {
		return ctrl.Result{}, err
	}
	decision := checklist.Decide(whole, **obs, now)
	// The messages the namespace's notification policies owe for what was decided:
	// written with the decision, sent by the dispatcher after.
	if r.Notifier != nil {
		var policies deployv1alpha1.NotificationPolicyList
		// Read from the cache without copies: every reconcile asks, and Plan only reads.
		if err := r.List(ctx, &policies, client.InNamespace(dcl.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			return ctrl.Result{}, fmt.Errorf("listing notification policies: %w", err)
		}
		notify.Plan(policies.Items, eff, &decision.Status)
	}

	switch write, change := r.writeNeeded(&stored.Status, &decision, now); {
	case change == checklist.Unchanged:
		r.unwritten.forget(key)
	case !write:
		r.unwritten.keep(stored, &decision.Status)
	default:
		r.unwritten.forget(key)
		dcl.Status = decision.Status
		if err := r.Status().Patch(ctx, dcl, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, fmt.Errorf("patching status: %w", err)
		}
	}
	recordMetrics(dcl.CreationTimestamp.Time, &input, &decision.Status)
	if r.Notifier != nil && notify.Pending(&decision.Status) {
		r.Notifier.Notify(key)
	}
	// Events first: an action that fails must not take the event that explains it
	// with it.
	for _, e := range decision.Events {
		r.Recorder.Eventf(dcl, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
		log.Info(e.Message, "checklist", key, "phase", decision.Status.Phase,
			"checklistPhase", decision.Status.CurrentPhase, "reason", e.Reason, "type", e.Type)
	}
	// Every action is tried, whatever the others do; a failure is reported and tried
	// again at the next measurement, never backed off past it: a refused Job must not
	// starve the rollback triggers.
	var failed []string
	moved := false
	for _, a := range decision.Actions {
		if err := r.act(ctx, eff, a); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{}, err
			}
			// The target's template changed since this reconcile read it: the action
			// was not written, and the next reconcile decides on what it holds now.
			moved = moved || errors.Is(err, target.ErrTemplateChanged)
			failed = append(failed, err.Error())
			log.Error(err, "action failed", "checklist", key, "action", a.Kind, "check", a.Check)
			continue
		}
		log.Info("acted", "checklist", key, "phase", decision.Status.Phase, "action", a.Kind, "check", a.Check)
	}
	if err := r.keepRecord(ctx, dcl, &decision.Status); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{}, err
		}
		failed = append(failed, err.Error())
		log.Error(err, "writing the release record", "checklist", key)
	}
	res := ctrl.Result{RequeueAfter: decision.RequeueAfter, Priority: new(priority(decision.Status.Phase))}
	if len(failed) > 0 {
		r.Recorder.Eventf(dcl, nil, corev1.EventTypeWarning, checklist.ReasonActionFailed, "Reconcile", "%s",
			checklist.EventNote(strings.Join(failed, "; ")))
		if interval := checklist.Interval(dcl); res.RequeueAfter == 0 || res.RequeueAfter > interval {
			res.RequeueAfter = interval
		}
		if moved {
			res.RequeueAfter = min(res.RequeueAfter, conflictRetry)
		}
	}
	return res, nil
}

// releasedPriority puts checklists watching a release's rollback triggers ahead of
// those holding one before T-0 when many fall due at once: a breach must not wait
// behind a thousand held checklists measuring the same answer.
const releasedPriority = 10

func priority(phase deployv1alpha1.ChecklistPhase) int {
	if checklist.WatchingTriggers(phase) {
		return releasedPriority
	}
	return 0
}

// observe gathers, once, what the engine needs but the sign-offs: the target, the Jobs
// of the open phase, and the metrics and HTTP checks that are due.
func (r *DeploymentChecklistReconciler) observe(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	needs checklist.Needs, now time.Time) (checklist.Observations, error) {
	var obs checklist.Observations
	var err error
	obs.AdmissionServed = r.AdmissionGate != nil && r.AdmissionGate()
	obs.RequireVerified = r.RequireVerifiedApprovals
	if v := dcl.Spec.RequireVerifiedApprovals; v != nil {
		obs.RequireVerified = *v
	}
	var labels []map[string]string
	for _, ref := range dcl.Spec.TargetRefs() {
		name := ref.Name
		t, err := target.ObserveTarget(ctx, r.Client, dcl.Namespace, ref)
		if err != nil {
			return obs, err
		}
		obs.Targets = append(obs.Targets, t)
		labels = append(labels, t.Labels)
		if obs.Blocker != "" {
			continue
		}
		siblings, err := target.DecidingOf(ctx, r.Client, ref.KindOf(), dcl.Namespace, name, "")
		if err != nil {
			return obs, err
		}
		// This checklist as this reconcile sees it, which the cache may not have yet.
		siblings = slices.DeleteFunc(siblings, func(c gate.Checklist) bool { return c.Name == dcl.Name })
		siblings = append(siblings, gate.FromChecklistFor(dcl, name))
		if obs.Blocker = gate.Blocker(siblings, dcl.Name); obs.Blocker != "" {
			obs.BlockedOn = name
		}
	}
	if obs.Freezes, err = r.freezesFor(ctx, dcl, labels...); err != nil {
		return obs, err
	}

	obs.Jobs = map[string]checklist.JobState{}
	for _, key := range needs.Jobs {
		phase, check := splitKey(key)
		js, err := r.observeJob(ctx, dcl, phase, check)
		if err != nil {
			return obs, err
		}
		if !js.Exists {
			js.Refused = r.refusals.get(dcl, key)
		}
		obs.Jobs[key] = js
	}

	vars := checklist.QueryVars(dcl)
	if names := dcl.Spec.TargetNames(); len(names) == 1 && len(obs.Targets) == 1 {
		if ts := dcl.TargetStatusOf(names[0]); ts != nil && vars[checklist.VarPodTemplateHash] == "" {
			// Released in this reconcile's view before status recorded it.
			if h := obs.Targets[0].PodTemplateHashes[ts.ReleasedTemplateHash]; h != "" && ts.ReleasedTemplateHash != "" {
				vars[checklist.VarPodTemplateHash] = h
			}
		}
	}
	// Every measurement at once, under one deadline: the interval. A checklist waits
	// for its slowest measurement, never for the sum of them, and never longer than an
	// interval (a dead endpoint's circuit opens, and then it waits for nothing).
	mctx, cancel := context.WithTimeout(ctx, max(checklist.Interval(dcl), time.Second))
	defer cancel()
	var ms measurements
	ms.metrics(mctx, r, dcl, needs.Metrics, vars, checklist.EvaluationTime(now, checklist.Interval(dcl)), false)
	if t0 := checklist.T0(dcl); len(needs.Baselines) > 0 && t0 != nil {
		ms.metrics(mctx, r, dcl, needs.Baselines, checklist.BaselineVars(dcl), t0.Time, true)
	}
	for key, spec := range needs.HTTP {
		ms.run(func() { ms.put(&ms.http, key, r.HTTP.Probe(mctx, spec)) })
	}
	ms.wg.Wait()
	obs.Metrics, obs.Baselines, obs.HTTP = ms.metric, ms.baseline, ms.http
	if obs.HTTP == nil {
		obs.HTTP = map[string]checklist.Measurement{}
	}
	if obs.Metrics == nil {
		obs.Metrics = map[string]checklist.Measurement{}
	}
	return obs, nil
}

// measurements gathers one reconcile's measurements, taken concurrently.
type measurements struct {
	wg                     sync.WaitGroup
	mu                     sync.Mutex
	metric, baseline, http map[string]checklist.Measurement
}

func (ms *measurements) run(f func()) { ms.wg.Go(f) }

func (ms *measurements) put(into *map[string]checklist.Measurement, key string, m checklist.Measurement) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if *into == nil {
		*into = map[string]checklist.Measurement{}
	}
	(*into)[key] = m
}

// metrics queries the named metrics at the evaluation time at, their variables filled
// in from vars. A query naming a variable not known yet (the released ReplicaSet's hash
// before it exists) is not sent: it would select the wrong series. For a baseline,
// such a variable is the pre-deploy ReplicaSet's hash, and without one nothing served
// before the release: the baseline has no data.
func (ms *measurements) metrics(ctx context.Context, r *DeploymentChecklistReconciler, dcl *deployv1alpha1.DeploymentChecklist,
	names []string, vars map[string]string, at time.Time, baseline bool) {
	into := &ms.metric
	if baseline {
		into = &ms.baseline
	}
	for _, key := range names {
		name, of := checklist.SplitMetricKey(key)
		for _, m := range dcl.Spec.Metrics {
			if m.Name != name {
				continue
			}
			// A check or trigger judging one target asks the query of its series.
			kv := vars
			if of != "" && baseline {
				kv = checklist.BaselineVarsFor(dcl, of)
			} else if of != "" {
				kv = checklist.QueryVarsFor(dcl, of)
			}
			query := checklist.RenderQuery(m.Query, kv)
			if checklist.Unresolved(query) {
				if baseline {
					ms.put(into, key, checklist.Measurement{Kind: checklist.ResultNoData, Query: query,
						Message: "no ReplicaSet served before the release"})
				}
				continue
			}
			ms.run(func() {
				ms.put(into, key, r.Metrics.Measure(ctx, prometheus.Request{
					Namespace: dcl.Namespace, Spec: dcl.Spec.Prometheus, Query: query, At: at, Interval: checklist.Interval(dcl),
				}))
			})
		}
	}
}

func splitKey(key string) (string, string) {
	phase, check, _ := strings.Cut(key, "/")
	return phase, check
}

func (r *DeploymentChecklistReconciler) act(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist, a checklist.Action) error {
	key := types.NamespacedName{Namespace: dcl.Namespace, Name: a.Target}
	w := target.Of(a.TargetKind)
	if w == nil && a.Kind != checklist.ActionCreateJob {
		return fmt.Errorf("%s %s: tminus does not gate workloads of this kind", a.TargetKind, a.Target)
	}
	switch a.Kind {
	case checklist.ActionHold:
		heldBy := a.HeldBy
		if heldBy == "" {
			heldBy = deployv1alpha1.HeldByChecklist(dcl.Name)
		}
		return w.Hold(ctx, r.Client, r.fresh(), key, heldBy, a.Reason, a.HeldTemplate)
	case checklist.ActionResume:
		return w.Resume(ctx, r.Client, r.fresh(), key, a.TemplateHash)
	case checklist.ActionRelease:
		if a.Step != "" {
			s, ok := w.(target.Stepper)
			if !ok {
				return fmt.Errorf("%s %s: only a StatefulSet is released in steps", a.TargetKind, a.Target)
			}
			return s.ReleaseStep(ctx, r.Client, r.fresh(), key, a.Revision, a.TemplateHash, a.Pods, a.Step)
		}
		return w.Release(ctx, r.Client, r.fresh(), key, a.Revision, a.TemplateHash)
	case checklist.ActionRestore:
		mark := ""
		if a.RolledBack != "" {
			mark = gate.RolledBackMark(dcl.Name, string(dcl.UID), a.RolledBack)
		}
		return w.Restore(ctx, r.Client, r.fresh(), key, a.Template, a.TemplateHash, mark)
	case checklist.ActionCreateJob:
		return r.createJob(ctx, dcl, a.Phase, a.Check)
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

// finalize runs when a checklist carrying the finalizer of an earlier version is
// deleted: it only takes the finalizer off. What the checklist held is released by the
// gate controller, which sees the deletion.
func (r *DeploymentChecklistReconciler) finalize(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist) error {
	if !controllerutil.ContainsFinalizer(dcl, Finalizer) {
		return nil
	}
	before := dcl.DeepCopy()
	controllerutil.RemoveFinalizer(dcl, Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, dcl, client.MergeFrom(before)))
}

// SetupWithManager watches checklists (annotation changes too: sign-offs do not bump
// generation), the Jobs they own, and their target Deployments, and sets up the gate
// controller beside it.
func (r *DeploymentChecklistReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := target.Index(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &deployv1alpha1.DeploymentChecklist{}, templateIndex,
		indexTemplateRefs); err != nil {
		return err
	}
	queues := newShardQueues()
	if r.Shards != nil {
		r.Shards.OnAcquire = func(i int) {
			queues.acquired(logf.IntoContext(context.Background(), mgr.GetLogger()), r.Client, r.Shards, i)
		}
	}
	// The gate controller comes with it: it reads the same indexes.
	if err := (&GateReconciler{Client: r.Client, APIReader: r.APIReader, Shards: r.Shards,
		taken: queues.deployments}).SetupWithManager(mgr); err != nil {
		return err
	}
	for _, kind := range []string{deployv1alpha1.KindStatefulSet, deployv1alpha1.KindDaemonSet} {
		if err := (&WorkloadGateReconciler{Client: r.Client, APIReader: r.APIReader, Shards: r.Shards, Kind: kind,
			Recorder: r.Recorder}).SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		WatchesRawSource(source.Channel(queues.checklists, &handler.EnqueueRequestForObject{})).
		For(&deployv1alpha1.DeploymentChecklist{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&batchv1.Job{}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.checklistsForDeployment)).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.checklistsForDeployment)).
		Watches(&appsv1.DaemonSet{}, handler.EnqueueRequestsFromMapFunc(r.checklistsForDeployment)).
		// A checklist that ends (or goes) lets the one it blocked start.
		Watches(&deployv1alpha1.DeploymentChecklist{}, handler.EnqueueRequestsFromMapFunc(r.blockedSiblings),
			builder.WithPredicates(phaseChanged())).
		// A template that appears or changes lets the checklists waiting for it start.
		Watches(&deployv1alpha1.ChecklistTemplate{}, handler.EnqueueRequestsFromMapFunc(r.checklistsOfTemplate("ChecklistTemplate"))).
		Watches(&deployv1alpha1.ClusterChecklistTemplate{},
			handler.EnqueueRequestsFromMapFunc(r.checklistsOfTemplate("ClusterChecklistTemplate"))).
		// A notification policy that appears or changes is told of the transitions
		// still holding (a wait for sign-off, an outage, a held change).
		Watches(&deployv1alpha1.NotificationPolicy{}, handler.EnqueueRequestsFromMapFunc(r.liveChecklists)).
		// A freeze declared, changed or lifted is looked at by the releases it may hold.
		Watches(&deployv1alpha1.ChangeFreeze{}, handler.EnqueueRequestsFromMapFunc(r.liveChecklists)).
		Watches(&deployv1alpha1.ClusterChangeFreeze{}, handler.EnqueueRequestsFromMapFunc(r.liveChecklists)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("deploymentchecklist").
		Complete(r)
}

// checklistsForDeployment maps a Deployment's change to the checklists that may act on
// it: the live ones, one whose rollback is not seen done yet, and the one it is held
// for. The finished record of every earlier release is left alone.
func (r *DeploymentChecklistReconciler) checklistsForDeployment(ctx context.Context, o client.Object) []reconcile.Request {
	var list deployv1alpha1.DeploymentChecklistList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{target.ChecklistIndex: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing checklists for Deployment", "deployment", client.ObjectKeyFromObject(o))
		return nil
	}
	heldBy := o.GetAnnotations()[deployv1alpha1.HeldByAnnotation]
	kind := workloadKind(o)
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		c := &list.Items[i]
		if !c.Spec.HasTarget(kind, o.GetName()) {
			continue
		}
		st := c.Status
		restoring := st.Phase == deployv1alpha1.PhaseRolledBack && st.Rollback != nil && !st.Rollback.DryRun && st.Rollback.CompletedAt == nil
		if !gate.Terminal(st.Phase) || restoring || heldBy == deployv1alpha1.HeldByChecklist(c.Name) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
		}
	}
	return reqs
}

// workloadKind is the kind of a workload object the manager watches.
func workloadKind(o client.Object) string {
	if _, ok := o.(*appsv1.StatefulSet); ok {
		return deployv1alpha1.KindStatefulSet
	}
	if _, ok := o.(*appsv1.DaemonSet); ok {
		return deployv1alpha1.KindDaemonSet
	}
	return deployv1alpha1.KindDeployment
}

// liveChecklists maps an object to the checklists that have not ended: those of its
// namespace, or of every namespace for a cluster-scoped object.
func (r *DeploymentChecklistReconciler) liveChecklists(ctx context.Context, o client.Object) []reconcile.Request {
	var list deployv1alpha1.DeploymentChecklistList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if c := &list.Items[i]; !gate.Terminal(c.Status.Phase) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
		}
	}
	return reqs
}

// blockedSiblings maps a checklist's change of phase to the checklists of the same
// Deployment that wait for it.
func (r *DeploymentChecklistReconciler) blockedSiblings(ctx context.Context, o client.Object) []reconcile.Request {
	dcl, ok := o.(*deployv1alpha1.DeploymentChecklist)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, name := range dcl.Spec.TargetNames() {
		var list deployv1alpha1.DeploymentChecklistList
		if err := r.List(ctx, &list, client.InNamespace(dcl.Namespace), client.MatchingFields{target.ChecklistIndex: name}); err != nil {
			return nil
		}
		for i := range list.Items {
			c := &list.Items[i]
			if c.Name != dcl.Name && !gate.Terminal(c.Status.Phase) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
			}
		}
	}
	return reqs
}

// phaseChanged passes a checklist's creation, deletion and changes of its phase.
func phaseChanged() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*deployv1alpha1.DeploymentChecklist)
			n, ok2 := e.ObjectNew.(*deployv1alpha1.DeploymentChecklist)
			return ok1 && ok2 && o.Status.Phase != n.Status.Phase
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// recordMetrics counts the evaluations and the rollback a decision made.
func recordMetrics(created time.Time, before, after *deployv1alpha1.DeploymentChecklistStatus) {
	evaluated := func(old, cur *metav1.Time) bool { return cur != nil && (old == nil || !old.Equal(cur)) }
	measured := map[[2]string]*metav1.Time{}
	for _, p := range before.Phases {
		for _, c := range p.Checks {
			measured[[2]string{p.Name, c.Name}] = c.LastEvaluated
		}
	}
	for _, p := range after.Phases {
		for _, c := range p.Checks {
			if evaluated(measured[[2]string{p.Name, c.Name}], c.LastEvaluated) {
				metrics.CheckEvaluations.WithLabelValues(c.Kind, string(c.Outcome)).Inc()
			}
		}
	}
	for i, t := range after.Triggers {
		var old *metav1.Time
		if i < len(before.Triggers) && before.Triggers[i].Name == t.Name {
			old = before.Triggers[i].LastEvaluated
		}
		if evaluated(old, t.LastEvaluated) {
			metrics.CheckEvaluations.WithLabelValues("Trigger", string(t.Outcome)).Inc()
		}
	}
	if before.Rollback == nil && after.Rollback != nil {
		metrics.Rollbacks.WithLabelValues(after.Rollback.Reason, fmt.Sprint(after.Rollback.DryRun)).Inc()
	}
	recordDelivery(created, before, after)
}

// recordDelivery observes the delivery metrics at the transitions they measure: T-0
// reached (lead time), the old version back after a rollback (time to restore), and
// the end (releases by result).
func recordDelivery(created time.Time, before, after *deployv1alpha1.DeploymentChecklistStatus) {
	t0 := func(st *deployv1alpha1.DeploymentChecklistStatus) *metav1.Time {
		for i := range st.Targets {
			if st.Targets[i].T0At != nil {
				return st.Targets[i].T0At
			}
		}
		if st.Target == nil { // written before status.targets: read once, moved at the next write
			return nil
		}
		return st.Target.T0At
	}
	if t0(before) == nil && t0(after) != nil {
		metrics.LeadTime.Observe(max(0, t0(after).Sub(created).Seconds()))
	}
	restored := func(st *deployv1alpha1.DeploymentChecklistStatus) bool {
		return st.Rollback != nil && st.Rollback.CompletedAt != nil
	}
	if !restored(before) && restored(after) {
		// From the first breach of a trigger that was breaching when it fired (a
		// trigger with for: breaches before it fires), or from the firing.
		from := after.Rollback.FiredAt.Time
		for _, t := range after.Triggers {
			if t.BreachingSince != nil && t.BreachingSince.Time.Before(from) {
				from = t.BreachingSince.Time
			}
		}
		metrics.TimeToRestore.Observe(max(0, after.Rollback.CompletedAt.Sub(from).Seconds()))
	}
	if !checklist.Ended(before.Phase) && checklist.Ended(after.Phase) {
		metrics.Releases.WithLabelValues(string(after.Phase), fmt.Sprint(t0(after) != nil)).Inc()
	}
}

// StrippingCacheOptions are the manager's cache settings (--strip-ended-checklists, the
// default): objects are kept without their managed fields, which nothing here reads
// and which are a good part of a cached object's size, and an ended checklist that owes
// nothing more is kept stripped (internal/slim), so that the cache's memory does not
// grow with the past's statuses. verifiedApprovals is the reconciler's
// VerifiedApprovals: the cache tells a sign-off or request not answered yet as the
// reconciler reads it.
func StrippingCacheOptions(verifiedApprovals bool) cache.Options {
	return StrippingCacheOptionsWith(&slim.Rule{VerifiedApprovals: verifiedApprovals})
}

// StrippingCacheOptionsWith is StrippingCacheOptions with the rule given, whose
// settings may be set until the manager starts.
func StrippingCacheOptionsWith(rule *slim.Rule) cache.Options {
	o := WholeCacheOptions()
	o.ByObject = map[client.Object]cache.ByObject{&deployv1alpha1.DeploymentChecklist{}: {Transform: rule.Transform}}
	return o
}

// WholeCacheOptions are the cache settings with --strip-ended-checklists=false: every
// checklist is cached whole, without its managed fields.
func WholeCacheOptions() cache.Options {
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
}
