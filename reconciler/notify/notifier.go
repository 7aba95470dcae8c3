package notify

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// Defaults of Options.
const (
	DefaultFoldWindow           = 5 * time.Minute
	DefaultMinBackoff           = time.Second
	DefaultMaxBackoff           = 5 * time.Minute
	DefaultMaxAge               = 24 * time.Hour
	DefaultTimeout              = 10 * time.Second
	DefaultQuietAfter           = 2 * time.Minute
	DefaultRouterErrorWindow    = time.Minute
	DefaultRouterErrorThreshold = 10
	// maxEarlyEvents bounds the events kept before any receiver is known.
	maxEarlyEvents = 1000
	// foldedMemory is how long the count of folded repeats of a plain event waits for
	// the next event of its key.
	foldedMemory = time.Hour
)

// Options configure a Notifier. Path is required.
type Options struct {
	// Path is the queue's bbolt file (<state>/notify.db), created with mode 0600.
	Path string
	// Logs, when set, is watched for router errors (H codes) and L10 lines.
	Logs LogTail
	// Client sends the requests (default: one with Timeout).
	Client  *http.Client
	Timeout time.Duration
	// FoldWindow: repeats of one dedupe key within it are folded into one event.
	FoldWindow time.Duration
	// MinBackoff doubles after each failed attempt of a receiver's head delivery, up to
	// MaxBackoff; a delivery still failing MaxAge after its event is dropped (logged).
	MinBackoff, MaxBackoff, MaxAge time.Duration
	// QuietAfter resolves dyno.memory, drain.dropping and router.errors once they have
	// not been signalled for that long.
	QuietAfter time.Duration
	// RouterErrorThreshold H errors of one code within RouterErrorWindow fire
	// router.errors for an app, unless the configured spec sets its own
	// (manifold.hcl's router_errors block, which has these defaults).
	RouterErrorThreshold int
	RouterErrorWindow    time.Duration
	// Secrets opens receivers' sealed keys and tokens (the daemon's age identity,
	// reconciler/secret.Keyring); nil opens none, so a receiver with one is not used.
	Secrets Opener
	// Tick is how often held and quiet conditions are looked at (default 1 s).
	Tick   time.Duration
	Logger *slog.Logger
}

// Opener opens a sealed value where it was sealed for (reconciler/secret.Keyring).
type Opener interface {
	Open(where secret.Binding, sealed string) (string, error)
}

var _ Opener = (*secret.Keyring)(nil)

// Notifier accepts events, folds repeats, queues each for the receivers that want it
// and delivers the queues. Notify and Configure are safe to call concurrently; Run
// owns the delivery goroutines.
type Notifier struct {
	opts  Options
	log   *slog.Logger
	store *store

	mu        sync.Mutex
	receivers map[string]receiver
	// unusable are the receivers whose sealed key or token does not open, with why:
	// no event is queued for them, and their workers hold their queues until it
	// opens (Configure wakes them to look again).
	unusable   map[string]error
	envs       []string
	configured bool
	early      []Event
	conds      map[string]*condition
	lastSent   map[string]sent
	forge      *forgeStates
	wake       map[string]chan struct{}
	changed    chan struct{}
	// rule is the router error rule of the newest spec, read by the log watch on
	// every router error without taking mu (held across fsyncs).
	rule atomic.Pointer[routerRule]
}

// sent is when a dedupe key was last sent, and how many repeats were folded since.
type sent struct {
	at     time.Time
	folded int
}

// Open opens (or creates) the queue at opts.Path; Run delivers it.
func Open(opts Options) (*Notifier, error) {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: cmpOr(opts.Timeout, DefaultTimeout)}
	}
	opts.FoldWindow = cmpOr(opts.FoldWindow, DefaultFoldWindow)
	opts.MinBackoff = cmpOr(opts.MinBackoff, DefaultMinBackoff)
	opts.MaxBackoff = cmpOr(opts.MaxBackoff, DefaultMaxBackoff)
	opts.MaxAge = cmpOr(opts.MaxAge, DefaultMaxAge)
	opts.QuietAfter = cmpOr(opts.QuietAfter, DefaultQuietAfter)
	opts.RouterErrorWindow = cmpOr(opts.RouterErrorWindow, DefaultRouterErrorWindow)
	opts.Tick = cmpOr(opts.Tick, time.Second)
	if opts.RouterErrorThreshold <= 0 {
		opts.RouterErrorThreshold = DefaultRouterErrorThreshold
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Secrets == nil {
		opts.Secrets = (*secret.Keyring)(nil)
	}
	st, err := openStore(opts.Path)
	if err != nil {
		return nil, err
	}
	receivers, envs, conds, err := st.load()
	if err != nil {
		st.close()
		return nil, err
	}
	n := &Notifier{
		opts: opts, log: opts.Logger, store: st,
		receivers: receivers, envs: envs, conds: conds,
		// Receivers saved by an earlier run: deliver to them before the first pass.
		configured: len(receivers) > 0,
		lastSent:   map[string]sent{},
		forge:      newForgeStates(),
		wake:       map[string]chan struct{}{},
		changed:    make(chan struct{}, 1),
	}
	n.rule.Store(&routerRule{threshold: opts.RouterErrorThreshold, window: opts.RouterErrorWindow})
	n.unusable = n.checkCredentials(receivers)
	for _, id := range slices.Sorted(maps.Keys(n.unusable)) {
		n.log.Error("notification receiver not used: its credential does not open", "receiver", id, "err", n.unusable[id])
	}
	for id := range receivers {
		n.wake[id] = make(chan struct{}, 1)
	}
	return n, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close closes the queue; call it after Run has returned.
func (n *Notifier) Close() error { return n.store.close() }

// Configure sets the receivers from a spec that loaded: the platform's notify blocks
// (every event) and each app's (its events), and the router error rule. The queues
// of receivers no longer named are dropped. Events that arrived before the first
// Configure of a fresh queue are queued now. A receiver whose sealed key or token
// does not open is not used (logged once, when the receivers change); the error
// returned names each, with its file:line:col, never a value.
func (n *Notifier) Configure(desired *spec.Desired) error {
	receivers := map[string]receiver{}
	for _, nb := range desired.Platform.Notify {
		id := "platform/" + nb.Name
		receivers[id] = receiver{ID: id, Notify: nb}
	}
	for _, app := range desired.Apps {
		for _, nb := range app.Notify {
			id := path.Join("app", app.Env, app.Name, nb.Name)
			receivers[id] = receiver{ID: id, App: app.Name, Env: app.Env, Notify: nb}
		}
	}
	n.rule.Store(n.ruleOf(desired.Platform.RouterErrors))
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.configured && maps.EqualFunc(receivers, n.receivers, equalReceiver) && slices.Equal(desired.Environments, n.envs) {
		return n.unusableErr()
	}
	dropped, err := n.store.saveReceivers(receivers, desired.Environments)
	if err != nil {
		n.log.Error("save notification receivers", "err", err)
		return n.unusableErr()
	}
	n.unusable = n.checkCredentials(receivers)
	for _, id := range slices.Sorted(maps.Keys(n.unusable)) {
		n.log.Error("notification receiver not used: its credential does not open", "receiver", id, "err", n.unusable[id])
	}
	for id, count := range dropped {
		if count > 0 {
			n.log.Warn("notification receiver removed from the spec: its queue is dropped", "receiver", id, "dropped", count)
		}
	}
	n.receivers, n.envs = receivers, slices.Clone(desired.Environments)
	for id := range receivers {
		if n.wake[id] == nil {
			n.wake[id] = make(chan struct{}, 1)
		}
	}
	for id, wake := range n.wake {
		if _, ok := receivers[id]; !ok {
			delete(n.wake, id)
			continue
		}
		// A receiver's worker looks again: its key may open now, or no longer.
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	n.configured = true
	early := n.early
	n.early = nil
	n.acceptLocked(early, time.Now())
	select {
	case n.changed <- struct{}{}:
	default:
	}
	return n.unusableErr()
}

// unusableErr joins why each unusable receiver is not used, sorted. n.mu is held.
func (n *Notifier) unusableErr() error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(n.unusable)) {
		errs = append(errs, n.unusable[id])
	}
	return errors.Join(errs...)
}

func equalReceiver(a, b receiver) bool {
	return a.ID == b.ID && a.App == b.App && a.Env == b.Env && a.Notify.Name == b.Notify.Name &&
		a.Notify.Type == b.Notify.Type && a.Notify.URL == b.Notify.URL && a.Notify.SecretFile == b.Notify.SecretFile &&
		a.Notify.TokenFile == b.Notify.TokenFile && a.Notify.API == b.Notify.API && a.Notify.Repo == b.Notify.Repo &&
		a.Notify.Severity == b.Notify.Severity && slices.Equal(a.Notify.Events, b.Notify.Events) &&
		slices.Equal(a.Notify.Exclude, b.Notify.Exclude) &&
		equalSealed(a.Notify.Secret, b.Notify.Secret) && equalSealed(a.Notify.Token, b.Notify.Token)
}

func equalSealed(a, b *spec.Secret) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// Notify accepts events: each gets its id and time, repeats are folded, and the rest
// is queued durably (fsynced) for every receiver that wants it before Notify
// returns. Zero events (no Type) are ignored. It never waits on a receiver.
func (n *Notifier) Notify(_ context.Context, events ...Event) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var accepted []Event
	for _, e := range events {
		if e.Type == "" {
			continue
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		if e.ID == "" {
			e.ID = newID(e.Time)
		}
		if !n.configured {
			if len(n.early) < maxEarlyEvents {
				n.early = append(n.early, e)
			}
			continue
		}
		accepted = append(accepted, e)
	}
	n.acceptLocked(accepted, now)
}

// acceptLocked folds events and queues what is left. n.mu is held.
func (n *Notifier) acceptLocked(events []Event, now time.Time) {
	entries := map[string][]entry{}
	dirty := map[string]*condition{}
	for _, e := range events {
		for _, out := range n.admit(e, now, dirty) {
			n.fanOut(out, entries)
		}
	}
	n.commitLocked(entries, dirty)
}

func (n *Notifier) commitLocked(entries map[string][]entry, dirty map[string]*condition) {
	if err := n.store.commit(entries, dirty); err != nil {
		n.log.Error("queue notifications", "err", err, "events", len(entries))
		return
	}
	for id := range entries {
		if ch := n.wake[id]; ch != nil {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// admit decides what of e is sent now. Plain events: a repeat of a dedupe key sent
// within the fold window is folded (counted into the next one sent). Conditions:
// a firing is sent unless receivers already heard it firing (same key) or it fired
// with the same key within the window (then it is held, and sent at the window's
// end if still firing); a resolution is sent only after a firing was. Changed
// conditions are put in dirty, to be saved with the queue.
func (n *Notifier) admit(e Event, now time.Time, dirty map[string]*condition) []Event {
	if e.Condition == "" {
		last, seen := n.lastSent[e.Key]
		if seen && now.Sub(last.at) < n.opts.FoldWindow {
			last.folded++
			n.lastSent[e.Key] = last
			return nil
		}
		e.Repeats = last.folded
		n.lastSent[e.Key] = sent{at: now}
		return []Event{e}
	}
	c := n.conds[e.Condition]
	if c == nil {
		if e.Resolved {
			return nil // nothing fired: nothing to clear
		}
		c = &condition{}
		n.conds[e.Condition] = c
	}
	if e.Resolved {
		c.Firing = false
		if !c.Notified {
			return nil
		}
		c.Notified = false
		e.Severity = c.Last.Severity // it reaches whoever heard the firing
		e.Repeats, c.Folded = c.Folded, 0
		dirty[e.Condition] = c
		return []Event{e}
	}
	c.LastSignal, c.Last = now, e
	switch {
	case c.Firing && c.Notified && e.Key == c.FiredKey:
		c.Folded++
		return nil
	case e.Key == c.FiredKey && now.Sub(c.FiredAt) < n.opts.FoldWindow:
		c.Firing = true
		c.Folded++
		return nil // held: tick sends it at the window's end if it still fires
	}
	c.Firing, c.Notified, c.FiredKey, c.FiredAt = true, true, e.Key, now
	e.Repeats, c.Folded = c.Folded, 0
	dirty[e.Condition] = c
	return []Event{e}
}

// quietAfter is how long a condition of type t may go unsignalled before it is
// resolved by silence (0: only an event resolves it). Nothing else says that memory
// pressure, router errors or L10 are over.
func (n *Notifier) quietAfter(t Type) time.Duration {
	switch t {
	case DynoMemory, DrainDropping, RouterErrors:
		return n.opts.QuietAfter
	}
	return 0
}

// tick sends held firings whose window ended, resolves quiet conditions and forgets
// settled ones.
func (n *Notifier) tick(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	entries := map[string][]entry{}
	dirty := map[string]*condition{}
	for name, c := range n.conds {
		quiet := n.quietAfter(c.Last.Type)
		switch {
		case c.Firing && quiet > 0 && now.Sub(c.LastSignal) >= quiet:
			e := c.Last
			e.ID, e.Time, e.Resolved, e.Resolves = newID(now), now, true, c.Last.Type
			e.Message = "Resolved: " + c.Last.Message
			for _, out := range n.admit(e, now, dirty) {
				n.fanOut(out, entries)
			}
		case c.Firing && !c.Notified && now.Sub(c.FiredAt) >= n.opts.FoldWindow:
			// Past the window, admit sends it with the repeats folded meanwhile.
			signal := c.LastSignal // a flush is no new signal: quiet keeps counting
			for _, out := range n.admit(c.Last, now, dirty) {
				n.fanOut(out, entries)
			}
			c.LastSignal = signal
		case !c.Firing && !c.Notified && now.Sub(c.FiredAt) >= n.opts.FoldWindow:
			delete(n.conds, name)
			dirty[name] = nil
		}
	}
	for key, s := range n.lastSent {
		// A key with folded repeats is kept a while longer, so the next of its kind
		// says how many there were.
		if age := now.Sub(s.at); (age >= n.opts.FoldWindow && s.folded == 0) || age >= foldedMemory {
			delete(n.lastSent, key)
		}
	}
	n.commitLocked(entries, dirty)
}

// fanOut adds e's entries for every receiver that wants it.
func (n *Notifier) fanOut(e Event, entries map[string][]entry) {
	ids := slices.Sorted(maps.Keys(n.receivers))
	for _, id := range ids {
		r := n.receivers[id]
		if n.unusable[id] != nil || !r.wants(e) {
			continue
		}
		switch r.Notify.Type {
		case spec.NotifyGitHubStatus, spec.NotifyGiteaStatus:
			entries[id] = append(entries[id], n.forge.entries(r, e, n.envs)...)
		default:
			entries[id] = append(entries[id], entry{Delivery: e.ID, Event: e})
		}
	}
}

// wants tells whether a receiver takes an event: its scope, severity and lists.
func (r receiver) wants(e Event) bool {
	if r.App != "" && (e.App != r.App || e.Env != r.Env) {
		return false
	}
	if r.Notify.Severity == string(SeverityError) && e.Severity != SeverityError {
		return false
	}
	t := string(e.filterType())
	if len(r.Notify.Events) > 0 && !slices.ContainsFunc(r.Notify.Events, func(p string) bool { return matchType(p, t) }) {
		return false
	}
	return !slices.ContainsFunc(r.Notify.Exclude, func(p string) bool { return matchType(p, t) })
}

// matchType matches a type against a pattern: the type, a family ("deploy.*") or "*".
func matchType(pattern, t string) bool {
	if pattern == "*" || pattern == t {
		return true
	}
	prefix, ok := strings.CutSuffix(pattern, "*")
	return ok && len(t) > len(prefix) && strings.HasPrefix(t, prefix)
}
