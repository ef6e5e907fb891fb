package checklist

import (
	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func mustWhole(c *deployv1alpha1.DeploymentChecklist) Whole { return MustWhole(c) }
