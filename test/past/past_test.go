// Package past benchmarks decisions on a target with a long past, on an in-memory
// index built directly (no API server): what the manager's cache would hold after a
// year of releases, without the year it takes to make them.
package past

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/testbed"
)

// indexReader is a client.Reader over client-go indexers, indexed as the manager's
// cache indexes them (target.Index): a List by one field reads that field's index, and
// the objects are the store's own, as with client.UnsafeDisableDeepCopy.
type indexReader struct {
	stores map[reflect.Type]toolscache.Indexer // by the list's type
}

func fieldIndexers(fields map[string]client.IndexerFunc) toolscache.Indexers {
	out := toolscache.Indexers{}
	for field, fn := range fields {
		out["field:"+field] = func(o any) ([]string, error) {
			obj := o.(client.Object)
			vals := fn(obj)
			keys := make([]string, 0, len(vals))
			for _, v := range vals {
				keys = append(keys, obj.GetNamespace()+"/"+v)
			}
			return keys, nil
		}
	}
	return out
}

func (r *indexReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return fmt.Errorf("not read by the decisions benchmarked")
}

func (r *indexReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	store := r.stores[reflect.TypeOf(list)]
	if store == nil {
		return fmt.Errorf("no store for %T", list)
	}
	var objs []any
	if lo.FieldSelector != nil && !lo.FieldSelector.Empty() {
		req := lo.FieldSelector.Requirements()[0]
		var err error
		if objs, err = store.ByIndex("field:"+req.Field, lo.Namespace+"/"+req.Value); err != nil {
			return err
		}
	} else {
		for _, o := range store.List() {
			if o.(client.Object).GetNamespace() == lo.Namespace {
				objs = append(objs, o)
			}
		}
	}
	if lo.Limit > 0 && int64(len(objs)) > lo.Limit {
		objs = objs[:lo.Limit]
	}
	items := reflect.ValueOf(list).Elem().FieldByName("Items")
	out := reflect.MakeSlice(items.Type(), 0, len(objs))
	for _, o := range objs {
		out = reflect.Append(out, reflect.ValueOf(o).Elem())
	}
	items.Set(out)
	return nil
}

func hashOf(image string) string {
	return gate.TemplateHash(&testbed.Deployment("bench", "checkout", image, 1).Spec.Template)
}

// ended is release i of checkout, ended Succeeded: v<i> replaced v<i-1>, with the status
// tminus writes for a target.
func ended(i int, created time.Time) *deployv1alpha1.DeploymentChecklist {
	at := metav1.NewTime(created)
	prev, cur := "checkout:v"+strconv.Itoa(i-1), "checkout:v"+strconv.Itoa(i)
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "checkout-" + strconv.Itoa(i),
			UID: types.UID("uid-" + strconv.Itoa(i)), ResourceVersion: strconv.Itoa(i), CreationTimestamp: at},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v" + strconv.Itoa(i)},
	}
	dcl.Status.Phase = deployv1alpha1.PhaseSucceeded
	dcl.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{{Kind: "Deployment", Name: "checkout", TargetStatus: deployv1alpha1.TargetStatus{
		PreDeployTemplateHash: hashOf(prev), PreDeployImages: []string{prev}, CapturedAt: &at,
		CandidateTemplateHash: hashOf(cur), CandidateImages: []string{cur}, T0At: &at, ReleasedAt: &at,
		ReleasedTemplateHash: hashOf(cur),
	}}}
	return dcl
}

// BenchmarkAdmissionWithAPast times the Deployment gate's handler for a held write
// (a template nothing released) on checkout with 1 and with 1,000 ended checklists
// and one live, verifying, on an in-memory index. A decision reads the live checklist
// and those that refuse or restore the written template (target.Deciding), so both
// cost the same.
//
//	go test ./test/past -run XXX -bench AdmissionWithAPast
func BenchmarkAdmissionWithAPast(b *testing.B) {
	for _, past := range []int{1, 1000} {
		b.Run("past="+strconv.Itoa(past), func(b *testing.B) {
			checklists := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, fieldIndexers(map[string]client.IndexerFunc{
				target.ChecklistIndex: target.ChecklistIndexFunc, target.DecisionIndex: target.DecisionIndexFunc,
			}))
			replicaSets := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, fieldIndexers(map[string]client.IndexerFunc{
				target.ReplicaSetOwnerIndex: func(o client.Object) []string {
					if ref := metav1.GetControllerOf(o); ref != nil {
						return []string{ref.Name}
					}
					return nil
				},
			}))
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := 1; i <= past; i++ {
				if err := checklists.Add(ended(i, start.Add(time.Duration(i)*time.Hour))); err != nil {
					b.Fatal(err)
				}
			}
			live := ended(past+1, start.Add(time.Duration(past+1)*time.Hour))
			live.Status.Phase = deployv1alpha1.PhaseVerifying
			if err := checklists.Add(live); err != nil {
				b.Fatal(err)
			}
			d := testbed.Deployment("bench", "checkout", "checkout:v"+strconv.Itoa(past+1), 3)
			d.UID = "deployment-uid"
			d.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
			for i := past - 8; i <= past+1; i++ {
				rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "checkout-rs-" + strconv.Itoa(i),
					UID: types.UID("rs-" + strconv.Itoa(i)), ResourceVersion: "1",
					OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "checkout", UID: d.UID, Controller: new(true)}}}}
				rs.Spec.Template = testbed.Deployment("bench", "checkout", "checkout:v"+strconv.Itoa(i), 1).Spec.Template
				if i == past+1 {
					rs.Spec.Replicas = new(int32(3))
				} else {
					rs.Spec.Replicas = new(int32(0))
				}
				if err := replicaSets.Add(rs); err != nil {
					b.Fatal(err)
				}
			}
			reader := &indexReader{stores: map[reflect.Type]toolscache.Indexer{
				reflect.TypeFor[*deployv1alpha1.DeploymentChecklistList](): checklists,
				reflect.TypeFor[*appsv1.ReplicaSetList]():                  replicaSets,
			}}
			scheme := runtime.NewScheme()
			_ = clientgoscheme.AddToScheme(scheme)
			_ = deployv1alpha1.AddToScheme(scheme)
			h := &webhook.DeploymentGate{Reader: reader, Decoder: admission.NewDecoder(scheme)}
			next := d.DeepCopy()
			next.Spec.Template.Spec.Containers[0].Image = "checkout:v99999"
			raw := func(o runtime.Object) runtime.RawExtension {
				j, _ := json.Marshal(o)
				return runtime.RawExtension{Raw: j}
			}
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "bench", Operation: admissionv1.Update, Namespace: "bench", Name: "checkout", Object: raw(next), OldObject: raw(d),
			}}
			ctx := context.Background()
			times := make([]time.Duration, 0, 1024)
			for b.Loop() {
				began := time.Now()
				resp := h.Handle(ctx, req)
				times = append(times, time.Since(began))
				if !resp.Allowed || len(resp.Patches) == 0 {
					b.Fatalf("not held: allowed %v, %d patches: %v", resp.Allowed, len(resp.Patches), resp.Result)
				}
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
		})
	}
}
