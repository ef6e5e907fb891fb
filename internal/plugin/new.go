package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// newOptions are the flags of `kubectl checklist new`.
type newOptions struct {
	template, revision, deployAt, output string
	releaseOrder                         string
	targets, params                      []string
	apply                                bool
}

func (o *options) newCommand() *cobra.Command {
	var n newOptions
	c := &cobra.Command{
		Use:   "new NAME --template [cluster/]TEMPLATE --target [KIND/]NAME --revision REVISION [--param KEY=VALUE]...",
		Short: "Write a release made from a checklist template: the ten lines, printed (-o yaml) or created (--apply)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.newChecklist(cmd.Context(), args[0], n)
		},
	}
	c.Flags().StringVar(&n.template, "template", "", "the template: NAME (a ChecklistTemplate of the namespace) or cluster/NAME")
	c.Flags().StringArrayVar(&n.targets, "target", nil,
		"a workload released: NAME (a Deployment) or KIND/NAME with KIND deployment, statefulset or daemonset, e.g. statefulset/db "+
			"(repeatable: --target frontend --target backend releases both together)")
	c.Flags().StringVar(&n.releaseOrder, "release-order", "",
		"Together (every target at once, the default) or Sequential (in the order of --target, each once the previous one rolled out)")
	c.Flags().StringVar(&n.revision, "revision", "", "what is released, e.g. v2.8.0 (sign-offs name it)")
	c.Flags().StringArrayVar(&n.params, "param", nil, "a template parameter, KEY=VALUE (repeatable)")
	c.Flags().StringVar(&n.deployAt, "deploy-at", "", "T-0, RFC 3339 (e.g. 2026-11-27T20:00:00Z); default: as soon as the T-minus phases pass")
	c.Flags().StringVarP(&n.output, "output", "o", "yaml", "output format: yaml")
	c.Flags().BoolVar(&n.apply, "apply", false, "create it instead of printing it")
	for _, f := range []string{"template", "target", "revision"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}

// NewChecklist is the checklist `kubectl checklist new` writes.
func NewChecklist(name, namespace string, n newOptions) (*deployv1alpha1.DeploymentChecklist, error) {
	ref := &deployv1alpha1.TemplateRef{Kind: "ChecklistTemplate", Name: n.template}
	if t, ok := strings.CutPrefix(n.template, "cluster/"); ok {
		ref = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: t}
	}
	dcl := &deployv1alpha1.DeploymentChecklist{
		TypeMeta:   metav1.TypeMeta{APIVersion: deployv1alpha1.GroupVersion.String(), Kind: "DeploymentChecklist"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Revision:    n.revision,
			TemplateRef: ref,
		},
	}
	refs := make([]deployv1alpha1.TargetRef, 0, len(n.targets))
	for _, t := range n.targets {
		ref, err := parseTarget(t)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	switch len(refs) {
	case 0:
	case 1:
		dcl.Spec.Target = &refs[0]
	default:
		dcl.Spec.Targets = refs
	}
	switch o := deployv1alpha1.ReleaseOrder(n.releaseOrder); o {
	case "":
	case deployv1alpha1.ReleaseTogether, deployv1alpha1.ReleaseSequential:
		dcl.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: o}
	default:
		return nil, fmt.Errorf("--release-order %q: want Together or Sequential", n.releaseOrder)
	}
	for _, p := range n.params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--param %q: want KEY=VALUE", p)
		}
		if dcl.Spec.Parameters == nil {
			dcl.Spec.Parameters = map[string]string{}
		}
		dcl.Spec.Parameters[k] = v
	}
	if n.deployAt != "" {
		t, err := time.Parse(time.RFC3339, n.deployAt)
		if err != nil {
			return nil, fmt.Errorf("--deploy-at %q: want RFC 3339, e.g. 2026-11-27T20:00:00Z", n.deployAt)
		}
		at := metav1.NewTime(t)
		dcl.Spec.DeployAt = &at
	}
	return dcl, nil
}

// targetKinds are the kinds --target takes before a slash, lower-cased: each kind's
// name, its plural and kubectl's short name for it.
var targetKinds = map[string]string{
	"deployment": deployv1alpha1.KindDeployment, "deployments": deployv1alpha1.KindDeployment, "deploy": deployv1alpha1.KindDeployment,
	"statefulset": deployv1alpha1.KindStatefulSet, "statefulsets": deployv1alpha1.KindStatefulSet, "sts": deployv1alpha1.KindStatefulSet,
	"daemonset": deployv1alpha1.KindDaemonSet, "daemonsets": deployv1alpha1.KindDaemonSet, "ds": deployv1alpha1.KindDaemonSet,
}

// parseTarget reads one --target: NAME is a Deployment, KIND/NAME names its kind as
// kubectl does (statefulset/db, ds/agent), in any case.
func parseTarget(s string) (deployv1alpha1.TargetRef, error) {
	kind, name, slash := strings.Cut(s, "/")
	if !slash {
		kind, name = "deployment", s
	}
	k, ok := targetKinds[strings.ToLower(kind)]
	if !ok {
		return deployv1alpha1.TargetRef{}, fmt.Errorf("--target %q: tminus does not gate workloads of kind %q; "+
			"want NAME (a Deployment) or KIND/NAME with KIND deployment, statefulset or daemonset", s, kind)
	}
	if name == "" || strings.Contains(name, "/") {
		return deployv1alpha1.TargetRef{}, fmt.Errorf("--target %q: want NAME or KIND/NAME, e.g. statefulset/db", s)
	}
	return deployv1alpha1.TargetRef{Kind: k, Name: name}, nil
}

func (o *options) newChecklist(ctx context.Context, name string, n newOptions) error {
	_, ns, err := o.client()
	if err != nil {
		return err
	}
	dcl, err := NewChecklist(name, ns, n)
	if err != nil {
		return err
	}
	if n.apply {
		c, _, err := o.client()
		if err != nil {
			return err
		}
		if err := c.Create(ctx, dcl); err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.out, "deploymentchecklist/%s created from %s %s\n", name, dcl.Spec.TemplateRef.Kind, dcl.Spec.TemplateRef.Name)
		return err
	}
	if n.output != "yaml" {
		return fmt.Errorf("-o %q: only yaml", n.output)
	}
	raw, err := yaml.Marshal(dcl)
	if err != nil {
		return err
	}
	// Leave out what the API server fills in: a release is ten lines.
	out := strings.ReplaceAll(string(raw), "  creationTimestamp: null\n", "")
	out = strings.Replace(out, "status: {}\n", "", 1)
	out = strings.Replace(out, "  rollback: {}\n", "", 1)
	_, err = fmt.Fprint(o.out, out)
	return err
}
