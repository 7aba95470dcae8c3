package logs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"
)

const (
	// firstBackoff is the first wait after a failed connect or send; it doubles up to
	// Options.MaxBackoff.
	firstBackoff = 100 * time.Millisecond
	// l10Time is the "since" timestamp of L10, as Heroku writes it (seconds).
	l10Time = "2006-01-02T15:04:05-07:00"
)

// DrainConfig is one drain of an app in an environment (spec.Drain with its CA file
// read).
type DrainConfig struct {
	// Name identifies the drain within the app and environment.
	Name string
	// URL is syslog+tcp://host:port, syslog+tls://host:port (syslog:// is an alias of
	// syslog+tcp://) or https://… (userinfo becomes HTTP basic auth).
	URL string
	// CAPEM holds PEM certificates of private CAs the receiver's certificate may chain
	// to (syslog+tls and https). Empty means the system roots.
	CAPEM []byte
}

func (c DrainConfig) equal(o DrainConfig) bool {
	return c.Name == o.Name && c.URL == o.URL && bytes.Equal(c.CAPEM, o.CAPEM)
}

// DrainStats are the counters of one drain, of the app's lines (the drain's own L10
// lines are not counted). Published == Sent + Dropped + Buffered at any instant, and
// once a drain is idle, Dropped - Rejected is exactly the sum of the L10 counts it
// delivered.
type DrainStats struct {
	App  string `json:"app"`
	Env  string `json:"env"`
	Name string `json:"name"`
	// URL has any password redacted.
	URL string `json:"url"`
	// Token is the Logplex-Drain-Token sent with HTTPS batches.
	Token string `json:"token"`
	// Published counts the lines handed to the drain.
	Published uint64 `json:"published"`
	// Sent counts the lines the receiver took (written to the socket, or in a batch
	// answered 2xx).
	Sent uint64 `json:"sent"`
	// Dropped counts the lines lost: buffer overflow (reported as L10) plus Rejected.
	Dropped uint64 `json:"dropped"`
	// Rejected counts lines of HTTPS batches answered 4xx (not retried).
	Rejected uint64 `json:"rejected"`
	// Retries counts failed connects, writes and POSTs that were retried.
	Retries uint64 `json:"retries"`
	// Reported counts the drops the drain's delivered L10 lines told of.
	Reported uint64 `json:"reported"`
	// Buffered is how many lines wait or are in flight.
	Buffered int `json:"buffered"`
	// Connected is true while a syslog connection is open, or after the last HTTPS
	// batch was accepted.
	Connected bool `json:"connected"`
	// LastError is the last connect, write or POST error, empty after a success.
	LastError string `json:"last_error,omitempty"`
}

// drain forwards one stream to one receiver. Publish offers lines under the stream's
// lock; one goroutine (run) takes them out and sends them.
type drain struct {
	p      *Plex
	app    string
	env    string
	cfg    DrainConfig
	url    *url.URL
	tls    *tls.Config // nil for syslog+tcp
	token  string
	ctx    context.Context // cancelled when the drain is removed or the Plex closes
	cancel context.CancelFunc
	wake   chan struct{} // a line was queued (capacity 1)

	mu           sync.Mutex
	queue        []Line // ring of Options.DrainBuffer lines
	head, count  int
	inflight     int
	reports      int // L10 lines among the queued and in-flight ones
	published    uint64
	reported     uint64
	sent         uint64
	dropped      uint64
	rejected     uint64
	retries      uint64
	connected    bool
	lastErr      string
	pendingDrops uint64    // dropped since the last L10
	dropsSince   time.Time // first drop since the last L10
	lastReport   time.Time
}

// SetDrains makes the drains of app in env exactly drains: new ones start, removed
// ones stop (their buffered lines are lost), changed ones (URL or CA) restart, and
// unchanged ones keep their buffer, connection and counters, so calling it again
// with the same list changes nothing. If any drain is invalid (scheme, host, port,
// CA, duplicate name) it returns an error naming them and changes nothing.
func (p *Plex) SetDrains(app, env string, drains []DrainConfig) error {
	var errs []error
	seen := map[string]bool{}
	for _, cfg := range drains {
		if seen[cfg.Name] {
			errs = append(errs, fmt.Errorf("drain %q of %s (%s): declared twice", cfg.Name, app, env))
			continue
		}
		seen[cfg.Name] = true
		if _, _, err := parseDrain(cfg); err != nil {
			errs = append(errs, fmt.Errorf("drain %q of %s (%s): %w", cfg.Name, app, env, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("set drains: logplex closed")
	}
	s := p.streamLocked(streamKey{app, env})
	next := make([]*drain, 0, len(drains))
	for _, cfg := range drains {
		i := slices.IndexFunc(s.drains, func(d *drain) bool { return d.cfg.equal(cfg) })
		if i >= 0 {
			next = append(next, s.drains[i])
			continue
		}
		d := p.newDrain(app, env, cfg)
		p.wg.Add(1)
		go d.run()
		next = append(next, d)
	}
	for _, d := range s.drains {
		if !slices.Contains(next, d) {
			d.cancel()
		}
	}
	s.drains = next
	return nil
}

// parseDrain checks a drain's URL and CA and returns them ready to use.
func parseDrain(cfg DrainConfig) (*url.URL, *tls.Config, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("url: %w", err)
	}
	if u.Hostname() == "" {
		return nil, nil, fmt.Errorf("url %s: no host", u.Redacted())
	}
	var tlsConfig *tls.Config
	switch u.Scheme {
	case "syslog", "syslog+tcp", "syslog+tls":
		if u.Port() == "" {
			return nil, nil, fmt.Errorf("url %s: no port (syslog drains need host:port)", u.Redacted())
		}
		if u.Scheme == "syslog+tls" {
			tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		}
	case "https":
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return nil, nil, fmt.Errorf("url %s: scheme %q not supported (syslog+tcp, syslog+tls, https)", u.Redacted(), u.Scheme)
	}
	if len(cfg.CAPEM) > 0 {
		if tlsConfig == nil {
			return nil, nil, fmt.Errorf("url %s: a CA is set but %s does not use TLS", u.Redacted(), u.Scheme)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAPEM) {
			return nil, nil, errors.New("ca: no PEM certificate found")
		}
		tlsConfig.RootCAs = pool
	}
	return u, tlsConfig, nil
}

// newDrain returns a drain ready to run. cfg must have passed parseDrain.
func (p *Plex) newDrain(app, env string, cfg DrainConfig) *drain {
	u, tlsConfig, _ := parseDrain(cfg)
	ctx, cancel := context.WithCancel(p.ctx)
	return &drain{
		p:      p,
		app:    app,
		env:    env,
		cfg:    cfg,
		url:    u,
		tls:    tlsConfig,
		token:  drainToken(app, env, cfg.Name),
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		queue:  make([]Line, p.opts.DrainBuffer),
	}
}

// drainToken is a stable Logplex-Drain-Token: "d." and a UUID-shaped digest of the
// drain's identity, so a receiver sees the same token across restarts.
func drainToken(app, env, name string) string {
	sum := sha256.Sum256([]byte(app + "\x00" + env + "\x00" + name))
	return fmt.Sprintf("d.%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

// DrainStats returns the counters of every drain, ordered by app, env and name.
func (p *Plex) DrainStats() []DrainStats {
	p.mu.RLock()
	var all []DrainStats
	for _, s := range p.streams {
		for _, d := range s.drains { // s.drains changes only under p.mu held for writing
			all = append(all, d.stats())
		}
	}
	p.mu.RUnlock()
	slices.SortFunc(all, func(a, b DrainStats) int {
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Env, b.Env), cmp.Compare(a.Name, b.Name))
	})
	return all
}

func (d *drain) stats() DrainStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return DrainStats{
		App: d.app, Env: d.env, Name: d.cfg.Name, URL: d.url.Redacted(), Token: d.token,
		Published: d.published, Sent: d.sent, Dropped: d.dropped, Rejected: d.rejected,
		Retries: d.retries, Buffered: d.count + d.inflight - d.reports, Connected: d.connected, Reported: d.reported,
		LastError: d.lastErr,
	}
}

// offer queues line. When the buffer is full it drops the oldest queued line, as
// Heroku's logplex does, so that a receiver coming back gets the newest lines; the
// drop is counted for Stats and L10. An evicted L10 line's count is carried into the
// next one, so a receiver that adds up the L10 counts it gets and the lines it gets
// always arrives at what was published. It never blocks.
func (d *drain) offer(line Line) {
	d.mu.Lock()
	if line.dropReport == 0 {
		d.published++
	} else {
		d.reports++
	}
	if d.count == len(d.queue) {
		evicted := d.queue[d.head]
		if evicted.dropReport > 0 {
			d.reports--
			d.addPendingLocked(evicted.dropReport, evicted.dropsSince)
		} else {
			d.dropped++
			d.addPendingLocked(1, d.p.opts.Now())
		}
		d.queue[d.head] = line // the oldest goes; line becomes the newest
		d.head++
		if d.head == len(d.queue) {
			d.head = 0
		}
		d.mu.Unlock()
		return
	}
	i := d.head + d.count
	if i >= len(d.queue) {
		i -= len(d.queue)
	}
	d.queue[i] = line
	d.count++
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// addPendingLocked adds n drops, the first at since, to the next L10 report.
func (d *drain) addPendingLocked(n uint64, since time.Time) {
	if d.pendingDrops == 0 || since.Before(d.dropsSince) {
		d.dropsSince = since
	}
	d.pendingDrops += n
}

// take moves queued lines into batch (which must be empty) until it holds maxLines
// lines or about maxBytes of frames, and marks them in flight.
func (d *drain) take(batch []Line, maxLines, maxBytes int) []Line {
	d.mu.Lock()
	defer d.mu.Unlock()
	size := 0
	for d.count > 0 && len(batch) < maxLines && (len(batch) == 0 || size < maxBytes) {
		line := d.queue[d.head]
		d.queue[d.head] = Line{} // let the text be collected once sent
		d.head++
		if d.head == len(d.queue) {
			d.head = 0
		}
		d.count--
		batch = append(batch, line)
		size += frameOverhead + len(line.Text)
	}
	d.inflight = len(batch)
	return batch
}

// frameOverhead estimates the bytes a frame adds to its text (length, header).
const frameOverhead = 80

// delivered records the outcome of the batch in flight: sent, or rejected by the
// receiver (HTTPS 4xx: dropped, and an L10 line's count goes to the next one).
func (d *drain) delivered(batch []Line, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight = 0
	lines := uint64(0)
	for _, line := range batch {
		switch {
		case line.dropReport == 0:
			lines++
		case ok:
			d.reports--
			d.reported += line.dropReport
		default:
			d.reports--
			d.addPendingLocked(line.dropReport, line.dropsSince)
		}
	}
	if ok {
		d.sent += lines
		d.connected = true
		d.lastErr = ""
	} else {
		d.dropped += lines
		d.rejected += lines
	}
}

// failed records a failed attempt that will be retried.
func (d *drain) failed(err error) {
	d.mu.Lock()
	d.retries++
	d.connected = false
	d.lastErr = err.Error()
	d.mu.Unlock()
	d.p.opts.Logger.Warn("log drain failed; retrying", "app", d.app, "env", d.env, "drain", d.cfg.Name, "url", d.url.Redacted(), "err", err)
}

func (d *drain) setConnected(connected bool) {
	d.mu.Lock()
	d.connected = connected
	if connected {
		d.lastErr = ""
	}
	d.mu.Unlock()
}

// wait blocks until lines are queued (true) or the drain stops (false), reporting
// drops in the meantime. If dead (may be nil) closes first, it calls onDead once and
// goes on waiting.
func (d *drain) wait(dead <-chan struct{}, onDead func()) bool {
	for {
		d.report()
		d.mu.Lock()
		queued, pending := d.count, d.pendingDrops
		d.mu.Unlock()
		if queued > 0 {
			return true
		}
		var tick <-chan time.Time
		var timer *time.Timer
		if pending > 0 {
			timer = time.NewTimer(d.p.opts.ReportInterval)
			tick = timer.C
		}
		select {
		case <-d.ctx.Done():
			return false
		case <-d.wake:
		case <-tick:
		case <-dead:
			onDead()
			dead = nil
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// sleep waits out a back-off (false if the drain stops meanwhile) and returns the
// next one.
func (d *drain) sleep(backoff time.Duration) (time.Duration, bool) {
	d.report()
	// ±20% jitter so that many drains to one dead receiver do not retry in step.
	wait := backoff - backoff/5 + rand.N(backoff*2/5+1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-d.ctx.Done():
		return backoff, false
	case <-timer.C:
	}
	d.report()
	return min(backoff*2, d.p.opts.MaxBackoff), true
}

// report publishes an L10 line if lines were dropped since the last one, at most once
// per Options.ReportInterval: into the app's stream and tails, and into this drain's own
// buffer only (another drain's receiver must not count this drain's drops). It runs
// on the drain's goroutine, never under a lock Publish takes.
func (d *drain) report() {
	now := d.p.opts.Now()
	d.mu.Lock()
	if d.pendingDrops == 0 || (!d.lastReport.IsZero() && now.Sub(d.lastReport) < d.p.opts.ReportInterval) {
		d.mu.Unlock()
		return
	}
	n, since := d.pendingDrops, d.dropsSince
	d.pendingDrops, d.lastReport = 0, now
	d.mu.Unlock()
	d.p.opts.Logger.Warn("log drain buffer overflow", "app", d.app, "env", d.env, "drain", d.cfg.Name, "dropped", n)
	d.p.publish(Line{
		Time:       now,
		App:        d.app,
		Env:        d.env,
		Source:     SourceHeroku,
		Dyno:       logplexDyno,
		Text:       fmt.Sprintf("Error L10 (output buffer overflow): %d messages dropped since %s.", n, since.UTC().Format(l10Time)),
		dropReport: n,
		dropsSince: since,
	}, d)
}

// run is the drain's goroutine.
func (d *drain) run() {
	defer d.p.wg.Done()
	if d.url.Scheme == "https" {
		d.runHTTPS()
	} else {
		d.runSyslog()
	}
}

// dial connects a syslog drain, over TLS for syslog+tls.
func (d *drain) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.p.opts.IOTimeout)
	defer cancel()
	if d.tls != nil {
		dialer := &tls.Dialer{Config: d.tls}
		return dialer.DialContext(ctx, "tcp", d.url.Host)
	}
	var dialer net.Dialer
	return dialer.DialContext(ctx, "tcp", d.url.Host)
}
