package plugin

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/freeze"
)

func (o *options) freezesCommand() *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "freezes [--at TIME]",
		Short: "List the change freezes and allowed windows of the namespace: in force now or not, until when, and the next window",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at %q: want RFC 3339, e.g. 2026-12-24T10:00:00Z", at)
				}
				now = t
			}
			return o.freezes(cmd.Context(), now)
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "evaluate at this time instead of now (RFC 3339)")
	return cmd
}

// freezes prints the freezes that apply to the namespace's checklists at now.
func (o *options) freezes(ctx context.Context, now time.Time) error {
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	var local deployv1alpha1.ChangeFreezeList
	if err := c.List(ctx, &local, client.InNamespace(ns)); err != nil {
		return err
	}
	type row struct {
		f        freeze.Freeze
		selector string
	}
	var rows []row
	for i := range local.Items {
		f := &local.Items[i]
		rows = append(rows, row{freeze.Of(f), selectorText(f.Spec.Selector)})
	}
	var cluster deployv1alpha1.ClusterChangeFreezeList
	if err := c.List(ctx, &cluster); err != nil {
		return err
	}
	var nsLabels map[string]string
	var note string
	var nsObj corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil {
		note = fmt.Sprintf("namespace %s could not be read (%v): cluster freezes are listed whatever their namespaceSelector", ns, err)
	} else {
		nsLabels = nsObj.Labels
	}
	for i := range cluster.Items {
		f := &cluster.Items[i]
		if note == "" && !freeze.Applies(nil, f.Spec.NamespaceSelector, nil, nsLabels) {
			continue
		}
		rows = append(rows, row{freeze.OfCluster(f), selectorText(f.Spec.Selector)})
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintf(o.out, "No change freeze or allowed window applies to namespace %s.\n", ns)
		return err
	}
	var problems []string
	w := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintf(w, "Change freezes for namespace %s at %s\n", ns, now.UTC().Format(time.RFC3339))
	_, _ = fmt.Fprintln(w, "FREEZE\tMODE\tNOW\tUNTIL\tNEXT WINDOW\tBREAK-GLASS\tCHECKLISTS\tREASON")
	for _, r := range rows {
		s := r.f.Now(now)
		state, until := "open", "-"
		if s.InForce {
			state = "holding"
			if !s.Until.IsZero() {
				until = s.Until.Format(time.RFC3339)
			}
		}
		if s.Err != "" {
			state = "holding (cannot be read)"
		}
		next := "-"
		if !s.NextStart.IsZero() {
			next = s.NextStart.Format(time.RFC3339) + " to " + s.NextEnd.Format(time.RFC3339)
		}
		glass := "none"
		if r.f.Spec.ExceptionRole != "" {
			n := r.f.Spec.ExceptionCount
			if n <= 0 {
				n = freeze.DefaultExceptionCount
			}
			glass = fmt.Sprintf("%d x %s", n, r.f.Spec.ExceptionRole)
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.f.ID(), s.Mode, state, until, next, glass, r.selector, r.f.Spec.Reason)
		if s.Err != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", r.f.ID(), s.Err))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if note != "" {
		problems = append(problems, note)
	}
	for _, p := range problems {
		if _, err := fmt.Fprintln(o.out, p); err != nil {
			return err
		}
	}
	return nil
}

func selectorText(s *metav1.LabelSelector) string {
	if s == nil {
		return "all"
	}
	return strings.ReplaceAll(metav1.FormatLabelSelector(s), " ", "")
}
