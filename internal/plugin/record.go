package plugin

import (
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/record"
)

func (o *options) recordCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "record NAME [-o markdown|json]",
		Short: "Print the record of a release that ended (kept after the checklist is deleted): for a change ticket",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "markdown" && output != "json" {
				return fmt.Errorf("-o %q: want markdown or json", output)
			}
			cm, err := o.findRecord(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				_, err = fmt.Fprintln(o.out, cm.Data[record.DataKey])
				return err
			}
			r, err := record.Parse(cm)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(o.out, record.Markdown(r))
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "markdown", "markdown or json (the record as kept)")
	return cmd
}

// findRecord finds the record of the checklist name: the one its status names, or,
// when the checklist is gone, the newest record kept under its name.
func (o *options) findRecord(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	c, ns, err := o.client()
	if err != nil {
		return nil, err
	}
	var dcl deployv1alpha1.DeploymentChecklist
	switch err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &dcl); {
	case err == nil && dcl.Status.Record != "":
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: dcl.Status.Record}, &cm); err != nil {
			return nil, err
		}
		if uid := dcl.Status.RecordUID; uid != "" && cm.UID != uid {
			return nil, fmt.Errorf("ConfigMap %s/%s is not the record tminus wrote for checklist %s: its uid is %s, "+
				"the record's was %s (status.recordUID); the record was deleted and something else made under its name",
				ns, cm.Name, name, cm.UID, uid)
		}
		return &cm, nil
	case err == nil:
		return nil, fmt.Errorf("checklist %s/%s is %s: its record is written when the release ends", ns, name,
			phaseOf(&dcl))
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	var list corev1.ConfigMapList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{
		record.KindLabel: record.KindValue, record.ChecklistLabel: name}); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no checklist %s in namespace %s, and no release record of one", name, ns)
	}
	newest := slices.MaxFunc(list.Items, func(a, b corev1.ConfigMap) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	return &newest, nil
}

func phaseOf(dcl *deployv1alpha1.DeploymentChecklist) string {
	if dcl.Status.Phase == "" {
		return string(deployv1alpha1.PhasePending)
	}
	return string(dcl.Status.Phase)
}
