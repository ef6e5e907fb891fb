package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// NotificationEvent is a transition of a checklist people act on.
// +kubebuilder:validation:Enum=AwaitingSignOff;Released;Succeeded;RolledBack;Failed;Degraded;HeldChange
type NotificationEvent string

// The transitions a NotificationPolicy may notify.
const (
	// NotifyAwaitingSignOff: a phase waits for sign-offs (once per phase), naming who is
	// still needed.
	NotifyAwaitingSignOff NotificationEvent = "AwaitingSignOff"
	// NotifyReleased: T-0, the candidate template was released to roll out.
	NotifyReleased NotificationEvent = "Released"
	// NotifySucceeded: every phase passed.
	NotifySucceeded NotificationEvent = "Succeeded"
	// NotifyRolledBack: a rollback trigger or a T-plus phase rolled the release back,
	// with the trigger, its value, its threshold and the query as sent.
	NotifyRolledBack NotificationEvent = "RolledBack"
	// NotifyFailed: the checklist failed without a rollback (e.g. a T-minus phase).
	NotifyFailed NotificationEvent = "Failed"
	// NotifyDegraded: measurements stopped answering and the checklist holds (once per
	// outage).
	NotifyDegraded NotificationEvent = "Degraded"
	// NotifyHeldChange: a template change no checklist released was held during
	// verification (once per held template).
	NotifyHeldChange NotificationEvent = "HeldChange"
)

// SlackReceiver posts to a Slack incoming webhook.
type SlackReceiver struct {
	// urlSecretRef names the Secret key holding the incoming webhook's URL
	// (https://hooks.slack.com/services/...): the URL is the credential.
	// +required
	URLSecretRef SecretKeyRef `json:"urlSecretRef"`
}

// TeamsReceiver posts an Adaptive Card to a Microsoft Teams Workflows webhook ("Post to
// a channel when a webhook request is received").
type TeamsReceiver struct {
	// urlSecretRef names the Secret key holding the workflow's URL: the URL is the
	// credential.
	// +required
	URLSecretRef SecretKeyRef `json:"urlSecretRef"`
}

// WebhookReceiver posts tminus's own JSON (docs/notifications.md), signed with
// HMAC-SHA256 when a signing key is given.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.urlSecretRef)",message="give exactly one of url and urlSecretRef"
type WebhookReceiver struct {
	// url to POST to (http or https).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	URL string `json:"url,omitempty"`

	// urlSecretRef names the Secret key holding the URL, when the URL is a credential.
	// +optional
	URLSecretRef *SecretKeyRef `json:"urlSecretRef,omitempty"`

	// signingSecretRef names the Secret key holding the HMAC-SHA256 key. Each request
	// then carries X-Tminus-Signature: sha256=<hex HMAC of "<X-Tminus-Timestamp>.<body>">.
	// +optional
	SigningSecretRef *SecretKeyRef `json:"signingSecretRef,omitempty"`
}

// NotificationReceiver is one place messages go: exactly one of slack, teams, webhook.
// +kubebuilder:validation:XValidation:rule="[has(self.slack), has(self.teams), has(self.webhook)].filter(x, x).size() == 1",message="give exactly one of slack, teams and webhook"
type NotificationReceiver struct {
	// name of the receiver, unique in the policy; status names it as <policy>/<name>.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// slack posts to a Slack incoming webhook.
	// +optional
	Slack *SlackReceiver `json:"slack,omitempty"`

	// teams posts to a Microsoft Teams Workflows webhook.
	// +optional
	Teams *TeamsReceiver `json:"teams,omitempty"`

	// webhook posts tminus's JSON, optionally signed.
	// +optional
	Webhook *WebhookReceiver `json:"webhook,omitempty"`
}

// NotificationPolicySpec says which checklists of the namespace notify whom, of what.
type NotificationPolicySpec struct {
	// selector picks the checklists of this namespace the policy applies to, by their
	// labels; every checklist of the namespace when empty.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// on lists the transitions to notify; all of them when empty.
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	// +optional
	On []NotificationEvent `json:"on,omitempty"`

	// receivers the messages go to. Their URLs and keys are read from Secrets in the
	// policy's namespace when a message is sent.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +required
	Receivers []NotificationReceiver `json:"receivers"`
}

// NotificationPolicy sends a message to its receivers when a checklist of its namespace
// makes a transition people act on: awaiting sign-off, released, succeeded, rolled back,
// failed, degraded, a held change. Each transition is sent once per receiver; what was
// sent is kept in the checklist's status.notifications.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=dcnp,categories=tminus
// +kubebuilder:printcolumn:name="Receivers",type=string,JSONPath=`.spec.receivers[*].name`
// +kubebuilder:printcolumn:name="On",type=string,JSONPath=`.spec.on`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NotificationPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec is the policy.
	// +required
	Spec NotificationPolicySpec `json:"spec"`
}

// +kubebuilder:object:root=true

// NotificationPolicyList contains a list of NotificationPolicy.
type NotificationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NotificationPolicy `json:"items"`
}

// NotificationState is where one message to one receiver stands.
// +kubebuilder:validation:Enum=Pending;Sent;Failed
type NotificationState string

// Notification states.
const (
	NotificationPending NotificationState = "Pending"
	NotificationSent    NotificationState = "Sent"
	NotificationFailed  NotificationState = "Failed"
)

// NotificationStatus is one transition's message to one receiver.
type NotificationStatus struct {
	// event is the transition.
	// +required
	Event NotificationEvent `json:"event"`

	// key identifies the transition: the event, and the phase, outage or template it
	// is about (AwaitingSignOff/T-15m). One message per key and receiver.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`

	// receiver is <policy>/<receiver>.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Receiver string `json:"receiver"`

	// summary is the message: what happened and why, as sent.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	Summary string `json:"summary,omitempty"`

	// at is when the transition happened.
	// +required
	At metav1.Time `json:"at"`

	// state: Pending (not sent yet, or being retried), Sent, Failed (given up).
	// +required
	State NotificationState `json:"state"`

	// attempts made so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// lastAttempt is when it was last tried.
	// +optional
	LastAttempt *metav1.Time `json:"lastAttempt,omitempty"`

	// sentAt is when the receiver accepted it.
	// +optional
	SentAt *metav1.Time `json:"sentAt,omitempty"`

	// error is the last attempt's failure.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Error string `json:"error,omitempty"`
}

// NotifiedStatus is every message of a checklist sent or given up on, kept compact:
// its size grows with the transitions, not with transitions times receivers.
type NotifiedStatus struct {
	// receivers lists each receiver (<policy>/<receiver>) a message of this checklist
	// was owed to, in the order first owed; transitions name them by index. A
	// receiver beyond the last is not notified.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +optional
	Receivers []string `json:"receivers,omitempty"`

	// transitions holds one entry per transition key, the oldest first. Past 64 the
	// oldest no longer shown go (a transition shown again is a new one: a new
	// degradation or held change has a key of its own).
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Transitions []NotifiedTransition `json:"transitions,omitempty"`
}

// NotifiedTransition is one transition's messages sent or given up on.
type NotifiedTransition struct {
	// key identifies the transition (see notifications' key).
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`

	// sent lists the receivers that accepted its message, by index in receivers.
	// +kubebuilder:validation:MaxItems=256
	// +optional
	Sent []int32 `json:"sent,omitempty"`

	// failed lists the receivers given up on, by index in receivers.
	// +kubebuilder:validation:MaxItems=256
	// +optional
	Failed []int32 `json:"failed,omitempty"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &NotificationPolicy{}, &NotificationPolicyList{})
		return nil
	})
}
