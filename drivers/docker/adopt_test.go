package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/docker"
	"github.com/manifold-paas/manifold/logs"
)

// counterCommand prints "tick N" five times a second.
const counterCommand = `i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done`

// ticks returns the N of every "tick N" line of a dyno, in order.
func ticks(t testing.TB, s *sink, dyno string) []int {
	t.Helper()
	var out []int
	for _, l := range s.all() {
		if l.Dyno != dyno || l.Source != logs.SourceApp || !strings.HasPrefix(l.Text, "tick ") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(l.Text, "tick "))
		if err != nil {
			t.Fatalf("line %q", l.Text)
		}
		out = append(out, n)
	}
	return out
}

func TestRestartedDriverAdoptsAndResumesLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	app := randomName("adopt")
	first := e.driver(e.options())
	web, err := first.Start(ctx, webSpec(app, 1, webSlug(t)))
	if err != nil {
		t.Fatal(err)
	}
	worker := workerSpec(app, counterCommand)
	worker.Env = "production"
	worker.SlugPath = slug(t, map[string]string{"Procfile": "worker: x\n"})
	counter, err := first.Start(ctx, worker)
	if err != nil {
		t.Fatal(err)
	}
	waitDyno(t, first, app, "web.1", isUp)
	waitFor(t, "three ticks", func() bool { return len(ticks(t, e.logs, "worker.1")) >= 3 })
	before := map[string]string{}
	for _, id := range []string{web.ID, counter.ID} {
		info, err := e.raw.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = info.State.StartedAt
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	seen := ticks(t, e.logs, "worker.1")
	last := seen[len(seen)-1]
	// Ticks go on while no daemon watches.
	waitFor(t, "ticks while no driver runs", func() bool {
		rc, err := e.raw.ContainerLogs(ctx, counter.ID, containerLogsAll)
		if err != nil {
			return false
		}
		defer rc.Close()
		raw := readAll(rc)
		return strings.Contains(raw, fmt.Sprintf("tick %d\n", last+3))
	})

	second := &sink{}
	opts := e.options()
	opts.Logs = second
	adopter := e.driver(opts)
	list, err := adopter.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("adopted %d dynos, want 2: %+v", len(list), list)
	}
	for _, dy := range list {
		if before[dy.ID] == "" {
			t.Errorf("%s has container %s, not one of the first driver's", dy.Name, dy.ID)
		}
		if dy.State != drivers.StateUp {
			t.Errorf("%s adopted as %s", dy.Name, dy.State)
		}
		if dy.Name == "web.1" && dy.Addr == "" {
			t.Errorf("adopted web.1 has no address")
		} else if dy.Name == "web.1" {
			httpGet(t, "http://"+dy.Addr+"/")
		}
		info, err := e.raw.ContainerInspect(ctx, dy.ID)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.StartedAt != before[dy.ID] {
			t.Errorf("%s was restarted by the adoption", dy.Name)
		}
	}
	// Output resumes after the last line the first driver published: no line twice,
	// none lost.
	waitFor(t, "ticks after adoption", func() bool { return len(ticks(t, second, "worker.1")) >= 5 })
	// Checked once the adopter has published lines of its own (a positive signal that
	// its sink is live), so a start it made would have been seen by now.
	if n := second.count("", logs.SourceHeroku, "Starting process"); n != 0 {
		t.Errorf("adoption started %d processes", n)
	}
	resumed := ticks(t, second, "worker.1")
	for i, n := range resumed {
		if n != last+1+i {
			t.Fatalf("first driver ended at tick %d; adopter published %v", last, resumed)
		}
	}
	stopAll(t, adopter)
}

// A labelled container of the instance that the driver did not start is listed (from
// its labels), left alone, and stopped on request.
func TestForeignContainerIsListedAndStoppable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	ctx := context.Background()
	app := randomName("foreign")
	spec := workerSpec(app, "sleep 600")
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	created, err := e.raw.ContainerCreate(ctx, &container.Config{
		Image: docker.DefaultStack, Cmd: []string{"sleep", "600"},
		Labels: map[string]string{docker.LabelInstance: e.instance, docker.LabelApp: app, docker.LabelEnv: "staging", docker.LabelSpec: string(raw)},
	}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.raw.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	dy := waitDyno(t, d, app, "worker.1", isUp)
	if dy.ID != created.ID || dy.Spec.Command != "sleep 600" {
		t.Errorf("listed as %+v", dy)
	}
	if err := d.Stop(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.containers()); n != 0 {
		t.Errorf("%d containers left after stopping the foreign one", n)
	}
	if err := d.Stop(ctx, created.ID); !errors.Is(err, docker.ErrUnknownDyno) {
		t.Errorf("second Stop: %v, want ErrUnknownDyno", err)
	}
}
