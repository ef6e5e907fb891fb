// Package report renders a checklist's status for people: a timeline (phases, checks,
// values against thresholds, triggers, approvals, what happens next) and a one-paragraph
// answer to "why is it waiting" or "why did it roll back". The kubectl plugin prints
// them; they read status only, so they show what the controller decided.
package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/templates"
)

// Timeline writes the checklist's timeline to w: for one made from a template, the
// checklist as resolved (the values it walks).
func Timeline(w io.Writer, dcl *deployv1alpha1.DeploymentChecklist, now time.Time) error { //nolint:gocyclo // one section per part of the checklist, in the order printed
	if eff, err := templates.Effective(dcl); err == nil {
		dcl = eff
	}
	st := &dcl.Status
	var b strings.Builder
	refs := dcl.Spec.TargetRefs()
	targets := make([]string, len(refs))
	for i, r := range refs {
		targets[i] = r.KindOf() + "/" + r.Name
	}
	fmt.Fprintf(&b, "%s/%s  target %s", dcl.Namespace, dcl.Name, strings.Join(targets, ","))
	if dcl.Spec.Revision != "" {
		fmt.Fprintf(&b, "  revision %s", dcl.Spec.Revision)
	}
	if t := st.Template; t != nil {
		fmt.Fprintf(&b, "  from %s %s (generation %d", t.Kind, t.Name, t.Generation)
		for _, k := range slices.Sorted(maps.Keys(t.Parameters)) {
			fmt.Fprintf(&b, ", %s=%s", k, t.Parameters[k])
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	phase := string(st.Phase)
	if phase == "" {
		phase = "Pending (not reconciled yet)"
	}
	fmt.Fprintf(&b, "Phase:  %s", phase)
	if st.CurrentPhase != "" {
		fmt.Fprintf(&b, " (%s open)", st.CurrentPhase)
	}
	if dcl.Spec.DeployAt != nil {
		fmt.Fprintf(&b, "   T-0: %s (%s)", stamp(dcl.Spec.DeployAt), relative(dcl.Spec.DeployAt.Time, now))
	}
	if c := meta.FindStatusCondition(st.Conditions, "Ready"); c != nil {
		fmt.Fprintf(&b, "   Ready: %s (%s)", c.Status, c.Reason)
	}
	b.WriteString("\n")
	if st.NextAction != "" {
		fmt.Fprintf(&b, "Next:   %s", st.NextAction)
		if st.NextActionAt != nil {
			fmt.Fprintf(&b, " (next scheduled %s)", relative(st.NextActionAt.Time, now))
		}
		b.WriteString("\n")
	}
	if _, err := io.WriteString(w, b.String()+"\n"); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	put(tw, "PHASE\tSTATE\tOPENED\tCHECK\tKIND\tOUTCOME\tVALUE\tNEEDS\tNOTE\n")
	records := map[string]deployv1alpha1.PhaseStatus{}
	for _, p := range st.Phases {
		records[p.Name] = p
	}
	for _, ph := range dcl.Spec.Phases {
		rec, ok := records[ph.Name]
		state := "Pending"
		if ok {
			state = string(rec.State)
		}
		first := true
		for _, c := range ph.Checks {
			cr := checkRecord(rec, c.Name)
			name, stateCol, opened := "", "", ""
			if first {
				name, stateCol, opened = ph.Name+" ("+ph.At+")", state, stampOrDash(rec.OpenedAt)
			}
			first = false
			put(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, stateCol, opened, c.Name,
				dash(cr.Kind), dash(string(cr.Outcome)), dash(cr.Value), dash(cr.Threshold), short(cr.Message))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if err := targetsTable(w, dcl); err != nil {
		return err
	}
	if len(st.Triggers) > 0 {
		put(w, "\nROLLBACK TRIGGERS (watched from T-0)\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		put(tw, "TRIGGER\tOUTCOME\tVALUE\tFIRES WHEN\tBREACHING SINCE\tNOTE\n")
		for _, t := range st.Triggers {
			put(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, dash(string(t.Outcome)), dash(t.Value), dash(t.Threshold),
				stampOrDash(t.BreachingSince), short(t.Message))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := baselines(w, st.Baselines); err != nil {
		return err
	}
	if len(st.Approvals) > 0 || len(st.ApprovalErrors) > 0 {
		put(w, "\nAPPROVALS\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		put(tw, "ROLE\tAPPROVER\tREVISION\tFIRST SEEN\tVERIFIED\n")
		for _, a := range st.Approvals {
			put(tw, "%s\t%s\t%s\t%s\t%t\n", a.Role, a.Approver, a.Revision, stamp(&a.FirstSeen), a.Verified)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, e := range st.ApprovalErrors {
			put(w, "  invalid: %s\n", e)
		}
	}
	if rb := st.Rollback; rb != nil {
		put(w, "\nROLLBACK  %s at %s: %s", rb.Reason, stamp(&rb.FiredAt), rb.Message)
		switch {
		case rb.DryRun:
			put(w, " (dry run: nothing was touched)")
		case rb.CompletedAt != nil:
			put(w, "; restored at %s", stamp(rb.CompletedAt))
		}
		put(w, "\n")
	}
	people(w, dcl)
	contacts(w, dcl)
	return nil
}

// contacts shows whom to call and what to read (spec.contacts and spec.runbooks, the
// template's merged in).
func contacts(w io.Writer, dcl *deployv1alpha1.DeploymentChecklist) {
	if len(dcl.Spec.Contacts) > 0 {
		put(w, "\nCONTACTS\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		put(tw, "ROLE\tNAME\tREACH\n")
		for _, c := range dcl.Spec.Contacts {
			put(tw, "%s\t%s\t%s\n", c.Role, c.Name, c.Reach)
		}
		_ = tw.Flush()
	}
	if len(dcl.Spec.Runbooks) > 0 {
		put(w, "\nRUNBOOKS\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range dcl.Spec.Runbooks {
			put(tw, "%s\t%s\n", r.Title, r.URL)
		}
		_ = tw.Flush()
	}
}

// people shows what people asked of the release: a retry made of it or that it is,
// and a rollback or abort request with what tminus made of it.
func people(w io.Writer, dcl *deployv1alpha1.DeploymentChecklist) {
	st := &dcl.Status
	if as := dcl.Annotations[deployv1alpha1.RetriedAsAnnotation]; as != "" {
		put(w, "\nRETRIED  as %s\n", as)
	}
	if of := dcl.Annotations[deployv1alpha1.RetryOfAnnotation]; of != "" {
		put(w, "\nRETRIES  %s\n", of)
	}
	if rq := st.Request; rq != nil {
		put(w, "\nREQUEST  %s by %s", rq.Kind, rq.By)
		if rq.WrittenBy != "" && rq.WrittenBy != rq.By {
			put(w, " (committed by %s)", rq.WrittenBy)
		}
		put(w, " at %s: %s; %s", stamp(&rq.At), rq.Reason, rq.State)
		if rq.State != deployv1alpha1.RequestActed && rq.Message != "" {
			put(w, ": %s", rq.Message)
		}
		put(w, "\n")
	}
}

// Why explains in one paragraph what the checklist waits for, or why it ended as it did,
// and what became of a person's request that was not acted on.
func Why(dcl *deployv1alpha1.DeploymentChecklist, now time.Time) string {
	s := why(dcl, now)
	if rq := dcl.Status.Request; rq != nil && rq.State != deployv1alpha1.RequestActed && rq.Message != "" {
		s += " " + strings.ToUpper(rq.Message[:1]) + rq.Message[1:] + "."
	}
	eff := dcl
	if e, err := templates.Effective(dcl); err == nil {
		eff = e
	}
	if cs := eff.Spec.Contacts; len(cs) > 0 {
		parts := make([]string, 0, len(cs))
		for _, c := range cs {
			parts = append(parts, fmt.Sprintf("%s %s (%s)", c.Role, c.Name, c.Reach))
		}
		s += " Contacts: " + strings.Join(parts, "; ") + "."
	}
	if rbs := eff.Spec.Runbooks; len(rbs) > 0 {
		parts := make([]string, 0, len(rbs))
		for _, r := range rbs {
			parts = append(parts, r.Title+" "+r.URL)
		}
		s += " Runbooks: " + strings.Join(parts, "; ") + "."
	}
	return s
}

func why(dcl *deployv1alpha1.DeploymentChecklist, now time.Time) string {
	st := &dcl.Status
	name := dcl.Namespace + "/" + dcl.Name
	ready := meta.FindStatusCondition(st.Conditions, "Ready")
	switch st.Phase {
	case "", deployv1alpha1.PhasePending:
		return name + " has not been reconciled yet: is the tminus manager running?"
	case deployv1alpha1.PhaseSucceeded:
		s := name + " succeeded: every phase passed"
		if t := firstReleased(dcl); t != nil {
			s += fmt.Sprintf("; it was released at %s", stamp(t.ReleasedAt))
		}
		return s + "."
	case deployv1alpha1.PhaseRolledBack:
		rb := st.Rollback
		if rb == nil {
			return name + " rolled back."
		}
		if rb.DryRun {
			return fmt.Sprintf("%s would have rolled back at %s because %s, but rollback.action is None or gate is Observe: nothing was touched.",
				name, stamp(&rb.FiredAt), rb.Message)
		}
		s := fmt.Sprintf("%s rolled back at %s because %s.", name, stamp(&rb.FiredAt), rb.Message)
		return s + restoredSummary(dcl)
	case deployv1alpha1.PhaseFailed:
		msg := "it failed"
		reason := ""
		if ready != nil {
			msg, reason = ready.Message, " ("+ready.Reason+")"
		}
		return fmt.Sprintf("%s ended without a verified release%s: %s. %s keeps serving what it served; "+
			"tminus took its own hold off, unless it holds a template nothing released "+
			"(%s shows deploy.tminus.dev/hold-reason).",
			name, reason, msg, deployv1alpha1.DescribeTargets(dcl.Spec.TargetRefs()), describeCommands(dcl.Spec.TargetRefs()))
	}
	parts := []string{fmt.Sprintf("%s is %s: %s.", name, strings.ToLower(string(st.Phase)), st.NextAction)}
	if c := meta.FindStatusCondition(st.Conditions, "AwaitingApproval"); c != nil && c.Status == metav1.ConditionTrue {
		parts = append(parts, "It is "+c.Message+" (kubectl checklist approve "+dcl.Name+" --role <role>).")
	}
	if c := meta.FindStatusCondition(st.Conditions, "Degraded"); c != nil && c.Status == metav1.ConditionTrue {
		parts = append(parts, "Measurements are failing, so it holds: "+c.Message+".")
	}
	if c := meta.FindStatusCondition(st.Conditions, "Healthy"); c != nil && c.Status == metav1.ConditionFalse {
		parts = append(parts, "A rollback trigger is "+c.Message+"; it rolls back if the breach holds.")
	}
	if c := meta.FindStatusCondition(st.Conditions, "HeldChange"); c != nil && c.Status == metav1.ConditionTrue {
		parts = append(parts, c.Message+".")
	}
	if c := meta.FindStatusCondition(st.Conditions, "AdmissionGate"); c != nil && c.Status == metav1.ConditionFalse &&
		c.Reason != "GateObserve" {
		parts = append(parts, "No admission gate: "+c.Message+".")
	}
	if len(dcl.Spec.TargetRefs()) > 1 {
		var each []string
		for _, name := range dcl.Spec.TargetNames() {
			each = append(each, name+" "+TargetState(dcl, name))
		}
		parts = append(parts, "Targets: "+strings.Join(each, "; ")+".")
	}
	if st.NextActionAt != nil {
		parts = append(parts, fmt.Sprintf("The next scheduled step is %s.", relative(st.NextActionAt.Time, now)))
	}
	return strings.Join(parts, " ")
}

// TargetState says in a few words where one target of the release stands: waiting for
// its template, waiting its turn (Sequential), releasing, available, not changed,
// restored.
func TargetState(dcl *deployv1alpha1.DeploymentChecklist, name string) string {
	ts := dcl.TargetStatusOf(name)
	st := &dcl.Status
	switch {
	case ts == nil || ts.CapturedAt == nil:
		return "not captured yet"
	case ts.RestoredAt != nil:
		return "restored"
	case ts.ReleasedTemplateHash == "" && ts.T0At != nil && st.Releasing != "" && dcl.Spec.Sequential() &&
		slices.Index(dcl.Spec.TargetNames(), st.Releasing) < slices.Index(dcl.Spec.TargetNames(), name):
		return "held, waiting for " + st.Releasing + " to roll out"
	case ts.ReleasedTemplateHash == "" && ts.T0At != nil && dcl.Status.Phase != deployv1alpha1.PhaseHolding:
		if ts.CandidateTemplateHash != "" {
			return "not released"
		}
		return "not changed, not released"
	case ts.ReleasedTemplateHash == "":
		if ts.CandidateTemplateHash != "" {
			return "held"
		}
		return "no new template yet"
	case ts.AvailableAt != nil:
		return "released, available"
	}
	return "released, rolling out"
}

// targetsTable shows, for a release of several targets, each one: where it stands,
// what it ran and releases, and the values of the checks and triggers judging it.
func targetsTable(w io.Writer, dcl *deployv1alpha1.DeploymentChecklist) error {
	if len(dcl.Spec.TargetRefs()) < 2 {
		return nil
	}
	st := &dcl.Status
	order := "Together"
	if dcl.Spec.Sequential() {
		order = "Sequential"
	}
	put(w, "\nTARGETS (released %s)\n", order)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	put(tw, "TARGET\tSTATE\tRAN\tRELEASES\tRELEASED\tVALUES\n")
	for _, name := range dcl.Spec.TargetNames() {
		var ran, rel, at string
		if ts := dcl.TargetStatusOf(name); ts != nil {
			ran, rel, at = strings.Join(ts.PreDeployImages, ","), strings.Join(ts.CandidateImages, ","), stampOrDash(ts.ReleasedAt)
		}
		var values []string
		for _, p := range st.Phases {
			for _, c := range p.Checks {
				if c.Target == name && c.Value != "" {
					values = append(values, p.Name+"/"+c.Name+"="+c.Value)
				}
			}
		}
		for _, t := range st.Triggers {
			if t.Target == name && t.Value != "" {
				values = append(values, "trigger "+t.Name+"="+t.Value)
			}
		}
		put(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, TargetState(dcl, name), dash(ran), dash(rel), dash(at), dash(strings.Join(values, " ")))
	}
	return tw.Flush()
}

func checkRecord(rec deployv1alpha1.PhaseStatus, name string) deployv1alpha1.CheckStatus {
	for _, c := range rec.Checks {
		if c.Name == name {
			return c
		}
	}
	return deployv1alpha1.CheckStatus{}
}

func stamp(t *metav1.Time) string { return t.UTC().Format(time.RFC3339) }

func stampOrDash(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("15:04:05")
}

func relative(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return "in " + d.String()
	case d < 0:
		return (-d).String() + " ago"
	}
	return "now"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// put writes to a report's writer; a failed write shows up at the tabwriter's Flush or
// the next write the caller checks.
func put(w io.Writer, format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }

// baselines prints the baselines the checks and triggers compare with, if any.
func baselines(w io.Writer, list []deployv1alpha1.BaselineStatus) error {
	if len(list) == 0 {
		return nil
	}
	put(w, "\nBASELINES (each metric at T-0, as the version that served before)\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	put(tw, "METRIC\tRESULT\tVALUE\tAT\tNOTE\n")
	for _, b := range list {
		put(tw, "%s\t%s\t%s\t%s\t%s\n", b.Metric, b.Result, dash(b.Value), stamp(&b.At), short(b.Message))
	}
	return tw.Flush()
}

// firstReleased is the status of the first target released, nil when none was.
func firstReleased(dcl *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.TargetStatus {
	var first *deployv1alpha1.TargetStatus
	for _, t := range dcl.Status.TargetsOf(&dcl.Spec) {
		if t.ReleasedAt != nil && (first == nil || t.ReleasedAt.Before(first.ReleasedAt)) {
			first = &t.TargetStatus
		}
	}
	return first
}

// describeCommands are the kubectl describe commands of the targets: "kubectl describe
// statefulset db", joined with "or".
func describeCommands(refs []deployv1alpha1.TargetRef) string {
	cmds := make([]string, len(refs))
	for i, r := range refs {
		cmds[i] = "kubectl describe " + strings.ToLower(r.KindOf()) + " " + r.Name
	}
	return strings.Join(cmds, " or ")
}

// restoredSummary says, target by target, what a rollback restored.
func restoredSummary(dcl *deployv1alpha1.DeploymentChecklist) string {
	var b strings.Builder
	for _, t := range dcl.Status.TargetsOf(&dcl.Spec) {
		desc := deployv1alpha1.TargetRef{Kind: t.Kind, Name: t.Name}.String()
		switch {
		case t.ReleasedTemplateHash == "" && len(dcl.Spec.TargetRefs()) > 1:
			fmt.Fprintf(&b, " %s was not released: nothing to restore.", desc)
		case t.RestoredAt != nil:
			fmt.Fprintf(&b, " %s runs its pre-deploy template again (revision %s) since %s.",
				desc, t.PreDeployRevision, stamp(t.RestoredAt))
		default:
			fmt.Fprintf(&b, " tminus is restoring %s to its pre-deploy template.", desc)
		}
	}
	return b.String()
}
