package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// Stop stops a dyno through its supervisor: SIGTERM, its StopTimeout (30 s by
// default), SIGKILL (R12), then removes its container, and the app network once it
// holds no container. id is the id List or Start gave (a dyno replaced since is still
// found by its old id) or the id of any labelled container of this instance, e.g. one
// List reported that no spec wants.
func (d *Driver) Stop(ctx context.Context, id string) error {
	dy := d.lookup(id)
	if dy == nil {
		return d.stopForeign(ctx, id)
	}
	switch err := dy.sup.Stop(ctx); {
	case errors.Is(err, supervisor.ErrNotStopped):
		return fmt.Errorf("stop %s: %w", dy.spec.Ref(), ErrClosed)
	case err != nil:
		return fmt.Errorf("stop %s: %w", dy.spec.Ref(), err)
	}
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
	if err := forceRemove(ctx, d.cli, id); err != nil {
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
	d.platform(spec, info.Config.Labels[LabelDyno], supervisor.MsgTerm)
	if _, err := d.stopAndRemove(ctx, info.ID, stopSeconds(spec)); err != nil {
		return fmt.Errorf("stop %s: %w", spec.Ref(), err)
	}
	d.logState.forget(info.ID)
	d.releaseShared(ctx, info.Config.Labels[LabelApp], info.Config.Labels[LabelEnv], info.Config.Labels[LabelVolume])
	return nil
}

// forceRemove removes a container, killing it first if it runs, and tries again
// until ctx ends when the engine fails to: under load the engine answers a forced
// removal now and then with a transient error (a kill whose exit event it did not
// see in time, a removal already in progress), and a container left behind holds
// its port, volume and network. A container already gone is no error.
func forceRemove(ctx context.Context, cli removeClient, id string) error {
	const (
		retry    = 500 * time.Millisecond
		attempts = 20 // 10 s at most, whatever ctx allows
	)
	var err error
	for range attempts {
		err = cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retry):
		}
	}
	return err
}

// removeClient is what forceRemove needs of the engine's client.
type removeClient interface {
	ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error
}
