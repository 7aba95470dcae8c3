package buildstep

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// HostRunner runs buildpack steps as processes of the daemon's host, each in its own
// process group so that a timeout (or the end of the step) kills everything it
// started. It is the slug builder's default runner; it is safe for concurrent use.
type HostRunner struct{}

// Run runs cmd on the host to its end: nil when it exited 0, a *ExitError
// when it exited otherwise, another error when it could not run or ctx ended.
// Mounts and Stack are not used: the host's folders are already there.
func (HostRunner) Run(ctx context.Context, c Cmd) error {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.Stdout = c.Stdout
	cmd.Stderr = c.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A background process that keeps stdout open must not hold the build forever.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		// Whatever the step left running in its group goes with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return &ExitError{Code: exit.ExitCode(), Err: err}
	}
	return err
}
