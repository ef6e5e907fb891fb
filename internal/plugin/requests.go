package plugin

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/request"
)

// requestCommands are rollback and abort: a person's request written as an annotation,
// "<who>: <why>", which the checklist webhook verifies (the verb rollback or abort on
// deploymentchecklists) and tminus acts on once.
func (o *options) requestCommands() []*cobra.Command {
	var out []*cobra.Command
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
