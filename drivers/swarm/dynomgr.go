package swarm

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// Swarm runs the dynos' lives (restarts, health checks, stops); this file words what
// the listing sees of them as Heroku's dyno manager does, with drivers/supervisor's
// lines, in the supervisor's order.

// crashLines are the lines that tell why a dyno crashed, before "State changed … to
// crashed": as the supervisor says them for R10 (Swarm kills a task whose health
// check still fails after the boot timeout: status 137), R15 (the kernel's OOM kill)
// and an exit.
func (d *Driver) crashLines(dyno drivers.Dyno) []string {
	switch dyno.Reason {
	case supervisor.ReasonR10:
		// With a health check path, Swarm's check covers both the bind and the
		// answer, and does not say which failed: worded as the answer.
		hc := dyno.Spec.HealthCheck
		return []string{supervisor.R10(d.opts.BootTimeout, hc != "", hc), supervisor.MsgKill, supervisor.Exited(supervisor.Exit{Code: 137})}
	case supervisor.MsgR15:
		return []string{supervisor.MsgR15, supervisor.Exited(supervisor.Exit{Code: 137})}
	}
	return []string{dyno.Reason}
}

// stopping is a dyno that left the listing while its node is up: Swarm stops its
// task (a scale-down, a rolling update, a drain). It is down for the router at once;
// the lines of its end follow once the listing shows the task ended.
type stopping struct {
	dyno  drivers.Dyno // as it left the listing, State down
	from  drivers.State
	began time.Time
	// own is the task the dyno ran at the last listing; task is the stopping task
	// that stands for the dyno once one is listed (often own, see bindStop).
	own, task string
}

// stopLimit is how long a stop is followed past its grace before its end is told as
// unknown (its node went away meanwhile).
const stopLimit = time.Minute

// stopStarted tells a dyno that left the listing as the supervisor tells a stop:
// "Stopping all processes with SIGTERM" now, with the down event (so that the
// router drops it); the exit and the state change once its task ended
// (finishStops). It is false when the dyno's task is on a node that is down, is
// gone or failed: the caller tells the dyno down at once.
func (d *Driver) stopStarted(obs observed, prev map[string]string, gone drivers.Dyno, from drivers.State) bool {
	own := ""
	for id, dyno := range prev {
		if dyno == gone.ID {
			own = id
		}
	}
	t, listed := findTask(obs, own)
	if !listed || from == drivers.StateCrashed || failed(t) {
		return false // gone, or it ended on its own: not a stop
	}
	if node, ok := obs.nodes[t.NodeID]; !ok || node.Status.State != swarm.NodeStateReady {
		return false
	}
	// Said before the stop is recorded: followStops may tell its end at once.
	d.platform(gone.Spec, gone.Name, supervisor.MsgTerm)
	d.events.Push(drivers.Event{Dyno: gone, From: from, To: drivers.StateDown})
	d.mu.Lock()
	d.stops[gone.ID] = &stopping{dyno: gone, from: from, began: time.Now(), own: own}
	d.mu.Unlock()
	return true
}

// bindStop finds the task that stands for a stopping dyno: a task that a dyno of the
// same service and release ran, that Swarm stops (or stopped) on purpose and that no
// other stop took, the dyno's own first. It is not always its own: after a scale-down
// names follow the remaining slots (web.3 leaves while web.2's task stops), and the
// listing may see the replicas lowered before Swarm picked the task. Called with
// d.mu held.
func (d *Driver) bindStop(obs observed, st *stopping) {
	service, release, _, _ := parseDynoID(st.dyno.ID)
	prefix := strings.TrimSuffix(dynoID(service, release, 0), "0")
	taken := map[string]bool{}
	for _, other := range d.stops {
		taken[other.task] = true
	}
	for _, tasks := range obs.tasks {
		for _, t := range tasks {
			ran, was := d.ran[t.ID]
			if !was || taken[t.ID] || !strings.HasPrefix(ran, prefix) || !stoppedOnPurpose(t) {
				continue
			}
			if st.task == "" || t.ID == st.own {
				st.task = t.ID
			}
		}
	}
}

// stoppedOnPurpose says whether Swarm wants a task shut down (or removed) and it did
// not fail on its own.
func stoppedOnPurpose(t swarm.Task) bool {
	return (t.DesiredState == swarm.TaskStateShutdown || t.DesiredState == swarm.TaskStateRemove) && !failed(t)
}

// findTask is the listed task with that ID.
func findTask(obs observed, id string) (swarm.Task, bool) {
	for _, tasks := range obs.tasks {
		for _, t := range tasks {
			if t.ID == id {
				return t, true
			}
		}
	}
	return swarm.Task{}, false
}

// finishStops tells the end of every stopping dyno whose task the listing shows
// ended: R12 when Swarm had to SIGKILL it after the grace (status 137), then its
// exit and "State changed from up to down", as the supervisor's stop. It also keeps
// d.ran, the tasks that dynos ran, for bindStop.
func (d *Driver) finishStops(obs observed, names map[string]taskName) {
	type ended struct {
		stopping
		exit supervisor.Exit
	}
	var done []ended
	d.mu.Lock()
	listed := map[string]swarm.Task{}
	for _, tasks := range obs.tasks {
		for _, t := range tasks {
			listed[t.ID] = t
		}
	}
	for id := range d.ran {
		if _, ok := listed[id]; !ok {
			delete(d.ran, id)
		}
	}
	for id, n := range names {
		if n.current {
			d.ran[id] = n.dyno
		}
	}
	for id, st := range d.stops {
		if st.task == "" {
			d.bindStop(obs, st)
		}
		t, ok := listed[st.task]
		_, ownListed := listed[st.own]
		switch {
		case ok && stopEnded(t):
			exit := supervisor.Exit{Unknown: "Swarm did not say"}
			if cs := t.Status.ContainerStatus; cs != nil {
				exit = supervisor.Exit{Code: cs.ExitCode}
			}
			done = append(done, ended{*st, exit})
		case (st.task == "" && !ownListed) || (st.task != "" && !ok):
			// Swarm deletes a scaled-down task soon after it stopped, at times
			// before any listing saw it stopped. Gone only after the whole grace,
			// it was killed then (Swarm's SIGKILL: 137); sooner, it exited on its
			// own with a status nobody listed.
			exit := supervisor.Exit{Unknown: "its task was removed before its end was listed"}
			if time.Since(st.began) >= d.fullGrace(st.dyno.Spec) {
				exit = supervisor.Exit{Code: 137}
			}
			done = append(done, ended{*st, exit})
		case time.Since(st.began) > d.fullGrace(st.dyno.Spec)+stopLimit:
			done = append(done, ended{*st, supervisor.Exit{Unknown: "its task's end was not listed"}})
		default:
			continue
		}
		delete(d.stops, id)
	}
	d.mu.Unlock()
	for _, e := range done {
		spec, name := e.dyno.Spec, e.dyno.Name
		code := ""
		if e.exit.Unknown == "" && e.exit.Code == 137 {
			// Nobody but Swarm, past the grace, sends a stopping task SIGKILL.
			code = "R12"
			d.platform(spec, name, supervisor.R12(stopGrace(spec)))
			d.platform(spec, name, supervisor.MsgKillRemaining)
		}
		d.platform(spec, name, supervisor.Exited(e.exit))
		d.platform(spec, name, supervisor.StateChanged(e.from, drivers.StateDown))
		if code != "" {
			d.events.Push(drivers.Event{Dyno: e.dyno, From: drivers.StateDown, To: drivers.StateDown, Code: code})
		}
	}
}

// stopEnded says whether a task's container is gone for good.
func stopEnded(t swarm.Task) bool {
	switch t.Status.State {
	case swarm.TaskStateShutdown, swarm.TaskStateComplete, swarm.TaskStateFailed,
		swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return true
	}
	return false
}

// stopGrace is the time a dyno's process has after SIGTERM: the spec's stop timeout
// (the drain of a web task comes before the SIGTERM reaches it).
func stopGrace(spec drivers.DynoSpec) time.Duration {
	if spec.StopTimeout > 0 {
		return spec.StopTimeout
	}
	return defaultStopGrace
}

// fullGrace is the time Swarm gives a stopping task before SIGKILL: the drain of a
// web task, then the stop timeout.
func (d *Driver) fullGrace(spec drivers.DynoSpec) time.Duration {
	if spec.Type == "web" {
		return d.drainDelay() + stopGrace(spec)
	}
	return stopGrace(spec)
}

// stopListInterval is how often followStops lists while a stop is pending: Swarm
// deletes a scaled-down task about 250 ms after it stopped, and a listing every
// 200 ms missed that window now and then on a quiet machine (the exit status then
// unknown).
const stopListInterval = 50 * time.Millisecond

// followStops lists every stopListInterval while a stop is pending, until ctx ends:
// a stopped task may be deleted soon after (a scale-down's), and the watch loop's
// listing (RelistInterval apart) would miss how it ended.
func (d *Driver) followStops(ctx context.Context) {
	tick := time.NewTicker(stopListInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.mu.Lock()
		pending := len(d.stops)
		d.mu.Unlock()
		if pending == 0 {
			continue
		}
		obs, err := d.observe(ctx)
		if err != nil {
			continue // the watch loop says so
		}
		d.finishStops(obs, nil)
	}
}

// currentTasks maps the task each listed dyno runs now to the dyno's ID.
func currentTasks(names map[string]taskName) map[string]string {
	out := make(map[string]string, len(names))
	for id, n := range names {
		if n.current {
			out[id] = n.dyno
		}
	}
	return out
}
