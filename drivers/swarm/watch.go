package swarm

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// logRetry is the wait before following a service's logs again after the stream
// broke (the manager restarting, a network blip).
const logRetry = time.Second

// watch lists services, tasks and nodes every RelistInterval, and at once when the
// manager's event stream says a service or node changed (followEvents), and tells
// every change of a dyno's state as an event and platform lines, until ctx ends.
// Swarm has no task events, so the periodic listing is what sees a task's own
// changes (running, healthy, failed), and the backstop for missed events.
func (d *Driver) watch(ctx context.Context) {
	tick := time.NewTicker(d.opts.RelistInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.relist:
			d.eventRelists.Add(1)
		}
		obs, err := d.observe(ctx)
		if err != nil {
			d.log.Warn("list services", "err", err)
			continue
		}
		for _, svc := range obs.services {
			d.followLogs(svc.Spec.Name)
		}
		d.finishStops(obs, d.diff(obs))
		d.tellRollbacks(obs)
		if back := d.nodesBack(obs); len(back) > 0 {
			d.rebalance(ctx, back)
		}
	}
}

// tellRollbacks says, as a platform line of the app, when Swarm rolls a service back
// (a task of the new release failed), with the failed task's reason: the dynos of
// the new release vanish then, and the old ones keep serving.
func (d *Driver) tellRollbacks(obs observed) {
	for _, svc := range obs.services {
		state := swarm.UpdateState("")
		if svc.UpdateStatus != nil {
			state = svc.UpdateStatus.State
		}
		d.mu.Lock()
		before, seen := d.updateStates[svc.ID]
		d.updateStates[svc.ID] = state
		d.mu.Unlock()
		if !seen || before == state || state != swarm.UpdateStateRollbackStarted {
			continue
		}
		spec, err := specOf(svc.Spec)
		if err != nil {
			continue
		}
		why := svc.UpdateStatus.Message
		var newest *swarm.Task
		for _, t := range obs.tasks[svc.ID] {
			if failed(t) && (newest == nil || t.Meta.CreatedAt.After(newest.Meta.CreatedAt)) {
				newest = &t
			}
		}
		if newest != nil {
			why, _ = reason(*newest, specOfTask(*newest, spec))
		}
		d.platform(spec, spec.Type, "Release failed on the swarm and is rolled back: "+why)
	}
}

// nodesBack are the nodes ready now that were not at the last listing.
func (d *Driver) nodesBack(obs observed) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var back []string
	for id, node := range obs.nodes {
		ready := node.Status.State == swarm.NodeStateReady
		if was, seen := d.nodeReady[id]; seen && !was && ready {
			back = append(back, node.Description.Hostname+" ("+node.Status.Addr+")")
		}
		d.nodeReady[id] = ready
	}
	return back
}

// rebalance spreads the services' tasks again once a node is back: Swarm never
// moves running tasks by itself, so each service gets a forced rolling update
// (start-first, one task at a time, as a deploy), which places by the spread
// preference again.
func (d *Driver) rebalance(ctx context.Context, back []string) {
	obs, err := d.observe(ctx)
	if err != nil {
		d.log.Warn("rebalance", "err", err)
		return
	}
	d.ops.Lock()
	defer d.ops.Unlock()
	for _, listed := range obs.services {
		err := retryOutOfSequence(ctx, func() error {
			svc, _, err := d.cli.ServiceInspectWithRaw(ctx, listed.ID, swarm.ServiceInspectOptions{})
			if err != nil {
				return err
			}
			if r := svc.Spec.Mode.Replicated; r == nil || r.Replicas == nil || *r.Replicas < 2 {
				return nil
			}
			update := svc.Spec
			update.TaskTemplate.ForceUpdate++
			_, err = d.cli.ServiceUpdate(ctx, svc.ID, svc.Version, update, swarm.ServiceUpdateOptions{})
			return err
		})
		if err != nil {
			d.log.Warn("rebalance", "service", listed.Spec.Name, "err", err)
			continue
		}
		d.log.Info("node back: service rebalanced", "service", listed.Spec.Name, "nodes", back)
	}
}

// diff pushes an event per dyno whose state changed since the last listing, and
// keeps the listing's task names for the logs; it returns them.
func (d *Driver) diff(obs observed) map[string]taskName {
	now, names := d.dynos(obs)
	d.mu.Lock()
	for id, name := range names {
		d.taskNames[id] = name
	}
	prev := d.current
	d.current = currentTasks(names)
	d.forgetNonces(names)
	last := d.last
	next := make(map[string]drivers.Dyno, len(now))
	for _, dyno := range now {
		next[dyno.ID] = dyno
	}
	d.last = next
	d.mu.Unlock()
	for _, dyno := range now {
		before, seen := last[dyno.ID]
		from := drivers.StateDown
		if seen {
			from = before.State
		}
		if from == dyno.State && (dyno.State != drivers.StateCrashed || before.Restarts == dyno.Restarts) {
			continue
		}
		d.tell(dyno, from)
	}
	for id, dyno := range last {
		if _, ok := next[id]; !ok {
			gone := dyno
			gone.State = drivers.StateDown
			gone.Addr = ""
			if !d.stopStarted(obs, prev, gone, dyno.State) {
				d.tell(gone, dyno.State)
			}
		}
	}
	return names
}

func (d *Driver) tell(dyno drivers.Dyno, from drivers.State) {
	code := ""
	if dyno.State == drivers.StateCrashed {
		switch {
		case strings.HasPrefix(dyno.Reason, "Error R15"):
			code = "R15"
		case strings.HasPrefix(dyno.Reason, "Error R10"):
			code = "R10"
		}
		for _, line := range d.crashLines(dyno) {
			d.platform(dyno.Spec, dyno.Name, line)
		}
	}
	if from != dyno.State {
		d.platform(dyno.Spec, dyno.Name, supervisor.StateChanged(from, dyno.State))
		if dyno.State == drivers.StateStarting {
			d.platform(dyno.Spec, dyno.Name, supervisor.Starting(dyno.Spec.Command))
		}
	}
	d.events.Push(drivers.Event{Dyno: dyno, From: from, To: dyno.State, Code: code})
}

// platform publishes a line of the dyno manager (source heroku).
func (d *Driver) platform(spec drivers.DynoSpec, dyno, text string) {
	d.opts.Logs.Publish(logs.Line{Time: time.Now().UTC().Truncate(time.Microsecond), App: spec.App, Env: spec.Env, Source: logs.SourceHeroku, Dyno: dyno, Text: text})
}

// taskDynoName names the dyno a task is, from the last listing; a task not listed
// yet is named by a fresh look at it.
func (d *Driver) taskDynoName(ctx context.Context, taskID string) (drivers.DynoSpec, string, bool) {
	for attempt := 0; ; attempt++ {
		d.mu.Lock()
		name, ok := d.taskNames[taskID]
		d.mu.Unlock()
		if ok {
			return name.spec, name.name, true
		}
		if attempt > 0 {
			return drivers.DynoSpec{}, "", false
		}
		obs, err := d.observe(ctx)
		if err != nil {
			return drivers.DynoSpec{}, "", false
		}
		_, names := d.dynos(obs)
		d.mu.Lock()
		for id, name := range names {
			d.taskNames[id] = name
		}
		d.mu.Unlock()
	}
}
