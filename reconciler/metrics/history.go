package metrics

import (
	"math"
	"sort"
	"sync"
	"time"
)

// historyMinutes is how far back the daemon keeps one-minute figures (Heroku's
// dashboard shows the last 24 hours).
const historyMinutes = 24 * 60

// latencyBuckets are the upper bounds (seconds) of the current minute's response time
// histogram, about 10 % apart from 1 ms to 60 s, so that a closed minute's p50, p95
// and p99 are within 10 % of the truth at a fixed cost per request.
var latencyBuckets = func() []float64 {
	var out []float64
	for b := 0.001; b < 60; b *= 1.1 {
		out = append(out, b)
	}
	return append(out, 60, math.Inf(1))
}()

// Minute is one app's figures for one minute, as `manifold metrics` and the dashboard
// show them. Times are seconds; memory is bytes, the highest sample of the minute.
type Minute struct {
	// Start is the minute's first instant (UTC).
	Start time.Time `json:"start"`
	// Requests counts responses by status class: "2xx", "3xx", "4xx", "5xx" (and
	// "1xx" for upgrades).
	Requests map[string]uint64 `json:"requests,omitempty"`
	// P50, P95, P99 and Max are the response times (service time) of the minute.
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	// Errors counts router errors by H code.
	Errors map[string]uint64 `json:"errors,omitempty"`
	// MemoryBytes is the largest dyno's resident memory; MemoryLimitBytes its quota.
	MemoryBytes      int64 `json:"memory_bytes,omitempty"`
	MemoryLimitBytes int64 `json:"memory_limit_bytes,omitempty"`
	// Restarts counts dyno crash restarts (crash, R14, R15).
	Restarts uint64 `json:"restarts,omitempty"`
}

// history holds one app's closed minutes (a ring) and the minute in progress.
type history struct {
	mu      sync.Mutex
	minutes []Minute // ring of historyMinutes, oldest first from next
	next    int
	full    bool
	current Minute
	buckets []uint64 // the current minute's latency histogram
	count   uint64
}

func newHistory() *history {
	return &history{minutes: make([]Minute, historyMinutes), buckets: make([]uint64, len(latencyBuckets))}
}

// rollLocked closes the current minute when now is past it.
func (h *history) rollLocked(now time.Time) {
	start := now.UTC().Truncate(time.Minute)
	if h.current.Start.Equal(start) {
		return
	}
	if !h.current.Start.IsZero() {
		h.closeLocked()
	}
	h.current = Minute{Start: start}
	clear(h.buckets)
	h.count = 0
}

func (h *history) closeLocked() {
	m := h.current
	m.P50, m.P95, m.P99 = h.quantileLocked(0.50), h.quantileLocked(0.95), h.quantileLocked(0.99)
	h.minutes[h.next] = m
	h.next++
	if h.next == len(h.minutes) {
		h.next, h.full = 0, true
	}
}

// quantileLocked is the upper bound of the bucket holding quantile q, capped at the
// minute's maximum.
func (h *history) quantileLocked(q float64) float64 {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	seen := uint64(0)
	for i, n := range h.buckets {
		seen += n
		if seen >= rank {
			return min(latencyBuckets[i], h.current.Max)
		}
	}
	return h.current.Max
}

func (h *history) request(now time.Time, class string, code string, seconds float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rollLocked(now)
	if h.current.Requests == nil {
		h.current.Requests = map[string]uint64{}
	}
	h.current.Requests[class]++
	if code != "" {
		if h.current.Errors == nil {
			h.current.Errors = map[string]uint64{}
		}
		h.current.Errors[code]++
	}
	h.buckets[sort.SearchFloat64s(latencyBuckets, seconds)]++
	h.count++
	h.current.Max = max(h.current.Max, seconds)
}

func (h *history) memory(now time.Time, rss, limit int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rollLocked(now)
	if rss > h.current.MemoryBytes {
		h.current.MemoryBytes, h.current.MemoryLimitBytes = rss, limit
	}
}

func (h *history) restart(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rollLocked(now)
	h.current.Restarts++
}

// since returns the closed minutes from since on and the minute in progress, oldest
// first. Minutes with no figure are left out.
func (h *history) since(now, since time.Time) []Minute {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rollLocked(now)
	var out []Minute
	n := h.next
	if h.full {
		n = len(h.minutes)
	}
	for i := range n {
		j := i
		if h.full {
			j = (h.next + i) % len(h.minutes)
		}
		if m := h.minutes[j]; !m.Start.Before(since) {
			out = append(out, cloneMinute(m))
		}
	}
	current := h.current
	current.P50, current.P95, current.P99 = h.quantileLocked(0.50), h.quantileLocked(0.95), h.quantileLocked(0.99)
	return append(out, cloneMinute(current))
}

func cloneMinute(m Minute) Minute {
	if m.Requests != nil {
		requests := make(map[string]uint64, len(m.Requests))
		for k, v := range m.Requests {
			requests[k] = v
		}
		m.Requests = requests
	}
	if m.Errors != nil {
		errs := make(map[string]uint64, len(m.Errors))
		for k, v := range m.Errors {
			errs[k] = v
		}
		m.Errors = errs
	}
	return m
}
