package target

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
)

// DecisionIndex indexes checklists by what a decision on their target reads, so that
// deciding costs the same with a year of releases behind the target as with none
// (DESIGN wave 3, rule 8). A checklist that has not ended is indexed under the target's
// name; an ended one only under the templates its rollback refuses and restores
// ("<name>@<template>", DecisionKey): the one template a decision is about (the
// Deployment's) finds the checklist that rolled it back or restores it, and a checklist
// that succeeded or failed is read by no decision. Rolled-back checklists are also
// indexed under "<name>#refusing", read only to know whether there is one.
// ChecklistIndex keeps every checklist, for the history limit.
const DecisionIndex = ".tminus.decision"

// refusingSuffix marks DecisionIndex's key of the rolled-back checklists of a target.
const refusingSuffix = "#refusing"

// DecisionKey is DecisionIndex's key of the ended checklists of the Deployment name
// that refuse or restore the template hash. Template hashes are keyed by their first
// 16 hex digits, the length earlier versions stored (gate.SameTemplate): a stored short
// hash and the full one share the key, and the gate compares them in full.
func DecisionKey(name, hash string) string {
	if len(hash) > 16 {
		hash = hash[:16]
	}
	return name + "@" + hash
}

// DecisionIndexFunc is DecisionIndex's function (Index registers it).
func DecisionIndexFunc(o client.Object) []string {
	dcl, ok := o.(*deployv1alpha1.DeploymentChecklist)
	if !ok {
		return nil
	}
	var keys []string
	for _, name := range dcl.Spec.TargetNames() {
		if !gate.Terminal(dcl.Status.Phase) {
			keys = append(keys, name)
			continue
		}
		c := gate.FromChecklistFor(dcl, name)
		if c.RolledBackHash == "" {
			continue
		}
		keys = append(keys, name+refusingSuffix, DecisionKey(name, c.RolledBackHash))
		if c.RestoreHash != "" && DecisionKey(name, c.RestoreHash) != DecisionKey(name, c.RolledBackHash) {
			keys = append(keys, DecisionKey(name, c.RestoreHash))
		}
	}
	return keys
}

// ChecklistIndexFunc is ChecklistIndex's function (Index registers it).
func ChecklistIndexFunc(o client.Object) []string {
	return o.(*deployv1alpha1.DeploymentChecklist).Spec.TargetNames()
}

// Deciding reads, from the manager's cache (through DecisionIndex), the gate's view of
// what a decision about the Deployment's template hash needs: its checklists that have
// not ended, and the ended ones that rolled hash back or restore it. Without a hash
// (a decision about no template: who is live, who blocks whom), the live ones only.
// What it reads does not grow with the target's past.
func Deciding(ctx context.Context, c client.Reader, namespace, deployment, hash string) ([]gate.Checklist, error) {
	return DecidingOf(ctx, c, deployv1alpha1.KindDeployment, namespace, deployment, hash)
}

// DecidingOf is Deciding for a workload of any kind: a checklist of a Deployment web
// says nothing of a StatefulSet web.
func DecidingOf(ctx context.Context, c client.Reader, kind, namespace, deployment, hash string) ([]gate.Checklist, error) {
	cls, err := checklistsOfKind(ctx, c, kind, namespace, deployment, client.MatchingFields{DecisionIndex: deployment},
		client.UnsafeDisableDeepCopy)
	if err != nil || hash == "" {
		return cls, err
	}
	ended, err := checklistsOfKind(ctx, c, kind, namespace, deployment,
		client.MatchingFields{DecisionIndex: DecisionKey(deployment, hash)}, client.UnsafeDisableDeepCopy)
	if err != nil {
		return nil, err
	}
	return append(cls, ended...), nil
}

// Refusing says whether an ended checklist of the Deployment rolled a template back
// (it refuses it while it exists), reading at most one from the cache.
func Refusing(ctx context.Context, c client.Reader, namespace, deployment string) (bool, error) {
	var list deployv1alpha1.DeploymentChecklistList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{DecisionIndex: deployment + refusingSuffix},
		client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("listing the rolled-back checklists of Deployment %s/%s: %w", namespace, deployment, err)
	}
	return len(list.Items) > 0, nil
}
