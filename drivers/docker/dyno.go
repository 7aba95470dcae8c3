package docker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// dyno is the driver's record of one dyno. A supervisor goroutine owns its life
// (boot check, crash restarts, replacement); the fields under "guarded by Driver.mu"
// are read by List and Stop.
type dyno struct {
	spec drivers.DynoSpec
	// ctx is cancelled by Stop (and by Close through the driver's context); the
	// supervisor returns when it is done.
	ctx    context.Context
	cancel context.CancelFunc
	// kick asks the supervisor to inspect the container now (an engine event or a
	// relist saw it change); capacity 1, sends never block.
	kick chan struct{}
	// done is closed when the supervisor returns.
	done chan struct{}
	// stopMu serialises Stop calls on the dyno.
	stopMu sync.Mutex

	// guarded by Driver.mu
	id             string // current container id
	container      string // current container name
	volume         string // slug volume the current container mounts, if any
	state          drivers.State
	addr           string
	startedAt      time.Time
	stateChangedAt time.Time
	restarts       int
	crashes        int // consecutive crashes, for the cool-off
	reason         string
	logDone        chan struct{} // closed when the current log follower ends
	removed        bool          // stopped and removed by Stop
}

func (d *Driver) newDyno(spec drivers.DynoSpec, id, name string, state drivers.State) *dyno {
	ctx, cancel := context.WithCancel(d.ctx)
	now := time.Now()
	return &dyno{
		spec:           spec,
		ctx:            ctx,
		cancel:         cancel,
		kick:           make(chan struct{}, 1),
		done:           make(chan struct{}),
		id:             id,
		container:      name,
		state:          state,
		startedAt:      now,
		stateChangedAt: now,
	}
}

// snapshotLocked returns the dyno as drivers report it; the caller holds Driver.mu.
func (dy *dyno) snapshotLocked() drivers.Dyno {
	return drivers.Dyno{
		ID:             dy.id,
		Spec:           dy.spec,
		Name:           dy.spec.Name(),
		State:          dy.state,
		Addr:           dy.addr,
		StartedAt:      dy.startedAt,
		StateChangedAt: dy.stateChangedAt,
		Restarts:       dy.restarts,
		Reason:         dy.reason,
	}
}

func (d *Driver) snapshot(dy *dyno) drivers.Dyno {
	d.mu.Lock()
	defer d.mu.Unlock()
	return dy.snapshotLocked()
}

// kickDyno wakes the supervisor without blocking.
func (dy *dyno) kickNow() {
	select {
	case dy.kick <- struct{}{}:
	default:
	}
}

// setState moves the dyno to a new state, logs `State changed from X to Y` (source
// heroku) and emits the Event.
func (d *Driver) setState(dy *dyno, to drivers.State, code, reason string) {
	d.mu.Lock()
	from := dy.state
	if from == to {
		d.mu.Unlock()
		return
	}
	dy.state = to
	dy.stateChangedAt = time.Now()
	if to == drivers.StateCrashed {
		dy.reason = reason
	} else if to == drivers.StateUp {
		dy.reason = ""
	}
	snap := dy.snapshotLocked()
	d.mu.Unlock()
	d.platform(dy.spec, dy.spec.Name(), fmt.Sprintf("State changed from %s to %s", from, to))
	d.events.push(drivers.Event{Dyno: snap, From: from, To: to, Code: code})
}

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
	dy.removed = true
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

// eventQueue buffers events without bound so that emitting never blocks; one
// goroutine delivers them in order to out.
type eventQueue struct {
	mu     sync.Mutex
	items  []drivers.Event
	signal chan struct{}
	out    chan drivers.Event
}

func newEventQueue() *eventQueue {
	return &eventQueue{signal: make(chan struct{}, 1), out: make(chan drivers.Event, 64)}
}

func (q *eventQueue) push(ev drivers.Event) {
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) deliver(ctx context.Context) {
	for {
		q.mu.Lock()
		batch := q.items
		q.items = nil
		q.mu.Unlock()
		for _, ev := range batch {
			select {
			case q.out <- ev:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return
		}
	}
}
