package controller

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/shard"
)

// shardQueues carry, when a replica starts holding a shard, everything of it to the
// controllers: work another replica left queued there was never done here.
type shardQueues struct {
	checklists  chan event.GenericEvent
	deployments chan event.GenericEvent
}

func newShardQueues() *shardQueues {
	return &shardQueues{checklists: make(chan event.GenericEvent, 1024), deployments: make(chan event.GenericEvent, 1024)}
}

// begin says whether this replica acts on what the Deployment namespace/name holds
// (always, unsharded); done ends the work.
func begin(shards *shard.Set, namespace, name string) (done func(), ok bool) {
	if shards == nil {
		return func() {}, true
	}
	return shards.Begin(namespace, name)
}

// acquired queues every checklist and marked Deployment of shard i, read from the
// cache without copies (only names are read; a replica may take all its shards at
// once, each a list of everything).
func (q *shardQueues) acquired(ctx context.Context, c client.Reader, shards *shard.Set, i int) {
	log := logf.FromContext(ctx).WithValues("shard", i)
	var cls deployv1alpha1.DeploymentChecklistList
	if err := c.List(ctx, &cls, client.UnsafeDisableDeepCopy); err != nil {
		log.Error(err, "listing the checklists of a shard taken over")
	}
	n := 0
	for j := range cls.Items {
		if shard.Of(cls.Items[j].Namespace, cls.Items[j].Spec.ShardTarget(), shards.Shards) == i {
			q.checklists <- event.GenericEvent{Object: &cls.Items[j]}
			n++
		}
	}
	var ds appsv1.DeploymentList
	if err := c.List(ctx, &ds, client.UnsafeDisableDeepCopy); err != nil {
		log.Error(err, "listing the Deployments of a shard taken over")
	}
	for j := range ds.Items {
		if marked(&ds.Items[j]) && shard.Of(ds.Items[j].Namespace, ds.Items[j].Name, shards.Shards) == i {
			q.deployments <- event.GenericEvent{Object: &ds.Items[j]}
		}
	}
	log.Info("shard taken over: its checklists queued", "checklists", n)
}
