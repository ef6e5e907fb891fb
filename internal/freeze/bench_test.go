package freeze

import (
	"testing"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// BenchmarkAt measures one evaluation of a freeze at a time in late 2026, as a
// reconcile before T-0 asks it: rules are read again each time; RRULEs are walked from
// their anchor advanced to a few periods before the time asked.
func BenchmarkAt(b *testing.B) {
	at := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	for name, w := range map[string]deployv1alpha1.FreezeWindow{
		"one-off":      {Start: nil, End: nil},
		"cron-weekday": {Cron: "0 9 * * 1-4", Duration: "7h", TimeZone: "Europe/Berlin"},
		"rrule-weekly": {RRule: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH;BYHOUR=9;BYMINUTE=0;BYSECOND=0", Duration: "7h",
			TimeZone: "Europe/Berlin"},
		"rrule-daily": {RRule: "FREQ=DAILY;BYHOUR=22;BYMINUTE=0;BYSECOND=0", Duration: "8h", TimeZone: "Europe/Berlin"},
	} {
		if name == "one-off" {
			w = oneOff("2026-12-23T00:00:00Z", "2027-01-04T00:00:00Z")
		}
		f := &Freeze{Kind: "ChangeFreeze", Name: "shop/bench", Spec: deployv1alpha1.ChangeFreezeSpec{
			Reason: "bench", Windows: []deployv1alpha1.FreezeWindow{w}}}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				f.At(at)
			}
		})
	}
}
