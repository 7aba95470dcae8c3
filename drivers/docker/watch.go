package docker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// Back-off between reconnects of the event stream.
const (
	minReconnectDelay = 100 * time.Millisecond
	maxReconnectDelay = 5 * time.Second
)

// watchEvents follows the engine's container events for this instance and kicks the
// supervisor of each container that died or was destroyed. The stream breaks when the
// engine restarts (or the connection is cut): it reconnects with back-off and relists,
// since events were lost meanwhile. A periodic relist catches events the engine drops.
func (d *Driver) watchEvents(ctx context.Context) {
	relist := time.NewTicker(d.opts.RelistInterval)
	defer relist.Stop()
	delay := minReconnectDelay
	for ctx.Err() == nil {
		streamCtx, cancel := context.WithCancel(ctx)
		msgs, errs := d.cli.Events(streamCtx, events.ListOptions{Filters: d.instanceFilter(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("event", string(events.ActionDie)),
			filters.Arg("event", string(events.ActionDestroy)),
			filters.Arg("event", string(events.ActionStop)),
			filters.Arg("event", string(events.ActionOOM)),
		)})
		// Subscribed first, then listed: nothing falls between the two.
		d.relist(ctx)
	stream:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case msg := <-msgs:
				delay = minReconnectDelay
				d.kickContainer(msg.Actor.ID)
			case err := <-errs:
				if ctx.Err() != nil {
					cancel()
					return
				}
				d.log.Warn("engine event stream broken; reconnecting", "err", err, "retry_in", delay)
				break stream
			case <-relist.C:
				d.relist(ctx)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, maxReconnectDelay)
	}
}

// kickContainer wakes the supervisor of the dyno running in a container.
func (d *Driver) kickContainer(id string) {
	if dy := d.lookup(id); dy != nil {
		dy.kickNow()
	}
}

// relist compares the engine's containers with the driver's dynos and kicks every dyno
// whose container is gone or not running. It reports whether the list succeeded.
func (d *Driver) relist(ctx context.Context) bool {
	listCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	containers, err := d.cli.ContainerList(listCtx, container.ListOptions{All: true, Filters: d.instanceFilter()})
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("relist containers", "err", err)
		}
		return false
	}
	running := make(map[string]bool, len(containers))
	for _, c := range containers {
		running[c.ID] = c.State == "running"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, dy := range d.dynos {
		if !running[id] {
			dy.kickNow()
		}
	}
	return true
}

// adopt takes over the containers of this instance that an earlier daemon left: running
// ones are watched as they are (not restarted), exited ones are crashed dynos and
// restart after their cool-off, and ones created but never started (a daemon that died
// inside Start) are removed.
func (d *Driver) adopt(ctx context.Context) error {
	containers, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: d.instanceFilter()})
	if err != nil {
		return fmt.Errorf("list containers of instance %s: %w", d.opts.Instance, err)
	}
	for _, c := range containers {
		if c.Labels[LabelOneOff] == "slug-filler" {
			// A daemon died while filling a slug volume: the volume may be partial.
			d.log.Info("removing an unfinished slug volume", "container", c.ID)
			d.removeContainer(drivers.DynoSpec{}, c.ID)
			for _, m := range c.Mounts {
				if m.Type == "volume" && m.Name != "" {
					_ = d.cli.VolumeRemove(ctx, m.Name, true)
				}
			}
			continue
		}
		if isBuildContainer(c.Labels) {
			// A daemon died during a build: that build is gone with it.
			d.log.Info("removing a build container of an earlier daemon", "container", c.ID, "app", c.Labels[LabelBuild])
			d.removeContainer(drivers.DynoSpec{}, c.ID)
			continue
		}
		if c.Labels[LabelOneOff] != "" {
			continue
		}
		spec, err := specFromLabels(c.Labels)
		if err != nil {
			d.log.Warn("not adopting container with a bad spec label", "container", c.ID, "err", err)
			continue
		}
		if c.State == "created" {
			d.log.Info("removing a container never started", "dyno", spec.Ref(), "container", c.ID)
			d.removeContainer(spec, c.ID)
			d.releaseShared(ctx, spec.App, spec.Env, c.Labels[LabelVolume])
			continue
		}
		info, err := d.cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			return fmt.Errorf("adopt %s: inspect container %s: %w", spec.Ref(), short(c.ID), err)
		}
		name := strings.TrimPrefix(info.Name, "/")
		st := supervisor.Status{Dyno: drivers.Dyno{Spec: spec, State: drivers.StateUp, StartedAt: time.Now()}}
		if t, err := time.Parse(time.RFC3339Nano, info.State.StartedAt); err == nil {
			st.Dyno.StartedAt = t
		}
		if !info.State.Running {
			st.Dyno.State = drivers.StateCrashed
		}
		dy := d.newDyno(st, c.ID, name)
		dy.volume = c.Labels[LabelVolume]
		if ep := info.NetworkSettings.Networks[networkName(spec.App, spec.Env)]; ep != nil && ep.IPAddress != "" && spec.Type == "web" {
			dy.addr = ep.IPAddress + ":" + strconv.Itoa(containerPort)
		}
		var run supervisor.Process
		if info.State.Running {
			since := d.logState.get(c.ID)
			if since.IsZero() {
				since = time.Now()
			}
			dy.logDone = d.followLogs(spec, spec.Name(), c.ID, since)
			run = &containerRun{dy: dy, id: c.ID, name: name, addr: dy.addr}
			dy.sup.Adopted(run)
		} else {
			dy.sup.Lost(supervisor.Exit{Code: info.State.ExitCode, OOM: info.State.OOMKilled})
		}
		d.register(dy)
		d.log.Info("adopted dyno", "dyno", spec.Ref(), "container", c.ID, "state", st.Dyno.State)
		d.wg.Add(1)
		go func() { defer d.wg.Done(); dy.sup.Run(d.ctx, run) }()
	}
	return nil
}
