package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one running process group: its leader's pid, the leader's start time (so a
// reused pid is never taken for it) and, when the kernel has them, a pidfd to learn
// of its exit without polling. Exactly one goroutine calls wait, which owns the pidfd.
//
// The pidfd is non-blocking and registered with Go's netpoller (epoll): a waiting
// dyno parks a goroutine, not an OS thread, so idle dynos cost no thread each, and
// it works for adopted processes that are not our children, where wait4 cannot.
type proc struct {
	pid       int
	startTime uint64
	pidfd     *os.File // nil: none, /proc is polled instead

	// sigMu orders signals with the reap: once reaped the pid may name another
	// process group, so signalGroup must never run after it (the memory watcher
	// signals from its own goroutine).
	sigMu  sync.Mutex
	reaped bool
}

// exitStatus is how a process ended. Known is false for a process this daemon did not
// start (adopted after a restart): only its parent learns the status.
type exitStatus struct {
	Code  int
	Known bool
}

// String is the Heroku wording's tail: "status 143" or why it is unknown.
func (s exitStatus) String() string {
	if !s.Known {
		return "status unknown (adopted process: manifold is not its parent)"
	}
	return "status " + strconv.Itoa(s.Code)
}

// procPollInterval is how often /proc is read when no pidfd is at hand (old kernels).
const procPollInterval = 100 * time.Millisecond

// procStat reads the process state (R, S, Z, …) and start time (field 22 of
// /proc/<pid>/stat, clock ticks after boot) of pid.
func procStat(pid int) (state byte, startTime uint64, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or ')'.
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 || end+2 > len(raw) {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := bytes.Fields(raw[end+2:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	startTime, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return fields[0][0], startTime, nil
}

// alive reports whether pid runs and is the process that started at startTime.
// A zombie is not alive: it has exited and only waits to be reaped.
func alive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	state, st, err := procStat(pid)
	return err == nil && st == startTime && state != 'Z' && state != 'X'
}

// newProc watches pid, which started at startTime.
func newProc(pid int, startTime uint64) *proc {
	p := &proc{pid: pid, startTime: startTime}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return p // no pidfd (kernel before 5.3, or gone already): /proc is polled
	}
	// O_NONBLOCK by fcntl, not PIDFD_NONBLOCK: kernels 5.3 to 5.9 lack the flag, and
	// epoll, not waitid, is what reads this pidfd.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return p
	}
	// os.NewFile registers a non-blocking descriptor with the netpoller; a file that
	// takes no deadline is not registered, and waiting on it would block a thread.
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	if f.SetReadDeadline(time.Time{}) != nil {
		f.Close()
		return p
	}
	p.pidfd = f
	return p
}

// adoptProc returns a handle on a process a previous daemon left running, or nil when
// it is gone (or its pid now names another process).
func adoptProc(pid int, startTime uint64) *proc {
	if !alive(pid, startTime) {
		return nil
	}
	p := newProc(pid, startTime)
	// The pidfd pins the process; check again that it is the same one.
	if !alive(pid, startTime) {
		p.closeFD()
		return nil
	}
	return p
}

// wait blocks until the process exits or ctx ends (then it returns ctx's error), and
// closes the pidfd: call it once. The status is known when this process is the parent.
// What the leader leaves in its group is killed with it, as a dyno is one container.
func (p *proc) wait(ctx context.Context) (exitStatus, error) {
	defer p.closeFD()
	if p.pidfd != nil {
		if err := waitPidfd(ctx, p.pidfd); err != nil {
			return exitStatus{}, fmt.Errorf("wait for process %d: %w", p.pid, err)
		}
		return p.killGroupAndReap(), nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return exitStatus{}, err
		}
		if !alive(p.pid, p.startTime) {
			return p.killGroupAndReap(), nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(procPollInterval):
		}
	}
}

// waitPidfd parks the calling goroutine in the netpoller until the pidfd is readable
// (its process exited) or ctx ends (then it returns ctx's error).
func waitPidfd(ctx context.Context, pidfd *os.File) error {
	raw, err := pidfd.SyscallConn()
	if err != nil {
		return err
	}
	// A deadline in the past wakes the parked read at once.
	stop := context.AfterFunc(ctx, func() { _ = pidfd.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	exited := false
	err = raw.Read(func(fd uintptr) bool {
		// A pidfd cannot be read(2): poll it without blocking; false parks until epoll
		// says it is readable.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		exited = err == nil && n > 0
		return exited
	})
	switch {
	case exited:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("poll pidfd: %w", err)
	}
	return errors.New("poll pidfd: woken before the process exited")
}

// killGroupAndReap SIGKILLs what the leader left in its group, then reaps the leader.
// In that order: while our child is an unreaped zombie its pid cannot be reused, so
// the signal cannot reach another process group; after the reap it could.
func (p *proc) killGroupAndReap() exitStatus {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	_ = p.killLocked(syscall.SIGKILL) // a group already gone is fine
	p.reaped = true
	return p.reap()
}

// reap collects the exit status of a child of this process; for any other process it
// reports the status unknown (its own parent, usually init, reaps it).
func (p *proc) reap() exitStatus {
	for range 50 {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil: // ECHILD: not our child
			return exitStatus{}
		case wpid == p.pid:
			return exitStatus{Code: statusCode(ws), Known: true}
		}
		// wpid 0: our child has not turned into a zombie yet.
		time.Sleep(2 * time.Millisecond)
	}
	return exitStatus{}
}

// statusCode is the shell's view of a wait status: the exit code, or 128+N when
// signal N ended the process (143 for SIGTERM, 137 for SIGKILL), as Heroku prints it.
func statusCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// signalGroup signals the whole process group (the leader is its group's leader).
// A group already gone is not an error; after the leader's reap it sends nothing.
func (p *proc) signalGroup(sig syscall.Signal) error {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if p.reaped {
		return nil
	}
	return p.killLocked(sig)
}

// killLocked signals the group; p.sigMu must be held.
func (p *proc) killLocked(sig syscall.Signal) error {
	err := syscall.Kill(-p.pid, sig)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group %d with %v: %w", p.pid, sig, err)
	}
	return nil
}

func (p *proc) closeFD() {
	if p.pidfd != nil {
		_ = p.pidfd.Close()
		p.pidfd = nil
	}
}
