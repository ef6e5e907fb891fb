// Package gitops tests what tminus ships for GitOps tools: the Argo CD health check.
package gitops

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"

	"github.com/tminus-dev/tminus/test/testbed"
)

// health runs config/argocd/health.lua the way Argo CD does: the object as the global
// `obj`, the script's returned table read for status and message.
func health(t *testing.T, objJSON string) (string, string) {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(root, "config", "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	var obj any
	if err := json.Unmarshal([]byte(objJSON), &obj); err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		t.Fatalf("health.lua: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %v, not a table", L.Get(-1))
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	}
	return lua.LNil
}

func TestArgoCDHealthFollowsTheChecklist(t *testing.T) {
	cases := []struct {
		name, obj, status, message string
	}{
		{"not reconciled yet", `{"metadata":{"generation":1}}`, "Progressing", "Waiting for tminus to reconcile the checklist"},
		{"spec changed, not observed", `{"metadata":{"generation":3},"status":{"phase":"Running","observedGeneration":2}}`,
			"Progressing", "Waiting for tminus to observe the latest spec"},
		{"waiting for a sign-off", `{"metadata":{"generation":1},"status":{"phase":"Running","observedGeneration":1,
			"nextAction":"waiting for T-15m","conditions":[{"type":"AwaitingApproval","status":"True","message":"waiting for T-15m/security"}]}}`,
			"Suspended", "waiting for T-15m/security"},
		{"verifying", `{"metadata":{"generation":1},"status":{"phase":"Verifying","observedGeneration":1,"nextAction":"T+15m opens at 20:15",
			"conditions":[{"type":"AwaitingApproval","status":"False"}]}}`, "Progressing", "Verifying: T+15m opens at 20:15"},
		{"prometheus down", `{"metadata":{"generation":1},"status":{"phase":"Verifying","observedGeneration":1,
			"conditions":[{"type":"Degraded","status":"True","message":"4 measurements in a row failed"}]}}`, "Degraded", "4 measurements in a row failed"},
		{"succeeded", `{"metadata":{"generation":1},"status":{"phase":"Succeeded","observedGeneration":1}}`, "Healthy", "Every phase passed"},
		{"rolled back", `{"metadata":{"generation":1},"status":{"phase":"RolledBack","observedGeneration":1,
			"conditions":[{"type":"Ready","status":"False","reason":"TriggerFired","message":"rollback trigger errors-5pct fired: 0.07 > 0.05"}]}}`,
			"Degraded", "RolledBack: rollback trigger errors-5pct fired: 0.07 > 0.05"},
		{"missed window", `{"metadata":{"generation":1},"status":{"phase":"Failed","observedGeneration":1,
			"conditions":[{"type":"Ready","status":"False","message":"missed the deploy window"}]}}`, "Degraded", "Failed: missed the deploy window"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			status, message := health(t, tc.obj)
			g.Expect(status).To(Equal(tc.status))
			g.Expect(message).To(Equal(tc.message))
		})
	}
}
