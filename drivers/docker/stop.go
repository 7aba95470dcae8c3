package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/manifold-paas/manifold/drivers"
)

// Stop stops a dyno: SIGTERM, its StopTimeout (30 s by default), SIGKILL, then removes
// its container, and the app network once it holds no container. id is the id List or
// Start gave (a dyno replaced since is still found by its old id) or the id of any
// labelled container of this instance, e.g. one List reported that no spec wants.
func (d *Driver) Stop(ctx context.Context, id string) error {
	dy := d.lookup(id)
	if dy == nil {
		return d.stopForeign(ctx, id)
	}
	dy.stopMu.Lock()
	defer dy.stopMu.Unlock()
	d.mu.Lock()
	removed := dy.removed
	d.mu.Unlock()
	if removed {
		return nil
	}
	// End the supervisor first so no restart or replacement races with the stop.
	dy.cancel()
	select {
	case <-dy.done:
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", dynoRef(dy.spec), ctx.Err())
	}
	d.mu.Lock()
	cid, volume := dy.id, dy.volume
	logDone := dy.logDone
	// A crashed dyno's exit was logged when it crashed.
	running := dy.state != drivers.StateCrashed
	d.mu.Unlock()

	d.platform(dy.spec, dy.spec.Name(), "Stopping all processes with SIGTERM")
	status, err := d.stopAndRemove(ctx, cid, stopSeconds(dy.spec))
	if err != nil {
		return fmt.Errorf("stop %s: %w", dynoRef(dy.spec), err)
	}
	if status >= 0 && running {
		d.platform(dy.spec, dy.spec.Name(), fmt.Sprintf("Process exited with status %d", status))
	}
	d.setState(dy, drivers.StateDown, "", "")
	d.unregister(dy)
	if logDone != nil {
		<-logDone
	}
	d.logState.forget(cid)
	d.releaseShared(ctx, dy.spec.App, dy.spec.Env, volume)
	return nil
}

// stopAndRemove stops a container with the grace in seconds and removes it. It returns
// the exit status, or -1 when the container was already gone.
func (d *Driver) stopAndRemove(ctx context.Context, id string, graceSecs int) (int, error) {
	if err := d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &graceSecs}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return -1, nil
		}
		return -1, fmt.Errorf("stop container %s: %w", short(id), err)
	}
	status := -1
	if info, err := d.cli.ContainerInspect(ctx, id); err == nil {
		status = info.State.ExitCode
	}
	if err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return status, fmt.Errorf("remove container %s: %w", short(id), err)
	}
	return status, nil
}

// stopForeign stops a labelled container of this instance the driver does not manage
// (left by another daemon, or an unknown dyno List reported).
func (d *Driver) stopForeign(ctx context.Context, id string) error {
	info, err := d.cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop %s: %w", id, ErrUnknownDyno)
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	if info.Config == nil || info.Config.Labels[LabelInstance] != d.opts.Instance {
		return fmt.Errorf("stop %s: not a container of manifold instance %s: %w", id, d.opts.Instance, ErrUnknownDyno)
	}
	spec, err := specFromLabels(info.Config.Labels)
	if err != nil {
		spec = drivers.DynoSpec{App: info.Config.Labels[LabelApp], Env: info.Config.Labels[LabelEnv]}
	}
	d.platform(spec, info.Config.Labels[LabelDyno], "Stopping all processes with SIGTERM")
	if _, err := d.stopAndRemove(ctx, info.ID, stopSeconds(spec)); err != nil {
		return fmt.Errorf("stop %s: %w", dynoRef(spec), err)
	}
	d.logState.forget(info.ID)
	d.releaseShared(ctx, info.Config.Labels[LabelApp], info.Config.Labels[LabelEnv], info.Config.Labels[LabelVolume])
	return nil
}
