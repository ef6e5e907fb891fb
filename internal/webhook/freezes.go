package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/freeze"
	"github.com/tminus-dev/tminus/internal/target"
)

// freezeLabels says why the requesting user may not change the checklist's labels so (""
// when it may). A change freeze selects checklists by labels their author writes: a
// label edit that takes a checklist before its release out of a freeze that holds, or
// will hold, is the freeze's to allow, so it needs the right to change that freeze
// (update on it), which is what lifting it for one checklist amounts to. Its
// break-glass stays the way to release during it. A checklist created without the
// label is not judged here: a freeze also selects by the target workload's labels
// (freeze.Selects), which the checklist's author cannot drop without the right to switch
// the gate off as well (docs/decisions.md).
func (w *ApprovalWebhook) freezeLabels(ctx context.Context, req admission.Request, obj, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	if req.Operation != admissionv1.Update || maps.Equal(obj.Labels, old.Labels) || checklist.PastT0(old.Status.Phase) {
		return "", nil
	}
	fs, err := freeze.ForNamespace(ctx, w.Client, obj.Namespace)
	if err != nil || len(fs) == 0 {
		return "", err
	}
	var labels []map[string]string
	for _, ref := range obj.Spec.TargetRefs() {
		// The workload of its kind: a StatefulSet's or DaemonSet's labels select it as a
		// Deployment's do.
		l, err := target.LabelsOf(ctx, w.Client, obj.Namespace, ref)
		if err != nil {
			return "", fmt.Errorf("reading %s %s, whose labels change freezes select: %w", ref.KindOf(), ref.Name, err)
		}
		labels = append(labels, l)
	}
	selects := func(cl map[string]string, f *freeze.Freeze) bool {
		return slices.ContainsFunc(labels, func(l map[string]string) bool { return f.Selects(cl, l) })
	}
	now := time.Now()
	for i := range fs {
		f := &fs[i]
		if !selects(old.Labels, f) || selects(obj.Labels, f) {
			continue
		}
		if s := f.Now(now); !s.InForce && s.NextStart.IsZero() {
			continue // its windows are over
		}
		attrs := authorizationv1.ResourceAttributes{Verb: "update", Group: deployv1alpha1.GroupVersion.Group,
			Resource: "clusterchangefreezes", Name: f.Name}
		if f.Kind == "ChangeFreeze" {
			attrs.Namespace, attrs.Name, _ = strings.Cut(f.Name, "/")
			attrs.Resource = "changefreezes"
		}
		if ok, err := w.allowed(ctx, req, attrs); err != nil || ok {
			if err != nil {
				return "", err
			}
			continue
		}
		return fmt.Sprintf("metadata.labels: this change takes checklist %s out of %s (%s), which holds or will hold its release; "+
			"user %q may not lift that freeze: it needs the verb update on %s %s. Change the freeze's selector, or release "+
			"during it by its break-glass (docs/freezes.md)", obj.Name, f.ID(), f.Spec.Reason, req.UserInfo.Username,
			attrs.Resource, attrs.Name), nil
	}
	return "", nil
}
