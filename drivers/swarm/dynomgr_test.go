package swarm_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dockerswarm "github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/internal/engineproxy"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/drivers/swarm"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
	"github.com/manifold-paas/manifold/logs"
)

// eventLog keeps every event of a driver.
type eventLog struct {
	mu     sync.Mutex
	events []drivers.Event
}

func collectEvents(t testing.TB, d *swarm.Driver) *eventLog {
	t.Helper()
	l := &eventLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range d.Events() {
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = d.Close(); <-done })
	return l
}

// wait waits for an event that matches.
func (l *eventLog) wait(t testing.TB, what string, timeout time.Duration, match func(drivers.Event) bool) drivers.Event {
	t.Helper()
	return l.waitFrom(t, 0, what, timeout, match)
}

// count is how many events came so far.
func (l *eventLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// waitFrom waits for an event that matches among those after the first n.
func (l *eventLog) waitFrom(t testing.TB, n int, what string, timeout time.Duration, match func(drivers.Event) bool) drivers.Event {
	t.Helper()
	var found drivers.Event
	err := poll(t, timeout, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, ev := range l.events[n:] {
			if match(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	if err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		var seen []string
		for _, ev := range l.events {
			seen = append(seen, ev.Dyno.Spec.App+" "+ev.Dyno.Name+" "+string(ev.From)+"->"+string(ev.To)+" "+ev.Code)
		}
		t.Fatalf("no event %s: %v; events: %v", what, err, seen)
	}
	return found
}

// platformLines are the app's heroku lines, in order.
func (s *sink) platformLines(app string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if l.App == app && l.Source == logs.SourceHeroku {
			out = append(out, l.Text)
		}
	}
	return out
}

// inOrder reports whether want appear in lines in this order (others between); a
// "*" in a want stands for any text.
func inOrder(lines, want []string) bool {
	i := 0
	for _, line := range lines {
		if i == len(want) {
			break
		}
		prefix, suffix, wild := strings.Cut(want[i], "*")
		if line == want[i] || (wild && len(line) >= len(prefix)+len(suffix) && strings.HasPrefix(line, prefix) && strings.HasSuffix(line, suffix)) {
			i++
		}
	}
	return i == len(want)
}

// waitLines waits until the app's heroku lines hold want in order.
func waitLines(t testing.TB, out *sink, app string, timeout time.Duration, want ...string) {
	t.Helper()
	if err := poll(t, timeout, func() bool { return inOrder(out.platformLines(app), want) }); err != nil {
		t.Fatalf("%s: want in order %q: %v; lines: %q", app, want, err, out.platformLines(app))
	}
}

// TestDynoManager: what Swarm does to a dyno is told with the lines and events of
// Heroku's dyno manager, worded as the process and Docker drivers' supervisor does:
// R10 for a web task that never binds $PORT, R12 for one that ignores SIGTERM past
// its grace, R14 sampled in the task while it is over its quota but under the hard
// limit, and a crash restarted after Swarm's delay.
func TestDynoManager(t *testing.T) {
	c := newCluster(t, 1)
	out := &sink{}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	d, err := swarm.New(ctx, swarm.Options{
		Logs: out, Logger: slog.New(slog.DiscardHandler), Host: c.Manager().Host, Instance: randomName(),
		SlugListen: c.HostAddr + ":0", RelistInterval: 300 * time.Millisecond,
		BootTimeout: 3 * time.Second, MemoryReportInterval: time.Second,
	})
	if err != nil {
		t.Fatalf("swarm.New: %v", err)
	}
	events := collectEvents(t, d)
	slug := makeSlug(t)
	worker := func(app, command string) drivers.DynoSpec {
		spec := webSpec(app, 1, 1, slug)
		spec.Type, spec.Command = "worker", command
		return spec
	}
	start := func(spec drivers.DynoSpec) {
		t.Helper()
		if _, err := d.Start(ctx, spec); err != nil {
			t.Fatalf("start %s: %v", spec.Ref(), err)
		}
	}
	upOf := func(app string) drivers.Event {
		t.Helper()
		return events.wait(t, app+" up", 2*time.Minute, func(ev drivers.Event) bool { return ev.Dyno.Spec.App == app && ev.To == drivers.StateUp })
	}

	t.Run("R10: a web dyno that never binds $PORT", func(t *testing.T) {
		spec := webSpec("r10", 1, 1, slug)
		spec.Command = "echo not binding; exec sleep 600"
		start(spec)
		ev := events.wait(t, "R10 crash", 2*time.Minute, func(ev drivers.Event) bool { return ev.Dyno.Spec.App == "r10" && ev.To == drivers.StateCrashed })
		if ev.Code != "R10" || ev.Dyno.Reason != supervisor.ReasonR10 || ev.From != drivers.StateStarting {
			t.Errorf("crash event %s -> %s code %q reason %q, want starting -> crashed, R10", ev.From, ev.To, ev.Code, ev.Dyno.Reason)
		}
		waitLines(t, out, "r10", 2*time.Minute,
			"State changed from down to starting",
			"Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 3 seconds of launch",
			supervisor.MsgKill, "Process exited with status 137", "State changed from starting to crashed",
			"State changed from crashed to starting", "Starting process with command `"+spec.Command+"`")
	})

	t.Run("crash: restarted after Swarm's delay, worded as the supervisor", func(t *testing.T) {
		start(worker("crash", "echo boom; sleep 1; exit 3"))
		ev := events.wait(t, "crash", 2*time.Minute, func(ev drivers.Event) bool { return ev.Dyno.Spec.App == "crash" && ev.To == drivers.StateCrashed })
		if ev.Dyno.Reason != "Process exited with status 3" || ev.Code != "" {
			t.Errorf("crash reason %q code %q", ev.Dyno.Reason, ev.Code)
		}
		waitLines(t, out, "crash", 2*time.Minute,
			"Process exited with status 3", "State changed from * to crashed",
			"State changed from crashed to starting", "Starting process with command `*")
		events.wait(t, "the restart", time.Minute, func(ev drivers.Event) bool {
			return ev.Dyno.Spec.App == "crash" && ev.From == drivers.StateCrashed && ev.To == drivers.StateStarting
		})
	})

	t.Run("R12: a dyno that ignores SIGTERM is killed after its grace", func(t *testing.T) {
		stubborn := worker("r12", "trap '' TERM; echo ignoring SIGTERM; while true; do sleep 1; done")
		polite := worker("polite", "echo polite; exec sleep 600")
		// A long grace: the polite dyno exits at once on SIGTERM, but on a loaded
		// machine the relay (after the drain) can take more than the stubborn one's 3 s.
		polite.StopTimeout = 30 * time.Second
		start(stubborn)
		start(polite)
		for _, spec := range []drivers.DynoSpec{stubborn, polite} {
			dyno := upOf(spec.App).Dyno
			if err := d.Stop(ctx, dyno.ID); err != nil {
				t.Fatalf("stop %s: %v", dyno.ID, err)
			}
		}
		waitLines(t, out, "r12", time.Minute,
			supervisor.MsgTerm, "Error R12 (Exit timeout) -> At least one process failed to exit within 3 seconds of SIGTERM",
			supervisor.MsgKillRemaining, "Process exited with status 137", "State changed from up to down")
		events.wait(t, "R12", time.Minute, func(ev drivers.Event) bool {
			return ev.Dyno.Spec.App == "r12" && ev.Code == "R12" && ev.To == drivers.StateDown
		})
		// Its status is 143, unless Swarm deleted the task before a listing saw it end
		// (about 250 ms after; the driver lists every 50 ms then): unknown, never R12.
		waitLines(t, out, "polite", time.Minute, supervisor.MsgTerm, "Process exited with status *", "State changed from up to down")
		if exit := out.platformLines("polite"); !slices.Contains(exit, "Process exited with status 143") &&
			!slices.Contains(exit, "Process exited with status unknown (its task was removed before its end was listed)") {
			t.Errorf("polite dyno's exit: %q, want status 143 (or unknown)", exit)
		}
		t.Logf("r12 lines: %q", out.platformLines("r12"))
		if inOrder(out.platformLines("polite"), []string{"Error R12*"}) {
			t.Errorf("R12 for a dyno that exited on SIGTERM: %q", out.platformLines("polite"))
		}
	})

	t.Run("R14: over the quota, under the hard limit; forged samples refused", func(t *testing.T) {
		// 16 MiB quota, 32 MiB hard limit: dd holds a 24 MiB buffer while sleep does
		// not read the pipe. First the app writes a sample of its own.
		spec := worker("r14", `echo "MANIFOLD-DYNO-MANAGER mem $MANIFOLD_TASK_ID 7 999999999 0123456789abcdef0123456789abcdef"; `+
			`dd if=/dev/zero bs=24M count=1 2>/dev/null | sleep 600`)
		spec.MemoryBytes = 16 << 20
		start(spec)
		ev := events.wait(t, "R14", 2*time.Minute, func(ev drivers.Event) bool { return ev.Dyno.Spec.App == "r14" && ev.Code == "R14" })
		if ev.From != drivers.StateUp || ev.To != drivers.StateUp || ev.Dyno.MemoryBytes <= 16<<20 || ev.Dyno.MemoryBytes > 32<<20 {
			t.Errorf("R14 event %s -> %s memory %d, want up -> up over 16 MiB, at most 32 MiB", ev.From, ev.To, ev.Dyno.MemoryBytes)
		}
		waitLines(t, out, "r14", time.Minute, "Process running mem=*", supervisor.MsgR14, "Process running mem=*", supervisor.MsgR14)
		t.Logf("r14 lines: %q", out.platformLines("r14"))
		for _, line := range out.platformLines("r14") {
			if strings.Contains(line, "mem=953M") || strings.Contains(line, "crashed") {
				t.Errorf("platform line %q: a forged sample taken, or the dyno crashed", line)
			}
		}
		if _, ok := out.find(func(l logs.Line) bool {
			return l.App == "r14" && l.Source == logs.SourceApp && strings.Contains(l.Text, " 999999999 ")
		}); !ok {
			t.Errorf("the app's forged sample is not published as its own line")
		}
		if _, ok := out.find(func(l logs.Line) bool {
			return l.App == "r14" && l.Source == logs.SourceApp && strings.Contains(l.Text, "nonce")
		}); ok {
			t.Errorf("the boot script's nonce line reached the app's log")
		}
	})
}

// TestEventsDriveTheTable: with the periodic listing ten minutes apart, the driver
// still acts at once on a node drained through the manager: the manager's node event
// makes it relist, and the dyno on that node leaves the table. Before the drain the
// connection to the manager is cut: the event stream reconnects.
func TestEventsDriveTheTable(t *testing.T) {
	c := newCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	proxy := engineproxy.New(t, c.Manager().Host)
	d, err := swarm.New(ctx, swarm.Options{
		Logs: &sink{}, Logger: slog.New(slog.DiscardHandler), Host: proxy.Host, Instance: randomName(),
		SlugListen: c.HostAddr + ":0", RelistInterval: 10 * time.Minute, BootTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("swarm.New: %v", err)
	}
	events := collectEvents(t, d)
	slug := makeSlug(t)
	app := "drain"
	for i := 1; i <= 2; i++ {
		if _, err := d.Start(ctx, webSpec(app, i, 1, slug)); err != nil {
			t.Fatalf("start web.%d: %v", i, err)
		}
	}
	dynos := waitDynos(t, d, app, 2*time.Minute, func(dynos []drivers.Dyno) bool {
		return allUp(2)(dynos) && hostOf(dynos[0].Addr) != hostOf(dynos[1].Addr)
	})
	// A node event (a label) makes the driver list them up, with no periodic listing.
	if err := c.LabelNode(ctx, c.Nodes[1], "manifold.test", "1"); err != nil {
		t.Fatal(err)
	}
	for _, dy := range dynos {
		events.wait(t, dy.Name+" up", time.Minute, func(ev drivers.Event) bool { return ev.Dyno.ID == dy.ID && ev.To == drivers.StateUp })
	}

	// The stream breaks; the driver follows the events again: a node event (a label,
	// set again until one is seen) reaches it.
	proxy.Cut()
	cut := swarm.EventsSeen(d)
	label := 0
	if err := poll(t, time.Minute, func() bool {
		if swarm.EventsSeen(d) > cut {
			return true
		}
		label++
		_ = c.LabelNode(ctx, c.Nodes[1], "manifold.test", strconv.Itoa(label))
		return false
	}); err != nil {
		t.Fatalf("no event-driven listing after the stream was cut: %v", err)
	}

	before, seenBefore, drained := swarm.EventRelists(d), swarm.EventsSeen(d), events.count()
	node, _, err := c.Manager().Client.NodeInspectWithRaw(ctx, c.Nodes[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.Availability = dockerswarm.NodeAvailabilityDrain
	if err := c.Manager().Client.NodeUpdate(ctx, node.ID, node.Version, node.Spec); err != nil {
		t.Fatalf("drain %s: %v", c.Nodes[1].Name, err)
	}
	t.Logf("before the drain: %v", summary(dynos))
	t.Cleanup(func() {
		if t.Failed() {
			logTasks(t, c)
		}
	})
	// Names follow the live slots, so the dyno that changes may be the other name
	// (web.2 leaves while web.1 is the remaining slot): any dyno leaving up is the
	// drain, seen by a listing the event asked for.
	ev := events.waitFrom(t, drained, "a dyno leaving up after the drain", time.Minute, func(ev drivers.Event) bool {
		return ev.Dyno.Spec.App == app && ev.From == drivers.StateUp && ev.To != drivers.StateUp
	})
	if after, seen := swarm.EventRelists(d), swarm.EventsSeen(d); after <= before || seen <= seenBefore {
		t.Errorf("event-driven listings %d, events %d before the drain; %d, %d after: want more", before, seenBefore, after, seen)
	}
	t.Logf("after the drain %s: %s -> %s (listings asked by events: %d)", ev.Dyno.Name, ev.From, ev.To, swarm.EventRelists(d))
}

// logTasks logs every task of the swarm, for a failure's record.
func logTasks(t *testing.T, c *swarmtest.Cluster) {
	t.Helper()
	tasks, _ := c.Manager().Client.TaskList(context.Background(), dockerswarm.TaskListOptions{})
	for _, tk := range tasks {
		t.Logf("  task %s slot %d v%s node %s desired %s state %s err %q created %s ports %v", tk.ID, tk.Slot,
			tk.Spec.ContainerSpec.Labels[swarm.LabelRelease], tk.NodeID, tk.DesiredState, tk.Status.State, tk.Status.Err,
			tk.Meta.CreatedAt.Format(time.StampMilli), tk.Status.PortStatus.Ports)
	}
	for _, n := range c.Nodes {
		t.Logf("  node %s %s %s", n.Name, n.ID, n.Addr)
	}
}
