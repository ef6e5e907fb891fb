package checklist

import (
	"errors"
	"fmt"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Whole is a checklist as the API server stores it: the only kind Decide takes. The
// manager's cache keeps ended checklists stripped of what no reader of the cache needs
// (internal/slim); WholeOf refuses those, so a decision is never made on a checklist
// missing its phases, checks or approvals.
type Whole struct {
	dcl *deployv1alpha1.DeploymentChecklist
}

// ErrStripped: the checklist is the cache's stripped copy of an ended one; read it
// from the API server.
var ErrStripped = errors.New("the checklist is the cache's stripped copy of an ended one, not the whole checklist")

// WholeOf is dcl to decide on, unless it is a stripped copy (ErrStripped).
func WholeOf(dcl *deployv1alpha1.DeploymentChecklist) (Whole, error) {
	if _, ok := dcl.Annotations[deployv1alpha1.StrippedAnnotation]; ok {
		return Whole{}, fmt.Errorf("checklist %s/%s: %w", dcl.Namespace, dcl.Name, ErrStripped)
	}
	return Whole{dcl: dcl}, nil
}

// MustWhole is WholeOf for checklists made whole by their caller (tests, harnesses):
// it panics on a stripped one.
func MustWhole(dcl *deployv1alpha1.DeploymentChecklist) Whole {
	w, err := WholeOf(dcl)
	if err != nil {
		panic(err)
	}
	return w
}
