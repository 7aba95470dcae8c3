package swarmtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
)

const stackImage = "manifold/stack:24"

func TestClusterRunsServiceOnEveryNode(t *testing.T) {
	if problem := swarmtest.Available(); problem != "" && os.Getenv("CI") != "true" {
		t.Skip("swarmtest: " + problem)
	}
	c := swarmtest.Start(t, 3, stackImage, func(string) string { return "manifold.test" })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mgr := c.Manager().Client
	replicas := uint64(3)
	resp, err := mgr.ServiceCreate(ctx, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "probe"},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: c.ImageID, Command: []string{"/bin/sh", "-c", "sleep 600"}},
			Placement:     &swarm.Placement{Constraints: []string{"node.labels.manifold.test==true"}, MaxReplicas: 1},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		t.Fatalf("service create: %v", err)
	}
	err = swarmtest.Poll(ctx, 90*time.Second, func(ctx context.Context) (bool, error) {
		tasks, err := mgr.TaskList(ctx, swarm.TaskListOptions{})
		if err != nil {
			return false, nil
		}
		nodes := map[string]bool{}
		for _, task := range tasks {
			if task.ServiceID == resp.ID && task.Status.State == swarm.TaskStateRunning {
				nodes[task.NodeID] = true
			}
		}
		return len(nodes) == 3, nil
	})
	if err != nil {
		t.Fatalf("3 running tasks on 3 nodes: %v", err)
	}
}
