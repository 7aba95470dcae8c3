package logs

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults of Options, as Heroku's logplex sizes them.
const (
	DefaultRingLines      = 1500
	DefaultMaxLineBytes   = 10 * 1024
	DefaultDrainBuffer    = 1024
	DefaultTailBuffer     = 1024
	DefaultReportInterval = time.Second
	DefaultMaxBackoff     = 10 * time.Second
	DefaultIOTimeout      = 10 * time.Second
)

// Dyno and source of the lines the logplex writes about itself (L10, L11).
const logplexDyno = "logplex"

// Options configure a Plex. The zero value gives Heroku's sizes.
type Options struct {
	// RingLines is how many of the newest lines each app and environment keeps for
	// Recent and for Tail's replay. Default 1500.
	RingLines int
	// MaxLineBytes is the longest line text kept; longer texts are cut and end with
	// " [line truncated: N bytes]" (N = the original length). Default 10 KB.
	MaxLineBytes int
	// DrainBuffer is how many lines a drain holds while its receiver is slow or down
	// before it drops (and reports L10). Default 1024.
	DrainBuffer int
	// ReportInterval is the least time between two L10 lines of one drain, so that a
	// drain that stays down does not flood the app's stream with its own reports.
	// Default 1 s.
	ReportInterval time.Duration
	// TailBuffer is how many lines a Tail reader may fall behind before it is cut off
	// (L11). Default 1024.
	TailBuffer int
	// MaxBackoff caps the wait between a drain's reconnects and retries; the wait
	// starts at 100 ms and doubles. Default 10 s.
	MaxBackoff time.Duration
	// IOTimeout bounds one dial, one write of a syslog drain and one HTTPS POST.
	// Default 10 s.
	IOTimeout time.Duration
	// Logger receives the daemon's own log (drain errors), not the apps' lines.
	// Default slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.RingLines <= 0 {
		o.RingLines = DefaultRingLines
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.DrainBuffer <= 0 {
		o.DrainBuffer = DefaultDrainBuffer
	}
	if o.ReportInterval <= 0 {
		o.ReportInterval = DefaultReportInterval
	}
	if o.TailBuffer <= 0 {
		o.TailBuffer = DefaultTailBuffer
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = DefaultIOTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Plex is the logplex: a bounded stream per app and environment, tail sessions and
// drains. All methods are safe for concurrent use. Publish never waits for a reader
// or a receiver: only short in-memory critical sections stand between a dyno's line
// and its return.
type Plex struct {
	opts   Options
	ctx    context.Context // cancelled by Close; every goroutine watches it
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Plex starts

	// mu guards the maps and closed. Publish holds it for reading for its whole
	// run, so a writer (a new stream, SetDrains, a new tail) sees no line half
	// published: that is what lets Tail replay and then stream without a gap.
	mu      sync.RWMutex
	closed  bool
	streams map[streamKey]*stream
	tails   map[string][]*tail // by app; "" holds the tails of every app
}

type streamKey struct{ app, env string }

// stream is one app and environment: its ring and its drains.
type stream struct {
	mu     sync.Mutex // guards ring, next, full; orders lines among ring, drains, tails
	ring   []Line
	next   int  // where the next line goes
	full   bool // ring has wrapped: ring[next] is the oldest
	drains []*drain
}

// New returns a running Plex. Close stops it.
func New(opts Options) *Plex {
	ctx, cancel := context.WithCancel(context.Background())
	return &Plex{
		opts:    opts.withDefaults(),
		ctx:     ctx,
		cancel:  cancel,
		streams: map[streamKey]*stream{},
		tails:   map[string][]*tail{},
	}
}

// Publish adds line to its app's stream, its tails and its drains. It never blocks
// on a reader or a receiver and is safe to call from many goroutines. A zero Time
// is set to now; Time is cut to microseconds; a text longer than MaxLineBytes is
// cut and says so. After Close it does nothing.
func (p *Plex) Publish(line Line) {
	p.publish(line, nil)
}

// publish adds line to its stream's ring and tails, and to every drain of the stream,
// or only to `only` when set (a drain's own L10 line).
func (p *Plex) publish(line Line, only *drain) {
	line = p.normalize(line)
	key := streamKey{line.App, line.Env}

	p.mu.RLock()
	s := p.streams[key]
	if s == nil && !p.closed {
		p.mu.RUnlock()
		p.mu.Lock()
		s = p.streamLocked(key)
		p.mu.Unlock()
		p.mu.RLock()
	}
	defer p.mu.RUnlock()
	if p.closed {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring[s.next] = line
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	for _, d := range s.drains {
		if only == nil || d == only {
			d.offer(line)
		}
	}
	for _, t := range p.tails[line.App] {
		t.offer(line)
	}
	if line.App != "" { // the tails of every app; "" was just served above
		for _, t := range p.tails[""] {
			t.offer(line)
		}
	}
}

// streamLocked returns the stream of key, creating it. p.mu must be held for writing.
func (p *Plex) streamLocked(key streamKey) *stream {
	s := p.streams[key]
	if s == nil {
		s = &stream{ring: make([]Line, p.opts.RingLines)}
		p.streams[key] = s
	}
	return s
}

// normalize sets the time and cuts an overlong text.
func (p *Plex) normalize(line Line) Line {
	if line.Time.IsZero() {
		line.Time = p.opts.Now()
	}
	line.Time = line.Time.Truncate(time.Microsecond)
	if len(line.Text) > p.opts.MaxLineBytes {
		line.Text = truncateText(line.Text, p.opts.MaxLineBytes)
	}
	return line
}

// truncateText cuts text so that, with its notice, it fits in max bytes, on a rune
// boundary so that the kept part stays valid UTF-8 if it was.
func truncateText(text string, max int) string {
	suffix := " [line truncated: " + strconv.Itoa(len(text)) + " bytes]"
	keep := max - len(suffix)
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(text[keep]) {
		keep--
	}
	return text[:keep] + suffix
}

// snapshot appends the ring's lines that match f, oldest first. s.mu must be held.
func (s *stream) snapshot(dst []Line, f Filter) []Line {
	if s.full {
		for _, l := range s.ring[s.next:] {
			if f.Match(l) {
				dst = append(dst, l)
			}
		}
	}
	for _, l := range s.ring[:s.next] {
		if f.Match(l) {
			dst = append(dst, l)
		}
	}
	return dst
}

// Recent returns the newest n kept lines that match f, oldest first (all kept lines
// when n <= 0). With f.Env or f.App empty, streams are merged by time.
func (p *Plex) Recent(f Filter, n int) []Line {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.recentLocked(f, n)
}

// recentLocked is Recent with p.mu held (for reading or writing).
func (p *Plex) recentLocked(f Filter, n int) []Line {
	var lines []Line
	streams := 0
	for key, s := range p.streams {
		if (f.App != "" && key.app != f.App) || (f.Env != "" && key.env != f.Env) {
			continue
		}
		s.mu.Lock()
		lines = s.snapshot(lines, f)
		s.mu.Unlock()
		streams++
	}
	if streams > 1 {
		slices.SortStableFunc(lines, func(a, b Line) int { return a.Time.Compare(b.Time) })
	}
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// Close stops every drain and tail and waits for their goroutines. Lines still
// buffered in drains are lost. Publish after Close does nothing.
func (p *Plex) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cancel()
	p.mu.Unlock()
	p.wg.Wait()
}
