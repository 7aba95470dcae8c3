package slug

import (
	"context"

	"github.com/manifold-paas/manifold/drivers/buildstep"
)

// Runner runs one buildpack step (bin/detect, bin/compile or bin/release). The
// Builder's default, buildstep.HostRunner, runs it as a process of the daemon's host; a
// container driver runs it in a build container of the app's stack image
// (drivers/docker.BuildRunner). Run must be safe for concurrent use.
type Runner interface {
	// Run runs cmd to its end and returns nil when it exited 0, a
	// *buildstep.ExitError when it ran and exited otherwise, and any other error when
	// it could not run or was stopped because ctx ended (whatever the step started
	// must be gone by then).
	Run(ctx context.Context, cmd buildstep.Cmd) error
}

var _ Runner = buildstep.HostRunner{}
