package freeze

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/teambition/rrule-go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func oneOff(start, end string) deployv1alpha1.FreezeWindow {
	return deployv1alpha1.FreezeWindow{Start: new(metav1.NewTime(utc(start))), End: new(metav1.NewTime(utc(end)))}
}

// businessHours allows releases Monday to Thursday, 09:00 to 16:00 in Berlin.
func businessHours(w deployv1alpha1.FreezeWindow) *Freeze {
	return &Freeze{Kind: "ChangeFreeze", Name: "shop/business-hours", Spec: deployv1alpha1.ChangeFreezeSpec{
		Mode: deployv1alpha1.FreezeModeAllow, Reason: "releases in business hours", Windows: []deployv1alpha1.FreezeWindow{w}}}
}

func TestAnAllowedWindowKeepsItsWallClockAcrossTheSpringDSTSwitchInRRuleAndCron(t *testing.T) {
	for name, w := range map[string]deployv1alpha1.FreezeWindow{
		"rrule": {RRule: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH;BYHOUR=9;BYMINUTE=0;BYSECOND=0", Duration: "7h", TimeZone: "Europe/Berlin"},
		"cron":  {Cron: "0 9 * * 1-4", Duration: "7h", TimeZone: "Europe/Berlin"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			f := businessHours(w)
			// Thursday 26 March 2026, 10:00 CET: allowed.
			_, held := f.At(utc("2026-03-26T09:00:00Z"))
			g.Expect(held).To(BeFalse())
			// Friday 10:00 CET: held until Monday 09:00, which is CEST after the switch on
			// Sunday 29 March: 07:00 UTC, not 08:00.
			b, held := f.At(utc("2026-03-27T09:00:00Z"))
			g.Expect(held).To(BeTrue())
			g.Expect(b.Until).To(BeTemporally("==", utc("2026-03-30T07:00:00Z")))
			g.Expect(b.Describe()).To(Equal("ChangeFreeze shop/business-hours (releases in business hours) allows releases " +
				"only in its windows; the next opens at 2026-03-30T07:00:00Z"))
			// Monday 08:30 CEST: held half an hour more; 15:59 CEST allowed; 16:00 held.
			b, held = f.At(utc("2026-03-30T06:30:00Z"))
			g.Expect(held).To(BeTrue())
			g.Expect(b.Until).To(BeTemporally("==", utc("2026-03-30T07:00:00Z")))
			_, held = f.At(utc("2026-03-30T13:59:00Z"))
			g.Expect(held).To(BeFalse())
			b, held = f.At(utc("2026-03-30T14:00:00Z"))
			g.Expect(held).To(BeTrue())
			g.Expect(b.Until).To(BeTemporally("==", utc("2026-03-31T07:00:00Z")))
		})
	}
}

func TestARecurringFreezeThatSpansTheSwitchLastsItsElapsedDuration(t *testing.T) {
	g := NewWithT(t)
	// 01:30 CET on 29 March 2026, for 2 hours: the clocks skip 02:00-03:00, so it ends
	// at 04:30 CEST (02:30 UTC).
	f := &Freeze{Kind: "ClusterChangeFreeze", Name: "night-maintenance", Spec: deployv1alpha1.ChangeFreezeSpec{
		Reason: "storage maintenance", Windows: []deployv1alpha1.FreezeWindow{
			{Cron: "30 1 29 3 *", Duration: "2h", TimeZone: "Europe/Berlin"}}}}
	_, held := f.At(utc("2026-03-29T00:29:00Z"))
	g.Expect(held).To(BeFalse())
	b, held := f.At(utc("2026-03-29T01:59:00Z")) // 03:59 CEST
	g.Expect(held).To(BeTrue())
	g.Expect(b.Until).To(BeTemporally("==", utc("2026-03-29T02:30:00Z")))
	g.Expect(b.Describe()).To(Equal("ClusterChangeFreeze night-maintenance (storage maintenance) is in force until 2026-03-29T02:30:00Z"))
	_, held = f.At(utc("2026-03-29T02:30:00Z"))
	g.Expect(held).To(BeFalse(), "a window ends at its end")
}

func TestOverlappingFreezesEachSayWhenTheyEndAndBackToBackWindowsMerge(t *testing.T) {
	g := NewWithT(t)
	a := Freeze{Kind: "ChangeFreeze", Name: "shop/a", Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "a",
		Windows: []deployv1alpha1.FreezeWindow{oneOff("2026-12-01T10:00:00Z", "2026-12-01T12:00:00Z"),
			oneOff("2026-12-01T12:00:00Z", "2026-12-01T13:00:00Z")}}}
	b := Freeze{Kind: "ClusterChangeFreeze", Name: "b", Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "b",
		Windows: []deployv1alpha1.FreezeWindow{oneOff("2026-12-01T11:00:00Z", "2026-12-01T14:00:00Z")}}}
	blocks := At([]Freeze{b, a}, utc("2026-12-01T11:30:00Z"))
	g.Expect(blocks).To(HaveLen(2))
	g.Expect(blocks[0].ID).To(Equal("ChangeFreeze shop/a"))
	g.Expect(blocks[0].Until).To(BeTemporally("==", utc("2026-12-01T13:00:00Z")), "its two windows are one")
	g.Expect(blocks[1].Until).To(BeTemporally("==", utc("2026-12-01T14:00:00Z")))
	blocks = At([]Freeze{b, a}, utc("2026-12-01T13:30:00Z"))
	g.Expect(blocks).To(HaveLen(1))
	g.Expect(blocks[0].ID).To(Equal("ClusterChangeFreeze b"))
	g.Expect(At([]Freeze{b, a}, utc("2026-12-01T14:00:00Z"))).To(BeEmpty())
}

func TestAnAllowedWindowAndAHolidayFreezeHoldTogether(t *testing.T) {
	g := NewWithT(t)
	allow := *businessHours(deployv1alpha1.FreezeWindow{Cron: "0 9 * * 1-4", Duration: "7h", TimeZone: "Europe/Berlin"})
	holiday := Freeze{Kind: "ClusterChangeFreeze", Name: "holidays", Spec: deployv1alpha1.ChangeFreezeSpec{
		Reason: "holiday freeze", ExceptionRole: "release-manager",
		Windows: []deployv1alpha1.FreezeWindow{oneOff("2026-12-23T00:00:00+01:00", "2027-01-04T00:00:00+01:00")}}}
	fs := []Freeze{allow, holiday}
	// Monday 28 December, 10:00 CET: inside business hours, but the holiday holds.
	blocks := At(fs, utc("2026-12-28T09:00:00Z"))
	g.Expect(blocks).To(HaveLen(1))
	g.Expect(blocks[0].ID).To(Equal("ClusterChangeFreeze holidays"))
	g.Expect(blocks[0].ExceptionRole).To(Equal("release-manager"))
	g.Expect(blocks[0].ExceptionCount).To(Equal(2), "two people by default")
	// Sunday 27 December: both.
	g.Expect(At(fs, utc("2026-12-27T09:00:00Z"))).To(HaveLen(2))
	// Monday 4 January 10:00: neither.
	g.Expect(At(fs, utc("2027-01-04T09:00:00Z"))).To(BeEmpty())
}

func TestAFreezeThatCannotBeReadHoldsAndSaysWhy(t *testing.T) {
	g := NewWithT(t)
	f := &Freeze{Kind: "ChangeFreeze", Name: "shop/typo", Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "holidays",
		Windows: []deployv1alpha1.FreezeWindow{
			oneOff("2026-12-01T10:00:00Z", "2026-12-01T12:00:00Z"),
			{Cron: "0 9 * * 1-4", Duration: "7h", TimeZone: "Europe/Berlinn"}}}}
	b, held := f.At(utc("2026-06-01T00:00:00Z"))
	g.Expect(held).To(BeTrue())
	g.Expect(b.Err).To(Equal(`windows[1].timeZone: "Europe/Berlinn" is not an IANA time zone`))
	g.Expect(b.Describe()).To(ContainSubstring("cannot be read, and holds until it is fixed"))

	f.Spec.Windows[1] = deployv1alpha1.FreezeWindow{RRule: "FREQ=WEEKLY;BYDAY=XX", Duration: "1h"}
	b, held = f.At(utc("2026-06-01T00:00:00Z"))
	g.Expect(held).To(BeTrue())
	g.Expect(b.Err).To(HavePrefix("windows[1].rrule: "))
}

func TestNowSaysWhetherAFreezeHoldsAndWhenItsNextWindowIs(t *testing.T) {
	g := NewWithT(t)
	f := &Freeze{Kind: "ChangeFreeze", Name: "shop/weekly", Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "Friday",
		Windows: []deployv1alpha1.FreezeWindow{{RRule: "FREQ=WEEKLY;BYDAY=FR;BYHOUR=12;BYMINUTE=0;BYSECOND=0",
			Duration: "60h", TimeZone: "America/New_York"}}}}
	// Wednesday 4 November 2026 (after the US switch on 1 November): EST, UTC-5.
	w := f.Now(utc("2026-11-04T12:00:00Z"))
	g.Expect(w.InForce).To(BeFalse())
	g.Expect(w.NextStart).To(BeTemporally("==", utc("2026-11-06T17:00:00Z")))
	g.Expect(w.NextEnd).To(BeTemporally("==", utc("2026-11-09T05:00:00Z")))
	w = f.Now(utc("2026-11-07T12:00:00Z"))
	g.Expect(w.InForce).To(BeTrue())
	g.Expect(w.Until).To(BeTemporally("==", utc("2026-11-09T05:00:00Z")))
}

func TestSelectorsPickChecklistsAndNamespaces(t *testing.T) {
	g := NewWithT(t)
	payments := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}
	prod := &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}
	g.Expect(Applies(nil, nil, nil, nil)).To(BeTrue())
	g.Expect(Applies(payments, prod, map[string]string{"team": "payments"}, map[string]string{"env": "prod"})).To(BeTrue())
	g.Expect(Applies(payments, prod, map[string]string{"team": "search"}, map[string]string{"env": "prod"})).To(BeFalse())
	g.Expect(Applies(nil, prod, nil, map[string]string{"env": "staging"})).To(BeFalse())
}

func TestWalkingARuleFromItsAdvancedStartGivesTheSameWindowsAsFromItsAnchor(t *testing.T) {
	g := NewWithT(t)
	for _, rule := range []string{
		"FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=12;BYMINUTE=0;BYSECOND=0",
		"FREQ=DAILY;INTERVAL=3;BYHOUR=1;BYMINUTE=30;BYSECOND=0",
		"FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
		"FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=31;BYHOUR=23;BYMINUTE=0;BYSECOND=0",
		"FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24;BYHOUR=0;BYMINUTE=0;BYSECOND=0",
		"FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=30;BYSECOND=0",
	} {
		fast, err := compile(0, &deployv1alpha1.FreezeWindow{RRule: rule, Duration: "3h", TimeZone: "Europe/Berlin"})
		g.Expect(err).NotTo(HaveOccurred())
		opt, err := rrule.StrToROption(rule)
		g.Expect(err).NotTo(HaveOccurred())
		berlin, _ := time.LoadLocation("Europe/Berlin")
		opt.Dtstart = time.Date(2024, 1, 1, 0, 0, 0, 0, berlin)
		slow, err := rrule.NewRRule(*opt)
		g.Expect(err).NotTo(HaveOccurred())
		for at := utc("2024-01-02T00:00:00Z"); at.Before(utc("2029-01-01T00:00:00Z")); at = at.Add(97*time.Hour + 13*time.Minute) {
			got, ok := fast.next(at)
			g.Expect(ok).To(BeTrue())
			g.Expect(got).To(BeTemporally("==", slow.After(at.In(berlin), false)), "%s after %s", rule, at)
		}
	}
}

func TestAFreezeWhoseSelectorCannotBeReadAppliesAndHoldsNamingTheField(t *testing.T) {
	g := NewWithT(t)
	window := []deployv1alpha1.FreezeWindow{oneOff("2026-12-23T00:00:00Z", "2027-01-04T00:00:00Z")}
	for field, f := range map[string]Freeze{
		"selector: ": {Kind: "ChangeFreeze", Name: "shop/holidays", Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "holidays", Windows: window,
			Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "in", Values: []string{"web"}}}}}},
		"namespaceSelector: ": {Kind: "ClusterChangeFreeze", Name: "holidays", Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "holidays", Windows: window},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn}}}},
	} {
		g.Expect(f.Selects(map[string]string{"tier": "api"}, nil)).To(BeTrue(), field)
		// Outside its window too: what it would hold cannot be told.
		b, held := f.At(utc("2026-11-01T00:00:00Z"))
		g.Expect(held).To(BeTrue(), field)
		g.Expect(b.Err).To(HavePrefix(field))
		g.Expect(b.Describe()).To(ContainSubstring("cannot be read, and holds until it is fixed: " + field))
		g.Expect(Applies(f.Spec.Selector, f.NamespaceSelector, nil, nil)).To(BeTrue(), field)
	}
}

func TestAFreezeSelectsByTheChecklistsLabelsOrItsWorkloads(t *testing.T) {
	g := NewWithT(t)
	f := Freeze{Spec: deployv1alpha1.ChangeFreezeSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "payments"}}}}
	g.Expect(f.Selects(map[string]string{"tier": "payments"}, nil)).To(BeTrue())
	g.Expect(f.Selects(nil, map[string]string{"tier": "payments", "app": "ledger"})).To(BeTrue(), "the workload's label holds it")
	g.Expect(f.Selects(map[string]string{"tier": "web"}, map[string]string{"tier": "payments"})).To(BeTrue())
	g.Expect(f.Selects(map[string]string{"tier": "web"}, map[string]string{"app": "ledger"})).To(BeFalse())
	g.Expect((&Freeze{}).Selects(nil, nil)).To(BeTrue(), "no selector: all")
}
