package swarm_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"testing"
	"time"

	dockerswarm "github.com/docker/docker/api/types/swarm"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
	"github.com/manifold-paas/manifold/router"
)

// BenchmarkSwarmScale scales web from 1 to 12 on three nodes (Starts 8 at once, as
// the reconciler does) until each of the 12 answers through the router, beside
// `docker service create --replicas 12` of the same image and command until its 12
// tasks run. manifold also fetches the slug and waits for health checks.
func BenchmarkSwarmScale(b *testing.B) {
	c := newCluster(b, 3)
	d := newDriver(b, c, randomName(), c.HostAddr+":0", &sink{})
	ctx := context.Background()
	slug := makeSlug(b)
	r := router.New(router.Options{})
	srv := httptest.NewServer(r)
	b.Cleanup(srv.Close)
	var manifold, bare time.Duration
	b.ResetTimer()
	for n := range b.N {
		app := "scale" + strconv.Itoa(n)
		if _, err := d.Start(ctx, webSpec(app, 1, 1, slug)); err != nil {
			b.Fatal(err)
		}
		waitDynos(b, d, app, 2*time.Minute, allUp(1))

		began := time.Now()
		var group errgroup.Group
		group.SetLimit(8)
		for i := 2; i <= 12; i++ {
			group.Go(func() error {
				_, err := d.Start(ctx, webSpec(app, i, 1, slug))
				return err
			})
		}
		if err := group.Wait(); err != nil {
			b.Fatal(err)
		}
		dynos := waitDynos(b, d, app, 3*time.Minute, allUp(12))
		answerEach(b, r, srv.URL, app, dynos)
		manifold += time.Since(began)

		began = time.Now()
		name := "bare-" + randomName()
		cli := c.Manager().Client
		out, err := exec.Command("docker", "-H", c.Manager().Host, "service", "create", "--detach", "--quiet",
			"--name", name, "--replicas", "12", "--publish", "mode=host,target=5000",
			"--env", "PORT=5000", "--env", "DYNO=web", "--env", "NODE={{.Node.ID}}",
			c.ImageID, "/bin/sh", "-c", webCommand).CombinedOutput()
		if err != nil {
			b.Fatalf("docker service create: %v: %s", err, out)
		}
		err = swarmtest.Poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
			tasks, err := cli.TaskList(ctx, dockerswarm.TaskListOptions{})
			if err != nil {
				return false, nil
			}
			running := 0
			for _, task := range tasks {
				if task.ServiceID != "" && task.Status.State == dockerswarm.TaskStateRunning && task.Spec.ContainerSpec.Image == c.ImageID && task.Spec.ContainerSpec.Labels[swarm.LabelInstance] == "" {
					running++
				}
			}
			return running == 12, nil
		})
		if err != nil {
			b.Fatalf("bare service: 12 running: %v", err)
		}
		bare += time.Since(began)

		b.StopTimer()
		if err := cli.ServiceRemove(ctx, name); err != nil {
			b.Fatal(err)
		}
		for _, dy := range dynos {
			if err := d.Stop(ctx, dy.ID); err != nil {
				b.Fatal(err)
			}
		}
		waitDynos(b, d, app, time.Minute, func(dynos []drivers.Dyno) bool { return len(dynos) == 0 })
		b.StartTimer()
	}
	b.ReportMetric(manifold.Seconds()/float64(b.N), "manifold-s/op")
	b.ReportMetric(bare.Seconds()/float64(b.N), "service-create-s/op")
	b.ReportMetric(float64(manifold)/float64(bare), "ratio")
}

// answerEach asks every dyno through the router, one host per dyno.
func answerEach(b *testing.B, r *router.Router, url, app string, dynos []drivers.Dyno) {
	b.Helper()
	table := router.Table{Hosts: map[string]*router.Route{}}
	for _, dy := range dynos {
		host := fmt.Sprintf("%s-%d.test", app, dy.Spec.Index)
		table.Hosts[host] = &router.Route{App: app, Env: "test", Backends: []router.Backend{{Dyno: dy.Name, Addr: dy.Addr}}}
	}
	r.Swap(table)
	for _, dy := range dynos {
		get(b, url, fmt.Sprintf("%s-%d.test", app, dy.Spec.Index))
	}
}
