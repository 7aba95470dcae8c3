package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// oneOffWaitDelay bounds how long Run waits for the attached streams after the process
// exits (a grandchild holding them open is killed with the group before that).
const oneOffWaitDelay = 2 * time.Second

// Run runs a one-off dyno (`manifold run`, the release phase) to completion, attached
// to the given streams, and returns its exit code: the process's, or 128+N when signal
// N ended it. It is never restarted and leaves no state behind. Its name is
// Type.Index: run.N by default, N counting up within this driver when Index is 0.
// Cancelling ctx kills its process group; the error then says so.
func (d *Driver) Run(ctx context.Context, oneOff drivers.OneOff) (int, error) {
	spec := oneOff.DynoSpec
	if spec.Type == "" {
		spec.Type = "run"
	}
	if err := validateSpec(spec, true); err != nil {
		return -1, err
	}
	if spec.Index == 0 {
		spec.Index = int(d.runSeq.Add(1))
	}
	name := spec.Name()
	fail := func(err error) (int, error) {
		return -1, fmt.Errorf("run app %s dyno %s: %w", spec.App, name, err)
	}
	if d.isClosed() {
		return fail(ErrClosed)
	}
	dir, err := d.slugs.unpack(ctx, spec.SlugKey, spec.SlugPath)
	if err != nil {
		return fail(err)
	}
	port, err := d.ports.get()
	if err != nil {
		return fail(err)
	}
	defer d.ports.release(port)

	say := func(text string) {
		d.sink.Publish(logs.Line{Time: now(), App: spec.App, Env: spec.Env, Source: logs.SourceHeroku, Dyno: name, Text: text})
	}
	cmd := exec.Command("/bin/sh", "-c", shellScript(dir, spec.Command))
	cmd.Dir = dir
	cmd.Env = dynoEnv(dir, spec, name, port)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = oneOff.Stdin, oneOff.Stdout, oneOff.Stderr
	cmd.SysProcAttr = d.sysProcAttr(&syscall.SysProcAttr{Setpgid: true})
	cmd.WaitDelay = oneOffWaitDelay
	var term *ptyRelay
	if oneOff.Terminal != nil {
		if term, err = openRelay(*oneOff.Terminal); err != nil {
			return fail(err)
		}
		defer term.close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = term.tty, term.tty, term.tty
		// A session of its own with the terminal as its controlling terminal, as a
		// login shell has; its id is the group killGroup signals.
		cmd.SysProcAttr = d.sysProcAttr(&syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0})
	}

	say(supervisor.StateChanged(drivers.StateDown, drivers.StateStarting))
	say(supervisor.Starting(spec.Command))
	if err := cmd.Start(); err != nil {
		say(supervisor.StartFailed(err))
		return fail(err)
	}
	if term != nil {
		term.relay(oneOff.Stdin, oneOff.Stdout)
	}
	pgid := cmd.Process.Pid
	d.oneOffGroups.add(pgid)
	defer d.oneOffGroups.remove(pgid)
	say(supervisor.StateChanged(drivers.StateStarting, drivers.StateUp))
	// exec.CommandContext would kill only the leader; a one-off's children go too.
	// killMu and reaped keep every signal to -pgid before the leader's reap: after
	// it the pid may lead another process group.
	var killMu sync.Mutex
	reaped := false
	killGroup := func() {
		killMu.Lock()
		defer killMu.Unlock()
		if !reaped {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
	stopKill := context.AfterFunc(ctx, killGroup)
	// A one-off has its size's quota too (Heroku: R14, and R15 kills it).
	var hardKilled atomic.Bool
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		supervisor.WatchMemory(watchCtx, d.supervisorConfig().Memory, supervisor.MemoryWatch{
			Quota: spec.MemoryBytes, Say: say, Log: d.log.With("dyno", spec.App+" "+name),
			Meter: groupMeter{mem: d.mem, pgid: pgid, kill: func(sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }},
			R15:   func() { hardKilled.Store(true) },
		})
	}()
	// Wait for the leader's exit without reaping it, then kill what it left behind
	// (a background child holding stdout would keep Wait until WaitDelay), then reap.
	// Through a pidfd in the netpoller where there is one: no thread per one-off.
	leader := newProc(pgid, 0) // our unreaped child: its pid is not reused meanwhile
	if leader.pidfd == nil || waitPidfd(context.Background(), leader.pidfd) != nil {
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pgid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
	}
	leader.closeFD()
	stopWatch()
	<-watchDone
	stopKill()
	killGroup()
	killMu.Lock()
	reaped = true
	killMu.Unlock()
	waitErr := cmd.Wait()
	if term != nil {
		// What the process wrote last is still in the terminal: read it to the end.
		term.drain(oneOffWaitDelay)
	}

	code := -1
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		code = statusCode(ws)
	}
	say(supervisor.Exited(supervisor.Exit{Code: code}))
	say(supervisor.StateChanged(drivers.StateUp, "complete"))
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return code, fmt.Errorf("run app %s dyno %s: killed: %w", spec.App, name, ctx.Err())
	case hardKilled.Load():
		return code, fmt.Errorf("run app %s dyno %s: killed: %w", spec.App, name, ErrMemoryQuota)
	case waitErr != nil && !errors.As(waitErr, &exitErr):
		return code, fmt.Errorf("run app %s dyno %s: %w", spec.App, name, waitErr)
	}
	return code, nil
}

// ptyRelay is a one-off's pseudo-terminal and the copying between it and the caller's
// streams.
type ptyRelay struct {
	controller, tty *os.File
	outDone         chan struct{}
}

func openRelay(size drivers.TerminalSize) (*ptyRelay, error) {
	controller, tty, err := OpenPTY(size)
	if err != nil {
		return nil, err
	}
	return &ptyRelay{controller: controller, tty: tty, outDone: make(chan struct{})}, nil
}

// relay starts copying stdin to the terminal and the terminal's output to stdout, once
// the process holds the terminal side (this process's copy is closed, so that the
// output ends when the process and its children are gone).
func (p *ptyRelay) relay(stdin io.Reader, stdout io.Writer) {
	_ = p.tty.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	go func() {
		defer close(p.outDone)
		_, _ = io.Copy(stdout, p.controller) // ends with EIO when the terminal closes
	}()
	if stdin != nil {
		go func() { _, _ = io.Copy(p.controller, stdin) }()
	}
}

// drain waits up to d for the terminal's output to end.
func (p *ptyRelay) drain(d time.Duration) {
	select {
	case <-p.outDone:
	case <-time.After(d):
	}
}

func (p *ptyRelay) close() {
	_ = p.tty.Close()
	_ = p.controller.Close()
}
