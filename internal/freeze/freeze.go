// Package freeze says whether change freezes hold a release at a given time: pure, the
// time passed in. Recurring windows are RFC 5545 RRULEs (github.com/teambition/rrule-go)
// or cron schedules (github.com/robfig/cron/v3), each with a duration and an IANA time
// zone (embedded: the manager's image has no zoneinfo).
package freeze

import (
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // the image is static, on an empty base: no /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
	"github.com/teambition/rrule-go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Anchor is where RRULEs are counted from, in their time zone: 2024-01-01T00:00:00 (a
// Monday). A rule's time of day is its BYHOUR, BYMINUTE and BYSECOND.
var anchor = [3]int{2024, 1, 1}

// DefaultExceptionCount is how many people of the exception role a break-glass needs.
const DefaultExceptionCount = 2

// maxSteps bounds the windows walked to merge back-to-back ones.
const maxSteps = 256

// Freeze is a ChangeFreeze or a ClusterChangeFreeze that applies to a checklist.
type Freeze struct {
	// Kind is ChangeFreeze or ClusterChangeFreeze.
	Kind string
	// Name is namespace/name of a ChangeFreeze, the name of a ClusterChangeFreeze.
	Name string
	Spec deployv1alpha1.ChangeFreezeSpec
	// NamespaceSelector is a ClusterChangeFreeze's (the caller applies it, ForNamespace
	// does); nil for a ChangeFreeze. One that does not parse makes the freeze unreadable.
	NamespaceSelector *metav1.LabelSelector
}

// Of is the freeze a ChangeFreeze declares.
func Of(f *deployv1alpha1.ChangeFreeze) Freeze {
	return Freeze{Kind: "ChangeFreeze", Name: f.Namespace + "/" + f.Name, Spec: f.Spec}
}

// OfCluster is the freeze a ClusterChangeFreeze declares (its namespaceSelector is the
// caller's to apply).
func OfCluster(f *deployv1alpha1.ClusterChangeFreeze) Freeze {
	return Freeze{Kind: "ClusterChangeFreeze", Name: f.Name, Spec: f.Spec.ChangeFreezeSpec, NamespaceSelector: f.Spec.NamespaceSelector}
}

// Selects says whether f applies to a checklist: its selector takes in the checklist's
// labels or its target workload's (whose labels the checklist's author cannot drop
// without the right to switch the gate off as well: docs/decisions.md). A selector that
// does not parse takes in every checklist: the freeze cannot be read, and holds.
func (f *Freeze) Selects(checklistLabels, workloadLabels map[string]string) bool {
	if f.Spec.Selector == nil || f.selectorErr() != nil {
		return true
	}
	m, _ := metav1.LabelSelectorAsSelector(f.Spec.Selector)
	return m.Matches(labels.Set(checklistLabels)) || (workloadLabels != nil && m.Matches(labels.Set(workloadLabels)))
}

// selectorErr says which selector of f does not parse, and why.
func (f *Freeze) selectorErr() error {
	if _, err := metav1.LabelSelectorAsSelector(f.Spec.Selector); err != nil {
		return fmt.Errorf("selector: %v", err)
	}
	if _, err := metav1.LabelSelectorAsSelector(f.NamespaceSelector); err != nil {
		return fmt.Errorf("namespaceSelector: %v", err)
	}
	return nil
}

// ID names the freeze for people: "ChangeFreeze shop/holidays".
func (f *Freeze) ID() string { return f.Kind + " " + f.Name }

// Block is a freeze holding releases at a time.
type Block struct {
	ID     string
	Mode   deployv1alpha1.FreezeMode
	Reason string
	// Until is when it stops holding (a Freeze window ends, an Allow window opens);
	// zero when no end is known (no allowed window ahead, or a window that cannot be
	// read).
	Until time.Time
	// ExceptionRole and ExceptionCount: the break-glass (none when the role is empty).
	ExceptionRole  string
	ExceptionCount int
	// Err says why the freeze cannot be read. A freeze that cannot be read holds:
	// a typo in a holiday freeze must not let releases through.
	Err string
}

// Describe says what holds and until when, in one line.
func (b *Block) Describe() string {
	s := fmt.Sprintf("%s (%s)", b.ID, b.Reason)
	switch {
	case b.Err != "":
		s += " cannot be read, and holds until it is fixed: " + b.Err
	case b.Mode == deployv1alpha1.FreezeModeAllow && b.Until.IsZero():
		s += " allows releases only in its windows, and none is ahead"
	case b.Mode == deployv1alpha1.FreezeModeAllow:
		s += " allows releases only in its windows; the next opens at " + b.Until.UTC().Format(time.RFC3339)
	case b.Until.IsZero():
		s += " is in force"
	default:
		s += " is in force until " + b.Until.UTC().Format(time.RFC3339)
	}
	return s
}

// span is one window: [Start, End).
type span struct{ start, end time.Time }

// window reads one FreezeWindow.
type window struct {
	oneOff   *span
	next     func(after time.Time) (time.Time, bool) // first start strictly after
	duration time.Duration
}

func compile(i int, w *deployv1alpha1.FreezeWindow) (window, error) {
	field := fmt.Sprintf("windows[%d]", i)
	if w.Start != nil && w.End != nil {
		return window{oneOff: &span{w.Start.Time, w.End.Time}}, nil
	}
	d, err := time.ParseDuration(w.Duration)
	if err != nil || d <= 0 {
		return window{}, fmt.Errorf("%s.duration: %q is not a positive duration", field, w.Duration)
	}
	loc := time.UTC
	if w.TimeZone != "" {
		if loc, err = time.LoadLocation(w.TimeZone); err != nil {
			return window{}, fmt.Errorf("%s.timeZone: %q is not an IANA time zone", field, w.TimeZone)
		}
	}
	out := window{duration: d}
	switch {
	case w.RRule != "":
		opt, err := rrule.StrToROption(strings.TrimPrefix(w.RRule, "RRULE:"))
		if err != nil {
			return window{}, fmt.Errorf("%s.rrule: %v", field, err)
		}
		opt.Dtstart = time.Date(anchor[0], time.Month(anchor[1]), anchor[2], 0, 0, 0, 0, loc)
		if _, err := rrule.NewRRule(*opt); err != nil {
			return window{}, fmt.Errorf("%s.rrule: %v", field, err)
		}
		out.next = func(after time.Time) (time.Time, bool) {
			o := *opt
			o.Dtstart = advance(&o, after.Add(-d))
			r, err := rrule.NewRRule(o)
			if err != nil {
				return time.Time{}, false
			}
			t := r.After(after.In(loc), false)
			return t, !t.IsZero()
		}
	case w.Cron != "":
		sched, err := cron.ParseStandard(w.Cron)
		if err != nil {
			return window{}, fmt.Errorf("%s.cron: %v", field, err)
		}
		out.next = func(after time.Time) (time.Time, bool) {
			t := sched.Next(after.In(loc))
			return t, !t.IsZero()
		}
	default:
		return window{}, fmt.Errorf("%s: neither start and end, nor rrule or cron", field)
	}
	return out, nil
}

// advance moves a rule's start from the anchor towards before by whole multiples of its
// period times its interval, in the zone's calendar, so that walking the rule from it
// gives the same occurrences as walking it from the anchor but costs days, not years. A
// rule with COUNT counts from the anchor and is left there.
func advance(o *rrule.ROption, before time.Time) time.Time {
	start := o.Dtstart
	interval := max(o.Interval, 1)
	if o.Count > 0 || !before.After(start) {
		return start
	}
	// Two periods of margin before `before`; a period is at most this long.
	longest := map[rrule.Frequency]time.Duration{rrule.YEARLY: 367 * 24 * time.Hour,
		rrule.MONTHLY: 32 * 24 * time.Hour, rrule.WEEKLY: 7*24*time.Hour + time.Hour, rrule.DAILY: 25 * time.Hour}[o.Freq]
	if longest == 0 {
		return start
	}
	periods := int(before.Sub(start)/longest) - 2
	k := periods / interval * interval
	if k <= 0 {
		return start
	}
	switch o.Freq {
	case rrule.YEARLY:
		return start.AddDate(k, 0, 0)
	case rrule.MONTHLY:
		return start.AddDate(0, k, 0)
	case rrule.WEEKLY:
		return start.AddDate(0, 0, 7*k)
	default:
		return start.AddDate(0, 0, k)
	}
}

// containing returns the window holding t, if one does.
func (w *window) containing(t time.Time) (span, bool) {
	if w.oneOff != nil {
		return *w.oneOff, !t.Before(w.oneOff.start) && t.Before(w.oneOff.end)
	}
	// The latest start at or before t is the first one after t-duration, if not after t.
	s, ok := w.next(t.Add(-w.duration))
	if !ok || s.After(t) {
		return span{}, false
	}
	return span{s, s.Add(w.duration)}, true
}

// after returns the first window starting after t.
func (w *window) after(t time.Time) (span, bool) {
	if w.oneOff != nil {
		return *w.oneOff, w.oneOff.start.After(t)
	}
	s, ok := w.next(t)
	return span{s, s.Add(w.duration)}, ok
}

// compiled is a freeze with its windows read.
type compiled struct {
	f       *Freeze
	windows []window
	err     error
}

func compileAll(f *Freeze) compiled {
	c := compiled{f: f}
	if c.err = f.selectorErr(); c.err != nil {
		return c
	}
	for i := range f.Spec.Windows {
		w, err := compile(i, &f.Spec.Windows[i])
		if err != nil {
			c.err = err
			return c
		}
		c.windows = append(c.windows, w)
	}
	return c
}

// inWindow says whether a window of c holds t and, if so, when the windows holding it
// back to back end.
func (c *compiled) inWindow(t time.Time) (time.Time, bool) {
	end, in := c.inWindow1(t)
	if !in {
		return end, false
	}
	for range maxSteps {
		later, ok := c.inWindow1(end)
		if !ok || !later.After(end) {
			break
		}
		end = later
	}
	return end, true
}

// inWindow1 is inWindow without the merging.
func (c *compiled) inWindow1(t time.Time) (time.Time, bool) {
	end, in := time.Time{}, false
	for i := range c.windows {
		if s, ok := c.windows[i].containing(t); ok && (!in || s.end.After(end)) {
			end, in = s.end, true
		}
	}
	return end, in
}

// nextStart is the first window start after t.
func (c *compiled) nextStart(t time.Time) (span, bool) {
	var best span
	found := false
	for i := range c.windows {
		if s, ok := c.windows[i].after(t); ok && (!found || s.start.Before(best.start)) {
			best, found = s, true
		}
	}
	return best, found
}

// At returns the block f makes at t, if it holds releases then.
func (f *Freeze) At(t time.Time) (Block, bool) {
	c := compileAll(f)
	return c.at(t)
}

func (c *compiled) at(t time.Time) (Block, bool) {
	f := c.f
	b := Block{ID: f.ID(), Mode: f.Spec.Mode, Reason: f.Spec.Reason, ExceptionRole: f.Spec.ExceptionRole,
		ExceptionCount: int(f.Spec.ExceptionCount)}
	if b.Mode == "" {
		b.Mode = deployv1alpha1.FreezeModeFreeze
	}
	if b.ExceptionCount <= 0 {
		b.ExceptionCount = DefaultExceptionCount
	}
	if c.err != nil {
		b.Err = c.err.Error()
		return b, true
	}
	end, in := c.inWindow(t)
	if b.Mode == deployv1alpha1.FreezeModeFreeze {
		b.Until = end.UTC()
		return b, in
	}
	if in {
		return Block{}, false
	}
	if s, ok := c.nextStart(t); ok {
		b.Until = s.start.UTC()
	}
	return b, true
}

// At returns the blocks of every freeze of fs holding releases at t, in a stable order.
func At(fs []Freeze, t time.Time) []Block {
	var out []Block
	for i := range fs {
		if b, ok := fs[i].At(t); ok {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Block) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Window is a freeze's state for `kubectl checklist freezes`.
type Window struct {
	Block
	// InForce says whether it holds releases now.
	InForce bool
	// NextStart and NextEnd are its next Freeze window (or, for Allow, its next
	// allowed window) after now, when one is ahead.
	NextStart, NextEnd time.Time
}

// Now returns f's state at now.
func (f *Freeze) Now(now time.Time) Window {
	c := compileAll(f)
	b, in := c.at(now)
	w := Window{Block: b, InForce: in}
	if !in {
		w.Block = Block{ID: f.ID(), Mode: f.Spec.Mode, Reason: f.Spec.Reason, ExceptionRole: f.Spec.ExceptionRole}
		if w.Mode == "" {
			w.Mode = deployv1alpha1.FreezeModeFreeze
		}
	}
	if c.err == nil {
		if s, ok := c.nextStart(now); ok {
			w.NextStart, w.NextEnd = s.start.UTC(), s.end.UTC()
		}
	}
	return w
}

// Applies says whether f's selectors take in a checklist with these labels, in a
// namespace with these labels (namespaceSelector: ClusterChangeFreeze only). A selector
// that does not parse takes everything in: a freeze that cannot be read holds.
func Applies(sel, nsSel *metav1.LabelSelector, checklistLabels, namespaceLabels map[string]string) bool {
	for _, s := range []struct {
		sel *metav1.LabelSelector
		set map[string]string
	}{{sel, checklistLabels}, {nsSel, namespaceLabels}} {
		if s.sel == nil {
			continue
		}
		m, err := metav1.LabelSelectorAsSelector(s.sel)
		if err == nil && !m.Matches(labels.Set(s.set)) {
			return false
		}
	}
	return true
}

// NextHold is the first time after t at which a freeze of fs that does not hold
// releases at t starts to: a Freeze window opening, or the allowed window t is in
// closing. A release waiting after T-0 for its new template looks again then, so a
// template landing in the freeze is held, not rolled. ok is false when none will.
func NextHold(fs []Freeze, t time.Time) (next time.Time, ok bool) {
	for i := range fs {
		c := compileAll(&fs[i])
		if c.err != nil {
			continue // it holds at every time
		}
		var at time.Time
		end, in := c.inWindow(t)
		if fs[i].Spec.Mode == deployv1alpha1.FreezeModeAllow {
			if !in {
				continue
			}
			at = end
		} else {
			s, found := c.nextStart(t)
			if in || !found {
				continue
			}
			at = s.start
		}
		if !ok || at.Before(next) {
			next, ok = at, true
		}
	}
	return next.UTC(), ok
}
