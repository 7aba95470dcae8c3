package router

import (
	"math/rand/v2"
	"sync/atomic"
)

// backend is the router's live state for one dyno address. It outlives table swaps
// while the address stays in the table, so outstanding counts and quarantine carry
// over; a request holds its own pointer, so a removed dyno's requests finish and
// release their slot on the state they took it from.
type backend struct {
	Backend
	// outstanding counts requests sent to this dyno and not yet complete.
	outstanding atomic.Int64
	// quarantineUntil is the clock's UnixNano until which the dyno is skipped
	// because it refused a connection; zero when healthy.
	quarantineUntil atomic.Int64
	// pool holds the keep-alive connections to the dyno.
	pool connPool
}

// quarantined reports whether the dyno is skipped at time now (UnixNano).
func (b *backend) quarantined(now int64) bool {
	return b.quarantineUntil.Load() > now
}

// tryAcquire takes a request slot on the dyno if it has fewer than limit outstanding
// requests (limit <= 0: unlimited).
func (b *backend) tryAcquire(limit int64) bool {
	if limit <= 0 {
		b.outstanding.Add(1)
		return true
	}
	for {
		n := b.outstanding.Load()
		if n >= limit {
			return false
		}
		if b.outstanding.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// app is the router's live state for one app and environment; it outlives table
// swaps so the backlog bound holds across deploys.
type app struct {
	name, env string
	// metrics records the app's requests (nil without Options.Metrics).
	metrics RequestMetrics
	// waiting counts requests queued because every dyno was at its concurrency limit.
	waiting atomic.Int64
	// wake gets a token whenever a request of the app finishes while others wait.
	wake chan struct{}
}

// release returns a request slot on b and wakes one waiting request of the app.
func (a *app) release(b *backend) {
	b.outstanding.Add(-1)
	if a.waiting.Load() > 0 {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// route is a Route with the live states of its app and dynos.
type route struct {
	*Route
	app      *app
	backends []*backend
}

// tried is the set of backends a request already tried (by index), so a retry after a
// refused connection goes elsewhere. Routes with more than 64 dynos share bits, which
// only makes the retry skip a few more dynos.
type tried uint64

func (t tried) has(i int) bool { return t&(1<<(uint(i)&63)) != 0 }
func (t *tried) add(i int)     { *t |= 1 << (uint(i) & 63) }

// pick chooses a dyno by power of two choices on outstanding requests, skipping
// quarantined and already tried dynos, and takes a slot on it. It returns -1 when no
// dyno can take the request now: all at the concurrency limit (the caller waits) or
// all tried.
func (rt *route) pick(now int64, limit int64, done tried) int {
	n := len(rt.backends)
	switch n {
	case 0:
		return -1
	case 1:
		if done.has(0) || !rt.backends[0].tryAcquire(limit) {
			return -1
		}
		return 0
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	bi, bj := rt.backends[i], rt.backends[j]
	okI := !done.has(i) && !bi.quarantined(now)
	okJ := !done.has(j) && !bj.quarantined(now)
	first, second := -1, -1
	switch {
	case okI && okJ:
		if bj.outstanding.Load() < bi.outstanding.Load() {
			first, second = j, i
		} else {
			first, second = i, j
		}
	case okI:
		first = i
	case okJ:
		first = j
	}
	if first >= 0 && rt.backends[first].tryAcquire(limit) {
		return first
	}
	if second >= 0 && rt.backends[second].tryAcquire(limit) {
		return second
	}
	// Both choices were unusable: scan for the least loaded usable dyno, then, when
	// every untried dyno is quarantined, try the quarantined ones anyway (one may be
	// back, and refusing is what a retry would have found).
	for _, skipQuarantined := range [2]bool{true, false} {
		best := -1
		var bestLoad int64
		for k, b := range rt.backends {
			if done.has(k) || (skipQuarantined && b.quarantined(now)) {
				continue
			}
			if load := b.outstanding.Load(); best < 0 || load < bestLoad {
				best, bestLoad = k, load
			}
		}
		if best < 0 {
			continue
		}
		if rt.backends[best].tryAcquire(limit) {
			return best
		}
		// The least loaded is at the limit: so is every other dyno, near enough.
		return -1
	}
	return -1
}

// table is a Table with live states, swapped in as one pointer.
type table struct {
	hosts map[string]*route
}
