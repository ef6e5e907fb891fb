// Package approval reads and writes sign-offs, which live in a checklist's annotations:
//
//	approve.tminus.dev/<role>: "<approver> for <revision>"
//
// One annotation holds one sign-off. A role that needs several approvers (four-eyes)
// takes further annotations named <role>.<suffix>, e.g.
// approve.tminus.dev/security-review.bob: "bob for v2.7.0"; the kubectl plugin picks the
// suffix. An approval counts only for the revision it names; when spec.revision is
// empty, the checklist's own name stands for the revision.
//
// When the admission webhook is installed, it records each approval it verified in an
// annotation verified.approve.tminus.dev/<key>:
//
//	"<approval value> | <username> | template <hash>"
//
// where <hash> identifies the target Deployment's pod template when the sign-off was
// admitted (gate.TemplateHash; "none" when the Deployment did not exist): the template
// the signer was shown, which the sign-off is for. Records written before the template
// was recorded ("<approval value> | <username>") are still read. Only the webhook can
// write records (it overwrites whatever a request sends).
package approval

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// Prefix of approval annotations, and of the webhook's verification records.
const (
	Prefix         = deployv1alpha1.ApprovalAnnotationPrefix
	VerifiedPrefix = "verified.approve.tminus.dev/"
)

// keyPattern is <role>[.<suffix>]: the role a DNS label, the suffix letters, digits,
// '-', '_' or '.'; the whole at most 63 characters, as an annotation name allows.
var keyPattern = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)

// maxValue bounds an approval value; longer ones are malformed.
const maxValue = 256

// Entry is one approval annotation, parsed.
type Entry struct {
	// Key is the annotation name after the prefix: <role> or <role>.<suffix>.
	Key      string
	Role     string
	Approver string
	Revision string
}

// Value is how an approval is written: "<approver> for <revision>".
func Value(approver, revision string) string { return approver + " for " + revision }

// Revision is what approvals of dcl must name.
func Revision(dcl *deployv1alpha1.DeploymentChecklist) string {
	if dcl.Spec.Revision != "" {
		return dcl.Spec.Revision
	}
	return dcl.Name
}

// ParseEntry reads one approval annotation (key without the prefix, and value).
func ParseEntry(key, value string) (Entry, error) {
	m := keyPattern.FindStringSubmatch(key)
	if m == nil || len(key) > 63 {
		return Entry{}, fmt.Errorf("annotation %s%s: the name after the prefix must be <role> or <role>.<suffix>", Prefix, key)
	}
	if len(value) > maxValue || !utf8.ValidString(value) {
		return Entry{}, fmt.Errorf("annotation %s%s: the value is not valid text of at most %d bytes", Prefix, key, maxValue)
	}
	approver, revision, ok := strings.Cut(value, " for ")
	approver, revision = strings.TrimSpace(approver), strings.TrimSpace(revision)
	if !ok || approver == "" || revision == "" || strings.Contains(revision, " for ") ||
		strings.ContainsAny(approver, "|\n") || strings.ContainsAny(revision, " |\n") {
		return Entry{}, fmt.Errorf("annotation %s%s: %q is not \"<approver> for <revision>\"", Prefix, key, truncate(value))
	}
	return Entry{Key: key, Role: m[1], Approver: approver, Revision: revision}, nil
}

// Entries reads every approval annotation, with a message for each malformed one.
func Entries(annotations map[string]string) ([]Entry, []string) {
	var out []Entry
	var problems []string
	for _, k := range sortedKeys(annotations) {
		key, ok := strings.CutPrefix(k, Prefix)
		if !ok {
			continue
		}
		e, err := ParseEntry(key, annotations[k])
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out = append(out, e)
	}
	return out, problems
}

// Parse returns, by role, the approvals that count for revision, and a message for each
// malformed value. trustVerified says the webhook is installed, so its verification
// records can be believed; without it, every approval is unverified.
func Parse(annotations map[string]string, revision string, trustVerified bool) (map[string][]checklist.Approval, []string) {
	entries, problems := Entries(annotations)
	out := map[string][]checklist.Approval{}
	for _, e := range entries {
		if e.Revision != revision {
			continue
		}
		verified := trustVerified && IsVerified(annotations, e.Key, annotations[Prefix+e.Key])
		a := checklist.Approval{Key: e.Key, Role: e.Role, Approver: e.Approver, Revision: e.Revision, Verified: verified}
		if verified {
			a.AdmittedTemplate = AdmittedTemplate(annotations[VerifiedPrefix+e.Key])
		}
		out[e.Role] = append(out[e.Role], a)
	}
	return out, problems
}

// templateField opens the last part of a verification record.
const templateField = " | template "

// VerifiedValue is the webhook's record that the approval value of key was verified for
// the user username while the target Deployment's pod template was template (its
// gate.TemplateHash, or checklist.NoTemplate when the Deployment did not exist).
func VerifiedValue(value, username, template string) string {
	return value + " | " + username + templateField + template
}

// AdmittedTemplate reads, from a verification record, the template the target held when
// the sign-off was admitted: a hash, checklist.NoTemplate, or "" for a record written
// before the webhook recorded it. The template is the record's last part (the webhook
// always writes it last), so a username cannot stand in for it.
func AdmittedTemplate(record string) string {
	i := strings.LastIndex(record, templateField)
	if i < 0 {
		return ""
	}
	t := record[i+len(templateField):]
	if t == "" || strings.ContainsAny(t, " |") {
		return ""
	}
	return t
}

// IsVerified says whether the webhook recorded the current value of approval key.
func IsVerified(annotations map[string]string, key, value string) bool {
	rec, ok := annotations[VerifiedPrefix+key]
	return ok && strings.HasPrefix(rec, value+" | ")
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
