package webhook_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// policyWriters lets alice and mallory write notification policies.
func policyWriters(t *testing.T) {
	grant(t, "notification-policy-writer", []rbacv1.PolicyRule{{APIGroups: []string{"deploy.tminus.dev"},
		Resources: []string{"notificationpolicies"}, Verbs: []string{"get", "create", "update", "patch"}}}, "alice", "mallory")
}

func policy(name string, receivers ...deployv1alpha1.NotificationReceiver) *deployv1alpha1.NotificationPolicy {
	return &deployv1alpha1.NotificationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: deployv1alpha1.NotificationPolicySpec{Receivers: receivers}}
}

func editPolicy(c client.Client, np *deployv1alpha1.NotificationPolicy, change func(*deployv1alpha1.NotificationPolicy)) error {
	var cur deployv1alpha1.NotificationPolicy
	if err := bed.Client.Get(context.Background(), client.ObjectKeyFromObject(np), &cur); err != nil {
		return err
	}
	change(&cur)
	return c.Update(context.Background(), &cur)
}

func TestANotificationPolicyCannotMakeTminusReadASecretItsAuthorCannot(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	policyWriters(t)
	token := deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}

	// mallory names a Secret she may not read as a Slack URL: tminus would post to
	// whatever it holds, and read it for her.
	slack := policy("slack-m", deployv1alpha1.NotificationReceiver{Name: "chat", Slack: &deployv1alpha1.SlackReceiver{URLSecretRef: token}})
	g.Eventually(func() error { return as(t, "mallory").Create(ctx, slack) }, time.Minute, 200*time.Millisecond).Should(MatchError(ContainSubstring(
		`spec.receivers[0].slack.urlSecretRef: user "mallory" may not get Secret prom-token in namespace shop, ` +
			`so a notification policy it writes may not make tminus do it`)))
	teams := policy("teams-m", deployv1alpha1.NotificationReceiver{Name: "chat", Teams: &deployv1alpha1.TeamsReceiver{URLSecretRef: token}})
	g.Expect(as(t, "mallory").Create(ctx, teams)).To(MatchError(ContainSubstring(`spec.receivers[0].teams.urlSecretRef: user "mallory" may not get Secret prom-token`)))

	// alice, who may, signs a webhook receiver's messages with it.
	signed := policy("signed", deployv1alpha1.NotificationReceiver{Name: "audit", Webhook: &deployv1alpha1.WebhookReceiver{
		URL: "https://audit.example/hook", SigningSecretRef: &token}})
	g.Eventually(func() error { return as(t, "alice").Create(ctx, signed) }, time.Minute, 200*time.Millisecond).Should(Succeed())
	// mallory points the signed messages at her own server: the key is unchanged, its
	// use is not.
	err := editPolicy(as(t, "mallory"), signed, func(np *deployv1alpha1.NotificationPolicy) {
		np.Spec.Receivers[0].Webhook.URL = "https://mallory.example/hook"
	})
	g.Expect(err).To(MatchError(ContainSubstring(`spec.receivers[0].webhook.url changed, and it decides what ` +
		`spec.receivers[0].webhook.signingSecretRef makes tminus do: user "mallory" may not get Secret prom-token in namespace shop`)))
	// Which transitions are sent is hers to change.
	g.Expect(editPolicy(as(t, "mallory"), signed, func(np *deployv1alpha1.NotificationPolicy) {
		np.Spec.On = []deployv1alpha1.NotificationEvent{deployv1alpha1.NotifyRolledBack}
	})).To(Succeed())
}

func TestANotificationPolicySelectorThatDoesNotParseIsRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	hook := deployv1alpha1.NotificationReceiver{Name: "audit", Webhook: &deployv1alpha1.WebhookReceiver{URL: "https://audit.example/hook"}}
	lower := policy("selector-lower-case", hook)
	lower.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "team", Operator: "in", Values: []string{"checkout"}}}}
	g.Expect(bed.Client.Create(ctx, lower)).To(MatchError(ContainSubstring(`spec.selector: "in" is not a valid label selector operator`)))
	g.Expect(bed.Client.Create(ctx, lower)).To(MatchError(ContainSubstring("a selector that does not parse would match no checklist")))
	empty := policy("selector-no-values", hook)
	empty.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "team", Operator: metav1.LabelSelectorOpIn}}}
	g.Expect(bed.Client.Create(ctx, empty)).To(MatchError(ContainSubstring("spec.selector: ")))
	g.Expect(bed.Client.Create(ctx, empty)).To(MatchError(ContainSubstring("values set can't be empty")))

	empty.Spec.Selector.MatchExpressions[0].Values = []string{"checkout"}
	g.Expect(bed.Client.Create(ctx, empty)).To(Succeed())
}
