// Package secretref reads one key of a Secret that a user's object names, with errors
// that name the field and the Secret and never the value.
package secretref

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Value reads ref's key of a Secret in ns through r (an uncached reader: tminus never
// lists or watches Secrets), trimmed of surrounding space. field names the referring
// field in errors.
func Value(ctx context.Context, r client.Reader, ns string, ref *deployv1alpha1.SecretKeyRef, field string) (string, error) {
	if r == nil {
		return "", fmt.Errorf("%s: no Secret reader configured", field)
	}
	var s corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("%s: Secret %s/%s not found", field, ns, ref.Name)
		}
		if apierrors.IsForbidden(err) {
			return "", fmt.Errorf("%s: reading Secret %s/%s is forbidden", field, ns, ref.Name)
		}
		return "", fmt.Errorf("%s: reading Secret %s/%s: %v", field, ns, ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		return "", fmt.Errorf("%s: Secret %s/%s has no key %q", field, ns, ref.Name, ref.Key)
	}
	return strings.TrimSpace(string(v)), nil
}
