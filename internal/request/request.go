// Package request reads and writes a person's requests on a checklist, which live in
// its annotations like sign-offs do:
//
//	deploy.tminus.dev/rollback-requested: "<who>: <why>"
//	deploy.tminus.dev/abort-requested:    "<who>: <why>"
//
// <who> is the requester (a username, which may hold ':' but not ": "), <why> the
// reason, never empty. The checklist webhook verifies a request like a sign-off: the
// user writing it needs the RBAC verb rollback (or abort) on deploymentchecklists and
// must be <who>, unless it is a trusted GitOps writer. It records what it verified in
// an annotation only it can write:
//
//	verified.deploy.tminus.dev/rollback-requested: "<request value> | <username>"
//
// The manager acts only on a verified request; an unverified one is reported.
package request

import (
	"fmt"
	"strings"
	"unicode/utf8"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// VerifiedPrefix starts the webhook's verification records of requests.
const VerifiedPrefix = "verified.deploy.tminus.dev/"

// Verbs: the RBAC verb on deploymentchecklists each request needs.
const (
	RollbackVerb = "rollback"
	AbortVerb    = "abort"
)

// maxValue bounds a request's value; longer ones are malformed.
const maxValue = 512

// Kind describes one kind of request: its annotation and the verb it needs.
type Kind struct {
	Kind       deployv1alpha1.RequestKind
	Annotation string
	Verb       string
}

// Kinds are the requests a person can make, abort first (it stops a release before it
// starts, so it is read first).
var Kinds = []Kind{
	{Kind: deployv1alpha1.RequestAbort, Annotation: deployv1alpha1.AbortRequestedAnnotation, Verb: AbortVerb},
	{Kind: deployv1alpha1.RequestRollback, Annotation: deployv1alpha1.RollbackRequestedAnnotation, Verb: RollbackVerb},
}

// Value is how a request is written: "<who>: <why>".
func Value(by, reason string) string { return by + ": " + reason }

// Parse reads a request's value.
func Parse(annotation, value string) (by, reason string, err error) {
	if len(value) > maxValue || !utf8.ValidString(value) {
		return "", "", fmt.Errorf("annotation %s: the value is not valid text of at most %d bytes", annotation, maxValue)
	}
	by, reason, ok := strings.Cut(value, ": ")
	by, reason = strings.TrimSpace(by), strings.TrimSpace(reason)
	if !ok || by == "" || strings.ContainsAny(by, "|\n") {
		return "", "", fmt.Errorf("annotation %s: %q is not \"<who>: <why>\"", annotation, value)
	}
	if reason == "" {
		return "", "", fmt.Errorf("annotation %s: a request needs a reason: \"%s: <why>\" (kubectl checklist %s --reason)",
			annotation, by, strings.ToLower(string(kindOf(annotation))))
	}
	return by, reason, nil
}

func kindOf(annotation string) deployv1alpha1.RequestKind {
	for _, k := range Kinds {
		if k.Annotation == annotation {
			return k.Kind
		}
	}
	return ""
}

// VerifiedKey is the annotation the webhook records a verified request of annotation in.
func VerifiedKey(annotation string) string {
	return VerifiedPrefix + strings.TrimPrefix(annotation, "deploy.tminus.dev/")
}

// VerifiedValue is the webhook's record that the request value was written by username.
func VerifiedValue(value, username string) string { return value + " | " + username }

// Read returns the requests in annotations, well formed or not (a malformed one as a
// problem). trustVerified says the webhook is installed, so its records can be believed.
func Read(annotations map[string]string, trustVerified bool) ([]checklist.Request, []string) {
	var out []checklist.Request
	var problems []string
	for _, k := range Kinds {
		v, ok := annotations[k.Annotation]
		if !ok {
			continue
		}
		by, reason, err := Parse(k.Annotation, v)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		r := checklist.Request{Kind: k.Kind, By: by, Reason: reason}
		if rec, ok := annotations[VerifiedKey(k.Annotation)]; ok && trustVerified {
			if user, ok := strings.CutPrefix(rec, v+" | "); ok && user != "" {
				r.Verified, r.WrittenBy = true, user
			}
		}
		out = append(out, r)
	}
	return out, problems
}
