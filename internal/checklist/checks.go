package checklist

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Check kinds as recorded in status.
const (
	KindMetric   = "Metric"
	KindApproval = "Approval"
	KindJob      = "Job"
	KindHTTP     = "HTTP"
)

func checkKind(c *deployv1alpha1.CheckSpec) string {
	switch {
	case c.Approval != nil:
		return KindApproval
	case c.Job != nil:
		return KindJob
	case c.HTTP != nil:
		return KindHTTP
	}
	return KindMetric
}

// syncRecords makes status hold one record per phase, check and trigger of the spec,
// in spec order, keeping what was recorded for names that still exist.
func (e *engine) syncRecords() {
	old := map[string]deployv1alpha1.PhaseStatus{}
	for _, p := range e.st.Phases {
		old[p.Name] = p
	}
	phases := make([]deployv1alpha1.PhaseStatus, 0, len(e.spec.Phases))
	for _, ph := range append(append([]phasePlan{}, e.p.tminus...), e.p.tplus...) {
		rec, ok := old[ph.spec.Name]
		if !ok {
			rec = deployv1alpha1.PhaseStatus{Name: ph.spec.Name, State: deployv1alpha1.PhaseStatePending}
		}
		oldChecks := map[string]deployv1alpha1.CheckStatus{}
		for _, c := range rec.Checks {
			oldChecks[c.Name] = c
		}
		rec.Checks = make([]deployv1alpha1.CheckStatus, 0, len(ph.spec.Checks))
		for i := range ph.spec.Checks {
			c := &ph.spec.Checks[i]
			cr, ok := oldChecks[c.Name]
			if !ok || cr.Kind != checkKind(c) {
				cr = deployv1alpha1.CheckStatus{Name: c.Name, Kind: checkKind(c), Outcome: deployv1alpha1.OutcomePending}
			}
			cr.Threshold = ""
			cr.Target = c.Target
			if c.Metric != "" {
				cr.Threshold = e.limitText(MetricKey(c.Metric, c.Target), checkLimits(c), true)
			}
			rec.Checks = append(rec.Checks, cr)
		}
		phases = append(phases, rec)
	}
	e.st.Phases = phases

	oldTriggers := map[string]deployv1alpha1.TriggerStatus{}
	for _, t := range e.st.Triggers {
		oldTriggers[t.Name] = t
	}
	triggers := make([]deployv1alpha1.TriggerStatus, 0, len(e.spec.RollbackTriggers))
	for _, t := range e.spec.RollbackTriggers {
		tr, ok := oldTriggers[t.Name]
		if !ok {
			tr = deployv1alpha1.TriggerStatus{Name: t.Name, Outcome: deployv1alpha1.OutcomePending}
		}
		if t.HTTP != nil {
			tr.Threshold = fmt.Sprintf("status != %d", httpExpect(t.HTTP))
		} else {
			tr.Threshold = e.limitText(MetricKey(t.Metric, t.Target), triggerLimits(&t), false)
		}
		tr.Target = t.Target
		triggers = append(triggers, tr)
	}
	e.st.Triggers = triggers
}

func httpExpect(h *deployv1alpha1.HTTPCheck) int32 {
	if h.ExpectStatus == 0 {
		return 200
	}
	return h.ExpectStatus
}

func (e *engine) phaseRecord(name string) *deployv1alpha1.PhaseStatus {
	for i := range e.st.Phases {
		if e.st.Phases[i].Name == name {
			return &e.st.Phases[i]
		}
	}
	// syncRecords made one for every phase of the spec.
	panic("checklist: no status record for phase " + name)
}

func checkRecord(rec *deployv1alpha1.PhaseStatus, name string) *deployv1alpha1.CheckStatus {
	for i := range rec.Checks {
		if rec.Checks[i].Name == name {
			return &rec.Checks[i]
		}
	}
	return nil
}

// syncApprovals records the sign-offs seen for this revision, keeping when each was
// first seen and what it was given for.
func (e *engine) syncApprovals() {
	prev := map[string]deployv1alpha1.ApprovalRecord{}
	for _, a := range e.st.Approvals {
		prev[approvalID(a.Key, a.Role, a.Approver, a.Revision)] = a
	}
	var out []deployv1alpha1.ApprovalRecord
	for _, role := range sortedKeys(e.obs.Approvals) {
		for _, a := range e.obs.Approvals[role] {
			rec, ok := prev[approvalID(a.Key, a.Role, a.Approver, a.Revision)]
			if !ok {
				// Recorded before records kept their annotation's key.
				rec, ok = prev[approvalID("", a.Role, a.Approver, a.Revision)]
			}
			if !ok {
				rec = deployv1alpha1.ApprovalRecord{Role: a.Role, Approver: a.Approver, Revision: a.Revision, FirstSeen: e.stamp()}
			}
			rec.Key, rec.Verified = a.Key, a.Verified
			if len(out) < deployv1alpha1.MaxApprovalRecords {
				out = append(out, rec)
			}
		}
	}
	e.st.Approvals = out

	// Sign-off and request annotations that could not be read, each reported once with
	// the event of its kind.
	var problems []string
	reasons := map[string]string{}
	for _, src := range []struct {
		reason   string
		problems []string
	}{{ReasonInvalidApproval, e.obs.ApprovalProblems}, {ReasonInvalidRequest, e.obs.RequestProblems}} {
		for _, p := range src.problems {
			if len(problems) < deployv1alpha1.MaxApprovalErrors {
				p = truncate(p, 256)
				problems = append(problems, p)
				reasons[p] = src.reason
			}
		}
	}
	if !slices.Equal(problems, e.st.ApprovalErrors) {
		for _, p := range problems {
			if !slices.Contains(e.st.ApprovalErrors, p) {
				e.event(corev1.EventTypeWarning, reasons[p], p)
			}
		}
	}
	e.st.ApprovalErrors = problems
}

func approvalID(key, role, approver, revision string) string {
	return key + "\x00" + role + "\x00" + approver + "\x00" + revision
}

// judgeApprovals decides, before the release, which sign-offs count. A sign-off is for
// the template the Deployment held when it was given: the approval webhook records the
// Deployment's template at admission, and the sign-off is bound to it, so a push that
// lands between the sign-off and this reconcile does not inherit it. One given before
// any new template arrived (the Deployment on its pre-deploy template, or not there yet)
// is for the next one: it binds to the first candidate followed after. One whose
// template is not recorded (written before the webhook recorded it, or not verified)
// binds to the candidate held when the controller first judges it, once every target is
// captured: a target not settled yet has no candidate followed, and a set without it is
// not what the release will hold. If the template changes after, the sign-off no longer
// counts and must be given again. With verified sign-offs required, one the approval
// webhook did not verify does not count either.
func (e *engine) judgeApprovals() {
	cand, candImages := e.candidateSet()
	whole := e.captured()
	admitted := map[string]string{}
	for _, list := range e.obs.Approvals {
		for _, a := range list {
			admitted[approvalID(a.Key, a.Role, a.Approver, a.Revision)] = a.AdmittedTemplate
		}
	}
	for i := range e.st.Approvals {
		rec := &e.st.Approvals[i]
		if h := e.signedFor(admitted[approvalID(rec.Key, rec.Role, rec.Approver, rec.Revision)]); h != "" {
			if rec.CandidateTemplateHash != h {
				rec.CandidateTemplateHash, rec.CandidateImages = h, e.imagesOf(h)
			}
		} else if cand != "" && rec.CandidateTemplateHash == "" && whole {
			rec.CandidateTemplateHash, rec.CandidateImages = cand, candImages
		}
		why := ""
		switch {
		case e.obs.RequireVerified && !rec.Verified:
			why = "not verified by the approval webhook, and only verified sign-offs count (requireVerifiedApprovals)"
		case cand != "" && rec.CandidateTemplateHash != "" && rec.CandidateTemplateHash != cand:
			given := images(rec.CandidateImages)
			if len(rec.CandidateImages) == 0 {
				given = fmt.Sprintf("the template %s held when it was given (%s)", e.alldesc(),
					shortHash(rec.CandidateTemplateHash))
			}
			holder := "the " + kindOf(e.refs[0]) + " now holds"
			if !e.sameKind() {
				holder = e.alldesc() + " now hold"
			}
			why = fmt.Sprintf("given for %s, but %s %s for release: sign again", given, holder, images(candImages))
		}
		if why != "" && why != rec.NotCounted {
			e.event(corev1.EventTypeWarning, ReasonApprovalNotCounted, fmt.Sprintf("%s's %s sign-off (annotation %s%s) does not count: %s",
				rec.Approver, rec.Role, deployv1alpha1.ApprovalAnnotationPrefix, rec.Key, why))
		}
		rec.NotCounted = why
	}
}

// signedFor is the template a sign-off is bound to by what the webhook recorded at its
// admission: the Deployment's template then, unless that was no new template (the
// pre-deploy one, or no Deployment), or is not known yet (the target not captured, so the
// pre-deploy template is not known) or not recorded; "" in those cases.
func (e *engine) signedFor(admitted string) string {
	if admitted == "" || admitted == NoTemplate || !e.captured() {
		return ""
	}
	if len(e.refs) > 1 {
		// The webhook left out every target on its pre-deploy template: a set of
		// nothing is no new template.
		if admitted == CandidateSet(e.spec.TargetNames(), make([]string, len(e.refs))) {
			return ""
		}
		// A sign-off committed with the checklist was recorded before anything was
		// captured, so the webhook could not leave out the targets still on their
		// pre-deploy template: it named every target's template. That is the release's
		// set of candidates when each target's entry is its candidate, or its pre-deploy
		// template where it has none.
		if cand, _ := e.candidateSet(); cand != "" && admitted == e.unblankedCandidateSet() {
			return cand
		}
		return admitted
	}
	if ts := e.tsAt(0); ts.PreDeployTemplate != nil && admitted == ts.PreDeployTemplateHash {
		return ""
	}
	return admitted
}

// unblankedCandidateSet is the set of candidates with each target that holds none
// named by its pre-deploy template (CandidateSet): what the approval webhook records for
// a sign-off admitted before the checklist captured its targets.
func (e *engine) unblankedCandidateSet() string {
	hashes := make([]string, len(e.refs))
	for i := range e.refs {
		if ts := e.tsAt(i); ts != nil {
			hashes[i] = ts.CandidateTemplateHash
			if hashes[i] == "" {
				hashes[i] = ts.PreDeployTemplateHash
			}
		}
	}
	return CandidateSet(e.spec.TargetNames(), hashes)
}

// imagesOf lists the images of template hash h, when it is one the engine knows.
func (e *engine) imagesOf(h string) []string {
	if cand, imgs := e.candidateSet(); cand != "" && h == cand {
		return imgs
	}
	if len(e.refs) == 1 && h == e.obs.targetAt(0).TemplateHash {
		return e.obs.targetAt(0).TemplateImages
	}
	return nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		h = h[:12]
	}
	return "template " + h
}

// evaluate updates the records of an open phase's checks from the observations. It
// reports whether every check passes now, and a reason when one can never pass (a
// failed Job).
func (e *engine) evaluate(ph phasePlan, rec *deployv1alpha1.PhaseStatus) (allPass bool, hardFail string) {
	allPass = true
	for i := range ph.spec.Checks {
		c := &ph.spec.Checks[i]
		cr := checkRecord(rec, c.Name)
		before := cr.Outcome
		switch {
		case c.Approval != nil:
			e.evaluateApproval(c, cr)
		case c.Job != nil:
			if f := e.evaluateJob(ph, c, cr); f != "" && hardFail == "" {
				hardFail = f
			}
		case c.HTTP != nil || c.Metric != "":
			if grace, why := e.inGrace(e.p.checkAfter[CheckKey(ph.spec.Name, c.Name)]); grace {
				cr.Outcome, cr.Message = deployv1alpha1.OutcomePending, why
			} else if c.HTTP != nil {
				if m, ok := e.obs.HTTP[CheckKey(ph.spec.Name, c.Name)]; ok {
					e.recordHTTP(cr, m)
				}
			} else if m, ok := e.obs.Metrics[MetricKey(c.Metric, c.Target)]; ok {
				e.recordMetric(cr, m, MetricKey(c.Metric, c.Target), checkLimits(c))
			}
		}
		if cr.Outcome != before {
			e.checkTransition(ph.spec.Name, c, cr)
		}
		if cr.Outcome != deployv1alpha1.OutcomePass {
			allPass = false
		}
	}
	return allPass, hardFail
}

func (e *engine) checkTransition(phase string, c *deployv1alpha1.CheckSpec, cr *deployv1alpha1.CheckStatus) {
	switch {
	case cr.Outcome == deployv1alpha1.OutcomeFail:
		e.event(corev1.EventTypeWarning, ReasonCheckFailed, fmt.Sprintf("%s/%s failed: %s", phase, c.Name, describe(cr)))
	case cr.Outcome == deployv1alpha1.OutcomePass && c.Approval != nil:
		e.event(corev1.EventTypeNormal, ReasonApproved, fmt.Sprintf("%s/%s: %s", phase, c.Name, cr.Message))
	}
}

func describe(cr *deployv1alpha1.CheckStatus) string {
	s := cr.Message
	if cr.Value != "" {
		s = cr.Value
		if cr.Threshold != "" {
			s += " (needs " + cr.Threshold + ")"
		}
	}
	return s
}

func (e *engine) evaluateApproval(c *deployv1alpha1.CheckSpec, cr *deployv1alpha1.CheckStatus) {
	names := e.approvers(c.Approval.Role)
	need := approvalCount(c.Approval)
	value := strings.Join(names, ", ")
	if cr.Value != value || cr.LastEvaluated == nil {
		t := e.stamp()
		cr.LastEvaluated = &t
	}
	cr.Value = value
	if len(names) >= need {
		cr.Outcome = deployv1alpha1.OutcomePass
		cr.Message = fmt.Sprintf("%s approved by %s", c.Approval.Role, cr.Value)
		return
	}
	cr.Outcome = deployv1alpha1.OutcomePending
	cr.Message = fmt.Sprintf("waiting for %s sign-off (%d of %d)", c.Approval.Role, len(names), need)
	if why := e.notCounted(c.Approval.Role); why != "" {
		cr.Message += "; " + why
	}
}

// evaluateJob creates the check's Job if it does not exist yet and reads its result. A
// passed Job stays passed, even when its Job is cleaned up later.
func (e *engine) evaluateJob(ph phasePlan, c *deployv1alpha1.CheckSpec, cr *deployv1alpha1.CheckStatus) string {
	if cr.Outcome == deployv1alpha1.OutcomePass {
		return ""
	}
	name := JobName(e.dcl.Name, ph.spec.Name, c.Name)
	js, ok := e.obs.Jobs[CheckKey(ph.spec.Name, c.Name)]
	t := e.stamp()
	if cr.LastEvaluated != nil && ((js.Failed || js.NotOurs != "") && cr.Outcome == deployv1alpha1.OutcomeFail) {
		t = *cr.LastEvaluated
	}
	if ok && js.UID != "" {
		cr.JobUID = js.UID
	}
	switch {
	case ok && js.NotOurs != "":
		// Someone made a Job of the check's name (an owner reference to the
		// checklist is easy to write): its result is theirs, never the check's.
		cr.Outcome = deployv1alpha1.OutcomeFail
		cr.Message = truncate(fmt.Sprintf("Job %s was not created by tminus for this check (%s): it is not taken as "+
			"the check's result; delete it to run the check", name, js.NotOurs), 512)
		cr.LastEvaluated = &t
	case ok && js.Refused != "":
		// The API server refused the Job (quota, policy, an invalid template): say so
		// on the check, and try again at the next measurement. It never passes.
		e.action(Action{Kind: ActionCreateJob, Phase: ph.spec.Name, Check: c.Name})
		if cr.Outcome != deployv1alpha1.OutcomeError {
			e.event(corev1.EventTypeWarning, ReasonJobRefused, fmt.Sprintf("%s/%s: the API server refused Job %s: %s", ph.spec.Name, c.Name, name, js.Refused))
		}
		cr.Outcome = deployv1alpha1.OutcomeError
		cr.Message = truncate(fmt.Sprintf("the API server refused Job %s: %s", name, js.Refused), 512)
		cr.LastEvaluated = &t
	case !ok || !js.Exists:
		e.action(Action{Kind: ActionCreateJob, Phase: ph.spec.Name, Check: c.Name})
		cr.Outcome = deployv1alpha1.OutcomePending
		cr.Message = "creating Job " + name
	case js.Succeeded:
		cr.Outcome = deployv1alpha1.OutcomePass
		cr.Message = "Job " + name + " succeeded"
		cr.LastEvaluated = &t
	case js.Failed:
		cr.Outcome = deployv1alpha1.OutcomeFail
		cr.Message = truncate(fmt.Sprintf("Job %s failed: %s; delete the Job to run it again", name, js.Message), 512)
		cr.LastEvaluated = &t
		return cr.Message
	default:
		cr.Outcome = deployv1alpha1.OutcomePending
		cr.Message = "Job " + name + " running"
	}
	return ""
}

// recordMetric turns a measurement into the check's outcome. No data follows the
// metric's onNoData; an error never passes.
func (e *engine) recordMetric(cr *deployv1alpha1.CheckStatus, m Measurement, metric string, l limits) {
	cr.Query = truncate(m.Query, 1024)
	switch m.Kind {
	case ResultValue:
		cr.ConsecutiveErrors = 0
		cr.Value = m.Display
		b := e.bounds(metric, l)
		switch {
		case b.decided == deployv1alpha1.OutcomeError:
			// The baseline's query failed: an error, as the metric's would be.
			cr.ConsecutiveErrors++
			cr.Outcome, cr.Message = b.decided, b.why
		case b.decided != "":
			cr.Outcome, cr.Message = b.decided, b.why
		case b.passes(m.Value):
			cr.Outcome, cr.Message = deployv1alpha1.OutcomePass, ""
		default:
			cr.Outcome, cr.Message = deployv1alpha1.OutcomeFail, fmt.Sprintf("%s is not %s", m.Display, cr.Threshold)
		}
	case ResultNoData:
		cr.ConsecutiveErrors = 0
		cr.Value = m.Display
		cr.Outcome, cr.Message = noDataOutcome(e.p.metrics[metricName(metric)].OnNoData)
	default:
		cr.ConsecutiveErrors++
		cr.Outcome, cr.Message = deployv1alpha1.OutcomeError, truncate(m.Message, 512)
	}
	e.appendHistory(cr)
}

func noDataOutcome(policy deployv1alpha1.NoDataPolicy) (deployv1alpha1.Outcome, string) {
	switch policy {
	case deployv1alpha1.NoDataPass:
		return deployv1alpha1.OutcomePass, "no data; onNoData is Pass"
	case deployv1alpha1.NoDataFail:
		return deployv1alpha1.OutcomeFail, "no data; onNoData is Fail"
	}
	return deployv1alpha1.OutcomeNoData, "no data yet; onNoData is Hold"
}

func (e *engine) recordHTTP(cr *deployv1alpha1.CheckStatus, m Measurement) {
	switch {
	case m.Kind == ResultError:
		cr.ConsecutiveErrors++
		cr.Outcome = deployv1alpha1.OutcomeError
	case m.OK:
		cr.ConsecutiveErrors = 0
		cr.Outcome = deployv1alpha1.OutcomePass
	default:
		cr.ConsecutiveErrors = 0
		cr.Outcome = deployv1alpha1.OutcomeFail
	}
	cr.Value = m.Display
	cr.Message = truncate(m.Message, 512)
	e.appendHistory(cr)
}

func (e *engine) appendHistory(cr *deployv1alpha1.CheckStatus) {
	t := e.stamp()
	cr.LastEvaluated = &t
	cr.History = append(cr.History, deployv1alpha1.Measurement{Time: t, Outcome: cr.Outcome, Value: cr.Value})
	if n := len(cr.History); n > deployv1alpha1.MaxHistory {
		cr.History = append([]deployv1alpha1.Measurement(nil), cr.History[n-deployv1alpha1.MaxHistory:]...)
	}
}

// triggers evaluates the rollback triggers and rolls back when one fires. It reports
// whether the checklist rolled back.
func (e *engine) triggers() bool {
	for i := range e.spec.RollbackTriggers {
		t := &e.spec.RollbackTriggers[i]
		tr := &e.st.Triggers[i]
		var m Measurement
		var ok bool
		if t.HTTP != nil {
			m, ok = e.obs.HTTP[TriggerKey(t.Name)]
		} else {
			m, ok = e.obs.Metrics[MetricKey(t.Metric, t.Target)]
		}
		if grace, why := e.inGrace(e.p.triggerAfter[t.Name]); grace {
			tr.Outcome, tr.Message, tr.BreachingSince = deployv1alpha1.OutcomePending, why, nil
			continue
		}
		if !ok {
			continue
		}
		now := e.stamp()
		tr.LastEvaluated = &now
		breach, known := false, true
		switch {
		case m.Kind == ResultError:
			tr.ConsecutiveErrors++
			tr.Outcome, tr.Message = deployv1alpha1.OutcomeError, truncate(m.Message, 512)
			known = false
		case m.Kind == ResultNoData:
			tr.ConsecutiveErrors = 0
			tr.Value = m.Display
			switch e.p.metrics[t.Metric].OnNoData {
			case deployv1alpha1.NoDataFail:
				breach = true
			case deployv1alpha1.NoDataPass:
			default:
				tr.Outcome, tr.Message = deployv1alpha1.OutcomeNoData, "no data; onNoData is Hold"
				known = false
			}
		case t.HTTP != nil:
			tr.ConsecutiveErrors = 0
			tr.Value = m.Display
			breach = !m.OK
		default:
			tr.ConsecutiveErrors = 0
			tr.Value = m.Display
			b := e.bounds(MetricKey(t.Metric, t.Target), triggerLimits(t))
			switch b.decided {
			case "":
				breach = b.breaches(m.Value)
			case deployv1alpha1.OutcomeFail:
				breach = true
			case deployv1alpha1.OutcomePass:
			default:
				// Not measured yet, failed, or no data held: nothing starts or clears.
				if b.decided == deployv1alpha1.OutcomeError {
					tr.ConsecutiveErrors++
				}
				tr.Outcome, tr.Message = b.decided, b.why
				known = false
			}
		}
		// An error or a Hold leaves the breach as it was: it neither starts nor clears
		// one, and only a fresh breaching measurement can fire.
		if !known {
			continue
		}
		if !breach {
			tr.Outcome, tr.Message, tr.BreachingSince = deployv1alpha1.OutcomePass, "", nil
			continue
		}
		tr.Outcome = deployv1alpha1.OutcomeFail
		if tr.BreachingSince == nil {
			tr.BreachingSince = &now
			e.event(corev1.EventTypeWarning, ReasonTriggerBreaching, fmt.Sprintf("rollback trigger %s breached: %s %s", t.Name, tr.Value, tr.Threshold))
		}
		held := e.now.Sub(tr.BreachingSince.Time)
		need := e.p.triggerFor[t.Name]
		if held >= need {
			tr.Message = fmt.Sprintf("fired: %s %s for %s", tr.Value, tr.Threshold, held.Round(time.Second))
			on := ""
			if t.Target != "" {
				on = " on " + e.descNamed(t.Target) + "'s series"
			}
			e.rollback(ReasonTriggerFired, fmt.Sprintf("rollback trigger %s fired%s: %s %s", t.Name, on, tr.Value, tr.Threshold), tr.Value)
			return true
		}
		tr.Message = fmt.Sprintf("breaching for %s of %s", held.Round(time.Second), need)
		e.wakeAt(tr.BreachingSince.Add(need))
	}
	return false
}
