package logs

import (
	"context"
	"slices"
	"sync"
)

// tailOverflowText is the notice a tail reader gets before being cut off, in the
// words of Heroku's L11.
const tailOverflowText = "Error L11 (Tail buffer overflow): this tail session fell too far behind the app's log stream and has been closed; reconnect to continue."

// tail is one Tail session.
type tail struct {
	filter Filter
	cut    chan struct{} // closed when offer cuts the reader off

	mu   sync.Mutex // serialises sends: lines of two streams may arrive at once
	ch   chan Line
	done bool // ch is closed
}

// Tail streams the lines that match f: first the newest replay kept lines (none when
// replay <= 0), then every new line as it is published, in order per stream. The
// channel is closed when ctx is done, when the Plex closes, or when the reader falls
// more than Options.TailBuffer lines behind: then it gets a last line (source heroku,
// dyno logplex, "Error L11 (Tail buffer overflow): …") and the channel closes, so a
// slow reader never slows Publish. The caller must either read until the channel is
// closed or cancel ctx.
func (p *Plex) Tail(ctx context.Context, f Filter, replay int) <-chan Line {
	replay = max(replay, 0)
	t := &tail{filter: f, cut: make(chan struct{})}

	// p.mu held for writing: no Publish is half done, so the replay and the live
	// lines meet without a gap or a duplicate.
	p.mu.Lock()
	var history []Line
	if replay > 0 {
		history = p.recentLocked(f, replay)
	}
	// One spare slot for the overflow notice.
	t.ch = make(chan Line, len(history)+p.opts.TailBuffer+1)
	for _, line := range history {
		t.ch <- line
	}
	if p.closed {
		p.mu.Unlock()
		close(t.ch)
		return t.ch
	}
	p.tails[f.App] = append(p.tails[f.App], t)
	p.wg.Add(1)
	p.mu.Unlock()

	go func() {
		defer p.wg.Done()
		select {
		case <-ctx.Done():
		case <-p.ctx.Done():
		case <-t.cut:
		}
		p.mu.Lock()
		p.tails[f.App] = slices.DeleteFunc(p.tails[f.App], func(x *tail) bool { return x == t })
		if len(p.tails[f.App]) == 0 {
			delete(p.tails, f.App)
		}
		p.mu.Unlock()
		t.mu.Lock()
		if !t.done {
			t.done = true
			close(t.ch)
		}
		t.mu.Unlock()
	}()
	return t.ch
}

// offer hands line to the reader, or cuts the reader off when it is too far behind.
// It never blocks: only offer sends on ch, under t.mu, and it keeps one slot free.
func (t *tail) offer(line Line) {
	if !t.filter.Match(line) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	if len(t.ch) < cap(t.ch)-1 {
		t.ch <- line
		return
	}
	t.ch <- Line{
		Time:   line.Time,
		App:    line.App,
		Env:    line.Env,
		Source: SourceHeroku,
		Dyno:   logplexDyno,
		Text:   tailOverflowText,
	}
	t.done = true
	close(t.ch)
	close(t.cut)
}
