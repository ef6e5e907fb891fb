// Package deputy keeps tminus from being a confused deputy. A checklist or a
// notification policy makes the manager act with the manager's rights: read a Secret
// and send its value somewhere, create a Job, run it as a service account. So that an
// object grants no more than whoever wrote it has, the writer must hold those rights
// themselves, judged by SubjectAccessReview: at admission (internal/webhook) for what
// the object says, and at resolution (internal/controller) for what a template it
// names says, as its authors.
//
// A right is judged together with what decides its use: a Secret's reference together
// with where its value goes (the address, TLS, headers, a receiver's URL), a service
// account together with the Job that runs as it. The same reference in another context
// is a new reference: whoever changes the context needs the right, as if they had
// written the reference.
package deputy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Reference is one thing an object makes the manager do, with the field that asks it.
type Reference struct {
	// Field asks for the right, e.g. spec.prometheus.bearerTokenSecretRef.
	Field string
	// Attrs is the right, as a SubjectAccessReview asks it.
	Attrs authorizationv1.ResourceAttributes
	// What the right is, in words ("get Secret prom-token").
	What string
	// Context is what decides where a Secret's value goes or what runs with the right,
	// field by field.
	Context []Use
}

// Use is one field of a reference's context and its value.
type Use struct {
	Field string
	Value string
}

// use is a Use with the value as JSON (nil as "null").
func use(field string, v any) Use {
	raw, err := json.Marshal(v)
	if err != nil { // the API types always marshal
		raw = []byte(fmt.Sprintf("%#v", v))
	}
	return Use{Field: field, Value: string(raw)}
}

// key identifies a reference: its right and a digest of its context's values (not
// their field names, so the same Job check moved to another phase is the same
// reference).
func (r *Reference) key() string {
	h := sha256.New()
	for _, u := range r.Context {
		h.Write([]byte(u.Value))
		h.Write([]byte{0})
	}
	a := r.Attrs
	return strings.Join([]string{a.Namespace, a.Verb, a.Group, a.Resource, a.Subresource, a.Name, hex.EncodeToString(h.Sum(nil))}, "\x00")
}

// Subject is who a right is judged for: an admission request's user, or a recorded
// author.
type Subject struct {
	User   string              `json:"user"`
	UID    string              `json:"uid,omitempty"`
	Groups []string            `json:"groups,omitempty"`
	Extra  map[string][]string `json:"extra,omitempty"`
}

// SubjectOf is the subject of an admission request's user.
func SubjectOf(u authenticationv1.UserInfo) Subject {
	s := Subject{User: u.Username, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		s.Extra = map[string][]string{}
		for k, v := range u.Extra {
			s.Extra[k] = v
		}
	}
	return s
}

// Allowed asks the API server whether s may do what attrs say.
func Allowed(ctx context.Context, c client.Client, s Subject, attrs authorizationv1.ResourceAttributes) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range s.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: s.User, Groups: s.Groups, UID: s.UID, Extra: extra,
		ResourceAttributes: &attrs,
	}}
	if err := c.Create(ctx, sar); err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// Refusal is a reference its writer may not make tminus act on.
type Refusal struct {
	Ref Reference
	// Changed are the context fields that changed, when the reference was there
	// before in another context; empty for a reference that is new.
	Changed []string
	User    string
}

// Message says what was refused, naming the field (or the changed fields) and the right.
func (r *Refusal) Message() string {
	if len(r.Changed) > 0 {
		return fmt.Sprintf("%s changed, and it decides what %s makes tminus do: user %q may not %s in namespace %s",
			strings.Join(r.Changed, ", "), r.Ref.Field, r.User, r.Ref.What, r.Ref.Attrs.Namespace)
	}
	return fmt.Sprintf("%s: user %q may not %s in namespace %s", r.Ref.Field, r.User, r.Ref.What, r.Ref.Attrs.Namespace)
}

// Judge returns the first reference of refs s may not make tminus act on (nil when it
// may do all). A reference old had, in the same context, was judged when it was written
// and is not asked again; every other one is, and one whose context changed names the
// fields that changed it. Each distinct right is asked once.
func Judge(ctx context.Context, c client.Client, s Subject, refs, old []Reference) (*Refusal, error) {
	had := map[string]bool{}
	byField := map[string]*Reference{}
	for i := range old {
		had[old[i].key()] = true
		byField[old[i].Field] = &old[i]
	}
	asked := map[authorizationv1.ResourceAttributes]bool{}
	for _, r := range refs {
		if had[r.key()] {
			continue
		}
		ok, seen := asked[r.Attrs]
		if !seen {
			var err error
			if ok, err = Allowed(ctx, c, s, r.Attrs); err != nil {
				return nil, fmt.Errorf("checking whether %s may %s: %w", s.User, r.What, err)
			}
			asked[r.Attrs] = ok
		}
		if ok {
			continue
		}
		refusal := &Refusal{Ref: r, User: s.User}
		if prev := byField[r.Field]; prev != nil && prev.Attrs == r.Attrs {
			refusal.Changed = changed(prev.Context, r.Context)
		}
		return refusal, nil
	}
	return nil, nil
}

// changed lists the fields of after whose value is not the one before gave them.
func changed(before, after []Use) []string {
	was := map[string]string{}
	for _, u := range before {
		was[u.Field] = u.Value
	}
	var out []string
	for _, u := range after {
		if v, ok := was[u.Field]; !ok || v != u.Value {
			out = append(out, u.Field)
		}
	}
	return slices.Compact(out)
}
