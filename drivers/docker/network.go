package docker

import (
	"context"
	"fmt"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// networks serialises work on each app network: creating a dyno's container on it and
// removing it once no container of the app and environment is left must not
// interleave, or a new dyno would find its network gone.
type networks struct { // also used for slug volumes
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	known map[string]bool // networks seen to exist, to skip an inspect per Start
}

func newNetworks() *networks {
	return &networks{locks: make(map[string]*sync.Mutex), known: make(map[string]bool)}
}

func (n *networks) lock(name string) func() {
	n.mu.Lock()
	l := n.locks[name]
	if l == nil {
		l = new(sync.Mutex)
		n.locks[name] = l
	}
	n.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (n *networks) setKnown(name string, known bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if known {
		n.known[name] = true
	} else {
		delete(n.known, name)
	}
}

func (n *networks) isKnown(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.known[name]
}

// ensureNetwork creates the bridge network of an app and environment when missing.
// The caller holds the network's lock.
func (d *Driver) ensureNetwork(ctx context.Context, app, env string) error {
	name := networkName(app, env)
	if d.networks.isKnown(name) {
		return nil
	}
	if _, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		d.networks.setKnown(name, true)
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", name, err)
	}
	_, err := d.cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{LabelApp: app, LabelEnv: env, LabelInstance: d.opts.Instance},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create network %s for %s/%s: %w", name, app, env, err)
	}
	d.networks.setKnown(name, true)
	return nil
}

// removeNetworkIfUnused removes the app network once no container of the app and
// environment (dynos and one-offs of this instance) is left on it.
func (d *Driver) removeNetworkIfUnused(ctx context.Context, app, env string) {
	name := networkName(app, env)
	unlock := d.networks.lock(name)
	defer unlock()
	left, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: d.instanceFilter(
		filters.Arg("label", LabelApp+"="+app), filters.Arg("label", LabelEnv+"="+env))})
	if err != nil {
		d.log.Warn("list containers before removing network", "network", name, "err", err)
		return
	}
	if len(left) > 0 {
		return
	}
	d.networks.setKnown(name, false)
	if err := d.cli.NetworkRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("remove network", "network", name, "err", err)
		return
	}
	d.log.Debug("removed network", "network", name)
}
