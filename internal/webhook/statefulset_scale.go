package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
)

// StatefulSetScalePath is where the StatefulSet scale admission webhook is served.
const StatefulSetScalePath = "/validate-apps-v1-statefulset-scale"

// StatefulSetScaleGate refuses to scale up, through the scale subresource (`kubectl
// scale`, a HorizontalPodAutoscaler), a StatefulSet a live checklist releases in steps.
// A step's partition counts pods by ordinal: the pods a scale-up adds stand above it,
// so they would start on the release before its steps passed (three pods of five on
// the release where the step exposes one). Scaling down, and scaling a StatefulSet no
// step holds, pass. The API server sends only scale-ups here (the webhook's match
// conditions) of every StatefulSet (a Scale carries no labels to select gated ones
// by), and ignores this webhook when the manager does not answer.
type StatefulSetScaleGate struct {
	// Reader reads checklists from the manager's cache; Fresh reads the StatefulSet and
	// the live checklists again from the API server before a refusal.
	Reader, Fresh client.Reader
}

// Handle admits or refuses a write of a StatefulSet's scale subresource.
func (w *StatefulSetScaleGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	var cur, old autoscalingv1.Scale
	if err := json.Unmarshal(req.Object.Raw, &cur); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if len(req.OldObject.Raw) == 0 {
		return admission.Allowed("")
	}
	if err := json.Unmarshal(req.OldObject.Raw, &old); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if cur.Spec.Replicas <= old.Spec.Replicas {
		return admission.Allowed("")
	}
	r := w.Fresh
	if r == nil {
		r = w.Reader
	}
	var s appsv1.StatefulSet
	switch err := r.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: req.Name}, &s); {
	case apierrors.IsNotFound(err):
		return admission.Allowed("")
	case err != nil:
		return admission.Errored(http.StatusInternalServerError, err)
	}
	why, err := scaleUpInStep(ctx, w.Reader, w.Fresh, &s, old.Spec.Replicas, cur.Spec.Replicas)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if why != "" {
		return admission.Denied(why)
	}
	return admission.Allowed("")
}

// scaleUpInStep says why scaling s (as stored) up from replicas from to to is refused:
// a live checklist releases it in steps (deploy.tminus.dev/step on it). It is "" when
// the write is no scale-up, or no live checklist steps s: the checklists the cache
// (reader) shows live are read again from the API server (fresh) first, so one that
// just ended never refuses.
func scaleUpInStep(ctx context.Context, reader, fresh client.Reader, s *appsv1.StatefulSet, from, to int32) (string, error) {
	step := s.Annotations[deployv1alpha1.StepAnnotation]
	if to <= from || step == "" {
		return "", nil
	}
	live, err := steppedBy(ctx, reader, fresh, s)
	if err != nil || len(live) == 0 {
		return "", err
	}
	pods := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		pods = append(pods, fmt.Sprintf("%s-%d", s.Name, i))
	}
	return fmt.Sprintf("StatefulSet %s/%s is released in steps by checklist %s (step %s, deploy.tminus.dev/step): "+
		"scaling it up from %d to %d now would start %s on the release before its steps passed (a step's partition "+
		"counts pods by ordinal, and new pods stand above it). Scale it once the release ends, or roll the release "+
		"back first (kubectl checklist rollback %s -n %s --reason ...); scaling down is not refused",
		s.Namespace, s.Name, strings.Join(live, ", "), step, from, to, strings.Join(pods, ", "), live[0], s.Namespace), nil
}

// steppedBy names the live checklists deciding the StatefulSet s, which a step mark on
// it (deploy.tminus.dev/step) says release it in steps: those the cache (reader) shows
// live, read again from the API server (fresh) first, so one that just ended is not
// named.
func steppedBy(ctx context.Context, reader, fresh client.Reader, s *appsv1.StatefulSet) ([]string, error) {
	cls, err := target.DecidingOf(ctx, reader, deployv1alpha1.KindStatefulSet, s.Namespace, s.Name, "")
	if err != nil {
		return nil, err
	}
	if fresh != nil {
		if cls, err = target.RefreshChecklists(ctx, fresh, s.Namespace, cls, func(c *gate.Checklist) bool { return c.Live() }); err != nil {
			return nil, err
		}
	}
	var live []string
	for i := range cls {
		if cls[i].Live() {
			live = append(live, cls[i].Name)
		}
	}
	return live, nil
}

// replicasOf is the StatefulSet's spec.replicas (1 when unset, as the API server
// defaults it).
func replicasOf(s *appsv1.StatefulSet) int32 {
	if s.Spec.Replicas == nil {
		return 1
	}
	return *s.Spec.Replicas
}
