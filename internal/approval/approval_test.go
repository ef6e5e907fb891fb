package approval

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/tminus-dev/tminus/internal/checklist"
)

func TestApprovalsCountOnlyForTheRevisionTheyName(t *testing.T) {
	g := NewWithT(t)
	got, problems := Parse(map[string]string{
		"approve.tminus.dev/deployment-lead": "alice for v2.7.0",
		"approve.tminus.dev/security-review": "bob for v2.6.0", // last release's, still in Git
		"approve.tminus.dev/operations":      "carol for v2.7.0, dave for v2.7.0",
		"approve.tminus.dev/technical":       "just erin",
		"kubectl.kubernetes.io/restartedAt":  "2026-11-26T20:00:00Z",
	}, "v2.7.0")
	g.Expect(got).To(Equal(map[string][]checklist.Approval{
		"deployment-lead": {{Role: "deployment-lead", Approver: "alice", Revision: "v2.7.0"}},
		"operations": {
			{Role: "operations", Approver: "carol", Revision: "v2.7.0"},
			{Role: "operations", Approver: "dave", Revision: "v2.7.0"},
		},
	}))
	g.Expect(problems).To(ConsistOf(`annotation approve.tminus.dev/technical: "just erin" is not "<approver> for <revision>"`))
}
