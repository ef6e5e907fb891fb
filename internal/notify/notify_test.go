package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func at(min int) metav1.Time {
	return metav1.NewTime(time.Date(2026, 11, 27, 14, min, 0, 0, time.UTC))
}

// rolledBack is a checklist whose error-rate trigger fired after its release.
func rolledBack() *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-v2-4-1", UID: "7d1c",
			CreationTimestamp: at(0), Labels: map[string]string{"team": "payments"}},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v2.4.1",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Metrics: []deployv1alpha1.MetricSpec{{Name: "error-rate",
					Query: `sum(rate(http_requests_total{code=~"5..",pod=~"{{target}}-{{podTemplateHash}}-.*"}[5m]))`}},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{{Name: "error-rate-5pct", Metric: "error-rate",
					Above: new("0.05")}},
			},
		},
		Status: deployv1alpha1.DeploymentChecklistStatus{
			Phase: deployv1alpha1.PhaseRolledBack,
			Triggers: []deployv1alpha1.TriggerStatus{{Name: "error-rate-5pct", Outcome: "Failed", Value: "0.083",
				Threshold: "> 0.05", BreachingSince: new(at(6))}},
			Target: &deployv1alpha1.TargetStatus{PreDeployImages: []string{"shop/checkout:v2.4.0"},
				CandidateImages: []string{"shop/checkout:v2.4.1"}, ReleasedPodTemplateHash: "5d8f7",
				T0At: new(at(3)), ReleasedAt: new(at(3)), AvailableAt: new(at(4)), RestoredAt: new(at(7))},
			Rollback: &deployv1alpha1.RollbackRecord{Reason: "TriggerFired", Value: "0.083", FiredAt: at(6),
				CompletedAt: new(at(7)), Message: "rollback trigger error-rate-5pct fired: 0.083 > 0.05"},
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "TriggerFired",
				Message: "rollback trigger error-rate-5pct fired: 0.083 > 0.05", LastTransitionTime: at(6)}},
		},
	}
}

func policy(created metav1.Time, on ...deployv1alpha1.NotificationEvent) deployv1alpha1.NotificationPolicy {
	return deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "payments", CreationTimestamp: created},
		Spec: deployv1alpha1.NotificationPolicySpec{On: on, Receivers: []deployv1alpha1.NotificationReceiver{
			{Name: "chat", Slack: &deployv1alpha1.SlackReceiver{URLSecretRef: deployv1alpha1.SecretKeyRef{Name: "s", Key: "url"}}},
			{Name: "audit", Webhook: &deployv1alpha1.WebhookReceiver{URL: "https://audit.example/hook"}},
		}},
	}
}

func TestARollbackIsOwedOnceToEachReceiverWithItsTriggerValueThresholdAndQuery(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	st := dcl.Status.DeepCopy()
	g.Expect(Plan([]deployv1alpha1.NotificationPolicy{policy(at(0))}, dcl, st)).To(Equal(4),
		"released and rolled back, to two receivers")
	g.Expect(Plan([]deployv1alpha1.NotificationPolicy{policy(at(0))}, dcl, st)).To(BeZero(), "planned once")
	var rb []deployv1alpha1.NotificationStatus
	for _, n := range st.Notifications {
		g.Expect(n.State).To(Equal(deployv1alpha1.NotificationPending))
		if n.Event == deployv1alpha1.NotifyRolledBack {
			rb = append(rb, n)
		}
	}
	g.Expect(rb).To(HaveLen(2))
	g.Expect(rb[0].Receiver).To(Equal("payments/chat"))
	g.Expect(rb[0].At).To(Equal(at(6)))
	g.Expect(rb[0].Summary).To(Equal("shop/checkout-v2-4-1 (Deployment checkout, revision v2.4.1) rolled back: " +
		"rollback trigger error-rate-5pct fired: 0.083 > 0.05 (query: " +
		`sum(rate(http_requests_total{code=~"5..",pod=~"checkout-5d8f7-.*"}[5m])))` +
		". Restored: shop/checkout:v2.4.0."))
	m := NewMessage(dcl, &rb[1])
	g.Expect(m.ID).To(Equal("7d1c/RolledBack/payments/audit"))
	g.Expect(m.Trigger).To(Equal(&Trigger{Name: "error-rate-5pct", Value: "0.083", Threshold: "> 0.05",
		Query: `sum(rate(http_requests_total{code=~"5..",pod=~"checkout-5d8f7-.*"}[5m]))`}))
}

func TestAPolicyCreatedLaterDoesNotAnnounceEndedReleasesButIsToldOfAWaitStillGoingOn(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	st := dcl.Status.DeepCopy()
	g.Expect(Plan([]deployv1alpha1.NotificationPolicy{policy(at(30))}, dcl, st)).To(BeZero())

	waiting := &deployv1alpha1.DeploymentChecklistStatus{Phase: deployv1alpha1.PhaseHolding, CurrentPhase: "T-15m",
		Conditions: []metav1.Condition{{Type: "AwaitingApproval", Status: metav1.ConditionTrue, Reason: "WaitingForApproval",
			Message: "waiting for qa (1 more)", LastTransitionTime: at(2)}}}
	g.Expect(Plan([]deployv1alpha1.NotificationPolicy{policy(at(30))}, dcl, waiting)).To(Equal(2))
	g.Expect(waiting.Notifications[0].Key).To(Equal("AwaitingSignOff/T-15m"))
	g.Expect(waiting.Notifications[0].Summary).To(ContainSubstring("needs sign-off: waiting for qa (1 more)"))
}

func TestAPolicyNotifiesOnlyTheEventsAndChecklistsItNames(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	st := dcl.Status.DeepCopy()
	p := policy(at(0), deployv1alpha1.NotifyRolledBack, deployv1alpha1.NotifyFailed)
	g.Expect(Plan([]deployv1alpha1.NotificationPolicy{p}, dcl, st)).To(Equal(2))
	g.Expect(st.Notifications[0].Event).To(Equal(deployv1alpha1.NotifyRolledBack))

	other := policy(at(0))
	other.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "search"}}
	st = dcl.Status.DeepCopy()
	g.Expect(Plan([]deployv1alpha1.NotificationPolicy{other}, dcl, st)).To(BeZero())
}

func TestStatusKeepsAtMostItsLimitDroppingTheOldestSentFirst(t *testing.T) {
	g := NewWithT(t)
	ns := make([]deployv1alpha1.NotificationStatus, 0, MaxEntries+2)
	for i := range MaxEntries + 2 {
		state := deployv1alpha1.NotificationSent
		if i == 0 {
			state = deployv1alpha1.NotificationPending
		}
		ns = append(ns, deployv1alpha1.NotificationStatus{Key: string(rune('a' + i%26)), State: state})
	}
	out := trim(ns)
	g.Expect(out).To(HaveLen(MaxEntries))
	g.Expect(out[0].State).To(Equal(deployv1alpha1.NotificationPending), "a message not sent yet is kept")
}

func TestAMessageSentIsNeverPlannedAgainThoughItsEntryWasDropped(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	st := dcl.Status.DeepCopy()
	// Forty receivers: released and rolled back owe 80 messages, more than the 64
	// entries status.notifications holds.
	p := policy(at(0))
	p.Spec.Receivers = nil
	for i := range 40 {
		p.Spec.Receivers = append(p.Spec.Receivers, deployv1alpha1.NotificationReceiver{Name: fmt.Sprintf("r%d", i),
			Webhook: &deployv1alpha1.WebhookReceiver{URL: "https://audit.example/hook"}})
	}
	policies := []deployv1alpha1.NotificationPolicy{p}
	d := &Dispatcher{}
	sent := map[string]int{}
	// The reconcile plans, the dispatcher sends every pending message and records it,
	// again and again.
	for range 5 {
		Plan(policies, dcl, st)
		g.Expect(len(st.Notifications)).To(BeNumerically("<=", MaxEntries))
		var results []outcome
		for _, n := range st.Notifications {
			if n.State == deployv1alpha1.NotificationPending {
				sent[n.Key+" to "+n.Receiver]++
				results = append(results, outcome{key: n.Key, receiver: n.Receiver, at: at(10).Time})
			}
		}
		d.apply(st, results)
	}
	g.Expect(sent).To(HaveLen(80))
	for m, n := range sent {
		g.Expect(n).To(Equal(1), m)
	}
	g.Expect(Plan(policies, dcl, st)).To(BeZero())
	g.Expect(st.Notified.Transitions).To(HaveLen(2))
	g.Expect(st.Notified.Transitions[0].Sent).To(HaveLen(40))
}

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	g := NewWithT(t)
	var pretty any
	g.Expect(json.Unmarshal(got, &pretty)).To(Succeed())
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	g.Expect(enc.Encode(pretty)).To(Succeed())
	out := bytes.TrimRight(buf.Bytes(), "\n")
	path := filepath.Join("testdata", name)
	if *update {
		g.Expect(os.WriteFile(path, append(out, '\n'), 0o644)).To(Succeed())
	}
	want, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out) + "\n").To(Equal(string(want)))
}

func rolledBackMessage(receiver string) Message {
	dcl := rolledBack()
	st := dcl.Status.DeepCopy()
	Plan([]deployv1alpha1.NotificationPolicy{policy(at(0), deployv1alpha1.NotifyRolledBack)}, dcl, st)
	for i := range st.Notifications {
		if st.Notifications[i].Receiver == receiver {
			return NewMessage(dcl, &st.Notifications[i])
		}
	}
	panic("no message for " + receiver)
}

func TestSlackPayloadIsAnIncomingWebhookMessageWithFallbackTextAndBlocks(t *testing.T) {
	g := NewWithT(t)
	body, err := SlackBody(rolledBackMessage("payments/chat"))
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "slack-rolled-back.json", body)
	// The documented shape: text, and blocks of known types with their fields.
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type string `json:"type"`
			} `json:"text"`
			Fields []json.RawMessage `json:"fields"`
		} `json:"blocks"`
	}
	g.Expect(json.Unmarshal(body, &msg)).To(Succeed())
	g.Expect(msg.Text).To(ContainSubstring("0.083 &gt; 0.05"), "mrkdwn escapes > in the fallback text")
	g.Expect(msg.Blocks[0].Type).To(Equal("header"))
	g.Expect(msg.Blocks[0].Text.Type).To(Equal("plain_text"), "a header block takes plain_text only")
	for _, b := range msg.Blocks {
		g.Expect(b.Type).To(BeElementOf("header", "section", "context"))
		g.Expect(len(b.Fields)).To(BeNumerically("<=", 10), "a section holds at most ten fields")
	}
}

func TestTeamsPayloadIsAWorkflowsMessageWithOneAdaptiveCard(t *testing.T) {
	g := NewWithT(t)
	body, err := TeamsBody(rolledBackMessage("payments/chat"))
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "teams-rolled-back.json", body)
	var msg struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string  `json:"contentType"`
			ContentURL  *string `json:"contentUrl"`
			Content     struct {
				Type    string            `json:"type"`
				Version string            `json:"version"`
				Body    []json.RawMessage `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	g.Expect(json.Unmarshal(body, &msg)).To(Succeed())
	g.Expect(msg.Type).To(Equal("message"))
	g.Expect(msg.Attachments).To(HaveLen(1))
	g.Expect(msg.Attachments[0].ContentType).To(Equal("application/vnd.microsoft.card.adaptive"))
	g.Expect(msg.Attachments[0].Content.Type).To(Equal("AdaptiveCard"))
	g.Expect(msg.Attachments[0].Content.Version).To(Equal("1.4"))
}

func TestWebhookPayloadIsTheDocumentedSchemaAndItsSignatureCoversTimestampAndBody(t *testing.T) {
	g := NewWithT(t)
	body, err := WebhookBody(rolledBackMessage("payments/audit"))
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "webhook-rolled-back.json", body)
	// A known-answer HMAC-SHA256 (key "key", message "1700000000.{}"), computed with
	// openssl dgst -sha256 -hmac key.
	g.Expect(Sign([]byte("key"), "1700000000", []byte("{}"))).To(Equal(
		"sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"))
	g.Expect(Sign([]byte("key"), "1700000001", []byte("{}"))).NotTo(Equal(Sign([]byte("key"), "1700000000", []byte("{}"))),
		"the timestamp is signed")
}

func TestRetriesBackOffDoublingToTheCapAndGiveUpOnARefusalOrTheLastAttempt(t *testing.T) {
	g := NewWithT(t)
	now := at(10).Time
	d := &Dispatcher{Clock: clocktesting.NewFakePassiveClock(now), Backoff: time.Second, MaxBackoff: 5 * time.Second,
		MaxAttempts: 3}
	n := &deployv1alpha1.NotificationStatus{Attempts: 0}
	g.Expect(d.nextAttempt(n).IsZero()).To(BeTrue(), "the first attempt is at once")
	for attempts, wait := range map[int32]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		4: 5 * time.Second, 9: 5 * time.Second} {
		n := &deployv1alpha1.NotificationStatus{Attempts: attempts, LastAttempt: new(metav1.NewTime(now))}
		g.Expect(d.nextAttempt(n)).To(Equal(now.Add(wait)), "after %d attempts", attempts)
	}

	st := &deployv1alpha1.DeploymentChecklistStatus{Notifications: []deployv1alpha1.NotificationStatus{
		{Event: "Released", Key: "Released", Receiver: "p/slow", State: deployv1alpha1.NotificationPending, Attempts: 1},
		{Event: "Released", Key: "Released", Receiver: "p/gone", State: deployv1alpha1.NotificationPending},
		{Event: "Released", Key: "Released", Receiver: "p/ok", State: deployv1alpha1.NotificationPending},
	}}
	gaveUp := d.apply(st, []outcome{
		{key: "Released", receiver: "p/slow", err: errors.New("HTTP 503"), at: now},
		{key: "Released", receiver: "p/gone", err: PermanentError{errors.New("HTTP 404 no_service")}, at: now},
		{key: "Released", receiver: "p/ok", at: now},
	})
	g.Expect(st.Notifications[0].State).To(Equal(deployv1alpha1.NotificationPending), "2 of 3 attempts")
	g.Expect(st.Notifications[0].Error).To(Equal("HTTP 503"))
	g.Expect(st.Notifications[1].State).To(Equal(deployv1alpha1.NotificationFailed), "a refusal is not retried")
	g.Expect(st.Notifications[2].State).To(Equal(deployv1alpha1.NotificationSent))
	g.Expect(st.Notifications[2].SentAt.Time).To(Equal(now))
	g.Expect(gaveUp).To(HaveLen(1))

	dcl := &deployv1alpha1.DeploymentChecklist{Status: *st}
	setNotified(dcl)
	g.Expect(dcl.Status.Conditions[0].Reason).To(Equal(ReasonNotificationFailed))
	g.Expect(dcl.Status.Conditions[0].Message).To(ContainSubstring("p/gone after 1 attempts: HTTP 404 no_service"))

	d.apply(st, []outcome{{key: "Released", receiver: "p/slow", err: errors.New("HTTP 503"), at: now}})
	g.Expect(st.Notifications[0].State).To(Equal(deployv1alpha1.NotificationFailed), "the last attempt failed")
}

// rolledBackByCarol is rolledBack, rolled back at carol's request instead of by its
// trigger.
func rolledBackByCarol() *deployv1alpha1.DeploymentChecklist {
	dcl := rolledBack()
	st := &dcl.Status
	st.Triggers[0].Outcome, st.Triggers[0].BreachingSince = "Passed", nil
	st.Rollback = &deployv1alpha1.RollbackRecord{Reason: "RollbackRequested", FiredAt: at(6), CompletedAt: new(at(7)),
		Message: "rolled back by carol: CVE-2026-1234 in the new image"}
	st.Request = &deployv1alpha1.RequestRecord{Kind: deployv1alpha1.RequestRollback, By: "carol",
		Reason: "CVE-2026-1234 in the new image", WrittenBy: "carol", State: deployv1alpha1.RequestActed, At: at(6),
		After: deployv1alpha1.PhaseVerifying}
	st.Conditions[0].Reason, st.Conditions[0].Message = "RollbackRequested", st.Rollback.Message
	return dcl
}

func TestARollbackAPersonRequestedIsAnnouncedWithWhoAndWhy(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBackByCarol()
	st := dcl.Status.DeepCopy()
	Plan([]deployv1alpha1.NotificationPolicy{policy(at(0), deployv1alpha1.NotifyRolledBack)}, dcl, st)
	g.Expect(st.Notifications).To(HaveLen(2))
	g.Expect(st.Notifications[0].Summary).To(Equal("shop/checkout-v2-4-1 (Deployment checkout, revision v2.4.1) " +
		"rolled back by carol: CVE-2026-1234 in the new image. Restored: shop/checkout:v2.4.0."))
	m := NewMessage(dcl, &st.Notifications[0])
	g.Expect(m.Trigger).To(BeNil())
	g.Expect(m.Request).To(Equal(&Request{Kind: "Rollback", By: "carol", Reason: "CVE-2026-1234 in the new image"}))
	body, err := SlackBody(m)
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "slack-rolled-back-by-request.json", body)
}

// rolledBackFromTemplate is rolledBack made from a template that names an on-call
// engineer, a lead and two runbooks; the release names its own on-call engineer.
func rolledBackFromTemplate() *deployv1alpha1.DeploymentChecklist {
	dcl := rolledBack()
	dcl.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"}
	body := dcl.Spec.ChecklistBody
	body.Contacts = []deployv1alpha1.Contact{
		{Role: "On-Call Engineer", Name: "unassigned", Reach: "unassigned"},
		{Role: "DevOps Lead", Name: "Sam Lee", Reach: "+1 555 0100"},
	}
	body.Runbooks = []deployv1alpha1.Runbook{
		{Title: "Health Check", URL: "http://checkout.shop.svc/health"},
		{Title: "Sentry", URL: "https://sentry.io"},
	}
	dcl.Status.Resolved = templates.Raw(body)
	dcl.Spec.ChecklistBody = deployv1alpha1.ChecklistBody{
		Contacts: []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "Dana <dana@shop.example>", Reach: "#checkout-oncall"}},
	}
	return dcl
}

func TestEveryNotificationNamesTheContactsAndRunbooksTheReleasesOwnOnCallWinningOverTheTemplates(t *testing.T) {
	g := NewWithT(t)
	eff, err := templates.Effective(rolledBackFromTemplate())
	g.Expect(err).NotTo(HaveOccurred())
	st := eff.Status.DeepCopy()
	Plan([]deployv1alpha1.NotificationPolicy{policy(at(0), deployv1alpha1.NotifyRolledBack)}, eff, st)
	g.Expect(st.Notifications).To(HaveLen(2))
	wantContacts := []Contact{
		{Role: "On-Call Engineer", Name: "Dana <dana@shop.example>", Reach: "#checkout-oncall"},
		{Role: "DevOps Lead", Name: "Sam Lee", Reach: "+1 555 0100"},
	}
	for i := range st.Notifications {
		m := NewMessage(eff, &st.Notifications[i])
		g.Expect(m.Contacts).To(Equal(wantContacts), "the release's on-call replaces the template's; the lead stays")
		g.Expect(m.Runbooks).To(Equal([]Runbook{{Title: "Health Check", URL: "http://checkout.shop.svc/health"},
			{Title: "Sentry", URL: "https://sentry.io"}}))
	}
	m := NewMessage(eff, &st.Notifications[0])

	body, err := WebhookBody(m)
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "webhook-rolled-back-with-contacts.json", body)
	var doc struct {
		Contacts []Contact `json:"contacts"`
		Runbooks []Runbook `json:"runbooks"`
	}
	g.Expect(json.Unmarshal(body, &doc)).To(Succeed())
	g.Expect(doc.Contacts).To(Equal(wantContacts))
	g.Expect(doc.Runbooks).To(HaveLen(2))

	slack, err := SlackBody(m)
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "slack-rolled-back-with-contacts.json", slack)
	g.Expect(string(slack)).To(ContainSubstring("Dana &lt;dana@shop.example&gt;"), "mrkdwn escapes a contact's < and >")
	g.Expect(string(slack)).To(ContainSubstring("<https://sentry.io|Sentry>"))

	teams, err := TeamsBody(m)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(teams)).To(And(ContainSubstring(`"title":"DevOps Lead","value":"Sam Lee, +1 555 0100"`),
		ContainSubstring("[Health Check](http://checkout.shop.svc/health)")))
}

// TestAStatefulSetsReleaseIsAnnouncedAsAStatefulSet: the summary and the chat message's
// facts name a StatefulSet target by its kind; a release of several kinds names each.
func TestAStatefulSetsReleaseIsAnnouncedAsAStatefulSet(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	dcl.Name, dcl.Spec.Target = "db-v2-4-1", &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	st := dcl.Status.DeepCopy()
	Plan([]deployv1alpha1.NotificationPolicy{policy(at(0))}, dcl, st)
	g.Expect(st.Notifications).NotTo(BeEmpty())
	for _, n := range st.Notifications {
		g.Expect(n.Summary).To(HavePrefix("shop/db-v2-4-1 (StatefulSet db, revision v2.4.1) "))
	}
	m := NewMessage(dcl, &st.Notifications[0])
	g.Expect(m.facts()).To(ContainElement([2]string{"StatefulSet", "db"}))

	dcl.Spec.Target, dcl.Spec.Targets = nil, []deployv1alpha1.TargetRef{{Name: "web"}, {Kind: deployv1alpha1.KindDaemonSet, Name: "agent"}}
	g.Expect(targetsOf(&dcl.Spec)).To(Equal("Deployment web, DaemonSet agent"))
	mixed := NewMessage(dcl, &st.Notifications[0])
	g.Expect(mixed.facts()).To(ContainElement([2]string{"Workloads", "web,agent"}))
	dcl.Spec.Targets = []deployv1alpha1.TargetRef{{Name: "frontend"}, {Kind: deployv1alpha1.KindDeployment, Name: "backend"}}
	g.Expect(targetsOf(&dcl.Spec)).To(Equal("Deployments frontend, backend"))
}
