package checklist

import (
	"slices"

	"github.com/tminus-dev/tminus/internal/gate"
)

// upgradeHashes replaces each template hash an earlier version stored in status (the
// first 16 hex digits of the digest, see gate.SameTemplate) with the whole digest of
// the template it names, when this reconcile sees that template: the Deployment's
// template, the one serving, one of its ReplicaSets', or the recorded pre-deploy one.
// Every comparison the engine makes is of a stored hash with an observed one, or of two
// stored hashes naming one template, so after this pass == compares them as before the
// upgrade, and the next status write stores the whole digests. A stored hash whose
// template is seen nowhere is left as it is: nothing observed can be that template.
func (e *engine) upgradeHashes() {
	e.each(func() bool { e.upgradeTargetHashes(); return true })
}

// upgradeTargetHashes is upgradeHashes for the target at hand (and the sign-offs).
func (e *engine) upgradeTargetHashes() {
	ts := e.ts()
	if ts == nil {
		return
	}
	stored := []*string{&ts.PreDeployTemplateHash, &ts.CandidateTemplateHash, &ts.ReleasedTemplateHash, &ts.HeldTemplateHash}
	for i := range e.st.Approvals {
		stored = append(stored, &e.st.Approvals[i].CandidateTemplateHash)
	}
	// Every reconcile asks; only a release in flight across the upgrade has work here
	// (decoding the pre-deploy template and hashing it is not free).
	if !slices.ContainsFunc(stored, func(h *string) bool { return gate.IsLegacyHash(*h) }) {
		return
	}
	t := e.tobs()
	known := make([]string, 0, 3+len(t.PodTemplateHashes))
	known = append(known, t.TemplateHash, t.ServingHash)
	for h := range t.PodTemplateHashes {
		known = append(known, h)
	}
	if tmpl, err := PreDeployTemplate(ts); err == nil {
		known = append(known, gate.TemplateHash(tmpl))
	}
	upgrade := func(h *string) {
		for _, k := range known {
			if k != *h && gate.SameTemplate(*h, k) {
				*h = k
				return
			}
		}
	}
	for _, h := range stored {
		upgrade(h)
	}
}
