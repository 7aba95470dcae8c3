package swarm_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers/swarm"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
	"github.com/manifold-paas/manifold/logs"
)

// counterCommand prints "<hostname> n=1", "… n=2", … steadily, forever.
const counterCommand = `h=$(hostname); i=0; while true; do i=$((i+1)); echo "$h n=$i"; sleep 0.02; done`

// outage makes the manager unreachable for a while and brings it back.
type outage struct {
	name string
	// down makes the manager unreachable; up brings it back.
	down, up func(t *testing.T, c *swarmtest.Cluster)
	// length is how long it lasts.
	length time.Duration
}

var (
	// A hung manager: its engine stops answering, our stream stays open, and the
	// nodes' sessions to it break (seen: the stream never brings a line again).
	managerStopped = outage{
		name:   "manager stopped (SIGSTOP, SIGCONT)",
		length: 8 * time.Second,
		down: func(t *testing.T, c *swarmtest.Cluster) {
			mgr := c.Manager()
			pid := mgr.Pid()
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatalf("SIGSTOP %s: %v", mgr.Name, err)
			}
		},
		up: func(t *testing.T, c *swarmtest.Cluster) {
			mgr := c.Manager()
			if err := syscall.Kill(mgr.Pid(), syscall.SIGCONT); err != nil {
				t.Fatalf("SIGCONT %s: %v", mgr.Name, err)
			}
		},
	}
	// A manager that crashes and is restarted: our stream breaks at once.
	managerKilled = outage{
		name:   "manager killed (SIGKILL, restart)",
		length: 8 * time.Second,
		down: func(t *testing.T, c *swarmtest.Cluster) {
			mgr := c.Manager()
			if err := mgr.Kill(); err != nil {
				t.Fatalf("kill %s: %v", mgr.Name, err)
			}
		},
		up: func(t *testing.T, c *swarmtest.Cluster) {
			mgr := c.Manager()
			if err := mgr.Start(); err != nil {
				t.Fatalf("restart %s: %v", mgr.Name, err)
			}
			if err := mgr.WaitReady(context.Background()); err != nil {
				t.Fatalf("restart %s: %v", mgr.Name, err)
			}
		},
	}
	// The worker cut off from the manager on the test's bridge: manifold still
	// reaches the manager, whose stream stops bringing the worker's lines without
	// ending (seen: it never brings them again). Long enough for the manager to
	// mark the node down: once back, Swarm replaces its task.
	workerCutOff = outage{
		name:   "worker cut off from the manager (iptables DROP)",
		length: 20 * time.Second,
		down: func(t *testing.T, c *swarmtest.Cluster) {
			for _, rule := range cutOffRules(c) {
				t.Cleanup(func() { _ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run() })
				if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
					t.Fatalf("iptables -I %v: %v: %s", rule, err, out)
				}
			}
		},
		up: func(t *testing.T, c *swarmtest.Cluster) {
			for _, rule := range cutOffRules(c) {
				if out, err := exec.Command("iptables", append([]string{"-D"}, rule...)...).CombinedOutput(); err != nil {
					t.Fatalf("iptables -D %v: %v: %s", rule, err, out)
				}
			}
		},
	}
)

// cutOffRules drop what the worker and the manager send each other over the bridge.
func cutOffRules(c *swarmtest.Cluster) [][]string {
	w, m := c.Nodes[1].Addr, c.Manager().Addr
	return [][]string{
		{"FORWARD", "-s", w, "-d", m, "-j", "DROP"},
		{"FORWARD", "-s", m, "-d", w, "-j", "DROP"},
	}
}

// logCluster is a manager that runs no task (drained) and one worker, so that an
// outage of the manager leaves the dyno running; and a driver publishing to a
// logplex that keeps every line.
func logCluster(t *testing.T, opts swarm.Options) (*swarmtest.Cluster, *swarm.Driver, *logs.Plex) {
	t.Helper()
	c := newCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mgr := c.Manager()
	node, _, err := mgr.Client.NodeInspectWithRaw(ctx, mgr.ID)
	if err != nil {
		t.Fatalf("inspect manager: %v", err)
	}
	node.Spec.Availability = dockerswarm.NodeAvailabilityDrain
	if err := mgr.Client.NodeUpdate(ctx, mgr.ID, node.Version, node.Spec); err != nil {
		t.Fatalf("drain manager: %v", err)
	}
	plex := logs.New(logs.Options{RingLines: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(plex.Close)
	opts.Logs, opts.Logger, opts.Host = plex, slog.New(slog.DiscardHandler), mgr.Host
	opts.Instance, opts.SlugListen = randomName(), c.HostAddr+":0"
	opts.RelistInterval = 300 * time.Millisecond
	d, err := swarm.New(ctx, opts)
	if err != nil {
		t.Fatalf("swarm.New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return c, d, plex
}

// startCounter runs one worker dyno printing counterCommand.
func startCounter(t *testing.T, d *swarm.Driver, app string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := webSpec(app, 1, 1, makeSlug(t))
	spec.Type, spec.Command = "worker", counterCommand
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
}

// counted is what manifold logs holds of the counter: each task's numbers in
// arrival order (by the task's hostname: Swarm may replace the task, and a new one
// counts from 1 again), and the L10 lines' counts.
type counted struct {
	numbers map[string][]int
	l10     []int
}

func readCounter(plex *logs.Plex, app string) counted {
	c := counted{numbers: map[string][]int{}}
	for _, l := range plex.Recent(logs.Filter{App: app, Dyno: "worker.1"}, 0) {
		switch l.Source {
		case logs.SourceApp:
			if host, n, ok := parseCounter(l.Text); ok {
				c.numbers[host] = append(c.numbers[host], n)
			}
		case logs.SourceHeroku:
			var n int
			if _, err := fmt.Sscanf(l.Text, "Error L10 (output buffer overflow): %d messages dropped since", &n); err == nil {
				c.l10 = append(c.l10, n)
			}
		}
	}
	return c
}

// parseCounter reads "<hostname> n=<i>".
func parseCounter(text string) (host string, n int, ok bool) {
	host, count, found := strings.Cut(text, " n=")
	n, err := strconv.Atoi(count)
	return host, n, found && err == nil
}

// last is the newest number of a task, 0 if none came.
func (c counted) last(host string) int {
	numbers := c.numbers[host]
	if len(numbers) == 0 {
		return 0
	}
	return numbers[len(numbers)-1]
}

// total is how many numbered lines came.
func (c counted) total() int {
	total := 0
	for _, numbers := range c.numbers {
		total += len(numbers)
	}
	return total
}

// missing checks each task's numbers arrived in order, each once, and returns how
// many of 1..last never arrived, over all tasks.
func (c counted) missing(t *testing.T) int {
	t.Helper()
	gaps := 0
	for host, numbers := range c.numbers {
		prev := 0
		for _, n := range numbers {
			if n <= prev {
				t.Fatalf("task %s: n=%d arrived after n=%d: twice or out of order", host, n, prev)
			}
			gaps += n - prev - 1
			prev = n
		}
	}
	return gaps
}

// workerHolds is the newest number of each task of the counter the worker's engine
// holds (read from the node itself, not through the manager), stopped tasks too.
func workerHolds(t *testing.T, worker *swarmtest.Node, app string) (oldest, newest map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := worker.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", swarm.LabelApp+"="+app))})
	if err != nil {
		t.Fatalf("the counter's containers on %s: %v", worker.Name, err)
	}
	oldest, newest = map[string]int{}, map[string]int{}
	for _, ctr := range list {
		rc, err := worker.Client.ContainerLogs(ctx, ctr.ID, container.LogsOptions{ShowStdout: true})
		if err != nil {
			t.Fatalf("logs of the counter on %s: %v", worker.Name, err)
		}
		var out bytes.Buffer
		_, err = stdcopy.StdCopy(&out, io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("logs of the counter on %s: %v", worker.Name, err)
		}
		for _, line := range strings.Split(out.String(), "\n") {
			_, text, _ := strings.Cut(line, " ") // mf#N
			if host, n, ok := parseCounter(text); ok {
				if _, seen := oldest[host]; !seen {
					oldest[host] = n
				}
				newest[host] = n
			}
		}
	}
	return oldest, newest
}

// sum adds up a task -> number map.
func sum(numbers map[string]int) int {
	total := 0
	for _, n := range numbers {
		total += n
	}
	return total
}

// waitCaughtUp waits until manifold logs has, of every task, the newest number the
// worker's engine held when it was called.
func waitCaughtUp(t *testing.T, plex *logs.Plex, worker *swarmtest.Node, app string) counted {
	t.Helper()
	_, want := workerHolds(t, worker, app)
	var got counted
	err := poll(t, 2*time.Minute, func() bool {
		got = readCounter(plex, app)
		for host, n := range want {
			if got.last(host) < n {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("manifold logs did not catch up with the worker's %v: %v; has %d lines", want, err, got.total())
	}
	return got
}

// waitPrinted waits until the counter printed `more` lines on the worker beyond
// `from` (a sum over its tasks); the outages last that long.
func waitPrinted(t *testing.T, worker *swarmtest.Node, app string, from, more int) {
	t.Helper()
	now := 0
	if err := poll(t, 2*time.Minute, func() bool { _, newest := workerHolds(t, worker, app); now = sum(newest); return now >= from+more }); err != nil {
		t.Fatalf("the counter did not print %d lines: %v (%d of them)", more, err, now-from)
	}
}

// TestLogsExactlyOnceAcrossManagerOutage: a worker dyno prints numbered lines while
// the manager is out of reach (hung; killed and restarted; cut off from the
// worker); once it is back every number reaches manifold logs exactly once, in
// order, and nothing is reported lost.
func TestLogsExactlyOnceAcrossManagerOutage(t *testing.T) {
	c, d, plex := logCluster(t, swarm.Options{})
	app := "counter"
	worker := c.Nodes[1]
	startCounter(t, d, app)
	waitPrinted(t, worker, app, 0, 50)
	waitCaughtUp(t, plex, worker, app)
	for _, o := range []outage{managerStopped, managerKilled, workerCutOff} {
		o.down(t, c)
		began := time.Now()
		// The outage is the point here: the poll waits for nothing but its end.
		if err := poll(t, o.length+time.Minute, func() bool { return time.Since(began) >= o.length }); err != nil {
			t.Fatal(err)
		}
		o.up(t, c)
		outageLength := time.Since(began)
		got := waitCaughtUp(t, plex, worker, app)
		if lost := got.missing(t); lost != 0 || len(got.l10) != 0 {
			t.Fatalf("%s for %s: %d numbers missing, L10 counts %v", o.name, outageLength.Round(100*time.Millisecond), lost, got.l10)
		}
		t.Logf("%s for %s: %d lines of %d task(s), each once and in order, in manifold logs %s after it ended",
			o.name, outageLength.Round(100*time.Millisecond), got.total(), len(got.numbers), (time.Since(began) - outageLength).Round(100*time.Millisecond))
	}
}

// TestLogsLostToRotationAreL10: with a tiny json-file bound, the worker's log
// rotates away lines while the manager is down; once it is back, manifold logs says
// so with Heroku's L10 line, and its counts are exactly the numbers that never
// arrived; none arrives twice.
func TestLogsLostToRotationAreL10(t *testing.T) {
	c, d, plex := logCluster(t, swarm.Options{LogMaxBytes: 2048, LogMaxFiles: 2})
	app := "rotated"
	worker := c.Nodes[1]
	startCounter(t, d, app)
	waitPrinted(t, worker, app, 0, 50)
	managerKilled.down(t, c)
	delivered := readCounter(plex, app) // no line arrives while the manager is down
	// The outage lasts until the worker's engine no longer holds the line after the
	// last one delivered, of every task.
	err := poll(t, 2*time.Minute, func() bool {
		oldest, _ := workerHolds(t, worker, app)
		for host, n := range oldest {
			if n <= delivered.last(host)+1 {
				return false
			}
		}
		return len(oldest) > 0
	})
	if err != nil {
		t.Fatalf("the worker's log did not rotate: %v", err)
	}
	managerKilled.up(t, c)
	got := waitCaughtUp(t, plex, worker, app)
	lost := got.missing(t)
	reported := 0
	for _, n := range got.l10 {
		reported += n
	}
	if len(got.l10) == 0 || lost == 0 {
		t.Fatalf("no loss seen: %d numbers missing, L10 counts %v", lost, got.l10)
	}
	if reported != lost {
		t.Fatalf("L10 lines report %d lost (%v), %d numbers missing", reported, got.l10, lost)
	}
	t.Logf("json-file 2048 B x 2: %d lines lost while the manager was down, %d delivered, all lost reported by %d L10 line(s) %v",
		lost, got.total(), len(got.l10), got.l10)
}
