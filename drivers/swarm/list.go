package swarm

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// observed is one listing of the driver's services, tasks and nodes.
type observed struct {
	services []swarm.Service
	tasks    map[string][]swarm.Task // by service ID
	nodes    map[string]swarm.Node   // by node ID
}

// observe lists the services of the instance (one-offs and the guard apart), their tasks and the nodes.
func (d *Driver) observe(ctx context.Context) (observed, error) {
	services, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+d.opts.Instance))})
	if err != nil {
		return observed{}, fmt.Errorf("list services: %w", err)
	}
	services = slices.DeleteFunc(services, func(s swarm.Service) bool {
		return s.Spec.Labels[LabelOneOff] != "" || s.Spec.Labels[LabelGuard] != ""
	})
	obs := observed{services: services, tasks: map[string][]swarm.Task{}, nodes: map[string]swarm.Node{}}
	if len(services) == 0 {
		return obs, nil
	}
	args := filters.NewArgs()
	for _, s := range services {
		args.Add("service", s.ID)
	}
	tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: args})
	if err != nil {
		return observed{}, fmt.Errorf("list tasks: %w", err)
	}
	for _, t := range tasks {
		obs.tasks[t.ServiceID] = append(obs.tasks[t.ServiceID], t)
	}
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return observed{}, fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes {
		obs.nodes[n.ID] = n
	}
	return obs, nil
}

// List reports every dyno: per service and release, the live slots sorted and named
// web.1, web.2, … in that order (Swarm picks which slot a scale-down removes, so the
// names stay 1..count), plus a starting dyno for each replica the service wants and
// Swarm has not made a task for yet.
func (d *Driver) List(ctx context.Context) ([]drivers.Dyno, error) {
	obs, err := d.observe(ctx)
	if err != nil {
		return nil, err
	}
	dynos, _ := d.dynos(obs)
	return dynos, nil
}

// taskName is the dyno a task's log lines belong to.
type taskName struct {
	spec drivers.DynoSpec
	name string
	// dyno is the dyno's ID; current says the task is the one the dyno runs now
	// (the others of its slot ended before).
	dyno    string
	current bool
}

// dynos is pure over one listing: the dynos, and the dyno of every task by ID.
func (d *Driver) dynos(obs observed) ([]drivers.Dyno, map[string]taskName) {
	var out []drivers.Dyno
	names := map[string]taskName{}
	for _, svc := range obs.services {
		tmpl, err := specOf(svc.Spec)
		if err != nil {
			d.log.Warn("service without a readable spec", "service", svc.Spec.Name, "err", err)
			continue
		}
		current := tmpl.Release
		replicas := 0
		if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
			replicas = int(*r.Replicas)
		}
		byRelease := map[int]map[int][]swarm.Task{} // release -> slot -> tasks, newest first
		for _, t := range obs.tasks[svc.ID] {
			release := taskRelease(t)
			if byRelease[release] == nil {
				byRelease[release] = map[int][]swarm.Task{}
			}
			byRelease[release][t.Slot] = append(byRelease[release][t.Slot], t)
		}
		for _, release := range slices.Sorted(maps.Keys(byRelease)) {
			slots := byRelease[release]
			var live []int
			for slot, tasks := range slots {
				slices.SortFunc(tasks, func(a, b swarm.Task) int { return b.Meta.CreatedAt.Compare(a.Meta.CreatedAt) })
				if isLive(tasks, obs.nodes, release == current) {
					live = append(live, slot)
				}
			}
			slices.Sort(live)
			if release == current && len(live) > replicas {
				live = live[:replicas]
			}
			for rank, slot := range live {
				spec := tmpl
				if release != current {
					spec = specOfTask(slots[slot][0], tmpl)
				}
				spec.Index = rank + 1
				dyno, task := d.taskDyno(svc.Spec.Name, spec, slots[slot], obs.nodes)
				out = append(out, dyno)
				for _, t := range slots[slot] {
					names[t.ID] = taskName{spec: spec, name: spec.Name(), dyno: dyno.ID, current: t.ID == task}
				}
			}
			if release == current {
				for rank := len(live); rank < replicas; rank++ {
					spec := tmpl
					spec.Index = rank + 1
					out = append(out, drivers.Dyno{
						ID: dynoID(svc.Spec.Name, current, spec.Index), Spec: spec, Name: spec.Name(),
						State: drivers.StateStarting, StateChangedAt: svc.Meta.UpdatedAt,
					})
				}
			}
		}
		if _, ok := byRelease[current]; !ok {
			for rank := range replicas {
				spec := tmpl
				spec.Index = rank + 1
				out = append(out, drivers.Dyno{
					ID: dynoID(svc.Spec.Name, current, spec.Index), Spec: spec, Name: spec.Name(),
					State: drivers.StateStarting, StateChangedAt: svc.Meta.UpdatedAt,
				})
			}
		}
	}
	slices.SortFunc(out, func(a, b drivers.Dyno) int { return strings.Compare(a.ID, b.ID) })
	return out, names
}

// isLive says whether a slot is a dyno now, from its tasks (newest first): its
// newest task crashed (current release: Swarm marks it shutdown at once and starts
// its next task), or a task of it is one Swarm wants running (old releases: and it
// runs) on a node that is up and not drained. Not only the newest counts: after a
// rollback a slot can hold the old task that still serves and, newer, a copy of it
// Swarm made and shut down again (the restart of the failed task, made from the
// rolled-back spec, and the rollback keeping the running one). A drained node's
// tasks are being stopped: the router drops them as soon as the drain is listed.
func isLive(tasks []swarm.Task, nodes map[string]swarm.Node, current bool) bool {
	if current && failed(tasks[0]) {
		return true
	}
	for _, t := range tasks {
		if t.DesiredState != swarm.TaskStateRunning && t.DesiredState != swarm.TaskStateReady {
			continue
		}
		if !onUsableNode(t, nodes) {
			continue // a node that is down or drained: its tasks are rescheduled elsewhere
		}
		if current || t.Status.State == swarm.TaskStateRunning {
			return true
		}
	}
	return false
}

// onUsableNode says whether a task is unassigned yet, or on a node that is ready
// and not drained.
func onUsableNode(t swarm.Task, nodes map[string]swarm.Node) bool {
	if t.NodeID == "" {
		return true
	}
	node, ok := nodes[t.NodeID]
	return ok && node.Status.State == swarm.NodeStateReady && node.Spec.Availability != swarm.NodeAvailabilityDrain
}

// taskDyno is the dyno of one slot from its tasks, newest first, and the ID of the
// task it runs now.
func (d *Driver) taskDyno(service string, spec drivers.DynoSpec, tasks []swarm.Task, nodes map[string]swarm.Node) (drivers.Dyno, string) {
	newest := tasks[0]
	for _, t := range tasks[1:] {
		if newest.Status.State != swarm.TaskStateRunning && t.Status.State == swarm.TaskStateRunning && t.DesiredState == swarm.TaskStateRunning && onUsableNode(t, nodes) {
			// A forced update (a rebalance) starts the slot's next task first: the
			// one running serves until it is up.
			newest = t
			break
		}
	}
	dyno := drivers.Dyno{
		ID: dynoID(service, spec.Release, spec.Index), Spec: spec, Name: spec.Name(),
		StartedAt: newest.Meta.CreatedAt, StateChangedAt: newest.Status.Timestamp,
	}
	var lastFailure *swarm.Task
	for i := range tasks {
		if failed(tasks[i]) {
			dyno.Restarts++
			if lastFailure == nil {
				lastFailure = &tasks[i]
			}
		}
	}
	switch {
	case newest.Status.State == swarm.TaskStateRunning:
		dyno.State = drivers.StateUp
		if spec.Type == "web" {
			dyno.Addr = taskAddr(newest, nodes)
		}
	case failed(newest):
		dyno.State = drivers.StateCrashed
		dyno.Reason, _ = reason(newest, spec)
		dyno.Restarts--
	case lastFailure != nil && !containerStarted(newest):
		// Swarm restarts the slot after its delay: crashed until the next task's
		// container starts, as a Heroku dyno is until its cool-off ends.
		dyno.State = drivers.StateCrashed
		dyno.Reason, _ = reason(*lastFailure, spec)
		dyno.StateChangedAt = lastFailure.Status.Timestamp
	default:
		dyno.State = drivers.StateStarting
		if newest.Status.Err != "" {
			dyno.Reason = newest.Status.Err // "no suitable node (…)": why it does not start
		}
	}
	return dyno, newest.ID
}

// containerStarted says whether a task's container was started: Swarm's "starting"
// lasts until a web task's health check passes.
func containerStarted(t swarm.Task) bool {
	return t.Status.State == swarm.TaskStateStarting || t.Status.State == swarm.TaskStateRunning
}

// failed says whether a task ended on its own, not stopped by Swarm.
func failed(t swarm.Task) bool {
	switch t.Status.State {
	case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateComplete:
		return true
	}
	return false
}

// reason words why a task ended and its Heroku error code, if any.
func reason(t swarm.Task, spec drivers.DynoSpec) (text, code string) {
	exit := -1
	if cs := t.Status.ContainerStatus; cs != nil {
		exit = cs.ExitCode
	}
	switch {
	case exit == exitFetchFailed:
		return "Slug fetch failed: the node could not download the slug from the daemon", ""
	case exit == exitSlugMismatch:
		return "Slug checksum mismatch: the slug the node downloaded is not the release's", ""
	case strings.Contains(strings.ToLower(t.Status.Err), "unhealthy"):
		return supervisor.ReasonR10, "R10"
	case strings.Contains(t.Status.Err, "OOM") || (exit == 137 && spec.MemoryBytes > 0):
		// Swarm says no more than "non-zero exit (137)": a SIGKILL no one sent but
		// the memory cgroup.
		return supervisor.MsgR15, "R15"
	case exit >= 0:
		return supervisor.Exited(supervisor.Exit{Code: exit}), ""
	case t.Status.Err != "":
		return t.Status.Err, ""
	}
	return "Task " + string(t.Status.State), ""
}

// taskAddr is node-address:published-port of a web task's host-mode port.
func taskAddr(t swarm.Task, nodes map[string]swarm.Node) string {
	node, ok := nodes[t.NodeID]
	if !ok || node.Status.Addr == "" {
		return ""
	}
	for _, p := range t.Status.PortStatus.Ports {
		if p.TargetPort == containerPort && p.PublishedPort != 0 {
			return net.JoinHostPort(node.Status.Addr, strconv.Itoa(int(p.PublishedPort)))
		}
	}
	return ""
}

// taskRelease is the release a task runs, from its container labels.
func taskRelease(t swarm.Task) int {
	if cs := t.Spec.ContainerSpec; cs != nil {
		if n, err := strconv.Atoi(cs.Labels[LabelRelease]); err == nil {
			return n
		}
	}
	return 0
}

// specOfTask is the spec an older task runs (its labels), the service's otherwise.
func specOfTask(t swarm.Task, fallback drivers.DynoSpec) drivers.DynoSpec {
	if cs := t.Spec.ContainerSpec; cs != nil {
		if spec, err := specOf(swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: cs.Labels}, TaskTemplate: t.Spec}); err == nil {
			return spec
		}
	}
	return fallback
}
