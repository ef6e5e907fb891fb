package checklist

import (
	"testing"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func TestQueryVariablesAreEscapedForWhereTheyStand(t *testing.T) {
	vars := map[string]string{"namespace": "shop.eu", "revision": "v2.8.0+build1", "target": "checkout", "podTemplateHash": "7d9f"}
	for _, tc := range []struct{ name, query, want string }{
		{"an exact matcher takes the value as it is",
			`x{namespace="{{namespace}}",version="{{revision}}"}`, `x{namespace="shop.eu",version="v2.8.0+build1"}`},
		{"a regex matcher makes dots and pluses literal",
			`x{namespace=~"{{namespace}}",version=~"{{revision}}|v1"}`,
			`x{namespace=~"shop\\.eu",version=~"v2\\.8\\.0\\+build1|v1"}`},
		{"a negative regex matcher too, with spaces around",
			`x{version !~ "{{revision}}"}`, `x{version !~ "v2\\.8\\.0\\+build1"}`},
		{"a raw string needs no backslash doubling",
			"x{version=~`{{revision}}`}", "x{version=~`v2\\.8\\.0\\+build1`}"},
		{"single quotes are strings too",
			`x{pod_template_hash=~'{{podTemplateHash}}'}`, `x{pod_template_hash=~'7d9f'}`},
		{"an escaped quote does not end the string",
			`x{a=~"q\"{{namespace}}"}`, `x{a=~"q\"shop\\.eu"}`},
		{"outside strings the value is written as it is",
			`label_replace(x, "ns", "{{namespace}}", "", "") or {{target}}`,
			`label_replace(x, "ns", "shop.eu", "", "") or checkout`},
		{"an unknown variable is left as written",
			`x{pod_template_hash="{{preDeployPodTemplateHash}}"}`, `x{pod_template_hash="{{preDeployPodTemplateHash}}"}`},
		{"a regex matcher's context ends with its string",
			`x{a=~"{{namespace}}",b="{{namespace}}"}`, `x{a=~"shop\\.eu",b="shop.eu"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(RenderQuery(tc.query, vars)).To(Equal(tc.want))
		})
	}
}

func TestAQuoteInAValueCannotEndItsString(t *testing.T) {
	got := RenderQuery(`x{a="{{v}}"}`, map[string]string{"v": `"} or vector(1) #`})
	NewWithT(t).Expect(got).To(Equal(`x{a="\"} or vector(1) #"}`))
}

func TestBaselineQueriesAskTheVersionThatServedBefore(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	q := `x{pod_template_hash="{{podTemplateHash}}"}`
	g.Expect(Unresolved(ResolveQuery(c, q))).To(BeTrue(), "unknown before the release")
	c.Status.Target = targetStatus("old1", "new2")
	g.Expect(ResolveQuery(c, q)).To(Equal(`x{pod_template_hash="new2"}`))
	g.Expect(RenderQuery(q, BaselineVars(c))).To(Equal(`x{pod_template_hash="old1"}`))
	g.Expect(ResolveQuery(c, `x{h="{{preDeployPodTemplateHash}}"}`)).To(Equal(`x{h="old1"}`))
}

func targetStatus(preDeploy, released string) *deployv1alpha1.TargetStatus {
	return &deployv1alpha1.TargetStatus{PreDeployPodTemplateHash: preDeploy, ReleasedPodTemplateHash: released}
}
