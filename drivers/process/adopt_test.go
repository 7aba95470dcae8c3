package process

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

const tickCommand = `i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.02; done`

// ticks returns the tick numbers published for dyno.
func ticks(sink *recorder, dyno string) []int {
	var out []int
	for _, text := range sink.texts(dyno, logs.SourceApp) {
		if n, err := strconv.Atoi(strings.TrimPrefix(text, "tick ")); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func TestAdoptAfterClose(t *testing.T) {
	h := newHarness(t, Options{})
	web := h.start(h.webSpec(1, nil))
	worker := h.start(h.spec("worker", 1, tickCommand, nil))
	waitState(t, h.d, web.ID, drivers.StateUp, nil)
	waitState(t, h.d, worker.ID, drivers.StateUp, nil)
	h.sink.waitLine(t, "worker.1", logs.SourceApp, "tick 3")
	pids := map[string]int{web.ID: pidOf(h.d, web.ID), worker.ID: pidOf(h.d, worker.ID)}
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	before := ticks(h.sink, "worker.1")

	sink := &recorder{}
	h.d = h.newDriver(sink)
	dynos, err := h.d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(dynos) != 2 {
		t.Fatalf("adopted %d dynos, want 2: %+v", len(dynos), dynos)
	}
	for _, dyno := range dynos {
		if dyno.State != drivers.StateUp || pidOf(h.d, dyno.ID) != pids[dyno.ID] {
			t.Errorf("adopted %s %s pid %d, want up pid %d", dyno.Name, dyno.State, pidOf(h.d, dyno.ID), pids[dyno.ID])
		}
	}
	if body := get(t, "http://"+web.Addr+"/"); body != "hello from web.1" {
		t.Errorf("GET adopted web = %q", body)
	}
	// Output goes on, from where the first driver stopped: no tick lost, none twice.
	sink.waitLine(t, "worker.1", logs.SourceApp, "tick "+strconv.Itoa(before[len(before)-1]+5))
	after := ticks(sink, "worker.1")
	if after[0] != before[len(before)-1]+1 {
		t.Errorf("first tick after adoption %d, last before %d", after[0], before[len(before)-1])
	}
	for i := range after[1:] {
		if after[i+1] != after[i]+1 {
			t.Fatalf("ticks after adoption not consecutive: %v", after)
		}
	}
	// And again: the adopted dyno's state file still names its process.
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	h.d = h.newDriver(sink)
	if got := pidOf(h.d, worker.ID); got != pids[worker.ID] {
		t.Fatalf("second adoption: pid %d, want %d", got, pids[worker.ID])
	}
	// Stopping an adopted dyno stops its process.
	if err := h.d.Stop(context.Background(), worker.ID); err != nil {
		t.Fatal(err)
	}
	groupGone(t, pids[worker.ID])
}

func TestAdoptRestartsDynoGoneMeanwhile(t *testing.T) {
	h := newHarness(t, Options{})
	worker := h.start(h.spec("worker", 1, `echo "pid $$"; exec sleep 60`, nil))
	waitState(t, h.d, worker.ID, drivers.StateUp, nil)
	pid := pidOf(h.d, worker.ID)
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	// It dies while no driver runs (and this test, its parent, reaps it).
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}

	sink := &recorder{}
	h.d = h.newDriver(sink)
	up := waitState(t, h.d, worker.ID, drivers.StateUp, func(d drivers.Dyno) bool { return d.Restarts == 1 })
	if newPID := pidOf(h.d, up.ID); newPID == pid || newPID == 0 {
		t.Fatalf("pid %d after restart, was %d", newPID, pid)
	}
	inOrder(t, sink.texts("worker.1", logs.SourceHeroku),
		"Process exited with status unknown (it exited while manifold was not running)",
		"State changed from up to crashed",
		"State changed from crashed to starting")
}

// TestAdoptAfterKill9 runs a real daemon (this test binary as a mini daemon), kills it
// with SIGKILL, and adopts its dyno: same pid, output still followed, and a process
// this daemon is not the parent of is still watched for its exit.
func TestAdoptAfterKill9(t *testing.T) {
	h := newHarness(t, Options{})
	h.d.Close()
	spec := h.spec("worker", 1, tickCommand, nil)
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(h.testb)
	daemon.Env = append(os.Environ(), roleEnv+"=daemon", "DAEMON_STATE="+h.opts.StateDir,
		"DAEMON_SLUGS="+h.opts.SlugDir, "DAEMON_SPEC="+string(specJSON))
	stdout, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if strings.HasPrefix(scanner.Text(), "READY ") {
				ready <- scanner.Text()
				return
			}
			t.Log("daemon:", scanner.Text())
		}
		close(ready)
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(waitLimit):
		daemon.Process.Kill()
		t.Fatal("mini daemon never ready")
	}
	fields := strings.Fields(line)
	if len(fields) != 3 {
		daemon.Process.Kill()
		t.Fatalf("daemon said %q", line)
	}
	id := fields[1]
	pid, err := strconv.Atoi(fields[2])
	if err != nil {
		daemon.Process.Kill()
		t.Fatalf("daemon said %q: %v", line, err)
	}
	if err := daemon.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = daemon.Wait()

	sink := &recorder{}
	h.d = h.newDriver(sink)
	dynos, err := h.d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(dynos) != 1 || dynos[0].ID != id || pidOf(h.d, id) != pid {
		t.Fatalf("after kill -9: %+v (pid %d), want %s with pid %d", dynos, pidOf(h.d, id), id, pid)
	}
	// The daemon may have died before it recorded the dyno as up: the adopted process
	// then passes its boot check again, without a restart.
	waitState(t, h.d, id, drivers.StateUp, nil)
	if got := pidOf(h.d, id); got != pid {
		t.Fatalf("adopted dyno restarted: pid %d, want %d", got, pid)
	}
	// Its ticks are still published: the dyno never wrote to a pipe of the dead daemon.
	sink.waitLine(t, "worker.1", logs.SourceApp, "tick ")
	first := ticks(sink, "worker.1")[0]
	sink.waitLine(t, "worker.1", logs.SourceApp, "tick "+strconv.Itoa(first+3))

	// Not our child: its exit is seen through the pidfd, its status is unknown.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sink.waitLine(t, "worker.1", logs.SourceHeroku, "Process exited with status unknown (adopted process: manifold is not its parent)")
	waitState(t, h.d, id, drivers.StateUp, func(d drivers.Dyno) bool { return d.Restarts == 1 })
	if _, err := os.Stat(filepath.Join(h.opts.StateDir, id+".json")); err != nil {
		t.Fatal(err)
	}
}
