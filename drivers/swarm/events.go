package swarm

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Back-off of the event stream's reconnects: a manager that restarts is asked again
// soon, one that stays away not more than every few seconds.
const (
	eventRetryFirst = 100 * time.Millisecond
	eventRetryMax   = 5 * time.Second
)

// followEvents follows the manager's service and node events until ctx ends and asks
// the watch loop to relist at once on each one that concerns the instance: a node
// drained, down or back, a service of the instance created, updated (a scale, a
// release, a rollback) or removed. Swarm managers have no task events, so a task's
// own changes (running, healthy, failed) are still seen by the periodic listing,
// which stays as the backstop for whatever the stream misses. When the stream breaks
// it reconnects with back-off and relists, since events may have been missed.
func (d *Driver) followEvents(ctx context.Context) {
	wait := eventRetryFirst
	for ctx.Err() == nil {
		began := time.Now()
		err := d.streamEvents(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > eventRetryMax {
			wait = eventRetryFirst // it ran for a while: a new break, not the same one
		}
		d.log.Warn("manager event stream broken; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, eventRetryMax)
		d.relistSoon()
	}
}

// streamEvents follows one event stream until it breaks or ctx ends.
func (d *Driver) streamEvents(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ServiceEventType)),
		filters.Arg("type", string(events.NodeEventType)),
	)})
	for {
		select {
		case msg := <-msgs:
			if d.relevant(msg) {
				d.eventsSeen.Add(1)
				d.relistSoon()
			}
		case err := <-errs:
			return err
		}
	}
}

// relevant says whether an event may change the instance's dynos: every node event,
// and the events of the instance's own services (named mf-<instance>-…).
func (d *Driver) relevant(msg events.Message) bool {
	switch msg.Type {
	case events.NodeEventType:
		return true
	case events.ServiceEventType:
		return strings.HasPrefix(msg.Actor.Attributes["name"], "mf-"+d.opts.Instance+"-")
	}
	return false
}

// relistSoon wakes the watch loop without blocking; wakes that come while a listing
// is due anyway fold into it.
func (d *Driver) relistSoon() {
	select {
	case d.relist <- struct{}{}:
	default:
	}
}
