package dashboard

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/report"
	"github.com/tminus-dev/tminus/internal/templates"
)

// Row is one release in the list: what a person scanning the page needs, already in
// words. It is computed from the checklist alone (no API call).
type Row struct {
	Namespace, Name string
	Targets         string
	Revision        string
	Phase           string
	CurrentPhase    string
	Waits           string
	NextAt          string
	SignOffs        []SignOff
	Freezes         string
	Created         time.Time
}

// SignOff is a role's sign-offs: how many count, how many the checklist asks.
type SignOff struct {
	Role         string
	Given, Asked int
	By           []string
}

// Missing is how many sign-offs of the role are still asked.
func (s SignOff) Missing() int { return max(0, s.Asked-s.Given) }

// effective is the checklist as tminus walks it (a template's spec resolved), or as
// written when it is not resolved yet.
func effective(dcl *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.DeploymentChecklist {
	if e, err := templates.Effective(dcl); err == nil {
		return e
	}
	return dcl
}

// RowOf is the list row of dcl.
func RowOf(dcl *deployv1alpha1.DeploymentChecklist) Row {
	eff := effective(dcl)
	st := &dcl.Status
	r := Row{
		Namespace: dcl.Namespace, Name: dcl.Name,
		Targets:      strings.Join(dcl.Spec.TargetNames(), ", "),
		Revision:     approval.Revision(dcl),
		Phase:        string(st.Phase),
		CurrentPhase: st.CurrentPhase,
		Waits:        st.NextAction,
		SignOffs:     SignOffs(eff),
		Created:      dcl.CreationTimestamp.Time,
	}
	if r.Phase == "" {
		r.Phase = string(deployv1alpha1.PhasePending)
	}
	if st.NextActionAt != nil {
		r.NextAt = st.NextActionAt.UTC().Format(time.RFC3339)
	}
	if c := meta.FindStatusCondition(st.Conditions, checklist.CondFrozen); c != nil && c.Status == metav1.ConditionTrue {
		r.Freezes = c.Message
	}
	return r
}

// SignOffs lists, for each role an approval check of dcl asks, the sign-offs that count
// (for the current revision, not set aside by tminus) against the number asked.
func SignOffs(dcl *deployv1alpha1.DeploymentChecklist) []SignOff {
	asked := map[string]int{}
	var roles []string
	for _, p := range dcl.Spec.Phases {
		for _, c := range p.Checks {
			if c.Approval == nil {
				continue
			}
			n := int(max(c.Approval.Count, 1))
			if _, seen := asked[c.Approval.Role]; !seen {
				roles = append(roles, c.Approval.Role)
			}
			asked[c.Approval.Role] = max(asked[c.Approval.Role], n)
		}
	}
	rev := approval.Revision(dcl)
	out := make([]SignOff, 0, len(roles))
	for _, role := range roles {
		s := SignOff{Role: role, Asked: asked[role]}
		for _, a := range dcl.Status.Approvals {
			if a.Role == role && a.Revision == rev && a.NotCounted == "" {
				s.Given++
				s.By = append(s.By, a.Approver)
			}
		}
		out = append(out, s)
	}
	return out
}

// Roles are the roles the checklist asks sign-offs of, for the Approve button.
func Roles(dcl *deployv1alpha1.DeploymentChecklist) []string {
	signOffs := SignOffs(effective(dcl))
	out := make([]string, 0, len(signOffs))
	for _, s := range signOffs {
		out = append(out, s.Role)
	}
	return out
}

// SortNewestFirst orders rows by creation, newest first, then by namespace and name so
// that equal times keep one order.
func SortNewestFirst(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
}

// Mark is an outcome as a shape and a word, so it never rests on colour alone.
func Mark(outcome string) string {
	switch deployv1alpha1.Outcome(outcome) {
	case deployv1alpha1.OutcomePass:
		return "✓ Pass"
	case deployv1alpha1.OutcomeFail:
		return "✗ Fail"
	case deployv1alpha1.OutcomeNoData:
		return "∅ NoData"
	case deployv1alpha1.OutcomeError:
		return "⚠ Error"
	case deployv1alpha1.OutcomePending, "":
		return "… Pending"
	}
	return outcome
}

// Detail is a release's page.
type Detail struct {
	Row
	Why      string
	Axis     Axis
	Phases   []deployv1alpha1.PhaseStatus
	Triggers []deployv1alpha1.TriggerStatus
	Roles    []string
	Ended    bool
	Record   string
	Request  string
}

// DetailOf is the page of dcl at now.
func DetailOf(dcl *deployv1alpha1.DeploymentChecklist, now time.Time) Detail {
	d := Detail{
		Row:      RowOf(dcl),
		Why:      report.Why(dcl, now),
		Axis:     AxisOf(effective(dcl), now),
		Phases:   dcl.Status.Phases,
		Triggers: dcl.Status.Triggers,
		Roles:    Roles(dcl),
		Ended:    checklist.Ended(dcl.Status.Phase),
		Record:   dcl.Status.Record,
	}
	if rq := dcl.Status.Request; rq != nil {
		d.Request = fmt.Sprintf("%s by %s: %s (%s) %s", rq.Kind, rq.By, rq.Reason, rq.State, rq.Message)
	}
	return d
}
