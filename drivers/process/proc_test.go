package process

import (
	"context"
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
	for deadline := time.Now().Add(2 * time.Second); err == nil && alive(child, childStart); {
		if time.Now().After(deadline) {
			t.Fatalf("the leader's child %d still runs after wait returned: its group was not killed before the reap", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
