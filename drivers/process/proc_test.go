package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wait kills what the leader left in its group before it reaps the leader: after the
// reap the leader's pid (the group's id) may name another process group, and a
// SIGKILL sent to it then would kill a stranger.
func TestWaitKillsGroupBeforeReap(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	leader, err := os.StartProcess("/bin/sh", []string{"/bin/sh", "-c", `sleep 60 & echo $! > "$1"; exit 3`, "sh", pidFile},
		&os.ProcAttr{Files: []*os.File{devNull, devNull, devNull}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		t.Fatal(err)
	}
	pid := leader.Pid
	_ = leader.Release()
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	_, startTime, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, err := newProc(pid, startTime).wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !status.Known || status.Code != 3 {
		t.Fatalf("status %+v, want known 3", status)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	_, childStart, err := procStat(child)
	if errors.Is(err, fs.ErrNotExist) {
		return // already gone and reaped
	}
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, fmt.Sprintf("the leader's child %d gone after wait returned", child), func() error {
		if alive(child, childStart) {
			return errors.New("still runs: its group was not killed before the reap")
		}
		return nil
	})
}

// Once wait has reaped the leader, signalGroup sends nothing: the pid may already lead
// another group (here another live group stands in for the kernel reusing the number),
// and the memory watcher, which signals from its own goroutine, must not kill it.
func TestSignalGroupAfterReapSendsNothing(t *testing.T) {
	start := func(script string) int {
		t.Helper()
		proc, err := os.StartProcess("/bin/sh", []string{"/bin/sh", "-c", script},
			&os.ProcAttr{Sys: &syscall.SysProcAttr{Setpgid: true}})
		if err != nil {
			t.Fatal(err)
		}
		pid := proc.Pid
		_ = proc.Release()
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL); _, _ = syscall.Wait4(pid, nil, 0, nil) })
		return pid
	}
	leader := start("exit 0")
	_, startTime, err := procStat(leader)
	if err != nil {
		t.Fatal(err)
	}
	p := newProc(leader, startTime)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	stranger := start("exec sleep 60")
	_, strangerStart, err := procStat(stranger)
	if err != nil {
		t.Fatal(err)
	}
	p.pid = stranger // the reaped leader's pid, now another group's
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// kill(2) marks SIGKILL pending before it returns: dead, dying or pending all
	// show at once, no waiting needed.
	if !alive(stranger, strangerStart) || killPending(t, stranger) {
		t.Fatal("signalGroup after the reap killed the group that now holds the pid")
	}
}

// killPending reports whether pid has a SIGKILL pending (SigPnd or ShdPnd of
// /proc/<pid>/status); a process already gone counts as killed.
func killPending(t *testing.T, pid int) bool {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(raw), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || (key != "SigPnd" && key != "ShdPnd") {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status: %s: %v", pid, key, err)
		}
		if mask&(1<<(syscall.SIGKILL-1)) != 0 {
			return true
		}
	}
	return false
}
