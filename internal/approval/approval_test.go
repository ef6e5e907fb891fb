package approval

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/tminus-dev/tminus/internal/checklist"
)

func TestApprovalsCountOnlyForTheRevisionTheyName(t *testing.T) {
	g := NewWithT(t)
	got, problems := Parse(map[string]string{
		"approve.tminus.dev/deployment-lead": "alice for v2.7.0",
		"approve.tminus.dev/security-review": "bob for v2.6.0", // last release's, still in Git
		"approve.tminus.dev/operations":      "carol for v2.7.0",
		"approve.tminus.dev/operations.dave": "dave for v2.7.0",
		"approve.tminus.dev/technical":       "just erin",
		"approve.tminus.dev/Bad_Role":        "frank for v2.7.0",
		"kubectl.kubernetes.io/restartedAt":  "2026-11-26T20:00:00Z",
	}, "v2.7.0", false)
	g.Expect(got).To(Equal(map[string][]checklist.Approval{
		"deployment-lead": {{Key: "deployment-lead", Role: "deployment-lead", Approver: "alice", Revision: "v2.7.0"}},
		"operations": {
			{Key: "operations", Role: "operations", Approver: "carol", Revision: "v2.7.0"},
			{Key: "operations.dave", Role: "operations", Approver: "dave", Revision: "v2.7.0"},
		},
	}))
	g.Expect(problems).To(ConsistOf(
		`annotation approve.tminus.dev/technical: "just erin" is not "<approver> for <revision>"`,
		`annotation approve.tminus.dev/Bad_Role: the name after the prefix must be <role> or <role>.<suffix>`,
	))
}

func TestOnlyTheWebhooksRecordOfTheCurrentValueVerifiesAnApproval(t *testing.T) {
	g := NewWithT(t)
	ann := map[string]string{
		"approve.tminus.dev/security-review":          "bob for v2",
		"verified.approve.tminus.dev/security-review": "bob for v2 | bob",
		"approve.tminus.dev/operations":               "carol for v2",
		"verified.approve.tminus.dev/operations":      "carol for v1 | carol", // verified an older value
	}
	got, _ := Parse(ann, "v2", true)
	g.Expect(got["security-review"][0].Verified).To(BeTrue())
	g.Expect(got["operations"][0].Verified).To(BeFalse())

	got, _ = Parse(ann, "v2", false)
	g.Expect(got["security-review"][0].Verified).To(BeFalse(), "without the webhook, records are not believed")
}

// FuzzParseEntry: parsing never panics, and whatever parses, written back with Value,
// parses to the same approval.
func FuzzParseEntry(f *testing.F) {
	f.Add("security-review", "bob for v2.7.0")
	f.Add("operations.dave", "dave@example.com for release-42")
	f.Add("ops", "system:serviceaccount:argocd:argocd-application-controller for v1")
	f.Add("x", " for ")
	f.Add("role.", "a for b for c")
	f.Add("r", "alice for v2 | alice")
	f.Fuzz(func(t *testing.T, key, value string) {
		e, err := ParseEntry(key, value)
		if err != nil {
			return
		}
		if e.Role == "" || e.Approver == "" || e.Revision == "" || !strings.HasPrefix(key, e.Role) {
			t.Fatalf("parsed %q=%q into %+v", key, value, e)
		}
		again, err := ParseEntry(key, Value(e.Approver, e.Revision))
		if err != nil || again != e {
			t.Fatalf("round trip of %+v: %+v, %v", e, again, err)
		}
	})
}

func TestTheWebhooksRecordSaysWhichTemplateTheSignOffWasFor(t *testing.T) {
	g := NewWithT(t)
	ann := map[string]string{
		"approve.tminus.dev/security-review":          "bob for v2",
		"verified.approve.tminus.dev/security-review": VerifiedValue("bob for v2", "bob", "3f2a"),
		"approve.tminus.dev/operations":               "carol for v2",
		"verified.approve.tminus.dev/operations":      "carol for v2 | carol", // before templates were recorded
		"approve.tminus.dev/ops":                      "erin for v2",
		"verified.approve.tminus.dev/ops":             VerifiedValue("erin for v2", "erin | template 3f2a", checklist.NoTemplate),
	}
	got, _ := Parse(ann, "v2", true)
	g.Expect(got["security-review"][0].AdmittedTemplate).To(Equal("3f2a"))
	g.Expect(got["security-review"][0].Verified).To(BeTrue())
	g.Expect(got["operations"][0].AdmittedTemplate).To(BeEmpty(), "an old record is read, its template unknown")
	g.Expect(got["operations"][0].Verified).To(BeTrue())
	g.Expect(got["ops"][0].AdmittedTemplate).To(Equal(checklist.NoTemplate), "the record's last part, whatever the username says")

	got, _ = Parse(ann, "v2", false)
	g.Expect(got["security-review"][0].AdmittedTemplate).To(BeEmpty(), "without the webhook, records are not believed")
}
