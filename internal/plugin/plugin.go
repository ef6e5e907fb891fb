// Package plugin implements the kubectl-checklist commands.
package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/report"
	"github.com/tminus-dev/tminus/internal/version"
)

type options struct {
	flags    *genericclioptions.ConfigFlags
	out, err io.Writer
	// cfg and ns, when cfg is set, replace the flags: the dashboard runs the same
	// commands for a checklist of the namespace its user chose, with the user's config.
	cfg *rest.Config
	ns  string
}

func (o *options) restConfig() (*rest.Config, error) {
	if o.cfg != nil {
		return rest.CopyConfig(o.cfg), nil
	}
	return o.flags.ToRESTConfig()
}

func (o *options) namespace() (string, error) {
	if o.cfg != nil {
		return o.ns, nil
	}
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// NewCommand returns the kubectl-checklist root command.
func NewCommand(out, errOut io.Writer) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), out: out, err: errOut}
	root := &cobra.Command{
		Use:           "kubectl-checklist",
		Short:         "Approve, inspect and explain tminus DeploymentChecklists",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String("kubectl-checklist"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	o.flags.AddFlags(root.PersistentFlags())

	var role, approver string
	approve := &cobra.Command{
		Use:   "approve NAME --role ROLE",
		Short: "Sign off ROLE on the checklist's current revision, as the current user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.approve(cmd.Context(), args[0], role, approver)
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME --role ROLE",
		Short: "Withdraw the current user's sign-off of ROLE (before T-0 this blocks the release again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.revoke(cmd.Context(), args[0], role, approver)
		},
	}
	for _, c := range []*cobra.Command{approve, revoke} {
		c.Flags().StringVar(&role, "role", "", "the role, e.g. deployment-lead or security-review")
		c.Flags().StringVar(&approver, "approver", "", "the approver to name (default: the current user; "+
			"the webhook refuses another name unless you are a trusted GitOps writer)")
		_ = c.MarkFlagRequired("role")
	}
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Show the timeline: phases, checks and values against thresholds, triggers, approvals, what comes next",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dcl, err := o.get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return report.Timeline(o.out, dcl, time.Now())
		},
	}
	why := &cobra.Command{
		Use:   "why NAME",
		Short: "Say in one paragraph what the checklist waits for, or why it rolled back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dcl, err := o.get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(o.out, report.Why(dcl, time.Now()))
			return err
		},
	}
	root.AddCommand(approve, revoke, status, why, o.newCommand(), o.recordCommand(), o.freezesCommand())
	root.AddCommand(o.requestCommands()...)
	root.AddCommand(o.retryCommand(), o.dashboardCommand())
	return root
}

func (o *options) client() (client.Client, string, error) {
	cfg, err := o.restConfig()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.namespace()
	if err != nil {
		return nil, "", err
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	return c, ns, err
}

// newScheme knows tminus's kinds and the core ones the plugin reads.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := deployv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}

func (o *options) get(ctx context.Context, name string) (*deployv1alpha1.DeploymentChecklist, error) {
	c, ns, err := o.client()
	if err != nil {
		return nil, err
	}
	var dcl deployv1alpha1.DeploymentChecklist
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &dcl); err != nil {
		return nil, err
	}
	return &dcl, nil
}

// currentUser asks the API server who we are (SelfSubjectReview).
func (o *options) currentUser(ctx context.Context) (string, error) {
	cfg, err := o.restConfig()
	if err != nil {
		return "", err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("finding the current user: %w", err)
	}
	return r.Status.UserInfo.Username, nil
}

// load finds the approver (the current user unless given), a client and the checklist.
func (o *options) load(ctx context.Context, name, approver string) (client.Client, *deployv1alpha1.DeploymentChecklist, string, error) {
	if approver == "" {
		var err error
		if approver, err = o.currentUser(ctx); err != nil {
			return nil, nil, "", err
		}
	}
	c, ns, err := o.client()
	if err != nil {
		return nil, nil, "", err
	}
	var dcl deployv1alpha1.DeploymentChecklist
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &dcl); err != nil {
		return nil, nil, "", err
	}
	return c, &dcl, approver, nil
}

// approve writes the sign-off. The checklist is read again and the write retried when
// the controller updated it in between (its status changes the resourceVersion).
func (o *options) approve(ctx context.Context, name, role, approver string) error {
	var key, revision string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, dcl, who, err := o.load(ctx, name, approver)
		if err != nil {
			return err
		}
		approver = who
		revision = approval.Revision(dcl)
		key = KeyFor(dcl.Annotations, role, approver)
		value := approval.Value(approver, revision)
		before := dcl.DeepCopy()
		if dcl.Annotations == nil {
			dcl.Annotations = map[string]string{}
		}
		// A sign-off that no longer counts (the template changed after it was given) is
		// given again under a new annotation, which tminus binds to the template now.
		if fresh := resignKey(dcl, key, value); fresh != "" {
			delete(dcl.Annotations, approval.Prefix+key)
			key = fresh
		}
		if _, err := approval.ParseEntry(key, value); err != nil {
			return err
		}
		dcl.Annotations[approval.Prefix+key] = value
		return c.Patch(ctx, dcl, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.out, "deploymentchecklist/%s: %s approved %s for %s (annotation %s%s)\n", name, approver, role, revision, approval.Prefix, key)
	return err
}

func (o *options) revoke(ctx context.Context, name, role, approver string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, dcl, who, err := o.load(ctx, name, approver)
		if err != nil {
			return err
		}
		approver = who
		before := dcl.DeepCopy()
		entries, _ := approval.Entries(dcl.Annotations)
		removed := 0
		for _, e := range entries {
			if e.Role == role && e.Approver == approver {
				delete(dcl.Annotations, approval.Prefix+e.Key)
				removed++
			}
		}
		if removed == 0 {
			return fmt.Errorf("deploymentchecklist/%s has no %s approval by %s", name, role, approver)
		}
		return c.Patch(ctx, dcl, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.out, "deploymentchecklist/%s: %s's approval of %s revoked\n", name, approver, role)
	return err
}

var unsafeSuffix = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// KeyFor picks the annotation for approver's sign-off of role: the role's own key when
// it is free or already theirs, otherwise <role>.<approver>, so a second person (four
// eyes) never overwrites the first.
func KeyFor(annotations map[string]string, role, approver string) string {
	if owner, ok := ownerOf(annotations, role); !ok || owner == approver {
		return role
	}
	suffix := strings.Trim(unsafeSuffix.ReplaceAllString(approver, "-"), "-_.")
	if suffix == "" || len(role)+1+len(suffix) > 63 {
		sum := sha256.Sum256([]byte(approver))
		suffix = hex.EncodeToString(sum[:])[:10]
	}
	return role + "." + suffix
}

func ownerOf(annotations map[string]string, key string) (string, bool) {
	v, ok := annotations[approval.Prefix+key]
	if !ok {
		return "", false
	}
	e, err := approval.ParseEntry(key, v)
	if err != nil {
		return "", true
	}
	return e.Approver, true
}

// resignKey is the annotation to give the sign-off at key again under, when the
// checklist holds it already and its status says it no longer counts because the
// template changed; "" otherwise.
func resignKey(dcl *deployv1alpha1.DeploymentChecklist, key, value string) string {
	cand := checklist.CandidateSetOf(dcl)
	if dcl.Annotations[approval.Prefix+key] != value || cand == "" {
		return ""
	}
	for _, rec := range dcl.Status.Approvals {
		if rec.Key == key && rec.NotCounted != "" && rec.CandidateTemplateHash != cand {
			role, _, _ := strings.Cut(key, ".")
			suffix := strings.Trim(unsafeSuffix.ReplaceAllString(rec.Approver, "-"), "-_.")
			h := strings.TrimPrefix(cand, "set-")
			if len(h) > 8 {
				h = h[:8]
			}
			fresh := role + "." + suffix + "-" + h
			if suffix == "" || len(fresh) > 63 {
				fresh = role + "." + h
			}
			return fresh
		}
	}
	return ""
}
