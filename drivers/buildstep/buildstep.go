// Package buildstep is one buildpack step (bin/detect, bin/compile, bin/release) as a
// slug builder hands it to whatever runs it, and HostRunner, which runs it as a process
// of this host (docker.BuildRunner runs it in a build container).
package buildstep

import (
	"fmt"
	"io"
)

// Cmd is one buildpack step. Every path in it is an absolute path of the host.
type Cmd struct {
	// App is the app being built, for labels and error messages.
	App string
	// Stack is the request's stack name (may be empty): a container runner makes its
	// build container from that stack's image.
	Stack string
	// Path is the script: <buildpack>/bin/detect, compile or release.
	Path string
	// Args are the script's arguments: BUILD_DIR, then for bin/compile CACHE_DIR and
	// ENV_DIR.
	Args []string
	// Dir is the working directory (BUILD_DIR).
	Dir string
	// Env is the step's whole environment (NAME=value). Its PATH is the host's
	// (the builder's PathEnv): a container runner replaces it with its image's.
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
// or a failed bin/compile. A runner returns it for exactly that case, so the builder
// can tell "the script said no" from "the script could not run".
type ExitError struct {
	// Code is the exit status (-1 when a signal ended the step).
	Code int
	// Err is the runner's own error (an *exec.ExitError for a host runner), if any.
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
