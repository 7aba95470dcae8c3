package swarm_test

import (
	"context"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	dockerswarm "github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
)

// BenchmarkRunTTYFirstByte is an interactive one-off (`manifold run -- sh` from a
// terminal) on a two-node swarm: from Run to the shell's prompt, the first byte,
// through the rendezvous and telnetd; then `exit` typed. Beside it, the floor any
// Swarm one-off pays: `docker service create` of the same image until its task runs.
func BenchmarkRunTTYFirstByte(b *testing.B) {
	c := newCluster(b, 2)
	d := newDriver(b, c, randomName(), c.HostAddr+":0", &sink{})
	ctx := context.Background()
	slug := makeSlug(b)
	spec := webSpec("bench", 1, 1, slug)
	spec.Type, spec.Command = "run", "sh"
	var firstByte, bare time.Duration
	b.ResetTimer()
	for range b.N {
		stdin, typist := io.Pipe()
		out := &firstWrite{at: make(chan time.Time, 1)}
		began := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := d.Run(ctx, drivers.OneOff{DynoSpec: spec, Stdin: stdin, Stdout: out, Terminal: &drivers.TerminalSize{Rows: 24, Cols: 80}})
			done <- err
		}()
		select {
		case at := <-out.at:
			firstByte += at.Sub(began)
		case err := <-done:
			b.Fatalf("run ended before any output: %v", err)
		}
		if _, err := io.WriteString(typist, "exit\r"); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		_ = typist.Close()

		name := "bare-" + randomName()
		began = time.Now()
		if out, err := exec.Command("docker", "-H", c.Manager().Host, "service", "create", "--detach", "--quiet",
			"--name", name, "--restart-condition", "none", c.ImageID, "sleep", "30").CombinedOutput(); err != nil {
			b.Fatalf("docker service create: %v: %s", err, out)
		}
		err := swarmtest.Poll(ctx, time.Minute, func(ctx context.Context) (bool, error) {
			tasks, err := c.Manager().Client.TaskList(ctx, dockerswarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", name))})
			return err == nil && len(tasks) == 1 && tasks[0].Status.State == dockerswarm.TaskStateRunning, nil
		})
		if err != nil {
			b.Fatalf("bare service: running: %v", err)
		}
		bare += time.Since(began)
		b.StopTimer()
		if err := c.Manager().Client.ServiceRemove(ctx, name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(firstByte.Seconds()/float64(b.N), "first-byte-s/op")
	b.ReportMetric(bare.Seconds()/float64(b.N), "service-running-s/op")
}

// firstWrite tells when the first byte was written.
type firstWrite struct {
	once sync.Once
	at   chan time.Time
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if len(p) > 0 {
		f.once.Do(func() { f.at <- time.Now() })
	}
	return len(p), nil
}
