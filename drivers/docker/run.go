package docker

import (
	"context"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// Run runs a one-off dyno (`manifold run`): a container on the app's network with the
// slug at /app, attached to o's streams (stdout and stderr demultiplexed), removed
// after it exits, never restarted. It returns the process's exit status. A zero Index
// is numbered by the driver (run.1, run.2, …); Type defaults to run. With o.Terminal
// the container gets a terminal of that size, whose output goes to o.Stdout.
// Cancelling ctx kills the container.
func (d *Driver) Run(ctx context.Context, o drivers.OneOff) (int, error) {
	if err := d.beginCall(); err != nil {
		return -1, err
	}
	defer d.wg.Done()
	spec := o.DynoSpec
	if spec.Type == "" {
		spec.Type = "run"
	}
	if spec.Index == 0 {
		d.mu.Lock()
		d.runSeq++
		spec.Index = d.runSeq
		d.mu.Unlock()
	}
	// The spec names a stack ("manifold-24"); the container needs its image.
	spec.Stack = d.stackImage(spec.Stack)
	if err := spec.ValidateForContainers(); err != nil {
		return -1, err
	}
	labels, err := d.dynoLabels(spec)
	if err != nil {
		return -1, err
	}
	labels[LabelOneOff] = "1"
	id, _, err := d.createDynoContainer(ctx, spec, labels, &o)
	if err != nil {
		return -1, err
	}
	// Removal must happen even when ctx is cancelled.
	defer func() {
		d.removeContainer(spec, id)
		d.releaseShared(ctx, spec.App, spec.Env, labels[LabelVolume])
	}()

	attach, err := d.cli.ContainerAttach(ctx, id, container.AttachOptions{
		Stream: true, Stdin: o.Stdin != nil, Stdout: true, Stderr: true,
	})
	if err != nil {
		return -1, fmt.Errorf("run %s: attach: %w", spec.Ref(), err)
	}
	defer attach.Close()
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	outputDone := make(chan error, 1)
	go func() {
		var err error
		if o.Terminal != nil {
			// A terminal's output is one stream, not multiplexed.
			_, err = io.Copy(stdout, attach.Reader)
		} else {
			_, err = stdcopy.StdCopy(stdout, stderr, attach.Reader)
		}
		outputDone <- err
	}()

	d.platform(spec, spec.Name(), supervisor.StateChanged(drivers.StateDown, drivers.StateStarting))
	d.platform(spec, spec.Name(), supervisor.Starting(spec.Command))
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return -1, fmt.Errorf("run %s: start container: %w", spec.Ref(), err)
	}
	d.platform(spec, spec.Name(), supervisor.StateChanged(drivers.StateStarting, drivers.StateUp))
	if t := o.Terminal; t != nil {
		// As docker run -t does: the size given at create is not always applied.
		_ = d.cli.ContainerResize(ctx, id, container.ResizeOptions{Height: uint(t.Rows), Width: uint(t.Cols)})
	}
	if o.Stdin != nil {
		go func() {
			_, _ = io.Copy(attach.Conn, o.Stdin)
			if o.Terminal == nil {
				// On a terminal the end of the input is a key (^D), not the end of
				// the stream; the engine would also end the output with it.
				_ = attach.CloseWrite()
			}
		}()
	}

	waitCh, errCh := d.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	var status int
	select {
	case res := <-waitCh:
		if res.Error != nil {
			return -1, fmt.Errorf("run %s: wait: %s", spec.Ref(), res.Error.Message)
		}
		status = int(res.StatusCode)
	case err := <-errCh:
		if ctx.Err() != nil {
			killCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = d.cli.ContainerKill(killCtx, id, "SIGKILL")
			cancel()
			return -1, fmt.Errorf("run %s: %w", spec.Ref(), ctx.Err())
		}
		if cerrdefs.IsNotFound(err) {
			return -1, fmt.Errorf("run %s: container removed while running", spec.Ref())
		}
		return -1, fmt.Errorf("run %s: wait: %w", spec.Ref(), err)
	}
	// The output stream ends once the engine has sent everything the process wrote.
	select {
	case <-outputDone:
	case <-time.After(5 * time.Second):
		d.log.Warn("one-off output did not end after exit", "dyno", spec.Ref())
	case <-ctx.Done():
	}
	d.platform(spec, spec.Name(), supervisor.Exited(supervisor.Exit{Code: status}))
	d.platform(spec, spec.Name(), supervisor.StateChanged(drivers.StateUp, "complete"))
	return status, nil
}
