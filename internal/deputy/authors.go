package deputy

import (
	"encoding/json"
	"fmt"
	"slices"
)

// AuthorsAnnotation records who wrote what a checklist made from a template is made
// of: its creator, and whoever changed its templateRef or parameters before the
// template was resolved. The checklist webhook alone writes it (it drops what a request
// sends and derives it again, like the verified.approve.tminus.dev records); the
// controller judges the resolved template as each of them.
const AuthorsAnnotation = "verified.tminus.dev/authors"

// ReasonAuthorNotAllowed is the Stalled reason of a checklist whose template would make
// tminus do what one of its authors may not; ReasonAuthorUnknown, of one whose authors
// were not recorded.
const (
	ReasonAuthorNotAllowed = "AuthorNotAllowed"
	ReasonAuthorUnknown    = "AuthorUnknown"
)

// Authors reads the authors record; nil when there is none.
func Authors(annotations map[string]string) ([]Subject, error) {
	raw, ok := annotations[AuthorsAnnotation]
	if !ok {
		return nil, nil
	}
	var out []Subject
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AuthorsAnnotation, err)
	}
	return out, nil
}

// WithAuthor is the record authors with s in it (s replaces an entry of the same user,
// whose groups may have changed).
func WithAuthor(authors []Subject, s Subject) string {
	authors = slices.DeleteFunc(slices.Clone(authors), func(a Subject) bool { return a.User == s.User })
	raw, _ := json.Marshal(append(authors, s)) // a Subject always marshals
	return string(raw)
}
