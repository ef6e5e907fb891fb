package webhook

import (
	"context"
	"fmt"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/deputy"
)

// PolicyPath is where the NotificationPolicy webhook is served.
const PolicyPath = "/validate-deploy-tminus-dev-v1alpha1-notificationpolicy"

// NotificationPolicyWebhook admits a NotificationPolicy, or refuses it naming the field:
// a policy makes the manager read the Secrets its receivers name (Slack and Teams URLs,
// a webhook's URL and signing key) and send what they unlock, so its writer must be
// allowed to get each of them, judged with where the messages go (internal/deputy);
// and a selector that does not parse would silently match no checklist. It only
// validates: it never changes the policy.
type NotificationPolicyWebhook struct {
	// Client creates SubjectAccessReviews.
	Client client.Client
	// Decoder reads the admission request's objects.
	Decoder admission.Decoder
}

// Handle admits or refuses a notification policy.
func (w *NotificationPolicyWebhook) Handle(ctx context.Context, req admission.Request) admission.Response {
	var obj deployv1alpha1.NotificationPolicy
	var old *deployv1alpha1.NotificationPolicy
	if err := w.Decoder.DecodeRaw(req.Object, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if len(req.OldObject.Raw) > 0 {
		old = &deployv1alpha1.NotificationPolicy{}
		if err := w.Decoder.DecodeRaw(req.OldObject, old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	if sel := obj.Spec.Selector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			return admission.Denied(fmt.Sprintf("spec.selector: %v (operators are In, NotIn, Exists and DoesNotExist; "+
				"In and NotIn need values): a selector that does not parse would match no checklist", err))
		}
	}
	refusal, err := deputy.Judge(ctx, w.Client, deputy.SubjectOf(req.UserInfo), deputy.PolicyReferences(&obj), deputy.PolicyReferences(old))
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if refusal != nil {
		return admission.Denied(refusal.Message() + ", so a notification policy it writes may not make tminus do it")
	}
	return admission.Allowed("")
}
