package process

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/drivers"
)

// TestIsDynoProcess: a one-off's shell, its child in a group of its own and a web
// dyno's process are dynos'; the test itself and its parent are not, and a one-off's
// process stops counting once the one-off is over.
func TestIsDynoProcess(t *testing.T) {
	h := newHarness(t, Options{})
	if h.d.IsDynoProcess(os.Getpid()) || h.d.IsDynoProcess(os.Getppid()) {
		t.Fatal("the test process counts as a dyno's")
	}
	web := h.start(h.webSpec(1, nil))
	waitState(t, h.d, web.ID, drivers.StateUp, nil)
	if pid := pidOf(h.d, web.ID); !h.d.IsDynoProcess(pid) {
		t.Errorf("web dyno's pid %d does not count", pid)
	}

	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// The child leaves the one-off's process group (set -m gives each background
		// job a group of its own) but stays its descendant.
		spec := h.spec("", 0, `echo $$; set -m; sleep 60 & echo $!; read x; kill $!`, nil)
		_, err := h.d.Run(context.Background(), drivers.OneOff{DynoSpec: spec, Stdin: stdinR, Stdout: stdoutW, Stderr: io.Discard})
		stdoutW.Close()
		done <- err
	}()
	lines := bufio.NewScanner(stdoutR)
	var pids []int
	for len(pids) < 2 && lines.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(lines.Text()))
		if err != nil {
			t.Fatalf("one-off said %q", lines.Text())
		}
		pids = append(pids, pid)
	}
	if len(pids) != 2 {
		t.Fatalf("one-off pids: %v", pids)
	}
	for _, pid := range pids {
		if !h.d.IsDynoProcess(pid) {
			t.Errorf("one-off process %d does not count as a dyno's", pid)
		}
	}
	if h.d.IsDynoProcess(os.Getpid()) {
		t.Error("the test process counts as a dyno's while a one-off runs")
	}
	stdinW.Close()
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if groups := h.d.dynoGroups(); len(groups) != 1 {
		t.Errorf("groups after the one-off: %v, want the web dyno's only", groups)
	}
}
