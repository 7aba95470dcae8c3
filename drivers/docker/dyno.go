package docker

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// dyno is the driver's record of one dyno and the runtime its supervisor drives:
// start (or restart, or replace) its container, watch it, signal it, remove it. The
// supervisor owns the dyno's state; the fields under "guarded by Driver.mu" are the
// container the dyno runs in now.
type dyno struct {
	d    *Driver
	spec drivers.DynoSpec
	sup  *supervisor.Supervisor
	// kick asks the watcher of the current run to inspect the container now (an
	// engine event or a relist saw it change); capacity 1, sends never block.
	kick chan struct{}

	// guarded by Driver.mu
	id        string        // current container id
	container string        // current container name
	volume    string        // slug volume the current container mounts, if any
	addr      string        // where the current run of a web dyno listens
	logDone   chan struct{} // closed when the current log follower ends
	gone      bool          // the container was removed from outside: Start replaces it
}

var _ supervisor.Runtime = (*dyno)(nil)

// newDyno makes the record of a dyno running (or to run) in container id.
func (d *Driver) newDyno(st supervisor.Status, id, name string) *dyno {
	st.Dyno.ID = id
	dy := &dyno{d: d, spec: st.Dyno.Spec, kick: make(chan struct{}, 1), id: id, container: name}
	dy.sup = supervisor.New(supervisor.Config{
		Logs: d.opts.Logs, Events: d.events, Logger: d.log,
		BootTimeout: d.opts.BootTimeout, Cooloff: d.opts.Cooloff,
		// No memory sampling: the container's cgroup enforces the quota, and its OOM
		// kill comes back as Exit.OOM (R15).
	}, st, dy)
	return dy
}

// kickNow wakes the watcher of the dyno's current run without blocking.
func (dy *dyno) kickNow() {
	select {
	case dy.kick <- struct{}{}:
	default:
	}
}

// Start starts the dyno's container: again after a crash (its /app is kept), or a new
// one when the last was removed from outside.
func (dy *dyno) Start(ctx context.Context) (supervisor.Process, error) {
	d := dy.d
	d.mu.Lock()
	gone := dy.gone
	d.mu.Unlock()
	if gone {
		if err := d.replace(ctx, dy); err != nil {
			return nil, err
		}
	}
	// Kicks were about the run that ended.
	select {
	case <-dy.kick:
	default:
	}
	err := d.startContainer(ctx, dy)
	if cerrdefs.IsNotFound(err) {
		// Removed from outside after it exited: a new container takes its place.
		d.mu.Lock()
		id, name := dy.id, dy.container
		d.mu.Unlock()
		dy.sup.Say(goneLine(id, name))
		if err := d.replace(ctx, dy); err != nil {
			return nil, err
		}
		err = d.startContainer(ctx, dy)
	}
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return &containerRun{dy: dy, id: dy.id, name: dy.container, addr: dy.addr}, nil
}

// Changed does nothing: the container's labels hold what a restarted daemon needs.
func (dy *dyno) Changed(supervisor.Status) {}

// Down removes the stopped dyno's container, and its app network and slug volume
// once nothing else uses them.
func (dy *dyno) Down() {
	d := dy.d
	d.mu.Lock()
	cid, volume, logDone := dy.id, dy.volume, dy.logDone
	d.mu.Unlock()
	// Not the driver's context: a Close racing with the stop must not leave the
	// container behind.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), removeTimeout)
	defer cancel()
	if err := forceRemove(ctx, d.cli, cid); err != nil {
		d.log.Warn("remove container of stopped dyno", "dyno", dy.spec.Ref(), "container", cid, "err", err)
	}
	// Removed first: List never shows the container as a dyno nobody manages.
	d.unregister(dy)
	if logDone != nil {
		<-logDone
	}
	d.logState.forget(cid)
	d.releaseShared(ctx, dy.spec.App, dy.spec.Env, volume)
}

// removeTimeout bounds the removal of a stopped dyno's container and network.
const removeTimeout = 30 * time.Second

// register records a dyno under its container id.
func (d *Driver) register(dy *dyno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dynos[dy.id] = dy
}

// rekey moves a dyno to a new container id, keeping the old one as an alias so a
// Stop with the id the reconciler last saw still finds it.
func (d *Driver) rekey(dy *dyno, id, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dy.id != "" {
		delete(d.dynos, dy.id)
		d.aliases[dy.id] = dy
	}
	dy.id, dy.container = id, name
	d.dynos[id] = dy
}

func (d *Driver) unregister(dy *dyno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.dynos, dy.id)
	for alias, other := range d.aliases {
		if other == dy {
			delete(d.aliases, alias)
		}
	}
}

// lookup finds a dyno by its container id or an alias.
func (d *Driver) lookup(id string) *dyno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dy := d.dynos[id]; dy != nil {
		return dy
	}
	return d.aliases[id]
}

// goneLine tells that a dyno's container was removed from outside manifold.
func goneLine(id, name string) string {
	return fmt.Sprintf("Container %s (%s) was removed outside manifold; starting a replacement", name, short(id))
}

// replace makes a new container for a dyno whose container was removed from outside.
func (d *Driver) replace(ctx context.Context, dy *dyno) error {
	d.mu.Lock()
	oldID := dy.id
	d.mu.Unlock()
	d.log.Warn("dyno container removed from outside; replacing it", "dyno", dy.spec.Ref(), "container", oldID)
	d.logState.forget(oldID)
	labels, err := d.dynoLabels(dy.spec)
	if err != nil {
		return err
	}
	id, name, err := d.createDynoContainer(ctx, dy.spec, labels, nil)
	if err != nil {
		return fmt.Errorf("replace container %s: %w", short(oldID), err)
	}
	d.rekey(dy, id, name)
	d.mu.Lock()
	dy.volume = labels[LabelVolume]
	dy.logDone = nil
	dy.gone = false
	d.mu.Unlock()
	return nil
}
