package docker

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// containerRun is one run of a dyno's container, as its supervisor sees it.
type containerRun struct {
	dy       *dyno
	id, name string
	addr     string
}

var _ supervisor.Process = (*containerRun)(nil)

// ID is the container's id.
func (r *containerRun) ID() string { return r.id }

// Addr is the container's address on its app network, for a web dyno.
func (r *containerRun) Addr() string {
	if r.dy.spec.Type != "web" {
		return ""
	}
	return r.addr
}

// Wait inspects the container at each kick (an engine event, a relist) until it has
// exited or is gone.
func (r *containerRun) Wait(ctx context.Context) (supervisor.Exit, error) {
	for {
		select {
		case <-ctx.Done():
			return supervisor.Exit{}, ctx.Err()
		case <-r.dy.kick:
		}
		exit, ended := r.dy.d.check(ctx, r.dy, r.id, r.name)
		if ended {
			return exit, nil
		}
	}
}

// Signal sends sig to the container's init, which passes it on to the dyno's process.
func (r *containerRun) Signal(sig syscall.Signal) error {
	name := strconv.Itoa(int(sig))
	switch sig {
	case syscall.SIGTERM:
		name = "SIGTERM"
	case syscall.SIGKILL:
		name = "SIGKILL"
	}
	err := r.dy.d.cli.ContainerKill(r.dy.d.ctx, r.id, name)
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) { // gone, or not running
		return fmt.Errorf("signal container %s with %s: %w", short(r.id), name, err)
	}
	return nil
}

// Memory is not sampled: the container's cgroup enforces the quota.
func (r *containerRun) Memory(int64) (int64, bool) { return 0, false }

// check inspects a dyno's container after a kick: ended is true once it has exited
// (its status, and whether the OOM killer ended it) or is gone.
func (d *Driver) check(ctx context.Context, dy *dyno, id, name string) (exit supervisor.Exit, ended bool) {
	info, err := d.cli.ContainerInspect(ctx, id)
	switch {
	case ctx.Err() != nil:
		return supervisor.Exit{}, false
	case cerrdefs.IsNotFound(err):
		d.mu.Lock()
		dy.gone = true
		d.mu.Unlock()
		return supervisor.Exit{Gone: goneLine(id, name)}, true
	case err != nil:
		// The engine is unreachable; the relist after reconnecting kicks again.
		d.log.Warn("inspect container", "dyno", dy.spec.Ref(), "container", id, "err", err)
		return supervisor.Exit{}, false
	case info.State.Running || info.State.Restarting:
		return supervisor.Exit{}, false
	}
	oom := info.State.OOMKilled
	if !oom && info.State.ExitCode == 137 {
		oom = d.lateOOM(ctx, id)
	}
	return supervisor.Exit{Code: info.State.ExitCode, OOM: oom}, true
}

// oomGrace is how long lateOOM waits for the engine to flag an OOM kill.
const oomGrace = time.Second

// lateOOM tells whether the engine flags a container that exited with SIGKILL as OOM
// killed within oomGrace. The engine learns of the OOM kill from containerd's event,
// which can arrive after the exit event under load: the first inspect then says
// OOMKilled false for what was an R15.
func (d *Driver) lateOOM(ctx context.Context, id string) bool {
	deadline := time.Now().Add(oomGrace)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
		info, err := d.cli.ContainerInspect(ctx, id)
		if err != nil {
			return false
		}
		if info.State.OOMKilled {
			return true
		}
	}
	return false
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// stopSeconds is the SIGTERM grace in whole seconds, as the engine takes it.
func stopSeconds(spec drivers.DynoSpec) int {
	t := spec.StopTimeout
	if t <= 0 {
		t = defaultStopTimeout
	}
	return int((t + time.Second - 1) / time.Second)
}
