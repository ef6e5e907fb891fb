package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FreezeMode says whether a freeze's windows are when releases may not start (Freeze)
// or the only times they may (Allow).
// +kubebuilder:validation:Enum=Freeze;Allow
type FreezeMode string

// Freeze modes.
const (
	FreezeModeFreeze FreezeMode = "Freeze"
	FreezeModeAllow  FreezeMode = "Allow"
)

// BreakGlassReasonAnnotation, on a checklist, says why a release starts during a freeze
// (with its exception role's sign-offs). Required for a break-glass.
const BreakGlassReasonAnnotation = "deploy.tminus.dev/break-glass-reason"

// FreezeWindow is one window: a one-off (start and end), or a recurring one (an RRULE or
// a cron schedule, a duration and a time zone).
// +kubebuilder:validation:XValidation:rule="has(self.start) == has(self.end)",message="give start and end together"
// +kubebuilder:validation:XValidation:rule="has(self.start) != (has(self.rrule) || has(self.cron))",message="give either start and end (one-off) or rrule or cron (recurring)"
// +kubebuilder:validation:XValidation:rule="!(has(self.rrule) && has(self.cron))",message="give rrule or cron, not both"
// +kubebuilder:validation:XValidation:rule="(has(self.rrule) || has(self.cron)) == has(self.duration)",message="a recurring window needs a duration; a one-off one takes none"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || self.end > self.start",message="end must be after start"
// +kubebuilder:validation:XValidation:rule="!has(self.timeZone) || has(self.rrule) || has(self.cron)",message="timeZone is for recurring windows; start and end carry their own offset"
type FreezeWindow struct {
	// start of a one-off window (RFC 3339, with its offset).
	// +optional
	Start *metav1.Time `json:"start,omitempty"`

	// end of a one-off window.
	// +optional
	End *metav1.Time `json:"end,omitempty"`

	// rrule is an RFC 5545 recurrence rule for the windows' starts, e.g.
	// "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH;BYHOUR=9;BYMINUTE=0;BYSECOND=0", in timeZone,
	// counted from 2024-01-01T00:00:00 there (give BYHOUR, BYMINUTE and BYSECOND for
	// the time of day). FREQ is YEARLY, MONTHLY, WEEKLY or DAILY; use cron for finer.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^(RRULE:)?FREQ=(YEARLY|MONTHLY|WEEKLY|DAILY)(;[A-Z]+=[-+,A-Za-z0-9]+)*$`
	// +optional
	RRule string `json:"rrule,omitempty"`

	// cron is a five-field cron schedule (minute hour day-of-month month day-of-week)
	// for the windows' starts, e.g. "0 9 * * 1-4", in timeZone.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^\S+ \S+ \S+ \S+ \S+$`
	// +optional
	Cron string `json:"cron,omitempty"`

	// duration of each recurring window, e.g. 7h: elapsed time, so a window that spans
	// a daylight-saving change ends that long after it began.
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	Duration string `json:"duration,omitempty"`

	// timeZone of a recurring window: an IANA name such as Europe/Berlin (UTC when
	// empty).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][-+A-Za-z0-9_/]*$`
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
}

// ChangeFreezeSpec is when releases may not start (mode Freeze), or may only start (mode
// Allow), for the checklists it selects.
type ChangeFreezeSpec struct {
	// mode: Freeze (default), no T-0 inside the windows; Allow, T-0 only inside them.
	// +kubebuilder:default=Freeze
	// +optional
	Mode FreezeMode `json:"mode,omitempty"`

	// reason is told to whoever's release waits: "Holiday freeze", "INC-4211".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +required
	Reason string `json:"reason"`

	// windows of the freeze (or of the allowed times).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	Windows []FreezeWindow `json:"windows"`

	// selector picks the checklists it applies to: those whose labels, or whose target
	// Deployment's labels, it matches; all when empty. A checklist's author cannot take it
	// out of a freeze by a label edit without the right to update the freeze (the
	// checklist webhook judges label changes). A selector the manager cannot read (a
	// label key of the wrong form) makes the freeze hold every checklist of its scope.
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions: operator must be In, NotIn, Exists or DoesNotExist (spelled so)"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="matchExpressions: In and NotIn need at least one value; Exists and DoesNotExist take none"
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// exceptionRole is the sign-off role whose sign-offs let a release start anyway
	// (break-glass): exceptionCount distinct people, for the checklist's revision,
	// verified by the approval webhook like every sign-off, and the checklist's
	// annotation deploy.tminus.dev/break-glass-reason. Without it, no exception.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	ExceptionRole string `json:"exceptionRole,omitempty"`

	// exceptionCount is how many distinct people of exceptionRole must sign off (2).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	// +kubebuilder:default=2
	// +optional
	ExceptionCount int32 `json:"exceptionCount,omitempty"`
}

// ChangeFreeze holds every release of its namespace's checklists that it selects: no T-0
// inside a Freeze window, or outside an Allow window. Rollbacks are never frozen, and a
// release already verifying goes on.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=cf,categories=tminus
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Exception",type=string,JSONPath=`.spec.exceptionRole`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChangeFreeze struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec is the freeze.
	// +required
	Spec ChangeFreezeSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ChangeFreezeList contains a list of ChangeFreeze.
type ChangeFreezeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChangeFreeze `json:"items"`
}

// ClusterChangeFreezeSpec is a ChangeFreeze for the namespaces it selects.
type ClusterChangeFreezeSpec struct {
	ChangeFreezeSpec `json:",inline"`

	// namespaceSelector picks the namespaces by their labels; all when empty. One the
	// manager cannot read makes the freeze hold every namespace.
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions: operator must be In, NotIn, Exists or DoesNotExist (spelled so)"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="matchExpressions: In and NotIn need at least one value; Exists and DoesNotExist take none"
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// ClusterChangeFreeze is a ChangeFreeze for every namespace it selects: what a platform
// team declares for the holidays or an incident.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ccf,categories=tminus
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Exception",type=string,JSONPath=`.spec.exceptionRole`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterChangeFreeze struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec is the freeze.
	// +required
	Spec ClusterChangeFreezeSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ClusterChangeFreezeList contains a list of ClusterChangeFreeze.
type ClusterChangeFreezeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterChangeFreeze `json:"items"`
}

// BreakGlassRecord records a release started during a freeze.
type BreakGlassRecord struct {
	// freezes broken, e.g. "ClusterChangeFreeze holidays (Holiday freeze)".
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Freezes []string `json:"freezes,omitempty"`

	// reason is the checklist's deploy.tminus.dev/break-glass-reason annotation.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Reason string `json:"reason,omitempty"`

	// approvers are those whose sign-offs of the exception roles counted.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Approvers []string `json:"approvers,omitempty"`

	// at is when the release started.
	// +required
	At metav1.Time `json:"at"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &ChangeFreeze{}, &ChangeFreezeList{},
			&ClusterChangeFreeze{}, &ClusterChangeFreezeList{})
		return nil
	})
}
