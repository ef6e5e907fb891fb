package plugin

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/request"
)

// requestCommands are rollback and abort: a person's request written as an annotation,
// "<who>: <why>", which the checklist webhook verifies (the verb rollback or abort on
// deploymentchecklists) and tminus acts on once.
func (o *options) requestCommands() []*cobra.Command {
	out := make([]*cobra.Command, 0, 2)
	for _, k := range []struct {
		use, short string
		annotation string
	}{
		{"rollback NAME --reason WHY", "Roll the release back now (during verification, or after Succeeded while it still serves)",
			deployv1alpha1.RollbackRequestedAnnotation},
		{"abort NAME --reason WHY", "Stop the release before T-0: it will not start, and a change it holds stays held",
			deployv1alpha1.AbortRequestedAnnotation},
	} {
		var reason, as string
		cmd := &cobra.Command{
			Use:   k.use,
			Short: k.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return o.request(cmd.Context(), args[0], k.annotation, as, reason)
			},
		}
		cmd.Flags().StringVar(&reason, "reason", "", "why, e.g. \"CVE-2026-1234 in the new image\" (required)")
		cmd.Flags().StringVar(&as, "as-requester", "", "the requester to name (default: the current user; "+
			"the webhook refuses another name unless you are a trusted GitOps writer)")
		_ = cmd.MarkFlagRequired("reason")
		out = append(out, cmd)
	}
	return out
}

// request writes the request annotation, retried when the controller updated the
// checklist in between. The webhook's refusal (no verb, the checklist cannot act on
// it) is returned as it said it.
func (o *options) request(ctx context.Context, name, annotation, by, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("--reason is required: say why, it goes to the checklist, its events, notifications and record")
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, dcl, who, err := o.load(ctx, name, by)
		if err != nil {
			return err
		}
		by = who
		value := request.Value(by, strings.TrimSpace(reason))
		if _, _, err := request.Parse(annotation, value); err != nil {
			return err
		}
		before := dcl.DeepCopy()
		if dcl.Annotations == nil {
			dcl.Annotations = map[string]string{}
		}
		dcl.Annotations[annotation] = value
		return c.Patch(ctx, dcl, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return err
	}
	what := strings.TrimSuffix(strings.TrimPrefix(annotation, "deploy.tminus.dev/"), "-requested")
	_, err = fmt.Fprintf(o.out, "deploymentchecklist/%s: %s requested by %s (annotation %s); "+
		"kubectl checklist status %s shows what tminus made of it\n", name, what, by, annotation, name)
	return err
}

// retryCommand is `kubectl checklist retry NAME`.
func (o *options) retryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "retry NAME",
		Short: "After RolledBack or Failed, make the next checklist for the same revision from the same spec (NAME-retry-1, ...), its sign-offs asked again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			who, err := o.currentUser(cmd.Context())
			if err != nil {
				return err
			}
			c, ns, err := o.client()
			if err != nil {
				return err
			}
			made, err := Retry(cmd.Context(), c, ns, args[0], who)
			if err != nil {
				return err
			}
			revision, targets := retryRevision(c, ns, made)
			_, err = fmt.Fprintf(o.out, "deploymentchecklist/%s created: it retries %s (revision %s) and asks its sign-offs again; "+
				"push the revision's template again if %s no longer holds it\n", made, args[0], revision, targets)
			return err
		},
	}
}

// retryRevision is the revision the checklist name releases, and its targets as messages
// name them ("StatefulSet db").
func retryRevision(c client.Client, ns, name string) (revision, targets string) {
	var dcl deployv1alpha1.DeploymentChecklist
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &dcl); err != nil {
		return "?", "its target"
	}
	return approval.Revision(&dcl), deployv1alpha1.DescribeTargets(dcl.Spec.TargetRefs())
}

// retrySuffix ends the name of a checklist made by Retry.
var retrySuffix = regexp.MustCompile(`-retry-[0-9]+$`)

// Retry makes, as by, the checklist that retries name (which must have ended
// RolledBack or Failed): the same spec (target, revision, template and parameters,
// or its own body), its labels, and none of its annotations but deploy.tminus.dev/retry-of
// naming it: no sign-off is carried over. It is named <base>-retry-<n>, the first n
// free, where <base> is name without a retry suffix of its own. name is then annotated
// deploy.tminus.dev/retried-as: "<new name> by <by>". It returns the new name.
func Retry(ctx context.Context, c client.Client, ns, name, by string) (string, error) {
	var prev deployv1alpha1.DeploymentChecklist
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &prev); err != nil {
		return "", err
	}
	if p := prev.Status.Phase; p != deployv1alpha1.PhaseRolledBack && p != deployv1alpha1.PhaseFailed {
		return "", fmt.Errorf("deploymentchecklist/%s is %s: only a checklist that ended RolledBack or Failed is retried", name, orPending(p))
	}
	if as := prev.Annotations[deployv1alpha1.RetriedAsAnnotation]; as != "" {
		return "", fmt.Errorf("deploymentchecklist/%s was already retried: %s", name, as)
	}
	base := retrySuffix.ReplaceAllString(name, "")
	var made string
	for n := 1; ; n++ {
		next := &deployv1alpha1.DeploymentChecklist{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-retry-%d", base, n), Namespace: ns, Labels: prev.Labels,
				Annotations: map[string]string{deployv1alpha1.RetryOfAnnotation: name}},
			Spec: *prev.Spec.DeepCopy(),
		}
		err := c.Create(ctx, next)
		if apierrors.IsAlreadyExists(err) && n < 100 {
			continue
		}
		if err != nil {
			return "", err
		}
		made = next.Name
		break
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, deployv1alpha1.RetriedAsAnnotation, made+" by "+by)
	if err := c.Patch(ctx, &prev, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return made, fmt.Errorf("deploymentchecklist/%s created, but recording it on %s: %w", made, name, err)
	}
	return made, nil
}

func orPending(p deployv1alpha1.ChecklistPhase) deployv1alpha1.ChecklistPhase {
	if p == "" {
		return deployv1alpha1.PhasePending
	}
	return p
}
