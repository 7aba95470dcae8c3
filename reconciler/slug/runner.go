package slug

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// Runner runs one buildpack step (bin/detect, bin/compile or bin/release). The
// Builder's default, HostRunner, runs it as a process of the daemon's host; a
// container driver runs it in a build container of the app's stack image
// (drivers/docker.BuildRunner). Run must be safe for concurrent use.
type Runner interface {
	// Run runs cmd to its end and returns nil when it exited 0, an *ExitError when it
	// ran and exited otherwise, and any other error when it could not run or was
	// stopped because ctx ended (whatever the step started must be gone by then).
	Run(ctx context.Context, cmd Cmd) error
}

// Cmd is one buildpack step. Every path in it is an absolute path of the host.
type Cmd struct {
	// App is the app being built, for labels and error messages.
	App string
	// Stack is the request's stack name (Request.Stack, may be empty): a container
	// runner makes its build container from that stack's image.
	Stack string
	// Path is the script: <buildpack>/bin/detect, compile or release.
	Path string
	// Args are the script's arguments: BUILD_DIR, then for bin/compile CACHE_DIR and
	// ENV_DIR.
	Args []string
	// Dir is the working directory (BUILD_DIR).
	Dir string
	// Env is the step's whole environment (NAME=value). Its PATH is the host's
	// (Builder.PathEnv): a container runner replaces it with its image's.
	Env []string
	// Stdout and Stderr receive the step's output; they may be the same writer, and
	// are never nil.
	Stdout, Stderr io.Writer
	// Mounts are the host folders the step uses: the build's scratch folder (holding
	// BUILD_DIR, ENV_DIR, HOME and TMPDIR), the app's CACHE_DIR and, read-only, the
	// buildpack. A container runner bind-mounts them at the same paths, so Path,
	// Args, Dir and Env need no rewriting.
	Mounts []Mount
}

// Mount is a host folder a step uses.
type Mount struct {
	Path     string
	ReadOnly bool
}

// ExitError is a step that ran and exited non-zero: bin/detect saying "not my app",
// or a failed bin/compile.
type ExitError struct {
	// Code is the exit status (-1 when a signal ended the step).
	Code int
	// Err is the runner's own error (an *exec.ExitError for HostRunner), if any.
	Err error
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Unwrap returns the runner's own error.
func (e *ExitError) Unwrap() error { return e.Err }

// HostRunner runs steps as processes of the daemon's host, each in its own process
// group so that a timeout (or the end of the step) kills everything it started.
type HostRunner struct{}

var _ Runner = HostRunner{}

// Run runs cmd on the host. Mounts and Stack are not used: the host's folders are
// already there.
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
