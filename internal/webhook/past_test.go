package webhook_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/webhook"
)

// checklistReads counts the checklist objects read through it (by Get and List).
type checklistReads struct {
	client.Reader
	n atomic.Int64
}

func (r *checklistReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := r.Reader.Get(ctx, key, obj, opts...)
	if _, ok := obj.(*deployv1alpha1.DeploymentChecklist); ok && err == nil {
		r.n.Add(1)
	}
	return err
}

func (r *checklistReads) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := r.Reader.List(ctx, list, opts...)
	if _, ok := list.(*deployv1alpha1.DeploymentChecklistList); ok && err == nil {
		r.n.Add(int64(meta.LenList(list)))
	}
	return err
}

// TestAGateDecisionReadsNoMoreChecklistsWithAPastThanWithout: the gate decides a new
// template on checkout (held) with no past, then again after twelve releases of
// checkout ended: it reads as many checklists, from the cache and from the API server,
// as it did with none (rule 8: no decision reads the history of a target).
func TestAGateDecisionReadsNoMoreChecklistsWithAPastThanWithout(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")
	cache, api := &checklistReads{Reader: cached}, &checklistReads{Reader: fresh}
	h := &webhook.DeploymentGate{Reader: cache, Fresh: api, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	decide := func() int64 {
		cache.n.Store(0)
		api.n.Store(0)
		cur := get(t, d)
		next := cur.DeepCopy()
		next.Spec.Template.Spec.Containers[0].Image = "checkout:v9"
		resp := h.Handle(ctx, updateRequest(t, cur, next))
		g.Expect(resp.Allowed).To(BeTrue())
		g.Expect(resp.Patches).NotTo(BeEmpty(), "a template nothing released is held")
		return cache.n.Load() + api.n.Load()
	}
	without := decide()

	finishedChecklists(t, ns, 12)
	g.Eventually(func(g Gomega) {
		var list deployv1alpha1.DeploymentChecklistList
		g.Expect(cached.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(12))
		for _, c := range list.Items {
			g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed))
		}
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	with := decide()
	t.Logf("checklists read by one decision: %d without a past, %d with 12 ended checklists", without, with)
	g.Expect(with).To(Equal(without), "what a decision reads does not grow with the target's past")
}
