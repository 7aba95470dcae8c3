package supervisor

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

// Queue decouples the supervisors from the reader of Driver.Events: Push never
// blocks; one goroutine (Run) owns the delivery and is the only one that can block
// on it. A driver makes one, runs Run until Close and returns Out as its Events.
type Queue struct {
	log    *slog.Logger
	out    chan drivers.Event
	signal chan struct{}

	mu      sync.Mutex
	queue   []drivers.Event
	dropped int
}

// NewQueue returns an empty queue; log tells of dropped events (nil discards).
func NewQueue(log *slog.Logger) *Queue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{log: log, out: make(chan drivers.Event), signal: make(chan struct{}, 1)}
}

// Out is the channel Run delivers to, in order; it is closed when Run returns.
func (q *Queue) Out() <-chan drivers.Event { return q.out }

// Push queues ev without blocking. It is safe for concurrent use.
func (q *Queue) Push(ev drivers.Event) {
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

// Run delivers events in order until ctx ends, then closes Out; events still queued
// then are dropped (the driver is closed, List tells the state on the next start).
func (q *Queue) Run(ctx context.Context) {
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
