package swarm

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
)

// TestDynosFromTasks checks the pure mapping of one listing to dynos: names by
// ranked live slots, releases apart, crashes and reasons, dynos not yet tasks.
func TestDynosFromTasks(t *testing.T) {
	base := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	nodes := map[string]swarm.Node{
		"n1": {ID: "n1", Status: swarm.NodeStatus{State: swarm.NodeStateReady, Addr: "10.0.0.1"}},
		"n2": {ID: "n2", Status: swarm.NodeStatus{State: swarm.NodeStateDown, Addr: "10.0.0.2"}},
		"n3": {ID: "n3", Status: swarm.NodeStatus{State: swarm.NodeStateReady, Addr: "10.0.0.3"},
			Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityDrain}},
	}
	task := func(id string, release, slot int, node string, desired, state swarm.TaskState, exit int, age time.Duration) swarm.Task {
		tk := swarm.Task{
			ID: id, ServiceID: "s", Slot: slot, NodeID: node, DesiredState: desired,
			Meta: swarm.Meta{CreatedAt: base.Add(-age)},
			Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Labels: map[string]string{
				LabelRelease: itoa(release), LabelSpec: specLabel(t, release),
			}}},
			Status: swarm.TaskStatus{State: state, ContainerStatus: &swarm.ContainerStatus{ExitCode: exit},
				PortStatus: swarm.PortStatus{Ports: []swarm.PortConfig{{TargetPort: containerPort, PublishedPort: 30000 + uint32(slot)}}}},
		}
		return tk
	}
	running, shutdown := swarm.TaskStateRunning, swarm.TaskStateShutdown
	for _, tc := range []struct {
		name     string
		replicas uint64
		tasks    []swarm.Task
		want     []string
	}{
		{"slots ranked into names", 2, []swarm.Task{
			task("a", 2, 1, "n1", running, running, 0, time.Minute),
			task("b", 2, 3, "n1", running, running, 0, time.Minute),
		}, []string{"svc/v2/1 web.1 up 10.0.0.1:30001", "svc/v2/2 web.2 up 10.0.0.1:30003"}},
		{"a replica without a task yet is starting", 2, []swarm.Task{
			task("a", 2, 1, "n1", running, running, 0, time.Minute),
		}, []string{"svc/v2/1 web.1 up 10.0.0.1:30001", "svc/v2/2 web.2 starting "}},
		{"the old release apart while it still serves", 1, []swarm.Task{
			task("old", 1, 1, "n1", running, running, 0, time.Hour),
			task("new", 2, 1, "n1", running, swarm.TaskStateStarting, 0, time.Second),
		}, []string{"svc/v1/1 web.1 up 10.0.0.1:30001", "svc/v2/1 web.1 starting "}},
		{"a task Swarm is stopping is no dyno", 1, []swarm.Task{
			task("old", 1, 1, "n1", shutdown, running, 0, time.Hour),
			task("new", 2, 1, "n1", running, running, 0, time.Second),
		}, []string{"svc/v2/1 web.1 up 10.0.0.1:30001"}},
		{"tasks of a node that is down are dropped", 1, []swarm.Task{
			task("a", 2, 1, "n2", running, running, 0, time.Minute),
		}, []string{"svc/v2/1 web.1 starting "}},
		{"crashed while Swarm waits to restart the slot", 1, []swarm.Task{
			task("failed", 2, 1, "n1", shutdown, swarm.TaskStateFailed, 3, time.Minute),
			task("next", 2, 1, "n1", running, swarm.TaskStateReady, 0, time.Second),
		}, []string{"svc/v2/1 web.1 crashed  Process exited with status 3 restarts=1"}},
		{"after a rollback, the slot's running task behind a newer copy shut down", 2, []swarm.Task{
			// As listed when the rollback test saw v1/2 starting for minutes.
			task("old2", 2, 2, "n1", running, running, 0, time.Minute),
			task("old1", 2, 1, "n1", running, running, 0, time.Minute),
			task("v3", 3, 2, "n1", shutdown, swarm.TaskStateFailed, exitFetchFailed, 20*time.Second),
			task("copy", 2, 2, "n1", shutdown, shutdown, 0, 10*time.Second),
		}, []string{"svc/v2/1 web.1 up 10.0.0.1:30001", "svc/v2/2 web.2 up 10.0.0.1:30002"}},
		{"tasks of a drained node are dropped at once", 1, []swarm.Task{
			task("a", 2, 1, "n3", running, running, 0, time.Minute),
		}, []string{"svc/v2/1 web.1 starting "}},
		{"starting again once the next task's container starts", 1, []swarm.Task{
			task("failed", 2, 1, "n1", shutdown, swarm.TaskStateFailed, 3, time.Minute),
			task("next", 2, 1, "n1", running, swarm.TaskStateStarting, 0, time.Second),
		}, []string{"svc/v2/1 web.1 starting "}},
		{"killed under its memory limit is R15", 1, []swarm.Task{
			task("hog", 2, 1, "n1", running, swarm.TaskStateFailed, 137, time.Minute),
		}, []string{"svc/v2/1 web.1 crashed  Error R15 (Memory quota vastly exceeded) restarts=0"}},
		{"a slot fetch failure says so", 1, []swarm.Task{
			task("f", 2, 1, "n1", running, swarm.TaskStateFailed, exitFetchFailed, time.Minute),
		}, []string{"svc/v2/1 web.1 crashed  Slug fetch failed: the node could not download the slug from the daemon restarts=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Driver{log: slog.New(slog.DiscardHandler)}
			replicas := tc.replicas
			svc := swarm.Service{ID: "s", Spec: swarm.ServiceSpec{
				Annotations: swarm.Annotations{Name: "svc", Labels: map[string]string{LabelSpec: specLabel(t, 2)}},
				Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
			}}
			dynos, _ := d.dynos(observed{services: []swarm.Service{svc}, tasks: map[string][]swarm.Task{"s": tc.tasks}, nodes: nodes})
			var got []string
			for _, dy := range dynos {
				line := dy.ID + " " + dy.Name + " " + string(dy.State) + " " + dy.Addr
				if dy.State == drivers.StateCrashed {
					line += " " + dy.Reason + " restarts=" + itoa(dy.Restarts)
				}
				got = append(got, line)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("dynos:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func specLabel(t *testing.T, release int) string {
	t.Helper()
	b, err := json.Marshal(drivers.DynoSpec{App: "a", Env: "e", Type: "web", Release: release, MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		line, task, text string
		ok               bool
	}{
		{"2026-12-01T15:00:00.123456789Z com.docker.swarm.node.id=n,com.docker.swarm.service.id=s,com.docker.swarm.task.id=t1 hello world", "t1", "hello world", true},
		{"2026-12-01T15:00:00Z com.docker.swarm.node.id=n ", "", "", false},
		{"not a time x y", "", "", false},
	} {
		_, task, text, ok := parseLogLine(tc.line)
		if task != tc.task || text != tc.text || ok != tc.ok {
			t.Errorf("parseLogLine(%q) = %q %q %v, want %q %q %v", tc.line, task, text, ok, tc.task, tc.text, tc.ok)
		}
	}
}

func TestDynoIDRoundTrip(t *testing.T) {
	id := dynoID("mf-default-hello-production-web", 12, 3)
	service, release, slot, ok := parseDynoID(id)
	if !ok || service != "mf-default-hello-production-web" || release != 12 || slot != 3 {
		t.Fatalf("parseDynoID(%q) = %q %d %d %v", id, service, release, slot, ok)
	}
	if _, _, _, ok := parseDynoID("web.1"); ok {
		t.Fatal("parseDynoID(web.1) ok")
	}
}
