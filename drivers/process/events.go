package process

import (
	"context"
	"log/slog"
	"sync"

	"github.com/manifold-paas/manifold/drivers"
)

// maxQueuedEvents bounds the event queue when nobody reads Events at all (a CLI, a
// test): past it the oldest event is dropped and the drop logged. A reconciler that
// reads, however slowly, never loses one: a dyno changes state a few times a minute
// at most, so the bound is hours of backlog.
const maxQueuedEvents = 10000

// eventQueue decouples the supervisors from the reader of Events: push never blocks;
// one goroutine (run) owns the delivery and is the only one that can block on it.
type eventQueue struct {
	log    *slog.Logger
	out    chan drivers.Event
	signal chan struct{}

	mu      sync.Mutex
	queue   []drivers.Event
	dropped int
}

func newEventQueue(log *slog.Logger) *eventQueue {
	return &eventQueue{log: log, out: make(chan drivers.Event), signal: make(chan struct{}, 1)}
}

func (q *eventQueue) push(ev drivers.Event) {
	q.mu.Lock()
	if len(q.queue) >= maxQueuedEvents {
		q.queue = q.queue[1:]
		q.dropped++
		if q.dropped == 1 || q.dropped%1000 == 0 {
			q.log.Warn("dyno event queue full: dropping the oldest events (nobody reads Events?)", "dropped", q.dropped)
		}
	}
	q.queue = append(q.queue, ev)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run delivers events in order until ctx ends, then closes the channel; events still
// queued then are dropped (the driver is closed, List tells the state on the next start).
func (q *eventQueue) run(ctx context.Context) {
	defer close(q.out)
	for {
		q.mu.Lock()
		var next drivers.Event
		have := len(q.queue) > 0
		if have {
			next = q.queue[0]
			q.queue[0] = drivers.Event{}
			q.queue = q.queue[1:]
		}
		q.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
				return
			case <-q.signal:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case q.out <- next:
		}
	}
}
