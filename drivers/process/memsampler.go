package process

import (
	"context"
	"sync"
	"time"
)

// memSampler runs the memory sample of every watched process group on one ticker:
// idle dynos cost one wakeup (and one /proc scan, memScanner) per MemoryInterval in
// all, not a timer and a wakeup each.
type memSampler struct {
	interval time.Duration

	mu      sync.Mutex
	samples map[*memSample]struct{}
}

// memSample is one group's sample function. It runs on the sampler's goroutine only,
// so what it keeps between samples needs no lock; it returns true to stop sampling
// (done is closed then).
type memSample struct {
	sample func() (stop bool)
	done   chan struct{}
}

func newMemSampler(interval time.Duration) *memSampler {
	return &memSampler{interval: interval, samples: make(map[*memSample]struct{})}
}

// add samples with sample from the next tick on, until sample returns true or remove.
func (s *memSampler) add(sample func() (stop bool)) *memSample {
	ms := &memSample{sample: sample, done: make(chan struct{})}
	s.mu.Lock()
	s.samples[ms] = struct{}{}
	s.mu.Unlock()
	return ms
}

// remove stops sampling; a sample running right now still finishes.
func (s *memSampler) remove(ms *memSample) {
	s.mu.Lock()
	delete(s.samples, ms)
	s.mu.Unlock()
}

// run ticks until ctx ends, calling every sample on each tick.
func (s *memSampler) run(ctx context.Context) {
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	var due []*memSample
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		s.mu.Lock()
		due = due[:0]
		for ms := range s.samples {
			due = append(due, ms)
		}
		s.mu.Unlock()
		for _, ms := range due {
			if ctx.Err() != nil {
				return
			}
			if ms.sample() {
				s.remove(ms)
				close(ms.done)
			}
		}
		clear(due) // keep no finished sample alive until the next tick
	}
}

// everySample runs sample on the driver's one sampler until it returns true or ctx
// ends (supervisor.MemoryConfig.Every): the caller's goroutine only waits.
func (d *Driver) everySample(ctx context.Context, sample func() (stop bool)) {
	ms := d.sampler.add(sample)
	defer d.sampler.remove(ms)
	select {
	case <-ctx.Done():
	case <-ms.done:
	}
}
